"""Round 10 of the DR drill audit (real ansible-playbook runs of playbooks/dr_drill.yml and the modules).

* A Redis drill took the newest *verified* snapshot: a newer snapshot never verified (redis_backup verify=false, a
  copy fetched before its verification) was passed over without a word, while the database and file-set drills
  restore the newest usable backup and verify it in the drill. A drill proves what a real recovery would take.
* Backups of distinct sets whose names collapsed to one file-name part (``app x`` and ``app_x``, SQLite ``/a/app.db``
  and ``/b/app.db``) had one set's torn manifest fail the other set's drill; another set's broken manifest in a
  shared directory was not reported at all.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.redis import RedisServer


def _report(result):
    out = result.result('Write the drill report')
    return out, json.loads(Path(out['paths']['json']).read_text())


@pytest.fixture(scope='module')
def redis():
    server = RedisServer().start()
    try:
        server.cli('SET', 'canary', 'alive')
        yield server
    finally:
        server.stop()


def test_a_redis_drill_restores_the_newest_snapshot_even_when_never_verified(tmp_path, redis):
    """A verified snapshot, then a newer one taken with verify=false (never verified). The drill restored the older,
    verified one and PASSED: the snapshot a recovery takes (the newest) was never proved. The drill now restores the
    newest, checks its SHA-256 in its verify step, and finds the key written in between."""
    backups = tmp_path / 'backups'

    def snapshot(verify):
        book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.redis_backup': {
            'host': redis.host, 'port': redis.port, 'password': redis.password, 'database': 'cache',
            'dest': str(backups), 'verify': verify}}])
        return Path(run_playbook(book).result('backup')['manifest']['path'])

    older = snapshot(True)
    time.sleep(1.1)
    redis.cli('SET', 'newer-key', 'present')
    newest = snapshot(False)
    assert json.loads(Path(str(newest) + '.manifest.json').read_text()).get('verification') in (None, {})
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
        'dr_drill_databases': [{'name': 'sessions', 'engine': 'redis', 'database': 'cache',
                                'backup_dir': str(backups), 'expect_keys': ['canary', 'newer-key'],
                                'login_host': redis.host, 'login_port': redis.port}]})
    out, report = _report(result)
    db = report['databases'][0]
    assert db['backup']['id'] == newest.name != older.name, db['backup']
    assert result.rc == 0 and db['passed'], db['reasons']
    verify = next(s for s in db['steps'] if s['name'] == 'verify')
    assert verify['ok'] and 'sha256' in verify['result'], verify
