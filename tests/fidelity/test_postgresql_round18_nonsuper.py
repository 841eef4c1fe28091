"""Fidelity, PostgreSQL, round 18: a restore by a role that is not a superuser (the database's owner with CREATEDB,
as on a managed service).

session_replication_role cannot be set there, so the tables' ordinary triggers are live during the load: a trigger
created before a COPY into its table rewrites (BEFORE INSERT) or logs (AFTER INSERT) every restored row. pg_restore
creates a table's triggers in post-data, after that table's data; under -j N a partitioned table's (cloned to its
partitions) waits for no partition's data unless the restore holds it back (``toc_passes``), and an inheritance
parent's and a partition's own triggers wait for their own table's only. The restored data must be the source's,
with jobs 1 and 2, for plain tables, partitioned tables (a trigger of the parent and one of a partition) and
inheritance children.
"""

from __future__ import annotations

import uuid

import pytest

from tests.fidelity.test_postgresql import assert_same, backup, conn, leftovers, play, qi, snapshot
from tests.fidelity.test_postgresql_round11 import drop

APP = 'fid_app18'   # LOGIN CREATEDB, not a superuser: owns the source and restores it

SOURCE = r'''
CREATE SCHEMA app;
CREATE TABLE app.audit (id bigserial PRIMARY KEY, tbl text, v text);
CREATE FUNCTION app.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.v := NEW.v || '!'; RETURN NEW; END $$;
CREATE FUNCTION app.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO app.audit (tbl, v) VALUES (TG_TABLE_NAME, NEW.v); RETURN NULL; END $$;
CREATE TABLE app.plain (id int PRIMARY KEY, v text);
CREATE TABLE app.sales (id int, region text, v text) PARTITION BY LIST (region);
CREATE TABLE app.sales_eu PARTITION OF app.sales FOR VALUES IN ('eu');
CREATE TABLE app.sales_us PARTITION OF app.sales FOR VALUES IN ('us');
CREATE TABLE app.parent (id int, v text);
CREATE TABLE app.child (extra int) INHERITS (app.parent);
CREATE TRIGGER a_stamp BEFORE INSERT ON app.plain FOR EACH ROW EXECUTE FUNCTION app.stamp();
CREATE TRIGGER z_audit AFTER INSERT ON app.plain FOR EACH ROW EXECUTE FUNCTION app.log_row();
CREATE TRIGGER a_stamp BEFORE INSERT ON app.sales FOR EACH ROW EXECUTE FUNCTION app.stamp();
CREATE TRIGGER z_audit AFTER INSERT ON app.sales FOR EACH ROW EXECUTE FUNCTION app.log_row();
CREATE TRIGGER b_own BEFORE INSERT ON app.sales_us FOR EACH ROW EXECUTE FUNCTION app.stamp();
CREATE TRIGGER a_stamp BEFORE INSERT ON app.parent FOR EACH ROW EXECUTE FUNCTION app.stamp();
CREATE TRIGGER z_audit AFTER INSERT ON app.parent FOR EACH ROW EXECUTE FUNCTION app.log_row();
CREATE TRIGGER a_stamp BEFORE INSERT ON app.child FOR EACH ROW EXECUTE FUNCTION app.stamp();
CREATE TRIGGER z_audit AFTER INSERT ON app.child FOR EACH ROW EXECUTE FUNCTION app.log_row();
INSERT INTO app.plain SELECT g, 'p' || g FROM generate_series(1, 300) g;
INSERT INTO app.sales SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 's' || g FROM generate_series(1, 300) g;
INSERT INTO app.parent SELECT g, 'r' || g FROM generate_series(1, 100) g;
INSERT INTO app.child SELECT g, 'c' || g, g FROM generate_series(1, 100) g;
-- more tables, so that both of pg_restore's workers load data side by side
CREATE TABLE app.bulk1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 3000) g;
CREATE TABLE app.bulk2 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 3000) g;
'''
DATA = {
    'plain': 'SELECT id, v FROM app.plain ORDER BY id',
    'sales': 'SELECT tableoid::regclass::text, id, region, v FROM app.sales ORDER BY id',
    'parent': 'SELECT tableoid::regclass::text, id, v FROM app.parent ORDER BY 1, 2',
    'child': 'SELECT id, v, extra FROM app.child ORDER BY id',
    'audit': 'SELECT id, tbl, v FROM app.audit ORDER BY id',
    'audit_seq': 'SELECT last_value, is_called FROM app.audit_id_seq',
}


def data(pg, database: str) -> dict:
    return {name: pg.sql(sql, database=database) for name, sql in DATA.items()}


def restore_as(tmp_path, pg, dest, login: str, **options):
    return play(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': dict(
        conn(pg), login_user=login, engine='postgresql', src=str(dest), **options)}], pg)


@pytest.mark.parametrize('fmt', ('custom', 'directory', 'plain'))
def test_a_non_superuser_restore_keeps_the_rows_its_triggers_would_rewrite(pg, tmp_path, fmt):
    """As the database owner (CREATEDB, not a superuser), jobs 1 and 2 (a plain dump: 1): every table's rows and
    the audit table are the source's (a trigger that fired on the load would add a '!' or an audit row; under -j 2
    with the partitioned table's triggers not held back, the audit table's rows collided with the sequence's)."""
    pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN CREATEDB NOSUPERUSER PASSWORD '%s'; END IF; END $$"
           % (APP, APP, pg.password.replace("'", "''")))
    name = 'fid_nsu18_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s OWNER %s TEMPLATE template0' % (qi(name), APP))
    try:
        pg.sql('SET ROLE %s;\n%s' % (APP, SOURCE), database=name)
        expected_data = data(pg, name)
        assert expected_data['plain'][0] == ('1', 'p1!') and expected_data['sales'][1][3] == 's2!'
        assert expected_data['sales'][0][3] == 's1!!', expected_data['sales'][0]   # sales_us: its own trigger too
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name, format=fmt)
        assert pg.sql("SELECT rolsuper::text FROM pg_roles WHERE rolname = '%s'" % APP) == [('false',)]
        for jobs in ((1, 2) if fmt != 'plain' else (1,)):
            result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=copy, jobs=jobs,
                                replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            assert pg.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'" % copy) == [(APP,)]
            got = data(pg, copy)
            for what in DATA:
                assert got[what] == expected_data[what], (jobs, what, [r for r in got[what]
                                                                       if r not in expected_data[what]][:5])
            assert_same(expected, snapshot(pg, copy), 'restore by the owner (jobs=%d)' % jobs)
        assert leftovers(pg) == []
    finally:
        drop(pg, name, copy)
