"""Round 10: retention at a shared offsite destination applies to this host's backups only.

``backup_copy`` push with retention and no engine/database planned every set under the prefix: another host pushing
to the same bucket and prefix had its backups deleted by this host's keep rules (grouped by origin, so its newest
good backup stayed, but not the older ones its own rules keep). Now retention at the destination only touches the
sets and origins the pushed catalog (``src``) holds; the others are listed in ``not_retained``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store  # noqa: E402
from tests.integration.test_backup_copy import objects, synthetic_catalog  # noqa: E402
from tests.harness.s3 import S3Server  # noqa: E402


@pytest.fixture(scope='module')
def s3():
    with S3Server() as server:
        yield server


def _host(directory: Path, origin: str, database: str, days):
    ids = synthetic_catalog(directory, days, database=database)
    for name in ids:
        path = directory / (name + '.manifest.json')
        data = json.loads(path.read_text())
        data['origin'] = origin
        path.write_text(json.dumps(data))
    return ids


def test_push_retention_never_touches_another_hosts_backups(tmp_path, s3):  # pylint: disable=redefined-outer-name
    bucket = 'r10-shared'
    s3.client().create_bucket(Bucket=bucket)
    mine = _host(tmp_path / 'a', 'host-a', 'shop', [20, 10, 1])
    theirs = _host(tmp_path / 'b', 'host-b', 'shop', [21, 11, 2]) + _host(tmp_path / 'b', 'host-b', 'billing', [19, 9])
    store = S3Store(bucket, 'shared', endpoint_url=s3.endpoint_url, access_key=s3.access_key,
                    secret_key=s3.secret_key, region=s3.region)
    offsite.push(store, str(tmp_path / 'a'))
    offsite.push(store, str(tmp_path / 'b'))
    for check_mode in (True, False):
        done = offsite.push(store, str(tmp_path / 'a'), policy=retention.Policy(keep_last=1), check_mode=check_mode)
        assert done['deleted'] and set(done['deleted']) <= set(mine), done['deleted']
        assert {(s['engine'], s['database'], s['origin']) for s in done['not_retained']} == {
            ('postgresql', 'shop', 'host-b'), ('postgresql', 'billing', 'host-b')}, done['not_retained']
    remaining = {k.split('/', 1)[1] for k in objects(s3, bucket)}
    assert all(name in remaining and name + '.manifest.json' in remaining for name in theirs)
    assert not any(name in remaining for name in done['deleted'])
    assert mine[-3] in remaining   # this host's newest full stays
