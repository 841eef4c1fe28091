"""Immutable offsite copies: S3 Object Lock on the S3 test server (moto server mode enforces retention
dates and legal holds on versioned deletes, as S3 does)."""

from __future__ import annotations

import datetime
import hashlib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from botocore.exceptions import ClientError  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.s3 import S3Server  # noqa: E402
from tests.integration.test_backup_copy import make_db, synthetic_catalog  # noqa: E402

LOCK_SECONDS = 3


@pytest.fixture(scope='module')
def s3():
    with S3Server() as server:
        yield server


def new_bucket(s3, request, locked: bool) -> str:
    name = 'lk-' + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    s3.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
    return name


def store(s3, bucket, **kwargs) -> S3Store:
    return S3Store(bucket, 'pg', endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=s3.secret_key,
                   region=s3.region, **kwargs)


def versions(s3, bucket):
    answer = s3.client().list_object_versions(Bucket=bucket)
    return answer.get('Versions', []) + answer.get('DeleteMarkers', [])


def test_object_lock_on_a_bucket_without_it_is_refused_before_any_upload(tmp_path, s3, request):
    bucket = new_bucket(s3, request, locked=False)
    synthetic_catalog(tmp_path / 'b', [1])
    with pytest.raises(OpsReadyError, match='has no Object Lock enabled.*nothing was uploaded'):
        offsite.push(store(s3, bucket, object_lock_mode='COMPLIANCE', lock_days=1), str(tmp_path / 'b'))
    assert versions(s3, bucket) == []


def test_locked_copies_survive_deletes_and_retention_until_their_date_then_go(tmp_path, s3, request):
    bucket = new_bucket(s3, request, locked=True)
    local = tmp_path / 'b'
    ids = synthetic_catalog(local, [20, 10, 1])
    locking = store(s3, bucket, object_lock_mode='COMPLIANCE', lock_days=LOCK_SECONDS / 86400)
    # Counted from each upload: at least LOCK_SECONDS after this instant (S3 keeps whole seconds). Comparing with
    # the time after the push failed on a loaded CI machine where the push itself took longer than the lock.
    pushed_from = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    first = offsite.push(locking, str(local))
    assert sorted(first['uploaded']) == sorted(ids)
    client = s3.client()
    for name in (ids[0], ids[0] + '.manifest.json'):
        head = client.head_object(Bucket=bucket, Key='pg/' + name)
        assert head['ObjectLockMode'] == 'COMPLIANCE'
        assert head['ObjectLockRetainUntilDate'] >= pushed_from + datetime.timedelta(seconds=LOCK_SECONDS - 1)
    # a stolen credential cannot remove the data: deleting the version is refused within the lock
    version = client.head_object(Bucket=bucket, Key='pg/' + ids[0])['VersionId']
    with pytest.raises(ClientError, match='AccessDenied'):
        client.delete_object(Bucket=bucket, Key='pg/' + ids[0], VersionId=version)
    # retention within the lock: nothing deleted, no failure, the locked copies reported with their date
    plain = store(s3, bucket)
    held = offsite.push(plain, str(local), policy=retention.Policy(keep_last=2))
    assert held['deleted'] == []
    assert [r['id'] for r in held['locked']] == sorted(ids[0:2])
    until = max(datetime.datetime.strptime(r['retain_until'], '%Y-%m-%dT%H:%M:%SZ').replace(
        tzinfo=datetime.timezone.utc) for r in held['locked'])
    assert all(r['mode'] == 'COMPLIANCE' and r['reason'] == 'locked' for r in held['locked'])
    current = {v['Key'] for v in versions(s3, bucket) if v.get('IsLatest') and 'Size' in v}
    assert current == {'pg/' + i for i in ids} | {'pg/' + i + '.manifest.json' for i in ids}, \
        'a locked artifact lost its manifest (or data)'
    # after the retain-until date the same retention deletes them, every version
    while datetime.datetime.now(datetime.timezone.utc) <= until:
        time.sleep(0.2)
    done = offsite.push(plain, str(local), policy=retention.Policy(keep_last=2))
    assert done['deleted'] == sorted(ids[0:2]) and done['locked'] == []
    left = {v['Key'] for v in versions(s3, bucket)}
    assert left == {'pg/' + i for i in ids[2:]} | {'pg/' + i + '.manifest.json' for i in ids[2:]}


def test_a_locked_leftover_of_an_interrupted_upload_is_reported_not_a_failure(tmp_path, s3, request):
    bucket = new_bucket(s3, request, locked=True)
    local = tmp_path / 'b'
    synthetic_catalog(local, [1])
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    orphan = 'pg/big-full-20200101T000000000000Z.bin'
    s3.client().put_object(Bucket=bucket, Key=orphan, Body=b'half', ObjectLockMode='GOVERNANCE',
                           ObjectLockRetainUntilDate=until)
    result = offsite.push(store(s3, bucket), str(local))
    assert result['leftovers_removed'] == []
    assert [(r['id'], r['mode']) for r in result['locked']] == [(orphan[3:], 'GOVERNANCE')]
    assert orphan in {v['Key'] for v in versions(s3, bucket)}


def test_module_object_lock_options_through_ansible(tmp_path, s3, request):
    bucket = new_bucket(s3, request, locked=True)
    db = tmp_path / 'shop.db'
    make_db(db)
    local = tmp_path / 'backups'
    dest = s3.options(bucket, 'db01')
    dest.pop('type')
    copy = dict(dest, src=str(local), backend='s3', object_lock_mode='GOVERNANCE', keep_days=2)
    book = write_playbook(tmp_path, [
        {'name': 'backup', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(db),
                                                             'dest': str(local)}},
        {'name': 'push', 'opsready.operations.backup_copy': copy},
        {'name': 'short', 'opsready.operations.backup_copy': dict(copy, lock_days=1), 'ignore_errors': True},
        {'name': 'azure', 'opsready.operations.backup_copy': {
            'src': str(local), 'backend': 'azure', 'container': 'c', 'account_name': 'a',
            'object_lock_mode': 'COMPLIANCE', 'lock_days': 3}, 'ignore_errors': True}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    out = result.result('push')
    artifact = result.result('backup')['manifest']['id']
    assert out['changed'] is True and out['uploaded'] == [artifact] and out['locked'] == []
    head = s3.client().head_object(Bucket=bucket, Key='db01/' + artifact)
    # lock_days defaults to keep_days, counted from the upload
    left = head['ObjectLockRetainUntilDate'] - datetime.datetime.now(datetime.timezone.utc)
    assert head['ObjectLockMode'] == 'GOVERNANCE' and datetime.timedelta(days=1.99) < left <= datetime.timedelta(days=2)
    assert 'shorter than keep_days' in result.result('short')['msg']
    assert 'no immutability support' in result.result('azure')['msg']
    # governance mode: only a principal allowed to bypass it can remove a version
    client = s3.client()
    with pytest.raises(ClientError, match='AccessDenied'):
        client.delete_object(Bucket=bucket, Key='db01/' + artifact, VersionId=head['VersionId'])
    client.delete_object(Bucket=bucket, Key='db01/' + artifact, VersionId=head['VersionId'],
                         BypassGovernanceRetention=True)
