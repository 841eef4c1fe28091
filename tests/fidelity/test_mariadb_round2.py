"""Fidelity, MariaDB, round 2: the privileges that name the backed-up database.

A MariaDB database's grants (``GRANT ... ON src.*``, on its tables, columns and routines) live in the server's
privilege tables, not in the database, and mariadb-dump does not write them: a restore under a new name came back
readable by nobody but the administrators, the application's accounts and roles locked out. The backup records
them; the restore gives the same accounts the same privileges on the restored database (accounts missing on the
target are named, not created).
"""

from __future__ import annotations

from tests.fidelity.test_mariadb import assert_same, q, snapshot
from tests.fidelity.test_mariadb_gaps import backup, extra, restore

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


# -- regression guards: what test_mariadb*.py did not create ------------------------------------------------------
KINDS = r"""
CREATE DATABASE kinds CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE kinds;
CREATE TABLE pc (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=3;
CREATE TABLE opts (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB STATS_PERSISTENT=1 STATS_SAMPLE_PAGES=7
  STATS_AUTO_RECALC=0 KEY_BLOCK_SIZE=8 ROW_FORMAT=COMPRESSED CHECKSUM=1 AUTO_INCREMENT=50 COMMENT='opts';
CREATE TABLE aria_t (id INT PRIMARY KEY, v TEXT) ENGINE=Aria TRANSACTIONAL=1 PAGE_CHECKSUM=1;
CREATE TABLE myisam_t (id INT PRIMARY KEY, v INT, t TEXT, FULLTEXT KEY ft (t)) ENGINE=MyISAM DELAY_KEY_WRITE=1;
CREATE TABLE gen (a INT, b INT AS (a * 2) PERSISTENT, c INT AS (a + 1) VIRTUAL, d VARCHAR(10) INVISIBLE DEFAULT 'x',
  INDEX ib (b), CONSTRAINT c_pos CHECK (a >= 0), CHECK (b < 1000000));
INSERT INTO gen (a) VALUES (1), (2), (NULL);
INSERT INTO pc SELECT seq, REPEAT('z', seq) FROM seq_1_to_50;
INSERT INTO opts (v) VALUES (1);
INSERT INTO aria_t VALUES (1, 'a');
INSERT INTO myisam_t VALUES (1, 1, 'full text');
CREATE TABLE hashp (id INT PRIMARY KEY) PARTITION BY HASH (id) PARTITIONS 3;
CREATE TABLE listp (id INT, r CHAR(2)) PARTITION BY LIST COLUMNS (r) SUBPARTITION BY KEY (id) SUBPARTITIONS 2
  (PARTITION peu VALUES IN ('de', 'fr'), PARTITION pus VALUES IN ('us'));
INSERT INTO hashp SELECT seq FROM seq_1_to_20;
INSERT INTO listp VALUES (1, 'de'), (2, 'us');
CREATE SEQUENCE s_nocache START WITH -5 MINVALUE -10 MAXVALUE 10 INCREMENT BY 2 NOCACHE NOCYCLE;
DO NEXTVAL(s_nocache); DO NEXTVAL(s_nocache);
CREATE SEQUENCE s_setval;
DO SETVAL(s_setval, 500);
CREATE SEQUENCE s_fresh START WITH 7;
CREATE TABLE uses_seq (id INT DEFAULT NEXT VALUE FOR s_setval PRIMARY KEY, v INT);
INSERT INTO uses_seq (v) VALUES (1);
SET sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY';
CREATE DEFINER = CURRENT_USER FUNCTION f_def() RETURNS INT SQL SECURITY DEFINER DETERMINISTIC RETURN 1;
CREATE VIEW v_mode AS SELECT a, COUNT(*) AS n FROM gen GROUP BY a;
SET sql_mode = DEFAULT;
CREATE EVENT ev_off ON SCHEDULE EVERY 1 WEEK DISABLE DO DELETE FROM gen WHERE a < 0;
CREATE EVENT ev_on ON SCHEDULE EVERY 1 WEEK STARTS '2037-06-01 00:00:00' ENABLE DO DELETE FROM gen WHERE a < 0;
"""


def test_more_kinds_round_trip_new_and_over_existing(mariadb_factory, tmp_path):
    """Regression guards (already right): PAGE_COMPRESSED and other table options of InnoDB, Aria and MyISAM,
    persistent/virtual generated columns with an index, invisible columns, named and unnamed CHECKs, HASH and LIST
    COLUMNS partitions with subpartitions, sequences (NOCACHE, SETVAL'd, never used, a column default), a SQL
    SECURITY DEFINER function and a view under another sql_mode, events enabled and disabled."""
    server = mariadb_factory()
    server.sql(KINDS)
    expected = described(server, 'kinds')
    assert any('nextval(`<DB>`.`s_setval`)' in str(c) for c in expected['information_schema']['columns'])
    backup(server, 'kinds', tmp_path / 'b')
    for target, kw in (('kinds_copy', {}), ('kinds', {'replace': True})):
        restore(server, tmp_path / 'b', 'kinds', target, **kw)
        assert_same(expected, described(server, target), 'restore into %s' % target)
        # the restored default draws from the restored sequence (which starts where the dump's SETVAL put it, past
        # the source's cache), never from the source's: that one is left as it was
        source_next = server.sql('SELECT next_not_cached_value FROM kinds.s_setval')
        server.sql('INSERT INTO %s.uses_seq (v) VALUES (2)' % q(target))
        assert server.sql('SELECT MAX(id) FROM %s.uses_seq' % q(target))[0][0] == \
            expected['snapshot']['tables']['s_setval']['next']
        server.sql('DELETE FROM %s.uses_seq WHERE v = 2' % q(target))
        if target != 'kinds':
            assert server.sql('SELECT next_not_cached_value FROM kinds.s_setval') == source_next


def described(server, db):
    """``snapshot`` and information_schema rows, the database's own name normalised away (a sequence default names
    its database: the restored one its own); partition row counts are estimates."""
    rows = extra(server, db)
    rows['columns'] = [tuple(str(v).replace(q(db) + '.', '`<DB>`.') for v in r) for r in rows['columns']]
    rows['partitions'] = [r[:-1] for r in rows['partitions']]
    return {'snapshot': snapshot(server, db), 'information_schema': rows}
