"""Fidelity, PostgreSQL: a database holding every common kind of object, backed up in every format
db_backup offers and restored under another name and over the original (replace=true), must come back
the same as PostgreSQL itself describes it:

* ``pg_dump --schema-only --create`` of source and restore, the database name normalised (this covers
  the database-level entries too: owner, ACL, comment, ALTER DATABASE/ROLE ... SET);
* an md5 of the ordered rows of every table and materialized view, sequence positions, large objects;
* ``pg_database`` (owner, ACL, comment, connection limit) and ``pg_db_role_setting``.

Any difference fails with the diff. The server is private to this module: roles are cluster-wide.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness.playbook import run_playbook
from tests.harness.servers import PostgresServer

BUILD = Path(__file__).resolve().parents[2] / 'build'
if str(BUILD) not in sys.path:  # the collection's own quoting helper is tested against the server below
    sys.path.insert(0, str(BUILD))

FORMATS = ('custom', 'plain', 'directory')
ROLES = ('fid_owner', 'fid_reader', 'Fid Odd Rôle "q"', 'fid_login')


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


FIXTURE = r'''
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE SCHEMA ext;
CREATE EXTENSION pgcrypto SCHEMA ext;
CREATE SCHEMA app AUTHORIZATION fid_owner;
CREATE SCHEMA "Odd Schéma ""x""";
COMMENT ON SCHEMA app IS 'application schema ü';

CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy ü', 'it''s');
CREATE TYPE app.pair AS (a int, b text);
CREATE DOMAIN app.posint AS int CHECK (VALUE > 0);
CREATE SEQUENCE app.counter START 100 INCREMENT 7;
SELECT nextval('app.counter'), nextval('app.counter');

CREATE FUNCTION app.trg_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.t := coalesce(NEW.t, 'default text'); RETURN NEW; END $$;

CREATE TABLE app.everything (
  id bigserial PRIMARY KEY,
  i2 smallint, i4 int, i8 bigint, num numeric(14,4), r4 real, r8 double precision,
  b boolean, t text, vc varchar(20), ch char(5), by bytea,
  d date, ts timestamp, tstz timestamptz, tm time, iv interval,
  u uuid, j json, jb jsonb, arr int[], tarr text[], ip inet, net cidr, mac macaddr,
  rng int4range, pt point, bits bit varying(8), x xml, mood app.mood, pr app.pair, pos app.posint,
  hs hstore, ci citext, cash money, tsv tsvector,
  gen int GENERATED ALWAYS AS (i4 * 2) STORED
);
CREATE TRIGGER everything_default BEFORE INSERT ON app.everything
  FOR EACH ROW EXECUTE FUNCTION app.trg_default();
INSERT INTO app.everything (i2, i4, i8, num, r4, r8, b, t, vc, ch, by, d, ts, tstz, tm, iv, u, j, jb, arr, tarr,
                            ip, net, mac, rng, pt, bits, x, mood, pr, pos, hs, ci, cash, tsv)
SELECT g, g * 10, g::bigint * 1000000000, g / 7.0, g / 3.0, g / 11.0, g % 2 = 0,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'row ' || g || ' ünïcødé ✓ ''q'' \ back' END,
       'vc' || g, 'c' || (g % 10), decode(md5(g::text), 'hex'),
       date '2024-01-01' + g, timestamp '2024-01-01 00:00' + g * interval '1 hour',
       timestamptz '2024-01-01 00:00+00' + g * interval '1 minute', time '10:00' + g * interval '1 second',
       g * interval '1 day', md5(g::text)::uuid, json_build_object('g', g, 's', 'ü'),
       jsonb_build_object('g', g, 'tags', jsonb_build_array('a', 'b')), ARRAY[g, g + 1], ARRAY['x', 'y ü'],
       ('10.0.0.' || (g % 250))::inet, '10.1.0.0/16', '08:00:2b:01:02:03', int4range(g, g + 10),
       point(g, g), B'1010'::bit varying(8), ('<r n="' || g || '">ü</r>')::xml,
       (ARRAY['sad', 'ok', 'happy ü', 'it''s'])[1 + g % 4]::app.mood, ROW(g, 'p' || g)::app.pair, g,
       hstore('k' || g, 'v ü'), 'MiXeD ' || g, g * 1.25, to_tsvector('simple', 'word ' || g)
FROM generate_series(1, 300) g;

CREATE TABLE app.child (id int PRIMARY KEY, parent bigint NOT NULL REFERENCES app.everything (id)
                        ON DELETE CASCADE, note text UNIQUE, CHECK (id > 0));
INSERT INTO app.child SELECT g, g, 'note ' || g FROM generate_series(1, 50) g;
CREATE INDEX everything_jb ON app.everything USING gin (jb);
CREATE INDEX everything_partial ON app.everything (i4) WHERE b;
CREATE INDEX everything_expr ON app.everything (lower(t));

CREATE TABLE app.measure (id int, at date NOT NULL, v numeric) PARTITION BY RANGE (at);
CREATE TABLE app.measure_2024 PARTITION OF app.measure FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.measure_2025 PARTITION OF app.measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.measure_rest PARTITION OF app.measure DEFAULT;
INSERT INTO app.measure SELECT g, date '2024-06-01' + g * 3, g * 0.5 FROM generate_series(1, 400) g;

CREATE TABLE "Odd Schéma ""x"""."Täble ""quoted"" sp" ("Col ü" text, "Sp ace" int, "select" int);
INSERT INTO "Odd Schéma ""x"""."Täble ""quoted"" sp" VALUES ('Grüße 日本語', 1, 2), (NULL, NULL, 3), ('tab	nl
x', 4, 5);

CREATE VIEW app.v_everything AS SELECT id, t, mood FROM app.everything WHERE i4 > 100;
CREATE MATERIALIZED VIEW app.mv_measure AS SELECT date_trunc('month', at) AS month, sum(v) AS total
  FROM app.measure GROUP BY 1;
CREATE FUNCTION app.f_add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE FUNCTION app.f_atomic(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a * 2; END;
CREATE TABLE app.log (id serial PRIMARY KEY, msg text, at timestamptz DEFAULT now());
CREATE PROCEDURE app.p_log(msg text) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO app.log (msg) VALUES (msg); END $$;
CALL app.p_log('hello ü');

ALTER TABLE app.everything ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers ON app.everything FOR SELECT TO fid_reader USING (i4 > 0);
CREATE POLICY "Odd pölicy" ON app.everything TO "Fid Odd Rôle ""q""" USING (true);
GRANT USAGE ON SCHEMA app TO fid_reader, "Fid Odd Rôle ""q""";
GRANT SELECT ON app.everything, app.v_everything TO fid_reader;
GRANT SELECT (t), UPDATE (t) ON app.everything TO "Fid Odd Rôle ""q""";
GRANT EXECUTE ON FUNCTION app.f_add(int, int) TO fid_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA app GRANT SELECT ON TABLES TO fid_reader;
REVOKE EXECUTE ON FUNCTION app.f_atomic(int) FROM PUBLIC;

ALTER TABLE app.everything OWNER TO fid_owner;
ALTER TABLE app.child OWNER TO fid_owner;
ALTER TABLE app.measure OWNER TO fid_owner;
ALTER VIEW app.v_everything OWNER TO fid_owner;
ALTER MATERIALIZED VIEW app.mv_measure OWNER TO fid_owner;
ALTER FUNCTION app.f_add(int, int) OWNER TO fid_owner;
ALTER TYPE app.mood OWNER TO "Fid Odd Rôle ""q""";

COMMENT ON TABLE app.everything IS 'Tout ü ''quoted'' \ backslash';
COMMENT ON COLUMN app.everything.t IS 'text column';
COMMENT ON FUNCTION app.f_add(int, int) IS 'adds';
COMMENT ON POLICY readers ON app.everything IS 'read policy';

SELECT lo_from_bytea(424242, convert_to('large object ü', 'UTF8'));
ALTER LARGE OBJECT 424242 OWNER TO fid_owner;
GRANT SELECT ON LARGE OBJECT 424242 TO fid_reader;
COMMENT ON LARGE OBJECT 424242 IS 'a large object';
'''


def database_level(name: str) -> str:
    db = qi(name)
    return f'''
ALTER DATABASE {db} OWNER TO fid_owner;
REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC;
GRANT CONNECT ON DATABASE {db} TO fid_reader;
GRANT CONNECT, TEMPORARY ON DATABASE {db} TO "Fid Odd Rôle ""q""" WITH GRANT OPTION;
COMMENT ON DATABASE {db} IS 'Fidelity ü ''db'' \\ backslash';
ALTER DATABASE {db} SET search_path TO app, "Odd Schéma ""x""", public;
ALTER DATABASE {db} SET work_mem TO '8MB';
ALTER DATABASE {db} SET myapp.tenant TO 'ü x ''y'' z';
ALTER DATABASE {db} CONNECTION LIMIT 40;
ALTER ROLE fid_reader IN DATABASE {db} SET statement_timeout TO '5s';
ALTER ROLE "Fid Odd Rôle ""q""" IN DATABASE {db} SET search_path TO "$user", app;
'''


def create_roles(server: PostgresServer) -> None:
    server.sql(''.join('CREATE ROLE %s%s;' % (qi(r), ' LOGIN' if r == 'fid_login' else '') for r in ROLES))


@pytest.fixture(scope='module')
def source(pg: PostgresServer) -> Iterator[str]:
    # An odd name: spaces, a quote, non-ASCII (every statement of the restore must quote it).
    name = 'Fid Src "ü" %s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    pg.sql(FIXTURE, database=name)
    pg.sql(database_level(name))
    yield name


# -- snapshots -------------------------------------------------------------------------------------------
def schema_dump(server: PostgresServer, name: str) -> str:
    env = server.dsn_env(database=name)
    env['PGOPTIONS'] = '-c standard_conforming_strings=on'   # pg_dump writes strings as the server has it
    out = subprocess.run([server.bin('pg_dump'), '--schema-only', '--create', '-w'], env=env, check=True,
                         capture_output=True, text=True, errors='surrogateescape').stdout   # SQL_ASCII: any bytes
    lines = []
    for line in out.splitlines():
        # \restrict / \unrestrict (pg_dump 15.14+) carry a random key per run; \encoding SQL_ASCII goes with the
        # \connect of a database name with a space or a non-ASCII character (pg_dump's appendPsqlMetaConnect).
        if line.startswith(('\\connect', '\\restrict', '\\unrestrict', '\\encoding SQL_ASCII', '-- Dumped')):
            continue
        lines.append(line.replace(qi(name), '<DB>').replace(name, '<DB>'))
    # pg_dump lists ALTER ROLE ... IN DATABASE ... SET in pg_db_role_setting's physical order (no ORDER BY): which
    # row an UPDATE moved is not a difference.
    for i, line in enumerate(lines):
        if line.startswith('ALTER ROLE ') and ' IN DATABASE ' in line and not (
                i and lines[i - 1].startswith('ALTER ROLE ') and ' IN DATABASE ' in lines[i - 1]):
            end = i
            while end < len(lines) and lines[end].startswith('ALTER ROLE ') and ' IN DATABASE ' in lines[end]:
                end += 1
            lines[i:end] = sorted(lines[i:end])
    return '\n'.join(lines) + '\n'


def data_checksums(server: PostgresServer, name: str) -> dict:
    # The database's own search_path must not change what is measured, nor the server's output settings
    # (compared across servers with other defaults).
    pin = ("SET search_path = pg_catalog; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; "
           "SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; ")
    rels = server.sql(pin + "SELECT n.nspname, c.relname, c.relkind, c.relispopulated::text FROM pg_class c "
                      "JOIN pg_namespace n ON "
                      "n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'S') AND n.nspname NOT IN "
                      "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
                      database=name)
    sums = {}
    for schema, rel, kind, populated in rels:
        q = '%s.%s' % (qi(schema), qi(rel))
        if kind == 'm' and populated != 'true':   # WITH NO DATA: unreadable, and so it must stay
            sums[q] = 'not populated'
            continue
        if kind == 'S':
            sql = 'SELECT last_value::text || \',\' || is_called::text FROM %s' % q
        else:
            sql = ("SELECT count(*)::text || ' ' || md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) "
                   "FROM (SELECT r::text AS x FROM %s r) s" % q)
        sums[q] = server.sql(pin + sql, database=name)[0][0]
    sums['large objects'] = server.sql(
        pin + "SELECT string_agg(m.oid::text || ':' || pg_get_userbyid(m.lomowner) || ':' || "
        "coalesce(m.lomacl::text, '') || ':' || md5(lo_get(m.oid)) || ':' || "
        "coalesce(obj_description(m.oid, 'pg_largeobject'), ''), ';' "
        "ORDER BY m.oid) FROM pg_largeobject_metadata m", database=name)[0][0]
    return sums


def database_properties(server: PostgresServer, name: str) -> dict:
    row = server.sql(
        "SELECT pg_get_userbyid(d.datdba), (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM "
        "unnest(d.datacl) a), shobj_description(d.oid, 'pg_database'), d.datconnlimit::text, "
        "pg_encoding_to_char(d.encoding), d.datcollate, d.datctype FROM pg_database d "
        "WHERE d.datname = %s" % ql(name))[0]
    settings = server.sql(
        "SELECT coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), '<all>'), array_to_string(s.setconfig, ' | ') "
        "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s "
        "ORDER BY 1" % ql(name))
    return {'owner': row[0], 'acl': row[1], 'comment': row[2], 'connection_limit': row[3], 'encoding': row[4],
            'collate': row[5], 'ctype': row[6],
            'settings': [list(s) for s in settings]}


def snapshot(server: PostgresServer, name: str) -> dict:
    return {'schema': schema_dump(server, name), 'data': data_checksums(server, name),
            'database': database_properties(server, name)}


def assert_same(expected: dict, actual: dict, what: str) -> None:
    problems = []
    if expected['schema'] != actual['schema']:
        diff = difflib.unified_diff(expected['schema'].splitlines(), actual['schema'].splitlines(), 'source',
                                    what, lineterm='', n=1)
        problems.append('schema (pg_dump --schema-only --create) differs:\n' + '\n'.join(list(diff)[:120]))
    for key in sorted(set(expected['data']) | set(actual['data'])):
        if expected['data'].get(key) != actual['data'].get(key):
            problems.append('data of %s: %r != %r' % (key, expected['data'].get(key), actual['data'].get(key)))
    for key in sorted(expected['database']):
        if expected['database'][key] != actual['database'].get(key):
            problems.append('database %s: source %r, %s %r' % (key, expected['database'][key], what,
                                                               actual['database'].get(key)))
    assert not problems, '%s is not what was backed up:\n' % what + '\n'.join(problems)


# -- the module ------------------------------------------------------------------------------------------
def play(tmp_path: Path, tasks: list, server: PostgresServer):
    book = tmp_path / ('play-%d.yml' % len(list(tmp_path.glob('play-*.yml'))))
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    return run_playbook(str(book), extravars={'pg_password': server.password})


def conn(server: PostgresServer) -> dict:
    return {'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
            'login_password': '{{ pg_password }}'}


def backup(tmp_path: Path, server: PostgresServer, database: str, **options) -> Path:
    dest = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': dict(
        conn(server), engine='postgresql', database=database, dest=str(dest), **options)}], server)
    assert result.rc == 0, result.stdout[-4000:]
    return dest


def restore(tmp_path: Path, server: PostgresServer, dest: Path, **options):
    return play(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': dict(
        conn(server), engine='postgresql', src=str(dest), **options)}], server)


def leftovers(server: PostgresServer) -> list:
    return [r[0] for r in server.sql("SELECT datname FROM pg_database WHERE datname LIKE '%opsready%'")]


@pytest.mark.parametrize('fmt', FORMATS)
def test_every_format_restores_everything(pg, source, tmp_path, fmt):
    expected = snapshot(pg, source)
    assert expected['database']['acl'] and not any(i.startswith('=') for i in expected['database']['acl'].split(','))
    dest = backup(tmp_path, pg, source, format=fmt)
    copy = 'Fid Copy %s "ü" %s' % (fmt, uuid.uuid4().hex[:6])
    jobs = 2 if fmt == 'directory' else 1
    seen: list = []
    stop = threading.Event()

    def watch() -> None:  # the temporary copy's ACL while it loads
        while not stop.is_set():
            seen.extend(pg.sql("SELECT datname, coalesce(datacl::text, 'NULL') FROM pg_database "
                               "WHERE datname LIKE '%opsready_restore%' AND datallowconn"))
            stop.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        watcher.start()
        try:
            result = restore(tmp_path, pg, dest, source_database=source, database=copy, jobs=jobs)
        finally:
            stop.set()
            watcher.join()
        assert result.rc == 0, result.stdout[-4000:]
        assert seen, 'the temporary database was never seen'
        open_to_public = [row for row in seen if row[1] == 'NULL' or re.search(r'[{,]=', row[1])]
        assert not open_to_public, 'the copy was open to PUBLIC while it loaded: %s' % open_to_public[:3]
        res = result.result('restore')
        assert res['database_properties']['restored'] is True and res['database_properties']['skipped'] == []
        assert_same(expected, snapshot(pg, copy), 'restore of the %s backup under another name' % fmt)

        result = restore(tmp_path, pg, dest, database=source, replace=True, jobs=jobs)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is True
        assert_same(expected, snapshot(pg, source), 'restore of the %s backup over the original' % fmt)
        assert leftovers(pg) == []
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(copy))


# -- defect 7: an SQL error in a streamed restore is reported as such ----------------------------------
@pytest.mark.parametrize('fmt', ('custom', 'plain'))
def test_streamed_restore_reports_the_server_error(pg, tmp_path, fmt):
    name = 'fid_err_%s_%s' % (fmt, uuid.uuid4().hex[:6])
    pg.sql('CREATE DATABASE %s' % qi(name))
    # A real way for a good backup to fail on load: a CHECK whose function was tightened after the rows
    # were written (CREATE OR REPLACE FUNCTION does not recheck). The failing table comes first in the dump
    # and megabytes of another table's rows follow, so the tool stops reading mid-stream.
    pg.sql("CREATE FUNCTION small(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v < 1000000';"
           "CREATE TABLE a_checked (v int CHECK (small(v)));"
           "INSERT INTO a_checked SELECT g FROM generate_series(1, 100) g;"
           "CREATE TABLE z_big (id int, pad text);"
           "INSERT INTO z_big SELECT g, repeat(md5(g::text), 10) FROM generate_series(1, 30000) g;"
           "CREATE OR REPLACE FUNCTION small(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v < 10';",
           database=name)
    try:
        dest = backup(tmp_path, pg, name, format=fmt, compression='none')
        result = restore(tmp_path, pg, dest, source_database=name, database=name + '_copy', jobs=1)
        assert result.rc != 0
        msg = result.result('restore')['msg']
        assert 'violates check constraint' in msg, msg
        assert 'not a complete' not in msg and 'was dropped' in msg, msg
        assert leftovers(pg) == []
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


# -- defect 9: globals onto a new server; no_owner into a server without the roles ----------------------
def test_globals_then_database_onto_a_new_server(pg, source, tmp_path):
    expected = snapshot(pg, source)
    pg.sql("ALTER ROLE fid_reader PASSWORD 'from the source'")  # the globals would set it, if replayed as is
    dest = backup(tmp_path, pg, source, format='custom', include_globals=True)
    fresh = PostgresServer()
    try:
        fresh.start()
        # One role exists already, with other attributes: it must be left exactly as it is.
        fresh.sql("CREATE ROLE fid_reader LOGIN CONNECTION LIMIT 3 PASSWORD 'in use on the new server'")
        role_sql = ("SELECT rolcanlogin::text, rolconnlimit::text, rolpassword FROM pg_authid "
                    "WHERE rolname = 'fid_reader'")
        before = fresh.sql(role_sql)

        # Without the roles, a restore (with or without no_owner) stops before loading, naming them.
        for no_owner, named in ((False, ('fid_owner', 'Fid Odd Rôle "q"')), (True, ('Fid Odd Rôle "q"',))):
            result = restore(tmp_path, fresh, dest, source_database=source, database='app', no_owner=no_owner)
            assert result.rc != 0
            msg = result.result('restore')['msg']
            assert 'do not exist' in msg and '@globals' in msg and 'Nothing was restored' in msg, msg
            for role in named:
                assert role in msg, msg
            assert 'fid_reader (' not in msg, msg
            assert fresh.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'app%'")[0][0] == '0'
        check = play(tmp_path, [{'name': 'restore', 'check_mode': True, 'opsready.operations.db_restore': dict(
            conn(fresh), engine='postgresql', src=str(dest), source_database=source, database='app')}], fresh)
        assert check.rc != 0 and 'fid_owner' in check.result('restore')['msg'], check.stdout[-3000:]

        check = play(tmp_path, [{'name': 'restore', 'check_mode': True, 'opsready.operations.db_restore': dict(
            conn(fresh), engine='postgresql', src=str(dest), source_database='@globals', database='postgres')}],
            fresh)
        assert check.rc == 0, check.stdout[-4000:]
        planned = check.result('restore')['target']
        assert check.result('restore')['changed'] is True
        assert 'fid_owner' in planned['roles_created'] and 'fid_reader' in planned['roles_existing']
        assert fresh.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'fid_owner'")[0][0] == '0'

        result = restore(tmp_path, fresh, dest, source_database='@globals', database='postgres')
        assert result.rc == 0, result.stdout[-4000:]
        target = result.result('restore')['target']
        assert result.result('restore')['changed'] is True
        assert sorted(target['roles_created']) == sorted(['fid_owner', 'Fid Odd Rôle "q"', 'fid_login']), target
        assert sorted(target['roles_existing']) == sorted([pg.user, 'fid_reader', 'postgres']), target
        assert fresh.sql(role_sql) == before  # attributes and password of an existing role untouched
        # Again: nothing left to create, nothing fails.
        again = restore(tmp_path, fresh, dest, source_database='@globals', database='postgres')
        assert again.rc == 0 and again.result('restore')['target']['roles_created'] == [], again.stdout[-3000:]
        assert again.result('restore')['changed'] is False

        result = restore(tmp_path, fresh, dest, source_database=source, database=source)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(fresh, source), 'restore onto a new server after @globals')
    finally:
        fresh.cleanup()


def test_old_manifest_without_properties_still_restores(pg, source, tmp_path):
    """Backups taken before properties were recorded restore as before and say what they lack."""
    dest = backup(tmp_path, pg, source, format='custom')
    for path in dest.glob('*.json'):
        data = json.loads(path.read_text())
        if data.get('database') == source:
            data.pop('database_properties', None)
            path.write_text(json.dumps(data))
    copy = 'fid_old_%s' % uuid.uuid4().hex[:6]
    try:
        result = restore(tmp_path, pg, dest, source_database=source, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        props = result.result('restore')['database_properties']
        assert props['restored'] is False and 'predates' in props['reason']
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(copy))
    # Without the recorded roles nothing can be checked up front: onto a server that lacks them, the load
    # fails and the message is the server's (the issue's own example), not a blame on the artifact.
    fresh = PostgresServer()
    try:
        fresh.start()
        result = restore(tmp_path, fresh, dest, source_database=source, database='app', jobs=1)
        assert result.rc != 0
        msg = result.result('restore')['msg']
        assert re.search(r'role "[^"]+" does not exist', msg) and 'was dropped' in msg, msg
        assert 'not a complete' not in msg, msg
        assert fresh.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'app%'")[0][0] == '0'
    finally:
        fresh.cleanup()


def test_quoting_helper_is_safe_with_standard_conforming_strings_off(pg):
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
        quote_ident, quote_literal)
    nasty = "a'b\\c\\'; SELECT 1; -- ü \"x\""
    for scs in ('on', 'off'):
        sql = 'SET standard_conforming_strings = %s; SELECT %s AS %s' % (scs, quote_literal(nasty), quote_ident(nasty))
        rows = pg.sql(sql)
        assert rows == [(nasty,)], (scs, rows)
    assert re.match(r"^E'", quote_literal('x'))


def test_encoding_and_locale_come_back(pg, tmp_path):
    """The charset is a property of the database: a LATIN1 database restored as UTF8 is not the same."""
    name = 'fid_latin1_%s' % uuid.uuid4().hex[:6]
    pg.sql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" % qi(name))
    pg.sql("CREATE TABLE t (v text); INSERT INTO t VALUES ('Grüße, déjà vu'), (repeat('ÿ', 3))", database=name)
    copy = name + '_copy'
    try:
        expected = snapshot(pg, name)
        assert expected['database']['encoding'] == 'LATIN1'
        for fmt in ('custom', 'plain'):
            (tmp_path / fmt).mkdir()
            dest = backup(tmp_path / fmt, pg, name, format=fmt)
            result = restore(tmp_path / fmt, pg, dest, source_database=name, database=copy, replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            assert_same(expected, snapshot(pg, copy), 'restore of a LATIN1 database (%s)' % fmt)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))


def test_missing_locale_stops_before_loading(pg, tmp_path):
    """A server without the backed-up database's locale refuses up front, naming it."""
    name = 'fid_locale_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s' % qi(name))
    pg.sql('CREATE TABLE t (v int)', database=name)
    try:
        dest = backup(tmp_path, pg, name)
        for path in dest.glob('*.json'):  # as if it came from a server with a locale this one lacks
            data = json.loads(path.read_text())
            data['database_properties']['collate'] = 'xx_XX.UTF-8'
            path.write_text(json.dumps(data))
        result = restore(tmp_path, pg, dest, source_database=name, database=name + '_copy')
        assert result.rc != 0
        msg = result.result('restore')['msg']
        assert 'xx_XX.UTF-8' in msg and 'Nothing was restored' in msg, msg
        assert leftovers(pg) == []
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name))


# -- more object kinds (round 2): what the first fixture does not hold -------------------------------------
FIXTURE_MORE = r'''
CREATE SCHEMA "select";
CREATE SCHEMA "MiXed Case";
ALTER SCHEMA public OWNER TO fid_owner;
COMMENT ON SCHEMA public IS 'public, owned by fid_owner';
GRANT CREATE ON SCHEMA public TO fid_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner GRANT USAGE ON SEQUENCES TO fid_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE TABLE "select"."from" (
  id int GENERATED ALWAYS AS IDENTITY (START 10 INCREMENT 5),
  id2 bigint GENERATED BY DEFAULT AS IDENTITY,
  v text, e text, big bytea, tz timestamptz, g numeric GENERATED ALWAYS AS (id * 1.5) STORED);
INSERT INTO "select"."from" (v, e, big, tz)
SELECT CASE WHEN g % 2 = 0 THEN NULL ELSE '' END, CASE WHEN g % 3 = 0 THEN '' END,
       CASE WHEN g = 1 THEN decode(repeat(md5('x'), 200000), 'hex') ELSE '\x00ff'::bytea END,
       timestamptz '2024-03-31 01:59:59.999999+01' + g * interval '37 minutes'
FROM generate_series(1, 20) g;
CREATE SEQUENCE "MiXed Case"."Seq Not Called" START 5;
CREATE SEQUENCE "MiXed Case".seq_called START 5;
SELECT setval('"MiXed Case".seq_called', 42, true);
CREATE SEQUENCE "MiXed Case".seq_set_false;
SELECT setval('"MiXed Case".seq_set_false', 42, false);

CREATE UNLOGGED TABLE "MiXed Case"."Unlogged" (k int PRIMARY KEY, v text);
INSERT INTO "MiXed Case"."Unlogged" SELECT g, 'u' || g FROM generate_series(1, 30) g;

CREATE TABLE "MiXed Case".parent (id int, kind text DEFAULT 'p');
CREATE TABLE "MiXed Case".kid (extra int) INHERITS ("MiXed Case".parent);
INSERT INTO "MiXed Case".parent VALUES (1), (2);
INSERT INTO "MiXed Case".kid VALUES (3, 'k', 30);

CREATE TYPE "MiXed Case".floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE TYPE "MiXed Case".status AS ENUM ('new', 'done');
ALTER TYPE "MiXed Case".status ADD VALUE 'between' BEFORE 'done';
CREATE COLLATION "MiXed Case".de_icu (provider = icu, locale = 'de-DE-u-kn-true');
CREATE COLLATION "MiXed Case".c_libc (provider = libc, locale = 'C');
CREATE TABLE "MiXed Case".typed (r "MiXed Case".floatrange, s "MiXed Case".status,
  t_icu text COLLATE "MiXed Case".de_icu, t_c text COLLATE "MiXed Case".c_libc);
INSERT INTO "MiXed Case".typed VALUES ('[1.5,2.5)', 'between', 'a10', 'Z'), ('empty', 'new', 'a9', 'a');

CREATE TABLE "MiXed Case".ruled (id int, v text);
CREATE TABLE "MiXed Case".ruled_log (id int, v text);
CREATE RULE log_ins AS ON INSERT TO "MiXed Case".ruled
  DO ALSO INSERT INTO "MiXed Case".ruled_log VALUES (NEW.id, NEW.v);
INSERT INTO "MiXed Case".ruled VALUES (1, 'one');

CREATE TABLE "MiXed Case".secret (owner_name text, v text);
ALTER TABLE "MiXed Case".secret OWNER TO fid_owner;
ALTER TABLE "MiXed Case".secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE "MiXed Case".secret FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON "MiXed Case".secret USING (owner_name = current_user);
INSERT INTO "MiXed Case".secret VALUES ('a', 'x'), ('b', 'y');

CREATE FUNCTION "MiXed Case".on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE EVENT TRIGGER "Fid DDL" ON ddl_command_end EXECUTE FUNCTION "MiXed Case".on_ddl();
ALTER EVENT TRIGGER "Fid DDL" DISABLE;
CREATE PUBLICATION "Fid Pub" FOR TABLE "MiXed Case".ruled WITH (publish = 'insert');

CREATE TABLE "MiXed Case".list_p (id int, region text) PARTITION BY LIST (region);
CREATE TABLE "MiXed Case".list_eu PARTITION OF "MiXed Case".list_p FOR VALUES IN ('eu');
CREATE TABLE "MiXed Case".list_detached (id int, region text);
INSERT INTO "MiXed Case".list_p VALUES (1, 'eu');

CREATE TABLE "MiXed Case"."Ünïcødé ""tbl""" ("列" text);
INSERT INTO "MiXed Case"."Ünïcødé ""tbl""" VALUES ('値'), ('');

SELECT lo_from_bytea(0, decode(repeat('ab', 3000000), 'hex'));
'''


def database_level_more(name: str) -> str:
    db = qi(name)
    return f'''
ALTER DATABASE {db} SET timezone TO 'Asia/Kathmandu';
ALTER DATABASE {db} SET "DateStyle" TO 'SQL, DMY';
ALTER DATABASE {db} SET "IntervalStyle" TO 'iso_8601';
ALTER DATABASE {db} SET default_transaction_isolation TO 'repeatable read';
'''


@pytest.fixture(scope='module')
def source_more(pg: PostgresServer) -> Iterator[str]:
    name = 'Fid More "ü" %s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    pg.sql(FIXTURE_MORE, database=name)
    pg.sql(database_level_more(name))
    yield name


@pytest.mark.parametrize('fmt', FORMATS)
def test_more_object_kinds_restore(pg, source_more, tmp_path, fmt):
    expected = snapshot(pg, source_more)
    dest = backup(tmp_path, pg, source_more, format=fmt)
    copy = 'Fid More Copy %s %s' % (fmt, uuid.uuid4().hex[:6])
    try:
        result = restore(tmp_path, pg, dest, source_database=source_more, database=copy,
                         jobs=2 if fmt == 'directory' else 1)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore of the %s backup under another name' % fmt)
        result = restore(tmp_path, pg, dest, database=source_more, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, source_more), 'restore of the %s backup over the original' % fmt)
        assert leftovers(pg) == []
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(copy))


# -- an existing target is replaced only when asked, whatever it holds -------------------------------------
TARGET_CONTENTS = {
    'functions': "CREATE FUNCTION keep_me() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    'large objects': "SELECT lo_from_bytea(777, 'precious')",
    'types': "CREATE TYPE keep_me AS ENUM ('a')",
    'schemas': 'CREATE SCHEMA keep_me',
    'a text search configuration': 'CREATE TEXT SEARCH CONFIGURATION keep_me (COPY = simple)',
}


@pytest.mark.parametrize('what', sorted(TARGET_CONTENTS))
def test_target_without_tables_is_not_replaced_unasked(pg, tmp_path, what):
    """A database without tables is not empty: functions, large objects, types... are data a user keeps."""
    name = 'fid_src_%s' % uuid.uuid4().hex[:6]
    target = 'fid_tgt_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s; CREATE DATABASE %s' % (qi(name), qi(target)))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        pg.sql(TARGET_CONTENTS[what], database=target)
        before = schema_dump(pg, target), data_checksums(pg, target)
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=target)
        assert result.rc != 0, 'a target holding %s was replaced without replace=true' % what
        msg = result.result('restore')['msg']
        assert 'exists and is not empty' in msg and 'replace=true' in msg, msg
        assert (schema_dump(pg, target), data_checksums(pg, target)) == before
        check = play(tmp_path, [{'name': 'restore', 'check_mode': True, 'opsready.operations.db_restore': dict(
            conn(pg), engine='postgresql', src=str(dest), source_database=name, database=target)}], pg)
        assert check.rc != 0 and 'not empty' in check.result('restore')['msg'], check.stdout[-3000:]

        result = restore(tmp_path, pg, dest, source_database=name, database=target, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is True
        assert pg.sql('SELECT count(*) FROM t', database=target) == [('1',)]
        assert leftovers(pg) == []
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(target)))


def test_empty_target_is_filled_without_replace(pg, tmp_path):
    """A freshly created database (nothing but what template1 gives) is still a fine target without replace, and
    so is one prepared with the extensions the application needs (the backup brings its own)."""
    name = 'fid_src_%s' % uuid.uuid4().hex[:6]
    target = 'fid_tgt_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s; CREATE DATABASE %s' % (qi(name), qi(target)))
    try:
        pg.sql('CREATE EXTENSION hstore; CREATE EXTENSION pgcrypto', database=target)
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=target)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is False
        assert pg.sql('SELECT count(*) FROM t', database=target) == [('1',)]
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(target)))


# -- no_owner is honoured or refused, never ignored --------------------------------------------------------
def owners_and_grants(server: PostgresServer, name: str) -> list:
    return server.sql("SELECT n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner), coalesce(c.relacl::text, '') "
                      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app' "
                      "AND c.relkind IN ('r', 'v') ORDER BY 1", database=name)


def test_no_owner_is_honoured_or_refused_in_every_format(pg, source, tmp_path):
    """no_owner=true restores without the backup's owners and grants (objects belong to the login user); a
    format that cannot do that refuses before anything is created instead of restoring them anyway."""
    assert any(row[1] == 'fid_owner' for row in owners_and_grants(pg, source))
    for fmt in FORMATS:
        (tmp_path / fmt).mkdir()
        dest = backup(tmp_path / fmt, pg, source, format=fmt)
        copy = 'fid_noowner_%s_%s' % (fmt, uuid.uuid4().hex[:6])
        try:
            result = restore(tmp_path / fmt, pg, dest, source_database=source, database=copy, no_owner=True)
            if result.rc == 0:
                got = owners_and_grants(pg, copy)
                assert got and all(row[1] == pg.user and row[2] == '' for row in got), (fmt, got)
            else:
                msg = result.result('restore')['msg']
                assert 'no_owner' in msg and fmt in msg and 'Nothing was restored' in msg, msg
                assert pg.sql("SELECT count(*) FROM pg_database WHERE datname = %s" % ql(copy)) == [('0',)]
                assert leftovers(pg) == []
                check = play(tmp_path / fmt, [{'name': 'restore', 'check_mode': True,
                                               'opsready.operations.db_restore': dict(
                                                   conn(pg), engine='postgresql', src=str(dest), no_owner=True,
                                                   source_database=source, database=copy)}], pg)
                assert check.rc != 0 and 'no_owner' in check.result('restore')['msg'], check.stdout[-3000:]
        finally:
            pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(copy))


# -- the database's own search_path cannot change what the backup and restore queries mean ----------------
SHADOWS = r'''
CREATE SCHEMA trap AUTHORIZATION fid_owner;
SET ROLE fid_owner;
-- Functions of the catalog's names, owned by an ordinary role, found before pg_catalog by the database's
-- search_path: a superuser's unqualified call would run them (as the superuser).
CREATE FUNCTION trap.shobj_description(oid, name) RETURNS text LANGUAGE sql AS $$ SELECT 'forged comment' $$;
CREATE FUNCTION trap.pg_get_userbyid(oid) RETURNS name LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE fid_owner SUPERUSER';
  END IF;
  RETURN 'fid_reader';
END $$;
CREATE FUNCTION trap.zero(bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$;
CREATE AGGREGATE trap.count(*) (sfunc = trap.zero, stype = bigint, initcond = '0');
RESET ROLE;
'''


def test_database_search_path_does_not_redirect_our_queries(pg, tmp_path):
    name = 'fid_trap_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s OWNER fid_owner' % qi(name))
    try:
        pg.sql(SHADOWS, database=name)
        pg.sql("COMMENT ON DATABASE %s IS 'the real comment'; ALTER DATABASE %s SET search_path TO trap, pg_catalog"
               % (qi(name), qi(name)))
        pg.sql('CREATE TABLE public.t (v int); INSERT INTO public.t VALUES (1)', database=name)
        expected = snapshot(pg, name)
        assert expected['database']['owner'] == 'fid_owner' and expected['database']['comment'] == 'the real comment'
        assert pg.sql("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'fid_owner'") == [('false',)]
        dest = backup(tmp_path, pg, name)
        assert pg.sql("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'fid_owner'") == [('false',)], \
            'the backup ran a function of the database owner as superuser'
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore of a database whose search_path shadows pg_catalog')
        # over the original, which holds data: refused without replace (a shadowed count() must not make it empty)
        result = restore(tmp_path, pg, dest, database=name)
        assert result.rc != 0 and 'not empty' in result.result('restore')['msg'], result.stdout[-3000:]
        assert pg.sql("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'fid_owner'") == [('false',)]
    finally:
        pg.sql("ALTER ROLE fid_owner NOSUPERUSER; DROP DATABASE IF EXISTS %s WITH (FORCE); "
               "DROP DATABASE IF EXISTS %s WITH (FORCE)" % (qi(name), qi(copy)))


def schemas(server: PostgresServer, name: str) -> list:
    return server.sql("SELECT nspname, pg_get_userbyid(nspowner), coalesce(nspacl::text, '') FROM pg_namespace "
                      "WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1", database=name)


@pytest.mark.parametrize('fmt', FORMATS)
def test_dropped_public_schema_stays_dropped(pg, tmp_path, fmt):
    """A database whose public schema was dropped (a common hardening step) must not come back with one: unqualified
    CREATEs and lookups would land in it."""
    name = 'fid_nopublic_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s' % qi(name))
    try:
        # With the other hardening step that goes with it: an event trigger that refuses every DROP.
        pg.sql('DROP SCHEMA public; CREATE SCHEMA app; CREATE TABLE app.t (v int); INSERT INTO app.t VALUES (1);'
               "CREATE FUNCTION app.no_drops() RETURNS event_trigger LANGUAGE plpgsql AS "
               "$$ BEGIN RAISE EXCEPTION 'drops are not allowed here'; END $$;"
               'CREATE EVENT TRIGGER no_drops ON sql_drop EXECUTE FUNCTION app.no_drops()', database=name)
        expected = snapshot(pg, name), schemas(pg, name)
        dest = backup(tmp_path, pg, name, format=fmt)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert schemas(pg, copy) == expected[1]
        assert_same(expected[0], snapshot(pg, copy), 'restore of a database without a public schema')
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))


def tablespaces(server: PostgresServer, name: str) -> list:
    return server.sql("SELECT c.relname, coalesce(t.spcname, '<database default>') FROM pg_class c "
                      "LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.relname LIKE 'ts_%' ORDER BY 1",
                      database=name)


def test_database_tablespace_comes_back_when_the_server_has_it(pg, tmp_path):
    """CREATE DATABASE ... TABLESPACE: the database's default tablespace is where its tables live; restored into
    the same tablespace when the target server has it (a server without it: the default, and the result says so)."""
    pg.sql("CREATE TABLESPACE fid_fast LOCATION %s" % ql(str(pg.service_dir('ts_fast'))))
    name = 'fid_ts_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TABLESPACE fid_fast' % qi(name))
    try:
        pg.sql('CREATE TABLE ts_default (v int); CREATE TABLE ts_pg_default (v int) TABLESPACE pg_default; '
               'INSERT INTO ts_default VALUES (1); INSERT INTO ts_pg_default VALUES (2)', database=name)
        expected = snapshot(pg, name)
        assert 'fid_fast' in expected['schema']
        for fmt in FORMATS:
            (tmp_path / fmt).mkdir()
            dest = backup(tmp_path / fmt, pg, name, format=fmt)
            result = restore(tmp_path / fmt, pg, dest, source_database=name, database=copy, replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            assert result.result('restore')['database_properties']['skipped'] == []
            assert_same(expected, snapshot(pg, copy), 'restore of a database in tablespace fid_fast (%s)' % fmt)
            assert tablespaces(pg, copy) == tablespaces(pg, name)
            assert pg.sql("SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace "
                          "WHERE d.datname = %s" % ql(copy)) == [('fid_fast',)]
        fresh = PostgresServer()
        try:
            fresh.start()
            result = restore(tmp_path / 'custom', fresh, tmp_path / 'custom' / 'backups', source_database=name,
                             database=name)
            assert result.rc == 0, result.stdout[-4000:]
            skipped = result.result('restore')['database_properties']['skipped']
            assert any('fid_fast' in s for s in skipped), skipped
            assert fresh.sql('SELECT v FROM ts_default', database=name) == [('1',)]
        finally:
            fresh.cleanup()
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))
        pg.sql('DROP TABLESPACE IF EXISTS fid_fast')


def test_one_big_table_loaded_while_it_decompresses_keeps_everything(pg, tmp_path):
    """A custom dump with one data entry, big enough that jobs > 1 loads it while it decompresses (schema and data
    on stdin, then --section=post-data): grants, comments, policies, indexes, constraints must all come back."""
    name = 'fid_big_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s' % qi(name))
    try:
        pg.sql('''
CREATE SCHEMA app AUTHORIZATION fid_owner;
GRANT USAGE ON SCHEMA app TO fid_reader;
CREATE TABLE app.big (id int PRIMARY KEY, pad text NOT NULL CHECK (pad <> ''), note text UNIQUE);
INSERT INTO app.big SELECT g, repeat(md5(g::text), 20), 'n' || g FROM generate_series(1, 110000) g;
CREATE INDEX big_pad ON app.big (substr(pad, 1, 8));
ALTER TABLE app.big OWNER TO fid_owner;
GRANT SELECT ON app.big TO fid_reader;
GRANT UPDATE (note) ON app.big TO "Fid Odd Rôle ""q""";
COMMENT ON TABLE app.big IS 'big';
COMMENT ON COLUMN app.big.pad IS 'padding';
ALTER TABLE app.big ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON app.big FOR SELECT TO fid_reader USING (id > 10);
CREATE VIEW app.v AS SELECT id FROM app.big;
GRANT SELECT ON app.v TO fid_reader;
''', database=name)
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name, format='custom')
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=2)
        assert result.rc == 0, result.stdout[-4000:]
        assert 'following' in result.result('restore')['method_detail'], result.result('restore')['method_detail']
        assert_same(expected, snapshot(pg, copy), 'restore loaded while it decompressed')
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))


def test_restore_onto_a_server_with_other_input_settings(pg, source, source_more, tmp_path):
    """A target server whose TimeZone, DateStyle, IntervalStyle, ... differ from the source's reads the dump the
    same: timestamps, dates, intervals and floats come back as they were."""
    odd = {'timezone': 'America/St_Johns', 'datestyle': 'SQL, DMY', 'intervalstyle': 'sql_standard',
           'extra_float_digits': '-3', 'bytea_output': 'escape', 'default_transaction_isolation': 'serializable',
           'standard_conforming_strings': 'off', 'xmloption': 'document'}
    fresh = PostgresServer(extra_conf=odd)
    try:
        fresh.start()
        create_roles(fresh)
        for db in (source, source_more):
            expected = snapshot(pg, db)
            for fmt in ('custom', 'plain'):
                work = tmp_path / ('%s-%s' % (fmt, uuid.uuid4().hex[:6]))
                work.mkdir()
                dest = backup(work, pg, db, format=fmt)
                result = restore(work, fresh, dest, source_database=db, database=db, replace=True)
                assert result.rc == 0, result.stdout[-4000:]
                assert_same(expected, snapshot(fresh, db), 'restore (%s) onto a server with other settings' % fmt)
    finally:
        fresh.cleanup()


@pytest.mark.parametrize('fmt', FORMATS)
def test_materialized_view_refreshed_under_the_database_settings(pg, tmp_path, fmt):
    """A materialized view is recomputed by the restore: under the session settings the source database gives
    (its ALTER DATABASE ... SET timezone, DateStyle, IntervalStyle, default_text_search_config), not the restoring
    server's defaults."""
    name = 'fid_mv_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s' % qi(name))
    pg.sql("ALTER DATABASE %s SET timezone TO 'Pacific/Chatham'; ALTER DATABASE %s SET \"DateStyle\" TO 'SQL, DMY';"
           "ALTER DATABASE %s SET \"IntervalStyle\" TO 'sql_standard';"
           "ALTER DATABASE %s SET default_text_search_config TO 'pg_catalog.simple'"
           % (qi(name), qi(name), qi(name), qi(name)))
    try:
        pg.sql("CREATE TABLE ev (at timestamptz, d interval); "
               "INSERT INTO ev SELECT timestamptz '2024-01-01 00:00+00' + g * interval '5 hours', "
               "g * interval '-90 min' FROM generate_series(1, 500) g; "
               "CREATE MATERIALIZED VIEW per_day AS SELECT date_trunc('day', at) AS day, count(*) AS n, "
               "min(at)::text AS first_text, sum(d)::text AS total, to_tsvector('The running ' || count(*)) AS words "
               "FROM ev GROUP BY 1", database=name)
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name, format=fmt)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore of a materialized view (%s)' % fmt)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))


def drop_subscriptions(server: PostgresServer, name: str) -> None:
    if not server.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(name)):
        return
    server.sql('ALTER DATABASE %s ALLOW_CONNECTIONS true' % qi(name))
    for (sub,) in server.sql('SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid '
                             'WHERE d.datname = %s' % ql(name)):
        server.sql('ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s'
                   % (qi(sub), qi(sub), qi(sub)), database=name)


def test_subscriber_database_restores_and_is_replaced_or_refused_cleanly(pg, tmp_path):
    """A logical replication subscriber: its subscription comes back (disabled, as pg_dump writes it); replacing a
    database that has one either works or is refused before anything changes, never half-way (DROP DATABASE
    refuses a database with subscriptions, and the swap had already happened)."""
    name = 'fid_sub_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s' % qi(name))
    try:
        pg.sql("CREATE TABLE t (v int); INSERT INTO t VALUES (1); CREATE SUBSCRIPTION \"Fid Sub\" CONNECTION "
               "'host=/nonexistent dbname=x' PUBLICATION p WITH (connect = false, slot_name = 'fid_slot')",
               database=name)
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore of a subscriber database')
        result = restore(tmp_path, pg, dest, database=copy, source_database=name, replace=True)
        if result.rc != 0:
            msg = result.result('restore')['msg']
            assert 'Fid Sub' in msg and 'subscription' in msg and 'Nothing was' in msg, msg
        assert leftovers(pg) == [], leftovers(pg)
        assert_same(expected, snapshot(pg, copy), 'a subscriber database after replace=true')
    finally:
        for db in [name, copy] + leftovers(pg):
            drop_subscriptions(pg, db)
            pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(db))


def test_template_database_comes_back_a_template_and_can_be_replaced(pg, tmp_path):
    """IS_TEMPLATE is a property of the database (CREATE DATABASE ... TEMPLATE it is how it is used): it comes back,
    and replacing a template database works (DROP DATABASE refuses a template)."""
    name = 'fid_tpl_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        pg.sql('ALTER DATABASE %s IS_TEMPLATE true' % qi(name))
        is_template = "SELECT datistemplate::text FROM pg_database WHERE datname = %s"
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert pg.sql(is_template % ql(copy)) == [('true',)]
        assert_same(expected, snapshot(pg, copy), 'restore of a template database')
        result = restore(tmp_path, pg, dest, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert pg.sql(is_template % ql(name)) == [('true',)]
        assert_same(expected, snapshot(pg, name), 'a template database replaced')
        assert leftovers(pg) == [], leftovers(pg)
        result = play(tmp_path, [{'name': 'drop', 'opsready.operations.db_restore': dict(
            conn(pg), engine='postgresql', src=str(dest), database=copy, state='absent')}], pg)   # as drills clean up
        assert result.rc == 0 and result.result('drop')['changed'] is True, result.stdout[-3000:]
        assert pg.sql(is_template % ql(copy)) == []
    finally:
        for db in [name, copy] + leftovers(pg):
            pg.sql('ALTER DATABASE %s IS_TEMPLATE false' % qi(db), check=False)
            pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(db))


def test_sql_ascii_database_with_non_utf8_bytes_comes_back_byte_for_byte(pg, tmp_path):
    """SQL_ASCII stores bytes unchecked (legacy applications wrote LATIN1 and UTF-8 into the same column): the
    restore must not convert or reject them."""
    name = 'fid_ascii_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'" % qi(name))
    try:
        pg.sql("CREATE TABLE t (v text); INSERT INTO t VALUES (E'caf\\xe9 latin1'), (E'\\xc3\\xa9 utf8'), "
               "(E'\\xff\\xfe\\x80 junk'); COMMENT ON TABLE t IS E'comment \\xe9'", database=name)
        raw = "SELECT string_agg(encode(convert_to(v, 'SQL_ASCII'), 'hex'), ',' ORDER BY v) FROM t"
        before = pg.sql(raw, database=name)
        expected = snapshot(pg, name)
        for fmt in FORMATS:
            (tmp_path / fmt).mkdir()
            dest = backup(tmp_path / fmt, pg, name, format=fmt)
            result = restore(tmp_path / fmt, pg, dest, source_database=name, database=copy, replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            assert pg.sql(raw, database=copy) == before, fmt
            assert_same(expected, snapshot(pg, copy), 'restore of a SQL_ASCII database (%s)' % fmt)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))


def test_the_maintenance_database_itself_can_be_restored(tmp_path):
    """Applications do keep tables in "postgres". Restoring it over itself must work or be refused cleanly, and the
    server must stay usable (the module's own sessions run in that database)."""
    server = PostgresServer()
    try:
        server.start()
        server.sql('CREATE TABLE keep (v int); INSERT INTO keep VALUES (1), (2)', database='postgres')
        expected = snapshot(server, 'postgres')
        dest = backup(tmp_path, server, 'postgres')
        server.sql('DELETE FROM keep WHERE v = 2', database='postgres')
        result = restore(tmp_path, server, dest, database='postgres', replace=True)
        assert server.sql("SELECT datallowconn::text FROM pg_database WHERE datname = 'postgres'") == [('true',)]
        assert leftovers(server) == [], leftovers(server)
        if result.rc == 0:
            assert_same(expected, snapshot(server, 'postgres'), 'postgres restored over itself')
        else:
            msg = result.result('restore')['msg']
            assert 'Nothing was changed' in msg and 'another name' in msg, msg   # said before any work
            assert server.sql('SELECT count(*) FROM keep', database='postgres') == [('1',)]
            # and what it says to do works
            result = restore(tmp_path, server, dest, source_database='postgres', database='postgres_restored')
            assert result.rc == 0, result.stdout[-3000:]
            assert server.sql('SELECT count(*) FROM keep', database='postgres_restored') == [('2',)]
    finally:
        server.cleanup()


def test_icu_database_comes_back_icu(pg, tmp_path):
    """A database created with the ICU locale provider sorts by ICU rules: it must not come back libc."""
    name = 'fid_icu_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql("CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE-u-kn-true' LOCALE 'C'"
           % qi(name))
    try:
        pg.sql("CREATE TABLE t (v text PRIMARY KEY); INSERT INTO t VALUES ('a10'), ('a9'), ('B'), ('b')",
               database=name)
        order = 'SELECT string_agg(v, \',\' ORDER BY v) FROM t'
        assert pg.sql(order, database=name) == [('a9,a10,b,B',)]
        expected = snapshot(pg, name)
        for fmt in ('custom', 'plain'):
            (tmp_path / fmt).mkdir()
            dest = backup(tmp_path / fmt, pg, name, format=fmt)
            result = restore(tmp_path / fmt, pg, dest, source_database=name, database=copy, replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            assert pg.sql(order, database=copy) == [('a9,a10,b,B',)], fmt
            assert_same(expected, snapshot(pg, copy), 'restore of an ICU database (%s)' % fmt)
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))
