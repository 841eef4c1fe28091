"""Fidelity, PostgreSQL, round 6: what a user changed on an extension's members and on the extension itself.

* attributes of extension member functions (COST, ROWS, volatility, strictness, PARALLEL, LEAKPROOF, SECURITY
  DEFINER) a user changed after CREATE EXTENSION: pg_dump writes CREATE EXTENSION only, so the restored copy had the
  extension script's; the restore sets them again after the load (and names what it could not set);
* the extension's own owner (``pg_extension.extowner``, a trusted extension created by a non-superuser): pg_dump
  writes no owner and PostgreSQL has no ALTER EXTENSION ... OWNER TO, so the copy's extension (and every member)
  belongs to the restoring role; the restore names it.
"""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from tests.fidelity.test_postgresql import backup, create_roles, qi, restore
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.harness.servers import PostgresServer


@pytest.fixture(scope='module')
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        create_roles(server)
        yield server
    finally:
        server.cleanup()


FUNCTION_ATTRS = ("SELECT p.oid::regprocedure::text, p.provolatile::text, p.proisstrict::text, "
                  "p.proparallel::text, p.proleakproof::text, p.prosecdef::text, p.procost::text, p.prorows::text "
                  "FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
                  "AND d.deptype = 'e' ORDER BY 1")


def test_extension_member_function_attributes_and_extension_owner(pg, tmp_path):
    """COST / volatility / STRICT / PARALLEL / LEAKPROOF / SECURITY DEFINER / ROWS a user set on extension member
    functions were lost silently (the copy had the extension script's): they come back, every member function
    the same as in the source. The owner of an extension created by a non-superuser cannot be given back: it is
    named."""
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
        attrs = [w for w in warnings if w.startswith('Attributes of extension member functions')]
        assert len(attrs) == 1, warnings
        for named in ('public.hstore(text,text) (STABLE, COST 7)', 'public.each(public.hstore) (ROWS 42)',
                      'public.similarity(text,text) (CALLED ON NULL INPUT, PARALLEL RESTRICTED)',
                      'public.show_trgm(text) (SECURITY DEFINER, LEAKPROOF)'):
            assert named in attrs[0], attrs
        owners = [w for w in warnings if w.startswith('Extensions owned by')]
        assert len(owners) == 1 and 'cube (owned by fid_owner, now by ' in owners[0], warnings
        assert 'hstore' not in owners[0] and 'pg_trgm' not in owners[0], owners
        # nothing else is named lost: the attributes came back (the members of cube, which the source's bootstrap
        # superuser owns, belong to the restoring role: named with the members' owners)
        lost = [w for w in warnings if w.startswith('Extension members')]
        assert not lost or ('hstore' not in lost[0] and 'similarity' not in lost[0]), lost
    finally:
        drop_databases(pg, name, name + '_copy')
