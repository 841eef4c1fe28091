"""A backup proves what it holds, PostgreSQL and MariaDB: db_backup records what the source held, backup_verify
fails an artifact that lost the data (a real schema-only dump in place of the real one, with a consistent
checksum: only the comparison with the source can catch it), and drill_step fails a restored scratch
database whose tables lost their rows."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import zstandard

from tests.harness.playbook import conn, play


def swap_artifact(manifest: dict, payload: bytes) -> str:
    """Replace the artifact by ``payload`` (zstd, as db_backup writes it), size and checksum made consistent,
    the earlier verification dropped: checksums pass, only what the source held can tell."""
    path = manifest['path']
    stored = zstandard.ZstdCompressor().compress(payload)
    with open(path, 'wb') as handle:
        handle.write(stored)
    with open(path + '.manifest.json') as handle:
        data = json.load(handle)
    data.update(size=len(stored), sha256=hashlib.sha256(stored).hexdigest())
    data.pop('verification', None)
    with open(path + '.manifest.json', 'w') as handle:
        json.dump(data, handle)
    return path


def test_postgresql_summary_verify_and_drill(pg_db, tmp_path):
    server = pg_db.server
    pg_db.sql('CREATE TABLE items (id int PRIMARY KEY, name text);'
              'INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 3000) g;'
              'CREATE TABLE "Odd ""name""" (x int); INSERT INTO "Odd ""name""" VALUES (1);'
              'CREATE TABLE empty_one (x int);'
              'CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k);'
              'CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);'
              'INSERT INTO parted VALUES (1, 1);')
    dest = tmp_path / 'b'
    scratch = pg_db.name + '_scratch'
    vars_ = {'db_password': server.password}
    result = play(tmp_path, [
        {'name': 'backup', 'register': 'backup', 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(dest))},
        {'name': 'restore', 'opsready.operations.db_restore': dict(
            conn(server, 'db_password'), engine='postgresql', src=str(dest), source_database=pg_db.name,
            database=scratch)},
        {'name': 'drill', 'opsready.operations.drill_step': dict(
            conn(server, 'db_password'), step='integrity', engine='postgresql', database=scratch, source=pg_db.name,
            backup='{{ backup.manifest.path }}')},
    ], vars_)
    assert result.rc == 0, result.stdout[-5000:]
    manifest = result.result('backup')['manifest']
    held = manifest['source']
    assert held['tables'] == 5 and held['non_empty_tables'] == 3 and held['size_bytes'] > 0, held
    checks = result.result('backup')['verification'][0]['checks']
    assert checks['source_check'] == 'ok' and checks['artifact'] == {'tables': 5, 'data_entries': 4}, checks
    drill = result.result('drill')
    assert drill['details']['source']['restored'] == {'tables': 5, 'non_empty_tables': 3, 'rows_total': None}

    # The drill fails when the restored target lost its rows.
    server.sql('TRUNCATE items, "Odd ""name""", parted', database=scratch)
    result = play(tmp_path, [{'name': 'drill', 'ignore_errors': True, 'opsready.operations.drill_step': dict(
        conn(server, 'db_password'), step='integrity', engine='postgresql', database=scratch, source=pg_db.name,
        backup=manifest['path'])}], vars_)
    drill = result.result('drill')
    assert drill['_event'] == 'runner_on_failed' and 'holds no table data' in drill['msg'], drill.get('msg')
    server.drop_database(scratch)

    # A schema-only dump in place of the real one: the checksum matches, the data is gone.
    schema_only = subprocess.run([server.bin('pg_dump'), '-Fc', '-s', '-d', pg_db.name], capture_output=True,
                                 check=True, env=server.dsn_env(database=pg_db.name)).stdout
    swap_artifact(manifest, schema_only)
    result = play(tmp_path, [{'name': 'verify', 'ignore_errors': True,
                              'opsready.operations.backup_verify': {'path': str(dest)}}])
    verify = result.result('verify')
    assert verify['_event'] == 'runner_on_failed', verify
    assert 'holds no table data, but the source held 5 table(s), 3 of them with rows' in verify['msg'], verify['msg']


def test_mariadb_summary_verify_and_drill(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql('CREATE TABLE items (id int PRIMARY KEY, name text);'
                 'INSERT INTO items SELECT seq, md5(seq) FROM seq_1_to_2000;'
                 'CREATE TABLE `odd ``name``` (x int); INSERT INTO `odd ``name``` VALUES (1);'
                 'CREATE TABLE empty_one (x int);')
    dest = tmp_path / 'b'
    scratch = maria_db.name + '_scratch'
    vars_ = {'db_password': server.password}
    result = play(tmp_path, [
        {'name': 'backup', 'register': 'backup', 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest))},
        {'name': 'restore', 'opsready.operations.db_restore': dict(
            conn(server, 'db_password'), engine='mariadb', src=str(dest), source_database=maria_db.name,
            database=scratch)},
        {'name': 'drill', 'opsready.operations.drill_step': dict(
            conn(server, 'db_password'), step='integrity', engine='mariadb', database=scratch, source=maria_db.name,
            backup='{{ backup.manifest.path }}')},
    ], vars_)
    assert result.rc == 0, result.stdout[-5000:]
    manifest = result.result('backup')['manifest']
    held = manifest['source']
    assert held['tables'] == 3 and held['non_empty_tables'] == 2, held
    checks = result.result('backup')['verification'][0]['checks']
    assert checks['source_check'] == 'ok' and checks['artifact']['tables'] == 3, checks
    assert checks['artifact']['insert_statements'] >= 2
    assert result.result('drill')['details']['source']['restored']['non_empty_tables'] == 2

    server.sql('DELETE FROM items; DELETE FROM `odd ``name```;', database=scratch)
    result = play(tmp_path, [{'name': 'drill', 'ignore_errors': True, 'opsready.operations.drill_step': dict(
        conn(server, 'db_password'), step='integrity', engine='mariadb', database=scratch, source=maria_db.name,
        backup=manifest['path'])}], vars_)
    drill = result.result('drill')
    assert drill['_event'] == 'runner_on_failed' and 'holds no table data' in drill['msg'], drill.get('msg')
    server.drop_database(scratch)

    env = dict(os.environ, **server.dsn_env())
    no_data = subprocess.run([server.bin('mariadb-dump'), '--no-data', maria_db.name], capture_output=True,
                             check=True, env=env).stdout
    swap_artifact(manifest, no_data)
    result = play(tmp_path, [{'name': 'verify', 'ignore_errors': True,
                              'opsready.operations.backup_verify': {'path': str(dest)}}])
    verify = result.result('verify')
    assert verify['_event'] == 'runner_on_failed', verify
    assert 'holds no table data, but the source held 3 table(s), 2 of them with rows' in verify['msg'], verify['msg']


def test_postgresql_directory_and_plain_formats_report_what_they_hold(pg_db, tmp_path):
    server = pg_db.server
    pg_db.sql('CREATE TABLE a (x int); INSERT INTO a SELECT generate_series(1, 100);'
              'CREATE TABLE b (x int); CREATE UNLOGGED TABLE c (x int); INSERT INTO c VALUES (1);')
    tasks = [{'name': fmt, 'opsready.operations.db_backup': dict(
        conn(server, 'db_password'), engine='postgresql', database=pg_db.name, dest=str(tmp_path / fmt), format=fmt)}
        for fmt in ('directory', 'plain')]
    result = play(tmp_path, tasks, {'db_password': server.password})
    assert result.rc == 0, result.stdout[-5000:]
    directory = result.result('directory')
    assert directory['manifest']['source']['tables'] == 3 and directory['manifest']['source']['non_empty_tables'] == 2
    assert directory['verification'][0]['checks']['artifact'] == {'tables': 3, 'data_entries': 3}
    plain = result.result('plain')['verification'][0]['checks']
    assert plain['artifact'] == {'tables': 3, 'data_tables': 2} and plain['source_check'] == 'ok', plain
