# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL client: the one place that turns connection options into libpq's environment, finds and
runs the client programs (psql, pg_dump, pg_restore, pg_amcheck ...), runs queries and classifies libpq's
errors. Backup (``engines/postgresql/backup.py``), restore, maintenance and DR drill checks compose it; none of them
builds a psql command line or a ``PG*`` environment itself.

Secrets: the password reaches libpq through ``PGPASSWORD`` (or the user's ``PGPASSFILE``), never argv.
Errors are classified by libpq's English messages: ``ToolRunner`` runs every tool under ``LC_ALL=C.UTF-8``.

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
import select
import shutil
import subprocess  # nosec B404 # argument lists via the runner, never a shell
from typing import Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    DEFAULT_TIMEOUT, ConnectionParams, SessionLimits, Timeout, ToolClient, connect_failure_reason, pick_timeout)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import check_name

DEFAULT_PORT = 5432
# libpq starts every failure with "connection to server ... failed:", so the reason decides which one it is.
LOGIN_REFUSED = ('password authentication failed', 'no password supplied', 'no pg_hba.conf entry',
                 'authentication failed', 'role "')
CONNECT_HINTS = ('could not connect', 'timeout expired', 'Connection refused', 'could not translate host name',
                 'No such file or directory', 'Network is unreachable', 'No route to host')


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


class PostgresClient(ToolClient):
    """One PostgreSQL endpoint (``ConnectionParams``) as the client programs reach it.

    ``app``: the ``application_name`` the server shows (``pg_stat_activity``) for this area's sessions.
    ``limits``: ``lock_timeout``/``statement_timeout`` for every session (through ``PGOPTIONS``).
    ``timeout``: how long one query may run before the tool is killed (``connection.query_timeout``)."""

    engine = 'postgresql'
    default_port = DEFAULT_PORT

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None, app: str = 'opsready',
                 limits: Optional[SessionLimits] = None, timeout: Timeout = DEFAULT_TIMEOUT) -> None:
        super().__init__(conn, runner, limits, timeout)
        self.app = app
        self._bins: Dict[str, str] = {}
        self._versions: Dict[str, str] = {}

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

    def psql_argv(self, *args: str, rows: bool = False, header: bool = False) -> List[str]:
        """The one psql command line: no ~/.psqlrc (-X, a user's settings must not change what runs), quiet,
        stop at the first error (ON_ERROR_STOP=1) and never prompt for a password (-w: fail instead of hanging).
        ``rows``: tuples only, as CSV (``csv_rows`` parses them; a name with a tab or newline stays one value);
        ``header``: CSV with the column names first."""
        shape = ['--csv', '-t'] if rows else (['--csv'] if header else [])
        return [self.tool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-w'] + shape + list(args)

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
        if self.limits is not None:
            options = ['-c lock_timeout=%ds' % max(1, self.limits.lock_timeout)]
            if self.limits.statement_timeout:
                options.append('-c statement_timeout=%ds' % self.limits.statement_timeout)
            env['PGOPTIONS'] = ' '.join(options)
        # PGDATABASE is taken as the name only (never parsed as a connection string or an option), but the
        # server cuts a long one to 63 bytes: refused here, before any tool connects anywhere.
        env['PGDATABASE'] = check_name(database, 'database name') if database else 'postgres'
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
        if any(h in exc.stderr for h in CONNECT_HINTS):
            return OpsReadyError(
                'Cannot connect to PostgreSQL at %s within connect_timeout=%ss: %s. Check that the server '
                'is running and that login_host/login_port (or login_unix_socket) are right.'
                % (where, self.conn.connect_timeout, connect_failure_reason(exc.stderr, exc.message)), **extra)
        if self.limits is not None and 'lock timeout' in exc.stderr:
            return OpsReadyError('Gave up waiting for a lock after lock_timeout=%ss (%s): another session holds '
                                 'it; run again later or raise lock_timeout.'
                                 % (self.limits.lock_timeout, exc.stderr.strip().splitlines()[-1]))
        if self.limits is not None and 'statement timeout' in exc.stderr:
            return OpsReadyError('Statement cancelled after statement_timeout=%ss: raise statement_timeout or '
                                 'run it in a quieter window.' % self.limits.statement_timeout)
        return exc

    # -- queries -------------------------------------------------------------------------------------------
    def run_psql(self, sql: str, database: Optional[str] = None, header: bool = False,
                 timeout: Timeout = DEFAULT_TIMEOUT) -> str:
        """psql's CSV output of ``sql`` (tuples only unless ``header``); failures classified."""
        argv = self.psql_argv('-c', sql, rows=not header, header=header)
        return self.run_tool(argv, env=self.env(database), timeout=pick_timeout(timeout, self.timeout), what='psql')

    def query(self, sql: str, database: Optional[str] = None, timeout: Timeout = DEFAULT_TIMEOUT) -> List[List[str]]:
        """Rows as lists of text. CSV, not -A -F '\\t': names with a tab or a newline stay one value."""
        return csv_rows(self.run_psql(sql, database, timeout=timeout))

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
    def advisory_lock(self, key: int, busy: str) -> Iterator[None]:
        """Hold the session-level advisory lock ``key`` for the block, or fail at once with ``busy``.

        The lock belongs to a server session and every query runs in a session of its own, so one psql is kept
        open for the block, its stdin the only way in; it is connected to the maintenance database (where every
        query of ours without a database runs), never to a database the block may rename or drop. The server
        releases the lock when that session ends, whatever ends it: the block, a crash of this process (psql
        reads end-of-file and exits), a killed connection. Held by another session: OpsReadyError with ``busy``
        and that session's pid and application name.
        """
        argv = self.psql_argv(rows=True)
        proc = self.runner.popen(argv, env=self.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        stdin, stdout = proc.stdin, proc.stdout
        if stdin is None or stdout is None:   # both are pipes: for the type checker
            raise OpsReadyError('Internal error: psql was started without pipes.')
        answer: List[str] = []
        try:
            stdin.write(b'SELECT pg_try_advisory_lock(%d), pg_backend_pid();\n' % key)
            stdin.flush()
            ready, dummy, dummy2 = select.select([stdout], [], [], self.conn.connect_timeout + 30)
            if ready:
                answer = (csv_rows(stdout.readline().decode('utf-8', 'replace')) or [[]])[0]
        except OSError:
            answer = []
        if answer[:1] != ['t']:
            err = self._stop(proc)
            if answer[:1] == ['f']:
                raise OpsReadyError('%s (advisory lock %d held by %s).' % (busy, key, self._lock_holder(key)),
                                    lock=key)
            raise OpsReadyError('Could not take the advisory lock %d on PostgreSQL at %s: %s' % (
                key, self.conn.where(self.default_port), err or 'no answer from psql'), lock=key)
        try:
            yield
        finally:
            try:
                stdin.write(b'SELECT pg_advisory_unlock(%d);\n' % key)
                stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._stop(proc)

    def _stop(self, proc: subprocess.Popen) -> str:
        """End a psql we hold open (its session, and the session's locks, go with it); its stderr, redacted."""
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        err = ''
        err_file = getattr(proc, 'stderr_file', None)
        if err_file is not None:
            try:
                err_file.seek(0)
                err = self.runner.redact(err_file.read().decode('utf-8', 'replace')).strip()
            except (OSError, ValueError):
                pass
        for handle in (proc.stdin, proc.stdout, err_file):
            if handle is not None:
                try:
                    handle.close()
                except (OSError, ValueError):
                    pass
        return err

    def _lock_holder(self, key: int) -> str:
        """Who holds advisory lock ``key`` in the maintenance database: 'backend pid N (application_name)'."""
        unsigned = key & 0xffffffffffffffff
        try:
            rows = self.query(
                "SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l "
                'LEFT JOIN pg_stat_activity a ON a.pid = l.pid '
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = %d AND l.objid = %d "
                'AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())'
                % (unsigned >> 32, unsigned & 0xffffffff))
        except (OpsReadyError, ToolError):
            rows = []
        if not rows:
            return 'another session (gone since)'
        return ', '.join('backend pid %s (%s)' % (pid, app or 'no application_name') for pid, app in rows)
