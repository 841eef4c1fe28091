"""DR drills of a SQLite database through real ansible-playbook runs of playbooks/dr_drill.yml.

Real files, real backups (db_backup), real restores (db_restore), real reports. Each test asserts what an
operator would notice: the exit status, the verdict and reasons in the JSON report, the scratch copy gone,
and one more line in the history per drill.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook

SMOKE = [{'name': 'customers', 'sql': 'SELECT count(*) AS n FROM customers', 'expect': {'value_at_least': 500}},
         {'name': 'paid orders', 'sql': 'SELECT status, count(*) AS n FROM orders GROUP BY status',
          'expect': {'jmespath': "length([?status=='paid' && n > `0`]) == `1`"}}]


@pytest.fixture
def shop(tmp_path):
    db = tmp_path / 'app' / 'shop.sqlite'
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.executescript('''
        CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), status TEXT);
        CREATE INDEX orders_status ON orders(status);''')
    conn.executemany('INSERT INTO customers (email) VALUES (?)', [('c%d@example.com' % i,) for i in range(800)])
    conn.executemany('INSERT INTO orders (customer_id, status) VALUES (?, ?)',
                     [(i % 800 + 1, ('paid', 'open', 'shipped')[i % 3]) for i in range(3000)])
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


def drill(shop, check=False, **overrides):
    database = {'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
                'scratch': str(shop['scratch']), 'smoke_queries': SMOKE}
    database.update(overrides)
    return run_playbook('playbooks/dr_drill.yml', check=check, extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_databases': [database]})


def history(shop):
    path = shop['reports'] / 'drills.jsonl'
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def report_of(result):
    out = result.result('Write the drill report')
    return out, json.loads(Path(out['paths']['json']).read_text())


def test_passing_drill_then_stale_backup_breaches_rpo(shop):
    artifact = backup(shop)
    result = drill(shop)
    assert result.rc == 0, result.stdout[-4000:]
    out, report = report_of(result)
    assert out['passed'] is True and report['verdict'] == 'PASSED'
    db = report['databases'][0]
    assert [s['name'] for s in db['steps']] == ['find_backup', 'restore', 'integrity', 'smoke', 'cleanup']
    assert all(s['ok'] for s in db['steps'])
    assert db['backup']['id'] == artifact.name and db['backup']['chain'] == [artifact.name]
    assert 0 < db['rto_seconds'] < 3600 and db['rto_verdict'] == 'pass'
    assert 0 <= db['rpo_seconds'] < 300 and db['rpo_verdict'] == 'pass'
    assert 'PRAGMA integrity_check' in db['steps'][2]['result'] and db['steps'][3]['result'] == '2 smoke queries passed'
    assert 'against the source at backup time: ok (tables and rows match exactly)' in db['steps'][2]['result']
    summary = out['databases'][0]  # what Test-DbaLastBackup reports
    assert summary['restore_result'] == summary['integrity_result'] == 'Success'
    assert summary['restore_elapsed'] > 0 and summary['backup_files'] == [artifact.name]
    assert not shop['scratch'].exists(), 'the scratch copy was left behind'
    assert shop['db'].exists(), 'the drill touched the source database'
    for kind in ('json', 'markdown', 'html'):
        assert Path(out['paths'][kind]).is_file()
    assert len(history(shop)) == 1
    assert 'DR drill PASSED: 1/1 passed' in result.stdout

    # the same backup, now older than a 1-second RPO objective: the drill fails, saying why
    time.sleep(1.5)
    stale = drill(shop, rpo_seconds=1)
    assert stale.rc != 0
    out, report = report_of(stale)
    db = report['databases'][0]
    assert report['verdict'] == 'FAILED' and db['rpo_verdict'] == 'fail' and db['rto_verdict'] == 'pass'
    assert any('exceeds the objective 1.00 s' in r and 'take backups' in r for r in report['reasons'])
    assert 'RPO' in stale.result('Fail when an objective was breached or a verification failed')['msg']
    assert not shop['scratch'].exists()
    assert len(history(shop)) == 2 and [h['passed'] for h in history(shop)] == [True, False]


def test_corrupted_backup_fails_at_verification_and_cleans_up(shop):
    artifact = backup(shop)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    # a leftover scratch copy from an interrupted earlier drill (with the marker a drill puts beside it before it
    # restores; an unmarked file is refused: tests/integration/test_drill_round9.py): the clean-up removes it too
    shop['scratch'].parent.mkdir(parents=True)
    shop['scratch'].write_bytes(b'leftover')
    Path(str(shop['scratch']) + '.opsready_drill_scratch').write_text('{}')
    result = drill(shop)
    assert result.rc != 0
    out, report = report_of(result)
    db = report['databases'][0]
    steps = {s['name']: s for s in db['steps']}
    assert not steps['verify']['ok'] and 'restore' not in steps
    assert 'failed verification' in steps['verify']['error'] or 'checksum' in steps['verify']['error'].lower()
    assert steps['cleanup']['ok'] and db['cleaned_up']
    assert db['rto_verdict'] == 'not_measured' and not out['passed']
    assert not shop['scratch'].exists() and not Path(str(shop['scratch']) + '.opsready_drill_scratch').exists()
    assert out['databases'][0]['restore_result'] == 'Skipped'
    assert len(history(shop)) == 1


def test_failed_smoke_query_after_restore_still_drops_scratch(shop):
    backup(shop)
    result = drill(shop, smoke_queries=[{'name': 'a billion customers', 'sql': 'SELECT count(*) FROM customers',
                                         'expect': {'value_at_least': 1000000000}}])
    assert result.rc != 0
    dummy, report = report_of(result)
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert steps['restore']['ok'] and steps['integrity']['ok'] and not steps['smoke']['ok']
    assert 'a billion customers: returned 800, expected at least 1000000000' in steps['smoke']['error']
    assert steps['cleanup']['ok'] and steps['cleanup']['result'] == 'removed'
    assert not shop['scratch'].exists()


def test_check_mode_writes_nothing(shop):
    backup(shop)
    result = drill(shop, check=True)
    assert result.rc == 0, result.stdout[-3000:]
    assert not shop['reports'].exists() and not shop['scratch'].exists()


def test_a_set_written_by_two_servers_is_drilled_only_for_the_chosen_one(shop):
    """A shared backup_dir: host B's newer backup of a file at the same path (here: 100 customers, which fails the
    smoke query) must not be what the drill restores of host A. Without a choice the drill fails at find_backup and
    names both servers; with dr_drill_origin it drills host A's own chain."""
    import socket
    mine = backup(shop)
    conn = sqlite3.connect(shop['db'])
    conn.execute('DELETE FROM orders')
    conn.execute('DELETE FROM customers WHERE id > 100')
    conn.commit()
    conn.close()
    time.sleep(0.01)
    others = backup(shop)
    manifest = Path(str(others) + '.manifest.json')
    data = json.loads(manifest.read_text())
    data['origin'] = 'db-b.example'
    manifest.write_text(json.dumps(data))
    refused = drill(shop)
    assert refused.rc != 0
    dummy, report = report_of(refused)
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert not steps['find_backup']['ok'] and 'restore' not in steps
    assert socket.gethostname() in steps['find_backup']['error'] and 'db-b.example' in steps['find_backup']['error']
    assert not shop['scratch'].exists()
    chosen = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_origin': socket.gethostname(),
        'dr_drill_databases': [{'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']),
                                'backup_dir': str(shop['backups']), 'scratch': str(shop['scratch']),
                                'smoke_queries': SMOKE}]})
    assert chosen.rc == 0, chosen.stdout[-4000:]
    dummy, report = report_of(chosen)
    assert report['databases'][0]['backup']['id'] == mine.name


def test_a_renamed_host_is_drilled_with_origin_newest(shop):
    """The host was renamed (old-host.example -> this machine's name): its older backups record the old origin. The
    drill failed at find_backup for ever after; ``origin: newest`` (per database, as ``dr_drill_origin``) drills the
    newest origin's backup and the report's restore warnings say when the identity changed."""
    import socket
    old = backup(shop)
    manifest = Path(str(old) + '.manifest.json')
    data = json.loads(manifest.read_text())
    data['origin'] = 'old-host.example'
    manifest.write_text(json.dumps(data))
    time.sleep(0.01)
    new = backup(shop)
    result = drill(shop, origin='newest')
    assert result.rc == 0, result.stdout[-4000:]
    dummy, report = report_of(result)
    db = report['databases'][0]
    assert db['backup']['id'] == new.name
    assert 'old-host.example' in result.stdout and socket.gethostname() in result.stdout


def test_the_rpo_is_measured_from_the_newest_data_in_the_restored_copy(shop):
    """The catalog said the copy reaches the backup's instant (seconds ago), but the newest order it holds was
    written 2 h before: a backup host's clock ahead, a manifest edited, a writer that stopped reaching this database.
    With freshness_query the RPO is measured from the data the copy holds, and the drill fails (without it, the
    drill PASSED with an RPO of a few seconds). What the query may answer: tests/unit/.../test_drill_honesty_round2."""
    two_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    conn = sqlite3.connect(shop['db'])
    conn.executescript('CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT);')
    conn.execute('INSERT INTO events (created_at) VALUES (?)', (two_hours_ago.strftime('%Y-%m-%d %H:%M:%S'),))
    conn.commit()
    conn.close()
    backup(shop)
    result = drill(shop, rpo_seconds=600, freshness_query='SELECT max(created_at) FROM events')
    assert result.rc != 0
    out, report = report_of(result)
    db = report['databases'][0]
    assert db['rpo_verdict'] == 'fail' and 7100 < db['rpo_seconds'] < 7300, db
    assert db['rpo_claimed_seconds'] < 60 and db['rpo_flag']
    assert db['recovered']['source'].startswith('freshness_query')
    assert any('RPO 2 h 0 min exceeds the objective 10 min 0 s' in r for r in report['reasons']), report['reasons']
    assert not shop['scratch'].exists()
