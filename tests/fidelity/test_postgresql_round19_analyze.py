"""Fidelity, PostgreSQL, round 19: the statistics step of a restore needs nothing the restored database may take
away. A database whose owner hardened it (``REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC``: no DO blocks, no new
PL/pgSQL functions for ordinary roles) restored by that owner (CREATEDB, not a superuser) must come back, and its
tables must have their statistics (ANALYZE of what the load made, every table once, the partitions through their
root).

That owner cannot give the restored database the source's hardening: the REVOKE on plpgsql (and one on a pg_catalog
function, ``REVOKE EXECUTE ... FROM PUBLIC`` by a superuser) is on an object it neither owns nor holds the grant
option of, so PostgreSQL applies none of it, with a WARNING and no error. The restore must say so (a warning naming
the objects, ``privileges_not_restored``) rather than report a silent success; a superuser's restore of the same dump
gives the source's ACLs back and no such warning.
"""

from __future__ import annotations

import uuid

import pytest

from tests.fidelity.test_postgresql import backup, leftovers
from tests.fidelity.test_postgresql_round11 import drop
from tests.fidelity.test_postgresql_round18_nonsuper import APP, restore_as
from tests.fidelity.test_postgresql import qi

SOURCE = r'''
CREATE SCHEMA "we""ird sch";
CREATE TABLE "we""ird sch"."T a b" (id int PRIMARY KEY, v text);
CREATE TABLE "we""ird sch".parts (id int, region text) PARTITION BY LIST (region);
CREATE TABLE "we""ird sch".parts_eu PARTITION OF "we""ird sch".parts FOR VALUES IN ('eu');
CREATE TABLE "we""ird sch".parts_us PARTITION OF "we""ird sch".parts FOR VALUES IN ('us');
CREATE UNLOGGED TABLE public.scratch (id int);
INSERT INTO "we""ird sch"."T a b" SELECT g, 'v' || g FROM generate_series(1, 500) g;
INSERT INTO "we""ird sch".parts SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 500) g;
INSERT INTO public.scratch SELECT generate_series(1, 50);
'''

LANACL = "SELECT lanacl::text FROM pg_language WHERE lanname = 'plpgsql'"
PROACL = "SELECT proacl::text FROM pg_proc WHERE oid = 'pg_catalog.pg_sleep(double precision)'::regprocedure"
ANALYZED = ("SELECT n.nspname || '.' || c.relname, c.relkind::text, (s.last_analyze IS NOT NULL)::text "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE n.nspname IN ('we\"ird sch', 'public') AND c.relkind IN ('r', 'p') ORDER BY 1")


def not_restored(result) -> list:
    return sorted((n['object'], n['message']) for n in result.result('restore')['privileges_not_restored'])


@pytest.mark.parametrize('fmt', ('custom', 'directory', 'plain'))
def test_a_restore_by_the_owner_of_a_database_without_plpgsql_usage(pg, tmp_path, fmt):
    pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN CREATEDB NOSUPERUSER PASSWORD '%s'; END IF; END $$"
           % (APP, APP, pg.password.replace("'", "''")))
    name = 'fid_anl19_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s OWNER %s TEMPLATE template0' % (qi(name), APP))
    try:
        pg.sql('SET ROLE %s;\n%s' % (APP, SOURCE), database=name)
        pg.sql('REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC', database=name)
        pg.sql('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_sleep(double precision) FROM PUBLIC', database=name)
        dest = backup(tmp_path, pg, name, format=fmt)
        for jobs in ((1, 2) if fmt != 'plain' else (1,)):
            result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=copy, jobs=jobs,
                                replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            # neither REVOKE could be applied by the owner (PUBLIC keeps USAGE and EXECUTE): said, not hidden
            assert pg.sql(LANACL, database=copy) != pg.sql(LANACL, database=name)
            assert not_restored(result) == [('pg_sleep', 'no privileges could be revoked'),
                                            ('plpgsql', 'no privileges could be revoked')], (fmt, jobs)
            [warning] = [w for w in result.result('restore')['restore_warnings'] if 'privilege statement' in w]
            assert warning.startswith('2 privilege statements') and '"plpgsql"' in warning and '"pg_sleep"' in warning
            assert 'not a superuser' in warning and 'more open' in warning, warning
            rows = pg.sql(ANALYZED, database=copy)
            # every plain table and partition has statistics (the partitioned root keeps none in pg_stat)
            assert [r for r in rows if r[1] == 'r' and r[2] != 'true'] == [], rows
            assert pg.sql('SELECT count(*) FROM "we""ird sch".parts_us', database=copy) == [('250',)]
        # a superuser's restore of the same dump: the source's ACLs exactly, nothing to warn of
        result = restore_as(tmp_path, pg, dest, pg.user, source_database=name, database=copy, jobs=2, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert pg.sql(LANACL, database=copy) == pg.sql(LANACL, database=name)
        assert pg.sql(PROACL, database=copy) == pg.sql(PROACL, database=name)
        assert result.result('restore')['privileges_not_restored'] == []
        assert not [w for w in result.result('restore')['restore_warnings'] if 'privilege statement' in w]
        assert leftovers(pg) == []
    finally:
        drop(pg, name, copy)
