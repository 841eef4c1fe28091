"""db_backup on SQLite: online backup while a writer is busy (WAL mode), verified, restored by hand."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.playbook import play

WRITER = r'''
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
i = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    conn.execute('BEGIN IMMEDIATE')
    conn.execute("INSERT INTO events (payload) VALUES (hex(randomblob(200)))")
    conn.execute("UPDATE counters SET n = n + 1 WHERE id = 1")
    conn.execute('COMMIT')
    i += 1
print(i)
'''


def make_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.executescript("""
        CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);
        CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
        INSERT INTO counters VALUES (1, 0);
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
        INSERT INTO events (payload) SELECT hex(randomblob(200)) FROM s;
        UPDATE counters SET n = 20000;
    """)
    conn.commit()
    conn.close()


def fingerprint(conn: sqlite3.Connection, upto: int) -> str:
    """sha256 over every column of the events rows with id <= upto, in primary-key order."""
    digest = hashlib.sha256()
    for row in conn.execute('SELECT id, payload FROM events WHERE id <= ? ORDER BY id', (upto,)):
        digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def test_online_backup_under_writes_is_consistent_and_restores(tmp_path):
    db = tmp_path / 'app.db'
    make_db(db)
    dest = tmp_path / 'backups'
    writer = subprocess.Popen([sys.executable, '-c', WRITER, str(db), '600'], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        probe = sqlite3.connect(db, timeout=30)
        before = probe.execute('SELECT count(*) FROM events').fetchone()[0]
        probe.close()
        assert before > 20000, 'the writer must have committed rows before the backup starts'
        result = play(tmp_path, [
            {'name': 'backup', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(db),
                                                                 'dest': str(dest)}},
            {'name': 'fresh', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(db),
                                                                'dest': str(dest), 'min_interval': 3600}},
            {'name': 'verify', 'opsready.operations.backup_verify': {'path': str(dest)}},
        ])
        assert writer.poll() is None, 'the writer must still be running during the backup'
    finally:
        writer.terminate()
        writer.wait()
    assert result.rc == 0, result.stdout[-4000:]
    manifest = result.result('backup')['manifest']
    assert manifest['details']['journal_mode'] == 'wal' and manifest['verification']['ok'] is True
    fresh = result.result('fresh')
    assert fresh['changed'] is False and fresh['skipped_fresh'] is True and fresh['manifest']['id'] == manifest['id']
    assert result.result('verify')['results'][0]['checks']['result'] == 'ok'
    # Restore by hand: decompress with the zstd tool, open with sqlite3.
    restored = tmp_path / 'restored.db'
    restored.write_bytes(subprocess.run(['zstd', '-dc', manifest['path']], capture_output=True, check=True).stdout)
    conn = sqlite3.connect(restored)
    assert conn.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    events, top = conn.execute('SELECT count(*), max(id) FROM events').fetchone()
    counter = conn.execute('SELECT n FROM counters').fetchone()[0]
    restored_print = fingerprint(conn, top)
    conn.close()
    # Consistent snapshot: every committed transaction inserted one row and bumped the counter together,
    # ids are gapless (append-only table), and nothing committed before the backup started is missing.
    assert events == counter == top and top >= before
    # The live database kept growing after the snapshot; its first `top` rows (never rewritten by the
    # append-only writer) are byte-for-byte the rows in the restored copy, every column.
    live = sqlite3.connect(db)
    assert live.execute('SELECT count(*) FROM events').fetchone()[0] > events
    assert live.execute('SELECT count(*) FROM events WHERE id <= ?', (top,)).fetchone()[0] == top
    assert fingerprint(live, top) == restored_print
    live.close()


def test_missing_file_and_unsupported_kind(tmp_path):
    result = play(tmp_path, [
        {'name': 'missing', 'ignore_errors': True, 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(tmp_path / 'nope.db'), 'dest': str(tmp_path / 'b')}},
        {'name': 'log', 'ignore_errors': True, 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(tmp_path / 'nope.db'), 'dest': str(tmp_path / 'b'), 'kind': 'log'}},
    ])
    assert 'does not exist' in result.result('missing')['msg']
    assert 'kind=log is not supported by engine sqlite' in result.result('log')['msg']
    assert not (tmp_path / 'b').exists()
