"""Fidelity, PostgreSQL, round 13: a parallel restore that orders its entries the way a serial one does.

* a domain's NOT VALID constraint over rows that break it (kept from before the rule): pg_dump puts the constraint
  in post-data, depending on the domain only, so ``pg_restore -j`` was free to add it beside the COPY of a table
  with a column of that domain; when it committed first, the COPY failed on the first row the source kept (seen in
  CI: ``value for domain app3.small violates check constraint "small_lt_100"``, the restore rolled back). Timing
  decides whether a run shows it, so the test reads the server's statement log: the constraint must be added in a
  session that loaded no data, one that began after the last COPY ended;
* the same of a partitioned table's and an inheritance parent's NOT VALID CHECK and foreign key, and of a partitioned
  table's trigger (pg_restore -j makes a table's constraint or trigger wait for that table's data only: a
  partitioned table has none, a parent's ALTER TABLE reaches its children's rows): a BEFORE INSERT trigger set to
  ENABLE ALWAYS rewrote the rows of the partitions it was created before.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.fidelity.test_postgresql import assert_same, backup, leftovers, qi, restore, snapshot

SOURCE = r'''
CREATE SCHEMA app13;
CREATE DOMAIN app13.small AS int;
CREATE DOMAIN app13.code AS text;
CREATE TABLE app13.dom (id int, d app13.small, c app13.code);
INSERT INTO app13.dom VALUES (1, 500, 'ok'), (2, 5, NULL);
ALTER DOMAIN app13.small ADD CONSTRAINT small_lt_100 CHECK (VALUE < 100) NOT VALID;
ALTER DOMAIN app13.code ADD CONSTRAINT code_short CHECK (length(VALUE) < 2) NOT VALID;
COMMENT ON CONSTRAINT small_lt_100 ON DOMAIN app13.small IS 'kept from before the rule';
-- other tables, so that both of pg_restore's workers load data
CREATE TABLE app13.t1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g;
CREATE TABLE app13.t2 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g;
CREATE TABLE app13.t3 AS SELECT g AS id, g::app13.small AS d FROM generate_series(1, 50) g;
CREATE TABLE app13.t4 AS SELECT g AS id FROM generate_series(1, 10) g;
ALTER TABLE app13.t1 ADD PRIMARY KEY (id);
-- a partitioned table and an inheritance parent whose rules came after rows that break them
CREATE TABLE app13.sales (id int, amount int, ref int) PARTITION BY RANGE (id);
CREATE TABLE app13.sales_1 PARTITION OF app13.sales FOR VALUES FROM (0) TO (100);
CREATE TABLE app13.sales_2 PARTITION OF app13.sales FOR VALUES FROM (100) TO (200);
INSERT INTO app13.sales VALUES (1, -5, 1), (150, 7, 999);
ALTER TABLE app13.sales ADD CONSTRAINT amount_pos CHECK (amount > 0) NOT VALID;
-- a partitioned table's trigger that fires under the load's session_replication_role=replica (its partitions get it)
CREATE FUNCTION app13.stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.ref := -1; RETURN NEW; END$$;
CREATE TRIGGER sales_stamp BEFORE INSERT ON app13.sales FOR EACH ROW EXECUTE FUNCTION app13.stamp();
ALTER TABLE app13.sales ENABLE ALWAYS TRIGGER sales_stamp;
CREATE TABLE app13.base (v int, ref int);
CREATE TABLE app13.child (w text) INHERITS (app13.base);
INSERT INTO app13.child VALUES (-1, 999, 'x');
INSERT INTO app13.base VALUES (3, 1);
ALTER TABLE app13.base ADD CONSTRAINT v_pos CHECK (v > 0) NOT VALID;
ALTER TABLE app13.base ADD CONSTRAINT base_ref FOREIGN KEY (ref) REFERENCES app13.t1 (id) NOT VALID;
'''

_LOG_LINE = re.compile(r'^\S+ \S+ \S+ \[(\d+)\] .*?LOG:  statement: (.*)$')


@pytest.mark.parametrize('fmt', ('directory', 'custom'))
def test_a_domains_not_valid_constraint_is_added_after_every_copy(pg, tmp_path, fmt):
    name = 'fid_dom13_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(SOURCE, database=name)
        expected = snapshot(pg, name)
        dest = backup(tmp_path, pg, name, format=fmt)
        offset = pg.log_file.stat().st_size
        pg.sql('ALTER ROLE %s SET log_statement = mod' % qi(pg.user))
        try:
            result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=2)
        finally:
            pg.sql('ALTER ROLE %s RESET log_statement' % qi(pg.user))
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, copy), 'restore -j 2 of the %s backup' % fmt)
        assert pg.sql("SELECT coalesce(conrelid::regclass::text, '-'), conname, convalidated FROM pg_constraint "
                      "WHERE contype IN ('c', 'f') AND connamespace = 'app13'::regnamespace ORDER BY 1, 2",
                      database=copy) == [
            ('-', 'code_short', 'f'), ('-', 'small_lt_100', 'f'), ('app13.base', 'base_ref', 'f'),
            ('app13.base', 'v_pos', 'f'), ('app13.child', 'v_pos', 'f'),
            ('app13.sales', 'amount_pos', 'f'), ('app13.sales_1', 'amount_pos', 'f'),
            ('app13.sales_2', 'amount_pos', 'f')]
        with open(pg.log_file, 'rb') as fh:
            fh.seek(offset)
            lines = fh.read().decode('utf-8', 'replace').splitlines()
        statements = [m.groups() for m in map(_LOG_LINE.match, lines) if m]
        copies = [i for i, (_pid, sql) in enumerate(statements) if sql.startswith('COPY app13.')]
        added = [i for i, (_pid, sql) in enumerate(statements)
                 if re.match(r'ALTER (DOMAIN|TABLE( ONLY)?) app13\.(small|code|sales|base)$', sql)
                 or sql.startswith('CREATE TRIGGER sales_stamp ')]
        assert len(copies) >= 8 and len(added) == 6, statements
        loaders = {statements[i][0] for i in copies}
        for i in added:
            # a session that copied rows was one of the load's workers: it could have come before a COPY
            assert statements[i][0] not in loaders and i > max(copies), statements
    finally:
        pg.sql('DROP DATABASE IF EXISTS %s WITH (FORCE); DROP DATABASE IF EXISTS %s WITH (FORCE)'
               % (qi(name), qi(copy)))
        assert leftovers(pg) == []
