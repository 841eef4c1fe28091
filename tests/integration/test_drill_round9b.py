"""Round 9b of the DR drill audit (SQLite, the embedded default; real ansible-playbook runs of playbooks/dr_drill.yml).

* Redis and file-set drills restored an older backup when the newest failed verification or had a torn manifest,
  and PASSED naming only the older one (the database drills' rule, round 9, was not applied to them).
* The check for newer backups the catalog passed over saw only backup_info's listing (the newest 100 artifacts and
  the chain): a failed backup older than the newest 100 was left out of the report. The drill now passes every
  failed id of the set; the summaries it lacks are judged by the names' stamps.
The passed_over logic: tests/unit/plugins/module_utils/drill/test_drill_passed_over_round9b.py."""

from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path

import pytest

from tests.integration import test_drill_round9 as round9
from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.redis import RedisServer

STAMP = '%Y%m%dT%H%M%S%fZ'
shop = round9.shop   # the SQLite fixture of round 9, reused
add_rows, backup, drill, report_of = round9.add_rows, round9.backup, round9.drill, round9.report_of


def _clone(artifact: Path, seconds: int) -> Path:
    """A copy of a backup (artifact + manifest) ``seconds`` later, as the next run of the same failing job left it."""
    manifest = json.loads(Path(str(artifact) + '.manifest.json').read_text())
    stamp = artifact.name.split('-')[-1].split('.')[0]
    moment = datetime.datetime.strptime(stamp, STAMP) + datetime.timedelta(seconds=seconds)
    name = artifact.name.replace(stamp, moment.strftime(STAMP))
    shutil.copyfile(artifact, artifact.parent / name)
    manifest['artifact'] = manifest['id'] = name
    for key in ('started', 'finished', 'consistent_at', 'covers_from'):
        if manifest.get(key):
            value = datetime.datetime.fromisoformat(manifest[key].replace('Z', '+00:00'))
            manifest[key] = (value + datetime.timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    (artifact.parent / (name + '.manifest.json')).write_text(json.dumps(manifest))
    return artifact.parent / name


def test_a_failed_backup_older_than_the_newest_100_is_still_named(shop):  # pylint: disable=redefined-outer-name
    """An older full restores; the next full failed verification, and so did the 100 runs after it (a job writing a
    corrupt copy every hour for four days). The drill failed, but its report named only the newest 100 failed
    backups: the first failed one - where the loss begins - was missing (backup_info listed the newest 100)."""
    older = backup(shop)
    time.sleep(1.1)
    add_rows(shop, 5)
    first_failed = backup(shop)
    data = first_failed.read_bytes()
    first_failed.write_bytes(data[:100] + bytes([data[100] ^ 0xff]) + data[101:])
    book = write_playbook(shop['tmp'], [{'name': 'verify', 'ignore_errors': True,
                                         'opsready.operations.backup_verify': {'path': str(shop['backups'])}}])
    run_playbook(book)
    assert json.loads(Path(str(first_failed) + '.manifest.json').read_text())['verification']['ok'] is False
    later = [_clone(first_failed, 3600 * i).name for i in range(1, 101)]
    result = drill(shop)
    out, report = report_of(result)
    db = report['databases'][0]
    assert db['backup']['id'] == older.name, db
    assert result.rc != 0 and not db['passed'], out
    named = [p['id'] for p in db['backup']['passed_over']]
    assert named[0] == later[-1] and first_failed.name in named and len(named) == 101, named[-3:]


def _damage(tmp: Path, backups: Path, newest: Path, damage: str) -> None:
    """The newest backup damaged: its artifact corrupt and backup_verify recorded the failure, or its manifest torn."""
    manifest = Path(str(newest) + '.manifest.json')
    if damage == 'failed_verification':
        data = newest.read_bytes()
        newest.write_bytes(data[:60] + bytes([data[60] ^ 0xff]) + data[61:])
        book = write_playbook(tmp, [{'name': 'verify', 'ignore_errors': True,
                                     'opsready.operations.backup_verify': {'path': str(backups)}}])
        run_playbook(book)
        assert json.loads(manifest.read_text())['verification']['ok'] is False
    else:
        manifest.write_text(manifest.read_text()[:40])


def _assert_named(result, name: str, older: Path, newest: Path, damage: str) -> None:
    out, report = report_of(result)
    db = next(d for d in report['databases'] if d['name'] == name)
    assert db['backup']['id'] == older.name, db['backup']
    assert result.rc != 0 and not db['passed'] and out['verdict_line'].startswith('DR drill FAILED'), out
    reason = next(r for r in db['reasons'] if 'the newest backup' in r)
    assert newest.name in reason and 'cannot be restored' in reason, reason
    assert ('verification failed' if damage == 'failed_verification' else 'manifest cannot be read') in reason
    assert [p['id'] for p in db['backup']['passed_over']] == [newest.name]


@pytest.mark.parametrize('damage', ['failed_verification', 'torn_manifest'])
def test_a_damaged_newest_file_set_archive_fails_the_drill(tmp_path, damage):
    """Two archives of a file set; the newest damaged. The drill restored the older one and PASSED (naming it only):
    a real restore from that directory loses every change since."""
    tree = tmp_path / 'etc' / 'app'
    tree.mkdir(parents=True)
    (tree / 'app.conf').write_text('mode = 1\n')
    backups = tmp_path / 'backups'
    book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.file_backup': {
        'paths': [str(tree)], 'dest': str(backups), 'name': 'appconf'}}])
    assert run_playbook(book).rc == 0
    older = next(p for p in backups.glob('appconf-*') if not p.name.endswith('.manifest.json'))
    time.sleep(1.1)
    (tree / 'app.conf').write_text('mode = 2\n')
    assert run_playbook(book).rc == 0
    newest = next(p for p in backups.glob('appconf-*') if not p.name.endswith('.manifest.json') and p != older)
    _damage(tmp_path, backups, newest, damage)
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
        'dr_drill_databases': [], 'dr_drill_filesets': [{'name': 'appconf', 'backup_dir': str(backups)}]})
    _assert_named(result, 'appconf', older, newest, damage)


@pytest.fixture(scope='module')
def redis():
    server = RedisServer().start()
    try:
        server.cli('SET', 'canary', 'alive')
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize('damage', ['failed_verification', 'torn_manifest'])
def test_a_damaged_newest_redis_backup_fails_the_drill(tmp_path, redis, damage):
    """Two verified Redis snapshots; the newest damaged. The drill restored the older one and PASSED."""
    backups = tmp_path / 'backups'
    book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.redis_backup': {
        'host': redis.host, 'port': redis.port, 'password': redis.password, 'database': 'cache',
        'dest': str(backups)}}])
    older = Path(run_playbook(book).result('backup')['manifest']['path'])
    time.sleep(1.1)
    redis.cli('SET', 'canary2', 'alive')
    newest = Path(run_playbook(book).result('backup')['manifest']['path'])
    assert older != newest
    _damage(tmp_path, backups, newest, damage)
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
        'dr_drill_databases': [{'name': 'sessions', 'engine': 'redis', 'database': 'cache',
                                'backup_dir': str(backups), 'expect_keys': ['canary'],
                                'login_host': redis.host, 'login_port': redis.port}]})
    _assert_named(result, 'sessions', older, newest, damage)
