# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a drill does to a restored scratch target: integrity check and smoke queries.

One class per engine family, each composing that engine's client (``engines/<engine>_client.py``: programs,
connection environment or option file, timeouts, error classes), each with the engine's own tools:

* SQLite: ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check`` (Python's sqlite3);
* PostgreSQL: ``pg_amcheck --heapallindexed`` (installs the amcheck extension in the scratch database),
  else, where pg_amcheck or amcheck is unavailable, a full read of every table (``COPY ... TO STDOUT``);
* MariaDB/MySQL: ``mariadb-check``/``mysqlcheck`` (``CHECK TABLE`` on every table, optionally EXTENDED).

Passwords reach the tools through the client's PGPASSWORD or 0600 option file, never argv.
Every step refuses a scratch name equal to the source database: a drill works on a copy. (Dropping the
scratch target is ``db_restore state=absent``.)

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess  # nosec B404 # argument lists, never a shell
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.drill.expect import coerce
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import kill_and_reap
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams, runner_for
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql_client import (
    MySQLClient as MySQLEngineClient)
from ansible_collections.opsready.operations.plugins.module_utils.engines.pg_quote import conninfo_value
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql_client import (
    PostgresClient as PostgresEngineClient)
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import connect as sqlite_connect
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import summarize as sqlite_summarize

# A smoke query or a table listing on a restored copy: longer than a monitoring query, but a hung one must not
# hold the drill (and the play) forever. A whole-database check reads every page: hours on a big copy.
QUERY_TIMEOUT = 600.0
INTEGRITY_TIMEOUT = 4 * 3600.0


def guard_scratch(scratch: str, source: Optional[str]) -> None:
    if not scratch:
        raise OpsReadyError('The scratch target is empty: name a scratch database (or file) for the drill.')
    if source and os.path.normpath(scratch) == os.path.normpath(source):
        raise OpsReadyError('The scratch target %r is the source database itself: a drill restores into a '
                            'separate scratch target and drops it afterwards. Choose another scratch name.'
                            % scratch, scratch=scratch)


class DrillChecks:
    """What a drill asks of a restored target; one subclass per engine family, composing the engine's client."""

    engine = 'base'
    # Whether summary() counts exactly what the backup's source summary counted (compared for equality then).
    exact_summary = False

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        self.conn = conn
        self.runner = runner_for(conn, runner)

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        raise NotImplementedError

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def versions(self) -> Dict[str, str]:
        return {}

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        """What the restored target holds, in the shape of a manifest's ``source`` summary."""
        return None


class SQLiteChecks(DrillChecks):
    engine = 'sqlite'
    exact_summary = True  # both sides count rows in a consistent file

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


class PostgresChecks(DrillChecks):
    """Drill checks through the engine's client (``engines/postgresql_client.py``): its psql, libpq
    environment (the scratch database as PGDATABASE, taken as a name only), timeouts and error classes."""

    engine = 'postgresql'

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        super().__init__(conn, runner)
        self.client = PostgresEngineClient(conn, self.runner, app='opsready-dr-drill', timeout=QUERY_TIMEOUT)

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        try:
            rows = self.client.query_dicts(sql, database)
        except OpsReadyError as exc:
            raise OpsReadyError('Smoke query failed on %s: %s' % (database, exc.message), sql=sql)
        return [{k: coerce(v) if v != '' else v for k, v in row.items()} for row in rows]

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        tool = self.client.find_tool('pg_amcheck')
        fallback_reason = 'pg_amcheck is not installed'
        if tool:
            argv = [tool, '--no-password', '--install-missing', '--heapallindexed']
            if level == 'extended':
                argv.append('--parent-check')
            # The database as the positional DBNAME (not -d, which pg_amcheck reads as a pattern), written as a
            # connection string so that no name is read as an option or as connection parameters.
            argv.append('dbname=' + conninfo_value(database))
            rc, out, err = self.runner.run(argv, env=self.client.env(database), check=False, timeout=INTEGRITY_TIMEOUT,
                                           what='pg_amcheck')
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
        for row in tables:
            sql = 'COPY (SELECT * FROM %s) TO STDOUT' % row['t']  # nosec B608 # format('%I.%I') by the server
            argv = self.client.psql_argv('-c', sql)
            proc = self.runner.popen(argv, env=self.client.env(database), stdout=subprocess.DEVNULL)
            try:
                self.runner.finish(proc, argv, what='full read of %s' % row['t'], timeout=INTEGRITY_TIMEOUT)
            except OpsReadyError as exc:
                raise IntegrityError('Reading every row of %s in %s failed: %s' % (row['t'], database, exc.message),
                                     tool='full read')
            except subprocess.TimeoutExpired:
                kill_and_reap(proc)
                raise OpsReadyError('Reading every row of %s in %s did not finish within %ds: the scratch copy is '
                                    'too large for a full read in one drill step, or the server hangs.'
                                    % (row['t'], database, INTEGRITY_TIMEOUT), tool='full read')
        return {'tool': 'full read of every table (COPY TO STDOUT)', 'result': 'ok', 'tables': len(tables),
                'problems': []}

    def versions(self) -> Dict[str, str]:
        result = {}
        for tool in ('psql', 'pg_amcheck'):
            if self.client.find_tool(tool):
                try:
                    result[tool] = self.client.tool_version(tool)
                except OpsReadyError:
                    continue
        return result

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (
            PG_NON_EMPTY_SQL, PG_SUMMARY_SQL)
        row = self.client.query(PG_SUMMARY_SQL, database)[0]
        non_empty = self.client.query(PG_NON_EMPTY_SQL, database)[0][0]
        return {'tables': int(row[0]), 'non_empty_tables': int(non_empty), 'size_bytes': int(row[3])}


class MySQLChecks(DrillChecks):
    """Drill checks through the engine's client (``engines/mysql_client.py``): its programs, option file,
    timeouts and error classes."""

    engine = 'mariadb'

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None, flavor: str = 'mariadb') -> None:
        super().__init__(conn, runner)
        self.flavor = flavor
        self.engine = flavor
        self.client = MySQLEngineClient(conn, self.runner, flavor=flavor, timeout=QUERY_TIMEOUT)

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        try:
            rows = self.client.query_dicts(sql, database)
        except OpsReadyError as exc:
            raise OpsReadyError('Smoke query failed on %s: %s' % (database, exc.message), sql=sql)
        return [{k: None if v is None else coerce(v) for k, v in row.items()} for row in rows]

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        with self.client.defaults_file() as head:
            argv = [self.client.tool('check')] + head + ['--check', '--databases', '--', database]
            if level == 'extended':
                argv.insert(len(argv) - 2, '--extended')
            rc, out, err = self.runner.run(argv, check=False, timeout=INTEGRITY_TIMEOUT, what='mariadb-check')
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
        for role in ('client', 'check'):
            try:
                tool = self.client.tool(role)
                result[os.path.basename(tool)] = self.client.tool_version(role)
            except OpsReadyError:
                continue
        return result

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import (
            mysql_non_empty_sql, mysql_tables_where)
        rows = self.client.query('SELECT table_schema, table_name '  # nosec B608 # quoted by mysql_tables_where
                                 'FROM information_schema.tables WHERE ' + mysql_tables_where(database))
        names = [(row[0], row[1]) for row in rows]
        non_empty = 0
        for start in range(0, len(names), 200):
            non_empty += int(self.client.query(mysql_non_empty_sql(names[start:start + 200]))[0][0])
        return {'tables': len(names), 'non_empty_tables': non_empty}


# The names these classes had before the engine seam (other branches and bench scripts import them).
Client = DrillChecks
SQLiteClient = SQLiteChecks
PostgresClient = PostgresChecks
MySQLClient = MySQLChecks
