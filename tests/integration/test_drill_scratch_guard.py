"""A DR drill never replaces or drops a live database or data directory it did not create.

The drill restores into its scratch target with ``replace`` and drops it in the clean-up. A scratch name that is
another live database of the server (the default ``<db>_drill`` someone uses, or a scratch name set to another
application's database), the source itself, or a PITR scratch directory that holds a cluster (stopped: PG_VERSION
and global/pg_control; running: postmaster.pid) must be refused before anything is restored, and left as it was.
What the drill created carries its marker (the database's comment, a marker file in the data directory): a leftover
of an interrupted drill is replaced and dropped as before.

Real ansible-playbook runs of playbooks/dr_drill.yml against the harness's PostgreSQL and MariaDB servers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook
from tests.integration.test_dr_drill_engines import SEED, drill, report_of

EXISTS = {'postgresql': "SELECT count(*) FROM pg_database WHERE datname = '%s'",
          'mariadb': "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'"}
# What a drill that was interrupted after its restore leaves behind: the scratch database with the drill's mark.
MARK = {'postgresql': "COMMENT ON DATABASE \"%s\" IS 'opsready dr_drill scratch copy of x, left by a test'",
        'mariadb': "ALTER DATABASE `%s` COMMENT 'opsready dr_drill scratch copy of x, left by a test'"}
LIVE = {'postgresql': "CREATE TABLE ledger (id int PRIMARY KEY, note text); "
                      "INSERT INTO ledger SELECT g, 'entry ' || g FROM generate_series(1, 321) g;",
        'mariadb': "CREATE TABLE ledger (id INT PRIMARY KEY, note VARCHAR(32)) ENGINE=InnoDB; "
                   "INSERT INTO ledger SELECT seq, CONCAT('entry ', seq) FROM seq_1_to_321;"}


# Databases a test made besides its own (the servers are shared by the module's tests and, per xdist worker, by
# other files': a live look-alike of db_restore's temporary name left behind fails their "no leftover" checks).
MADE: list = []


@pytest.fixture(autouse=True)
def drop_what_the_test_made():
    yield
    while MADE:
        server, name = MADE.pop()
        server.drop_database(name)


@pytest.fixture(params=['postgresql', 'mariadb'])
def engine_db(request):
    fixture = 'pg_db' if request.param == 'postgresql' else 'maria_db'
    db = request.getfixturevalue(fixture)
    db.sql(SEED[request.param])
    return request.param, db


def exists(engine, db, name):
    return db.server.sql(EXISTS[engine] % name)[0][0] not in (0, '0')


def live_database(engine, db, name):
    """Another application's database on the same server: tables and rows the drill must never touch."""
    db.server.create_database(name)
    MADE.append((db.server, name))
    db.server.sql(LIVE[engine], database=name)
    return name


def assert_untouched(engine, db, name):
    assert exists(engine, db, name), 'the live database %s was dropped by the drill' % name
    rows = db.server.sql('SELECT count(*), max(note) FROM ledger', database=name)
    assert rows[0][0] in (321, '321') and rows[0][1] == 'entry 99', ('the live database %s was replaced' % name, rows)
    tables = db.server.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'customers' AND "
                           + ("table_catalog = '%s'" if engine == 'postgresql' else "table_schema = '%s'") % name,
                           database=name)
    assert tables[0][0] in (0, '0'), 'the source was restored into the live database %s' % name


def refused(result, name):
    assert result.rc != 0, result.stdout[-3000:]
    dummy, report = report_of(result)
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert 'restore' not in steps, steps
    assert not steps['cleanup']['ok'] or steps['cleanup']['result'].startswith('not run'), steps['cleanup']
    assert steps['cleanup']['result'].startswith('not run'), steps['cleanup']
    error = steps[list(steps)[0]]['error']
    assert name in error and 'not created by a DR drill' in error, error
    return error


@pytest.mark.parametrize('case', ['default_name', 'other_application'])
def test_a_live_database_as_scratch_is_refused_and_kept(engine_db, tmp_path, case):
    engine, db = engine_db
    name = live_database(engine, db, db.name + '_drill' if case == 'default_name' else db.name + '_billing')
    overrides = {} if case == 'default_name' else {'scratch': name}
    # a backup exists, so the old drill restored over the live database (replace) and then dropped it
    result = drill(engine, db, tmp_path, dr_drill_backup_first=True, **overrides)
    error = refused(result, name)
    assert 'another scratch name' in error and 'drop it yourself' in error, error
    assert_untouched(engine, db, name)
    assert db.sql('SELECT count(*) FROM orders')[0][0] in (6000, '6000'), 'the source database changed'


def test_the_source_as_scratch_is_refused(engine_db, tmp_path):
    engine, db = engine_db
    result = drill(engine, db, tmp_path, dr_drill_backup_first=True, scratch=db.name)
    assert result.rc != 0
    assert 'a scratch target that is not the source' in result.stdout, result.stdout[-3000:]
    assert db.sql('SELECT count(*) FROM orders')[0][0] in (6000, '6000'), 'the source database changed'
    assert exists(engine, db, db.name)


def test_a_restore_temporary_name_is_refused_as_scratch(engine_db, tmp_path):
    engine, db = engine_db
    name = live_database(engine, db, 'shop__opsready_restore_0badc0de')
    result = drill(engine, db, tmp_path, scratch=name)
    assert result.rc != 0
    assert_untouched(engine, db, name)
    dummy, report = report_of(result)
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert '__opsready_' in steps[list(steps)[0]]['error'] and steps['cleanup']['result'].startswith('not run'), steps


def test_a_marked_leftover_is_replaced_and_dropped_and_a_passing_drill_leaves_none(engine_db, tmp_path):
    engine, db = engine_db
    scratch = db.name + '_drill'
    db.server.create_database(scratch)
    MADE.append((db.server, scratch))
    db.server.sql(LIVE[engine], database=scratch)
    db.server.sql(MARK[engine] % scratch)
    result = drill(engine, db, tmp_path, dr_drill_backup_first=True)
    assert result.rc == 0, result.stdout[-5000:]
    dummy, report = report_of(result)
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert steps['integrity']['ok'] and steps['smoke']['ok'], steps
    assert steps['cleanup']['ok'] and steps['cleanup']['result'] == 'removed', steps['cleanup']
    assert not exists(engine, db, scratch)


def test_the_scratch_carries_the_mark_while_the_drill_runs(engine_db, tmp_path):
    """An interrupted drill leaves a marked scratch (the next one may replace it): a smoke query reads the mark."""
    engine, db = engine_db
    sql = ("SELECT shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE datname = current_database()"
           if engine == 'postgresql' else
           'SELECT SCHEMA_COMMENT AS mark FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()')
    smoke = [{'name': 'mark', 'sql': sql, 'expect': {'rows_at_least': 1, 'jmespath': "[0].mark != null"}}]
    result = drill(engine, db, tmp_path, dr_drill_backup_first=True, smoke_queries=smoke)
    assert result.rc == 0, result.stdout[-5000:]
    dummy, report = report_of(result)
    smoke_step = {s['name']: s for s in report['databases'][0]['steps']}['smoke']
    mark = smoke_step['queries'][0]['rows'][0]['mark']
    assert mark.startswith('opsready dr_drill scratch copy of %s' % db.name), mark


# -- PostgreSQL PITR: a data directory given as scratch ------------------------------------------------------------

def pitr_drill(tmp_path, scratch: Path, server):
    database = {'name': 'pitr', 'engine': 'postgresql', 'pitr': True, 'database': 'app', 'scratch': str(scratch),
                'backup_dir': str(tmp_path / 'no-catalog'), 'login_host': server.host, 'login_port': server.port,
                'login_user': server.user, 'password_var': 'drill_password'}
    extravars = {'dr_drill_report_dir': str(tmp_path / 'reports'), 'drill_password': server.password,
                 'dr_drill_scratch_dir': str(tmp_path / 'scratch'), 'dr_drill_databases': [database]}
    return run_playbook('playbooks/dr_drill.yml', extravars=extravars)


def fake_cluster(path: Path) -> dict:
    (path / 'global').mkdir(parents=True)
    (path / 'base' / '1').mkdir(parents=True)
    files = {'PG_VERSION': b'15\n', 'global/pg_control': os.urandom(8192), 'base/1/1259': os.urandom(16384),
             'postgresql.auto.conf': b'# Do not edit this file manually!\n'}
    for rel, data in files.items():
        (path / rel).write_bytes(data)
    return files


@pytest.mark.parametrize('state', ['stopped', 'running', 'other_files'])
def test_pitr_scratch_directory_of_a_cluster_is_refused_and_kept(postgres_server, tmp_path, state):
    datadir = tmp_path / 'live' / 'main'
    sleeper = None
    if state == 'other_files':
        datadir.mkdir(parents=True)
        files = {'notes.txt': b'keep me\n'}
        (datadir / 'notes.txt').write_bytes(files['notes.txt'])
    else:
        files = fake_cluster(datadir)
    if state == 'running':
        # postmaster.pid of a live process: pg_ctl stop of the old clean-up signals it
        sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
        pid = ('%d\n%s\n1700000000\n5432\n/tmp\nlocalhost\n  5432001         0\nready   \n'
               % (sleeper.pid, datadir)).encode()
        (datadir / 'postmaster.pid').write_bytes(pid)
        files['postmaster.pid'] = pid
    try:
        result = pitr_drill(tmp_path, datadir, postgres_server)
        assert result.rc != 0
        for rel, data in files.items():
            assert (datadir / rel).exists(), '%s of the live data directory was removed' % rel
            assert (datadir / rel).read_bytes() == data, '%s of the live data directory was changed' % rel
        if sleeper is not None:
            assert sleeper.poll() is None, 'the clean-up signalled the server of the live data directory'
        dummy, report = report_of(result)
        steps = {s['name']: s for s in report['databases'][0]['steps']}
        error = steps[list(steps)[0]]['error']
        assert str(datadir) in error and 'not created by a DR drill' in error, error
        assert steps['cleanup']['result'].startswith('not run'), steps['cleanup']
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()


def test_pitr_scratch_through_a_symlink_to_a_cluster_is_refused(postgres_server, tmp_path):
    datadir = tmp_path / 'live' / 'main'
    files = fake_cluster(datadir)
    (tmp_path / 'scratch').mkdir()
    link = tmp_path / 'scratch' / 'pitr-link'
    link.symlink_to(datadir)
    result = pitr_drill(tmp_path, link, postgres_server)
    assert result.rc != 0
    for rel, data in files.items():
        assert (datadir / rel).read_bytes() == data, rel


def test_pitr_marked_leftover_directory_is_removed(postgres_server, tmp_path):
    """A data directory the drill created (its marker file) and left behind is not refused; the clean-up removes it."""
    datadir = tmp_path / 'scratch' / 'pitr-left'
    fake_cluster(datadir)
    (datadir / 'opsready_drill_scratch').write_text('{"source": "app"}\n')
    result = pitr_drill(tmp_path, datadir, postgres_server)
    assert result.rc != 0  # no catalog: the drill fails at find_backup
    dummy, report = report_of(result)
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert not steps['find_backup']['ok'] and 'restore' not in steps, steps
    assert steps['cleanup']['ok'] and steps['cleanup']['result'] == 'removed', steps['cleanup']
    assert not datadir.exists()
