"""Redis backups end to end through ansible-playbook: redis_backup (RDB over the replication protocol) while a
writer runs, the drill on a scratch redis-server (key count of the snapshot, expected keys, RTO/RPO verdicts),
backup_verify/backup_info on the Redis artifacts, an age-encrypted backup drilled with its identity, a file
restore; and a damaged artifact failing verification, by checksum and by redis-check-rdb (re-sealed damage).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path

import pytest
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import verify_one  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (  # noqa: E402
    manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import sha256_file  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

KEYS = 20000


class Writer(threading.Thread):
    """SETs w:N on its own connection until stopped (about 2,000/s: the data stays small); ``written`` counts
    acknowledged writes."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.written, self.stop = server, 0, threading.Event()

    def run(self):
        with socket.create_connection((self.server.host, self.server.port), timeout=10) as sock:
            handle = sock.makefile('rwb')
            handle.write(('AUTH %s\r\n' % self.server.password).encode())
            handle.flush()
            assert handle.readline() == b'+OK\r\n'
            while not self.stop.is_set():
                handle.write(b''.join(b'SET w:%d x\r\n' % (self.written + i) for i in range(50)))
                handle.flush()
                for _reply in range(50):
                    assert handle.readline() == b'+OK\r\n'
                self.written += 50
                self.stop.wait(0.02)


@pytest.fixture(scope='module')
def redis():
    server = RedisServer().start()
    try:
        server.fill(KEYS)
        server.cli('SET', 'canary', 'alive')
        yield server
    finally:
        server.stop()


def conn(server):
    return {'host': server.host, 'port': server.port, 'password': server.password}


def test_backup_during_writes_restores_snapshot_count(redis, tmp_path):
    dest = tmp_path / 'catalog'
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    writer = Writer(redis)
    writer.start()
    try:
        tasks = [
            {'name': 'check', 'check_mode': True, 'register': 'check',
             'opsready.operations.redis_backup': dict(conn(redis), dest=str(dest))},
            {'name': 'backup', 'register': 'backup',
             'opsready.operations.redis_backup': dict(conn(redis), dest=str(dest), database='cache')},
        ]
        first = run_playbook(write_playbook(tmp_path, tasks), diff=True)
    finally:
        writer.stop.set()
        writer.join(30)
    assert first.result('check')['changed'] is True and first.result('check')['manifests'] == []
    res = first.result('backup')
    assert res['_event'] == 'runner_on_ok' and res['changed'] is True, res
    manifest = res['manifest']
    snapshot = manifest['details']['keys']
    # The snapshot holds the fill, the canary and some of the writer's keys (taken while it wrote).
    assert writer.written > 0
    assert KEYS + 1 <= snapshot <= KEYS + 1 + writer.written, (snapshot, writer.written)
    assert manifest['engine'] == 'redis' and manifest['database'] == 'cache' and manifest['format'] == 'rdb'
    checked = res['verification'][0]
    assert checked['ok'] is True and checked['checks']['engine_check'] == 'redis-check-rdb'
    artifact = os.path.join(str(dest), manifest['artifact'])
    assert artifact.endswith('.rdb.zst') and sha256_file(artifact) == manifest['sha256']
    assert not [n for n in os.listdir(dest) if n.endswith('.partial')]
    assert redis.password not in first.stdout

    identity_file = tmp_path / 'key.txt'
    identity_file.write_text(secret + '\n')
    tasks = [
        {'name': 'drill', 'register': 'drill',
         'opsready.operations.redis_restore': {'backup_dir': str(dest), 'database': 'cache',
                                               'expect_keys': ['canary', 'k:0'], 'rto_seconds': 600}},
        {'name': 'drill missing key', 'register': 'missing', 'ignore_errors': True,
         'opsready.operations.redis_restore': {'path': artifact, 'expect_keys': ['no-such-key']}},
        {'name': 'verify', 'register': 'verify',
         'opsready.operations.backup_verify': {'path': str(dest), 'engine': 'redis'}},
        {'name': 'info', 'register': 'info',
         'opsready.operations.backup_info': {'path': str(dest), 'engine': 'redis', 'database': 'cache'}},
        {'name': 'encrypted', 'register': 'encrypted',
         'opsready.operations.redis_backup': dict(conn(redis), dest=str(dest), database='sealed', encrypt=True,
                                                  recipients=[recipient], compression='gzip')},
        {'name': 'drill encrypted', 'register': 'drill_encrypted',
         'opsready.operations.redis_restore': {'backup_dir': str(dest), 'database': 'sealed',
                                               'identity_file': str(identity_file)}},
        {'name': 'to file', 'register': 'to_file',
         'opsready.operations.redis_restore': {'path': artifact, 'target': 'file',
                                               'dest': str(tmp_path / 'dump.rdb')}},
    ]
    # root restores into a directory another account can write: a symlink planted at the partial name must not
    # make it write (or truncate) the file the link points to
    victim = tmp_path / 'precious'
    victim.write_text('precious\n')
    os.symlink(str(victim), str(tmp_path / 'dump.rdb.partial'))
    second = run_playbook(write_playbook(tmp_path, tasks))
    drill = second.result('drill')
    assert drill['_event'] == 'runner_on_ok', drill.get('msg')
    assert drill['keys'] == snapshot == drill['snapshot_keys']
    d = drill['drill']
    assert d['passed'] and d['rto_verdict'] == 'pass' and d['rpo_verdict'] == 'pass' and d['cleaned_up']
    assert [s['name'] for s in d['steps']] == ['find_backup', 'verify', 'restore', 'integrity', 'smoke', 'cleanup']
    missing = second.result('drill missing key')
    assert missing['_event'] == 'runner_on_failed' and 'no-such-key' in missing['msg']
    verify = second.result('verify')
    assert verify['_event'] == 'runner_on_ok' and all(v['ok'] for v in verify['results']), verify
    info = second.result('info')
    assert [a['id'] for a in info['artifacts']] == [manifest['artifact']]
    sealed = second.result('encrypted')['manifest']
    assert sealed['artifact'].endswith('.rdb.gz.age') and sealed['encryption']['recipients'] == [recipient]
    enc = second.result('drill encrypted')
    assert enc['_event'] == 'runner_on_ok' and enc['keys'] == enc['snapshot_keys'] == sealed['details']['keys']
    assert second.result('to file')['size'] > 0
    with open(tmp_path / 'dump.rdb', 'rb') as handle:
        assert handle.read(5) == b'REDIS'
    assert oct(os.stat(tmp_path / 'dump.rdb').st_mode & 0o777) == '0o600'
    assert victim.read_text() == 'precious\n' and not os.path.lexists(tmp_path / 'dump.rdb.partial')


def test_damaged_artifacts_fail_verification(redis, tmp_path):
    dest = tmp_path / 'catalog'
    run = run_playbook(write_playbook(tmp_path, [
        {'name': 'backup', 'register': 'backup',
         'opsready.operations.redis_backup': dict(conn(redis), dest=str(dest), verify=False)}]))
    manifest = run.result('backup')['manifest']
    artifact = os.path.join(str(dest), manifest['artifact'])
    raw = zstandard.ZstdDecompressor().stream_reader(open(artifact, 'rb')).read()

    # Damage inside the RDB, re-compressed and re-sealed in the manifest (sha256 and size match): only
    # redis-check-rdb can tell, and does.
    bad = bytearray(raw)
    bad[len(bad) // 2:len(bad) // 2 + 64] = b'\xff' * 64
    with open(artifact, 'wb') as handle:
        handle.write(zstandard.ZstdCompressor().compress(bytes(bad)))
    path = manifest_path_for(artifact)
    data = json.load(open(path))
    data.update(sha256=sha256_file(artifact), size=os.path.getsize(artifact))
    json.dump(data, open(path, 'w'))
    outcome = verify_one(read_manifest(path))
    assert outcome['ok'] is False and 'redis-check-rdb rejects' in outcome['error'], outcome
    assert read_manifest(path).verified is False
    # A damaged drill refuses too (the manifest is now marked failed; point at it by path).
    drill = run_playbook(write_playbook(tmp_path, [
        {'name': 'drill', 'ignore_errors': True, 'opsready.operations.redis_restore': {'path': artifact}}]))
    assert drill.result('drill')['_event'] == 'runner_on_failed'

    # A truncated RDB (the key count no longer matches either) with the manifest untouched: the checksum fails.
    with open(artifact, 'wb') as handle:
        handle.write(zstandard.ZstdCompressor().compress(raw[:len(raw) // 2]))
    outcome = verify_one(read_manifest(path))
    assert outcome['ok'] is False and 'truncated or was replaced' in outcome['error'], outcome


def test_dr_drill_role_drills_redis(redis, tmp_path):
    """The dr_drill role with a Redis entry: a fresh backup first, the drill on a scratch server, the report."""
    database = {'name': 'cache', 'engine': 'redis', 'database': 'cache', 'backup_dir': str(tmp_path / 'catalog'),
                'login_host': redis.host, 'login_port': redis.port, 'password_var': 'redis_password',
                'expect_keys': ['canary'], 'rpo_seconds': 600}
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_databases': [database],
        'dr_drill_backup_first': True, 'redis_password': redis.password})
    assert result.rc == 0, result.stdout[-4000:]
    report = json.loads(open(result.result('Write the drill report')['paths']['json']).read())
    db = report['databases'][0]
    assert report['verdict'] == 'PASSED' and db['engine'] == 'redis'
    assert [s['name'] for s in db['steps']] == ['find_backup', 'verify', 'restore', 'integrity', 'smoke', 'cleanup']
    assert db['rto_verdict'] == 'pass' and db['rpo_verdict'] == 'pass' and 0 <= db['rpo_seconds'] < 600
    assert db['steps'][3]['result'].startswith('restored ') and 'the snapshot held' in db['steps'][3]['result']
    assert db['backup']['id'].startswith('redis-cache-full-')
    assert redis.password not in result.stdout


def test_stream_check_counts_and_rejects_like_the_file_check(redis, tmp_path):
    """The check fed while the backup streams (redis-check-rdb on a pipe) agrees with redis-check-rdb on the
    file: same counts for a good RDB; a damaged or truncated RDB is rejected, fed in the backup's 1 MiB pieces."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
    from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.backup import StreamCheck, check_rdb

    redis.cli('SAVE')
    rdb = open(os.path.join(redis.dir, 'dump.rdb'), 'rb').read()

    def streamed(data):
        check = StreamCheck(ToolRunner(), 'the test RDB')
        for start in range(0, len(data), 1 << 20):
            check.feed(data[start:start + (1 << 20)])
        return check.result()

    good = tmp_path / 'good.rdb'
    good.write_bytes(rdb)
    held = streamed(rdb)
    assert held == check_rdb(ToolRunner(), str(good)) and held['keys'] >= KEYS
    damaged = bytearray(rdb)
    damaged[len(rdb) // 2:len(rdb) // 2 + 64] = b'\xff' * 64
    for bad in (bytes(damaged), rdb[:len(rdb) // 2], b''):
        with pytest.raises(IntegrityError, match='redis-check-rdb rejects the test RDB'):
            streamed(bad)


def test_retention_applied_after_a_backup(redis, tmp_path):
    """Guard (passes on the old code too): redis_backup now imports retention only when ``retention`` is set (its
    option spec comes from retention_spec); a policy still prunes after the new backup, in check mode too (nothing
    deleted there)."""
    dest = tmp_path / 'catalog'
    policy = {'keep_last': 1}
    tasks = [
        {'name': 'first', 'register': 'first',
         'opsready.operations.redis_backup': dict(conn(redis), dest=str(dest), database='kept', retention=policy)},
        {'name': 'checked', 'register': 'checked', 'check_mode': True,
         'opsready.operations.redis_backup': dict(conn(redis), dest=str(dest), database='kept', retention=policy)},
        {'name': 'second', 'register': 'second',
         'opsready.operations.redis_backup': dict(conn(redis), dest=str(dest), database='kept', retention=policy)},
    ]
    run = run_playbook(write_playbook(tmp_path, tasks))
    first, second = run.result('first'), run.result('second')
    assert first['_event'] == 'runner_on_ok' and first['deleted'] == [], first
    assert run.result('checked')['_event'] == 'runner_on_ok'
    old = os.path.join(str(dest), first['manifest']['artifact'])
    assert second['_event'] == 'runner_on_ok' and second['deleted'] == [old], second
    assert second['deleted_count'] == 1 and second['lists_truncated'] is False and 'lists_note' not in second
    manifests = sorted(n for n in os.listdir(dest) if n.endswith('.manifest.json'))
    assert manifests == [second['manifest']['artifact'] + '.manifest.json'], manifests
