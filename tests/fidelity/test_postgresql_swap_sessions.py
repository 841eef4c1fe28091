"""Fidelity, PostgreSQL 15: the swap of a restore with replace=true meets sessions in the old target that the restoring
role may not end.

A role that is not a superuser (the database's owner with CREATEDB, as on a managed service) may end its own sessions
(and those of roles whose privileges it has, or every non-superuser's with pg_signal_backend), never a superuser's:
pg_terminate_backend raises ERROR 42501 for such a session instead of skipping it. The run must then fail before it
touches anything, naming the sessions in the way (pid, user, application_name) and what to do; no session is ended,
the target keeps its data and accepts connections, no copy is left. Sessions it may end are ended and the swap goes
through, as for a superuser. Check mode ends nothing.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from tests.fidelity.test_postgresql import backup, leftovers, qi
from tests.fidelity.test_postgresql_round11 import drop
from tests.fidelity.test_postgresql_round18_nonsuper import APP, restore_as

OTHER = 'fid_other_sw'   # LOGIN, not a superuser, not a member of APP (nor APP of it)


def roles(pg) -> None:
    pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN CREATEDB NOSUPERUSER PASSWORD '%s'; END IF; "
           "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN NOSUPERUSER PASSWORD '%s'; END IF; END $$"
           % (APP, APP, pg.password.replace("'", "''"), OTHER, OTHER, pg.password.replace("'", "''")))


def target(pg, tmp_path):
    """A database owned by APP with two rows, backed up; then a third row (the restore takes it back to two)."""
    name = 'fid_swt_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s OWNER %s TEMPLATE template0' % (qi(name), APP))
    pg.sql('GRANT CONNECT ON DATABASE %s TO %s' % (qi(name), OTHER))
    pg.sql('SET ROLE %s; CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)' % APP, database=name)
    dest = backup(tmp_path, pg, name, format='custom')
    pg.sql('INSERT INTO t VALUES (3)', database=name)
    return name, dest


def hold(pg, database: str, user: str, app: str) -> subprocess.Popen:
    """An idle-ish session of ``user`` (the server's superuser for 'postgres') in ``database``, named ``app``."""
    env = pg.dsn_env(superuser=user == 'postgres', database=database)
    if user != 'postgres':
        env.update(PGUSER=user, PGPASSWORD=pg.password)
    env['PGAPPNAME'] = app
    proc = subprocess.Popen([pg.bin('psql'), '-X', '-q', '-c', 'SELECT pg_sleep(120)'], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not pids(pg, database, app):
        assert time.monotonic() < deadline, 'the session %s did not start' % app
        time.sleep(0.1)
    return proc


def pids(pg, database: str, app: str) -> list:
    return [r[0] for r in pg.sql("SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND application_name = '%s'"
                                 % (database, app))]


def rows(pg, name: str) -> list:
    return pg.sql('SELECT id FROM t ORDER BY id', database=name)


@pytest.fixture
def holders():
    procs: list = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize('blocker', ('postgres', OTHER))
def test_a_session_the_owner_may_not_end_fails_the_swap_before_it_touches_anything(pg, tmp_path, holders, blocker):
    """A superuser's session, or one of a role APP has no privileges of, in the old target: the owner's restore
    fails naming it (pid, user, application_name) and saying what to do; the owner's own session in the target is
    not ended either (nothing is done before the refusal), the target keeps its rows and its connections."""
    roles(pg)
    name, dest = target(pg, tmp_path)
    try:
        holders.append(hold(pg, name, blocker, 'blocker_app'))
        holders.append(hold(pg, name, APP, 'own_app'))
        blocker_pid = pids(pg, name, 'blocker_app')[0]
        own_pid = pids(pg, name, 'own_app')[0]
        result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=name, replace=True)
        assert result.rc != 0, result.stdout[-4000:]
        out = result.stdout
        assert 'pid %s' % blocker_pid in out and blocker in out and 'blocker_app' in out, out[-4000:]
        assert 'pg_signal_backend' in out and 'superuser' in out and 'disconnect' in out, out[-4000:]
        assert 'own_app' not in out, out[-4000:]   # a session it may end is not in the way
        assert pids(pg, name, 'blocker_app') == [blocker_pid]
        assert pids(pg, name, 'own_app') == [own_pid]   # not ended for a swap that cannot happen
        assert rows(pg, name) == [('1',), ('2',), ('3',)]
        assert pg.sql("SELECT datallowconn::text FROM pg_database WHERE datname = '%s'" % name) == [('true',)]
        assert leftovers(pg) == []
    finally:
        for proc in holders:
            proc.kill()
        drop(pg, name)


def test_pg_signal_backend_lets_the_owner_end_another_roles_session_not_a_superusers(pg, tmp_path, holders):
    """With pg_signal_backend, APP ends OTHER's session and the swap goes through; a superuser's session still stops
    it (pg_signal_backend does not reach superusers), named."""
    roles(pg)
    name, dest = target(pg, tmp_path)
    pg.sql('GRANT pg_signal_backend TO %s' % APP)
    try:
        holders.append(hold(pg, name, OTHER, 'other_app'))
        result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert rows(pg, name) == [('1',), ('2',)]
        assert pids(pg, name, 'other_app') == []
        holders.append(hold(pg, name, 'postgres', 'su_app'))
        su_pid = pids(pg, name, 'su_app')[0]
        result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=name, replace=True)
        assert result.rc != 0, result.stdout[-4000:]
        assert 'pid %s' % su_pid in result.stdout and 'su_app' in result.stdout, result.stdout[-4000:]
        assert pids(pg, name, 'su_app') == [su_pid]
        assert pg.sql("SELECT datallowconn::text FROM pg_database WHERE datname = '%s'" % name) == [('true',)]
        assert leftovers(pg) == []
    finally:
        pg.sql('REVOKE pg_signal_backend FROM %s' % APP)
        for proc in holders:
            proc.kill()
        drop(pg, name)


def test_the_owner_ends_its_own_sessions_and_a_superuser_ends_everyones(pg, tmp_path, holders):
    """The owner's own session is ended and its swap goes through; a superuser's restore ends a superuser's and
    another role's sessions."""
    roles(pg)
    name, dest = target(pg, tmp_path)
    try:
        holders.append(hold(pg, name, APP, 'own_app'))
        result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert rows(pg, name) == [('1',), ('2',)] and pids(pg, name, 'own_app') == []
        pg.sql('INSERT INTO t VALUES (3)', database=name)
        holders.append(hold(pg, name, 'postgres', 'su_app'))
        holders.append(hold(pg, name, OTHER, 'other_app'))
        result = restore_as(tmp_path, pg, dest, pg.user, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert rows(pg, name) == [('1',), ('2',)]
        assert pids(pg, name, 'su_app') == [] and pids(pg, name, 'other_app') == []
        assert leftovers(pg) == []
    finally:
        for proc in holders:
            proc.kill()
        drop(pg, name)


def test_check_mode_ends_no_session(pg, tmp_path, holders):
    roles(pg)
    name, dest = target(pg, tmp_path)
    try:
        holders.append(hold(pg, name, APP, 'own_app'))
        own = pids(pg, name, 'own_app')
        from tests.fidelity.test_postgresql import conn, play
        result = play(tmp_path, [{'name': 'restore', 'check_mode': True, 'opsready.operations.db_restore': dict(
            conn(pg), login_user=APP, engine='postgresql', src=str(dest), source_database=name, database=name,
            replace=True)}], pg)
        assert result.rc == 0, result.stdout[-4000:]
        assert pids(pg, name, 'own_app') == own and rows(pg, name) == [('1',), ('2',), ('3',)]
        assert leftovers(pg) == []
    finally:
        for proc in holders:
            proc.kill()
        drop(pg, name)


def test_a_walsender_in_the_target_is_named_to_the_owner_and_ended_by_a_superuser(pg, tmp_path, holders):
    """A walsender connected to the old target (replication=database, as a logical replication client is before it
    starts streaming) of a REPLICATION role: the owner may not end it and is told so, named as a walsender; a
    superuser's restore ends it and swaps."""
    roles(pg)
    repl = 'fid_repl_sw'
    pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN REPLICATION NOSUPERUSER PASSWORD '%s'; END IF; END $$"
           % (repl, repl, pg.password.replace("'", "''")))
    name, dest = target(pg, tmp_path)
    try:
        env = pg.dsn_env(database=name)
        env.update(PGUSER=repl, PGPASSWORD=pg.password)
        holders.append(subprocess.Popen(
            [pg.bin('psql'), '-X', '-q', 'dbname=%s replication=database application_name=wal_app' % name],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        while not pids(pg, name, 'wal_app'):
            assert time.monotonic() < deadline, 'the walsender did not start'
            time.sleep(0.1)
        wal_pid = pids(pg, name, 'wal_app')[0]
        assert pg.sql("SELECT backend_type FROM pg_stat_activity WHERE pid = %s" % wal_pid) == [('walsender',)]
        result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=name, replace=True)
        assert result.rc != 0, result.stdout[-4000:]
        assert 'pid %s (user %s' % (wal_pid, repl) in result.stdout, \
            result.stdout[-4000:]
        assert pids(pg, name, 'wal_app') == [wal_pid] and rows(pg, name) == [('1',), ('2',), ('3',)]
        result = restore_as(tmp_path, pg, dest, pg.user, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert pids(pg, name, 'wal_app') == [] and rows(pg, name) == [('1',), ('2',)]
        assert leftovers(pg) == []
    finally:
        for proc in holders:
            proc.kill()
        drop(pg, name)
