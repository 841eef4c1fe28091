"""Point-in-time DR drills through real ansible-playbook runs of playbooks/dr_drill.yml.

PostgreSQL 15 with WAL archiving (the collection's archive_command helper into the catalog, archive_timeout
of ARCHIVE_TIMEOUT s) and ``track_commit_timestamp`` so the test knows each row's exact commit time (the drill
does not need it). One server and one base backup per module; a writer inserts one row per WRITE_EVERY s:

* newest instant under the running writer: the drill's recovered instant (read from the recovered cluster) is
  within the archive_timeout of the drill start, and it matches the rows present exactly: the last row recovered
  committed at or before it, the first one missing after it;
* a chosen past instant (``stop_at``) between two commits: exactly the rows before it;
* a WAL segment deleted from the archive: the drill fails naming it, and the scratch cluster is gone.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.harness.playbook import conn, play, run_playbook
from tests.harness.servers import PostgresServer
from tests.harness.wal_catalog import wal_catalog

ARCHIVE_TIMEOUT = 2
WRITE_EVERY = 0.15
UTC = datetime.timezone.utc
COMMITS = ("SELECT id, to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', "
           "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM ticks ORDER BY id")
SMOKE = [{'name': 'ticks', 'sql': 'SELECT count(*) AS n, coalesce(max(id), 0) AS last_id FROM ticks',
          'expect': {'rows_at_least': 1}}]


def parse_z(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).astimezone(UTC)


class Writer:
    """One row per WRITE_EVERY seconds, each its own transaction, until stopped."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.errors: list = []

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.server.sql('INSERT INTO ticks DEFAULT VALUES', database='app')
            except Exception as exc:  # surfaced by stop()
                self.errors.append(exc)
                return
            self.stop_event.wait(WRITE_EVERY)

    def start(self) -> 'Writer':
        self.stop_event.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(30)
        assert not self.errors, self.errors


@pytest.fixture(scope='module')
def cluster():
    """A WAL-archiving server, its catalog (base backup + archived WAL of ~4 s of writes), a scratch root."""
    # the catalog's directory (0711) is the scratch root: the recovered server runs as postgres and must reach it
    with wal_catalog('opsready-pitrdrill-') as catalog:
        top, dest = Path(catalog.dest).parent, Path(catalog.dest)
        server = PostgresServer(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip'
                                % (catalog.helper, dest),
                                extra_conf={'track_commit_timestamp': True, 'archive_timeout': ARCHIVE_TIMEOUT})
        try:
            server.start()
            server.create_database('app')
            server.sql('CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())',
                       database='app')
            reports = top / 'reports'
            run = play(top, [{'name': 'base', 'opsready.operations.db_backup': dict(
                conn(server, 'pw'), engine='postgresql', kind='base', dest=str(dest),
                owner='postgres')}], {'pw': server.password})
            assert run.rc == 0, run.stdout[-3000:]
            writer = Writer(server).start()
            time.sleep(2 * ARCHIVE_TIMEOUT + 1)
            writer.stop()
            yield {'server': server, 'dest': dest, 'top': top, 'reports': reports}
        finally:
            server.cleanup()


def drill(cluster, name, **overrides):
    server = cluster['server']
    database = {'name': name, 'engine': 'postgresql', 'pitr': True, 'database': 'app',
                'backup_dir': str(cluster['dest']), 'login_host': server.host, 'login_port': server.port,
                'login_user': server.user, 'password_var': 'drill_password', 'smoke_queries': SMOKE,
                'rpo_seconds': ARCHIVE_TIMEOUT + 30}
    database.update(overrides)
    extravars = {'dr_drill_report_dir': str(cluster['reports'] / name), 'drill_password': server.password,
                 'dr_drill_scratch_dir': str(cluster['top'] / 'scratch'), 'dr_drill_databases': [database]}
    result = run_playbook('playbooks/dr_drill.yml', extravars=extravars)
    out = result.result('Write the drill report')
    report = json.loads(Path(out['paths']['json']).read_text())
    return result, report['databases'][0]


def commits(server) -> list:
    return [(int(i), parse_z(t)) for i, t in server.sql(COMMITS, database='app')]


def smoke_rows(entry) -> dict:
    smoke = {s['name']: s for s in entry['steps']}['smoke']
    return smoke['queries'][0]['rows'][0]


def assert_scratch_gone(cluster, name):
    scratch = cluster['top'] / 'scratch'
    assert not [p for p in scratch.iterdir() if p.name.startswith(name)], list(scratch.iterdir())
    # and no server of it is left running
    running = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            cmdline = Path('/proc/%s/cmdline' % pid).read_bytes().replace(b'\0', b' ').decode('utf-8', 'replace')
        except OSError:
            continue
        if str(scratch / name) in cmdline:
            running.append(cmdline)
    assert not running, running


def test_newest_instant_under_a_running_writer(cluster):
    server = cluster['server']
    writer = Writer(server).start()
    try:
        result, entry = drill(cluster, 'newest')
    finally:
        writer.stop()
    assert result.rc == 0, result.stdout[-5000:]
    steps = {s['name']: s for s in entry['steps']}
    assert list(steps) == ['find_backup', 'restore', 'integrity', 'smoke', 'cleanup'], list(steps)
    assert steps['integrity']['result'].startswith(('pg_amcheck --heapallindexed: ok', 'full read')), steps
    assert entry['rpo_basis'] == 'recovered' and 'pg_last_xact_replay_timestamp' in entry['recovered']['source']
    recovered = parse_z(entry['recovered']['at'])
    rows = smoke_rows(entry)
    history = commits(server)
    last_id = int(rows['last_id'])
    assert int(rows['n']) == last_id, rows
    by_id = dict(history)
    # The rows present are exactly those committed at or before the recovered instant.
    assert by_id[last_id] <= recovered < by_id[last_id + 1], (last_id, by_id[last_id], recovered, by_id[last_id + 1])
    # Archived every ARCHIVE_TIMEOUT s: the recovered instant is that close to the drill start (plus archiving).
    assert 0 < entry['rpo_seconds'] <= ARCHIVE_TIMEOUT + 3, entry
    assert entry['rpo_claimed_seconds'] is not None and entry['passed'], entry['reasons']
    print('PITR drill: RTO %.3f s, RPO %.3f s (catalog %.3f s), %d rows recovered'
          % (entry['rto_seconds'], entry['rpo_seconds'], entry['rpo_claimed_seconds'], last_id))
    assert steps['cleanup']['ok'] and steps['cleanup']['result'] == 'removed'
    assert_scratch_gone(cluster, 'newest')


def test_stop_at_between_two_commits(cluster):
    server = cluster['server']
    history = commits(server)
    base = json.loads(next(cluster['dest'].glob('*-base-*.manifest.json')).read_text())
    after_base = [c for c in history if c[1] > parse_z(base['consistent_at'])]
    k = len(after_base) // 2
    (_id, first), (_next_id, second) = after_base[k], after_base[k + 1]
    stop_at = first + (second - first) / 2
    result, entry = drill(cluster, 'stop-at', stop_at=stop_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ'))
    assert result.rc == 0, result.stdout[-5000:]
    rows = smoke_rows(entry)
    assert int(rows['last_id']) == after_base[k][0], (rows, after_base[k])
    recovered = parse_z(entry['recovered']['at'])
    assert first <= recovered <= stop_at, (first, recovered, stop_at)
    assert entry['stop_at'] and entry['passed'] and entry['rpo_seconds'] <= (stop_at - first).total_seconds() + 0.001
    assert_scratch_gone(cluster, 'stop-at')


def test_a_failing_smoke_query_still_stops_and_removes_the_scratch_cluster(cluster):
    bad = [{'name': 'too many', 'sql': 'SELECT count(*) AS n FROM ticks', 'expect': {'value_at_least': 10 ** 9}}]
    result, entry = drill(cluster, 'failing', smoke_queries=bad)
    assert result.rc != 0
    steps = {s['name']: s for s in entry['steps']}
    assert steps['restore']['ok'] and steps['integrity']['ok'] and not steps['smoke']['ok'], steps
    assert steps['cleanup']['ok'] and steps['cleanup']['result'] == 'removed'
    assert_scratch_gone(cluster, 'failing')


def test_a_missing_wal_segment_fails_the_drill_naming_it(cluster):
    dest = cluster['dest']
    gappy = cluster['top'] / 'gappy'
    shutil.copytree(dest, gappy)
    manifests = sorted((json.loads(p.read_text()) for p in gappy.glob('*-wal-*.manifest.json')),
                       key=lambda m: m['position']['start'])
    assert len(manifests) >= 3, [m['id'] for m in manifests]
    missing = manifests[len(manifests) // 2]
    (gappy / missing['artifact']).unlink()
    (gappy / (missing['artifact'] + '.manifest.json')).unlink()
    result, entry = drill(cluster, 'gap', backup_dir=str(gappy))
    assert result.rc != 0
    steps = {s['name']: s for s in entry['steps']}
    assert not steps['restore']['ok'] and 'integrity' not in steps
    assert 'WAL segment %s is missing' % missing['position']['wal_file'] in steps['restore']['error'], steps
    assert not entry['passed'] and steps['cleanup']['ok']
    assert_scratch_gone(cluster, 'gap')


# -- MariaDB: dump + binary log chain ------------------------------------------------------------------------

def test_mariadb_binlog_drill_reads_back_the_recovered_point(maria_db, tmp_path):
    """Dump, then rows from a running writer, binary logs shipped while it runs, and a drill (the writer still
    running) to the newest instant: the copy holds exactly the rows shipped, and the recovered point is the time
    of the last event replayed (binary log events carry the statement's start, in whole seconds unless the
    server logs microseconds), not the catalog's claim."""
    server = maria_db.server
    maria_db.sql('CREATE TABLE ticks (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB;'
                 'INSERT INTO ticks (at) VALUES (UTC_TIMESTAMP(6))')
    dest = tmp_path / 'backups'
    backup = dict(conn(server, 'pw'), engine='mariadb', database=maria_db.name, dest=str(dest))
    run = play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup}], {'pw': server.password})
    assert run.rc == 0, run.stdout[-3000:]
    stop = threading.Event()

    def write():
        while not stop.is_set():
            maria_db.sql('INSERT INTO ticks (at) VALUES (UTC_TIMESTAMP(6))')
            stop.wait(WRITE_EVERY)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        time.sleep(2.5)
        ship = [{'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')}]
        run = play(tmp_path, ship, {'pw': server.password})
        assert run.rc == 0, run.stdout[-3000:]
        database = {'name': 'shop', 'engine': 'mariadb', 'database': maria_db.name, 'backup_dir': str(dest),
                    'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
                    'password_var': 'drill_password', 'rpo_seconds': 120,
                    'smoke_queries': [{'name': 'ticks', 'sql': 'SELECT count(*) AS n, max(id) AS last_id FROM ticks',
                                       'expect': {'rows_at_least': 1}}]}
        result = run_playbook('playbooks/dr_drill.yml', extravars={
            'dr_drill_report_dir': str(tmp_path / 'reports'), 'drill_password': server.password,
            'dr_drill_databases': [database]})
    finally:
        stop.set()
        writer.join(30)
    assert result.rc == 0, result.stdout[-5000:]
    out = result.result('Write the drill report')
    entry = json.loads(Path(out['paths']['json']).read_text())['databases'][0]
    steps = {s['name']: s for s in entry['steps']}
    assert list(steps) == ['find_backup', 'restore', 'integrity', 'smoke', 'cleanup'], list(steps)
    assert len(entry['backup']['chain']) >= 2, entry['backup']
    assert entry['rpo_basis'] == 'recovered' and 'last binary log event' in entry['recovered']['source'], entry
    rows = steps['smoke']['queries'][0]['rows'][0]
    last_id = int(rows['last_id'])
    assert int(rows['n']) == last_id > 1, rows
    stamps = {int(i): parse_z(t.replace(' ', 'T') + 'Z') for i, t in maria_db.sql('SELECT id, at FROM ticks')}
    recovered = parse_z(entry['recovered']['at'])
    # Binary log event headers carry whole seconds: the last transaction replayed was logged in the second of
    # the recovered point; every row logged before that second is in the copy, none logged after it.
    assert stamps[last_id].replace(microsecond=0) <= recovered <= stamps[last_id] + datetime.timedelta(seconds=1), (
        stamps[last_id], recovered)
    assert [i for i, at in stamps.items() if at < recovered - datetime.timedelta(seconds=1)] == list(
        range(1, max(i for i, at in stamps.items() if at < recovered - datetime.timedelta(seconds=1)) + 1))
    assert all(i <= last_id for i, at in stamps.items() if at < recovered - datetime.timedelta(seconds=1))
    assert all(i > last_id for i, at in stamps.items() if at >= recovered + datetime.timedelta(seconds=1))
    assert last_id + 1 in stamps, 'the writer wrote nothing after the logs were shipped'
    assert entry['passed'], entry['reasons']
    print('MariaDB binlog drill: RTO %.3f s, RPO %.3f s (catalog %.3f s), %d rows'
          % (entry['rto_seconds'], entry['rpo_seconds'], entry['rpo_claimed_seconds'], last_id))
    assert not server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s_drill'"
                          % maria_db.name)
