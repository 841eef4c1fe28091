"""What the PostgreSQL point-in-time recovery tests share: a playbook runner, the WAL filed into the catalog, and the
set-up most of them start from (``app_with_base_backup``).

Every helper works on what the calling test passes it (its own server from ``postgres_factory``, its own
``tmp_path``): nothing is shared between tests, each of which goes on to change its server and its backups.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import wal_file_segno
from tests.harness.playbook import conn, play  # noqa: F401  (the PITR tests import them from here too)

SEGMENT = 16 * 1024 * 1024


def switch_and_wait(server) -> None:
    name = server.sql('SELECT pg_walfile_name(pg_switch_wal())')[0][0]
    deadline = time.monotonic() + 60
    while not (server.wal_archive_dir / name).exists():
        assert time.monotonic() < deadline, 'WAL %s was not archived' % name
        time.sleep(0.1)


def catalog_wal(server, dest: Path) -> list:
    written = []
    for path in sorted(server.wal_archive_dir.iterdir()):
        if not re.fullmatch(r'[0-9A-F]{24}', path.name):
            continue
        timeline, segno = wal_file_segno(path.name, SEGMENT)
        when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
        artifact = dest / ('postgresql-cluster-wal-%s.%s.zst' % (stamp(when), path.name))
        if artifact.exists():
            continue
        writer = ArtifactWriter(str(artifact), compression='zstd', hash_plain=True)
        with open(path, 'rb') as handle:
            writer.copy_from(handle)
        stored = writer.commit()
        write_manifest(str(artifact), {
            'engine': 'postgresql', 'kind': 'wal', 'database': '@cluster', 'server': 'test',
            'started': isoformat(when), 'finished': isoformat(when), 'consistent_at': isoformat(when),
            'size': stored['size'], 'sha256': stored['sha256'], 'plain_sha256': stored['plain_sha256'],
            'compression': 'zstd', 'parent': None,
            'position': {'start': segno, 'end': segno + 1, 'wal_file': path.name, 'timeline': timeline,
                         'wal_segment_size': SEGMENT}})
        written.append(path.name)
    return written


def labels(server, port: int, password: str, database: str) -> list:
    env = dict(os.environ, PGHOST='127.0.0.1', PGPORT=str(port), PGUSER=server.user, PGPASSWORD=password,
               PGDATABASE=database)
    out = subprocess.run([server.bin('psql'), '-X', '-A', '-t', '-c', 'SELECT label FROM events ORDER BY id'],
                         env=env, check=True, capture_output=True, text=True).stdout
    return out.split()


def app_with_base_backup(postgres_factory, tmp_path: Path) -> SimpleNamespace:
    """A new server (``postgres_factory``) with database ``app`` holding table ``events`` ('t1'), and a base backup of
    it (db_backup kind=base) in ``tmp_path``/backups: ``server``, ``dest``, ``extravars`` (the password),
    ``base`` (the backup's manifest). A new one each call: the tests write to the server and rewrite the backups."""
    server = postgres_factory()
    server.create_database('app')
    server.sql('CREATE TABLE events (id serial PRIMARY KEY, label text NOT NULL);'
               "INSERT INTO events (label) VALUES ('t1')", database='app')
    dest = tmp_path / 'backups'
    extravars = {'pg_password': server.password}
    result = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
        conn(server), engine='postgresql', kind='base', dest=str(dest), owner='postgres')}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    return SimpleNamespace(server=server, dest=dest, extravars=extravars, base=result.result('base')['manifest'])
