# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DR drill checks on a restored MariaDB and MySQL copy: integrity check, smoke queries, summary.

``drill/checks.py`` holds the interface (``DrillChecks``) and what every engine shares.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.drill.expect import coerce
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import (
    MySQLClient as MySQLEngineClient)
from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import (
    INTEGRITY_TIMEOUT, QUERY_TIMEOUT, DrillChecks)


class MySQLChecks(DrillChecks):
    """Drill checks through the engine's client (``engines/mysql/client.py``): its programs, option file,
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

    def freshness_rows(self, database: str, sql: str) -> List[Dict[str, Any]]:
        """The freshness query in a UTC session: a TIMESTAMP prints in the session's time zone (the server's global
        one: SYSTEM, +05:00...) without saying which, and read as UTC it put the newest row hours off, an RPO breach
        passing on a server east of UTC. A DATETIME prints as stored whatever the session's zone (its zone is the
        step's ``timezone``). Only this query: a smoke query comparing a DATETIME with NOW() keeps the server's zone."""
        return self.query(database, "SET SESSION time_zone = '+00:00'; " + sql)

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

    def scratch_state(self, database: str) -> Dict[str, Any]:
        """Whether the scratch name is a database of the server, as the server compares names: with
        ``lower_case_table_names`` 1 or 2 ``Shop`` and ``shop`` are one database; and its comment (MariaDB 10.5+;
        MySQL and older MariaDB keep none, ``marks`` false)."""
        lctn = int(self.client.query('SELECT @@lower_case_table_names')[0][0] or 0)
        try:
            rows = self.client.query_dicts('SELECT SCHEMA_NAME AS name, SCHEMA_COMMENT AS comment '
                                           'FROM information_schema.SCHEMATA')
            marks = True
        except OpsReadyError as exc:
            # ER_BAD_FIELD_ERROR (1054): the column is unknown here; the name quoted in any language
            if 'ERROR 1054 ' not in exc.message and 'SCHEMA_COMMENT' not in exc.message:
                raise
            rows = self.client.query_dicts('SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA')
            marks = False
        fold = lctn != 0
        # Compared here, not in SQL: information_schema's collation is case-insensitive whatever the server does.
        found = [r for r in rows if (r['name'] or '').lower() == database.lower()] if fold else \
            [r for r in rows if r['name'] == database]
        state: Dict[str, Any] = {'exists': bool(found), 'fold_case': fold, 'marks': marks,
                                 'lower_case_table_names': lctn}
        if found:
            state.update(name=found[0]['name'], comment=found[0].get('comment') or '')
        return state

    def mark_scratch(self, database: str, text: str) -> Dict[str, Any]:
        """The drill's mark on the scratch database it restored: its comment (MariaDB 10.5+)."""
        # COMMENT takes no hex literal: restore's comment_sql doubles the quotes under NO_BACKSLASH_ESCAPES.
        from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import comment_sql
        try:
            self.client.query(comment_sql(database, text))
        except OpsReadyError as exc:
            # ER_PARSE_ERROR (1064), whatever the server's lc_messages
            if 'ERROR 1064 ' not in exc.message and 'COMMENT' not in exc.message and 'syntax' not in exc.message:
                raise
            # MySQL and MariaDB before 10.5 keep no database comment: the next drill refuses this leftover.
            return {'comment': None, 'not_marked': 'this server keeps no database comment (%s)' % exc.message}
        return {'comment': text}

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import (
            mysql_non_empty_sql, mysql_tables_where)
        rows = self.client.query('SELECT table_schema, table_name '  # nosec B608 # quoted by mysql_tables_where
                                 'FROM information_schema.tables WHERE ' + mysql_tables_where(database))
        names = [(row[0], row[1]) for row in rows]
        non_empty = 0
        for start in range(0, len(names), 200):
            non_empty += int(self.client.query(mysql_non_empty_sql(names[start:start + 200]))[0][0])
        return {'tables': len(names), 'non_empty_tables': non_empty}
