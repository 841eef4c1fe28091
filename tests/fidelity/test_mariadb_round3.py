"""Fidelity, MariaDB, round 3: object kinds, properties and names the earlier rounds (``test_mariadb.py``,
``test_mariadb_gaps.py``, ``test_mariadb_round2.py``) did not create, backed up and restored with the product and
compared as a DBA would (SHOW CREATE, information_schema, checksums, every row version)."""

from __future__ import annotations

from tests.fidelity.test_mariadb import assert_same, q, snapshot
from tests.fidelity.test_mariadb_gaps import backup, extra, restore

ROUND3 = r"""
CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE {db};
SET NAMES utf8mb4;
CREATE TABLE price (id INT, s DATE, e DATE, p DECIMAL(65,30), PERIOD FOR valid(s, e),
  PRIMARY KEY (id, valid WITHOUT OVERLAPS));
INSERT INTO price VALUES
  (1, '2020-01-01', '2021-01-01', 12345678901234567890123456789012345.123456789012345678901234567891),
  (1, '2021-01-01', '2022-01-01', -0.000000000000000000000000000001), (2, '2020-01-01', '2020-02-01', 0);
CREATE TABLE bitemp (id INT, s DATE, e DATE, v INT, x INT WITHOUT SYSTEM VERSIONING, PERIOD FOR app(s, e))
  WITH SYSTEM VERSIONING;
INSERT INTO bitemp VALUES (1, '2020-01-01', '2030-01-01', 1, 1);
CREATE TABLE vexp (id INT PRIMARY KEY, v INT, rs TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE,
  re TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME(rs, re)) WITH SYSTEM VERSIONING;
INSERT INTO vexp VALUES (1, 1), (2, 2);
CREATE TABLE verp (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING
  PARTITION BY SYSTEM_TIME (PARTITION p_hist HISTORY, PARTITION p_cur CURRENT);
INSERT INTO verp VALUES (1, 1), (2, 2);
DO SLEEP(1.1);
UPDATE bitemp SET v = 2, x = 2;
UPDATE bitemp FOR PORTION OF app FROM '2025-01-01' TO '2026-01-01' SET v = 3;
UPDATE vexp SET v = v + 10;
UPDATE verp SET v = v + 10;
DELETE FROM verp WHERE id = 2;
CREATE TABLE m1 (id INT, v VARCHAR(5)) ENGINE=MyISAM;
CREATE TABLE m2 (id INT, v VARCHAR(5)) ENGINE=MyISAM;
INSERT INTO m1 VALUES (1, 'a'); INSERT INTO m2 VALUES (2, 'b');
CREATE TABLE m_all (id INT, v VARCHAR(5)) ENGINE=MERGE UNION=(m1, m2) INSERT_METHOD=LAST;
CREATE TABLE mem (id INT PRIMARY KEY, v VARCHAR(20), KEY USING BTREE (v)) ENGINE=MEMORY MAX_ROWS=1000;
INSERT INTO mem VALUES (1, 'heap');
CREATE TABLE z0 (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=Aria;
SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO');
INSERT INTO z0 VALUES (0, 0), (5, 5);
SET SESSION sql_mode = DEFAULT;
CREATE TABLE chars (id INT PRIMARY KEY, l1 VARCHAR(300) CHARACTER SET latin1 COLLATE latin1_bin,
  l2 TEXT CHARACTER SET latin2, sj VARCHAR(20) CHARACTER SET sjis, gb VARCHAR(20) CHARACTER SET gbk,
  b5 VARCHAR(20) CHARACTER SET big5, u16 VARCHAR(20) CHARACTER SET utf16, u32 VARCHAR(20) CHARACTER SET utf32,
  uc VARCHAR(20) CHARACTER SET ucs2, u3 VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin,
  ub VARCHAR(20) COLLATE utf8mb4_bin, ug VARCHAR(20) COLLATE utf8mb4_general_ci, un VARCHAR(20) COLLATE
  utf8mb4_unicode_520_nopad_ci, UNIQUE KEY (ub));
INSERT INTO chars VALUES (1, CONVERT({latin1} USING latin1), CONVERT({latin1} USING latin2), _sjis X'955C835C',
  _gbk X'815C5C', _big5 X'A45C5C', 'a😀b', '😀', 'ñ', '€', 'Ab', 'ab', 'x  ');
INSERT INTO chars (id, ub, ug) VALUES (2, 'ab', 'AB');
CREATE TABLE lossy (id INT PRIMARY KEY, sj VARCHAR(20) CHARACTER SET sjis, cp VARCHAR(20) CHARACTER SET cp932,
  uj TEXT CHARACTER SET ujis, ok VARCHAR(20) CHARACTER SET sjis);
INSERT INTO lossy VALUES (1, _sjis X'5C', _cp932 X'8790', _ujis X'A1C0', _sjis X'955C'), (2, 'a', 'b', 'c', 'd');
CREATE TABLE odd (id INT PRIMARY KEY, e ENUM('', 'a''b', 'x"y', 'back\\slash', '0', '1', 'ñ ü') NULL,
  s SET('', 'p q', 'ü', '1') NULL, b BIT(64), b1 BIT(1), d65 DECIMAL(65,0) UNSIGNED ZEROFILL, f FLOAT(7,3),
  y YEAR, t TIME(6), u UUID, j JSON CHECK (JSON_VALID(j)), ip4 INET4);
INSERT INTO odd VALUES (1, '', '', b'1111111111111111111111111111111111111111111111111111111111111111', b'1',
  99999999999999999999999999999999999999999999999999999999999999999, -1234.567, 2155, '-838:59:59.999999',
  '00000000-0000-0000-0000-000000000000', '{{"a": "\\u00e9\\"", "b": 1e308}}', '255.255.255.255'),
  (2, 'a''b', 'p q,ü,1', b'0', b'0', 0, 0, 0, '00:00:00', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '[]', '0.0.0.0'),
  (3, '1', '1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), (4, 'back\\slash', NULL, b'101', NULL, 1,
  NULL, 1901, NULL, NULL, 'null', NULL);
CREATE TABLE defs (id INT PRIMARY KEY, u VARCHAR(36) DEFAULT (UUID()) COMMENT 'col ''comment'' \\ ✓',
  t DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), n INT DEFAULT (1 + 1),
  s VARCHAR(10) DEFAULT 'x''y', bl BLOB DEFAULT ('b'), ts TIMESTAMP NOT NULL DEFAULT '2000-01-01 00:00:00');
INSERT INTO defs (id) VALUES (1);
CREATE TABLE idx (id INT PRIMARY KEY, a INT, b VARCHAR(200), t TEXT, g POINT NOT NULL,
  KEY k_desc (a DESC, b ASC), KEY k_ign (a) IGNORED COMMENT 'ignored ''idx''', KEY k_pre (b(10)),
  UNIQUE KEY u_long (t), FULLTEXT KEY ft (b, t), SPATIAL KEY sp (g)) ENGINE=InnoDB;
INSERT INTO idx VALUES (1, 1, 'one', 'long text', POINT(1, 1)), (2, 2, 'two', 'other text', POINT(2, 2));
CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY, pid INT, FOREIGN KEY fk_p (pid) REFERENCES parent (id) ON DELETE RESTRICT
  ON UPDATE CASCADE) ENGINE=InnoDB;
INSERT INTO parent VALUES (1);
SET SESSION foreign_key_checks = 0;
INSERT INTO child VALUES (1, 1), (2, 999);
SET SESSION foreign_key_checks = 1;
CREATE TABLE `{long_table}` (id INT PRIMARY KEY, `{long_column}` INT);
INSERT INTO `{long_table}` VALUES (1, 1);
CREATE TABLE rangep (id INT NOT NULL, d DATE NOT NULL, PRIMARY KEY (id, d)) PARTITION BY RANGE COLUMNS (d)
  SUBPARTITION BY HASH (id) SUBPARTITIONS 2 (PARTITION p0 VALUES LESS THAN ('2020-01-01') COMMENT 'old ''one''',
  PARTITION p1 VALUES LESS THAN (MAXVALUE));
INSERT INTO rangep VALUES (1, '2019-01-01'), (2, '2024-01-01');
SET sql_mode = ORACLE;
DELIMITER //
CREATE PACKAGE pkg AS
  FUNCTION f(a INT) RETURN INT;
  PROCEDURE p;
END;
//
CREATE PACKAGE BODY pkg AS
  counter INT := 0;
  FUNCTION f(a INT) RETURN INT AS BEGIN RETURN a + 1; END;
  PROCEDURE p AS BEGIN counter := counter + 1; END;
END;
//
CREATE PROCEDURE p_ora(a IN INT, b OUT VARCHAR) AS BEGIN b := 'x' || a; END;
//
DELIMITER ;
CREATE USER r3_pkg_user;
GRANT EXECUTE ON PACKAGE {db}.pkg TO r3_pkg_user;
GRANT EXECUTE, ALTER ROUTINE ON PACKAGE BODY {db}.pkg TO r3_pkg_user WITH GRANT OPTION;
SET sql_mode = DEFAULT;
DELIMITER //
CREATE FUNCTION f_bin(x VARBINARY(10)) RETURNS VARBINARY(20) DETERMINISTIC NO SQL SQL SECURITY INVOKER
  COMMENT 'bin ''f''' RETURN CONCAT(x, X'00FF')//
CREATE TRIGGER t1 BEFORE INSERT ON parent FOR EACH ROW SET @a = 1//
CREATE TRIGGER t3 BEFORE INSERT ON parent FOR EACH ROW FOLLOWS t1 SET @a = 3//
CREATE TRIGGER t2 BEFORE INSERT ON parent FOR EACH ROW FOLLOWS t1 SET @a = 2//
DELIMITER ;
"""


def load_round3(server, db):
    latin1 = "X'" + bytes(range(1, 256)).hex() + "'"
    server.sql(ROUND3.format(db=q(db), latin1=latin1, long_table='t' * 64, long_column='c' * 64))


def described(server, db):
    """``snapshot`` and information_schema rows, with every row version of the versioned tables, index
    properties and routine kinds (packages) the earlier rounds did not compare; partition row counts are
    estimates."""
    lit = "'" + db.replace('\\', '\\\\').replace("'", "''") + "'"
    rows = extra(server, db)
    rows['partitions'] = [r[:-1] for r in rows['partitions']]
    # Aria's PAGE_CHECKSUM (on by default): SHOW CREATE TABLE prints it, so the dump sets it explicitly and
    # CREATE_OPTIONS names it; the same table
    rows['tables'] = [r[:5] + (' '.join(o for o in r[5].split() if o != 'page_checksum=1'),) + r[6:] if r[1] == 'Aria'
                      else r for r in rows['tables']]
    rows['fks'] = [r[:3] + ('<DB>' if r[3] == db else r[3],) + r[4:] for r in rows['fks']]
    rows['statistics'] = server.sql(
        'SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, COLLATION, SUB_PART, INDEX_TYPE, NON_UNIQUE, '
        'INDEX_COMMENT, IGNORED FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 3' % lit)
    rows['routine_kinds'] = server.sql(
        'SELECT ROUTINE_TYPE, ROUTINE_NAME, SQL_MODE, ROUTINE_BODY, SECURITY_TYPE, IS_DETERMINISTIC, SQL_DATA_ACCESS, '
        'ROUTINE_COMMENT, DTD_IDENTIFIER, MD5(ROUTINE_DEFINITION) FROM information_schema.ROUTINES '
        'WHERE ROUTINE_SCHEMA = %s ORDER BY 1, 2' % lit)
    rows['grants'] = server.sql('SELECT User, Host, Routine_name, Routine_type, Proc_priv FROM mysql.procs_priv '
                                'WHERE Db = %s ORDER BY 1, 2, 3, 4' % lit)
    rows['params'] = server.sql(
        'SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER, CHARACTER_SET_NAME '
        'FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = %s ORDER BY 1, 2' % lit)
    history = {}
    for table in ('bitemp', 'vexp', 'verp'):
        history[table] = server.sql(
            'SELECT *, ROW_START, ROW_END FROM %s.%s FOR SYSTEM_TIME ALL ORDER BY ROW_START, id, ROW_END'
            % (q(db), q(table))) if table != 'vexp' else server.sql(
            'SELECT id, v, rs, re FROM %s.%s FOR SYSTEM_TIME ALL ORDER BY rs, id' % (q(db), q(table)))
    history['verp_hist'] = server.sql('SELECT COUNT(*) FROM %s.verp PARTITION (p_hist)' % q(db))
    history['m_all'] = server.sql('SELECT * FROM %s.m_all ORDER BY id' % q(db))
    history['z0'] = server.sql('SELECT * FROM %s.z0 ORDER BY id' % q(db))
    history['lossy'] = server.sql('SELECT id, HEX(ok) FROM %s.lossy ORDER BY id' % q(db))
    snap = snapshot(server, db)
    for key in ('checksum', 'md5'):   # what lossy holds in sjis/cp932/ujis comes back changed (the restore says so)
        snap['tables']['lossy'].pop(key)
    return {'snapshot': snap, 'information_schema': rows, 'data': history}


def test_round3_kinds_round_trip_new_and_over_existing(mariadb_factory, tmp_path):
    """Application-time periods (WITHOUT OVERLAPS), a bitemporal table, explicit ROW START/END columns, history
    partitions, MERGE and MEMORY tables, an AUTO_INCREMENT row 0, every byte in latin1/latin2 and multi-byte
    charsets whose second byte is a backslash (sjis/cp932/ujis bytes without a Unicode round trip: named by the
    backup and the restore, not silently changed), odd ENUM/SET members, BIT/DECIMAL(65)/UUID/INET4/JSON extremes,
    default expressions, DESC/IGNORED/long-unique/FULLTEXT/SPATIAL indexes, orphan rows under a foreign key,
    64-character names, RANGE COLUMNS subpartitions, Oracle-mode packages and procedures, trigger order."""
    server = mariadb_factory()
    db = 'r3.d-b ü'
    load_round3(server, db)
    source = described(server, db)
    assert [r[0] for r in source['information_schema']['routine_kinds']].count('PACKAGE') == 1
    manifest = backup(server, db, tmp_path / 'b')['manifest']
    lossy = {'%s.lossy.%s' % (db, c): 1 for c in ('sj', 'cp', 'uj')}
    assert manifest['lossy_text'] == lossy, manifest.get('lossy_text')
    assert 'lossy.sj (1)' in manifest['warning'], manifest.get('warning')
    server.sql("CREATE DATABASE `r3 over`; CREATE TABLE `r3 over`.parent (x INT); SET sql_mode = ORACLE;\n"
               "DELIMITER //\nCREATE PACKAGE `r3 over`.old_pkg AS PROCEDURE p; END;\n//\nDELIMITER ;\n")
    for target, kw in (('r3 copy.x', {}), ('r3 over', {'replace': True})):
        result = restore(server, tmp_path / 'b', db, target, **kw)
        assert result['grants']['skipped'] == [], result['grants']
        assert any('3 value(s)' in w and '%s.lossy.uj' % db in w for w in result.get('warnings', [])), result
        assert_same(source, described(server, target), 'restore into %s' % target)
    server.sql('DROP USER r3_pkg_user')


def test_foreign_key_of_another_database_keeps_pointing_at_the_replaced_target(mariadb_factory, tmp_path):
    """Another database's table references a table of the target (a cross-database foreign key). A restore over
    the target must leave that foreign key naming the target's table, not the database the old tables were moved
    aside to (and dropped)."""
    server = mariadb_factory()
    server.sql('CREATE DATABASE fk_t; CREATE TABLE fk_t.parent (id INT PRIMARY KEY) ENGINE=InnoDB; '
               'CREATE TABLE fk_t.two (x INT, y INT, PRIMARY KEY (x, y)) ENGINE=InnoDB; '
               'INSERT INTO fk_t.parent VALUES (1), (2); CREATE DATABASE fk_o; '
               'CREATE TABLE fk_o.child (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_x FOREIGN KEY (pid) '
               'REFERENCES fk_t.parent (id) ON DELETE CASCADE) ENGINE=InnoDB; INSERT INTO fk_o.child VALUES (1, 1); '
               'CREATE TABLE fk_o.multi (a INT, b INT, CONSTRAINT `fk ü` FOREIGN KEY (b, a) REFERENCES fk_t.two (x, y) '
               'ON UPDATE SET NULL ON DELETE NO ACTION, FOREIGN KEY (a) REFERENCES fk_t.parent (id) '
               'ON UPDATE RESTRICT) ENGINE=InnoDB')
    expected = server.sql("SELECT * FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'fk_o'")
    create = server.sql('SHOW CREATE TABLE fk_o.child; SHOW CREATE TABLE fk_o.multi')
    backup(server, 'fk_t', tmp_path / 'b')
    server.sql('INSERT INTO fk_t.parent VALUES (3); INSERT INTO fk_o.child VALUES (3, 3)')
    try:
        result = restore(server, tmp_path / 'b', 'fk_t', 'fk_t', replace=True)
        # the dump predates parent 3: the other database's row referencing it is named, not silently orphaned
        assert any('fk_o.child (fk_x)' in w and '1 row(s)' in w for w in result.get('warnings', [])), result
        assert server.sql("SELECT * FROM information_schema.REFERENTIAL_CONSTRAINTS "
                          "WHERE CONSTRAINT_SCHEMA = 'fk_o'") == expected
        assert server.sql('SHOW CREATE TABLE fk_o.child; SHOW CREATE TABLE fk_o.multi') == create
        assert server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%opsready%'") \
            == []
        # the constraint works against the restored table
        server.sql('DELETE FROM fk_t.parent WHERE id = 1')
        assert server.sql('SELECT id FROM fk_o.child') == [('3',)]
    finally:
        server.sql('DROP DATABASE IF EXISTS fk_o; DROP DATABASE IF EXISTS fk_t')


def test_statement_logged_changes_replay_like_the_source(mariadb_factory, tmp_path):
    """binlog_format=MIXED (statements where safe): a temporary table used across a log rotation, XA transactions,
    and user variables replay into the restored copy as they ran in the source."""
    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql('CREATE DATABASE mx; CREATE TABLE mx.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; '
               'INSERT INTO mx.t VALUES (0, "dump")')
    backup(server, 'mx', tmp_path / 'b')
    server.sql("USE mx; CREATE TEMPORARY TABLE tmp (id INT, v VARCHAR(64)); INSERT INTO tmp VALUES (1, 'a'), (2, 'b'); "
               "FLUSH BINARY LOGS; INSERT INTO t SELECT * FROM tmp; SET @x = 'var'; INSERT INTO t VALUES (3, @x); "
               "XA START 'x1'; INSERT INTO t VALUES (4, 'xa'); XA END 'x1'; XA PREPARE 'x1'; XA COMMIT 'x1'; "
               "XA START 'x2'; INSERT INTO t VALUES (5, 'xa one phase'); XA END 'x2'; XA COMMIT 'x2' ONE PHASE; "
               "DROP TEMPORARY TABLE tmp")
    expected = server.sql('SELECT * FROM mx.t ORDER BY id')
    backup(server, 'mx', tmp_path / 'b', kind='log')
    try:
        result = restore(server, tmp_path / 'b', 'mx', 'mx_r')
        assert server.sql('SELECT * FROM mx_r.t ORDER BY id') == expected, result
        assert server.sql('XA RECOVER') == []
    finally:
        server.sql('DROP DATABASE IF EXISTS mx; DROP DATABASE IF EXISTS mx_r')


def test_restore_lacking_a_table_another_database_references_is_refused(mariadb_factory, tmp_path):
    import pytest

    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

    server = mariadb_factory()
    server.sql('CREATE DATABASE fk_a; CREATE TABLE fk_a.t (id INT PRIMARY KEY); CREATE DATABASE fk_b; '
               'CREATE TABLE fk_b.p (id INT PRIMARY KEY); INSERT INTO fk_b.p VALUES (1); CREATE DATABASE fk_c; '
               'CREATE TABLE fk_c.c (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES fk_b.p (id)); '
               'INSERT INTO fk_c.c VALUES (1, 1)')
    backup(server, 'fk_a', tmp_path / 'b')
    create = server.sql('SHOW CREATE TABLE fk_c.c')
    try:
        with pytest.raises(OpsReadyError, match=r'fk_c\.c \(c_ibfk_1\) of other databases reference table\(s\) p'):
            restore(server, tmp_path / 'b', 'fk_a', 'fk_b', replace=True)
        assert server.sql('SELECT id FROM fk_b.p') == [('1',)] and server.sql('SHOW CREATE TABLE fk_c.c') == create
    finally:
        server.sql('DROP DATABASE fk_c; DROP DATABASE fk_b; DROP DATABASE fk_a')


def test_failed_swap_leaves_the_other_databases_foreign_key_on_the_old_table(mariadb_factory, tmp_path, monkeypatch):
    import pytest

    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import restore as mysql_restore

    server = mariadb_factory()
    server.sql('CREATE DATABASE fk_t; CREATE TABLE fk_t.parent (id INT PRIMARY KEY) ENGINE=InnoDB; '
               'INSERT INTO fk_t.parent VALUES (1); CREATE DATABASE fk_o; CREATE TABLE fk_o.child (id INT PRIMARY '
               'KEY, pid INT, FOREIGN KEY (pid) REFERENCES fk_t.parent (id)) ENGINE=InnoDB; '
               'INSERT INTO fk_o.child VALUES (1, 1)')
    backup(server, 'fk_t', tmp_path / 'b')
    server.sql('INSERT INTO fk_t.parent VALUES (2)')
    create = server.sql('SHOW CREATE TABLE fk_o.child')
    real, calls = mysql_restore.repoint_foreign_keys, []

    def failing(engine, target, inbound):
        calls.append(target)
        found = real(engine, target, inbound)
        if len(calls) == 1:   # the swap's; the undo's runs for real
            raise ToolError('mariadb (repoint) failed with exit code 1: injected fault', rc=1)
        return found

    monkeypatch.setattr(mysql_restore, 'repoint_foreign_keys', failing)
    try:
        with pytest.raises(OpsReadyError, match='rolled back'):
            restore(server, tmp_path / 'b', 'fk_t', 'fk_t', replace=True)
        assert len(calls) == 2
        assert server.sql('SHOW CREATE TABLE fk_o.child') == create
        assert server.sql('SELECT id FROM fk_t.parent ORDER BY id') == [('1',), ('2',)]
        assert server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%opsready%'") \
            == []
    finally:
        server.sql('DROP DATABASE IF EXISTS fk_o; DROP DATABASE IF EXISTS fk_t')


def test_definers_missing_on_the_target_server_are_named(mariadb_factory, tmp_path):
    """Restored onto another server, objects keep their DEFINER; where that account does not exist the server
    creates them anyway (a note), and the restored trigger then fails every INSERT into its table. The restore
    names those definers; one that exists (a role, an account with a '@' in its name) is not named."""
    src = mariadb_factory()
    src.sql("CREATE USER 'app'@'%'; CREATE USER 'we@b'@'10.0.0.1'; CREATE ROLE r_def; "
            "GRANT ALL ON *.* TO 'app'@'%'; GRANT ALL ON *.* TO 'we@b'@'10.0.0.1'; GRANT ALL ON *.* TO r_def; "
            "CREATE DATABASE d; USE d; CREATE TABLE t (id INT); "
            "CREATE DEFINER='app'@'%' VIEW v AS SELECT id FROM t; CREATE DEFINER='we@b'@'10.0.0.1' PROCEDURE p() "
            "SELECT 1; CREATE DEFINER='app'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @x = 1; "
            "CREATE DEFINER=r_def EVENT e ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1")
    backup(src, 'd', tmp_path / 'b')
    other = mariadb_factory()
    other.sql('CREATE ROLE r_def')
    try:
        result = restore(other, tmp_path / 'b', 'd', 'd')
        [warning] = [w for w in result.get('warnings', []) if 'DEFINER' in w]
        assert 'app@% (views, triggers), we@b@10.0.0.1 (routines).' in warning, warning
        other.sql("CREATE USER 'app'@'%'; CREATE USER 'we@b'@'10.0.0.1'")
        result = restore(other, tmp_path / 'b', 'd', 'd', replace=True)
        assert not [w for w in result.get('warnings', []) if 'DEFINER' in w], result.get('warnings')
    finally:
        for server in (src, other):
            server.sql("DROP USER IF EXISTS 'app'@'%'; DROP USER IF EXISTS 'we@b'@'10.0.0.1'; "
                       "DROP ROLE IF EXISTS r_def; DROP DATABASE IF EXISTS d")


def test_replayed_database_function_is_named(mariadb_factory, tmp_path):
    """binlog_format=STATEMENT: ``INSERT ... VALUES (DATABASE())`` run with USE d is logged as that statement; the
    replay runs it in the restored copy, where DATABASE() is the copy's temporary name. The restore names it; the
    words in a string, a comment or another database's statements are not."""
    server = mariadb_factory(extra_conf={'binlog_format': 'STATEMENT'})
    server.sql("CREATE DATABASE d; CREATE TABLE d.t (id INT, v VARCHAR(100)); CREATE DATABASE o; "
               "CREATE TABLE o.t (v VARCHAR(100))")
    backup(server, 'd', tmp_path / 'b')
    server.sql("USE d; INSERT INTO t VALUES (1, 'database()'); INSERT INTO t /* schema() */ VALUES (2, `id`); "
               "USE o; INSERT INTO t VALUES (DATABASE())")
    backup(server, 'd', tmp_path / 'b', kind='log')
    try:
        result = restore(server, tmp_path / 'b', 'd', 'r1')
        assert not [w for w in result.get('warnings', []) if 'DATABASE()' in w], result.get('warnings')
        server.sql("USE d; INSERT INTO t VALUES (3, CONCAT('in ', SCHEMA ( )))")
        backup(server, 'd', tmp_path / 'b', kind='log')
        result = restore(server, tmp_path / 'b', 'd', 'r2')
        [warning] = [w for w in result.get('warnings', []) if 'DATABASE()' in w]
        assert "INSERT INTO t VALUES (3, CONCAT('in ', SCHEMA ( )))" in warning, warning
        assert server.sql('SELECT v FROM r2.t WHERE id = 3')[0][0] != 'in d'   # what the warning is about
    finally:
        server.sql('DROP DATABASE IF EXISTS d; DROP DATABASE IF EXISTS o; DROP DATABASE IF EXISTS r1; '
                   'DROP DATABASE IF EXISTS r2')


def test_objects_made_after_the_dump_replay_with_their_properties(mariadb_factory, tmp_path):
    """binlog_format=MIXED: a package, a trigger placed with PRECEDES, a view, an event, a sequence advanced by a
    statement and a new versioned table, all made after the dump, reach the copy with their properties."""
    import time

    from tests.fidelity.test_mariadb_gaps import extra

    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql("CREATE DATABASE pd; USE pd; CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE SEQUENCE s; "
               "CREATE TRIGGER t1 BEFORE INSERT ON t FOR EACH ROW SET NEW.v = IFNULL(NEW.v, 0) + 1")
    backup(server, 'pd', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("USE pd; SET sql_mode = ORACLE;\nDELIMITER //\nCREATE PACKAGE pk AS FUNCTION f RETURN INT; END;\n//\n"
               "CREATE PACKAGE BODY pk AS FUNCTION f RETURN INT AS BEGIN RETURN 7; END; END;\n//\nDELIMITER ;\n"
               "SET sql_mode = DEFAULT; CREATE TRIGGER t0 BEFORE INSERT ON t FOR EACH ROW PRECEDES t1 SET NEW.v = 10; "
               "CREATE SQL SECURITY INVOKER VIEW v AS SELECT id, v FROM t WITH CHECK OPTION; "
               "CREATE EVENT e ON SCHEDULE EVERY 2 HOUR STARTS '2036-01-01' ON COMPLETION PRESERVE DISABLE "
               "DO SELECT 1; "
               "DO NEXTVAL(s); INSERT INTO t VALUES (NEXTVAL(s), NULL); "
               "CREATE TABLE h (id INT PRIMARY KEY, x INT) WITH SYSTEM VERSIONING; INSERT INTO h VALUES (1, 1); "
               "DO SLEEP(1.1); UPDATE h SET x = 2")
    time.sleep(1.1)
    backup(server, 'pd', tmp_path / 'b', kind='log')
    source = {'snapshot': snapshot(server, 'pd'), 'extra': extra(server, 'pd'),
              'history': server.sql('SELECT id, x, ROW_START, ROW_END FROM pd.h FOR SYSTEM_TIME ALL ORDER BY 3')}
    try:
        restore(server, tmp_path / 'b', 'pd', 'pd_r')
        assert_same(source, {'snapshot': snapshot(server, 'pd_r'), 'extra': extra(server, 'pd_r'),
                             'history': server.sql('SELECT id, x, ROW_START, ROW_END FROM pd_r.h '
                                                   'FOR SYSTEM_TIME ALL ORDER BY 3')}, 'point-in-time restore')
        assert server.sql('SELECT pd_r.pk.f()') == [('7',)]
    finally:
        server.sql('DROP DATABASE IF EXISTS pd; DROP DATABASE IF EXISTS pd_r')


def test_longest_dotted_names_point_in_time(mariadb_factory, tmp_path):
    """A 64-character source database named with a dot and a dash, restored with its binary logs into another
    64-character name: the temporary copy's name (truncated) and mariadb-binlog's --database/--rewrite-db hold."""
    import time

    src = ('a.b-c ' + 'x' * 64)[:64]
    dst = ('d.e-f ' + 'y' * 64)[:64]
    server = mariadb_factory()
    server.sql('CREATE DATABASE %s; CREATE TABLE %s.%s (id INT PRIMARY KEY, v INT); INSERT INTO %s.%s VALUES (1, 1)'
               % (q(src), q(src), q('t' * 64), q(src), q('t' * 64)))
    backup(server, src, tmp_path / 'b')
    time.sleep(1.1)
    server.sql('USE %s; INSERT INTO %s VALUES (2, 2); UPDATE %s SET v = 5 WHERE id = 1'
               % (q(src), q('t' * 64), q('t' * 64)))
    time.sleep(1.1)
    backup(server, src, tmp_path / 'b', kind='log')
    expected = snapshot(server, src)
    try:
        result = restore(server, tmp_path / 'b', src, dst)
        assert result['binlogs_replayed'], result
        assert_same(expected, snapshot(server, dst), 'point-in-time restore under a 64-character name')
    finally:
        server.sql('DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s' % (q(src), q(dst)))


def test_server_with_oracle_sql_mode(mariadb_factory, tmp_path):
    """A server whose global sql_mode is ORACLE (ANSI_QUOTES, PIPES_AS_CONCAT, PL/SQL parsing): the restore's own
    statements (the privilege probe's ``BEGIN END``) failed there, and the refusal blamed a missing privilege. The
    restore runs its statements under the default parsing; dump, logs and definitions keep theirs."""
    import time

    from tests.fidelity.test_mariadb_gaps import extra

    server = mariadb_factory(extra_conf={'sql_mode': 'ORACLE', 'event_scheduler': 'ON'})
    server.sql("SET sql_mode='STRICT_TRANS_TABLES'; CREATE DATABASE `o r`; USE `o r`; "
               "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10));"
               "INSERT INTO t VALUES (1, 'a'); CREATE PROCEDURE p() SELECT 1; CREATE VIEW v AS SELECT id FROM t; "
               "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = CONCAT(NEW.v, '!'); "
               "CREATE EVENT e ON SCHEDULE EVERY 1 DAY STARTS '2036-01-01' DISABLE DO SELECT 1; CREATE USER u1; "
               "GRANT SELECT ON `o r`.* TO u1; GRANT EXECUTE ON PROCEDURE `o r`.p TO u1; "
               "ALTER DATABASE `o r` COMMENT 'it''s'")
    backup(server, 'o r', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("SET sql_mode='STRICT_TRANS_TABLES'; USE `o r`; INSERT INTO t VALUES (2, 'b')")
    time.sleep(1.1)
    backup(server, 'o r', tmp_path / 'b', kind='log')
    server.sql("SET GLOBAL sql_mode='STRICT_TRANS_TABLES'")
    src = {'s': snapshot(server, 'o r'), 'e': extra(server, 'o r')}
    server.sql("SET GLOBAL sql_mode='ORACLE'")
    r = restore(server, tmp_path / 'b', 'o r', 'o r2')
    server.sql("SET GLOBAL sql_mode='STRICT_TRANS_TABLES'")
    assert r['grants']['skipped'] == [], r['grants']
    assert_same(src, {'s': snapshot(server, 'o r2'), 'e': extra(server, 'o r2')},
                'restore on a server with sql_mode=ORACLE')
    server.sql("SET sql_mode=''; USE `o r2`; INSERT INTO t VALUES (3, 'c')")
    server.sql("SET GLOBAL sql_mode='ORACLE'")
    r = restore(server, tmp_path / 'b', 'o r', 'o r2', replace=True)
    server.sql("SET GLOBAL sql_mode='STRICT_TRANS_TABLES'")
    assert_same(src, {'s': snapshot(server, 'o r2'), 'e': extra(server, 'o r2')}, 'restore over it (replace)')
    server.sql("SET GLOBAL sql_mode = DEFAULT; DROP USER u1; DROP DATABASE `o r`; DROP DATABASE `o r2`")
