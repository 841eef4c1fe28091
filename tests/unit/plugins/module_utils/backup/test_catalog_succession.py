"""One server whose identity changed (pg_upgrade, a re-initdb, a renamed host) starts a second origin in its set.

``origin: newest`` (db_restore, backup_info, dr_drill) declares the set's origins successive: "latest" is the newest
origin's, a point or an artifact of an older origin's time is that origin's (a chain never crosses two), and it is
refused when their times overlap (two live servers). backup_prune's ``origin_succession`` plans them as one timeline:
an older origin's fulls age out like older fulls, each chain stays its own origin's. Every answer is the same with no
index, an index and a sealed index, set by set or over the whole catalog.
"""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import (
    NEWEST_ORIGIN, Catalog, MixedOrigins, OverlappingOrigins)
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import CatalogError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat
from tests.unit.plugins.module_utils.backup import test_catalog_origins as origins
from tests.unit.plugins.module_utils.backup.test_catalog_origins import A, B, NOW, START, host, prime, write

index_mode = origins.index_mode   # the fixture: no index, an index, a sealed index


def day(n, hours=0):
    return START + datetime.timedelta(days=n, hours=hours)


def new_server(directory, origin, first_day, days, tag, fulls=True):
    """A server that numbers its binlogs from 1 (a new server's positions restart: they must never chain onto the
    old server's, whose numbers they repeat)."""
    full_ids, log_ids = [], []
    for i in range(days):
        if fulls:
            full_ids.append(write(directory, 'full', day(first_day + i), {'log_start': i + 1}, origin, tag=tag))
        log_ids.append(write(directory, 'log', day(first_day + i, 1), {'start': i + 1, 'end': i + 2}, origin,
                             tag=tag))
    return full_ids, log_ids


def catalog(directory, origin=NEWEST_ORIGIN):
    return Catalog(str(directory), engine='mariadb', database='shop', origin=origin)


@pytest.mark.parametrize('per_set', [True, False])
def test_newest_restores_the_newest_origin_and_older_points_from_theirs(tmp_path, index_mode, per_set, monkeypatch):
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    a_fulls, a_logs = host(tmp_path, A, 0, 3, '-a')
    b_fulls, b_logs = new_server(tmp_path, B, 3, 2, '-b')
    prime(tmp_path, index_mode)
    view, warnings = catalog(tmp_path).successive()
    assert [m.id for m in view.chain_for(None)] == [b_fulls[-1], b_logs[-1]]
    assert view.origin == B and len(warnings) == 1
    assert A in warnings[0] and B in warnings[0] and isoformat(day(2, 1)) in warnings[0], warnings
    # a point in A's time: A's chain, never B's logs (whose positions repeat A's) spliced on
    view, warnings = catalog(tmp_path).successive(point=day(1, 0.5))
    assert view.origin == A and [m.id for m in view.chain_for(day(1, 0.5))] == [a_fulls[1], a_logs[1]]
    assert 'older origin %s' % A in warnings[0]
    # between A's last artifact and B's first: A's (whose window then says where it ends)
    view, dummy = catalog(tmp_path).successive(point=day(2, 12))
    assert view.origin == A
    with pytest.raises(CatalogError, match='outside the recoverable window'):
        view.chain_for(day(2, 12))
    view, dummy = catalog(tmp_path).successive(point=day(4, 0.5))   # in B's time: B's own full and log
    assert view.origin == B and [m.id for m in view.chain_for(day(4, 0.5))] == [b_fulls[1], b_logs[1]]
    view, dummy = catalog(tmp_path).successive(artifact=a_fulls[0])
    assert view.origin == A and view.get(a_fulls[0]).id == a_fulls[0]
    # backup_info: the same answers, the set's relation reported
    info = describe(str(tmp_path), database='shop', now=NOW, origin=NEWEST_ORIGIN)
    assert info['chain'] == [b_fulls[-1], b_logs[-1]]
    assert [(s['origin'], s['origins'], s['origins_relation']) for s in info['sets']] == [
        (B, [A, B], 'successive')]
    assert [s['origin'] for s in info['sets'][0]['origin_spans']] == [A, B]
    assert info['mixed_origins'] == []
    older = describe(str(tmp_path), database='shop', now=NOW, origin=NEWEST_ORIGIN, point=day(1, 0.5))
    assert older['chain'] == [a_fulls[1], a_logs[1]] and older['sets'][0]['origin'] == A
    whole = describe(str(tmp_path), now=NOW, max_artifacts=3)
    assert [(s['origin'], s['origins_relation']) for s in whole['sets']] == [(A, 'successive'), (B, 'successive')]


@pytest.mark.parametrize('per_set', [True, False])
def test_newest_is_refused_when_the_origins_overlap(tmp_path, index_mode, per_set, monkeypatch):
    """Host B writes into host A's directory while A still runs: B's first backup is newer than A's last only until
    A's next one. From then on the times overlap and ``newest`` fails naming both and their times."""
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    host(tmp_path, A, 0, 2, '-a')
    new_server(tmp_path, B, 2, 1, '-b')
    host(tmp_path, A, 3, 1, '-a')   # A is alive: its next backup
    prime(tmp_path, index_mode)
    with pytest.raises(OverlappingOrigins) as caught:
        catalog(tmp_path).successive()
    message = caught.value.message
    assert A in message and B in message and isoformat(day(3, 1)) in message and isoformat(day(2)) in message
    assert isinstance(caught.value, MixedOrigins)
    with pytest.raises(OverlappingOrigins):
        catalog(tmp_path).chain_for(None)
    with pytest.raises(OverlappingOrigins):
        describe(str(tmp_path), database='shop', now=NOW, origin=NEWEST_ORIGIN)
    whole = describe(str(tmp_path), now=NOW)
    assert {s['origins_relation'] for s in whole['sets']} == {'overlapping'}
    assert whole['mixed_origins'][0]['origins_relation'] == 'overlapping'


def test_the_newest_origin_without_a_full_names_the_predecessor(tmp_path, index_mode):
    """Right after pg_upgrade the new cluster archives WAL before its first base backup: "latest" is not silently
    the old server's data; the error says to take a full, or to choose the predecessor knowingly."""
    a_fulls, a_logs = host(tmp_path, A, 0, 2, '-a')
    new_server(tmp_path, B, 3, 2, '-b', fulls=False)
    prime(tmp_path, index_mode)
    view, dummy = catalog(tmp_path).successive()
    with pytest.raises(CatalogError) as caught:
        view.chain_for(None)
    assert 'origin: %s' % A in caught.value.message and 'Take a full backup of %s' % B in caught.value.message
    assert [m.id for m in catalog(tmp_path).successive(point=day(1, 1))[0].chain_for(day(1, 1))] == [
        a_fulls[1], a_logs[1]]


def test_the_mixed_origins_error_names_the_succession_remedy(tmp_path):
    host(tmp_path, A, 0, 1, '-a')
    new_server(tmp_path, B, 2, 1, '-b')
    with pytest.raises(MixedOrigins) as caught:
        catalog(tmp_path, origin=None).chain_for(None)
    message = caught.value.message
    for words in ('pg_upgrade', 'initdb', 'renamed', 'origin: newest', 'dr_drill_origin: newest',
                  'origin_succession: true'):
        assert words in message, words


def _prune_both(directory, policy, **kwargs):
    """The check-mode plan, then the real run: the same deletions, and the manifests left."""
    planned = prune(str(directory), policy, check_mode=True, now=NOW, **kwargs)
    catalog_index.clear()
    done = prune(str(directory), policy, check_mode=False, now=NOW, **kwargs)
    assert done['deleted_ids'] == planned['deleted_ids']
    catalog_index.clear()
    left = sorted(p.name[:-len('.manifest.json')] for p in directory.glob('*.manifest.json')
                  if '-full-2026100' not in p.name)   # (the broken manifest of mode 'index')
    return planned, left


@pytest.mark.parametrize('per_set', [True, False])
def test_retention_ages_out_the_old_origin(tmp_path, index_mode, per_set, monkeypatch):
    """keep_last counts the fulls of a succession as one history; the old server's logs go with its fulls (a new
    server's positions repeat the old one's numbers: the old logs must not look needed by the new fulls)."""
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    a_fulls, a_logs = host(tmp_path, A, 0, 3, '-a')
    b_fulls, b_logs = new_server(tmp_path, B, 3, 2, '-b')
    prime(tmp_path, index_mode)
    # without the declaration: the old server's newest full and its chain stay for ever
    planned = prune(str(tmp_path), retention.Policy(keep_last=2), check_mode=True, now=NOW)
    assert a_fulls[-1] not in planned['deleted_ids']
    assert planned['origin_sets'][0]['origins_relation'] == 'successive'
    assert planned['origin_sets'][0]['planned'] == 'per origin'
    catalog_index.clear()
    # keep_last=3 across the succession: A's newest full and the log it replays, B's two
    planned = prune(str(tmp_path), retention.Policy(keep_last=3), check_mode=True, now=NOW, succession=True)
    assert set(planned['deleted_ids']) == set(a_fulls[:2] + a_logs[:2])
    catalog_index.clear()
    planned, left = _prune_both(tmp_path, retention.Policy(keep_last=2), succession=True)
    assert set(planned['deleted_ids']) == set(a_fulls + a_logs)
    assert planned['origin_sets'][0]['planned'] == 'one timeline'
    assert 'succeeded by %s' % B in planned['reasons'][str(tmp_path / a_fulls[0])]
    assert left == sorted(b_fulls + b_logs)


def test_the_backup_modules_retention_declares_the_succession_in_its_policy(tmp_path):
    """db_backup / redis_backup ``retention: {keep_last: .., origin_succession: true}`` prune as backup_prune does."""
    a_fulls, a_logs = host(tmp_path, A, 0, 2, '-a')
    b_fulls, b_logs = new_server(tmp_path, B, 3, 1, '-b')
    policy = retention.Policy.from_params({'keep_last': 1, 'origin_succession': True})
    planned = prune(str(tmp_path), policy, check_mode=True, now=NOW)
    assert set(planned['deleted_ids']) == set(a_fulls + a_logs)
    assert not retention.Policy.from_params({'keep_last': 1}).origin_succession


@pytest.mark.parametrize('per_set', [True, False])
def test_retention_keeps_the_predecessor_while_the_newest_has_no_full(tmp_path, index_mode, per_set, monkeypatch):
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    a_fulls, a_logs = host(tmp_path, A, 0, 3, '-a')
    dummy, b_logs = new_server(tmp_path, B, 3, 2, '-b', fulls=False)
    prime(tmp_path, index_mode)
    planned, left = _prune_both(tmp_path, retention.Policy(keep_last=1), succession=True)
    assert set(planned['deleted_ids']) == set(a_fulls[:2] + a_logs[:2])
    assert left == sorted([a_fulls[-1], a_logs[-1]] + b_logs)


@pytest.mark.parametrize('per_set', [True, False])
def test_retention_of_overlapping_origins_stays_per_origin_with_a_warning(
        tmp_path, index_mode, per_set, monkeypatch):
    """A shared directory of two live servers with origin_succession set (a job over many sets): each server keeps
    its own retention (more kept, never less) and the run warns instead of failing every other set's retention."""
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    a_fulls, a_logs = host(tmp_path, A, 0, 3, '-a')
    b_fulls, b_logs = new_server(tmp_path, B, 1, 3, '-b')
    prime(tmp_path, index_mode)
    planned = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW, succession=True)
    assert set(planned['deleted_ids']) == set(a_fulls[:2] + a_logs[:2] + b_fulls[:2] + b_logs[:2])
    assert planned['origin_sets'][0]['origins_relation'] == 'overlapping'
    # (the 'index' fixture plants an unreadable manifest: its own warning is not counted here)
    warnings = [w for w in planned['warnings'] if 'cannot be read' not in w]
    assert len(warnings) == 1 and A in warnings[0] and B in warnings[0]


def test_freshness_follows_a_declared_succession(tmp_path):
    """backup_metrics / the health backup check after a pg_upgrade (or a renamed host): without the declaration the
    old server keeps its own record, aging past the RPO until its backups are pruned (weeks of alerts for a server
    that no longer exists); with ``origin_succession`` the set has one record, the newest server's, naming its
    predecessors. Overlapping origins keep one record per server (a second live host's staleness stays visible)."""
    from ansible_collections.opsready.operations.plugins.module_utils.health import backup_freshness
    host(tmp_path, A, 0, 2, '-a')
    host(tmp_path, B, 5, 2, '-b')
    assert [r['origin'] for r in backup_freshness.assess(str(tmp_path), now=NOW, verified_only=False)] == [A, B]
    (record,) = backup_freshness.assess(str(tmp_path), now=NOW, verified_only=False, origin_succession=True)
    assert record['origin'] == B and record['predecessors'] == [A]
    assert record['recoverable_until'] == isoformat(START + datetime.timedelta(days=6, hours=1))
    text = backup_freshness.prometheus_text([record], str(tmp_path))
    assert 'origin="%s"' % B in text and 'origin="%s"' % A not in text
    live = tmp_path / 'live'
    live.mkdir()
    host(live, A, 0, 2, '-a')
    host(live, B, 1, 2, '-b')   # overlaps: two servers write the set
    records = backup_freshness.assess(str(live), now=NOW, verified_only=False, origin_succession=True)
    assert [(r['origin'], r['origins_relation']) for r in records] == [(A, 'overlapping'), (B, 'overlapping')]
