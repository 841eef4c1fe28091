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

import uuid
from typing import Iterator

import pytest

from tests.fidelity.test_postgresql import assert_same, backup, qi, ql, restore, snapshot
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.harness.servers import PostgresServer

OWNER, TABLE_OWNER, GRANTOR, READER = 'acl10 own\ner', 'acl10\ttab', "acl10 -g=x 'q' \\", 'ACL10 Reader"'
SCHEMA = 'S10 sch\nema -x=y "q"'
GRANTEES = 1000   # each a GRANT in the schema's ACL entry: one transaction long enough to lose the race every time


@pytest.fixture(scope='module')
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        server.sql(''.join('CREATE ROLE %s;' % qi(r) for r in (OWNER, TABLE_OWNER, GRANTOR, READER)))
        server.sql("DO $$BEGIN FOR i IN 1..%d LOOP EXECUTE format('CREATE ROLE %%I', 'acl10_g' || i); END LOOP; "
                   "END$$" % GRANTEES)
        yield server
    finally:
        server.cleanup()


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
