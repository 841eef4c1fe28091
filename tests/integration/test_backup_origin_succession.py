"""One PostgreSQL server whose identity changed (pg_upgrade, a re-initdb: a new system identifier) leaves two origins in
its backup set. ``origin: newest`` restores the new server's data, and backup_prune's ``origin_succession`` ages the
old origin's backups out; both are refused / planned per origin when the origins overlap in time (two live servers).

The old identity is simulated as ``test_backup_origin`` simulates another host: real backups of the test server whose
manifests record another ``origin`` (here the older backups: the server "before the upgrade")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.playbook import conn, play
from tests.integration.test_backup_origin import as_other_host

OLD = 'pg:7000000000000000042'


@pytest.fixture
def succession(pg_db, tmp_path):
    """A set of 4 full backups of one database: 5 then 6 rows under the OLD identity, 7 then 8 rows under the server's
    own (newer) one. Returns (directory, [ids oldest first], the server's own origin)."""
    server = pg_db.server
    pg_db.sql('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 4)')
    dest = tmp_path / 'shared'
    ids, origin = [], None
    for number in range(4):
        pg_db.sql('INSERT INTO t VALUES (%d)' % (number + 5))
        result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(dest))}],
            {'db_password': server.password})
        assert result.rc == 0, result.stdout[-4000:]
        manifest = result.result('backup')['manifest']
        ids.append(manifest['id'])
        origin = manifest['origin']
        if number < 2:
            as_other_host(dest, manifest, OLD)   # before "the upgrade"
    return dest, ids, origin


def restore(pg_db, dest: Path, target: str, **extra) -> dict:
    return {'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
        conn(pg_db.server, 'db_password'), engine='postgresql', src=str(dest), source_database=pg_db.name,
        database=target, replace=True, **extra)}


def prune(dest: Path, name: str = 'prune', check_mode: bool = False, **extra) -> dict:
    return {'name': name, 'check_mode': check_mode, 'ignore_errors': True, 'opsready.operations.backup_prune': dict(
        path=str(dest), keep_last=2, **extra)}


def test_newest_restores_the_new_servers_data_and_prune_ages_the_old_out(pg_db, succession, tmp_path):
    dest, ids, new = succession
    server = pg_db.server
    target = pg_db.name + '_s'
    try:
        first = play(tmp_path, [
            restore(pg_db, dest, target),
            restore(pg_db, dest, target, origin='newest') | {'name': 'newest'},
            {'name': 'info', 'opsready.operations.backup_info': dict(
                path=str(dest), database=pg_db.name, origin='newest')},
        ], {'db_password': server.password})
        refused = first.result('restore')
        assert refused['_event'] == 'runner_on_failed', refused
        for words in (OLD, new, 'pg_upgrade', 'origin: newest', 'dr_drill_origin: newest', 'origin_succession'):
            assert words in refused['msg'], words
        restored = first.result('newest')
        assert restored['_event'] == 'runner_on_ok', restored
        assert restored['chain_ids'] == [ids[3]]
        assert any(OLD in w and new in w for w in restored['restore_warnings']), restored['restore_warnings']
        assert server.sql('SELECT count(*) FROM t', database=target)[0][0] == '8'
        info = first.result('info')
        assert info['chain'] == [ids[3]] and info['sets'][0]['origins_relation'] == 'successive'
        assert [s['origin'] for s in info['sets'][0]['origin_spans']] == [OLD, new]
        # a named backup of the old server's time restores from the old origin
        older = play(tmp_path, [restore(pg_db, dest, target, origin='newest', artifact=ids[0])],
                     {'db_password': server.password})
        assert older.result('restore')['chain_ids'] == [ids[0]], older.result('restore')
        assert server.sql('SELECT count(*) FROM t', database=target)[0][0] == '5'
    finally:
        server.drop_database(target)
    # retention: per origin (today) the old server's newest full stays for ever; declared successive, keep_last=2
    # counts across the identity change and both old fulls go (check mode first: nothing deleted)
    pruned = play(tmp_path, [prune(dest, 'per_origin', check_mode=True),
                             prune(dest, 'check', check_mode=True, origin_succession=True),
                             prune(dest, 'real', origin_succession=True)])
    assert pruned.result('per_origin')['deleted_ids'] == []   # two of each origin
    assert pruned.result('check')['deleted_ids'] == ids[:2]
    assert pruned.result('check')['origin_sets'][0]['planned'] == 'one timeline'
    assert pruned.result('real')['deleted_ids'] == ids[:2], pruned.result('real')
    left = sorted(p.name[:-len('.manifest.json')] for p in dest.glob('*.manifest.json'))
    assert left == sorted(ids[2:])


def test_newest_is_refused_when_the_old_server_writes_again(pg_db, succession, tmp_path):
    """The old identity backs up again after the new one's backups: two live servers, not a succession."""
    dest, ids, new = succession
    server = pg_db.server
    again = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': dict(
        conn(server, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(dest))}],
        {'db_password': server.password})
    assert again.rc == 0, again.stdout[-4000:]
    as_other_host(dest, again.result('backup')['manifest'], OLD)
    target = pg_db.name + '_s'
    try:
        result = play(tmp_path, [restore(pg_db, dest, target, origin='newest'),
                                 prune(dest, 'prune', origin_succession=True)], {'db_password': server.password})
        refused = result.result('restore')
        assert refused['_event'] == 'runner_on_failed', refused
        assert OLD in refused['msg'] and new in refused['msg'] and 'overlap' in refused['msg']
        assert target not in [r[0] for r in server.sql('SELECT datname FROM pg_database')]
        # retention of the shared set stays per origin (each server's newest full kept), with a warning
        pruned = result.result('prune')
        assert pruned['_event'] == 'runner_on_ok', pruned
        assert pruned['origin_sets'][0]['origins_relation'] == 'overlapping'
        assert any('overlap' in w for w in pruned.get('warnings', [])), pruned
        assert pruned['deleted_ids'] == [ids[0]]   # keep_last=2 of each: the new server's two stay
    finally:
        server.drop_database(target)
