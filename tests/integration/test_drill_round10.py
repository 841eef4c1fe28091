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


def _sqlite_app(tmp_path, where):
    db = tmp_path / where / 'app.db'
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript('CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT);'
                       "INSERT INTO customers (email) VALUES ('%s@example.com');" % where)
    conn.commit()
    conn.close()
    return db


def _backup(tmp_path, db, backups):
    book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(backups)}}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-2000:]
    return Path(result.result('backup')['manifest']['path'])


def _legacy(artifact: Path) -> Path:
    """The backup renamed as releases before 0.10 named it (``sqlite-app.db-full-...`` for every app.db)."""
    data = json.loads(Path(str(artifact) + '.manifest.json').read_text())
    name = artifact.name.replace('sqlite-app.db_', 'sqlite-app.db-', 1)
    name = name[:len('sqlite-app.db-')] + name[len('sqlite-app.db-') + 13:]
    Path(str(artifact) + '.manifest.json').unlink()
    artifact.rename(artifact.parent / name)
    data['id'] = data['artifact'] = name
    (artifact.parent / (name + '.manifest.json')).write_text(json.dumps(data, indent=2, sort_keys=True))
    return artifact.parent / name


def _drill_app(tmp_path, db, backups):
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
        'dr_drill_databases': [{'name': 'app_a', 'engine': 'sqlite', 'database': str(db), 'backup_dir': str(backups),
                                'scratch': str(tmp_path / 'scratch' / 'app-drill.sqlite'), 'rpo_seconds': 3600,
                                'smoke_queries': [{'name': 'rows', 'sql': 'SELECT count(*) FROM customers',
                                                   'expect': {'value_at_least': 1}}]}]})


@pytest.mark.parametrize('names', ['current', 'legacy', 'legacy_torn_late'])
def test_another_sqlite_sets_torn_manifest_does_not_fail_this_drill_and_is_reported(tmp_path, names):
    """Two SQLite databases named app.db in two directories back up into one backup directory; the newer backup of
    /b/app.db has a torn manifest. Their artifacts were both named sqlite-app.db-full-<stamp>, and the drill of
    /a/app.db failed, naming /b's torn backup as its own newest. Now the names differ (a hash of the path) and the
    drill of /a passes with a warning naming the other set's broken manifest. An old catalog (legacy names, as
    written before): a torn manifest whose text still says its database is attributed by it (``legacy_torn_late``);
    one torn before that, whose name both sets share, is reported as possibly either's and fails neither."""
    backups = tmp_path / 'backups'
    app_a, app_b = _sqlite_app(tmp_path, 'a'), _sqlite_app(tmp_path, 'b')
    ours = _backup(tmp_path, app_a, backups)
    theirs_old = _backup(tmp_path, app_b, backups)
    time.sleep(1.1)
    theirs = _backup(tmp_path, app_b, backups)
    assert ours.name.split('-full-')[0] != theirs.name.split('-full-')[0]   # injective names
    if names != 'current':
        ours, theirs_old, theirs = _legacy(ours), _legacy(theirs_old), _legacy(theirs)
        assert ours.name.split('-full-')[0] == theirs.name.split('-full-')[0] == 'sqlite-app.db'
    manifest = Path(str(theirs) + '.manifest.json')
    text = manifest.read_text()
    manifest.write_text(text[:text.index('"engine"')] if names == 'legacy_torn_late' else text[:40])
    result = _drill_app(tmp_path, app_a, backups)
    out, report = _report(result)
    db = report['databases'][0]
    assert db['backup']['id'] == ours.name, db['backup']
    assert result.rc == 0 and db['passed'], db['reasons']
    assert db['backup']['passed_over'] == []
    warned = [w for w in db['warnings'] if str(manifest) in w]
    assert len(warned) == 1, db['warnings']
    if names == 'legacy':
        assert 'shared by the sets' in warned[0] and str(app_b) in warned[0], warned
    else:
        assert 'another backup set' in warned[0], warned
