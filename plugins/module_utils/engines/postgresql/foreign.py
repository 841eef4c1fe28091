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

Passwords are never read: the catalog query asks only whether a user mapping has one.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (
    CATALOG_SEARCH_PATH, UTF8_SCRIPT)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    quote_ident, quote_literal)

# Where a disabled libpq server points: a Unix socket directory (a host starting with '/') that does not exist, so
# libpq fails on connect() at once (no DNS lookup, no packet, no timeout to wait for).
DISABLED_HOST = '/nonexistent/opsready-disabled-foreign-server'
# libpq options worth showing in the result (where the server points); anything else may be a secret of some wrapper.
SHOWN_OPTIONS = ('host', 'hostaddr', 'port', 'dbname', 'service')
# Options that would take the connection elsewhere than ``host``: hostaddr wins over host, a service file brings its
# own host/hostaddr.
DROPPED_OPTIONS = ('hostaddr', 'service')

COUNT_SQL = 'SELECT count(*) FROM pg_catalog.pg_foreign_server'

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
    shown = {k: v for k, v in server['options'].items() if k in SHOWN_OPTIONS}
    return {'name': server['name'], 'wrapper': server['wrapper'], 'options': shown,
            'user_mappings': [role for role, _pw in server['user_mappings']], 'action': action}


def _points_at(server: Dict[str, Any]) -> str:
    shown = ' '.join('%s=%s' % (k, server['options'][k]) for k in SHOWN_OPTIONS if k in server['options'])
    return '%s, %s' % (server['wrapper'], shown) if shown else server['wrapper']


def handle(engine: Any, database: str, mode: str) -> Dict[str, Any]:
    """Report (``keep``) or disable (``disable``) the foreign servers of the restored copy ``database`` (before the
    swap: the target's name never holds live servers under ``disable``). ``{'servers': [...], 'warnings': [...]}``"""
    servers = read_servers(engine, database)
    if not servers:
        return {'servers': [], 'warnings': []}
    entries = []
    statements: List[str] = []
    for server in servers:
        if mode != 'disable':
            action = 'kept'
        elif server['libpq']:
            passwords = sum(1 for _role, pw in server['user_mappings'] if pw)
            action = 'disabled: host set to %s%s; password removed from %d user mapping(s)' % (
                DISABLED_HOST, ', %s dropped' % ' and '.join(k for k in DROPPED_OPTIONS if k in server['options'])
                if any(k in server['options'] for k in DROPPED_OPTIONS) else '', passwords)
        elif server['user_mappings']:
            action = ('user mappings dropped (%d); the server\'s own options were left as they were (wrapper %s is '
                      'not libpq-based: check them, it may still reach its remote)'
                      % (len(server['user_mappings']), server['wrapper']))
        else:
            action = ('left as it was: wrapper %s is not libpq-based and the server has no user mappings (check its '
                      'options)' % server['wrapper'])
        if mode == 'disable':
            statements += disable_statements(server)
        entries.append(describe(server, action))
    if statements:
        # in the encoding the names were read in (UTF8_SCRIPT), all or nothing
        engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + 'BEGIN; %s; COMMIT;\n' % '; '.join(statements),
                                   database=database)
    named = '; '.join('%s (%s; user mappings: %s)' % (s['name'], _points_at(s), ', '.join(
        role for role, _pw in s['user_mappings']) or 'none') for s in servers)
    if mode == 'disable':
        warning = ('The restored database holds foreign servers, made unable to reach their remote '
                   '(foreign_servers=disable): %s. Re-point them (ALTER SERVER ... OPTIONS, ALTER USER MAPPING) '
                   'where this copy may connect.' % named)
        odd = [s['name'] for s in servers if not s['libpq']]
        if odd:
            warning += ' Not libpq-based, only their user mappings were dropped: %s.' % ', '.join(odd)
    else:
        warning = ('The restored database holds foreign servers, kept as they were: %s. Its foreign tables (and '
                   'dblink calls through them) read and write the remote server those name, the backed-up '
                   'database\'s remote (perhaps production), with the user mappings\' credentials. For a scratch or '
                   'test copy restore with foreign_servers=disable.' % named)
    return {'servers': entries, 'warnings': [warning]}
