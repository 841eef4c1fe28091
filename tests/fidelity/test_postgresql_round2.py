"""Fidelity, PostgreSQL, round 2: what a restore may still read differently or lose.

* settings that change how the dump's data is read or recomputed during the load: the database's own
  ``lc_monetary`` (money is written and read in the session's monetary format), ``lc_numeric``/``lc_time``
  (``to_char`` in a materialized view), a ``default_text_search_config`` of the database's own (a text search
  configuration the dump creates: generated columns, expression indexes and materialized views over
  ``to_tsvector(text)`` are computed during the load);
* a failed load of a database with subscriptions (DROP DATABASE refuses those) leaves no temporary copy;
* the object kinds a DBA checks after a restore under a new name and over the original (replace=true), as
  regression guards: default privileges, column grants, sequences not owned by a column, foreign data
  wrappers/servers/user mappings, statistics objects, event triggers, extension versions and config tables...

Compared as in test_postgresql.py (``pg_dump --schema-only --create``, table checksums, ``pg_database``), plus
what pg_dump's text does not show (extension versions, whether a materialized view is populated, indexes checked
against their table by amcheck).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.fidelity.test_postgresql import (
    assert_same, backup, conn, create_roles, leftovers, play, qi, ql, restore, snapshot)
from tests.harness.servers import PostgresServer

FORMATS = ('custom', 'plain', 'directory')
LOCALE = 'de_DE.UTF-8'   # scripts/setup.sh --test generates it


def has_locale(server: PostgresServer, locale: str) -> bool:
    try:
        server.sql("SELECT set_config('lc_monetary', %s, false)" % ql(locale))
    except Exception:
        return False
    return True


@pytest.fixture(scope='module')
def locale(pg: PostgresServer) -> str:
    if not has_locale(pg, LOCALE):   # a hard failure: CI must have it (scripts/setup.sh --test)
        pytest.fail('locale %s is missing on this machine: run scripts/setup.sh --test (as root)' % LOCALE)
    return LOCALE


def extras(server: PostgresServer, name: str) -> dict:
    """What pg_dump's text does not show."""
    pin = 'SET search_path = pg_catalog; '
    out = {}
    out['extensions'] = server.sql(
        pin + "SELECT e.extname, e.extversion, n.nspname, coalesce((SELECT string_agg(c::regclass::text, ',' ORDER "
        "BY c::regclass::text) FROM unnest(e.extconfig) c), ''), coalesce(array_to_string(e.extcondition, '|'), '') "
        "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1", database=name)
    out['populated'] = server.sql(
        pin + "SELECT c.oid::regclass::text, c.relispopulated::text FROM pg_class c WHERE c.relkind = 'm' ORDER BY 1",
        database=name)
    out['sequences'] = server.sql(
        pin + "SELECT schemaname || '.' || sequencename, coalesce(last_value::text, 'null') FROM pg_sequences "
        "ORDER BY 1", database=name)
    return out


def amcheck(server: PostgresServer, name: str) -> None:
    """Every btree index holds what its table's rows compute to now, in a session of the database (its settings):
    an expression index built during the load under other settings fails here."""
    indexes = server.sql("SET search_path = pg_catalog; SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c "
                         "ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = "
                         "c.relnamespace WHERE a.amname = 'btree' AND n.nspname NOT IN ('pg_catalog', "
                         "'information_schema', 'pg_toast')", database=name)
    for (index,) in indexes:
        server.sql('SET search_path = pg_catalog; SELECT public.bt_index_check(%s::regclass, true)' % ql(index),
                   database=name)


def roundtrip(pg: PostgresServer, tmp_path: Path, name: str, fmt: str, check_indexes: bool = False) -> None:
    """Back ``name`` up in ``fmt``, restore it under a new name and over itself: each the same as the source."""
    expected = snapshot(pg, name)
    expected_extras = extras(pg, name)
    dest = backup(tmp_path, pg, name, format=fmt)
    copy = '%s copy "%s"' % (name[:30], uuid.uuid4().hex[:6])
    jobs = 2 if fmt == 'directory' else 1
    try:
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=jobs)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore of the %s backup under another name' % fmt)
        assert extras(pg, copy) == expected_extras
        if check_indexes:
            amcheck(pg, copy)
        result = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True, jobs=jobs)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, name), 'restore of the %s backup over the original' % fmt)
        assert extras(pg, name) == expected_extras
        if check_indexes:
            amcheck(pg, name)
        assert leftovers(pg) == []
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(copy))


def new_database(pg: PostgresServer, prefix: str) -> str:
    name = '%s "ü" %s' % (prefix, uuid.uuid4().hex[:6])
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    return name


# -- money and to_char under the database's own locale settings ---------------------------------------------
MONEY = r'''
CREATE EXTENSION amcheck;
CREATE TABLE pay (id int PRIMARY KEY, cash money DEFAULT 1234.5 CHECK (cash > (-1000000000000000)::numeric::money),
                  n numeric, d date, label text);
INSERT INTO pay SELECT g, (g * 123456.789 - 50000)::numeric::money, g * 1234.5678, date '2024-01-15' + g * 31,
                       'row ' || g FROM generate_series(1, 40) g;
INSERT INTO pay (id, cash) VALUES (0, '0.01'::numeric::money), (-1, '-900000000000000.08'::numeric::money),
                                  (-2, '900000000000000.07'::numeric::money);
INSERT INTO pay (id) VALUES (-3);
CREATE MATERIALIZED VIEW pay_text AS SELECT id, to_char(n, 'FM999G999G999D99') AS n_text,
  to_char(d, 'TMMonth TMDay') AS d_text, n::text AS n_plain FROM pay;
'''


@pytest.mark.parametrize('fmt', FORMATS)
def test_money_and_to_char_under_the_database_locale(pg, locale, tmp_path, fmt):
    """``ALTER DATABASE ... SET lc_monetary/lc_numeric/lc_time``: money columns, a money DEFAULT and CHECK, and a
    materialized view over to_char come back with the same values, under a new name and over the original."""
    name = new_database(pg, 'fid money')
    try:
        db = qi(name)
        pg.sql('ALTER DATABASE %s SET lc_monetary TO %s; ALTER DATABASE %s SET lc_numeric TO %s; '
               'ALTER DATABASE %s SET lc_time TO %s' % (db, ql(locale), db, ql(locale), db, ql(locale)))
        pg.sql(MONEY, database=name)
        sample = pg.sql('SELECT cash::text FROM pay WHERE id = 40', database=name)[0][0]
        assert '€' in sample, sample   # the locale really is in effect
        roundtrip(pg, tmp_path, name, fmt)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


def money_values(server: PostgresServer, name: str) -> list:
    # read in one format whatever the server's or database's lc_monetary
    return server.sql("SET lc_monetary = 'C'; SELECT id, coalesce(cash::numeric::text, 'null') FROM pay ORDER BY id",
                      database=name)


def array_values(server: PostgresServer, name: str) -> list:
    return server.sql("SELECT id, coalesce(array_to_json(ta)::text, 'null'), coalesce(array_to_json(ia)::text, "
                      "'null') FROM arr ORDER BY id", database=name)


def test_onto_a_server_with_other_input_settings(pg, locale, tmp_path):
    """The target server's own settings (postgresql.conf) that change how the dump's data reads: lc_monetary (as
    initdb writes it from the system's locale), array_nulls=off (a NULL element would read as the string 'NULL',
    or fail for an int[]). The values are read as they were written."""
    name = new_database(pg, 'fid input srv')
    other = PostgresServer(extra_conf={'lc_monetary': locale, 'array_nulls': 'off'})
    try:
        pg.sql(MONEY.replace('CREATE EXTENSION amcheck;', '') +
               "CREATE TABLE arr (id int, ta text[], ia int[]); INSERT INTO arr VALUES "
               "(1, ARRAY['a', NULL, 'NULL', 'null'], ARRAY[1, NULL, 3]), (2, '{}', NULL), (3, ARRAY[NULL]::text[], "
               "'{{1,NULL},{NULL,4}}');", database=name)
        expected = (money_values(pg, name), array_values(pg, name))
        other.start()
        create_roles(other)
        for fmt in FORMATS:
            work = tmp_path / fmt
            work.mkdir()
            dest = backup(work, pg, name, format=fmt)
            result = restore(work, other, dest, source_database=name, database=name, replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            assert (money_values(other, name), array_values(other, name)) == expected, fmt
    finally:
        other.cleanup()
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


# -- a text search configuration of the database's own as its default --------------------------------------
TSEARCH_CONFIG = '''
CREATE SCHEMA "Tsx ü";
CREATE TEXT SEARCH CONFIGURATION "Tsx ü"."My Cfg" (COPY = pg_catalog.simple);
'''
TSEARCH = r'''
CREATE EXTENSION amcheck;
CREATE FUNCTION public.words(t text) RETURNS tsvector LANGUAGE sql IMMUTABLE AS 'SELECT pg_catalog.to_tsvector(t)';
CREATE TABLE doc (id int PRIMARY KEY, body text,
                  w tsvector GENERATED ALWAYS AS (public.words(body)) STORED);
INSERT INTO doc (id, body) SELECT g, 'The running dogs were jumping ' || g FROM generate_series(1, 200) g;
CREATE INDEX doc_words ON doc (public.words(body));
CREATE MATERIALIZED VIEW doc_mv AS SELECT id, to_tsvector(body) AS v, to_tsquery('jumping & dogs')::text AS q
  FROM doc;
'''


@pytest.mark.parametrize('fmt', FORMATS)
def test_own_default_text_search_config_applies_during_the_load(pg, tmp_path, fmt):
    """``ALTER DATABASE ... SET default_text_search_config`` to a configuration the database itself holds: what the
    load computes with to_tsvector(text) (generated columns, expression indexes, materialized views) uses it,
    not the server's default."""
    name = new_database(pg, 'fid tsc')
    try:
        pg.sql(TSEARCH_CONFIG, database=name)
        pg.sql('ALTER DATABASE %s SET default_text_search_config TO %s' % (qi(name), ql('"Tsx ü"."My Cfg"')))
        pg.sql(TSEARCH, database=name)   # a new session: the database's setting applies
        assert 'running' in pg.sql("SELECT w::text FROM doc WHERE id = 1", database=name)[0][0]   # simple: no stems
        if fmt != 'plain':
            roundtrip(pg, tmp_path, name, fmt, check_indexes=True)
            return
        # psql loads a script in one session, opened before the configuration exists: said in the result
        dest = backup(tmp_path, pg, name, format=fmt)
        copy = name + ' copy'
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(copy))
        assert result.rc == 0, result.stdout[-4000:]
        skipped = result.result('restore')['database_properties']['skipped']
        assert any('default_text_search_config' in note and 'custom or directory' in note for note in skipped), skipped
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


# -- a failed load of a subscriber database ----------------------------------------------------------------
def drop_subscriptions(server: PostgresServer, name: str) -> None:
    if not server.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(name)):
        return
    server.sql('ALTER DATABASE %s ALLOW_CONNECTIONS true' % qi(name))
    for (sub,) in server.sql('SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid '
                             'WHERE d.datname = %s' % ql(name)):
        server.sql('ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s'
                   % (qi(sub), qi(sub), qi(sub)), database=name)


@pytest.mark.parametrize('fmt', FORMATS)
def test_failed_load_of_a_subscriber_database_leaves_no_copy(pg, tmp_path, fmt):
    """The load fails after the dump's CREATE SUBSCRIPTION ran in the temporary copy (a materialized view whose
    refresh fails under any other database name: refreshes come last). DROP DATABASE refuses a database with
    subscriptions: the copy must go all the same, and the error reported is the load's."""
    name = 'fid_subfail_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s' % qi(name))
    try:
        pg.sql("CREATE TABLE t (v int); INSERT INTO t VALUES (1); "
               "CREATE FUNCTION only_here() RETURNS int LANGUAGE plpgsql AS "
               "$$ BEGIN IF current_database() <> %s THEN RAISE EXCEPTION 'refreshed only at the source'; END IF; "
               "RETURN 1; END $$; "
               "CREATE MATERIALIZED VIEW mv AS SELECT only_here() AS x; "
               "CREATE SUBSCRIPTION \"Fid Sub\" CONNECTION 'host=/nonexistent dbname=x' PUBLICATION p "
               "WITH (connect = false, slot_name = 'fid_slot')" % ql(name), database=name)
        dest = backup(tmp_path, pg, name, format=fmt)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy,
                         jobs=2 if fmt == 'directory' else 1)
        assert result.rc != 0, result.stdout[-4000:]
        msg = result.result('restore')['msg']
        assert 'refreshed only at the source' in msg, msg
        assert leftovers(pg) == [], 'the temporary copy was left behind: %s (%s)' % (leftovers(pg), msg)
        assert not pg.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(copy))
    finally:
        for db in [name, copy] + leftovers(pg):
            drop_subscriptions(pg, db)
            pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(db))


def test_restored_subscriber_copy_can_be_dropped_with_state_absent(pg, tmp_path):
    """A DR drill restores a subscriber database to a scratch name, then drops it (state=absent): DROP DATABASE
    refuses a database with subscriptions. The restored (disabled) subscriptions go, their slot on the publisher
    (the backed-up database's) untouched; an enabled one is refused before anything is dropped."""
    name = 'fid_subdrop_%s' % uuid.uuid4().hex[:6]
    copy = name + '_scratch'
    pg.sql('CREATE DATABASE %s' % qi(name))
    try:
        pg.sql("CREATE TABLE t (v int); CREATE SUBSCRIPTION \"Fid Sub\" CONNECTION 'host=/nonexistent dbname=x' "
               "PUBLICATION p WITH (connect = false, slot_name = 'fid_slot')", database=name)
        dest = backup(tmp_path, pg, name)
        for enabled in (True, False):
            result = restore(tmp_path, pg, dest, source_database=name, database=copy)
            assert result.rc == 0, result.stdout[-4000:]
            if enabled:
                pg.sql('ALTER SUBSCRIPTION "Fid Sub" ENABLE', database=copy)
            result = restore(tmp_path, pg, dest, database=copy, state='absent')
            gone = not pg.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(copy))
            if enabled:
                assert result.rc != 0 and not gone, result.stdout[-4000:]
                msg = result.result('restore')['msg']
                assert 'Fid Sub' in msg and 'Nothing was changed' in msg, msg
                drop_subscriptions(pg, copy)
                pg.sql('DROP DATABASE %s' % qi(copy))
            else:
                assert result.rc == 0, result.stdout[-4000:]
                assert gone and result.result('restore')['changed'] is True
    finally:
        for db in (name, copy):
            drop_subscriptions(pg, db)
            pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(db))


# -- the object kinds a DBA checks after a restore (regression guards, and extension versions) --------------
KINDS = r'''
CREATE EXTENSION amcheck;
CREATE EXTENSION hstore VERSION '1.4';
CREATE EXTENSION postgres_fdw;
COMMENT ON EXTENSION hstore IS 'kept at 1.4 on purpose';
CREATE SCHEMA s2 AUTHORIZATION fid_owner;
COMMENT ON SCHEMA s2 IS 'schema comment';

-- default privileges, in a schema and database-wide, granting and revoking
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA s2 GRANT SELECT, INSERT ON TABLES TO fid_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA s2 GRANT USAGE ON SEQUENCES TO fid_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner GRANT EXECUTE ON FUNCTIONS TO fid_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner GRANT USAGE ON TYPES TO "Fid Odd Rôle ""q""";

-- table options, column options, column grants, identity, statistics objects, clustering, replica identity
CREATE TABLE s2.t (id int GENERATED BY DEFAULT AS IDENTITY (START 10 INCREMENT 3) PRIMARY KEY, a int, b int,
                   c text COMPRESSION pglz, secret text, CONSTRAINT a_pos CHECK (a > 0) NOT VALID)
  WITH (fillfactor = 70, autovacuum_enabled = false, toast.autovacuum_enabled = false);
ALTER TABLE s2.t ALTER COLUMN a SET STATISTICS 500;
ALTER TABLE s2.t ALTER COLUMN b SET (n_distinct = -0.5);
ALTER TABLE s2.t ALTER COLUMN c SET STORAGE EXTERNAL;
ALTER TABLE s2.t REPLICA IDENTITY FULL;
ALTER TABLE s2.t OWNER TO fid_owner;
REVOKE ALL ON s2.t FROM PUBLIC;
GRANT SELECT (id, a), UPDATE (b) ON s2.t TO fid_reader;
GRANT INSERT (a, b) ON s2.t TO "Fid Odd Rôle ""q""" WITH GRANT OPTION;
INSERT INTO s2.t (a, b, c, secret) SELECT g, g % 7, repeat('x', 3000), 's' FROM generate_series(1, 500) g;
INSERT INTO s2.t (id, a, b) OVERRIDING SYSTEM VALUE VALUES (100000, 1, 1);
CREATE STATISTICS s2.st_ab (ndistinct, dependencies, mcv) ON a, b FROM s2.t;
ALTER STATISTICS s2.st_ab SET STATISTICS 300;
CREATE INDEX t_a ON s2.t (a) WITH (fillfactor = 50);
CLUSTER s2.t USING t_a;
CREATE UNLOGGED TABLE s2.u (v int);
INSERT INTO s2.u VALUES (1), (2);

-- sequences no column owns: is_called false, true, never used; options
CREATE SEQUENCE s2.free_seq INCREMENT 5 MINVALUE -100 MAXVALUE 1000 CYCLE CACHE 3;
SELECT setval('s2.free_seq', 42, false);
CREATE SEQUENCE s2.called_seq AS smallint;
SELECT setval('s2.called_seq', 77, true);
CREATE SEQUENCE s2.untouched_seq START 9;
GRANT USAGE ON SEQUENCE s2.free_seq TO fid_reader;

-- triggers disabled / replica / always, rules, event triggers enabled always
CREATE TABLE s2.trg (v int);
CREATE FUNCTION s2.trg_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := NEW.v + 1; RETURN NEW; END $$;
CREATE TRIGGER t1 BEFORE INSERT ON s2.trg FOR EACH ROW EXECUTE FUNCTION s2.trg_f();
CREATE TRIGGER t2 BEFORE INSERT ON s2.trg FOR EACH ROW EXECUTE FUNCTION s2.trg_f();
CREATE TRIGGER t3 BEFORE INSERT ON s2.trg FOR EACH ROW EXECUTE FUNCTION s2.trg_f();
ALTER TABLE s2.trg DISABLE TRIGGER t1;
ALTER TABLE s2.trg ENABLE REPLICA TRIGGER t2;
ALTER TABLE s2.trg ENABLE ALWAYS TRIGGER t3;
INSERT INTO s2.trg VALUES (1);
CREATE RULE no_update AS ON UPDATE TO s2.trg DO INSTEAD NOTHING;
CREATE FUNCTION s2.evt() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE EVENT TRIGGER fid_evt_always ON ddl_command_start WHEN TAG IN ('DROP TABLE') EXECUTE FUNCTION s2.evt();
ALTER EVENT TRIGGER fid_evt_always ENABLE ALWAYS;

-- a materialized view (one WITH NO DATA is not readable by the checksums of test_postgresql.py)
CREATE MATERIALIZED VIEW s2.mv_full AS SELECT count(*) AS n FROM s2.t;

-- a nondeterministic ICU collation and an index over it
CREATE COLLATION s2.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE s2.coll (v text COLLATE s2.ci);
INSERT INTO s2.coll VALUES ('a'), ('A'), ('b'), ('Ä');
CREATE INDEX coll_v ON s2.coll (v);

-- foreign data wrappers, servers, user mappings (with a password), foreign tables, their grants
CREATE FOREIGN DATA WRAPPER fid_dummy;
CREATE SERVER "Fid Srv" FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost', dbname 'x', port '5432');
CREATE SERVER fid_other FOREIGN DATA WRAPPER fid_dummy;
CREATE USER MAPPING FOR fid_owner SERVER "Fid Srv" OPTIONS (user 'remote', password 'sécret ''q'' x');
CREATE USER MAPPING FOR PUBLIC SERVER "Fid Srv" OPTIONS (user 'anon');
CREATE FOREIGN TABLE s2.ft (a int OPTIONS (column_name 'aa'), b text) SERVER "Fid Srv"
  OPTIONS (schema_name 'public', table_name 'remote_t');
GRANT USAGE ON FOREIGN SERVER "Fid Srv" TO fid_reader;
GRANT USAGE ON FOREIGN DATA WRAPPER fid_dummy TO fid_reader;
ALTER SERVER fid_other OWNER TO fid_owner;

-- a table access method, an aggregate, an operator, a cast, a publication of a schema
CREATE ACCESS METHOD fid_heap TYPE TABLE HANDLER heap_tableam_handler;
CREATE TABLE s2.am_t (v int) USING fid_heap;
INSERT INTO s2.am_t VALUES (5);
CREATE AGGREGATE s2.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0');
CREATE FUNCTION s2.eq5(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 % 5 = $2 % 5';
CREATE OPERATOR s2.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = s2.eq5);
CREATE TYPE s2.box2 AS (a int, b int);
CREATE FUNCTION s2.box2_text(s2.box2) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1.a || '':'' || $1.b';
CREATE CAST (s2.box2 AS text) WITH FUNCTION s2.box2_text(s2.box2);
CREATE PUBLICATION fid_pub_schema FOR TABLES IN SCHEMA s2 WITH (publish = 'insert, update');

-- comments on every kind
COMMENT ON TABLE s2.t IS 'table';
COMMENT ON COLUMN s2.t.a IS 'column';
COMMENT ON INDEX s2.t_a IS 'index';
COMMENT ON CONSTRAINT a_pos ON s2.t IS 'constraint';
COMMENT ON SEQUENCE s2.free_seq IS 'sequence';
COMMENT ON MATERIALIZED VIEW s2.mv_full IS 'matview';
COMMENT ON TRIGGER t1 ON s2.trg IS 'trigger';
COMMENT ON RULE no_update ON s2.trg IS 'rule';
COMMENT ON EVENT TRIGGER fid_evt_always IS 'event trigger';
COMMENT ON STATISTICS s2.st_ab IS 'statistics';
COMMENT ON COLLATION s2.ci IS 'collation';
COMMENT ON SERVER "Fid Srv" IS 'server';
COMMENT ON FOREIGN DATA WRAPPER fid_dummy IS 'fdw';
COMMENT ON FOREIGN TABLE s2.ft IS 'foreign table';
COMMENT ON ACCESS METHOD fid_heap IS 'access method';
COMMENT ON AGGREGATE s2.total(int) IS 'aggregate';
COMMENT ON OPERATOR s2.=== (int, int) IS 'operator';
COMMENT ON CAST (s2.box2 AS text) IS 'cast';
COMMENT ON TYPE s2.box2 IS 'type';
COMMENT ON PUBLICATION fid_pub_schema IS 'publication';
'''


def database_level_kinds(name: str) -> str:
    db = qi(name)
    return f'''
REVOKE ALL ON DATABASE {db} FROM PUBLIC;
GRANT CONNECT ON DATABASE {db} TO PUBLIC;
GRANT CREATE ON DATABASE {db} TO fid_owner;
GRANT TEMPORARY ON DATABASE {db} TO fid_reader;
ALTER DATABASE {db} CONNECTION LIMIT 7;
ALTER ROLE fid_login IN DATABASE {db} SET work_mem TO '3MB';
ALTER ROLE ALL IN DATABASE {db} SET lock_timeout TO '4s';
ALTER DATABASE {db} SET default_transaction_read_only TO on;
'''


@pytest.mark.parametrize('fmt', FORMATS)
def test_object_kinds_a_dba_checks(pg, tmp_path, fmt):
    name = new_database(pg, 'fid kinds')
    try:
        pg.sql(KINDS, database=name)
        pg.sql(database_level_kinds(name))
        roundtrip(pg, tmp_path, name, fmt, check_indexes=True)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


def test_a_locale_the_target_lacks_stops_before_loading(pg, locale, tmp_path):
    """A database whose settings name a locale (lc_monetary, lc_time, a role's lc_messages) the target server does
    not have (the backup was taken on another server): refused before anything is created, naming it, instead of
    failing at ALTER DATABASE ... SET after the whole load."""
    name = new_database(pg, 'fid lc missing')
    try:
        pg.sql('ALTER DATABASE %s SET lc_monetary TO %s; ALTER ROLE fid_reader IN DATABASE %s SET lc_time TO %s'
               % (qi(name), ql(locale), qi(name), ql(locale)))
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        dest = backup(tmp_path, pg, name)
        original = {path: path.read_text() for path in dest.glob('*.json')}
        for setting in ('lc_monetary', 'lc_time'):
            for path, text in original.items():   # as if taken on a server that had this locale
                data = json.loads(text)
                for entry in data['database_properties']['settings']:
                    entry['config'] = [c.replace('%s=%s' % (setting, locale), '%s=xx_XX.UTF-8' % setting)
                                       for c in entry['config']]
                path.write_text(json.dumps(data))
            result = restore(tmp_path, pg, dest, source_database=name, database=name + ' copy')
            assert result.rc != 0
            msg = result.result('restore')['msg']
            assert setting in msg and 'xx_XX.UTF-8' in msg and 'Nothing was restored' in msg, msg
            assert leftovers(pg) == []
            assert not pg.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(name + ' copy'))
            check = play(tmp_path, [{'name': 'restore', 'check_mode': True, 'opsready.operations.db_restore': dict(
                conn(pg), engine='postgresql', src=str(dest), source_database=name, database=name + ' copy')}], pg)
            assert check.rc != 0 and 'xx_XX.UTF-8' in check.result('restore')['msg']
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))
