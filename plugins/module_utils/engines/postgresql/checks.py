# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DR drill checks on a restored PostgreSQL copy: integrity check, smoke queries, summary.

``drill/checks.py`` holds the interface (``DrillChecks``) and what every engine shares.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
import subprocess  # nosec B404 # argument lists, never a shell
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.drill.expect import coerce
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import kill_and_reap
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    conninfo_value, quote_ident, quote_literal)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (
    CATALOG_SEARCH_PATH, INSUFFICIENT_PRIVILEGE, PostgresClient as PostgresEngineClient, sqlstate)
from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import (
    INTEGRITY_TIMEOUT, QUERY_TIMEOUT, DrillChecks)


class PostgresChecks(DrillChecks):
    """Drill checks through the engine's client (``engines/postgresql/client.py``): its psql, libpq
    environment (the scratch database as PGDATABASE, taken as a name only), timeouts and error classes."""

    engine = 'postgresql'

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        super().__init__(conn, runner)
        self.client = PostgresEngineClient(conn, self.runner, app='opsready-dr-drill', timeout=QUERY_TIMEOUT)
        # The operator's smoke queries (SELECT count(*) FROM orders) name the application's tables as the application
        # does: under the database's own search_path, so not pinned to pg_catalog like our sessions (client.py). A
        # scratch copy whose path lists a schema others may create in is the operator's to qualify (or to query
        # with a login that is no superuser).
        self.smoke_client = PostgresEngineClient(conn, self.runner, app='opsready-dr-drill', timeout=QUERY_TIMEOUT,
                                                 catalog_only=False)

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        """An operator's smoke query, under the database's own search_path."""
        return self._rows(self.smoke_client, database, sql)

    def _rows(self, client: PostgresEngineClient, database: str, sql: str) -> List[Dict[str, Any]]:
        try:
            rows = client.query_dicts(sql, database)
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
        """Read every row of every user table (detects unreadable pages and TOAST damage): each heap on its own
        (``ONLY``), so a partitioned or inheritance parent never scans a foreign partition or child. A restored
        copy keeps the source's foreign servers and user mappings: reading through them would connect the drill to
        the production remote with its credentials (and foreign tables have no local pages to check)."""
        # format() and pg_class as the catalog's: the database's own search_path may shadow them (run as our login)
        listing = (CATALOG_SEARCH_PATH + "SELECT format('%I.%I', n.nspname, c.relname) AS t "  # nosec B608 # constants
                   "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
                   "AND c.relpersistence <> 't' "
                   "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
        tables = self._rows(self.client, database, listing)
        for row in tables:
            sql = 'COPY (SELECT * FROM ONLY %s) TO STDOUT' % row['t']  # nosec B608 # format('%I.%I') by the server
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

    def scratch_state(self, database: str) -> Dict[str, Any]:
        """Whether the scratch name is a database of the server, and its comment (the drill's mark). PostgreSQL
        compares database names exactly (a quoted identifier: ``Shop`` is not ``shop``)."""
        rows = self.client.query("SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') "  # nosec B608 # literal quoted by quote_literal
                                 'FROM pg_catalog.pg_database WHERE datname = %s' % quote_literal(database))
        if not rows:
            return {'exists': False, 'fold_case': False, 'marks': True}
        return {'exists': True, 'name': rows[0][0], 'comment': rows[0][1], 'fold_case': False, 'marks': True}

    def mark_scratch(self, database: str, text: str) -> Dict[str, Any]:
        """The drill's mark on the scratch database it restored: its comment (needs its owner or a superuser)."""
        try:
            self.client.query('COMMENT ON DATABASE %s IS %s' % (quote_ident(database), quote_literal(text)),
                              verbose=True)
        except OpsReadyError as exc:
            # 42501 insufficient_privilege, in the server's any language (the English texts as well)
            if sqlstate(getattr(exc, 'stderr', '')) != INSUFFICIENT_PRIVILEGE and 'must be owner' not in exc.message \
                    and 'permission denied' not in exc.message:
                raise
            # The restored copy belongs to the source's owner and the drill login is neither it nor a superuser:
            # the drill goes on (nothing is at risk), the next drill refuses this copy if it is left behind.
            return {'comment': None, 'not_marked': 'the drill login may not comment on it (%s)' % exc.message}
        return {'comment': text}

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
            PG_NON_EMPTY_SQL, PG_SUMMARY_SQL)
        row = self.client.query(CATALOG_SEARCH_PATH + PG_SUMMARY_SQL, database)[0]
        non_empty = self.client.query(CATALOG_SEARCH_PATH + PG_NON_EMPTY_SQL, database)[0][0]
        return {'tables': int(row[0]), 'non_empty_tables': int(non_empty), 'size_bytes': int(row[3])}
