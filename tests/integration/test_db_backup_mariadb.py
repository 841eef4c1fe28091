"""db_backup on a real MariaDB: dump with binlog coordinates, binlog copies as log artifacts, restored by hand."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tests.harness.playbook import conn, play


def fingerprint(server, database: str) -> str:
    rows = server.sql("SELECT count(*), md5(group_concat(id, name, price ORDER BY id SEPARATOR ',')) FROM items",
                      database=database)
    return repr(rows)


def seed(db) -> str:
    db.sql("SET SESSION group_concat_max_len = 100000000;"
           "CREATE TABLE items (id int PRIMARY KEY, name varchar(64) NOT NULL, price decimal(10,2)) ENGINE=InnoDB;"
           "INSERT INTO items SELECT seq, md5(seq), seq * 1.5 FROM seq_1_to_3000;"
           "CREATE PROCEDURE add_item(i int) INSERT INTO items VALUES (i, md5(i), i);"
           "CREATE TRIGGER t_items BEFORE INSERT ON items FOR EACH ROW SET NEW.name = NEW.name;")
    return fingerprint(db.server, db.name)


def mariadb_client(server, database: str, sql: bytes) -> None:
    subprocess.run([server.bin('mariadb'), '--defaults-file=%s' % server.option_file(), database], input=sql,
                   check=True, capture_output=True)


def test_full_and_binlogs_restore_by_hand(maria_db, tmp_path):
    server = maria_db.server
    server.sql("SET GLOBAL group_concat_max_len = 100000000", superuser=True)
    expected_full = seed(maria_db)
    dest = tmp_path / 'backups'
    extravars = {'db_password': server.password}
    first = play(tmp_path, [
        {'name': 'log before full', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest), kind='log')},
        {'name': 'full', 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest))},
    ], extravars)
    assert first.rc == 0, first.stdout[-4000:]
    assert 'take kind=full first' in first.result('log before full')['msg']
    full = first.result('full')['manifest']
    assert full['engine'] == 'mariadb' and full['verification']['ok'] is True
    assert full['position']['binlog_file'].startswith('mariadb-bin.') and full['position']['binlog_pos'] > 0
    assert full['position']['log_start'] == int(full['position']['binlog_file'].rsplit('.', 1)[1])
    # Changes after the full, then a log backup: the binlogs carry them.
    server.sql("INSERT INTO items VALUES (5001, 'after-full', 9.99); CALL add_item(5002);", database=maria_db.name)
    expected_after = fingerprint(server, maria_db.name)
    second = play(tmp_path, [
        {'name': 'log', 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest), kind='log')},
        {'name': 'again', 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest), kind='log')},
        {'name': 'verify', 'opsready.operations.backup_verify': {'path': str(dest)}},
        {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest), 'database': maria_db.name}},
    ], extravars)
    assert second.rc == 0, second.stdout[-4000:]
    logs = second.result('log')['manifests']
    assert logs and logs[0]['position']['start'] == full['position']['log_start']
    assert all(m['kind'] == 'log' and m['events'] > 0 and m['verification']['ok'] for m in logs)
    again = second.result('again')['manifests']
    assert {m['position']['start'] for m in again}.isdisjoint({m['position']['start'] for m in logs})
    info = second.result('info')
    assert info['chain'][0] == full['id'] and set(m['id'] for m in logs) <= set(info['chain'])
    assert server.password not in json.dumps(first.result('full')) + second.stdout + first.stdout
    # Restore by hand: the dump into a new database gives the rows at the time of the full ...
    target = maria_db.name + '_r'
    server.create_database(target)
    try:
        dump = subprocess.run(['zstd', '-dc', full['path']], capture_output=True, check=True).stdout
        mariadb_client(server, target, dump)
        assert fingerprint(server, target) == expected_full
        # ... and replaying the binlogs from the recorded position gives the rows at the log backup.
        raw = tmp_path / 'binlogs'
        raw.mkdir()
        files = []
        for m in sorted(logs, key=lambda m: m['position']['start']):
            path = raw / m['position']['binlog_file']
            path.write_bytes(subprocess.run(['zstd', '-dc', m['path']], capture_output=True, check=True).stdout)
            files.append(str(path))
        replay = subprocess.run([server.bin('mariadb-binlog'), '--start-position=%d' % full['position']['binlog_pos'],
                                 '--database=%s' % maria_db.name, '--rewrite-db=%s->%s' % (maria_db.name, target)]
                                + files, capture_output=True, check=True).stdout
        mariadb_client(server, target, replay)
        assert fingerprint(server, target) == expected_after
    finally:
        server.drop_database(target)
    digest = hashlib.sha256(Path(full['path']).read_bytes()).hexdigest()
    assert digest == full['sha256']
