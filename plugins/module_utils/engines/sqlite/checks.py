# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DR drill checks on a restored SQLite copy: integrity check, smoke queries, summary.

``drill/checks.py`` holds the interface (``DrillChecks``) and what every engine shares.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.backup import (
    connect as sqlite_connect, summarize as sqlite_summarize)
from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import DrillChecks


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
