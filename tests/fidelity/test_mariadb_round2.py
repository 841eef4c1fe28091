"""Fidelity, MariaDB, round 2: the privileges that name the backed-up database.

A MariaDB database's grants (``GRANT ... ON src.*``, on its tables, columns and routines) live in the server's
privilege tables, not in the database, and mariadb-dump does not write them: a restore under a new name came back
readable by nobody but the administrators, the application's accounts and roles locked out. The backup records
them; the restore gives the same accounts the same privileges on the restored database (accounts missing on the
target are named, not created).
"""

from __future__ import annotations

from tests.fidelity.test_mariadb_gaps import backup, restore

SOURCE = 'src_db'   # '_' is a wildcard in a database-level GRANT: the restore's must be exact

GRANTS = r"""
CREATE DATABASE src_db;
CREATE DATABASE srcXdb;
USE src_db;
CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT);
INSERT INTO t VALUES (1, 2, 3);
CREATE PROCEDURE p() SELECT 1;
CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1;
CREATE USER 'app'@'%';
CREATE USER 'rep'@'10.0.0.%';
CREATE USER 'odd`''u'@'localhost';
CREATE USER 'other'@'%';
CREATE ROLE r_read;
GRANT SELECT, INSERT, DELETE HISTORY, CREATE TEMPORARY TABLES ON `src\_db`.* TO 'app'@'%';
GRANT ALL PRIVILEGES ON src_db.* TO r_read WITH GRANT OPTION;
GRANT SELECT (a), UPDATE (b), INSERT (a, b) ON src_db.t TO 'rep'@'10.0.0.%';
GRANT DELETE, SHOW VIEW ON src_db.t TO 'odd`''u'@'localhost' WITH GRANT OPTION;
GRANT EXECUTE ON PROCEDURE src_db.p TO 'app'@'%';
GRANT EXECUTE, ALTER ROUTINE ON FUNCTION src_db.f TO r_read;
GRANT SELECT ON srcXdb.* TO 'other'@'%';
GRANT SELECT ON `src%`.* TO 'other'@'%';
"""


def grants_on(server, db: str) -> list:
    """Every privilege naming database ``db`` exactly (db-level rows stored escaped or not), by account."""
    lit = "'" + db.replace('\\', '\\\\').replace("'", "''") + "'"
    esc = "'" + db.replace('\\', '\\\\\\\\').replace('_', '\\\\_').replace('%', '\\\\%').replace("'", "''") + "'"
    rows = server.sql(
        "SELECT 'db', User, Host, '', CONCAT_WS(',', IF(Select_priv = 'Y', 'SELECT', NULL), IF(Insert_priv = 'Y', "
        "'INSERT', NULL), IF(Delete_priv = 'Y', 'DELETE', NULL), IF(Create_tmp_table_priv = 'Y', 'TMP', NULL), "
        "IF(Delete_history_priv = 'Y', 'HISTORY', NULL), IF(Grant_priv = 'Y', 'GRANT', NULL), "
        "IF(Alter_routine_priv = 'Y', 'ALTER ROUTINE', NULL), IF(Event_priv = 'Y', 'EVENT', NULL)) "
        "FROM mysql.db WHERE Db IN (%s, %s) "
        "UNION ALL SELECT 'table', User, Host, Table_name, CONCAT(Table_priv, '|', Column_priv) FROM mysql.tables_priv "
        "WHERE Db = %s "
        "UNION ALL SELECT 'column', User, Host, CONCAT(Table_name, '.', Column_name), Column_priv "
        "FROM mysql.columns_priv WHERE Db = %s "
        "UNION ALL SELECT 'routine', User, Host, CONCAT(Routine_type, ' ', Routine_name), Proc_priv "
        "FROM mysql.procs_priv WHERE Db = %s ORDER BY 1, 2, 3, 4" % (lit, esc, lit, lit, lit))
    return [tuple(r) for r in rows]


def test_grants_naming_the_database_follow_it_to_a_new_name(mariadb_factory, tmp_path):
    server = mariadb_factory()
    server.sql(GRANTS)
    expected = grants_on(server, SOURCE)
    assert len(expected) >= 6, expected
    backup(server, SOURCE, tmp_path / 'b')
    result = restore(server, tmp_path / 'b', SOURCE, 'dst_db')
    got = grants_on(server, 'dst_db')
    assert got == expected, 'grants on the restored database differ:\n%s\n!=\n%s\n%s' % (
        got, expected, result.get('grants'))
    # exact: the restored grant on dst_db must not open dstXdb (a '_' wildcard)
    server.sql('CREATE DATABASE dstXdb')
    assert server.sql("SELECT COUNT(*) FROM mysql.db WHERE 'dstXdb' LIKE Db AND User = 'app'")[0][0] == '0'
    # grants on other databases (srcXdb, a src% pattern) are not the database's: not copied
    assert server.sql("SELECT COUNT(*) FROM mysql.db WHERE User = 'other' AND Db LIKE 'dst%'")[0][0] == '0'
    assert 'grants' in result and not result['grants'].get('skipped'), result.get('grants')
    # over the original itself (replace): the same grants, nothing doubled or lost
    restore(server, tmp_path / 'b', SOURCE, SOURCE, replace=True)
    assert grants_on(server, SOURCE) == expected


def test_grants_of_accounts_missing_on_the_target_are_named(mariadb_factory, tmp_path):
    source = mariadb_factory()
    source.sql(GRANTS)
    backup(source, SOURCE, tmp_path / 'b')
    other = mariadb_factory()
    other.sql("CREATE USER 'app'@'%'")
    result = restore(other, tmp_path / 'b', SOURCE, SOURCE)
    got = grants_on(other, SOURCE)
    assert got and all(r[1] == 'app' for r in got), got
    skipped = ' '.join(result['grants']['skipped'])
    assert 'r_read' in skipped and 'rep' in skipped, result['grants']
