"""Fidelity, PostgreSQL, round 10: parallel pg_restore and privileges, and what check mode did not foresee.

* ``pg_restore -j N`` restores the ACL entries side by side in its ACL pass, with no order between them (each depends
  only on its object): a table's GRANT issued by a grantor holding a grant option (``SET SESSION AUTHORIZATION``
  grantor) could run before the schema's ACL entry, which gives that grantor USAGE on the schema, had committed:
  ``permission denied for schema``, the restore rolled back. A schema granted to many roles makes its ACL entry
  long enough that it always loses the race (one heavy schema ACL: the CI failure of round 7's odd-names test was
  the same race with a short one);
* check mode did not foresee what the real run warns of about extension members changed after CREATE EXTENSION,
  nor a target server without ICU support refusing an ICU-locale database.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.fidelity.test_postgresql import assert_same, backup, leftovers, qi, ql, restore, snapshot
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.fidelity.test_postgresql_round9 import check_restore, edit_manifests
from tests.harness.servers import PostgresServer

OWNER, TABLE_OWNER, GRANTOR, READER = 'acl10 own\ner', 'acl10\ttab', "acl10 -g=x 'q' \\", 'ACL10 Reader"'
EXT_OWNER, MEMBER_OWNER = 'acl10 ext "owner"', 'acl10_fn owner'
SCHEMA = 'S10 sch\nema -x=y "q"'
GRANTEES = 1000   # each a GRANT in the schema's ACL entry: one transaction long enough to lose the race every time


def pg_setup(server: PostgresServer) -> None:
    """This file's roles, created by the shared ``pg`` fixture (tests/fidelity/conftest.py) in place of the usual."""
    roles = (OWNER, TABLE_OWNER, GRANTOR, READER, EXT_OWNER, MEMBER_OWNER)
    server.sql(''.join('CREATE ROLE %s;' % qi(r) for r in roles))
    server.sql("DO $$BEGIN FOR i IN 1..%d LOOP EXECUTE format('CREATE ROLE %%I', 'acl10_g' || i); END LOOP; "
               "END$$" % GRANTEES)


# -- parallel pg_restore and grant-option chains ------------------------------------------------------------------
def acl_fixture() -> str:
    o, t, g, r = (qi(x) for x in (OWNER, TABLE_OWNER, GRANTOR, READER))
    s, lit = qi(SCHEMA), ql(SCHEMA)
    return f"""
CREATE SCHEMA {s} AUTHORIZATION {o};
GRANT USAGE ON SCHEMA {s} TO {g}, {r};
DO $$BEGIN FOR i IN 1..{GRANTEES} LOOP
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', {lit}, 'acl10_g' || i);
END LOOP; END$$;
CREATE TABLE {s}.t (id int PRIMARY KEY, v text);
INSERT INTO {s}.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
ALTER TABLE {s}.t OWNER TO {t};
GRANT SELECT ON {s}.t TO {g} WITH GRANT OPTION;
SET ROLE {g}; GRANT SELECT ON {s}.t TO {r}; RESET ROLE;
CREATE TABLE {s}.u (id int);
ALTER TABLE {s}.u OWNER TO {t};
GRANT SELECT, INSERT ON {s}.u TO {g} WITH GRANT OPTION;
SET ROLE {g}; GRANT INSERT ON {s}.u TO {r}; RESET ROLE;
-- refreshed by the restore as its owner, who reads t only through the grant above: after the ACLs, as pg_restore does
CREATE MATERIALIZED VIEW {s}.mv AS SELECT count(*) AS n FROM {s}.t;
ALTER MATERIALIZED VIEW {s}.mv OWNER TO {r};
REFRESH MATERIALIZED VIEW {s}.mv;
-- restored last by pg_restore (after the ACLs), with its comment
CREATE FUNCTION public.acl10_evt() RETURNS event_trigger LANGUAGE plpgsql AS $f$BEGIN END$f$;
CREATE EVENT TRIGGER acl10_evt ON ddl_command_end EXECUTE FUNCTION public.acl10_evt();
COMMENT ON EVENT TRIGGER acl10_evt IS 'evt';
ALTER DEFAULT PRIVILEGES FOR ROLE {t} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r};
"""


@pytest.mark.parametrize('fmt,compression', [('directory', 'zstd'), ('custom', 'zstd'), ('custom', 'none')])
def test_parallel_restore_of_a_grant_by_a_grant_option_holder(pg, tmp_path, fmt, compression):
    """A table's privilege granted on by a role holding the grant option (pg_dump: SET SESSION AUTHORIZATION grantor;
    GRANT ...), in a schema whose ACL gives that grantor USAGE: restored with jobs=4 (directory format, a compressed
    custom dump's decompressed copy, an uncompressed custom dump) it failed with ``permission denied for schema``
    (pg_restore -j runs ACL entries side by side, in no order) and nothing was restored. The ACLs are restored one
    after the other, in the dump's order, after the rest and before the materialized views' refresh and the event
    triggers, as pg_restore without -j does: the copy is the same as the source."""
    name = 'fid_acl10_%s' % uuid.uuid4().hex[:6]
    copy = name + ' copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(acl_fixture(), database=name)
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name, format=fmt, compression=compression)
        for attempt in range(2):
            result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=4, replace=True)
            assert result.rc == 0, (attempt, result.stdout[-3000:])
            assert_same(expected, snapshot(pg, copy), 'parallel restore (%s, %s) #%d' % (fmt, compression, attempt))
        assert pg.sql('SELECT n FROM %s.mv' % qi(SCHEMA), database=copy) == [('100',)]
    finally:
        drop_databases(pg, name, copy)


# -- check mode: extension members and owners ---------------------------------------------------------------------
def test_check_mode_foresees_the_extension_warnings(pg, tmp_path):
    """The real run warns, after its load, of extension members a user changed after CREATE EXTENSION (set again)
    and of extensions whose owner is lost (one a non-superuser created in a schema of the dump's: the dump's CREATE
    EXTENSION makes it as the restoring role); check mode said nothing of either. It names the same extensions and
    members (those it can know before the load: owners other than the script's, settings, a built-in extension's
    comment), and not the members of an extension given back to its owner (a trusted one: the script's owner)."""
    name = 'fid_ext10_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('GRANT CREATE ON DATABASE %s TO %s' % (qi(name), qi(EXT_OWNER)))
        pg.sql("CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm; "
               "ALTER FUNCTION hstore(text, text) SET work_mem = '7MB'; "
               "ALTER FUNCTION similarity(text, text) OWNER TO %s; "
               "COMMENT ON EXTENSION plpgsql IS 'ours'; "
               "CREATE SCHEMA ext10 AUTHORIZATION %s; SET ROLE %s; CREATE EXTENSION cube SCHEMA ext10; RESET ROLE; "
               # given back: created as its owner in public (a trusted extension), its members the script's
               "GRANT CREATE ON SCHEMA public TO %s; SET ROLE %s; CREATE EXTENSION btree_gin; RESET ROLE"
               % (qi(MEMBER_OWNER), qi(EXT_OWNER), qi(EXT_OWNER), qi(EXT_OWNER), qi(EXT_OWNER)), database=name)
        dest = backup(tmp_path, pg, name)
        check = check_restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert check.rc == 0, check.stdout[-3000:]
        foreseen = check.result('restore').get('restore_warnings') or []
        assert pg.sql('SELECT count(*) FROM pg_database WHERE datname = %s' % ql(copy)) == [('0',)]
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-3000:]
        warned = result.result('restore')['restore_warnings']
        named = []
        for warnings in (foreseen, warned):
            owners = [w for w in warnings if w.startswith('Extensions owned by')]
            assert len(owners) == 1 and 'cube (owned by %s' % EXT_OWNER in owners[0], warnings
            assert 'hstore' not in owners[0] and 'pg_trgm' not in owners[0] and 'btree_gin' not in owners[0], warnings
            members = [w for w in warnings if w.startswith('Extension members changed')]
            assert len(members) == 1, warnings
            for text in ('function public.hstore(text,text) (SET work_mem=7MB)',
                         'function public.similarity(text,text) (owner %s)' % MEMBER_OWNER,
                         'extension plpgsql (comment)', 'type ext10.cube (owner '):
                assert text in members[0], (text, warnings)
            named.append(set(re.search(r'after the load: (.*?)\.(?: |$)', members[0]).group(1).split('; ')))
        # cube's members: the script's owner in the source (the bootstrap superuser: a trusted extension), the
        # restoring role's in the copy (the dump's CREATE EXTENSION): set again, and foreseen
        assert named[0] == named[1], named[0] ^ named[1]
        assert not [m for m in named[0] if 'gin_' in m], named[0]
        assert pg.sql("SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'btree_gin'",
                      database=copy) == [(EXT_OWNER,)]
    finally:
        drop_databases(pg, name, copy)


# -- check mode: a locale provider the target server lacks ----------------------------------------------------------
def test_a_locale_provider_the_server_lacks_is_refused_by_check_mode_too(pg, tmp_path):
    """A backup of a database with the builtin locale provider (PostgreSQL 17) onto this PostgreSQL 15 server: the
    real run refused at CREATE DATABASE with a hint to install a libc locale (wrong: no locale makes the provider),
    and check mode said ``ok``. Both refuse before anything is created, naming the provider and what to do. (A server
    built without ICU, the other provider a server may lack, cannot run here: see the unit test
    test_pg_locale_provider.py.)"""
    name = 'fid_prov10_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int)', database=name)
        dest = backup(tmp_path, pg, name)
        edit_manifests(dest, lambda data: data['database_properties'].__setitem__(
            'locale_provider', {'datlocprovider': 'b', 'datlocale': 'C.UTF-8'}))
        for run in (check_restore, restore):
            res = run(tmp_path, pg, dest, source_database=name, database=copy)
            assert res.rc != 0, (run.__name__, res.stdout[-3000:])
            msg = res.result('restore')['msg']
            assert 'builtin locale provider' in msg and 'PostgreSQL 17' in msg and 'Nothing was restored' in msg, \
                (run.__name__, msg)
            assert leftovers(pg) == [] and pg.sql('SELECT count(*) FROM pg_database WHERE datname = %s'
                                                  % ql(copy)) == [('0',)]
    finally:
        drop_databases(pg, name, copy)


def test_an_icu_database_passes_check_mode_on_a_server_with_icu(pg, tmp_path):
    """Regression guard (passed before): the provider check must not refuse an ICU database on a server built with
    ICU (this one); check mode and the real run both go on."""
    name = 'fid_icu10_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql("CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C'" % qi(name))
    try:
        dest = backup(tmp_path, pg, name)
        for run in (check_restore, restore):
            res = run(tmp_path, pg, dest, source_database=name, database=copy)
            assert res.rc == 0, (run.__name__, res.stdout[-3000:])
        assert pg.sql('SELECT datlocprovider::text, daticulocale FROM pg_database WHERE datname = %s'
                      % ql(copy)) == [('i', 'de-DE')]
    finally:
        drop_databases(pg, name, copy)
