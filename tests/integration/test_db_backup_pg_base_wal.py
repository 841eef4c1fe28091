"""PostgreSQL base backup + WAL archived by the opsready archive_command helper; restored by hand
(base tar extracted, WAL replayed through restore_command) to prove the chain is complete."""

from __future__ import annotations

import json
import os
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import zstandard

from tests.harness.playbook import conn as login, play
from tests.harness.servers import PostgresServer
from tests.harness.wal_catalog import wal_catalog


# Every column of every row, in primary-key order: a restore missing a row or an update differs here.
FINGERPRINT = ("SELECT count(*), sum(id), "
               "md5(string_agg(id::text || ':' || coalesce(v, '<null>'), ',' ORDER BY id)) FROM t")
EPOCH = "SELECT extract(epoch FROM clock_timestamp())"


def parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace('Z', '+00:00'))


def iso_z(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


@pytest.fixture
def wal_dest():
    """A backup directory the postgres service user can write (as the role sets it up)."""
    with wal_catalog('opsready-pgcat-') as catalog:
        yield catalog.dest, catalog.helper


def test_base_backup_plus_wal_restores_by_hand(postgres_factory, wal_dest, tmp_path):
    dest, helper = wal_dest
    server = postgres_factory(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip' % (helper, dest))
    server.sql('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) '
               'FROM generate_series(1, 10000) g;')
    before_base = float(server.sql(EPOCH)[0][0])
    conn = login(server, 'pw')
    first = play(tmp_path, [
        {'name': 'base', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='base', dest=dest,
                                                               owner='postgres')},
        {'name': 'db with base', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            conn, engine='postgresql', kind='base', dest=dest, owner='postgres', database='postgres')},
    ], {'pw': server.password})
    assert first.rc == 0, first.stdout[-4000:]
    base = first.result('base')['manifest']
    assert base['kind'] == 'base' and base['database'] == '@cluster'
    assert base['verification']['ok'] is True and base['verification']['checks']['engine_check'] == 'pg_verifybackup'
    assert base['position']['log_start'] <= base['position']['log_end']
    assert 'covers the whole cluster' in first.result('db with base')['msg']
    # psql runs each statement in its own transaction: the clock read at the end is after the last commit.
    rows = server.sql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(10001, 12345) g; '
                      'DELETE FROM t WHERE id <= 5; '
                      "UPDATE t SET v = upper(v) || '!' WHERE id % 997 = 0; " + EPOCH)
    last_commit = float(rows[-1][0])
    expected = server.sql(FINGERPRINT)
    assert expected[0][0] == '12340'
    second = play(tmp_path, [
        {'name': 'wal', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='wal', dest=dest,
                                                              owner='postgres')},
        {'name': 'verify', 'opsready.operations.backup_verify': {'path': dest}},
        {'name': 'info', 'opsready.operations.backup_info': {'path': dest, 'database': '@cluster'}},
        {'name': 'info at commit', 'opsready.operations.backup_info': {
            'path': dest, 'database': '@cluster', 'point_in_time': iso_z(last_commit)}},
        {'name': 'info before base', 'opsready.operations.backup_info': {
            'path': dest, 'database': '@cluster', 'point_in_time': iso_z(before_base)}},
    ], {'pw': server.password})
    finished = time.time()
    assert second.rc == 0, second.stdout[-4000:]
    wal = second.result('wal')['manifest']
    assert wal['kind'] == 'wal' and wal['compression'] == 'gzip'
    assert wal['position']['end'] == wal['position']['start'] + 1
    # The archive_command reads the cluster's identity from each segment's header: the same origin the base backup
    # asked the server for, so the two chain (a shared directory never chains another cluster's WAL onto this base).
    origins = {json.loads(Path(dest, name).read_text())['origin'] for name in os.listdir(dest)
               if name.endswith('.manifest.json')}
    assert origins == {'pg:' + server.sql('SELECT system_identifier FROM pg_control_system()')[0][0]}
    assert base['origin'] in origins
    info = second.result('info')
    assert info['chain'][0] == base['id'] and wal['id'] in info['chain'] and info['chain_error'] is None
    assert info['rpo_seconds'] is not None and info['rpo_seconds'] < 300
    # The archived WAL reaches the last commit; the base alone (finished before it) would not.
    until = parse_z(info['recoverable_until']).timestamp()
    assert parse_z(base['consistent_at']).timestamp() < last_commit <= until <= finished + 2
    assert info['window']['until'] == info['recoverable_until']
    # A point between the base and the last commit: the base first, then the WAL holding the commit.
    at_commit = second.result('info at commit')
    assert at_commit['chain_error'] is None and at_commit['chain'][0] == base['id']
    assert at_commit['chain'][-1] == wal['id']
    # Before the base backup: nothing can reach it; reported in chain_error (the module does not fail).
    early = second.result('info before base')
    assert early['chain'] == [] and 'is before the oldest restorable point' in early['chain_error']
    assert early['recoverable_until'] == info['recoverable_until']
    assert all(r['ok'] for r in second.result('verify')['results'])

    # Restore by hand: extract the base backup into a fresh data directory and replay the archived WAL.
    target = PostgresServer()
    try:
        with open(base['path'], 'rb') as raw:
            with zstandard.ZstdDecompressor().stream_reader(raw) as stream:
                with tarfile.open(fileobj=stream, mode='r|') as tar:
                    tar.extractall(target.datadir)  # our own fresh backup; trusted
        restore = ('f=$(ls %s/postgresql-cluster-wal-*-%%f.gz 2>/dev/null | head -1); '
                   '[ -n "$f" ] && gzip -dc "$f" > %%p' % dest)
        with open(target.datadir / 'postgresql.auto.conf', 'a') as conf:
            conf.write("restore_command = '%s'\narchive_mode = off\nrecovery_target_action = 'promote'\n"
                       % restore.replace("'", "''"))
        (target.datadir / 'recovery.signal').write_text('')
        os.chmod(target.datadir, 0o700)
        target.fix_permissions()
        target.password = server.password
        target.start()
        # hot_standby lets connections in once the replay is consistent, before the archived WAL is all replayed:
        # the fingerprint is only the restore's once recovery has ended (recovery_target_action = promote)
        deadline = time.monotonic() + 120
        while target.sql('SELECT pg_is_in_recovery()', superuser=True)[0][0] != 'f':
            assert time.monotonic() < deadline, 'the restored server was still in recovery after 120 s'
            time.sleep(0.2)
        assert target.sql(FINGERPRINT, superuser=True) == expected
    finally:
        target.cleanup()
