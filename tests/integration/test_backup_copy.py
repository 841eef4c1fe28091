"""backup_copy end to end: a local S3-compatible server (moto server mode on loopback) and a second
directory over real SSH (sshd on 127.0.0.x): upload, interrupted upload, retention, restore from offsite."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.s3 import S3Server  # noqa: E402
from tests.harness.sshd import SshFleet  # noqa: E402

ROWS = 5000


@pytest.fixture(scope='module')
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture()
def bucket(s3, request):
    name = 'bk-' + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    s3.client().create_bucket(Bucket=name)
    return name


def objects(s3, bucket):
    pages = s3.client().get_paginator('list_objects_v2').paginate(Bucket=bucket)
    return {o['Key']: o for page in pages for o in page.get('Contents', [])}


def make_db(path: Path) -> None:
    conn = sqlite3.connect(str(path))
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)')
    conn.executemany('INSERT INTO orders (note) VALUES (?)', [('order %d %s' % (i, os.urandom(8).hex()),)
                                                              for i in range(ROWS)])
    conn.commit()
    conn.close()


def rows(path: Path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute('SELECT id, note FROM orders ORDER BY id').fetchall()
    finally:
        conn.close()


def test_s3_push_is_idempotent_and_a_restore_from_offsite_brings_every_row_back(tmp_path, s3, bucket):
    db = tmp_path / 'shop.db'
    make_db(db)
    expected = rows(db)
    local = tmp_path / 'backups'
    dest = s3.options(bucket, 'db01/sqlite')
    push = {'name': 'push', 'opsready.operations.backup_copy': dict(
        dest, src=str(local), backend=dest.pop('type'), storage_class='STANDARD_IA',
        server_side_encryption='AES256', part_size_mb=5)}
    book = write_playbook(tmp_path, [
        {'name': 'backup', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(db),
                                                             'dest': str(local)}},
        push])
    result = run_playbook(book, verbosity=3)
    assert result.rc == 0, result.stdout[-3000:]
    assert s3.secret_key not in result.stdout
    manifest = result.result('backup')['manifest']
    out = result.result('push')
    assert out['changed'] is True and out['uploaded'] == [manifest['id']]
    found = objects(s3, bucket)
    key = 'db01/sqlite/' + manifest['id']
    assert set(found) == {key, key + '.manifest.json'}
    head = s3.client().head_object(Bucket=bucket, Key=key)
    assert head['StorageClass'] == 'STANDARD_IA' and head['ServerSideEncryption'] == 'AES256'
    body = s3.client().get_object(Bucket=bucket, Key=key)['Body'].read()
    assert hashlib.sha256(body).hexdigest() == manifest['sha256']
    # a second run copies nothing and says so
    again = run_playbook(write_playbook(tmp_path, [push]))
    assert again.rc == 0 and again.result('push')['changed'] is False
    assert again.result('push')['already_present'] == 1
    # the host is lost: pull the offsite copy to a fresh directory and restore from it
    for path in local.iterdir():
        path.unlink()
    db.unlink()
    fetched = tmp_path / 'from-offsite'
    pull = dict(push['opsready.operations.backup_copy'], mode='pull', src=str(fetched), scope='latest_chain')
    for option in ('storage_class', 'server_side_encryption'):
        pull.pop(option)
    restored = tmp_path / 'restored' / 'shop.db'
    restored.parent.mkdir()
    book = write_playbook(tmp_path, [
        {'name': 'pull', 'opsready.operations.backup_copy': pull},
        {'name': 'restore', 'opsready.operations.db_restore': {'engine': 'sqlite', 'src': str(fetched),
                                                               'database': str(restored),
                                                               'source_database': str(db)}}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result('pull')['downloaded'] == [manifest['id']]
    assert rows(restored) == expected


def synthetic_catalog(directory: Path, days_ago, engine='postgresql', database='shop'):
    """Full backups at the given ages, each followed by two WAL-like logs; returns their ids in order.

    Each full after the first starts inside the previous full's last log (as a base backup taken while
    that WAL segment was current), so that log belongs to two chains.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ids = []
    position = 100
    for age in days_ago:
        when = now - datetime.timedelta(days=age)
        for kind, offset in (('full', 0), ('wal', 1), ('wal', 2)):
            at = when + datetime.timedelta(minutes=offset)
            path = str(directory / ('%s-%s-%s.bin.zst' % (database, kind, stamp(at))))
            with ArtifactWriter(path) as writer:
                writer.write(os.urandom(2000))
                stored = writer.commit()
            data = {'engine': engine, 'kind': kind, 'database': database, 'started': isoformat(at),
                    'finished': isoformat(at), 'size': stored['size'], 'sha256': stored['sha256'],
                    'compression': 'zstd', 'verification': {'ok': True, 'checks': {}, 'verified_at': isoformat(at)}}
            if kind == 'full':
                data['position'] = {'log_start': position if position == 100 else position - 1}
            else:
                data['position'] = {'start': position, 'end': position + 1}
                position += 1
            write_manifest(path, data)
            ids.append(os.path.basename(path))
    return ids


def test_s3_retention_at_destination_is_chain_safe(tmp_path, s3, bucket):
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [20, 10, 1])
    store = S3Store(bucket, 'pg', endpoint_url=s3.endpoint_url, access_key=s3.access_key,
                    secret_key=s3.secret_key, region=s3.region)
    first = offsite.push(store, str(local))
    assert sorted(first['uploaded']) == sorted(ids)
    from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
    planned = offsite.push(store, str(local), policy=retention.Policy(keep_last=2), check_mode=True)
    # the oldest full and its first log go; its last log stays: the next full replays from inside it
    assert planned['deleted'] == sorted(ids[0:2])
    assert len(objects(s3, bucket)) == 2 * len(ids), 'check mode deleted something'
    done = offsite.push(store, str(local), policy=retention.Policy(keep_last=2))
    assert done['deleted'] == sorted(ids[0:2])
    remaining = {k.split('/', 1)[1] for k in objects(s3, bucket)}
    for gone in ids[0:2]:
        assert gone not in remaining and gone + '.manifest.json' not in remaining
    for kept in ids[2:]:
        assert kept in remaining and kept + '.manifest.json' in remaining
    # the local catalog is untouched
    assert len(list(local.glob('*.manifest.json'))) == len(ids)


def test_s3_retention_follows_a_declared_origin_succession(tmp_path, s3, bucket):
    """After a pg_upgrade (a new system identifier) the destination holds two origins of the set. Per origin (the
    default) the old server's newest full and its logs stay forever; with origin_succession (as backup_prune) they
    are older backups of one timeline and age out like any."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [20, 10, 1])
    for name in ids:
        path = local / (name + '.manifest.json')
        data = json.loads(path.read_text())
        data['origin'] = 'pg:1111' if name in ids[:6] else 'pg:2222'   # the last full and its logs: the new cluster
        path.write_text(json.dumps(data))
    store = S3Store(bucket, 'pg', endpoint_url=s3.endpoint_url, access_key=s3.access_key,
                    secret_key=s3.secret_key, region=s3.region)
    offsite.push(store, str(local))
    per_origin = offsite.push(store, str(local), policy=retention.Policy(keep_last=1), check_mode=True)
    assert per_origin['deleted'] == sorted(ids[0:2])   # the old origin keeps its newest full
    done = offsite.push(store, str(local), policy=retention.Policy(keep_last=1, origin_succession=True))
    assert done['deleted'] == sorted(ids[0:6])
    remaining = {k.split('/', 1)[1] for k in objects(s3, bucket)}
    assert all(kept in remaining for kept in ids[6:]) and not any(gone in remaining for gone in ids[0:6])


def test_interrupted_upload_leaves_no_manifest_and_the_next_run_cleans_up(tmp_path, s3, bucket):
    local = tmp_path / 'backups'
    local.mkdir()
    path = str(local / ('big-full-%s.bin' % stamp(datetime.datetime.now(datetime.timezone.utc))))
    with ArtifactWriter(path, compression='none') as writer:
        for dummy in range(14):
            writer.write(os.urandom(1024 * 1024))
        stored = writer.commit()
    write_manifest(path, {'engine': 'files', 'kind': 'files', 'database': 'big', 'started': isoformat(
        datetime.datetime.now(datetime.timezone.utc)), 'finished': isoformat(datetime.datetime.now(
            datetime.timezone.utc)), 'size': stored['size'], 'sha256': stored['sha256'], 'compression': 'none'})
    store = S3Store(bucket, 'f', endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=s3.secret_key,
                    region=s3.region, part_size_mb=5, concurrency=1)
    # the connection drops in the third part
    with pytest.raises(OSError, match='simulated connection loss'):
        offsite.push(store, str(local), fail_after=11 * 1024 * 1024)
    assert objects(s3, bucket) == {}, 'neither the artifact nor its manifest may be visible'
    # a killed process leaves an open multipart upload and, after a crash between data and manifest, an orphan
    client = s3.client()
    name = os.path.basename(path)
    upload = client.create_multipart_upload(Bucket=bucket, Key='f/' + name)
    client.upload_part(Bucket=bucket, Key='f/' + name, UploadId=upload['UploadId'], PartNumber=1, Body=b'x' * 100)
    orphan = 'f/big-full-20200101T000000000000Z.bin'
    client.put_object(Bucket=bucket, Key=orphan, Body=b'half')
    result = offsite.push(store, str(local))
    assert result['aborted_uploads'] == ['f/' + name]
    assert result['leftovers_removed'] == [orphan[2:]]
    assert client.list_multipart_uploads(Bucket=bucket).get('Uploads', []) == []
    found = objects(s3, bucket)
    assert set(found) == {'f/' + name, 'f/' + name + '.manifest.json'}
    assert found['f/' + name]['Size'] == stored['size']


def test_corrupt_local_artifact_is_not_shipped(tmp_path, s3, bucket):
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [1])
    with open(local / ids[0], 'r+b') as handle:
        handle.seek(100)
        handle.write(b'\xff\xfe')
    store = S3Store(bucket, '', endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=s3.secret_key,
                    region=s3.region)
    with pytest.raises(OpsReadyError, match='does not match its manifest'):
        offsite.push(store, str(local))
    assert not any(k.endswith('.manifest.json') and ids[0] in k for k in objects(s3, bucket))
    assert ids[0] not in objects(s3, bucket)


def test_ssh_push_check_mode_retention_and_pull_back(tmp_path):
    src_tree = tmp_path / 'etc' / 'app'
    src_tree.mkdir(parents=True)
    (src_tree / 'app.conf').write_text('port = 1\n')
    (src_tree / 'data.bin').write_bytes(os.urandom(200_000))
    local = tmp_path / 'backups'
    remote = tmp_path / 'offsite-host-disk' / 'db01'
    with SshFleet(['offsite']) as fleet:
        host = fleet.hosts[0]
        ssh = {'backend': 'ssh', 'ssh_host': host.address, 'ssh_port': host.port, 'ssh_user': 'root',
               'ssh_key': str(fleet.client_key), 'ssh_known_hosts': str(fleet.known_hosts),
               'remote_path': str(remote), 'src': str(local)}
        backup = {'name': 'backup', 'opsready.operations.file_backup': {
            'paths': [str(src_tree)], 'dest': str(local), 'name': 'app', 'keep_days': 0}}
        check = run_playbook(write_playbook(tmp_path, [backup, {'name': 'copy', 'opsready.operations.backup_copy':
                                                                dict(ssh, keep_last=1)}]), check=True, diff=True)
        assert check.rc == 0, check.stdout[-3000:]
        assert not remote.exists(), 'check mode reached the remote host'
        book = write_playbook(tmp_path, [backup, {'name': 'copy', 'opsready.operations.backup_copy':
                                                  dict(ssh, keep_last=1)}])
        first = run_playbook(book)
        assert first.rc == 0, first.stdout[-3000:]
        first_id = Path(first.result('backup')['archive']).name
        assert first.result('copy')['uploaded'] == [first_id]
        assert hashlib.sha256((remote / first_id).read_bytes()).hexdigest() == \
            first.result('backup')['manifest']['sha256']
        assert json.loads((remote / (first_id + '.manifest.json')).read_text())['id'] == first_id
        (src_tree / 'app.conf').write_text('port = 2\n')
        second = run_playbook(book)
        assert second.rc == 0, second.stdout[-3000:]
        second_id = Path(second.result('backup')['archive']).name
        assert second.result('copy')['uploaded'] == [second_id]
        assert second.result('copy')['deleted'] == [first_id]
        assert sorted(p.name for p in remote.iterdir()) == [second_id, second_id + '.manifest.json']
        assert (local / first_id).exists(), 'destination retention must not touch the local catalog'
        fetched = tmp_path / 'fetched'
        target = tmp_path / 'restored'
        result = run_playbook(write_playbook(tmp_path, [
            {'name': 'pull', 'opsready.operations.backup_copy': dict(ssh, mode='pull', src=str(fetched))},
            {'name': 'restore', 'opsready.operations.file_restore': {'src': str(fetched), 'name': 'app',
                                                                     'dest': str(target)}}]))
        assert result.rc == 0, result.stdout[-3000:]
        restored = target / str(src_tree).lstrip('/')
        assert (restored / 'app.conf').read_text() == 'port = 2\n'
        assert (restored / 'data.bin').read_bytes() == (src_tree / 'data.bin').read_bytes()
