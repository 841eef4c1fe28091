"""Fidelity, MariaDB, round 6: the STORED generated values check on types CAST cannot express, column COMPRESSED,
and object kinds and properties the earlier rounds (``test_mariadb*.py``) did not create."""

from __future__ import annotations

from tests.fidelity.test_mariadb_gaps import backup, restore

# Every STORED generated column below holds what storing its expression gives, and a load computes the same: a
# correct restore. Their types have no CAST (ENUM, SET, BINARY(n), YEAR, BIT, JSON, BLOB, INET6, GEOMETRY) or a
# CAST the check did not say fully (text in latin1), and each expression's raw value differs from what the column
# holds ('2' is the ENUM's second member, 'b,a' the SET 'a,b', 'a1' the BINARY(4) 'a1\0\0', 24 the YEAR 2024, 3.6
# the BIT 4, 'ā' in latin1 '?'...). ``tz`` is the one the load computes differently (a TIMESTAMP written as text
# under +05:00): the check still names it. Rows written under a permissive sql_mode (the VARBINARY(3) truncates),
# as an application's session may.
GENERATED = r"""
CREATE DATABASE gr6;
USE gr6;
CREATE TABLE g (id INT PRIMARY KEY, a INT, ts TIMESTAMP NULL,
  e ENUM('x', 'y', 'z') AS (CAST(a + 1 AS CHAR)) STORED,
  s SET('a', 'b', 'c') AS (IF(a IS NULL, NULL, 'b,a')) STORED,
  bn BINARY(4) AS (CONCAT('a', a)) STORED,
  y YEAR AS (a + 23) STORED,
  bt BIT(4) AS (a + 2.6) STORED,
  j JSON AS (JSON_OBJECT('a', a, 'l', JSON_ARRAY(1, 2))) STORED,
  bl BLOB AS (CONCAT(0x00, a, 0x20)) STORED,
  lt TEXT CHARACTER SET latin1 AS (CONCAT('é', a, 'ā  ')) STORED,
  ip INET6 AS (CONCAT('0:0::', a)) STORED,
  pt POINT AS (POINT(a, a / 3)) STORED,
  vb VARBINARY(3) AS (CONCAT(a, 'xyz')) STORED,
  lb VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_bin AS (CONCAT('x', a)) STORED,
  cn CHAR(5) COLLATE utf8mb4_nopad_bin AS (CONCAT(a, '  ')) STORED,
  tz LONGTEXT AS (JSON_OBJECT('t', CAST(ts AS CHAR))) STORED);
SET SESSION time_zone = '+05:00', sql_mode = '';
INSERT INTO g (id, a, ts) VALUES (1, 1, '2024-01-01 10:00:00'), (2, NULL, NULL), (3, 0, NULL);
SET SESSION time_zone = DEFAULT, sql_mode = DEFAULT;
"""

GENERATED_VALUES = ('SELECT id, e + 0, s + 0, HEX(bn), y, bt + 0, j, HEX(bl), HEX(lt), ip, HEX(ST_AsWKB(pt)), '
                    'HEX(vb), HEX(lb), HEX(cn), tz FROM %s.g ORDER BY id')


def test_generated_values_cast_cannot_express_not_named_when_they_restore_right(mariadb_factory, tmp_path):
    """The backup's check of STORED generated values compared the raw expression with the stored value for a type
    CAST cannot express (ENUM, SET, BINARY(n), YEAR, BIT, VARBINARY(n) truncation...), cast text to utf8mb4 (a
    latin1 column stores '?' for 'ā') and kept the trailing spaces a CHAR column is read without (unequal under a
    NO PAD collation), so a correct restore came with a warning that named those columns as changed. Each such
    expression is now stored the way the load stores it (or cast in the column's character set) and compared:
    only ``tz`` (computed under another time zone) is named."""
    server = mariadb_factory()
    server.sql(GENERATED)
    try:
        manifest = backup(server, 'gr6', tmp_path / 'b')['manifest']
        assert manifest.get('generated_recomputed') == {'gr6.g.tz': 1}, manifest
        result = restore(server, tmp_path / 'b', 'gr6', 'gr6_copy')
        source, restored = server.sql(GENERATED_VALUES % 'gr6'), server.sql(GENERATED_VALUES % 'gr6_copy')
        # what the warning is about: row 1's tz; every other value as it was
        assert [s[:-1] for s in source] == [r[:-1] for r in restored], (source, restored)
        assert [s[-1] == r[-1] for s, r in zip(source, restored)] == [False, True, True], (source, restored)
        assert any('gr6.g.tz' in w for w in result.get('warnings', [])), result
    finally:
        server.sql('DROP DATABASE IF EXISTS gr6; DROP DATABASE IF EXISTS gr6_copy')


# Column COMPRESSED (zlib, per value) on every type that takes it, next to kinds no earlier round created:
# descending index parts, a long UNIQUE on a BLOB (a hash key), a column defaulting to a sequence's NEXTVAL,
# LINEAR HASH / LINEAR KEY partitions, LIST with a DEFAULT partition, UCA 14.0.0 and NO PAD collations, a
# zero-date DEFAULT written under a permissive sql_mode, restored on a server whose global sql_mode is strict.
PROBE = r"""
CREATE DATABASE {db};
USE {db};
SET NAMES utf8mb4;
SET SESSION sql_mode = '';
CREATE TABLE cz (id INT PRIMARY KEY, b BLOB COMPRESSED, v VARCHAR(1000) COMPRESSED CHARACTER SET utf8mb4,
  vb VARBINARY(2000) COMPRESSED=zlib, t TEXT COMPRESSED CHARACTER SET latin1 COLLATE latin1_bin,
  lt LONGTEXT COMPRESSED, mb MEDIUMBLOB COMPRESSED NOT NULL DEFAULT '');
INSERT INTO cz VALUES (1, REPEAT(X'00FF41', 5000), REPEAT('ü✓', 400), REPEAT('ab', 900), REPEAT('é', 3000),
  REPEAT('long ', 20000), REPEAT(X'DE', 70000)), (2, '', '', '', '', '', ''), (3, NULL, NULL, NULL, NULL, NULL, X'00'),
  (4, X'00', 'x', X'FF', ' ', '😀', DEFAULT);
CREATE TABLE kinds (id INT PRIMARY KEY, a INT, b VARCHAR(20), bl BLOB, KEY kd (a DESC, b ASC), UNIQUE KEY ub (bl),
  c VARCHAR(20) COLLATE utf8mb4_uca1400_as_cs, n VARCHAR(20) COLLATE utf8mb4_nopad_bin,
  d DATE NOT NULL DEFAULT '0000-00-00', dt DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00');
INSERT INTO kinds (id, a, b, bl, c, n) VALUES (1, 1, 'x', 'same prefix 1', 'Å', 'a '), (2, 2, 'y', 'same prefix 2',
  'å', 'a'), (3, NULL, NULL, NULL, NULL, NULL);
INSERT INTO kinds VALUES (4, 4, 'z', NULL, 'A', 'A', '0000-00-00', '2020-00-00 00:00:00');
CREATE SEQUENCE ids START WITH 1000 INCREMENT BY 7 CACHE 10;
CREATE TABLE seqd (id INT PRIMARY KEY DEFAULT NEXTVAL(ids), v INT);
INSERT INTO seqd (v) VALUES (1), (2), (3);
CREATE TABLE lh (id INT, v INT) PARTITION BY LINEAR HASH (id) PARTITIONS 5;
INSERT INTO lh SELECT seq, seq FROM seq_1_to_50;
CREATE TABLE lk (id INT PRIMARY KEY, v INT) PARTITION BY LINEAR KEY ALGORITHM=1 (id) PARTITIONS 3;
INSERT INTO lk SELECT seq, seq FROM seq_1_to_20;
CREATE TABLE ld (id INT, r INT) PARTITION BY LIST (r) (PARTITION p1 VALUES IN (1, 2), PARTITION p0 DEFAULT);
INSERT INTO ld VALUES (1, 1), (2, 5), (3, NULL);
SET SESSION sql_mode = DEFAULT;
"""


def probe_described(server, db):
    from tests.fidelity.test_mariadb import snapshot
    from tests.fidelity.test_mariadb_gaps import extra

    rows = extra(server, db)
    rows['data'] = {t: server.sql('SELECT * FROM `%s`.%s ORDER BY 1' % (db, t)) for t in ('kinds', 'seqd', 'ld')}
    rows['cz'] = server.sql('SELECT id, MD5(b), MD5(v), MD5(vb), MD5(t), MD5(lt), MD5(mb), LENGTH(lt), b IS NULL '
                            'FROM `%s`.cz ORDER BY id' % db)
    # rows per partition counted (information_schema's TABLE_ROWS is an estimate, 0 until statistics are read)
    rows['partitions'] = [r[:5] + tuple(server.sql('SELECT COUNT(*) FROM `%s`.%s PARTITION (%s)' % (db, r[0], r[1]))[0])
                          for r in rows['partitions']]
    # a DEFAULT NEXTVAL names its sequence with the database: the copy's own sequence
    rows['columns'] = [tuple(v.replace('`%s`.' % db, '`<DB>`.') if isinstance(v, str) else v for v in r)
                       for r in rows['columns']]
    rows['indexes'] = server.sql("SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, COLLATION, SUB_PART, "
                                 "INDEX_TYPE, IGNORED FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '%s' "
                                 "ORDER BY 1, 2, 3" % db)
    return {'snapshot': snapshot(server, db), 'rows': rows}


def test_probe_round6_kinds_round_trip(mariadb_factory, tmp_path):
    """Columns COMPRESSED (BLOB, VARCHAR, VARBINARY, TEXT in latin1, LONGTEXT, MEDIUMBLOB with a DEFAULT; long,
    empty, NULL values), descending index parts, a long UNIQUE on a BLOB, a sequence as a column DEFAULT (its next
    value comes back, not restarted), LINEAR HASH / LINEAR KEY / LIST DEFAULT partitions, UCA 14.0.0 and NO PAD
    collations, zero-date DEFAULTs restored on a server whose global sql_mode is strict: each as the source holds
    it, restored under another name. Regression guard (it passed before)."""
    from tests.fidelity.test_mariadb import assert_same

    server = mariadb_factory()
    db = 'r6'
    server.sql(PROBE.format(db=db))
    try:
        source = probe_described(server, db)
        assert 'COMPRESSED' in source['snapshot']['tables']['cz']['create'][1], source
        backup(server, db, tmp_path / 'b')
        server.sql("SET GLOBAL sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
                   "NO_ENGINE_SUBSTITUTION'")
        restore(server, tmp_path / 'b', db, 'r6_copy')
        server.sql('SET GLOBAL sql_mode = DEFAULT')
        assert_same(source, probe_described(server, 'r6_copy'), 'restore into r6_copy')
        # the copy goes on from the source's next uncached value (as the source itself does after a restart: the
        # cached values 1021..1063 are skipped, never given twice), through its own sequence, not the source's
        nxt = 'INSERT INTO %s.seqd (v) VALUES (4); SELECT MAX(id) FROM %s.seqd'
        assert source['snapshot']['tables']['ids']['next'] == '1070', source['snapshot']['tables']['ids']
        assert server.sql(nxt % ('r6_copy', 'r6_copy')) == [('1070',)]
        assert server.sql(nxt % (db, db)) == [('1021',)]
    finally:
        server.sql('SET GLOBAL sql_mode = DEFAULT; DROP DATABASE IF EXISTS r6; DROP DATABASE IF EXISTS r6_copy')


def test_history_restored_by_a_login_without_global_privileges(mariadb_factory, tmp_path):
    """A system-versioned table's history (every row version and its period) restored by a login that holds only
    ALL on the target databases (no SUPER, no global privilege): the dump's history is inserted with
    system_versioning_insert_history, which such a login may set. Regression guard (it passed before)."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
    from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
    from tests.fidelity.test_mariadb_gaps import history

    server = mariadb_factory()
    server.sql("CREATE DATABASE h_src; USE h_src; CREATE TABLE h (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING; "
               "INSERT INTO h VALUES (1, 1), (2, 1); DO SLEEP(0.01); UPDATE h SET v = 2; DO SLEEP(0.01); "
               "DELETE FROM h WHERE id = 2; "
               "CREATE USER 'hist'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON `h\\_%%`.* TO 'hist'@'%%'" % server.password)
    try:
        manifest = backup(server, 'h_src', tmp_path / 'b')['manifest']
        assert 'h_src.h' not in manifest.get('warning', ''), manifest
        limited = ConnectionParams(host=server.host, port=server.port, user='hist', password=server.password)
        run_restore(RestoreRequest(engine='mariadb', src=str(tmp_path / 'b'), source_database='h_src',
                                   database='h_dst'), limited)
        source = history(server, 'h_src', 'h')
        assert len(source) == 4 and history(server, 'h_dst', 'h') == source
    finally:
        server.sql("DROP DATABASE IF EXISTS h_src; DROP DATABASE IF EXISTS h_dst; DROP USER IF EXISTS 'hist'@'%'")


def test_objects_whose_definer_is_a_role_restore_reading_the_restored_database(mariadb_factory, tmp_path):
    """A view whose DEFINER is a role: mariadb-dump writes it on one line (``/*!50001 CREATE ALGORITHM=UNDEFINED
    DEFINER=`r` SQL SECURITY DEFINER VIEW ...``, not the header block it writes for user@host) and keeps the dumped
    database's name on its columns (```src`.`t`.`id```). The restore's rewriting of those qualifiers knew only the
    header block: loaded into the copy, the view read the SOURCE database; moved into the target, it named the
    dropped copy and the whole restore failed (ERROR 1054 Unknown column) and was rolled back. Views (DEFINER and
    INVOKER), a procedure, a trigger and an event whose definer is a role now restore, reading the restored
    database."""
    from tests.fidelity.test_mariadb import assert_same, snapshot

    server = mariadb_factory()
    server.sql("CREATE ROLE r_def; CREATE DATABASE rd; USE rd; CREATE TABLE t (id INT, n INT); "
               "INSERT INTO t VALUES (1, 10); GRANT SELECT, INSERT, UPDATE, TRIGGER ON rd.* TO r_def; "
               "CREATE DEFINER = r_def VIEW v AS SELECT id, n FROM t; "
               "CREATE DEFINER = r_def SQL SECURITY INVOKER VIEW v2 AS SELECT t.id FROM rd.t WHERE t.n > 0; "
               "CREATE DEFINER = r_def PROCEDURE p() SQL SECURITY DEFINER SELECT COUNT(*) FROM t; "
               "CREATE DEFINER = r_def TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.n = NEW.id * 10; "
               "CREATE DEFINER = r_def EVENT ev ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t WHERE id < 0")
    try:
        source = snapshot(server, 'rd')
        backup(server, 'rd', tmp_path / 'b')
        restore(server, tmp_path / 'b', 'rd', 'rd_copy')
        assert_same(source, snapshot(server, 'rd_copy'), 'restore into rd_copy')
        server.sql('INSERT INTO rd.t (id) VALUES (2)')   # only the source changes: the copy's views read the copy
        assert server.sql('SELECT * FROM rd_copy.v; SELECT * FROM rd_copy.v2') == [('1', '10'), ('1',)]
        restore(server, tmp_path / 'b', 'rd', 'rd', replace=True)   # and over the source itself
        assert_same(source, snapshot(server, 'rd'), 'restore over rd')
    finally:
        server.sql('DROP DATABASE IF EXISTS rd; DROP DATABASE IF EXISTS rd_copy; DROP ROLE IF EXISTS r_def')


def test_replay_runs_triggers_and_views_of_definers_granted_on_the_database_only(mariadb_factory, tmp_path):
    """binlog_format=MIXED. The definers of a trigger (an account) and of a view (a role) hold privileges on the
    source database only (GRANT ... ON pd.*: the usual application account). A statement-logged INSERT after the
    dump fires the trigger, an INSERT through the view runs with the view's definer: replayed into the restore's
    temporary copy they ran as definers with no privilege there (ERROR 1142 TRIGGER command denied) and the whole
    point-in-time restore failed and was rolled back. The recorded grants are lent to the copy for the replay and
    taken back; the target gets them (as before), the copy's name none."""
    import time

    from tests.fidelity.test_mariadb import assert_same, snapshot
    from tests.fidelity.test_mariadb_gaps import extra

    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql("CREATE ROLE r_def; CREATE USER 'app'@'%'; CREATE DATABASE pd; USE pd; "
               "CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE log (id INT); "
               "GRANT SELECT, INSERT, UPDATE, TRIGGER ON pd.* TO 'app'@'%'; GRANT SELECT, INSERT ON pd.* TO r_def; "
               "CREATE DEFINER = 'app'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.id * 10; "
               "CREATE DEFINER = r_def VIEW vl AS SELECT id FROM log")
    try:
        backup(server, 'pd', tmp_path / 'b')
        time.sleep(1.1)
        server.sql("USE pd; INSERT INTO t (id) VALUES (1); INSERT INTO vl VALUES (5); "
                   "CREATE DEFINER = 'app'@'%' TRIGGER tr2 AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES "
                   "(NEW.id); INSERT INTO t (id) VALUES (2)")
        time.sleep(1.1)
        backup(server, 'pd', tmp_path / 'b', kind='log')
        source = {'snapshot': snapshot(server, 'pd'), 'extra': extra(server, 'pd')}
        result = restore(server, tmp_path / 'b', 'pd', 'pd_r')
        assert_same(source, {'snapshot': snapshot(server, 'pd_r'), 'extra': extra(server, 'pd_r')}, 'pitr')
        assert server.sql('SELECT * FROM pd_r.t ORDER BY id; SELECT * FROM pd_r.log ORDER BY id') == [
            ('1', '10'), ('2', '20'), ('2',), ('5',)]
        assert server.sql("SELECT COUNT(*) FROM mysql.db WHERE Db LIKE '%opsready%'") == [('0',)], result
        assert sorted(server.sql("SELECT User FROM mysql.db WHERE Db LIKE 'pd%r'")) == [('app',), ('r_def',)], result
    finally:
        server.sql("DROP DATABASE IF EXISTS pd; DROP DATABASE IF EXISTS pd_r; DROP ROLE IF EXISTS r_def; "
                   "DROP USER IF EXISTS 'app'@'%'")
