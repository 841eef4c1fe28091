"""RPO at risk between drills (issue 18): a real PostgreSQL 15 archiving through pg_wal_archive.py, then its
archive_command failing. The ``backup`` health check goes from ok to critical with condition ``archive_stale``
once the newest archived segment is older than the objective, and backup_metrics exports the newest archived
segment's time and the breach (the textfile passes ``promtool check metrics``)."""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.harness.playbook import conn as login, play  # noqa: E402
from tests.harness.promtool import check_textfile  # noqa: E402
from tests.harness.wal_catalog import wal_catalog  # noqa: E402

RPO_SECONDS = 15


@pytest.fixture
def wal_dest():
    with wal_catalog('opsready-archfresh-') as catalog:
        yield Path(catalog.dest), catalog.helper


def newest_wal_at(dest: Path) -> datetime.datetime:
    manifests = dest.glob('postgresql-cluster-wal-*.manifest.json')
    newest = max(json.loads(p.read_text())['consistent_at'] for p in manifests)
    return datetime.datetime.fromisoformat(newest.replace('Z', '+00:00'))


def test_stopped_archiver_turns_the_freshness_check_critical(postgres_factory, wal_dest, tmp_path):
    dest, helper = wal_dest
    server = postgres_factory(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip' % (helper, dest))
    server.sql('CREATE TABLE t (id serial PRIMARY KEY, v text)')
    conn = login(server, 'pw')
    extravars = {'pw': server.password}
    prom = tmp_path / 'textfile' / 'opsready_backup_pg.prom'
    prom.parent.mkdir()
    health = {'checks': [{'type': 'backup', 'name': 'pg', 'backup_dir': str(dest), 'rpo_minutes': RPO_SECONDS / 60,
                          'full_max_age_hours': 1}], 'metrics': [], 'fail_on': 'never'}
    metrics = {'backup_dir': str(dest), 'textfile': str(prom), 'rpo_seconds': RPO_SECONDS}
    server.sql("INSERT INTO t (v) VALUES ('before the base backup')")
    run = play(tmp_path, [
        {'name': 'base', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='base', dest=str(dest),
                                                               owner='postgres')},
        {'name': 'wal', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='wal', dest=str(dest),
                                                              owner='postgres')},
        {'name': 'health', 'opsready.operations.health_check': health},
        {'name': 'metrics', 'opsready.operations.backup_metrics': metrics},
    ], extravars)
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result('health')['verdict'] == 'ok', run.result('health')['findings']
    assert run.result('metrics')['breached'] == []

    # The archiver stops: archive_command fails (its catalog is gone from under it) while writes go on.
    server.sql("ALTER SYSTEM SET archive_command = '/usr/bin/python3 %s %s/missing %%p %%f'" % (helper, dest),
               superuser=True)
    server.sql('SELECT pg_reload_conf()', superuser=True)
    last_archived = newest_wal_at(dest)
    deadline = time.monotonic() + 60
    while True:
        server.sql("INSERT INTO t (v) SELECT md5(g::text) FROM generate_series(1, 100) g")
        server.sql('SELECT pg_switch_wal()', superuser=True)
        failed = int(server.sql('SELECT failed_count FROM pg_stat_archiver', superuser=True)[0][0])
        if failed > 0:
            break
        assert time.monotonic() < deadline, 'archive_command never failed'
        time.sleep(0.2)
    assert newest_wal_at(dest) == last_archived  # nothing new reached the catalog
    # The objective passes while nothing is archived (the newest segment's age is the clock, not a guess).
    wait = (last_archived + datetime.timedelta(seconds=RPO_SECONDS + 1)
            - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    if wait > 0:
        time.sleep(wait)
    run = play(tmp_path, [
        {'name': 'health', 'opsready.operations.health_check': health},
        {'name': 'metrics', 'opsready.operations.backup_metrics': metrics},
    ], extravars)
    assert run.rc == 0, run.stdout[-3000:]
    res = run.result('health')
    assert res['verdict'] == 'critical', res['findings']
    (finding,) = [f for f in res['findings'] if f['database'] == '@cluster']
    assert finding['condition'] == 'archive_stale' and finding['severity'] == 'critical', finding
    assert 'is archiving stopped?' in finding['message'] and 'pg_stat_archiver' in finding['message']
    assert run.result('metrics')['breached'] == ['postgresql/@cluster']
    check_textfile(prom)
    samples = {(s.name, s.labels['database']): s.value
               for family in text_string_to_metric_families(prom.read_text()) for s in family.samples}
    assert samples[('opsready_backup_last_log_timestamp_seconds', '@cluster')] == pytest.approx(
        last_archived.timestamp(), abs=0.01)
    assert samples[('opsready_backup_rpo_objective_seconds', '@cluster')] == RPO_SECONDS
    assert samples[('opsready_backup_rpo_breached', '@cluster')] == 1
