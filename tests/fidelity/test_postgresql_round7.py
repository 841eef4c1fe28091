"""Fidelity, PostgreSQL, round 7 (red team): what earlier rounds left only named, and the classes they did not hold.

* relations an extension owns (a table, a view, a materialized view, a sequence) whose owner, comment or column
  comments a user changed after CREATE EXTENSION: pg_dump writes CREATE EXTENSION only, so the copy had the
  extension script's; round 6 set a member function's and type's again but only named a relation's. They come back;
* names with every legal oddity (newline, tab, quotes, backslash, ``-x=y``, 63 bytes of multi-byte characters,
  mixed case) for roles, schemas, tables and databases, restored under another database name;
* object kinds a DBA checks that rounds 1-6 did not hold (regression guards, see KINDS7);
* a target server that lacks roles the dump refers to only through a user mapping or default privileges: refused
  before anything is created, each named; a role named only in ALTER ROLE ... IN DATABASE ... SET is named as
  skipped.

Security labels are not tested: no label provider (sepgsql, dummy_seclabel) is installed on the test servers.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.fidelity.test_postgresql import (
    FORMATS, assert_same, backup, leftovers, qi, ql, restore, snapshot)
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.harness.servers import PostgresServer


# -- relations an extension owns --------------------------------------------------------------------------------
REL_EXTENSION_SQL = """
CREATE TABLE rel7_t (id int PRIMARY KEY, note text);
COMMENT ON COLUMN rel7_t.id IS 'from the script';
CREATE VIEW rel7_v AS SELECT 1 AS one;
CREATE MATERIALIZED VIEW rel7_mv AS SELECT 1 AS one;
CREATE SEQUENCE rel7_s;
CREATE FUNCTION rel7_f() RETURNS int LANGUAGE sql AS 'SELECT 7';
"""


@pytest.fixture(scope='module')
def rel_extension(pg: PostgresServer) -> Iterator[str]:
    """A tiny extension owning relations (no contrib extension here has a table, a view and a sequence), written into
    the server's extension directory for this module and removed after it."""
    name = 'fid_rel7_%s' % uuid.uuid4().hex[:6]
    sharedir = subprocess.run([pg.bin('pg_config'), '--sharedir'], check=True, capture_output=True,
                              text=True).stdout.strip()
    control = Path(sharedir, 'extension', name + '.control')
    script = Path(sharedir, 'extension', name + '--1.0.sql')
    try:
        script.write_text(REL_EXTENSION_SQL)
        control.write_text("default_version = '1.0'\nrelocatable = true\nsuperuser = true\n")
        yield name
    finally:
        for path in (control, script):
            path.unlink(missing_ok=True)


REL_MEMBERS = ("SELECT c.oid::regclass::text, c.relkind::text, pg_get_userbyid(c.relowner), "
               "coalesce(obj_description(c.oid, 'pg_class'), '-'), "
               "coalesce((SELECT string_agg(a.attname || '=' || col_description(c.oid, a.attnum), ',' "
               "ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
               "AND col_description(c.oid, a.attnum) IS NOT NULL), '-') "
               "FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid "
               "AND d.deptype = 'e' ORDER BY 1")


def test_extension_member_relations_come_back_as_changed(pg, rel_extension, tmp_path):
    """The owner, the comment and column comments a user gave a table, a view, a materialized view and a sequence an
    extension owns were lost (named since round 5, never set again): the copy had the extension script's. They are
    set again after the load, as a member function's are, and nothing is named lost."""
    name = 'fid_extrel7_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE EXTENSION %s; "
               "ALTER TABLE rel7_t OWNER TO fid_owner; COMMENT ON TABLE rel7_t IS 'table ours ü ''q'''; "
               "COMMENT ON COLUMN rel7_t.note IS 'column ours'; COMMENT ON COLUMN rel7_t.id IS 'changed by a user'; "
               "ALTER VIEW rel7_v OWNER TO \"Fid Odd Rôle \"\"q\"\"\"; COMMENT ON VIEW rel7_v IS 'view ours'; "
               "ALTER MATERIALIZED VIEW rel7_mv OWNER TO fid_reader; COMMENT ON MATERIALIZED VIEW rel7_mv IS 'mv'; "
               "ALTER SEQUENCE rel7_s OWNER TO fid_owner; COMMENT ON SEQUENCE rel7_s IS 'seq ours'"
               % qi(rel_extension), database=name)
        expected = pg.sql(REL_MEMBERS, database=name)
        assert ('rel7_v', 'v', 'Fid Odd Rôle "q"', 'view ours', '-') in expected, expected
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        warnings = result.result('restore')['restore_warnings']
        assert pg.sql(REL_MEMBERS, database=copy) == expected
        assert not [w for w in warnings if 'did not come back' in w], warnings
        again = [w for w in warnings if 'were set again after the load' in w]
        assert len(again) == 1 and 'relation public.rel7_v (owner Fid Odd Rôle "q", comment)' in again[0], warnings
        # with no_owner: the comments come back, the owners are the restoring role's (not named)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, replace=True, no_owner=True)
        assert result.rc == 0, result.stdout[-4000:]
        got = pg.sql(REL_MEMBERS, database=copy)
        assert [(r[0], r[3], r[4]) for r in got] == [(r[0], r[3], r[4]) for r in expected], got
        assert {r[2] for r in got} == {pg.user}, got
        assert not [w for w in result.result('restore')['restore_warnings'] if 'did not come back' in w]
    finally:
        drop_databases(pg, name, copy)


# -- names with every legal oddity ------------------------------------------------------------------------------
ODD_ROLES = ('fid7 nl\nrole', 'fid7\ttab', 'ř' * 31 + 'x', "-fid7=x 'q' \\b", 'FID7 Mixed"Case')
ODD_SCHEMA = 'Sch\nema -x=y \'q\' \\ "d" ü'
ODD_TABLE = 'ÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßÄÖÜäöüß' + 'y' * 7   # 63 bytes


def odd_fixture(db: str) -> str:
    r = [qi(x) for x in ODD_ROLES]
    s, t = qi(ODD_SCHEMA), qi(ODD_TABLE)
    return f"""
CREATE SCHEMA {s} AUTHORIZATION {r[0]};
CREATE TABLE {s}.{t} ("Col\nnl" int PRIMARY KEY, "-c=d 'e'" text, "MiXed" text);
INSERT INTO {s}.{t} VALUES (1, 'a', 'b'), (2, NULL, 'c
d');
ALTER TABLE {s}.{t} OWNER TO {r[1]};
GRANT USAGE ON SCHEMA {s} TO {r[2]}, {r[3]};
GRANT SELECT ("Col\nnl", "MiXed"), UPDATE ("-c=d 'e'") ON {s}.{t} TO {r[2]};
GRANT SELECT ON {s}.{t} TO {r[3]} WITH GRANT OPTION;
SET ROLE {r[3]}; GRANT SELECT ON {s}.{t} TO {r[4]}; RESET ROLE;
ALTER TABLE {s}.{t} ENABLE ROW LEVEL SECURITY;
CREATE POLICY "pol\nicy" ON {s}.{t} FOR SELECT TO {r[4]}, {r[2]} USING ("Col\nnl" > 0);
ALTER DEFAULT PRIVILEGES FOR ROLE {r[1]} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r[2]};
ALTER DEFAULT PRIVILEGES FOR ROLE {r[0]} GRANT USAGE ON SEQUENCES TO {r[4]};
CREATE SEQUENCE {s}."seq
nl";
ALTER SEQUENCE {s}."seq
nl" OWNER TO {r[1]};
ALTER SEQUENCE {s}."seq
nl" OWNED BY {s}.{t}."Col\nnl";
SELECT setval(c.oid, 5) FROM pg_class c WHERE c.relname = E'seq\\nnl';
CREATE FUNCTION {s}."f-x=y"() RETURNS int LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION {s}."f-x=y"() OWNER TO {r[4]};
REVOKE EXECUTE ON FUNCTION {s}."f-x=y"() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {s}."f-x=y"() TO {r[0]};
COMMENT ON TABLE {s}.{t} IS E'tab\\there\\nnewline \\\\ ''q''';
SELECT lo_from_bytea(707070, 'odd owner');
ALTER LARGE OBJECT 707070 OWNER TO {r[3]};
GRANT SELECT ON LARGE OBJECT 707070 TO {r[0]};
"""


def odd_database_level(db: str) -> str:
    r = [qi(x) for x in ODD_ROLES]
    d = qi(db)
    return f"""
ALTER DATABASE {d} OWNER TO {r[2]};
REVOKE ALL ON DATABASE {d} FROM PUBLIC;
GRANT CONNECT ON DATABASE {d} TO {r[0]}, {r[3]};
GRANT TEMPORARY ON DATABASE {d} TO {r[1]} WITH GRANT OPTION;
ALTER ROLE {r[0]} IN DATABASE {d} SET search_path TO {qi(ODD_SCHEMA)}, public;
ALTER ROLE {r[3]} IN DATABASE {d} SET work_mem TO '3MB';
ALTER DATABASE {d} SET search_path TO "$user", {qi(ODD_SCHEMA)};
COMMENT ON DATABASE {d} IS E'odd \\n db';
"""


def test_odd_names_of_roles_schemas_tables_and_databases(pg, tmp_path):
    """Roles, a schema, a table, columns, a policy, a sequence and a function whose names hold a newline, a tab,
    quotes, a backslash, ``-x=y``, 63 bytes of multi-byte characters or mixed case, owning, granting and granted
    (database ACL, per-database role settings, default privileges, column grants, a grantor other than the owner, a
    large object): the same after a restore under another odd database name (custom, parallel directory) and over
    the original. The database's ACL came back in another order (its entries were granted in the order of the
    grantees' OIDs, not the source's): ``datacl`` and pg_dump's GRANT lines differed."""
    pg.sql(''.join('CREATE ROLE %s;' % qi(r) for r in ODD_ROLES))
    assert len(ODD_TABLE.encode()) == 63 and len(ODD_ROLES[2].encode()) == 63
    name = "-fid7=src 'q' \\ ü %s" % uuid.uuid4().hex[:6]
    copy = 'Fid7 Copy -d=e "q" \\x %s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(odd_fixture(name), database=name)
        pg.sql(odd_database_level(name))
        expected = snapshot(pg, name)
        for fmt in ('custom', 'directory'):
            work = tmp_path / fmt
            work.mkdir()
            dest = backup(work, pg, name, format=fmt)
            jobs = 2 if fmt == 'directory' else 1
            result = restore(work, pg, dest, source_database=name, database=copy, replace=True, jobs=jobs)
            assert result.rc == 0, result.stdout[-4000:]
            assert result.result('restore')['database_properties']['skipped'] == []
            assert_same(expected, snapshot(pg, copy), 'restore of %s under another name (%s)' % (name, fmt))
            acl = 'SELECT datacl::text FROM pg_database WHERE datname = %s'
            assert pg.sql(acl % ql(copy)) == pg.sql(acl % ql(name))
        result = restore(tmp_path / 'custom', pg, tmp_path / 'custom' / 'backups', source_database=name,
                         database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, name), 'restore of %s over itself' % name)
        assert leftovers(pg) == []
    finally:
        drop_databases(pg, name, copy)


# -- object kinds a DBA checks that rounds 1-6 did not hold -----------------------------------------------------
KINDS7 = r'''
CREATE SCHEMA k7 AUTHORIZATION fid_owner;
-- default privileges granted to PUBLIC, and revoked from it, per schema and database-wide
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA k7 GRANT SELECT ON TABLES TO PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner GRANT USAGE ON SEQUENCES TO PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_reader REVOKE USAGE ON TYPES FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA k7 GRANT EXECUTE ON FUNCTIONS TO fid_reader;

-- materialized views: one never populated, one populated, one emptied again
CREATE TABLE k7.src (id int, v text);
INSERT INTO k7.src SELECT g, 'v' || g FROM generate_series(1, 50) g;
CREATE MATERIALIZED VIEW k7.mv_nodata AS SELECT id FROM k7.src WITH NO DATA;
CREATE MATERIALIZED VIEW k7.mv_data AS SELECT id, v FROM k7.src;
CREATE UNIQUE INDEX mv_data_id ON k7.mv_data (id);
CREATE MATERIALIZED VIEW k7.mv_emptied AS SELECT count(*) AS n FROM k7.src;
REFRESH MATERIALIZED VIEW k7.mv_emptied WITH NO DATA;

-- unlogged sequence, a sequence past its maximum with no cycle, a table's sequence with is_called false
CREATE UNLOGGED SEQUENCE k7.useq START 3;
SELECT nextval('k7.useq');
CREATE SEQUENCE k7.done_seq MAXVALUE 3;
SELECT nextval('k7.done_seq'), nextval('k7.done_seq'), nextval('k7.done_seq');
CREATE TABLE k7.ser (id serial, v text);
SELECT setval('k7.ser_id_seq', 9, false);

-- partitioned: a trigger disabled on one partition only, a partition with its own options and statistics target,
-- a partition attached after the fact with a constraint, a partitioned index attached by hand, comments on them
CREATE TABLE k7.ev (id int NOT NULL, at date NOT NULL, v text) PARTITION BY RANGE (at);
CREATE TABLE k7.ev_2024 PARTITION OF k7.ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
  WITH (fillfactor = 60, autovacuum_enabled = false);
CREATE TABLE k7.ev_def PARTITION OF k7.ev DEFAULT;
CREATE FUNCTION k7.ev_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := upper(NEW.v); RETURN NEW; END$$;
CREATE TRIGGER ev_upper BEFORE INSERT ON k7.ev FOR EACH ROW EXECUTE FUNCTION k7.ev_trg();
ALTER TABLE k7.ev_def DISABLE TRIGGER ev_upper;
ALTER TABLE k7.ev_2024 ALTER COLUMN v SET STATISTICS 321;
CREATE INDEX ev_at ON ONLY k7.ev (at);
CREATE INDEX ev_2024_at ON k7.ev_2024 (at);
ALTER INDEX k7.ev_at ATTACH PARTITION k7.ev_2024_at;
CREATE INDEX ev_def_at ON k7.ev_def (at);
ALTER INDEX k7.ev_at ATTACH PARTITION k7.ev_def_at;
CREATE INDEX ev_v ON k7.ev (v);
ALTER INDEX k7.ev_2024_at SET (fillfactor = 40);
COMMENT ON INDEX k7.ev_at IS 'partitioned index';
COMMENT ON TABLE k7.ev_def IS 'default partition';
CREATE TABLE k7.ev_2023 (id int NOT NULL, at date NOT NULL, v text, CONSTRAINT in_2023 CHECK (at < '2024-01-01'));
INSERT INTO k7.ev_2023 VALUES (0, '2023-06-01', 'old');
ALTER TABLE k7.ev ATTACH PARTITION k7.ev_2023 FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
INSERT INTO k7.ev VALUES (1, '2024-03-01', 'a'), (2, '2026-01-01', 'b');

-- an index's column statistics target, an expression index's, a clustered table, a table without columns
CREATE TABLE k7.ix (a int, b text);
CREATE INDEX ix_expr ON k7.ix ((a * 2), lower(b));
ALTER INDEX k7.ix_expr ALTER COLUMN 1 SET STATISTICS 222;
ALTER TABLE k7.ix CLUSTER ON ix_expr;
CREATE TABLE k7.nocols ();
INSERT INTO k7.nocols DEFAULT VALUES;
INSERT INTO k7.nocols DEFAULT VALUES;

-- column options of inherited columns, a column's default dropped in the child only, NO INHERIT constraint
CREATE TABLE k7.base (id int, v text DEFAULT 'base', CONSTRAINT base_only CHECK (id > 0) NO INHERIT);
CREATE TABLE k7.derived (extra int) INHERITS (k7.base);
ALTER TABLE k7.derived ALTER COLUMN v DROP DEFAULT;
ALTER TABLE k7.derived ALTER COLUMN v SET (n_distinct = 5);
INSERT INTO k7.derived VALUES (-1, NULL, 3);

-- comments on constraints, columns of a view, a trigger of a partition, a policy
CREATE VIEW k7.vw AS SELECT id, v FROM k7.src;
COMMENT ON COLUMN k7.vw.v IS 'view column';
COMMENT ON CONSTRAINT in_2023 ON k7.ev_2023 IS 'check of a partition';
ALTER TABLE k7.src ENABLE ROW LEVEL SECURITY;
ALTER TABLE k7.src FORCE ROW LEVEL SECURITY;
CREATE POLICY p_pub ON k7.src AS RESTRICTIVE FOR UPDATE TO PUBLIC USING (id > 1) WITH CHECK (id > 2);
CREATE POLICY p_roles ON k7.src FOR ALL TO fid_reader, "Fid Odd Rôle ""q""", CURRENT_USER USING (true);
COMMENT ON POLICY p_pub ON k7.src IS 'restrictive';

-- publications: FOR TABLES IN SCHEMA with a table of another schema with a row filter; a column list
CREATE TABLE k7.pubbed (id int PRIMARY KEY, secret text, v int);
CREATE SCHEMA k7b;
CREATE TABLE k7b.other (id int PRIMARY KEY);
CREATE PUBLICATION fid7_pub FOR TABLES IN SCHEMA k7b, TABLE k7.pubbed WHERE (v > 0)
  WITH (publish = 'insert', publish_via_partition_root = true);
CREATE PUBLICATION fid7_pub_cols FOR TABLE k7.pubbed (id, v), k7.ev WITH (publish = 'insert');
ALTER PUBLICATION fid7_pub_cols OWNER TO fid_owner;
'''


def kinds_extra(server: PostgresServer, db: str) -> list:
    """What pg_dump's schema text shows only in part."""
    return server.sql(
        "SELECT string_agg(relname || ':' || relispopulated::text || ':' || relpersistence::text, ',' "
        "ORDER BY relname) FROM pg_class WHERE relnamespace = 'k7'::regnamespace AND relkind IN ('m', 'S') "
        "UNION ALL SELECT string_agg(sequencename || ':' || coalesce(last_value::text, '-'), ',' ORDER BY "
        "sequencename) FROM pg_sequences WHERE schemaname = 'k7' "
        "UNION ALL SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT tgrelid::regclass::text || '.' || tgname || ':' "
        "|| tgenabled::text AS x FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'k7.%') t "
        "UNION ALL SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT indexrelid::regclass::text || ':' || "
        "indisclustered::text AS x FROM pg_index WHERE indrelid = 'k7.ix'::regclass) i "
        "UNION ALL SELECT string_agg(c.relname || ':' || coalesce(array_to_string(c.reloptions, ';'), '-'), ',' "
        "ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'k7'::regnamespace AND c.relkind IN ('r', 'i') "
        "UNION ALL SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT attrelid::regclass::text || '.' || attname || ':' "
        "|| attstattarget::text AS x FROM pg_attribute WHERE attstattarget > 0 AND attrelid::regclass::text "
        "LIKE 'k7.%') a "
        "UNION ALL SELECT string_agg(polname || ':' || polpermissive::text || ':' || array_to_string(ARRAY("
        "SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END FROM unnest(polroles) r ORDER BY 1), ';'), "
        "',' ORDER BY polname) FROM pg_policy WHERE polrelid = 'k7.src'::regclass "
        "UNION ALL SELECT (SELECT count(*) FROM k7.nocols)::text || '/' || (SELECT count(*) FROM k7.ev)::text "
        "|| '/' || (SELECT string_agg(v, ',' ORDER BY id) FROM k7.ev)", database=db)


@pytest.mark.parametrize('fmt', FORMATS)
def test_round7_kinds(pg, tmp_path, fmt):
    """Regression guard (passed before): see KINDS7 (default privileges to and from PUBLIC, materialized views never
    populated, populated and emptied again, an unlogged sequence, an exhausted one, a trigger disabled on one
    partition, per-partition options and statistics targets, hand-attached partitioned indexes, a partition attached
    with its own CHECK, an index expression's statistics target and CLUSTER ON, a table without columns, NO INHERIT
    constraints, policies to PUBLIC and to several roles, publications of a schema with a row filter and of a
    column list)."""
    name = 'fid_kinds7_%s' % uuid.uuid4().hex[:6]
    copy = name + ' copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(KINDS7, database=name)
        expected, extra = snapshot(pg, name), kinds_extra(pg, name)
        assert 'mv_nodata:false:p' in extra[0][0] and 'mv_emptied:false:p' in extra[0][0], extra
        assert 'useq:true:u' in extra[0][0], extra
        dest = backup(tmp_path, pg, name, format=fmt)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy,
                         jobs=2 if fmt == 'directory' else 1)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore of the %s backup under another name' % fmt)
        assert kinds_extra(pg, copy) == extra
    finally:
        drop_databases(pg, name, copy)


# -- a target server that lacks roles the dump refers to --------------------------------------------------------
def test_roles_only_in_mappings_default_privileges_or_settings(pg, tmp_path):
    """Regression guard (passed before). Onto a server without the roles: those the dump names only through a user
    mapping, ALTER DEFAULT PRIVILEGES FOR ROLE or a default privilege's grantee stop the restore before anything is
    created, each named (pg_restore would fail half-way on the first); one named only in ALTER ROLE ... IN DATABASE
    ... SET is not needed: the restore goes on and names the setting it left out."""
    roles = {'map': 'fid7_map', 'defacl': 'fid7 defacl', 'grantee': 'fid7_grantee', 'setting': 'fid7_setting'}
    pg.sql(''.join('CREATE ROLE %s;' % qi(r) for r in roles.values()))
    name = 'fid_roles7_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE TABLE t (v int); INSERT INTO t VALUES (1); CREATE FOREIGN DATA WRAPPER fid7_w; "
               "CREATE SERVER fid7_s FOREIGN DATA WRAPPER fid7_w; "
               "CREATE USER MAPPING FOR %s SERVER fid7_s OPTIONS (user 'x'); "
               "ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON TABLES TO fid_reader; "
               "ALTER DEFAULT PRIVILEGES GRANT USAGE ON TYPES TO %s"
               % (qi(roles['map']), qi(roles['defacl']), qi(roles['grantee'])), database=name)
        pg.sql("ALTER ROLE %s IN DATABASE %s SET work_mem TO '5MB'" % (qi(roles['setting']), qi(name)))
        dest = backup(tmp_path, pg, name)
        fresh = PostgresServer()
        try:
            fresh.start()
            fresh.sql('CREATE ROLE fid_reader')
            result = restore(tmp_path, fresh, dest, source_database=name, database=name)
            assert result.rc != 0, result.stdout[-3000:]
            msg = result.result('restore')['msg']
            assert 'Nothing was restored' in msg, msg
            for key in ('map', 'defacl', 'grantee'):
                assert roles[key] in msg, msg
            assert roles['setting'] not in msg, msg
            assert fresh.sql('SELECT count(*) FROM pg_database WHERE datname LIKE %s' % ql('fid_roles7%')) == [('0',)]
            fresh.sql(''.join('CREATE ROLE %s;' % qi(roles[k]) for k in ('map', 'defacl', 'grantee')))
            result = restore(tmp_path, fresh, dest, source_database=name, database=name)
            assert result.rc == 0, result.stdout[-4000:]
            skipped = result.result('restore')['database_properties']['skipped']
            assert any(roles['setting'] in s and 'work_mem' in s for s in skipped), skipped
            assert fresh.sql('SELECT count(*) FROM t', database=name) == [('1',)]
        finally:
            fresh.cleanup()
    finally:
        drop_databases(pg, name)


# -- @globals onto a server where the roles already exist ---------------------------------------------------------
def test_parameter_privileges_of_existing_roles_are_named(pg, tmp_path):
    """PostgreSQL 15's GRANT SET / ALTER SYSTEM ON PARAMETER is in the globals: restoring @globals onto a server whose
    roles already exist (created by hand or by configuration management) ran none of them and said nothing (changed
    false): the application's role could no longer SET the parameter. A role the run creates gets them; grants to
    roles that existed are left alone, as the roles are, and each one the server lacks is named in a warning."""
    pg.sql('CREATE ROLE fid7_param; CREATE ROLE fid7_param_new; '
           'GRANT SET ON PARAMETER log_statement TO fid7_param; '
           'GRANT SET, ALTER SYSTEM ON PARAMETER "log_min_duration_statement" TO fid7_param WITH GRANT OPTION; '
           'GRANT SET ON PARAMETER log_statement TO fid7_param_new')
    name = 'fid_param7_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        dest = backup(tmp_path, pg, name, include_globals=True)
        fresh = PostgresServer()
        try:
            fresh.start()
            existing = [r[0] for r in pg.sql('SELECT rolname FROM pg_roles WHERE rolname !~ %s' % ql('^pg_'))]
            have = {r[0] for r in fresh.sql('SELECT rolname FROM pg_roles')}
            fresh.sql(''.join('CREATE ROLE %s;' % qi(r) for r in existing if r not in have))
            privilege = "SELECT has_parameter_privilege(%s, %s, %s)::text"

            def named(res: dict) -> list:
                return [w for w in res.get('restore_warnings') or [] if 'PARAMETER' in w]

            # every role exists: nothing is created, and each privilege the server lacks is named
            result = restore(tmp_path, fresh, dest, source_database='@globals', database='postgres')
            assert result.rc == 0, result.stdout[-4000:]
            res = result.result('restore')
            assert res['target']['roles_created'] == [] and res['changed'] is False, res
            warnings = named(res)
            assert len(warnings) == 1, res.get('restore_warnings')
            for text in ('fid7_param ', 'fid7_param_new', 'log_statement', 'log_min_duration_statement'):
                assert text in warnings[0], warnings
            assert fresh.sql(privilege % (ql('fid7_param'), ql('log_statement'), ql('SET'))) == [('false',)]

            # a role the run creates gets its privileges; the existing one is left as it was, and named
            fresh.sql('DROP ROLE fid7_param_new')
            result = restore(tmp_path, fresh, dest, source_database='@globals', database='postgres')
            assert result.rc == 0, result.stdout[-4000:]
            res = result.result('restore')
            assert res['target']['roles_created'] == ['fid7_param_new'], res['target']
            assert fresh.sql(privilege % (ql('fid7_param_new'), ql('log_statement'), ql('SET'))) == [('true',)]
            assert fresh.sql(privilege % (ql('fid7_param'), ql('log_statement'), ql('SET'))) == [('false',)]
            warnings = named(res)
            assert len(warnings) == 1 and 'fid7_param ' in warnings[0] and 'fid7_param_new' not in warnings[0], \
                warnings

            # once the role has them: nothing to name
            fresh.sql('GRANT SET ON PARAMETER log_statement TO fid7_param; GRANT SET, ALTER SYSTEM ON PARAMETER '
                      'log_min_duration_statement TO fid7_param WITH GRANT OPTION')
            again = restore(tmp_path, fresh, dest, source_database='@globals', database='postgres')
            assert again.rc == 0, again.stdout[-4000:]
            assert not named(again.result('restore')), again.result('restore').get('restore_warnings')
            assert again.result('restore')['changed'] is False
        finally:
            fresh.cleanup()
    finally:
        drop_databases(pg, name)
        pg.sql('REVOKE SET ON PARAMETER log_statement FROM fid7_param, fid7_param_new; '
               'REVOKE ALL ON PARAMETER log_min_duration_statement FROM fid7_param CASCADE')
