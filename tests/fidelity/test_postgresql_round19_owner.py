"""Fidelity, PostgreSQL, round 19: a restore by a role that is not a superuser, of a database whose objects belong to
several roles. pg_restore's ALTER ... OWNER TO another role fails there (the restoring role is not a member of it):
the restore must stop cleanly (the target as it was, no temporary database left) and say what to do, naming the
owner's role as the server gave it (quotes and spaces included); with no_owner=true it goes through and the
restoring role owns everything.
"""

from __future__ import annotations

import uuid

from tests.fidelity.test_postgresql import backup, leftovers, qi
from tests.fidelity.test_postgresql_round11 import drop
from tests.fidelity.test_postgresql_round18_nonsuper import APP, restore_as

OTHER = 'fid "other" 19'


def test_a_restore_that_cannot_give_objects_to_their_owner_says_what_to_do(pg, tmp_path):
    pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN CREATEDB NOSUPERUSER PASSWORD '%s'; END IF; "
           "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN CREATE ROLE %s; END IF; END $$"
           % (APP, APP, pg.password.replace("'", "''"), OTHER.replace("'", "''"), qi(OTHER)))
    name = 'fid_own19_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s OWNER %s TEMPLATE template0' % (qi(name), APP))
    try:
        pg.sql('SET ROLE %s; CREATE TABLE mine (id int); INSERT INTO mine VALUES (1);' % APP, database=name)
        pg.sql('CREATE TABLE theirs (id int); INSERT INTO theirs VALUES (2); ALTER TABLE theirs OWNER TO %s; '
               'GRANT SELECT ON theirs TO %s' % (qi(OTHER), APP), database=name)
        dest = backup(tmp_path, pg, name, format='custom')
        for jobs in (1, 2):
            result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=copy, jobs=jobs)
            assert result.rc != 0, result.stdout[-3000:]
            assert 'cannot give objects to role' in result.stdout and 'no_owner=true' in result.stdout, \
                result.stdout[-3000:]
            assert 'other' in result.stdout.split('cannot give objects to role', 1)[1][:40], result.stdout[-3000:]
            assert pg.sql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % copy) == [('0',)]
            assert leftovers(pg) == []
        result = restore_as(tmp_path, pg, dest, APP, source_database=name, database=copy, no_owner=True)
        assert result.rc == 0, result.stdout[-3000:]
        assert pg.sql("SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relname IN ('mine', 'theirs') "
                      "ORDER BY 1", database=copy) == [('mine', APP), ('theirs', APP)]
        assert pg.sql('SELECT id FROM theirs', database=copy) == [('2',)]
    finally:
        drop(pg, name, copy)
        pg.sql('DROP ROLE IF EXISTS %s' % qi(OTHER))
