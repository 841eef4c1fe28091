"""Fidelity, PostgreSQL, round 4: what a restored copy can reach, bytes of a SQL_ASCII database, functions the load
cannot find, and regression guards for object kinds rounds 1-3 did not hold.

* foreign servers: a restored copy (a DR drill's scratch copy) keeps the source's postgres_fdw / dblink_fdw servers
  and user mappings; its foreign tables then read and write the backed-up database's remote (production).
  ``foreign_servers: disable`` (the dr_drill role's default) makes them unable to connect; either way the result
  names them, and never a password;
* a SQL_ASCII database's comment with bytes that are not UTF-8 comes back byte for byte;
* a CHECK constraint, column default or index expression calling a function by an unqualified name: the load (empty
  search_path) cannot find it; db_backup warns at backup time, naming it;
* regression guards (see GUARDS).

The second "production remote" database lives on the same test server and is reached over TCP with a login of its
own, as a real remote would be.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.fidelity.test_postgresql import backup, create_roles, leftovers, qi, ql, restore
from tests.harness.playbook import run_playbook
from tests.harness.servers import PostgresServer


@pytest.fixture(scope='module')
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        create_roles(server)
        yield server
    finally:
        server.cleanup()


def drop_databases(server: PostgresServer, *names: str) -> None:
    for name in names:
        server.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


# -- foreign servers -----------------------------------------------------------------------------------------------
@pytest.fixture
def fdw(pg: PostgresServer) -> Iterator[dict]:
    """A "production remote" database (reached over TCP by a login of its own, with a password) and a source
    database whose postgres_fdw foreign table and dblink_fdw server point at it."""
    tag = uuid.uuid4().hex[:6]
    remote, source, login = 'fid_remote_%s' % tag, 'fid_fdw_%s' % tag, 'fid_fdw_login_%s' % tag
    secret = 'Fdw-S3cret-%s' % uuid.uuid4().hex
    pg.sql("CREATE ROLE %s LOGIN PASSWORD %s" % (qi(login), ql(secret)))
    try:
        for db in (remote, source):
            pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(db))
        pg.sql("CREATE TABLE orders (id int PRIMARY KEY, v text); INSERT INTO orders SELECT g, 'prod ' || g "
               "FROM generate_series(1, 5) g; GRANT ALL ON orders TO %s" % qi(login), database=remote)
        where = "host '127.0.0.1', port '%d', dbname %s" % (pg.port, ql(remote))
        pg.sql("CREATE EXTENSION postgres_fdw; CREATE EXTENSION dblink; "
               "CREATE SERVER prod FOREIGN DATA WRAPPER postgres_fdw OPTIONS (%s); "
               "CREATE USER MAPPING FOR PUBLIC SERVER prod OPTIONS (user %s, password %s); "
               "CREATE SERVER side FOREIGN DATA WRAPPER dblink_fdw OPTIONS (hostaddr '127.0.0.1', port '%d', "
               "dbname %s); "
               "CREATE USER MAPPING FOR CURRENT_USER SERVER side OPTIONS (user %s, password %s); "
               "CREATE FOREIGN TABLE remote_orders (id int, v text) SERVER prod OPTIONS (table_name 'orders'); "
               "CREATE TABLE local (id int); INSERT INTO local VALUES (1)"
               % (where, ql(login), ql(secret), pg.port, ql(remote), ql(login), ql(secret)), database=source)
        # the source itself reaches the remote (else the test proves nothing)
        assert pg.sql('SELECT count(*) FROM remote_orders', database=source) == [('5',)]
        yield {'remote': remote, 'source': source, 'login': login, 'secret': secret}
    finally:
        drop_databases(pg, source, remote, source + '_drill', *leftovers(pg))
        for db in [r[0] for r in pg.sql("SELECT datname FROM pg_database WHERE datname LIKE %s"
                                        % ql(source + '%'))]:
            drop_databases(pg, db)
        pg.sql('DROP ROLE IF EXISTS %s' % qi(login))


def remote_rows(pg: PostgresServer, fdw: dict) -> list:
    return pg.sql('SELECT id, v FROM orders ORDER BY id', database=fdw['remote'])


def test_restored_foreign_servers_are_named_and_kept_by_default(pg, fdw, tmp_path):
    """The default keeps them (a restore in place goes on working), and says so: the copy writes into the remote."""
    dest = backup(tmp_path, pg, fdw['source'])
    copy = fdw['source'] + '_kept'
    result = restore(tmp_path, pg, dest, source_database=fdw['source'], database=copy)
    assert result.rc == 0, result.stdout[-4000:]
    out = result.result('restore')
    assert fdw['secret'] not in result.stdout and fdw['secret'] not in json.dumps(out)
    servers = {s['name']: s for s in out['foreign_servers']}
    assert set(servers) == {'prod', 'side'}, out['foreign_servers']
    assert servers['prod']['wrapper'] == 'postgres_fdw' and servers['prod']['action'] == 'kept'
    assert servers['prod']['options'] == {'host': '127.0.0.1', 'port': str(pg.port), 'dbname': fdw['remote']}
    assert servers['prod']['user_mappings'] == ['PUBLIC'] and servers['side']['user_mappings'] == [pg.user]
    assert any('prod' in w and 'side' in w and 'foreign_servers=disable' in w for w in out['restore_warnings'])
    # the copy reaches the remote, as the source does
    pg.sql("INSERT INTO remote_orders VALUES (100, 'written by the copy')", database=copy)
    assert remote_rows(pg, fdw)[-1] == ('100', 'written by the copy')


def test_disable_leaves_the_copy_unable_to_reach_the_remote(pg, fdw, tmp_path):
    dest = backup(tmp_path, pg, fdw['source'])
    copy = fdw['source'] + '_off'
    before = remote_rows(pg, fdw)
    result = restore(tmp_path, pg, dest, source_database=fdw['source'], database=copy, foreign_servers='disable')
    assert result.rc == 0, result.stdout[-4000:]
    out = result.result('restore')
    assert fdw['secret'] not in result.stdout and fdw['secret'] not in json.dumps(out)
    actions = {s['name']: s['action'] for s in out['foreign_servers']}
    assert actions['prod'].startswith('disabled: host set to ') and '1 user mapping' in actions['prod'], actions
    assert 'hostaddr dropped' in actions['side'], actions
    assert any('made unable to reach their remote' in w and 'prod' in w for w in out['restore_warnings'])
    for sql in ("INSERT INTO remote_orders VALUES (101, 'written by the copy')", 'SELECT count(*) FROM remote_orders',
                "SELECT dblink_exec('side', 'DELETE FROM orders')"):
        with pytest.raises(Exception, match='opsready-disabled-foreign-server'):
            pg.sql(sql, database=copy)
    assert remote_rows(pg, fdw) == before
    # no password left in the copy; the rest of it is whole
    assert pg.sql("SELECT count(*) FROM pg_user_mappings, pg_options_to_table(umoptions) WHERE option_name = "
                  "'password'", database=copy) == [('0',)]
    assert pg.sql('SELECT count(*) FROM local', database=copy) == [('1',)]
    # the source is untouched
    assert pg.sql('SELECT count(*) FROM remote_orders', database=fdw['source']) == [('5',)]


def drill(pg: PostgresServer, fdw: dict, tmp_path: Path, **extra):
    database = {'name': fdw['source'], 'engine': 'postgresql', 'database': fdw['source'],
                'backup_dir': str(tmp_path / 'backups'), 'login_host': pg.host, 'login_port': pg.port,
                'login_user': pg.user, 'password_var': 'drill_password',
                'smoke_queries': [{'name': 'remote orders', 'sql': 'SELECT count(*) AS n FROM remote_orders',
                                   'expect': {'value_at_least': 1}}]}
    database.update(extra)
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'drill_password': pg.password,
        'dr_drill_backup_first': True, 'dr_drill_databases': [database]})


def test_drill_scratch_copy_does_not_reach_the_production_remote(pg, fdw, tmp_path):
    """The drill's smoke query of a foreign table read the production remote from the scratch copy; the role now
    restores with foreign_servers=disable: the query fails to connect, and the report names the servers."""
    result = drill(pg, fdw, tmp_path)
    out = result.result('Write the drill report')
    report = json.loads(Path(out['paths']['json']).read_text())
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert steps['restore']['ok'], steps['restore']
    assert any('made unable to reach their remote' in w and 'prod' in w for w in steps['restore']['warnings'])
    assert not steps['smoke']['ok'] and 'opsready-disabled-foreign-server' in (steps['smoke'].get('error') or ''), \
        steps['smoke']
    assert result.rc != 0
    assert fdw['secret'] not in result.stdout
    for path in (tmp_path / 'reports').iterdir():
        assert fdw['secret'] not in path.read_text(errors='replace'), path
    # the operator's way back to the old behaviour, for a drill that must read the remote
    kept = drill(pg, fdw, tmp_path, foreign_servers='keep')
    assert kept.rc == 0, kept.stdout[-4000:]


# -- functions the load cannot find: warned at backup time ----------------------------------------------------------
SEARCH_PATH_SOURCE = r'''
CREATE TABLE settings (suffix text);
INSERT INTO settings VALUES ('-x');
CREATE SEQUENCE code_seq;
CREATE FUNCTION limit_val() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 100';
-- a CHECK through a function naming another one without its schema
CREATE FUNCTION under_limit(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v < limit_val()';
-- a default through a function naming a sequence in a string (regclass, resolved by the search_path too)
CREATE FUNCTION next_code() RETURNS text LANGUAGE sql AS $$SELECT 'c' || nextval('code_seq')$$;
-- an index expression through PL/pgSQL naming a table
CREATE FUNCTION norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE
  AS $$BEGIN RETURN lower(t) || coalesce((SELECT suffix FROM Settings LIMIT 1), ''); END$$;
-- the same kinds done right: not warned
CREATE FUNCTION pinned(v int) RETURNS boolean LANGUAGE sql IMMUTABLE SET search_path = public
  AS 'SELECT v < limit_val()';
CREATE FUNCTION qualified(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v < public.limit_val()';
CREATE FUNCTION builtin_only(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower(trim(t))';
CREATE FUNCTION atomic_body(v int) RETURNS boolean LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT v < limit_val(); END;
CREATE FUNCTION unused() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM settings';
CREATE TABLE t (v int CHECK (under_limit(v)) CHECK (pinned(v)) CHECK (qualified(v)) CHECK (atomic_body(v)),
                code text DEFAULT next_code(), name text);
CREATE INDEX t_norm ON t (norm(name));
CREATE INDEX t_builtin ON t (builtin_only(name));
INSERT INTO t (v, name) VALUES (1, 'A');
'''


def test_functions_the_load_cannot_find_are_warned_at_backup_time(pg, tmp_path):
    """pg_dump's output runs with an empty search_path: a function called by a CHECK constraint, a default or an
    index expression that names another object without its schema fails the restore (round 3 explains it then).
    The backup says so first, naming the functions and what to change."""
    name = 'fid_spw_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(SEARCH_PATH_SOURCE, database=name)
        dest = tmp_path / 'backups'
        result = run_playbook_task(tmp_path, pg, {'opsready.operations.db_backup': {
            'engine': 'postgresql', 'database': name, 'dest': str(dest)}})
        assert result.rc == 0, result.stdout[-4000:]
        out = result.result('task')
        warning = out['manifest'].get('warning') or ''
        for fn in ('public.under_limit(integer)', 'public.next_code()', 'public.norm(text)'):
            assert fn in warning, warning
        for fn in ('pinned', 'qualified', 'builtin_only', 'atomic_body', 'unused', 'limit_val'):
            assert 'public.%s(' % fn not in warning, warning
        assert 'SET search_path' in warning and 'schema' in warning, warning
        assert any('public.norm(text)' in w for w in out.get('warnings') or []), out.get('warnings')
    finally:
        drop_databases(pg, name)


def run_playbook_task(tmp_path: Path, server: PostgresServer, task: dict):
    from tests.fidelity.test_postgresql import conn, play
    module, options = next(iter(task.items()))
    return play(tmp_path, [{'name': 'task', module: dict(conn(server), **options)}], server)


# -- a SQL_ASCII database's bytes ---------------------------------------------------------------------------------
def raw_properties(server: PostgresServer, name: str) -> dict:
    """The database's comment, its ALTER DATABASE/ROLE ... SET values and a table's comment as bytes (hex), read in
    the database itself (SQL_ASCII: the bytes as stored)."""
    def one(sql: str) -> str:
        return server.sql("SELECT coalesce(encode(convert_to((%s), 'SQL_ASCII'), 'hex'), '<none>')" % sql,
                          database=name)[0][0]
    return {'comment': one("SELECT shobj_description(d.oid, 'pg_database') FROM pg_database d "
                           "WHERE d.datname = current_database()"),
            'settings': one("SELECT string_agg(coalesce(s.setrole::regrole::text, '-') || ':' || "
                            "array_to_string(s.setconfig, '|'), ';' ORDER BY s.setrole) FROM pg_db_role_setting s "
                            "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()"),
            'table comment': one("SELECT obj_description('t'::regclass, 'pg_class')")}


@pytest.mark.parametrize('fmt', ('custom', 'plain'))
def test_sql_ascii_database_properties_come_back_byte_for_byte(pg, tmp_path, fmt):
    """A legacy SQL_ASCII database holds LATIN1 bytes (0xE9) that are not UTF-8: its own comment and settings came
    back as U+FFFD (EF BF BD), read through a UTF-8 decoding at backup time. Byte for byte now, under another name
    and over itself."""
    name = 'fid_ascii4_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'" % qi(name))
    try:
        db = qi(name)
        pg.sql("CREATE TABLE t (v text); INSERT INTO t VALUES (E'caf\\xe9'); COMMENT ON TABLE t IS E'tbl \\xe9\\xff'; "
               "COMMENT ON DATABASE %s IS E'caf\\xe9 latin1 \\x80\\xff'; "
               "ALTER DATABASE %s SET myapp.city TO E'Z\\xfcrich'; "
               "ALTER ROLE fid_reader IN DATABASE %s SET myapp.greeting TO E'Gr\\xfc\\xdf'" % (db, db, db),
               database=name)
        expected = raw_properties(pg, name)
        assert expected['comment'] == '636166e9206c6174696e312080ff', expected
        dest = backup(tmp_path, pg, name, format=fmt)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['database_properties']['skipped'] == []
        assert raw_properties(pg, copy) == expected
        result = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert raw_properties(pg, name) == expected
        assert leftovers(pg) == []
    finally:
        drop_databases(pg, name, copy)
