# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The foreign servers a restored PostgreSQL copy holds (postgres_fdw, dblink_fdw, others), and making them unable
to reach their remote (``foreign_servers: disable``).

A dump carries ``CREATE SERVER ... OPTIONS (host ..., dbname ...)`` and ``CREATE USER MAPPING ... OPTIONS (user ...,
password ...)`` as they were: a restored copy (a DR drill's scratch copy, a production dump restored into a test
environment) reads and writes the backed-up database's remote, often a production server, with its credentials, as
soon as anything queries a foreign table. The restore reports them (``foreign_servers``, a warning naming them);
``disable`` repoints each libpq-based server (postgres_fdw, dblink_fdw and any wrapper using their validators) at a
Unix socket directory that does not exist (``host``; ``hostaddr`` and ``service``, which would win over it or bring
their own, dropped): a connection fails at once, nothing is sent anywhere. The passwords of their user mappings go
too (the copy no longer holds the remote's credentials). A server of another wrapper (mysql_fdw, oracle_fdw ...)
has options this module cannot know: its user mappings are dropped (those wrappers log in with them) and the result
says its options were left as they were.

What else a restored copy reaches (``reach``): its logical replication subscriptions, which pg_dump writes disabled
but with the source's connection string (its password in clear) and the publisher's replication slot, so that
``ALTER SUBSCRIPTION ... ENABLE`` in a copy would stream from that slot, taking the changes the source subscriber waits
for; ``disable`` points their connection at the same nowhere (no password) and sets ``slot_name = NONE`` (ENABLE is
then refused). dblink calls with an inline connection string in function bodies and views cannot be rewritten: the
restore names those objects in a warning either way. A server of another wrapper that keeps its remote's address in
an option of a usual name (``ADDRESS_OPTIONS``) gets that option pointed nowhere too.

Passwords are never read: the catalog query asks only whether a user mapping has one; a subscription's connection
string is parsed here and only its ``SHOWN_CONNINFO`` keys leave this module.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import ToolError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import conninfo as conninfo_parser
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (
    CATALOG_SEARCH_PATH, UTF8_SCRIPT)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    conninfo_value, quote_ident, quote_literal)

# Where a disabled libpq server points: a Unix socket directory (a host starting with '/') that does not exist, so
# libpq fails on connect() at once (no DNS lookup, no packet, no timeout to wait for).
DISABLED_HOST = '/nonexistent/opsready-disabled-foreign-server'
# libpq options worth showing in the result (where the server points); anything else may be a secret of some wrapper.
SHOWN_OPTIONS = ('host', 'hostaddr', 'port', 'dbname', 'service')
# Options that would take the connection elsewhere than ``host``: hostaddr wins over host, a service file brings its
# own host/hostaddr.
DROPPED_OPTIONS = ('hostaddr', 'service')
# Options in which wrappers that are not libpq-based (mysql_fdw, tds_fdw, oracle_fdw, mongo_fdw, redis_fdw ...) keep
# their remote's address: under ``disable`` those a server has are set to DISABLED_HOST (the option exists, so the
# wrapper's validator knows it; a wrapper refusing the value leaves the server as it was, and the result says so).
ADDRESS_OPTIONS = ('host', 'hostaddr', 'address', 'server', 'servername', 'dbserver', 'dsn', 'url', 'uri')
# Of those, the ones shown in the result (a dsn or url may carry a password).
SHOWN_ADDRESS = ('address', 'server', 'servername', 'dbserver')
# The keys of a subscription's connection string shown in the result (never the password).
SHOWN_CONNINFO = ('host', 'hostaddr', 'port', 'dbname', 'user', 'service')

COUNT_SQL = 'SELECT count(*) FROM pg_catalog.pg_foreign_server'
# Whether ``reach`` has anything to look at in the current database: its subscriptions, the dblink extension (only
# then can a function call dblink), and whether the login may read the subscriptions' connection strings (a
# superuser; PostgreSQL 16's pg_create_subscription members may not).
REACH_SQL = ("SELECT (SELECT count(*) FROM pg_catalog.pg_subscription s JOIN pg_catalog.pg_database d "
             "ON d.oid = s.subdbid WHERE d.datname = current_database()) || ',' || "
             "(SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'dblink') || ',' || "
             "has_column_privilege('pg_catalog.pg_subscription', 'subconninfo', 'SELECT')")

# name, enabled, slot name ('' for none), connection string (or '' when the login may not read it)
_SUBSCRIPTIONS_SQL = """
SELECT s.subname, s.subenabled::text, coalesce(s.subslotname::text, ''), {conninfo}
FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = current_database()
ORDER BY s.subname
"""

# Functions and procedures whose body, and views and materialized views whose query, call dblink (any of its
# functions) and hold what looks like a connection string (key=value of a libpq keyword, or a URI). Not the dblink
# extension's own members.
INLINE_DBLINK_SQL = r"""
SELECT o.kind, o.name FROM (
  SELECT 'function' AS kind, p.oid::regprocedure::text AS name, pg_get_functiondef(p.oid) AS body
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE p.prokind IN ('f', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid
                    AND e.deptype = 'e')
  UNION ALL
  SELECT CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, c.oid::regclass::text,
         pg_get_viewdef(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
) o
WHERE o.body ~* 'dblink' AND o.body ~* '(host|hostaddr|dbname|service|port|user|password)\s*=|postgres(ql)?://'
ORDER BY 2
"""

# One row per server: name, wrapper, whether it is libpq-based (postgres_fdw's or dblink_fdw's validator), its
# options (name=value, one per line: only SHOWN_OPTIONS leave this module), its user mappings (role, '' for PUBLIC,
# with ':true' when it holds a password: the password itself is never selected). pg_user_mappings, not the
# superuser-only catalog: a restore's login may be the database owner.
SERVERS_SQL = """
SELECT s.srvname, w.fdwname,
       (p.proname IS NOT NULL AND p.proname IN ('postgres_fdw_validator', 'dblink_fdw_validator'))::text,
       coalesce(array_to_string(s.srvoptions, E'\\n'), ''),
       coalesce((SELECT string_agg(CASE WHEN u.umuser = 0 THEN '' ELSE u.usename::text END || ':' ||
                                   EXISTS (SELECT 1 FROM pg_options_to_table(u.umoptions) o
                                           WHERE o.option_name = 'password')::text, E'\\n' ORDER BY u.umuser)
                 FROM pg_user_mappings u WHERE u.srvid = s.oid), '')
FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
LEFT JOIN pg_proc p ON p.oid = w.fdwvalidator
ORDER BY s.srvname
"""


def _options(text: str) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for line in text.split('\n'):
        if '=' in line:
            key, value = line.split('=', 1)
            found[key] = value
    return found


def read_servers(engine: Any, database: str) -> List[Dict[str, Any]]:
    """The foreign servers of ``database``: name, wrapper, libpq (bool), options (libpq servers: the ones in
    ``SHOWN_OPTIONS``), user_mappings ([(role or 'PUBLIC', has a password)])."""
    rows = engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + SERVERS_SQL + ';\n', database=database)
    servers = []
    for row in rows:
        if len(row) != 5:
            continue
        name, wrapper, libpq, options, mappings = row
        opts = _options(options)
        users = []
        for line in mappings.split('\n'):
            if ':' in line:
                role, flag = line.rsplit(':', 1)
                users.append((role or 'PUBLIC', flag == 'true'))
        servers.append({'name': name, 'wrapper': wrapper, 'libpq': libpq == 'true', 'options': opts,
                        'user_mappings': users})
    return servers


def _for(role: str) -> str:
    return 'PUBLIC' if role == 'PUBLIC' else quote_ident(role)


def disable_statements(server: Dict[str, Any]) -> List[str]:
    """What makes ``server`` unable to reach its remote (see the module's docstring)."""
    q = quote_ident(server['name'])
    if not server['libpq']:
        return ['DROP USER MAPPING FOR %s SERVER %s' % (_for(role), q) for role, _pw in server['user_mappings']]
    changes = ['%s host %s' % ('SET' if 'host' in server['options'] else 'ADD', quote_literal(DISABLED_HOST))]
    changes += ['DROP %s' % key for key in DROPPED_OPTIONS if key in server['options']]
    statements = ['ALTER SERVER %s OPTIONS (%s)' % (q, ', '.join(changes))]
    statements += ['ALTER USER MAPPING FOR %s SERVER %s OPTIONS (DROP password)' % (_for(role), q)
                   for role, has_password in server['user_mappings'] if has_password]
    return statements


def describe(server: Dict[str, Any], action: str) -> Dict[str, Any]:
    """The result's entry for ``server`` (no password, no option a wrapper may keep a secret in)."""
    shown = {k: v for k, v in server['options'].items() if k in SHOWN_OPTIONS + SHOWN_ADDRESS}
    return {'name': server['name'], 'wrapper': server['wrapper'], 'options': shown,
            'user_mappings': [role for role, _pw in server['user_mappings']], 'action': action}


def _points_at(server: Dict[str, Any]) -> str:
    shown = ' '.join('%s=%s' % (k, server['options'][k]) for k in SHOWN_OPTIONS + SHOWN_ADDRESS
                     if k in server['options'])
    return '%s, %s' % (server['wrapper'], shown) if shown else server['wrapper']


def _address_statement(server: Dict[str, Any]) -> Optional[str]:
    """``ALTER SERVER ... OPTIONS (SET host ..., SET address ...)`` for a server of a wrapper that is not libpq-based
    and keeps its remote's address in ``ADDRESS_OPTIONS``; None when it has none of them."""
    keys = [k for k in ADDRESS_OPTIONS if k in server['options']]
    if server['libpq'] or not keys:
        return None
    return 'ALTER SERVER %s OPTIONS (%s)' % (quote_ident(server['name']), ', '.join(
        'SET %s %s' % (quote_ident(k), quote_literal(DISABLED_HOST)) for k in keys))


def _other_wrapper_action(engine: Any, database: str, server: Dict[str, Any]) -> str:
    """Point a server of another wrapper nowhere (its address options, one transaction of its own: a wrapper's
    validator may refuse the value, which must not fail the restore) and say what was done."""
    keys = [k for k in ADDRESS_OPTIONS if k in server['options']]
    mappings = ('user mappings dropped (%d)' % len(server['user_mappings'])) if server['user_mappings'] else ''
    statement = _address_statement(server)
    if statement is None:
        if mappings:
            return ('%s; the server\'s own options were left as they were (wrapper %s is not libpq-based and none of '
                    'them is a usual address option: check them, it may still reach its remote)'
                    % (mappings, server['wrapper']))
        return ('left as it was: wrapper %s is not libpq-based and the server has no user mappings (check its '
                'options)' % server['wrapper'])
    try:
        engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + 'BEGIN; %s; COMMIT;\n' % statement,
                                   database=database)
    except ToolError as exc:
        return ('%s%sthe server\'s options %s could NOT be changed (wrapper %s refused: %s): it may still reach its '
                'remote' % (mappings, '; ' if mappings else '', ', '.join(keys), server['wrapper'],
                            (exc.stderr or exc.message).strip()[-300:]))
    return 'disabled: %s set to %s%s (wrapper %s is not libpq-based: check its other options)' % (
        ', '.join(keys), DISABLED_HOST, '; ' + mappings if mappings else '', server['wrapper'])


def handle(engine: Any, database: str, mode: str) -> Dict[str, Any]:
    """Report (``keep``) or disable (``disable``) the foreign servers of the restored copy ``database`` (before the
    swap: the target's name never holds live servers under ``disable``). ``{'servers': [...], 'warnings': [...]}``"""
    servers = read_servers(engine, database)
    if not servers:
        return {'servers': [], 'warnings': []}
    actions: Dict[str, str] = {}
    statements: List[str] = []
    for server in servers:
        if mode != 'disable':
            actions[server['name']] = 'kept'
        elif server['libpq']:
            passwords = sum(1 for _role, pw in server['user_mappings'] if pw)
            actions[server['name']] = 'disabled: host set to %s%s; password removed from %d user mapping(s)' % (
                DISABLED_HOST, ', %s dropped' % ' and '.join(k for k in DROPPED_OPTIONS if k in server['options'])
                if any(k in server['options'] for k in DROPPED_OPTIONS) else '', passwords)
        if mode == 'disable':
            statements += disable_statements(server)
    if statements:
        # in the encoding the names were read in (UTF8_SCRIPT), all or nothing
        engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + 'BEGIN; %s; COMMIT;\n' % '; '.join(statements),
                                   database=database)
    if mode == 'disable':
        for server in servers:
            if not server['libpq']:
                actions[server['name']] = _other_wrapper_action(engine, database, server)
    entries = [describe(server, actions[server['name']]) for server in servers]
    named = '; '.join('%s (%s; user mappings: %s)' % (s['name'], _points_at(s), ', '.join(
        role for role, _pw in s['user_mappings']) or 'none') for s in servers)
    if mode == 'disable':
        warning = ('The restored database holds foreign servers, made unable to reach their remote '
                   '(foreign_servers=disable): %s. Re-point them (ALTER SERVER ... OPTIONS, ALTER USER MAPPING) '
                   'where this copy may connect.' % named)
        odd = ['%s (%s)' % (s['name'], actions[s['name']]) for s in servers if not s['libpq']]
        if odd:
            warning += ' Not libpq-based: %s.' % '; '.join(odd)
    else:
        warning = ('The restored database holds foreign servers, kept as they were: %s. Its foreign tables (and '
                   'dblink calls through them) read and write the remote server those name, the backed-up '
                   'database\'s remote (perhaps production), with the user mappings\' credentials. For a scratch or '
                   'test copy restore with foreign_servers=disable.' % named)
    return {'servers': entries, 'warnings': [warning]}


# -- subscriptions and inline dblink connection strings ---------------------------------------------------------
def parse_conninfo(conninfo: str) -> Dict[str, str]:
    """The keywords of a libpq connection string (``key=value ...`` or a URI, ``conninfo.parse``). What cannot be
    parsed is left out: only ``SHOWN_CONNINFO`` keys are ever shown, and a subscription is disabled whatever
    this finds."""
    return conninfo_parser.parse(conninfo.strip(), strict=False)


def disabled_conninfo(parsed: Dict[str, str]) -> str:
    """A connection string that fails at once (``DISABLED_HOST``), keeping where the subscription pointed (port,
    dbname, user) for whoever re-points it; no password, hostaddr or service."""
    kept = ['%s=%s' % (k, conninfo_value(parsed[k])) for k in ('port', 'dbname', 'user') if parsed.get(k)]
    return ' '.join(['host=%s' % conninfo_value(DISABLED_HOST)] + kept)


def read_subscriptions(engine: Any, database: str, conninfo: bool) -> List[Dict[str, Any]]:
    sql = _SUBSCRIPTIONS_SQL.format(conninfo='s.subconninfo' if conninfo else "''")
    rows = engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + sql + ';\n', database=database)
    return [{'name': r[0], 'enabled': r[1] == 'true', 'slot_name': r[2] or None,
             'parsed': parse_conninfo(r[3]) if conninfo else None} for r in rows if len(r) == 4]


def _subscription_statements(sub: Dict[str, Any]) -> List[str]:
    q = quote_ident(sub['name'])
    statements = ['ALTER SUBSCRIPTION %s DISABLE' % q] if sub['enabled'] else []
    if sub['parsed'] is not None:
        statements.append('ALTER SUBSCRIPTION %s CONNECTION %s' % (q, quote_literal(disabled_conninfo(sub['parsed']))))
    if sub['slot_name']:
        statements.append('ALTER SUBSCRIPTION %s SET (slot_name = NONE)' % q)
    return statements


def subscriptions(engine: Any, database: str, mode: str, conninfo: bool) -> Dict[str, Any]:
    """Report (``keep``) or disable (``disable``) the restored copy's subscriptions (see the module's docstring).
    ``{'subscriptions': [...], 'warnings': [...]}``"""
    subs = read_subscriptions(engine, database, conninfo)
    if not subs:
        return {'subscriptions': [], 'warnings': []}
    if mode == 'disable':
        statements = [sql for sub in subs for sql in _subscription_statements(sub)]
        if statements:
            # each on its own (a script, autocommit, stopping at the first error); none of them connects anywhere
            engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + '%s;\n' % ';\n'.join(statements),
                                       database=database)
    entries = []
    for sub in subs:
        shown = {k: v for k, v in (sub['parsed'] or {}).items() if k in SHOWN_CONNINFO}
        if mode == 'disable':
            action = ('disabled: %sslot_name set to NONE (ALTER SUBSCRIPTION ... ENABLE is refused until a slot is '
                      'named; the publisher\'s slot %s is left to the source subscriber)'
                      % ('connection pointed at %s, without password; ' % DISABLED_HOST if conninfo else '',
                         sub['slot_name'] or '(none)'))
        else:
            action = 'kept (%s, with the source\'s connection and slot)' % (
                'enabled' if sub['enabled'] else 'disabled, as pg_dump writes it')
        entries.append({'name': sub['name'], 'connection': shown if conninfo else None,
                        'slot_name': sub['slot_name'], 'enabled': sub['enabled'] and mode != 'disable',
                        'action': action})
    named = '; '.join('%s (%s; slot %s)' % (e['name'], ' '.join('%s=%s' % kv for kv in sorted(
        (e['connection'] or {}).items())) or 'connection not readable by this login', e['slot_name'] or 'none')
        for e in entries)
    if mode == 'disable':
        warning = ('The restored database holds logical replication subscriptions, made unable to connect or take '
                   'a slot (foreign_servers=disable): %s. To subscribe from this copy, create a slot of its own on '
                   'the publisher and ALTER SUBSCRIPTION ... CONNECTION ..., SET (slot_name = ...), ENABLE.' % named)
    else:
        warning = ('The restored database holds logical replication subscriptions, kept as the dump writes them '
                   '(disabled) with the source\'s connection string, its password included, and the publisher\'s '
                   'replication slot: %s. ALTER SUBSCRIPTION ... ENABLE in this copy would stream from that slot, '
                   'taking the changes the source subscriber waits for. For a scratch or test copy restore with '
                   'foreign_servers=disable; else ALTER SUBSCRIPTION ... SET (slot_name = NONE) before enabling it '
                   'anywhere but in place of the source.' % named)
    return {'subscriptions': entries, 'warnings': [warning]}


def inline_dblink(engine: Any, database: str, mode: str) -> List[str]:
    """A warning naming the functions and views that call dblink with an inline connection string (none when there
    are none): no foreign server stands between them and their remote, so ``disable`` cannot reach them."""
    rows = [r for r in engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + INLINE_DBLINK_SQL + ';\n',
                                                  database=database) if len(r) == 2]
    if not rows:
        return []
    named = ', '.join('%s %s' % (kind, name) for kind, name in rows)
    return ['The restored database has functions or views that call dblink with an inline connection string: %s. '
            'They connect wherever those strings say (the backed-up database\'s remote, perhaps production) when '
            'called, %s. Rewrite them to name a foreign server (which foreign_servers=disable reaches), or revoke '
            'EXECUTE on them in a copy that must not reach the remote.'
            % (named, 'and were not disabled: foreign_servers=disable changes foreign servers and subscriptions, not '
                      'connection strings inside function bodies and views' if mode == 'disable' else
               'as in the source')]


def reach(engine: Any, database: str, mode: str, flags: str) -> Dict[str, Any]:
    """Subscriptions and inline dblink calls of the restored copy, from ``REACH_SQL``'s answer ``flags``:
    ``{'subscriptions': [...], 'warnings': [...]}``."""
    parts = (flags or '').split(',')
    count, dblink, conninfo = (parts + ['0', '0', 'false'])[:3]
    found: Dict[str, Any] = {'subscriptions': [], 'warnings': []}
    if count.isdigit() and int(count):
        found = subscriptions(engine, database, mode, conninfo == 'true')
    if dblink.isdigit() and int(dblink):
        found['warnings'] = found['warnings'] + inline_dblink(engine, database, mode)
    return found


def reach_foreseen(props: Dict[str, Any], mode: str) -> List[str]:
    """Check mode's warnings of what the restored copy would reach, from what the backup recorded (``reaches``, the
    names only: nothing of a server's options or a subscription's connection), in the words of the run's own
    (``handle``, ``subscriptions``, ``inline_dblink``), which read the copy. [] for a backup that predates the
    record."""
    reaches = props.get('reaches') or {}
    servers = [str(n) for n in reaches.get('servers') or []]
    subs = [str(n) for n in reaches.get('subscriptions') or []]
    inline = [str(n) for n in reaches.get('inline_dblink') or []]
    out = []
    if servers:
        out.append('The restored database will hold foreign servers, %s: %s. %s' % (
            'made unable to reach their remote (foreign_servers=disable)' if mode == 'disable' else
            'kept as they were (foreign_servers=keep)', ', '.join(servers),
            'Re-point them where the copy may connect.' if mode == 'disable' else
            'Its foreign tables read and write the backed-up database\'s remote (perhaps production) with the user '
            'mappings\' credentials; for a scratch or test copy restore with foreign_servers=disable.'))
    if subs:
        out.append('The restored database will hold logical replication subscriptions, %s: %s.' % (
            'made unable to connect or take a slot (foreign_servers=disable)' if mode == 'disable' else
            'kept as the dump writes them (disabled), with the source\'s connection string and the publisher\'s '
            'replication slot (foreign_servers=keep): ENABLE in the copy would take the changes the source subscriber '
            'waits for', ', '.join(subs)))
    if inline:
        out.append('The restored database will have functions or views that call dblink with an inline connection '
                   'string: %s. They connect wherever those strings say (the backed-up database\'s remote) when '
                   'called, whatever foreign_servers says.' % ', '.join(inline))
    return out
