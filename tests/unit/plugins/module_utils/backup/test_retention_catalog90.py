"""Retention over generated 90-day catalogs: nothing kept depends on anything deleted, and the newest
verified full always survives (real files, real manifests, real deletions)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import shutil
import tempfile

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import prune
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat, stamp

START = datetime.datetime(2026, 8, 1, tzinfo=UTC)
NOW = START + datetime.timedelta(days=90)


def _artifact(directory, engine, database, kind, when, rng, **extra):
    name = '%s-%s-%s-%s.bin' % (engine, database, kind, stamp(when))
    path = os.path.join(directory, name)
    body = os.urandom(16)
    with open(path, 'wb') as handle:
        handle.write(body)
    data = {'engine': engine, 'database': database, 'kind': kind, 'started': isoformat(when),
            'finished': isoformat(when + datetime.timedelta(minutes=1)), 'consistent_at': isoformat(when),
            'size': len(body), 'sha256': hashlib.sha256(body).hexdigest(), 'compression': 'none', 'position': {}}
    data.update(extra)
    roll = rng.random()
    if kind in ('full', 'base', 'diff'):
        if roll < 0.6:
            data['verification'] = {'ok': True}
        elif roll < 0.7:
            data['verification'] = {'ok': False}
    data.update(id=name, artifact=name, format=1)
    with open(path + '.manifest.json', 'w') as handle:  # same bytes as write_manifest, minus its fsyncs
        json.dump(data, handle)
    return data


def generate(directory, seed):
    """SQL Server-like set (weekly full, daily diff, hourly log, LSN positions) and PostgreSQL-like set
    (daily base, hourly WAL segments) over 90 days, with some fulls unverified or failed."""
    rng = random.Random(seed)
    lsn = 1000
    full_id = None
    wal = 1
    for hour in range(90 * 24):
        when = START + datetime.timedelta(hours=hour)
        if hour % 24 == 0:
            if when.weekday() == 6 or full_id is None:
                full = _artifact(directory, 'sqlserver', 'app', 'full', when, rng, position={'log_start': lsn})
                full_id = os.path.basename(full['sha256'] and '%s-%s-%s-%s.bin' % ('sqlserver', 'app', 'full',
                                                                                   stamp(when)))
            else:
                _artifact(directory, 'sqlserver', 'app', 'diff', when + datetime.timedelta(seconds=1), rng,
                          parent=full_id, position={'log_start': lsn})
            _artifact(directory, 'postgresql', '@cluster', 'base', when + datetime.timedelta(seconds=2), rng,
                      position={'log_start': wal})
        step = rng.randint(5, 50)
        _artifact(directory, 'sqlserver', 'app', 'log', when + datetime.timedelta(minutes=30), rng,
                  position={'start': lsn, 'end': lsn + step})
        lsn += step
        _artifact(directory, 'postgresql', '@cluster', 'wal', when + datetime.timedelta(minutes=40), rng,
                  position={'start': wal, 'end': wal + 1})
        wal += 1


def _reach_by_full(catalog):
    reach = {}
    for full in catalog.fulls():
        chain = catalog._extend_with_logs(catalog._base_for(full, None), None)
        reach[full.id] = (catalog.reaches(chain), [m.id for m in chain])
    return reach


POLICIES = [
    (1, dict(keep_last=1)), (1, dict(keep_days=7)), (1, dict(keep_weekly=4)), (1, dict(keep_monthly=2)),
    (2, dict(keep_daily=7, keep_weekly=4, keep_monthly=3)), (2, dict(keep_last=2, keep_days=3)),
]


_GENERATED = {}
# ~9000 small files per catalog: on tmpfs when there is one (the disk here is shared and slow).
SCRATCH = '/dev/shm' if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) else None


@pytest.fixture(scope='module')
def scratch():
    base = tempfile.mkdtemp(prefix='opsready-retention-', dir=SCRATCH)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def catalog_dir(scratch, request):
    seed = getattr(request, 'param', 9)
    if seed not in _GENERATED:
        base = os.path.join(scratch, 'seed%d' % seed)
        os.mkdir(base)
        generate(base, seed)
        _GENERATED[seed] = base
    target = tempfile.mkdtemp(dir=scratch)
    os.rmdir(target)
    shutil.copytree(_GENERATED[seed], target)
    return target


def _policy_id(seed, policy):
    return 'seed%s:%s' % (seed, ','.join('%s=%s' % (key, value) for key, value in sorted(policy.items())))


@pytest.mark.parametrize('catalog_dir,policy', POLICIES, indirect=['catalog_dir'],
                         ids=[_policy_id(seed, policy) for seed, policy in POLICIES])
def test_generated_catalog_prune_keeps_every_chain_whole(catalog_dir, policy):
    tmp_path = catalog_dir
    sets = [('sqlserver', 'app'), ('postgresql', '@cluster')]
    before = {s: Catalog(str(tmp_path), *s) for s in sets}
    newest_verified = {s: before[s].latest_full(verified_only=True) for s in sets}
    reach_before = {s: _reach_by_full(before[s]) for s in sets}
    until_before = {s: before[s].recoverable_until() for s in sets}
    total_before = len(os.listdir(tmp_path))

    planned = prune(str(tmp_path), retention.Policy(**policy), check_mode=True, now=NOW)
    assert sorted(os.listdir(tmp_path)).__len__() == total_before, 'check mode deleted something'
    result = prune(str(tmp_path), retention.Policy(**policy), now=NOW)
    assert result['deleted'] == planned['deleted'] and result['deleted'], 'a 90-day catalog must lose something'
    for path in result['deleted']:
        assert not os.path.exists(path) and not os.path.exists(path + '.manifest.json')

    for s in sets:
        after = Catalog(str(tmp_path), *s)
        kept = {m.id for m in after.entries}
        # The newest verified full always survives.
        assert newest_verified[s] is not None and newest_verified[s].id in kept
        # Nothing kept depends on anything deleted: every kept full reaches exactly as far, through the same
        # pieces, as before; every kept diff still has its full.
        reach_after = _reach_by_full(after)
        for full_id, (reach, chain) in reach_after.items():
            assert (reach, chain) == reach_before[s][full_id], '%s lost part of its chain' % full_id
        for diff in (m for m in after.entries if m.kind == 'diff'):
            assert diff.parent in kept
        assert after.recoverable_until() == until_before[s]
        assert not retention.dependency_violations(after, list(kept), [])
        assert after.leftovers() == []


def test_dependency_violations_catch_a_broken_plan(catalog_dir):
    tmp_path = catalog_dir
    catalog = Catalog(str(tmp_path), 'sqlserver', 'app')
    newest = catalog.latest_full()
    logs = catalog.log_sequence_from(newest)
    assert logs
    problems = retention.dependency_violations(catalog, [newest.id], [logs[0].id])
    assert problems and logs[0].id in problems[0]
    diff = next(m for m in catalog.entries if m.kind == 'diff')
    problems = retention.dependency_violations(catalog, [diff.id], [diff.parent])
    assert any('needs its parent' in p for p in problems)


def test_policy_rejects_negative_and_empty_keeps_all(catalog_dir):
    tmp_path = catalog_dir
    with pytest.raises(Exception, match='keep_last must be 0 or more'):
        retention.Policy(keep_last=-1)
    result = prune(str(tmp_path), retention.Policy(), now=NOW)
    assert result['deleted'] == []
