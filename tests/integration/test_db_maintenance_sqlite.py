"""db_maintenance against real SQLite files: clean-up in batches, VACUUM, ANALYZE, PRAGMA optimize, check mode,
bad identifiers and a locked database. Every test asserts on the file afterwards."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

from tests.harness.playbook import play

OLD, NEW = 3000, 1200


def maint(db: Path, **args) -> dict:
    return {'name': 'maint', 'opsready.operations.db_maintenance': dict(engine='sqlite', database=str(db), **args)}


def seed(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT, payload TEXT);"
        "CREATE INDEX events_ts ON events (ts);"
        "CREATE TABLE metrics (id INTEGER PRIMARY KEY, at INTEGER, v REAL);"
        "CREATE TABLE keep (id INTEGER PRIMARY KEY, ts TEXT, body TEXT);")
    rows = []
    for i in range(OLD):
        # Half in 'YYYY-MM-DD HH:MM:SS', half ISO 8601 with T and Z: both must be recognised as old.
        fmt = '%Y-%m-%d %H:%M:%S' if i % 2 else '%Y-%m-%dT%H:%M:%SZ'
        rows.append(("strftime('%s', 'now', '-%d days', '-%d minutes')" % (fmt, 31 + i % 20, i), i))
    for expr, i in rows:
        conn.execute("INSERT INTO events (ts, payload) VALUES (%s, ?)" % expr, ('x' * 400 + str(i),))
    for i in range(NEW):
        conn.execute("INSERT INTO events (ts, payload) VALUES (datetime('now', '-%d days'), ?)" % (i % 29),
                     ('new' + str(i),))
    # Unparseable time: never deleted.
    conn.execute("INSERT INTO events (ts, payload) VALUES ('not a date', 'odd')")
    conn.executemany("INSERT INTO metrics (at, v) VALUES (strftime('%s', 'now') - ?, ?)",
                     [(d * 86400 + 5, d) for d in range(60)])
    conn.executemany("INSERT INTO keep (ts, body) VALUES (datetime('now', '-400 days'), ?)",
                     [(str(i),) for i in range(500)])
    conn.commit()
    conn.close()


def fingerprint(path: Path, table: str) -> str:
    conn = sqlite3.connect(path)
    rows = conn.execute('SELECT * FROM %s ORDER BY id' % table).fetchall()
    conn.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def q(path: Path, sql: str):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_cleanup_vacuum_analyze_then_nothing_due(tmp_path):
    db = tmp_path / 'app.db'
    seed(db)
    keep = fingerprint(db, 'keep')
    new_rows = q(db, "SELECT id, ts, payload FROM events WHERE payload NOT LIKE 'xxxx%' ORDER BY id")
    rules = [{'table': 'events', 'column': 'ts', 'older_than_days': 30, 'batch_size': 700},
             {'table': 'metrics', 'column': 'at', 'older_than_days': 30, 'column_format': 'epoch'}]
    tasks = ['cleanup', 'vacuum', 'analyze', 'optimize']

    # Check mode: counts what would go, changes nothing (not even the file).
    before_bytes = db.read_bytes()
    r = play(tmp_path, [maint(db, tasks=tasks, cleanup=rules)], check=True, diff=True)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['changed'] is True
    assert res['rows_to_remove'] == {'events': OLD, 'metrics': 30}
    assert res['rows_removed'] == {'events': 0, 'metrics': 0}
    assert db.read_bytes() == before_bytes
    assert 'cleanup events: %d row(s)' % OLD in r.stdout

    size_before = os.path.getsize(db)
    r = play(tmp_path, [maint(db, tasks=tasks, cleanup=rules)])
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['changed'] is True and res['failures'] == []
    assert res['rows_removed'] == {'events': OLD, 'metrics': 30}
    events = res['cleanup'][0]
    assert events['batches'] == OLD // 700 + 1  # 4 full batches of 700, then 200
    # Exactly the new rows (and the unparseable one) are left, untouched.
    assert q(db, "SELECT id, ts, payload FROM events ORDER BY id") == new_rows
    assert q(db, 'SELECT count(*) FROM metrics')[0][0] == 30
    assert q(db, "SELECT min(at) > strftime('%s','now') - 30*86400 FROM metrics")[0][0] == 1
    assert fingerprint(db, 'keep') == keep
    # VACUUM gave the space back; ANALYZE recorded statistics for every non-empty table.
    done = {(a['task'], a['object']) for a in res['actions'] if a['status'] == 'done'}
    assert ('vacuum', str(db)) in done
    assert os.path.getsize(db) < size_before / 2
    assert q(db, 'PRAGMA freelist_count')[0][0] == 0
    stat = dict(q(db, 'SELECT tbl, stat FROM sqlite_stat1 WHERE idx IS NULL OR idx = \'events_ts\''))
    assert stat['events'].split()[0] == str(NEW + 1)
    assert {'keep', 'metrics'} <= set(stat)
    assert q(db, 'PRAGMA integrity_check') == [('ok',)]

    # Second run: nothing older than the cut-off, no free pages, statistics current -> changed=false.
    r = play(tmp_path, [maint(db, tasks=tasks, cleanup=rules)])
    res = r.result('maint')
    assert r.rc == 0 and res['changed'] is False, res
    assert res['actions'] == [] and res['rows_removed'] == {'events': 0, 'metrics': 0}


def test_analyze_detects_drift_and_force(tmp_path):
    db = tmp_path / 'a.db'
    seed(db)
    play(tmp_path, [maint(db, tasks=['analyze'])])
    first = q(db, "SELECT stat FROM sqlite_stat1 WHERE tbl = 'keep'")[0][0]
    assert first.split()[0] == '500'
    # 10% more rows: due with the default threshold 0, not due with analyze_threshold=15.
    conn = sqlite3.connect(db)
    conn.executemany('INSERT INTO keep (ts, body) VALUES (datetime(\'now\'), ?)', [(str(i),) for i in range(50)])
    conn.commit()
    conn.close()
    r = play(tmp_path, [maint(db, tasks=['analyze'], tables=['keep'], analyze_threshold=15)])
    assert r.result('maint')['changed'] is False
    r = play(tmp_path, [maint(db, tasks=['analyze'], tables=['keep'])])
    res = r.result('maint')
    assert res['changed'] is True and [a['object'] for a in res['actions']] == ['keep']
    assert q(db, "SELECT stat FROM sqlite_stat1 WHERE tbl = 'keep'")[0][0].split()[0] == '550'
    r = play(tmp_path, [maint(db, tasks=['analyze'], tables=['keep', 'events'], force=True)])
    assert sorted(a['object'] for a in r.result('maint')['actions']) == ['events', 'keep']


def test_bad_identifiers_and_unknown_columns_delete_nothing(tmp_path):
    db = tmp_path / 'b.db'
    seed(db)
    before = {t: fingerprint(db, t) for t in ('events', 'metrics', 'keep')}
    cases = [
        [{'table': 'keep; DROP TABLE events', 'column': 'ts', 'older_than_days': 30}],
        [{'table': 'keep', 'column': 'ts) OR (1=1', 'older_than_days': 30}],
        # The first rule is valid: it must not run because the second one is wrong.
        [{'table': 'keep', 'column': 'ts', 'older_than_days': 30},
         {'table': 'events', 'column': 'nope', 'older_than_days': 30}],
        [{'table': 'missing', 'column': 'ts', 'older_than_days': 30}],
        [{'table': 'keep', 'column': 'ts', 'older_than_days': 0}],
    ]
    messages = []
    for rules in cases:
        r = play(tmp_path, [maint(db, tasks=['cleanup'], cleanup=rules)])
        assert r.rc != 0
        messages.append(r.result('maint')['msg'])
    # hostile names are only names (always quoted): not found, nothing deleted
    assert 'does not exist' in messages[0] and 'does not exist' in messages[1]
    assert 'column nope does not exist in table events' in messages[2]
    assert 'missing does not exist' in messages[3]
    assert 'older_than_days must be 1 or more' in messages[4]
    r = play(tmp_path, [maint(db, tasks=['analyze'], tables=['nosuch'])])
    assert r.rc != 0 and 'nosuch' in r.result('maint')['msg']
    r = play(tmp_path, [maint(db, tasks=['reindex'])])
    assert r.rc != 0 and 'do not apply to engine sqlite' in r.result('maint')['msg']
    assert {t: fingerprint(db, t) for t in ('events', 'metrics', 'keep')} == before


def test_locked_database_fails_clearly_after_lock_timeout(tmp_path):
    db = tmp_path / 'c.db'
    seed(db)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute('BEGIN IMMEDIATE')
    holder.execute("INSERT INTO keep (ts, body) VALUES (datetime('now'), 'held')")
    release = threading.Timer(20, lambda: None)
    try:
        r = play(tmp_path, [maint(db, tasks=['cleanup'], lock_timeout=1,
                                  cleanup=[{'table': 'events', 'column': 'ts', 'older_than_days': 30}])])
    finally:
        release.cancel()
        holder.execute('ROLLBACK')
        holder.close()
    assert r.rc != 0
    res = r.result('maint')
    assert 'lock_timeout=1s' in res['msg'] and res['rows_removed'] == {'events': 0}
    assert q(db, 'SELECT count(*) FROM events')[0][0] == OLD + NEW + 1
