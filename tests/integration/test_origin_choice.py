"""Every restore of a catalog set can choose its origin: file_restore and redis_restore used to fail on a set two
hosts write into one shared directory (naming the origins and telling the user to "set origin", an option they did
not have), so such a file tree or Redis snapshot could not be restored at all short of deleting the other host's
backups by hand.

The second host is simulated as tests/integration/test_backup_origin.py does: its manifests (with real artifacts)
record another ``origin`` and are newer than this host's."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.redis import RedisServer

OTHER = 'host-b.example'


def as_other_host(manifest: dict, origin: str = OTHER) -> None:
    path = Path(manifest['path'] + '.manifest.json')
    data = json.loads(path.read_text())
    data['origin'] = origin
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')


def test_file_restore_chooses_the_origin_of_a_shared_set(tmp_path):
    source = tmp_path / 'app'
    source.mkdir()
    (source / 'app.conf').write_text('mine\n')
    dest = tmp_path / 'shared'

    def backup(name):
        return {'name': name, 'opsready.operations.file_backup': {
            'paths': [str(source)], 'dest': str(dest), 'name': 'conf'}}
    first = run_playbook(write_playbook(tmp_path, [backup('a')]))
    assert first.rc == 0, first.stdout[-3000:]
    mine = first.result('a')['manifest']
    (source / 'app.conf').write_text('theirs\n')
    second = run_playbook(write_playbook(tmp_path, [backup('b')]))
    assert second.rc == 0, second.stdout[-3000:]
    as_other_host(second.result('b')['manifest'])
    own = socket.gethostname()
    assert mine['origin'] == own

    def restore(name, root, **extra):
        return {'name': name, 'ignore_errors': True, 'opsready.operations.file_restore': dict(
            src=str(dest), name='conf', dest=str(tmp_path / root), **extra)}

    def drill(name, root, **extra):
        return {'name': name, 'ignore_errors': True, 'opsready.operations.drill_step': dict(
            step='fileset', backup_dir=str(dest), fileset='conf', scratch_root=str(tmp_path / root), **extra)}
    run = run_playbook(write_playbook(tmp_path, [
        restore('refused', 'r0'), restore('mine', 'r1', origin=own), restore('theirs', 'r2', origin=OTHER),
        restore('check', 'r3', origin='nobody.example'), restore('newest', 'r4', origin='newest'),
        drill('drill refused', 'd0'),
        drill('drill mine', 'd1', origin=own)]))
    refused = run.result('refused')
    assert refused['_event'] == 'runner_on_failed', refused
    assert own in refused['msg'] and OTHER in refused['msg'] and 'file_restore' in refused['msg']
    assert not (tmp_path / 'r0').exists() or not any((tmp_path / 'r0').rglob('app.conf'))
    assert run.result('mine')['_event'] == 'runner_on_ok', run.result('mine')
    assert (tmp_path / 'r1' / str(source).lstrip('/') / 'app.conf').read_text() == 'mine\n'
    assert run.result('theirs')['_event'] == 'runner_on_ok', run.result('theirs')
    assert (tmp_path / 'r2' / str(source).lstrip('/') / 'app.conf').read_text() == 'theirs\n'
    unknown = run.result('check')
    assert unknown['_event'] == 'runner_on_failed' and 'nobody.example' in unknown['msg'], unknown
    assert own in unknown['msg'], unknown['msg']   # says which origins the set has
    # declared a succession (a renamed host): the newest host's archive, with a warning naming the change
    newest = run.result('newest')
    assert newest['_event'] == 'runner_on_ok', newest
    assert (tmp_path / 'r4' / str(source).lstrip('/') / 'app.conf').read_text() == 'theirs\n'
    assert any(own in w and OTHER in w for w in newest.get('warnings', [])), newest.get('warnings')
    # the DR drill of the file set (dr_drill role, drill_step step=fileset) chooses the same way
    assert run.result('drill refused')['_event'] == 'runner_on_failed'
    assert OTHER in run.result('drill refused')['msg'], run.result('drill refused')['msg']
    drilled = run.result('drill mine')
    assert drilled['_event'] == 'runner_on_ok', drilled
    assert drilled['backup']['path'] == mine['path'], drilled['backup']


@pytest.fixture(scope='module')
def redis():
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_restore_chooses_the_origin_of_a_shared_set(redis, tmp_path):
    dest = tmp_path / 'shared'
    conn = {'host': redis.host, 'port': redis.port, 'password': redis.password}
    redis.cli('SET', 'who', 'mine')
    first = run_playbook(write_playbook(tmp_path, [{'name': 'a', 'opsready.operations.redis_backup': dict(
        conn, dest=str(dest), database='cache')}]))
    assert first.rc == 0, first.stdout[-3000:]
    mine = first.result('a')['manifest']
    redis.cli('SET', 'who', 'theirs')
    redis.cli('SET', 'extra', '1')
    second = run_playbook(write_playbook(tmp_path, [{'name': 'b', 'opsready.operations.redis_backup': dict(
        conn, dest=str(dest), database='cache')}]))
    assert second.rc == 0, second.stdout[-3000:]
    as_other_host(second.result('b')['manifest'])

    def drill(name, **extra):
        return {'name': name, 'ignore_errors': True, 'opsready.operations.redis_restore': dict(
            backup_dir=str(dest), database='cache', **extra)}
    run = run_playbook(write_playbook(tmp_path, [drill('refused'), drill('mine', origin=mine['origin']),
                                                 drill('theirs', origin=OTHER)]))
    refused = run.result('refused')
    assert refused['_event'] == 'runner_on_failed', refused
    assert mine['origin'] in refused['msg'] and OTHER in refused['msg'] and 'redis_restore' in refused['msg']
    chosen = run.result('mine')
    assert chosen['_event'] == 'runner_on_ok', chosen
    assert chosen['artifact'] == mine['path']
    theirs = run.result('theirs')
    assert theirs['_event'] == 'runner_on_ok', theirs
    assert theirs['artifact'] == second.result('b')['manifest']['path']
