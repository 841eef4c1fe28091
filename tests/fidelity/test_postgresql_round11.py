"""Fidelity, PostgreSQL, round 11 (red team): what an existing target may hold that the restore did not count, names
that differ only in case, and a database that freezes its own DDL.

* an existing target counts as "not empty" (refused without ``replace=true``) by what a user made in it; default
  privileges (``ALTER DEFAULT PRIVILEGES``), access methods, procedural languages, text search parsers and templates
  and transforms were not counted: a database prepared with only those was dropped by the swap unasked;
* databases, roles, schemas and tables whose names differ only in case (PostgreSQL folds only unquoted names): each
  restored as itself, the other left alone, in check mode and in the run;
* a database whose event trigger refuses DDL (a "DDL freeze" kept on between releases) or logs it into a table (an
  audit trail): the dump creates it before its REFRESH MATERIALIZED VIEW, so the load failed (or logged itself), and the
  restore's own statements in the copy afterwards are DDL too;
* ``no_owner=true`` left the restored database with CREATE DATABASE's default ACL: one closed to PUBLIC (REVOKE
  CONNECT, TEMPORARY ... FROM PUBLIC) came back open to every role of the target server.
"""

from __future__ import annotations

import uuid

import pytest

from tests.fidelity.test_postgresql import (
    assert_same, backup, data_checksums, leftovers, qi, restore, schema_dump, snapshot)
from tests.fidelity.conftest import check_restore
from tests.harness.servers import PostgresServer


def drop(server: PostgresServer, *names: str) -> None:
    server.sql(''.join('DROP DATABASE IF EXISTS %s WITH (FORCE);' % qi(n) for n in names))


# -- what an existing target holds that a user made ----------------------------------------------------------------
# Each made in a database otherwise as CREATE DATABASE gives it: none of them is data of a table, yet a DBA who made
# them (a database prepared for an application: its default grants, a table access method, a language) loses them to
# the swap's DROP DATABASE.
TARGET_KINDS11 = {
    'default privileges': 'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO fid_reader',
    'default privileges of a role in a schema': 'ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA public '
                                                'GRANT USAGE ON SEQUENCES TO fid_reader',
    'an access method': 'CREATE ACCESS METHOD keep_me TYPE TABLE HANDLER heap_tableam_handler',
    'a procedural language': 'CREATE LANGUAGE keep_me HANDLER plpgsql_call_handler',
    'a text search template': 'CREATE TEXT SEARCH TEMPLATE keep_me (LEXIZE = dsimple_lexize, INIT = dsimple_init)',
    'a text search parser': 'CREATE TEXT SEARCH PARSER keep_me (START = prsd_start, GETTOKEN = prsd_nexttoken, '
                            'END = prsd_end, LEXTYPES = prsd_lextype)',
}


@pytest.mark.parametrize('what', sorted(TARGET_KINDS11))
def test_target_holding_only_what_a_user_made_is_not_replaced_unasked(pg, tmp_path, what):
    """Check mode and the run refuse without replace=true, naming what the target holds; the target is untouched."""
    name = 'fid_src11_%s' % uuid.uuid4().hex[:6]
    target = 'fid_tgt11_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s; CREATE DATABASE %s' % (qi(name), qi(target)))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        pg.sql(TARGET_KINDS11[what], database=target)
        before = schema_dump(pg, target), data_checksums(pg, target)
        dest = backup(tmp_path, pg, name)
        check = check_restore(tmp_path, pg, dest, source_database=name, database=target)
        assert check.rc != 0, 'check mode would replace a target holding %s without replace=true' % what
        assert 'not empty' in check.result('restore')['msg'], check.result('restore')['msg']
        result = restore(tmp_path, pg, dest, source_database=name, database=target)
        assert result.rc != 0, 'a target holding %s was replaced without replace=true' % what
        msg = result.result('restore')['msg']
        assert 'exists and is not empty' in msg and 'replace=true' in msg, msg
        assert (schema_dump(pg, target), data_checksums(pg, target)) == before
        result = restore(tmp_path, pg, dest, source_database=name, database=target, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is True
        assert leftovers(pg) == []
    finally:
        drop(pg, name, target)


# -- names that differ only in case ------------------------------------------------------------------------------
CASE_ROLES = ('R11case', 'r11case', 'R11CASE')


def case_fixture(tag: str) -> str:
    return f'''
CREATE SCHEMA "S11"; CREATE SCHEMA s11;
CREATE TABLE "S11"."T" (v text); CREATE TABLE "S11".t (v text); CREATE TABLE s11."T" (v text);
CREATE TABLE s11.t ("V" int, v int);
INSERT INTO "S11"."T" VALUES ('upper upper {tag}'); INSERT INTO "S11".t VALUES ('upper lower {tag}');
INSERT INTO s11."T" VALUES ('lower upper {tag}'); INSERT INTO s11.t VALUES (1, 2);
ALTER TABLE "S11"."T" OWNER TO "R11case"; ALTER TABLE s11.t OWNER TO r11case;
GRANT USAGE ON SCHEMA "S11" TO "R11CASE"; GRANT SELECT ("V") ON s11.t TO "R11CASE";
GRANT SELECT ON "S11".t TO r11case;
COMMENT ON TABLE s11."T" IS 'lower schema, upper table {tag}';
'''


def test_names_that_differ_only_in_case(pg, tmp_path):
    """Two databases "Tw11" and "tw11", roles R11case / r11case / R11CASE, schemas "S11" and s11 with tables "T" and
    t: a restore of "Tw11" under "TW11", then over "Tw11" itself (replace), leaves "tw11" as it was and brings back
    each object with its own owner, grants and settings; restoring into "tw11" (not empty) without replace is refused
    though "Tw11" was just replaced."""
    pg.sql(''.join('CREATE ROLE %s;' % qi(r) for r in CASE_ROLES))
    upper, lower, other = 'Tw11', 'tw11', 'TW11'
    try:
        for db in (upper, lower):
            pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(db))
            pg.sql(case_fixture('of the %s one' % ('upper' if db == upper else 'lower')), database=db)
        pg.sql(f'''
ALTER DATABASE {qi(upper)} OWNER TO "R11case";
REVOKE ALL ON DATABASE {qi(upper)} FROM PUBLIC;
GRANT CONNECT ON DATABASE {qi(upper)} TO r11case;
GRANT TEMPORARY ON DATABASE {qi(upper)} TO "R11CASE";
ALTER ROLE "R11case" IN DATABASE {qi(upper)} SET work_mem TO '3MB';
ALTER ROLE r11case IN DATABASE {qi(upper)} SET work_mem TO '5MB';
COMMENT ON DATABASE {qi(upper)} IS 'upper';
ALTER DATABASE {qi(lower)} OWNER TO r11case;
COMMENT ON DATABASE {qi(lower)} IS 'lower';
''')
        expected, untouched = snapshot(pg, upper), snapshot(pg, lower)
        dest = backup(tmp_path, pg, upper)
        check = check_restore(tmp_path, pg, dest, source_database=upper, database=other)
        assert check.rc == 0, check.stdout[-3000:]
        assert check.result('restore').get('replaced') is False
        result = restore(tmp_path, pg, dest, source_database=upper, database=other)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is False
        assert_same(expected, snapshot(pg, other), 'restore of "Tw11" as "TW11"')
        result = restore(tmp_path, pg, dest, source_database=upper, database=upper, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, upper), 'restore of "Tw11" over itself')
        refused = restore(tmp_path, pg, dest, source_database=upper, database=lower)
        assert refused.rc != 0 and 'not empty' in refused.result('restore')['msg'], refused.stdout[-3000:]
        assert_same(untouched, snapshot(pg, lower), '"tw11", which no restore targeted')
        assert leftovers(pg) == []
    finally:
        drop(pg, upper, lower, other)
        pg.sql(''.join('DROP ROLE IF EXISTS %s;' % qi(r) for r in CASE_ROLES))


# -- a database whose event triggers refuse or log DDL ---------------------------------------------------------------
EVENT_BASE = r'''
CREATE SCHEMA app;
CREATE TABLE app.t (id int PRIMARY KEY, v text);
INSERT INTO app.t SELECT g, 'row ' || g FROM generate_series(1, 20) g;
CREATE MATERIALIZED VIEW app.mv AS SELECT count(*) AS n FROM app.t;
GRANT SELECT ON app.t TO fid_reader;
CREATE EXTENSION pgcrypto SCHEMA app;
COMMENT ON FUNCTION app.gen_random_uuid() IS 'changed after CREATE EXTENSION';
'''
EVENT_TRIGGERS = {
    # refuses every DDL command unless the session sets a flag (migrations set it)
    'freeze': r'''
CREATE FUNCTION app.no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('app.allow_ddl', true), '') <> 'on' THEN
    RAISE EXCEPTION 'DDL is frozen in this database (%)', tg_tag;
  END IF;
END $$;
CREATE EVENT TRIGGER no_ddl ON ddl_command_start EXECUTE FUNCTION app.no_ddl();
COMMENT ON EVENT TRIGGER no_ddl IS 'set app.allow_ddl = on to deploy';
''',
    # logs every DDL command into a table of the database (an audit trail): the restore's own statements are not
    # the database's history
    'audit': r'''
CREATE TABLE app.ddl_log (id bigserial PRIMARY KEY, tag text, objects text);
CREATE FUNCTION app.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app.ddl_log (tag, objects)
  SELECT tg_tag, string_agg(object_identity, ', ') FROM pg_event_trigger_ddl_commands();
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION app.log_ddl();
CREATE EVENT TRIGGER "Log DDL, disabled" ON ddl_command_end EXECUTE FUNCTION app.log_ddl();
ALTER EVENT TRIGGER "Log DDL, disabled" DISABLE;
CREATE TABLE app.after (v int);
''',
}


@pytest.mark.parametrize('fmt', ('custom', 'directory', 'plain'))
@pytest.mark.parametrize('kind', sorted(EVENT_TRIGGERS))
def test_database_whose_event_triggers_refuse_or_log_ddl(pg, tmp_path, kind, fmt):
    """An event trigger ``ON ddl_command_start`` refusing DDL unless the session sets a flag, or one ``ON
    ddl_command_end`` logging DDL into a table: the dump creates it before its REFRESH MATERIALIZED VIEW (the load
    failed with the trigger's message, or the log gained rows of the load), and the restore's own statements in the
    copy (an extension member's comment set again) are DDL too. The restore brings the database back as it is, the
    triggers in their state (one disabled stays disabled)."""
    name = 'fid_evt11_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(EVENT_BASE + EVENT_TRIGGERS[kind], database=name)
        expected = snapshot(pg, name)
        states = pg.sql('SELECT evtname, evtenabled FROM pg_event_trigger ORDER BY 1', database=name)
        dest = backup(tmp_path, pg, name, format=fmt)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=2 if fmt != 'plain' else 1)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore under another name')
        assert pg.sql('SELECT evtname, evtenabled FROM pg_event_trigger ORDER BY 1', database=copy) == states
        member = "SELECT obj_description('app.gen_random_uuid()'::regprocedure, 'pg_proc')"
        assert pg.sql(member, database=copy) == [('changed after CREATE EXTENSION',)], \
            result.result('restore').get('restore_warnings')
        result = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, name), 'restore over the original')
        assert leftovers(pg) == []
    finally:
        drop(pg, name, copy)


# -- no_owner does not open a database the backup had closed to PUBLIC ------------------------------------------------
def public_database_privileges(server: PostgresServer, name: str) -> list:
    """What PUBLIC may do on the database (CONNECT, TEMPORARY, CREATE), as the server decides it (datacl NULL: the
    default, CONNECT and TEMPORARY)."""
    return [p for p in ('CONNECT', 'TEMPORARY', 'CREATE')
            if server.sql("SELECT has_database_privilege('fid_login', d.oid, '%s')::text FROM pg_database d "
                          "WHERE d.datname = '%s'" % (p, name.replace("'", "''")))[0][0] == 'true']


@pytest.mark.parametrize('closed', ('CONNECT, TEMPORARY', 'TEMPORARY'))
def test_no_owner_keeps_what_public_was_refused(pg, tmp_path, closed):
    """A database whose owner revoked CONNECT (and TEMPORARY) from PUBLIC, the usual hardening of a database of
    personal data, restored with no_owner=true (onto a server without its roles: a DR drill's scratch server): the
    restored copy gave every role of that server CONNECT and TEMPORARY again (a fresh database's default ACL), though
    no_owner leaves every object inside without grants. PUBLIC's part of the ACL names no role: it is set as backed
    up; the roles' grants are left out as before."""
    name = 'fid_pub11_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s OWNER fid_owner TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO fid_owner', database=name)
        pg.sql('REVOKE %s ON DATABASE %s FROM PUBLIC; GRANT CONNECT ON DATABASE %s TO fid_reader'
               % (closed, qi(name), qi(name)))
        expected = public_database_privileges(pg, name)
        assert 'TEMPORARY' not in expected
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, no_owner=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert public_database_privileges(pg, copy) == expected
        owner = pg.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'" % copy)[0][0]
        assert owner == pg.user
        # the roles' grants are not set under no_owner (a server without the roles): fid_reader has only PUBLIC's
        assert pg.sql("SELECT has_database_privilege('fid_reader', '%s', 'CONNECT')::text" % copy) == \
            [('true' if 'CONNECT' in expected else 'false',)]
        assert leftovers(pg) == []
    finally:
        drop(pg, name, copy)
