"""Backups of two servers in one backup directory never mix: every manifest records its source's ``origin`` (what
the server says of itself, not how we reached it), and the catalog never chains, restores or retains across origins.

A second host is simulated the way a shared directory (NFS) really holds one: manifests (and their artifacts) whose
``origin`` names another server, written next to this host's real backups."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

from tests.harness.playbook import conn, play


def manifests(dest: Path) -> list:
    return [json.loads(p.read_text()) for p in sorted(dest.glob('*.manifest.json'))]


def make_sqlite(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    db.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(rows)])
    db.commit()
    db.close()


def test_every_engine_records_the_servers_own_identity(pg_db, maria_db, tmp_path):
    """PostgreSQL: pg: + the cluster's system identifier (read by the non-superuser test login), MariaDB: the
    server's own @@hostname:@@port, SQLite: this machine's name (the label 'localhost' is the same everywhere)."""
    pg, maria = pg_db.server, maria_db.server
    pg_db.sql('CREATE TABLE t (id int)')
    maria_db.sql('CREATE TABLE t (id int)')
    lite = tmp_path / 'app.db'
    make_sqlite(lite, 3)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [
        {'name': 'pg', 'opsready.operations.db_backup': dict(
            conn(pg, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(dest / 'pg'),
            login_password='{{ pg_password }}')},
        {'name': 'maria', 'opsready.operations.db_backup': dict(
            conn(maria, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest / 'maria'))},
        {'name': 'lite', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(lite),
                                                           'dest': str(dest / 'lite')}},
    ], {'pg_password': pg.password, 'db_password': maria.password})
    assert result.rc == 0, result.stdout[-4000:]
    system_id = pg.sql('SELECT system_identifier FROM pg_control_system()')[0][0]
    hostname, port = maria.sql('SELECT @@hostname, @@port')[0]
    (pg_manifest,) = manifests(dest / 'pg')
    (maria_manifest,) = manifests(dest / 'maria')
    (lite_manifest,) = manifests(dest / 'lite')
    assert pg_manifest['origin'] == 'pg:%s' % system_id
    assert maria_manifest['origin'] == '%s:%s' % (hostname, port)
    assert lite_manifest['origin'] == socket.gethostname()
    assert result.result('pg')['manifest']['origin'] == pg_manifest['origin']


def as_other_host(dest: Path, manifest: dict, origin: str) -> None:
    """What host B's backup of the same database name looks like in the shared directory: its manifest records its
    own origin (the artifact is real, and newer than host A's)."""
    path = Path(manifest['path'] + '.manifest.json')
    data = json.loads(path.read_text())
    data['origin'] = origin
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')


def test_restore_never_silently_takes_the_other_servers_newer_backup(pg_db, tmp_path):
    """Host A backs up 'shop' (5 rows); host B's 'shop' (7 rows) lands later in the same directory. Restoring
    'the latest' used to restore host B's data into host A's database without a word."""
    server = pg_db.server
    pg_db.sql('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5)')
    dest = tmp_path / 'shared'
    first = play(tmp_path, [{'name': 'a', 'opsready.operations.db_backup': dict(
        conn(server, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(dest))}],
        {'db_password': server.password})
    assert first.rc == 0, first.stdout[-4000:]
    mine = first.result('a')['manifest']
    pg_db.sql('INSERT INTO t SELECT generate_series(6, 7)')
    second = play(tmp_path, [{'name': 'b', 'opsready.operations.db_backup': dict(
        conn(server, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(dest))}],
        {'db_password': server.password})
    assert second.rc == 0, second.stdout[-4000:]
    other = 'pg:7000000000000000042'
    as_other_host(dest, second.result('b')['manifest'], other)
    target = pg_db.name + '_r'

    def restore(**extra):
        return {'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            conn(server, 'db_password'), engine='postgresql', src=str(dest), source_database=pg_db.name,
            database=target, replace=True, **extra)}

    def info(name='info', **extra):
        return {'name': name, 'ignore_errors': True, 'opsready.operations.backup_info': dict(
            path=str(dest), **extra)}
    try:
        refused = play(tmp_path, [restore(), info(database=pg_db.name), info('whole')],
                       {'db_password': server.password})
        failed = refused.result('restore')
        assert failed['_event'] == 'runner_on_failed', failed
        assert mine['origin'] in failed['msg'] and other in failed['msg'] and 'origin' in failed['msg']
        assert target not in [r[0] for r in server.sql('SELECT datname FROM pg_database')]
        assert refused.result('info')['_event'] == 'runner_on_failed' and other in refused.result('info')['msg']
        # the whole directory: each origin apart, with a warning
        listed = refused.result('whole')
        assert listed['_event'] == 'runner_on_ok', listed
        assert sorted(s['origin'] for s in listed['sets']) == sorted([mine['origin'], other])
        assert listed['mixed_origins'][0]['origins'] == sorted([mine['origin'], other])
        assert any('holds backups of 2 servers' in w for w in listed.get('warnings', []))

        chosen = play(tmp_path, [restore(origin=mine['origin']), info(database=pg_db.name, origin=mine['origin'])],
                      {'db_password': server.password})
        assert chosen.result('restore')['_event'] == 'runner_on_ok', chosen.result('restore')
        assert chosen.result('restore')['chain_ids'] == [mine['id']]
        assert server.sql('SELECT count(*) FROM t', database=target)[0][0] == '5'
        assert chosen.result('info')['chain'] == [mine['id']]
    finally:
        server.drop_database(target)


def test_prune_keeps_the_newest_backup_of_each_server(pg_db, tmp_path):
    """keep_last=1 on the shared directory: host A's only (older) full survives host B's newer ones."""
    server = pg_db.server
    pg_db.sql('CREATE TABLE t (id int)')
    dest = tmp_path / 'shared'
    task = {'name': 'backup', 'opsready.operations.db_backup': dict(
        conn(server, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(dest))}
    ids = []
    for number in range(3):
        result = play(tmp_path, [task], {'db_password': server.password})
        assert result.rc == 0, result.stdout[-4000:]
        manifest = result.result('backup')['manifest']
        ids.append(manifest['id'])
        if number:
            as_other_host(dest, manifest, 'pg:7000000000000000042')
    pruned = play(tmp_path, [{'name': 'prune', 'opsready.operations.backup_prune': {
        'path': str(dest), 'keep_last': 1}}])
    assert pruned.rc == 0, pruned.stdout[-4000:]
    assert pruned.result('prune')['deleted_ids'] == [ids[1]]
    left = sorted(p.name[:-len('.manifest.json')] for p in dest.glob('*.manifest.json'))
    assert left == sorted([ids[0], ids[2]])


def test_binlog_backup_never_skips_a_binlog_another_server_archived(maria_db, tmp_path):
    """Binlog numbers are per server: host B's mariadb-bin.N in the shared directory is not host A's. db_backup
    kind=log used to count B's as already archived and skip A's own binlog N (a silent hole in A's chain)."""
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)')
    dest = tmp_path / 'shared'
    task = {'name': 'full', 'opsready.operations.db_backup': dict(
        conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest))}
    first = play(tmp_path, [task], {'db_password': server.password})
    assert first.rc == 0, first.stdout[-4000:]
    full = first.result('full')['manifest']
    start = full['position']['log_start']
    # host B archived its own binlog with that number (and an older full of its own) into the same directory
    for kind, position in (('full', {'log_start': start}), ('log', {'start': start, 'end': start + 1})):
        name = 'mariadb-%s-%s-20200101T000000000000Z-hostb' % (maria_db.name, kind)
        (dest / name).write_bytes(b'host b')
        data = dict(full, id=name, artifact=name, kind=kind, position=position, origin='db-b.example:3306',
                    started='2020-01-01T00:00:00.000000Z', finished='2020-01-01T00:00:00.000000Z',
                    consistent_at='2020-01-01T00:00:00.000000Z', size=6,
                    sha256='5c0b5cb2cf4bd4f6b37e6dd2d2ad2b5ee1ebc6ab0dd1c0dbf0a8e5e21b1ab6b2')
        data.pop('path', None)
        data.pop('verification', None)
        (dest / (name + '.manifest.json')).write_text(json.dumps(data))
    maria_db.sql('INSERT INTO t VALUES (2)')
    second = play(tmp_path, [{'name': 'log', 'opsready.operations.db_backup': dict(
        conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest), kind='log')}],
        {'db_password': server.password})
    assert second.rc == 0, second.stdout[-4000:]
    logs = second.result('log')['manifests']
    assert logs and logs[0]['position']['start'] == start, 'binlog %d of this server was skipped' % start
    assert logs[0]['origin'] == full['origin']
    third = play(tmp_path, [{'name': 'info', 'opsready.operations.backup_info': {
        'path': str(dest), 'database': maria_db.name, 'origin': full['origin']}}])
    info = third.result('info')
    assert info['chain'][:2] == [full['id'], logs[0]['id']] and info['chain_error'] is None
