"""redis_restore target=file treats an existing RDB as a database: it used to replace whatever file was at ``dest``
without a word (another server's data, or the snapshot a stopped server was about to load), to report ``changed``
on every run even when ``dest`` already held exactly that snapshot, and to write into the ``dir``/``dbfilename``
of a RUNNING redis-server, which overwrites it on its next save or shutdown: a restore that silently did nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.redis import RedisServer


@pytest.fixture(scope='module')
def redis():
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def restore(name, artifact, dest, **extra):
    return {'name': name, 'ignore_errors': True, 'opsready.operations.redis_restore': dict(
        path=artifact, target='file', dest=str(dest), **extra)}


def test_existing_dest_needs_replace_and_an_identical_one_is_unchanged(redis, tmp_path):
    redis.cli('SET', 'k', 'v1')
    backup = run_playbook(write_playbook(tmp_path, [{'name': 'b', 'opsready.operations.redis_backup': {
        'host': redis.host, 'port': redis.port, 'password': redis.password, 'dest': str(tmp_path / 'cat'),
        'database': 'cache'}}]))
    assert backup.rc == 0, backup.stdout[-3000:]
    artifact = backup.result('b')['manifest']['path']
    dest = tmp_path / 'restore.rdb'
    dest.write_bytes(b'REDIS0011 another server\'s snapshot')
    before = dest.read_bytes()
    run = run_playbook(write_playbook(tmp_path, [
        restore('check refused', artifact, dest) | {'check_mode': True},
        restore('refused', artifact, dest),
        restore('check replace', artifact, dest, replace=True) | {'check_mode': True},
        restore('replace', artifact, dest, replace=True),
        restore('again', artifact, dest, replace=True),
        restore('again without replace', artifact, dest),
        restore('check again', artifact, dest) | {'check_mode': True}]), diff=True)
    for name in ('check refused', 'refused'):
        refused = run.result(name)
        assert refused['_event'] == 'runner_on_failed', refused
        assert 'replace' in refused['msg'] and str(dest) in refused['msg'], refused['msg']
    assert run.result('check replace')['changed'] is True
    replaced = run.result('replace')
    assert replaced['_event'] == 'runner_on_ok' and replaced['changed'] is True, replaced
    assert dest.read_bytes()[:5] == b'REDIS' and dest.read_bytes() != before
    # the file now holds exactly the snapshot: nothing to do, with or without replace, in check mode too
    for name in ('again', 'again without replace', 'check again'):
        same = run.result(name)
        assert same['_event'] == 'runner_on_ok' and same['changed'] is False, (name, same)
    assert oct(os.stat(dest).st_mode & 0o777) == '0o600'


def test_never_writes_the_rdb_of_a_running_server(redis, tmp_path):
    """The harness server runs with ``dir`` its own directory and the default dbfilename (dump.rdb)."""
    redis.cli('SET', 'live', 'yes')
    backup = run_playbook(write_playbook(tmp_path, [{'name': 'b', 'opsready.operations.redis_backup': {
        'host': redis.host, 'port': redis.port, 'password': redis.password, 'dest': str(tmp_path / 'cat'),
        'database': 'live'}}]))
    assert backup.rc == 0, backup.stdout[-3000:]
    artifact = backup.result('b')['manifest']['path']
    live = Path(redis.dir) / 'dump.rdb'
    beside = Path(redis.dir) / 'restore.rdb'
    try:
        run = run_playbook(write_playbook(tmp_path, [
            restore('live', artifact, live, replace=True),
            restore('beside', artifact, beside,
                    server={'host': redis.host, 'port': redis.port, 'password': redis.password})]))
        refused = run.result('live')
        assert refused['_event'] == 'runner_on_failed', refused
        assert str(redis.proc.pid) in refused['msg'] and 'stop' in refused['msg'], refused['msg']
        assert not live.exists()
        # another name in the running server's directory is the documented first step (docs/redis.md), once the
        # server said (server: its connection) that it is not its dbfilename
        assert run.result('beside')['_event'] == 'runner_on_ok', run.result('beside')
        assert beside.read_bytes()[:5] == b'REDIS'
    finally:
        for path in (live, beside):
            if path.exists():
                path.unlink()
