"""backup_copy to Azure Blob Storage (Azurite) and Google Cloud Storage (gcp-storage-emulator), both started on
127.0.0.1 by tests/harness/cloud.py: the same contract as S3 and SSH. Push, idempotence, pull and restore, a DR
drill from the copy, chain-safe retention at the destination, an interrupted upload that leaves no manifest,
a copy damaged at the destination caught on the way back, and credentials kept out of the output."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.azure import AzureBlobStore  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.gcs import GcsStore  # noqa: E402
from tests.harness.cloud import Azurite, GcsEmulator  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.integration.test_backup_copy import make_db, rows, synthetic_catalog  # noqa: E402


class Cloud:
    """One emulator, seen as backup_copy options and as a store for direct checks."""

    def __init__(self, kind: str, server) -> None:
        self.kind = kind
        self.server = server
        self.secret = server.account_key if kind == 'azure' else None

    def options(self, space: str, prefix: str) -> dict:
        if self.kind == 'azure':
            self.server.create_container(space)
            return {'backend': 'azure', 'container': space, 'prefix': prefix, 'account_url': self.server.account_url,
                    'account_key': self.server.account_key}
        self.server_bucket(space)
        return {'backend': 'gcs', 'bucket': space, 'prefix': prefix, 'endpoint_url': self.server.endpoint}

    def server_bucket(self, name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        client = storage.Client(project='opsready', credentials=AnonymousCredentials(),
                                client_options={'api_endpoint': self.server.endpoint})
        client.create_bucket(name)

    def store(self, options: dict, **extra):
        if self.kind == 'azure':
            return AzureBlobStore(options['container'], options['prefix'], account_url=options['account_url'],
                                  account_key=options['account_key'], **extra)
        return GcsStore(options['bucket'], options['prefix'], endpoint_url=options['endpoint_url'], **extra)


@pytest.fixture(scope='module', params=['azure', 'gcs'])
def cloud(request):
    server = Azurite() if request.param == 'azure' else GcsEmulator(bucket='unused-default')
    with server:
        yield Cloud(request.param, server)


def space_name(request) -> str:
    return 'c' + hashlib.sha1(request.node.name.encode()).hexdigest()[:14]


def test_push_pull_restore_and_drill_from_the_copy(tmp_path, cloud, request):
    db = tmp_path / 'shop.db'
    make_db(db)
    expected = rows(db)
    local = tmp_path / 'backups'
    dest = cloud.options(space_name(request), 'db01/sqlite')
    push = {'name': 'push', 'opsready.operations.backup_copy': dict(dest, src=str(local), part_size_mb=5)}
    result = run_playbook(write_playbook(tmp_path, [
        {'name': 'backup', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(db),
                                                             'dest': str(local)}},
        push]), verbosity=3)
    assert result.rc == 0, result.stdout[-3000:]
    if cloud.secret:
        assert cloud.secret not in result.stdout
    manifest = result.result('backup')['manifest']
    out = result.result('push')
    assert out['changed'] is True and out['uploaded'] == [manifest['id']]
    store = cloud.store(dest)
    assert set(store.list_files()) == {manifest['id'], manifest['id'] + '.manifest.json'}
    assert store.sha256(manifest['id']) == manifest['sha256']
    again = run_playbook(write_playbook(tmp_path, [push]))
    assert again.rc == 0 and again.result('push')['changed'] is False and again.result('push')['already_present'] == 1

    # the disk is lost: a DR drill from the copy restores and counts every row
    for path in local.iterdir():
        path.unlink()
    db_copy = tmp_path / 'gone.db'
    db.rename(db_copy)
    drill = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
        'dr_drill_offsite': dest,
        'dr_drill_databases': [{'name': 'shop', 'engine': 'sqlite', 'database': str(db), 'backup_dir': str(local),
                                'from_offsite': True,
                                'smoke_queries': [{'name': 'rows', 'sql': 'SELECT count(*) AS n FROM orders',
                                                   'expect': {'value_at_least': len(expected)}}]}]})
    assert drill.rc == 0, drill.stdout[-4000:]
    report = json.loads(Path(drill.result('Write the drill report')['paths']['json']).read_text())['databases'][0]
    assert report['passed'] is True
    assert any(step['name'] == 'fetch_offsite' for step in report['steps'])
    if cloud.secret:
        assert cloud.secret not in drill.stdout

    # and a plain pull + restore brings every row back
    fetched = tmp_path / 'from-offsite'
    restored = tmp_path / 'restored' / 'shop.db'
    restored.parent.mkdir()
    pull = dict(push['opsready.operations.backup_copy'], mode='pull', src=str(fetched), scope='latest_chain')
    result = run_playbook(write_playbook(tmp_path, [
        {'name': 'pull', 'opsready.operations.backup_copy': pull},
        {'name': 'restore', 'opsready.operations.db_restore': {'engine': 'sqlite', 'src': str(fetched),
                                                               'database': str(restored),
                                                               'source_database': str(db)}}]))
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result('pull')['downloaded'] == [manifest['id']]
    assert rows(restored) == expected


def test_retention_at_the_destination_is_chain_safe(tmp_path, cloud, request):
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [20, 10, 1])
    store = cloud.store(cloud.options(space_name(request), 'pg'))
    assert sorted(offsite.push(store, str(local))['uploaded']) == sorted(ids)
    planned = offsite.push(store, str(local), policy=retention.Policy(keep_last=2), check_mode=True)
    # the oldest full and its first log go; its last log stays (the next full replays from inside it)
    assert planned['deleted'] == sorted(ids[0:2])
    assert len(store.list_files()) == 2 * len(ids), 'check mode deleted something'
    assert offsite.push(store, str(local), policy=retention.Policy(keep_last=2))['deleted'] == sorted(ids[0:2])
    remaining = set(store.list_files())
    for gone in ids[0:2]:
        assert gone not in remaining and gone + '.manifest.json' not in remaining
    for kept in ids[2:]:
        assert kept in remaining and kept + '.manifest.json' in remaining


def test_interrupted_upload_leaves_no_manifest_and_the_next_run_cleans_up(tmp_path, cloud, request):
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [2])
    big = local / ids[0]
    # make the full artifact big enough for several blocks / chunks, and keep its manifest true
    with open(big, 'ab') as handle:
        handle.write(os.urandom(12 * 1024 * 1024))
    manifest_path = Path(str(big) + '.manifest.json')
    data = json.loads(manifest_path.read_text())
    data.update(size=big.stat().st_size, sha256=hashlib.sha256(big.read_bytes()).hexdigest())
    manifest_path.write_text(json.dumps(data))
    store = cloud.store(cloud.options(space_name(request), 'f'), part_size_mb=5)
    with pytest.raises(OSError, match='simulated connection loss'):
        offsite.push(store, str(local), fail_after=7 * 1024 * 1024)
    assert not any(name.endswith('.manifest.json') for name in store.list_files()), 'no manifest may be visible'
    # a crash between data and manifest leaves an orphan: the next run removes it, then ships everything
    store.put_bytes('shop-full-20200101T000000000000Z.bin.zst', b'half')
    result = offsite.push(store, str(local))
    assert 'shop-full-20200101T000000000000Z.bin.zst' in result['leftovers_removed']
    assert sorted(result['uploaded']) == sorted(ids)
    assert store.list_files()[ids[0]] == big.stat().st_size
    assert store.sha256(ids[0]) == data['sha256']


def test_a_copy_damaged_at_the_destination_is_refused_on_the_way_back(tmp_path, cloud, request):
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [1])
    store = cloud.store(cloud.options(space_name(request), 'x'))
    offsite.push(store, str(local))
    store.put_bytes(ids[0], b'\x00' * 2000)      # bit rot, or someone overwrote it
    fetched = tmp_path / 'fetched'
    with pytest.raises(OpsReadyError, match='checksum|does not match'):
        offsite.pull(store, str(fetched))
    assert not (fetched / (ids[0] + '.manifest.json')).exists()
    assert not (fetched / ids[0]).exists()


def test_bad_credentials_fail_with_what_to_fix(tmp_path, cloud, request):
    if cloud.kind != 'azure':
        pytest.skip('the GCS emulator accepts any token: credentials cannot be refused there')
    dest = cloud.options(space_name(request), 'p')
    dest['account_key'] = 'AAAA' + dest['account_key'][4:]
    ids = synthetic_catalog(tmp_path / 'backups', [1])
    result = run_playbook(write_playbook(tmp_path, [
        {'name': 'push', 'opsready.operations.backup_copy': dict(dest, src=str(tmp_path / 'backups'))}]))
    assert result.failed
    msg = result.result('push')['msg']
    # Azure answers AuthenticationFailed to a wrong key, Azurite AuthorizationFailure: both name what to fix
    assert ('AuthenticationFailed' in msg or 'AuthorizationFailure' in msg) and 'account_key' in msg
    assert dest['account_key'] not in result.stdout and ids
