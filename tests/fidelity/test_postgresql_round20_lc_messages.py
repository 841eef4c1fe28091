"""Fidelity, PostgreSQL, round 20: a lost REVOKE is reported whatever the language of the server's messages.

Round 19's restore by a database's owner (CREATEDB, not a superuser) of a dump whose source revoked USAGE on
plpgsql and EXECUTE on pg_sleep from PUBLIC: PostgreSQL applies neither REVOKE, with a WARNING only. Here a superuser
has set ``lc_messages`` to German for that role (``ALTER ROLE ... SET``, as on a managed service: the role cannot
set it back), so the warnings come as "WARNUNG:  es konnten keine Privilegien für »plpgsql« entzogen werden". The
restore must still name both objects in ``privileges_not_restored`` and warn, for pg_restore (jobs 1 and 2) and for
a plain dump through psql.
"""

from __future__ import annotations

import uuid

import pytest

from tests.fidelity.pg_lc_messages import german_role, german_server
from tests.fidelity.test_postgresql import backup, leftovers, qi
from tests.fidelity.test_postgresql_round11 import drop
from tests.fidelity.test_postgresql_round18_nonsuper import APP, restore_as
from tests.fidelity.test_postgresql_round19_analyze import LANACL, PROACL, SOURCE

# what names each object: pg_restore's ACL entry (its tag), psql's message (its quoted name)
NAMED = {'custom': ['LANGUAGE plpgsql', 'pg_catalog.FUNCTION pg_sleep(double precision)'],
         'plain': ['plpgsql', 'pg_sleep']}
ENGLISH = [('pg_sleep', 'no privileges could be revoked'), ('plpgsql', 'no privileges could be revoked')]


def source_and_backup(pg, tmp_path, fmt):
    """Round 19's source, owned by APP, with both REVOKEs; (its name, the backup's path)."""
    pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN CREATEDB NOSUPERUSER PASSWORD '%s'; END IF; END $$"
           % (APP, APP, pg.password.replace("'", "''")))
    name = 'fid_lcm20_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s OWNER %s TEMPLATE template0' % (qi(name), APP))
    try:
        pg.sql('SET ROLE %s;\n%s' % (APP, SOURCE), database=name)
        pg.sql('REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC', database=name)
        pg.sql('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_sleep(double precision) FROM PUBLIC', database=name)
        dest = backup(tmp_path, pg, name, format=fmt)
    except BaseException:
        drop(pg, name, name + '_copy')
        raise
    return name, dest


def check_reported(pg, tmp_path, dest, name, fmt, english):
    """Restore by APP (jobs 1 and 2; a plain dump 1): both REVOKEs lost (the premise), and reported: by their English
    texts (``english``: the load set lc_messages=C), else named as ``NAMED``, the German messages kept."""
    copy = name + '_copy'
    for jobs in ((1, 2) if fmt != 'plain' else (1,)):
        result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=copy, jobs=jobs, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        # neither REVOKE was applied: PUBLIC keeps USAGE on plpgsql and EXECUTE on pg_sleep in the copy
        assert pg.sql(LANACL, database=copy) != pg.sql(LANACL, database=name)
        assert pg.sql(PROACL, database=copy) != pg.sql(PROACL, database=name)
        found = result.result('restore')['privileges_not_restored']
        objects = ' | '.join(n['object'] for n in found)
        assert len(found) == 2 and 'plpgsql' in objects and 'pg_sleep' in objects, (fmt, jobs, found)
        if english:
            assert sorted((n['object'], n['message']) for n in found) == ENGLISH, found
        else:
            assert [n['object'] for n in found] == NAMED[fmt], found
            assert all(n['message'].startswith('WARNUNG:  ') for n in found), found
        [warning] = [w for w in result.result('restore')['restore_warnings'] if 'privilege statement' in w]
        assert warning.startswith('2 privilege statements') and 'plpgsql' in warning and 'pg_sleep' in warning


@pytest.mark.parametrize('fmt, granted', [('custom', False), ('plain', False), ('custom', True), ('plain', True)])
def test_a_lost_revoke_is_reported_when_the_roles_messages_are_german(pg, tmp_path, fmt, granted):
    """``granted``: the role may set lc_messages (GRANT SET ON PARAMETER, PostgreSQL 15+): the load sets it to C and
    the English texts name the objects as round 19's; else the German messages are read."""
    name, dest = source_and_backup(pg, tmp_path, fmt)
    try:
        with german_role(pg, APP, granted):
            check_reported(pg, tmp_path, dest, name, fmt, granted)
    finally:
        drop(pg, name, name + '_copy')
    assert leftovers(pg) == []


@pytest.mark.parametrize('fmt', ('custom', 'plain'))
def test_a_lost_revoke_is_reported_when_the_servers_messages_are_german(pg, tmp_path, fmt):
    """lc_messages German for the whole server, and C for the maintenance database only (where the run asks which
    language its sessions get): the copy's load still gets German messages, which are read."""
    name, dest = source_and_backup(pg, tmp_path, fmt)
    try:
        with german_server(pg, maintenance='C'):
            check_reported(pg, tmp_path, dest, name, fmt, False)
    finally:
        drop(pg, name, name + '_copy')
    assert leftovers(pg) == []
