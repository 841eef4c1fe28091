"""Fidelity, SQLite, round 5: the source and the target as they are while an application runs, through the backup
and restore jobs db_backup and db_restore call (in process, as test_sqlite_round4 does).

- a corrupt source file is refused at backup time, before an artifact exists (it used to be stored: silently with
  verify=false or an encrypted artifact, as "the backup failed verification" otherwise);
- a restore over a database another process holds open in WAL mode is refused (it used to swap the file in: every
  commit the application made afterwards went into the unlinked old file and was lost);
- guards: UTF-16 encoding, rtree and FTS5 shadow tables, sqlite_stat1, AUTOINCREMENT counters, page_size,
  auto_vacuum, user_version, application_id and WAL round trip; a hot backup under a continuous writer is
  consistent.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402


def backup(db: Path, dest: Path, verify: bool = True):
    return run_backup(get_engine('sqlite', ConnectionParams()),
                      BackupOptions(kind='full', dest=str(dest), database=str(db)), verify=verify)


def restore(dest: Path, db: Path, source: Path, replace: bool = False):
    return run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(db), source_database=str(source),
                                      replace=replace), ConnectionParams())


def artifacts(dest: Path):
    return sorted(p.name for p in dest.rglob('*') if not p.name.endswith('.lock')) if dest.exists() else []


def corrupt(db: Path) -> None:
    """A table of 5000 rows whose second-to-last page is overwritten in its cell area (a torn write, a bad disk)."""
    conn = sqlite3.connect(str(db))
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.execute('CREATE INDEX tv ON t (v)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('x' * 50 + str(i),) for i in range(5000)])
    conn.commit()
    size, count = (conn.execute('PRAGMA %s' % p).fetchone()[0] for p in ('page_size', 'page_count'))
    conn.close()
    with open(str(db), 'r+b') as handle:
        handle.seek((count - 2) * size + 100)
        handle.write(bytes(range(256)) * 1)
    conn = sqlite3.connect(str(db))
    assert conn.execute('PRAGMA quick_check').fetchone()[0] != 'ok'
    conn.close()


@pytest.mark.parametrize('verify', [False, True])
def test_a_corrupt_source_is_refused_before_an_artifact_exists(tmp_path, verify):
    """Failed first: with verify=false the corrupt copy was stored as a good backup; with verify=true it was stored
    too (marked unverified) and the error blamed the artifact, not the database."""
    db = tmp_path / 'app.db'
    corrupt(db)
    dest = tmp_path / 'backups'
    with pytest.raises(OpsReadyError) as raised:
        backup(db, dest, verify=verify)
    message = str(raised.value)
    assert '_check' in message and str(db) in message and 'no artifact' in message, message
    assert artifacts(dest) == []
    assert not list(tmp_path.rglob('*partial*'))


HOLDER = r'''
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute('PRAGMA wal_autocheckpoint = 0')
conn.execute("INSERT INTO t (v) VALUES ('written by the application after the backup')")
print('ready', flush=True)
sys.stdin.readline()
conn.execute("INSERT INTO t (v) VALUES ('written by the application after the restore')")
print(conn.execute('SELECT count(*) FROM t').fetchone()[0], flush=True)
conn.close()
'''


@pytest.mark.parametrize('journal', ['wal', 'delete'])
def test_a_restore_over_a_database_another_process_has_open_is_refused(tmp_path, journal):
    """Failed first: the restore swapped the file in under the application's open connection; the application's
    next commit went into the unlinked old file (it counted 102 rows, the file held 100) and was lost. In WAL mode
    the connection holds a lock all along; in rollback mode (idle between transactions) it holds none, only the
    file open."""
    db = tmp_path / 'app.db'
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute('PRAGMA journal_mode = %s' % journal)
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('backed up %d' % i,) for i in range(100)])
    conn.close()
    dest = tmp_path / 'backups'
    backup(db, dest)
    app = subprocess.Popen([sys.executable, '-c', HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    try:
        assert app.stdout.readline().strip() == 'ready'
        with pytest.raises(OpsReadyError) as raised:
            restore(dest, db, db, replace=True)
        message = str(raised.value)
        assert 'open' in message and str(app.pid) in message, message
        app.stdin.write('\n')
        app.stdin.flush()
        assert app.stdout.readline().strip() == '102'
    finally:
        app.stdin.close()
        app.wait(10)
    conn = sqlite3.connect(str(db))
    assert conn.execute('SELECT count(*) FROM t').fetchone()[0] == 102   # nothing was swapped, nothing lost
    conn.close()
    restore(dest, db, db, replace=True)   # the application stopped: the restore runs
    conn = sqlite3.connect(str(db))
    assert conn.execute('SELECT count(*) FROM t').fetchone()[0] == 100
    assert conn.execute('PRAGMA journal_mode').fetchone()[0] == journal
    conn.close()


def test_an_application_started_during_the_restore_is_caught_before_the_swap(tmp_path, monkeypatch):
    """Failed first: the target was looked at once, before the copy and its integrity check (minutes for a big
    database); an application that opened it meanwhile kept committing into the old file after the swap, and those
    writes were lost. The restore asks again right before the swap, and leaves nothing of its own behind."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import restore as sqlite_restore
    db = tmp_path / 'app.db'
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute('PRAGMA journal_mode = wal')
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('backed up %d' % i,) for i in range(100)])
    conn.close()
    dest = tmp_path / 'backups'
    backup(db, dest)
    started = []
    real_place = sqlite_restore._place

    def place_while_the_application_starts(*args, **kwargs):
        app = subprocess.Popen([sys.executable, '-c', HOLDER, str(db)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        started.append(app)
        assert app.stdout.readline().strip() == 'ready'
        return real_place(*args, **kwargs)
    monkeypatch.setattr(sqlite_restore, '_place', place_while_the_application_starts)
    try:
        with pytest.raises(OpsReadyError) as raised:
            restore(dest, db, db, replace=True)
        message = str(raised.value)
        assert 'open' in message and str(started[0].pid) in message, message
        started[0].stdin.write('\n')
        started[0].stdin.flush()
        assert started[0].stdout.readline().strip() == '102'
    finally:
        for app in started:
            app.stdin.close()
            app.wait(10)
    assert not [p.name for p in tmp_path.iterdir() if '.opsready-' in p.name]
    conn = sqlite3.connect(str(db))
    assert conn.execute('SELECT count(*) FROM t').fetchone()[0] == 102   # nothing was swapped, nothing lost
    conn.close()


SCHEMA = '''
PRAGMA encoding = 'UTF-16le';
PRAGMA page_size = 16384;
PRAGMA auto_vacuum = FULL;
PRAGMA user_version = -7;
PRAGMA application_id = -123456;
PRAGMA journal_mode = WAL;
CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
CREATE VIRTUAL TABLE boxes USING rtree (id, minx, maxx, miny, maxy);
CREATE VIRTUAL TABLE docs USING fts5 (body, tokenize = 'unicode61');
CREATE TABLE strict_t (k INTEGER PRIMARY KEY, v TEXT NOT NULL, g TEXT AS (v || '!') STORED) STRICT;
CREATE INDEX strict_expr ON strict_t (length(v)) WHERE k % 2 = 0;
'''


PRAGMAS = ('encoding', 'page_size', 'auto_vacuum', 'user_version', 'application_id', 'journal_mode')


def measure(db: Path):
    conn = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
    try:
        def one(sql):
            return conn.execute(sql).fetchone()[0]
        return {
            'pragmas': [one('PRAGMA %s' % p) for p in PRAGMAS],
            'master': conn.execute('SELECT type, name, sql FROM sqlite_master ORDER BY name').fetchall(),
            'sequence': conn.execute('SELECT name, seq FROM sqlite_sequence').fetchall(),
            'stat1': conn.execute('SELECT * FROM sqlite_stat1 ORDER BY tbl, idx').fetchall(),
            'rtree': conn.execute('SELECT * FROM boxes WHERE minx >= 10 ORDER BY id').fetchall(),
            'fts': conn.execute("SELECT rowid FROM docs WHERE docs MATCH 'zebra' ORDER BY rowid").fetchall(),
            'strict': conn.execute('SELECT k, v, g FROM strict_t INDEXED BY strict_expr WHERE k % 2 = 0 '
                                   'AND length(v) > 3 ORDER BY k').fetchall(),
            'text': conn.execute('SELECT name FROM seq ORDER BY id').fetchall(),
            'integrity': one('PRAGMA integrity_check'),
        }
    finally:
        conn.close()


def test_file_level_properties_and_shadow_tables_round_trip(tmp_path):
    """Regression guard (passed on the old code): the backup API copies pages, so UTF-16, page_size, auto_vacuum,
    the header's user_version and application_id, rtree/FTS5 shadow tables, sqlite_stat1 and the AUTOINCREMENT
    counter (above the largest rowid after deletes) arrive as they were, and WAL is set again."""
    db = tmp_path / 'utf16 ü.db'
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.executescript(SCHEMA)
    conn.execute('BEGIN')
    conn.executemany('INSERT INTO seq (name) VALUES (?)', [('ü名 %d \U0001F600' % i,) for i in range(300)])
    conn.execute('DELETE FROM seq WHERE id > 250')
    conn.executemany('INSERT INTO boxes VALUES (?, ?, ?, ?, ?)', [(i, i, i + 1.5, -i, -i + 2) for i in range(200)])
    conn.executemany('INSERT INTO docs (body) VALUES (?)', [('the zebra %d' % i if i % 7 == 0 else 'horse',)
                                                            for i in range(400)])
    conn.executemany('INSERT INTO strict_t (k, v) VALUES (?, ?)', [(i, 'v' * (i % 9)) for i in range(500)])
    conn.execute('COMMIT')
    conn.execute('ANALYZE')
    conn.close()
    before = measure(db)
    assert before['pragmas'][0] == 'UTF-16le' and before['sequence'] == [('seq', 300)] and before['stat1']
    dest = tmp_path / 'backups'
    backup(db, dest)
    other = tmp_path / 'restored' / 'other ü.db'
    other.parent.mkdir()
    restore(dest, other, db)
    assert measure(other) == before


WRITER = r'''
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
end = time.time() + float(sys.argv[2])
n = 0
while time.time() < end:
    conn.execute('BEGIN IMMEDIATE')
    conn.execute('INSERT INTO ledger (amount) VALUES (5)')
    conn.execute('INSERT INTO ledger (amount) VALUES (-5)')
    conn.execute('UPDATE totals SET n = n + 2')
    conn.execute('COMMIT')
    n += 1
print(n)
'''


@pytest.mark.parametrize('journal', ['wal', 'delete'])
def test_a_hot_backup_under_a_continuous_writer_is_consistent(tmp_path, journal):
    """Regression guard (passed on the old code): while another process commits pairs of rows and a counter as
    fast as it can, every backup holds whole transactions (the ledger sums to 0, its row count equals the counter)
    and passes integrity_check."""
    db = tmp_path / 'busy.db'
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute('PRAGMA journal_mode = %s' % journal)
    conn.execute('CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, '
                 'pad BLOB DEFAULT (randomblob(300)))')
    conn.execute('CREATE TABLE totals (n INTEGER NOT NULL)')
    conn.execute('INSERT INTO totals VALUES (0)')
    conn.close()
    writer = subprocess.Popen([sys.executable, '-c', WRITER, str(db), '6'], stdout=subprocess.PIPE, text=True)
    dest = tmp_path / 'backups'
    try:
        time.sleep(0.5)
        for round_ in range(3):
            backup(db, dest / str(round_))
    finally:
        done = int(writer.communicate(timeout=60)[0])
    assert done > 0
    for round_ in range(3):
        target = tmp_path / ('restored-%d.db' % round_)
        restore(dest / str(round_), target, db)
        conn = sqlite3.connect(str(target))
        assert conn.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
        rows, total = conn.execute('SELECT count(*), coalesce(sum(amount), 0) FROM ledger').fetchone()
        counted = conn.execute('SELECT n FROM totals').fetchone()[0]
        conn.close()
        assert (rows, total) == (counted, 0) and rows > 0, (round_, rows, total, counted)
