"""Round 9 of the DR drill audit. The newer backups of a drilled set the catalog passed over (verification failed,
manifest unreadable) fail the drill that restored an older chain; what is not this set's, older than the chain, or a
drill of a chosen instant does not. A freshness answer without a zone is read in the zone the operator gives, DST
applied. The playbook runs: tests/integration/test_drill_round9.py."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import measure
from ansible_collections.opsready.operations.plugins.module_utils.drill.passed_over import passed_over
from ansible_collections.opsready.operations.plugins.module_utils.drill.steps import newest_point

START = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
STEPS = [{'name': 'restore', 'started': '2026-11-29T12:00:01Z', 'finished': '2026-11-29T12:00:05Z', 'ok': True},
         {'name': 'integrity', 'started': '2026-11-29T12:00:05Z', 'finished': '2026-11-29T12:00:06Z', 'ok': True},
         {'name': 'smoke', 'started': '2026-11-29T12:00:06Z', 'finished': '2026-11-29T12:00:07Z', 'ok': True}]
OLDER = 'postgresql-shop-dump-20261129T110000000000Z.dump.zst'
NEWER = 'postgresql-shop-dump-20261129T115000000000Z.dump.zst'
FAILED = {'id': NEWER, 'consistent_at': '2026-11-29T11:50:00.5Z',
          'verification': {'ok': False, 'checks': {'error': 'fails its checksum'}}}


def backup(**extra):
    entry = {'id': OLDER, 'chain': [OLDER], 'recoverable_until': '2026-11-29T11:00:00Z', 'failed_verification': [],
             'broken_manifests': []}
    entry.update(extra)
    return entry


def broken(name):
    return {'manifest': '/b/%s.manifest.json' % name, 'error': 'Cannot read manifest: Unterminated string'}


def judged(**extra):
    return measure({'name': 'shop', 'engine': 'postgresql', 'steps': STEPS, 'backup': backup(**extra),
                    'objectives': {'rpo_seconds': 7200, 'rto_seconds': 60}}, START)


def test_a_newer_failed_backup_fails_the_drill_and_is_named():
    out = judged(failed_verification=[FAILED])
    assert out['rpo_verdict'] == 'pass' and out['rpo_seconds'] == 3600.0   # measured from what was restored
    assert not out['passed'] and [p['id'] for p in out['backup']['passed_over']] == [NEWER]
    reason = out['reasons'][0]
    assert NEWER in reason and 'fails its checksum' in reason and '50 min 0 s further' in reason, reason
    assert 'failed_verification' not in out['backup'] and 'broken_manifests' not in out['backup']


def test_a_newer_unreadable_manifest_of_the_set_fails_the_drill():
    out = judged(broken_manifests=[broken(NEWER)])
    assert not out['passed'] and 'manifest cannot be read' in out['reasons'][0]


def test_what_is_not_a_newer_backup_of_this_set_does_not_fail():
    """Guard (passes on the old code too): another database's torn manifest in a shared directory, an older damaged
    backup, a newer good one restored past a damaged one, and a drill of a chosen instant pass."""
    other = 'postgresql-billing-dump-20261129T115000000000Z.dump.zst'
    prefix_of_ours = 'postgresql-shop_archive-dump-20261129T115000000000Z.dump.zst'
    older_failed = dict(FAILED, id='postgresql-shop-dump-20261129T100000000000Z.dump.zst',
                        consistent_at='2026-11-29T10:00:00Z')
    assert judged(broken_manifests=[broken(other), broken(prefix_of_ours), {'manifest': '/b/notes.manifest.json'}],
                  failed_verification=[older_failed])['passed']
    assert judged(broken_manifests=[broken('postgresql-shop-dump-20261129T100000000000Z.dump.zst')])['passed']
    assert judged(id=NEWER, chain=[NEWER], recoverable_until='2026-11-29T11:50:00.5Z',
                  failed_verification=[FAILED])['passed']
    out = measure({'name': 'shop', 'engine': 'postgresql', 'steps': STEPS, 'stop_at': '2026-11-29T11:00:00Z',
                   'backup': backup(failed_verification=[FAILED]), 'objectives': {'rpo_seconds': 7200}}, START)
    assert not any('newest backup' in r for r in out['reasons'])


def test_several_passed_over_are_listed_newest_first():
    newest = 'postgresql-shop-dump-20261129T115500000000Z.dump.zst'
    found = passed_over(backup(failed_verification=[FAILED], broken_manifests=[broken(newest)]))
    assert [f['id'] for f in found] == [newest, NEWER]
    assert passed_over({'chain': [], 'recoverable_until': None}) == []


def test_a_time_without_a_zone_is_read_in_the_zone_given_dst_and_all():
    assert newest_point('2026-07-01 12:00:00', 'Europe/Berlin').isoformat() == '2026-07-01T10:00:00+00:00'  # CEST
    assert newest_point('2026-12-01 12:00:00', 'Europe/Berlin').isoformat() == '2026-12-01T11:00:00+00:00'  # CET
    # 02:30 happens twice on 2026-10-25 in Berlin: the earlier instant (the larger RPO)
    assert newest_point('2026-10-25 02:30:00', 'Europe/Berlin').isoformat() == '2026-10-25T00:30:00+00:00'
    # a zone in the answer, or an epoch, wins over the zone given
    assert newest_point('2026-07-01T12:00:00+00:00', 'Asia/Tokyo').isoformat() == '2026-07-01T12:00:00+00:00'
    assert newest_point(1795953480, 'Asia/Tokyo').isoformat() == '2026-11-29T11:58:00+00:00'
    assert newest_point('2026-07-01 12:00:00').isoformat() == '2026-07-01T12:00:00+00:00'
    with pytest.raises(OpsReadyError, match='IANA'):
        newest_point('2026-07-01 12:00:00', 'Mars/Olympus')
