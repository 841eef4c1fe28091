"""Backups of two servers in one backup directory never mix: every manifest records its source's ``origin`` (what
the server says of itself, not how we reached it), and the catalog never chains, restores or retains across origins.

A second host is simulated the way a shared directory (NFS) really holds one: manifests (and their artifacts) whose
``origin`` names another server, written next to this host's real backups."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

from tests.harness.playbook import run_playbook


def play(tmp_path: Path, tasks: list, extravars: dict | None = None, **kw):
    book = tmp_path / ('play-%d.yml' % len(list(tmp_path.glob('play-*.yml'))))
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    return run_playbook(str(book), extravars=extravars, **kw)


def conn(server) -> dict:
    return {'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
            'login_password': '{{ db_password }}'}


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
            conn(pg), engine='postgresql', database=pg_db.name, dest=str(dest / 'pg'),
            login_password='{{ pg_password }}')},
        {'name': 'maria', 'opsready.operations.db_backup': dict(
            conn(maria), engine='mariadb', database=maria_db.name, dest=str(dest / 'maria'))},
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
