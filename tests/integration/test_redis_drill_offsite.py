"""A Redis DR drill from the offsite copy (``from_offsite: true``), as the databases' (test_dr_drill_offsite.py).

A real redis-server is backed up with redis_backup, the catalog pushed to a local S3-compatible server (moto's
server mode, tests/harness/s3.py) with backup_copy, the local catalog wiped (the disk is lost), and
playbooks/dr_drill.yml drills the Redis entry from the offsite copy: fetch, verify, restore on a scratch
redis-server, key count, expected keys, cleanup; the fetch counts in the RTO. An empty prefix fails at the fetch
and is still reported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.redis import RedisServer
from tests.harness.s3 import S3Server

KEYS = 2000


@pytest.fixture(scope='module')
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture(scope='module')
def redis():
    server = RedisServer().start()
    try:
        server.fill(KEYS)
        server.cli('SET', 'canary', 'alive')
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='module')
def site(tmp_path_factory, s3, redis, request):
    """One backup pushed offsite for the module's drills (they only read it)."""
    tmp_path = tmp_path_factory.mktemp('redis-offsite')
    bucket = 'redis-' + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    s3.client().create_bucket(Bucket=bucket)
    offsite = s3.options(bucket, 'cache01/redis')
    offsite['backend'] = offsite.pop('type')
    backups = tmp_path / 'backups'
    book = write_playbook(tmp_path, [
        {'name': 'backup', 'opsready.operations.redis_backup': {
            'host': redis.host, 'port': redis.port, 'password': redis.password, 'database': 'cache',
            'dest': str(backups)}},
        {'name': 'push', 'opsready.operations.backup_copy': dict(offsite, src=str(backups))}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    manifest = result.result('backup')['manifest']
    assert result.result('push')['uploaded'] == [manifest['id']]
    for path in backups.iterdir():   # the backup host's disk is lost: only the offsite copy is left
        path.unlink()
    return {'tmp': tmp_path, 'backups': backups, 'offsite': offsite, 'manifest': manifest}


def drill(site, redis, tmp_path, offsite_overrides=None):
    entry = {'name': 'sessions', 'engine': 'redis', 'database': 'cache', 'backup_dir': str(site['backups']),
             'from_offsite': True, 'expect_keys': ['canary'], 'login_host': redis.host, 'login_port': redis.port}
    if offsite_overrides:
        entry['offsite'] = offsite_overrides
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
        'dr_drill_offsite': site['offsite'], 'dr_drill_databases': [entry]})


def report_of(result):
    out = result.result('Write the drill report')
    return json.loads(Path(out['paths']['json']).read_text())['databases'][0]


def test_redis_drill_from_offsite_fetches_restores_and_counts_the_fetch_in_the_rto(site, redis, s3, tmp_path):
    result = drill(site, redis, tmp_path)
    assert result.rc == 0, result.stdout[-4000:]
    db = report_of(result)
    assert [s['name'] for s in db['steps']] == ['fetch_offsite', 'find_backup', 'verify', 'restore', 'integrity',
                                                'smoke', 'cleanup'], db['steps']
    assert all(s['ok'] for s in db['steps'])
    assert db['steps'][0]['result'].startswith('1 artifact(s) fetched from s3://')
    assert db['backup']['id'] == site['manifest']['id'] and db['backup']['offsite'].startswith('s3://')
    assert 'the snapshot held %d' % (KEYS + 1) in db['steps'][4]['result']
    fetch = db['steps'][0]['seconds']
    assert db['rto_verdict'] == 'pass' and db['rto_seconds'] >= fetch > 0
    # Nothing of the drill is left on the target, and the local catalog was never written.
    assert list((tmp_path / 'scratch').iterdir()) == []
    assert list(site['backups'].iterdir()) == []
    assert s3.secret_key not in result.stdout and s3.secret_key not in json.dumps(db)


def test_redis_drill_from_an_empty_offsite_prefix_fails_at_the_fetch_and_still_reports(site, redis, tmp_path):
    result = drill(site, redis, tmp_path, offsite_overrides={'prefix': 'cache01/nothing-here'})
    assert result.rc != 0
    db = report_of(result)
    assert db['passed'] is False
    failed = [s for s in db['steps'] if not s['ok']]
    assert [s['name'] for s in failed] == ['fetch_offsite'], db['steps']
    assert 'with a manifest at s3://' in failed[0]['error'] and 'cache01/nothing-here' in failed[0]['error']
    assert db['rto_verdict'] == 'not_measured'
    assert not (tmp_path / 'scratch').exists() or list((tmp_path / 'scratch').iterdir()) == []
