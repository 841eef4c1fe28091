# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MariaDB/MySQL client: the one place that turns connection options into a 0600 option file, finds and
runs the client programs (mariadb/mysql, the dump, binlog and check tools), runs queries and classifies the
client's errors. Backup (``engines/mysql/backup.py``), restore, maintenance and DR drill checks compose it; none of
them writes an option file or a client command line itself.

Secrets: credentials go to the tools in a temporary 0600 ``--defaults-extra-file``, never argv. Errors are
classified by their numbers (``ERROR 1205 (HY000)``, ``Got error: 2002``, ``(1205)``), the same whatever the
server's ``lc_messages``; the client library's own texts are English in any case (``Can't connect``).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import select
import shutil
import subprocess  # nosec B404 # argument lists, never a shell
from typing import Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner, secret_file
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    DEFAULT_TIMEOUT, ConnectionParams, SessionLimits, Timeout, ToolClient, connect_failure_reason, pick_timeout)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import (
    quote_literal, unescape_batch)

DEFAULT_PORT = 3306
# The programs for each role, preferred first; MySQL's own names only for flavor=mysql, except the table
# checker, which MariaDB's client package also installs under MySQL's name.
TOOLS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    'mariadb': {'dump': ('mariadb-dump', 'mysqldump'), 'client': ('mariadb', 'mysql'),
                'binlog': ('mariadb-binlog', 'mysqlbinlog'), 'check': ('mariadb-check', 'mysqlcheck')},
    'mysql': {'dump': ('mysqldump',), 'client': ('mysql',), 'binlog': ('mysqlbinlog',),
              'check': ('mysqlcheck', 'mariadb-check')},
}
# The dump tool and the client refuse a packet longer than their own max_allowed_packet (16 MiB by default): a row
# longer than that could not be dumped, and an INSERT longer than that (a row of 8 MiB, written as hex) could not be
# loaded, on a server that allows both. They get the largest the protocol allows; the server's own limit still holds.
MAX_PACKET = '--max-allowed-packet=1073741824'
CONNECT_ERRORS = ('ERROR 2002', 'ERROR 2003', 'ERROR 2005', 'ERROR 2013', "Can't connect", 'Got error: 2002',
                  'Got error: 2003', 'Got error: 2005')
# The server's errors by number (its text is in the server's lc_messages): the client prints "ERROR 1205 (HY000)",
# the dump tool "... (1205)" or "Got error: 1205". ER_LOCK_WAIT_TIMEOUT, ER_STATEMENT_TIMEOUT (MariaDB).
LOCK_WAIT_TIMEOUT = re.compile(r'ERROR 1205 |\(1205\)|Got error: 1205\b|Lock wait timeout')
STATEMENT_TIMEOUT = re.compile(r'ERROR 1969 |\(1969\)|Got error: 1969\b|max_statement_time')


def quote_option(value: str) -> str:
    """A value for an option file line, in double quotes: backslash, quote, line feed and carriage return escaped
    (the client library reads ``\\n`` and ``\\r`` back as those characters). A raw line break ended the line and
    what followed was read as more options (``host=`` elsewhere, ``plugin-dir``/``default-auth``, ``!include``)."""
    if '\0' in value:
        raise OpsReadyError('A login value (user, password, host or socket) holds a NUL character, which no MariaDB or '
                            'MySQL client option can carry: fix the value.')
    return '"%s"' % (value.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n').replace('\r', '\\r'))


def batch_rows(out: str) -> List[List[str]]:
    """Rows of ``--batch`` output. --batch escapes tab, newline, NUL and backslash inside values; split on '\\n'
    only (splitlines() would also cut a name at U+2028 or a form feed)."""
    lines = out.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    return [[unescape_batch(v) for v in line.split('\t')] for line in lines]


class MySQLClient(ToolClient):
    """One MariaDB/MySQL endpoint (``ConnectionParams``) as the client programs reach it.

    ``flavor``: ``mariadb`` or ``mysql`` (which programs, which session variables). ``limits``: lock and
    statement limits set at the start of every query's session. ``timeout``: how long one query may run
    before the client is killed (``connection.query_timeout``)."""

    default_port = DEFAULT_PORT

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None, flavor: str = 'mariadb',
                 limits: Optional[SessionLimits] = None, timeout: Timeout = DEFAULT_TIMEOUT) -> None:
        super().__init__(conn, runner, limits, timeout)
        self.flavor = flavor
        self.engine = flavor
        self._bins: Dict[str, str] = {}
        # sql_mode for every query's session (None: the server's global one). The restore sets it: its own statements
        # are written for the default parsing, and a server whose global sql_mode is ORACLE (BEGIN END is no
        # procedure body there) or ANSI_QUOTES parses them otherwise.
        self.sql_mode: Optional[str] = None

    # -- programs ------------------------------------------------------------------------------------
    def tool(self, role: str) -> str:
        """The program for ``role`` (client, dump, binlog, check)."""
        if role not in self._bins:
            for candidate in TOOLS[self.flavor][role]:
                found = shutil.which(candidate, path=self.runner.env.get('PATH'))
                if found:
                    self._bins[role] = found
                    break
            else:
                raise OpsReadyError('%s was not found on the managed host: install the %s client (Debian: '
                                    'mariadb-client) or put it on PATH.' % (TOOLS[self.flavor][role][0], self.flavor))
        return self._bins[role]

    def tool_version(self, role: str) -> str:
        _rc, out, _err = self.runner.run([self.tool(role), '--version'], what=role)
        return out.strip()

    @contextlib.contextmanager
    def defaults_file(self) -> Iterator[List[str]]:
        """The leading client options: ``--defaults-extra-file`` plus non-secret endpoint options."""
        c = self.conn
        lines = ['[client]']
        if c.user:
            lines.append('user=%s' % quote_option(c.user))
        if c.password:
            lines.append('password=%s' % quote_option(c.password))
        if c.unix_socket:
            lines += ['socket=%s' % quote_option(c.unix_socket), 'protocol=SOCKET']
        elif c.host:
            lines += ['host=%s' % quote_option(c.host), 'protocol=TCP']
        if c.port:
            lines.append('port=%d' % c.port)
        if c.option_file:
            if '\n' in c.option_file or '\r' in c.option_file:
                # "!include" takes the rest of its line as the path, unquoted: a line break would start options.
                raise OpsReadyError('login_option_file %r holds a line break: give the path of the option file '
                                    'itself.' % c.option_file, path=c.option_file)
            # The user's file holds the credentials; ours adds the endpoint (it is read after theirs).
            lines.insert(0, '!include %s' % c.option_file)
        # Only the interactive client knows connect-timeout; every connection starts with its ping().
        # Names and data travel as utf8mb4 whatever the locale (the client would pick latin1 under LC_ALL=C
        # and turn a database called "ñ" into another name).
        lines += ['[mysql]', 'connect-timeout=%d' % max(1, c.connect_timeout), 'default-character-set=utf8mb4']
        with secret_file('\n'.join(lines) + '\n', prefix='opsready-my-', suffix='.cnf') as path:
            yield ['--defaults-extra-file=%s' % path]

    def client_argv(self, head: List[str], *args: str, header: bool = False) -> List[str]:
        """The one mariadb/mysql client command line for queries: the option file (``head``, from
        ``defaults_file``) first, as the client requires; batch output (tab-separated, escaped); no column
        names (-N) unless ``header``."""
        return [self.tool('client')] + list(head) + ([] if header else ['-N']) + ['-B'] + list(args)

    # -- errors --------------------------------------------------------------------------------------
    def classify(self, exc: ToolError) -> OpsReadyError:
        """A client failure turned into what the operator must check; ``exc`` itself when it is none of the
        known ones (a SQL error: its own message says it best)."""
        if any(h in exc.stderr for h in CONNECT_ERRORS):
            return OpsReadyError(
                'Cannot connect to %s at %s within connect_timeout=%ss: %s. Check that the server is running and '
                'that login_host/login_port (or login_unix_socket) are right.'
                % (self.flavor, self.conn.where(self.default_port), self.conn.connect_timeout,
                   connect_failure_reason(exc.stderr, exc.message)),
                host=self.conn.host, port=self.conn.port or self.default_port)
        if self.limits is not None and LOCK_WAIT_TIMEOUT.search(exc.stderr):
            return OpsReadyError('Gave up waiting for a lock after lock_timeout=%ss: another session holds '
                                 'it; run again later or raise lock_timeout.' % self.limits.lock_timeout)
        if self.limits is not None and STATEMENT_TIMEOUT.search(exc.stderr):
            return OpsReadyError('Statement stopped after statement_timeout=%ss: raise statement_timeout or '
                                 'run it in a quieter window.' % self.limits.statement_timeout)
        return exc

    # -- queries -------------------------------------------------------------------------------------
    def session(self) -> str:
        """The ``SET SESSION`` prefix of every query under ``limits`` and ``sql_mode`` ('' without)."""
        mode = "SET SESSION sql_mode = '%s'; " % self.sql_mode if self.sql_mode is not None else ''
        if self.limits is None:
            return mode
        lock = max(1, self.limits.lock_timeout)
        sets = ['lock_wait_timeout=%d' % lock, 'innodb_lock_wait_timeout=%d' % lock]
        if self.limits.statement_timeout and self.flavor == 'mariadb':
            sets.append('max_statement_time=%d' % self.limits.statement_timeout)
        return mode + 'SET SESSION %s; ' % ', '.join(sets)

    def run_client(self, sql: str, database: Optional[str] = None, header: bool = False,
                   timeout: Timeout = DEFAULT_TIMEOUT) -> str:
        """The client's ``--batch`` output of ``sql`` (after the session settings); failures classified."""
        with self.defaults_file() as head:
            extra = ['--database=%s' % database] if database else []
            argv = self.client_argv(head, *(extra + ['-e', self.session() + sql]), header=header)
            return self.run_tool(argv, timeout=pick_timeout(timeout, self.timeout), what=self.flavor)

    def query(self, sql: str, database: Optional[str] = None, timeout: Timeout = DEFAULT_TIMEOUT) -> List[List[str]]:
        """Rows as lists of text (NULL reads as the text ``NULL``)."""
        return batch_rows(self.run_client(sql, database, timeout=timeout))

    @staticmethod
    def lock_name(purpose: str, key: str) -> str:
        """A server lock name for ``purpose`` on ``key`` (any database name): GET_LOCK names hold at most 64
        characters, so the key is hashed."""
        return 'opsready.%s.%s' % (purpose, hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:40])

    @contextlib.contextmanager
    def named_lock(self, name: str, wait: int, busy: str) -> Iterator[None]:
        """Hold the server's user lock ``name`` (GET_LOCK) for the block.

        The lock belongs to a client session, and every query runs in a session of its own: so one client
        process is kept open for the block, its stdin the only way in. The server releases the lock when that
        session ends, whatever ends it (the block, a crash of this process, a killed connection). Not had
        within ``wait`` seconds: OpsReadyError with ``busy`` (plus the holding connection's id).
        """
        sql = 'SELECT GET_LOCK(%s, %d), CONNECTION_ID();\n' % (quote_literal(name), max(0, wait))
        with self.defaults_file() as head:
            argv = self.client_argv(head, '--unbuffered')
            proc = self.runner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            stdin, stdout = proc.stdin, proc.stdout
            if stdin is None or stdout is None:   # both are pipes: for the type checker
                raise OpsReadyError('Internal error: the %s client was started without pipes.' % self.flavor)
            try:
                stdin.write(sql.encode('utf-8'))
                stdin.flush()
                ready, dummy, dummy2 = select.select([stdout], [], [], max(0, wait) + self.conn.connect_timeout + 30)
                answer = stdout.readline().decode('utf-8', 'replace').split('\t') if ready else []
            except OSError:
                answer = []
            if not answer or answer[0].strip() != '1':
                kill_quietly(proc)
                if answer and answer[0].strip() == '0':
                    holder = self.query('SELECT IS_USED_LOCK(%s)' % quote_literal(name))
                    who = holder[0][0] if holder and holder[0] else '?'
                    raise OpsReadyError('%s (server lock %s held by connection %s).' % (busy, name, who),
                                        lock=name, holder=who)
                err = ''
                err_file = getattr(proc, 'stderr_file', None)
                if err_file is not None:
                    err_file.seek(0)
                    err = self.runner.redact(err_file.read().decode('utf-8', 'replace')).strip()
                raise OpsReadyError('Could not take the server lock %s on %s: %s' % (
                    name, self.conn.where(self.default_port), err or 'no answer from the client'), lock=name)
            try:
                yield
            finally:
                try:
                    stdin.write(('DO RELEASE_LOCK(%s);\n' % quote_literal(name)).encode('utf-8'))
                    stdin.close()
                    proc.wait(timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                kill_quietly(proc)

    def query_dicts(self, sql: str, database: Optional[str] = None,
                    timeout: Timeout = DEFAULT_TIMEOUT) -> List[Dict[str, Optional[str]]]:
        """Rows as {column: text}, SQL NULL as None."""
        rows = batch_rows(self.run_client(sql, database, header=True, timeout=timeout))
        if not rows:
            return []
        return [dict(zip(rows[0], [None if v == 'NULL' else v for v in row])) for row in rows[1:]]


def kill_quietly(proc: subprocess.Popen) -> None:
    """End a client process we hold open (its session, and with it any server lock, goes too)."""
    if proc.poll() is None:
        try:
            proc.kill()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for handle in (proc.stdin, proc.stdout, getattr(proc, 'stderr_file', None)):
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass
