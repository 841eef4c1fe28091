"""SQLite databases with virtual tables (FTS5, R*Tree), AUTOINCREMENT (sqlite_sequence) and ANALYZE
(sqlite_stat1), in WAL mode: the backup is written, verifies, and a drill on the same file compares OK.
Before: every backup of such a database failed ('copied 9 tables, its snapshot held 11'), virtual tables
counted on one side and not the other."""

from __future__ import annotations

import sqlite3

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.drill import steps
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import (
    SQLiteChecks as SQLiteClient)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams


def test_virtual_tables_backup_verify_and_drill(tmp_path):
    db = tmp_path / 'search #1.db'
    conn = sqlite3.connect(db)
    conn.executescript("""PRAGMA journal_mode=WAL;
        CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
        INSERT INTO t (v) VALUES ('a'), ('b');
        CREATE VIRTUAL TABLE f USING fts5(body);
        INSERT INTO f VALUES ('hello world');
        CREATE VIRTUAL TABLE r USING rtree(id, x0, x1);
        INSERT INTO r VALUES (1, 0, 1);
        CREATE INDEX ti ON t(v);
        ANALYZE;""")
    conn.commit()
    conn.close()
    options = BackupOptions(kind='full', dest=str(tmp_path / 'b'), database=str(db))
    result = run_backup(get_engine('sqlite', ConnectionParams()), options, verify=True)
    checks = result['verification'][0]['checks']
    assert result['verification'][0]['ok'] and checks['source_check'].startswith('ok'), result['verification']
    held = result['manifest']['source']
    assert held['objects']['table'] == 11 and 'sqlite_sequence' not in held['rows'] and held['rows']['t'] == 2
    drill = steps.compare_with_source(SQLiteClient(ConnectionParams()), str(db), result['manifest']['path'])
    assert drill['source_check'].startswith('ok'), drill
