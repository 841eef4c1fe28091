"""Fidelity, PostgreSQL, round 9 (red team): what rounds 1-8 named but did not warn of or foresee, and classes they
did not hold.

* a database privilege the restoring collection does not know (a manifest from a newer server, or edited) was left out
  and listed only in ``database_properties.skipped``: it is a warning (``restore_warnings``), in check mode too;
* check mode did not foresee that the target server lacks the backed-up database's collation/ctype locale (the real
  run refuses before anything is created): it refuses the same way;
* object kinds and privilege shapes a DBA checks that rounds 1-8 did not hold (KINDS9), restored under an odd name and
  over the original (replace=true), in every format.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.fidelity.test_postgresql import (
    FORMATS, assert_same, backup, leftovers, qi, ql, restore, snapshot)
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.fidelity.conftest import check_restore
from tests.harness.servers import PostgresServer


def edit_manifests(dest: Path, change) -> None:
    """As if the backup came from another server: ``change(data)`` edits each manifest's JSON."""
    for path in dest.glob('*.json'):
        data = json.loads(path.read_text())
        if data.get('database_properties'):
            change(data)
            path.write_text(json.dumps(data))


# -- a database privilege this collection does not know ------------------------------------------------------------
def test_unknown_database_privilege_is_a_warning(pg, tmp_path):
    """A database ACL entry whose privilege this collection does not know (a newer server's, or a manifest edited by
    hand) was left out and listed only in ``database_properties.skipped``: a user reading the warnings (a drill
    report, the play's output) never learnt the restored database lacks it. It is a warning naming the privilege and
    the grantee, in check mode too; the known privileges are restored as before."""
    name = 'fid_acl9_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int)', database=name)
        pg.sql('GRANT CONNECT ON DATABASE %s TO fid_reader' % qi(name))
        dest = backup(tmp_path, pg, name)

        def add(data: dict) -> None:
            data['database_properties']['acl'].append({'grantor': data['database_properties']['owner'],
                                                       'grantee': 'fid_reader', 'privilege': 'FUTURE_PRIV',
                                                       'grantable': False})
        edit_manifests(dest, add)

        def named(res: dict) -> list:
            return [w for w in res.get('restore_warnings') or [] if 'FUTURE_PRIV' in w and 'fid_reader' in w]

        check = check_restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert check.rc == 0, check.stdout[-3000:]
        assert len(named(check.result('restore'))) == 1, check.result('restore').get('restore_warnings')
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-3000:]
        res = result.result('restore')
        assert len(named(res)) == 1, res.get('restore_warnings')
        acl = pg.sql('SELECT datacl::text FROM pg_database WHERE datname = %s' % ql(copy))[0][0]
        assert 'fid_reader=c/' in acl, acl
    finally:
        drop_databases(pg, name, copy)


# -- the database's own locale, foreseen by check mode -------------------------------------------------------------
@pytest.mark.parametrize('key', ['collate', 'ctype'])
def test_missing_database_locale_foreseen_by_check_mode(pg, tmp_path, key):
    """A backup of a database whose LC_COLLATE or LC_CTYPE this server lacks: the real run refuses before anything is
    created (CREATE DATABASE fails), but check mode said ``ok``/``changed``. It refuses the same way, naming the
    locale, and creates nothing."""
    name = 'fid_loc9_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int)', database=name)
        dest = backup(tmp_path, pg, name)
        edit_manifests(dest, lambda data: data['database_properties'].__setitem__(key, 'xx_XX.UTF-8'))
        for run in (check_restore, restore):
            res = run(tmp_path, pg, dest, source_database=name, database=copy)
            assert res.rc != 0, (run.__name__, res.stdout[-3000:])
            msg = res.result('restore')['msg']
            assert 'xx_XX.UTF-8' in msg and 'Nothing was restored' in msg, (run.__name__, msg)
            assert leftovers(pg) == [] and pg.sql('SELECT count(*) FROM pg_database WHERE datname = %s'
                                                  % ql(copy)) == [('0',)]
    finally:
        drop_databases(pg, name, copy)


# -- kinds and privilege shapes rounds 1-8 did not hold ------------------------------------------------------------
ODD = '"Fid Odd Rôle ""q"""'
KINDS9 = r'''
CREATE SCHEMA k9 AUTHORIZATION @ODD@;
-- privileges granted WITH GRANT OPTION and passed on by a non-owner (grantor kept), to PUBLIC too, on a table, its
-- columns, a sequence OWNED BY a column, a function, a type, a schema, a large object, a foreign server
GRANT USAGE ON SCHEMA k9 TO fid_owner WITH GRANT OPTION;
SET ROLE fid_owner;
GRANT USAGE ON SCHEMA k9 TO fid_reader, fid_login;
RESET ROLE;
CREATE TABLE k9.chain (id int PRIMARY KEY, v text, w text);
ALTER TABLE k9.chain OWNER TO fid_owner;
GRANT SELECT, UPDATE ON k9.chain TO @ODD@ WITH GRANT OPTION;
GRANT UPDATE (v) ON k9.chain TO fid_reader WITH GRANT OPTION;
SET ROLE @ODD@;
GRANT SELECT ON k9.chain TO fid_reader WITH GRANT OPTION;
RESET ROLE;
SET ROLE fid_reader;
GRANT SELECT ON k9.chain TO fid_login;
GRANT SELECT ON k9.chain TO PUBLIC;
GRANT UPDATE (v) ON k9.chain TO fid_login;
RESET ROLE;
INSERT INTO k9.chain VALUES (1, 'a', 'b'), (2, NULL, 'c');
CREATE SEQUENCE k9.seq;
ALTER SEQUENCE k9.seq OWNER TO fid_owner;
ALTER SEQUENCE k9.seq OWNED BY k9.chain.id;
SELECT setval('k9.seq', 17);
GRANT USAGE ON SEQUENCE k9.seq TO fid_reader WITH GRANT OPTION;
SET ROLE fid_reader;
GRANT USAGE ON SEQUENCE k9.seq TO fid_login;
RESET ROLE;
CREATE FUNCTION k9.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION k9.f() OWNER TO fid_owner;
REVOKE ALL ON FUNCTION k9.f() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION k9.f() TO fid_reader WITH GRANT OPTION;
SET ROLE fid_reader;
GRANT EXECUTE ON FUNCTION k9.f() TO fid_login;
RESET ROLE;
CREATE TYPE k9.comp AS (a int, b text);
ALTER TYPE k9.comp OWNER TO fid_owner;
REVOKE USAGE ON TYPE k9.comp FROM PUBLIC;
GRANT USAGE ON TYPE k9.comp TO @ODD@ WITH GRANT OPTION;
SET ROLE @ODD@;
GRANT USAGE ON TYPE k9.comp TO fid_login;
RESET ROLE;
SELECT lo_from_bytea(909090, 'chain');
ALTER LARGE OBJECT 909090 OWNER TO fid_owner;
GRANT SELECT, UPDATE ON LARGE OBJECT 909090 TO fid_reader WITH GRANT OPTION;
SET ROLE fid_reader;
GRANT SELECT ON LARGE OBJECT 909090 TO @ODD@;
RESET ROLE;
CREATE FOREIGN DATA WRAPPER fdw9;
CREATE SERVER srv9 FOREIGN DATA WRAPPER fdw9;
ALTER SERVER srv9 OWNER TO fid_owner;
GRANT USAGE ON FOREIGN SERVER srv9 TO fid_reader WITH GRANT OPTION;
SET ROLE fid_reader;
GRANT USAGE ON FOREIGN SERVER srv9 TO fid_login;
RESET ROLE;
-- an owner without privileges of its own on its table
CREATE TABLE k9.selfless (a int);
ALTER TABLE k9.selfless OWNER TO fid_owner;
REVOKE ALL ON k9.selfless FROM fid_owner;
GRANT SELECT ON k9.selfless TO fid_reader;
-- default privileges of a role with an odd name, in a schema and database-wide, with a grant option, revoking its own
ALTER DEFAULT PRIVILEGES FOR ROLE @ODD@ IN SCHEMA k9 GRANT SELECT ON TABLES TO fid_reader WITH GRANT OPTION;
ALTER DEFAULT PRIVILEGES FOR ROLE @ODD@ REVOKE ALL ON TABLES FROM @ODD@;
ALTER DEFAULT PRIVILEGES FOR ROLE fid_login GRANT ALL ON SCHEMAS TO @ODD@;
-- views: security_barrier with a check option, security_invoker, a rule making one updatable, INSTEAD OF trigger
CREATE VIEW k9.sb WITH (security_barrier = true, check_option = cascaded) AS SELECT id, v FROM k9.chain WHERE id > 0;
CREATE VIEW k9.si WITH (security_invoker = true) AS SELECT id FROM k9.chain;
CREATE VIEW k9.upd AS SELECT id, v FROM k9.chain;
CREATE RULE upd_ins AS ON INSERT TO k9.upd DO INSTEAD INSERT INTO k9.chain (id, v) VALUES (NEW.id, NEW.v);
CREATE FUNCTION k9.vf() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER t_instead INSTEAD OF UPDATE ON k9.upd FOR EACH ROW EXECUTE FUNCTION k9.vf();
GRANT SELECT (id) ON k9.sb TO fid_login;
-- rules disabled, enabled for replicas only, always
CREATE TABLE k9.ruled (a int);
CREATE TABLE k9.ruled_log (a int);
CREATE RULE r_dis AS ON INSERT TO k9.ruled DO ALSO INSERT INTO k9.ruled_log VALUES (NEW.a);
CREATE RULE r_rep AS ON UPDATE TO k9.ruled DO ALSO INSERT INTO k9.ruled_log VALUES (NEW.a);
CREATE RULE r_alw AS ON DELETE TO k9.ruled WHERE OLD.a > 0 DO ALSO INSERT INTO k9.ruled_log VALUES (OLD.a);
ALTER TABLE k9.ruled DISABLE RULE r_dis;
ALTER TABLE k9.ruled ENABLE REPLICA RULE r_rep;
ALTER TABLE k9.ruled ENABLE ALWAYS RULE r_alw;
-- triggers: WHEN with arguments, transition tables, a deferrable constraint trigger, states on partitions' clones
CREATE FUNCTION k9.tf() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER t_when AFTER UPDATE ON k9.chain FOR EACH ROW WHEN (OLD.v IS DISTINCT FROM NEW.v)
  EXECUTE FUNCTION k9.tf('a', 'b''c');
CREATE TRIGGER t_trans AFTER INSERT ON k9.chain REFERENCING NEW TABLE AS newrows FOR EACH STATEMENT
  EXECUTE FUNCTION k9.tf();
CREATE CONSTRAINT TRIGGER t_con AFTER INSERT ON k9.chain DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  EXECUTE FUNCTION k9.tf();
ALTER TABLE k9.chain ENABLE REPLICA TRIGGER t_when;
ALTER TABLE k9.chain DISABLE TRIGGER t_con;
CREATE TABLE k9.pt (id int, k int) PARTITION BY LIST (k);
CREATE TABLE k9.pt1 PARTITION OF k9.pt FOR VALUES IN (1);
CREATE TABLE k9.pt2 PARTITION OF k9.pt FOR VALUES IN (2);
CREATE TABLE k9.pt3 PARTITION OF k9.pt FOR VALUES IN (3);
CREATE TRIGGER pt_trg AFTER INSERT ON k9.pt FOR EACH ROW EXECUTE FUNCTION k9.tf();
ALTER TABLE k9.pt DISABLE TRIGGER pt_trg;
ALTER TABLE k9.pt1 ENABLE ALWAYS TRIGGER pt_trg;
ALTER TABLE k9.pt2 ENABLE REPLICA TRIGGER pt_trg;
ALTER TABLE k9.pt3 ENABLE TRIGGER pt_trg;
INSERT INTO k9.pt VALUES (1, 1), (2, 2), (3, 3);
-- a conversion; comments on kinds rounds 1-8 did not comment
CREATE CONVERSION k9.conv9 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
COMMENT ON CONVERSION k9.conv9 IS 'conversion';
COMMENT ON SCHEMA k9 IS 'schema 9';
COMMENT ON VIEW k9.sb IS 'barrier';
COMMENT ON COLUMN k9.sb.v IS 'barrier column';
COMMENT ON TRIGGER t_when ON k9.chain IS 'when';
COMMENT ON TRIGGER pt_trg ON k9.pt IS 'partitioned trigger';
COMMENT ON RULE r_dis ON k9.ruled IS 'disabled rule';
COMMENT ON CONSTRAINT chain_pkey ON k9.chain IS 'pk';
COMMENT ON INDEX k9.chain_pkey IS 'pk index';
COMMENT ON SEQUENCE k9.seq IS 'owned sequence';
COMMENT ON COLUMN k9.comp.a IS 'attribute';
COMMENT ON SERVER srv9 IS 'server 9';
COMMENT ON SCHEMA public IS 'public 9';
'''.replace('@ODD@', ODD)


def database_level9(name: str) -> str:
    db = qi(name)
    return f'''
ALTER DATABASE {db} OWNER TO fid_owner;
REVOKE ALL ON DATABASE {db} FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {ODD} WITH GRANT OPTION;
SET ROLE {ODD};
GRANT CONNECT ON DATABASE {db} TO fid_login WITH GRANT OPTION;
RESET ROLE;
SET ROLE fid_login;
GRANT CONNECT ON DATABASE {db} TO fid_reader;
RESET ROLE;
ALTER DATABASE {db} CONNECTION LIMIT 0;
'''


# (catalog, owner column, ACL column) of every catalog whose rows have an owner or an ACL; an ACL is compared as
# what it grants (NULL is acldefault's: pg_dump writes nothing for an explicit ACL equal to it), of the object kind
# the expression names (acldefault's letters)
OWNED = (('pg_class', 'relowner', "relacl, acldefault(CASE WHEN x.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", "
                                  "x.relowner)"),
         ('pg_proc', 'proowner', "proacl, acldefault('f', x.proowner)"),
         ('pg_namespace', 'nspowner', "nspacl, acldefault('n', x.nspowner)"),
         ('pg_type', 'typowner', "typacl, acldefault('T', x.typowner)"),
         ('pg_language', 'lanowner', "lanacl, acldefault('l', x.lanowner)"),
         ('pg_largeobject_metadata', 'lomowner', "lomacl, acldefault('L', x.lomowner)"),
         ('pg_foreign_server', 'srvowner', "srvacl, acldefault('S', x.srvowner)"),
         ('pg_foreign_data_wrapper', 'fdwowner', "fdwacl, acldefault('F', x.fdwowner)"),
         ('pg_extension', 'extowner', None),
         ('pg_publication', 'pubowner', None), ('pg_collation', 'collowner', None),
         ('pg_conversion', 'conowner', None), ('pg_operator', 'oprowner', None), ('pg_opclass', 'opcowner', None),
         ('pg_opfamily', 'opfowner', None), ('pg_ts_config', 'cfgowner', None), ('pg_ts_dict', 'dictowner', None),
         ('pg_statistic_ext', 'stxowner', None), ('pg_event_trigger', 'evtowner', None))


def catalog_fingerprint(server: PostgresServer, db: str) -> list:
    """What the catalogs say of every object, by identity (names, not OIDs), whether or not pg_dump writes it: its
    owner, its ACL (grantors included), its columns' ACLs, every comment, default privileges, the states of rules and
    triggers. pg_dump's own text (``snapshot``) cannot show what pg_dump leaves out of both sides."""
    parts = []
    for catalog, owner, acl in OWNED:
        cls = 'pg_largeobject' if catalog == 'pg_largeobject_metadata' else catalog   # how objects name the class
        parts.append("SELECT 'owner/acl ' || (pg_identify_object('%s'::regclass, x.oid, 0)).type || ' ' || "
                     "(pg_identify_object('%s'::regclass, x.oid, 0)).identity || ': ' || pg_get_userbyid(x.%s) || ' ' "
                     "|| %s FROM %s x" % (cls, cls, owner, "coalesce(x.%s)::text" % acl if acl else "''",
                                          catalog))
    parts.append("SELECT 'column acl ' || (pg_identify_object('pg_class'::regclass, a.attrelid, a.attnum)).identity "
                 "|| ': ' || a.attacl::text FROM pg_attribute a WHERE a.attacl IS NOT NULL")
    parts.append("SELECT 'comment ' || (pg_identify_object(d.classoid, d.objoid, d.objsubid)).type || ' ' || "
                 "(pg_identify_object(d.classoid, d.objoid, d.objsubid)).identity || ': ' || d.description "
                 "FROM pg_description d")
    parts.append("SELECT 'default acl ' || coalesce(pg_get_userbyid(defaclrole), '-') || ' ' || "
                 "coalesce(defaclnamespace::regnamespace::text, '-') || ' ' || defaclobjtype::text || ': ' || "
                 "defaclacl::text FROM pg_default_acl")
    parts.append("SELECT 'rule ' || ev_class::regclass::text || '.' || rulename || ': ' || ev_enabled::text "
                 "FROM pg_rewrite WHERE ev_class >= 16384")
    parts.append("SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname || ': ' || tgenabled::text || ' ' || "
                 "tgdeferrable::text || tginitdeferred::text FROM pg_trigger WHERE NOT tgisinternal")
    rows = server.sql("SET search_path = pg_catalog; " + ' UNION ALL '.join(
        '(%s)' % p for p in parts), database=db)
    # temporary schemas and TOAST tables are named by OID
    return sorted(r[0] for r in rows if r and r[0] and not any(
        s in r[0] for s in ('pg_temp_', 'pg_toast_temp_', 'pg_toast.pg_toast_')))


def assert_same_catalog(expected: list, actual: list, what: str) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing and not extra, '%s differs from the source in the catalogs:\nmissing: %s\nextra: %s' % (
        what, '\n  '.join(missing[:60]), '\n  '.join(extra[:60]))


def test_round9_kinds(pg, tmp_path):
    """Regression guard (passed on the code before this round). See KINDS9 and database_level9 (privileges WITH
    GRANT OPTION passed on by non-owners, to PUBLIC too, on a database, table, columns, sequence OWNED BY, function,
    type, schema, large object, foreign server; an owner without its own privileges; default privileges of an oddly
    named role; security_barrier and security_invoker views, an updatable view's rule and INSTEAD OF trigger; rules
    disabled / replica / always; triggers with WHEN and arguments, transition tables, a disabled deferrable constraint
    trigger, each state on partitions' clones; a conversion; CONNECTION LIMIT 0; comments on these), compared by
    pg_dump's text and by the catalogs (``catalog_fingerprint``: what pg_dump leaves out of both sides too), under an
    odd name in every format and over the original."""
    name = 'fid_kinds9 "ü" %s' % uuid.uuid4().hex[:6]
    copy = 'Fid9 Copy \'q\' %s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(KINDS9, database=name)
        pg.sql(database_level9(name))
        expected, catalog = snapshot(pg, name), catalog_fingerprint(pg, name)
        assert 'owner/acl table k9.chain: fid_owner ' in '\n'.join(catalog)
        for fmt in FORMATS:
            work = tmp_path / fmt
            work.mkdir()
            dest = backup(work, pg, name, format=fmt)
            drop_databases(pg, copy)
            result = restore(work, pg, dest, source_database=name, database=copy,
                             jobs=2 if fmt == 'directory' else 1)
            assert result.rc == 0, result.stdout[-4000:]
            assert_same(expected, snapshot(pg, copy), 'restore of the %s backup under another name' % fmt)
            assert_same_catalog(catalog, catalog_fingerprint(pg, copy), 'restore of the %s backup' % fmt)
        result = restore(tmp_path, pg, tmp_path / 'custom' / 'backups', source_database=name, database=name,
                         replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, name), 'restore over the original')
        assert_same_catalog(catalog, catalog_fingerprint(pg, name), 'restore over the original')
        assert leftovers(pg) == []
    finally:
        drop_databases(pg, name, copy)


# -- plpgsql, which every database has from initdb: what a user changed on it ------------------------------------
PLPGSQL = {
    'changed': "COMMENT ON EXTENSION plpgsql IS 'plpgsql: ours ''q''\nsecond line'; "
               "COMMENT ON LANGUAGE plpgsql IS 'language: ours ü'; ALTER LANGUAGE plpgsql OWNER TO " + ODD,
    'removed': 'COMMENT ON EXTENSION plpgsql IS NULL; COMMENT ON LANGUAGE plpgsql IS NULL',
}


def plpgsql_state(server: PostgresServer, db: str) -> list:
    return server.sql("SELECT coalesce(obj_description(e.oid, 'pg_extension'), '<none>'), coalesce(obj_description("
                      "l.oid, 'pg_language'), '<none>'), pg_get_userbyid(l.lanowner) FROM pg_extension e, "
                      "pg_language l WHERE e.extname = 'plpgsql' AND l.lanname = 'plpgsql'", database=db)


@pytest.mark.parametrize('change', sorted(PLPGSQL))
def test_plpgsql_comments_and_owner_come_back(pg, tmp_path, change):
    """plpgsql is made by initdb in every database and pg_dump writes nothing of it but its members' privileges: a
    comment a user gave (or removed from) the extension or its language, and the language's owner, came back as the
    extension script has them, silently. They come back as backed up (and the run says it set them again), in every
    format, under another name and over the original."""
    name = 'fid_plpgsql9_%s' % uuid.uuid4().hex[:6]
    copy = name + ' copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int); ' + PLPGSQL[change], database=name)
        expected = plpgsql_state(pg, name)
        assert expected != plpgsql_state(pg, 'postgres'), expected
        for fmt in ('custom', 'plain'):
            work = tmp_path / fmt
            work.mkdir()
            dest = backup(work, pg, name, format=fmt)
            drop_databases(pg, copy)
            result = restore(work, pg, dest, source_database=name, database=copy)
            assert result.rc == 0, result.stdout[-4000:]
            assert plpgsql_state(pg, copy) == expected, fmt
            warned = [w for w in result.result('restore').get('restore_warnings') or [] if 'plpgsql' in w]
            assert warned and 'set again' in warned[0], result.result('restore').get('restore_warnings')
        result = restore(tmp_path, pg, tmp_path / 'custom' / 'backups', source_database=name, database=name,
                         replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert plpgsql_state(pg, name) == expected
    finally:
        drop_databases(pg, name, copy)


# -- what a restored copy reaches, foreseen by check mode -----------------------------------------------------------
REACHES = r'''
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION dblink;
CREATE SERVER "prod Srv9" FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db.invalid', dbname 'prod');
CREATE USER MAPPING FOR PUBLIC SERVER "prod Srv9" OPTIONS (user 'app');
CREATE SUBSCRIPTION "sub 9" CONNECTION 'host=db.invalid dbname=prod' PUBLICATION p9
  WITH (connect = false, enabled = false, slot_name = NONE);
CREATE FUNCTION "inline Dblink9"() RETURNS int LANGUAGE sql
  AS $f$SELECT a FROM dblink('host=db.invalid dbname=prod', 'SELECT 1') AS t(a int)$f$;
'''


@pytest.mark.parametrize('mode', ['keep', 'disable'])
def test_check_mode_foresees_what_the_copy_reaches(pg, tmp_path, mode):
    """The real run warns that the restored database holds foreign servers, subscriptions and functions calling dblink
    with an inline connection string (kept as they were, reaching the backed-up database's remote, or disabled);
    check mode, which a DR drill or a cautious operator runs first, said nothing of them. It names each, as the run
    does, under either foreign_servers setting."""
    name = 'fid_reach9_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(REACHES, database=name)
        dest = backup(tmp_path, pg, name)

        def named(res: dict) -> set:
            text = '\n'.join(res.get('restore_warnings') or [])
            return {n for n in ('prod Srv9', 'sub 9', 'inline Dblink9') if n in text}

        check = check_restore(tmp_path, pg, dest, source_database=name, database=copy, foreign_servers=mode)
        assert check.rc == 0, check.stdout[-3000:]
        result = restore(tmp_path, pg, dest, source_database=name, database=copy, foreign_servers=mode)
        assert result.rc == 0, result.stdout[-3000:]
        assert named(result.result('restore')) == {'prod Srv9', 'sub 9', 'inline Dblink9'}
        assert named(check.result('restore')) == {'prod Srv9', 'sub 9', 'inline Dblink9'}, \
            check.result('restore').get('restore_warnings')
        warnings = check.result('restore')['restore_warnings']
        assert all(('foreign_servers=%s' % mode) in w for w in warnings if 'prod Srv9' in w or 'sub 9' in w), warnings
    finally:
        for db in (name, copy):
            if pg.sql('SELECT count(*) FROM pg_database WHERE datname = %s' % ql(db)) != [('0',)]:
                pg.sql('ALTER SUBSCRIPTION "sub 9" SET (slot_name = NONE); DROP SUBSCRIPTION IF EXISTS "sub 9"',
                       database=db)
        drop_databases(pg, name, copy)


# -- a target closed to connections ----------------------------------------------------------------------------------
def test_target_closed_to_connections(pg, tmp_path):
    """A DBA closes a database (ALTER DATABASE ... ALLOW_CONNECTIONS false: the applications must not write while it is
    restored), then restores over it with replace=true: the run and check mode failed with psql's bare 'database is not
    currently accepting connections' (the inspection of its contents connects to it). With replace=true it is replaced
    (its contents need no inspection then), and the warnings say the restored database accepts connections, as the
    backed-up one did; without replace it is refused before anything is created, saying why and what to do. Check mode
    says the same in both cases, and a closed target stays closed when nothing was restored."""
    name = 'fid_closed9_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        dest = backup(tmp_path, pg, name)
        pg.sql('INSERT INTO t VALUES (2)', database=name)
        pg.sql('ALTER DATABASE %s ALLOW_CONNECTIONS false' % qi(name))
        for run in (check_restore, restore):
            res = run(tmp_path, pg, dest, source_database=name, database=name)
            assert res.rc != 0, res.stdout[-3000:]
            msg = res.result('restore')['msg']
            assert 'ALLOW_CONNECTIONS' in msg and 'replace=true' in msg and 'Nothing was changed' in msg, msg
            assert pg.sql('SELECT datallowconn::text FROM pg_database WHERE datname = %s' % ql(name)) == [('false',)]

        def warned(res: dict) -> list:
            return [w for w in res.get('restore_warnings') or [] if 'ALLOW_CONNECTIONS' in w and name in w]

        check = check_restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        assert check.rc == 0, check.stdout[-3000:]
        assert len(warned(check.result('restore'))) == 1, check.result('restore').get('restore_warnings')
        result = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-3000:]
        assert len(warned(result.result('restore'))) == 1, result.result('restore').get('restore_warnings')
        assert pg.sql('SELECT count(*) FROM t', database=name) == [('1',)]
        assert leftovers(pg) == []
    finally:
        drop_databases(pg, name)
