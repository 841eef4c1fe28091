"""db_restore, PostgreSQL logical: real pg_dump backups restored with pg_restore into a real server."""

from __future__ import annotations

from pathlib import Path

from tests.harness.playbook import conn, play


def seed(db, rows: int = 3000) -> None:
    db.sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));"
           "INSERT INTO items SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, %d) g;"
           "CREATE INDEX items_name ON items (name);"
           "CREATE VIEW cheap AS SELECT * FROM items WHERE price < 100;" % rows)


def fingerprint(server, database: str) -> tuple:
    return server.sql("SELECT count(*), md5(string_agg(id::text || name || price::text, ',' ORDER BY id)) "
                      "FROM items", database=database)[0]


def temp_databases(server) -> list:
    return [r[0] for r in server.sql("SELECT datname FROM pg_database WHERE datname LIKE '%opsready%'")]


def backup(tmp_path, db, **options):
    dest = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': dict(
        conn(db.server), engine='postgresql', database=db.name, dest=str(dest), **options)}],
        {'pg_password': db.server.password})
    assert result.rc == 0, result.stdout[-3000:]
    return dest, result.result('backup')['manifest']


def restore_task(server, dest, name='restore', **options):
    return {'name': name, 'opsready.operations.db_restore': dict(conn(server), engine='postgresql', src=str(dest),
                                                                 **options)}


def test_restore_to_new_name_then_refuse_then_replace(pg_db, tmp_path):
    server = pg_db.server
    seed(pg_db)
    expected = fingerprint(server, pg_db.name)
    dest, manifest = backup(tmp_path, pg_db)
    copy = pg_db.name + '_copy'
    try:
        # 1. another name on the same server, parallel jobs from a zstd custom dump
        result = play(tmp_path, [restore_task(server, dest, source_database=pg_db.name, database=copy, jobs=2)],
                      {'pg_password': server.password}, diff=True)
        assert result.rc == 0, result.stdout[-3000:]
        res = result.result('restore')
        assert res['changed'] is True and res['replaced'] is False
        assert res['chain_ids'] == [manifest['id']] and res['verification'][0]['checksum'] == 'ok'
        assert res['target']['database'] == copy and res['target']['objects'] == 2
        assert res['method'] == 'logical' and res['jobs'] == 2 and 'decompressed' in res['method_detail']
        assert res['point_reached'] == manifest['consistent_at']
        assert res['wall_seconds'] > 0 and res['restore_seconds'] > 0
        assert fingerprint(server, copy) == expected
        assert server.sql("SELECT count(*) FROM cheap", database=copy)[0][0] == '66'
        assert temp_databases(server) == []
        assert server.password not in result.stdout

        # 2. the original is damaged; restoring over it without replace is refused and it stays as it is
        pg_db.sql("DELETE FROM items WHERE id > 10")
        result = play(tmp_path, [restore_task(server, dest, database=pg_db.name)], {'pg_password': server.password})
        assert result.rc != 0
        failed = result.result('restore')
        assert 'exists and is not empty' in failed['msg'] and 'replace=true' in failed['msg']
        assert fingerprint(server, pg_db.name)[0] == '10'
        assert temp_databases(server) == []

        # 3. check mode with replace plans, verifies, changes nothing
        result = play(tmp_path, [restore_task(server, dest, database=pg_db.name, replace=True)],
                      {'pg_password': server.password}, check=True)
        assert result.rc == 0, result.stdout[-3000:]
        assert result.result('restore')['changed'] is True
        assert fingerprint(server, pg_db.name)[0] == '10'

        # 4. replace=true swaps the restored copy in (a session is connected to the old one meanwhile)
        result = play(tmp_path, [restore_task(server, dest, database=pg_db.name, replace=True)],
                      {'pg_password': server.password})
        assert result.rc == 0, result.stdout[-3000:]
        assert result.result('restore')['replaced'] is True
        assert fingerprint(server, pg_db.name) == expected
        assert temp_databases(server) == []
    finally:
        server.drop_database(copy)


def test_corrupt_artifact_stops_before_target(pg_db, tmp_path):
    server = pg_db.server
    seed(pg_db, rows=500)
    dest, manifest = backup(tmp_path, pg_db)
    pg_db.sql("INSERT INTO items VALUES (100000, 'after', 1)")
    before = fingerprint(server, pg_db.name)
    path = Path(manifest['path'])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = play(tmp_path, [restore_task(server, dest, database=pg_db.name, replace=True)],
                  {'pg_password': server.password})
    assert result.rc != 0
    msg = result.result('restore')['msg']
    assert manifest['id'] in msg and 'before touching the target' in msg and 'checksum' in msg
    assert fingerprint(server, pg_db.name) == before
    assert temp_databases(server) == []


def test_directory_dump_state_absent_and_bad_input(pg_db, tmp_path):
    server = pg_db.server
    seed(pg_db, rows=2000)
    expected = fingerprint(server, pg_db.name)
    dest, manifest = backup(tmp_path, pg_db, format='directory', jobs=2, compression='gzip')
    scratch = pg_db.name + '_drill'
    result = play(tmp_path, [
        restore_task(server, dest, source_database=pg_db.name, database=scratch, jobs=2, artifact=manifest['id']),
        restore_task(server, dest, name='drop', database=scratch, state='absent'),
        restore_task(server, dest, name='drop again', database=scratch, state='absent'),
    ], {'pg_password': server.password})
    assert result.rc == 0, result.stdout[-3000:]
    assert 'directory' in result.result('restore')['method_detail']
    assert result.result('drop')['changed'] is True and result.result('drop again')['changed'] is False
    assert server.sql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % scratch)[0][0] == '0'
    assert fingerprint(server, pg_db.name) == expected
    # a logical dump cannot reach an arbitrary point: the window is in the message
    result = play(tmp_path, [restore_task(server, dest, source_database=pg_db.name, database=scratch,
                                          stop_at='2000-01-01T00:00:00Z')], {'pg_password': server.password})
    assert result.rc != 0
    msg = result.result('restore')['msg']
    assert 'recoverable window is %s' % manifest['consistent_at'] in msg
    # a time without a zone is refused
    result = play(tmp_path, [restore_task(server, dest, source_database=pg_db.name, database=scratch,
                                          stop_at='2026-01-01T00:00:00')], {'pg_password': server.password})
    assert result.rc != 0 and 'no time zone' in result.result('restore')['msg']
