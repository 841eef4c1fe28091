"""CVE-2018-1058's class in every PostgreSQL session we open: a database whose search_path (ALTER DATABASE ... SET)
lists a schema before pg_catalog, where an ordinary role defined functions and operators named like the catalog's.
Each path connects to that database with the harness's superuser login; the trap's functions log who called them
and make their owner SUPERUSER when a superuser does. The tests assert neither happened (and the work was done).

db_maintenance has its own test (test_db_maintenance_postgresql.py), db_insights its own (test_db_insights.py).
"""

from __future__ import annotations

import sys
from typing import Iterator, List, Tuple

import pytest

from tests.harness.playbook import REPO, run_playbook, write_playbook

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.checks import (  # noqa: E402
    PostgresChecks)

# Functions of the catalog's names our SQL calls unqualified somewhere, and the = operator on names (catalog
# queries, psqlODBC's own at connect). Each logs its caller (application_name) and escalates through esc().
TRAP_SQL = """
CREATE ROLE {role} NOSUPERUSER;
CREATE SCHEMA trap AUTHORIZATION {role};
SET ROLE {role};
CREATE TABLE trap.calls (fn text, app text, by_user name);
GRANT INSERT ON trap.calls TO PUBLIC;
CREATE FUNCTION trap.esc(fn text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO trap.calls VALUES (fn, pg_catalog.current_setting('application_name'), current_user);
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
    EXECUTE 'ALTER ROLE {role} SUPERUSER';
  END IF;
  RETURN false; END $$;
CREATE FUNCTION trap.pg_is_in_recovery() RETURNS boolean LANGUAGE sql
  AS $$ SELECT trap.esc('pg_is_in_recovery') OR pg_catalog.pg_is_in_recovery() $$;
CREATE FUNCTION trap.current_setting(text) RETURNS text LANGUAGE sql
  AS $$ SELECT CASE WHEN trap.esc('current_setting') THEN NULL ELSE pg_catalog.current_setting($1) END $$;
CREATE FUNCTION trap.format(text, name, name) RETURNS text LANGUAGE sql
  AS $$ SELECT CASE WHEN trap.esc('format') THEN NULL ELSE pg_catalog.format($1, $2, $3) END $$;
CREATE FUNCTION trap.name_eq(name, name) RETURNS boolean LANGUAGE sql
  AS $$ SELECT trap.esc('=') OR $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR trap.= (LEFTARG = name, RIGHTARG = name, FUNCTION = trap.name_eq);
RESET ROLE;
ALTER DATABASE {db} SET search_path TO trap, pg_catalog, public;
"""


class Trap:
    def __init__(self, db) -> None:
        self.db = db
        self.role = 'trap_%s' % db.name[-8:]

    def outcome(self) -> Tuple[bool, List[tuple]]:
        """(the role became SUPERUSER, the trap's calls) read without touching the trap (database postgres)."""
        server = self.db.server
        sup = server.sql("SELECT rolsuper::text FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) '%s'"
                         % self.role, database='postgres')
        calls = self.db.sql('SET search_path = pg_catalog; SELECT fn, app, by_user, count(*) FROM trap.calls '
                            'GROUP BY 1, 2, 3 ORDER BY 1, 2')
        return sup == [('true',)], calls

    def assert_untouched(self, what: str) -> None:
        escalated, calls = self.outcome()
        assert not calls and not escalated, (
            "%s ran the schema owner's functions as our login (function, application_name, login, calls): %r%s" % (
                what, calls, ' (and the role made itself SUPERUSER)' if escalated else ''))


@pytest.fixture
def trap(pg_db) -> Iterator[Trap]:
    t = Trap(pg_db)
    pg_db.sql(TRAP_SQL.format(role=t.role, db=pg_db.name))
    try:
        yield t
    finally:
        pg_db.server.sql('ALTER DATABASE %s RESET search_path' % pg_db.name, database='postgres')
        pg_db.sql('DROP SCHEMA trap CASCADE; DROP OWNED BY %s; DROP ROLE %s' % (t.role, t.role))


def test_the_trap_springs_on_an_unqualified_call(trap):
    """The premise: a plain session in the database runs the trap (else the other tests prove nothing)."""
    trap.db.sql('SELECT pg_is_in_recovery()')
    escalated, calls = trap.outcome()
    assert escalated and [c[0] for c in calls] == ['pg_is_in_recovery'], calls
    trap.db.server.sql('ALTER ROLE %s NOSUPERUSER' % trap.role, database='postgres')
    trap.db.sql('SET search_path = pg_catalog; TRUNCATE trap.calls')


def test_replication_status_and_health_probes_in_a_user_database(trap, tmp_path):
    """replication_info and the health check (replication type, db type native and through psqlODBC) asked to
    connect to a user database (their ``database`` option; the ODBC connection string's Database)."""
    db = trap.db
    server = db.server
    login = {'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
             'login_password': server.password}
    odbc = ';'.join(p for p in db.odbc_connection_string().split(';') if p and not p.lower().startswith('pwd='))
    checks = [{'type': 'replication', 'name': 'repl', 'replication_engine': 'postgresql', 'host': server.host,
               'port': server.port, 'user': server.user, 'password': server.password, 'database': db.name},
              {'type': 'db', 'name': 'native', 'engine': 'postgresql', 'host': server.host, 'port': server.port,
               'user': server.user, 'password': server.password, 'database': db.name},
              {'type': 'db', 'name': 'odbc', 'connection_string': odbc, 'password': server.password, 'timeout': 10}]
    tasks = [{'name': 'info', 'register': 'info',
              'opsready.operations.replication_info': dict(login, engine='postgresql', database=db.name)},
             {'name': 'health', 'register': 'health', 'opsready.operations.health_check': {
                 'checks': checks, 'metrics': [], 'fail_on': 'never', 'textfile_path': str(tmp_path / 'h.prom')}}]
    run = run_playbook(write_playbook(tmp_path, tasks))
    assert run.rc == 0, run.stdout[-3000:]
    trap.assert_untouched('replication_info / health_check')
    assert run.result('info')['role'] == 'primary'
    by = {c['name']: c for c in run.result('health')['checks']}
    assert all(by[name]['ok'] for name in ('repl', 'native', 'odbc')), by


def test_drill_checks_read_the_catalog_with_the_catalogs_functions(trap):
    """DR drill checks on a (scratch) database: pg_amcheck, the full read's table list (format(), pg_tables), the
    summary. Smoke queries are the operator's SQL and run under the database's own search_path (documented):
    their unqualified table names must still resolve there."""
    db = trap.db
    db.sql('CREATE TABLE public.orders (id int PRIMARY KEY, status text);'
           "INSERT INTO public.orders SELECT g, 'paid' FROM generate_series(1, 50) g")
    server = db.server
    checks = PostgresChecks(ConnectionParams(host=server.host, port=server.port, user=server.user,
                                             password=server.password, connect_timeout=5), ToolRunner())
    assert checks.integrity(db.name)['result'] == 'ok'   # pg_amcheck (it pins its own path too)
    read = checks.full_read(db.name)
    assert read['tables'] == 2, read   # orders and trap.calls
    summary = checks.summary(db.name)
    assert summary['tables'] == 2 and summary['non_empty_tables'] >= 1, summary
    trap.assert_untouched('the drill checks')
    assert checks.query(db.name, 'SELECT count(*) AS n FROM orders') == [{'n': 50}]


def test_failover_drill_reads_the_writers_table_back_schema_qualified(trap):
    """failover_drill reads the rows back on the new primary with the nodes' login (a superuser) in the application's
    database. The writer (the application's login, its own search_path public) names its table unqualified; the
    database's path, which our login gets, finds a view of that name in trap first: it must never be read."""
    from ansible_collections.opsready.operations.plugins.modules import failover_drill  # noqa: PLC0415
    from ansible_collections.opsready.operations.plugins.module_utils.replication import drill  # noqa: PLC0415
    from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import (  # noqa: PLC0415
        node_specs)

    db = trap.db
    server = db.server
    app = 'app_%s' % db.name[-8:]
    db.sql("CREATE ROLE %s LOGIN PASSWORD 'app-pw'; GRANT CREATE ON SCHEMA public TO %s;"
           'ALTER ROLE %s IN DATABASE %s SET search_path = public;'
           'SET ROLE %s; CREATE VIEW trap.opsready_drill_writes AS SELECT 1::bigint AS n WHERE NOT trap.esc(%s);'
           'RESET ROLE' % (app, app, app, db.name, trap.role, "'view'"))
    runner = ToolRunner()
    try:
        writer = drill.Writer(ConnectionParams(host=server.host, port=server.port, user=app, password='app-pw',
                                               connect_timeout=5), db.name, 'opsready_drill_writes', runner)
        writer.prepare()
        assert writer.qualified == 'public.opsready_drill_writes'
        db.sql('INSERT INTO public.opsready_drill_writes (n) VALUES (1), (2)')
        node = node_specs([{'name': 'n1', 'login_host': server.host, 'login_port': server.port,
                            'login_user': server.user, 'login_password': server.password}])[0]
        rows = failover_drill._present(node, {'database': db.name, 'table': 'opsready_drill_writes'},
                                       writer.qualified, runner)
        assert sorted(rows) == [1, 2]
        trap.assert_untouched('failover_drill reading the rows back')
        # a writer table that is a view (its functions would run as the nodes' login) is refused
        db.sql('SET ROLE %s; DROP TABLE public.opsready_drill_writes; CREATE VIEW public.opsready_drill_writes AS '
               'SELECT 1::bigint AS n; RESET ROLE' % app)
        with pytest.raises(Exception, match='is not a table'):
            writer.prepare()
    finally:
        db.sql('DROP OWNED BY %s; DROP ROLE %s' % (app, app))   # the writer's table or view went with it
