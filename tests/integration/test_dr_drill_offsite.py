"""A DR drill from the offsite copy: the real test that the copy in object storage restores.

The host's backups go to a local S3-compatible server (moto's server mode on loopback, started by the
harness), the local catalog is then wiped (the disk is lost), and playbooks/dr_drill.yml drills the
database with ``from_offsite: true``: it fetches the newest chain, verifies, restores and queries it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.s3 import S3Server

ORDERS = 2500


@pytest.fixture(scope='module')
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture
def shop(tmp_path, s3, request):
    db = tmp_path / 'app' / 'shop.sqlite'
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL)')
    conn.executemany('INSERT INTO orders (status) VALUES (?)', [(('paid', 'open')[i % 2],) for i in range(ORDERS)])
    conn.commit()
    conn.close()
    bucket = 'drill-' + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    s3.client().create_bucket(Bucket=bucket)
    offsite = s3.options(bucket, 'db01/sqlite')
    offsite['backend'] = offsite.pop('type')
    return {'db': db, 'backups': tmp_path / 'backups', 'reports': tmp_path / 'reports', 'tmp': tmp_path,
            'scratch_dir': tmp_path / 'scratch', 'offsite': offsite}


def back_up_and_ship(shop):
    book = write_playbook(shop['tmp'], [
        {'name': 'backup', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(shop['db']), 'dest': str(shop['backups'])}},
        {'name': 'push', 'opsready.operations.backup_copy': dict(shop['offsite'], src=str(shop['backups']))}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result('push')['uploaded'] == [result.result('backup')['manifest']['id']]
    # the backup host's disk is lost: only the offsite copy is left
    for path in shop['backups'].iterdir():
        path.unlink()
    return result.result('backup')['manifest']


def drill(shop, offsite_overrides=None):
    database = {'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
                'from_offsite': True,
                'smoke_queries': [{'name': 'every order', 'sql': 'SELECT count(*) AS n FROM orders',
                                   'expect': {'value_at_least': ORDERS}}]}
    if offsite_overrides:
        database['offsite'] = offsite_overrides
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_scratch_dir': str(shop['scratch_dir']),
        'dr_drill_offsite': shop['offsite'], 'dr_drill_databases': [database]})


def report_of(result):
    out = result.result('Write the drill report')
    return json.loads(Path(out['paths']['json']).read_text())['databases'][0]


def test_drill_from_offsite_fetches_restores_and_counts_the_fetch_in_the_rto(shop, s3):
    manifest = back_up_and_ship(shop)
    assert list(shop['backups'].iterdir()) == []
    result = drill(shop)
    assert result.rc == 0, result.stdout[-4000:]
    db = report_of(result)
    steps = [s['name'] for s in db['steps']]
    assert steps == ['fetch_offsite', 'find_backup', 'restore', 'integrity', 'smoke', 'cleanup']
    assert all(s['ok'] for s in db['steps'])
    assert db['steps'][0]['result'].startswith('1 artifact(s) fetched from s3://')
    assert db['backup']['id'] == manifest['id'] and db['backup']['offsite'].startswith('s3://')
    fetch = db['steps'][0]['seconds']
    assert db['rto_verdict'] == 'pass' and db['rto_seconds'] >= fetch > 0
    assert db['steps'][4]['result'] == '1 smoke query passed'
    # nothing of the drill is left on the target: neither the fetched copy nor the scratch database
    assert list(shop['scratch_dir'].iterdir()) == []
    assert list(shop['backups'].iterdir()) == [], 'the drill wrote into the local catalog'
    assert s3.secret_key not in result.stdout
    assert s3.secret_key not in json.dumps(db)


def test_drill_from_an_empty_offsite_prefix_fails_at_the_fetch_and_still_reports(shop):
    back_up_and_ship(shop)
    result = drill(shop, offsite_overrides={'prefix': 'db01/nothing-here'})
    assert result.rc != 0
    db = report_of(result)
    assert db['passed'] is False
    failed = [s for s in db['steps'] if not s['ok']]
    assert [s['name'] for s in failed] == ['fetch_offsite'], db['steps']
    assert 'with a manifest at s3://' in failed[0]['error'] and 'db01/nothing-here' in failed[0]['error']
    assert db['rto_verdict'] == 'not_measured' and db['cleaned_up'] is True
    assert list(shop['scratch_dir'].iterdir()) == []
