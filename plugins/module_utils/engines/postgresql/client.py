# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL client: the one place that turns connection options into libpq's environment, finds and
runs the client programs (psql, pg_dump, pg_restore, pg_amcheck ...), runs queries and classifies libpq's
errors. Backup (``engines/postgresql/backup.py``), restore, maintenance and DR drill checks compose it; none of them
builds a psql command line or a ``PG*`` environment itself.

Secrets: the password reaches libpq through ``PGPASSWORD`` (or the user's ``PGPASSFILE``), never argv.
Errors are classified whatever the server's language (see ``classify``): libpq's own messages are English, since
``ToolRunner`` runs every tool under ``LC_ALL=C.UTF-8`` and ``LANGUAGE=C``; the server's are in its ``lc_messages``
(postgresql.conf for a refused connection, else the database's or the role's setting too), so a server error is
told by its SQLSTATE (psql ``VERBOSITY=verbose``: ``sqlstate``), its English text being only one more way.

search_path (CVE-2018-1058's class): a database or role may carry ``SET search_path`` listing a schema before
pg_catalog; every unqualified function or operator of our SQL there (count(), current_setting(), =, ...) would
then run that schema's object of the same name, written by whoever may create in it, as our login (a superuser for
backups and failover). So every session of a ``PostgresClient`` pins ``search_path=pg_catalog,pg_temp`` in the
startup packet (``PGOPTIONS``; it outranks the database's and the role's setting), for psql and for the programs
(pg_dump, pg_restore, pg_basebackup, pg_amcheck, pg_rewind set their own path too). Our SQL therefore names user
objects schema-qualified. ``catalog_only=False`` opts out, only for a session that runs SQL meant for the
database's own search_path (an operator's drill smoke queries, the failover drill's stand-in application writer)
or that may go through a pooler refusing the ``options`` startup parameter (PgBouncer) and runs nothing a schema
can shadow (the health check's ``SELECT 1``); each opt-out says why where it is made.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import io
import os
import re
import secrets
import select
import shutil
import subprocess  # nosec B404 # argv lists via the runner, never a shell
import time
from typing import IO, Dict, Iterator, List, Optional, Set, Tuple, cast

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    DEFAULT_TIMEOUT, ConnectionParams, SessionLimits, Timeout, ToolClient, connect_failure_reason, pick_timeout)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import check_name

DEFAULT_PORT = 5432
# Prefix of our own queries inside a user's database: its ALTER DATABASE/ROLE ... SET search_path may list a schema
# before pg_catalog, and then an unqualified count(), pg_get_userbyid(), ... would run that schema's function of the
# same name (written by whoever owns the schema) with our login, a superuser for backups (CVE-2018-1058's class).
# pg_dump and pg_restore pin it the same way; psql -c runs both statements in one round trip.
CATALOG_SEARCH_PATH = 'SET search_path = pg_catalog, pg_temp; '
# The same, for the startup packet (PGOPTIONS) of every session: in force before the first statement. And our
# sessions run as the login itself: a database's (or role's) ``ALTER ... SET role`` (every application session as the
# owning role) would make pg_dump read only what that role may (a table it has no grant on: the backup fails; a
# subscription, which only a superuser may dump: left out with a mere warning) and our catalog reads and the
# restore's statements run without the login's privileges.
CATALOG_OPTIONS = '-c search_path=pg_catalog,pg_temp -c role=none'
# psql script lines that make the session's text UTF-8 (what we decode and write), whatever the database's own
# encoding (a LATIN1 database's sessions default to LATIN1) or its ALTER DATABASE ... SET client_encoding; a SQL_ASCII
# database's text is bytes the server cannot convert (it refuses any that are not UTF-8): read as they are.
UTF8_SCRIPT = ("SELECT CASE WHEN pg_catalog.getdatabaseencoding() = 'SQL_ASCII' THEN 'SQL_ASCII' ELSE 'UTF8' END "
               "AS opsready_encoding \\gset\n\\encoding :opsready_encoding\n")
# The database our sessions without a database of their own (locks, CREATE/DROP/RENAME DATABASE) connect to.
MAINTENANCE_DATABASE = 'postgres'
# libpq starts every failure with "connection to server ... failed:", so the reason decides which one it is. The
# reason is libpq's own (English: the runner's locale) or the server's, in the language of its postgresql.conf
# lc_messages: a refusal comes before the role's, the database's and the startup packet's settings apply, and libpq
# prints it without its SQLSTATE (the connection has no verbosity yet). Those English texts name the cause; in
# another language the server's refusal is told by its form (SERVER_REFUSAL), the cause left to its own words.
LOGIN_REFUSED = ('password authentication failed', 'no password supplied', 'no pg_hba.conf entry',
                 'authentication failed', 'role "')
CONNECT_HINTS = ('could not connect', 'timeout expired', 'Connection refused', 'could not translate host name',
                 'No such file or directory', 'Network is unreachable', 'No route to host')
# libpq's "connection to server ... failed: " (English) and then a message of the server, "<severity>:  <text>"
# (two spaces; the severity word in the server's language, FATAL in most), which is what the server refused with.
SERVER_REFUSAL = re.compile(r'connection to server .*? failed: ([^\s:"]+:  .*)$', re.M)
# psql with VERBOSITY=verbose (VERBOSE) prints a server's message as "<severity>:  <SQLSTATE>: <text>" (after
# "psql:<file>:<line>: " for a script), the SQLSTATE the same in every language (errcodes.txt).
VERBOSE = ('-v', 'VERBOSITY=verbose')
# An error's SQLSTATE: a NOTICE or WARNING printed before it (classes 00, 01, 02: "HINWEIS:  00000: ...") is not it.
_SQLSTATE = re.compile(r'^(?:psql:[^\n]*?:\d+: )?[^\s:"]+:  ((?!0[012])[0-9A-Z]{5}): ', re.M)
_SEVERITY_LINE = re.compile(r'(?:psql:[^\n]*?:\d+: )?[^\s:"]+:  ')
LOCK_NOT_AVAILABLE = '55P03'   # lock_timeout (and NOWAIT)
QUERY_CANCELED = '57014'       # statement_timeout (and a cancel request)
OBJECT_IN_USE = '55006'        # "database ... is being accessed by other users"
INVALID_PARAMETER_VALUE = '22023'
INSUFFICIENT_PRIVILEGE = '42501'


def sqlstate(stderr: str) -> Optional[str]:
    """The SQLSTATE of the first server error with one in ``stderr`` (psql run with ``VERBOSE``; notices and
    warnings passed over), else None."""
    found = _SQLSTATE.search(stderr or '')
    return found.group(1) if found else None


def newest_packaged_tool(name: str, root: str = '/usr/lib/postgresql') -> Optional[str]:
    """``/usr/lib/postgresql/<major>/bin/<name>`` of the newest major installed (Debian/Ubuntu layout);
    a newer client works with older servers (pg_dump, pg_basebackup, psql)."""
    def major(bindir: str) -> Tuple[int, ...]:
        version = os.path.basename(os.path.dirname(bindir))
        return tuple(int(part) for part in version.split('.') if part.isdigit())
    for bindir in sorted(glob.glob(os.path.join(root, '*', 'bin')), key=major, reverse=True):
        candidate = os.path.join(bindir, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_client_tool(name: str, path: Optional[str] = None, root: str = '/usr/lib/postgresql') -> Optional[str]:
    """A PostgreSQL client program: on PATH, else (or instead of Debian's wrapper) the newest packaged one."""
    found = shutil.which(name, path=path)
    if not found or os.path.basename(os.path.realpath(found)) == 'pg_wrapper':
        # Debian's /usr/bin/<tool> is pg_wrapper, a Perl script that execs the newest installed client for
        # a remote server: ~60 ms per call, several calls per backup. Go to that binary directly.
        found = newest_packaged_tool(name, root) or found
    return found


def csv_rows(out: str) -> List[List[str]]:
    """Rows of ``psql --csv -t`` output: a value holding a tab, newline or comma (a name) stays one value."""
    return [row for row in csv.reader(io.StringIO(out)) if row]


# PostgreSQL 17's switch for every event trigger of a session (a superuser's setting): whatever their enable mode
# (ENABLE REPLICA and ENABLE ALWAYS fire under session_replication_role=replica), login triggers included, which fire
# on the connection itself, before any statement could disable them.
EVENT_TRIGGERS_OFF = '-c event_triggers=off'
EVENT_TRIGGERS_OFF_SINCE = 170000   # server_version_num


def _message_line(stderr: str) -> str:
    """The server's error line of ``stderr``: the first "<severity>:  " line that is an error (an error-class
    SQLSTATE, or ERROR/FATAL), else the first such line, else its last line. A NOTICE before the error is not it."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    found = [line for line in lines if _SEVERITY_LINE.match(line)]
    errors = [line for line in found if _SQLSTATE.match(line) or 'ERROR:  ' in line or 'FATAL:  ' in line]
    return (errors or found or lines or [''])[0 if (errors or found) else -1]


class PostgresClient(ToolClient):
    """One PostgreSQL endpoint (``ConnectionParams``) as the client programs reach it.

    ``app``: the ``application_name`` the server shows (``pg_stat_activity``) for this area's sessions.
    ``limits``: ``lock_timeout``/``statement_timeout`` for every session (through ``PGOPTIONS``).
    ``timeout``: how long one query may run before the tool is killed (``connection.query_timeout``).
    ``catalog_only`` (default): every session runs with ``search_path`` pg_catalog, pg_temp (set in the startup
    packet, which outranks the database's and the role's own setting; see the module docstring); False only for a
    session whose SQL is meant for the database's own search_path, never for ours."""

    engine = 'postgresql'
    default_port = DEFAULT_PORT

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None, app: str = 'opsready',
                 limits: Optional[SessionLimits] = None, timeout: Timeout = DEFAULT_TIMEOUT,
                 catalog_only: bool = True) -> None:
        super().__init__(conn, runner, limits, timeout)
        self.app = app
        self.catalog_only = catalog_only
        self._bins: Dict[str, str] = {}
        self._versions: Dict[str, str] = {}
        # Databases whose sessions of this client start with event triggers off (PostgreSQL 17+, superuser: a
        # restore's copy and target, so that neither their DDL triggers of any enable mode nor their login
        # triggers fire on the restore's own sessions); filled by the caller that knows both.
        self.quiet_databases: Set[str] = set()

    # -- programs ------------------------------------------------------------------------------------
    def find_tool(self, name: str) -> Optional[str]:
        """The program's path, or None when it is not installed (for optional tools such as pg_amcheck)."""
        if name not in self._bins:
            found = find_client_tool(name, self.runner.env.get('PATH'))
            if not found:
                return None
            self._bins[name] = found
        return self._bins[name]

    def tool(self, name: str) -> str:
        found = self.find_tool(name)
        if not found:
            raise OpsReadyError('%s was not found on the managed host: install the PostgreSQL client '
                                '(Debian: postgresql-client-15) or put it on PATH.' % name)
        return found

    def tool_version(self, tool: str) -> str:
        if tool not in self._versions:
            _rc, out, _err = self.runner.run([self.tool(tool), '--version'], what=tool)
            self._versions[tool] = out.strip()
        return self._versions[tool]

    def psql_argv(self, *args: str, rows: bool = False, header: bool = False, verbose: bool = False) -> List[str]:
        """The one psql command line: no ~/.psqlrc (-X, a user's settings must not change what runs), quiet,
        stop at the first error (ON_ERROR_STOP=1) and never prompt for a password (-w: fail instead of hanging).
        ``rows``: tuples only, as CSV (``csv_rows`` parses them; a name with a tab or newline stays one value);
        ``header``: CSV with the column names first; ``verbose``: the server's messages with their SQLSTATE
        (``sqlstate``), for a caller that acts on one error (the server's language may be any)."""
        shape = ['--csv', '-t'] if rows else (['--csv'] if header else [])
        return [self.tool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-w'] + (list(VERBOSE) if verbose else []) \
            + shape + list(args)

    # -- connection ------------------------------------------------------------------------------------
    def env(self, database: Optional[str] = None) -> Dict[str, str]:
        """libpq's environment for one session: endpoint, login, application name, session limits, database."""
        c = self.conn
        env = {'PGCONNECT_TIMEOUT': str(max(1, c.connect_timeout)), 'PGAPPNAME': self.app}
        if c.unix_socket:
            env['PGHOST'] = c.unix_socket
        elif c.host:
            env['PGHOST'] = c.host
        if c.port:
            env['PGPORT'] = str(c.port)
        if c.user:
            env['PGUSER'] = c.user
        if c.password:
            env['PGPASSWORD'] = c.password
        if c.option_file:
            env['PGPASSFILE'] = c.option_file
        options = [CATALOG_OPTIONS] if self.catalog_only else []
        if self.limits is not None:
            options.append('-c lock_timeout=%ds' % max(1, self.limits.lock_timeout))
            if self.limits.statement_timeout:
                options.append('-c statement_timeout=%ds' % self.limits.statement_timeout)
        if database in self.quiet_databases:
            options.append(EVENT_TRIGGERS_OFF)
        if options:
            env['PGOPTIONS'] = ' '.join(options)
        # PGDATABASE is taken as the name only (never parsed as a connection string or an option), but the
        # server cuts a long one to 63 bytes: refused here, before any tool connects anywhere.
        env['PGDATABASE'] = check_name(database, 'database name') if database else MAINTENANCE_DATABASE
        return env

    def classify(self, exc: ToolError) -> OpsReadyError:
        """A libpq/server failure turned into what the operator must check; ``exc`` itself when it is none
        of the known ones (a SQL error: its own message says it best)."""
        where = self.conn.where(self.default_port)
        extra = {'host': self.conn.host, 'port': self.conn.port or self.default_port}
        if 'FATAL' in exc.stderr and re.search(r'database "[^"]*" does not exist', exc.stderr):
            return OpsReadyError(
                'PostgreSQL at %s has no such database: %s. Check the database option (and, for a .pgpass login, '
                'the database field of its entry).' % (where, connect_failure_reason(exc.stderr, exc.message)),
                **extra)
        # libpq's own refusals (fe_sendauth: no password supplied) carry no FATAL, the server's do.
        if ('FATAL' in exc.stderr or 'fe_sendauth' in exc.stderr) and any(h in exc.stderr for h in LOGIN_REFUSED):
            return OpsReadyError(
                'PostgreSQL at %s refused the login of %s: %s. Check login_user and the password (login_password, '
                'or the entry in login_option_file), and the server\'s pg_hba.conf.'
                % (where, self.conn.user or 'the default user', connect_failure_reason(exc.stderr, exc.message)),
                **extra)
        refusal = SERVER_REFUSAL.search(exc.stderr)
        if refusal is not None:
            # the server refused the connection (in a language other than English, or a refusal without a hint of
            # ours: too many clients, starting up): its own words say why
            return OpsReadyError(
                'PostgreSQL at %s refused the connection of %s: %s. The server\'s message says why; check the login '
                '(login_user, login_password or the entry in login_option_file), the server\'s pg_hba.conf, and that '
                'the database exists and accepts connections.'
                % (where, self.conn.user or 'the default user', refusal.group(1).strip()), **extra)
        if any(h in exc.stderr for h in CONNECT_HINTS):
            return OpsReadyError(
                'Cannot connect to PostgreSQL at %s within connect_timeout=%ss: %s. Check that the server '
                'is running and that login_host/login_port (or login_unix_socket) are right.'
                % (where, self.conn.connect_timeout, connect_failure_reason(exc.stderr, exc.message)), **extra)
        state = sqlstate(exc.stderr)
        if self.limits is not None and ('lock timeout' in exc.stderr or state == LOCK_NOT_AVAILABLE):
            return OpsReadyError('Gave up waiting for a lock after lock_timeout=%ss (%s): another session holds '
                                 'it; run again later or raise lock_timeout.'
                                 % (self.limits.lock_timeout, _message_line(exc.stderr)))
        if self.limits is not None and ('statement timeout' in exc.stderr or state == QUERY_CANCELED):
            # 57014 is also a cancel request (pg_cancel_backend by a DBA): the server's words say which it was
            return OpsReadyError('Statement cancelled (%s): statement_timeout=%ss ended it, or a cancel request did '
                                 '(pg_cancel_backend). Raise statement_timeout or run it in a quieter window.'
                                 % (_message_line(exc.stderr), self.limits.statement_timeout))
        return exc

    # -- queries -------------------------------------------------------------------------------------------
    def run_psql(self, sql: str, database: Optional[str] = None, header: bool = False,
                 timeout: Timeout = DEFAULT_TIMEOUT, verbose: bool = False) -> str:
        """psql's CSV output of ``sql`` (tuples only unless ``header``); failures classified. ``verbose``: the
        server's messages carry their SQLSTATE (``sqlstate``); always under ``limits`` (``classify`` tells a lock or
        statement timeout by it)."""
        argv = self.psql_argv('-c', sql, rows=not header, header=header, verbose=verbose or self.limits is not None)
        return self.run_tool(argv, env=self.env(database), timeout=pick_timeout(timeout, self.timeout), what='psql')

    def query(self, sql: str, database: Optional[str] = None, timeout: Timeout = DEFAULT_TIMEOUT,
              verbose: bool = False) -> List[List[str]]:
        """Rows as lists of text. CSV, not -A -F '\\t': names with a tab or a newline stay one value."""
        return csv_rows(self.run_psql(sql, database, timeout=timeout, verbose=verbose))

    def query_script(self, script: str, database: Optional[str] = None,
                     timeout: Timeout = DEFAULT_TIMEOUT, verbose: bool = False) -> List[List[str]]:
        """Rows of a psql script sent on stdin (one psql run, one login): for a query that needs psql's own
        features, e.g. ``\\gset`` of a name read from the catalog and then ``:"name"`` quoted as an identifier
        (a schema-qualified reference to an object whose schema only the server knows). Everything psql prints
        is read as CSV rows: only the script's last statement should return rows. ``verbose``: as ``run_psql``'s."""
        argv = self.psql_argv('-f', '-', rows=True, verbose=verbose or self.limits is not None)
        return csv_rows(self.run_tool(argv, env=self.env(database), timeout=pick_timeout(timeout, self.timeout),
                                      what='psql', data=script.encode('utf-8')))

    def query_dicts(self, sql: str, database: Optional[str] = None,
                    timeout: Timeout = DEFAULT_TIMEOUT) -> List[Dict[str, str]]:
        """Rows as {column: text}."""
        return list(csv.DictReader(io.StringIO(self.run_psql(sql, database, header=True, timeout=timeout))))

    # -- locks ----------------------------------------------------------------------------------------------
    @staticmethod
    def lock_key(purpose: str, key: str) -> int:
        """The advisory lock key (a signed 64-bit integer) for ``purpose`` on ``key`` (any name): hashed, so
        it cannot meet the small integers applications use for their own advisory locks."""
        digest = hashlib.sha256(('opsready.%s\0%s' % (purpose, key)).encode('utf-8', 'surrogateescape')).digest()
        return int.from_bytes(digest[:8], 'big', signed=True)

    @contextlib.contextmanager
    def advisory_lock(self, key: int, busy: str) -> Iterator['PsqlSession']:
        """Hold the session-level advisory lock ``key`` for the block, or fail at once with ``busy``. The block
        gets the holding session (``PsqlSession``, in the maintenance database) for queries of its own there.

        The lock belongs to a server session and every query runs in a session of its own, so one psql is kept
        open for the block, its stdin the only way in; it is connected to the maintenance database (where every
        query of ours without a database runs), never to a database the block may rename or drop. The server
        releases the lock when that session ends, whatever ends it: the block, a crash of this process (psql
        reads end-of-file and exits), a killed connection. Held by another session: OpsReadyError with ``busy``
        and that session's pid and application name.
        """
        session = self.session()
        try:
            # The session sits idle while the block works: a server or role idle_session_timeout (PostgreSQL 14+;
            # not a setting at all on 13, hence through pg_settings) would end it and free the lock mid-block.
            answer = session.query("SELECT pg_try_advisory_lock(%d), pg_backend_pid(), (SELECT count(set_config("  # nosec B608
                                   "name, '0', false)) FROM pg_settings WHERE name = 'idle_session_timeout')" % key,
                                   timeout=self.conn.connect_timeout + 30)
        except OpsReadyError as exc:
            session.close()
            if not isinstance(exc, ToolError):
                raise   # classified (cannot connect, login refused, no such database): that is the whole story
            raise OpsReadyError('Could not take the advisory lock %d on PostgreSQL at %s: %s' % (
                key, self.conn.where(self.default_port), exc), lock=key)
        if (answer or [[]])[0][:1] != ['t']:
            session.close()
            raise OpsReadyError('%s (advisory lock %d held by %s).' % (busy, key, self._lock_holder(key)), lock=key)
        try:
            yield session
        finally:
            # closing the session releases the lock as well; the explicit unlock only makes it prompt
            if session.alive:
                try:
                    session.query('SELECT pg_advisory_unlock(%d)' % key, timeout=30)
                except OpsReadyError:
                    pass
            session.close()

    def _lock_holder(self, key: int) -> str:
        """Who holds advisory lock ``key`` in the maintenance database: 'backend pid N (application_name)'."""
        unsigned = key & 0xffffffffffffffff
        try:
            rows = self.query(
                "SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l "  # nosec B608 # two integers
                'LEFT JOIN pg_stat_activity a ON a.pid = l.pid '
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = %d AND l.objid = %d "
                'AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())'
                % (unsigned >> 32, unsigned & 0xffffffff))
        except (OpsReadyError, ToolError):
            rows = []
        if not rows:
            return 'another session (gone since)'
        return ', '.join('backend pid %s (%s)' % (pid, app or 'no application_name') for pid, app in rows)

    def session(self, database: Optional[str] = None) -> 'PsqlSession':
        """One psql kept open: queries one after another over one connection (see ``PsqlSession``)."""
        return PsqlSession(self, database)


class PsqlSession:
    """One psql process kept open, its queries sent on stdin: one program start, connection and login for many
    queries (a failover observes a node, then promotes it, inside the downtime).

    The same command line and environment as ``run_psql`` (``psql_argv``: -X, ON_ERROR_STOP=1, -w, CSV tuples;
    the password in ``PGPASSWORD``/``PGPASSFILE``, never argv; the SQL on stdin, never argv). Each query is
    followed by ``\\echo`` of a random end marker: psql flushes stdout before it reads the next line, so the
    marker arriving means the query's rows are all there. The SQL is read as a psql script: a backslash or a
    ``:name`` outside a quoted literal is psql's, as in any script on stdin.

    The session ends on the first failure: a SQL error (ON_ERROR_STOP: psql exits 3), the connection lost (psql
    exits 2: the server stopped or crashed, the backend was terminated; or psql itself was killed), or the query
    running past its timeout (psql is killed). ``query`` then raises the client's classified error and ``alive``
    is False. ``lost`` tells the caller that an established session ended under a query that may or may not
    have run (neither a SQL error nor our timeout): whether to ask again, on a new session, is the caller's
    decision (only for what is safe to send twice)."""

    SQL_ERROR = 3   # psql's exit status when a statement failed under ON_ERROR_STOP

    def __init__(self, client: PostgresClient, database: Optional[str] = None) -> None:
        self.client = client
        self.runner = client.runner
        self.argv = client.psql_argv(rows=True)
        self.marker = ('opsready-end-%s' % secrets.token_hex(16)).encode('ascii')
        self.answered = 0                  # queries answered; 0: the connection itself may have failed
        self.returncode: Optional[int] = None
        self.timed_out = False
        self.proc = self.runner.popen(self.argv, env=client.env(database), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)

    @property
    def alive(self) -> bool:
        return self.returncode is None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def lost(self) -> bool:
        """The session had answered before and then ended without a SQL error or a timeout: the connection (or
        psql) died under the last query."""
        return (self.answered > 0 and not self.alive and not self.timed_out
                and self.returncode not in (None, self.SQL_ERROR))

    def query(self, sql: str, timeout: Timeout = DEFAULT_TIMEOUT) -> List[List[str]]:
        """Rows as lists of text (``csv_rows``), like ``PostgresClient.query``."""
        limit = pick_timeout(timeout, self.client.timeout)
        deadline = None if limit is None else time.monotonic() + limit
        # The statement's own line ends with ';' on a line of its own: a trailing -- comment cannot swallow it.
        script = sql.rstrip().rstrip(';').rstrip() + '\n;\n\\echo ' + self.marker.decode('ascii') + '\n'
        if not self.alive:
            if self.returncode is None:
                raise self._failure(limit)   # psql ended between queries (killed): how, classified
            raise ToolError('psql session already ended (exit %s).' % self.returncode, rc=self.returncode)
        try:
            stdin = cast(IO[bytes], self.proc.stdin)
            stdin.write(script.encode('utf-8'))
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._failure(limit)
        out = self._read(deadline)
        if out is None:
            raise self._failure(limit)
        self.answered += 1
        return csv_rows(self.runner.redact(out.decode('utf-8', 'replace')))

    def _read(self, deadline: Optional[float]) -> Optional[bytes]:
        """stdout up to the end marker (without it); None when psql exited or the deadline passed (killed)."""
        fd = cast(IO[bytes], self.proc.stdout).fileno()
        end = self.marker + b'\n'
        buf = b''
        while True:
            if buf == end or buf.endswith(b'\n' + end):
                return buf[:-len(end)]
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                self._kill()
                self.timed_out = True
                return None
            ready, _w, _x = select.select([fd], [], [], wait)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            buf += chunk

    def _failure(self, limit: Optional[float]) -> OpsReadyError:
        """The session's end as the client's classified error (psql's stderr, redacted)."""
        if self.timed_out:
            self.returncode = self.proc.returncode
            self._finish()
            return ToolError('psql timed out after %ss (session killed).' % limit,
                             cmd=[self.runner.redact(a) for a in self.argv])
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._kill()
            rc = -9
        err = self._finish()
        self.returncode = rc
        if rc == 0:
            # psql ended without an error of its own (stdin closed): say so rather than "exit code 0"
            last = err.strip().splitlines()[-1] if err.strip() else 'no message'
            return ToolError('psql session ended (%s).' % last, rc=rc, stderr=err)
        return self.client.classify(self.runner.failure(self.argv, rc, err, 'psql'))

    def _finish(self) -> str:
        err_file = getattr(self.proc, 'stderr_file', None)
        if err_file is None or err_file.closed:
            return ''
        err_file.seek(0)
        err = self.runner.redact(err_file.read().decode('utf-8', 'replace'))
        err_file.close()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        return err

    def _kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        """End psql (\\q, then EOF; killed if it does not go within 5 s). Idempotent."""
        if self.alive:
            try:
                stdin = cast(IO[bytes], self.proc.stdin)
                stdin.write(b'\\q\n')
                stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
        elif self.proc.poll() is None:
            self._kill()
        self.returncode = self.proc.returncode if self.returncode is None else self.returncode
        self._finish()

    def __enter__(self) -> 'PsqlSession':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
