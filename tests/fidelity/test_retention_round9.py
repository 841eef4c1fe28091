"""Retention fidelity, round 9: backup_copy's retention at the destination (push), where the set's manifests
regroup by origin when a push brings a new origin into it (``catalog.resolve_origins``; round 8 fixed check mode of
backup runs for the same regrouping, backup_copy was never checked).

The destination is a real S3 API (moto's server on loopback, tests/harness/s3.py). Guards: these passed on the code
of round 8 (push plans check mode on the destination's catalog as it would be after the upload, the manifests it
would send included); they pin that check mode foresees exactly the deletions the real run makes.

- A local manifest that cannot be read (truncated by a copy that ran out of space, edited by hand): push left its
  backup out and said nothing; the task reported its other uploads (the damaged full's own logs among them) and the
  operator believed the newest backup was offsite. It is now listed in ``broken_manifests`` with a warning, check
  mode alike.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.s3 import S3Server  # noqa: E402
from tests.integration.test_backup_copy import objects, synthetic_catalog  # noqa: E402

HOST_A, HOST_B = 'postgresql:7000000000000000001', 'postgresql:7000000000000000002'


@pytest.fixture(scope='module')
def s3():
    with S3Server() as server:
        yield server


def _origin(directory: Path, ids: list, origin) -> None:
    for name in ids:
        path = directory / (name + '.manifest.json')
        data = json.loads(path.read_text())
        data['origin'] = origin
        path.write_text(json.dumps(data))


@pytest.mark.parametrize('succession', [False, True])
@pytest.mark.parametrize('case', ['second-server', 'first-origin'])
def test_push_retention_check_mode_regroups_the_destination_as_the_run_does(tmp_path, s3, case, succession):
    """The destination holds copies pushed before origins were recorded (fulls 40 and 30 days old, each with two
    logs), and in ``second-server`` host B's copies (20 days); this host (A) then pushes its first copies with an
    origin (10 and 1 day). ``second-server``: two origins, the old copies a group of their own that keeps its newest
    full; ``first-origin``: they join A's group and age out under keep_last=1. Check mode deletes nothing and lists
    exactly what the real run then deletes; the newest full of A stays."""
    bucket = 'r9-%s-%s' % (case, 'succ' if succession else 'per')
    s3.client().create_bucket(Bucket=bucket)
    store = S3Store(bucket, 'pg', endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=s3.secret_key,
                    region=s3.region)
    old = synthetic_catalog(tmp_path / 'old', [40, 30])
    offsite.push(store, str(tmp_path / 'old'))
    other = []
    if case == 'second-server':
        other = synthetic_catalog(tmp_path / 'b', [20])
        _origin(tmp_path / 'b', other, HOST_B)
        offsite.push(store, str(tmp_path / 'b'))
    mine = synthetic_catalog(tmp_path / 'a', [10, 1])
    _origin(tmp_path / 'a', mine, HOST_A)
    policy = retention.Policy(keep_last=1, origin_succession=succession)
    before = set(objects(s3, bucket))
    checked = offsite.push(store, str(tmp_path / 'a'), policy=policy, check_mode=True)
    assert set(objects(s3, bucket)) == before, 'check mode changed the destination'
    done = offsite.push(store, str(tmp_path / 'a'), policy=retention.Policy(keep_last=1, origin_succession=succession))
    assert checked['deleted'] == done['deleted'], (checked['deleted'], done['deleted'])
    assert sorted(checked['uploaded']) == sorted(done['uploaded']) == sorted(mine)
    remaining = {key.split('/', 1)[1] for key in objects(s3, bucket)}
    assert mine[3] in remaining and mine[3] + '.manifest.json' in remaining   # A's newest full
    assert not set(done['deleted']) & remaining
    if case == 'first-origin':
        # the old copies joined A's group: their fulls age out under keep_last=1
        assert {old[0], old[3]} <= set(done['deleted']), done['deleted']
    elif not succession:
        assert old[3] in remaining and other[0] in remaining   # each origin group keeps its newest full


def test_push_says_which_local_backups_it_could_not_copy_for_a_damaged_manifest(tmp_path, s3):
    """Three fulls with their logs; the newest full's manifest is cut after 40 bytes. The push (check mode, then the
    real run, through ansible-playbook) warns naming that manifest and that its backup was not copied, and returns
    it in ``broken_manifests``; the intact backups are copied as before and the damaged one is not."""
    bucket = 'r9-broken-manifest'
    s3.client().create_bucket(Bucket=bucket)
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [20, 10, 1])
    damaged = local / (ids[6] + '.manifest.json')
    damaged.write_bytes(damaged.read_bytes()[:40])
    dest = s3.options(bucket, 'pg')
    push = {'name': 'push', 'opsready.operations.backup_copy': dict(dest, src=str(local), backend=dest.pop('type'))}
    for check in (True, False):
        run = run_playbook(write_playbook(tmp_path, [push]), check=check)
        assert run.rc == 0, run.stdout[-3000:]
        out = run.result('push')
        assert [b['manifest'] for b in out['broken_manifests']] == [str(damaged)], out
        warnings = ' '.join(out.get('warnings', []))
        assert str(damaged) in warnings and 'not copied' in warnings, out
        assert ids[6] not in out['uploaded'] and sorted(out['uploaded']) == sorted(ids[:6] + ids[7:]), out
    remaining = {key.split('/', 1)[1] for key in objects(s3, bucket)}
    assert ids[6] not in remaining and ids[6] + '.manifest.json' not in remaining
