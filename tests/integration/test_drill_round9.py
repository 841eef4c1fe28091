"""Round 9 of the DR drill audit (SQLite, the embedded default; real ansible-playbook runs of playbooks/dr_drill.yml).

* A drill proves the newest recovery point: when the newest backup cannot be used (its verification failed, its
  manifest is unreadable) and the drill restores an older one, it must fail naming it, not PASS on the older one.
* A freshness answer without a zone (local time of the application) is read in the zone given, or warned of.
* A SQLite scratch path holding anything the drill did not create is refused and kept, never replaced and deleted.
db_failover's max_loss: tests/integration/test_failover_max_loss_round9.py."""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook

SMOKE = [{'name': 'customers', 'sql': 'SELECT count(*) AS n FROM customers', 'expect': {'value_at_least': 10}}]


@pytest.fixture
def shop(tmp_path):
    db = tmp_path / 'app' / 'shop.sqlite'
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.executescript('CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT);')
    conn.executemany('INSERT INTO customers (email) VALUES (?)', [('c%d@example.com' % i,) for i in range(50)])
    conn.commit()
    conn.close()
    return {'db': db, 'backups': tmp_path / 'backups', 'reports': tmp_path / 'reports',
            'scratch': tmp_path / 'scratch' / 'shop-drill.sqlite', 'tmp': tmp_path}


def backup(shop):
    book = write_playbook(shop['tmp'], [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(shop['db']), 'dest': str(shop['backups'])}}])
    result = run_playbook(book)
    assert result.rc == 0
    return Path(result.result('backup')['manifest']['path'])


def drill(shop, **overrides):
    database = {'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
                'scratch': str(shop['scratch']), 'smoke_queries': SMOKE, 'rpo_seconds': 3600}
    database.update(overrides)
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_databases': [database]})


def report_of(result):
    out = result.result('Write the drill report')
    return out, json.loads(Path(out['paths']['json']).read_text())


def add_rows(shop, n):
    conn = sqlite3.connect(shop['db'])
    conn.executemany('INSERT INTO customers (email) VALUES (?)', [('n%d@example.com' % i,) for i in range(n)])
    conn.commit()
    conn.close()


@pytest.mark.parametrize('damage', ['failed_verification', 'torn_manifest'])
def test_a_damaged_newest_backup_fails_the_drill_that_restored_an_older_one(shop, damage):
    """Two fulls; the newest is damaged (its artifact corrupt and backup_verify recorded the failure, or its manifest
    torn). The catalog passes it over and the drill restores the older one: that restore is fine and its RPO honest,
    but the drill must fail, naming the newest backup that does not restore (it PASSED, naming only the older)."""
    older = backup(shop)
    time.sleep(1.1)
    add_rows(shop, 5)
    newest = backup(shop)
    assert older != newest
    manifest = Path(str(newest) + '.manifest.json')
    if damage == 'failed_verification':
        data = newest.read_bytes()
        newest.write_bytes(data[:100] + bytes([data[100] ^ 0xff]) + data[101:])
        book = write_playbook(shop['tmp'], [{'name': 'verify', 'ignore_errors': True,
                                             'opsready.operations.backup_verify': {'path': str(shop['backups'])}}])
        run_playbook(book)
        assert json.loads(manifest.read_text())['verification']['ok'] is False
    else:
        manifest.write_text(manifest.read_text()[:40])
    result = drill(shop)
    out, report = report_of(result)
    db = report['databases'][0]
    # The older backup restored, checked and answered its smoke queries, within the RPO objective of 1 h: without
    # the newest backup named, the drill PASSED on it.
    assert db['backup']['id'] == older.name and db['rpo_verdict'] == 'pass', db
    assert result.rc != 0 and not db['passed'] and out['verdict_line'].startswith('DR drill FAILED'), out
    reason = next(r for r in db['reasons'] if 'the newest backup' in r)
    assert newest.name in reason and 'cannot be restored' in reason, reason
    assert ('verification failed' if damage == 'failed_verification' else 'manifest cannot be read') in reason
    assert [p['id'] for p in db['backup']['passed_over']] == [newest.name]
    assert not shop['scratch'].exists()


def test_a_freshness_answer_in_local_time_is_read_in_its_zone_or_warned_of(shop):
    """The application stores local time (Asia/Tokyo, UTC+9) in a column without a zone; its newest row was written
    10 h ago. Read as UTC the copy looked 1 h old and the drill PASSED an RPO objective of 2 h with an RPO of 1 h
    (the docstring said a local time east of UTC "lies in the future", true only of a row younger than the offset).
    With freshness_timezone the RPO is the real 10 h and fails; without it the report warns that the time had no zone
    and was read as UTC."""
    ten_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=10)
    local = ten_hours_ago.astimezone(datetime.timezone(datetime.timedelta(hours=9))).replace(tzinfo=None)
    conn = sqlite3.connect(shop['db'])
    conn.executescript('CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT);')
    conn.execute('INSERT INTO events (created_at) VALUES (?)', (local.strftime('%Y-%m-%d %H:%M:%S'),))
    conn.commit()
    conn.close()
    backup(shop)
    query = 'SELECT max(created_at) FROM events'
    result = drill(shop, rpo_seconds=7200, freshness_query=query, freshness_timezone='Asia/Tokyo')
    out, report = report_of(result)
    db = report['databases'][0]
    assert result.rc != 0 and db['rpo_verdict'] == 'fail' and 35900 < db['rpo_seconds'] < 36300, db
    assert not any('without a zone' in w for w in db['warnings']), db['warnings']
    result = drill(shop, rpo_seconds=7200, freshness_query=query)
    out, report = report_of(result)
    db = report['databases'][0]
    assert 3500 < db['rpo_seconds'] < 3700, db   # read as UTC: what the drill cannot know, it says
    assert any(w.startswith('freshness: ') and 'without a zone, read as UTC' in w and 'freshness_timezone' in w
               for w in db['warnings']), db['warnings']
    assert not shop['scratch'].exists()


@pytest.mark.parametrize('what', ['another_database', 'a_plain_file'])
def test_a_sqlite_scratch_path_holding_another_file_is_refused_and_kept(shop, what):
    """The scratch path names another application's live SQLite database (billing.sqlite, a typo, a copy-pasted
    path) or some other file: the guard compared it only with the source, so the restore replaced it with the shop
    backup and the clean-up deleted it. A drill restores only into a path that is absent or its own leftover."""
    backup(shop)
    other = shop['db'].parent / ('billing.sqlite' if what == 'another_database' else 'notes.txt')
    if what == 'another_database':
        conn = sqlite3.connect(other)
        conn.executescript('CREATE TABLE invoices (id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (1);')
        conn.commit()
        conn.close()
    else:
        other.write_text('not a database\n')
    before = other.read_bytes()
    result = drill(shop, scratch=str(other))
    assert result.rc != 0
    assert other.read_bytes() == before, 'the drill replaced %s' % other
    out, report = report_of(result)
    assert 'refused' in ' '.join(report['reasons']) or 'not the drill' in ' '.join(report['reasons']), report['reasons']


def test_a_sqlite_scratch_left_by_an_interrupted_drill_is_replaced_and_removed(shop):
    """Guard (the drill's own leftover stays usable; the old code removed it too): a scratch copy an interrupted drill
    left, with the marker beside it, is replaced and removed by the next drill with its marker; a passing drill
    leaves neither."""
    backup(shop)
    marker = Path(str(shop['scratch']) + '.opsready_drill_scratch')
    shop['scratch'].parent.mkdir(parents=True)
    shop['scratch'].write_bytes(b'half a copy')
    marker.write_text('{}')
    result = drill(shop)
    assert result.rc == 0, result.stdout[-3000:]
    assert not shop['scratch'].exists() and not marker.exists()
    assert not any(p.name != 'scratch' for p in shop['scratch'].parent.iterdir())
