"""MariaDB point-in-time restore: a binary log damaged inside an event (one byte changed on the server's disk, or in
the catalog before it was checksummed) must never be replayed as if it were intact.

Every event of a binary log written with ``binlog_checksum=CRC32`` (the default) carries the CRC32 of its bytes.
Before, the log backup walked only the event headers and ``mariadb-binlog`` replayed without checking the CRC: the
damaged value was backed up, verified and restored without a word. One private server for both halves.
"""

from __future__ import annotations

import glob
import hashlib
import json
import time

from tests.harness.playbook import conn, play


def _flip(path: str, needle: bytes) -> None:
    """Change the first byte of the last ``needle`` in the file (G -> B): in the row event (the first is the
    statement's text in its Annotate_rows event), so a replay writes the value BOOD-..."""
    with open(path, 'r+b') as handle:
        data = handle.read()
        at = data.rfind(needle)
        assert at > 0, (path, needle)
        handle.seek(at)
        handle.write(b'B')


def test_damaged_binlog_event_is_refused_at_backup_and_at_restore(mariadb_factory, tmp_path):
    server = mariadb_factory()
    server.sql('CREATE DATABASE app; CREATE TABLE app.events (id INT PRIMARY KEY, label VARCHAR(40) NOT NULL)'
               " ENGINE=InnoDB; INSERT INTO app.events VALUES (1, 'before')", superuser=True)
    dest = tmp_path / 'backups'
    backup = {'engine': 'mariadb', 'database': 'app', 'dest': str(dest), 'compression': 'none'}
    extravars = {'db_password': server.password}
    result = play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': dict(conn(server, 'db_password'),
                                                                                    **backup)}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    time.sleep(1.1)
    server.sql("INSERT INTO app.events VALUES (2, 'GOOD-IN-CATALOG'); FLUSH BINARY LOGS", superuser=True)
    result = play(tmp_path, [{'name': 'logs', 'opsready.operations.db_backup': dict(conn(server, 'db_password'),
                                                                                    kind='log', **backup)}], extravars)
    assert result.rc == 0, result.stdout[-3000:]

    # 1. damaged in the catalog, its manifest rewritten to match (archived damaged): the restore refuses it
    manifest_path = [p for p in dest.glob('*.manifest.json') if json.loads(p.read_text())['kind'] == 'log'
                     and b'GOOD-IN-CATALOG' in (dest / json.loads(p.read_text())['artifact']).read_bytes()][0]
    manifest = json.loads(manifest_path.read_text())
    artifact = dest / manifest['artifact']
    _flip(str(artifact), b'GOOD-IN-CATALOG')
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    manifest.update(sha256=digest, plain_sha256=digest)
    manifest_path.write_text(json.dumps(manifest))
    # 2. damaged on the server's disk before the copy: the log backup refuses it, naming the log and the event
    server.sql("INSERT INTO app.events VALUES (3, 'GOOD-ON-DISK'); FLUSH BINARY LOGS", superuser=True)
    basename = server.sql('SELECT @@log_bin_basename', superuser=True)[0][0]
    closed = sorted(glob.glob(glob.escape(basename) + '.[0-9]*'))[-2]
    _flip(closed, b'GOOD-ON-DISK')
    restore = dict(conn(server, 'db_password'), engine='mariadb', src=str(dest), source_database='app',
                   database='app_copy')
    result = play(tmp_path, [
        {'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': restore},
        {'name': 'damaged', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            conn(server, 'db_password'), kind='log', **backup)}], extravars)
    damaged = result.result('damaged')
    assert damaged['_event'] == 'runner_on_failed', damaged
    assert 'CRC32' in damaged['msg'] and closed.rsplit('/', 1)[1] in damaged['msg'], damaged['msg']
    restored = result.result('restore')
    rows = server.sql("SELECT label FROM information_schema.SCHEMATA s JOIN app_copy.events ON 1 "
                      "WHERE s.SCHEMA_NAME = 'app_copy'", superuser=True, check=False) \
        if restored['_event'] == 'runner_on_ok' else []
    assert restored['_event'] == 'runner_on_failed', rows
    assert 'CRC32 checksum does not match' in restored['msg'] and 'untouched' in restored['msg'], restored['msg']
    assert server.sql("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'app%'",
                      superuser=True)[0][0] == '1'
