"""Retention and clocks (retention red team, round 2). A full dated after ``now`` (the host's clock was ahead when
it was written, then jumped back; or another host's skew) was "the newest": ``keep_last=1`` kept it and deleted
the real newest backup, on every run until the calendar caught up. Such a full is kept, counted by no rule, and the
rules choose among the fulls dated up to now. Also: ``keep_days`` keeps a full exactly at its horizon, and two
fulls of equal time are both counted (regression guards, passed before).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, put

DAY = datetime.timedelta(days=1)


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def _run(directory: Path, policy: retention.Policy):
    checked = prune(str(directory), policy, check_mode=True, now=NOW, leftover_min_age=None)
    catalog_index.clear()
    real = prune(str(directory), policy, now=NOW, leftover_min_age=None)
    catalog_index.clear()
    for key in ('deleted', 'deleted_ids', 'kept', 'reasons'):
        assert checked[key] == real[key], key
    return {os.path.basename(path): reason for path, reason in real['kept'].items()}, real


@pytest.mark.parametrize('per_set', [False, True])
def test_a_full_dated_in_the_future_does_not_push_out_the_real_newest(tmp_path, monkeypatch, per_set):
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    ahead = put(tmp_path, 'mariadb', 'shop', 'full', NOW + 30 * DAY)   # written while the clock was a month ahead
    older = put(tmp_path, 'mariadb', 'shop', 'full', NOW - 2 * DAY)
    newest = put(tmp_path, 'mariadb', 'shop', 'full', NOW - DAY / 24)
    kept, real = _run(tmp_path, retention.Policy(keep_last=1))
    assert newest in kept and kept[newest] == 'newest verified full', kept
    assert ahead in kept and 'in the future' in kept[ahead], kept
    assert real['deleted_ids'] == [older]


def test_a_full_a_few_minutes_ahead_is_an_ordinary_full(tmp_path):
    """A clock a little ahead (under five minutes): the full is the newest as before."""
    put(tmp_path, 'mariadb', 'shop', 'full', NOW - DAY)
    soon = put(tmp_path, 'mariadb', 'shop', 'full', NOW + datetime.timedelta(minutes=4))
    kept, real = _run(tmp_path, retention.Policy(keep_last=1))
    assert kept == {soon: 'newest verified full'}


def test_keep_days_horizon_and_equal_times(tmp_path):
    """Regression guard (passed before): a full exactly keep_days old is kept; two fulls of one time both count."""
    edge = put(tmp_path, 'mariadb', 'shop', 'full', NOW - 2 * DAY)
    put(tmp_path, 'mariadb', 'shop', 'full', NOW - 3 * DAY)
    twin_a = put(tmp_path, 'mariadb', 'other', 'full', NOW - DAY)
    twin_b = put(tmp_path, 'mariadb', 'other', 'full', NOW - DAY, artifact='mariadb-other-full-twin')
    kept, real = _run(tmp_path, retention.Policy(keep_days=2, keep_last=2))
    assert edge in kept and twin_a in kept and twin_b in kept
