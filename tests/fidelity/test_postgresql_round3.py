"""Fidelity, PostgreSQL, round 3: what the database's own session settings and its encoding do to the backup's and
the restore's sessions, and the object kinds and values rounds 1 and 2 did not hold.

* a database whose encoding is not the maintenance database's (LATIN1): its comment and its ``ALTER DATABASE/ROLE
  ... SET`` values live in shared catalogs, stored in the encoding of the session that wrote them, and a session in
  the database reads them in its own: they must come back as a session in the restored database reads them;
* ``ALTER DATABASE ... SET client_encoding`` (psql, pg_dump and our catalog reads all take it: a comment or data
  the setting's encoding cannot represent);
* ``ALTER DATABASE ... SET role`` (every session in the database, ours included, would run as that role: pg_dump
  then reads what that role may read, and a superuser-only object such as a subscription is left out);
* regression guards for the kinds a DBA checks: exclusion and deferrable constraints, NOT VALID checks, foreign
  keys and domain constraints over rows that break them, multi-level partitioning with a default partition and
  partitioned unique indexes and foreign keys, ACLs on built-in objects (pg_catalog functions, plpgsql), REVOKE
  from PUBLIC on types and schemas, publications with row filters and column lists, odd float/date/time values,
  every byte in bytea, json duplicates, renamed enum values, 63-byte and newline-bearing names.

Compared as in test_postgresql.py (``pg_dump --schema-only --create``, table checksums, ``pg_database``), read in
UTF-8 whatever the database's own client_encoding.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fidelity.test_postgresql import (
    assert_same, backup, data_checksums, database_properties, leftovers, qi, ql, restore, snapshot)
from tests.harness.servers import PostgresServer

FORMATS = ('custom', 'plain', 'directory')


class _Env(dict):
    """libpq's environment for the test's own reads: whatever PGOPTIONS a helper sets, the session runs as the login
    (a database's ALTER DATABASE ... SET role would otherwise make pg_dump of the test read as that role)."""

    def __setitem__(self, key: str, value: str) -> None:
        if key == 'PGOPTIONS':
            value = (value + ' -c role=none').strip()
        super().__setitem__(key, value)


class View:
    """The test's own reads of a server, in UTF-8 and as the login whatever the database's client_encoding and role
    settings (the harness decodes its clients' output as UTF-8); the module under test never sees this."""

    def __init__(self, server: PostgresServer, reader: str = 'postgres') -> None:
        self._server = server
        self._reader = reader   # where the shared catalogs are read from: their text is in that database's encoding

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def dsn_env(self, **kw: Any) -> dict:
        env = _Env(self._server.dsn_env(**kw))
        env['PGCLIENTENCODING'] = 'UTF8'
        env['PGOPTIONS'] = ''
        return env

    def sql(self, sql: str, **kw: Any) -> list:
        kw['database'] = kw.get('database') or self._reader
        return self._server.sql("SET client_encoding = 'UTF8'; SET ROLE NONE; " + sql, **kw)


def inside(server: PostgresServer, name: str) -> dict:
    """The database-level properties as a session in the database reads them (its own encoding, converted to UTF-8):
    what \\l+ and current_setting() show there."""
    q = ("SET client_encoding = 'UTF8'; SELECT coalesce(shobj_description(d.oid, 'pg_database'), '<none>') "
         "FROM pg_database d WHERE d.datname = current_database()")
    comment = server.sql(q, database=name)[0][0]
    settings = server.sql(
        "SET client_encoding = 'UTF8'; SELECT coalesce(r.rolname, '<all>'), array_to_string(s.setconfig, ' | ') "
        "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r "
        "ON r.oid = s.setrole WHERE d.datname = current_database() ORDER BY 1", database=name)
    return {'comment': comment, 'settings': [list(s) for s in settings]}


def roundtrip(pg: PostgresServer, tmp_path: Path, name: str, fmt: str, view: Any = None, check: Any = None) -> None:
    """Back ``name`` up in ``fmt``, restore it under a new name and over itself: each the same as the source
    (``snapshot`` through ``view``, and ``check(server, database)`` when given)."""
    view = view or View(pg)
    expected = snapshot(view, name)
    expected_extra = check(pg, name) if check else None
    dest = backup(tmp_path, pg, name, format=fmt)
    copy = '%s_copy_%s' % (name[:30], uuid.uuid4().hex[:6])   # simple when name is: pg_dump adds \encoding for others
    jobs = 2 if fmt == 'directory' else 1
    try:
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=jobs)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['database_properties']['skipped'] == []
        assert_same(expected, snapshot(view, copy), 'restore of the %s backup under another name' % fmt)
        if check:
            assert check(pg, copy) == expected_extra, 'restore of the %s backup under another name' % fmt
        result = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True, jobs=jobs)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(view, name), 'restore of the %s backup over the original' % fmt)
        if check:
            assert check(pg, name) == expected_extra, 'restore of the %s backup over the original' % fmt
        assert leftovers(pg) == []
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(copy))


# -- a database in another encoding than the maintenance database's -----------------------------------------------
@pytest.mark.parametrize('fmt', ('custom', 'plain'))
def test_latin1_database_keeps_its_non_ascii_comment_and_settings(pg, tmp_path, fmt):
    """COMMENT ON DATABASE and ALTER DATABASE/ROLE ... SET of a LATIN1 database, written from inside it as an
    application does: a session in the restored database reads the same text (not 'dÃ©jÃ ', not U+FFFD), also when
    its sessions are read-only and run as another role."""
    name = 'fid_l1_%s' % uuid.uuid4().hex[:6]
    reader = name + '_reader'
    for db in (name, reader):
        pg.sql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" % qi(db))
    try:
        db = qi(name)
        pg.sql("SET client_encoding = 'UTF8'; COMMENT ON DATABASE %s IS 'Grüße, déjà vu ÿ'; "
               "ALTER DATABASE %s SET myapp.city TO 'Zürich'; "
               "ALTER ROLE fid_reader IN DATABASE %s SET myapp.greeting TO 'Grüß Gott'; "
               "ALTER DATABASE %s SET myapp.pair TO 'k=v, ü=ß'; "
               "CREATE TABLE t (v text); INSERT INTO t VALUES ('Straße')" % (db, db, db, db), database=name)
        # and what a session in it (ours, writing the comment there) then runs under
        pg.sql('ALTER DATABASE %s SET default_transaction_read_only TO on; ALTER DATABASE %s SET role TO fid_reader'
               % (db, db))
        before = inside(pg, name)
        assert before['comment'] == 'Grüße, déjà vu ÿ', before
        roundtrip(pg, tmp_path, name, fmt, view=View(pg, reader), check=inside)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(reader)))


# -- the database's own settings for every session: client_encoding, role ------------------------------------------
@pytest.mark.parametrize('fmt', FORMATS)
def test_database_client_encoding_setting_does_not_change_what_is_dumped(pg, tmp_path, fmt):
    """ALTER DATABASE ... SET client_encoding TO 'LATIN1' on a UTF8 database (a legacy application's fix): pg_dump
    and our reads take it; text LATIN1 cannot hold (日本語) and the database's own comment must come back as they
    are, not refused, not as U+FFFD."""
    name = 'fid_cenc_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        db = qi(name)
        pg.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, '日本語 ✓'), (2, 'Grüße'); "
               "COMMENT ON TABLE t IS 'テーブル'", database=name)
        pg.sql("COMMENT ON DATABASE %s IS 'Grüße 日本'; ALTER DATABASE %s SET myapp.tenant TO '東京'; "
               "ALTER DATABASE %s SET client_encoding TO 'LATIN1'" % (db, db, db))
        roundtrip(pg, tmp_path, name, fmt)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


def drop_subscriptions(server: PostgresServer, name: str) -> None:
    if not server.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(name)):
        return
    for (sub,) in server.sql('SET ROLE NONE; SELECT subname FROM pg_subscription s JOIN pg_database d '
                             'ON d.oid = s.subdbid WHERE d.datname = %s' % ql(name)):
        server.sql('SET ROLE NONE; ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); '
                   'DROP SUBSCRIPTION %s' % (qi(sub), qi(sub), qi(sub)), database=name)


@pytest.mark.parametrize('fmt', FORMATS)
def test_database_role_setting_does_not_change_who_dumps(pg, tmp_path, fmt):
    """ALTER DATABASE ... SET role (every application session runs as the owning role): our sessions in the
    database would too, and pg_dump would then read only what that role may (a table it has no grant on: the backup
    fails; a subscription, which only a superuser may dump: left out without an error)."""
    name = 'fid_role_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE TABLE app_data (v text); INSERT INTO app_data VALUES ('visible'); "
               "ALTER TABLE app_data OWNER TO fid_owner; "
               "CREATE TABLE admin_only (v text); INSERT INTO admin_only VALUES ('secret'); "
               "CREATE SUBSCRIPTION \"Fid Sub\" CONNECTION 'host=/nonexistent dbname=x' PUBLICATION p "
               "WITH (connect = false, slot_name = 'fid_slot_r3')", database=name)
        pg.sql('ALTER DATABASE %s SET role TO fid_owner' % qi(name))
        assert pg.sql('SELECT current_user', database=name) == [('fid_owner',)]
        view = View(pg)
        expected = snapshot(view, name)
        assert 'Fid Sub' in expected['schema'] and '"public"."admin_only"' in expected['data'], expected['data']
        dest = backup(tmp_path, pg, name, format=fmt)
        copy = name + '_copy'
        # under another name only: a database with subscriptions is not replaced (test_postgresql.py)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=2 if fmt == 'directory' else 1)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['database_properties']['skipped'] == []
        assert_same(expected, snapshot(view, copy), 'restore of the %s backup of a database with SET role' % fmt)
        assert pg.sql('SELECT current_user', database=copy) == [('fid_owner',)]
    finally:
        for db in [name] + leftovers(pg) + [r[0] for r in pg.sql("SELECT datname FROM pg_database WHERE datname "
                                                                 "LIKE %s" % ql(name + '%'))]:
            drop_subscriptions(pg, db)
            pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(db))


# -- regression guards: the kinds and values a DBA checks that rounds 1 and 2 did not hold -------------------------
GUARDS = r'''
CREATE EXTENSION btree_gist;
CREATE SCHEMA app3 AUTHORIZATION fid_owner;
CREATE TYPE app3.mood AS ENUM ('b', 'a');
ALTER TYPE app3.mood ADD VALUE 'aa' BEFORE 'b';
ALTER TYPE app3.mood RENAME VALUE 'a' TO 'z';
ALTER TYPE app3.mood ADD VALUE 'c' AFTER 'aa';

-- exclusion and deferrable constraints (a cycle only a deferred check allows)
CREATE TABLE app3.booking (room int, during tsrange, EXCLUDE USING gist (room WITH =, during WITH &&));
INSERT INTO app3.booking VALUES (1, '[2024-01-01,2024-01-02)'), (1, '[2024-01-02,2024-01-03)'), (2, 'empty');
CREATE TABLE app3.node (id int PRIMARY KEY, parent int REFERENCES app3.node DEFERRABLE INITIALLY DEFERRED,
                        code text UNIQUE DEFERRABLE);
BEGIN;
INSERT INTO app3.node VALUES (1, 2, 'a'), (2, 1, 'b');
COMMIT;

-- NOT VALID constraints over rows that break them (kept from before the rule existed)
CREATE TABLE app3.legacy (id int, v int, ref int);
INSERT INTO app3.legacy VALUES (1, -5, 999), (2, 5, 1);
ALTER TABLE app3.legacy ADD CONSTRAINT v_pos CHECK (v > 0) NOT VALID;
ALTER TABLE app3.legacy ADD CONSTRAINT ref_fk FOREIGN KEY (ref) REFERENCES app3.node (id) NOT VALID;
CREATE DOMAIN app3.small AS int;
CREATE TABLE app3.dom (d app3.small);
INSERT INTO app3.dom VALUES (500), (5);
ALTER DOMAIN app3.small ADD CONSTRAINT small_lt_100 CHECK (VALUE < 100) NOT VALID;
COMMENT ON CONSTRAINT small_lt_100 ON DOMAIN app3.small IS 'domain constraint';

-- a CHECK through a function whose body resolves names by its own search_path
CREATE FUNCTION app3.limit_val() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 100';
CREATE FUNCTION app3.under_limit(v int) RETURNS boolean LANGUAGE sql IMMUTABLE SET search_path = app3
  AS 'SELECT v < limit_val()';
CREATE TABLE app3.checked (v int CHECK (app3.under_limit(v)));
INSERT INTO app3.checked VALUES (1), (99);
CREATE FUNCTION app3.secdef() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = app3, pg_temp
  AS 'SELECT count(*)::int FROM checked';
ALTER FUNCTION app3.secdef() OWNER TO fid_owner;

-- multi-level partitioning: default partitions, a partition attached with another column order, partitioned
-- primary key and index, a foreign key to the partitioned table
CREATE TABLE app3.sales (id int, region text, at date, amount numeric, PRIMARY KEY (id, region, at))
  PARTITION BY LIST (region);
CREATE TABLE app3.sales_eu PARTITION OF app3.sales FOR VALUES IN ('eu') PARTITION BY RANGE (at);
CREATE TABLE app3.sales_eu_2024 PARTITION OF app3.sales_eu FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app3.sales_eu_other PARTITION OF app3.sales_eu DEFAULT;
CREATE TABLE app3.sales_rest PARTITION OF app3.sales DEFAULT;
CREATE TABLE app3.sales_apac (amount numeric, at date NOT NULL, region text NOT NULL, id int NOT NULL);
ALTER TABLE app3.sales ATTACH PARTITION app3.sales_apac FOR VALUES IN ('apac');
CREATE INDEX sales_amount ON app3.sales (amount);
INSERT INTO app3.sales SELECT g, (ARRAY['eu', 'us', 'apac'])[1 + g % 3], date '2023-12-01' + g, g * 1.5
  FROM generate_series(1, 300) g;
CREATE TABLE app3.sale_note (id int, region text, at date, note text,
                             FOREIGN KEY (id, region, at) REFERENCES app3.sales);
INSERT INTO app3.sale_note SELECT id, region, at, 'n' || id FROM app3.sales WHERE id % 10 = 0;
ALTER TABLE app3.sales OWNER TO fid_owner;

-- identity past its last row
CREATE TABLE app3.ident (id int GENERATED ALWAYS AS IDENTITY, v text);
INSERT INTO app3.ident (v) SELECT 'x' FROM generate_series(1, 10);
DELETE FROM app3.ident WHERE id > 5;
SELECT nextval(pg_get_serial_sequence('app3.ident', 'id'));

-- values at the edges of their types
CREATE TABLE app3.odd (id int PRIMARY KEY, f8 float8, f4 float4, n numeric, ts timestamp, tstz timestamptz,
                       d date, iv interval, b bytea, j json, jb jsonb, m app3.mood, t text, c "char");
INSERT INTO app3.odd VALUES
  (1, 'NaN', 'NaN', 'NaN', 'infinity', '-infinity', '-infinity', '-178000000 years', '\x', '{"b":1,"a":2,"a":3}',
   '{"b":1,"a":2,"a":3}', 'z', E'tab\there\r\nnl \\ back', 'x'),
  (2, 'Infinity', '-Infinity', 'Infinity', '4713-01-01 00:00:00 BC', '0001-01-01 00:00:00+00 BC', '5874897-12-31',
   '1 day -1 sec', NULL, '  { "x" : [1, 2] , "s": "\u0000 esc" }  ', '{"x": [1, 2]}', 'aa', '😀 ü 日本', '\x7f'),
  (3, '-0', '-0', '-0.000', '2024-02-29 23:59:59.999999', '2024-03-31 01:59:59.999999+01', '0001-01-01 BC',
   '-1 mon 2 days -3:00:00.000001', NULL, 'null', 'null', 'c', '', ' '),
  (4, 1.7976931348623157e308, 1.4e-45, 1e-1000, NULL, NULL, NULL, NULL, NULL, '[]', '[]', NULL, NULL, NULL);
UPDATE app3.odd SET b = (SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex')
                         FROM generate_series(0, 255) g) WHERE id = 2;
UPDATE app3.odd SET b = (SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex')
                         FROM generate_series(255, 0, -1) g) || decode(repeat('00ff', 500000), 'hex') WHERE id = 3;

-- names: newlines, tabs, quotes, reserved words, 63 bytes (ASCII and multi-byte), uppercase
CREATE SCHEMA "sch
newline";
CREATE TABLE "sch
newline"."tbl	tab ""q"" ü" ("col
nl" int, "ÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßx" int,
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" int, "order" int, "USER" int);
INSERT INTO "sch
newline"."tbl	tab ""q"" ü" VALUES (1, 2, 3, 4, 5);
CREATE INDEX "idx
nl" ON "sch
newline"."tbl	tab ""q"" ü" ("col
nl");
COMMENT ON COLUMN "sch
newline"."tbl	tab ""q"" ü"."col
nl" IS 'comment
with newline';

-- privileges on built-in objects and from PUBLIC on a language, a type, a schema
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_reset() TO fid_reader;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_sleep(double precision) FROM PUBLIC;
REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC;
GRANT USAGE ON LANGUAGE plpgsql TO fid_owner;
REVOKE USAGE ON TYPE app3.small FROM PUBLIC;
GRANT USAGE ON TYPE app3.small TO fid_reader;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO fid_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA app3 REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA app3 GRANT USAGE ON TYPES TO fid_reader;

-- publications: row filter and column list, via the partition root, all tables
CREATE PUBLICATION fid_pub_rows FOR TABLE app3.node (id, code) WHERE (id > 0), app3.sales
  WITH (publish = 'insert, update', publish_via_partition_root = true);
CREATE PUBLICATION fid_pub_all FOR ALL TABLES WITH (publish = 'truncate');
'''


@pytest.mark.parametrize('fmt', FORMATS)
def test_kinds_and_values_at_the_edges(pg, tmp_path, fmt):
    name = 'fid_edges_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(GUARDS, database=name)

        def extra(server: PostgresServer, db: str) -> list:
            # what pg_dump's text shows only in part: the enum's sort order, NOT VALID flags, sequence positions
            return server.sql(
                "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum "
                "WHERE enumtypid = 'app3.mood'::regtype UNION ALL "
                "SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint "
                "WHERE connamespace = 'app3'::regnamespace UNION ALL "
                "SELECT string_agg(sequencename || ':' || coalesce(last_value::text, '-'), ',' ORDER BY sequencename) "
                "FROM pg_sequences WHERE schemaname = 'app3'", database=db)

        roundtrip(pg, tmp_path, name, fmt, check=extra)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


@pytest.mark.parametrize('label', ('63 bytes', 'newline'))
def test_database_names_at_the_edges(pg, tmp_path, label):
    """A database name of 63 bytes ending in a multi-byte character (the temporary copy's name is cut from it), and
    one holding a newline (pg_dump refuses those in the \\connect it writes for --create)."""
    name = ('ü' * 30 + 'x' + uuid.uuid4().hex[:2]) if label == '63 bytes' else 'fid\nnl %s' % uuid.uuid4().hex[:6]
    if label == '63 bytes':
        assert len(name.encode()) == 63
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)", database=name)
        pg.sql("COMMENT ON DATABASE %s IS 'edge'" % qi(name))
        # pg_dump --create (the test's schema comparison) refuses a name with a newline: data and properties then
        take = snapshot if label == '63 bytes' else lambda server, db: {
            'schema': '', 'data': data_checksums(server, db), 'database': database_properties(server, db)}
        expected = take(View(pg), name)
        for fmt in FORMATS:
            (tmp_path / fmt).mkdir()
            dest = backup(tmp_path / fmt, pg, name, format=fmt)
            result = restore(tmp_path / fmt, pg, dest, source_database=name, database=name, replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            assert_same(expected, take(View(pg), name), 'restore of %s over itself (%s)' % (name, fmt))
            assert leftovers(pg) == []
            # nothing else that looks like it (a copy, an old version aside) is left
            assert pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'üüü%' OR datname LIKE 'fid_nl%'") \
                == [('1',)]
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


# -- what the dump cannot restore: said so, with what to do --------------------------------------------------------
@pytest.mark.parametrize('fmt', ('custom', 'plain'))
def test_check_through_a_function_relying_on_search_path_is_explained(pg, tmp_path, fmt):
    """A CHECK constraint calling a function whose body names another object without its schema works in the source
    (the database's search_path finds it) and cannot be loaded by pg_restore or psql: pg_dump's output runs with an
    empty search_path (CVE-2018-1058). The restore fails, leaves nothing behind, and says why and what to change."""
    name = 'fid_sp_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE FUNCTION limit_val() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 100'; "
               "CREATE FUNCTION under_limit(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v < limit_val()'; "
               "CREATE TABLE checked (v int CHECK (under_limit(v))); INSERT INTO checked VALUES (1), (99)",
               database=name)
        dest = backup(tmp_path, pg, name, format=fmt)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc != 0, result.stdout[-3000:]
        msg = result.result('restore')['msg']
        assert 'limit_val() does not exist' in msg, msg
        assert 'search_path' in msg and 'ALTER FUNCTION' in msg, msg
        assert leftovers(pg) == [] and not pg.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(copy))
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))


def test_sql_ascii_database_with_a_non_utf8_comment_still_backs_up(pg, tmp_path):
    """SQL_ASCII holds bytes the server cannot convert (it refuses to send a non-UTF-8 byte to a UTF8 session): the
    backup's read of the database's properties must not fail on a legacy LATIN1 byte in its comment, and the
    restore brings the database back with its data."""
    name = 'fid_ascii3_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'" % qi(name))
    try:
        pg.sql("CREATE TABLE t (v text); INSERT INTO t VALUES (E'caf\\xe9'); "
               "COMMENT ON DATABASE %s IS E'caf\\xe9 latin1'" % qi(name), database=name)
        raw = "SELECT encode(convert_to(v, 'SQL_ASCII'), 'hex') FROM t"
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert pg.sql(raw, database=copy) == pg.sql(raw, database=name)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))
