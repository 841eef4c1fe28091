"""Fidelity, PostgreSQL, round 6: what a user changed on an extension's members and on the extension itself.

* attributes of extension member functions (COST, ROWS, volatility, strictness, PARALLEL, LEAKPROOF, SECURITY
  DEFINER) a user changed after CREATE EXTENSION: pg_dump writes CREATE EXTENSION only, so the restored copy had the
  extension script's; the restore sets them again after the load (and names what it could not set), as it now does
  a member's owner, settings and comment (round 5 only named those);
* the extension's own owner (``pg_extension.extowner``, a trusted extension created by a non-superuser): pg_dump
  writes no owner and PostgreSQL has no ALTER EXTENSION ... OWNER TO, so the copy's extension belonged to the
  restoring role; the restore creates it as its owner before the load (and names the owner when it cannot).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.fidelity.test_postgresql import assert_same, backup, qi, restore, snapshot
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.harness.servers import PostgresServer


FUNCTION_ATTRS = ("SELECT p.oid::regprocedure::text, p.provolatile::text, p.proisstrict::text, "
                  "p.proparallel::text, p.proleakproof::text, p.prosecdef::text, p.procost::text, p.prorows::text "
                  "FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
                  "AND d.deptype = 'e' ORDER BY 1")


def test_extension_member_function_attributes_and_extension_owner(pg, tmp_path):
    """COST / volatility / STRICT / PARALLEL / LEAKPROOF / SECURITY DEFINER / ROWS a user set on extension member
    functions were lost silently (the copy had the extension script's): they come back, every member function
    the same as in the source. The owner of an extension created by a non-superuser was the restoring
    role: the extension is created by its owner again."""
    name = 'fid_extf6_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("GRANT CREATE ON DATABASE %s TO fid_owner; CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm; "
               "SET ROLE fid_owner; CREATE EXTENSION cube; RESET ROLE; "
               "ALTER FUNCTION hstore(text, text) COST 7 STABLE; "
               "ALTER FUNCTION similarity(text, text) PARALLEL RESTRICTED CALLED ON NULL INPUT; "
               "ALTER FUNCTION show_trgm(text) SECURITY DEFINER LEAKPROOF; "
               "ALTER FUNCTION each(hstore) ROWS 42" % qi(name), database=name)
        expected = pg.sql(FUNCTION_ATTRS, database=name)
        dest = backup(tmp_path, pg, name)
        copy = name + '_copy'
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        warnings = result.result('restore')['restore_warnings']
        assert pg.sql(FUNCTION_ATTRS, database=copy) == expected
        attrs = [w for w in warnings if 'were set again after the load' in w]
        assert len(attrs) == 1, warnings
        for named in ('function public.hstore(text,text) (STABLE, COST 7)',
                      'function public.each(public.hstore) (ROWS 42)',
                      'function public.similarity(text,text) (CALLED ON NULL INPUT, PARALLEL RESTRICTED)',
                      'function public.show_trgm(text) (SECURITY DEFINER, LEAKPROOF)'):
            assert named in attrs[0], attrs
        # the extension a non-superuser created comes back created by it (not named: nothing was lost)
        assert not [w for w in warnings if w.startswith('Extensions owned by')], warnings
        owners = "SELECT extname, pg_get_userbyid(extowner) FROM pg_extension ORDER BY 1"
        assert pg.sql(owners, database=copy) == pg.sql(owners, database=name)
        # the temporary grants that let it are gone
        acl = "SELECT datacl::text FROM pg_database WHERE datname = current_database()"
        assert pg.sql(acl, database=copy) == pg.sql(acl, database=name)
        nsp = "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'"
        assert pg.sql(nsp, database=copy) == pg.sql(nsp, database=name)
        # nothing is named lost: the members of cube, which the source's bootstrap superuser owns (a trusted
        # extension), belonged to the restoring role and were given back too
        assert not [w for w in warnings if 'did not come back' in w], warnings
        assert pg.sql("SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'cube_in'",
                      database=copy) == pg.sql("SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc "
                                               "WHERE proname = 'cube_in'", database=name)
    finally:
        drop_databases(pg, name, name + '_copy')


# -- extension configuration tables, and object kinds a DBA checks (red team) ------------------------------------
CONFIG_EXTENSION_SQL = """
CREATE TABLE @extschema@.fid_cfg (id int PRIMARY KEY, v text, shipped bool NOT NULL DEFAULT false);
INSERT INTO @extschema@.fid_cfg VALUES (1, 'from the script', true);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.fid_cfg', 'WHERE NOT shipped');
CREATE SEQUENCE @extschema@.fid_cfg_seq;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.fid_cfg_seq', '');
CREATE TABLE @extschema@.fid_cfg_all (k text PRIMARY KEY, v text);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.fid_cfg_all', '');
"""

RED_TEAM_SQL = """
CREATE SCHEMA rt6; GRANT USAGE ON SCHEMA rt6 TO fid_reader, fid_login;
CREATE TABLE rt6.acct (id int PRIMARY KEY, owner_note text, balance numeric);
GRANT SELECT (id, balance) ON rt6.acct TO fid_reader WITH GRANT OPTION;
SET ROLE fid_reader; GRANT SELECT (balance) ON rt6.acct TO fid_login; RESET ROLE;
CREATE TABLE rt6.audit (id int, old_balance numeric, new_balance numeric, n int);
CREATE FUNCTION rt6.audit_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO rt6.audit SELECT o.id, o.balance, n.balance, (SELECT count(*) FROM new_rows)
      FROM old_rows o JOIN new_rows n USING (id); RETURN NULL; END $$;
CREATE TRIGGER acct_audit AFTER UPDATE ON rt6.acct REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION rt6.audit_rows();
CREATE FUNCTION rt6.no_neg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'negative'; END $$;
CREATE TRIGGER acct_no_neg BEFORE UPDATE OF balance ON rt6.acct FOR EACH ROW
  WHEN (NEW.balance < 0 AND OLD.balance IS DISTINCT FROM NEW.balance) EXECUTE FUNCTION rt6.no_neg();
CREATE CONSTRAINT TRIGGER acct_late AFTER INSERT ON rt6.acct DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.id > 100) EXECUTE FUNCTION rt6.no_neg();
ALTER TABLE rt6.acct DISABLE TRIGGER acct_late;
INSERT INTO rt6.acct VALUES (1, 'a', 10), (2, 'b', 20);
UPDATE rt6.acct SET balance = balance + 1;
CREATE SEQUENCE rt6.s AS smallint INCREMENT -2 MINVALUE -50 MAXVALUE 50 START 7 CACHE 4 CYCLE OWNED BY rt6.acct.id;
SELECT setval('rt6.s', 3, false);
CREATE TABLE rt6.ident (id bigint GENERATED BY DEFAULT AS IDENTITY (START 100 INCREMENT 10 CACHE 5 MAXVALUE 1000000),
                        v text);
INSERT INTO rt6.ident (v) VALUES ('x'), ('y');
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner IN SCHEMA rt6 GRANT SELECT ON TABLES TO fid_reader WITH GRANT OPTION;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
"""


@pytest.fixture(scope='module')
def config_extension(pg: PostgresServer) -> Iterator[str]:
    """A tiny extension with configuration tables (no contrib extension here has one), written into the server's
    extension directory for this module and removed after it."""
    name = 'fid_cfg6_%s' % uuid.uuid4().hex[:6]
    sharedir = subprocess.run([pg.bin('pg_config'), '--sharedir'], check=True, capture_output=True,
                              text=True).stdout.strip()
    control = Path(sharedir, 'extension', name + '.control')
    script = Path(sharedir, 'extension', name + '--1.0.sql')
    try:
        script.write_text(CONFIG_EXTENSION_SQL)
        control.write_text("default_version = '1.0'\nrelocatable = false\nschema = cfg6\nsuperuser = true\n")
        yield name
    finally:
        for path in (control, script):
            path.unlink(missing_ok=True)


def test_extension_config_tables_and_red_team_kinds(pg, config_extension, tmp_path):
    """Regression guard (passed before): rows a user added to an extension's configuration table come back, as
    its filter (pg_extension_config_dump's condition) says (a row the filter leaves out is the extension script's
    business: it is not dumped), with a configuration sequence's value; and object kinds a DBA checks and earlier
    rounds did not: column privileges granted WITH GRANT OPTION and re-granted by the grantee (the grantor kept),
    triggers WHEN and with transition tables, a disabled deferrable constraint trigger, a sequence's options and
    OWNED BY, identity options, default privileges for a role in a schema."""
    name = 'fid_cfg6db_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE SCHEMA cfg6; CREATE EXTENSION %s; "
               "INSERT INTO cfg6.fid_cfg VALUES (2, 'added by a user', false), (3, 'filtered out', true); "
               "UPDATE cfg6.fid_cfg SET v = 'changed by a user' WHERE id = 1; "
               "INSERT INTO cfg6.fid_cfg_all VALUES ('k', 'v'); SELECT setval('cfg6.fid_cfg_seq', 42)"
               % qi(config_extension), database=name)
        pg.sql(RED_TEAM_SQL, database=name)
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name)
        copy = name + '_copy'
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        rows = pg.sql('SELECT id::text, v FROM cfg6.fid_cfg ORDER BY id', database=copy)
        # the script's row (id 1, shipped) is made again by CREATE EXTENSION, with the script's value: the
        # filter leaves it out of the dump (pg_dump's documented behaviour); a user's row comes back, a filtered one
        # does not
        assert rows == [('1', 'from the script'), ('2', 'added by a user')], rows
        assert pg.sql('SELECT k, v FROM cfg6.fid_cfg_all', database=copy) == [('k', 'v')]
        assert pg.sql('SELECT last_value::text FROM cfg6.fid_cfg_seq', database=copy) == [('42',)]
        actual = snapshot(pg, copy)
        # the filtered configuration table differs by design (above); everything else is the same
        for snap in (expected, actual):
            snap['data'].pop('"cfg6"."fid_cfg"', None)
        assert_same(expected, actual, copy)
        grantor = pg.sql("SELECT grantor::regrole::text FROM (SELECT (aclexplode(attacl)).* FROM pg_attribute "
                         "WHERE attrelid = 'rt6.acct'::regclass AND attname = 'balance') a "
                         "WHERE grantee = 'fid_login'::regrole", database=copy)
        assert grantor == [('fid_reader',)], grantor
    finally:
        drop_databases(pg, name, name + '_copy')
