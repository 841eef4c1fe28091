"""Database insights on real servers with induced conditions: a lock held by a second session (the blocker is
named), a real deadlock between two sessions (counted once across runs), a slow statement in the top list,
connections up to 80 % and 90 % of max_connections (warning, then critical); PostgreSQL 15 and MariaDB.

Both servers are module-scoped and small (max_connections=20); sessions are pyodbc connections held open.
The module and the health_check type run once each through real ansible-playbook.
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines import registry  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.health import history  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.insights import core, verdicts  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.promtool import check_textfile  # noqa: E402
from tests.harness.servers import MariaDBServer, PostgresServer  # noqa: E402

MAX_CONNECTIONS = 20


@pytest.fixture(scope='module')
def pg():
    server = PostgresServer(extra_conf={'shared_preload_libraries': 'pg_stat_statements',
                                        'max_connections': MAX_CONNECTIONS, 'deadlock_timeout': '100ms',
                                        'autovacuum': False})
    try:
        server.start()
        server.sql('CREATE EXTENSION pg_stat_statements; CREATE TABLE t (id int PRIMARY KEY, v int); '
                   'INSERT INTO t VALUES (1, 0), (2, 0)')
        server.create_database('plain')
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope='module')
def maria():
    server = MariaDBServer(extra_conf={'max_connections': MAX_CONNECTIONS, 'performance_schema': True,
                                       'slow_query_log': True, 'long_query_time': '0.2', 'log_output': 'TABLE',
                                       'innodb_lock_wait_timeout': 20})
    try:
        server.start()
        server.sql('CREATE DATABASE d; CREATE TABLE d.t (id int PRIMARY KEY, v int) ENGINE=InnoDB; '
                   'INSERT INTO d.t VALUES (1, 0), (2, 0)')
        yield server
    finally:
        server.cleanup()


def engine_of(server: Any) -> str:
    return 'postgresql' if isinstance(server, PostgresServer) else 'mariadb'


def insight(server: Any, thresholds: Any = None, history_path: Any = None, **options: Any) -> dict:
    conn = ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)
    collector = registry.get_insights(engine_of(server), conn)
    return core.run(collector, core.Options(**options), verdicts.parse(thresholds or {}), 'test',
                    history_path=history_path)


def record(path: str, snap: dict) -> None:
    """What db_insights appends to the health history after a run."""
    history.append(path, {'t': snap['timestamp'], 'host': 'test', 'verdict': snap['verdict'],
                          'db': core.history_counters([snap])}, 100)


def poll(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(0.05)


class Session:
    """One client connection in a transaction (autocommit off), held open by the test."""

    def __init__(self, server: Any, database: Any = None) -> None:
        self.server = server
        if isinstance(server, PostgresServer):
            import pyodbc
            # Protocol=7.4-1: an error aborts the transaction (psqlODBC's default wraps every statement in a
            # savepoint and rolls back to it, so a deadlock victim would keep its locks).
            self.conn = pyodbc.connect(server.odbc_connection_string(database) + 'Protocol=7.4-1;', autocommit=False)
        else:
            self.conn = server.odbc_connect(database, autocommit=False)
        self.pid = int(self.run('SELECT pg_backend_pid()' if isinstance(server, PostgresServer)
                                else 'SELECT CONNECTION_ID()')[0][0])

    def run(self, sql: str) -> List[Any]:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall() if cursor.description else []
        cursor.close()
        return rows

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()

    def terminate(self) -> None:
        """End the session from the server side (unblocks a thread stuck in it)."""
        if isinstance(self.server, PostgresServer):
            self.server.sql('SELECT pg_terminate_backend(%d)' % self.pid, superuser=True, check=False)
        else:
            self.server.sql('KILL %d' % self.pid, superuser=True, check=False)


@pytest.fixture
def sessions():
    opened: List[Session] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    def open_session(server: Any, database: Any = None) -> Session:
        session = Session(server, database)
        opened.append(session)
        return session

    open_session.pool = pool  # type: ignore[attr-defined]
    yield open_session
    for session in opened:
        try:
            session.terminate()
            session.conn.close()
        except Exception:   # noqa: BLE001 - closed already, or ended by the server
            pass
    pool.shutdown(wait=True)


# --------------------------------------------------------------------------------------------------------------
# locks: the waiting session and the session holding the lock, named
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('which', ['pg', 'maria'])
def test_lock_wait_names_the_blocker(which, request, sessions):
    server = request.getfixturevalue(which)
    table = 't' if which == 'pg' else 'd.t'
    holder, waiter = sessions(server), sessions(server)
    holder.run('UPDATE %s SET v = v + 1 WHERE id = 1' % table)
    blocked = sessions.pool.submit(waiter.run, 'UPDATE %s SET v = v + 10 WHERE id = 1' % table)

    def waiting():
        found = insight(server, {'lock_wait_seconds': {'warning': 0, 'critical': None}})
        return found if found['lock_waits'] else None

    snap = poll('the lock wait', waiting)
    wait = snap['lock_waits'][0]
    assert wait['pid'] == waiter.pid and 'v = v + 10' in wait['query']
    blocker = wait['blockers'][0]
    assert blocker['pid'] == holder.pid, 'the session holding the lock is named'
    assert blocker['state'] == 'idle in transaction'
    if which == 'pg':
        assert 'UPDATE t SET v = v + 1 WHERE id = 1' in blocker['query'], 'its last statement'
    assert snap['transactions']['idle_in_transaction_longest']['pid'] == holder.pid
    finding = [f for f in snap['findings'] if f['condition'] == 'lock_contention'][0]
    assert finding['severity'] == 'warning' and finding['blocking_pids'] == [holder.pid]
    assert 'pid %d' % holder.pid in finding['message']
    holder.close()
    blocked.result(timeout=30)
    waiter.close()


def test_pg_insights_answer_while_a_table_is_locked_exclusively(pg, sessions):
    """Insights are read when something holds a lock; they must not queue behind it themselves."""
    holder = sessions(pg)
    holder.run('LOCK TABLE t IN ACCESS EXCLUSIVE MODE')
    reading = sessions.pool.submit(insight, pg)
    try:
        snap = reading.result(timeout=20)
    finally:
        holder.close()
    assert 'public.t' in [b['table'] for b in snap['bloat']]
    assert snap['transactions']['idle_in_transaction_longest']['pid'] == holder.pid


# --------------------------------------------------------------------------------------------------------------
# deadlocks: a real one, counted once across two runs
# --------------------------------------------------------------------------------------------------------------
def deadlock(server: Any, sessions: Any, table: str) -> None:
    first, second = sessions(server), sessions(server)
    first.run('UPDATE %s SET v = v + 1 WHERE id = 1' % table)
    second.run('UPDATE %s SET v = v + 1 WHERE id = 2' % table)
    crossing = sessions.pool.submit(first.run, 'UPDATE %s SET v = v + 1 WHERE id = 2' % table)
    # The server itself shows the wait first (the pool thread may not have sent its statement yet: polling the
    # insights back to back from the start kept it from being sent in CI), then the insights must report it.
    waiting_sql = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                   if isinstance(server, PostgresServer)
                   else "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")

    def server_shows_wait() -> bool:
        time.sleep(0.2)
        return server.sql(waiting_sql, superuser=True)[0][0] != '0'

    poll('the server to show the first session waiting', server_shows_wait)
    poll('the first session to wait', lambda: insight(server)['lock_waits'])
    errors = []
    try:
        second.run('UPDATE %s SET v = v + 1 WHERE id = 1' % table)
    except Exception as exc:   # noqa: BLE001 - pyodbc.Error: this one was chosen as the victim
        errors.append(exc)
    second.close()   # releases its locks either way; closing flushes its statistics (PostgreSQL)
    try:
        crossing.result(timeout=30)
    except Exception as exc:   # noqa: BLE001
        errors.append(exc)
    first.close()
    assert len(errors) == 1 and 'deadlock' in str(errors[0]).lower(), errors


@pytest.mark.parametrize('which', ['pg', 'maria'])
def test_deadlock_counted_once_across_runs(which, request, sessions, tmp_path):
    server = request.getfixturevalue(which)
    path = str(tmp_path / 'history.jsonl')
    baseline = insight(server, history_path=path)
    assert baseline['deadlocks']['since_last_sample'] is None, 'the first run is a baseline'
    record(path, baseline)
    before = baseline['deadlocks']['total']
    deadlock(server, sessions, 't' if which == 'pg' else 'd.t')
    poll('the deadlock counter', lambda: insight(server)['deadlocks']['total'] > before)
    after = insight(server, history_path=path)
    assert after['deadlocks']['since_last_sample'] == 1
    assert [(f['condition'], f['severity']) for f in after['findings'] if f['condition'] == 'deadlock'] == [
        ('deadlock', 'warning')]
    if which == 'maria':
        latest = after['deadlocks']['latest']
        assert len(latest['threads']) == 2 and latest['rolled_back'] in (1, 2)
        assert 'rolled back' in after['findings'][0]['message'] or any(
            'rolled back' in f['message'] for f in after['findings'])
    record(path, after)
    again = insight(server, history_path=path)
    assert again['deadlocks']['since_last_sample'] == 0, 'the same deadlock is not counted twice'
    assert not [f for f in again['findings'] if f['condition'] == 'deadlock']
    assert again['since_previous']['interval_seconds'] > 0


# --------------------------------------------------------------------------------------------------------------
# slow statements
# --------------------------------------------------------------------------------------------------------------
def test_pg_slow_statement_in_the_top_list(pg):
    pg.sql('SELECT pg_stat_statements_reset()')
    pg.sql('SELECT pg_sleep(0.3)')
    snap = insight(pg, {'statement_mean_ms': {'warning': 250}}, top=3)
    statements = snap['statements']
    assert statements['enabled'] and statements['source'].startswith('pg_stat_statements')
    top = statements['by_mean_time'][0]
    assert 'pg_sleep' in top['query'] and top['mean_ms'] >= 300 and top['calls'] == 1
    assert any('pg_sleep' in s['query'] for s in statements['by_total_time'])
    assert [f['condition'] for f in snap['findings']] == ['slow_query']


def test_pg_statements_not_enabled_says_how(pg, postgres_server):
    created_elsewhere = insight(pg, database='plain')
    assert created_elsewhere['statements']['enabled'] is False
    assert 'CREATE EXTENSION pg_stat_statements' in created_elsewhere['statements']['how_to_enable']
    not_loaded = insight(postgres_server)
    assert not_loaded['statements']['enabled'] is False
    assert "shared_preload_libraries = 'pg_stat_statements'" in not_loaded['statements']['how_to_enable']


def test_maria_slow_statement_in_digests_and_slow_log(maria):
    maria.sql('TRUNCATE TABLE performance_schema.events_statements_summary_by_digest')
    maria.sql('SELECT SLEEP(0.3)')
    snap = insight(maria, top=3)
    top = snap['statements']['by_mean_time'][0]
    assert 'SLEEP' in top['query'] and top['mean_ms'] >= 300
    slow = snap['slow_log']
    assert slow['enabled'] and slow['log_output'] == 'TABLE'
    assert any('SLEEP(0.3)' in e['query'] and e['seconds'] >= 0.3 for e in slow['slowest'])


# --------------------------------------------------------------------------------------------------------------
# connections: 80 % of max_connections is a warning, 90 % critical
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('which', ['pg', 'maria'])
def test_connections_warning_then_critical(which, request, sessions):
    server = request.getfixturevalue(which)
    start = insight(server)['connections']['used']   # counts the insights client itself
    assert start < 16
    for _i in range(16 - start):
        sessions(server)
    warn = insight(server)
    assert warn['connections']['used'] == 16 and warn['connections']['max'] == MAX_CONNECTIONS
    assert [(f['condition'], f['severity']) for f in warn['findings']] == [('db_connections', 'warning')]
    for _i in range(2):
        sessions(server)
    crit = insight(server)
    assert crit['connections']['percent'] == 90.0
    assert [(f['condition'], f['severity']) for f in crit['findings']] == [('db_connections', 'critical')]
    assert {'user': server.user, 'count': 18} in crit['connections']['by_user']


def test_pg_replication_slot_retaining_wal(pg):
    pg.sql("SELECT pg_create_physical_replication_slot('insights_slot', true)")
    try:
        pg.sql('CREATE TABLE wal_filler AS SELECT g FROM generate_series(1, 20000) g; DROP TABLE wal_filler')
        snap = insight(pg, {'replication_slot_retained_mb': {'warning': 0, 'critical': None}})
        slot = [s for s in snap['replication_slots'] if s['name'] == 'insights_slot'][0]
        assert slot['active'] is False and slot['retained_bytes'] > 0
        finding = [f for f in snap['findings'] if f['condition'] == 'replication_slot'][0]
        assert finding['slot'] == 'insights_slot' and 'INACTIVE' in finding['message']
    finally:
        pg.sql("SELECT pg_drop_replication_slot('insights_slot')")


# --------------------------------------------------------------------------------------------------------------
# the module and the health_check type through ansible-playbook
# --------------------------------------------------------------------------------------------------------------
def test_module_and_health_check_type_through_ansible(pg, tmp_path):
    hist = tmp_path / 'history.jsonl'
    prom = tmp_path / 'db.prom'
    login = {'engine': 'postgresql', 'login_host': pg.host, 'login_port': pg.port, 'login_user': pg.user,
             'login_password': pg.password, 'history_path': str(hist), 'textfile_path': str(prom)}
    check = {'type': 'insights', 'name': 'pg-insights', 'engine': 'postgresql', 'host': pg.host, 'port': pg.port,
             'user': pg.user, 'password': pg.password, 'insights_thresholds': {'connections_percent': 1}}
    tasks = [
        {'name': 'check mode', 'opsready.operations.db_insights': login, 'check_mode': True},
        {'name': 'first', 'opsready.operations.db_insights': login},
        {'name': 'second', 'opsready.operations.db_insights': login},
        {'name': 'fail on critical', 'opsready.operations.db_insights': dict(
            login, thresholds={'connections_percent': 1}, fail_on='critical', history_path=None, textfile_path=None),
         'ignore_errors': True},
        {'name': 'health', 'opsready.operations.health_check': {
            'checks': [check], 'metrics': [], 'fail_on': 'never', 'history_path': str(hist),
            'textfile_path': str(tmp_path / 'health.prom')}},
    ]
    result = run_playbook(write_playbook(tmp_path, tasks), diff=True)
    assert result.rc == 0, result.stdout[-3000:]
    dry = result.result('check mode')
    assert dry['changed'] is True, 'check mode predicts the history line and the textfile'
    assert dry['written'] == {} and dry['insights']['connections']['used'] >= 1
    assert [d['after_header'] for d in dry['diff']] == [str(prom), '%s (appended)' % hist]
    first, second = result.result('first'), result.result('second')
    assert first['changed'] is True and first['written']['history_entries'] == 1
    assert first['insights']['since_previous'] is None and second['insights']['since_previous']['interval_seconds'] > 0
    assert pg.password not in json.dumps([dry, first, second])
    without_outputs = result.result('fail on critical')
    assert without_outputs['changed'] is False and 'diff' not in without_outputs
    failed = result.result('fail on critical')
    assert failed['_event'] == 'runner_on_failed'
    assert 'Database insights verdict is critical (fail_on=critical): Connections in use' in failed['msg']
    text = check_textfile(prom)
    assert 'opsready_db_connections_usage_ratio{engine="postgresql"' in text
    health = result.result('health')
    check_result = health['checks'][0]
    assert check_result['ok'] is True and check_result['insights']['since_previous']['interval_seconds'] > 0
    assert [f['condition'] for f in health['findings']] == ['db_connections'] and health['verdict'] == 'critical'
    health_text = check_textfile(tmp_path / 'health.prom')
    assert 'opsready_db_connections_usage_ratio{check="pg-insights",engine="postgresql"' in health_text
    assert 'opsready_health_check_up{check="pg-insights",type="insights"} 1' in health_text
    lines = [json.loads(line) for line in hist.read_text().splitlines()]
    assert len(lines) == 3 and all(list(line['db']) == [first['insights']['key']] for line in lines)
    assert pg.password not in hist.read_text()


def test_pg_one_round_trip_where_the_server_has_it_else_the_probe_first(pg):
    """PostgreSQL 14+ with pg_stat_statements 1.8+ created and loaded: one psql run for the whole snapshot. A
    database without the extension: that statement fails, the probe follows, then the snapshot for it; the same
    shape."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner

    class Counting(ToolRunner):
        calls = 0

        def run(self, argv, *args, **kwargs):
            Counting.calls += 'psql' in argv[0]
            return super().run(argv, *args, **kwargs)

    conn = ConnectionParams(host=pg.host, port=pg.port, user=pg.user, password=pg.password)
    snaps = {}
    for database, trips in (('postgres', 1), ('plain', 3)):
        Counting.calls = 0
        collector = registry.get_insights('postgresql', conn, Counting())
        snaps[database] = core.run(collector, core.Options(database=database), verdicts.parse({}), 'test')
        assert Counting.calls == trips == collector.round_trips, database
        assert snaps[database]['database'] == database and snaps[database]['server_version'] >= 150000
    assert snaps['postgres']['statements']['enabled'] and snaps['postgres']['statements']['tracked'] >= 1
    assert snaps['plain']['statements']['enabled'] is False
    assert set(snaps['postgres']) == set(snaps['plain'])
    assert snaps['postgres']['connections']['max'] == MAX_CONNECTIONS


@pytest.mark.parametrize('extension', ['ext', None], ids=['pg_stat_statements_in_its_own_schema', 'no_extension'])
def test_pg_database_search_path_never_runs_a_schema_owners_functions_as_our_login(pg, extension):
    """The database lists a schema before pg_catalog in its search_path (ALTER DATABASE ... SET): functions of the
    catalog's names there, written by an ordinary role, would run as the insights login (a superuser here) for every
    unqualified call of the snapshot (and of the probe, where the extension is missing). The snapshot must use the
    catalog's functions, still find pg_stat_statements in whatever schema it was created in, and leave the role as
    it was."""
    database, role = 'trapdb_%s' % (extension or 'none'), 'trap_%s' % (extension or 'none')
    pg.create_database(database)
    escalate = ("LANGUAGE plpgsql AS $$ BEGIN IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = "
                "current_user) THEN EXECUTE 'ALTER ROLE %s SUPERUSER'; END IF; RETURN %s; END $$;")
    pg.sql('CREATE ROLE %s NOSUPERUSER' % role)
    try:
        pg.sql(('CREATE SCHEMA trap AUTHORIZATION %s; SET ROLE %s; '
                'CREATE FUNCTION trap.pg_is_in_recovery() RETURNS boolean ' + escalate % (role, 'false') +
                'CREATE FUNCTION trap.current_database() RETURNS name ' + escalate % (role, "'trap'") +
                'CREATE FUNCTION trap.current_setting(text) RETURNS text ' + escalate % (
                    role, 'pg_catalog.current_setting($1)') + 'RESET ROLE; ' +
                ('CREATE SCHEMA ext; CREATE EXTENSION pg_stat_statements SCHEMA ext; ' if extension else '') +
                'ALTER DATABASE %s SET search_path TO trap, pg_catalog, ext, public') % (role, role, database),
               database=database)
        snap = insight(pg, database=database)
        assert pg.sql("SELECT rolsuper::text FROM pg_roles WHERE rolname = '%s'" % role) == [('false',)], \
            'db_insights ran a function of the schema owner as its superuser login'
        assert snap['database'] == database
        assert snap['statements']['enabled'] is bool(extension), snap['statements']
        if extension:
            assert snap['statements']['tracked'] >= 1
    finally:
        pg.drop_database(database)
        pg.sql('DROP ROLE IF EXISTS %s' % role)
