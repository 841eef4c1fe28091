"""db_restore, MariaDB: dump + binary logs replayed up to a point in time, against a real server."""

from __future__ import annotations

import datetime
import time

from tests.harness.playbook import conn, play


def names(server, database: str) -> list:
    return [r[0] for r in server.sql('SELECT label FROM events ORDER BY id', database=database)]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def test_point_in_time_restore_from_dump_and_binlogs(maria_db, tmp_path):
    server = maria_db.server
    assert server.sql('SELECT @@global.time_zone, @@system_time_zone')[0][1] in ('UTC', 'Etc/UTC')
    maria_db.sql('CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, label VARCHAR(20) NOT NULL, '
                 'pad VARBINARY(200)) ENGINE=InnoDB;'
                 "INSERT INTO events (label, pad) VALUES ('t1', RANDOM_BYTES(100))")
    dest = tmp_path / 'backups'
    backup = {'engine': 'mariadb', 'database': maria_db.name, 'dest': str(dest)}
    extravars = {'db_password': server.password}
    result = play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': dict(conn(server, 'db_password'),
                                                                                    **backup)}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    full = result.result('full')['manifest']
    assert full['position']['binlog_file']

    time.sleep(1.2)
    maria_db.sql("INSERT INTO events (label) VALUES ('t2'); UPDATE events SET pad = 'changed' WHERE label = 't1'")
    time.sleep(1.5)
    point = utc_now()
    time.sleep(1.5)
    maria_db.sql("INSERT INTO events (label) VALUES ('t3'); DELETE FROM events WHERE label = 't1'")
    # noise in another database on the same server must not leak into the restore
    server.sql('CREATE DATABASE IF NOT EXISTS noise; CREATE TABLE IF NOT EXISTS noise.events (id INT, label TEXT);'
               "INSERT INTO noise.events VALUES (1, 'noise')", superuser=True)
    time.sleep(1.1)
    result = play(tmp_path, [{'name': 'logs', 'opsready.operations.db_backup': dict(conn(server, 'db_password'),
                                                                                    kind='log', **backup)}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    logs = result.result('logs')['manifests']
    assert logs

    restore = dict(conn(server, 'db_password'), engine='mariadb', src=str(dest), source_database=maria_db.name)
    target = maria_db.name + '_pitr'
    try:
        result = play(tmp_path, [
            {'name': 'pitr', 'opsready.operations.db_restore': dict(restore, database=target,
                                                                    stop_at=point.isoformat())},
            {'name': 'latest', 'opsready.operations.db_restore': dict(restore, database=target + '_l')},
            {'name': 'refused', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
                restore, database=maria_db.name, stop_at=point.isoformat())},
            {'name': 'too late', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
                restore, database=target + '_x', stop_at='2099-01-01T00:00:00+02:00')},
        ], extravars)
        assert result.rc == 0, result.stdout[-3000:]
        pitr = result.result('pitr')
        assert names(server, target) == ['t1', 't2']
        assert server.sql("SELECT pad FROM events WHERE label = 't1'", database=target)[0][0] == 'changed'
        assert pitr['chain_ids'][0] == full['id'] and len(pitr['chain_ids']) >= 2
        assert pitr['point_reached'] <= point.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
        assert pitr['binlogs_replayed'] and pitr['start_position'] == full['position']['binlog_pos']
        assert names(server, target + '_l') == ['t2', 't3']
        refused = result.result('refused')
        assert refused['_event'] == 'runner_on_failed' and 'exists and is not empty' in refused['msg']
        assert names(server, maria_db.name) == ['t2', 't3']
        late = result.result('too late')
        assert late['_event'] == 'runner_on_failed' and 'outside the recoverable window' in late['msg']
        assert full['consistent_at'] in late['msg']
        leftovers = server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE "
                               "'%opsready%' OR SCHEMA_NAME LIKE '%\\_x'")
        assert leftovers == []
        assert server.sql("SELECT count(*) FROM noise.events")[0][0] == '1'
        assert server.password not in result.stdout

        # replace=true: the damaged database goes back to the point in time
        result = play(tmp_path, [{'name': 'replace', 'opsready.operations.db_restore': dict(
            restore, database=maria_db.name, stop_at=point.isoformat(), replace=True)}], extravars)
        assert result.rc == 0, result.stdout[-3000:]
        assert result.result('replace')['replaced'] is True
        assert names(server, maria_db.name) == ['t1', 't2']
    finally:
        for name in (target, target + '_l', 'noise'):
            server.drop_database(name)
