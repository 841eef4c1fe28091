# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a drill does to a restored scratch target: integrity check and smoke queries.

One small client per engine, each with the engine's own tools:

* SQLite: ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check`` (Python's sqlite3);
* PostgreSQL: ``pg_amcheck --heapallindexed`` (installs the amcheck extension in the scratch database),
  else, where pg_amcheck or amcheck is unavailable, a full read of every table (``COPY ... TO STDOUT``);
* MariaDB/MySQL: ``mariadb-check``/``mysqlcheck`` (``CHECK TABLE`` on every table, optionally EXTENDED).

Passwords reach the tools through PGPASSWORD or a 0600 option file (``common.runner``), never argv.
Every step refuses a scratch name equal to the source database: a drill works on a copy. (Dropping the
scratch target is ``db_restore state=absent``.)

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sqlite3
import subprocess  # nosec B404 # argument lists, never a shell
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner, secret_file
from ansible_collections.opsready.operations.plugins.module_utils.drill.expect import coerce
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.pg_quote import conninfo_value, dbname_arg
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import connect as sqlite_connect
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import summarize as sqlite_summarize


def guard_scratch(scratch: str, source: Optional[str]) -> None:
    if not scratch:
        raise OpsReadyError('The scratch target is empty: name a scratch database (or file) for the drill.')
    if source and os.path.normpath(scratch) == os.path.normpath(source):
        raise OpsReadyError('The scratch target %r is the source database itself: a drill restores into a '
                            'separate scratch target and drops it afterwards. Choose another scratch name.'
                            % scratch, scratch=scratch)


class Client:
    engine = 'base'

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        self.conn = conn
        self.runner = runner or ToolRunner(secrets=[conn.password])
        self.runner.add_secret(conn.password)

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        raise NotImplementedError

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def versions(self) -> Dict[str, str]:
        return {}

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        """What the restored target holds, in the shape of a manifest's ``source`` summary."""
        return None


class SQLiteClient(Client):
    engine = 'sqlite'

    @staticmethod
    def _open(path: str, readonly: bool = True) -> sqlite3.Connection:
        if not os.path.isfile(path):
            raise OpsReadyError('The restored SQLite file %s does not exist: the restore did not produce it.' % path,
                                path=path)
        try:
            return sqlite_connect(path, 'ro' if readonly else 'rw')
        except sqlite3.Error as exc:
            raise IntegrityError('Cannot open the restored file %s: %s' % (path, exc), path=path)

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        conn = self._open(database)
        try:
            try:
                rows = [r[0] for r in conn.execute('PRAGMA integrity_check').fetchall()]
                fk = conn.execute('PRAGMA foreign_key_check').fetchall()
                tables = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            except sqlite3.DatabaseError as exc:
                raise IntegrityError('PRAGMA integrity_check could not read %s: %s' % (database, exc),
                                     tool='PRAGMA integrity_check')
        finally:
            conn.close()
        if rows != ['ok']:
            raise IntegrityError('PRAGMA integrity_check on %s found corruption: %s' % (database, '; '.join(rows[:5])),
                                 tool='PRAGMA integrity_check', problems=rows[:50])
        if fk:
            raise IntegrityError('PRAGMA foreign_key_check on %s found %d rows violating foreign keys (first: %s).'
                                 % (database, len(fk), fk[0]), tool='PRAGMA foreign_key_check')
        return {'tool': 'PRAGMA integrity_check + foreign_key_check', 'result': 'ok', 'tables': len(tables),
                'problems': []}

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        conn = self._open(database)
        try:
            cursor = conn.execute(sql)
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise OpsReadyError('Smoke query failed on %s: %s' % (database, exc), sql=sql)
        finally:
            conn.close()

    def versions(self) -> Dict[str, str]:
        return {'sqlite': sqlite3.sqlite_version}

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        conn = self._open(database)
        try:
            return sqlite_summarize(conn)
        except sqlite3.DatabaseError as exc:
            raise IntegrityError('Cannot count the tables and rows of %s: %s' % (database, exc), path=database)
        finally:
            conn.close()


def find_pg_tool(tool: str, runner: ToolRunner) -> Optional[str]:
    """On PATH (unless it is Debian's pg_wrapper), else the newest /usr/lib/postgresql/<major>/bin (Debian keeps
    pg_amcheck there only)."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import find_client_tool
    return find_client_tool(tool, runner.env.get('PATH'))


class PostgresClient(Client):
    engine = 'postgresql'

    def _conn_args(self, database: str) -> List[str]:
        """Connection options, the database last as ``--dbname=dbname='...'`` (``pg_quote.dbname_arg``): a name
        holding ``=`` is never read as a connection string, one starting with ``-`` never as an option, and
        one longer than 63 bytes is refused instead of being cut by the server. ``--no-password``: a missing
        password fails at once instead of prompting on the terminal the play was started from."""
        args = ['--no-password']
        host = self.conn.unix_socket or self.conn.host
        if host:
            args.append('--host=%s' % host)
        if self.conn.port:
            args.append('--port=%s' % self.conn.port)
        if self.conn.user:
            args.append('--username=%s' % self.conn.user)
        return args + [dbname_arg(database)]

    def _env(self) -> Dict[str, str]:
        env = {'PGCONNECT_TIMEOUT': str(self.conn.connect_timeout), 'PGAPPNAME': 'opsready-dr-drill'}
        if self.conn.password:
            env['PGPASSWORD'] = self.conn.password
        elif self.conn.option_file:
            env['PGPASSFILE'] = self.conn.option_file
        return env

    def _psql(self) -> str:
        found = find_pg_tool('psql', self.runner)
        if not found:
            raise OpsReadyError('psql was not found on the managed host: install the PostgreSQL client '
                                '(postgresql-client).')
        return found

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        argv = [self._psql(), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--csv', '-c', sql] + self._conn_args(database)
        rc, out, err = self.runner.run(argv, env=self._env(), check=False, what='psql')
        if rc != 0:
            raise OpsReadyError('Smoke query failed on %s: %s' % (database, err.strip() or 'psql exit %d' % rc),
                                sql=sql)
        reader = csv.DictReader(io.StringIO(out))
        return [{k: coerce(v) if v != '' else v for k, v in row.items()} for row in reader]

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        tool = find_pg_tool('pg_amcheck', self.runner)
        fallback_reason = 'pg_amcheck is not installed'
        if tool:
            argv = [tool, '--install-missing', '--heapallindexed']
            if level == 'extended':
                argv.append('--parent-check')
            # The database as the positional DBNAME (not -d, which pg_amcheck reads as a pattern), written as a
            # connection string so that no name is read as an option or as connection parameters.
            argv += self._conn_args(database)[:-1] + ['dbname=' + conninfo_value(database)]
            rc, out, err = self.runner.run(argv, env=self._env(), check=False, what='pg_amcheck')
            if rc == 0:
                return {'tool': 'pg_amcheck --heapallindexed', 'result': 'ok', 'problems': []}
            text = (out + '\n' + err).strip()
            if rc == 2 or 'corrupt' in text.lower() or re.search(r'^(heap|btree) ', out, re.M):
                problems = [line for line in text.splitlines() if line.strip()][:50]
                raise IntegrityError('pg_amcheck found corruption in %s: %s' % (database, ' | '.join(problems[:3])),
                                     tool='pg_amcheck', problems=problems)
            fallback_reason = 'pg_amcheck could not run (%s)' % (text.splitlines()[-1] if text else 'exit %d' % rc)
        result = self.full_read(database)
        result['fallback_reason'] = fallback_reason
        return result

    def full_read(self, database: str) -> Dict[str, Any]:
        """Read every row of every user table (detects unreadable pages and TOAST damage)."""
        tables = self.query(database, "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables "
                                      "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
        psql = self._psql()
        for row in tables:
            sql = 'COPY (SELECT * FROM %s) TO STDOUT' % row['t']  # nosec B608 # format('%I.%I') by the server
            argv = [psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql] + self._conn_args(database)
            proc = self.runner.popen(argv, env=self._env(), stdout=subprocess.DEVNULL)
            try:
                self.runner.finish(proc, argv, what='full read of %s' % row['t'])
            except OpsReadyError as exc:
                raise IntegrityError('Reading every row of %s in %s failed: %s' % (row['t'], database, exc.message),
                                     tool='full read')
        return {'tool': 'full read of every table (COPY TO STDOUT)', 'result': 'ok', 'tables': len(tables),
                'problems': []}

    def versions(self) -> Dict[str, str]:
        result = {}
        for tool in ('psql', 'pg_amcheck'):
            path = find_pg_tool(tool, self.runner)
            if path:
                rc, out, dummy = self.runner.run([path, '--version'], check=False)
                if rc == 0:
                    result[tool] = out.strip()
        return result

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (
            PG_NON_EMPTY_SQL, PG_SUMMARY_SQL)
        row = list(self.query(database, PG_SUMMARY_SQL)[0].values())
        non_empty = list(self.query(database, PG_NON_EMPTY_SQL)[0].values())[0]
        return {'tables': int(row[0]), 'non_empty_tables': int(non_empty), 'size_bytes': int(row[3])}


class MySQLClient(Client):
    engine = 'mariadb'

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None, flavor: str = 'mariadb') -> None:
        super().__init__(conn, runner)
        self.flavor = flavor
        self.engine = flavor

    def _tool(self, kind: str) -> str:
        import shutil
        names = {'client': ('mariadb', 'mysql'), 'check': ('mariadb-check', 'mysqlcheck')}[kind]
        if self.flavor == 'mysql':
            names = names[::-1]
        for name in names:
            if shutil.which(name, path=self.runner.env.get('PATH')):
                return name
        raise OpsReadyError('%s was not found on the managed host: install the MariaDB/MySQL client.' % names[0])

    @contextlib.contextmanager
    def _options(self) -> Iterator[List[str]]:
        if self.conn.option_file:
            yield ['--defaults-extra-file=%s' % self.conn.option_file] + self._plain_args()
            return
        lines = ['[client]']
        if self.conn.password:
            lines.append('password="%s"' % self.conn.password.replace('\\', '\\\\').replace('"', '\\"'))
        with secret_file('\n'.join(lines) + '\n') as path:
            yield ['--defaults-extra-file=%s' % path] + self._plain_args()

    def _plain_args(self) -> List[str]:
        args: List[str] = []
        if self.conn.unix_socket:
            args.append('--socket=%s' % self.conn.unix_socket)
        elif self.conn.host:
            args += ['--host=%s' % self.conn.host, '--protocol=TCP']
        if self.conn.port:
            args.append('--port=%d' % self.conn.port)
        if self.conn.user:
            args.append('--user=%s' % self.conn.user)
        return args

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        with self._options() as opts:
            # --connect-timeout is a client option mariadb-check does not know: only here.
            argv = [self._tool('client')] + opts + ['--connect-timeout=%d' % self.conn.connect_timeout, '--batch',
                                                    '--execute=%s' % sql, '--database=%s' % database]
            rc, out, err = self.runner.run(argv, check=False, what='mariadb')
        if rc != 0:
            raise OpsReadyError('Smoke query failed on %s: %s' % (database, err.strip() or 'exit %d' % rc), sql=sql)
        lines = out.splitlines()
        if not lines:
            return []
        header = [_unescape(h) for h in lines[0].split('\t')]
        rows = []
        for line in lines[1:]:
            values = [None if v == 'NULL' else coerce(_unescape(v)) for v in line.split('\t')]
            rows.append(dict(zip(header, values)))
        return rows

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        with self._options() as opts:
            argv = [self._tool('check')] + opts + ['--check', '--databases', '--', database]
            if level == 'extended':
                argv.insert(len(argv) - 2, '--extended')
            rc, out, err = self.runner.run(argv, check=False, what='mariadb-check')
        problems = []
        tables = 0
        current = None
        for line in out.splitlines():
            # A table name may hold spaces ("db.odd name   OK"): a line ending in OK is one checked table.
            passed = re.match(r'^(\S.*?)\s+OK$', line)
            if passed and not re.match(r'^(error|warning|note|status|info)\s*:', line, re.I):
                current = passed.group(1)
                tables += 1
                continue
            match = re.match(r'^(\S+\.\S+)\s+(.*)$', line)
            if match:
                current = match.group(1)
                tables += 1
                if match.group(2).strip() not in ('OK', ''):
                    problems.append(line.strip())
            elif line.strip() and current is not None and line.strip() not in ('OK',):
                if re.match(r'^(error|warning)\s*:', line.strip(), re.I) or 'corrupt' in line.lower():
                    problems.append('%s: %s' % (current, line.strip()))
        if rc != 0 or problems:
            detail = problems or [err.strip() or 'exit %d' % rc]
            raise IntegrityError('mariadb-check found problems in %s: %s' % (database, ' | '.join(detail[:3])),
                                 tool='mariadb-check', problems=detail[:50])
        return {'tool': 'mariadb-check --check%s' % (' --extended' if level == 'extended' else ''), 'result': 'ok',
                'tables': tables, 'problems': []}

    def versions(self) -> Dict[str, str]:
        result = {}
        for kind in ('client', 'check'):
            try:
                tool = self._tool(kind)
            except OpsReadyError:
                continue
            rc, out, dummy = self.runner.run([tool, '--version'], check=False)
            if rc == 0:
                result[tool] = out.strip()
        return result

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import (
            mysql_non_empty_sql, mysql_tables_where)
        # Names travel as hex behind a letter, so the client's value coercion never turns them into numbers.
        rows = self.query(database, "SELECT CONCAT('x', HEX(table_schema)) AS s, "  # nosec B608 # hex-encoded name
                                    "CONCAT('x', HEX(table_name)) AS t "
                                    'FROM information_schema.tables WHERE ' + mysql_tables_where(database))
        names = [(bytes.fromhex(str(r['s'])[1:]).decode('utf-8'), bytes.fromhex(str(r['t'])[1:]).decode('utf-8'))
                 for r in rows]
        non_empty = 0
        for start in range(0, len(names), 200):
            answer = self.query(database, mysql_non_empty_sql(names[start:start + 200]) + ' AS n')
            non_empty += int(answer[0]['n'])
        return {'tables': len(names), 'non_empty_tables': non_empty}


def _unescape(value: str) -> str:
    """mariadb --batch escapes tab, newline, NUL and backslash."""
    return re.sub(r'\\(.)', lambda m: {'t': '\t', 'n': '\n', '0': '\0', '\\': '\\'}.get(m.group(1), m.group(1)), value)
