"""Fidelity, MariaDB: removing a restored database (``state: absent``) takes the privileges naming it along.

A restore gives the restored database the grants recorded with the backup (round 2). MariaDB keeps privileges
in its privilege tables by name and DROP DATABASE leaves them there, so a drill's scratch copy, once dropped, left
``GRANT ... ON scratch.*`` behind: whoever later created a database of that name handed its tables to every
account the source's grants named. PostgreSQL's ACL goes with the database; MariaDB's must be revoked.
"""

from __future__ import annotations

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.fidelity.test_mariadb_round2 import GRANTS, SOURCE, grants_on

DROP_ACCOUNTS = ("DROP USER IF EXISTS 'app'@'%', 'rep'@'10.0.0.%', 'odd`''u'@'localhost', 'other'@'%'; "
                 "DROP ROLE IF EXISTS r_read; DROP DATABASE IF EXISTS src_db; DROP DATABASE IF EXISTS srcXdb; "
                 "DROP DATABASE IF EXISTS dst_db")


def test_absent_revokes_the_grants_naming_the_dropped_database_only(mariadb_factory, tmp_path):
    server = mariadb_factory()
    server.sql(GRANTS)
    try:
        source_grants = grants_on(server, SOURCE)
        other_before = server.sql("SELECT Db, User FROM mysql.db WHERE User = 'other' ORDER BY Db")
        backup(server, SOURCE, tmp_path / 'b')
        restore(server, tmp_path / 'b', SOURCE, 'dst_db')
        assert grants_on(server, 'dst_db'), 'the restore gave the copy no grants: nothing to test'

        planned = restore(server, tmp_path / 'b', SOURCE, 'dst_db', state='absent', check_mode=True)
        assert planned['revoked'] and grants_on(server, 'dst_db'), 'check mode must name and keep them'
        result = restore(server, tmp_path / 'b', SOURCE, 'dst_db', state='absent')
        assert result['changed'] is True
        assert not result.get('warnings'), '\n'.join(result['warnings'])
        assert grants_on(server, 'dst_db') == [], 'privileges on the dropped database stayed behind'
        assert sorted(result['revoked']) == sorted(planned['revoked']), result
        # a database created later under that name is nobody's but its creator's
        server.sql('CREATE DATABASE dst_db')
        assert server.sql("SELECT COUNT(*) FROM mysql.db WHERE 'dst_db' LIKE Db AND User IN ('app', 'r_read')"
                          )[0][0] == '0'
        server.sql('DROP DATABASE dst_db')
        # the source's grants and patterns that only match the name (src%) are not the dropped database's
        assert grants_on(server, SOURCE) == source_grants
        assert server.sql("SELECT Db, User FROM mysql.db WHERE User = 'other' ORDER BY Db") == other_before
        # run again: nothing left to drop or revoke
        again = restore(server, tmp_path / 'b', SOURCE, 'dst_db', state='absent')
        assert again['changed'] is False and not again.get('revoked')
    finally:
        server.sql(DROP_ACCOUNTS)
