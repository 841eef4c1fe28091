"""Fidelity, SQLite, round 3: states of a database file the earlier rounds did not back up, through the real
modules (db_backup -> backup_verify -> db_restore), measured with the engine's own view (``test_sqlite.measure``).

- WAL mode with committed transactions only in the ``-wal`` (never checkpointed) while the writer stays open, and
  an FTS5 table with its shadow tables;
- a rollback-journal database whose writer crashed mid-transaction (a hot ``-journal`` next to it);
- a 0-byte database file (what ``sqlite3 new.db`` leaves before the first write).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fidelity.test_sqlite import assert_same, measure
from tests.harness.playbook import play


def backup_verify_restore(tmp_path, db: Path, restored: Path, dest: Path):
    return play(tmp_path, [
        {'name': 'backup', 'register': 'b', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(dest)}},
        {'name': 'verify', 'opsready.operations.backup_verify': {'path': str(dest)}},
        {'name': 'restore', 'opsready.operations.db_restore': {
            'engine': 'sqlite', 'src': str(dest), 'source_database': str(db), 'database': str(restored)}},
    ])


WRITER = textwrap.dedent('''
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute('PRAGMA wal_autocheckpoint = 0')
    conn.execute("INSERT INTO notes (body) VALUES ('written after the last checkpoint')")
    conn.execute("INSERT INTO docs (body) VALUES ('late full text entry')")
    conn.execute('BEGIN')
    conn.execute("INSERT INTO notes (body) VALUES ('never committed')")
    print('ready', flush=True)
    sys.stdin.read()
''')


def test_wal_only_commits_with_the_writer_open_and_fts5(tmp_path):
    """Commits that live only in the -wal (autocheckpoint off, the writer still open with a transaction of its own
    in progress) are part of the database: the backup must hold them, and not the uncommitted row."""
    db = tmp_path / 'srv' / 'app.db'
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.executescript('''
        PRAGMA journal_mode = WAL;
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
        CREATE VIRTUAL TABLE docs USING fts5 (body, tokenize = 'porter');
        INSERT INTO notes (body) VALUES ('checkpointed');
        INSERT INTO docs (body) VALUES ('the running foxes');
        PRAGMA wal_checkpoint(TRUNCATE);
    ''')
    conn.close()
    writer = subprocess.Popen([sys.executable, '-c', WRITER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == 'ready'
        assert os.path.getsize(str(db) + '-wal') > 0
        before = measure(db)
        restored = tmp_path / 'srv' / 'restored.db'
        result = backup_verify_restore(tmp_path, db, restored, tmp_path / 'backups')
        assert result.rc == 0, result.stdout[-4000:]
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    found = measure(restored)
    assert_same(before, found, 'the restored copy')
    check = sqlite3.connect(str(restored))
    try:
        bodies = [r[0] for r in check.execute('SELECT body FROM notes ORDER BY id')]
        assert bodies == ['checkpointed', 'written after the last checkpoint'], bodies
        assert check.execute("SELECT count(*) FROM docs WHERE docs MATCH 'run'").fetchone()[0] == 1
        check.execute("INSERT INTO docs(docs) VALUES ('integrity-check')")
    finally:
        check.close()


CRASHER = textwrap.dedent('''
    import os, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute('PRAGMA cache_size = 1')          # spill the change into the database file at once
    conn.execute('BEGIN')
    conn.execute("UPDATE accounts SET balance = 0")
    conn.execute("INSERT INTO accounts (balance) SELECT balance FROM accounts")
    os._exit(9)                                    # the process dies: a hot journal, the file half-written
''')


def test_a_hot_journal_left_by_a_crashed_writer(tmp_path):
    """A rollback-journal database whose writer died mid-transaction: the -journal is hot and the file holds part
    of the uncommitted change. SQLite rolls it back on the next open; the backup must hold the committed state, not
    fail and not copy the half-written pages."""
    db = tmp_path / 'srv' / 'ledger.db'
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.executescript('PRAGMA journal_mode = DELETE; PRAGMA page_size = 1024;'
                       'CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);')
    conn.execute('BEGIN')
    conn.executemany('INSERT INTO accounts (balance) VALUES (?)', [(100 + i,) for i in range(5000)])
    conn.execute('COMMIT')
    conn.close()
    committed = sum(100 + i for i in range(5000))
    crash = subprocess.run([sys.executable, '-c', CRASHER, str(db)], check=False)
    assert crash.returncode == 9
    journal = Path(str(db) + '-journal')
    assert journal.exists() and journal.stat().st_size > 0, 'no hot journal was left'
    restored = tmp_path / 'srv' / 'restored.db'
    result = backup_verify_restore(tmp_path, db, restored, tmp_path / 'backups')
    assert result.rc == 0, result.stdout[-4000:]
    backup = result.result('backup')
    assert backup['manifest']['details']['hot_journal_rolled_back'] is True, backup['manifest']['details']
    assert not journal.exists()   # rolled back, as the application's next open would have
    check = sqlite3.connect(str(restored))
    try:
        assert check.execute('SELECT count(*), sum(balance) FROM accounts').fetchone() == (5000, committed)
        assert check.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    finally:
        check.close()


def test_a_zero_byte_database_file(tmp_path):
    """``sqlite3 new.db`` (or an application that creates its file before its schema) leaves 0 bytes: a valid,
    empty database. It backs up, verifies and restores as one."""
    db = tmp_path / 'srv' / 'new.db'
    db.parent.mkdir(parents=True)
    db.write_bytes(b'')
    restored = tmp_path / 'srv' / 'restored.db'
    result = backup_verify_restore(tmp_path, db, restored, tmp_path / 'backups')
    assert result.rc == 0, result.stdout[-4000:]
    assert restored.exists()
    check = sqlite3.connect(str(restored))
    try:
        assert check.execute('SELECT count(*) FROM sqlite_master').fetchone()[0] == 0
    finally:
        check.close()


@pytest.fixture(autouse=True)
def _no_stray_files(tmp_path):
    yield
    strays = list((tmp_path / 'srv').glob('*opsready*')) if (tmp_path / 'srv').exists() else []
    assert not strays, strays
