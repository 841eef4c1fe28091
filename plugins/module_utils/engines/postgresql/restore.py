# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL logical restore: ``pg_restore -j N`` into a temporary database, then a rename swap.

1. The target is inspected: an existing database holding tables, views or sequences is refused unless
   ``replace`` is set (nothing has been written yet).
2. ``CREATE DATABASE <target>__opsready_restore_<id> TEMPLATE template0`` and the dump is restored into
   it: directory-format dumps with ``pg_restore -j N`` straight from the catalog; custom-format dumps
   with ``-j N`` from a decompressed copy in ``tmpdir`` (pg_restore needs a seekable file for parallel
   jobs), or streamed into ``pg_restore`` on stdin with ``jobs=1``; plain dumps through ``psql``. The
   decompressed copy starts before step 1 (before the lock even), so the server round trips overlap it; it
   is private to the run and stopped and removed when anything refuses. A custom dump of one data entry
   (one table: ``-j N`` cannot split its load) is loaded while it decompresses: schema and data through
   ``pg_restore`` on stdin, fed from the copy as it grows, then ``pg_restore -j N --section=post-data`` (indexes,
   constraints, grants) on the complete copy once the artifact's checksum matched. Every pg_restore of the load runs
   with --verbose and every run's stderr (psql's too) is read for the server's warnings of a GRANT/REVOKE applied in
   part or not at all (a restore by a role that is not a superuser: ``privilege_notices``), which the run reports
   (in any language of the server's messages).
3. Any failure drops the temporary database; the target was never touched. A run killed on the way (SIGKILL, an
   OOM kill, a lost host: no clean-up runs) leaves it: it is created with a COMMENT naming its target
   (``copy_marker``), kept until the swap, and the next run into that target (or its ``state: absent``), under the
   target's lock, which proves no other run is using it, drops every copy of that target bearing the marker and
   says so (``dropped_stale``). A database that only looks like one (the name without the marker) is never dropped.
4. The database-level properties recorded in the manifest at backup time (owner, ACL, comment, connection
   limit, ``ALTER DATABASE ... SET``, ``ALTER ROLE ... IN DATABASE ... SET``; see ``engines/postgresql/dbprops.py``)
   are applied to the temporary database, so they travel with it through the rename.
5. Swap: new connections to the old target are refused (``ALLOW_CONNECTIONS false``), its sessions
   terminated, and in one transaction the old database is renamed aside (marked as such, so a run killed before
   dropping it leaves it to the next run's sweep) and the restored one takes the name and its recorded comment
   in place of the marker; the old one is dropped afterwards.

The whole run (and ``state: absent``) holds a session-level advisory lock keyed on the target's name
(``target_lock``): a second run into the same database fails at once and changes nothing; runs into other
databases go on in parallel; the lock ends with the holding session, so a crashed run cannot leave it behind.
The run's statements in the maintenance database (inspection, CREATE DATABASE, properties, rename, drops) go
through that same session: one psql start and login for all of them (plus ANALYZE's, in the restored copy).
That session turns ``idle_session_timeout`` off for itself: it is idle while the restore loads.

Before anything is created, the roles the backup refers to (owners, grantees, policy roles) are looked
up on the target server: missing ones stop the restore with their names (restore ``@globals`` first).
``source_database: '@globals'`` restores the ``pg_dumpall --globals-only`` script onto the server itself:
missing roles and tablespaces are created, existing ones are left exactly as they are.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import subprocess  # nosec B404 # argv lists via the runner only
import termios
import threading
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple, cast

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import secret_file
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch, told_left
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    CHUNK, ChecksummedFile, open_decompressed)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import GLOBALS, kill_and_reap
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    check_decryptable, grow_pipe, is_encrypted, open_artifact, pipe_artifact_into)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.dbprops import (
    BUILT_IN_EXTENSIONS, EXTENSION_COMMENTS_SQL, EXTENSION_MEMBERS_ALL_SQL, RAW_PREFIX, apply_statements,
    before_load_statements, builtin_extension_comments, create_options, describe,
    extension_member_losses, extension_member_statements, extension_names, extension_owner_losses,
    extension_owner_statements,
    extension_statements, is_comment, load_options, locale_settings,
    no_owner_grant_warnings, own_text_search_option, referenced_roles, setting_role_warnings,
    unknown_privilege_warnings)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import foreign
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    check_name, dbname_arg, quote_ident, quote_literal)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
    PostgresEngine, toc_lines)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (
    CATALOG_SEARCH_PATH, EVENT_TRIGGERS_OFF_SINCE, INVALID_PARAMETER_VALUE, MAINTENANCE_DATABASE, OBJECT_IN_USE,
    UTF8_SCRIPT, PsqlSession, sqlstate)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
    Restorer, RestoreRequest, Timer, drop_named, temporary_name)
from ansible_collections.opsready.operations.plugins.module_utils.restore.stale import (
    CopyMarkers, copy_shape, drop_stale_copies, stem_of, told_on_failure)

USER_OBJECTS = ("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN "
                "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
                "AND n.nspname NOT LIKE 'pg_temp%'")


# ANALYZE of what the load made: the relations a database-wide ANALYZE picks (tables, materialized views,
# partitioned tables; not foreign tables), outside the system schemas. The catalogs keep their template0
# statistics (autovacuum analyzes them as after any DDL): a bare ANALYZE also read the ~60 catalogs, ~40 ms of a
# tiny restore's fixed cost. A partition is left to its root's ANALYZE, which analyzes every partition (a foreign
# one too, which the root's sampling reads anyway) and the root's own statistics, each once.
ANALYZE_RESTORED = (
    "DO $opsready$DECLARE names text; BEGIN "
    "SELECT string_agg(pg_catalog.format('%I.%I', n.nspname, c.relname), ', ' ORDER BY c.oid) INTO names "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition AND c.relpersistence <> 't' "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'; "
    "IF names IS NOT NULL THEN EXECUTE 'ANALYZE ' || names; END IF; END$opsready$")


def _ask(engine: PostgresEngine, sql: str, session: Optional[PsqlSession] = None) -> List[List[str]]:
    """``sql`` in the maintenance database: on the run's locked session when there is one (no program start, no
    login: those are most of a short query's cost), else through a psql of its own."""
    if session is not None:
        return session.query(sql)
    return engine.query(sql)


def _one_transaction(statements: List[str]) -> str:
    """Several statements that must all apply or none: ``psql -c`` runs its string as one transaction, a session
    reads a script (each statement its own), so the block is explicit. On a session, a failing statement ends
    psql (ON_ERROR_STOP) and the server rolls the open transaction back."""
    return 'BEGIN; %s; COMMIT' % '; '.join(statements)


def database_exists(engine: PostgresEngine, name: str, session: Optional[PsqlSession] = None) -> bool:
    return _template_flag(engine, name, session) is not None


def _template_flag(engine: PostgresEngine, name: str, session: Optional[PsqlSession] = None) -> Optional[bool]:
    """Whether database ``name`` is a template (IS_TEMPLATE); None when there is no such database."""
    rows = _ask(engine, 'SELECT datistemplate::text FROM pg_database WHERE datname = %s'  # nosec B608 # pg_quote
                % quote_literal(name), session)
    return rows[0][0] == 'true' if rows and rows[0] else None


# What makes an existing target "not empty": tables are not the only things a user keeps. A database of functions,
# types or large objects (with no table at all) is dropped by the swap just the same. Counted: objects created after
# initdb (oid >= 16384, FirstNormalObjectId) that are not members of an extension and not made implicitly (array,
# row and multirange types). Extensions themselves are not counted: a database prepared with CREATE EXTENSION (or
# given them by template1) is a normal target; their member objects are recreated by the backup's own extensions.
def _count_made(catalog: str, condition: str = '') -> str:
    """count(*) of ``catalog``'s objects made after initdb (oid >= 16384, FirstNormalObjectId) that no extension owns
    (``catalog``, ``condition``: constants of this module, never input)."""
    return ("SELECT count(*) FROM %s x WHERE x.oid >= 16384 %sAND NOT EXISTS (SELECT 1 FROM pg_depend d "  # nosec B608 # constants
            "WHERE d.classid = '%s'::regclass AND d.objid = x.oid AND d.deptype = 'e')" % (catalog, condition, catalog))


# Every catalog of per-database objects a user makes with a statement of their own (pg_default_acl: ALTER DEFAULT
# PRIVILEGES; pg_am: CREATE ACCESS METHOD; pg_language: CREATE LANGUAGE; pg_ts_parser/pg_ts_template; pg_transform):
# a database prepared with only those (its default grants for the application, a table access method) is a user's
# work the swap's DROP DATABASE would take. Objects that hang on a table (triggers, policies, rules, statistics) or
# a server (user mappings) come with what is counted already.
_OTHER_CATALOGS = ('pg_operator', 'pg_collation', 'pg_ts_config', 'pg_ts_dict', 'pg_ts_parser', 'pg_ts_template',
                   'pg_conversion', 'pg_cast', 'pg_event_trigger', 'pg_publication', 'pg_foreign_server',
                   'pg_foreign_data_wrapper', 'pg_opclass', 'pg_opfamily', 'pg_am', 'pg_language', 'pg_transform')
TARGET_CONTENTS = (
    ('tables, views or sequences', USER_OBJECTS),
    ('schemas', _count_made('pg_namespace', "AND x.nspname !~ '^pg_(toast_)?temp_' ")),
    ('functions or procedures', _count_made('pg_proc')),
    ('types or domains', "SELECT count(*) FROM pg_type x WHERE x.oid >= 16384 AND NOT EXISTS (SELECT 1 FROM "
                         "pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = x.oid AND d.deptype IN "
                         "('e', 'i')) AND (x.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = "
                         "x.typrelid) = 'c')"),
    ('large objects', 'SELECT count(*) FROM pg_largeobject_metadata'),
    ('default privileges (ALTER DEFAULT PRIVILEGES)', _count_made('pg_default_acl')),
    ('other objects (operators, collations, text search, casts, event triggers, publications, foreign servers, '
     'access methods, languages, transforms)',
     'SELECT ' + ' + '.join('(%s)' % _count_made(cat) for cat in _OTHER_CATALOGS)),
)


def user_objects(engine: PostgresEngine, name: str) -> int:
    return int(engine.query(CATALOG_SEARCH_PATH + USER_OBJECTS, database=name)[0][0])


# The public schema as one value (owner, ACL, comment; md5 of their text: any comment or role name passes psql's
# output as hex): a DBA who gave it to the application's role, opened or closed it, or described it prepared the
# database, though nothing was created in it (its oid, 2200, is initdb's, so the schemas count above never sees it).
# ``n``: the schema's pg_namespace row; an absent public schema (dropped by a DBA) is the empty string.
PUBLIC_SCHEMA_STATE = ("coalesce((SELECT md5(concat_ws('|', pg_get_userbyid(n.nspowner), coalesce(n.nspacl::text, "
                       "'-'), coalesce(obj_description(n.oid, 'pg_namespace'), '-'))) FROM pg_namespace n "
                       "WHERE n.nspname = 'public'), '')")
# The public schema as initdb (PostgreSQL 15+) makes it: owned by pg_database_owner, initdb's ACL (kept in
# pg_init_privs), the comment 'standard public schema'; never the empty string (a target without the public schema
# differs from it: a DBA dropped it).
_PUBLIC_SCHEMA_INITDB = ("coalesce((SELECT md5(concat_ws('|', 'pg_database_owner', coalesce(i.initprivs::text, "
                         "'-'), 'standard public schema')) FROM pg_init_privs i WHERE i.objoid = (SELECT oid FROM "
                         "pg_namespace WHERE nspname = 'public') AND i.classoid = 'pg_namespace'::regclass "
                         "AND i.objsubid = 0), 'none')")
PUBLIC_SCHEMA_KIND = 'public schema changed (owner, grants or comment)'   # counted 0 or 1: "1 public schema changed"


def _public_schema_changed(reference: str) -> str:
    """1 when the target's public schema is neither as initdb makes it nor as in the maintenance database
    (``reference``: its PUBLIC_SCHEMA_STATE, the cluster's usual public schema: a cluster upgraded from before
    PostgreSQL 15 keeps the older owner and grants in every new database, which are no DBA's change), else 0."""
    return "SELECT (%s NOT IN (%s, %s))::int" % (PUBLIC_SCHEMA_STATE, _PUBLIC_SCHEMA_INITDB, quote_literal(reference))


def _template1_public_state(engine: PostgresEngine) -> Optional[str]:
    """template1's PUBLIC_SCHEMA_STATE, None when it cannot be read (a template1 closed to connections: the target
    then stays counted, refused rather than dropped)."""
    try:
        rows = engine.query(CATALOG_SEARCH_PATH + 'SELECT ' + PUBLIC_SCHEMA_STATE, database='template1')
    except OpsReadyError:
        return None
    return rows[0][0] if rows and rows[0] else None


def target_contents(engine: PostgresEngine, name: str, public_reference: Optional[str] = None) -> Dict[str, int]:
    """What an existing database holds, by kind (only the kinds it has): one query in the target.
    ``public_reference``: the maintenance database's PUBLIC_SCHEMA_STATE (``inspect_target``); with it the public
    schema's own changes are counted too. CREATE DATABASE copies template1, whose public schema a DBA may have changed
    alone (the CVE-2018-1058 advice, REVOKE CREATE ... FROM PUBLIC, given to every new database): a public schema
    that differs from both references is compared with template1's too. That is a login of its own (no session
    reads another database's catalog), so it is made only then, never when the first two match."""
    kinds = list(TARGET_CONTENTS) + ([(PUBLIC_SCHEMA_KIND, _public_schema_changed(public_reference))]
                                     if public_reference is not None else [])
    # the target's own public schema state last (not a kind): what template1's is compared with
    state = ', (%s)' % PUBLIC_SCHEMA_STATE if public_reference is not None else ''
    rows = engine.query(CATALOG_SEARCH_PATH + 'SELECT ' + ', '.join('(%s)' % sql for _kind, sql in kinds) + state,
                        database=name)
    contents = {kind: int(count) for (kind, _sql), count in zip(kinds, rows[0]) if int(count)}
    if contents.get(PUBLIC_SCHEMA_KIND) and _template1_public_state(engine) == rows[0][len(kinds)]:
        del contents[PUBLIC_SCHEMA_KIND]
    return contents


# What a DBA sets on a database itself, outside it (shared catalogs, read from the maintenance database with the
# target's row ``d``): its settings and its roles' settings in it (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE
# ... SET), its comment and security labels. A database prepared with only those (a work_mem for the reports, the
# application role's search_path, "reserved for billing") is configured, not empty: the swap would take them.
# A security label counts only when template1 and the maintenance database have no label of its provider with the
# same text: with sepgsql every database is labelled at CREATE DATABASE (from its template), which is no DBA's work,
# and counting that refused every existing target there.
DATABASE_LEVEL_CONTENTS = (
    ('database-level settings (ALTER DATABASE/ROLE ... SET)',
     'SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid'),
    ('database comment or security labels',
     "SELECT (SELECT count(*) FROM pg_shdescription c WHERE c.objoid = d.oid AND c.classoid = 'pg_database'::regclass)"
     " + (SELECT count(*) FROM pg_shseclabel l WHERE l.objoid = d.oid AND l.classoid = 'pg_database'::regclass "
     "AND NOT EXISTS (SELECT 1 FROM pg_shseclabel r JOIN pg_database t ON t.oid = r.objoid WHERE r.classoid = "
     "'pg_database'::regclass AND t.datname IN ('template1', current_database()) AND r.provider = l.provider "
     "AND r.label = l.label))"),
)


def inspect_target(engine: PostgresEngine, name: str, session: Optional[PsqlSession] = None) -> Dict[str, Any]:
    # one query in the maintenance database (the lock's session: no login of its own)
    rows = _ask(engine, 'SELECT d.datistemplate::text, d.datallowconn::text, %s, %s FROM pg_database d '  # nosec B608 # pg_quote, constants
                        'WHERE d.datname = %s' % (PUBLIC_SCHEMA_STATE, ', '.join(
                            '(%s)' % sql for _kind, sql in DATABASE_LEVEL_CONTENTS), quote_literal(name)), session)
    if not rows or not rows[0]:
        return {'exists': False, 'objects': 0, 'contents': {}}
    template, closed = rows[0][0] == 'true', rows[0][1] == 'false'
    if closed:
        # ALLOW_CONNECTIONS false (a DBA stopping the applications before a restore): nothing can connect to look
        # inside. What it holds is unknown, so it counts as not empty (check_target refuses it without replace).
        return {'exists': True, 'objects': None, 'contents': {}, 'template': template, 'closed': True}
    reference = rows[0][2] if len(rows[0]) > 2 else None
    contents = target_contents(engine, name, reference)
    contents.update({kind: int(count) for (kind, _sql), count in zip(DATABASE_LEVEL_CONTENTS, rows[0][3:])
                     if int(count)})
    return {'exists': True, 'objects': sum(contents.values()), 'contents': contents, 'template': template}


def closed_target_warnings(state: Dict[str, Any], target: str, where: str) -> List[str]:
    """The warning of a restore over a target that did not accept connections (``inspect_target``'s ``closed``): the
    restored database does, as the backed-up one did (a database that refuses connections cannot be dumped)."""
    if not state.get('closed'):
        return []
    return ['Target database %s on %s did not accept connections (ALLOW_CONNECTIONS false); the restored database that '
            'replaced it does, as the backed-up one did. Close it again (ALTER DATABASE ... ALLOW_CONNECTIONS false) '
            'if the applications must still be kept out.' % (target, where)]


def _target(request: RestoreRequest) -> str:
    if not request.database:
        raise OpsReadyError('database (the target) is required for a logical PostgreSQL restore.')
    # refused before anything is created: the server would cut a longer name to 63 bytes
    return check_name(request.database, 'target database name')


def check_subscriptions(engine: PostgresEngine, target: str, session: Optional[PsqlSession] = None) -> None:
    """The swap ends with DROP DATABASE of the old target, which PostgreSQL refuses while the database has logical
    replication subscriptions (even WITH (FORCE)): the restored copy would be in place, the old database left
    aside under a temporary name and the run failed. Whether to drop a subscription (and its slot on the
    publisher) is the operator's decision, so such a target is refused before anything is created."""
    rows = _ask(engine, 'SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid '  # nosec B608
                        'WHERE d.datname = %s ORDER BY 1' % quote_literal(target), session)
    names = [r[0] for r in rows if r]
    if names:
        raise OpsReadyError('Target database %s on %s has logical replication subscriptions (%s), which DROP '
                            'DATABASE cannot remove, so it cannot be replaced. Drop them first in %s (for each: ALTER '
                            'SUBSCRIPTION ... DISABLE; ALTER SUBSCRIPTION ... SET (slot_name = NONE) unless its slot '
                            'on the publisher must go too; DROP SUBSCRIPTION ...), or restore to another database '
                            'name. Nothing was changed.' % (target, engine.conn.where(5432), ', '.join(names), target),
                            target=target)


def check_target(engine: PostgresEngine, request: RestoreRequest,
                 session: Optional[PsqlSession] = None) -> Dict[str, Any]:
    target = _target(request)
    state = inspect_target(engine, target, session)
    if state['exists'] and target == MAINTENANCE_DATABASE:
        # The swap closes, renames and drops the old target from the maintenance database, where the run's own
        # sessions are: PostgreSQL refuses that for the current database, after the whole load. Said up front.
        raise OpsReadyError('Target database %s on %s is the maintenance database the restore works from (its '
                            'sessions, the lock, CREATE/RENAME/DROP DATABASE run there), so the restored copy cannot '
                            'be swapped in under that name. Restore under another name (database: %s_restored) and '
                            'move what you need from there. Nothing was changed.'
                            % (target, engine.conn.where(5432), target), target=target)
    if state['exists']:
        check_subscriptions(engine, target, session)
    if state.get('closed') and not request.replace:
        raise OpsReadyError('Target database %s on %s exists and does not accept connections (ALLOW_CONNECTIONS '
                            'false), so what it holds cannot be inspected: set replace=true to swap the restored copy '
                            'in its place (it will accept connections, as the backed-up database did), or restore to '
                            'another database name. Nothing was changed.' % (request.database, engine.conn.where(5432)),
                            target=request.database)
    if state['exists'] and state['objects'] and not request.replace:
        raise OpsReadyError('Target database %s on %s exists and is not empty (%s): set replace=true to swap the '
                            'restored copy in its place, or restore to another database name.'
                            % (request.database, engine.conn.where(5432),
                               ', '.join('%d %s' % (n, kind) for kind, n in state['contents'].items())),
                            target=request.database)
    return state


def existing_roles(engine: PostgresEngine, session: Optional[PsqlSession] = None) -> List[str]:
    return [r[0] for r in _ask(engine, 'SELECT rolname FROM pg_roles', session)]


def check_roles(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest,
                session: Optional[PsqlSession] = None) -> List[str]:
    """Refuse, before anything is created, a restore whose backup refers to roles the server lacks.

    pg_restore would stop at the first of them (``role "app_owner" does not exist``) after loading part of
    the dump; naming them all up front tells the operator what to create. Returns the roles present.
    """
    props = manifest.data.get('database_properties') or {}
    present = existing_roles(engine, session)
    needed = referenced_roles(props, request.no_owner)
    missing = [role for role in sorted(needed) if role not in present]
    if not missing:
        return present
    detail = '; '.join('%s (%s)' % (role, ', '.join(needed[role])) for role in missing)
    if request.no_owner:
        hint = ('no_owner=true skips owners and grants, but row-level security policies name their roles. Create '
                'these roles (or restore the @globals backup with source_database: "@globals") first.')
    else:
        hint = ('Restore the roles first (db_restore with source_database: "@globals" creates the missing ones and '
                'leaves existing roles alone), create them by hand, or set no_owner=true to restore without '
                'owners and grants (the restored objects then belong to the login user).')
    raise OpsReadyError('Backup %s refers to roles that do not exist on %s: %s. %s Nothing was restored.'
                        % (manifest.id, engine.conn.where(5432), detail, hint), missing_roles=missing)


def check_locales(engine: PostgresEngine, manifest: Manifest) -> None:
    """The locales the database's settings name (``ALTER DATABASE/ROLE ... SET lc_monetary`` ...) must exist on the
    target server: the load uses some of them and ``ALTER DATABASE ... SET`` refuses an unknown one, after the whole
    load. Tried here first (``set_config`` in a transaction of its own, in a psql of its own: a refusal must not end
    the run's session); anything but an invalid value is left to the steps that would meet it."""
    wanted = locale_settings(manifest.data.get('database_properties') or {})
    if not wanted:
        return
    for name, value in wanted:
        exc = _locale_refused(engine, name, value)
        if exc is not None:
            raise OpsReadyError('Backup %s was taken of a database that sets %s to %s, a locale %s does not have '
                                '(%s). Install it on the server (locale-gen or localedef, then restart PostgreSQL) and '
                                'run again. Nothing was restored.'
                                % (manifest.id, name, value, engine.conn.where(5432), _server_error(exc)),
                                setting=name, locale=value)


def _locale_refused(engine: PostgresEngine, setting: str, value: str) -> Optional[ToolError]:
    """The server's refusal of locale ``value`` for ``setting`` (``set_config`` in a transaction of its own, in a psql
    of its own: a refusal must not end the run's session), or None when it takes it (or fails otherwise: left to
    the steps that would meet it)."""
    try:
        engine.client.query('SELECT set_config(%s, %s, true)' % (quote_literal(setting), quote_literal(value)),
                            verbose=True)
    except ToolError as exc:
        # 22023 invalid_parameter_value, in the server's any language (the English text as well)
        if sqlstate(exc.stderr) == INVALID_PARAMETER_VALUE or \
                'invalid value for parameter' in (exc.stderr or exc.message):
            return exc
    return None


def _locale_missing(engine: PostgresEngine, props: Dict[str, Any]) -> bool:
    """Whether the backed-up database's LC_COLLATE or LC_CTYPE is a locale this server lacks (``_locale_refused``:
    told by SQLSTATE), for a CREATE DATABASE refused in words of a language we do not read."""
    return any(props.get(key) and _locale_refused(engine, 'lc_monetary', str(props[key])) is not None
               for key in ('collate', 'ctype'))


def check_database_locale(engine: PostgresEngine, manifest: Manifest) -> None:
    """Check mode's foresight of ``create_database``'s refusal: the backed-up database's LC_COLLATE and LC_CTYPE
    (libc locales) must exist on this server, or CREATE DATABASE fails (the real run then stops, nothing created).
    The server checks a locale's existence the same way for every category (setlocale), so ``lc_monetary`` (which
    any role may set) tries it without writing anything. The encoding travels with the locale name (the source
    server had the pair), and the real run's CREATE DATABASE stays the final word."""
    props = manifest.data.get('database_properties') or {}
    options = create_options(props)
    for key in ('collate', 'ctype'):
        value = props.get(key)
        if not value:
            continue
        exc = _locale_refused(engine, 'lc_monetary', str(value))
        if exc is not None:
            raise OpsReadyError('Cannot create a database on %s with the encoding and locale of the backed-up one '
                                '(%s): locale %s (LC_%s) does not exist on the server (%s). Install that locale on the '
                                'server (locale-gen, then restart PostgreSQL) and run again. Nothing was restored.'
                                % (engine.conn.where(5432), options, value, key.upper(), _server_error(exc)),
                                locale=value)


def check_locale_provider(engine: PostgresEngine, manifest: Manifest, session: Optional[PsqlSession] = None) -> None:
    """The backed-up database's locale provider must be one this server has, or its CREATE DATABASE fails (``ICU is
    not supported in this build``, ``unrecognized locale provider: builtin``) and the run stops, nothing created,
    with a hint about installing a libc locale that does not apply; check mode foresaw nothing. ICU: a server built
    without it has no ICU collation (initdb imports them only with ICU, CREATE COLLATION refuses the provider), so
    none in the maintenance database is taken as none in the build; builtin: PostgreSQL 17 on. One query, only for a
    database of either provider. Run by check mode and by the real run (before anything is created)."""
    props = manifest.data.get('database_properties') or {}
    provider = props.get('locale_provider') or {}
    kind = provider.get('datlocprovider')
    if kind not in ('i', 'b'):
        return
    rows = _ask(engine, "SELECT current_setting('server_version_num'), EXISTS (SELECT 1 FROM pg_catalog.pg_collation "
                        "WHERE collprovider = 'i')::text", session)
    version, icu = (rows[0] + ['', ''])[:2] if rows else ('', '')
    locale = provider.get('datlocale') or provider.get('daticulocale') or ''
    where = engine.conn.where(5432)
    if kind == 'i' and icu == 'false':
        raise OpsReadyError('Backup %s is of a database with the ICU locale provider (ICU locale %s), and %s has no '
                            'ICU support (it was built without ICU: it has no ICU collation). Restore it onto a '
                            'server built with ICU (--with-icu; the PGDG and distribution packages are). Nothing was '
                            'restored.' % (manifest.id, locale or '-', where), locale_provider='icu')
    if kind == 'b' and version.isdigit() and int(version) < 170000:
        raise OpsReadyError('Backup %s is of a database with the builtin locale provider (locale %s), which %s does '
                            'not have (PostgreSQL 17 and later have it; this server is %s). Restore it onto a '
                            'PostgreSQL 17 or later server. Nothing was restored.'
                            % (manifest.id, locale or '-', where, version), locale_provider='builtin')


def check_object_tablespaces(engine: PostgresEngine, manifest: Manifest,
                             session: Optional[PsqlSession] = None) -> List[str]:
    """The tablespaces the backed-up database's tables and indexes name (``object_tablespaces``) that this server
    lacks: pg_dump writes ``SET default_tablespace`` before each of them, which fails the load after everything
    before it was loaded. A custom or directory dump is then loaded with ``--no-tablespaces`` (every object in the
    database's tablespace), and the notes returned say which objects moved; a plain dump cannot be (its SET
    statements are its text): refused before anything is created. [] when nothing is missing."""
    wanted = (manifest.data.get('database_properties') or {}).get('object_tablespaces') or {}
    if not wanted:
        return []
    existing = {r[0] for r in _ask(engine, 'SELECT spcname FROM pg_tablespace', session) if r}
    missing = sorted(ts for ts in wanted if ts not in existing)
    if not missing:
        return []
    named = '; '.join('%s (%d: %s%s)' % (ts, int(wanted[ts].get('count') or 0), ', '.join(
        wanted[ts].get('relations') or []), ', ...' if int(wanted[ts].get('count') or 0) > len(
        wanted[ts].get('relations') or []) else '') for ts in missing)
    where = engine.conn.where(5432)
    if (manifest.data.get('format') or 'custom') == 'plain':
        raise OpsReadyError('Backup %s holds tables or indexes in tablespaces %s does not have: %s. Restore @globals '
                            'first (it creates them), or create them (CREATE TABLESPACE ... LOCATION ...), and run '
                            'again; a custom or directory backup would be restored into the default tablespace. '
                            'Nothing was restored.' % (manifest.id, where, named), tablespaces=missing)
    return ['TABLESPACE of tables and indexes (%s does not have %s: the backup was restored without tablespaces, '
            'every object in the database\'s own; restore @globals first, or create them, then ALTER TABLE/INDEX ... '
            'SET TABLESPACE, or restore again) - %s' % (where, ', '.join(missing), named)]


def _owned_extensions(props: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The recorded extensions whose owner a restore may have to give back: not plpgsql, which initdb makes in every
    database (a restore of a database without extensions of its own starts no psql for them)."""
    return [e for e in props.get('extensions') or [] if e.get('owner') and e.get('name') not in BUILT_IN_EXTENSIONS]


def _extension_members(engine: PostgresEngine, database: str) -> List[Dict[str, Any]]:
    rows = engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + EXTENSION_MEMBERS_ALL_SQL + ';\n',
                                      database=database)
    return json.loads('\t'.join(rows[0])) if rows and rows[0] else []


def _set_members_again(engine: PostgresEngine, database: str, fixes: List[Tuple[List[str], str]]) -> List[str]:
    """Run each member's statements (``extension_member_statements``) in ``database``, all in one transaction, or
    when one fails (a role the target lacks, LEAKPROOF without superuser) member by member: what was set back."""
    def run(statements: List[str]) -> bool:
        try:
            engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + 'BEGIN;\n'
                                       + ''.join('%s;\n' % s for s in statements) + 'COMMIT;\n', database=database)
        except ToolError:
            return False   # the session ended with the failed transaction: nothing of it stays
        return True
    if not fixes:
        return []
    if run([s for statements, _named in fixes for s in statements]):
        return [named for _statements, named in fixes]
    return [named for statements, named in fixes if run(statements)]


def extension_member_warnings(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest,
                              database: str) -> List[str]:
    """What a user changed on extensions after CREATE EXTENSION (recorded at backup time) and pg_dump does not carry
    (it writes CREATE EXTENSION and the members' privileges only), in the restored copy ``database``: the member
    functions' attributes (COST, volatility, STRICT, PARALLEL, LEAKPROOF, SECURITY DEFINER, ROWS) are set again
    here and named, and so are a member's (function, type, relation) owner, settings, comment and column comments;
    what could not be set, and an extension's owner, are named. [] when nothing was lost (or the backup predates the
    record)."""
    props = manifest.data.get('database_properties') or {}
    warnings: List[str] = []
    owners_recorded = _owned_extensions(props)
    if owners_recorded and not request.no_owner:
        rows = engine.query('SELECT extname, pg_catalog.pg_get_userbyid(extowner) FROM pg_catalog.pg_extension',
                            database=database)
        lost_owners = extension_owner_losses(props, {r[0]: r[1] for r in rows if len(r) == 2}, request.no_owner)
        if lost_owners:
            warnings.append('Extensions owned by a role other than the restoring one came back owned by it (pg_dump '
                            'writes no extension owner and PostgreSQL has no ALTER EXTENSION ... OWNER TO): %s. '
                            'To give one back, drop it and create it again as its owner (SET ROLE owner; CREATE '
                            'EXTENSION ..., a trusted extension), then grant again what was granted on its '
                            'members.' % '; '.join(lost_owners))
    recorded = props.get('extension_members') or []
    builtin: List[Tuple[List[str], str]] = []
    if any(e.get('name') in BUILT_IN_EXTENSIONS and e.get('comment_changed') is True
           for e in props.get('extensions') or []):
        # as JSON, in UTF-8: a comment may hold any text (a newline, a tab), and NULL is not ''
        rows = engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + EXTENSION_COMMENTS_SQL + ';\n',
                                          database=database)
        builtin = builtin_extension_comments(props, json.loads('\t'.join(rows[0])) if rows and rows[0] else {})
    if not recorded and not builtin:
        return warnings
    restored = _extension_members(engine, database) if recorded else []
    fixes = extension_member_statements(recorded, restored, request.no_owner) + builtin
    done = _set_members_again(engine, database, fixes)
    if done:
        warnings.append('Extension members changed after CREATE EXTENSION (pg_dump does not carry them: the copy had '
                        'the extension script\'s) were set again after the load: %s.' % '; '.join(done))
    if fixes and recorded:
        restored = _extension_members(engine, database)
    lost = extension_member_losses(recorded, restored, request.no_owner) + [
        named for _statements, named in builtin if named not in done]
    if lost:
        warnings.append('Extension members changed after CREATE EXTENSION did not come back (pg_dump carries only '
                        'the extension and its members\' privileges): %s. Set them again in the restored database '
                        '(ALTER ROUTINE/TYPE ... OWNER TO / SET / attributes, COMMENT ON ...).' % '; '.join(lost))
    return warnings


def extension_foresight(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest) -> List[str]:
    """Check mode's foresight of ``extension_member_warnings`` (the real run's, after its load), read-only: the
    extensions whose owner would be lost (the run creates one as its owner only at a version this server installs,
    in a schema the new database has, and when the server lets the owner create it: a superuser, or a trusted
    extension; else the dump's CREATE EXTENSION makes it as the restoring role), and the extension members a user
    changed after CREATE EXTENSION that the run would set again: an owner other than the one the copy's member
    will have, settings, a built-in extension's comment. A member's comment and attributes are compared after the
    load with what this server's extension script gives them, which is not known before it: only said."""
    props = manifest.data.get('database_properties') or {}
    warnings: List[str] = []
    if not (_owned_extensions(props) or props.get('extension_members') or any(
            e.get('comment_changed') is True for e in props.get('extensions') or [])):
        return warnings   # nothing to foresee: no query
    login, login_super, bootstrap = engine.query(
        'SELECT current_user, (SELECT rolsuper::text FROM pg_catalog.pg_roles WHERE rolname = current_user), '
        '(SELECT rolname FROM pg_catalog.pg_roles WHERE oid = 10)')[0][:3]
    given = _owners_given_back(engine, props, login, login_super == 'true') if not request.no_owner else {}
    if not request.no_owner:
        available = available_extensions(engine, extension_names(props))
        lost = ['%s (owned by %s, would be by %s)' % (e['name'], e['owner'], login) for e in _owned_extensions(props)
                if e['owner'] != login and e['name'] not in given and e['name'] in available]
        if lost:
            warnings.append('Extensions owned by a role other than the restoring one would come back owned by it '
                            '(pg_dump writes no extension owner and PostgreSQL has no ALTER EXTENSION ... OWNER TO): '
                            '%s. To give one back after the restore, drop it and create it again as its owner (SET '
                            'ROLE owner; CREATE EXTENSION ..., a trusted extension), then grant again what was granted '
                            'on its members.' % '; '.join(lost))
    # The copy's members belong to whoever runs the script: the role creating the extension (its owner given back,
    # or the restoring role), or the bootstrap superuser when that role is not a superuser (a trusted extension).
    owners = {e.get('name'): e.get('owner') for e in props.get('extensions') or []}
    script_of = {name: owners.get(name) if superuser else bootstrap for name, superuser in given.items()}
    creator = login if login_super == 'true' else bootstrap
    # a backup that predates the member's ``extension``: the bootstrap superuser's members taken as such an
    # extension's when one is given back to a non-superuser
    unknown = {login} | ({bootstrap} if any(not superuser for superuser in given.values()) else set())
    again = []
    for member in props.get('extension_members') or []:
        owner = member.get('owner')
        ext = member.get('extension')
        script = {script_of.get(str(ext), creator)} if ext else unknown
        what = (['owner %s' % owner] if owner and owner not in script and not request.no_owner else []) + (
            ['SET %s' % member['config']] if member.get('config') else [])
        if what:
            again.append('%s (%s)' % (member.get('object'), ', '.join(what)))
    again += ['extension %s (%s)' % (e.get('name'), 'comment' if e.get('comment') is not None else 'comment removed')
              for e in props.get('extensions') or []
              if e.get('name') in BUILT_IN_EXTENSIONS and e.get('comment_changed') is True]
    if again:
        warnings.append('Extension members changed after CREATE EXTENSION (pg_dump does not carry them: the copy has '
                        'the extension script\'s) would be set again after the load: %s. Their comments and '
                        'attributes are compared after the load too (with what this server\'s extension script gives '
                        'them) and set again where they differ.' % '; '.join(again))
    return warnings


def _owners_given_back(engine: PostgresEngine, props: Dict[str, Any], login: str, login_super: bool) -> Dict[str, bool]:
    """The recorded extensions ``create_extensions_as_owners`` would create as their owner (name -> whether that owner
    is a superuser), as far as the catalog tells before the run: those ``extension_owner_statements`` tries, whose
    owner exists and may create them (a superuser, or a version the server marks trusted), and which the restoring
    role may act as (a superuser, or a member of the owner)."""
    owned = _owned_extensions(props)
    if not owned:
        return {}
    available = available_extensions(engine, extension_names(props))
    statements = extension_statements(props, available)[0]
    made = [str(e.get('name')) for e in props.get('extensions') or []
            if any(s.startswith('CREATE EXTENSION %s ' % quote_ident(str(e.get('name')))) for s in statements)]
    # the names only (the database name is only quoted into the statements, which are not run here)
    tried = {name for name, _statements in extension_owner_statements(props, available, 'x', login, made)}
    if not tried:
        return {}
    values = ', '.join('(%s, %s, %s)' % (quote_literal(str(e['name'])), quote_literal(str(e['owner'])),
                                         quote_literal(str(e.get('version')))) for e in owned if e['name'] in tried)
    rows = engine.query(
        'SELECT o.name, r.rolsuper::text, coalesce(v.trusted, false)::text, pg_catalog.pg_has_role(current_user, '  # nosec B608 # pg_quote
        "r.oid, 'MEMBER')::text FROM (VALUES %s) o(name, owner, version) JOIN pg_catalog.pg_roles r ON "
        'r.rolname = o.owner LEFT JOIN pg_catalog.pg_available_extension_versions v ON v.name = o.name AND '
        'v.version = o.version' % values)
    return {r[0]: r[1] == 'true' for r in rows if len(r) == 4 and (r[1] == 'true' or r[2] == 'true')
            and (login_super or r[3] == 'true')}


def check_no_owner(request: RestoreRequest, manifest: Manifest) -> None:
    """no_owner=true with a plain (SQL script) dump: psql runs the script as it is, with its ALTER ... OWNER TO and
    GRANTs (pg_restore's --no-owner --no-privileges work on the archive's table of contents, which a script has
    not). Restoring would bring the owners and grants back anyway (or fail half-way on a server without the roles),
    so it is refused before anything is created."""
    if request.no_owner and (manifest.data.get('format') or 'custom') == 'plain':
        raise OpsReadyError('no_owner=true cannot be applied to %s: it is a plain (SQL script) dump, whose owners and '
                            'grants psql would restore anyway. Restore it without no_owner (on a server that has '
                            'the roles: restore @globals first), or take a custom or directory backup '
                            '(db_backup format=custom). Nothing was restored.' % manifest.id, artifact=manifest.id)


def check(engine: PostgresEngine, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
    """Check mode: the refusals a real run would hit, and what it would do, without writing."""
    engine.ping()
    if chain and chain[0].database == GLOBALS:
        plan = globals_plan(engine, _read_globals(engine, chain[0]))
        report = plan['report']
        done = dict(report, server=engine.server_label(), changes=_globals_change(report))
        # what the real run names of the privileges on parameters it leaves out (read-only: has_parameter_privilege)
        warnings = parameter_warnings(engine, plan['existing_parameter_grants'])
        if warnings:
            done['warnings'] = warnings
        return done
    if chain:
        check_no_owner(request, chain[0])
    quiet_target(engine, _target(request))   # before check_target's login into the target, as the real run
    state = check_target(engine, request)
    result: Dict[str, Any] = {'database': request.database, 'server': engine.server_label()}
    closed = closed_target_warnings(state, request.database or '', engine.conn.where(5432))
    if closed:
        result['warnings'] = closed
    if chain:
        roles = check_roles(engine, request, chain[0])
        check_locales(engine, chain[0])
        check_locale_provider(engine, chain[0])
        check_database_locale(engine, chain[0])
        # what the real run refuses (a plain dump's objects in a tablespace this server lacks) and warns of: what it
        # leaves out, read-only here (the run's create_database and apply_properties find the same)
        moved = check_object_tablespaces(engine, chain[0])
        props = chain[0].data.get('database_properties') or {}
        left_out = tablespace_option(engine, props)[1] + extension_statements(
            props, available_extensions(engine, extension_names(props)))[1] + moved + _plain_text_search_note(chain[0])
        warnings = foreign.reach_foreseen(props, request.foreign_servers) + setting_role_warnings(
            props, roles, engine.conn.where(5432)) + unknown_privilege_warnings(
            props, request.no_owner) + no_owner_grant_warnings(
            props, request.no_owner, _target(request)) + left_out_warnings(left_out) + extension_foresight(
            engine, request, chain[0])
        if warnings:
            result['warnings'] = closed + warnings
    return result


def left_out_warnings(notes: List[str]) -> List[str]:
    """What a restore left out of the database as backed up (``database_properties.skipped``), as warnings: a user
    reading the run's warnings (a drill report, the play's output) must learn of it too."""
    return ['Not restored as backed up: %s' % note for note in notes]


# What a run leaves under the target's lock (the temporary copy while it loads, the old target between the swap
# and its drop): the COMMENT set on it says so, with the target's exact name (long names share a truncated stem).
COPY_MARKERS = CopyMarkers('the previous contents', 'renamed', quote_ident)
MARKERS = COPY_MARKERS.texts


def copy_marker(target: str, what: str = 'restore') -> str:
    return COPY_MARKERS.marker(target, what)


def _mark(name: str, target: str, what: str = 'restore') -> str:
    return 'COMMENT ON DATABASE %s IS %s' % (quote_ident(name), quote_literal(copy_marker(target, what)))


def stale_copies(engine: PostgresEngine, target: str, session: Optional[PsqlSession] = None) -> List[str]:
    """The databases a killed run into ``target`` left: named as ``temporary_name(target, ...)`` names them AND
    bearing the marker that names ``target``. Only call under ``target_lock`` (no run into ``target`` is live)."""
    markers = ', '.join(quote_literal(text) for text in COPY_MARKERS.of(target))
    # Names come hex-encoded: a database name may hold a newline, which would split psql's rows.
    rows = _ask(engine, "SELECT encode(convert_to(d.datname::text, 'UTF8'), 'hex') FROM pg_database d "  # nosec B608 # pg_quote literals
                "WHERE shobj_description(d.oid, 'pg_database') IN (%s) ORDER BY 1" % markers, session)
    names = [bytes.fromhex(r[0]).decode('utf-8') for r in rows if r and r[0]]
    # the stem is the target cut to fit 63 bytes with each suffix
    shapes = [copy_shape(stem_of(temporary_name(target, what), what), what) for what in MARKERS]
    return [n for n in names if any(shape.match(n) for shape in shapes)]


def drop_stale(engine: PostgresEngine, target: str, session: Optional[PsqlSession] = None) -> Dict[str, Any]:
    """Drop what ``stale_copies`` finds: ``{'dropped_stale': [...], 'warnings': [...]}`` (a copy that could not be
    dropped is a warning naming it; the run goes on)."""
    def drop(name: str) -> Optional[str]:
        if _template_flag(engine, name, session):   # an old target that was a template: DROP refuses a template
            with contextlib.suppress(ToolError):
                _ask(engine, 'ALTER DATABASE %s IS_TEMPLATE false' % quote_ident(name), session)
        return discard_copy(engine, name)

    found = [(name, 'restore') for name in stale_copies(engine, target, session)]   # every kind is dropped
    return drop_stale_copies(found, target, drop, lambda name: 'DROP DATABASE %s WITH (FORCE)' % quote_ident(name))


def drop_database(engine: PostgresEngine, name: str, session: Optional[PsqlSession] = None) -> None:
    _ask(engine, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % quote_ident(name), session)


SUBSCRIPTIONS_IN = ('SELECT s.subname, s.subenabled::text FROM pg_subscription s JOIN pg_database d '
                    'ON d.oid = s.subdbid WHERE d.datname = %s ORDER BY 1')


def drop_restored_subscriptions(engine: PostgresEngine, name: str, session: Optional[PsqlSession] = None,
                                only_disabled: bool = False) -> List[str]:
    """Drop the logical replication subscriptions of database ``name`` (DROP DATABASE refuses a database that has
    any), leaving their replication slots on the publisher alone (``slot_name = NONE``): a restored subscription
    (pg_dump writes it disabled, ``connect = false``) carries the slot name of the backed-up database's
    subscription, whose slot is that database's, not the copy's. ``only_disabled``: an enabled subscription (one
    someone turned on: its slot may be its own) is not touched and stops this (the caller refuses). Returns
    the names dropped."""
    rows = [r for r in _ask(engine, SUBSCRIPTIONS_IN % quote_literal(name), session) if r]  # nosec B608 # pg_quote
    enabled = [r[0] for r in rows if r[1] == 'true']
    if only_disabled and enabled:
        raise OpsReadyError('Database %s on %s has enabled logical replication subscriptions (%s), which DROP '
                            'DATABASE cannot remove, and whose replication slots on the publisher may be theirs. '
                            'Drop them first in %s (ALTER SUBSCRIPTION ... DISABLE; ALTER SUBSCRIPTION ... SET '
                            '(slot_name = NONE) unless its slot on the publisher must go too; DROP SUBSCRIPTION '
                            '...). Nothing was changed.' % (name, engine.conn.where(5432), ', '.join(enabled), name),
                            target=name)
    names = [r[0] for r in rows]
    if names:
        statements = []
        for sub in names:
            q = quote_ident(sub)
            statements += ['ALTER SUBSCRIPTION %s DISABLE' % q, 'ALTER SUBSCRIPTION %s SET (slot_name = NONE)' % q,
                           'DROP SUBSCRIPTION %s' % q]
        # ALTER/DROP SUBSCRIPTION work only in the subscription's own database (DROP SUBSCRIPTION outside a
        # transaction block: one statement at a time, as psql -c runs a string with several).
        for sql in statements:
            engine.query(sql, database=name)
    return names


def discard_copy(engine: PostgresEngine, name: str) -> Optional[str]:
    """Drop the run's temporary database after a failure; never raises (the failure is what the run reports):
    returns why it could not be dropped. Its restored subscriptions (the load had got that far) are dropped first:
    DROP DATABASE refuses a database that has any."""
    try:
        try:
            drop_database(engine, name)
        except ToolError as exc:
            # refused for its subscriptions ("being used by logical replication subscription", in the server's
            # language): asked of the catalog, not read from the message
            if 'logical replication subscription' not in (exc.stderr or exc.message) and \
                    not engine.query(SUBSCRIPTIONS_IN % quote_literal(name)):
                raise
            engine.query('ALTER DATABASE %s ALLOW_CONNECTIONS true' % quote_ident(name))
            drop_restored_subscriptions(engine, name)
            drop_database(engine, name)
    except Exception as exc:  # reported with the run's own failure
        return str(getattr(exc, 'message', None) or exc)
    return None


def streams_checksum(request: RestoreRequest, manifest: Manifest) -> bool:
    """Whether ``_load`` reads this artifact itself (stdin stream or decompressed copy), so it can hash it in
    that same read. Not when pg_restore opens the stored file (directory format, an uncompressed custom dump
    with jobs > 1): those are verified up front."""
    fmt = manifest.data.get('format') or 'custom'
    if manifest.kind != 'full' or manifest.database == GLOBALS or manifest.members or fmt == 'directory':
        return False
    if not manifest.data.get('sha256'):
        return False
    return not (fmt == 'custom' and (max(1, request.jobs) > 1 or two_passes(manifest))
                and manifest.data['compression'] == 'none' and not is_encrypted(manifest))


def two_passes(manifest: Manifest) -> bool:
    """A custom or directory dump of a database whose default text search configuration is its own: loaded in two
    passes (``own_text_search_option``), each reading the archive, which must then be a file (a stream is read
    once)."""
    fmt = manifest.data.get('format') or 'custom'
    return fmt in ('custom', 'directory') and bool(own_text_search_option(
        manifest.data.get('database_properties') or {}))


def _copy_error(manifest: Manifest, directory: str, reason: Any) -> OpsReadyError:
    return OpsReadyError('Cannot decompress %s into %s for pg_restore -j: %s. Point tmpdir at a file system '
                         'with room for the uncompressed dump, or use jobs=1 (streams, needs no space).'
                         % (manifest.id, directory, reason), path=manifest.path)


class _Cancelled(Exception):
    """The copy was no longer wanted (a check refused the restore while it ran): stop reading, kill zstd."""


class _Cancellable:
    """A source whose ``read`` stops the copy (``_Cancelled``) once ``cancel`` is set: a copy started before the
    lock and the target's inspection ends within one chunk when they refuse, instead of running to its end."""

    def __init__(self, source: Any, cancel: Optional[threading.Event]) -> None:
        self._source = source
        self._cancel = cancel

    def read(self, size: int = -1) -> bytes:
        if self._cancel is not None and self._cancel.is_set():
            raise _Cancelled()
        return self._source.read(size)

    def readable(self) -> bool:
        return True


def _zstd_cli_copy(manifest: Manifest, out: int, runner: Any, zstd_cli: str, verify: bool,
                   cancel: Optional[threading.Event] = None) -> None:
    """``zstd -d -c > out`` fed from here: the artifact is read once, hashed in this process while zstd
    decompresses in its own (the two overlap on two cores), and the checksum is compared before the copy is
    used. A mismatch wins over zstd's own complaint: a corrupt artifact is reported as corrupt. ``out`` is the
    copy's descriptor (created 0600 here: ``zstd -o`` would create it with the umask's mode)."""
    argv = [zstd_cli, '-q', '-d', '-c']
    proc = runner.popen(argv, stdin=subprocess.PIPE, stdout=out)
    if proc.stdin is None:
        raise OpsReadyError('Internal error: zstd -d was started without a stdin pipe.')
    grow_pipe(proc.stdin)  # 1 MiB writes into a 64 KiB pipe would wake zstd 16 times per chunk
    source: Any = (ChecksummedFile(manifest.path, manifest.data['sha256'], manifest.data.get('size')) if verify
                   else safeio.open_stored(manifest.path))
    broken = False
    try:
        with source:
            reader = _Cancellable(source, cancel)
            while True:
                data = reader.read(CHUNK)
                if not data:
                    break
                if not broken:
                    try:
                        proc.stdin.write(data)
                    except BrokenPipeError:
                        broken = True  # zstd gave up (corrupt frame, disk full): keep hashing to tell which
            if verify:
                source.finish()
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        runner.finish(proc, argv, what='zstd -d')
    except BaseException:
        kill_and_reap(proc)
        raise


def _decompressed_copy(manifest: Manifest, tmpdir: Optional[str], runner: Any = None,
                       identities: Optional[List[Any]] = None, verify: bool = False,
                       cancel: Optional[threading.Event] = None, directory: Optional[Scratch] = None) -> str:
    """The dump decompressed into a scratch file for ``pg_restore -j`` (which needs to seek). ``verify``:
    the artifact's checksum is compared in the same read; the copy is removed when it does not match.
    ``cancel`` set: the copy stops (``_Cancelled``) and is removed. ``directory``: an empty scratch directory
    made by the caller (which may read ``directory/dump`` while it grows), else a new one in ``tmpdir``. The
    copy is plaintext (decrypted, decompressed): a 0600 file in the 0700 scratch directory, whose removal, when it
    fails, is kept in ``directory.outcome`` and named in the error raised."""
    if directory is None:
        directory = Scratch('pg-restore', tmpdir, 'db_restore')
    path = directory.file(COPY_NAME)
    encrypted = is_encrypted(manifest)
    zstd_cli = shutil.which('zstd') if (manifest.data['compression'] == 'zstd' and runner is not None
                                        and not encrypted) else None
    try:
        out = os.fdopen(directory.create(COPY_NAME), 'wb')
    except OSError as exc:
        raise _scratch_error(directory, _copy_error(manifest, directory.path, exc.strerror or exc))
    if zstd_cli:
        # The zstd tool (when installed) decompresses 2-4x faster than the Python binding on a busy host.
        try:
            with out:
                _zstd_cli_copy(manifest, out.fileno(), runner, zstd_cli, verify, cancel)
        except ToolError as exc:
            raise _scratch_error(directory, _copy_error(manifest, directory.path, exc.message))
        except OSError as exc:
            raise _scratch_error(directory, _copy_error(manifest, directory.path, exc.strerror or exc))
        except BaseException as exc:
            raise _scratch_error(directory, exc)
        return path
    try:
        with out:
            try:
                if encrypted or manifest.data['compression'] != 'zstd':
                    # Decrypted and decompressed in one pass, authenticated to the last chunk.
                    with open_artifact(manifest, identities, verify=verify) as source:
                        shutil.copyfileobj(_Cancellable(source, cancel), out, CHUNK)
                else:
                    # copy_stream decompresses in C without a Python-level loop (about 2x the read loop).
                    import zstandard
                    raw: Any = (ChecksummedFile(manifest.path, manifest.data['sha256'], manifest.data.get('size'))
                                if verify else safeio.open_stored(manifest.path))
                    with raw:
                        reader: Any = _Cancellable(raw, cancel)   # copy_stream needs only read()
                        _read, written = zstandard.ZstdDecompressor().copy_stream(
                            reader, out, read_size=CHUNK, write_size=4 * CHUNK)
                        if verify:
                            raw.finish()
                    expected = manifest.data.get('raw_size')
                    if expected is not None and written != expected:
                        # several frames (copy_stream may stop after the first): the general reader.
                        out.seek(0)
                        out.truncate()
                        with open_decompressed(manifest.path, 'zstd') as source:
                            shutil.copyfileobj(source, out, CHUNK)
            except (OSError, OpsReadyError, _Cancelled):
                raise
            except Exception as exc:
                raise IntegrityError('Artifact %s cannot be decompressed (%s): it is corrupt.'
                                     % (manifest.path, exc), path=manifest.path)
    except OSError as exc:
        raise _scratch_error(directory, _copy_error(manifest, directory.path, exc.strerror or exc))
    except BaseException as exc:
        raise _scratch_error(directory, exc)
    return path


def _scratch_error(directory: Scratch, exc: BaseException) -> BaseException:
    """``exc``, once ``directory`` was removed; when it could not be, an OpsReadyError says so too (its path and
    what is left): a plaintext copy on disk is never passed over in silence."""
    outcome = directory.remove()
    if outcome['cleaned_up']:
        return exc
    return with_scratch_left(exc, outcome)


def with_scratch_left(exc: BaseException, outcome: Dict[str, Any]) -> BaseException:
    """``exc`` told with the scratch directory that stayed (``scratch_left`` in its details); a cancelled copy
    stays ``_Cancelled`` (the run is ending on another error, which ``restore`` tells)."""
    return exc if isinstance(exc, _Cancelled) else told_left(exc, outcome)


def needs_copy(request: RestoreRequest, manifest: Manifest) -> bool:
    """pg_restore -j (or two passes, ``two_passes``) of a compressed or encrypted custom dump: it needs a seekable,
    decompressed file."""
    fmt = manifest.data.get('format') or 'custom'
    compressed = manifest.data['compression'] != 'none' or is_encrypted(manifest)
    return fmt == 'custom' and (max(1, request.jobs) > 1 or two_passes(manifest)) and compressed


COPY_NAME = 'dump'
FOLLOW_POLL = 0.005   # seconds between looks at a copy that the follower has caught up with
FEED_WAIT_MS = 1      # milliseconds between looks at a full pipe that the follower waits to see half drained,
FEED_WAIT_MAX_MS = 10   # or more when the reader's pace says so (it still has half a pipe to read then)
F_GETPIPE_SZ = 1032   # fcntl.F_GETPIPE_SZ (Python 3.10+ on Linux)
# Below this (decompressed) size the decompression takes less time (~1 GB/s) than the listing and the second
# pg_restore (program starts, logins) add: the load waits for the complete copy, one pg_restore -j N.
FOLLOW_MIN_BYTES = 64 * 1024 * 1024


class _Lister:
    """What the copier lists once its copy is complete (``_Copier._list``): the sections the load will give
    ``restore_in_parallel`` (``load_sections``), with ``pg_restore`` at ``tool``; ``verbose``: the ``--list
    --verbose`` too where the listing may hold entries back (a parallel load: jobs > 1)."""

    def __init__(self, tool: str, split: bool, verbose: bool) -> None:
        self.tool = tool
        self.split = split
        self.verbose = verbose

    def sections(self, copier: '_Copier') -> List[str]:
        return load_sections(self.split, copier)


def load_sections(split: bool, copier: Optional['_Copier']) -> List[str]:
    """The sections ``restore_in_parallel`` loads from a decompressed copy: data and post-data after a schema
    pass (``two_passes``), post-data after a load that followed the decompression (one data entry), else all."""
    if split:
        return ['--section=data', '--section=post-data']
    if copier is not None and copier.data_items() == 1:
        return ['--section=post-data']
    return []


class _Copier:
    """``_decompressed_copy`` in a thread, started before anything else of the restore: the server round trips
    (the lock's session, the target's inspection, CREATE DATABASE) overlap the decompression instead of adding
    to it. The zstd process, file reads and hashing release the GIL. ``discard`` stops a copy still running
    (within one chunk) and removes it.

    ``toc_argv`` (``pg_restore --list --section=data``): a second thread reads the archive's table of contents
    from the head of the growing copy (``data_items``), so ``_load`` can tell, before the copy is complete,
    whether the dump has one data entry (its load can follow the decompression) or several (pg_restore -j
    loads them side by side from the complete copy)."""

    def __init__(self, manifest: Manifest, tmpdir: Optional[str], runner: Any, identities: Optional[List[Any]],
                 verify: bool, toc_argv: Optional[List[str]] = None, lister: Optional['_Lister'] = None) -> None:
        self.path: Optional[str] = None
        self._lister = lister
        self.listings: Optional[Tuple[List[str], str, str]] = None   # (sections, --list, --list --verbose)
        self.growing: Optional[str] = None   # the copy's path once its directory exists (set before it grows)
        self.scratch: Optional[Scratch] = None
        self.error: Optional[BaseException] = None
        self._runner = runner
        self._cancel = threading.Event()
        self._begun = threading.Event()
        self._toc: Optional[List[str]] = None
        self._remover: Optional[threading.Thread] = None
        self._thread = threading.Thread(
            target=self._run, args=(manifest, tmpdir, runner, identities, verify), name='opsready-restore-copy',
            daemon=True)
        self._toc_thread: Optional[threading.Thread] = None
        if toc_argv:   # started first: the copy's thread may ask data_items() (the lister) as soon as it is done
            self._toc_thread = threading.Thread(target=self._read_toc, args=(toc_argv,),
                                                name='opsready-restore-toc', daemon=True)
            self._toc_thread.start()
        self._thread.start()

    def _run(self, manifest: Manifest, tmpdir: Optional[str], runner: Any, identities: Optional[List[Any]],
             verify: bool) -> None:
        try:
            self.scratch = Scratch('pg-restore', tmpdir, 'db_restore')
            self.growing = self.scratch.file(COPY_NAME)
            self._begun.set()
            self.path = _decompressed_copy(manifest, tmpdir, runner, identities, verify=verify, cancel=self._cancel,
                                           directory=self.scratch)
            if self._lister is not None and not self._cancel.is_set():
                self._list(self.path)
        except BaseException as exc:  # handed to the main thread by result()
            if self.scratch is not None:
                exc = _scratch_error(self.scratch, exc)
            self.error = exc
        finally:
            self._begun.set()

    def _list(self, path: str) -> None:
        """The listings the load reads (``toc_listings``), from the complete copy whose checksum matched, while
        the main thread still creates the database (or the data loads, following the decompression): a
        ``pg_restore --list`` (and ``--list --verbose``) run before the load was ~10 ms of it, serial."""
        lister = cast(_Lister, self._lister)
        try:
            sections = lister.sections(self)
            listing, verbose = toc_listings(self._runner, lister.tool, sections, path, lister.verbose)
        except Exception:  # the load lists again and reports the failure with its own reason
            return
        self.listings = (sections, listing, verbose)

    def listed(self, sections: List[str], path: str) -> Optional[Tuple[str, str]]:
        """The copy's listings of ``sections`` when the copier made them (after ``result``), else None."""
        if self.listings is None or self.path != path or self.listings[0] != sections:
            return None
        return self.listings[1], self.listings[2]

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _read_toc(self, argv: List[str]) -> None:
        try:
            proc = self._runner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except Exception:  # no listing: _load takes the general way
            return
        try:
            listed = threading.Event()
            feeder = threading.Thread(target=_follow, args=(self, proc.stdin, listed, False),
                                      name='opsready-restore-toc-feed', daemon=True)
            feeder.start()
            out = proc.stdout.read()   # pg_restore --list reads the head, prints, exits
            listed.set()
            feeder.join()
            self._runner.finish(proc, argv, what='pg_restore --list')
            self._toc = [line for line in toc_lines(out.decode('utf-8', 'replace'))
                         if line and not line.startswith(';')]
        except Exception:  # a corrupt head: the copy reports it; _load takes the general way
            kill_and_reap(proc)

    def data_items(self) -> Optional[int]:
        """Entries of the dump that carry table data (``SEQUENCE SET`` is one statement, not counted); ``None``
        when the listing could not be read (the general way is taken, and the copy reports what is wrong)."""
        if self._toc_thread is None:
            return None
        self._toc_thread.join()
        if self._toc is None:
            return None
        return sum(1 for line in self._toc if not re.match(r'^\d+; \d+ \d+ SEQUENCE SET ', line))

    def result(self) -> str:
        """The checked copy; raises what the copy raised (IntegrityError when the checksum failed)."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        if self.path is None:
            raise OpsReadyError('Internal error: the decompressed copy reported neither a path nor an error.')
        return self.path

    def remove(self, now: bool = False) -> None:
        """The copy is no longer needed: removed in a thread (freeing the page cache of a file of the dump's
        size takes a while) while ANALYZE, the properties and the swap go on; ``discard`` waits for it.
        ``now``: removed before this returns."""
        if now or not self.path or self.scratch is None:
            self.discard()
            return
        self._remover = threading.Thread(target=self.scratch.remove, name='opsready-restore-remove', daemon=True)
        self._remover.start()

    def discard(self) -> Optional[Dict[str, Any]]:
        """Stop the copy if it still runs, and remove it (idempotent; after ``result`` and ``remove`` too):
        ``cleanup.remove_tree``'s outcome (with a ``warning`` when the directory stayed), None when none was made."""
        self._cancel.set()
        self._thread.join()
        if self._toc_thread is not None:
            self._toc_thread.join()
        if self._remover is not None:
            self._remover.join()
        if self.scratch is None:
            return None
        return self.scratch.remove()


def _follow(copier: _Copier, sink: Any, cancel: threading.Event, hold_tail: bool = True) -> None:
    """Feed the copy into ``sink`` (a tool's stdin) while zstd still writes it, then close ``sink``; stop when
    ``cancel`` or the copier's own cancel is set.

    What a file holds below its size is final (zstd writes it in order), so each look sends what was added
    since the last (``os.splice``: page cache to pipe in the kernel, no copy through this process). Waits
    ``FOLLOW_POLL`` when it has caught up. ``hold_tail``: the copy's last byte goes only once the copy ended
    well, checksum compared: a tool that reads to the end never sees a complete input from a corrupt
    artifact. A tool that stops reading (its own end, or an error) ends the feeding; so does a failed copy."""
    fd = -1
    offset = 0
    try:
        copier._begun.wait()
        if copier.growing is None:
            return
        out = sink.fileno()
        half = _pipe_size(out) // 2
        poller = select.poll()
        poller.register(out, 0)                  # POLLERR/POLLHUP only: the tool closed its end
        pace = [float(FEED_WAIT_MS)]

        def stopped() -> bool:
            return cancel.is_set() or copier._cancel.is_set()
        while not stopped():
            done = not copier.running            # before the size: once done, the size is final
            if done and copier.error is not None:
                return
            if fd < 0:
                try:
                    fd = os.open(copier.growing, os.O_RDONLY)
                except FileNotFoundError:        # zstd has not created it yet
                    if done:
                        return
                    copier.wait(FOLLOW_POLL)
                    continue
            size = os.fstat(fd).st_size
            end = size if done or not hold_tail else size - 1
            while offset < end and not stopped():
                try:
                    offset += _send(fd, out, offset, end - offset)
                except BlockingIOError:
                    _drain_wait(out, half, poller, stopped, pace)
            if done:
                return
            copier.wait(FOLLOW_POLL)
    except OSError:
        # The tool stopped reading (its own end or an error: its exit status tells), or the copy cannot be
        # read: the tool sees its input end early and fails, and the copy's verdict is reported first.
        return
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            sink.close()
        except OSError:
            pass


def _pipe_size(out: int) -> int:
    """The capacity of the pipe ``out`` (64 KiB when the kernel does not say)."""
    try:
        return fcntl.fcntl(out, F_GETPIPE_SZ)
    except OSError:
        return 64 * 1024


def _drain_wait(out: int, half: int, poller: Any, stopped: Any, pace: List[float]) -> None:
    """The pipe ``out`` is full: wait until its reader has taken it down to ``half`` (or closed it, or the feed was
    stopped). A blocking splice into a full pipe would return each time the reader frees a page, one wake-up and
    one system call of the feeder per ~8 KiB pg_restore reads (~100,000 for a 700 MB table); waiting for half
    of a 1 MiB pipe sends in 512 KiB pieces and still leaves the reader half a pipe (several ms of a load) ahead.
    ``pace``: [milliseconds of the first wait], kept from one full pipe to the next (the reader's pace changes
    slowly), so a refill usually takes one or two looks; 0.8 of the time half a pipe lasted, so a reader that
    speeds up does not find the pipe empty."""
    level = array.array('i', [0])
    wait = pace[0]
    before, since = -1, 0.0
    while not stopped():
        try:
            fcntl.ioctl(out, termios.FIONREAD, level, True)
        except OSError:
            return                  # the next splice tells what is wrong
        now = time.monotonic()
        if 0 <= before and level[0] < before:
            # the reader's pace since the last look: the next look about when the pipe is down to half, and the
            # first look at the next full pipe (taking half of it takes half / pace)
            per_ms = (before - level[0]) / ((now - since) * 1000.0)
            wait = min(max((level[0] - half) / per_ms, FEED_WAIT_MS), FEED_WAIT_MAX_MS)
            pace[0] = min(max(0.8 * half / per_ms, FEED_WAIT_MS), FEED_WAIT_MAX_MS)
        if level[0] <= half:
            return
        before, since = level[0], now
        if poller.poll(int(round(wait))):
            return


def _send(fd: int, out: int, offset: int, count: int) -> int:
    """Up to ``count`` bytes of ``fd`` from ``offset`` into the pipe ``out``; the number sent (at least one).
    ``BlockingIOError`` when the pipe is full (``_drain_wait``)."""
    count = min(count, 4 * CHUNK)
    if hasattr(os, 'splice'):   # Python 3.10+ on Linux
        sent = os.splice(fd, out, count, offset_src=offset, flags=os.SPLICE_F_NONBLOCK)
    else:
        data = os.pread(fd, count, offset)
        sent = len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
    if sent <= 0:
        raise OSError('the decompressed copy shrank while it was read')
    return sent


# The load's sessions as a logical replication apply worker's: event triggers (ENABLE, the default) do not fire. The
# dump creates the database's own event triggers before statements that fire them (pg_dump sorts REFRESH MATERIALIZED
# VIEW after CREATE EVENT TRIGGER): one refusing DDL (a "DDL freeze" kept on between releases) failed the whole load
# with its own message. Only a superuser may set it, and only a superuser can create event triggers: a load by
# another role does without (a dump with event triggers fails at CREATE EVENT TRIGGER there, as before). The data is
# loaded before the tables' triggers and foreign keys are created (post-data; toc_passes keeps it so under -j N for a
# partitioned table's), so nothing else of the load changes.
# An event trigger set to ENABLE ALWAYS fires all the same, and one set to ENABLE REPLICA fires because of it:
# pg_restore creates them after everything else of the load (toc_passes' last run; serial_list for jobs=1, from a
# file or a stream), so they fire on none of it; a plain dump's psql script cannot be reordered (_PLAIN_FIRES).
QUIET_EVENT_TRIGGERS = '-c session_replication_role=replica'


# What PostgreSQL says (aclchk.c, restrict_and_check_grant) of a GRANT or REVOKE by a role that holds the privilege
# but not its grant option (neither a superuser nor the object's owner: a restore by the database's owner, as on a
# managed service): a WARNING, no error, and none or only part of the statement applied. The load goes on, so a
# REVOKE the source ran (REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC, EXECUTE on a pg_catalog function) is lost and
# the copy is more open than the source. The object is quoted as given, nothing escaped: "<name>", or column "<c>" of
# relation "<r>" (a large object's name is "large object <oid>"). pg_restore prints a server's notices only with
# --verbose, after its own name ("pg_restore: WARNING:  ..."; its progress lines print names too, and a name's
# next line starts without it); psql always ("WARNING:  ...", "psql:<file>:<line>: WARNING:  ...").
# Those English texts name the object exactly; the server's lc_messages may be another language (set by an
# administrator for the server, the database or the restoring role: "WARNUNG:  es konnten keine Privilegien für
# »plpgsql« entzogen werden"; Spanish and Japanese keep the word WARNING), and the role can seldom set it back. So:
# - a load whose role may set lc_messages (a superuser; PostgreSQL 15+ GRANT SET ON PARAMETER) runs with
#   lc_messages=C (MESSAGES_SET: PGOPTIONS), the English texts then;
# - pg_restore (its own progress lines are English: the runner's LC_ALL=C.UTF-8): PostgreSQL restores the ACL
#   entries in a pass of their own (RESTORE_PASS_ACL; restore_in_parallel runs them one at a time), a GRANT or REVOKE
#   says nothing else, and libpq prints every server message as "<severity>:  <text>" (two spaces, the severity in
#   the server's language too). A server message that follows pg_restore's 'creating ACL "<tag>"' (or DEFAULT ACL)
#   and is not one of the English texts is such a statement, in another language: the entry's tag is the object, the
#   message as the server gave it the message (_acl_entry_notices);
# - psql (a plain dump, any statement anywhere) runs with VERBOSITY=verbose when the messages may not be English:
#   the SQLSTATE follows the severity ("WARNUNG:  01006: ..."), 01006 privilege_not_revoked and 01007
#   privilege_not_granted in every language; the object is the one quoted name of the message (»«, «», "", ...) or,
#   failing that, the whole message (_sqlstate_notices).
# A name that holds a whole line like pg_restore's own ('creating TABLE ...') can end an ACL entry's lines early;
# the English texts are recognised wherever they are.
PRIVILEGE_NOTICES = ('no privileges were granted', 'not all privileges were granted',
                     'no privileges could be revoked', 'not all privileges could be revoked')
PRIVILEGE_SQLSTATES = ('01006', '01007')   # privilege_not_revoked, privilege_not_granted (errcodes.txt)
_NOTICE_PREFIX = {'pg_restore': r'(?:pg_restore: ?)+', 'psql': r'(?:psql:[^\n]*?:\d+: )?'}
_PRIVILEGE_NOTICE = {tool: re.compile(r'^%sWARNING:  (?:0100[67]: )?(%s) for (?=["c])'
                                      % (prefix, '|'.join(PRIVILEGE_NOTICES)), re.M)
                     for tool, prefix in _NOTICE_PREFIX.items()}
# a server's message as libpq prints it, its severity in any language (one word in every translation)
_SERVER_MESSAGE = re.compile(r'[^\s:"]+:  \S')
_CREATING_ACL = re.compile(r'(?:creating (?:DEFAULT ACL|ACL LANGUAGE|ACL) "|executing (?:DEFAULT ACL|ACL) )(.*)$')
_SQLSTATE_NOTICE = re.compile(r'^(?:psql:[^\n]*?:\d+: )?([^\s:"]+:  (?:%s): (.*))$' % '|'.join(PRIVILEGE_SQLSTATES),
                              re.M)
_QUOTED = re.compile('\u00bb([^\u00ab\u00bb\n]+)\u00ab|\u00ab ?([^\u00ab\u00bb\n]+?) ?\u00bb|"([^"\n]+)"'
                     '|\u201e([^\u201c\n]+)\u201c|\u201c([^\u201d\n]+)\u201d|\u300c([^\u300d\n]+)\u300d')
# the session option of a load whose role may set lc_messages (the English texts of PRIVILEGE_NOTICES)
MESSAGES_SET = '-c lc_messages=C'
PARAMETER_PRIVILEGES_SINCE = 150000   # server_version_num: GRANT SET ON PARAMETER, has_parameter_privilege
# What may start the line after a message: another message of the tool (pg_restore: every one after its name), or
# of the server (psql). A name may hold a double quote, a newline and anything else: the object text ends at the
# first '"' at a line's end that such a line (or the end of the output) follows, within what the longest object text
# takes (NAMEDATALEN: 63 bytes a name; the column form holds two), so a name is never cut in two, nor read as two
# messages, unless it holds a whole line that looks like the tool's own (then read as one more: none is hidden).
_NEXT_MESSAGE = {'pg_restore': re.compile('pg_restore:'),
                 'psql': re.compile(r'psql:|(?:WARNING|NOTICE|ERROR|FATAL|PANIC|DETAIL|HINT|CONTEXT|LOCATION|INFO|LOG|'
                                    r'STATEMENT|QUERY):  |LINE \d+: ')}
_OBJECT_TEXT_MAX = 2 * 63 + len('column "" of relation ""')
_CONTROL = {c: '\\x%02x' % c for c in list(range(32)) + [127]}
_CONTROL.update({ord('\n'): '\\n', ord('\t'): '\\t', ord('\r'): '\\r'})


def privilege_notices(stderr: str, tool: str = 'pg_restore') -> List[Dict[str, str]]:
    """The privilege statements of a load that PostgreSQL applied partly or not at all, in the order of ``stderr``
    (``tool``: pg_restore's, with --verbose, or psql's): ``object`` and ``message``. In English
    (``PRIVILEGE_NOTICES``): the name as the message gives it, its double quotes taken off (``column "c" of relation
    "r"`` as it is), and the English text. In another language: for pg_restore the ACL entry's tag and the server's
    message (``_acl_entry_notices``), for psql with VERBOSITY=verbose the quoted name and the message
    (``_sqlstate_notices``)."""
    english = _english_notices(stderr, tool)
    lines = {stderr.rfind('\n', 0, at) + 1 for at, _notice in english}
    other = _acl_entry_notices(stderr) if tool == 'pg_restore' else _sqlstate_notices(stderr)
    return [notice for _at, notice in sorted(english + [(at, n) for at, n in other if at not in lines],
                                             key=lambda found: found[0])]


def _acl_entry_notices(stderr: str) -> List[Tuple[int, Dict[str, str]]]:
    """(offset of the line, notice) of every server message pg_restore (--verbose) printed while an ACL entry ran
    (after its 'creating ACL "<tag>"' or 'executing ACL <tag>' line, before its next progress line): the tag (its
    quotes taken off) and the message's first line."""
    found: List[Tuple[int, Dict[str, str]]] = []
    tag: Optional[str] = None
    at = 0
    for line in stderr.split('\n'):
        start, at = at, at + len(line) + 1
        prefix = re.match(r'(?:pg_restore: ?)+', line)
        if prefix is None:
            continue    # the next line of a message or of a name
        rest = line[prefix.end():]
        creating = _CREATING_ACL.match(rest)
        if creating is not None:
            tag = creating.group(1)[:-1] if rest.startswith('creating') and creating.group(1).endswith('"') \
                else creating.group(1)
        elif _SERVER_MESSAGE.match(rest):
            if tag is not None:
                found.append((start, {'object': tag, 'message': rest}))
        elif not rest.startswith(('launching item ', 'finished item ')) or ' ACL ' not in rest:
            tag = None  # pg_restore's own line of another entry (or its own warning): the ACL entry is done
    return found


def _sqlstate_notices(stderr: str) -> List[Tuple[int, Dict[str, str]]]:
    """(offset of the line, notice) of every message of psql (VERBOSITY=verbose) with the SQLSTATE 01006 or 01007:
    the message's one quoted name (or the whole message) and the message."""
    found: List[Tuple[int, Dict[str, str]]] = []
    for match in _SQLSTATE_NOTICE.finditer(stderr):
        names = [next(g for g in quoted.groups() if g is not None) for quoted in _QUOTED.finditer(match.group(2))]
        found.append((match.start(), {'object': names[0] if len(names) == 1 else match.group(2),
                                      'message': match.group(1)}))
    return found


def _english_notices(stderr: str, tool: str) -> List[Tuple[int, Dict[str, str]]]:
    """(offset of the match, notice) of the English texts of ``PRIVILEGE_NOTICES`` in ``stderr``."""
    found: List[Tuple[int, Dict[str, str]]] = []
    pos = 0
    pattern, following = _PRIVILEGE_NOTICE[tool], _NEXT_MESSAGE[tool]
    while True:
        match = pattern.search(stderr, pos)
        if match is None:
            return found
        start = match.end()
        # the candidate ends: a '"' (not the opening one) that ends a line or the output
        ends = [i + 1 for i in range(start + 1, min(len(stderr), start + _OBJECT_TEXT_MAX + 2))
                if stderr[i] == '"' and stderr[i + 1:i + 2] in ('\n', '')]
        end = next((e for e in ends if e + 1 >= len(stderr) or following.match(stderr, e + 1)),
                   ends[0] if ends else None)
        if end is None:   # cut short or malformed: the rest of the line
            line_end = stderr.find('\n', start)
            end = len(stderr) if line_end < 0 else line_end
        text = stderr[start:end]
        name = text[1:-1] if text.startswith('"') and text.endswith('"') and len(text) > 1 else text
        found.append((match.start(), {'object': name, 'message': match.group(1)}))
        pos = end


def shown(text: str) -> str:
    """``text`` on one line (a name may hold a newline or other control characters: escaped)."""
    return text.translate(_CONTROL)


def privilege_warning(notices: List[Dict[str, str]], limit: int = 20) -> List[str]:
    """The run's warning of ``privilege_notices`` (none when there are none): how many, which objects (the first
    ``limit``), why, and what to do."""
    if not notices:
        return []
    names: List[str] = []
    for notice in notices:
        named = '%s (%s)' % (shown(notice['object']) if notice['object'].startswith('column "')
                             else '"%s"' % shown(notice['object']), notice['message'])
        if named not in names:
            names.append(named)
    more = ' and %d more' % (len(names) - limit) if len(names) > limit else ''
    return ['%d privilege statement%s of the backup (GRANT/REVOKE) %s not applied, or only in part: %s%s (all in '
            'privileges_not_restored). The restoring role is not a superuser and neither owns these objects nor holds '
            'the grant option on them (a restore by a non-superuser, such as the database\'s owner on a managed '
            'service), so PostgreSQL applied what it could with a warning and went on. A lost REVOKE leaves the object '
            'more open in the restored database than in the source (USAGE on a language, EXECUTE on a function still '
            'granted to PUBLIC). Restore as a superuser or as the objects\' owner, or apply the source\'s GRANT/REVOKE '
            'on them by hand (the ACL entries of pg_restore --list of the backup; \\dp, \\dL+, \\df+ in the source).'
            % (len(notices), '' if len(notices) == 1 else 's', 'was' if len(notices) == 1 else 'were',
               '; '.join(names[:limit]), more)]


def _without_progress(stderr: str) -> str:
    """pg_restore's --verbose output without its progress lines (one or more per archive entry: "pg_restore: creating
    TABLE ...", and a name's continuation lines), as a failure reports it: its errors, warnings and the server's
    messages stay."""
    kept: List[str] = []
    keep = True
    for line in stderr.split('\n'):
        if line.startswith('pg_restore:'):
            rest = re.sub(r'^(?:pg_restore: ?)+', '', line)
            keep = bool(re.match(r'(?:error|warning|detail|hint): |[A-Z]+:  ', rest))
        if keep:
            kept.append(line)
    return '\n'.join(kept)


def _load_run(engine: PostgresEngine, argv: List[str], env: Dict[str, str], what: str,
              data: Optional[bytes] = None) -> str:
    """Run one pg_restore of the load (``--verbose``): its stderr (``privilege_notices`` reads it); a failure reports
    it without the progress lines."""
    rc, _out, err = engine.runner.run(argv, env=env, data=data, what=what, check=False)
    if rc != 0:
        raise engine.runner.failure(argv, rc, _without_progress(err), what)
    return err


@contextlib.contextmanager
def _quiet_progress(engine: PostgresEngine, argv: List[str], what: str) -> Iterator[None]:
    """A streamed pg_restore (``--verbose``) that fails reports its stderr without the progress lines."""
    try:
        yield
    except ToolError as exc:
        raise engine.runner.failure(argv, exc.rc if exc.rc is not None else 1, _without_progress(exc.stderr or ''),
                                    what) from None


PLAIN_METHOD = 'psql < plain dump'


def _load(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest, database: str,
          timer: Timer, copier: Optional[_Copier] = None, no_tablespaces: bool = False,
          quiet_event_triggers: bool = False, messages: str = 'C') -> Dict[str, Any]:
    """Load the dump into ``database`` (``_load_runs``); ``privileges_not_restored``: the ``privilege_notices`` of
    every run of the load, when there are any. ``messages``: the lc_messages the load's sessions get, or
    ``MESSAGES_SET`` when that is not English and the load's role may set it (its runs then set it to C)."""
    said: List[str] = []
    loaded = _load_runs(engine, request, manifest, database, timer, said, copier, no_tablespaces,
                        quiet_event_triggers, messages)
    tool = 'psql' if loaded['method'] == PLAIN_METHOD else 'pg_restore'
    notices = [notice for stderr in said for notice in privilege_notices(stderr or '', tool)]
    if notices:
        loaded['privileges_not_restored'] = notices
    return loaded


def _load_runs(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest, database: str, timer: Timer,
               said: List[str], copier: Optional[_Copier] = None, no_tablespaces: bool = False,
               quiet_event_triggers: bool = False, messages: str = 'C') -> Dict[str, Any]:
    """The load's pg_restore or psql runs; the stderr of each is added to ``said``."""
    fmt = manifest.data.get('format') or 'custom'
    env = engine.env(database)
    props = manifest.data.get('database_properties') or {}
    session_options = load_options(props, manifest.data.get('dumped_with'))
    if quiet_event_triggers:
        session_options = (session_options + ' ' + QUIET_EVENT_TRIGGERS).strip()
    if messages == MESSAGES_SET:
        session_options = (session_options + ' ' + MESSAGES_SET).strip()   # privilege_notices: English texts
    if session_options:
        env['PGOPTIONS'] = (env.get('PGOPTIONS', '') + ' ' + session_options).strip()
    # --dbname=dbname='...': a name with '=' (or a leading '-') is never a connection string or an option
    # --verbose: pg_restore prints the server's warnings only so (privilege_notices); its progress lines are left
    # out of a failure's report (_without_progress)
    common = ['--exit-on-error', '--verbose', '-w', dbname_arg(database)]
    if request.no_owner:
        common += ['--no-owner', '--no-privileges']
    if no_tablespaces:   # check_object_tablespaces: the server lacks some the dump names
        common += ['--no-tablespaces']
    jobs = max(1, request.jobs)
    verify = streams_checksum(request, manifest)  # run.py left the checksum to this read (Restorer.streamed)
    split = two_passes(manifest)

    def from_file(path: str, method: str) -> Dict[str, Any]:
        """pg_restore -j N of a dump file (or directory); in two passes when ``split``."""
        tool = [engine.tool('pg_restore')] + common
        if not split:
            said.extend(restore_in_parallel(engine, tool, jobs, [], path, env, not request.no_owner,
                                            copier.listed([], path) if copier is not None else None))
            return {'method': method, 'jobs': jobs}
        # The schema first (it creates the database's own text search configuration), then the data and what is
        # computed from it (generated columns, indexes, materialized views) in sessions that use it.
        said.append(_load_run(engine, tool + ['--section=pre-data', path], env, 'pg_restore --section=pre-data'))
        rest = dict(env, PGOPTIONS=(env.get('PGOPTIONS', '') + ' ' + own_text_search_option(props)).strip())
        sections = ['--section=data', '--section=post-data']
        said.extend(restore_in_parallel(engine, tool, jobs, sections, path, rest, not request.no_owner,
                                        copier.listed(sections, path) if copier is not None else None))
        return {'method': method + ', schema then data and post-data (the database\'s own default text search '
                                   'configuration in effect)', 'jobs': jobs}

    if fmt == 'plain':
        argv = engine.psql_argv(dbname_arg(database))
        if messages != MESSAGES_SET and not english_messages(messages):
            # privilege_notices by SQLSTATE: the texts may be in another language (the English hints of a failure,
            # _server_error's, do not match those either)
            argv[1:1] = ['-v', 'VERBOSITY=verbose']
        said.append(pipe_artifact_into(engine.runner, manifest, argv, 'psql (plain dump)', env=env,
                                       identities=engine.identities, verify=verify))
        return {'method': PLAIN_METHOD, 'jobs': 1}
    if fmt == 'directory':
        return from_file(manifest.path, 'pg_restore -j %d (directory format)' % jobs)
    if jobs == 1 and not split:
        argv = [engine.tool('pg_restore')] + common
        listing = _head_listing(engine, manifest)
        order = serial_list(listing)
        if order is None:
            with _quiet_progress(engine, argv, 'pg_restore'):
                said.append(pipe_artifact_into(engine.runner, manifest, argv, 'pg_restore', env=env,
                                               identities=engine.identities, verify=verify))
            loaded: Dict[str, Any] = {'method': 'pg_restore (stdin stream)', 'jobs': 1}
            # '' is a listing that failed (pg_restore --list always prints its header): the load kept pg_restore's
            # order, so event triggers were not moved last. Said only where one could have fired: a superuser's load
            # (nobody else creates event triggers) into a copy whose sessions have them on (before PostgreSQL 17)
            if not listing and quiet_event_triggers and database not in engine.client.quiet_databases:
                loaded['warnings'] = [_unlisted_warning(manifest)]
            return loaded
        # the stream is pg_restore's stdin: the list goes through a file
        with secret_file(order, prefix='opsready-pg-list-', suffix='.txt', directory=request.tmpdir) as listed:
            with _quiet_progress(engine, argv + ['-L', listed], 'pg_restore'):
                said.append(pipe_artifact_into(engine.runner, manifest, argv + ['-L', listed], 'pg_restore', env=env,
                                               identities=engine.identities, verify=verify))
        return {'method': 'pg_restore (stdin stream, the event triggers last)', 'jobs': 1}
    if manifest.data['compression'] == 'none' and not is_encrypted(manifest):
        return from_file(manifest.path, 'pg_restore -j %d' % jobs)
    local = copier is None   # no restore() around this call to discard the copier: its copy goes before return
    if copier is None:
        lister = _Lister(engine.tool('pg_restore'), split, jobs > 1)
        copier = _Copier(manifest, request.tmpdir, engine.runner, engine.identities, verify,
                         toc_argv=_toc_argv(engine, manifest), lister=lister)
    if not split and copier.data_items() == 1:
        # One data entry: -j N cannot split its load, so it follows the decompression instead of waiting for
        # it (the schema and the data, from the copy as it grows), and what comes after the data (indexes,
        # constraints, grants), which -j N does build side by side, reads the complete, checked copy.
        return _load_following(engine, common, env, copier, jobs, timer, local, said)
    copy = copier.result()
    try:
        timer.lap('decompress')
        return from_file(copy, 'pg_restore -j %d (decompressed copy)' % jobs)
    finally:
        copier.remove(local)


# A line of ``pg_restore --list``: "<dump id>; <catalog table oid> <oid> <desc> <schema> <name> <owner>" (names with
# a newline are printed on one line; desc, schema and name may hold spaces, so the desc is matched by its start).
_TOC_LINE = re.compile(r'^(\d+); (\d+) (\d+) (.*)$')
# What ``--list --verbose`` prints after an entry that depends on others: ";<TAB>depends on: <id> <id> ...".
_TOC_DEPENDS = re.compile(r'^;\s+depends on:((?: \d+)*)\s*$')
# Fixed catalog OIDs: pg_default_acl's (a DEFAULT ACL entry's catalog table; a column DEFAULT in a schema named
# "ACL" is pg_attrdef's, 2604), pg_constraint's, pg_type's, pg_class's, pg_trigger's.
_PG_DEFAULT_ACL = '826'
_PG_CONSTRAINT = '2606'
_PG_TYPE = '1247'
_PG_CLASS = '1259'
_PG_TRIGGER = '2620'
_PG_EVENT_TRIGGER = '3466'
_EVENT_TRIGGER = 'EVENT TRIGGER - '   # its schema is always "-": "3466 <oid> EVENT TRIGGER - <name> <owner>"


def _toc_entries(listing: str) -> List[Tuple[str, str, str]]:
    """The entries of a ``pg_restore --list``: (dump id, catalog table oid, the rest of the line), in its order."""
    entries: List[Tuple[str, str, str]] = []
    seen: Set[str] = set()
    for match in map(_TOC_LINE.match, toc_lines(listing)):
        if match and match.group(1) not in seen:   # an id once: a run must not load an entry twice
            seen.add(match.group(1))
            entries.append((match.group(1), match.group(2), match.group(4)))
    return entries


def toc_dependencies(verbose: str) -> Tuple[Dict[str, List[str]], Set[str]]:
    """What a ``pg_restore --list --verbose`` tells of its entries: the dump ids each depends on, and the entries
    whose constraints check rows another entry's data loads: a domain (its columns' tables), a table that another
    table depends on (a partitioned table, an inheritance parent: their ALTER TABLE ... ADD CONSTRAINT reaches the
    partitions and children). That listing also shows the entries the restore leaves out (the database's own ACL
    without --create, the sections not asked for): the runs are made of the plain listing's."""
    depends: Dict[str, List[str]] = {}
    tables: Set[str] = set()
    domains: Set[str] = set()
    last: Optional[str] = None
    for line in toc_lines(verbose):
        entry = _TOC_LINE.match(line)
        if entry:
            last, table_oid, rest = entry.group(1), entry.group(2), entry.group(4)
            if table_oid == _PG_TYPE and rest.startswith('DOMAIN '):
                domains.add(last)
            elif table_oid == _PG_CLASS and rest.startswith(('TABLE ', 'FOREIGN TABLE ')):
                tables.add(last)
            continue
        match = _TOC_DEPENDS.match(line)
        if match and last is not None:
            depends.setdefault(last, []).extend(match.group(1).split())
    parents = {dep for table in tables for dep in depends.get(table, []) if dep in tables}
    return depends, domains | parents


def may_hold_back(listing: str) -> bool:
    """Whether a ``pg_restore --list`` holds an entry ``toc_passes`` may hold back: a constraint that checks rows
    (a CHECK, a foreign key; a primary key or unique constraint, "CONSTRAINT", checks nothing the data breaks), a
    trigger."""
    return any((table_oid == _PG_CONSTRAINT and not rest.startswith('CONSTRAINT ')) or table_oid == _PG_TRIGGER
               for _id, table_oid, rest in _toc_entries(listing))


def has_event_triggers(listing: str) -> bool:
    """Whether a ``pg_restore --list`` creates an event trigger (``toc_passes`` puts them in a run of their own)."""
    return any(table_oid == _PG_EVENT_TRIGGER and rest.startswith(_EVENT_TRIGGER)
               for _id, table_oid, rest in _toc_entries(listing))


class TocRuns(NamedTuple):
    """The dump ids of each run of a restore (``toc_passes``), in the order they run."""
    main: List[str]
    held: List[str]
    acl: List[str]
    post: List[str]
    last: List[str]


def toc_passes(listing: str, verbose: str = '') -> TocRuns:
    """The dump ids of a ``pg_restore --list`` in the runs a parallel restore needs, each in the listing's (the
    dump's) order:

    * main: everything not below, as pg_restore -j runs it;
    * held: a constraint that pg_dump puts in post-data (NOT VALID: rows break it) on a domain, a partitioned table
      or an inheritance parent, and a partitioned table's trigger. pg_restore -j makes a table's constraint or
      trigger wait for that table's data only; these depend on none (a domain, a partitioned table have no data) or
      not on all the tables they reach (an inheritance parent's children, a partitioned table's partitions, which
      get its triggers), so one may be added beside, or before, the COPY of a partition, a child or a table with a
      column of that domain: the COPY then checks the rows against it and fails on the first one that breaks it (a
      foreign key checks each row), or fires the trigger on every row it loads (ENABLE ALWAYS under the load's
      session_replication_role=replica; any trigger for a load by another role than a superuser): a BEFORE trigger
      rewrites the restored values, an audit trigger logs the load. They run after all the data, still before the
      ACLs, as in pg_restore's own main pass (an owner who revoked its own REFERENCES or TRIGGER could not add them
      after). ``verbose``, the ``--list --verbose`` (``toc_dependencies``), tells which entries depend on which:
      without it, nothing is held;
    * acl: ``ACL``, ``ACL LANGUAGE``, ``DEFAULT ACL``;
    * post: pg_restore's own pass after the ACLs (pg_backup_archiver.c, ``_tocEntryRestorePass``: ``MATERIALIZED
      VIEW DATA``, whose refresh runs as the view's owner and may need the grants);
    * last: the ``EVENT TRIGGER`` entries (with the ``ALTER EVENT TRIGGER ... ENABLE REPLICA/ALWAYS`` of their
      definition) and their comments and security labels, which fire none: pg_restore's own pass puts them before
      the REFRESH MATERIALIZED VIEW (pg_dump sorts them so), and before PostgreSQL 17 one set ENABLE REPLICA or
      ENABLE ALWAYS fires under the load's session_replication_role=replica: a DDL guard refused the REFRESH (the
      restore failed), an audit trigger logged it. Created after everything else of the load, they fire on none of
      it. A comment or security label goes there by its dependency on an event trigger (``verbose``), or by its
      tag, the trigger's own ("0 0 COMMENT - EVENT TRIGGER <name> <owner>" after "3466 <oid> EVENT TRIGGER - <name>
      <owner>"): a comment on a table's trigger in a schema named "- EVENT" looks alike but names no event trigger
      (run after a DDL guard, it would be refused).

    Whatever depends on an entry of a later run (a held constraint's comment) goes with it."""
    depends, guarded = toc_dependencies(verbose)
    main: List[str] = []
    held: List[str] = []
    acl: List[str] = []
    post: List[str] = []
    last: List[str] = []
    late_held: Set[str] = set()
    late_post: Set[str] = set()
    triggers: Set[str] = set()
    tags: Set[str] = set()   # the tags of the event triggers' comments and security labels
    for dump_id, table_oid, rest in _toc_entries(listing):
        deps = depends.get(dump_id, [])
        if table_oid == _PG_EVENT_TRIGGER and rest.startswith(_EVENT_TRIGGER):
            last.append(dump_id)
            triggers.add(dump_id)
            name_owner = rest[len(_EVENT_TRIGGER):]
            tags.update('%s - EVENT TRIGGER %s' % (kind, name_owner) for kind in ('COMMENT', 'SECURITY LABEL'))
        elif triggers.intersection(deps) or (table_oid == '0' and rest in tags):
            last.append(dump_id)
            triggers.add(dump_id)
        elif (table_oid == '0' and rest.startswith('ACL ')) or (
                table_oid == _PG_DEFAULT_ACL and rest.startswith('DEFAULT ACL ')):
            acl.append(dump_id)
        # a dump lists an entry after those it depends on
        elif (table_oid == '0' and rest.startswith('MATERIALIZED VIEW DATA ')) or late_post.intersection(deps):
            post.append(dump_id)
            late_post.add(dump_id)
        elif (table_oid in (_PG_CONSTRAINT, _PG_TRIGGER) and guarded.intersection(deps)) or \
                late_held.intersection(deps):
            held.append(dump_id)
            late_held.add(dump_id)
        else:
            main.append(dump_id)
    return TocRuns(main, held, acl, post, last)


def serial_list(listing: str) -> Optional[str]:
    """The ``-L`` list of a serial pg_restore (jobs=1) that creates the event triggers after everything else
    (``toc_passes``' last run; pg_restore without -j keeps the list's order within each of its passes, from a file
    or from a stream: no data entry moves); None when the dump has no event trigger (no list needed)."""
    if not has_event_triggers(listing):
        return None
    last = toc_passes(listing).last
    moved = set(last)
    ids = [i for i, _table_oid, _rest in _toc_entries(listing) if i not in moved] + last
    return ''.join('%s;\n' % i for i in ids)


def toc_listings(runner: Any, pg_restore: str, sections: List[str], path: str, verbose_too: bool) -> Tuple[str, str]:
    """The ``pg_restore --list`` of ``sections`` of the archive at ``path`` and, when ``verbose_too`` and it
    holds an entry that ``toc_passes`` may hold back (``may_hold_back``), its ``--list --verbose`` (else '').
    No login: each reads the archive's head (~5 ms). The verbose listing prints every entry, also those the
    sections leave out, so it cannot stand in for the plain one (``toc_dependencies``)."""
    _rc, listing, _err = runner.run([pg_restore, '--list'] + sections + [path], what='pg_restore --list')
    verbose = ''
    if verbose_too and may_hold_back(listing):
        _rc, verbose, _err = runner.run([pg_restore, '--list', '--verbose'] + sections + [path],
                                        what='pg_restore --list --verbose')
    return listing, verbose


def restore_in_parallel(engine: PostgresEngine, tool: List[str], jobs: int, sections: List[str], path: str,
                        env: Dict[str, str], privileges: bool,
                        listings: Optional[Tuple[str, str]] = None) -> List[str]:
    """``pg_restore -j N`` of ``path`` (``sections`` of it; ``tool``: pg_restore and its common options), in the
    runs of ``toc_passes``. pg_restore -j runs the ACL entries side by side (restore_toc_entries_parallel
    dispatches its RESTORE_PASS_ACL entries to the workers as they come free; an ACL entry depends only on its
    object), each a transaction of its own: a table's GRANT made by a holder of the grant option (``SET SESSION
    AUTHORIZATION grantor; GRANT ...``) could run before the schema's ACL entry that gives that grantor USAGE on
    the schema had committed: ``permission denied for schema``, the whole restore rolled back. And it may add a
    NOT VALID constraint of a domain, a partitioned table or a parent before a COPY it checks (``toc_passes``): the
    restore fails on rows the source kept. So the archive's listing splits the load in the runs of ``toc_passes``:
    the main entries with -j N, those held until all the data is in with -j N, the ACLs in one session in the
    dump's order (as pg_restore without -j), the entries that must follow the ACLs with -j N, the event triggers
    in one session. The lists hold only the entries' ids ("ID;" lines) and reach pg_restore on its stdin. With
    neither ACLs to restore (none in the dump, or ``privileges`` false: --no-privileges) nor entries to hold back:
    one pg_restore, as before. With jobs=1 (the dump's order): one pg_restore, with a ``-L`` list that moves the event
    triggers to the end when the dump has some (``serial_list``). ``listings``: ``toc_listings`` of ``sections``
    of ``path``, made beforehand (``_Copier._list``). Returns the stderr of each pg_restore run (``_load_run``)."""
    what = ' '.join(['pg_restore -j %d' % jobs] + sections)
    if listings is None:
        listings = toc_listings(engine.runner, tool[0], sections, path, jobs > 1)
    listing, verbose = listings
    if jobs == 1:
        order = serial_list(listing)
        if order is not None:
            return [_load_run(engine, tool + ['-L', '/dev/stdin'] + sections + [path], env,
                              what + ' (the event triggers last)', data=order.encode('ascii'))]
    else:
        main, held, acl, post, last = toc_passes(listing, verbose)
        if not privileges:
            acl = []   # --no-privileges: left out either way
        if held or acl or post or last:
            steps = [(main, ['-j', str(jobs)], what), (held, ['-j', str(jobs)], what + ' (after all the data)'),
                     (acl, [], what + ' (privileges, one at a time)'),
                     (post, ['-j', str(jobs)], what + ' (after the privileges)'),
                     (last, [], what + ' (the event triggers, after everything else)')]
            return [_load_run(engine, tool + options + ['-L', '/dev/stdin'] + sections + [path], env, label,
                              data=''.join('%s;\n' % i for i in ids).encode('ascii'))
                    for ids, options, label in steps if ids]
    return [_load_run(engine, tool + ['-j', str(jobs)] + sections + [path], env, what)]


def _unlisted_warning(manifest: Manifest) -> str:
    """What an operator reads when ``_head_listing`` of a load that then succeeded failed (``_load``)."""
    return ('pg_restore --list could not read the table of contents of backup %s (the head of %s), so it was loaded '
            'in pg_restore\'s own order: its event triggers, if it has any, were not moved after everything else, and '
            'one set ENABLE REPLICA or ENABLE ALWAYS may have fired on what was restored after it (the grants, '
            'REFRESH MATERIALIZED VIEW). The load itself read and checked the whole artifact. See whether the dump '
            'has event triggers (pg_restore --list of the artifact, lines with EVENT TRIGGER) and, if so, check the '
            'restored database for what they do (an audit table, a log), or restore it again.'
            % (manifest.id, manifest.path))


def _head_listing(engine: PostgresEngine, manifest: Manifest) -> str:
    """``pg_restore --list`` of an archive that is read as a stream (compressed, encrypted): it reads the archive's
    head (its table of contents) and exits, so only that much is decrypted and decompressed, unchecked (the load's
    own read checks the whole artifact, and a list that does not match it fails that load). For ``serial_list``;
    '' when it cannot be read (the load reports what is wrong with the artifact)."""
    argv = [engine.tool('pg_restore'), '--list']
    try:
        check_decryptable(manifest, engine.identities or [])
        proc = engine.runner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except Exception:  # the load reports it with its own reason
        return ''
    out: List[bytes] = []
    # read while it is fed: a long listing would fill the pipe before pg_restore stops reading its stdin
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b''),
                              name='opsready-restore-list', daemon=True)
    try:
        reader.start()
        with open_decompressed(manifest.path, manifest.data['compression'], manifest.data.get('encryption'),
                               list(engine.identities or [])) as source:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                try:
                    proc.stdin.write(data)   # type: ignore[union-attr]
                except BrokenPipeError:   # pg_restore --list has read the table of contents and exited
                    break
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()   # type: ignore[union-attr]
        reader.join()
        engine.runner.finish(proc, argv, what='pg_restore --list')
    except Exception:  # a corrupt head: the load's checked read reports it
        kill_and_reap(proc)
        reader.join()
        return ''
    except BaseException:
        kill_and_reap(proc)
        raise
    return b''.join(out).decode('utf-8', 'replace')


def _toc_argv(engine: PostgresEngine, manifest: Manifest) -> Optional[List[str]]:
    """The listing of the dump's data entries (``_Copier.data_items``; it reads only the archive's head), for a
    dump big enough that loading it while it decompresses saves more than the second pg_restore costs."""
    size = manifest.data.get('raw_size') or manifest.data.get('size') or 0
    if size < FOLLOW_MIN_BYTES:
        return None
    return [engine.tool('pg_restore'), '--list', '--section=data']


def _load_following(engine: PostgresEngine, common: List[str], env: Dict[str, str], copier: _Copier, jobs: int,
                    timer: Timer, local: bool = False, said: Optional[List[str]] = None) -> Dict[str, Any]:
    """pg_restore of the schema and the data on stdin, fed from the copy while zstd writes it; then, once the
    copy is complete and its artifact's checksum matched, ``pg_restore -j N --section=post-data`` on it. The stderr
    of each pg_restore is added to ``said``."""
    said = said if said is not None else []
    argv = [engine.tool('pg_restore')] + common + ['--section=pre-data', '--section=data']
    proc = engine.runner.popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    grow_pipe(proc.stdin)   # fewer wake-ups of pg_restore and of the feeder per MiB
    feeder = threading.Thread(target=_follow, args=(copier, proc.stdin, threading.Event()),
                              name='opsready-restore-feed', daemon=True)
    try:
        feeder.start()
        feeder.join()
        proc.wait()
        # the copy's verdict first: a corrupt artifact is reported as corrupt, not as pg_restore's complaint
        copy = copier.result()
        what = 'pg_restore (schema and data, following the decompression)'
        with _quiet_progress(engine, argv, what):
            said.append(engine.runner.finish(proc, argv, what=what))
        timer.lap('pg_restore_data')
    except BaseException:
        kill_and_reap(proc)
        raise
    try:
        said.extend(restore_in_parallel(engine, [engine.tool('pg_restore')] + common, jobs, ['--section=post-data'],
                                        copy, env, '--no-privileges' not in common,
                                        copier.listed(['--section=post-data'], copy)))
    finally:
        copier.remove(local)
    return {'method': 'pg_restore (schema and data following the decompression) + pg_restore -j %d '
                      '--section=post-data (decompressed copy)' % jobs, 'jobs': jobs}


def final_comment(request: RestoreRequest, manifest: Manifest, restored: str) -> str:
    """The statement that replaces the copy's marker with the comment recorded at backup time (or none)."""
    props = manifest.data.get('database_properties') or {}
    if props:
        statements, _skipped = apply_statements(props, restored, request.no_owner, [])
        comments = [sql for sql in statements if is_comment(sql)]
        if comments:
            return comments[-1]
    return 'COMMENT ON DATABASE %s IS NULL' % quote_ident(restored)


def comment_from_inside(engine: PostgresEngine, manifest: Manifest, session: Optional[PsqlSession]) -> bool:
    """Whether the recorded comment must be written by a session in the restored database rather than by the swap's
    transaction in the maintenance database. pg_shdescription is shared by every database and holds the bytes of
    whichever session wrote it, and a session in the database reads them in its own encoding: a non-ASCII comment of
    a LATIN1 database written from a UTF8 maintenance database reads 'dÃ©jÃ ' there. ASCII is the same bytes in
    every server encoding, and a database in the maintenance database's encoding reads what the swap writes."""
    props = manifest.data.get('database_properties') or {}
    comment, encoding = props.get('comment'), props.get('encoding')
    if comment is None or not encoding or str(comment).isascii():
        return False
    rows = _ask(engine, 'SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()',
                session)
    return not rows or rows[0][0] != encoding


def write_comment_inside(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest,
                         target: str) -> Optional[str]:
    """The recorded comment, by a session in ``target`` (see ``comment_from_inside``); the database's own settings
    (default_transaction_read_only, a statement_timeout) are in force there now, so the session sets its own. The
    restore is done by now: a failure is returned as a note for ``database_properties.skipped``, not raised."""
    sql = final_comment(request, manifest, target)
    try:
        engine.client.query_script('\\encoding UTF8\nBEGIN READ WRITE; SET LOCAL statement_timeout = 0; '
                                   'SET LOCAL lock_timeout = 0; %s; COMMIT;\n' % sql, database=target)
    except ToolError as exc:
        return 'COMMENT ON DATABASE (written from a session in the restored database, whose encoding differs from ' \
               'the maintenance database\'s, it failed: %s); set it again with COMMENT ON DATABASE' % _server_error(exc)
    return None


# The sessions in a database (not the run's own) and whether the run's role may end each. pg_terminate_backend
# (PostgreSQL 14+, signalfuncs.c) lets a superuser end any; a role that is not one only the sessions of roles whose
# privileges it has, or with pg_signal_backend any non-superuser's; never a superuser's nor one without a role (a
# background worker). Where it may not, it raises ERROR 42501 for that row instead of skipping it, which failed the
# whole swap after it had ended the sessions it reached first: so the rule is the query's own. Autovacuum workers are
# left out: the server cancels them itself for the RENAME. To a role that is not a superuser (nor pg_read_all_stats)
# pg_stat_activity hides backend_type of other roles' sessions and of those without a role, so an autovacuum worker
# cannot be told from a background worker: a session without a role is left out for it too (neither ended nor in the
# way; one that does hold the target is named when the swap gives up, ``_still_in_use``).
_SESSIONS = ("SELECT a.pid, coalesce(a.usename, '') AS usename, coalesce(a.application_name, '') AS app, "
             "coalesce(a.backend_type, '') AS backend_type, current_user AS who, "
             "EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = current_user AND rolsuper) "
             "OR (a.usesysid IS NOT NULL "
             "AND NOT coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = a.usesysid), true) "
             "AND (pg_catalog.pg_has_role(a.usesysid, 'USAGE') "
             "OR pg_catalog.pg_has_role('pg_signal_backend', 'USAGE'))) AS may "
             "FROM pg_catalog.pg_stat_activity a WHERE a.datname = %s AND a.pid <> pg_catalog.pg_backend_pid() "
             "AND a.backend_type IS DISTINCT FROM 'autovacuum worker'")
_WITH_ROLE = " AND (a.usesysid IS NOT NULL OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = current_user " \
             "AND rolsuper))"


def _sessions_sql(database: str, with_role: bool = True) -> str:
    """``_SESSIONS`` in ``database``; ``with_role``: without the sessions of no role (unless the run's role is a
    superuser)."""
    return _SESSIONS % quote_literal(database) + (_WITH_ROLE if with_role else '')


def _end_sessions_sql(database: str) -> str:
    """One statement (one snapshot of pg_stat_activity): the sessions the role may not end (``in_the_way`` rows,
    as ``_SESSIONS``'s), and only when there is none, every other one ended (CASE: the order is kept, the planner
    would run a cheap pg_terminate_backend before the costlier test of a plain AND)."""
    return ("WITH s AS (%s), b AS (SELECT * FROM s WHERE NOT may) "  # nosec B608 # pg_quote literal
            "SELECT 'in_the_way', pid, usename, app, backend_type, who FROM b UNION ALL "
            "SELECT 'ended', pid, '', '', '', '' FROM s WHERE CASE WHEN may AND NOT EXISTS (SELECT 1 FROM b) "
            "THEN pg_catalog.pg_terminate_backend(pid) ELSE false END"
            % _sessions_sql(database))


def _describe_sessions(rows: List[List[str]]) -> str:
    """'pid 123 (user u, application_name 'psql')' for each row (pid, user, application_name, backend_type)."""
    return ', '.join('pid %s (user %s, application_name %r%s)' % (
        r[0], r[1] or '(none)', r[2], '' if r[3] in ('', 'client backend') else ', a %s' % r[3]) for r in rows)


def _in_the_way_error(target: str, where: str, rows: List[List[str]], role: str,
                      ended: bool = False) -> OpsReadyError:
    """The refusal when sessions the role may not end hold the old target; ``sessions`` in the result, too."""
    sessions = [{'pid': int(r[0]), 'user': r[1], 'application_name': r[2], 'backend_type': r[3]} for r in rows]
    return OpsReadyError(
        'Could not swap the restored database in: %s on %s has sessions that %s may not end: %s. Ask them to '
        'disconnect (or end them as a superuser: SELECT pg_terminate_backend(pid)), or grant %s pg_signal_backend '
        '(it ends the sessions of roles that are not superusers, not a superuser\'s), or restore as a superuser; '
        'then run again. %s, %s is as it was and the restored copy was dropped.'
        % (target, where, role or 'the restoring role', _describe_sessions(rows), role or 'the restoring role',
           'Sessions it could end were ended' if ended else 'No session was ended', target),
        target=target, sessions=sessions)


def _still_in_use(engine: PostgresEngine, target: str) -> str:
    """What held ``target`` when the swap gave up (for the message): its sessions and prepared transactions."""
    try:
        # every session here, a role's or not (an autovacuum worker would be gone by now)
        sessions = engine.query(_sessions_sql(target, with_role=False))
        prepared = engine.query('SELECT gid, owner FROM pg_catalog.pg_prepared_xacts '  # nosec B608 # pg_quote
                                'WHERE database = %s' % quote_literal(target))
    except ToolError:
        return ''
    held = ([_describe_sessions(sessions)] if sessions else []) + [
        'prepared transaction %r (owner %s: COMMIT PREPARED or ROLLBACK PREPARED it)' % (r[0], r[1]) for r in prepared]
    return ' (in use by %s)' % ', '.join(held) if held else ''


def _swap(engine: PostgresEngine, target: str, restored: str, exists: bool,
          session: Optional[PsqlSession] = None, comment: Optional[str] = None,
          was_closed: bool = False) -> Optional[str]:
    """Give ``restored`` the name ``target``; returns the name the old target had while it was aside. A new
    name is one transaction (on ``session``); replacing retries while sessions reconnect, each try a psql of its
    own (a failed statement would end the locked session). ``comment`` (``final_comment``) replaces the copy's
    marker in the same transaction; the old target gets the marker of an aside copy.

    Replacing first looks for sessions in the old target that the role may not end (``_SESSIONS``): any, and the
    run fails naming them before it closed the target or ended any session (a swap that cannot happen must not cost
    the application its connections). The target is then closed, and its sessions are ended only when none is in
    the way (one that connected in between fails the run the same way)."""
    comment = comment or 'COMMENT ON DATABASE %s IS NULL' % quote_ident(restored)
    if not exists:
        _ask(engine, _one_transaction([comment, 'ALTER DATABASE %s RENAME TO %s'
                                       % (quote_ident(restored), quote_ident(target))]), session)
        return None
    where = engine.conn.where(5432)
    sessions = _ask(engine, _sessions_sql(target), session)
    in_the_way = [r for r in sessions if len(r) == 6 and r[5] != 't']
    if in_the_way:
        raise _in_the_way_error(target, where, in_the_way, in_the_way[0][4])
    aside = temporary_name(target, 'old')
    qt = quote_ident(target)
    engine.query('ALTER DATABASE %s ALLOW_CONNECTIONS false' % qt)
    try:
        last: Optional[ToolError] = None
        ended = False
        for _attempt in range(50):
            rows = engine.query(_end_sessions_sql(target))
            in_the_way = [r[1:] for r in rows if r and r[0] == 'in_the_way']
            if in_the_way:   # one that connected before the target closed
                raise _in_the_way_error(target, where, in_the_way, in_the_way[0][4], ended)
            ended = ended or any(r and r[0] == 'ended' for r in rows)
            try:
                # psql -c runs the string in one transaction: both names change, with the markers, or nothing does.
                # verbose: "being accessed by other users" is told by its SQLSTATE, in the server's any language
                engine.client.query('ALTER DATABASE %s RENAME TO %s; %s; %s; ALTER DATABASE %s RENAME TO %s'
                                    % (qt, quote_ident(aside), _mark(aside, target, 'old'), comment,
                                       quote_ident(restored), qt), verbose=True)
                last = None
                break
            except ToolError as exc:
                if sqlstate(exc.stderr) != OBJECT_IN_USE and 'being accessed by other users' not in exc.stderr:
                    raise
                last = exc
                time.sleep(0.1)
        if last is not None:
            raise OpsReadyError('Could not swap the restored database in: %s on %s stayed in use%s, sessions ended '
                                'kept reconnecting or a prepared transaction held it. Stop the application (end '
                                'the prepared transactions), then run again (%s is as it was, the restored copy '
                                'was dropped).' % (target, where, _still_in_use(engine, target), target),
                                target=target)
    except BaseException:
        if database_exists(engine, target) and not was_closed:   # a target the DBA had closed stays closed
            engine.query('ALTER DATABASE %s ALLOW_CONNECTIONS true' % qt)
        raise
    return aside


def tablespace_option(engine: PostgresEngine, props: Dict[str, Any],
                      session: Optional[PsqlSession] = None) -> Tuple[str, List[str]]:
    """``TABLESPACE x`` for the backed-up database's own tablespace (where its tables live unless they name another)
    when this server has it; else nothing, and the note for the result's ``database_properties.skipped`` (the
    server's default is used: tablespaces are cluster-wide, a server without it is restored onto all the same)."""
    tablespace = props.get('tablespace')
    if not tablespace or tablespace == 'pg_default':
        return '', []
    if _ask(engine, 'SELECT 1 FROM pg_tablespace WHERE spcname = %s' % quote_literal(tablespace),  # nosec B608
            session):
        return ' TABLESPACE %s' % quote_ident(tablespace), []
    return '', ['TABLESPACE %s (it does not exist on %s: the database was created in the default tablespace; '
                'restore @globals first, or create it, to keep it)' % (tablespace, engine.conn.where(5432))]


def available_extensions(engine: PostgresEngine, names: List[str],
                         session: Optional[PsqlSession] = None) -> Dict[str, Tuple[str, List[str]]]:
    """name -> (default version, installable versions) on this server, for ``names`` (no query without any)."""
    if not names:
        return {}
    rows = _ask(engine, 'SELECT a.name, a.default_version, v.version FROM pg_catalog.pg_available_extensions a '  # nosec B608 # pg_quote
                        'JOIN pg_catalog.pg_available_extension_versions v ON v.name = a.name WHERE a.name IN (%s)'
                % ', '.join(quote_literal(n) for n in names), session)
    found: Dict[str, Tuple[str, List[str]]] = {}
    for row in rows:
        if len(row) == 3:
            found.setdefault(row[0], (row[1], []))[1].append(row[2])
    return found


def create_database(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest, name: str,
                    session: Optional[PsqlSession] = None, target: Optional[str] = None) -> List[str]:
    """The temporary database, with the encoding, locale and tablespace the backed-up one had; returns what of
    them had to be left out (``tablespace_option``).

    When the backed-up database had its own ACL (``REVOKE CONNECT ... FROM PUBLIC``), the copy is closed to
    PUBLIC from its creation on: the data must not be reachable by everyone while it loads.
    """
    props = manifest.data.get('database_properties') or {}
    options = create_options(props)
    tablespace, skipped = tablespace_option(engine, props, session)
    closed = props.get('acl') is not None and not request.no_owner
    try:
        # Closed databases are created refusing every connection until PUBLIC's CONNECT is revoked: no
        # window in which a session could get in (and stay in) before the ACL is set.
        _ask(engine, 'CREATE DATABASE %s TEMPLATE template0 %s%s%s' % (
            quote_ident(name), options, tablespace, ' ALLOW_CONNECTIONS false' if closed else ''), session)
    except ToolError as exc:
        # the English words (and LC_COLLATE, LC_CTYPE, which every translation keeps), else asked of the server: the
        # refusal may be in any language
        if not options or not (re.search(r'locale|encoding|collation|LC_C', exc.stderr or '', re.I)
                               or _locale_missing(engine, props)):
            raise
        raise OpsReadyError('Cannot create a database on %s with the encoding and locale of the backed-up one '
                            '(%s): %s. Install that locale on the server (locale-gen, then restart PostgreSQL) '
                            'and run again. Nothing was restored.'
                            % (engine.conn.where(5432), options, _server_error(exc)), stderr=exc.stderr)
    if target is not None:
        # Marked at once (CREATE DATABASE cannot share a transaction): a run killed from here on leaves a copy the
        # next run into ``target`` knows as its own (drop_stale). The swap replaces the marker.
        try:
            _ask(engine, _mark(name, target), session)
        except BaseException:
            drop_database(engine, name)
            raise
    if closed:
        try:
            _ask(engine, _one_transaction(['REVOKE ALL ON DATABASE %s FROM PUBLIC' % quote_ident(name),
                                           'ALTER DATABASE %s ALLOW_CONNECTIONS true' % quote_ident(name)]), session)
        except BaseException:
            drop_database(engine, name)   # a psql of its own: the failure may have ended the session
            raise
    available = available_extensions(engine, extension_names(props), session)
    extensions, not_kept = extension_statements(props, available)
    skipped += not_kept
    prepare = before_load_statements(props) + extensions
    if prepare:
        try:
            engine.query(CATALOG_SEARCH_PATH + '; '.join(prepare), database=name)
        except BaseException:
            drop_database(engine, name)
            raise
    if not request.no_owner:
        create_extensions_as_owners(engine, props, available, name, extensions)
    return skipped


def create_extensions_as_owners(engine: PostgresEngine, props: Dict[str, Any],
                                available: Dict[str, Tuple[str, List[str]]], name: str, created: List[str]) -> None:
    """The extensions a role other than the restoring one owned, created by that role (``extension_owner_statements``);
    one the server refuses is left to the dump (and named by ``extension_member_warnings``)."""
    if not _owned_extensions(props):
        return
    login = engine.query('SELECT current_user', database=name)[0][0]
    made = [str(e.get('name')) for e in props.get('extensions') or []
            if any(s.startswith('CREATE EXTENSION %s ' % quote_ident(str(e.get('name')))) for s in created)]
    for _ext, statements in extension_owner_statements(props, available, name, login, made):
        try:
            engine.query(CATALOG_SEARCH_PATH + _one_transaction(statements), database=name)
        except ToolError:
            pass   # nosec B110 # the dump's CREATE EXTENSION makes it as the restoring role; the owner is named


def apply_properties(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest, database: str,
                     roles: List[str], session: Optional[PsqlSession] = None) -> Dict[str, Any]:
    """Give ``database`` the database-level properties recorded at backup time (before the swap)."""
    props = manifest.data.get('database_properties')
    if not props:
        return {'restored': False, 'reason': 'the backup predates the recording of database-level properties '
                                             '(owner, ACL, comment, settings): take a new backup to keep them'}
    statements, skipped = apply_statements(props, database, request.no_owner, roles)
    # The comment is set by the swap, in its transaction: until then the copy keeps the marker (drop_stale).
    statements = [sql for sql in statements if not is_comment(sql)]
    if statements and all(sql.isascii() and not sql.startswith(RAW_PREFIX) for sql in statements):
        # all of them or none; ASCII is the same bytes in every server encoding: through the run's own session
        _ask(engine, _one_transaction(statements), session)
    elif statements:
        # All of them or none, from a session in the database itself: the ALTER DATABASE/ROLE ... SET values go to a
        # shared catalog as the writing session's bytes, and sessions in the database read them in its encoding
        # (a LATIN1 database's 'Zürich' written from the UTF8 maintenance database would read 'ZÃ¼rich' there).
        # (in UTF-8: the session would otherwise talk the database's encoding). No notices: a SQL_ASCII database's
        # server checks what it sends against the client's encoding, and one quoting a legacy byte ('tablespace "t\xe9"
        # does not exist' for temp_tablespaces, as it said in the source) would fail the statement.
        engine.client.query_script('\\encoding UTF8\nSET client_min_messages = error;\n%s;\n'
                                   % _one_transaction(statements), database=database)
    return dict(describe(props, request.no_owner), restored=True, skipped=skipped,
                warnings=setting_role_warnings(props, roles, engine.conn.where(5432))
                + unknown_privilege_warnings(props, request.no_owner)
                + no_owner_grant_warnings(props, request.no_owner, _target(request)))


@contextlib.contextmanager
def target_lock(engine: PostgresEngine, target: str) -> Iterator[PsqlSession]:
    """One restore (or drop) at a time into ``target`` on this server, whichever host runs it: two runs
    interleaving (each loads its copy, then both swap) would leave whichever swapped last, with the other's
    'restored' report a lie, so the second is told at once instead of waiting. A session-level advisory lock
    keyed on the target's name, held by a psql session of its own (in the maintenance database, which the swap
    never renames) until the run ends. The block gets that session: the run's own statements in the maintenance
    database go through it (a statement that fails ends it, and the lock with it: the run is failing then)."""
    key = engine.client.lock_key('restore', target)
    with engine.client.advisory_lock(key, 'Another db_restore into database %s on %s is running: nothing was '
                                     'changed by this one. Wait for it to finish and run again'
                                     % (target, engine.server_label())) as session:
        yield session


def restore(engine: PostgresEngine, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    if len(chain) == 1 and chain[0].database == GLOBALS:
        return restore_globals(engine, request, chain[0], timer)
    target = _target(request)
    if len(chain) != 1 or chain[0].kind != 'full':
        raise OpsReadyError('A logical PostgreSQL restore takes one pg_dump artifact; the chain has %s. For a '
                            'base backup + WAL, set datadir (point-in-time recovery into a scratch cluster).'
                            % ', '.join('%s (%s)' % (m.id, m.kind) for m in chain))
    manifest = chain[0]
    check_no_owner(request, manifest)
    # The decompressed copy pg_restore -j needs starts first, so the lock's session (a program start and a
    # login, which is also the check that the server answers), the target's inspection and CREATE DATABASE
    # overlap it. It is private to this run (a new directory in tmpdir), loaded only after every check passed,
    # and stopped and removed whatever ends the run.
    copier = None
    if needs_copy(request, manifest):
        copier = _Copier(manifest, request.tmpdir, engine.runner, engine.identities,
                         streams_checksum(request, manifest), toc_argv=_toc_argv(engine, manifest),
                         lister=_Lister(engine.tool('pg_restore'), two_passes(manifest), max(1, request.jobs) > 1))
    stale: Dict[str, Any] = {}
    try:
        with told_on_failure(stale), target_lock(engine, target) as session:
            outcome = _restore_locked(engine, request, manifest, target, timer, session, copier, stale)
    except BaseException as exc:
        left = copier.discard() if copier is not None else None
        if left and not left['cleaned_up']:
            raise with_scratch_left(exc, left)
        raise
    left = copier.discard() if copier is not None else None
    if left and not left['cleaned_up']:
        outcome['scratch_left'] = [left['path']]
        outcome['warnings'] = list(outcome.get('warnings') or []) + [left['warning']]
    return outcome


def _restore_locked(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest, target: str,
                    timer: Timer, session: PsqlSession, copier: Optional['_Copier'],
                    stale: Dict[str, Any]) -> Dict[str, Any]:
    temp = temporary_name(target)
    # first: check_target's inspection logs into an existing target, where a login event trigger fires
    superuser, silenced, messages, may_set_messages = quiet_target_messages(engine, target, temp, session)
    before = check_target(engine, request, session)
    roles = check_roles(engine, request, manifest, session)
    check_locales(engine, manifest)
    check_locale_provider(engine, manifest, session)
    moved = check_object_tablespaces(engine, manifest, session)
    # Under the target's lock no other run into it is live: a marked copy of it is a killed run's (a full copy
    # of the data, on disk until someone drops it).
    stale.update(drop_stale(engine, target, session))
    timer.lap('inspect_target')
    not_created = create_database(engine, request, manifest, temp, session, target=target)
    try:
        load = _load(engine, request, manifest, temp, timer, copier, no_tablespaces=bool(moved),
                     quiet_event_triggers=superuser,
                     messages=MESSAGES_SET if may_set_messages and not english_messages(messages) else messages)
        timer.lap('pg_restore')
        # ANALYZE in the temporary database, before the swap: the restored database takes the name with its
        # statistics (no window without them), and the object count comes in the same session, with the count of
        # enabled event triggers (ANALYZE is no DDL: none fires on it).
        counts = engine.query(CATALOG_SEARCH_PATH + ANALYZE_RESTORED + '; SELECT (%s), (%s), (%s), (%s), (%s)'
                              % (USER_OBJECTS, foreign.COUNT_SQL, foreign.REACH_SQL, ENABLED_EVENT_TRIGGERS,
                                 POPULATED_MATVIEWS), database=temp)[0]
        objects = int(counts[0])
        timer.lap('analyze')
        # The copy's own event triggers stay off while this run's statements change it (a DDL freeze refused them),
        # and are set back as the dump left them before the database's properties and the swap. Looked up only in a
        # copy that has some: a psql run of its own (a login) on every restore was the fixed cost's third.
        held = hold_event_triggers(engine, temp) if superuser and not silenced and counts[3:4] != ['0'] else []
        fired = _plain_fired_warnings(manifest, held, counts[4:5] not in ([], ['0']))
        # Before the swap: under foreign_servers=disable the target's name never holds servers (or subscriptions)
        # that reach the remote.
        servers = foreign.handle(engine, temp, request.foreign_servers) if int(counts[1]) else None
        reached = foreign.reach(engine, temp, request.foreign_servers, counts[2] if len(counts) > 2 else '')
        not_granted = load.pop('privileges_not_restored', None) or []
        reached['warnings'] = (load.pop('warnings', None) or []) + privilege_warning(not_granted) + \
            reached['warnings'] + fired + extension_member_warnings(engine, request, manifest, temp)
        # before the database's own settings (default_transaction_read_only = on would refuse it in a new session);
        # what follows in the copy (ALTER DATABASE/ROLE ... SET, COMMENT ON DATABASE) fires no event trigger
        release_event_triggers(engine, temp, held)
        properties = apply_properties(engine, request, manifest, temp, roles, session)
        not_created += moved + _plain_text_search_note(manifest)
        reached['warnings'] += (properties.pop('warnings', None) or []) + left_out_warnings(not_created)
        if not_created:
            properties['skipped'] = not_created + list(properties.get('skipped') or [])
        timer.lap('database_properties')
        inside = comment_from_inside(engine, manifest, session)
        # the swap removes the copy's marker either way; a comment it cannot write is written right after it
        swap_comment = 'COMMENT ON DATABASE %s IS NULL' % quote_ident(temp) if inside else \
            final_comment(request, manifest, temp)
        aside = _swap(engine, target, temp, before['exists'], session, swap_comment, bool(before.get('closed')))
    except IntegrityError as exc:
        # The checksum (compared in the read that loaded the data) or the decompression failed: what was
        # loaded never leaves the temporary database, which goes; the target was not touched. Clean-up runs in
        # a psql of its own: a failed statement may have ended the session.
        left = discard_copy(engine, temp)
        raise IntegrityError('Restore refused before touching the target: chain piece %s (%s) is not intact. %s '
                             'What had been loaded stayed in the temporary database %s, %s; %s is as it was.'
                             % (manifest.id, manifest.kind, exc.message, temp, _copy_fate(temp, left), target),
                             artifact=manifest.id, path=manifest.path, target=target)
    except ToolError as exc:
        try:
            hint = _plain_event_trigger_hint(engine, manifest, temp) if superuser and not silenced else ''
        except Exception:  # nosec B110 - a hint only: the copy is dropped and the load's own error is reported
            hint = ''
        left = discard_copy(engine, temp)
        raise OpsReadyError('Restore of %s into %s failed and was rolled back (the temporary database %s %s; %s is '
                            'as it was): %s%s' % (manifest.id, target, temp, _copy_fate(temp, left), target,
                                                  _server_error(exc), hint),
                            target=target, stderr=exc.stderr)
    except BaseException:
        discard_copy(engine, temp)
        raise
    timer.lap('swap')
    if inside:
        note = write_comment_inside(engine, request, manifest, target)
        if note:
            properties['skipped'] = list(properties.get('skipped') or []) + [note]
            reached['warnings'] += left_out_warnings([note])
    live = session if session.alive else None
    if (manifest.data.get('database_properties') or {}).get('is_template'):
        # Set on the final name only: a template cannot be dropped, and the copy is dropped when anything before
        # the swap fails.
        _ask(engine, 'ALTER DATABASE %s IS_TEMPLATE true' % quote_ident(target), live)
    if aside:
        if before.get('template'):
            _ask(engine, 'ALTER DATABASE %s IS_TEMPLATE false' % quote_ident(aside), live)   # else DROP refuses
        drop_database(engine, aside, live)
        timer.lap('drop_old')
    outcome = {'target': {'database': target, 'server': engine.server_label(),
                          'host': engine.conn.host, 'port': engine.conn.port or 5432, 'objects': objects},
               'method_detail': load['method'], 'jobs': load['jobs'], 'database_properties': properties,
               'replaced': bool(before['exists'] and (before['objects'] or before.get('closed'))),
               'dropped_stale': stale['dropped_stale'], 'privileges_not_restored': not_granted}
    if servers is not None:
        outcome['foreign_servers'] = servers['servers']
    if reached['subscriptions']:
        outcome['subscriptions'] = reached['subscriptions']
    warnings = closed_target_warnings(before, target, engine.conn.where(5432)) + list(stale['warnings']) + (
        servers['warnings'] if servers else []) + reached['warnings']
    if warnings:
        outcome['warnings'] = warnings
    return outcome


def quiet_target(engine: PostgresEngine, target: str, temp: Optional[str] = None,
                 session: Optional[PsqlSession] = None) -> Tuple[bool, bool]:
    """(superuser, silenced): whether the run's role is a superuser, and whether its sessions in ``target`` (and in
    the copy ``temp``) start with event triggers off (``quiet_databases``). Asked in the maintenance database before
    any session in the target: ``check_target`` logs into an existing one to look inside, and a login event trigger
    (PostgreSQL 17+) fires on that connection itself, before any statement of the run.

    PostgreSQL 17+: every session of this run in the copy (the load's, ANALYZE's, ...) and in the target (the
    inspection; after the swap) starts with event triggers off, whatever their enable mode, login triggers too; no
    hold is needed then. Before 17 only session_replication_role=replica (the load) and the hold (this run's
    statements after it) exist: an ENABLE REPLICA or ENABLE ALWAYS trigger still fires at the load's REFRESH
    MATERIALIZED VIEW there. The setting is a superuser's."""
    return quiet_target_messages(engine, target, temp, session)[:2]


def quiet_target_messages(engine: PostgresEngine, target: str, temp: Optional[str] = None,
                          session: Optional[PsqlSession] = None) -> Tuple[bool, bool, str, bool]:
    """``quiet_target``, and (in the same question) the language of the load's sessions: ``lc_messages`` as the
    restoring role's login gets it (its ALTER ROLE ... SET, the server's default; '' when unknown), and whether
    the role may set it for the load (a superuser; PostgreSQL 15+: GRANT SET ON PARAMETER lc_messages, asked only
    when the messages are not English already). (superuser, silenced, lc_messages, may_set_messages)."""
    asked = _ask(engine, "SELECT pg_catalog.current_setting('is_superuser'), "
                         "pg_catalog.current_setting('server_version_num'), "
                         "pg_catalog.current_setting('lc_messages'), "
                         "(SELECT source FROM pg_catalog.pg_settings WHERE name = 'lc_messages')", session)
    superuser = bool(asked) and asked[0][:1] == ['on']
    silenced = superuser and _version_num(asked) >= EVENT_TRIGGERS_OFF_SINCE
    if silenced:
        engine.client.quiet_databases.update(name for name in (target, temp) if name)
    # set for the maintenance database (ALTER DATABASE, ALTER ROLE ... IN DATABASE): the copy's sessions may get
    # another value, so it is taken as unknown ('', not English: the load reads the messages in any language)
    messages = asked[0][2] if asked and len(asked[0]) > 3 and asked[0][3] not in ('database', 'database user') else ''
    may_set = superuser
    if not superuser and not english_messages(messages) and _version_num(asked) >= PARAMETER_PRIVILEGES_SINCE:
        granted = _ask(engine, "SELECT pg_catalog.has_parameter_privilege('lc_messages', 'SET')::text", session)
        may_set = granted[:1] == [['true']]
    return superuser, silenced, messages, may_set


def english_messages(lc_messages: str) -> bool:
    """Whether sessions with this ``lc_messages`` get the server's messages in English (PostgreSQL's own language:
    C, POSIX, or an English locale, which no translation exists for); '' (the server's environment) is unknown."""
    value = lc_messages.strip().lower()
    return value in ('c', 'posix') or value.startswith(('c.', 'en_', 'en.')) or value == 'en'


def _version_num(rows: List[List[str]]) -> int:
    """server_version_num from the row of ``quiet_target``'s question (0 when it did not answer it)."""
    value = rows[0][1] if rows and len(rows[0]) > 1 else ''
    return int(value) if value.isdigit() else 0


# An event trigger's state (pg_event_trigger.evtenabled) and the ALTER EVENT TRIGGER clause that gives it.
EVENT_TRIGGER_STATES = {'O': 'ENABLE', 'R': 'ENABLE REPLICA', 'A': 'ENABLE ALWAYS'}
ENABLED_EVENT_TRIGGERS = "SELECT count(*) FROM pg_catalog.pg_event_trigger WHERE evtenabled <> 'D'"
POPULATED_MATVIEWS = "SELECT count(*) FROM pg_catalog.pg_class WHERE relkind = 'm' AND relispopulated"
# Before PostgreSQL 17 a plain dump's event triggers set so fire on the rest of its script (session_replication_role
# =replica silences only ENABLE ones), and a psql script cannot be reordered as pg_restore's -L list does: reading it
# for that would mean parsing SQL (dollar quotes, COPY data) on the way, where a mistake loads something else than
# the dump. What follows CREATE EVENT TRIGGER there is the REFRESH MATERIALIZED VIEW statements only (pg_dump sorts
# them last): a DDL guard fails the load (the copy is dropped, the target untouched), an audit trigger logs them.
_PLAIN_FIRES = ('before PostgreSQL 17 a plain-format dump (one psql script, run in pg_dump\'s order) creates its event '
                'triggers before its REFRESH MATERIALIZED VIEW statements, and one set ENABLE REPLICA or ENABLE '
                'ALWAYS fires on them (no setting silences it); a custom or directory format backup is restored with '
                'the event triggers created last. Back up in custom or directory format, set the trigger ENABLE (or '
                'disable it) in the source before the backup, or restore on PostgreSQL 17+')


def _firing(held: List[Tuple[str, str]]) -> str:
    return ', '.join('%s (%s)' % (quote_ident(name), EVENT_TRIGGER_STATES[state]) for name, state in held
                     if state in ('R', 'A'))


def _plain_event_trigger_hint(engine: PostgresEngine, manifest: Manifest, temp: str) -> str:
    """What to do when a plain dump's load failed with event triggers set ENABLE REPLICA/ALWAYS in the copy (a DDL
    guard refusing the script's REFRESH MATERIALIZED VIEW): '' for another format, or when there are none."""
    if (manifest.data.get('format') or 'custom') != 'plain':
        return ''
    try:
        rows = engine.query(CATALOG_SEARCH_PATH + "SELECT encode(convert_to(evtname::text, 'UTF8'), 'hex'), "  # nosec B608 # constants
                            "evtenabled FROM pg_event_trigger WHERE evtenabled IN ('R', 'A') ORDER BY 1",
                            database=temp)
    except (OpsReadyError, OSError):   # the copy's state cannot be told: the error says what failed
        return ''
    firing = _firing([(bytes.fromhex(r[0]).decode('utf-8'), r[1]) for r in rows if len(r) > 1])
    return ('. The dump\'s event trigger(s) %s were in place when the load failed: %s.' % (firing, _PLAIN_FIRES)
            if firing else '')


def _plain_fired_warnings(manifest: Manifest, held: List[Tuple[str, str]], refreshed: bool) -> List[str]:
    """A plain dump's load that went through with event triggers set ENABLE REPLICA/ALWAYS and materialized views
    refreshed: they fired on the refresh (what an audit trigger logged stays in the restored database)."""
    firing = _firing(held)
    if (manifest.data.get('format') or 'custom') != 'plain' or not refreshed or not firing:
        return []
    return ['Event trigger(s) %s fired on the load\'s REFRESH MATERIALIZED VIEW statements (what they record, '
            'such as a DDL audit log, holds rows of the load): %s.' % (firing, _PLAIN_FIRES)]


def hold_event_triggers(engine: PostgresEngine, database: str) -> List[Tuple[str, str]]:
    """Disable the enabled event triggers of ``database`` (the restored copy, before the swap): (name, state) of each,
    for ``release_event_triggers``. The restore's own statements in the copy after the load (extension members set
    again, foreign servers pointed nowhere) are DDL an event trigger of the database would see or refuse.
    ALTER EVENT TRIGGER fires none."""
    rows = engine.query(CATALOG_SEARCH_PATH + "SELECT encode(convert_to(evtname::text, 'UTF8'), 'hex'), "  # nosec B608 # constants
                        "evtenabled FROM pg_event_trigger WHERE evtenabled <> 'D' ORDER BY 1", database=database)
    held = [(bytes.fromhex(r[0]).decode('utf-8'), r[1]) for r in rows if r and r[1] in EVENT_TRIGGER_STATES]
    if held:
        engine.query(_one_transaction(['ALTER EVENT TRIGGER %s DISABLE' % quote_ident(name) for name, _state in held]),
                     database=database)
    return held


def release_event_triggers(engine: PostgresEngine, database: str, held: List[Tuple[str, str]]) -> None:
    """Give the event triggers ``hold_event_triggers`` disabled their state again."""
    if held:
        engine.query(_one_transaction(['ALTER EVENT TRIGGER %s %s' % (quote_ident(name), EVENT_TRIGGER_STATES[state])
                                       for name, state in held]), database=database)


def _plain_text_search_note(manifest: Manifest) -> List[str]:
    """A plain (SQL script) dump cannot be loaded in two passes (``two_passes``): psql runs it in one session,
    opened before the script creates the database's own text search configuration. Said in the result."""
    props = manifest.data.get('database_properties') or {}
    if (manifest.data.get('format') or 'custom') != 'plain' or not own_text_search_option(props):
        return []
    return ['default_text_search_config %s during the load (a plain dump is loaded in one session, opened before '
            'the configuration exists): generated columns, expression indexes and materialized views computed with '
            'to_tsvector/to_tsquery without a configuration used the server\'s default; take custom or directory '
            'backups of this database, or rebuild those objects' % props['session']['default_text_search_config']]


def _copy_fate(temp: str, error: Optional[str]) -> str:
    if error is None:
        return 'was dropped'
    return ('could not be dropped (%s): drop it by hand, DROP DATABASE %s WITH (FORCE)'
            % (error, quote_ident(temp)))


# a server's message with its SQLSTATE (VERBOSITY=verbose) of a class other than success, warning, no data
_ERROR_SQLSTATE = re.compile(r'(?:^|: )[^\s:"]+:  (?!0[012])[0-9A-Z]{5}: ')


def _server_error(exc: ToolError) -> str:
    """The server's own error first (pg_restore/psql print it among many lines), then the tool's summary."""
    lines = [line.strip() for line in (exc.stderr or '').splitlines()]
    # English severities, or (psql with VERBOSITY=verbose) a SQLSTATE of an error class: the server's any language
    errors = [line for line in lines if 'ERROR:' in line or 'FATAL:' in line or _ERROR_SQLSTATE.search(line)
              or line.startswith(('pg_restore: error: ', 'psql: error: '))]   # the tools' own words: English
    if errors:
        return 'the server reported: %s (%s)%s%s' % (' | '.join(errors[:3]), exc.message.split(':', 1)[0],
                                                     _search_path_hint(exc.stderr or ''), _owner_hint(exc.stderr or ''))
    return exc.message


# ALTER ... OWNER TO a role the restoring login is not a member of (a restore by a role that is not a superuser);
# PostgreSQL 16 says "must be able to SET ROLE". The name is printed as it is, quotes included: up to the line's end.
_NOT_MEMBER = re.compile(r'ERROR:\s+must be (?:a member of role|member of role|able to SET ROLE) "(.*)"\s*$', re.M)
# pg_restore's line after a failed statement (its own words, English): the ALTER ... OWNER TO that failed
_OWNER_COMMAND = re.compile(r'^Command was: ALTER [^\n]* OWNER TO ("(?:[^"\n]|"")+"|[^\s;"]+);\s*$', re.M)


def _owner_hint(stderr: str) -> str:
    """What to do when the load could not give an object to its owner: the restoring role (not a superuser) is not a
    member of the owner's role, so pg_restore's ALTER ... OWNER TO failed."""
    found = _NOT_MEMBER.search(stderr)
    if found is not None:
        return ('. The restoring role cannot give objects to role "%s", their owner in the backup: restore as a '
                'superuser, or as a member of that role (GRANT it to login_user), or with no_owner=true (the restoring '
                'role then owns every object and no privileges are restored)' % found.group(1))
    # The server's words in another language: pg_restore's own "Command was:" (English) names the statement.
    command = _OWNER_COMMAND.search(stderr) if 'ERROR:' not in stderr else None
    if command is None:
        return ''
    role = command.group(1)
    role = role[1:-1].replace('""', '"') if role.startswith('"') else role
    return ('. The restoring role cannot give objects to role "%s", their owner in the backup (ALTER ... OWNER TO '
            'failed; the server\'s message says why): restore as a superuser, or as a member of that role (GRANT it '
            'to login_user), with the role created first if this server lacks it (restore @globals), or with '
            'no_owner=true (the restoring role then owns every object and no privileges are restored)' % role)


# A name the load could not find, looked up inside a function's body (CONTEXT names the function).
_NOT_FOUND = re.compile(r'ERROR:\s+(?:function|relation|operator|type|schema|text search \w+) .* does not exist')
_IN_FUNCTION = re.compile(r'CONTEXT:\s+(?:SQL|PL/pgSQL) function "?([^"\s(]+)')


def _search_path_hint(stderr: str) -> str:
    """What to do when the load failed inside a function that names an object without its schema: pg_dump's output
    runs every statement with an empty search_path (CVE-2018-1058), so such a function works in the source (the
    database's search_path finds the object) and fails wherever the load calls it (a CHECK constraint, an index
    expression, a generated column, a materialized view). No option of the restore gets around it."""
    function = _IN_FUNCTION.search(stderr)
    if not _NOT_FOUND.search(stderr) or not function:
        return ''
    return ('. The load runs with an empty search_path (as pg_dump\'s output always does), and function %s names an '
            'object without its schema: in the source database give it one (ALTER FUNCTION ... SET search_path = '
            '<its schemas>, or qualify the names in its body), take a new backup and restore that (db_restore '
            'cannot load this one as it is)' % function.group(1))


# -- globals (pg_dumpall --globals-only) ---------------------------------------------------------------
def _read_globals(engine: PostgresEngine, manifest: Manifest) -> str:
    with open_artifact(manifest, engine.identities) as source:
        data = source.read()
    try:
        return bytes(data).decode('utf-8')
    except UnicodeDecodeError as exc:
        # pg_dumpall writes names and comments in the server's encoding: a SQL_ASCII cluster's may hold any byte
        raise OpsReadyError('The globals of %s are not UTF-8 text (byte %d: a role or tablespace name, comment or '
                            'setting of a SQL_ASCII cluster holds other bytes). Nothing was restored. Load the roles '
                            'by hand with psql from the decompressed artifact, with client_encoding set to the '
                            'encoding of those bytes.' % (manifest.id, exc.start))


def globals_plan(engine: PostgresEngine, script: str) -> Dict[str, Any]:
    """Which statements of the globals script to run on this server, and the report of what they do."""
    # imported here: a database restore (the common case) never parses a globals script
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.globals import parse
    statements = parse(script)
    roles = set(existing_roles(engine))
    tablespaces = {r[0] for r in engine.query('SELECT spcname FROM pg_tablespace')}
    in_script = [s.subject for s in statements if s.kind == 'create_role' and s.subject]
    create = [r for r in in_script if r not in roles]
    new_ts = [s.subject for s in statements if s.kind == 'create_tablespace' and s.subject not in tablespaces]
    known = roles | set(create)
    keep: List[str] = []
    tablespace_sql: List[str] = []
    memberships: List[str] = []
    existing_grants: List[Any] = []
    for st in statements:
        if st.kind in ('create_role', 'role'):
            if st.subject in create:
                keep.append(st.sql)
        elif st.kind == 'parameter':
            # a privilege on a parameter is the grantee's: given to a role created now, left alone (and named
            # when the server lacks it: parameter_warnings) for a role that exists, as its attributes are
            if st.subject in create:
                keep.append(st.sql)
            else:
                existing_grants.append(st)
        elif st.kind == 'membership':
            # A membership concerns a role created now (either side); two existing roles are left as they are.
            if st.subject in create or st.member in create:
                sql = st.sql
                grantor = re.search(r'\s+GRANTED\s+BY\s+("(?:[^"]|"")+"|\S+)\s*$', sql, re.I)
                if grantor and _unquote(grantor.group(1)) not in known:
                    sql = sql[:grantor.start()]  # the grantor (an old superuser name) is not on this server
                keep.append(sql)
                memberships.append('%s -> %s' % (st.subject, st.member))
        elif st.kind in ('create_tablespace', 'tablespace'):
            if st.subject in new_ts:
                tablespace_sql.append(st.sql)
        else:
            keep.append(st.sql)
    report = {'roles_created': create, 'roles_existing': [r for r in in_script if r in roles],
              'memberships_granted': memberships, 'tablespaces_created': new_ts}
    return {'roles_sql': keep, 'tablespace_sql': tablespace_sql, 'report': report,
            'existing_parameter_grants': existing_grants}


def parameter_warnings(engine: PostgresEngine, grants: List[Any]) -> List[str]:
    """The GRANT ... ON PARAMETER statements of the globals (``globals_plan``) for roles that existed (and PUBLIC)
    whose privileges this server lacks, named in one warning: the restore leaves existing roles as they are, and
    an application whose role can no longer SET its parameter fails at run time. One query for all of them."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.globals import (
        parameter_privileges)
    checks: List[Tuple[int, str]] = []
    unknown: List[int] = []
    for index, st in enumerate(grants):
        privileges = parameter_privileges(st)
        if privileges is None:
            if st.sql.lstrip()[:5].upper() == 'GRANT':
                unknown.append(index)
            continue
        grantee = quote_literal(st.subject if st.subject is not None else 'public')
        parameter = quote_literal(st.member or '')
        checks.extend((index, 'has_parameter_privilege(%s, %s, %s)' % (grantee, parameter, quote_literal(p)))
                      for p in privileges)
    lacking = set(unknown)
    if checks:
        try:
            rows = engine.query('SELECT ' + ', '.join('(%s)::text' % sql for _i, sql in checks))
            lacking.update(i for (i, _sql), held in zip(checks, rows[0] if rows else []) if held != 'true')
        except ToolError:
            lacking.update(i for i, _sql in checks)   # a parameter this server does not know: named
    if not lacking:
        return []
    return ['Privileges on parameters granted in the backed-up cluster to roles that already existed here were not '
            'given (existing roles are left as they are): %s. Run those that are still wanted by hand.'
            % '; '.join(' '.join(grants[i].sql.split()) for i in sorted(lacking))]


def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident.lower()


def restore_globals(engine: PostgresEngine, request: RestoreRequest, manifest: Manifest,
                    timer: Timer) -> Dict[str, Any]:
    """Roles and tablespaces onto the server: create what is missing, leave what exists untouched."""
    engine.ping()
    plan = globals_plan(engine, _read_globals(engine, manifest))
    timer.lap('inspect_target')
    database = request.database or 'postgres'
    if plan['report']['roles_created'] or plan['report']['memberships_granted']:
        # The statements carry password hashes: a 0600 file, never argv; one transaction. In a private 0700
        # directory (Scratch refuses a tmpdir another account could rename entries in): directly in such a tmpdir,
        # that account could swap the script for its own between its write and psql -f, run as the superuser.
        with Scratch('pg-globals', request.tmpdir, 'db_restore') as scratch, \
                secret_file(';\n'.join(plan['roles_sql']) + ';\n', suffix='.sql', directory=scratch.path) as path:
            try:
                engine.runner.run(engine.psql_argv('-1', '-f', path), env=engine.env(database), what='psql (globals)')
            except ToolError as exc:
                raise OpsReadyError('Restoring the roles of %s failed and was rolled back (no role was created): %s'
                                    % (manifest.id, _server_error(exc)), stderr=exc.stderr)
    for sql in plan['tablespace_sql']:
        # CREATE TABLESPACE cannot run in a transaction block: one statement at a time.
        try:
            engine.query(sql, database=database)
        except ToolError as exc:
            raise OpsReadyError('Restoring tablespaces of %s failed at "%s" (the roles are in place): %s. Create '
                                'the tablespace\'s directory on the server, owned by the postgres user, and run '
                                'again.' % (manifest.id, sql.split('\n')[0][:120], _server_error(exc)),
                                stderr=exc.stderr)
    warnings = parameter_warnings(engine, plan['existing_parameter_grants'])
    timer.lap('globals')
    outcome = {'target': dict(plan['report'], server=engine.server_label(), host=engine.conn.host,
                              port=engine.conn.port or 5432),
               'method_detail': 'psql (pg_dumpall --globals-only, missing roles only)', 'jobs': 1,
               'replaced': False, 'changed': _globals_change(plan['report'])}
    if warnings:
        outcome['warnings'] = warnings
    return outcome


def _globals_change(report: Dict[str, Any]) -> bool:
    return bool(report['roles_created'] or report['memberships_granted'] or report['tablespaces_created'])


def drop(engine: PostgresEngine, request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    """state=absent: drop a scratch database (DR drills); not while a restore into it runs."""
    if check_mode:
        return drop_named(engine, request, check_mode, _target, database_exists, drop_database)
    with target_lock(engine, _target(request)) as session:

        def drop_it(eng: PostgresEngine, name: str) -> None:
            # A restored subscriber database (a drill's scratch copy): DROP DATABASE refuses one with subscriptions.
            # Its restored, disabled subscriptions go (their slots on the publisher are the backed-up database's
            # and stay); an enabled one is refused, before anything changed.
            drop_restored_subscriptions(eng, name, session, only_disabled=True)
            if _template_flag(eng, name, session):   # a restored template database: DROP refuses a template
                _ask(eng, 'ALTER DATABASE %s IS_TEMPLATE false' % quote_ident(name), session)
            drop_database(eng, name, session)

        result = drop_named(engine, request, check_mode, _target,
                            lambda eng, name: database_exists(eng, name, session), drop_it)
        # A drill's clean-up (state=absent of its scratch database) also drops what a killed run into it left.
        stale = drop_stale(engine, _target(request), session)
        result['dropped_stale'] = stale['dropped_stale']
        if stale['warnings']:
            result['warnings'] = stale['warnings']
        result['changed'] = result['changed'] or bool(stale['dropped_stale'])
        return result


class PostgresRestore(Restorer):
    """db_restore for PostgreSQL logical dumps (pg_restore / psql into a database)."""

    restore_with = restore
    drop_with = drop

    def check(self, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
        return check(self.engine(request), request, chain)

    def streamed(self, request: RestoreRequest, chain: List[Manifest]) -> List[str]:
        if len(chain) == 1 and streams_checksum(request, chain[0]):
            return [chain[0].id]
        return []
