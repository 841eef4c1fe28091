"""db_backup / backup_verify / backup_info against a real PostgreSQL 15, restored by hand with pg_restore."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path


from tests.harness.playbook import conn, play

ZSTD = '/usr/bin/zstd'


def seed(db, rows: int = 5000) -> str:
    db.sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));"
           "INSERT INTO items SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, %d) g;"
           "CREATE TABLE notes (id serial PRIMARY KEY, body text);"
           "INSERT INTO notes (body) SELECT repeat(md5(g::text), 3) FROM generate_series(1, 700) g;" % rows)
    return fingerprint(db.server, db.name)


def fingerprint(server, database: str) -> str:
    rows = server.sql("SELECT count(*), md5(string_agg(id::text || name || price::text, ',' ORDER BY id)) FROM items;"
                      "SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM notes;", database=database)
    return hashlib.sha256(repr(rows).encode()).hexdigest() + ' ' + repr(rows[0][0]) + ' ' + repr(rows[1][0])


def restore_custom(server, artifact: str, target: str) -> None:
    server.create_database(target)
    env = server.dsn_env(database=target)
    dec = subprocess.Popen([ZSTD, '-dc', artifact], stdout=subprocess.PIPE)
    subprocess.run([server.bin('pg_restore'), '--exit-on-error', '--no-owner', '-d', target], stdin=dec.stdout,
                   env=env, check=True, capture_output=True)
    assert dec.wait() == 0


def test_custom_dump_backup_verify_restore(pg_db, tmp_path):
    server = pg_db.server
    expected = seed(pg_db)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [
        {'name': 'backup', 'opsready.operations.db_backup': dict(
            conn(server), engine='postgresql', database=pg_db.name, dest=str(dest))},
        {'name': 'verify', 'opsready.operations.backup_verify': {'path': str(dest)}},
        {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest), 'database': pg_db.name}},
    ], {'pg_password': server.password})
    assert result.rc == 0, result.stdout[-4000:]
    backup = result.result('backup')
    assert backup['changed'] is True
    manifest = backup['manifest']
    assert manifest['engine'] == 'postgresql' and manifest['kind'] == 'full' and manifest['format'] == 'custom'
    assert manifest['compression'] == 'zstd' and manifest['verification']['ok'] is True
    assert manifest['position']['lsn'] and manifest['position']['wal_file']
    artifact = manifest['path']
    assert artifact.endswith('.dump.zst') and os.path.getsize(artifact) == manifest['size']
    assert hashlib.sha256(Path(artifact).read_bytes()).hexdigest() == manifest['sha256']
    assert server.password not in json.dumps(backup)
    assert server.password not in result.stdout
    verify = result.result('verify')
    assert verify['checked'] == 1 and verify['failures'] == [] and verify['changed'] is False
    assert verify['results'][0]['checks']['toc_entries'] > 3
    info = result.result('info')
    assert info['newest_full']['id'] == manifest['id'] and info['chain'] == [manifest['id']]
    assert 0 <= info['rpo_seconds'] < 300
    # Restore by hand with the engine's own tools into another database: same rows, same data.
    restore_custom(server, artifact, pg_db.name + '_r')
    try:
        assert fingerprint(server, pg_db.name + '_r') == expected
    finally:
        server.drop_database(pg_db.name + '_r')


def test_directory_format_parallel_and_plain_and_globals(pg_db, tmp_path):
    server = pg_db.server
    expected = seed(pg_db)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [
        {'name': 'dir', 'opsready.operations.db_backup': dict(
            conn(server), engine='postgresql', database=pg_db.name, dest=str(dest), format='directory', jobs=2,
            compression='gzip', compression_level=1)},
        {'name': 'plain', 'opsready.operations.db_backup': dict(
            conn(server), engine='postgresql', database=pg_db.name, dest=str(dest), format='plain',
            compression='gzip', include_globals=True)},
        {'name': 'verify', 'opsready.operations.backup_verify': {'path': str(dest)}},
    ], {'pg_password': server.password})
    assert result.rc == 0, result.stdout[-4000:]
    dirman = result.result('dir')['manifest']
    assert os.path.isdir(dirman['path']) and dirman['format'] == 'directory' and dirman['tool']['jobs'] == 2
    assert len(dirman['members']) >= 3 and dirman['compression_level'] == 1
    plain = result.result('plain')['manifests']
    assert [m['database'] for m in plain] == [pg_db.name, '@globals']
    assert plain[0]['path'].endswith('.sql.gz')
    assert result.result('verify')['checked'] == 3
    # directory format restores with pg_restore -j
    target = pg_db.name + '_d'
    server.create_database(target)
    try:
        subprocess.run([server.bin('pg_restore'), '--exit-on-error', '--no-owner', '-j', '2', '-d', target,
                        dirman['path']], env=server.dsn_env(database=target), check=True, capture_output=True)
        assert fingerprint(server, target) == expected
    finally:
        server.drop_database(target)
    # plain format restores with psql
    target = pg_db.name + '_p'
    server.create_database(target)
    try:
        sql = subprocess.run(['gzip', '-dc', plain[0]['path']], capture_output=True, check=True).stdout
        subprocess.run([server.bin('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', target], input=sql,
                       env=server.dsn_env(database=target), check=True, capture_output=True)
        assert fingerprint(server, target) == expected
    finally:
        server.drop_database(target)


def test_check_mode_writes_nothing_and_unsupported_kind_is_clear(pg_db, tmp_path):
    server = pg_db.server
    dest = tmp_path / 'backups'
    result = play(tmp_path, [
        {'name': 'check', 'check_mode': True, 'opsready.operations.db_backup': dict(
            conn(server), engine='postgresql', database=pg_db.name, dest=str(dest))},
        {'name': 'diff kind', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            conn(server), engine='postgresql', database=pg_db.name, dest=str(dest), kind='diff')},
    ], {'pg_password': server.password})
    assert result.rc == 0, result.stdout[-4000:]
    assert result.result('check')['changed'] is True
    assert not dest.exists()
    msg = result.result('diff kind')['msg']
    assert 'kind=diff is not supported by engine postgresql' in msg and 'base' in msg
