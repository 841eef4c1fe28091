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

from tests.fidelity.test_postgresql import backup, leftovers, qi, ql, restore
from tests.fidelity.test_postgresql_round3 import FORMATS, roundtrip
from tests.harness.playbook import run_playbook
from tests.harness.servers import PostgresServer


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
               "CREATE EXTENSION file_fdw; CREATE SERVER files FOREIGN DATA WRAPPER file_fdw; "
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
    assert set(servers) == {'prod', 'side', 'files'}, out['foreign_servers']
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
    assert actions['files'].startswith('left as it was: wrapper file_fdw is not libpq-based'), actions
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


# -- regression guards -----------------------------------------------------------------------------------------------
GUARDS = r"""
CREATE SCHEMA app4 AUTHORIZATION fid_owner;

-- domains over a composite and over an array type
CREATE TYPE app4.pt AS (x int, y int);
CREATE DOMAIN app4.pos_pt AS app4.pt CHECK ((VALUE).x >= 0 AND (VALUE).y >= 0);
CREATE DOMAIN app4.tags AS text[] CHECK (cardinality(VALUE) < 4) DEFAULT '{}';
CREATE TABLE app4.shapes (id int PRIMARY KEY, at app4.pos_pt, tags app4.tags, many app4.pos_pt[]);
INSERT INTO app4.shapes VALUES (1, ROW(1, 2), '{a,b}', ARRAY[ROW(0, 0)::app4.pos_pt, ROW(3, 4)::app4.pos_pt]),
                               (2, NULL, DEFAULT, NULL);

-- row-level security, forced on the owner too
CREATE TABLE app4.secret (id int, owner_name text, v text);
INSERT INTO app4.secret SELECT g, CASE WHEN g % 2 = 0 THEN 'fid_owner' ELSE 'fid_reader' END, 'row ' || g
  FROM generate_series(1, 9) g;
ALTER TABLE app4.secret OWNER TO fid_owner;
ALTER TABLE app4.secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE app4.secret FORCE ROW LEVEL SECURITY;
CREATE POLICY mine ON app4.secret USING (owner_name = current_user);
CREATE POLICY reader_insert ON app4.secret AS RESTRICTIVE FOR INSERT TO fid_reader WITH CHECK (v <> '');
GRANT SELECT, INSERT ON app4.secret TO fid_reader;

-- large objects with ACLs and comments
SELECT lo_from_bytea(424242, decode(repeat('00ff10', 50000), 'hex'));
SELECT lo_from_bytea(424243, 'small');
ALTER LARGE OBJECT 424242 OWNER TO fid_owner;
GRANT SELECT ON LARGE OBJECT 424242 TO fid_reader;
GRANT SELECT, UPDATE ON LARGE OBJECT 424243 TO PUBLIC;
COMMENT ON LARGE OBJECT 424242 IS 'blob with a comment ü';

-- event triggers in every state
CREATE FUNCTION app4.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'ddl'; END$$;
CREATE EVENT TRIGGER et_enabled ON ddl_command_end EXECUTE FUNCTION app4.note_ddl();
CREATE EVENT TRIGGER et_disabled ON ddl_command_start WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION app4.note_ddl();
ALTER EVENT TRIGGER et_disabled DISABLE;
CREATE EVENT TRIGGER et_replica ON sql_drop EXECUTE FUNCTION app4.note_ddl();
ALTER EVENT TRIGGER et_replica ENABLE REPLICA;
CREATE EVENT TRIGGER et_always ON table_rewrite EXECUTE FUNCTION app4.note_ddl();
ALTER EVENT TRIGGER et_always ENABLE ALWAYS;

-- two parents
CREATE TABLE app4.p1 (a int, shared text);
CREATE TABLE app4.p2 (b int, shared text);
CREATE TABLE app4.child (c int) INHERITS (app4.p2, app4.p1);
INSERT INTO app4.child VALUES (1, 'x', 2, 3), (4, 'y', 5, 6);
INSERT INTO app4.p1 VALUES (7, 'only p1');

-- replica identity, storage parameters, statistics targets, extended statistics
CREATE TABLE app4.ri_full (id int, v text);
ALTER TABLE app4.ri_full REPLICA IDENTITY FULL;
CREATE TABLE app4.ri_index (id int NOT NULL, code text NOT NULL, v text);
CREATE UNIQUE INDEX ri_index_key ON app4.ri_index (code, id);
ALTER TABLE app4.ri_index REPLICA IDENTITY USING INDEX ri_index_key;
CREATE TABLE app4.ri_nothing (v text);
ALTER TABLE app4.ri_nothing REPLICA IDENTITY NOTHING;
ALTER TABLE app4.ri_index SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, toast.autovacuum_enabled = false,
                               toast_tuple_target = 256);
CREATE INDEX ri_index_v ON app4.ri_index (v) WITH (fillfactor = 50);
ALTER TABLE app4.ri_index ALTER COLUMN v SET STATISTICS 1000, ALTER COLUMN code SET STATISTICS 0,
                          ALTER COLUMN v SET STORAGE EXTERNAL, ALTER COLUMN v SET COMPRESSION pglz;
INSERT INTO app4.ri_index SELECT g, 'c' || (g % 7), repeat('v', g) FROM generate_series(1, 200) g;
CREATE STATISTICS app4.st_dep (dependencies, ndistinct, mcv) ON code, id FROM app4.ri_index;
CREATE STATISTICS app4.st_expr ON lower(code), (id % 3) FROM app4.ri_index;
ALTER STATISTICS app4.st_dep SET STATISTICS 500;
ALTER STATISTICS app4.st_expr OWNER TO fid_owner;
COMMENT ON STATISTICS app4.st_dep IS 'extended';
"""

ICU = r"""
-- non-default ICU collations per column (a nondeterministic one with a unique index over it)
CREATE COLLATION app4.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE COLLATION app4.de_phone (provider = icu, locale = 'de-u-co-phonebk');
CREATE TABLE app4.names (id int, n text COLLATE app4.ci, d text COLLATE app4.de_phone, u text COLLATE "und-x-icu");
CREATE UNIQUE INDEX names_n ON app4.names (n);
INSERT INTO app4.names VALUES (1, 'Straße', 'Müller', 'ä'), (2, 'ABC', 'Mueller', 'b');
"""


def guard_extra(server: PostgresServer, db: str) -> list:
    """What pg_dump's text shows only in part, or what the load itself must have done."""
    return server.sql(
        # row-level security: the flags, and what the owner (FORCE) and a reader see: their own rows only
        "SELECT relrowsecurity::text || relforcerowsecurity::text FROM pg_class WHERE oid = 'app4.secret'::regclass "
        "UNION ALL SELECT string_agg(polname || ':' || polpermissive::text || ':' || polcmd::text, ',' "
        "ORDER BY polname) "
        "FROM pg_policy WHERE polrelid = 'app4.secret'::regclass "
        "UNION ALL (SELECT 'as table owner: ' || count(*) FROM app4.secret) "
        "UNION ALL SELECT 'total: ' || (SELECT count(*) FROM app4.secret) "
        # event triggers' states
        "UNION ALL SELECT string_agg(evtname || ':' || evtenabled::text, ',' ORDER BY evtname) FROM pg_event_trigger "
        # inheritance order
        "UNION ALL SELECT string_agg(inhparent::regclass::text || ':' || inhseqno, ',' ORDER BY inhseqno) "
        "FROM pg_inherits WHERE inhrelid = 'app4.child'::regclass "
        # replica identity, storage parameters (table, its TOAST table, an index)
        "UNION ALL SELECT string_agg(relname || ':' || relreplident::text, ',' ORDER BY relname) FROM pg_class "
        "WHERE relnamespace = 'app4'::regnamespace AND relname LIKE 'ri\\_%' AND relkind = 'r' "
        "UNION ALL SELECT string_agg(indexrelid::regclass::text, ',') FROM pg_index WHERE indisreplident "
        "UNION ALL SELECT array_to_string(c.reloptions, ',') || ' / ' || array_to_string(t.reloptions, ',') "
        "FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.oid = 'app4.ri_index'::regclass "
        "UNION ALL SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'app4.ri_index_v'::regclass "
        # statistics targets, storage and compression of columns; extended statistics
        "UNION ALL SELECT string_agg(attname || ':' || attstattarget || ':' || attstorage::text || ':' || "
        "attcompression::text, ',' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = 'app4.ri_index'::regclass AND attnum > 0 "
        "UNION ALL SELECT string_agg(stxname || ':' || array_to_string(stxkind, '') || ':' || stxstattarget || ':' "
        "|| pg_get_userbyid(stxowner), ',' ORDER BY stxname) FROM pg_statistic_ext "
        "WHERE stxnamespace = 'app4'::regnamespace "
        # domains' base types
        "UNION ALL SELECT string_agg(typname || ':' || format_type(typbasetype, typtypmod), ',' ORDER BY typname) "
        "FROM pg_type WHERE typnamespace = 'app4'::regnamespace AND typtype = 'd' "
        # collations of columns
        "UNION ALL SELECT coalesce(string_agg(a.attname || ':' || c.collname || ':' || c.collprovider::text || ':' || "
        "c.collisdeterministic, ',' ORDER BY a.attnum), '-') FROM pg_attribute a JOIN pg_collation c ON "
        "c.oid = a.attcollation WHERE a.attrelid = to_regclass('app4.names') AND a.attnum > 0 "
        "UNION ALL SELECT coalesce((SELECT count(*) FROM app4.names WHERE n = 'abc')::text, '-') "
        "WHERE to_regclass('app4.names') IS NOT NULL", database=db) + server.sql(
        # what the table's owner sees, FORCE ROW LEVEL SECURITY in force
        "SET ROLE fid_owner; SELECT 'as fid_owner: ' || string_agg(id::text, ',' ORDER BY id) FROM app4.secret",
        database=db)


def icu_available(server: PostgresServer) -> bool:
    return server.sql("SELECT count(*) FROM pg_collation WHERE collprovider = 'i'") != [('0',)]


@pytest.mark.parametrize('fmt', FORMATS)
def test_round4_guards(pg, tmp_path, fmt):
    name = 'fid_guard4_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(GUARDS + (ICU if icu_available(pg) else ''), database=name)
        extra = guard_extra(pg, name)
        assert ('truetrue',) in extra and ('as fid_owner: 2,4,6,8',) in extra and ('total: 9',) in extra, extra
        assert ('et_always:A,et_disabled:D,et_enabled:O,et_replica:R',) in extra, extra
        assert not icu_available(pg) or ('1',) in extra, extra   # the nondeterministic collation's equality
        roundtrip(pg, tmp_path, name, fmt, check=guard_extra)
    finally:
        drop_databases(pg, name)
