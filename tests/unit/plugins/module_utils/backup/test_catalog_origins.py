"""Two servers backing up a database of the same name into one shared directory (an NFS mount) never mix.

Each server's manifests carry its ``origin``; log positions are per server (host B's binlog 6 is not host A's). The
catalog must never splice one server's logs onto another's full, never let "latest" silently be the other server's
data, and retention must keep the newest good backup of every server. Manifests written before origins were recorded
join their set's only origin, or are their own group when there are several. Every answer is the same with no index,
an index, and a sealed index answered from its columns (``RowView``), set by set or over the whole catalog.
"""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import (
    UNKNOWN_ORIGIN, Catalog, MixedOrigins)
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat, stamp

START = datetime.datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC)
NOW = START + datetime.timedelta(days=10)
A, B = 'db-a.example:3306', 'db-b.example:3306'


def write(directory, kind, at, position, origin, database='shop', parent=None, tag=''):
    name = 'mariadb-%s-%s-%s%s' % (database, kind, stamp(at), tag)
    body = name.encode()
    (directory / name).write_bytes(body)
    data = {'id': name, 'artifact': name, 'format': 1, 'engine': 'mariadb', 'database': database, 'kind': kind,
            'server': 'localhost:3306', 'started': isoformat(at), 'finished': isoformat(at),
            'consistent_at': isoformat(at), 'size': len(body), 'sha256': hashlib.sha256(body).hexdigest(),
            'compression': 'none', 'position': position, 'parent': parent, 'verification': {'ok': True}}
    if origin is not None:
        data['origin'] = origin
    (directory / (name + '.manifest.json')).write_text(json.dumps(data))
    return name


def host(directory, origin, first_day, days, tag, database='shop'):
    """One full a day at 00:00 (log_start at that day's binlog) and a binlog an hour after each (positions of this
    server alone: every host numbers its binlogs from 1)."""
    fulls, logs = [], []
    for day in range(first_day, first_day + days):
        at = START + datetime.timedelta(days=day)
        fulls.append(write(directory, 'full', at, {'log_start': day + 1}, origin, database, tag=tag))
        logs.append(write(directory, 'log', at + datetime.timedelta(hours=1), {'start': day + 1, 'end': day + 2},
                          origin, database, tag=tag))
    return fulls, logs


@pytest.fixture(params=['none', 'index', 'sealed'])
def index_mode(request, monkeypatch):
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000' if request.param == 'none' else '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)   # files written just now are indexed
    catalog_index.clear()
    yield request.param
    catalog_index.clear()


def prime(directory, mode):
    """Write (and for 'sealed', seal) the index as a real earlier run would have."""
    if mode != 'none':
        if mode == 'index':   # a broken manifest: the listing is not the index's rows, every manifest is stat'ed
            (directory / 'mariadb-shop-full-20261001T000000000000Z.manifest.json').write_text('{')
        describe(str(directory), now=NOW)
        catalog_index.clear()
        describe(str(directory), now=NOW)
        catalog_index.clear()
        assert (directory / catalog_index.INDEX_NAME).exists()
        Catalog(str(directory), materialize=False)
        assert (catalog_index._DIRS[str(directory)].seal is not None) == (mode == 'sealed')
        catalog_index.clear()


@pytest.mark.parametrize('per_set', [True, False])
def test_a_chain_never_splices_another_servers_logs(tmp_path, index_mode, per_set, monkeypatch):
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    a_fulls, a_logs = host(tmp_path, A, 0, 3, '-a')
    # host B: its binlogs 4..5 continue A's numbers by coincidence (positions are per server), newer than A's
    b_fulls, b_logs = host(tmp_path, B, 3, 2, '-b')
    prime(tmp_path, index_mode)
    with pytest.raises(MixedOrigins) as caught:
        Catalog(str(tmp_path), engine='mariadb', database='shop').chain_for(None)
    assert A in caught.value.message and B in caught.value.message and 'origin' in caught.value.message
    chain_a = Catalog(str(tmp_path), engine='mariadb', database='shop', origin=A).chain_for(None)
    assert [m.id for m in chain_a] == [a_fulls[-1], a_logs[-1]], 'B logs 4.. must not extend A full 3'
    chain_b = Catalog(str(tmp_path), engine='mariadb', database='shop', origin=B).chain_for(None)
    assert [m.id for m in chain_b] == [b_fulls[-1], b_logs[-1]]
    # backup_info of the one set: refuses without a choice, answers per origin with one
    with pytest.raises(MixedOrigins):
        describe(str(tmp_path), database='shop', now=NOW)
    info = describe(str(tmp_path), database='shop', now=NOW, origin=A)
    assert info['chain'] == [m.id for m in chain_a]
    assert [(s['origin'], s['origins']) for s in info['sets']] == [(A, [A, B])]
    assert info['recoverable_until'] == isoformat(START + datetime.timedelta(days=2, hours=1))
    # the whole directory: each origin described, the set named as mixed
    whole = describe(str(tmp_path), now=NOW, max_artifacts=3)
    assert [(s['database'], s['origin']) for s in whole['sets']] == [('shop', A), ('shop', B)]
    assert whole['mixed_origins'] == [{'engine': 'mariadb', 'database': 'shop', 'origins': [A, B],
                                       'origins_relation': 'successive'}]


@pytest.mark.parametrize('per_set', [True, False])
def test_retention_keeps_the_newest_good_backup_of_every_server(tmp_path, index_mode, per_set, monkeypatch):
    """keep_last=1 over the mixed set kept only host B's newest full and deleted every backup of host A."""
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    a_fulls, a_logs = host(tmp_path, A, 0, 3, '-a')
    b_fulls, b_logs = host(tmp_path, B, 3, 3, '-b')
    prime(tmp_path, index_mode)
    planned = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW)
    deleted = set(planned['deleted_ids'])
    assert a_fulls[-1] not in deleted and b_fulls[-1] not in deleted
    assert a_logs[-1] not in deleted and b_logs[-1] not in deleted
    assert deleted == set(a_fulls[:-1] + a_logs[:-1] + b_fulls[:-1] + b_logs[:-1])
    catalog_index.clear()
    done = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=False, now=NOW)
    assert set(done['deleted_ids']) == deleted
    left = sorted(p.name[:-len('.manifest.json')] for p in tmp_path.glob('*.manifest.json')
                  if '-full-2026100' not in p.name)   # (the broken manifest of mode 'index')
    assert left == sorted([a_fulls[-1], a_logs[-1], b_fulls[-1], b_logs[-1]])


def test_old_manifests_join_the_only_origin(tmp_path, index_mode):
    """A single host upgrading: its old manifests (no origin) and its new ones are one set, one chain."""
    old_fulls, old_logs = host(tmp_path, None, 0, 2, '-old')
    new_fulls, new_logs = host(tmp_path, A, 2, 1, '-new')
    prime(tmp_path, index_mode)
    catalog = Catalog(str(tmp_path), engine='mariadb', database='shop')
    assert catalog.origins == [A]
    # the new full's chain; a point in the old days still restores from the old full and its logs
    assert [m.id for m in catalog.chain_for(None)] == [new_fulls[0], new_logs[0]]
    point = START + datetime.timedelta(days=1, minutes=30)
    assert [m.id for m in catalog.chain_for(point)] == [old_fulls[1], old_logs[1]]
    info = describe(str(tmp_path), database='shop', now=NOW)
    assert info['chain'] == [new_fulls[0], new_logs[0]] and info['sets'][0]['origins'] == [A]
    assert info['mixed_origins'] == []
    # nothing recorded at all: one group, as before origins existed
    only_old = tmp_path / 'old'
    only_old.mkdir()
    host(only_old, None, 0, 2, '-old')
    assert Catalog(str(only_old), engine='mariadb', database='shop').origins == [UNKNOWN_ORIGIN]
    assert describe(str(only_old), database='shop', now=NOW)['chain_error'] is None


def test_old_manifests_are_their_own_group_when_several_servers_write(tmp_path, index_mode):
    old_fulls, old_logs = host(tmp_path, None, 0, 2, '-old')
    a_fulls, dummy = host(tmp_path, A, 2, 1, '-a')
    b_fulls, dummy = host(tmp_path, B, 3, 1, '-b')
    prime(tmp_path, index_mode)
    catalog = Catalog(str(tmp_path), engine='mariadb', database='shop')
    assert catalog.origins == sorted([A, B, UNKNOWN_ORIGIN])
    with pytest.raises(MixedOrigins) as caught:
        catalog.latest_full()
    assert UNKNOWN_ORIGIN in caught.value.message
    unknown = Catalog(str(tmp_path), engine='mariadb', database='shop', origin=UNKNOWN_ORIGIN)
    assert [m.id for m in unknown.chain_for(None)] == [old_fulls[1], old_logs[1]]
    planned = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW)
    assert not {old_fulls[1], a_fulls[0], b_fulls[0]} & set(planned['deleted_ids'])
    assert set(planned['deleted_ids']) == {old_fulls[0], old_logs[0]}


def test_the_index_keeps_the_origin_column(tmp_path, monkeypatch):
    """An indexed manifest answers ``origin`` from its row (no JSON read), and a rewritten origin is seen."""
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    catalog_index.clear()
    host(tmp_path, A, 0, 2, '-a')
    host(tmp_path, None, 2, 1, '-old')
    prime(tmp_path, 'sealed')
    scan = Catalog(str(tmp_path), materialize=False)._scan
    assert scan.columns is not None
    assert sorted(set(scan.columns[1 + catalog_index.R_ORIGIN]), key=str) == sorted([A, None], key=str)
    entries = Catalog(str(tmp_path), engine='mariadb', database='shop').entries
    assert {type(m).__name__ for m in entries} == {'IndexedManifest'}
    assert {m.origin for m in entries} == {A, None}
    assert all(m._data is None for m in entries), 'origin came from the index, not the JSON'
    catalog_index.clear()


def test_freshness_and_metrics_have_one_record_per_server(tmp_path):
    """backup_metrics / health's backup check: the RPO of a mixed set is each server's, never whichever wrote last."""
    from ansible_collections.opsready.operations.plugins.module_utils.health import backup_freshness
    host(tmp_path, A, 0, 2, '-a')
    host(tmp_path, B, 5, 2, '-b')
    records = backup_freshness.assess(str(tmp_path), now=NOW, verified_only=False)
    assert [(r['origin'], r['recoverable_until']) for r in records] == [
        (A, isoformat(START + datetime.timedelta(days=1, hours=1))),
        (B, isoformat(START + datetime.timedelta(days=6, hours=1)))]
    text = backup_freshness.prometheus_text(records, str(tmp_path))
    assert 'origin="%s"' % A in text and 'origin="%s"' % B in text
    single = tmp_path / 'single'
    single.mkdir()
    host(single, A, 0, 1, '-a')
    (record,) = backup_freshness.assess(str(single), now=NOW, verified_only=False)
    assert record['origin'] is None and record['origins'] == [A]
    assert 'origin=' not in backup_freshness.prometheus_text([record], str(single))


def test_a_writer_continues_its_own_chain_right_after_the_upgrade(tmp_path, index_mode):
    """db_backup (binlog continuation, differential parent, WAL wait, freshness) and file_backup ask for their own
    origin with ``own=True``: a set of old manifests only is the writer's own (it would be by the only-origin rule
    after its first new manifest), never another recorded server's."""
    old_fulls, old_logs = host(tmp_path, None, 0, 2, '-old')
    prime(tmp_path, index_mode)
    mine = Catalog(str(tmp_path), engine='mariadb', database='shop', origin=A, own=True)
    assert [m.id for m in mine.fulls()] == old_fulls and [m.id for m in mine.logs()] == old_logs
    assert Catalog(str(tmp_path), engine='mariadb', database='shop', origin=A).entries == []
    # once another server has written the set, the old manifests are nobody's in particular: not the writer's
    host(tmp_path, B, 3, 1, '-b')
    catalog_index.clear()
    theirs = Catalog(str(tmp_path), engine='mariadb', database='shop', origin=A, own=True)
    assert theirs.entries == []
