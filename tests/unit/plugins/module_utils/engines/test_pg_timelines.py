"""Which timeline a point-in-time recovery follows after a fork (engines/postgresql/timelines.py), no server.

Timeline 1 goes on past the point an earlier recovery forked timeline 2 from (its segment 5, archived at minute 6,
holds what that recovery threw away). The same with a real fork: tests/fidelity/test_postgresql_round8.py,
test_pitr_to_the_old_timeline_after_a_fork.
"""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import timelines
from tests.unit.plugins.module_utils.backup import test_catalog_timelines as shared
from tests.unit.plugins.module_utils.backup.test_catalog_timelines import BASE_AT, base, wal

clean = shared.clean   # the catalog index cleared around each test (autouse there)


def at(minutes: float) -> datetime.datetime:
    return BASE_AT + datetime.timedelta(minutes=minutes)


@pytest.fixture
def forked(tmp_path):
    base(tmp_path)
    wal(tmp_path, 1, 3, 1)
    wal(tmp_path, 1, 4, 5)
    wal(tmp_path, 1, 5, 6)
    wal(tmp_path, 2, 4, 10)
    wal(tmp_path, 2, 5, 11)
    (tmp_path / 'pg_wal_extra').mkdir()
    (tmp_path / 'pg_wal_extra' / '00000002.history').write_text('1\t0/4000100\tbefore 2026-11-20 10:03:00.5+00\n')
    return Catalog(str(tmp_path), engine='postgresql', database='@cluster')


def files(catalog: Catalog, point: datetime.datetime) -> list:
    return [m.position['wal_file'][-10:] for m in catalog.chain_for(point)[1:]]


def chosen(catalog: Catalog, choice, point):
    return timelines.select(catalog, choice, point, lambda: 1)


def test_a_point_on_the_old_branch_is_refused_unless_a_timeline_is_chosen(forked):
    with pytest.raises(OpsReadyError, match=r'timeline 1 after it forked .*target_timeline: 1.*: latest'):
        chosen(forked, None, at(4))
    for minutes in (2, 12):   # before the fork both agree; after the old branch's end only timeline 2 goes on
        assert chosen(forked, None, at(minutes)) == (forked, None)
    assert chosen(forked, 'latest', at(4)) == (forked, None)


def test_the_chosen_timeline_chain_and_setting(forked):
    one, setting = chosen(forked, '1', at(4))
    assert setting == '1' and files(one, at(5.5)) == ['0000000003', '0000000004', '0000000005']
    assert [m.position['timeline'] for m in one.chain_for(at(5.5))[1:]] == [1, 1, 1]
    assert chosen(forked, 'current', at(4))[1] == '1'
    two, setting = chosen(forked, '2', at(11))
    assert setting == '2' and [(m.position['timeline'], m.position['start']) for m in two.chain_for(at(11))[1:]] == [
        (1, 3), (2, 4), (2, 5)]


def test_a_base_backup_of_another_branch_never_starts_the_chain(forked, tmp_path):
    """A base backup taken on timeline 2 before the point (a split-brain former primary wrote on timeline 1 until
    later) is newer than timeline 1's: along timeline 1 the chain starts from timeline 1's own base."""
    from tests.unit.plugins.module_utils.backup.test_catalog_timelines import artifact
    artifact(tmp_path, 'base2', 'base', 3.5, {'log_start': 5, 'timeline': 2, 'wal_segment_size': 16 * 1024 * 1024})
    catalog = Catalog(str(tmp_path), engine='postgresql', database='@cluster')
    assert catalog.chain_for(at(5.5))[0].id == 'base2'
    one = chosen(catalog, '1', at(5.5))[0]
    assert [m.id for m in one.chain_for(at(5.5))][:1] == ['base']


def test_a_timeline_without_history_or_a_bad_choice_is_refused(forked):
    with pytest.raises(OpsReadyError, match='00000003.history'):
        chosen(forked, '3', at(4))
    for bad in ('0', 'newest', '1; x', '-1', ''):
        with pytest.raises(OpsReadyError, match='target_timeline must be'):
            chosen(forked, bad, at(4))


def test_the_fork_time_is_read_from_the_history_reason():
    assert timelines._fork_time('before 2026-11-20 10:03:00.5+00') == at(3) + datetime.timedelta(seconds=0.5)  # pylint: disable=protected-access
    assert timelines._fork_time('after 2026-11-20 11:03:00+01:00') == at(3)  # pylint: disable=protected-access
    assert timelines._fork_time('no recovery target specified') is None  # pylint: disable=protected-access
