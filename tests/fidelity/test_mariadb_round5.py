"""Fidelity, MariaDB, round 5: events the binary logs create, alter, enable, disable or rename (replayed into the
restore's temporary copy while the event scheduler may run them), and object kinds and properties the earlier rounds
(``test_mariadb*.py``) did not create."""

from __future__ import annotations

import time

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore

# The source: a procedure that writes to ANOTHER database (side.hits, what a production job does), events of the
# dump in each status. After the dump the binary logs create events (with and without a status clause, ON SLAVE),
# enable a disabled one, disable an enabled one, rename one; every event calls note(), so an event that runs
# inside the temporary copy writes the copy's name into side.hits. A statement-logged INSERT that sleeps 2.5 s holds
# the replay after the events were created: a scheduler that may run them has that long to do so. (It was an INSERT
# whose trigger wrote side.blocker, held by a lock: since mariasec13b such a replay is refused, rightly, since the
# trigger would write the live side.blocker again.)
EVENTS = r"""
SET GLOBAL event_scheduler = OFF;
CREATE DATABASE side;
CREATE TABLE side.hits (db VARCHAR(200), ev VARCHAR(64), at DATETIME(6));
CREATE DATABASE rev;
USE rev;
CREATE TABLE t (id INT PRIMARY KEY);
CREATE PROCEDURE note(what VARCHAR(64)) INSERT INTO side.hits VALUES (DATABASE(), what, NOW(6));
CREATE EVENT was_on ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE ENABLE DO CALL note('was_on');
CREATE EVENT was_off ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE DISABLE DO CALL note('was_off');
CREATE EVENT renamed ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE DISABLE DO CALL note('renamed');
"""

REPLAYED = r"""
USE rev;
CREATE EVENT made_on ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE DO CALL note('made_on');
CREATE DEFINER = CURRENT_USER EVENT `made ENABLE` ON SCHEDULE EVERY 1 SECOND /* DISABLE */ ENABLE
  COMMENT 'DISABLE' DO CALL note('made ENABLE');
CREATE EVENT made_off ON SCHEDULE EVERY 1 SECOND DISABLE DO CALL note('made_off');
CREATE EVENT made_slave ON SCHEDULE EVERY 1 SECOND DISABLE ON SLAVE DO CALL note('made_slave');
ALTER EVENT was_off ENABLE;
ALTER EVENT was_on DISABLE;
ALTER EVENT renamed RENAME TO `renamed 2` ENABLE;
CREATE EVENT dropped ON SCHEDULE EVERY 1 SECOND DO CALL note('dropped');
DROP EVENT dropped;
INSERT INTO t SELECT 1 FROM (SELECT SLEEP(2.5)) AS pause;
"""


def statuses(server, db):
    return server.sql("SELECT EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '%s' ORDER BY 1"
                      % db)


def test_events_the_binary_logs_create_or_enable_never_run_in_the_copy_and_get_their_status(mariadb_factory,
                                                                                            tmp_path):
    """binlog_format=STATEMENT, event_scheduler ON during the restore. The replay ran the logged CREATE EVENT /
    ALTER EVENT ... ENABLE as written: the events were scheduled inside the temporary copy at once and ran there
    while the replay went on (their procedure wrote to another database of the server; the restore then refused
    the copy). A replayed ALTER EVENT ... DISABLE did not reach the target (it got the dump's ENABLED back). Every
    replayed event statement loads DISABLE; the target gets the status the source had at the end of the logs
    (events=disabled: all disabled)."""
    server = mariadb_factory(extra_conf={'binlog_format': 'STATEMENT'})
    server.sql(EVENTS)
    try:
        backup(server, 'rev', tmp_path / 'b')
        time.sleep(1.1)
        server.sql(REPLAYED)
        time.sleep(1.1)
        backup(server, 'rev', tmp_path / 'b', kind='log')
        source = statuses(server, 'rev')
        assert source == [('made ENABLE', 'ENABLED'), ('made_off', 'DISABLED'), ('made_on', 'ENABLED'),
                          ('made_slave', 'SLAVESIDE_DISABLED'), ('renamed 2', 'ENABLED'), ('was_off', 'ENABLED'),
                          ('was_on', 'DISABLED')], source
        server.sql('SET GLOBAL event_scheduler = ON')
        for target, kw in (('rev_copy', {}), ('rev_drill', {'events': 'disabled'})):
            result = restore(server, tmp_path / 'b', 'rev', target, **kw)
            ran = server.sql("SELECT DISTINCT db, ev FROM side.hits WHERE db LIKE '%opsready%'")
            assert ran == [], 'events ran inside the temporary copy: %s' % ran
            want = source if not kw else [(name, 'DISABLED') for name, _status in source]
            assert statuses(server, target) == want, result
    finally:
        server.sql('SET GLOBAL event_scheduler = OFF; DROP DATABASE IF EXISTS side; DROP DATABASE IF EXISTS rev; '
                   'DROP DATABASE IF EXISTS rev_copy; DROP DATABASE IF EXISTS rev_drill')


def test_rows_whose_insert_exceeds_max_allowed_packet_are_named_at_backup_time(mariadb_factory, tmp_path):
    """A row whose INSERT (a BLOB written as hex: twice its size) is longer than the server's max_allowed_packet:
    the backup said nothing, and the restore onto that server loaded everything else first, then failed. The
    backup names the table and the length (manifest longest_insert and its warning); a restore onto a server
    whose max_allowed_packet is shorter refuses before loading, naming both; raised, it restores. Rows whose
    INSERT fits (many small rows, one long TEXT under the limit) are not named."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

    server = mariadb_factory(extra_conf={'max_allowed_packet': '4M'})
    server.sql("CREATE DATABASE big; USE big; CREATE TABLE `b l``ob` (id INT PRIMARY KEY, v LONGBLOB); "
               "INSERT INTO `b l``ob` VALUES (1, REPEAT('x', 3 * 1024 * 1024)), (2, 'small'); "
               "CREATE TABLE many (id INT PRIMARY KEY, t TEXT); "
               "INSERT INTO many SELECT seq, REPEAT('y', 60000) FROM seq_1_to_200; "
               "CREATE TABLE fits (id INT PRIMARY KEY, t LONGTEXT); "
               "INSERT INTO fits VALUES (1, REPEAT('z', 3 * 1024 * 1024))")
    manifest = backup(server, 'big', tmp_path / 'b')['manifest']
    longest = manifest.get('longest_insert') or {}
    assert longest.get('table') == 'b l`ob' and 6 * 1024 * 1024 < longest['bytes'] < 6 * 1024 * 1024 + 100, manifest
    assert 'big.b l`ob' in manifest.get('warning', '') and 'max_allowed_packet' in manifest['warning'], manifest
    try:
        started = time.monotonic()
        with pytest.raises(OpsReadyError) as caught:
            restore(server, tmp_path / 'b', 'big', 'big2')
        message = caught.value.message
        assert 'b l`ob' in message and str(longest['bytes']) in message and 'max_allowed_packet' in message, message
        assert 'before loading' in message, message
        assert server.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'big2%'") \
            == [('0',)]
        assert time.monotonic() - started < 30
        server.sql('SET GLOBAL max_allowed_packet = 16 * 1024 * 1024')
        restore(server, tmp_path / 'b', 'big', 'big2')
        assert server.sql('SELECT id, MD5(v) FROM big2.`b l``ob` ORDER BY id') == server.sql(
            'SELECT id, MD5(v) FROM big.`b l``ob` ORDER BY id')
    finally:
        server.sql('DROP DATABASE IF EXISTS big; DROP DATABASE IF EXISTS big2')


PROBE = r"""
CREATE DATABASE {db} CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci;
USE {db};
SET NAMES utf8mb4;
CREATE TABLE pc (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=3
  STATS_PERSISTENT=1 STATS_AUTO_RECALC=0 STATS_SAMPLE_PAGES=7 COMMENT='{long_comment}';
INSERT INTO pc VALUES (1, 'x');
CREATE TABLE kb (id INT PRIMARY KEY, v VARCHAR(20) COMMENT '{col_comment}') ENGINE=InnoDB ROW_FORMAT=COMPRESSED
  KEY_BLOCK_SIZE=4 AUTO_INCREMENT=77;
CREATE TABLE ar (id INT PRIMARY KEY, v INT) ENGINE=Aria TRANSACTIONAL=0 ROW_FORMAT=FIXED CHECKSUM=1
  DELAY_KEY_WRITE=1 MIN_ROWS=10 MAX_ROWS=1000 AVG_ROW_LENGTH=50 PACK_KEYS=1;
INSERT INTO ar VALUES (1, 1);
CREATE TABLE mi (grp CHAR(3) NOT NULL, id INT NOT NULL AUTO_INCREMENT, PRIMARY KEY (grp, id)) ENGINE=MyISAM;
INSERT INTO mi (grp) VALUES ('a'), ('a'), ('b'), ('a');
DELETE FROM mi WHERE grp = 'a' AND id = 3;
CREATE TABLE `odd/na\me.#?*<>|:"'%_` (`c/o\l.#?*` INT PRIMARY KEY, `trailing-dash-` INT, `123` INT, `ÿ€ﬁ` INT);
INSERT INTO `odd/na\me.#?*<>|:"'%_` VALUES (1, 2, 3, 4);
CREATE VIEW vcols (a, `b c`) AS SELECT id, v FROM pc;
CREATE TABLE en (id INT PRIMARY KEY, e ENUM('ä', 'Ä', 'ß', 'ss') CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
  s SET('é', 'É', 'e') CHARACTER SET utf8mb4 COLLATE utf8mb4_bin);
INSERT INTO en VALUES (1, 'Ä', 'É,e'), (2, 'ß', '');
CREATE SEQUENCE down START WITH -1 INCREMENT BY -3 MINVALUE -1000 MAXVALUE -1 NOCYCLE NOCACHE;
DO NEXTVAL(down); DO NEXTVAL(down);
CREATE SEQUENCE jumped;
DO SETVAL(jumped, 500);
CREATE TABLE dates (id INT PRIMARY KEY, d DATE, dt DATETIME(6), t TIME(3));
SET SESSION sql_mode = 'ALLOW_INVALID_DATES';
INSERT INTO dates VALUES (1, '2020-02-31', '2020-04-31 10:00:00.000001', '-00:00:00.5'), (2, '0000-00-00',
  '0000-00-00 00:00:00', '838:59:59');
SET SESSION sql_mode = DEFAULT;
CREATE TABLE fl (id INT PRIMARY KEY, f FLOAT, d DOUBLE, f2 FLOAT(10,4), dec0 DECIMAL(10,0), b BIT(7));
INSERT INTO fl VALUES (1, 3.40282e38, 2.2250738585072014e-308, 123456.1234, -9999999999, b'1010101'),
  (2, 1.17549435e-38, -1.7976931348623157e308, -0.0001, 0, b'0'), (3, 0.1, 0.1, 0.1, 1, NULL);
CREATE TABLE outfk (id INT PRIMARY KEY, pid INT, CONSTRAINT `fk out` FOREIGN KEY (pid) REFERENCES r5_other.parent (id)
  ON DELETE SET NULL) ENGINE=InnoDB;
INSERT INTO outfk VALUES (1, 1);
DELIMITER //
CREATE AGGREGATE FUNCTION agg_sum(x INT) RETURNS INT DETERMINISTIC
BEGIN
  DECLARE s INT DEFAULT 0;
  DECLARE CONTINUE HANDLER FOR NOT FOUND RETURN s;
  LOOP FETCH GROUP NEXT ROW; SET s = s + IFNULL(x, 0); END LOOP;
END//
CREATE PROCEDURE anchored(IN a TYPE OF pc.v, OUT r ROW TYPE OF pc)
BEGIN SELECT * INTO r FROM pc WHERE v = a LIMIT 1; END//
DELIMITER ;
"""


def probe_described(server, db):
    from tests.fidelity.test_mariadb import snapshot
    from tests.fidelity.test_mariadb_gaps import extra

    lit = "'%s'" % db
    rows = extra(server, db)
    rows['fks'] = [r[:3] + ('<DB>' if r[3] == db else r[3],) + r[4:] for r in rows['fks']]
    rows['tables'] = [r[:3] + (r[3] if r[0] != 'kb' else '<ai>',) + r[4:] for r in rows['tables']]
    # Aria's PAGE_CHECKSUM: the dump sets it explicitly (see test_mariadb_round3.described)
    rows['tables'] = [r[:5] + (' '.join(o for o in (r[5] or '').split() if o != 'page_checksum=1'),) + r[6:] for r in
                      rows['tables']]
    rows['views'] = server.sql('SELECT TABLE_NAME, REPLACE(VIEW_DEFINITION, %s, "<DB>"), CHECK_OPTION, SECURITY_TYPE, '
                               'ALGORITHM FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s ORDER BY 1'
                               % ("'`%s`'" % db, lit))
    rows['ai'] = server.sql("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                            "TABLE_NAME IN ('kb', 'mi') ORDER BY TABLE_NAME" % lit)
    rows['ref'] = server.sql('SELECT TABLE_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME FROM '
                             'information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s AND '
                             'REFERENCED_TABLE_NAME IS NOT NULL' % lit)
    rows['params'] = server.sql('SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, DTD_IDENTIFIER FROM '
                                'information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = %s ORDER BY 1, 2' % lit)
    rows['data'] = {t: server.sql('SELECT * FROM `%s`.%s ORDER BY 1, 2' % (db, t)) for t in
                    ('mi', 'en', 'dates', 'fl', '`odd/na\\me.#?*<>|:"\'%_`')}
    rows['fl_hex'] = server.sql('SELECT id, HEX(CAST(f AS BINARY)), HEX(d), HEX(b) FROM `%s`.fl ORDER BY 1' % db)
    rows['seq'] = server.sql('SELECT * FROM `%s`.down; SELECT * FROM `%s`.jumped' % (db, db))
    rows['agg'] = server.sql('SELECT `%s`.agg_sum(id) FROM `%s`.fl' % (db, db))
    snap = snapshot(server, db)
    for key in ('checksum', 'md5'):   # a FLOAT the dump rounds comes back changed (the backup and restore say so)
        snap['tables']['fl'].pop(key)
    return {'snapshot': snap, 'rows': rows}


def test_probe_round5_kinds_round_trip(mariadb_factory, tmp_path):
    """Table options (PAGE_COMPRESSED, persistent statistics, KEY_BLOCK_SIZE, an AUTO_INCREMENT above the rows,
    Aria/MyISAM options, a MyISAM per-group AUTO_INCREMENT), a table named with every character a file name cannot
    hold, a view with a column list, ENUM/SET members that differ only by case, a
    descending sequence and a SETVAL'd one, dates stored under ALLOW_INVALID_DATES, float/double extremes, a foreign
    key into another database, an aggregate stored function, anchored parameter types, a utf8mb3 database. Dates
    stored under ALLOW_INVALID_DATES came back as zero dates (the dump's load mode rejected them, with a warning
    nobody read); a FLOAT needing more than 6 significant digits comes back rounded (mariadb-dump writes it so):
    named by the backup and the restore."""
    from tests.fidelity.test_mariadb import assert_same

    server = mariadb_factory()
    server.sql('CREATE DATABASE r5_other; CREATE TABLE r5_other.parent (id INT PRIMARY KEY) ENGINE=InnoDB; '
               'INSERT INTO r5_other.parent VALUES (1)')
    db = 'r5'
    server.sql(PROBE.format(db=db, long_comment='c' * 2000 + "''é", col_comment='k' * 1020 + '✓'))
    try:
        source = probe_described(server, db)
        manifest = backup(server, db, tmp_path / 'b')['manifest']
        assert manifest.get('float_precision') == {'r5.fl.f': 1} and 'r5.fl.f (1)' in manifest['warning'], manifest
        result = restore(server, tmp_path / 'b', db, 'r5_copy')
        assert any('r5.fl.f' in w and '6 significant digits' in w for w in result.get('warnings', [])), result
        assert_same(source, probe_described(server, 'r5_copy'), 'restore into r5_copy')
    finally:
        server.sql('DROP DATABASE IF EXISTS r5; DROP DATABASE IF EXISTS r5_copy; DROP DATABASE IF EXISTS r5_other')


def test_stored_generated_values_computed_under_another_session_are_named(mariadb_factory, tmp_path):
    """A STORED generated column is not in the dump: the load computes it again, under the load's session (time
    zone +00:00; a / 3 with the scale of the session that opened the table first: the source's first session had
    div_precision_increment 10 and stored 18 decimals, the load stores 9), so those values came back different,
    silently. The backup names those columns with their row counts and every restore repeats it; a column whose
    values match is not named."""
    server = mariadb_factory()
    server.sql("CREATE DATABASE gs; USE gs; CREATE TABLE g (id INT PRIMARY KEY, ts TIMESTAMP NULL, a INT, "
               "s VARCHAR(40) AS (CAST(ts AS CHAR)) STORED, r DECIMAL(30,20) AS (a / 3) STORED, "
               "ok INT AS (a * 2) STORED, v VARCHAR(40) AS (CAST(ts AS CHAR)) VIRTUAL); "
               "SET SESSION time_zone = '+05:00'; SET SESSION div_precision_increment = 10; "
               "INSERT INTO g (id, ts, a) VALUES (1, '2024-01-01 10:00:00', 1), (2, NULL, NULL); "
               "SET SESSION time_zone = '+00:00'; SET SESSION div_precision_increment = DEFAULT; "
               "INSERT INTO g (id, ts, a) VALUES (3, '2024-01-01 10:00:00', 2)")
    try:
        manifest = backup(server, 'gs', tmp_path / 'b')['manifest']
        assert manifest.get('generated_recomputed') == {'gs.g.r': 2, 'gs.g.s': 1}, manifest
        assert 'gs.g.s (1)' in manifest.get('warning', ''), manifest
        result = restore(server, tmp_path / 'b', 'gs', 'gs2')
        assert any('gs.g.s' in w and 'gs.g.r' in w for w in result.get('warnings', [])), result
        query = 'SELECT id, s, r, ok FROM %s.g ORDER BY id'
        restored, source = server.sql(query % 'gs2'), server.sql(query % 'gs')
        # what the warning is about: row 1's s and r, row 3's r; ok and the NULL row as they were
        assert [r[1] == s[1] for r, s in zip(restored, source)] == [False, True, True], (restored, source)
        assert [r[2] == s[2] for r, s in zip(restored, source)] == [False, True, False], (restored, source)
        assert [r[3] for r in restored] == [s[3] for s in source]
    finally:
        server.sql('DROP DATABASE IF EXISTS gs; DROP DATABASE IF EXISTS gs2')
