# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB / MySQL restore: the dump, then the binary logs replayed up to ``stop_at``, then one swap.

1. The target is inspected; a database holding tables, views, routines, triggers or events is refused
   unless ``replace`` is set. Every name is checked by ``engines/mysql/quote.py`` first: a name the
   server cannot hold, or one the binlog tool cannot rewrite, is refused before anything is created.
2. ``CREATE DATABASE <target>__opsready_restore_<id>`` with the source database's default character set
   and collation (recorded in the dump's manifest: a single-database dump holds no CREATE DATABASE);
   the dump is streamed into the ``mariadb`` client connected to it (the dump carries no ``USE``), through
   two filters: a trigger's qualifiers go (``TriggerQualifierStripper``), and a view's qualifiers naming the
   source database are renamed to the temporary one (``ViewQualifierRewriter``: mariadb-dump keeps them in
   a view that reads another database, or whose DEFINER does not exist; see ``VIEW_HEAD``).
   A third filter loads every event DISABLE (``EventStatusRewriter``: with event_scheduler ON an enabled one ran
   inside the copy while the rest loaded); the status each had is kept for the target. An event that ran inside
   the copy all the same fails the restore: it would have changed the restored data.
3. The binary logs of the chain are decompressed into ``tmpdir`` and piped through
   ``mariadb-binlog --database=<source> --rewrite-db='<source>-><temporary>'`` (events of other databases
   are skipped, the rest land in the temporary database), starting at the dump's binlog position and
   stopping at ``--stop-datetime`` (run with ``TZ=UTC``, ``stop_at`` given in UTC: binlog timestamps are
   UTC seconds; everything before the second of ``stop_at`` is replayed, nothing of that second).
   Replayed event statements (CREATE/ALTER EVENT) load DISABLE too (``ReplayEventRewriter``); the status they gave
   the event in the source is what the target gets.
   Account statements (GRANT, REVOKE, CREATE/ALTER/DROP/RENAME USER or ROLE, SET PASSWORD, SET DEFAULT ROLE) are
   never run: each becomes ``DO 0`` and the ``GrantLedger`` reads them. The stream is cut at each statement end
   (``/*!*/;`` and a line end), which a string may hold: a piece that leaves a string, a quoted name or a comment
   open is refused, read as the mariadb client reads it (the statement's sql_mode: NO_BACKSLASH_ESCAPES,
   ANSI_QUOTES; its client character set: a gbk, big5, sjis, cp932 or gb18030 character may end in a backslash
   byte), by the scan before anything is made and by the rewriter, a statement longer than its 64 KiB window too
   (``LiteralScan``). A statement that runs statements of its own (BEGIN NOT ATOMIC, CALL, EXECUTE, PREPARE...),
   which MariaDB never logs, is refused (``runs_statements``).
   Each statement is classified as the server that runs the replay reads it (``server_text``): a versioned comment
   (``/*!NNNNNN ...*/``, ``/*M!...*/``) whose version is newer than that server's (or MySQL 5.7's, 50700-99999, to
   MariaDB) is a comment, as the server logs it; one such that leaves a quote open or holds a comment (the mariadb
   client and the server that logged it read its text as code, so they end it elsewhere) is refused. A statement
   that fires, calls or writes through a trigger, function or view of the loaded copy whose body names another
   database of this server (``foreign_objects``: an audit table, mysql.*, the source itself) is refused before the
   replay: run again, as the object's DEFINER, it would write into that live database a second time.
   The replay must not write the source's GTIDs into this server's binary log (with ``gtid_strict_mode``
   that fails, without it the next restore reading such a log fails with "Found out of order GTID"):
   the ``SET @@session.gtid_domain_id/server_id/gtid_seq_no`` lines after each GTID event are removed
   from the stream, so the server gives the replayed transactions GTIDs of its own. ``mariadb-binlog``
   runs with ``--skip-gtid-strict-mode`` so logs that already hold such out-of-order GTIDs still read.
4. Swap. Views, routines, triggers and events cannot be moved by ``RENAME TABLE`` (a table with a
   trigger cannot even change schema), so their definitions are taken from the restored copy with
   ``mariadb-dump`` itself (definers, ``sql_mode``, character sets as the backup wrote them) and those
   of the old target likewise (to put back on failure). Then: the copy's triggers and the old target's
   views, routines, triggers and events are dropped; one ``RENAME TABLE`` moves the old tables aside
   and the restored ones in (all or none); the target gets the backup's default character set and
   collation; the restored definitions are loaded into it (a view's qualifiers naming the copy renamed to the
   target, as in step 2), events get their recorded status back.
   Any failure before the end undoes each step in reverse (new objects dropped, tables renamed back,
   old objects and character set put back) and says so; if even that fails the message names the
   aside database that holds the old tables and the file with the old definitions.

A run killed on the way (SIGKILL, an OOM kill: no clean-up runs) leaves the temporary database (or, between the
swap and its drop, the one holding the old tables). Both are created with a COMMENT naming their target
(``copy_marker``; MariaDB 10.5+, where a database has a comment), and the next run into that target (or its
``state: absent``), under the target's lock, finds them: a temporary copy (restored data, which the backup holds
again) is dropped (``dropped_stale``); an aside database is only reported (``kept_stale`` and a warning): the swap
is several steps, so a run killed in it may have left the old tables there and the target without its old views
and routines, and those are for the operator to check. A database that only looks like one (the name without the
marker) is never touched; on a server without database comments (MySQL) nothing is marked and nothing is swept.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import subprocess  # nosec B404 # argument lists, never a shell
from typing import IO, Any, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple, Union

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch, told_left
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import ALL_DATABASES, kill_and_reap
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    check_decryptable, open_artifact)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import (
    EVENT_HEADER as EVENT_HEADER_FIELDS, generated_unchecked_text, walk_binlog)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import (
    LOCK_WAIT_TIMEOUT, MAX_PACKET)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.grants import (
    DRY_PASSED, all_privileges, apply_grants, database_named, grant_statements, kept_database, read_grants,
    revoke_grants, server_roles)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import (
    check_identifier, qualified, quote_identifier, quote_literal)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
    Restorer, RestoreRequest, Timer, drop_named, temporary_name)
from ansible_collections.opsready.operations.plugins.module_utils.restore.stale import (
    CopyMarkers, copy_shape, drop_stale_copies, stem_of, told_on_failure)

CHARSET_NAME = re.compile(r'^[A-Za-z0-9_]{1,64}$')
EVENT_STATUS = {'ENABLED': 'ENABLE', 'DISABLED': 'DISABLE', 'SLAVESIDE_DISABLED': 'DISABLE ON SLAVE'}
OBJECT_KINDS = ('views', 'routines', 'triggers', 'events')
# Oracle-mode packages (information_schema.ROUTINES types): mariadb-dump --routines writes them like procedures
PACKAGE_KINDS = ('PACKAGE', 'PACKAGE BODY')
DUMP_EVENTS_UNSAFE = '\'"\\'  # mariadb-dump --events fails to select a database named with these (10.11)


def _q(name: str) -> str:
    return quote_identifier(name, 'database name')


def _schema_named(engine: Any, name: str) -> str:
    """``SCHEMA_NAME`` is the database the server means by ``name`` (``database_named``: with lower_case_table_names=1
    ``MyApp`` is the ``myapp`` it keeps, and ``İx`` its ``ix``; with 0 exactly ``name``)."""
    return database_named('SCHEMA_NAME', name, getattr(engine, 'flavor', 'mariadb'))


def _routines_of(engine: Any, name: str) -> str:
    """The information_schema.ROUTINES condition for the routines of database ``name``: ``ROUTINE_SCHEMA = 'İx'``
    finds none of those of the ``ix`` a server with lower_case_table_names=1 keeps (10.11; TABLES, VIEWS, TRIGGERS
    and EVENTS asked by the name do)."""
    return database_named('ROUTINE_SCHEMA', name, getattr(engine, 'flavor', 'mariadb'))


def schema_exists(engine: Any, name: str) -> bool:
    return kept_database(engine, name) is not None


def schema_defaults(engine: Any, name: str) -> Optional[Dict[str, str]]:
    rows = engine.query('SELECT DEFAULT_CHARACTER_SET_NAME, '  # nosec B608 # mysql_quote literal
                        'DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA '
                        'WHERE ' + _schema_named(engine, name))
    return {'character_set': rows[0][0], 'collation': rows[0][1]} if rows and len(rows[0]) == 2 else None


def tables_of(engine: Any, name: str) -> List[str]:
    """Everything ``RENAME TABLE`` moves: base tables, system-versioned tables and sequences (not views)."""
    rows = engine.query("SELECT TABLE_NAME FROM information_schema.TABLES "  # nosec B608 # mysql_quote literal
                        "WHERE TABLE_SCHEMA = %s AND "
                        "TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME" % quote_literal(name))
    return [r[0] for r in rows if r and r[0]]


def objects_of(engine: Any, name: str) -> Dict[str, List[Dict[str, str]]]:
    """Views, routines, triggers and events of schema ``name`` (what ``RENAME TABLE`` cannot move)."""
    lit = quote_literal(name)
    found: Dict[str, List[Dict[str, str]]] = {k: [] for k in OBJECT_KINDS}
    rows = engine.query(
        "SELECT 'views', TABLE_NAME, '', '' "  # nosec B608 # mysql_quote literal
        "FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
        "UNION ALL SELECT 'routines', ROUTINE_NAME, ROUTINE_TYPE, '' FROM information_schema.ROUTINES "
        "WHERE %s "
        "UNION ALL SELECT 'triggers', TRIGGER_NAME, EVENT_OBJECT_TABLE, '' FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s "
        "UNION ALL SELECT 'events', EVENT_NAME, STATUS, CONCAT(COALESCE(LAST_EXECUTED, ''), '|', DEFINER) "
        "FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA = %s" % (lit, _routines_of(engine, name), lit, lit))
    for row in rows:
        if len(row) == 4:
            last, _sep, definer = row[3].partition('|')
            found[row[0]].append({'name': row[1], 'detail': row[2], 'last': last, 'definer': definer})
    return found


def definer_clause(definer: str) -> str:
    """``DEFINER = `user`@`host``` from information_schema's ``user@host`` (ALTER EVENT would otherwise make
    the restore user the event's definer)."""
    if not isinstance(definer, str) or not definer or '\x00' in definer:
        raise OpsReadyError('Cannot read the definer %r.' % (definer,))
    user, sep, host = definer.rpartition('@')
    if not sep:  # a role
        return 'DEFINER = `%s`' % definer.replace('`', '``')
    return 'DEFINER = `%s`@`%s`' % (user.replace('`', '``'), host.replace('`', '``'))


def absent_definers(engine: Any, database: str, definers: Optional[Dict[str, List[str]]] = None) -> List[str]:
    """``user@host (kinds)`` for each DEFINER of ``database``'s views, routines, triggers and events (or of
    ``definers``: ``{definer: [kinds]}``, check mode's from the backup and the logs) that is no account (or role) of
    this server: the dump keeps definers, and a restore onto another server creates the objects all the same (the
    server only notes it). Empty where the accounts cannot be read."""
    if definers is None:
        definers = engine.database_objects(database).get('definers') or {}
    if not definers:
        return []
    try:
        accounts = {(r[0], r[1]) for r in engine.query('SELECT User, Host FROM mysql.user') if len(r) == 2}
    except ToolError:   # the restore's login may not read mysql.user: nothing to say
        return []
    absent = []
    for definer, kinds in sorted(definers.items()):
        user, sep, host = definer.rpartition('@')
        if ((user, host) if sep else (definer, '')) not in accounts:
            absent.append('%s (%s)' % (definer, ', '.join(kinds)))
    return absent


def absent_text(target_db: str, absent: List[str]) -> str:
    return ('Objects of %s have a DEFINER that is no account of this server: %s. Using such a view or routine fails '
            '(ERROR 1449 "The user specified as a definer does not exist"), an event of theirs does not run, and a '
            'trigger of theirs makes every write to its table fail. Create the account(s) (CREATE USER, with the '
            'privileges they had on the source server).' % (target_db, ', '.join(absent)))


def count_objects(objects: Dict[str, List[Dict[str, str]]]) -> Dict[str, int]:
    return {k: len(v) for k, v in objects.items() if v}


def missing_objects(held: Optional[Dict[str, Any]], loaded: Dict[str, int]) -> Optional[Dict[str, Dict[str, int]]]:
    """The kinds of which the dump loaded fewer objects than the backup's manifest says the source held (counted
    just before the dump), or None. The server itself drops some on creation (an overdue one-time event that is
    ON COMPLETION NOT PRESERVE): the restore goes on, and says so."""
    if not isinstance(held, dict):
        return None
    short = [k for k in OBJECT_KINDS if isinstance(held.get(k), int) and loaded.get(k, 0) < held[k]]
    if not short:
        return None
    return {'held': {k: held[k] for k in short}, 'loaded': {k: loaded.get(k, 0) for k in short}}


def _target(request: RestoreRequest) -> str:
    if not request.database:
        raise OpsReadyError('database (the target schema) is required.')
    return check_identifier(request.database, 'target database name')


def check_target(engine: Any, request: RestoreRequest) -> Dict[str, Any]:
    target_db = _target(request)
    kept = kept_database(engine, target_db)   # (lower_case_table_names=1: İx is kept as ix)
    exists = kept is not None
    tables = tables_of(engine, target_db) if exists else []
    objects = objects_of(engine, target_db) if exists else {k: [] for k in OBJECT_KINDS}
    held = count_objects(objects)
    if (tables or held) and not request.replace:
        what = ', '.join(['%d tables' % len(tables)] + ['%d %s' % (v, k) for k, v in held.items()])
        raise OpsReadyError('Target database %s on %s exists and is not empty (%s): set replace=true to '
                            'swap the restored copy in, or restore to another database name.'
                            % (target_db, engine.conn.where(3306), what), target=target_db)
    if objects['events'] and set(target_db) & set(DUMP_EVENTS_UNSAFE):
        raise OpsReadyError('Target database %r holds events, and mariadb-dump --events cannot read a database whose '
                            'name contains \' " or \\ (it fails to select it), so its events could not be put back '
                            'if the swap failed. Nothing was changed: drop its events first or restore to another name.'
                            % target_db, target=target_db)
    return {'exists': exists, 'kept': kept, 'tables': tables, 'objects': objects,
            'defaults': schema_defaults(engine, target_db) if exists else None,
            'comment': engine.database_comment(target_db) if exists else None}


def drop_schema(engine: Any, name: str) -> None:
    engine.query('DROP DATABASE IF EXISTS %s' % _q(name))


# The COMMENT a run's own databases carry while it runs, with the target's exact name (the copy's name keeps only
# [A-Za-z0-9_] of it, and long names share a truncated stem).
COPY_MARKERS = CopyMarkers('the old tables', 'moved', _q)
MARKERS = COPY_MARKERS.texts


def copy_marker(target: str, what: str = 'restore') -> str:
    return COPY_MARKERS.marker(target, what)


def mark(engine: Any, name: str, target: str, what: str = 'restore') -> bool:
    """Give a database the run just created its marker; False where databases have no comment (MySQL)."""
    try:
        engine.query(comment_sql(name, copy_marker(target, what)))
    except ToolError:
        return False
    return True


def _stems(target: str) -> Dict[str, str]:
    sanitized = re.sub(r'[^0-9A-Za-z_]', '_', target)
    return {'restore': stem_of(temporary_name(sanitized, limit=64), 'restore'),
            'old': stem_of(temporary_name(target, 'old', limit=64), 'old')}


def stale_copies(engine: Any, target: str) -> List[Tuple[str, str]]:
    """The databases a killed run into ``target`` left: named as this module names its copies of ``target`` AND
    bearing the marker that names ``target``. Only under ``target_lock`` (no run into ``target`` is live)."""
    markers = COPY_MARKERS.of(target)
    shapes = {what: copy_shape(stem, what) for what, stem in _stems(target).items()}
    found = []
    for row in engine.client.query_dicts('SELECT * FROM information_schema.SCHEMATA'):
        name, what = row.get('SCHEMA_NAME') or '', markers.get(row.get('SCHEMA_COMMENT') or '')
        if what and shapes[what].match(name):
            found.append((name, what))
    return sorted(found)


def drop_stale(engine: Any, target: str) -> Dict[str, Any]:
    """Drop the temporary copies ``stale_copies`` finds, report the aside databases: ``{'dropped_stale': [...],
    'kept_stale': [...], 'warnings': [...]}``."""
    def keep(name: str, what: str) -> Optional[str]:
        if what != 'old':
            return None
        return ('database %s holds what a db_restore into %s killed during its swap moved aside (the old tables): '
                'check %s (tables, views, routines, triggers, events), then drop it by hand, DROP DATABASE %s'
                % (name, target, target, _q(name)))

    def drop(name: str) -> Optional[str]:
        try:
            drop_schema(engine, name)
        except OpsReadyError as exc:
            return exc.message
        return None

    return drop_stale_copies(stale_copies(engine, target), target, drop, lambda name: 'DROP DATABASE %s' % _q(name),
                             keep)


def stop_datetime(stop_at: datetime.datetime) -> str:
    """``--stop-datetime`` value in UTC (the tool runs with TZ=UTC)."""
    return stop_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')


def charset_clause(defaults: Optional[Dict[str, Any]]) -> str:
    """`` CHARACTER SET x COLLATE y`` from a manifest's ``database_defaults`` (names checked: the manifest
    is a file on disk, its values never become SQL unchecked)."""
    if not defaults:
        return ''
    cs, coll = defaults.get('character_set'), defaults.get('collation')
    if not (isinstance(cs, str) and CHARSET_NAME.match(cs) and isinstance(coll, str) and CHARSET_NAME.match(coll)):
        raise OpsReadyError('The manifest records a database character set/collation that is not a plain name '
                            '(%r, %r): the manifest is damaged or was edited.' % (cs, coll))
    return ' CHARACTER SET %s COLLATE %s' % (cs, coll)


def comment_sql(database: str, comment: str) -> str:
    """``ALTER DATABASE ... COMMENT '...'`` for a comment from a manifest or the old target. COMMENT takes no
    hex literal (``quote_literal``): the quotes are doubled and the session gets NO_BACKSLASH_ESCAPES first, so
    a backslash in the text is itself under every server sql_mode."""
    if not isinstance(comment, str) or '\x00' in comment:
        raise OpsReadyError('The database comment %r cannot be set: the manifest is damaged or was edited.'
                            % (comment,))
    return ("SET SESSION sql_mode = CONCAT(@@session.sql_mode, ',NO_BACKSLASH_ESCAPES'); ALTER DATABASE %s "
            "COMMENT '%s'" % (_q(database), comment.replace("'", "''")))


PROBES = {
    'views': ('CREATE {definer} VIEW {db}.`__opsready_probe_v` AS SELECT 1 AS x',
              'DROP VIEW IF EXISTS {db}.`__opsready_probe_v`'),
    'routines': ('CREATE {definer} PROCEDURE {db}.`__opsready_probe_p`() BEGIN END',
                 'DROP PROCEDURE IF EXISTS {db}.`__opsready_probe_p`'),
    'triggers': ('CREATE {definer} TRIGGER {db}.`__opsready_probe_tr` BEFORE INSERT ON {db}.`__opsready_probe_t` '
                 'FOR EACH ROW SET @opsready_probe = 1', 'DROP TRIGGER IF EXISTS {db}.`__opsready_probe_tr`'),
    'events': ('CREATE {definer} EVENT {db}.`__opsready_probe_e` ON SCHEDULE EVERY 100 YEAR DISABLE '
               'DO SET @opsready_probe = 1', 'DROP EVENT IF EXISTS {db}.`__opsready_probe_e`'),
}


def probe_privileges(engine: Any, temp: str, needs: Optional[Dict[str, Any]]) -> List[str]:
    """Before the dump is loaded: create (and drop) one object of every kind the backup holds, with each
    of its definers, in the empty temporary database. A missing privilege (SET USER/SUPER for a foreign
    definer, CREATE ROUTINE, TRIGGER, EVENT, CREATE VIEW) fails here, not after hours of loading."""
    if not needs or not isinstance(needs.get('definers'), dict):
        return []
    db = _q(temp)
    probed = []
    if needs.get('triggers'):
        engine.query('CREATE TABLE %s.`__opsready_probe_t` (id INT)' % db)
    try:
        for definer, kinds in sorted(needs['definers'].items()):
            for kind in (k for k in OBJECT_KINDS if k in kinds):
                create, remove = PROBES[kind]
                try:
                    engine.query('%s; %s' % (create.format(definer=definer_clause(definer), db=db),
                                             remove.format(db=db)))
                except ToolError as exc:
                    raise probe_refusal(kind, definer, exc)
                probed.append('%s %s' % (kind, definer))
    finally:
        if needs.get('triggers'):
            engine.query('DROP TABLE IF EXISTS %s.`__opsready_probe_t`' % db)
    return probed


def probe_refusal(kind: str, definer: str, exc: ToolError) -> OpsReadyError:
    """The refusal of a restore whose login cannot create ``kind`` with DEFINER ``definer`` (``exc``: the server's)."""
    detail = (exc.stderr.strip().splitlines() or [exc.message])[-1]
    return OpsReadyError(
        'Restore refused before loading anything: the backup holds %s with DEFINER %s, and this login cannot create '
        'one here: %s. Grant the missing privilege (SET USER or SUPER for another definer; CREATE VIEW, CREATE '
        'ROUTINE, TRIGGER or EVENT), or restore as a user who has it.' % (kind, definer, detail),
        definer=definer, kind=kind)


# What a dry probe (``foresee_probe``) ends with once the server's privilege checks let it through: the copy's
# database does not exist (the trigger's table, in a trigger's case).
PROBE_PASSED = re.compile(r'ERROR (?:1049|1146) ')


def foresee_probe(engine: Any, target: str, needs: Optional[Dict[str, Any]]) -> None:
    """Check mode: the refusal of a login that may not create the copy (``copy_refusal``), and ``probe_privileges``'
    refusal, foreseen without writing. Its statements go to a copy's name of the
    same shape that no database has: the server checks the privileges (CREATE VIEW, CREATE ROUTINE, TRIGGER and
    SUPER while the binary log is on, EVENT, and SET USER or SUPER for another definer) before it finds no
    database. A view's and a trigger's definer it checks only after opening their tables: those definers are
    checked with the routine's statement, else the event's (the same check), when the login may create either."""
    temp = copy_name(target)
    db = _q(temp)
    try:   # the copy itself: CREATE on its name (a table in a database that does not exist: ERROR 1049 once allowed)
        engine.query('CREATE TABLE %s.`__opsready_probe_t` (id INT)' % db)
    except ToolError as exc:
        if CREATE_DENIED.search('%s %s' % (exc.message, exc.stderr)):
            raise copy_refusal(target, temp, exc)
    if not needs or not isinstance(needs.get('definers'), dict):
        return

    def dry(kind: str, definer: str) -> Optional[ToolError]:
        try:
            engine.query(PROBES[kind][0].format(definer=definer_clause(definer), db=db))
        except ToolError as exc:
            return None if PROBE_PASSED.search('%s %s' % (exc.message, exc.stderr)) else exc
        raise OpsReadyError('Check mode created %s in %s, a database that did not exist: drop it.' % (kind, db))

    for definer, kinds in sorted(needs['definers'].items()):
        for kind in (k for k in OBJECT_KINDS if k in kinds):
            failed = dry(kind, definer)
            if failed is None and kind in ('views', 'triggers'):
                for other in ('routines', 'events'):
                    said = dry(other, definer)
                    if said is None or 'ERROR 1227 ' in '%s %s' % (said.message, said.stderr):
                        failed = said
                        break
            if failed is not None:
                raise probe_refusal(kind, definer, failed)


# -- the binlog stream ---------------------------------------------------------------------------------
GTID_GROUP = re.compile(
    rb'(\n# at \d+\r?\n#\d{6} +\d{1,2}:\d\d:\d\d +server id \d+ +end_log_pos \d+ [^\n]*\bGTID \d+-\d+-\d+[^\n]*\n'
    rb'(?:/\*M?!100101 SET @@session\.skip_parallel_replication=\d+\*//\*!\*/;\r?\n)?)'
    rb'((?:/\*M?!\d+ SET @@session\.(?:gtid_domain_id|server_id|gtid_seq_no)=\d+\*//\*!\*/;\r?\n)+)')
GROUP_SPAN = 4096  # a "# at" line, a GTID header and its SET lines are far shorter than this


# A trigger's CREATE statement in a dump is its original text: "CREATE TRIGGER db.tr ... ON db.t" keeps the
# source database's name, and loading it into the temporary copy would create the trigger in the SOURCE
# database (or fail there with "already exists"). The qualifiers before the trigger and table names go.
_IDENT = rb'(?:`(?:[^`]|``)+`|"(?:[^"]|"")+"|[0-9A-Za-z_$\x80-\xff]+)'
TRIGGER_HEAD = re.compile(
    rb'(?m)^(/\*!50003 CREATE\*/ (?:/\*!50017 DEFINER=[^\n]*?\*/ )?/\*!50003 TRIGGER\s+)(' + _IDENT + rb'\s*\.\s*)?'
    rb'(' + _IDENT + rb'\s+(?:BEFORE|AFTER)\s+(?:INSERT|UPDATE|DELETE)\s+ON\s+)(' + _IDENT + rb'\s*\.\s*)?', re.I)
TRIGGER_MARK = b'/*!50003 CREATE*/'
LINE_CARRY = 64 * 1024  # an unfinished line longer than this that is no trigger header passes on at once


class _LineChunkFilter:
    """Chunks in, chunks out, matched on whole lines; an unfinished line too long to carry is passed on as it
    comes (``mid_line``), and its rest in the next chunks is no line start."""

    def __init__(self) -> None:
        self.carry = b''
        self.mid_line = False

    def _end_of_long_line(self, chunk: bytes) -> Tuple[bytes, Optional[bytes]]:
        """(the part of ``chunk`` that ends a long line passed on, what follows it; None while it goes on)."""
        if not self.mid_line:
            return b'', chunk
        end = chunk.find(b'\n') + 1
        if not end:
            return chunk, None
        self.mid_line = False
        return chunk[:end], chunk[end:]


class _MarkedLineFilter(_LineChunkFilter):
    """A ``_LineChunkFilter`` that rewrites whole lines with ``_sub``; an unfinished line is held back while it may
    still become one to rewrite (it starts with ``MARK``), else passed on once longer than ``LINE_CARRY``."""

    MARK = b''

    def _sub(self, data: bytes) -> bytes:
        raise NotImplementedError

    def feed(self, chunk: bytes) -> bytes:
        head, rest = self._end_of_long_line(chunk)
        if rest is None:
            return head
        data = self.carry + rest
        cut = data.rfind(b'\n') + 1
        self.carry = data[cut:]
        out = head + self._sub(data[:cut])
        if len(self.carry) > LINE_CARRY and not self.carry.startswith(self.MARK):
            out, self.carry, self.mid_line = out + self.carry, b'', True
        return out

    def flush(self) -> bytes:
        out, self.carry = self._sub(self.carry), b''
        return out


class TriggerQualifierStripper(_MarkedLineFilter):
    """Drops the database qualifier of the trigger and its table in a dump's trigger statements, chunk by
    chunk (only whole lines are matched; a long line that cannot be a trigger header is never held)."""

    MARK = TRIGGER_MARK

    def __init__(self) -> None:
        super().__init__()
        self.stripped = 0

    def _sub(self, data: bytes) -> bytes:
        if TRIGGER_MARK not in data:
            return data
        return TRIGGER_HEAD.sub(self._strip, data)

    def _strip(self, match: 're.Match[bytes]') -> bytes:
        if match.group(2) or match.group(4):
            self.stripped += 1
        return match.group(1) + match.group(3)


# A view's CREATE statement in a dump is the server's SHOW CREATE VIEW text, made while mariadb-dump's current
# database is the dumped one. The server leaves out the qualifiers naming that database only when the view reads
# nothing but tables of its own database (tables and columns then print bare) AND its columns were resolved
# when it was opened. A view that also reads another database's table keeps every qualifier
# ("from (`src`.`t` join `o`.`t`)"), and a view that cannot be opened for SHOW CREATE (its DEFINER does not exist:
# error 1449 stops the open before the columns are resolved) keeps them on its columns ("select `src`.`t`.`x`
# AS `x` from `t`"). Loaded into another database such a statement reads the SOURCE database's table, or fails
# "Unknown column src.t.x" and rolls the restore back. The qualifiers naming the dumped database are renamed to
# the database the statement is loaded into; those naming other databases stay. The statement is tokenized
# (quoted identifiers, strings, comments), so nothing inside a literal or another identifier changes.
# A view whose DEFINER is a role (no @host) is written on one line, the DEFINER and SQL SECURITY clauses inside
# the statement's own comment ("/*!50001 CREATE ALGORITHM=UNDEFINED DEFINER=`r` SQL SECURITY DEFINER VIEW `v` AS
# select `src`.`t`.`id` ..."), and always with the qualifiers on its columns.
VIEW_HEAD = re.compile(rb'(?m)^/\*!50001 CREATE ALGORITHM=\w+ (?:\*/\r?\n(?:/\*!50013 [^\n]*\*/\r?\n)?/\*!50001 '
                       rb'|DEFINER=`(?:[^`\n]|``)*`(?:@`(?:[^`\n]|``)*`)? SQL SECURITY \w+ )(?=VIEW )')
VIEW_MARK = b'/*!50001 CREATE ALGORITHM='
VIEW_CARRY = 256 * 1024 * 1024  # a view header block whose statement line is still unfinished after this fails
_VIEW_TOKEN = re.compile(
    rb'(?P<ident>`(?:[^`]|``)*`)'
    rb"|(?P<string>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\")"
    rb'|(?P<comment>/\*(?!!).*?\*/|(?:--[ \t]|#)[^\n]*)'
    rb'|(?P<end>\*/)'
    rb'|(?P<space>\s+)'
    rb'|(?P<dot>\.)'
    rb"|(?P<open>[`'\"]|/\*)"
    rb'|(?P<word>[0-9A-Za-z_$\x80-\xff]+)'
    rb'|(?P<other>.)', re.S)
# Words after which (and the parentheses that follow them) a two-part name is a table or sequence, never
# ``alias.column``: FROM/JOIN, NEXT/PREVIOUS VALUE FOR, the sequence functions.
TABLE_POSITION = {b'from', b'join', b'straight_join', b'for', b'nextval', b'lastval', b'setval'}


def view_tokens(line: bytes) -> Optional[List[Tuple[str, bytes]]]:
    """``(kind, text)`` tokens of a dump's view statement line (``VIEW `v` AS select ... */;``) up to and
    including the ``*/`` that closes its versioned comment, then ``;``; None when the line is not exactly
    that (an unterminated identifier, string or comment, or text after the end): such a line is never changed."""
    tokens: List[Tuple[str, bytes]] = []
    pos = 0
    while pos < len(line):
        match = _VIEW_TOKEN.match(line, pos)
        if match is None or match.lastgroup == 'open':
            return None
        kind = match.lastgroup or 'other'
        tokens.append((kind, match.group()))
        pos = match.end()
        if kind == 'end':
            return tokens + [('rest', line[pos:])] if line[pos:].rstrip(b'\r') == b';' else None
    return None


def _unquote(ident: bytes) -> bytes:
    return ident[1:-1].replace(b'``', b'`')


def requalify_view(line: bytes, own: bytes, into: bytes) -> Tuple[Optional[bytes], int]:
    """(``line`` with every qualifier naming database ``own`` renamed ``into``, how many); (None, 0) when the
    line cannot be tokenized.

    A qualifier is a backtick-quoted ``own`` followed by ``.`` and a name, not preceded by ``.`` (```o`.`own```
    is another database's table, a column or alias named own has no dot after it). The first of three parts
    (```own`.`t`.`c```) is always a database. Two parts (```own`.`x```) are ``db.table`` or ``db.function`` only
    if nothing in the view is itself named ``own`` (a table printed bare, an alias, a CTE); if something is,
    ```own`.`x``` is that thing's column unless it stands where only a table goes (after FROM, JOIN, FOR, or
    parentheses there) or is called (``(`` follows). The server quotes every identifier of a view's text, so an
    unquoted word is never taken for the database."""
    tokens = view_tokens(line)
    if tokens is None:
        return None, 0
    code = [tokens[i] for i in range(len(tokens)) if tokens[i][0] not in ('space', 'comment')]
    where = [i for i in range(len(tokens)) if tokens[i][0] not in ('space', 'comment')]

    def kind(n: int) -> str:
        return code[n][0] if 0 <= n < len(code) else ''

    def text(n: int) -> bytes:
        return code[n][1].lower() if 0 <= n < len(code) else b''

    def table_position(n: int) -> bool:
        while text(n - 1) == b'(':
            n -= 1
        return kind(n - 1) == 'word' and text(n - 1) in TABLE_POSITION

    own_at = [n for n in range(len(code)) if kind(n) == 'ident' and _unquote(code[n][1]) == own]
    # Something in the view named like the database: not followed by a dot, and a bare table (FROM/JOIN), an
    # alias (after a name or a closing parenthesis: the server prints no AS before a table alias) or a CTE (the
    # server prints its name unquoted: "with src as (select ...)").
    named = own_at + [n for n in range(len(code)) if kind(n) == 'word' and code[n][1] == own]
    scoped = any(kind(n + 1) != 'dot' and kind(n - 1) != 'dot' and (
        table_position(n) or kind(n - 1) == 'ident' or text(n - 1) == b')' or text(n + 1) == b'as'
        or text(n - 1) in (b'with', b'recursive')) for n in named)
    renamed = 0
    for n in own_at:
        if kind(n - 1) == 'dot' or kind(n + 1) != 'dot' or kind(n + 2) not in ('ident', 'word'):
            continue
        three_parts = kind(n + 3) == 'dot'
        if three_parts or not scoped or table_position(n) or text(n + 3) == b'(':
            tokens[where[n]] = ('ident', b'`' + into.replace(b'`', b'``') + b'`')
            renamed += 1
    return b''.join(t for _kind, t in tokens), renamed


class ViewQualifierRewriter(_LineChunkFilter):
    """Renames the qualifiers naming database ``own`` in a dump's view statements to ``into`` (the database the
    dump is loaded into), chunk by chunk. A view statement that cannot be tokenized and names ``own`` fails the
    load (it would be created reading the wrong database, or not at all); one that does not name it passes
    as it is."""

    def __init__(self, own: str, into: str) -> None:
        super().__init__()
        self.own = own.encode('utf-8')
        self.into = into.encode('utf-8')
        self.quoted_own = b'`' + self.own.replace(b'`', b'``') + b'`'
        self.renamed = 0
        self.views = 0

    def _sub(self, data: bytes) -> bytes:
        if VIEW_MARK not in data or self.own == self.into:
            return data
        out = []
        pos = 0
        for match in VIEW_HEAD.finditer(data):
            end = data.find(b'\n', match.end())
            end = len(data) if end < 0 else end
            line = data[match.end():end]
            self.views += 1
            new, count = requalify_view(line, self.own, self.into)
            if new is None:
                if self.quoted_own in line:
                    name = line[5:].split(b' ', 1)[0].decode('utf-8', 'replace')
                    raise OpsReadyError(
                        'The dump\'s definition of view %s names database %s, and it cannot be read to point it at the '
                        'restored database (an unterminated quote or comment, or text after its end). Nothing was '
                        'restored: the view would have read the wrong database. Check the dump file (%r...).'
                        % (name, self.own.decode('utf-8', 'replace'), line[:200]))
                continue
            self.renamed += count
            out += [data[pos:match.end()], new]
            pos = end
        out.append(data[pos:])
        return b''.join(out)

    def feed(self, chunk: bytes) -> bytes:
        head, rest = self._end_of_long_line(chunk)
        if rest is None:
            return head
        data = self.carry + rest
        cut = data.rfind(b'\n') + 1
        # A view header block (two short lines) whose statement line has not come yet is held back whole.
        hold = data.rfind(VIEW_MARK, max(0, cut - 4096), cut)
        if hold >= 0 and (hold == 0 or data[hold - 1:hold] == b'\n') and data.count(b'\n', hold, cut) <= 2:
            cut = hold
        self.carry = data[cut:]
        out = head + self._sub(data[:cut])
        if len(self.carry) > LINE_CARRY and not self.carry.startswith(VIEW_MARK):
            out, self.carry, self.mid_line = out + self.carry, b'', True
        elif len(self.carry) > VIEW_CARRY:
            raise OpsReadyError('A view statement in the dump is longer than %d MiB without a line end: the dump is '
                                'damaged. Nothing was restored.' % (VIEW_CARRY // 1024 // 1024))
        return out

    def flush(self) -> bytes:
        out, self.carry = self._sub(self.carry), b''
        return out


class _Chained:
    """Filters applied one after the other, with the ``feed``/``flush`` interface of each."""

    def __init__(self, *filters: Any) -> None:
        self.filters = filters

    def feed(self, chunk: bytes) -> bytes:
        for f in self.filters:
            chunk = f.feed(chunk)
        return chunk

    def flush(self) -> bytes:
        out = b''
        for f in self.filters:
            out = f.feed(out) + f.flush() if out else f.flush()
        return out


# A routine, trigger or event keeps the database collation it was created under. When that differs from the
# database's current one, mariadb-dump wraps the object in "ALTER DATABASE `src` CHARACTER SET x COLLATE y ;" and
# back, naming the DUMPED database: loaded elsewhere, that altered the live source, or failed ("Can't create/write
# to file ./src/db.opt") when the source was gone, as in a restore after a DROP; and the object got the copy's
# collation. The name is renamed to the database the script is loaded into.
COLLATION_SWITCH = re.compile(rb'(?m)^(ALTER DATABASE )(`(?:[^`]|``)+`)( CHARACTER SET \w+ COLLATE \w+ ;;?\r?)$')
COLLATION_MARK = b'ALTER DATABASE `'


class CollationSwitchRewriter(_MarkedLineFilter):
    """Renames database ``own`` to ``into`` in a dump's collation switch lines, chunk by chunk."""

    MARK = COLLATION_MARK

    def __init__(self, own: str, into: str) -> None:
        super().__init__()
        self.own = b'`' + own.encode('utf-8').replace(b'`', b'``') + b'`'
        self.into = b'`' + into.encode('utf-8').replace(b'`', b'``') + b'`'
        self.renamed = 0

    def _rename(self, match: 're.Match[bytes]') -> bytes:
        if match.group(2) != self.own:
            return match.group()
        self.renamed += 1
        return match.group(1) + self.into + match.group(3)

    def _sub(self, data: bytes) -> bytes:
        return COLLATION_SWITCH.sub(self._rename, data) if COLLATION_MARK in data and self.own != self.into else data


# A column whose DEFAULT draws from a sequence (``DEFAULT NEXT VALUE FOR seq``) is shown by SHOW CREATE TABLE, so
# dumped, as ``DEFAULT nextval(`src`.`seq`)``: qualified with the DUMPED database. Two things follow:
# * mariadb-dump wraps each table's rows in LOCK TABLES `t` WRITE ... UNLOCK TABLES, and an INSERT into such a table
#   opens the sequence too, which that lock does not cover: the load failed ("Table 'seq' was not locked with LOCK
#   TABLES"). The data's locks are dropped (they only speed up MyISAM inserts); lines inside DELIMITER blocks
#   (routines, triggers, events) are never touched.
# * loaded elsewhere the default kept drawing from the SOURCE database's sequence (a restore under another name), or
#   named one that does not exist (another server). The qualifier of a column definition's sequence default is
#   pointed at the database the dump is loaded into, and once the tables have their final database, at that one
#   (``requalify_sequence_defaults``).
DATA_LOCK = re.compile(rb'(?m)^(?:LOCK TABLES `(?:[^`]|``)+` WRITE|UNLOCK TABLES);\r?\n')
SEQUENCE_DEFAULT_MARK = b'  `'
# The dump loads its data under the sql_mode its header sets (NO_AUTO_VALUE_ON_ZERO, nothing strict): a date the
# source stored under ALLOW_INVALID_DATES ('2020-02-31', '2020-04-31 10:00:00') was turned into a zero date with a
# warning nobody read. The values of a dump were all accepted by the source once: the load allows them again.
DUMP_SQL_MODE = re.compile(rb"(?m)^(/\*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE=')([^'\r\n]*)(' \*/;)$")


class DumpLineRewriter(_MarkedLineFilter):
    """Drops the data's LOCK/UNLOCK TABLES lines and renames database ``own`` to ``into`` in the sequence defaults
    of column definition lines, outside DELIMITER blocks, chunk by chunk."""

    MARK = SEQUENCE_DEFAULT_MARK

    def __init__(self, own: Optional[str], into: str) -> None:
        super().__init__()
        self.in_block = False
        self.default = None
        if own and own != into:
            self.default = re.compile(rb'(?m)^(  `(?:[^`]|``)+` [^\n]*? DEFAULT \(?(?:nextval|lastval)\()'
                                      + re.escape(_q(own).encode('utf-8')) + rb'\.')
        self.into = _q(into).encode('utf-8')
        self.unlocked = 0
        self.requalified = 0

    def _sub(self, data: bytes) -> bytes:
        if b'DELIMITER ' not in data and not self.in_block:
            return self._outside(data)
        out: List[bytes] = []
        for line in data.splitlines(keepends=True):
            word = line.strip()
            if word.startswith(b'DELIMITER '):
                self.in_block = word != b'DELIMITER ;'
                out.append(line)
            else:
                out.append(line if self.in_block else self._outside(line))
        return b''.join(out)

    def _outside(self, data: bytes) -> bytes:
        if b'@OLD_SQL_MODE=' in data:
            data = DUMP_SQL_MODE.sub(lambda m: m.group(1) + b','.join(
                [w for w in m.group(2).split(b',') if w and w != b'ALLOW_INVALID_DATES'] + [b'ALLOW_INVALID_DATES'])
                + m.group(3), data)
        if b'LOCK TABLES' in data:
            data, n = DATA_LOCK.subn(b'', data)
            self.unlocked += n
        if self.default is not None and b'DEFAULT' in data:
            data, n = self.default.subn(lambda m: m.group(1) + self.into + b'.', data)
            self.requalified += n
        return data


# A dump's events are created as the source had them: "CREATE EVENT ... ENABLE" is scheduled the moment it loads, and
# with event_scheduler ON an event due every second ran inside the temporary copy before it could be quiesced (the
# restore then refused the copy, every time). Each event statement is loaded DISABLE; the status it had is recorded
# and given back after the swap. mariadb-dump and mysqldump write each event (SHOW CREATE EVENT's text in versioned
# comments) right after the line that sets its time zone:
#   /*!50003 SET time_zone             = 'SYSTEM' */ ;;
#   /*!50106 CREATE*/ /*!50117 DEFINER=`u`@`h`*/ /*!50106 EVENT `name` ON SCHEDULE ... ON COMPLETION [NOT] PRESERVE
#   ENABLE|DISABLE|DISABLE ON SLAVE [COMMENT '...'] DO body */ ;;
# The status is the first word after ON COMPLETION [NOT] PRESERVE outside identifiers and strings (the schedule holds
# only literals and keywords); the body after DO is never read. A routine body is touched only if it reproduces that
# two-line sequence and the grammar up to DO; an event statement that cannot be read is loaded as it is (the
# check after the load disables it, and refuses the copy if it ran).
EVENT_FRAME = rb"/\*!50003 SET time_zone += '[^'\r\n]*' \*/ ;;\r?\n"
EVENT_MARK = b'/*!50106 CREATE*/ '
EVENT_START = re.compile(rb'(?m)^' + EVENT_FRAME + rb'(?=' + re.escape(EVENT_MARK) + rb')')
EVENT_FRAME_LINE = re.compile(rb'(?m)^' + EVENT_FRAME + rb'\Z')
EVENT_HEADER_LIMIT = 64 * 1024  # definer, name, schedule and a 64-character comment, escaped: far shorter
_EVENT_TOKEN = re.compile(
    rb'(?P<ident>`(?:[^`]|``)*`)'
    rb"|(?P<string>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\")"
    rb'|(?P<version>/\*M?!\d*|\*/)'
    rb'|(?P<space>\s+)'
    rb'|(?P<word>[0-9A-Za-z_$\x80-\xff]+)'
    rb"|(?P<open>[`'\"])"
    rb'|(?P<other>.)', re.S)
EVENT_STATUS_WORDS = {b'ENABLE': 'ENABLED', b'DISABLE': 'DISABLED'}
NEED_MORE = 'more'


def event_header(data: bytes, at: int, definitive: bool) -> Any:
    """``(start, end, status, name)`` of the status words of the event statement at ``data[at:]`` (``status`` as
    information_schema.EVENTS says it); None if the statement is not an event's as the dump tools write it;
    ``NEED_MORE`` if ``data`` ends before its ``DO`` (unless ``definitive``)."""
    tokens: List[Tuple[str, bytes, int, int]] = []

    def next_code() -> Any:
        nonlocal at
        while True:
            match = _EVENT_TOKEN.match(data, at)
            if match is None or match.lastgroup == 'open' or (match.end() == len(data) and not definitive):
                return NEED_MORE if not definitive else None
            at = match.end()
            if match.lastgroup not in ('space', 'version'):
                tokens.append((match.lastgroup or 'other', match.group(), match.start(), match.end()))
                return tokens[-1]

    def word() -> Any:
        token = next_code()
        if not isinstance(token, tuple):
            return token
        return token[1].upper() if token[0] == 'word' else b''

    got = word()
    if got != b'CREATE':
        return got if got in (NEED_MORE, None) else None
    got = word()
    if got == b'DEFINER':
        while got not in (b'EVENT', NEED_MORE, None):
            got = word()
    if got != b'EVENT':
        return got if got in (NEED_MORE, None) else None
    name = next_code()
    if name is NEED_MORE or name is None:
        return name
    if name[0] == 'word' and name[1].upper() == b'IF':
        for want in (b'NOT', b'EXISTS'):
            got = word()
            if got != want:
                return got if got in (NEED_MORE, None) else None
        name = next_code()
        if not isinstance(name, tuple):
            return name
    follows = next_code()
    if isinstance(follows, tuple) and follows[1] == b'.':   # db.name
        name = next_code()
        follows = next_code()
    if not isinstance(name, tuple) or name[0] not in ('ident', 'word') or not isinstance(follows, tuple):
        return follows if follows in (NEED_MORE, None) else None
    if follows[1].upper() != b'ON':
        return None
    # the schedule: literals and keywords up to ON COMPLETION
    last = b''
    while True:
        got = word()
        if got in (NEED_MORE, None):
            return got
        if last == b'ON' and got == b'COMPLETION':
            break
        if got == b'DO':
            return None
        last = got
    got = word()
    if got == b'NOT':
        got = word()
    if got != b'PRESERVE':
        return got if got in (NEED_MORE, None) else None
    got = word()
    if got not in EVENT_STATUS_WORDS:
        return got if got in (NEED_MORE, None) else None
    start, end, status = tokens[-1][2], tokens[-1][3], EVENT_STATUS_WORDS[got]
    got = word()
    if got in (NEED_MORE, None):
        return got
    if status == 'DISABLED' and got == b'ON':
        got = word()
        if got not in (b'SLAVE', b'REPLICA'):   # MySQL 8.4 prints DISABLE ON REPLICA
            return got if got in (NEED_MORE, None) else None
        end, status = tokens[-1][3], 'SLAVESIDE_DISABLED'
        got = word()
    if got not in (b'COMMENT', b'DO'):
        return got if got in (NEED_MORE, None) else None
    text = name[1]
    if name[0] == 'ident':
        text = _unquote(text)
    return start, end, status, text.decode('utf-8', 'replace')


class EventStatusRewriter(_LineChunkFilter):
    """Every event statement of a dump loads DISABLE (or, with ``wanted``, with the status it names for the event;
    one it does not name is left as it is), chunk by chunk; ``statuses``: event name -> the status the dump gave it
    (information_schema's words); ``unread``: event statements loaded as they were."""

    def __init__(self, wanted: Optional[Dict[str, str]] = None) -> None:
        super().__init__()
        self.wanted = wanted
        self.statuses: Dict[str, str] = {}
        self.unread = 0

    def _status_words(self, name: str, found: bytes) -> bytes:
        if self.wanted is None:
            return b'DISABLE'
        return EVENT_STATUS.get(self.wanted.get(name, ''), '').encode('ascii') or found

    def _sub(self, data: bytes, final: bool) -> Tuple[bytes, int]:
        """(``data`` up to the returned index, rewritten); the rest is carried."""
        cut = len(data) if final else data.rfind(b'\n') + 1
        if not final and cut:
            # a frame line whose event statement has not come yet is held back
            frame = data.rfind(b'\n', 0, cut - 1) + 1
            if EVENT_FRAME_LINE.match(data, frame, cut) and EVENT_MARK.startswith(data[cut:cut + len(EVENT_MARK)]):
                cut = frame
        if b'SET time_zone' not in data:
            return data[:cut], cut
        out: List[bytes] = []
        pos = 0
        for match in EVENT_START.finditer(data):
            if match.start() >= cut:
                break
            if match.start() < pos:
                continue
            found = event_header(data, match.end(), final or len(data) - match.end() > EVENT_HEADER_LIMIT)
            if found == NEED_MORE:
                out.append(data[pos:match.start()])
                return b''.join(out), match.start()
            if found is None:
                self.unread += 1
                continue
            start, end, status, name = found
            self.statuses[name] = status
            out += [data[pos:start], self._status_words(name, data[start:end])]
            pos = end
        if pos > cut:   # the statement's line is still unfinished: its rest passes on as it comes
            out.append(data[pos:])
            self.mid_line = not final
            return b''.join(out), len(data)
        out.append(data[pos:cut])
        return b''.join(out), cut

    def feed(self, chunk: bytes) -> bytes:
        head, rest = self._end_of_long_line(chunk)
        if rest is None:
            return head
        data = self.carry + rest
        out, keep = self._sub(data, False)
        self.carry = data[keep:]
        if len(self.carry) > LINE_CARRY and not EVENT_START.match(self.carry):
            out, self.carry, self.mid_line = out + self.carry, b'', True
        return head + out

    def flush(self) -> bytes:
        out, _keep = self._sub(self.carry, True)
        self.carry = b''
        return out


# The binary logs hold event statements as their author wrote them (the server adds the DEFINER to a CREATE):
#   CREATE DEFINER=`u`@`h` EVENT e ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE DO CALL note()
#   ALTER EVENT e RENAME TO f ENABLE
# Replayed as written, "CREATE EVENT" (ENABLE when it names no status) and "ALTER EVENT ... ENABLE" scheduled the
# event inside the temporary copy at once: with event_scheduler ON it ran there while the replay went on (its body
# may write to any database of the server, the production one among them), and the restore refused the copy only
# afterwards. A replayed "ALTER EVENT ... DISABLE" left the status the dump gave the target unchanged. Each replayed
# event statement loads DISABLE; the status it names (a CREATE without one: ENABLE) is recorded for the target,
# following RENAME TO. The statement is tokenized up to DO (the body is never read); one that cannot be read is
# replayed as it is (the check after the replay disables it, and refuses the copy if it ran).
REPLAY_EVENT_HEAD = re.compile(rb'(?is)\A(?:\s|#[^\n]*\n)*(CREATE|ALTER)\b(.{0,1024}?)\bEVENT\b')
STATEMENT_CARRY = 64 * 1024  # an unfinished statement longer than this passes on (its header, if an event's, read)


def replay_event_edit(statement: bytes, complete: bool, reading: SqlReading = None) -> Any:
    """``(at, end, words, old_name, new_name, status, only_if_new)`` for the event statement ``statement``
    (``data[at:end]`` replaced by ``words``; ``status`` None when the statement names none and keeps the event's);
    None if it is no event statement, or cannot be read; ``NEED_MORE`` if ``statement`` ends before its DO (and
    not ``complete``). ``reading``: the statement's sql_mode (``StreamMode.reading``: under ANSI_QUOTES "e" is the
    event's name; read as a string, the statement was passed on as written and the event loaded ENABLED)."""
    head = REPLAY_EVENT_HEAD.match(statement)
    if head is None:
        return None
    create = head.group(1).upper() == b'CREATE'
    code = []
    reading = reading or DEFAULT_READING
    for match in _SQL_TOKENS[reading[:2]].finditer(_whole_characters(statement, reading), head.start(1)):
        kind = match.lastgroup or 'other'
        if kind in ('space', 'comment'):
            continue
        if not complete and match.end() == len(statement):
            return NEED_MORE   # a word, a name or a string may go on in the next chunk
        if kind == 'other' and match.group() in (b"'", b'"', b'`', b'/'):
            return NEED_MORE if not complete else None   # unterminated, or a versioned comment: not read
        code.append((kind, statement[match.start():match.end()], match.start(), match.end()))
        if kind == 'word' and match.group().upper() == b'DO':
            break
    else:
        if not complete:
            return NEED_MORE

    def upper(n: int) -> bytes:
        return code[n][1].upper() if n < len(code) and code[n][0] == 'word' else b''

    def name_at(n: int) -> Tuple[Optional[str], int]:
        """(the event name starting at code[n], the index after it); a qualifier is skipped."""
        if n + 1 < len(code) and code[n + 1][1] == b'.':
            n += 2
        # (a "string" where a name stands is one: no string is valid there, whatever the sql_mode)
        if n >= len(code) or not (code[n][0] in ('ident', 'word') or code[n][1][:1] == b'"'):
            return None, n
        text = code[n][1] if code[n][0] == 'word' else _ident_name(code[n][1])
        return text.decode('utf-8', 'replace'), n + 1

    n = 1
    if create and upper(n) == b'OR' and upper(n + 1) == b'REPLACE':
        n += 2
    if upper(n) not in (b'DEFINER', b'EVENT'):   # another statement (ALTER TABLE t ADD event INT)
        return None
    while n < len(code) and upper(n) != b'EVENT':   # DEFINER = ...
        n += 1
    n += 1
    only_if_new = False
    if create and upper(n) == b'IF' and upper(n + 1) == b'NOT' and upper(n + 2) == b'EXISTS':
        n, only_if_new = n + 3, True
    old, n = name_at(n)
    if old is None:
        return None
    new: str = old
    depth, status, at, end = 0, None, -1, -1
    while n < len(code):
        token, word = code[n][1], upper(n)
        depth += (token == b'(') - (token == b')')
        if depth == 0 and word in (b'DO', b'COMMENT'):
            break
        if depth == 0 and word == b'RENAME' and upper(n + 1) == b'TO' and not create:
            renamed, n = name_at(n + 2)
            if renamed is None:
                return None
            new = renamed
            continue
        if depth == 0 and word in EVENT_STATUS_WORDS:
            status, at, end = EVENT_STATUS_WORDS[word], code[n][2], code[n][3]
            if word == b'DISABLE' and upper(n + 1) == b'ON' and upper(n + 2) in (b'SLAVE', b'REPLICA'):
                status, end, n = 'SLAVESIDE_DISABLED', code[n + 2][3], n + 2
        n += 1
    if status is None and create:   # CREATE EVENT without a status clause: ENABLE
        if n >= len(code):
            return None
        status, at, end = 'ENABLED', code[n][2], code[n][2]
        return at, end, b'DISABLE ', old, new, status, only_if_new
    if status is None:
        return 0, 0, b'', old, new, None, False
    return at, end, b'DISABLE', old, new, status, only_if_new


LEADING_COMMENTS = re.compile(rb'\A(?:\s|#[^\n]*\n)*')


def drop_account_statement(statement: bytes, reading: SqlReading = None) -> bytes:
    """``statement`` (one of the binlog stream's) as the replay sends it: an account statement (GRANT, REVOKE,
    CREATE/ALTER/DROP/RENAME USER or ROLE) as a no-op. Accounts and privileges are the server's, not the database's:
    replayed into the copy they would change this server's live accounts (or fail where they exist); the
    ``GrantLedger`` reads them instead and gives the restored database the privileges they leave. ``reading``: the
    statement's (``StreamMode.reading``)."""
    head = LEADING_COMMENTS.match(statement)
    at = head.end() if head else 0
    if statement_kind(statement[at:], reading) != 'account':
        return statement
    return statement[:at] + b'DO 0\n'


class ReplayEventRewriter:
    """The binlog stream (``mariadb-binlog`` output, statements ended by ``/*!*/;``) with each event statement
    loading DISABLE; ``statuses`` (event name -> information_schema status, started from the dump's) becomes the
    status each event has in the source at the end of the replay."""

    def __init__(self, statuses: Optional[Dict[str, str]] = None, server: ReplayServer = None) -> None:
        self.statuses: Dict[str, str] = dict(statuses or {})
        self.server = server   # the server the stream is replayed into (``server_text``)
        self.carry = b''
        self.passing = False   # the rest of a long statement, passed on up to its end
        self.dropping = False   # the rest of a long account statement, dropped up to its end (its start: DO 0)
        self.mode = StreamMode()
        self.scan = LiteralScan()   # a long statement's literals, read as it is passed on or dropped

    def _key(self, name: str) -> str:
        """The recorded name ``name`` is (event names are case-insensitive), or ``name``."""
        return next((k for k in self.statuses if k.lower() == name.lower()), name)

    def _rewrite(self, statement: bytes, complete: bool) -> Any:
        """``statement`` rewritten, None if it needs more (not ``complete``)."""
        if complete:
            # (check_statements refused it before the replay; a long one is read as it is passed on: ``_split``)
            if self.mode.splits(statement):
                self._refuse(SPLIT_LITERAL)
            self.mode.see(statement)
        read = server_text(statement, self.server, self.mode.reading())
        if read is None:
            self._refuse('%s: %s' % (SKIPPED_CODE, _shown(statement)))
        statement = read   # the same length: a skipped versioned comment made the plain comment the server reads
        if complete:
            if runs_statements(statement, self.mode.reading()):
                self._refuse('%s: %s' % (RUNS_STATEMENTS, _shown(statement)))
        found = replay_event_edit(statement, complete, self.mode.reading())
        if found == NEED_MORE:
            return None
        if found is None:
            return drop_account_statement(statement, self.mode.reading())
        at, end, words, old, new, status, only_if_new = found
        if only_if_new and self._key(old) in self.statuses:
            status = None   # CREATE EVENT IF NOT EXISTS of an event the copy holds: a no-op there too
        kept = self.statuses.pop(self._key(old), None) if new != old else self.statuses.get(self._key(old))
        if status is not None:
            self.statuses[self._key(new)] = status
        elif kept is not None:
            self.statuses[self._key(new)] = kept
        return statement[:at] + words + statement[end:] if words else statement

    @staticmethod
    def _refuse(why: str) -> NoReturn:
        raise OpsReadyError('The replay met a statement %s. The restore was stopped; the temporary copy is dropped. '
                            'Restore to a point before it (stop_at), or take a full backup after it and restore from '
                            'that.' % why)

    def _long(self, read: bytes) -> None:
        """A long statement passed on or dropped from here: ``read`` its first bytes."""
        self.scan = self.mode.scan()
        self.scan.feed(read)

    def feed(self, chunk: bytes) -> bytes:
        data = self.carry + chunk
        out: List[bytes] = []
        pos = 0
        if self.passing or self.dropping:
            end = data.find(STATEMENT_END)
            if end < 0:
                keep = max(0, len(data) - len(STATEMENT_END) + 1)
                self.carry = data[keep:]
                self.scan.feed(data[:keep])
                return b'' if self.dropping else data[:keep]
            split = self.scan.feed(data[:end], final=True)
            if self.scan.ambiguous:
                self._refuse(MULTIBYTE_LONG)
            if split:
                # the statement end is in a string (a quoted name, a comment) of the long statement: what follows
                # it is the statement's text, not statements
                self._refuse(SPLIT_LITERAL)
            pos = end + len(STATEMENT_END)
            out.append(STATEMENT_END if self.dropping else data[:pos])
            self.passing = self.dropping = False
        while True:
            end = data.find(STATEMENT_END, pos)
            if end < 0:
                break
            out += [self._rewrite(data[pos:end], True), STATEMENT_END]
            pos = end + len(STATEMENT_END)
        rest = data[pos:]
        self.carry = rest
        head = LEADING_COMMENTS.match(rest)
        at = head.end() if head else 0
        if len(rest) - at > STATEMENT_CARRY:
            # a long statement is passed on as it comes: an account statement's must be known before any of it is
            read = server_text(rest[at:at + STATEMENT_CARRY], self.server, self.mode.reading())
            if read is None:
                self._refuse('%s: %s' % (SKIPPED_CODE, _shown(rest[at:at + STATEMENT_CARRY])))
            kind = head_kind(read, self.mode.reading())
            if kind is None:
                self._refuse(UNREADABLE_HEAD)
            if kind == 'compound':
                self._refuse('%s: %s' % (RUNS_STATEMENTS, _shown(rest[at:at + STATEMENT_CARRY])))
            if kind == 'account':
                out.append(rest[:at] + b'DO 0\n')
                self.carry, self.dropping = rest[-(len(STATEMENT_END) - 1):], True
                self._long(rest[at:-(len(STATEMENT_END) - 1)])
                return b''.join(out)
        if len(rest) > STATEMENT_CARRY:
            rewritten = self._rewrite(rest, False) if REPLAY_EVENT_HEAD.match(rest) else rest
            if rewritten is None and len(rest) <= EVENT_HEADER_LIMIT:
                return b''.join(out)
            if rewritten is None:
                rewritten = rest
            keep = len(STATEMENT_END) - 1
            out.append(rewritten[:-keep])
            self.carry, self.passing = rewritten[-keep:], True
            self._long(rewritten[:-keep])
        return b''.join(out)

    def flush(self) -> bytes:
        data, self.carry = self.carry, b''
        if self.dropping:
            return b''
        if self.passing or not data:
            return data
        return self._rewrite(data, True)


def sequence_defaults(engine: Any, database: str) -> List[Tuple[str, str, str]]:
    """(table, column, default expression) of ``database``'s columns whose DEFAULT calls a sequence function."""
    rows = engine.query(
        'SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS '  # nosec B608 # literal
        "WHERE TABLE_SCHEMA = %s AND (COLUMN_DEFAULT LIKE '%%nextval(%%' OR COLUMN_DEFAULT LIKE '%%lastval(%%')"
        % quote_literal(database))
    return [(r[0], r[1], r[2]) for r in rows if len(r) == 3]


def requalify_sequence_defaults(engine: Any, database: str, own: str, defaults: List[Tuple[str, str, str]]) -> int:
    """Point the sequence defaults of ``database``'s tables (read from them while they were in ``own``) at
    ``database``: ``ALTER TABLE ... ALTER COLUMN ... SET DEFAULT`` (no table copy)."""
    pattern = re.compile(r'((?:nextval|lastval)\()' + re.escape(_q(own)) + r'\.')
    done = 0
    for table, column, expression in defaults:
        renamed = pattern.sub(lambda m: m.group(1) + _q(database) + '.', expression)
        if renamed != expression:
            engine.query('ALTER TABLE %s ALTER COLUMN %s SET DEFAULT (%s)'
                         % (qualified(database, table), _q(column), renamed))
            done += 1
    return done


# mariadb-dump writes an event's DEFINER from SHOW EVENTS' ``user@host``, split at its FIRST '@': the definer
# 'we@b'@'%' came out as DEFINER=`we`@`b@%`, and the load failed ("Malformed hostname (illegal symbol: '@')"), the
# whole restore rolled back. A host name cannot hold '@' (the server refuses it), so the split belongs at the last one.
EVENT_DEFINER = re.compile(rb'(?m)^(' + re.escape(EVENT_MARK) + rb'/\*!50117 DEFINER=`)((?:[^`\n]|``)*)`@`'
                           rb'((?:[^`\n]|``)*@(?:[^`\n]|``)*)`')


class EventDefinerFixer(_MarkedLineFilter):
    """Moves what precedes the last '@' of an event's DEFINER host into its user name, chunk by chunk."""

    MARK = EVENT_MARK

    def __init__(self) -> None:
        super().__init__()
        self.fixed = 0

    def _fix(self, match: 're.Match[bytes]') -> bytes:
        head, _at, host = match.group(3).rpartition(b'@')
        self.fixed += 1
        return match.group(1) + match.group(2) + b'@' + head + b'`@`' + host + b'`'

    def _sub(self, data: bytes) -> bytes:
        return EVENT_DEFINER.sub(self._fix, data) if EVENT_MARK in data else data


def with_event_status(script: bytes, wanted: Dict[str, str]) -> bytes:
    """``script`` (events dumped from the copy, all disabled) with each event's CREATE giving it the status
    ``wanted`` names: an ALTER EVENT afterwards would record the restore session's character set and the database's
    current collation as the event's, not the source's."""
    if not wanted:
        return script
    rewriter = EventStatusRewriter(wanted)
    return rewriter.feed(script) + rewriter.flush()


def requalify_script(script: bytes, own: str, into: str) -> bytes:
    """``script`` (a whole dump of views and other objects of ``own``) with its view statements and collation
    switches pointed at ``into``."""
    rewriter = _Chained(ViewQualifierRewriter(own, into), CollationSwitchRewriter(own, into))
    return rewriter.feed(script) + rewriter.flush()


def _load_dump(engine: Any, full: Manifest, temp: str) -> Dict[str, str]:
    """The dump into ``temp`` through the trigger, view and event filters; returns the status each event had in the
    dump (each was loaded disabled: ``EventStatusRewriter``)."""
    check_decryptable(full, engine.identities)
    events = EventStatusRewriter()
    filters: List[Any] = [TriggerQualifierStripper(), DumpLineRewriter(full.database, temp), EventDefinerFixer(),
                          events]
    if full.database:
        filters += [ViewQualifierRewriter(full.database, temp), CollationSwitchRewriter(full.database, temp)]
    with open_artifact(full, engine.identities) as source:
        _feed_client(engine, temp, source, _Chained(*filters), 'load dump')
    return events.statuses


def load_options(engine: Any) -> List[str]:
    """Options of the client that loads a dump or replays binary logs into the copy."""
    options = ['--binary-mode', MAX_PACKET]
    if engine.flavor == 'mariadb':
        # Rows that break a CHECK constraint (written with check_constraint_checks=0, as orphan rows are written with
        # foreign_key_checks=0) made the whole load fail ("CONSTRAINT `t.c` failed"): the dump turns off the foreign
        # key checks itself, not these.
        options.append('--init-command=SET SESSION check_constraint_checks = 0')
    return options


def _feed_client(engine: Any, database: str, source: IO[bytes], stripper: Any, what: str) -> None:
    """``source`` through ``stripper`` into the client connected to ``database``; the client's own exit
    status says why it stopped reading, and it is never left running."""
    with engine.defaults_file() as head:
        client = [engine.tool('client')] + head + load_options(engine) + ['--database=%s' % database]
        loader = engine.runner.popen(client, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            try:
                _pump(source, loader.stdin, stripper)
            except BrokenPipeError:
                pass  # the loader stopped: its exit status below says why
            try:
                loader.stdin.close()
            except BrokenPipeError:
                pass
            engine.runner.finish(loader, client, what='%s (%s)' % (engine.flavor, what))
        except BaseException:
            kill_and_reap(loader)
            raise


class GtidStripper(_LineChunkFilter):
    """Removes the GTID assignments ``mariadb-binlog`` prints after each GTID event.

    Only ``SET @@session.gtid_domain_id/server_id/gtid_seq_no`` lines that directly follow a ``# at N``
    line and a GTID event header are dropped, so text inside a statement (a DDL literal) is never
    touched unless it reproduces that whole sequence. Works on chunks (a line loop in Python ran at
    45 MB/s); text after the last ``# at`` is carried to the next chunk so a group is never split.
    """

    def __init__(self) -> None:
        super().__init__()
        self.removed = 0

    def _strip(self, data: bytes) -> bytes:
        def keep(match: 're.Match[bytes]') -> bytes:
            self.removed += match.group(2).count(b'\n')
            return match.group(1)
        # The pattern starts with the literal "\n# at " (fast search); a chunk starts at a line start.
        return GTID_GROUP.sub(keep, b'\n' + data)[1:]

    def feed(self, chunk: bytes) -> bytes:
        head, rest = self._end_of_long_line(chunk)
        if rest is None:
            return head
        chunk = rest
        data = self.carry + chunk
        cut = data.rfind(b'\n# at ') + 1  # 0: none
        if (cut == 0 and not data.startswith(b'# at ')) or len(data) - cut > GROUP_SPAN:
            cut = data.rfind(b'\n') + 1  # no group can still be open: keep only the unfinished line
        self.carry = data[cut:]
        out = head + self._strip(data[:cut])
        if len(self.carry) > GROUP_SPAN and b'\n' not in self.carry:
            # An unfinished line longer than any group (a statement with a big literal) holds no group
            # start: pass it on now. Carried, it was copied and searched again with every chunk (quadratic:
            # a 64 MiB statement took 11 s, a 1 GiB one most of an hour).
            out, self.carry, self.mid_line = out + self.carry, b'', True
        return out

    def flush(self) -> bytes:
        data, self.carry = self.carry, b''
        return self._strip(data)


def _pump(source: IO[bytes], sink: IO[bytes], stripper: Any) -> None:
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            break
        out = stripper.feed(chunk)
        if out:
            sink.write(out)
    out = stripper.flush()
    if out:
        sink.write(out)


def _decompress(manifest: Manifest, directory: Scratch, identities: Optional[List[Any]] = None) -> str:
    name = manifest.position.get('binlog_file') or manifest.id
    path = directory.file(os.path.basename(name))
    try:
        with open_artifact(manifest, identities) as source, os.fdopen(directory.create(os.path.basename(name)),
                                                                      'wb') as out:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                out.write(data)
    except OSError as exc:
        raise OpsReadyError('Cannot decompress binary log %s into %s: %s. Point tmpdir at a file system with room.'
                            % (manifest.id, directory.path, exc.strerror or exc), path=manifest.path)
    return path


def binlog_options(engine: Any) -> List[str]:
    """Options the local ``mariadb-binlog`` knows: logs holding out-of-order GTIDs (written by an older
    version's replays) must still read."""
    _rc, out, _err = engine.runner.run([engine.tool('binlog'), '--help'], check=False, what='binlog tool --help')
    # Each event's CRC32 checked (the tool checks none by default): a log damaged inside an event (archived so, its
    # artifact checksum matching) fails the replay instead of writing the damaged value into the copy. Events past
    # --stop-datetime are never read, so damage after stop_at does not stop a restore before it.
    checked = ['--verify-binlog-checksum'] if 'verify-binlog-checksum' in out else []
    if engine.flavor != 'mariadb':
        # MySQL's mysqlbinlog prints SET @@SESSION.GTID_NEXT for each transaction; --skip-gtids leaves them out
        # so the replay gets new GTIDs here too (the stripper below only knows MariaDB's form).
        return checked + (['--skip-gtids'] if '--skip-gtids' in out else [])
    return checked + (['--skip-gtid-strict-mode'] if 'gtid-strict-mode' in out else [])


def check_rewritable(name: str, what: str) -> None:
    """``--rewrite-db='from->to'`` cannot express every name; refuse those before anything is created."""
    if '->' in name or name != name.strip() or '\n' in name or '\r' in name:
        raise OpsReadyError('The %s %r cannot be passed to mariadb-binlog --rewrite-db (it contains "->", a line '
                            'break or leading/trailing spaces), so binary logs cannot be replayed into it. Restore '
                            'without logs (artifact=<the dump>) or into a plainer name.' % (what, name))


# Statements in a binary log name tables as their author wrote them. mariadb-binlog --database keeps a statement by
# its DEFAULT database only, and --rewrite-db renames only that default: "ALTER TABLE src.t ..." sent without
# "USE src" (mariadb -e, most admin tools) was skipped, so the copy silently missed the column, the table or the
# DROP; sent with "USE src" it ran, unrenamed, against the SOURCE database (a TRUNCATE src.t emptied the live
# table). Row events are filtered by their table's own database and are safe; statements (DDL always, DML too
# with binlog_format=STATEMENT/MIXED) are scanned for a qualifier naming the source first.
STATEMENT_END = b'/*!*/;\n'
# How the server reads the quotes of a statement: (backslash escapes, ANSI_QUOTES), from the sql_mode it ran with
# (``StreamMode.reading``). With ANSI_QUOTES "..." is a quoted name (a quote in it doubled, no escape): "src"."t" is
# the table t of database src, not two strings; with NO_BACKSLASH_ESCAPES a backslash in a string is itself: 'a\'
# is a whole string and what follows it code. None where the sql_mode is not known (a stored body): the name readers
# then read the statement each way it may be read and take every name any reading finds (refuse more, never less).
# A third part, when there is one, is the client character set the statement was sent in (``MULTIBYTE``'s key, or
# None: no character's second byte is ASCII): in gbk '\xbf\x5c' is a whole string (one character), read byte by byte
# its backslash escaped the quote, and the code up to the next string was hidden in it.
SqlReading = Optional[Tuple[Any, ...]]
DEFAULT_READING = (True, False)   # the server's default sql_mode


def _token_pattern(escapes: bool, ansi_quotes: bool) -> 're.Pattern[bytes]':
    single = rb"'(?:[^'\\]|\\.|'')*'" if escapes else rb"'(?:[^']|'')*'"
    double = rb'"(?:[^"\\]|\\.|"")*"' if escapes else rb'"(?:[^"]|"")*"'
    return re.compile(
        rb'(?P<ident>`(?:[^`]|``)*`' + (rb'|"(?:[^"]|"")*"' if ansi_quotes else b'') + rb')'
        rb'|(?P<string>' + single + (b'' if ansi_quotes else b'|' + double) + rb')'
        rb'|(?P<comment>/\*(?!!|M!).*?\*/|(?:--[ \t]|#)[^\n]*)'
        rb'|(?P<space>\s+)'
        rb'|(?P<word>[0-9A-Za-z_$\x80-\xff]+)'
        rb'|(?P<other>.)', re.S)


_SQL_TOKENS = {(escapes, ansi): _token_pattern(escapes, ansi) for escapes in (True, False) for ansi in (True, False)}
_SQL_TOKEN = _SQL_TOKENS[DEFAULT_READING]


def _readings(statement: bytes, reading: SqlReading) -> List[Tuple[Any, ...]]:
    """The readings of ``statement`` to take: ``reading``, or, not known, each one that may differ (escapes only
    where a backslash is, ANSI_QUOTES only where a double quote is, each multibyte character set only where a byte
    that may start one of its characters stands before a backslash or a backtick)."""
    if reading is not None:
        return [reading]
    charsets = [None] + (MULTIBYTE_SETS if MULTIBYTE_AMBIGUOUS.search(statement) else [])
    return [(escapes, ansi, charset) for escapes in ((True, False) if b'\\' in statement else (True,))
            for ansi in ((False, True) if b'"' in statement else (False,)) for charset in charsets]


def _whole_characters(text: bytes, reading: Tuple[Any, ...]) -> bytes:
    """``text`` with each character of ``reading``'s multibyte character set (``SqlReading``) made neutral bytes of
    the same length (``_neutral``): tokenized, its tokens' places are the server's; their text is ``text``'s."""
    characters = MULTIBYTE.get(reading[2]) if len(reading) > 2 and reading[2] else None
    return text if characters is None else characters.sub(_neutral, text)


def _code_tokens(text: bytes, reading: Tuple[Any, ...] = DEFAULT_READING) -> List[Tuple[str, bytes]]:
    """The tokens of ``text`` but spaces and comments, read as ``reading`` says."""
    return [(m.lastgroup or 'other', text[m.start():m.end()])
            for m in _SQL_TOKENS[reading[:2]].finditer(_whole_characters(text, reading))
            if m.lastgroup not in ('space', 'comment')]


def _ident_name(text: bytes) -> bytes:
    """A quoted name (```x``` or, under ANSI_QUOTES, ``"x"``) unquoted: its quote doubled inside it."""
    return text[1:-1].replace(text[:1] * 2, text[:1])


# How names are folded: False (compared exactly), True (Python's lower case: the server's table not known, e.g. an
# engine that cannot be asked), or the server's own case table (``server_fold``: code point -> its lower case)
Fold = Union[bool, Dict[int, str]]


def _folded(name: bytes, fold: Fold = True) -> bytes:
    """``name`` in lower case, as a server with lower_case_table_names 1 or 2 compares a database's name: by the
    server's case table when ``fold`` is one (``server_fold``), else by Python's."""
    text = name.decode('utf-8', 'surrogateescape')
    return (text.translate(fold) if isinstance(fold, dict) else text.lower()).encode('utf-8', 'surrogateescape')


def folded_text(name: str, fold: Fold = True) -> str:
    """``_folded`` of a str."""
    return _folded(name.encode('utf-8', 'surrogateescape'), fold).decode('utf-8', 'surrogateescape')


def name_folding(engine: Any) -> int:
    """``engine``'s server's lower_case_table_names (0, 1 or 2), from the facts asked once per engine (``ping``); 0
    where it is not known. 1: names stored, compared AND logged in lower case (``USE MyApp`` is logged ``use
    `myapp```); 2: compared without case but kept and logged as written."""
    try:
        value = int(engine.ping().get('lower_case_table_names') or 0)
    except (AttributeError, OpsReadyError, TypeError, ValueError):
        return 0
    return value if value in (1, 2) else 0


def _fold_candidates() -> str:
    """The characters a server's case table may lower: those of the Basic Multilingual Plane that have a case in
    Unicode as Python knows it (a superset of the server's older tables; a name holds no character beyond that plane:
    the server's identifiers are utf8mb3)."""
    return ''.join(c for c in map(chr, range(0x41, 0x10000))
                   if not 0xD800 <= ord(c) < 0xE000 and (c.lower() != c or c.upper() != c or c.isupper()))


def server_fold(engine: Any) -> Dict[int, str]:
    """The case table ``engine``'s server folds names with (lower_case_table_names 1 and 2: ``files_charset_info``,
    utf8mb3_general_ci), as a ``str.translate`` table: asked once per engine (``SELECT LOWER(...)`` of every cased
    character), since Python's str.lower is not it (U+0130 is i there, U+1E9E and U+2C00 stay, a final Σ is σ). An
    empty table where the server cannot be asked (the names are then folded by Python's)."""
    cached = vars(engine).get('_opsready_name_fold') if hasattr(engine, '__dict__') else None
    if cached is not None:
        return cached
    table: Dict[int, str] = {}
    chars = _fold_candidates()
    collate = ' COLLATE utf8mb3_general_ci' if getattr(engine, 'flavor', 'mariadb') == 'mariadb' else ''
    try:
        rows = engine.query('SELECT HEX(CONVERT(LOWER(CONVERT(%s USING utf8mb3)%s) USING utf8mb4))'
                            % (quote_literal(chars), collate))
        lowered = bytes.fromhex(str(rows[0][0])).decode('utf-8')
    except (AttributeError, IndexError, OpsReadyError, TypeError, ValueError, UnicodeDecodeError):
        lowered = ''
    if len(lowered) == len(chars):   # (the server's lower case maps one character to one)
        table = {ord(c): low for c, low in zip(chars, lowered) if low != c}
    try:
        engine._opsready_name_fold = table
    except AttributeError:
        pass
    return table


def folds_names(engine: Any) -> Fold:
    """How ``engine``'s server compares database names: without case (lower_case_table_names 1 or 2: ``SRC.t`` is
    src's table), by its own case table (``server_fold``; True, Python's lower case, where it cannot be asked);
    False where case counts or it is not known."""
    if name_folding(engine) not in (1, 2):
        return False
    return server_fold(engine) or True


def logged_name(engine: Any, database: str) -> str:
    """``database`` as ``engine``'s server writes it in its binary logs (``use `x```, a row event's database): folded
    by the server's case table with lower_case_table_names=1 (a backup may name it MyApp: the server took it as
    myapp), else as given. mariadb-binlog --database/--rewrite-db and the scans compare it byte for byte."""
    return folded_text(database, folds_names(engine)) if database and name_folding(engine) == 1 else database


def named_databases(statement: bytes, databases: List[str], reading: SqlReading = None,
                    fold: Fold = False) -> List[str]:
    """Those of ``databases`` that ``statement`` names as a qualifier (```db`.x``, ``db.x``, under ANSI_QUOTES
    ``"db".x``; not in a string or a comment, not as the last part of ``a.db``) or as the database of
    CREATE/ALTER/DROP DATABASE; read as ``reading`` says (every reading when it is None). ``fold``: names compared
    without case (``folds_names``)."""
    # (a name holding a quote is written with it doubled: `a``b`, under ANSI_QUOTES "a""b")
    seen = _folded(statement, fold) if fold else statement
    wanted = {(_folded(d.encode('utf-8'), fold) if fold else d.encode('utf-8')): d for d in databases
              if any(q in seen for q in _quoted_forms(_folded(d.encode('utf-8'), fold) if fold else d.encode('utf-8')))}
    if not wanted:  # quick: most statements name none of them
        return []
    found: List[str] = []
    for read in _readings(statement, reading):
        code = _code_tokens(statement, read)
        for n, (kind, text) in enumerate(code):
            name = _ident_name(text) if kind == 'ident' else text if kind == 'word' else None
            if name is not None and fold:
                name = _folded(name, fold)
            if name not in wanted or wanted[name] in found:
                continue
            # not after '.' (``a.db``) or '@' (``@@session.x`` when the database is called session)
            if n + 1 < len(code) and code[n + 1][1] == b'.' and not (n and code[n - 1][1] in b'.@'):
                found.append(wanted[name])
                continue
            # CREATE/ALTER/DROP DATABASE db: run as written, against the live database (DROP DATABASE dropped it)
            words = [t.upper() for _k, t in code[max(0, n - 4):n]]
            while words and words[-1] in (b'IF', b'NOT', b'EXISTS'):
                words.pop()
            if words and words[-1] in (b'DATABASE', b'SCHEMA'):
                found.append(wanted[name])
    return found


def _quoted_forms(name: bytes) -> Tuple[bytes, bytes, bytes]:
    return name, name.replace(b'`', b'``'), name.replace(b'"', b'""')


def names_database(statement: bytes, database: str, reading: SqlReading = None, fold: Fold = False) -> bool:
    return bool(named_databases(statement, [database], reading, fold))


# Statements the scan lets through. Maintenance (this collection's maintenance role runs "ANALYZE TABLE db.t" without
# USE) changes no data: skipped or run, the copy is the same. Account statements name a database in their privilege
# ("GRANT SELECT ON app.* TO u"): grants are not part of a database's backup, so one sent without USE is rightly
# skipped; only one that the replay would RUN (USE of the source) is refused (it would change live privileges).
MAINTENANCE = {b'ANALYZE', b'OPTIMIZE', b'REPAIR', b'CHECK', b'CHECKSUM', b'FLUSH'}
ACCOUNT_OBJECTS = {b'USER', b'ROLE'}


ACCOUNT_VERBS = {b'CREATE', b'DROP', b'ALTER', b'RENAME'}
# A versioned comment's code runs (/*!100000 GRANT ... */, /*M!100500 ...*/): its marker and version are no word.
# The server reads a version of exactly 5 or 6 digits; with fewer, the digits are code (``/*!1 GRANT`` is ``1 GRANT``).
# One the server skips is made a plain comment first (``server_text``), as the server itself logs it.
VERSIONED_OPEN = re.compile(rb'/\*M?!(?:\d{5}\d?)?')
# The server that runs the replay: its version as the server compares a versioned comment's (MYSQL_VERSION_ID:
# 10.11.6 is 101106) and whether it is MariaDB; None where it is unknown (every versioned comment read as code).
ReplayServer = Optional[Tuple[int, bool]]
SERVER_VERSION = re.compile(r'^(\d+)\.(\d+)\.(\d+)')
# What, in a versioned comment's text, makes the mariadb client end it elsewhere than the server: a comment of its own
COMMENT_HAZARD = re.compile(rb"#|--|/\*")


def replay_server(engine: Any) -> ReplayServer:
    """``ReplayServer`` of ``engine`` (``SELECT VERSION()``, asked once per engine: ``ping``); None if unknown."""
    try:
        version = str(engine.ping().get('server_version') or '')
    except (AttributeError, OpsReadyError):
        return None
    found = SERVER_VERSION.match(version)
    if found is None:
        return None
    major, minor, patch = (int(n) for n in found.groups())
    return major * 10000 + minor * 100 + patch, 'mariadb' in version.lower() or engine.flavor == 'mariadb'


def _skips(marker: bytes, server: ReplayServer) -> bool:
    """Whether ``server`` reads the versioned comment opened by ``marker`` (``VERSIONED_OPEN``'s) as a comment, as
    MariaDB's lexer does: a version newer than the server's, or a MySQL 5.7+ one (50700-99999) not marked ``M``;
    MySQL knows no ``/*M!``."""
    if server is None:
        return False
    version, mariadb = server
    if marker.startswith(b'/*M') and not mariadb:
        return True
    number = marker.lstrip(b'/*M!')
    if not number:
        return False
    found = int(number)
    return found > version or (mariadb and 50700 <= found <= 99999 and not marker.startswith(b'/*M'))


def _comment_end(statement: bytes, pos: int) -> int:
    """The end of a skipped versioned comment whose text starts at ``pos``: the server allows one comment inside
    it; -1 when it is not closed."""
    while True:
        close, inner = statement.find(b'*/', pos), statement.find(b'/*', pos)
        if close < 0:
            return -1
        if 0 <= inner < close:
            pos = statement.find(b'*/', inner + 2)
            if pos < 0:
                return -1
            pos += 2
            continue
        return close + 2


def server_text(statement: bytes, server: ReplayServer, reading: SqlReading = None) -> Optional[bytes]:
    """``statement`` as ``server`` reads it: each versioned comment it skips (``_skips``) made a plain comment (its
    ``!`` a space, the length kept), as the server itself does before it logs a statement. None when such a comment
    leaves a string or a quoted name open (read as any sql_mode reads it) or holds a comment opener: the mariadb
    client (and a newer source server, which ran its code) read its text as code, so they end it elsewhere than the
    replaying server does, and what the server runs cannot be told from what was logged (a quote in it could hide a
    statement of its own after the comment). The strings between the comments are read as ``reading`` (the
    statement's sql_mode: ``StreamMode.reading``) says: with NO_BACKSLASH_ESCAPES 'a\\' ends at its second quote,
    and the comment after it is found; None too when it is not known and the readings differ."""
    if server is None or b'!' not in statement:
        return statement
    texts = {_server_text(statement, server, read) for read in _readings(statement, reading)}
    return texts.pop() if len(texts) == 1 else None


def _server_text(statement: bytes, server: ReplayServer, reading: Tuple[Any, ...]) -> Optional[bytes]:
    tokens = _SQL_TOKENS[reading[:2]]
    seen = _whole_characters(statement, reading)
    out = bytearray(statement)
    pos, size = 0, len(statement)
    while pos < size:
        opened = VERSIONED_OPEN.match(statement, pos)
        if opened:
            if not _skips(opened.group(), server):
                pos = opened.end()
                continue
            out[opened.start() + (3 if opened.group().startswith(b'/*M') else 2)] = 0x20
            end = _comment_end(statement, opened.end())
            text = seen[opened.end():size if end < 0 else end - 2]
            if COMMENT_HAZARD.search(text) or any(splits_a_literal(text, escapes, ansi)
                                                  for escapes in (True, False) for ansi in (True, False)):
                return None
            if end < 0:
                break
            pos = end
            continue
        match = tokens.match(seen, pos)
        if match is None or (match.lastgroup == 'other' and statement.startswith(b'/*', pos)):
            break   # a comment not closed: a statement cut short
        pos = match.end()
    return bytes(out)


def _raw_code(statement: bytes, reading: SqlReading = None) -> Iterator[Tuple[str, bytes]]:
    """The tokens of ``statement``, a versioned comment's markers dropped (its text is code); ends at a comment not
    closed (a statement cut short: what follows may be its text). Read as ``reading`` (the statement's) says; the
    default reading when it is None."""
    reading = reading or DEFAULT_READING
    tokens, seen = _SQL_TOKENS[reading[:2]], _whole_characters(statement, reading)
    pos, inside = 0, 0
    while pos < len(statement):
        opened = VERSIONED_OPEN.match(statement, pos)
        if opened:
            pos, inside = opened.end(), inside + 1
            continue
        if inside and statement.startswith(b'*/', pos):
            pos, inside = pos + 2, inside - 1
            continue
        match = tokens.match(seen, pos)
        if match is None or (match.lastgroup == 'other' and statement.startswith(b'/*', pos)):
            return
        yield match.lastgroup or 'other', statement[pos:match.end()]
        pos = match.end()


def _code(statement: bytes, reading: SqlReading = None) -> Iterator[Tuple[str, bytes]]:
    """``_raw_code``, the ``SET STATEMENT var=value, ... FOR`` prefix dropped: MariaDB runs (and logs) ``SET
    STATEMENT max_statement_time=1 FOR CREATE USER u`` as the CREATE USER."""
    tokens = _raw_code(statement, reading)
    held: List[Tuple[str, bytes]] = []
    words: List[bytes] = []
    for kind, text in tokens:
        held.append((kind, text))
        if kind == 'word':
            words.append(text.upper())
            if len(words) == 2:
                break
    if words != [b'SET', b'STATEMENT']:
        yield from held
        yield from tokens
        return
    depth = 0
    for kind, text in tokens:
        depth += (text == b'(') - (text == b')')
        if kind == 'word' and depth == 0 and text.upper() == b'FOR':
            break
    yield from tokens


def head_words(statement: bytes, count: int = 5, reading: SqlReading = None) -> List[bytes]:
    """The first ``count`` words of ``statement`` (upper case) as the server reads it (``_code``); fewer if it ends
    first, or reaches a comment it does not close (a statement cut short)."""
    words: List[bytes] = []
    for kind, text in _code(statement, reading):
        if kind == 'word':
            words.append(text.upper())
            if len(words) >= count:
                break
    return words


def account_text(statement: bytes, reading: SqlReading = None) -> bytes:
    """``statement`` as the server runs it (``_code``: no versioned comment markers, no SET STATEMENT prefix), for
    the ``GrantLedger`` to read."""
    return b''.join(text for _kind, text in _code(statement, reading))


def _kind_of(words: List[bytes]) -> str:
    if not words:
        return 'other'
    if words[0] in MAINTENANCE:
        return 'maintenance'
    rest = words[3:] if words[1:3] == [b'OR', b'REPLACE'] else words[1:]
    account_ddl = words[0] in ACCOUNT_VERBS and rest[:1] and rest[0] in ACCOUNT_OBJECTS
    # SET PASSWORD / SET DEFAULT ROLE change an account as GRANT does (a session's own SET ROLE does not)
    account_set = words[0] == b'SET' and (words[1:2] == [b'PASSWORD'] or words[1:3] == [b'DEFAULT', b'ROLE'])
    if words[0] in (b'GRANT', b'REVOKE') or account_ddl or account_set:
        return 'account'
    return 'other'


# Statements that run statements of their own: a compound statement outside a stored program (MariaDB's BEGIN NOT
# ATOMIC, IF, CASE, LOOP, WHILE, REPEAT, FOR, labelled or not), CALL, EXECUTE [IMMEDIATE], PREPARE. MariaDB logs the
# statements they run one by one (a GRANT in a block is logged as the GRANT), never these: one in the stream was not
# written as the server ran it, and what it would run (an account statement, a string's SQL, a procedure's body)
# cannot be read from it. The replay refuses it (``RUNS_STATEMENTS``).
COMPOUND_HEADS = {b'IF', b'CASE', b'LOOP', b'WHILE', b'REPEAT', b'FOR', b'CALL', b'EXECUTE', b'PREPARE'}


def runs_statements(statement: bytes, reading: SqlReading = None) -> bool:
    """Whether ``statement`` (as the server reads it: ``_code``) is one of ``COMPOUND_HEADS``' or BEGIN NOT ATOMIC."""
    code: List[bytes] = []
    for kind, text in _code(statement, reading):
        if kind not in ('space', 'comment'):
            code.append(text.upper() if kind == 'word' else text)
            if len(code) >= 5:
                break
    if len(code) > 2 and code[1] == b':':   # a label
        code = code[2:]
    return bool(code) and (code[0] in COMPOUND_HEADS or code[:3] == [b'BEGIN', b'NOT', b'ATOMIC'])


def statement_kind(statement: bytes, reading: SqlReading = None) -> str:
    """'maintenance', 'account', 'compound' (``runs_statements``) or 'other', from the statement's first words
    (behind any comment: a leading comment of any length, a versioned comment's code read as the server runs it)."""
    return 'compound' if runs_statements(statement, reading) else _kind_of(head_words(statement, reading=reading))


def head_kind(head: bytes, reading: SqlReading = None) -> Optional[str]:
    """``statement_kind`` of a statement that starts with ``head`` and goes on; None when the words ``head`` holds
    do not settle it (CREATE OR ... cut short, or no word yet: a long comment). Read as ``reading`` (the
    statement's: under NO_BACKSLASH_ESCAPES ``'a\\' /* x' FOR INSERT */ FOR GRANT`` is a GRANT) says."""
    words = head_words(head, reading=reading)
    settled = (len(words) >= 4 or bool(words and words[0] not in ACCOUNT_VERBS | {b'SET'})
               or (len(words) >= 2 and words[1] not in (b'OR', b'DEFAULT')))
    if runs_statements(head, reading):
        return 'compound'
    return _kind_of(words) if settled else None


def unreadable_head(statement: bytes, reading: SqlReading = None) -> bool:
    """Whether ``statement`` (of the binlog stream) is longer than ``STATEMENT_CARRY`` and its kind is not settled
    within its first ``STATEMENT_CARRY`` bytes: the replay (``ReplayEventRewriter``) passes a long statement on as
    it comes, so cannot tell whether this one changes accounts; it is refused before the replay starts."""
    head = LEADING_COMMENTS.match(statement)
    at = head.end() if head else 0
    return len(statement) - at > STATEMENT_CARRY and head_kind(statement[at:at + STATEMENT_CARRY], reading) is None


# What opens a string, a quoted name or a comment in the binlog stream (a versioned comment's text is code, and the
# mariadb client finds its delimiter there too); the stream is cut at each STATEMENT_END, which a string may hold.
# (The client reads every versioned comment as code, whatever its version: where the server skips one, the two end
# it at the same place only if its text leaves no quote open and holds no comment, which ``server_text`` checks.)
_LITERAL_OPEN = re.compile(rb"['\"`#]|--[ \t]|/\*(?!M?!)")
_LITERAL_CLOSE = {(b"'", True): re.compile(rb"[\\']"), (b"'", False): re.compile(rb"'"),
                  (b'"', True): re.compile(rb'[\\"]'), (b'"', False): re.compile(rb'"'),
                  (b'`', False): re.compile(rb'`')}
# The statement's sql_mode, as mariadb-binlog prints it before the statements it applies to (a number): with
# NO_BACKSLASH_ESCAPES a backslash in a string is itself (the mariadb client reads it so too, from the server's
# status after that SET), with ANSI_QUOTES "..." is a quoted name (a backslash in it is itself)
SQL_MODE_LINE = re.compile(rb'\A(?:\s|#[^\n]*\n)*SET @@session\.sql_mode=(\d+)\s*\Z')
MODE_ANSI_QUOTES, MODE_NO_BACKSLASH_ESCAPES = 1 << 2, 1 << 20
# The client character set mariadb-binlog switches the mariadb client to before a statement (/*!\C gbk */). In these
# a character's second byte may be a backslash or a backtick (0xbf 0x5c is one gbk character), and the client reads
# the character whole: read byte by byte, 'X' (X ending in 0x5c) left the string open on the escaped quote. Their
# characters (the bytes of the mariadb client's my_ismbchar, left to right from a line start: the longest first)
# are read as two neutral bytes.
CHARSET_LINE = re.compile(rb'\A(?:\s|#[^\n]*\n)*/\*!\\C ([0-9A-Za-z_]+) \*/\s*\Z')
MULTIBYTE = {
    b'gbk': re.compile(rb'[\x81-\xfe][\x40-\x7e\x80-\xfe]'),
    b'big5': re.compile(rb'[\xa1-\xf9][\x40-\x7e\xa1-\xfe]'),
    b'sjis': re.compile(rb'[\x81-\x9f\xe0-\xfc][\x40-\x7e\x80-\xfc]'),
    b'cp932': re.compile(rb'[\x81-\x9f\xe0-\xfc][\x40-\x7e\x80-\xfc]'),
    b'gb18030': re.compile(rb'[\x81-\xfe][\x30-\x39][\x81-\xfe][\x30-\x39]|[\x81-\xfe][\x40-\x7e\x80-\xfe]'),
}
# The sets whose characters differ (cp932's are sjis's): a statement whose set is not known is read in each of them
MULTIBYTE_SETS: List[Optional[bytes]] = [b'gbk', b'big5', b'sjis', b'gb18030']
# A lead byte before a backslash or a backtick: in a statement read as it comes (longer than the replay's window)
# where its characters start is not followed, such a statement is refused
MULTIBYTE_AMBIGUOUS = re.compile(rb'[\x81-\xfe][\\`]')


def _neutral(match: 're.Match[bytes]') -> bytes:
    return b'\x80' * len(match.group())


_OPENER_SPAN = 4   # bytes an opener needs to be told (/*M! is no comment)


class LiteralScan:
    """Whether the binlog stream, read as it comes (a statement longer than the replay's window passed on in
    chunks), is inside a string, a quoted name or a comment: the mariadb client's reading of it (``escapes``: a
    backslash escapes in '...' and "..."; ``ansi_quotes``: "..." is a quoted name, no escape in it)."""

    def __init__(self, escapes: bool = True, ansi_quotes: bool = False, multibyte: bool = False) -> None:
        self.escapes, self.ansi_quotes, self.multibyte = escapes, ansi_quotes, multibyte
        self.open: Optional[bytes] = None
        self.held = b''   # the last bytes, which the next chunk may finish (an opener, an escape, a closer)
        self.ambiguous = False   # (``multibyte``) a byte that may be a character's second is a backslash or backtick
        self.last = b''

    def feed(self, data: bytes, final: bool = False) -> bool:
        """Read ``data`` (the next bytes of one statement; ``final``: its last); whether a literal is left open
        (at the ``final`` end: a line comment ends there, as ``splits_a_literal`` reads it)."""
        if self.multibyte:
            self.ambiguous = self.ambiguous or bool(MULTIBYTE_AMBIGUOUS.search(self.last + data[:1])
                                                    or MULTIBYTE_AMBIGUOUS.search(data))
            self.last = data[-1:] or self.last
        buf, self.held = self.held + data, b''
        pos, size = 0, len(buf)
        while pos < size:
            if self.open is None:
                found = _LITERAL_OPEN.search(buf, pos)
                if found is None or (not final and found.start() > size - _OPENER_SPAN):
                    if not final:
                        self.held = buf[max(pos, size - _OPENER_SPAN + 1):]
                    break
                self.open, pos = found.group().rstrip(b' \t'), found.end()
            elif self.open in (b'#', b'--'):
                end = buf.find(b'\n', pos)
                if end < 0:
                    break
                self.open, pos = None, end + 1
            elif self.open == b'/*':
                end = buf.find(b'*/', pos)
                if end < 0:
                    self.held = b'' if final else buf[-1:]
                    break
                self.open, pos = None, end + 2
            else:
                escapes = self.escapes and self.open != b'`' and not (self.open == b'"' and self.ansi_quotes)
                found = _LITERAL_CLOSE[(self.open, escapes)].search(buf, pos)
                if found is None:
                    break
                if found.group() == b'\\':
                    if found.end() >= size and not final:
                        self.held = buf[found.start():]
                        break
                    pos = found.end() + 1
                    continue
                self.open, pos = None, found.end()   # a doubled quote closes and opens again
        if final and self.open in (b'#', b'--'):
            self.open = None
        return self.open is not None


def splits_a_literal(piece: bytes, escapes: bool = True, ansi_quotes: bool = False) -> bool:
    """Whether ``piece`` (the binlog stream between two ``STATEMENT_END``) leaves a string, a quoted name or a
    comment open: a statement holding the text ``/*!*/;`` and a line end in one (INSERT ... VALUES ('a/*!*/;\n...')),
    which the replay's rewriting, cutting there, would turn into other statements (the mariadb client reads the
    quotes, not the cut: a rewritten piece could leave a quote open and let a later string run as SQL).
    ``escapes``/``ansi_quotes``: the statement's sql_mode (``StreamMode``)."""
    return LiteralScan(escapes, ansi_quotes).feed(piece, final=True)


class StreamMode:
    """The sql_mode the mariadb client reads each statement of the stream with (``SQL_MODE_LINE``), for
    ``splits_a_literal``: read with backslash escapes where the statement had none, 'a\\' ran on into the next
    string, and a statement end in that one was not seen."""

    def __init__(self) -> None:
        self.escapes, self.ansi_quotes = True, False
        self.characters: Optional['re.Pattern[bytes]'] = None   # MULTIBYTE's, in such a character set
        self.charset: Optional[bytes] = None   # its key

    def see(self, piece: bytes) -> None:
        """Take the sql_mode or character set ``piece`` sets (a piece of the stream, read in order; one that splits
        a literal is refused before: a SET in a string is never read)."""
        found = SQL_MODE_LINE.match(piece)
        if found:
            mode = int(found.group(1))
            self.escapes, self.ansi_quotes = not mode & MODE_NO_BACKSLASH_ESCAPES, bool(mode & MODE_ANSI_QUOTES)
        found = CHARSET_LINE.match(piece)
        if found:
            self.charset = found.group(1).lower() if found.group(1).lower() in MULTIBYTE else None
            self.characters = MULTIBYTE.get(found.group(1).lower())

    def splits(self, piece: bytes) -> bool:
        if self.characters is not None:
            piece = b'\n'.join(self.characters.sub(_neutral, line) for line in piece.split(b'\n'))
        return splits_a_literal(piece, self.escapes, self.ansi_quotes)

    def scan(self) -> LiteralScan:
        return LiteralScan(self.escapes, self.ansi_quotes, self.characters is not None)

    def reading(self) -> Tuple[bool, bool, Optional[bytes]]:
        """How the server read the names and strings of the statement (``SqlReading``: its character set too), for
        the name readers."""
        return self.escapes, self.ansi_quotes, self.charset


SPLIT_LITERAL = ('that holds the text mariadb-binlog ends each statement with (/*!*/; and a line end) inside a '
                 'string, a quoted name or a comment: the replay, which reads the statements at those ends to keep '
                 'account statements (GRANT, CREATE USER...) from running against this server, cannot cut it safely')


MULTIBYTE_LONG = ('that is longer than %d KiB, in a character set (big5, cp932, gbk, gb18030, sjis) whose characters '
                  'may end in the byte of a backslash or a backtick, and holds such a byte after another character\'s '
                  'first: the replay, which reads a statement that long as it comes, cannot tell whether it holds the '
                  'text mariadb-binlog ends each statement with (/*!*/; and a line end) inside a string'
                  % (STATEMENT_CARRY // 1024))


RUNS_STATEMENTS = ('that runs statements of its own (a BEGIN NOT ATOMIC block, a top-level IF, CASE, LOOP, WHILE, '
                   'REPEAT or FOR, CALL, EXECUTE or PREPARE): MariaDB logs the statements such a one runs one by one, '
                   'never the block itself, so these logs were not written as the server ran it, and the replay cannot '
                   'tell whether it changes accounts (GRANT, CREATE USER...), which it must never run against this '
                   'server')


SKIPPED_CODE = ('with a versioned comment (/*!NNNNNN ... */) that this server skips, its version being newer than '
                'this server\'s, and that leaves a quote open or holds a comment: the server that logged it ran the '
                'comment\'s text as code, this one does not, so the replay cannot tell what this server would run (the '
                'statement after the comment could be another, an account statement even; a server of the source\'s '
                'version or newer reads it as the source did)')


UNREADABLE_HEAD = ('that is longer than %d KiB and whose first words the replay cannot reach within them (a long '
                   'comment before them): it cannot tell whether the statement changes accounts (GRANT, CREATE '
                   'USER...), which the replay must never run against this server' % (STATEMENT_CARRY // 1024))


def _account_part(kind: str, text: bytes, escapes: bool = True) -> Optional[str]:
    """A user or host name as an account statement writes it: quoted (backticks, ' or "), or a bare word.
    ``escapes``: a backslash in a string escapes (not under NO_BACKSLASH_ESCAPES)."""
    if kind == 'ident':
        return _ident_name(text).decode('utf-8', 'replace')
    if kind == 'string':
        body = text[1:-1].replace(text[:1] * 2, text[:1])
        body = re.sub(rb'\\(.)', rb'\1', body) if escapes else body
        return body.decode('utf-8', 'replace')
    if kind == 'word':
        return text.decode('utf-8', 'replace')
    return None


def _accounts_listed(code: List[Tuple[str, bytes]], escapes: bool = True) -> Optional[List[Tuple[str, Optional[str]]]]:
    """The accounts of a comma-separated list (``'u'@'h'``, ```u`@`h```, ``u@h``, ``u``; a RENAME's ``a TO b``: a),
    each as (user, host); host None where none is written (``u``@``%``, or the role ``u``). None: one is not an
    account name (CURRENT_USER, a syntax not read here)."""
    accounts: List[Tuple[str, Optional[str]]] = []
    for item in _split_list(code):
        to = [n for n, (kind, text) in enumerate(item) if kind == 'word' and text.upper() == b'TO']
        item = item[:to[0]] if to else item
        user = _account_part(*item[0], escapes) if item else None
        if user is None or user.upper() in ('CURRENT_USER', 'CURRENT_ROLE', 'PUBLIC'):
            return None
        if len(item) == 1:
            accounts.append((user, None))
        elif len(item) == 3 and item[1][1] == b'@' and _account_part(*item[2], escapes) is not None:
            accounts.append((user, _account_part(*item[2], escapes)))
        else:
            return None
    return accounts


def renamed_accounts(statement: bytes, reading: SqlReading = None
                     ) -> Optional[List[Tuple[Tuple[str, Optional[str]], Tuple[str, Optional[str]]]]]:
    """RENAME USER ``a TO b, c TO d``: [(old, new)], each (user, host or None); None when it cannot be read. Read as
    ``reading`` (the statement's) says; the default reading when it is None."""
    reading = reading or DEFAULT_READING
    code = _code_tokens(statement, reading)
    if [t.upper() for _k, t in code[:2]] != [b'RENAME', b'USER']:
        return None
    pairs = []
    for item in _split_list(code[2:]):
        to = [n for n, (kind, text) in enumerate(item) if kind == 'word' and text.upper() == b'TO']
        if len(to) != 1:
            return None
        old, new = _accounts_listed(item[:to[0]], reading[0]), _accounts_listed(item[to[0] + 1:], reading[0])
        if not old or not new or len(old) != 1 or len(new) != 1:
            return None
        pairs.append((old[0], new[0]))
    return pairs or None


def _split_list(code: List[Tuple[str, bytes]]) -> List[List[Tuple[str, bytes]]]:
    """A comma-separated list's items, up to a ``;``."""
    items: List[List[Tuple[str, bytes]]] = [[]]
    for kind, text in code:
        if text == b';':
            break
        if text == b',':
            items.append([])
        else:
            items[-1].append((kind, text))
    return items


def taken_accounts(statement: bytes, source: str, reading: SqlReading = None,
                   fold: Fold = False) -> Optional[List[Tuple[str, Optional[str]]]]:
    """The accounts an account statement of the binary logs takes privileges on ``source`` from: REVOKE ... ON an
    object of ``source`` FROM them, REVOKE ALL PRIVILEGES, GRANT OPTION FROM them, DROP USER/ROLE, RENAME USER (the
    old names; the ledger moves their privileges: ``renamed_accounts``), CREATE OR REPLACE USER/ROLE. [] when it
    takes none (a GRANT; a REVOKE on another database, of a role); None when its accounts cannot be read. Read as
    ``reading`` (the statement's) says; the default reading when it is None."""
    reading = reading or DEFAULT_READING
    code = _code_tokens(statement, reading)
    words = [text.upper() for kind, text in code if kind == 'word']
    if not words:
        return []
    at = [n for n, (kind, text) in enumerate(code) if kind == 'word' and text.upper() in (b'FROM', b'USER', b'ROLE')]
    if words[0] == b'REVOKE':
        on = b'ON' in words
        if (on and not names_database(statement, source, reading, fold)) or (not on and words[1:2] != [b'ALL']) \
                or not at:
            return []
        return _accounts_listed(code[[n for n in at if code[n][1].upper() == b'FROM'][-1] + 1:], reading[0])
    if words[0] in (b'DROP', b'RENAME') and words[1:2] in ([b'USER'], [b'ROLE']):
        rest = code[at[0] + 1:]
        while rest and rest[0][0] == 'word' and rest[0][1].upper() in (b'IF', b'EXISTS'):
            rest = rest[1:]
        return _accounts_listed(rest, reading[0])
    if words[:3] == [b'CREATE', b'OR', b'REPLACE'] and words[3:4] in ([b'USER'], [b'ROLE']):
        # the server drops the account (every privilege with it) and creates it anew
        return _accounts_listed(_without_options(code[at[0] + 1:]), reading[0])
    return []


def _without_options(code: List[Tuple[str, bytes]]) -> List[Tuple[str, bytes]]:
    """An account list without each account's options (IDENTIFIED ..., WITH ..., REQUIRE ..., PASSWORD ...)."""
    kept: List[Tuple[str, bytes]] = []
    cut = False
    for kind, text in code:
        if text == b',':
            cut = False
        elif kind == 'word' and text.upper() in GRANT_ACCOUNT_END:
            cut = True
        if not cut:
            kept.append((kind, text))
    return kept


# How a privilege is written in a GRANT/REVOKE and how ``read_grants`` records it, where they differ.
PRIVILEGE_ALIASES = {'ALL PRIVILEGES': 'ALL', 'DELETE VERSIONING ROWS': 'DELETE HISTORY'}
GRANT_ACCOUNT_END = {b'IDENTIFIED', b'WITH', b'REQUIRE', b'VIA', b'PASSWORD', b'AS', b'ACCOUNT'}


def _name_token(kind: str, text: bytes) -> Optional[str]:
    """A database, table, column or routine name as a statement writes it (backticks or a bare word; "..." too: a
    quoted name under ANSI_QUOTES, and no string can stand where a name is read, so a logged statement's "..." there
    is one whatever its sql_mode)."""
    if kind == 'ident' or (kind == 'string' and text[:1] == b'"'):
        return _ident_name(text).decode('utf-8', 'replace')
    if kind == 'word':
        return text.decode('utf-8', 'replace')
    return None


def _privilege_list(code: List[Tuple[str, bytes]]) -> Optional[Tuple[List[Tuple[str, Optional[List[str]]]], int]]:
    """The privileges of a GRANT/REVOKE (``code`` from its first word on) as (name, columns or None), and the index
    of its ON; None when they cannot be read (no ON: a role's GRANT/REVOKE)."""
    items: List[Tuple[str, Optional[List[str]]]] = []
    words: List[str] = []
    columns: Optional[List[str]] = None
    n = 1
    while n < len(code):
        kind, text = code[n]
        if (kind == 'word' and text.upper() == b'ON') or text == b',':
            if not words:
                return None
            name = ' '.join(words)
            items.append((PRIVILEGE_ALIASES.get(name, name), columns))
            words, columns = [], None
            if text != b',':
                return items, n
        elif text == b'(' and words and columns is None:
            columns = []
            n += 1
            while n < len(code) and code[n][1] != b')':
                if code[n][1] != b',':
                    column = _name_token(*code[n])
                    if column is None:
                        return None
                    columns.append(column)
                n += 1
        elif kind == 'word' and columns is None:
            words.append(text.decode('utf-8', 'replace').upper())
        else:
            return None
        n += 1
    return None


def privilege_change(statement: bytes, source: str, default_db: Optional[str] = None,
                     reading: SqlReading = None, fold: Fold = False) -> Any:
    """A GRANT or REVOKE of privileges ON an object of ``source`` read: ``{'op': 'GRANT'|'REVOKE', 'kind':
    'database'|'tables'|'routines', 'db': the database as written (a database-level one may be escaped), 'object':
    table or routine name, 'type': routine type, 'privileges': [(name, columns or None)], 'grant_option': bool,
    'accounts': [(user, host or None)]}``. False: not one of ``source`` (another database, global, a role's, one
    naming no database); None: one naming ``source`` that cannot be read. ``default_db``: the database the statement
    was sent with (USE), which an unqualified ``ON t`` or ``ON *`` names. Read as ``reading`` (the statement's)
    says; the default reading when it is None. ``fold`` (``folds_names``): names compared without case, and the
    database and table read in lower case, as the server keeps them in mysql.db and mysql.tables_priv."""
    reading = reading or DEFAULT_READING
    code = _code_tokens(statement, reading)
    op = code[0][1].upper() if code and code[0][0] == 'word' else b''
    if op not in (b'GRANT', b'REVOKE') or not any(k == 'word' and t.upper() == b'ON' for k, t in code):
        return False
    ours = names_database(statement, source, reading, fold) or default_db == source
    listed = _privilege_list(code)
    if listed is None:
        return None if ours else False
    privileges, n = listed
    if [p for p, _c in privileges] == ['PROXY']:
        return False    # GRANT/REVOKE PROXY ON an account: no privilege on a database
    n += 1
    routine_type = None
    object_types = (b'TABLE', b'FUNCTION', b'PROCEDURE', b'PACKAGE')
    if n < len(code) and code[n][0] == 'word' and code[n][1].upper() in object_types:
        routine_type = code[n][1].upper().decode()
        n += 1
        if routine_type == 'PACKAGE' and n < len(code) and code[n][0] == 'word' and code[n][1].upper() == b'BODY':
            routine_type, n = 'PACKAGE BODY', n + 1
        routine_type = None if routine_type == 'TABLE' else routine_type
    level = code[n:n + 3]
    if len(level) == 3 and level[1][1] == b'.':
        db = _name_token(*level[0])
        target = None if level[2][1] == b'*' else _name_token(*level[2])
        n += 3
    elif (n < len(code) and (code[n][0] != 'string' or code[n][1][:1] == b'"')
          and (n + 1 >= len(code) or code[n + 1][1] != b'@')):
        # unqualified: ON t / ON * name the statement's default database (PROXY ON 'u'@'h' is no object)
        if default_db is None:
            return False
        db, target = default_db, None if code[n][1] == b'*' else _name_token(*code[n])
        n += 1
        if target is None and code[n - 1][1] != b'*':
            return None if ours else False
    else:
        return None if ours else False
    if fold:
        db, target, source = (None if db is None else folded_text(db, fold)), \
            (None if target is None else folded_text(target, fold)), folded_text(source, fold)
    if db is None or re.sub(r'\\([_%\\])', r'\1', db) != source:
        return None if names_database(statement, source, fold=fold) else False
    if n >= len(code) or code[n][0] != 'word' or code[n][1].upper() != (b'TO' if op == b'GRANT' else b'FROM'):
        return None
    rest = code[n + 1:]
    grant_option = any(privilege == 'GRANT OPTION' for privilege, _cols in privileges)
    if op == b'GRANT':
        words = [t.upper() for k, t in rest if k == 'word']
        grant_option = grant_option or any(words[i:i + 3] == [b'WITH', b'GRANT', b'OPTION'] for i in range(len(words)))
        rest = _without_options(rest)
    accounts = _accounts_listed(rest, reading[0])
    if accounts is None or (target is None and routine_type is not None):
        return None
    if target is not None and db != source:
        return None   # an escaped name before a table or routine: not read here
    return {'op': op.decode(), 'kind': 'database' if target is None else 'routines' if routine_type else 'tables',
            'db': db, 'object': target, 'type': routine_type, 'grant_option': grant_option, 'accounts': accounts,
            'privileges': [(p, c) for p, c in privileges if p not in ('GRANT OPTION', 'USAGE')]}


def _is_account(item: Dict[str, Any], user: str, host: Optional[str]) -> bool:
    # no host written: the account at '%' (a user) or '' (a role)
    return user == item['user'] and (host == item['host'] or (host is None and item['host'] in ('%', '')))


def _grant_what(kind: str, item: Dict[str, Any], privileges: Optional[List[str]] = None) -> str:
    """``what on which for user@host``, as the warnings name a privilege."""
    on = {'database': 'the database', 'tables': 'table %s' % item.get('table'),
          'columns': 'column %s.%s' % (item.get('table'), item.get('column')),
          'routines': '%s %s' % (str(item.get('type')).lower(), item.get('routine'))}[kind]
    named = ', '.join(item.get('privileges') or [] if privileges is None else privileges) or 'USAGE'
    return '%s on %s for %s@%s' % (named, on, item['user'], item['host'])


class GrantLedger:
    """The privileges on the source database as the replayed account statements leave them: those the dump recorded
    (``read_grants``' form), less what a REVOKE, DROP USER or CREATE OR REPLACE USER took (``withheld``: ``what on
    which for user@host``), plus what a GRANT gave (``given``); RENAME USER moves them to the new name. A statement
    naming the source whose accounts or privileges cannot be read withholds every privilege of the accounts it names,
    or, its accounts unread, every privilege (``unread``); a GRANT that cannot be read is named (``unread_grants``)."""

    def __init__(self, grants: Dict[str, Any], source: str, roles: Optional[List[str]] = None,
                 all_privileges: Optional[Dict[str, List[str]]] = None, fold: Fold = False) -> None:
        self.source = source
        self.fold = fold   # lower_case_table_names 1 or 2: GRANT ... ON SRC.* is src's (``folds_names``)
        self.roles = roles or []
        # what ALL PRIVILEGES is at each level on this server (``grants.all_privileges``): a part of it revoked
        # leaves the rest; unknown, the whole is withheld (named)
        self.all_privileges = all_privileges or {}
        self.held: Dict[str, List[Dict[str, Any]]] = {
            k: [dict(i, privileges=list(i.get('privileges') or [])) for i in grants.get(k) or []] for k in GRANT_KINDS}
        self.withheld: List[str] = []
        self.given: List[str] = []
        self.shown: List[str] = []
        self.unread = False
        self.coarse = False   # a REVOKE's privileges not read: every privilege of its accounts withheld
        self.unread_grants: List[str] = []
        self._granted: List[int] = []   # id() of the items a GRANT of the logs gave something

    def _name(self, name: str) -> str:
        """A recorded database or table name as ``privilege_change`` reads one (lower case on a folding server)."""
        return folded_text(name, self.fold) if self.fold else name

    def _column(self, name: str) -> str:
        """A column name as the server compares one: without case, whatever lower_case_table_names is (GRANT SELECT
        (Col) then REVOKE SELECT (col) is one column), by its case table where known."""
        return folded_text(name, self.fold if isinstance(self.fold, dict) else True)

    def _take(self, kind: str, keep: Any) -> None:
        """Drop the items of ``kind`` ``keep`` returns False for (it may narrow an item: what it took is named)."""
        self.held[kind] = [item for item in self.held[kind] if keep(item)]

    def drop_accounts(self, accounts: List[Tuple[str, Optional[str]]]) -> None:
        for kind in GRANT_KINDS:
            def keep(item: Dict[str, Any], kind: str = kind) -> bool:
                if any(_is_account(item, u, h) for u, h in accounts):
                    self.withheld.append(_grant_what(kind, item))
                    return False
                return True
            self._take(kind, keep)

    def drop_all(self) -> None:
        for kind in GRANT_KINDS:
            self.withheld += [_grant_what(kind, item) for item in self.held[kind]]
            self.held[kind] = []

    def _items(self, change: Dict[str, Any], kind: str, user: str, host: Optional[str],
               column: Optional[str] = None) -> List[Dict[str, Any]]:
        found = []
        for item in self.held[kind]:
            if not _is_account(item, user, host):
                continue
            if kind == 'database' and self._name(item.get('db', self.source)) != change['db']:
                continue   # (`a_b`.* and `a\_b`.* are two rows of mysql.db)
            if kind in ('tables', 'columns') and self._name(item['table']) != change['object']:
                continue
            if kind == 'columns' and self._column(item['column']) != self._column(column or ''):
                continue
            if kind == 'routines' and (item['type'] != change['type']
                                       or item['routine'].casefold() != change['object'].casefold()):
                continue
            found.append(item)
        return found

    def revoke(self, change: Dict[str, Any]) -> None:
        kind = change['kind']
        for user, host in change['accounts']:
            for privilege, columns in change['privileges'] or [(None, None)]:
                for target_kind, column in ([('columns', c) for c in columns] if columns else [(kind, None)]):
                    found = self._items(change, target_kind, user, host, column)
                    if target_kind == 'tables':
                        # the server takes a privilege revoked on a table from its columns too
                        found += [i for i in self.held['columns'] if _is_account(i, user, host)
                                  and self._name(i['table']) == change['object']]
                    for item in found:
                        kind_of = 'columns' if 'column' in item else target_kind
                        spelt = self.all_privileges.get(kind_of)
                        if privilege != 'ALL' and 'ALL PRIVILEGES' in item['privileges'] and spelt:
                            # ALL granted in the logs, a part revoked: the rest stays, each privilege by name
                            item['privileges'] = list(spelt)
                        if privilege == 'ALL' or 'ALL PRIVILEGES' in item['privileges']:
                            # (ALL not spelt out for this server: a part revoked withholds it all)
                            taken = list(item['privileges'])
                        else:
                            taken = [p for p in item['privileges'] if p == privilege]
                        if taken:
                            item['privileges'] = [p for p in item['privileges'] if p not in taken]
                            self.withheld.append(_grant_what(kind_of, item, taken))
            if change['grant_option']:
                for item in self._items(change, kind, user, host):
                    if item.get('grantable'):
                        item['grantable'] = False
                        self.withheld.append(_grant_what(kind, item, ['GRANT OPTION']))
        for target_kind in GRANT_KINDS:
            self._take(target_kind, lambda item: bool(item['privileges'] or item.get('grantable')))

    def grant(self, change: Dict[str, Any]) -> None:
        kind = change['kind']
        for user, host in change['accounts']:
            if host is None:
                host = '' if user in self.roles else '%'
            for privilege, columns in change['privileges'] or [(None, None)]:
                for target_kind, column in ([('columns', c) for c in columns] if columns else [(kind, None)]):
                    items = self._items(change, target_kind, user, host, column)
                    if not items:
                        item: Dict[str, Any] = {'user': user, 'host': host, 'privileges': []}
                        if target_kind == 'database':
                            item.update(db=change['db'], grantable=False)
                        elif target_kind == 'routines':
                            item.update(routine=change['object'], type=change['type'], grantable=False)
                        else:
                            item.update(table=change['object'])
                            if target_kind == 'columns':
                                item['column'] = column
                            else:
                                item['grantable'] = False
                        self.held[target_kind].append(item)
                        items = [item]
                    for item in items:
                        self._granted.append(id(item))
                        if privilege is None or 'ALL PRIVILEGES' in item['privileges']:
                            pass
                        elif privilege == 'ALL':
                            item['privileges'] = ['ALL PRIVILEGES']
                            self.given.append(_grant_what(target_kind, item))
                        elif privilege not in item['privileges']:
                            item['privileges'].append(privilege)
                            self.given.append(_grant_what(target_kind, item, [privilege]))
                        if change['grant_option'] and target_kind != 'columns' and not item.get('grantable'):
                            item['grantable'] = True
                            self.given.append(_grant_what(target_kind, item, ['GRANT OPTION']))
            if change['grant_option'] and kind == 'tables':
                # column privileges WITH GRANT OPTION: the server keeps the option on the table's row
                rows = self._items(change, 'tables', user, host)
                if not rows:
                    rows = [{'user': user, 'host': host, 'table': change['object'], 'privileges': [],
                             'grantable': False}]
                    self.held['tables'].append(rows[0])
                for item in rows:
                    self._granted.append(id(item))
                    if not item.get('grantable'):
                        item['grantable'] = True
                        self.given.append(_grant_what('tables', item, ['GRANT OPTION']))

    def rename(self, pairs: List[Tuple[Tuple[str, Optional[str]], Tuple[str, Optional[str]]]]) -> None:
        """RENAME USER: the server moves every privilege row of each old account to its new name, in order."""
        for (user, host), (new_user, new_host) in pairs:
            for kind in GRANT_KINDS:
                for item in self.held[kind]:
                    if _is_account(item, user, host):
                        item.update(user=new_user, host='%' if new_host is None else new_host)

    def replay(self, statement: bytes, default_db: Optional[str] = None, reading: SqlReading = None) -> None:
        """One account statement of the logs, in their order (``default_db``: the database it was sent with;
        ``reading``: its sql_mode and character set, ``StreamMode.reading``)."""
        statement = account_text(statement, reading)
        if _first_word(statement) == b'RENAME':
            pairs = renamed_accounts(statement, reading)
            if pairs is not None:
                self.rename(pairs)
                return
        change = privilege_change(statement, self.source, default_db, reading, self.fold)
        if change is None:
            if _first_word(statement) == b'GRANT':
                self.unread_grants.append(_shown(statement))
                return
            accounts = taken_accounts(statement, self.source, reading, self.fold)
            self.shown.append(_shown(statement))
            if accounts is None:
                self.unread = True
                self.drop_all()
            else:
                self.coarse = True
                self.drop_accounts(accounts)
            return
        if change is False:
            accounts = taken_accounts(statement, self.source, reading, self.fold)   # DROP/RENAME USER, REVOKE ALL...
            if accounts is None:
                self.shown.append(_shown(statement))
                self.unread = True
                self.drop_all()
            elif accounts:
                self.shown.append(_shown(statement))
                self.drop_accounts(accounts)
            return
        if change['op'] == 'REVOKE':
            self.shown.append(_shown(statement))
            self.revoke(change)
        else:
            self.grant(change)

    def kept(self) -> Dict[str, Any]:
        return {k: self.held[k] for k in GRANT_KINDS}

    def split(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """``kept()`` as (the items no GRANT of the logs touched, those it did): granted apart, so that what the
        server refuses of the latter is known to be the logs'."""
        return ({k: [i for i in self.held[k] if id(i) not in self._granted] for k in GRANT_KINDS},
                {k: [i for i in self.held[k] if id(i) in self._granted] for k in GRANT_KINDS})


def replay_grants(grants: Optional[Dict[str, Any]], statements: List[Any], source: str,
                  roles: Optional[List[str]] = None,
                  all_privileges: Optional[Dict[str, List[str]]] = None, fold: Fold = False) -> Optional[GrantLedger]:
    """The ``GrantLedger`` of ``statements`` (the replayed account statements, in order) over ``grants`` (recorded
    at the dump); None when the backup recorded none (it predates their recording). ``fold``: ``folds_names``."""
    if grants is None:
        return None
    ledger = GrantLedger(grants, source, roles, all_privileges, fold)
    for statement in statements:
        # (statement, whether it was sent with USE source[, its reading]), or a statement sent without
        entry = tuple(statement) if isinstance(statement, tuple) else (statement, False)
        text, used, reading = (entry + (None,))[:3]
        ledger.replay(text, source if used else None, reading)
    return ledger


def withheld_grants(grants: Optional[Dict[str, Any]], statements: List[bytes],
                    source: str) -> Tuple[Optional[Dict[str, Any]], List[str], List[str], bool]:
    """``grants`` (recorded at the dump) as the replayed account ``statements`` leave them (``GrantLedger``); what
    they took (``what for user@host``); the statements that took them (shown); whether one's accounts could not be
    read (then every recorded privilege is withheld)."""
    ledger = replay_grants(grants, statements, source) if grants and statements else None
    if ledger is None:
        return grants, [], [], False
    return ledger.kept(), ledger.withheld, ledger.shown, ledger.unread


def _first_word(statement: bytes) -> bytes:
    """The statement's first word, upper-cased (b'' for none)."""
    code = _code_tokens(statement)
    return code[0][1].upper() if code else b''


def _first_five(shown: List[str]) -> str:
    """Statements for a warning: the first five, and how many more."""
    return '; '.join(shown[:5]) + (' and %d more' % (len(shown) - 5) if len(shown) > 5 else '')


def granted_text(target: str, source: str, unread: List[str], not_given: List[str]) -> Optional[str]:
    """The warning of a replay whose logs GRANT privileges on ``source`` after the dump that ``target`` did not get:
    the GRANTs that could not be read (``unread``: shown), and those the server refused or whose account is not
    here (``not_given``: ``apply_grants``' ``skipped``). The others were given as the replay reached them."""
    said = []
    if unread:
        said.append('the restore could not read %s, so did not give it' % _first_five(unread))
    if not_given:
        said.append('%s could not be given (%s)' % (target, '; '.join(not_given)))
    if not said:
        return None
    return ('The binary logs replayed grant privileges on %s after the dump: %s. Grant these on %s by hand if it '
            'should have them (SHOW GRANTS on the source).' % (source, '; '.join(said), _q(target)))


def withheld_text(target: str, source: str, withheld: List[str], shown: List[str], unread: bool,
                  coarse: bool = False) -> str:
    """The warning of a restore that withheld recorded privileges (``GrantLedger``; ``coarse``: a REVOKE whose
    privileges could not be read withheld every privilege of its accounts)."""
    why = ('the accounts of a statement could not be read, so every privilege the dump recorded was withheld'
           if unread else 'what they took was withheld' + (
               ' (every privilege of the accounts of a REVOKE whose privileges could not be read)' if coarse else ''))
    return ('The binary logs replayed take privileges on %s away after the dump (REVOKE, DROP USER, CREATE OR REPLACE '
            'USER: %s): '
            '%s, not given to %s: %s. Grant by hand those that should be there (SHOW GRANTS on the source).'
            % (source, _first_five(shown), why,
               target, '; '.join(withheld)))


def calls_database_function(statement: bytes, reading: SqlReading = None) -> bool:
    """``DATABASE()`` or ``SCHEMA()`` in the code of ``statement`` (not in a string, a comment or a quoted name),
    read as ``reading`` says (any reading when it is None)."""
    upper = statement.upper()
    if b'DATABASE' not in upper and b'SCHEMA' not in upper:
        return False
    for read in _readings(statement, reading):
        code = _code_tokens(statement, read)
        if any(kind == 'word' and text.upper() in (b'DATABASE', b'SCHEMA') and code[n + 1:n + 3] == [
                ('other', b'('), ('other', b')')] for n, (kind, text) in enumerate(code)):
            return True
    return False


def _names_in(text: bytes, tables: Dict[bytes, str], routines: Dict[bytes, str],
              reading: SqlReading = None) -> List[str]:
    """The labels of ``tables`` (named anywhere, quoted or not) and ``routines`` (names, lower case, called: ``(``
    follows, or CALL comes before) that ``text`` names, outside strings and comments, read as ``reading`` says
    (every reading when it is None)."""
    found: List[str] = []
    for read in _readings(text, reading):
        code = _code_tokens(text, read)
        for n, (kind, token) in enumerate(code):
            if kind not in ('ident', 'word'):
                continue
            name = _ident_name(token) if kind == 'ident' else token
            label = tables.get(name)
            if label is None and ((n + 1 < len(code) and code[n + 1][1] == b'(')
                                  or (n and code[n - 1][1].upper() == b'CALL')):
                label = routines.get(name.lower())
            if label is not None and label not in found:
                found.append(label)
    return found


def body_reading(engine: Any, kind: str, sql_mode: Optional[str]) -> SqlReading:
    """How to read a stored body as information_schema gives it (``SqlReading``). A view's VIEW_DEFINITION is the
    server's normalized text (names in backticks, strings with backslash escapes): the default reading. MariaDB
    prints a trigger's, routine's or event's body (ACTION_STATEMENT, ROUTINE_DEFINITION, EVENT_DEFINITION) as its
    utf8 copy, each string re-quoted with its quote doubled and a backslash written as itself (``'x\\\\'`` is
    printed ``'x\\'``, ``'it\\'s'`` ``'it''s'``): no backslash escapes, ANSI_QUOTES as its own ``sql_mode`` has it.
    None (every reading) on another server, whose printing is not known."""
    if kind == 'view':
        return DEFAULT_READING
    server = replay_server(engine)
    if server is None or not server[1] or sql_mode is None:
        return None
    return False, 'ANSI_QUOTES' in sql_mode.upper().split(','), None


def database_function_objects(engine: Any, database: str, base: Any = None) -> Dict[str, Dict[bytes, str]]:
    """The triggers (by their table), views and stored routines of ``database`` whose body calls DATABASE() or SCHEMA(),
    directly or through another of them: a statement replayed with binlog_format=STATEMENT/MIXED that fires or calls
    one runs it in the temporary copy, where DATABASE() is the copy's name. ``{'tables': {table: label}, 'routines':
    {lower-case name: label}, 'read': {view: label}}`` (``read``: those of the views that call one of the routines,
    or any function of another database, so run it when only read). ``base``: what in a body makes it one
    (``foreign_objects``' too), called with the body, its reading (``body_reading``) and its kind; by default
    ``calls_database_function``."""
    lit = quote_literal(database)
    rows = engine.query(
        "SELECT 'trigger', TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT, "  # nosec B608 # mysql_quote literal
        "SQL_MODE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
        "UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME, ROUTINE_NAME, ROUTINE_DEFINITION, SQL_MODE "
        "FROM information_schema.ROUTINES WHERE %s "
        "UNION ALL SELECT 'view', TABLE_NAME, TABLE_NAME, VIEW_DEFINITION, '' FROM information_schema.VIEWS "
        "WHERE TABLE_SCHEMA = %s" % (lit, _routines_of(engine, database), lit))
    bodies = [(r[0], r[1], r[2].encode('utf-8', 'surrogateescape'), (r[3] or '').encode('utf-8', 'surrogateescape'),
               body_reading(engine, r[0], r[4])) for r in rows if len(r) == 5]
    tables: Dict[bytes, str] = {}
    routines: Dict[bytes, str] = {}
    pending = list(bodies)
    while pending:   # until no body calls DATABASE() or one of those found so far
        found = [b for b in pending if (base(b[3], b[4], b[0]) if base else calls_database_function(b[3], b[4]))
                 or _names_in(b[3], tables, routines, b[4])]
        if not found:
            break
        for kind, name, key, _body, _reading in found:
            label = '%s %s' % (kind, name)
            if kind in ('trigger', 'view'):
                tables[key] = ('%s, %s' % (tables[key], label)) if key in tables else label
            else:
                routines[key.lower()] = label
        pending = [b for b in pending if b not in found]
    read: Dict[bytes, str] = {}
    views = [b for b in bodies if b[0] == 'view' and b[2] in tables]
    while views:   # reading a view runs the functions it calls (writing through one fires its table's triggers)
        calling = [b for b in views if _calls_qualified(b[3], b[4]) or _names_in(b[3], read, routines, b[4])]
        if not calling:
            break
        read.update((b[2], tables[b[2]]) for b in calling)
        views = [b for b in views if b not in calling]
    return {'tables': tables, 'routines': routines, 'read': read}


def _calls_qualified(body: bytes, reading: SqlReading = None) -> bool:
    """Whether ``body`` calls a function qualified by a database (``db.f(``): a routine of another database."""
    return any(code[n][1] == b'.' and code[n + 1][0] in ('word', 'ident') and code[n + 2][1] == b'('
               for code in (_code_tokens(body, read) for read in _readings(body, reading))
               for n in range(1, len(code) - 2))


def foreign_objects(engine: Any, database: str, also: Optional[List[str]] = None) -> Dict[str, Dict[bytes, str]]:
    """``database_function_objects``' shape: the triggers, views and routines of ``database`` whose body names another
    database of this server (``db.t``, CREATE/DROP DATABASE db: the source's own name too, which the dump keeps in a
    trigger's or routine's body), directly or through another of them. A statement replayed with
    binlog_format=STATEMENT/MIXED that fires, calls or writes through one runs it again, as its DEFINER: it writes
    into that live database (mysql.* even), which the source server's run of the statement already did. ``also``:
    names counted as another database's though they are ``database``'s (check mode reads the source for the copy,
    whose trigger and routine bodies name the source as another database: the dump keeps their text). Not in a
    view's: VIEW_DEFINITION qualifies every name with the view's own database, and the copy's views are renamed
    into the copy (``requalify_view``), so the real run finds none of them foreign for that."""
    fold = folds_names(engine)
    same = (lambda name: folded_text(name, fold)) if fold else (lambda name: name)
    others = [r[0] for r in engine.query('SHOW DATABASES') if r and r[0] and same(r[0]) != same(database)] \
        + list(also or [])
    own = len(others) - len(also or [])
    return database_function_objects(engine, database, lambda body, reading, kind: bool(
        named_databases(body, others[:own] if kind == 'view' else others, reading, fold)))


FOREIGN_REACH = ('The binary logs to replay hold a statement run with USE %s that fires, calls or writes through %s of '
                 'the restored copy, whose body names another database of this server: %s. Replayed (binlog_format '
                 'STATEMENT or MIXED logs the statement, not the rows its trigger or function wrote), it would run '
                 'that body again, as its DEFINER, against the live database it names (the source server already did '
                 'when the statement ran there). Nothing was restored and nothing outside the temporary copy was '
                 'changed. Restore to a point before it (stop_at), or take a full backup after it and restore from '
                 'that; or make the object name no other database in the source first.')


# The first words of statements that write no table through a trigger or a view (DDL, TRUNCATE, ...): write_targets
# reads the targets of INSERT, REPLACE, LOAD DATA, UPDATE and DELETE, and any other verb may write whatever it names.
_NO_TARGET = frozenset((b'ALTER', b'CREATE', b'DROP', b'RENAME', b'TRUNCATE', b'SET', b'DO', b'SELECT', b'BEGIN',
                        b'COMMIT', b'ROLLBACK', b'SAVEPOINT', b'RELEASE', b'XA', b'FLUSH', b'ANALYZE', b'OPTIMIZE',
                        b'CHECK', b'REPAIR', b'START'))
_INSERT_MODIFIERS = frozenset((b'LOW_PRIORITY', b'DELAYED', b'HIGH_PRIORITY', b'IGNORE', b'INTO'))
_DELETE_END = frozenset((b'WHERE', b'ORDER', b'LIMIT', b'RETURNING'))


def _word(token: Tuple[str, bytes]) -> Optional[bytes]:
    """The name ``token`` may be: a word, a quoted name, a "string" (a quoted name under ANSI_QUOTES); else None."""
    kind, text = token
    if kind == 'word':
        return text
    if kind == 'ident' or (kind == 'string' and text[:1] == b'"'):
        return text[1:-1].replace(text[:1] * 2, text[:1])
    return None


def _names_until(code: List[Tuple[str, bytes]], start: int, ends: frozenset) -> Optional[List[bytes]]:
    """Every name (word or quoted) of ``code`` from ``start`` to the first top-level word of ``ends``; None when none
    of ``ends`` comes."""
    depth = 0
    names: List[bytes] = []
    for kind, token in code[start:]:
        if token == b'(':
            depth += 1
        elif token == b')':
            depth -= 1
        elif kind == 'word' and depth == 0 and token.upper() in ends:
            return names
        name = _word((kind, token))
        if name is not None:
            names.append(name)
    return None


def _qualified_name(code: List[Tuple[str, bytes]], at: int) -> Optional[List[bytes]]:
    """The parts of the (qualified) name at ``code[at]``; None when no name is there."""
    names: List[bytes] = []
    while at < len(code):
        name = _word(code[at])
        if name is None:
            break
        names.append(name)
        if code[at + 1:at + 2] != [('other', b'.')]:
            return names
        at += 2
    return None


def write_targets(statement: bytes, reading: SqlReading = None) -> Optional[List[bytes]]:
    """The names (each part of a qualified one) of the tables or views ``statement`` writes: the table of INSERT /
    REPLACE [INTO] and of LOAD DATA ... INTO TABLE, every name of an UPDATE's tables (before SET) and of a DELETE's
    (before WHERE, ORDER, LIMIT): more than it writes (the tables a join only reads), never less. [] for a statement
    that writes no table through a trigger or view (DDL, TRUNCATE, SET, ...); None when it cannot be told (another
    verb, a versioned comment the server runs, a compound statement): whatever it names may be written. Read as
    ``reading`` says; when it is None, every reading's names (None if one of them cannot tell)."""
    if b'/*!' in statement or b'/*M!' in statement or runs_statements(statement):
        return None
    names: List[bytes] = []
    for read in _readings(statement, reading):
        targets = _write_targets(_code_tokens(statement, read))
        if targets is None:
            return None
        names.extend(t for t in targets if t not in names)
    return names


def _write_targets(code: List[Tuple[str, bytes]]) -> Optional[List[bytes]]:
    if not code or code[0][0] != 'word':
        return None
    verb = code[0][1].upper()
    if verb == b'SET' and len(code) > 1 and code[1][1].upper() == b'STATEMENT':
        return None   # SET STATEMENT ... FOR <any statement>
    if verb in _NO_TARGET:
        return []
    if verb in (b'INSERT', b'REPLACE'):
        at = 1
        while at < len(code) and code[at][0] == 'word' and code[at][1].upper() in _INSERT_MODIFIERS:
            at += 1
        return _qualified_name(code, at)
    if verb == b'LOAD':
        words = [t[1].upper() if t[0] == 'word' else None for t in code]
        for at in range(len(code) - 2):
            if words[at] == b'INTO' and words[at + 1] == b'TABLE':
                return _qualified_name(code, at + 2)
        return None
    if verb == b'UPDATE':
        return _names_until(code, 1, frozenset((b'SET',)))
    if verb == b'DELETE':
        return _names_until(code, 1, _DELETE_END)
    return None


# What may stand between CREATE/ALTER/DROP and the kind of object a definition makes (OR REPLACE, ALGORITHM=...,
# DEFINER=user@host or CURRENT_USER[()], SQL SECURITY ..., IF [NOT] EXISTS, AGGREGATE).
_DEFINITION_PREAMBLE = frozenset((b'OR', b'REPLACE', b'ALGORITHM', b'UNDEFINED', b'MERGE', b'TEMPTABLE', b'DEFINER',
                                  b'CURRENT_USER', b'CURRENT_ROLE', b'SQL', b'SECURITY', b'INVOKER', b'IF', b'NOT',
                                  b'EXISTS', b'AGGREGATE', b'=', b'@', b'(', b')'))
_DEFINED_KINDS = frozenset((b'EVENT', b'PROCEDURE', b'FUNCTION', b'TRIGGER', b'VIEW', b'PACKAGE'))


def defines_routine_or_view(code: List[Tuple[str, bytes]]) -> bool:
    """Whether ``code`` (``_code_tokens``) creates, alters or drops an event, routine, trigger or view: it runs none
    of the bodies it names (``CREATE EVENT e ... DO CALL p()`` calls nothing; the copy's events never run), unlike
    ``CREATE TABLE t SELECT f()``, which calls ``f``."""
    if not code or code[0][0] != 'word' or code[0][1].upper() not in (b'CREATE', b'ALTER', b'DROP'):
        return False
    for kind, token in code[1:]:
        upper = token.upper()
        if kind == 'word' and upper in _DEFINED_KINDS:
            return True
        if upper not in _DEFINITION_PREAMBLE and kind not in ('ident', 'string'):
            # another word (TABLE, INDEX, an unquoted definer...): not known to be a definition, so checked in full
            return False
    return False


def reached_objects(statement: bytes, foreign: Dict[str, Dict[bytes, str]], reading: SqlReading = None) -> List[str]:
    """The labels of ``foreign`` (``foreign_objects``) that replaying ``statement`` runs: a trigger's table or a view
    the statement writes (``write_targets``; every one it names when that cannot be told), a view whose reading
    calls a function of them (``read``), a routine called (``name(``, CALL name). Names compared in any letter case,
    whatever database qualifies them, a "string" read as a name too (ANSI_QUOTES): more than it reaches, never
    less. Strings and quoted names are read as ``reading`` (the statement's sql_mode) says: with NO_BACKSLASH_ESCAPES
    the call after 'a\\' is code; when it is None, every reading's labels."""
    tables = {k.lower(): v for k, v in (foreign.get('tables') or {}).items()}
    viewed = {k.lower(): v for k, v in (foreign.get('read') or {}).items()}
    routines = foreign.get('routines') or {}
    found: List[str] = []
    for read in _readings(statement, reading):
        code = _code_tokens(statement, read)
        if defines_routine_or_view(code) and not (b'/*!' in statement or b'/*M!' in statement):
            continue
        targets = write_targets(statement, read)
        for n, (kind, token) in enumerate(code):
            word = _word((kind, token))
            if word is None:
                continue
            name = word.lower()
            label = viewed.get(name)
            if label is None and (targets is None or name in (t.lower() for t in targets)):
                label = tables.get(name)
            if label is None and ((n + 1 < len(code) and code[n + 1][1] == b'(')
                                  or (n and code[n - 1][1].upper() == b'CALL')):
                label = routines.get(name)
            if label is not None and label not in found:
                found.append(label)
    return found


def refuse_foreign_reach(engine: Any, argv: List[str], files: List[str], source: str,
                         foreign: Dict[str, Dict[bytes, str]], server: ReplayServer = None) -> None:
    """Refuse the replay when a statement it runs (with USE ``source``) reaches one of ``foreign``
    (``foreign_objects`` of the loaded copy): ``reached_objects``."""
    names = [n.lower() for key in ('tables', 'read', 'routines') for n in (foreign.get(key) or {})]
    reached: List[str] = []
    mode = StreamMode()   # each statement read under its sql_mode

    def reaches(logged: bytes, _db: bytes) -> bool:
        statement = server_text(logged, server, mode.reading()) or logged
        if statement_kind(statement, mode.reading()) in ('account', 'maintenance'):
            return False
        lower = statement.lower()
        if not any(n in lower or n.replace(b'`', b'``') in lower or n.replace(b'"', b'""') in lower for n in names):
            return False   # quick: most statements name none of them
        reached.extend(reached_objects(statement, foreign, mode.reading()))
        return bool(reached)
    found = _statements(engine, argv + ['--short-form', '--database=%s' % source] + files, reaches, mode)
    if found is not None:
        raise OpsReadyError(FOREIGN_REACH % (source, ', '.join(reached), _shown(found)), source=source,
                            objects=reached)


def bodies_naming(engine: Any, database: str, source: str) -> List[str]:
    """``kind name`` of the triggers, routines, events and views of ``database`` whose body qualifies a name with
    database ``source`` (```src`.t``, ``src.t``: outside strings and comments). The dump keeps the text as the
    source had it, so restored under another name they read and write the SOURCE database's tables."""
    lit = quote_literal(database)
    rows = engine.query(
        "SELECT 'trigger', TRIGGER_NAME, ACTION_STATEMENT, SQL_MODE "  # nosec B608 # mysql_quote literal
        "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
        "UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME, ROUTINE_DEFINITION, SQL_MODE "
        "FROM information_schema.ROUTINES WHERE %s "
        "UNION ALL SELECT 'event', EVENT_NAME, EVENT_DEFINITION, SQL_MODE FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA = %s "
        "UNION ALL SELECT 'view', TABLE_NAME, VIEW_DEFINITION, '' FROM information_schema.VIEWS "
        "WHERE TABLE_SCHEMA = %s ORDER BY 1, 2" % (lit, _routines_of(engine, database), lit, lit))
    fold = folds_names(engine)
    return ['%s %s' % (r[0], r[1]) for r in rows
            if len(r) == 4 and r[2] and names_database(r[2].encode('utf-8', 'surrogateescape'), source,
                                                       body_reading(engine, r[0], r[3]), fold)]


def _statements(engine: Any, argv: List[str], stop: Any, mode: Optional[StreamMode] = None) -> Optional[bytes]:
    """The first statement of ``argv`` (mariadb-binlog --short-form) for which ``stop(statement, default_db)`` is
    true, or None; the tool never left running. ``default_db``: the last ``use`` printed (mariadb-binlog prints
    none for a statement sent without a default database, so it may be the previous statement's). ``mode``, when
    given, follows the sql_mode of the statements (``StreamMode``: ``stop`` reads each with its statement's)."""
    proc = engine.runner.popen(argv, env={'TZ': 'UTC'})
    found = None
    try:
        carry, current = b'', b''
        while found is None:
            chunk = proc.stdout.read(CHUNK)
            parts = (carry + chunk).split(STATEMENT_END)
            carry = parts.pop() if chunk else b''
            for part in parts:
                line = part.strip()
                if line.startswith(b'use `') and line.endswith(b'`') and b'\n' not in line:
                    current = _unquote(line[4:])
                elif stop(part, current):
                    found = part
                    break
                elif mode is not None:
                    mode.see(part)
            if not chunk:
                break
        if found is None:
            engine.runner.finish(proc, argv, what='%s-binlog (statement scan)' % engine.flavor)
    finally:
        if found is not None or proc.poll() is None:
            kill_and_reap(proc)
    return found


SECRET_CLAUSE = re.compile(rb'(?i)\b(?:IDENTIFIED|PASSWORD)\b')
STRING_LITERAL = re.compile(rb"'(?:[^'\\]|\\.|'')*'?|\"(?:[^\"\\]|\\.|\"\")*\"?", re.S)


def _redacted(statement: bytes) -> bytes:
    """``statement`` with every string after its first IDENTIFIED or PASSWORD (an account statement's password or
    hash: IDENTIFIED BY '...', VIA ... USING PASSWORD('...'), SET PASSWORD = '...') written as '<secret>'."""
    found = SECRET_CLAUSE.search(statement)
    if found is None:
        return statement
    return statement[:found.start()] + STRING_LITERAL.sub(b"'<secret>'", statement[found.start():])


def _shown(statement: bytes) -> str:
    """A statement as a message names it: its first 300 bytes, no password."""
    text = b'\n'.join(line for line in statement.strip().split(b'\n')
                      if not line.startswith((b'SET ', b'use ', b'/*!', b'#')))
    return repr(_redacted(text)[:300].decode('utf-8', 'replace'))


# The DEFINER of a CREATE TRIGGER/VIEW/PROCEDURE/FUNCTION/EVENT as the server logs it: DEFINER=`user`@`host`, or
# under sql_mode ANSI_QUOTES DEFINER="user"@"host" (a quote in a name doubled); a role's has no host. One written
# otherwise ('user'@'host', a bare word) is read too.
_DEFINER_PART = (rb'(`(?:[^`]|``)*`|"(?:[^"]|"")*"|' rb"'(?:[^'\\]|''|\\.)*'" rb'|[0-9A-Za-z_$\x80-\xff]+)')
LOGGED_DEFINER = re.compile(rb'(?m)^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?'
                            rb'DEFINER\s*=\s*' + _DEFINER_PART + rb'(?:\s*@\s*' + _DEFINER_PART + rb')?'
                            rb'\s+(?:SQL\s+SECURITY\s+\w+\s+)?'
                            rb'(?:AGGREGATE\s+)?(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE)\b', re.I)
LOGGED_KINDS = {b'VIEW': 'views', b'TRIGGER': 'triggers', b'EVENT': 'events'}   # else routines


def _definer_part(text: Optional[bytes]) -> str:
    """A user or host name of ``LOGGED_DEFINER`` as the server reads it (a quoted one unquoted)."""
    if not text:
        return ''
    if text[:1] in (b'`', b'"'):   # a quoted name (under ANSI_QUOTES "..."): a quote in it doubled, no escape
        return text[1:-1].replace(text[:1] * 2, text[:1]).decode('utf-8', 'replace')
    return _account_part('string' if text[:1] == b"'" else 'word', text) or ''


def logged_definers(statement: bytes) -> List[Tuple[str, str]]:
    """(``user@host``, its kind of ``OBJECT_KINDS``) of each object ``statement`` creates with a DEFINER."""
    return [('%s@%s' % (_definer_part(m.group(1)), _definer_part(m.group(2))),
             LOGGED_KINDS.get(m.group(3).upper(), 'routines')) for m in LOGGED_DEFINER.finditer(statement)]


def _account_statements(engine: Any, argv: List[str], server: ReplayServer) -> List[bytes]:
    """The account statements ``argv`` (mariadb-binlog) prints, in order, each read as ``server`` reads it."""
    found: List[bytes] = []
    mode = StreamMode()

    def collect(statement: bytes, _db: bytes) -> bool:
        statement = server_text(statement, server, mode.reading()) or statement
        if statement_kind(statement, mode.reading()) == 'account':
            found.append(statement.strip())
        return False
    _statements(engine, argv, collect, mode)
    return found


def sent_with_use(engine: Any, argv: List[str], files: List[str], source: str, accounts: List[Any],
                  server: ReplayServer = None, spellings: Optional[Sequence[Optional[str]]] = None) -> None:
    """``accounts`` (``check_statements``' (statement, whether it may have run with USE source, its reading)) with
    each flag made exact: mariadb-binlog prints no ``use`` for a statement sent without a default database, so the
    last one printed may be another statement's. The tool's own filter (``--database``, the event's default
    database) lists those that did, in order: matched to the candidates in order (a candidate is the same text, next
    in both). ``spellings``: the default database each was logged with (by default ``source``): with
    lower_case_table_names=2 ``USE Src`` is logged as written, and the filter, comparing bytes, is asked per
    spelling."""
    if not any(entry[1] for entry in accounts):
        return
    spelt = [(spellings[n] if spellings and n < len(spellings) else None) or source for n in range(len(accounts))]
    listed: Dict[str, List[bytes]] = {}
    for name in dict.fromkeys(spelt[n] for n, entry in enumerate(accounts) if entry[1]):
        listed[name] = _account_statements(engine, argv + ['--short-form', '--database=%s' % name] + files, server)
    at: Dict[str, int] = {name: 0 for name in listed}
    for n, entry in enumerate(accounts):
        statement, maybe, name = entry[0], entry[1], spelt[n]
        used = bool(maybe and at[name] < len(listed[name]) and listed[name][at[name]] == statement)
        at[name] = at.get(name, 0) + used
        accounts[n] = (statement, used) + tuple(entry[2:])   # (its reading kept)


def check_statements(engine: Any, argv: List[str], files: List[str], source: str,
                     hazards: Optional[Dict[str, Dict[bytes, str]]] = None,
                     definers: Optional[Dict[str, List[str]]] = None,
                     accounts: Optional[List[Tuple[Any, ...]]] = None, server: ReplayServer = None) -> List[str]:
    """Refuse a replay (``argv``: mariadb-binlog and its range options; ``files``) whose statements name ``source``
    as a qualifier (skipped, or run against the source), or that, run with ``USE source``, name another database
    of this server (the replay would write to that live database). Nothing was loaded into the target yet.
    Returns the statements run with ``USE source`` that call DATABASE()/SCHEMA() (shown), or fire or call one of
    ``hazards`` (``database_function_objects``, named after the statement): replayed in the copy, they get the
    copy's temporary name, not ``source``. ``definers``, when given, gets the DEFINER (``user@host``) of each object
    a statement run with ``USE source`` creates, with its kinds. ``accounts``, when given, gets each account
    statement (GRANT, REVOKE, DROP/RENAME USER...) of the range, with whether it may have been sent with USE source
    (``sent_with_use`` makes that exact); the replay runs none of them (``drop_account_statement``). Each statement is
    read as ``server`` (the one that runs the replay; this engine's by default) reads it (``server_text``)."""
    folding = name_folding(engine)
    fold = folds_names(engine)   # lower_case_table_names 1 or 2: SRC.t names src
    logged_as = logged_name(engine, source)   # (1: the logs say use `myapp` for a backup of MyApp)
    own = logged_as.encode('utf-8')
    server = replay_server(engine) if server is None else server
    tables, routines = (hazards or {}).get('tables') or {}, (hazards or {}).get('routines') or {}

    def database_function(statement: bytes, reading: SqlReading) -> List[str]:
        lower = statement.lower() if routines else b''
        # quick: most statements name none of them (a name with a backtick is found quoted, doubled: as itself too;
        # one with a double quote so under ANSI_QUOTES)
        named = (any(t.replace(b'`', b'``') in statement or t.replace(b'"', b'""') in statement or t in statement
                     for t in tables)
                 or any(r in lower for r in routines))
        through = _names_in(statement, tables, routines, reading) if named else []
        return ['DATABASE()'] if calls_database_function(statement, reading) else through
    others = [r[0] for r in engine.query('SHOW DATABASES') if r and r[0] and r[0] != logged_as
              and not (fold and _folded(r[0].encode('utf-8', 'surrogateescape'), fold) == _folded(own, fold))]
    mode = StreamMode()
    suspect: List[bool] = []
    calling: List[str] = []
    spellings: List[bytes] = []   # the default database each account statement was logged with

    def stop(logged: bytes, current: bytes) -> bool:
        reading = mode.reading()   # the statement's sql_mode: how the server read its names and strings
        read = server_text(logged, server, reading)
        if read is None and current == own:
            raise OpsReadyError(
                'The binary logs to replay hold a statement %s: %s. Nothing was restored and nothing was changed. '
                'Restore to a point before it (stop_at), or take a full backup after it and restore from that.'
                % (SKIPPED_CODE, _shown(logged)), source=source)
        statement = logged if read is None else read
        # lower_case_table_names=2: sent with USE Src, logged as written, run in src
        spelt = folding == 2 and current != own and _folded(current, fold) == _folded(own, fold)
        if spelt and statement_kind(statement, reading) not in ('account', 'maintenance') \
                and _first_word(statement) not in (b'', b'SET') and not CHARSET_LINE.match(statement):
            # (mariadb-binlog's session lines before a statement, SET TIMESTAMP..., change no data: skipped harmlessly)
            # lower_case_table_names=2 (a case-insensitive file system): the server keeps USE Src as written and
            # ran the statement in src, but the replay's filter (mariadb-binlog --database=src) compares bytes and
            # would skip it: the copy would silently miss it. (With 1 the server logs the name folded: use `src`.)
            raise OpsReadyError(
                'The binary logs to replay hold a statement sent with USE %s: %s. This server compares database names '
                'without case (lower_case_table_names=2), so it ran in %s, but mariadb-binlog keeps a statement for '
                'the replay only by its default database spelt exactly %s: the restored copy would miss it. Nothing '
                'was restored and nothing was changed. Restore to a point before it (stop_at), or take a full backup '
                'after it and restore from that.' % (current.decode('utf-8', 'replace'), _shown(statement), source,
                                                     source), source=source)
        if definers is not None and current == own:
            for definer, kind in logged_definers(statement):
                kinds = definers.setdefault(definer, [])
                if kind not in kinds:
                    kinds.append(kind)
        if current == own and not calling and database_function(statement, reading):
            calling.append('')  # confirmed below among the statements that really run with USE source
        if current == own and (unreadable_head(statement, reading) or mode.splits(logged)):
            raise OpsReadyError(
                'The binary logs to replay hold a statement %s: %s. Nothing was restored and nothing was changed. '
                'Restore to a point before it (stop_at), or take a full backup after it and restore from that.'
                % (SPLIT_LITERAL if mode.splits(logged) else UNREADABLE_HEAD, _shown(statement)),
                source=source)
        kind = statement_kind(statement, reading)
        if (current == own and len(statement) > STATEMENT_CARRY and mode.characters is not None
                and MULTIBYTE_AMBIGUOUS.search(statement)):
            # (read whole here; the replay reads it as it comes: ``ReplayEventRewriter`` would refuse it there)
            raise OpsReadyError(
                'The binary logs to replay hold a statement %s: %s. Nothing was restored and nothing was changed. '
                'Restore to a point before it (stop_at), or take a full backup after it and restore from that.'
                % (MULTIBYTE_LONG, _shown(statement)), source=source)
        if kind == 'compound' and current == own:
            raise OpsReadyError(
                'The binary logs to replay hold a statement %s: %s. Nothing was restored and nothing was changed. '
                'Restore to a point before it (stop_at), or take a full backup after it and restore from that.'
                % (RUNS_STATEMENTS, _shown(statement)), source=source)
        if kind == 'account':
            # never replayed (``AccountStatementDropper``): the ledger reads them, each with its default database
            # (``current`` is source for one sent with USE source, or after one without a default database; with
            # lower_case_table_names=2 USE Src too: the server books its unqualified GRANT/REVOKE to src)
            if accounts is not None:
                accounts.append((statement.strip(), current == own or spelt, reading))
                spellings.append(current)
            return False
        if suspect and not names_database(statement, source, reading, fold):
            return False
        if kind == 'maintenance':
            return False
        if names_database(statement, source, reading, fold):
            return True
        elif current == own and named_databases(statement, others, reading, fold):
            suspect.append(True)  # confirmed below among the statements that really run with USE source
        return False

    found = _statements(engine, argv + ['--short-form'] + files, stop, mode)
    if found is None and accounts:
        written: List[Optional[str]] = [c.decode('utf-8', 'surrogateescape') for c in spellings]
        before: List[Optional[str]] = [None] * (len(accounts) - len(written))   # (entries the caller had)
        sent_with_use(engine, argv, files, logged_as, accounts, server, before + written)
    if found is not None:
        raise OpsReadyError(
            'The binary logs to replay hold a statement that names database %s explicitly: %s. mariadb-binlog replays '
            'a statement into the restored copy only by its default database (USE), and renames only that: this one '
            'would be skipped (sent without USE %s) or run against %s itself, not the copy. Nothing was restored and '
            '%s was not touched. Restore to a point before it (stop_at), or take a full backup after it and restore '
            'from that.' % (source, _shown(found), source, source, source), source=source)
    if not suspect and not calling:
        return []
    del calling[:]
    used = StreamMode()   # the sql_mode of the statements run with USE source (mariadb-binlog prints each change)

    def confirm(statement: bytes, _db: bytes) -> bool:
        statement = server_text(statement, server, used.reading()) or statement
        via = database_function(statement, used.reading())
        if via and len(calling) < 5:
            calling.append(_shown(statement) + ('' if via == ['DATABASE()'] else ' (through %s)' % ', '.join(via)))
        return bool(suspect and named_databases(statement, others + [source], used.reading(), fold)
                    and statement_kind(statement, used.reading()) not in ('maintenance', 'account'))

    found = _statements(engine, argv + ['--short-form', '--database=%s' % logged_as] + files, confirm, used)
    if found is not None:
        named = named_databases(found, others + [source], used.reading(), fold)
        raise OpsReadyError(
            'The binary logs to replay hold a statement run with USE %s that names database %s: %s. The replay runs it '
            'as written, so it would have changed the live %s on this server, not the restored copy. Nothing was '
            'restored and nothing was changed. Restore to a point before it (stop_at), or take a full backup after '
            'it and restore from that.' % (source, ', '.join(named), _shown(found), named[0]),
            source=source, names=named)
    return calling


def probe_lending(engine: Any, temp: str, full: Manifest,
                  logged: Optional[Dict[str, List[str]]] = None) -> List[Dict[str, str]]:
    """Before the dump is loaded into the (empty) copy ``temp``: lend it the privileges the backup recorded on the
    source database, as ``_replay_with_grants`` will, and take them back at once. What the server refuses (the
    login lacks GRANT OPTION, or a privilege it would pass on) is returned (``apply_grants``' ``refused``). One
    refused to an account that is the DEFINER of a trigger, view, routine or event of the backup stops the restore
    here: the replay runs those as their definer, which holds its privileges on the source database only, and
    failed in the copy with the bare ERROR 1142 (TRIGGER command denied) after the whole dump had loaded. The
    privileges granted on the source after the dump (``late_grants``), lent for the replay too, are probed with
    them: one refused to an account the backup holds no object of stops the restore too when the logs make it a
    DEFINER (``logged``: ``scan_logs``' ``definers``, read before anything was created, as check mode reads them);
    else it is returned only (``lending_hint`` says why, should the replay fail on it)."""
    grants = lendable_grants(engine, full)
    if not grants:
        return []
    lent = apply_grants(engine.client, grants, temp, full.database, loose=True)
    if lent.get('applied'):
        taken = revoke_grants(engine.client, temp)
        if taken['warnings']:
            raise OpsReadyError('Restore refused before loading anything: the privileges lent to the temporary copy %s '
                                'to check the binary log replay could not all be taken back: %s Revoke the rows naming '
                                '%s in mysql.db, mysql.tables_priv, mysql.columns_priv and mysql.procs_priv.'
                                % (temp, ' '.join(taken['warnings']), temp))
    # A table, column or routine privilege cannot be lent on the empty copy (ERROR 1146/1305 once the privilege check
    # passed): it is lent after the load, for the replay; only the server's refusal of the privilege counts here.
    refused = [r for r in lent.get('refused') or [] if not DRY_PASSED.search(r['error'])]
    refuse_lending(full, refused)
    if logged:
        refuse_lending(full, refused, logged)   # as check mode (MySQLRestore.check) refuses them
    return refused


def refuse_lending(full: Manifest, refused: List[Dict[str, str]],
                   definers: Optional[Dict[str, List[str]]] = None) -> None:
    """The refusal of a replay that runs objects of ``full`` as a DEFINER the copy could not be lent privileges to
    (``refused``: ``apply_grants``' ``refused``, or check mode's ``foresee_lending``); nothing when none is one.
    ``definers``: those to count (``user@host`` -> kinds), the backup's own by default."""
    if definers is None:
        definers = (full.data.get('database_objects') or {}).get('definers') or {}
    needed = [r for r in refused if r['account'] in definers]
    if needed:
        raise OpsReadyError(
            'Restore refused before loading anything: the binary log replay runs the %s of %s as their DEFINER, and '
            '%s hold(s) privileges on database %s only; the restore lends those privileges to its temporary copy for '
            'the replay, and this login may not grant them (%s). Grant the restore login GRANT OPTION (GRANT ... ON '
            '*.* TO <login> WITH GRANT OPTION, with at least the privileges named), or restore as a user who has it. '
            'Nothing was changed.'
            % ('/'.join(sorted({k for r in needed for k in definers[r['account']]})), full.database,
               ', '.join(sorted({r['account'] for r in needed})), full.database,
               '; '.join('%s: %s' % (r['what'], r['error']) for r in needed)),
            missing_privilege='GRANT OPTION', accounts=sorted({r['account'] for r in needed}))


def foresee_lending(engine: Any, full: Manifest, target: str) -> List[Dict[str, str]]:
    """Check mode: ``probe_lending``'s refusal foreseen without writing. The server's own privilege check answers,
    whatever form the login's privileges take (global, a database or wildcard database grant, a role its default
    role holds): the statements ``_replay_with_grants`` sends, on a copy's name of the same shape that no database
    or privilege row has, written so that the server refuses them after that check (``grant_statements``' ``dry``).
    Nothing is foreseen when the accounts cannot be read (the real run then lends nothing either). The refusals
    are returned (those of accounts the backup holds no object of: the caller counts the DEFINERs the logs make)."""
    grants = lendable_grants(engine, full)
    if not grants:
        return []
    try:
        accounts = [(r[0], r[1]) for r in engine.client.query('SELECT User, Host FROM mysql.user') if len(r) == 2]
        roles = server_roles(engine.client)
    except ToolError:
        return []
    grantees: List[str] = []
    probe = copy_name(target)
    statements, _skipped = grant_statements(grants, probe, accounts, roles, full.database, grantees,
                                            loose=True, dry=True)
    refused = []
    passed = False
    for (what, sql), grantee in zip(statements, grantees):
        try:
            engine.client.query(sql)
            passed = True
        except ToolError as exc:
            if not DRY_PASSED.search('%s %s' % (exc.message, exc.stderr)):
                refused.append({'account': grantee, 'what': what, 'error': exc.message})
    if passed:
        # a table-level GRANT holding CREATE is taken on a table that does not exist (so it can be created): check
        # mode must leave no privilege row behind
        revoke_grants(engine.client, probe)
    refuse_lending(full, refused)
    return refused


def lending_hint(refused: List[Dict[str, str]], said: str) -> str:
    """The hint a replay that failed on a privilege gets when the privileges could not be lent to the copy."""
    if not refused or not re.search(r'ERROR 114[23]|ERROR 1370|ERROR 1044|command denied', said):
        return ''
    return (' The replay ran a statement as an account without the privilege in the temporary copy: the restore '
            'could not lend the copy the privileges the backup recorded on the source database (this login may not '
            'grant them: %s). Grant the restore login GRANT OPTION (GRANT ... ON *.* TO <login> WITH GRANT OPTION) '
            'and run the restore again.' % '; '.join('%s: %s' % (r['what'], r['error']) for r in refused[:5]))


def _replay_with_grants(engine: Any, request: RestoreRequest, full: Manifest, logs: List[Manifest], temp: str,
                        events: Dict[str, str], warnings: List[str],
                        scan: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``_replay`` with the privileges the backup recorded on the source database lent to the copy ``temp`` for its
    duration, then taken back (``warnings``: what could not be). A statement-logged change fires triggers, reads
    views and calls routines that run as their DEFINER; a definer granted on the source database only (GRANT ... ON
    app.*, the usual application account) has no privilege on the copy, and the replay failed there (ERROR 1142
    TRIGGER command denied). The accounts lent them hold them on the source's data already; the restored database
    gets them after the swap (apply_grants), the copy's name keeps none. The privileges the source database's
    accounts hold on this server now, granted after the dump (an account the logs make a DEFINER), are lent too:
    those accounts hold them on the source's data already (``late_grants``)."""
    grants = lendable_grants(engine, full)
    lent = grants is not None and apply_grants(engine.client, grants, temp, full.database, loose=True).get('applied')
    try:
        return _replay(engine, request, full, logs, temp, events, scan)
    finally:
        if lent:
            # revoke_grants reads them back: a privilege row that stayed is named in its warnings
            try:
                left = revoke_grants(engine.client, temp)['warnings']
            except ToolError as exc:
                left = [exc.message]
            if left:
                warnings.append('The privileges lent to the temporary copy %s for the replay could not all be taken '
                                'back: %s Revoke the rows naming %s in mysql.db, mysql.tables_priv, '
                                'mysql.columns_priv and mysql.procs_priv.' % (temp, ' '.join(left), temp))


def replay_argv(engine: Any, request: RestoreRequest, full: Manifest,
                logs: List[Manifest]) -> Tuple[List[str], Optional[int]]:
    """mariadb-binlog and its range options for the replay of ``logs`` after ``full`` (the files to add), and the
    byte of the first log the replay starts from (None: its start)."""
    argv = [engine.tool('binlog'), '--no-defaults'] + binlog_options(engine)
    start: Optional[int] = None
    if full.position.get('binlog_pos') and logs[0].position.get('binlog_file') == full.position.get('binlog_file'):
        start = int(full.position['binlog_pos'])
        argv.append('--start-position=%d' % start)
    if request.stop_at is not None:
        argv.append('--stop-datetime=%s' % stop_datetime(request.stop_at))
    return argv, start


def absent_accounts(engine: Any, definers: Any) -> List[str]:
    """Those of ``definers`` (``user@host``) that are no account of this server (empty where none can be read)."""
    if not definers:
        return []
    try:
        accounts = {(r[0], r[1]) for r in engine.query('SELECT User, Host FROM mysql.user') if len(r) == 2}
    except ToolError:
        return []
    return sorted(d for d in definers if tuple(d.rsplit('@', 1)) not in accounts)


def late_definer_text(late: List[str], source: str, what: str) -> str:
    """What a user must do about the accounts the binary logs make DEFINERs after the dump, absent here."""
    return ('The binary logs create objects of %s after the dump with DEFINER %s, no account of this server (its '
            'CREATE USER and GRANTs ran without USE %s, so the replay, which replays the statements of that database, '
            'does not create it). %s Create the account(s) on this server first (CREATE USER, and their GRANTs on '
            '%s as on the source server), then restore again; or restore to a point before those objects '
            '(stop_at).' % (source, ', '.join(late), source, what, source))


GRANT_KINDS = ('database', 'tables', 'columns', 'routines')


def late_grants(engine: Any, full: Manifest) -> Dict[str, List[Dict[str, Any]]]:
    """The privileges naming the source database on this server now that the backup did not record (granted after
    the dump), per kind of ``read_grants``; empty where they cannot be read. (They are privileges on the database of
    that name of this server, whether it exists or not: the accounts the user prepared on a server restored to.)"""
    source = full.database
    if not source or source == ALL_DATABASES:
        return {}
    try:
        live = read_grants(engine.client, source)
    except ToolError:
        return {}
    recorded = full.data.get('database_grants') or {}
    extra = {k: [g for g in live.get(k) or [] if g not in (recorded.get(k) or [])] for k in GRANT_KINDS}
    return {k: v for k, v in extra.items() if v}


def lendable_grants(engine: Any, full: Manifest) -> Optional[Dict[str, Any]]:
    """What a point-in-time restore lends its temporary copy for the replay: the privileges the backup recorded on
    the source database and those granted on it since (``late_grants``); None when the backup recorded none (it
    predates their recording) and none were granted since."""
    grants = full.data.get('database_grants')
    extra = late_grants(engine, full)
    if extra:
        grants = {k: list((grants or {}).get(k) or []) + extra.get(k, []) for k in GRANT_KINDS}
    return grants


def late_grant_warning(engine: Any, full: Manifest, target: str) -> Optional[str]:
    """The DEFINERs of ``target``'s objects whose privileges on the source were granted after the dump (lent to the
    copy for the replay, not recorded, so not given to ``target`` under another name)."""
    if target == full.database:
        return None
    extra = late_grants(engine, full)
    definers = engine.database_objects(target).get('definers') or {}
    named = sorted({'%s@%s' % (g['user'], g['host']) for items in extra.values() for g in items}
                   & set(definers))
    if not named:
        return None
    return ('%s, DEFINER of objects of %s, hold(s) privileges on %s granted after the dump: the backup did not record '
            'them, so %s did not get them (the replay had them lent). Its objects fail on use there until you grant '
            'them on %s (SHOW GRANTS FOR each, then GRANT ... ON %s).'
            % (', '.join(named), target, full.database, target, target, _q(target)))


def scan_logs(engine: Any, request: RestoreRequest, full: Manifest, logs: List[Manifest]) -> Dict[str, Any]:
    """The real run's first look at the logs, before anything is created: decrypted and decompressed (plaintext, in
    a private scratch directory: common/scratch.py, removed by ``_replay`` or the caller), and read as check mode
    reads them (``check_statements``: the statements it cannot replay into a copy refused here; the DEFINERs of the
    objects they create and the account statements collected). ``workdir``, ``files``, ``argv`` and ``start``
    (``replay_argv``), ``definers``, ``accounts``, ``calling`` (``check_statements``' answer without the copy's
    hazards, which only the loaded copy knows)."""
    workdir = Scratch('binlog-restore', request.tmpdir, 'db_restore')
    try:
        files = [_decompress(m, workdir, engine.identities) for m in logs]
        argv, start = replay_argv(engine, request, full, logs)
        logged: Dict[str, List[str]] = {}
        accounts: List[Tuple[Any, ...]] = []
        calling = check_statements(engine, argv, files, full.database or '', None, logged, accounts)
    except BaseException as exc:
        raise told_left(damaged_log(exc, logs), workdir.remove())
    return {'workdir': workdir, 'files': files, 'argv': argv, 'start': start, 'definers': logged,
            'accounts': accounts, 'calling': calling}


def _replay(engine: Any, request: RestoreRequest, full: Manifest, logs: List[Manifest], temp: str,
            events: Optional[Dict[str, str]] = None, scan: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The logs replayed into ``temp``; ``event_statuses``: ``events`` (the status each event of the copy had in the
    source) as the replayed event statements left them (each loaded DISABLE: ``ReplayEventRewriter``). ``scan``:
    ``scan_logs``' (made here when not given); its scratch directory is removed here."""
    source = full.database or ''
    logged_as = logged_name(engine, source)   # what the logs and mariadb-binlog's byte comparisons call it
    scan = scan if scan is not None else scan_logs(engine, request, full, logs)
    workdir = scan['workdir']
    stripper = GtidStripper()
    rewriter = ReplayEventRewriter(events, replay_server(engine))
    try:
        files, start, logged, accounts = scan['files'], scan['start'], scan['definers'], scan['accounts']
        argv = list(scan['argv'])
        foreign = foreign_objects(engine, temp)
        if any(foreign.values()):
            refuse_foreign_reach(engine, argv, files, logged_as, foreign, replay_server(engine))
        hazards = database_function_objects(engine, temp)
        calling = scan['calling']
        if any(hazards.values()):
            # the loaded copy's triggers, views and routines whose bodies call DATABASE(): read the logs again
            # for the statements that reach them (the refusals were made by scan_logs)
            calling = check_statements(engine, argv, files, source, hazards)
        argv += ['--database=%s' % logged_as, '--rewrite-db=%s->%s' % (logged_as, temp)] + files
        binlog = engine.runner.popen(argv, env={'TZ': 'UTC'})
        try:
            _feed_client(engine, temp, binlog.stdout, _Chained(stripper, rewriter), 'binlog replay')
            engine.runner.finish(binlog, argv, what='%s-binlog' % engine.flavor)
        except ToolError as exc:
            kill_and_reap(binlog)
            late = absent_accounts(engine, logged)
            if late and 'ERROR 1449' in '%s %s' % (exc.message, exc.stderr):
                raise OpsReadyError(late_definer_text(late, source, 'The replay failed: a statement ran an object of '
                                                      'such an account (ERROR 1449, "The user specified as a definer '
                                                      'does not exist"). Nothing was restored and nothing was '
                                                      'changed.'), accounts=late, stderr=exc.stderr)
            raise
        except BaseException:
            kill_and_reap(binlog)
            raise
        replayed = dict(replay_outcome(files, start, request.stop_at, logged_as),
                        binlogs=[os.path.basename(f) for f in files], start_position=start,
                        gtid_assignments_removed=stripper.removed, database_function=calling,
                        event_statuses=rewriter.statuses, account_statements=accounts)
    except BaseException as exc:
        raise told_left(damaged_log(exc, logs), workdir.remove())
    left = workdir.remove()
    if not left['cleaned_up']:
        replayed.update(scratch_left=[left['path']], scratch_warning=left['warning'])
    return replayed


# GTID_EVENTS: MariaDB GTID; MySQL GTID, anonymous GTID
QUERY_EVENT, XID_EVENT, TABLE_MAP_EVENT, GTID_EVENTS = 2, 16, 19, (162, 33, 34)


def _event_database(kind: int, body: bytes) -> Optional[bytes]:
    """The database a Query event ran under (not a BEGIN/COMMIT/ROLLBACK) or a Table_map event names, else None."""
    if kind == QUERY_EVENT and len(body) >= 13:   # thread id 4, exec time 4, db length 1, error code 2, status length 2
        size, status = body[8], int.from_bytes(body[11:13], 'little')
        text = body[13 + status + size + 1:]
        if len(text) <= 12 and text[:8].upper().startswith((b'BEGIN', b'COMMIT', b'ROLLBACK')):  # (+ a CRC32)
            return None
        return body[13 + status:13 + status + size]
    if kind == TABLE_MAP_EVENT and len(body) >= 9:   # table id 6, flags 2, db length 1, db, NUL
        return body[9:9 + body[8]]
    return None


def replayed_events(files: List[str], start: Optional[int]) -> Iterator[Tuple[int, int, bytes]]:
    """(stamp, type code, body) of every stamped event the replay reads from ``files``, the first from byte
    ``start`` (the full's binlog position) on, in log order."""
    for n, path in enumerate(files):
        for offset, header, body in walk_binlog(path):
            stamp, kind = EVENT_HEADER_FIELDS.unpack_from(header)[:2]
            if (n == 0 and start and offset < start) or not stamp:
                continue
            yield stamp, kind, body


def replay_reach(files: List[str], start: Optional[int], stop_at: datetime.datetime, source: str) -> Dict[str, Any]:
    """Where ``--stop-datetime`` ended the replay of ``files`` (the first from byte ``start``): the tool stops at the
    first event stamped at or after the second of ``stop_at``, whatever follows it. Binary log stamps are the time a
    statement started as its session saw it (SET TIMESTAMP sets it; a replica's applier logs the source's), so
    they need not grow: transactions of ``source`` stamped before ``stop_at`` can follow that event, and were not
    replayed although the source had them before ``stop_at``. ``{'stopped_at': the stamp of the event that stopped
    it or None, 'left_out': how many such transactions}`` (each counted once, by its GTID event). A log damaged
    past the stop (which the replay never read) ends the count there: the restore does not fail on it."""
    stop = int(stop_at.astimezone(UTC).replace(microsecond=0).timestamp())
    own = source.encode('utf-8')
    stopped_at: Optional[int] = None
    left_out, counted, transaction = 0, -1, 0
    try:
        for stamp, kind, body in replayed_events(files, start):
            if kind in GTID_EVENTS:
                transaction += 1
            if stopped_at is None:
                if stamp >= stop:
                    stopped_at = stamp
                continue
            if stamp < stop and counted != transaction and _event_database(kind, body) == own:
                counted = transaction
                left_out += 1
    except IntegrityError:
        pass
    return {'stopped_at': stopped_at, 'left_out': left_out}


CRC_FAILED = re.compile(r'crc check failed|Could not read entry at offset (\d+)', re.IGNORECASE)


def damaged_log(exc: BaseException, logs: List[Manifest]) -> BaseException:
    """``mariadb-binlog --verify-binlog-checksum`` stopping at an event whose CRC32 does not match, said as what it
    is (the tool's own words name neither the log nor what to do)."""
    text = '%s %s' % (getattr(exc, 'message', ''), getattr(exc, 'stderr', ''))
    if not isinstance(exc, ToolError) or 'crc check failed' not in text.lower():
        return exc
    offsets = [m.group(1) for m in CRC_FAILED.finditer(text) if m.group(1)]
    return IntegrityError(
        'A binary log of the chain (%s) holds an event whose CRC32 checksum does not match%s: the log was archived '
        'damaged (its artifact matches its manifest). Replaying it would write wrong data, so nothing was restored '
        '(the target is untouched). Restore to a point before that event (stop_at), or from a full backup taken '
        'after it. mariadb-binlog said: %s'
        % (', '.join(m.id for m in logs), ' (at byte %s of its log)' % offsets[-1] if offsets else '',
           (getattr(exc, 'stderr', '') or getattr(exc, 'message', ''))[-400:]), damaged_logs=[m.id for m in logs])


# -- objects RENAME TABLE cannot move ------------------------------------------------------------------
def _dump_objects(engine: Any, database: str, objects: Dict[str, List[Dict[str, str]]]) -> bytes:
    """The CREATE statements of ``database``'s views, routines, triggers and events, as ``mariadb-dump``
    writes them (definers, sql_mode, character sets); statements unqualified, for ``--database=<other>``, except
    a view's qualifiers naming ``database`` itself (``requalify_script`` renames them)."""
    if not count_objects(objects):
        return b''
    parts = []
    with engine.defaults_file() as head:
        base = [engine.tool('dump')] + head + ['--skip-lock-tables', '--skip-comments', '--no-data', MAX_PACKET,
                                               '--default-character-set=utf8mb4']
        runs = []
        if objects['routines'] or objects['triggers'] or objects['events']:
            # --events only when there are events: mariadb-dump --events cannot select a database named
            # with ' " or \ (check_target refuses a target that holds events and such a name).
            runs.append(base + ['--no-create-info', '--routines' if objects['routines'] else '--skip-routines',
                                '--events' if objects['events'] else '--skip-events',
                                '--triggers' if objects['triggers'] else '--skip-triggers', '--', database])
        if objects['views']:
            # Views last: they may call the functions above; each after the views it reads (mariadb-dump
            # creates them in the order given). "--" so a name starting with "-" is a name.
            runs.append(base + ['--skip-triggers', '--', database] + view_order(engine, database))
        for argv in runs:
            proc = engine.runner.popen(argv)
            try:
                out = proc.stdout.read() if proc.stdout is not None else b''
                engine.runner.finish(proc, argv, what='%s-dump (definitions of %s)' % (engine.flavor, database))
            except BaseException:
                kill_and_reap(proc)
                raise
            parts.append(out)
    fixer = EventDefinerFixer()
    return fixer.feed(b'\n'.join(parts)) + fixer.flush()


def view_order(engine: Any, database: str) -> List[str]:
    """View names, each after every view its definition names (information_schema qualifies them)."""
    rows = engine.query('SELECT TABLE_NAME, VIEW_DEFINITION '  # nosec B608 # mysql_quote literal
                        'FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s '
                        'ORDER BY TABLE_NAME' % quote_literal(database))
    definitions = {r[0]: r[1] for r in rows if len(r) == 2}
    return dependency_order(definitions, database)


def dependency_order(definitions: Dict[str, str], database: str) -> List[str]:
    needs = {name: {other for other in definitions if other != name and qualified(database, other) in text}
             for name, text in definitions.items()}
    ordered: List[str] = []
    while needs:
        ready = sorted(n for n, deps in needs.items() if not deps - set(ordered))
        if not ready:  # a cycle can only come from a name quoted inside a literal: keep the rest as they are
            ready = sorted(needs)
        for name in ready:
            ordered.append(name)
            del needs[name]
    return ordered


def _load_script(engine: Any, database: str, script: bytes, what: str) -> None:
    if not script:
        return
    with engine.defaults_file() as head:
        argv = [engine.tool('client')] + head + ['--binary-mode', MAX_PACKET, '--database=%s' % database]
        engine.runner.run(argv, data=LOCK_WAIT_PREFIX.encode() + b'\n' + script, what='%s (%s)' % (engine.flavor, what))


def _drop_objects(engine: Any, database: str, objects: Dict[str, List[Dict[str, str]]],
                  kinds: tuple = OBJECT_KINDS) -> None:
    stmts = []
    for trigger in objects['triggers'] if 'triggers' in kinds else []:
        stmts.append('DROP TRIGGER IF EXISTS %s' % qualified(database, trigger['name']))
    for view in objects['views'] if 'views' in kinds else []:
        stmts.append('DROP VIEW IF EXISTS %s' % qualified(database, view['name']))
    packages = []
    for routine in objects['routines'] if 'routines' in kinds else []:
        if routine['detail'] in PACKAGE_KINDS:
            packages.append('DROP %s IF EXISTS %s' % (routine['detail'], qualified(database, routine['name'])))
            continue
        kind = 'FUNCTION' if routine['detail'] == 'FUNCTION' else 'PROCEDURE'
        stmts.append('DROP %s IF EXISTS %s' % (kind, qualified(database, routine['name'])))
    for event in objects['events'] if 'events' in kinds else []:
        stmts.append('DROP EVENT IF EXISTS %s' % qualified(database, event['name']))
    if packages:
        # MariaDB before 11.4 parses DROP PACKAGE [BODY] only under sql_mode=ORACLE (backticks still quote there);
        # last, so the other statements keep the session's sql_mode. A body goes before its package.
        stmts.append("SET SESSION sql_mode = 'ORACLE'")
        stmts += sorted(packages, key=lambda stmt: not stmt.startswith('DROP PACKAGE BODY '))
    if stmts:
        engine.query('; '.join(stmts))


def _set_event_status(engine: Any, database: str, status: Dict[str, str]) -> None:
    """Give events the status recorded for them (only those whose status differs now)."""
    if not status:
        return
    stmts = ['ALTER %s EVENT %s %s' % (definer_clause(e['definer']), qualified(database, e['name']),
                                       EVENT_STATUS[status[e['name']]])
             for e in objects_of(engine, database)['events']
             if status.get(e['name']) in EVENT_STATUS and status[e['name']] != e['detail']]
    if stmts:
        engine.query('; '.join(stmts))


def _quiesce_events(engine: Any, temp: str, status: Dict[str, str], loaded: Optional[Dict[str, str]] = None) -> None:
    """Record the status of the copy's events for the target (``loaded``: what the dump gave those it loaded
    disabled), and disable any that is not; refuse if one already ran inside the copy (it changed the restored
    data)."""
    events = objects_of(engine, temp)['events']
    ran = [e['name'] for e in events if e['last']]
    if ran:
        raise OpsReadyError('Event(s) %s ran inside the temporary copy while it was loaded (event_scheduler is ON) '
                            'and may have changed the restored data. Run the restore with event_scheduler=OFF '
                            '(SET GLOBAL event_scheduler=OFF) and try again.' % ', '.join(sorted(ran)))
    for event in events:
        if event['name'] not in status:
            status[event['name']] = (loaded or {}).get(event['name'], event['detail'])
        elif event['detail'] != 'DISABLED':   # a replayed event statement ReplayEventRewriter could not read
            status[event['name']] = event['detail']
    # Those the filters did not load disabled (statements they could not read): ALTER EVENT records the
    # session's character set and the database's collation as the event's, so only when the scheduler may run them.
    enabled = {e['name']: 'DISABLED' for e in events if e['detail'] != 'DISABLED'}
    if enabled and engine.query('SELECT @@event_scheduler')[0][0] in ('ON', '1'):
        _set_event_status(engine, temp, enabled)


# Seconds a swap statement waits for a metadata lock on the target (a session with an open transaction on
# its tables): the server gives up well before the client is stopped (connect_timeout + 60 s). Without it
# RENAME TABLE waited for lock_wait_timeout (a year by default); the stopped client left it queued in the
# server, and it ran later, after the restore had reported "rolled back".
SWAP_LOCK_WAIT = 30
LOCK_WAIT_PREFIX = 'SET SESSION lock_wait_timeout = %d; ' % SWAP_LOCK_WAIT


class _LockBounded:
    """The engine, with every query and script of the swap under ``SWAP_LOCK_WAIT``."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def query(self, sql: str) -> Any:
        return self._engine.query(LOCK_WAIT_PREFIX + sql)


FK_RULES = ('RESTRICT', 'CASCADE', 'SET NULL', 'NO ACTION', 'SET DEFAULT')


def inbound_foreign_keys(engine: Any, target: str) -> List[Dict[str, Any]]:
    """Foreign keys of OTHER databases' tables that reference tables of ``target``. InnoDB moves such a reference
    with the table RENAME TABLE moves: the swap's move of the old tables aside took the other database's foreign key
    with them, and dropping them failed ("Cannot delete or update a parent row") after the swap was done."""
    lit = quote_literal(target)
    rows = engine.query(
        'SELECT rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, '  # nosec B608 # mysql_quote literal
        'rc.REFERENCED_TABLE_NAME, rc.UPDATE_RULE, rc.DELETE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME '
        'FROM information_schema.REFERENTIAL_CONSTRAINTS rc JOIN information_schema.KEY_COLUMN_USAGE k '
        'ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.TABLE_NAME = rc.TABLE_NAME '
        'AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.REFERENCED_TABLE_SCHEMA = rc.UNIQUE_CONSTRAINT_SCHEMA '
        'WHERE rc.UNIQUE_CONSTRAINT_SCHEMA = %s AND rc.CONSTRAINT_SCHEMA <> %s '
        'ORDER BY rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION' % (lit, lit))
    found: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    for row in rows:
        if len(row) != 8:
            continue
        fk = found.setdefault((row[0], row[1], row[2]), {
            'schema': row[0], 'table': row[1], 'name': row[2], 'references': row[3], 'on_update': row[4],
            'on_delete': row[5], 'columns': [], 'referenced_columns': []})
        fk['columns'].append(row[6])
        fk['referenced_columns'].append(row[7])
    return list(found.values())


def _fk_label(fk: Dict[str, Any]) -> str:
    return '%s.%s (%s)' % (fk['schema'], fk['table'], fk['name'])


def _index_names(engine: Any, schema: str, table: str) -> set:
    return {r[0] for r in engine.query(
        'SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS '  # nosec B608 # mysql_quote literal
        'WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s' % (quote_literal(schema), quote_literal(table))) if r}


def check_inbound_foreign_keys(engine: Any, temp: str, inbound: List[Dict[str, Any]]) -> None:
    """Before the swap: every table and column another database's foreign key references exists in the copy."""
    if not inbound:
        return
    columns = {(r[0], r[1]) for r in engine.query(
        'SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS '  # nosec B608 # mysql_quote literal
        'WHERE TABLE_SCHEMA = %s' % quote_literal(temp)) if len(r) == 2}
    lacking = [fk for fk in inbound if not all((fk['references'], c) in columns for c in fk['referenced_columns'])]
    if lacking:
        raise OpsReadyError(
            'The foreign key(s) %s of other databases reference table(s) %s that the restored copy lacks (or lacks '
            'their columns): after the swap they would reference nothing. The target was not touched: drop those '
            'foreign keys first, or restore to another database name.'
            % (', '.join(_fk_label(fk) for fk in lacking), ', '.join(sorted({fk['references'] for fk in lacking}))))


def repoint_foreign_keys(engine: Any, target: str, inbound: List[Dict[str, Any]]) -> List[str]:
    """Point the other databases' foreign keys at the tables now in ``target`` (same name, columns and rules;
    foreign_key_checks off, as the dump loads its own tables); a warning for each whose rows the restored table
    does not hold."""
    warnings = []
    for fk in inbound:
        # information_schema says RESTRICT for a rule left out (the default), NO ACTION for one written RESTRICT
        rules = ' '.join('ON %s %s' % (what, fk[key])
                         for what, key in (('DELETE', 'on_delete'), ('UPDATE', 'on_update'))
                         if fk[key] in FK_RULES and fk[key] != 'RESTRICT')
        cols = ', '.join(quote_identifier(c, 'column name') for c in fk['columns'])
        refs = ', '.join(quote_identifier(c, 'column name') for c in fk['referenced_columns'])
        name = quote_identifier(fk['name'], 'constraint name')
        child, parent = qualified(fk['schema'], fk['table']), qualified(target, fk['references'])
        # two statements: one ALTER cannot drop and add a constraint of the same name ("Duplicate FOREIGN KEY");
        # IF EXISTS: the undo runs this again over a half-done one
        indexes = _index_names(engine, fk['schema'], fk['table'])
        engine.query('SET SESSION foreign_key_checks = 0; ALTER TABLE %s DROP FOREIGN KEY IF EXISTS %s; ALTER TABLE '
                     '%s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) %s'
                     % (child, name, child, name, cols, parent, refs, rules))
        # ADD CONSTRAINT replaces the index the server once made for the key (named after its first column) with
        # one named after the constraint: the old name goes back
        now = _index_names(engine, fk['schema'], fk['table'])
        if len(indexes - now) == 1 and len(now - indexes) == 1:
            engine.query('ALTER TABLE %s RENAME INDEX %s TO %s' % (
                child, quote_identifier((now - indexes).pop(), 'index name'),
                quote_identifier((indexes - now).pop(), 'index name')))
        match = ' AND '.join('p.%s = c.%s' % (quote_identifier(r, 'column name'), quote_identifier(c, 'column name'))
                             for c, r in zip(fk['columns'], fk['referenced_columns']))
        present = ' AND '.join('c.%s IS NOT NULL' % quote_identifier(c, 'column name') for c in fk['columns'])
        rows = engine.query('SELECT COUNT(*) FROM %s c WHERE %s AND NOT EXISTS '  # nosec B608 # identifiers quoted
                            '(SELECT 1 FROM %s p WHERE %s)' % (child, present, parent, match))
        orphans = rows[0][0] if rows and rows[0] else '0'
        if orphans not in ('0', ''):
            warnings.append('foreign key %s references %s.%s, which the restore replaced: %s row(s) of %s.%s now '
                            'reference rows the restored table does not hold' % (
                                _fk_label(fk), target, fk['references'], orphans, fk['schema'], fk['table']))
    return warnings


def routine_privileges(engine: Any, database: str) -> Optional[List[Dict[str, Any]]]:
    """The privileges on ``database``'s routines now (``read_grants``' ``routines``); None when they cannot be read."""
    try:
        return read_grants(engine.client, database)['routines']
    except ToolError:
        return None


def regrant_routines(engine: Any, database: str, held: Optional[List[Dict[str, Any]]],
                     routines: List[Dict[str, str]], put_back: bool = False) -> List[str]:
    """Grant ``held`` (``routine_privileges`` of ``database`` before its routines were dropped: the server revokes
    every privilege on a routine as it drops it) again on those of ``routines`` (``objects_of``) of the same kind and
    name; what could not be is returned as warnings. ``put_back``: the old routines themselves came back (a swap
    undone), so every privilege is theirs."""
    if held is None:
        return ['The privileges on the routines %s held before the restore could not be read (grant the restore login '
                'SELECT ON mysql.*): the server revoked them as the routines were dropped; compare SHOW GRANTS of '
                'the accounts using them and grant them again by hand.' % database] if routines else []
    present = {(r['detail'], r['name'].casefold()) for r in routines}
    back = [g for g in held if (g['type'], g['routine'].casefold()) in present]
    gone = [g for g in held if g not in back]
    notes = []
    if back:
        given = apply_grants(engine.client, {'routines': back}, database)
        if given.get('skipped') or not given.get('restored'):
            notes.append('Privileges on the routines of %s%s (revoked by the server as the %s routines were dropped) '
                         'could not all be granted again: %s. Grant them by hand.'
                         % (database, '' if put_back else ' the restore put back', 'old' if put_back else 'replaced',
                            '; '.join(given.get('skipped') or [given.get('reason', '')])))
    if gone:
        notes.append('The restore replaced %s with a backup that does not hold routine(s) %s: they are gone, and with '
                     'them the privileges on them (%s).' % (
                         database, ', '.join(sorted({'%s %s' % (g['type'].lower(), g['routine']) for g in gone})),
                         '; '.join('%s on %s %s for %s@%s' % (', '.join(g['privileges']) or 'USAGE', g['type'].lower(),
                                                              g['routine'], g['user'], g['host']) for g in gone)))
    return notes


def _swap(engine: Any, target: str, temp: str, tables: List[str], before: Dict[str, Any],
          defaults: Optional[Dict[str, Any]], events: Dict[str, str], tmpdir: Optional[str],
          comment: Optional[str] = None, notes: Optional[List[str]] = None) -> Optional[str]:
    engine = _LockBounded(engine)
    # other databases' foreign keys into the target: RENAME TABLE takes them along with the old tables
    before['inbound'] = inbound_foreign_keys(engine, target) if before['tables'] else []
    check_inbound_foreign_keys(engine, temp, before['inbound'])
    new_objects = objects_of(engine, temp)
    unsupported = [r['name'] for r in new_objects['routines']
                   if r['detail'] not in ('PROCEDURE', 'FUNCTION') + PACKAGE_KINDS]
    if unsupported:
        raise OpsReadyError('The restored copy holds %s routine(s) (%s) that mariadb-dump cannot move into %s. '
                            'The target was not touched.' % (len(unsupported), ', '.join(unsupported), target))
    # Dumped from the copy: a view's qualifiers naming the copy are pointed at the target (see VIEW_HEAD).
    new_script = with_event_status(requalify_script(_dump_objects(engine, temp, new_objects), temp, target), events)
    # by the name the server keeps it under: mariadb-dump of İx (kept as ix) fails on its views
    old_script = _dump_objects(engine, before.get('kept') or target, before['objects']) if before['exists'] else b''
    _drop_objects(engine, temp, new_objects, kinds=('triggers',))  # a table with triggers cannot change schema
    clause = charset_clause(defaults)
    steps: List[str] = []
    aside = None
    try:
        if not before['exists']:
            engine.query('CREATE DATABASE %s%s' % (_q(target), clause))
            steps.append('created')
        if before['tables']:
            aside = temporary_name(target, 'old', limit=64)
            engine.query('CREATE DATABASE %s' % _q(aside))
            steps.append('aside')
            mark(engine, aside, target, 'old')
        if count_objects(before['objects']):
            # the server revokes the privileges on each routine it drops: kept, to be granted again
            before['routine_privileges'] = routine_privileges(engine, target) if before['objects']['routines'] else []
            steps.append('old_objects_dropped')
            _drop_objects(engine, target, before['objects'])
        pairs = ['%s TO %s' % (qualified(target, t), qualified(aside, t)) for t in before['tables']] if aside else []
        pairs += ['%s TO %s' % (qualified(temp, t), qualified(target, t)) for t in tables]
        sequenced = sequence_defaults(engine, temp) if tables else []
        if pairs:
            engine.query('RENAME TABLE ' + ', '.join(pairs))
            steps.append('renamed')
        if sequenced:
            # the tables moved; their sequence defaults still name the copy (DumpLineRewriter)
            requalify_sequence_defaults(engine, target, temp, sequenced)
        wanted = {k: (defaults or {}).get(k) for k in ('character_set', 'collation')}
        if before['exists'] and clause and before['defaults'] != wanted:
            steps.append('altered')
            engine.query('ALTER DATABASE %s%s' % (_q(target), clause))
        # The database COMMENT (a dump taken by an older version records none: the target's stays).
        if comment is not None and comment != (before['comment'] or ''):
            steps.append('commented')
            engine.query(comment_sql(target, comment))
        steps.append('new_objects')
        _load_script(engine, target, new_script, 'load views, routines, triggers and events')
        _set_event_status(engine, target, events)
        if before['inbound']:
            steps.append('repointed')
            found = repoint_foreign_keys(engine, target, before['inbound'])
            if notes is not None:
                notes.extend(found)
    except BaseException as exc:
        _undo(engine, target, temp, tables, before, aside, steps, old_script, tmpdir, exc)
        raise
    if before.get('routine_privileges') is not None or before['objects']['routines']:
        found = regrant_routines(engine, target, before.get('routine_privileges'), new_objects['routines'])
        if notes is not None:
            notes.extend(found)
    return aside


def keep_definitions(script: bytes, tmpdir: Optional[str]) -> str:
    """Keep the old views/routines/triggers/events for the operator to load by hand: 0600 in a new 0700 directory.

    The operator loads this file as a server administrator, so nobody else may be able to replace it: in a tmpdir
    another account owns or can write, that account could rename root's file away and put its own SQL (a DEFINER
    routine, CREATE USER) at the name. ``private_tempdir`` refuses such a tmpdir; the definitions then go to the
    system temp directory instead (the run is already failing: they must be kept somewhere, and the message says
    where)."""
    try:
        directory = safeio.private_tempdir(tmpdir, 'opsready-old-definitions-', 'tmpdir')
    except safeio.UnsafeFileError:
        directory = safeio.private_tempdir(None, 'opsready-old-definitions-', 'tmpdir')
    path = os.path.join(directory, 'definitions.sql')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(script)
    return path


def _undo(engine: Any, target: str, temp: str, tables: List[str], before: Dict[str, Any], aside: Optional[str],
          steps: List[str], old_script: bytes, tmpdir: Optional[str], cause: BaseException) -> None:
    """Reverse the swap steps done so far; if that fails too, say what is where."""
    left: List[str] = []   # privileges on the old routines not granted again
    try:
        if 'new_objects' in steps:
            _drop_objects(engine, target, objects_of(engine, target))
        if 'altered' in steps and before['defaults']:
            engine.query('ALTER DATABASE %s%s' % (_q(target), charset_clause(before['defaults'])))
        if 'commented' in steps and before['exists']:
            engine.query(comment_sql(target, before['comment'] or ''))
        if 'renamed' in steps:
            pairs = ['%s TO %s' % (qualified(target, t), qualified(temp, t)) for t in tables]
            if aside:
                pairs += ['%s TO %s' % (qualified(aside, t), qualified(target, t)) for t in before['tables']]
            if pairs:
                engine.query('RENAME TABLE ' + ', '.join(pairs))
        if 'repointed' in steps:   # those re-pointed followed the restored tables back to the copy
            repoint_foreign_keys(engine, target, before.get('inbound') or [])
        if 'old_objects_dropped' in steps:
            _load_script(engine, target, old_script, 'put back the old views, routines, triggers and events')
            _set_event_status(engine, target, {e['name']: e['detail'] for e in before['objects']['events']})
            if before['objects']['routines']:
                left = regrant_routines(engine, target, before.get('routine_privileges'), before['objects']['routines'],
                                        put_back=True)
        if aside:
            drop_schema(engine, aside)
        if 'created' in steps:
            drop_schema(engine, target)
    except BaseException as undo_exc:
        saved = None
        if old_script:
            saved = keep_definitions(old_script, tmpdir)
        message = getattr(undo_exc, 'message', str(undo_exc))
        raise OpsReadyError('The swap into %s failed (%s) and undoing it failed too (%s). The old tables are in '
                            'database %s%s; the restored copy is in %s. Put them back by hand.'
                            % (target, getattr(cause, 'message', str(cause)), message, aside or '(none)',
                               '; the old views/routines/triggers/events are in %s' % saved if saved else '', temp),
                            target=target, aside=aside, definitions=saved)
    if left:
        raise OpsReadyError('The swap into %s failed (%s) and was rolled back, but: %s'
                            % (target, getattr(cause, 'message', str(cause)), ' '.join(left)), target=target)


def check_packet(engine: Any, full: Manifest) -> None:
    """Refuse, before loading, a dump whose longest INSERT (recorded by the backup) this server's
    max_allowed_packet refuses: the load failed with it after everything before it had loaded."""
    longest = full.data.get('longest_insert')
    if not isinstance(longest, dict) or not isinstance(longest.get('bytes'), int):
        return
    limit = engine.query('SELECT @@global.max_allowed_packet')[0][0]
    if limit.isdigit() and longest['bytes'] > int(limit):
        raise OpsReadyError(
            'Dump %s holds an INSERT of %d bytes (a row of table %s: a BLOB is written as hex, twice its size), longer '
            'than this server\'s max_allowed_packet (%s bytes), which refuses it: the restore stopped before loading '
            'and nothing was changed. Raise it (SET GLOBAL max_allowed_packet = 1073741824, and in the server\'s '
            'configuration) and run the restore again.' % (full.id, longest['bytes'], longest.get('table'), limit),
            table=longest.get('table'), bytes=longest['bytes'], max_allowed_packet=int(limit))


def packet_hint(engine: Any) -> str:
    """What to do when the server closed the load's connection ("Server has gone away"): most often a statement of
    the dump longer than the server's max_allowed_packet (one row's INSERT: a BLOB is written as hex, twice its
    size)."""
    try:
        limit = engine.query('SELECT @@global.max_allowed_packet')[0][0]
    except (ToolError, IndexError):
        limit = 'unknown'
    return (' The server closed the connection: most often a statement of the dump (the INSERT of one row: a BLOB '
            'value is written as hex, twice its size) is longer than its max_allowed_packet (%s bytes). Raise it '
            '(SET GLOBAL max_allowed_packet = 1073741824, and in the server\'s configuration) and run the restore '
            'again; otherwise the server\'s error log says why it closed the connection.' % limit)


# Seconds a restore waits for another restore into the same target database to finish: none. Two runs
# interleaving (each loads its copy, then both swap) would leave whichever swapped last, with the other's
# 'restored' report a lie; the second run is told at once instead.
TARGET_LOCK_WAIT = 0


@contextlib.contextmanager
def target_lock(engine: Any, target_db: str) -> Iterator[None]:
    """One restore (or drop) at a time into ``target_db`` on this server, whichever host runs it: a server user
    lock named after the target, held in a session of its own until the run ends."""
    name = engine.client.lock_name('restore', target_db)
    with engine.client.named_lock(name, TARGET_LOCK_WAIT, 'Another db_restore into database %s on %s is running: '
                                  'nothing was changed by this one. Wait for it to finish and run again'
                                  % (target_db, engine.server_label())):
        yield


RESTORE_SQL_MODE = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'  # MariaDB and MySQL


CREATE_DENIED = re.compile(r'ERROR (?:1044|1142) ')


def copy_refusal(target_db: str, temp: str, exc: ToolError) -> OpsReadyError:
    """The refusal of a login that may not create the temporary copy ``temp`` (the server's words in ``stderr``)."""
    return OpsReadyError(
        'Restore refused before anything was created: the restore loads into a temporary database named like %s '
        '(%s...) and swaps it in, and this login may not create it (CREATE). Grant the restore login CREATE on *.* '
        '(or on a pattern its names match), or restore as a user who has it.'
        % (target_db, temp[:temp.rindex('_') + 1]), missing_privilege='CREATE', stderr=exc.stderr or exc.message)


def copy_name(target_db: str) -> str:
    """A fresh name for the temporary copy restored into before the swap (check mode: one of the same shape, never
    created, for its dry probes). It keeps only [A-Za-z0-9_] of the target's: mariadb-binlog --rewrite-db and
    mariadb-dump --events cannot handle every name (see check_target), the copy needs neither limit."""
    return temporary_name(re.sub(r'[^0-9A-Za-z_]', '_', target_db), limit=64)


def restore(engine: Any, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    target_db = _target(request)   # a name the server cannot hold is refused before connecting
    # the restore's own statements under MariaDB's default parsing, whatever the server's global sql_mode (the dump,
    # the binary log events and the re-dumped definitions set their own)
    engine.client.sql_mode = RESTORE_SQL_MODE
    engine.ping()
    stale: Dict[str, Any] = {}
    with told_on_failure(stale), target_lock(engine, target_db):
        return _restore_locked(engine, request, chain, timer, stale)


def refuse_all_databases(full: Manifest) -> None:
    """An all-databases dump names every database it fills (CREATE DATABASE, USE): loaded into the temporary copy,
    it dropped and recreated the live databases of this server under their own names (and the grant tables of
    the mysql schema), and the restore reported an empty target as restored."""
    if full.database == ALL_DATABASES:
        raise OpsReadyError(
            'Backup %s is an all-databases dump (source_database=%s): it creates and fills every database of the '
            'source server under its own name (CREATE DATABASE, USE), so it cannot be restored into one database; '
            'loaded, it would overwrite the databases of this server that have those names, and the mysql schema. '
            'Nothing was changed. Restore a single-database backup (db_backup database=...), or load this dump with '
            'the %s client by hand on a server that is to be replaced.' % (full.id, ALL_DATABASES, 'mariadb'),
            artifact=full.path)


def preflight(engine: Any, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
    """The refusals before anything is created, the real run's and check mode's alike; ``check_target``'s answer."""
    target_db = _target(request)
    full, logs = chain[0], chain[1:]
    refuse_all_databases(full)
    if full.kind != 'full':
        raise OpsReadyError('A %s restore starts from a dump (kind=full); %s is a %s.'
                            % (engine.flavor, full.id, full.kind))
    if logs and not full.position.get('binlog_file'):
        raise OpsReadyError('Dump %s records no binary log position, so logs cannot be replayed after it.' % full.id)
    charset_clause(full.data.get('database_defaults'))  # a damaged manifest is refused before anything is created
    comment = full.data.get('database_comment')
    if comment is not None:
        comment_sql(target_db, comment)
    if logs:
        check_rewritable(full.database or '', 'source database name')
    engine.ping()
    before = check_target(engine, request)
    check_packet(engine, full)
    return before


def _restore_locked(engine: Any, request: RestoreRequest, chain: List[Manifest], timer: Timer,
                    stale: Dict[str, Any]) -> Dict[str, Any]:
    target_db = _target(request)
    full, logs = chain[0], chain[1:]
    before = preflight(engine, request, chain)
    # The logs read first, as check mode reads them: what they make a DEFINER (``probe_lending``) and the statements
    # they hold that cannot be replayed are refused before anything is created or loaded.
    scan = scan_logs(engine, request, full, logs) if logs else None
    try:
        return _restore_scanned(engine, request, chain, timer, stale, before, copy_name(target_db), scan)
    except BaseException as exc:
        if scan is None or 'scratch_left' in getattr(exc, 'details', {}):   # (_replay told it)
            raise
        raise told_left(exc, scan['workdir'].remove())


def _restore_scanned(engine: Any, request: RestoreRequest, chain: List[Manifest], timer: Timer,
                     stale: Dict[str, Any], before: Dict[str, Any], temp: str,
                     scan: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    target_db = _target(request)
    full, logs = chain[0], chain[1:]
    defaults = full.data.get('database_defaults')
    clause = charset_clause(defaults)
    comment = full.data.get('database_comment')
    # Under the target's lock no other run into it is live: a marked copy of it is a killed run's.
    stale.update(drop_stale(engine, target_db))
    timer.lap('inspect_target')
    try:
        engine.query('CREATE DATABASE %s%s' % (_q(temp), clause))
    except ToolError as exc:
        if not CREATE_DENIED.search('%s %s' % (exc.message, exc.stderr)):
            raise
        raise copy_refusal(target_db, temp, exc)
    replay: Dict[str, Any] = {'binlogs': [], 'start_position': None}
    refused: List[Dict[str, str]] = []   # privileges the copy could not be lent for the replay (probe_lending)
    events: Dict[str, str] = {}
    lent_warnings: List[str] = []
    try:
        # The copy carries the marker, not the dump's comment (the swap gives the target that one): a run killed
        # from here on leaves a copy the next run into the target knows as its own.
        marked = mark(engine, temp, target_db)
        if comment is not None and not marked:
            engine.query(comment_sql(temp, comment))
        probe_privileges(engine, temp, full.data.get('database_objects'))
        refused = probe_lending(engine, temp, full, scan['definers']) if scan is not None else []
        timer.lap('probe_privileges')
        loaded = _load_dump(engine, full, temp)
        _quiesce_events(engine, temp, events, loaded)
        missing = missing_objects(full.data.get('database_objects'), count_objects(objects_of(engine, temp)))
        timer.lap('load_dump')
        if logs:
            replay = _replay_with_grants(engine, request, full, logs, temp, events, lent_warnings, scan)
            events = replay['event_statuses']
            _quiesce_events(engine, temp, events)
            # An ALTER DATABASE after the dump (sent with USE of the source: replayed into the copy) changed the
            # copy's character set, collation or comment: the target gets the copy's, not the dump's.
            if defaults:
                defaults = schema_defaults(engine, temp) or defaults
            if comment is not None:
                replayed = engine.database_comment(temp)
                if replayed != copy_marker(target_db) or not marked:
                    comment = replayed
                    if marked:   # the replayed ALTER took the marker off
                        mark(engine, temp, target_db)
            timer.lap('replay')
        tables = tables_of(engine, temp)
        moved = count_objects(objects_of(engine, temp))
        if request.events == 'disabled':
            # a scratch copy (a drill's) must not run the source's scheduled jobs: their bodies may name other
            # databases on this server, the production one among them
            events = {e['name']: 'DISABLED' for e in objects_of(engine, temp)['events']}
        swap_notes: List[str] = []
        aside = _swap(engine, target_db, temp, tables, before, defaults, events, request.tmpdir, comment, swap_notes)
    except ToolError as exc:
        drop_schema(engine, temp)
        in_use = ''
        said = '%s %s' % (exc.message, exc.stderr)
        if LOCK_WAIT_TIMEOUT.search(said):   # ER_LOCK_WAIT_TIMEOUT by number: the server's any language
            in_use = (' The target is in use: a session held a lock on its tables for more than %d s. Stop the '
                      'application\'s sessions on %s (SHOW PROCESSLIST) and run the restore again.'
                      % (SWAP_LOCK_WAIT, target_db))
        elif 'ERROR 2006' in said or 'max_allowed_packet' in said or 'ERROR 1153' in said:
            in_use = packet_hint(engine)
        else:
            in_use = lending_hint(refused, said)
        raise OpsReadyError('Restore of %s into %s failed and was rolled back (temporary database %s dropped; %s is '
                            'as it was): %s%s' % (full.id, target_db, temp, target_db, exc.message, in_use),
                            target=target_db, stderr=exc.stderr)
    except OpsReadyError as exc:
        if 'aside' not in exc.details:  # an undo that failed keeps the copy for the operator
            drop_schema(engine, temp)
        raise
    except BaseException:
        drop_schema(engine, temp)
        raise
    drop_schema(engine, temp)
    if aside:
        drop_schema(engine, aside)
    timer.lap('swap')
    # The privileges that named the source database (not in the dump): the same accounts get them on the target.
    # less those of the accounts the replayed logs took privileges on the source from (REVOKE, DROP USER)
    # as the replayed account statements left them: what a REVOKE took withheld, what a GRANT gave given
    roles = server_roles(engine.client)
    ledger = replay_grants(full.data.get('database_grants'), replay.get('account_statements') or [],
                           full.database or '', roles, all_privileges(engine.client), folds_names(engine))
    withheld = ledger.withheld if ledger else []
    recorded, from_logs = ledger.split() if ledger else (None, {})
    grants = apply_grants(engine.client, recorded, target_db, full.database)
    grants.pop('refused', None)   # named in 'skipped' too
    not_given: List[str] = []
    if any(from_logs.values()):
        given = apply_grants(engine.client, from_logs, target_db, full.database)
        not_given = given.get('skipped') or ([] if given.get('restored') else [given.get('reason', '')])
        grants['applied'] = grants.get('applied', []) + given.get('applied', [])
        grants['skipped'] = grants.get('skipped', []) + not_given
    if ledger and ledger.given:
        grants['from_binlogs'] = ledger.given
    if withheld:
        grants['withheld'] = withheld
    timer.lap('grants')
    result: Dict[str, Any] = {
        'target': {'database': target_db, 'server': engine.server_label(), 'host': engine.conn.host,
                   'port': engine.conn.port or 3306, 'tables': len(tables), 'objects': moved,
                   'database_defaults': defaults},
        'binlogs_replayed': replay['binlogs'], 'start_position': replay['start_position'],
        'replaced': bool(before['tables'] or count_objects(before['objects'])), 'grants': grants,
        'dropped_stale': stale['dropped_stale'], 'kept_stale': stale['kept_stale']}
    warnings = list(stale['warnings']) + swap_notes + lent_warnings
    if ledger and withheld:
        warnings.append(withheld_text(target_db, full.database or '', withheld, ledger.shown, ledger.unread,
                                      ledger.coarse))
    granted = granted_text(target_db, full.database or '', ledger.unread_grants if ledger else [], not_given)
    if granted:
        warnings.append(granted)
    if replay.get('scratch_left'):
        result['scratch_left'] = replay['scratch_left']
        warnings.append(replay['scratch_warning'])
    if not defaults:
        warnings.append('The dump %s records no database character set/collation (taken by an older version): '
                        '%s has the server default.' % (full.id, target_db))
    if missing:
        warnings.append('The source held %s when %s was taken; the dump loaded %s. %s'
                        % (', '.join('%d %s' % (v, k) for k, v in missing['held'].items()), full.id,
                           ', '.join('%d %s' % (v, k) for k, v in missing['loaded'].items()) or 'none',
                           'An event whose one-time schedule (ON SCHEDULE AT) has passed and that is ON COMPLETION NOT '
                           'PRESERVE is dropped by the server as it is created (the source keeps it while '
                           'event_scheduler is OFF); compare SHOW EVENTS / SHOW ... STATUS of source and target.'))
    if replay.get('database_function'):
        warnings.append('The binary logs replayed statement(s) run with USE %s that call DATABASE() or SCHEMA(), '
                        'themselves or through a trigger they fire, a stored function or procedure they call or a view '
                        'they read whose body does: in the restored copy those returned its temporary name (%s), not '
                        '%s, so what they wrote differs from the source (binlog_format=STATEMENT/MIXED logs the '
                        'statement, not its rows). Check the rows they wrote: %s'
                        % (full.database, temp, full.database, '; '.join(replay['database_function'])))
    source_db = full.database or target_db
    naming = bodies_naming(engine, target_db, source_db) if source_db != target_db else []
    if naming:
        warnings.append('%s of %s name database %s in their body (%s.<table>): the dump keeps that text, so restored '
                        'under another name they read and write the tables of %s (where it exists on this server), '
                        'not those of %s: a write into %s that fires such a trigger changes %s. Check them '
                        '(SHOW CREATE ...) and point them at %s, or drop them, before using the copy.'
                        % (', '.join(naming), target_db, source_db, _q(source_db), source_db,
                           target_db, target_db, source_db, target_db))
    late = late_grant_warning(engine, full, target_db) if logs else None
    if late:
        warnings.append(late)
    absent = absent_definers(engine, target_db)
    if absent:
        warnings.append(absent_text(target_db, absent))
    lossy = full.data.get('lossy_text')
    if isinstance(lossy, dict) and lossy:
        # recorded by the backup: text the dump could not carry byte for byte (engines/mysql/backup.py lossy_text)
        warnings.append('%d value(s) in column(s) %s were restored changed: their character set has no byte-exact '
                        'Unicode round trip and %s-dump wrote them as utf8mb4 (the backup %s said so). Restore those '
                        'values from another copy.' % (sum(v for v in lossy.values() if isinstance(v, int)),
                                                       ', '.join(sorted(str(k) for k in lossy)), engine.flavor,
                                                       full.id))
    enum_errors = full.data.get('enum_error_values')
    if isinstance(enum_errors, dict) and enum_errors:
        # recorded by the backup (engines/mysql/backup.py enum_error_values)
        warnings.append("%d row(s) of ENUM column(s) %s held the error value (index 0) next to a '' member: the dump "
                        "wrote both as '', so those rows were restored with the '' member (the backup %s said so)."
                        % (sum(v for v in enum_errors.values() if isinstance(v, int)),
                           ', '.join(sorted(str(k) for k in enum_errors)), full.id))
    floats = full.data.get('float_precision')
    if isinstance(floats, dict) and floats:
        # recorded by the backup (engines/mysql/backup.py float_precision)
        warnings.append('%d FLOAT value(s) of column(s) %s were restored rounded to 6 significant digits: %s-dump '
                        'writes a FLOAT so (the backup %s said so). Restore those values from another copy.'
                        % (sum(v for v in floats.values() if isinstance(v, int)),
                           ', '.join(sorted(str(k) for k in floats)), engine.flavor, full.id))
    recomputed = full.data.get('generated_recomputed')
    if isinstance(recomputed, dict) and recomputed:
        # recorded by the backup (engines/mysql/backup.py generated_recomputed)
        warnings.append('%d value(s) of STORED generated column(s) %s were computed again by the load under its own '
                        'session settings and differ from the source\'s (the backup %s said so).'
                        % (sum(v for v in recomputed.values() if isinstance(v, int)),
                           ', '.join(sorted(str(k) for k in recomputed)), full.id))
    point, point_said, recovered = replay_point(request, chain, replay, engine.flavor)
    warnings += point_said
    unchecked = full.data.get('generated_unchecked')
    if isinstance(unchecked, dict) and unchecked:
        # recorded by the backup (engines/mysql/backup.py generated_recomputed)
        warnings.append('The backup %s says: %s.' % (full.id, generated_unchecked_text(
            {str(k): str(v) for k, v in unchecked.items()})))
    if warnings:
        result['warnings'] = warnings
    if point is not None:
        result['point_reached'] = point
    result['recovered_point'] = recovered
    return result


def replay_point(request: RestoreRequest, chain: List[Manifest], replay: Dict[str, Any],
                 flavor: str) -> Tuple[Optional[str], List[str], Dict[str, Any]]:
    """``(point_reached or None when the catalog's stands, the warnings about it, recovered_point)`` of a restore
    of ``chain`` whose replay read ``replay`` (``replay_outcome``: the real run's and check mode's alike)."""
    full, logs = chain[0], chain[1:]
    recovered = recovered_point(full, replay.get('last_event'))
    reach = replay.get('reach') or {}
    if not logs:
        return None, [], recovered
    if request.stop_at is None:
        told = future_stamp(chain, replay.get('last_event'), flavor)
        return (told[0], [told[1]], recovered) if told else (None, [], recovered)
    if not reach.get('left_out'):
        # the second of stop_at when the replay ran up to it
        floor = request.stop_at.astimezone(UTC).replace(microsecond=0)
        return isoformat(min(floor, max(m.consistent_at for m in chain))), [], recovered
    # it stopped before transactions stamped earlier (replay_reach): the last event it replayed
    stopped = isoformat(datetime.datetime.fromtimestamp(reach['stopped_at'], UTC))
    return recovered['at'], [
        'The binary logs hold %d transaction(s) of %s stamped before stop_at (%s) after an event stamped %s, at or '
        'after it: a session that set its own clock (SET TIMESTAMP) or a replica applying another server\'s '
        'events wrote them. %s-binlog --stop-datetime stops at the first event stamped at or after stop_at, so '
        'those were not replayed although the source had them before stop_at: the copy reaches %s (the last '
        'event replayed), which point_reached says. Restore with a stop_at after %s (or none) to replay them.'
        % (reach['left_out'], full.database, isoformat(request.stop_at), stopped, flavor, recovered['at'],
           stopped)], recovered


def replay_outcome(files: List[str], start: Optional[int], stop_at: Optional[datetime.datetime],
                   source: str) -> Dict[str, Any]:
    """What the replay of ``files`` (the first from byte ``start``) up to ``stop_at`` reaches, read from the events'
    headers (the real run's and check mode's one reading): ``reach`` (``replay_reach``, with stop_at) and
    ``last_event`` (``last_replayed_event``)."""
    stop = None if stop_at is None else int(stop_at.astimezone(UTC).replace(microsecond=0).timestamp())
    return {'reach': replay_reach(files, start, stop_at, source) if stop_at is not None else {},
            'last_event': last_replayed_event(files, start, source, stop)}


def recovered_point(full: Manifest, last_event: Optional[float]) -> Dict[str, Any]:
    """What the restored copy provably holds: the source as of the last binary log event of the database that
    was replayed into it (its header time, whole seconds), or,
    when no event of the database followed the dump, the dump's own consistent point."""
    if last_event is not None:
        moment = datetime.datetime.fromtimestamp(last_event, UTC)
        if moment >= full.consistent_at:
            return {'at': isoformat(moment), 'source': 'timestamp of the last binary log event replayed'}
    return {'at': isoformat(full.consistent_at),
            'source': 'consistent point of dump %s (no later event of the database replayed)' % full.id}


def future_stamp(chain: List[Manifest], last_event: Optional[float], flavor: str) -> Optional[Tuple[str, str]]:
    """A restore without stop_at replays every log of ``chain``; the catalog's point (the largest event stamp) is
    past the logs' archiving when a session set its own clock ahead (SET TIMESTAMP): no point the copy holds.
    ``(point_reached, warning)`` then (``last_event``: the last event replayed, ``recovered_point``; no later than
    the newest log was archived), else None (the catalog's point stands)."""
    logs = chain[1:]
    archived = max(m.finished for m in logs)
    reach = max(m.consistent_at for m in chain)
    if reach <= archived:
        return None
    point = min(datetime.datetime.fromisoformat(recovered_point(chain[0], last_event)['at'].replace('Z', '+00:00')),
                archived)
    return isoformat(point), (
        'The binary logs hold an event stamped %s, after they were archived (%s): a session that set its own clock '
        '(SET TIMESTAMP) or a replica applying another server\'s events wrote it. Every event was replayed; '
        'point_reached is the last one %s-binlog replayed (%s), not that stamp.'
        % (isoformat(reach), isoformat(archived), flavor, isoformat(point)))


def last_replayed_event(files: List[str], start: Optional[int], source: str,
                        stop: Optional[int] = None) -> Optional[float]:
    """The stamp of the last statement or transaction end (Query, Xid) of a transaction of ``source`` the replay
    of the raw logs ``files`` runs (from byte ``start`` of the first file, up to the first event stamped at or after
    ``stop``, where ``--stop-datetime`` ends it), in log order. A log damaged past what was read ends it there."""
    own = source.encode('utf-8')
    last: Optional[float] = None
    ending: Optional[int] = None
    mine = False
    try:
        for stamp, kind, body in replayed_events(files, start):
            if stop is not None and stamp >= stop:
                break
            if kind in GTID_EVENTS:
                if mine and ending is not None:
                    last = float(ending)
                mine, ending = False, None
            if kind in (QUERY_EVENT, XID_EVENT):
                ending = stamp
            if _event_database(kind, body) == own:
                mine = True
    except IntegrityError:
        pass
    if mine and ending is not None:
        last = float(ending)
    return last


def foresee_replay(engine: Any, request: RestoreRequest,
                   chain: List[Manifest]) -> Tuple[Optional[str], List[str], Dict[str, List[str]]]:
    """Check mode: the replay of ``chain``'s logs foreseen from the logs read as the real run reads them (decompressed
    once into a private scratch directory, removed): its refusal of the statements it cannot replay into the copy
    (``check_statements``); the ``point_reached`` (None: the catalog's stands) and warnings of the real run
    (``replay_point``), after a warning of the accounts the logs make DEFINERs after the dump that are no account of
    this server; and the DEFINERs of the objects the logs create (``check_statements``' ``definers``)."""
    if len(chain) < 2:
        return None, [], {}
    full, logs = chain[0], chain[1:]
    source = full.database or ''
    workdir = Scratch('binlog-check', request.tmpdir, 'db_restore')
    logged: Dict[str, List[str]] = {}
    accounts: List[Tuple[Any, ...]] = []
    try:
        files = [_decompress(m, workdir, engine.identities) for m in logs]
        argv, start = replay_argv(engine, request, full, logs)
        check_statements(engine, argv, files, source, None, logged, accounts)
        foresee_foreign_reach(engine, argv, files, logged_name(engine, source))
        replay = replay_outcome(files, start, request.stop_at, logged_name(engine, source))
    finally:
        workdir.remove()
    late = absent_accounts(engine, logged)
    said = [late_definer_text(late, source, 'The replay fails where a statement runs an object of such an account '
                                            '(ERROR 1449).')] if late else []
    roles = server_roles(engine.client)
    ledger = replay_grants(full.data.get('database_grants'), accounts, source, roles, all_privileges(engine.client),
                           folds_names(engine))
    if ledger and ledger.withheld:
        said.append(withheld_text(_target(request), source, ledger.withheld, ledger.shown, ledger.unread,
                                  ledger.coarse))
    # (whether the server takes the GRANTs of the logs is known when the real run gives them)
    granted = granted_text(_target(request), source, ledger.unread_grants if ledger else [], [])
    if granted:
        said.append(granted)
    point, told, _recovered = replay_point(request, chain, replay, engine.flavor)
    return point, said + told, logged


def foresee_foreign_reach(engine: Any, argv: List[str], files: List[str], source: str) -> None:
    """Check mode: the real run's ``refuse_foreign_reach``, which reads the triggers, views and routines of the loaded
    copy (check mode loads none), foreseen from those of the source database where it is on this server: the copy
    holds them as the backup had them, so those added or dropped since may make the two differ (nothing is foreseen
    where the source is not here)."""
    if not schema_exists(engine, source):
        return
    foreign = foreign_objects(engine, source, also=[source])
    if any(foreign.values()):
        refuse_foreign_reach(engine, argv, files, source, foreign, replay_server(engine))


def foresee_definers(engine: Any, request: RestoreRequest, chain: List[Manifest],
                     logged: Dict[str, List[str]]) -> List[str]:
    """Check mode: the real run's warning of the restored objects' DEFINERs that are no account of this server, from
    the backup's record of its objects and the objects the logs create (``logged``)."""
    definers: Dict[str, List[str]] = {}
    for source in ((chain[0].data.get('database_objects') or {}).get('definers') or {}, logged):
        for definer, kinds in source.items():
            definers.setdefault(definer, [])
            definers[definer] += [k for k in kinds if k not in definers[definer]]
    for kinds in definers.values():
        kinds.sort(key=OBJECT_KINDS.index)
    absent = absent_definers(engine, _target(request), definers)
    return [absent_text(_target(request), absent)] if absent else []


def _drop_with_grants(engine: Any, request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    """Drop the database, then revoke the privileges naming it (the server keeps them past DROP DATABASE; a
    restore gave the copy its source's)."""
    result = drop_named(engine, request, check_mode, _target, schema_exists, drop_schema)
    taken = revoke_grants(engine.client, _target(request), check_mode)
    result['revoked'] = taken['revoked']
    result['changed'] = result['changed'] or bool(taken['revoked'])
    if taken['warnings']:
        result['warnings'] = taken['warnings']
    return result


def drop(engine: Any, request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    if check_mode:
        return _drop_with_grants(engine, request, check_mode)
    with target_lock(engine, _target(request)):
        result = _drop_with_grants(engine, request, check_mode)
        # A drill's clean-up (state=absent of its scratch database) also drops what a killed run into it left.
        stale = drop_stale(engine, _target(request))
        result.update(dropped_stale=stale['dropped_stale'], kept_stale=stale['kept_stale'])
        if stale['warnings']:
            result['warnings'] = result.get('warnings', []) + stale['warnings']
        result['changed'] = result['changed'] or bool(stale['dropped_stale'])
        return result


class MySQLRestore(Restorer):
    """db_restore for MariaDB/MySQL (the dump, then the binary logs up to the point)."""

    restore_with = restore
    drop_with = drop

    def check(self, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
        engine = self.engine(request)
        if chain:
            before = preflight(engine, request, chain)
        else:
            engine.ping()
            before = check_target(engine, request)
        foresee_probe(engine, _target(request), chain[0].data.get('database_objects') if chain else None)
        # a replay's refusal for want of GRANT OPTION (the backup's DEFINERs; those the logs make: below)
        refused = foresee_lending(engine, chain[0], _target(request)) if len(chain) > 1 else []
        # What a real run would replace (replace=true onto a database that holds something), for check mode.
        existing = dict({'tables': len(before['tables'])}, **{k: len(v) for k, v in before['objects'].items()})
        result = {'database': request.database, 'server': engine.server_label(),
                  'existing': existing if before['exists'] else None}
        point, said, logged = foresee_replay(engine, request, chain)
        # an account the logs make a DEFINER after the dump, its privileges on the source not lendable: the real run
        # loads the dump, then its replay fails (ERROR 1142, with lending_hint)
        if refused:
            refuse_lending(chain[0], refused, logged)
        if chain:
            said = foresee_definers(engine, request, chain, logged) + said
        if point is not None:
            result['point_reached'] = point
        if said:
            result['warnings'] = said
        return result
