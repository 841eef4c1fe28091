"""Restore fidelity, MariaDB: a rich database backed up, restored under another name and over itself,
compared object by object (SHOW CREATE of every table, view, routine, trigger and event, normalised for
the schema name), table by table (CHECKSUM TABLE EXTENDED) and by its database-level properties.

The server runs with ``gtid_strict_mode=ON`` and binary logging, and every restore (latest and point
in time) runs on that same server one after the other: a replay that wrote the source's GTIDs back
would fail there, or poison the next restore's binlog chain.
"""

from __future__ import annotations

import datetime
import difflib
import json
import time
from typing import Any, Dict

import pytest

from tests.harness.playbook import conn as login, play

# Odd on purpose: backtick, semicolon, spaces, dash, non-ASCII (mariadb-dump --events itself cannot
# select a database whose name holds ' " or \, so the backup refuses those; restore targets take them).
SOURCE = "fid`q;u -- ñé"
COPY = "copy\\'; DROP DATABASE x; -- ñ`"
TABLE = "tä`b'le\"; \\x"

FIXTURE = r"""
CREATE USER IF NOT EXISTS 'fid_definer'@'localhost';
GRANT ALL PRIVILEGES ON *.* TO 'fid_definer'@'localhost';
CREATE DATABASE {db} CHARACTER SET latin1 COLLATE latin1_swedish_ci;
USE {db};
SET NAMES utf8mb4;
CREATE TABLE all_types (
  id INT AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, bi BIGINT UNSIGNED, de DECIMAL(30,10), fl FLOAT, db DOUBLE,
  bt BIT(10), d DATE, dt DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, tm TIME(6), y YEAR,
  c CHAR(10), vl VARCHAR(100), vu VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
  bn BINARY(4), vb VARBINARY(64), tt TINYTEXT, tx TEXT CHARACTER SET utf8mb4, mt MEDIUMTEXT, lt LONGTEXT,
  bl BLOB, lb LONGBLOB, en ENUM('a','b','ç'), st SET('x','y','z'), js JSON, pt POINT, ip INET6, uu UUID,
  gen_v INT AS (ti * 2) VIRTUAL, gen_s VARCHAR(120) AS (CONCAT(vl, '!')) STORED,
  KEY idx_vl (vl), UNIQUE KEY uq_bi (bi)
) ENGINE=InnoDB COMMENT='every type; l''apostrophe \\ backslash';
INSERT INTO all_types (ti, si, mi, bi, de, fl, db, bt, d, dt, ts, tm, y, c, vl, vu, bn, vb, tt, tx, mt, lt, bl, lb,
                       en, st, js, pt, ip, uu) VALUES
 (-128, 65535, -8388608, 18446744073709551615, -12345678901234567890.0123456789, 1.5, -2.25e300, b'1010101010',
  '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.123', '-838:59:59.000000', 1901,
  'chär', 'latin1 ñ ü ß', 'utf8 😀 中文 ✓', X'00FF10AB', X'DEADBEEF00', 'tiny', 'text ✓ ''q'' \\ "dq"', 'mt', 'lt',
  X'000102', REPEAT(X'AB', 70000), 'ç', 'x,z', '{{"k": [1, "ü", null]}}', ST_GeomFromText('POINT(1 2)'),
  '2001:db8::1', '123e4567-e89b-12d3-a456-426614174000'),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE {tb} (id INT PRIMARY KEY, label VARCHAR(50) CHARACTER SET utf8mb4, n INT DEFAULT 0)
  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
INSERT INTO {tb} VALUES (1, 'ünïcödé 🚀', 1), (2, 'tab\there\nnewline', 2), (3, 'back\\slash''quote', 3);
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100), at_n INT) ENGINE=InnoDB CHARACTER SET utf8mb4;
CREATE SEQUENCE seq_orders START WITH 100 INCREMENT BY 5;
DO NEXTVAL(seq_orders);
CREATE VIEW v_simple AS SELECT id, vl, vu FROM all_types WHERE id > 0;
CREATE ALGORITHM=MERGE DEFINER='fid_definer'@'localhost' SQL SECURITY INVOKER VIEW `vz on v` AS
  SELECT id, vu FROM v_simple WHERE id < 100 WITH CASCADED CHECK OPTION;
CREATE VIEW `v_odd` AS SELECT id, label AS `lä``bel` FROM {tb};
SET sql_mode = 'ANSI_QUOTES,PIPES_AS_CONCAT,NO_BACKSLASH_ESCAPES';
DELIMITER //
CREATE DEFINER='fid_definer'@'localhost' PROCEDURE "p_ansi"(IN x INT)
  SQL SECURITY INVOKER COMMENT 'ansi "quotes" here'
BEGIN SELECT "id" || '-' || x FROM all_types; END//
DELIMITER ;
SET sql_mode = DEFAULT;
DELIMITER //
CREATE FUNCTION `f_ünï`(a VARCHAR(20)) RETURNS VARCHAR(40) CHARACTER SET utf8mb4 DETERMINISTIC
  RETURN CONCAT('«', a, '»')//
CREATE PROCEDURE `p;drop`() MODIFIES SQL DATA INSERT INTO audit (what, at_n) VALUES ('proc', f_count())//
CREATE FUNCTION f_count() RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM all_types)//
CREATE DEFINER='fid_definer'@'localhost' TRIGGER trg_ins BEFORE INSERT ON all_types FOR EACH ROW
  SET NEW.c = IFNULL(NEW.c, 'trg')//
CREATE TRIGGER `trg odd` AFTER UPDATE ON {tb} FOR EACH ROW
  INSERT INTO audit (what, at_n) VALUES (CONCAT('upd ', NEW.label), NEW.n)//
CREATE EVENT ev_enabled ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00'
  DO DELETE FROM audit WHERE id < 0//
CREATE DEFINER='fid_definer'@'localhost' EVENT `ev dïsabled` ON SCHEDULE AT '2031-01-01 00:00:00'
  ON COMPLETION PRESERVE DISABLE COMMENT 'off' DO INSERT INTO audit (what) VALUES ('never')//
DELIMITER ;
CREATE VIEW v_func AS SELECT `f_ünï`(vl) AS wrapped FROM all_types;
"""


def q(name: str) -> str:
    return '`' + name.replace('`', '``') + '`'


def load(server, sql: str) -> None:
    """Run a script with DELIMITER lines through the mariadb client (the harness feeds stdin)."""
    server.sql(sql)


def snapshot(server, db: str) -> Dict[str, Any]:
    """Everything the restore must bring back, with the schema name normalised away."""
    lit = "'" + db.replace('\\', '\\\\').replace("'", "''") + "'"
    placeholder = '`<DB>`'

    def norm(value: Any) -> Any:
        return value.replace(q(db), placeholder) if isinstance(value, str) else value

    def show(kind: str, name: str) -> list:
        rows = server.sql('SHOW CREATE %s %s.%s' % (kind, q(db), q(name)))
        assert rows, 'SHOW CREATE %s %s returned nothing' % (kind, name)
        return [norm(v) for v in rows[0]]

    snap: Dict[str, Any] = {}
    snap['database'] = server.sql('SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM '
                                  'information_schema.SCHEMATA WHERE SCHEMA_NAME = %s' % lit)
    tables = server.sql("SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, TABLE_COMMENT FROM "
                        "information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME" % lit)
    snap['tables'] = {}
    for name, kind, engine, collation, comment in tables:
        if kind == 'VIEW':
            row = show('VIEW', name)
            snap.setdefault('views', {})[name] = row
            continue
        entry = {'type': kind, 'engine': engine, 'collation': collation, 'comment': comment,
                 'create': show('TABLE', name)}
        if kind != 'SEQUENCE':
            entry['checksum'] = server.sql('CHECKSUM TABLE %s.%s EXTENDED' % (q(db), q(name)))[0][1]
            entry['rows'] = server.sql('SELECT COUNT(*) FROM %s.%s' % (q(db), q(name)))[0][0]
            name_lit = "'" + name.replace('\\', '\\\\').replace("'", "''") + "'"
            columns = [c[0] for c in server.sql(
                'SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s '
                'ORDER BY ORDINAL_POSITION' % (lit, name_lit))]
            row = ', '.join('IFNULL(HEX(%s), "N")' % q(c) for c in columns)
            entry['md5'] = server.sql(
                'SET SESSION group_concat_max_len = 1 << 31; '
                'SELECT MD5(GROUP_CONCAT(r ORDER BY r SEPARATOR ",")) FROM (SELECT CONCAT_WS("|", %s) AS r '
                'FROM %s.%s) x' % (row, q(db), q(name)))[0][0]
        else:
            entry['next'] = server.sql('SELECT next_not_cached_value FROM %s.%s' % (q(db), q(name)))[0][0]
        snap['tables'][name] = entry
    for kind, name in server.sql('SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE '
                                 'ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE, ROUTINE_NAME' % lit):
        snap.setdefault('routines', {})['%s %s' % (kind, name)] = show(kind, name)
    for (name,) in server.sql('SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s '
                              'ORDER BY TRIGGER_NAME' % lit):
        row = show('TRIGGER', name)
        snap.setdefault('triggers', {})[name] = row[:-1]  # last column: Created (a timestamp)
    for (name,) in server.sql('SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s '
                              'ORDER BY EVENT_NAME' % lit):
        snap.setdefault('events', {})[name] = show('EVENT', name)
    return snap


def assert_same(expected: Dict[str, Any], actual: Dict[str, Any], what: str) -> None:
    a = json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    b = json.dumps(actual, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    if a != b:
        pytest.fail('%s differs from the source:\n%s' % (what, '\n'.join(difflib.unified_diff(
            a, b, 'source', what, lineterm='', n=2))), pytrace=False)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def test_rich_database_round_trips_with_gtid_strict_mode(mariadb_factory, tmp_path):
    server = mariadb_factory(gtid_strict_mode=True)
    assert server.sql('SELECT @@gtid_strict_mode, @@log_bin')[0] == ('1', '1')
    load(server, FIXTURE.format(db=q(SOURCE), tb=q(TABLE)))
    source = snapshot(server, SOURCE)
    assert {'views', 'routines', 'triggers', 'events'} <= set(source) and source['database'] == [
        ('latin1', 'latin1_swedish_ci')]
    assert len(source['views']) == 4 and len(source['routines']) == 4 and len(source['events']) == 2

    conn = login(server, 'pw')
    extravars = {'pw': server.password}
    dest = tmp_path / 'backups'
    backup = dict(conn, engine='mariadb', database=SOURCE, dest=str(dest))
    restore = dict(conn, engine='mariadb', src=str(dest), source_database=SOURCE)

    result = play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result('full')['manifest']['database_defaults'] == {'character_set': 'latin1',
                                                                      'collation': 'latin1_swedish_ci'}
    # Changes after the dump travel by binlog: rows, a fired trigger, a routine call.
    time.sleep(1.1)
    server.sql('USE %s; INSERT INTO all_types (ti, vl, vu) VALUES (7, "after ñ", "after 😀"); '
               'UPDATE %s SET n = n + 10 WHERE id = 1; CALL `p;drop`();' % (q(SOURCE), q(TABLE)))
    time.sleep(1.5)
    point = utc_now()
    at_point = snapshot(server, SOURCE)
    time.sleep(1.5)
    server.sql('USE %s; DELETE FROM all_types WHERE ti = 7; UPDATE %s SET label = "later" WHERE id = 2'
               % (q(SOURCE), q(TABLE)))
    time.sleep(1.1)
    latest = snapshot(server, SOURCE)
    result = play(tmp_path, [{'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')}], extravars)
    assert result.rc == 0, result.stdout[-3000:]

    copy, plain = COPY, 'pitr ñ-x'
    result = play(tmp_path, [
        {'name': 'latest', 'opsready.operations.db_restore': dict(restore, database=copy)},
        {'name': 'pitr', 'opsready.operations.db_restore': dict(restore, database=plain, stop_at=point.isoformat())},
    ], extravars)
    assert result.rc == 0, result.stdout[-5000:]
    assert result.result('latest')['target']['objects'] == {'views': 4, 'routines': 4, 'triggers': 2, 'events': 2}
    assert_same(latest, snapshot(server, copy), 'restore under another name')
    assert_same(at_point, snapshot(server, plain), 'point-in-time restore under another name')

    # The same restores again on the same server: the first replays must not break these.
    result = play(tmp_path, [
        {'name': 'pitr again', 'opsready.operations.db_restore': dict(restore, database=plain, replace=True,
                                                                      stop_at=point.isoformat())},
    ], extravars)
    assert result.rc == 0, result.stdout[-5000:]
    assert result.result('pitr again')['replaced'] is True
    assert_same(at_point, snapshot(server, plain), 'point-in-time restore over a restored copy (replace)')
    result = play(tmp_path, [
        {'name': 'again', 'opsready.operations.db_restore': dict(restore, database=plain, replace=True)},
        # a hostile target that now holds events: refused before anything is loaded (mariadb-dump --events
        # could not save its events for the way back)
        {'name': 'refused', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, database=copy, replace=True)},
    ], extravars)
    assert result.rc == 0, result.stdout[-5000:]
    assert_same(latest, snapshot(server, plain), 'restore over a restored copy (replace)')
    refused = result.result('refused')
    assert refused['_event'] == 'runner_on_failed' and 'Nothing was changed' in refused['msg']
    assert_same(latest, snapshot(server, copy), 'a refused restore target')

    # The server's binlog since holds the restores' own transactions: a new log backup and a restore
    # reading that chain must work (no source GTID was written back out of order).
    server.sql('USE %s; INSERT INTO audit (what) VALUES ("after restores")' % q(SOURCE))
    latest = snapshot(server, SOURCE)
    time.sleep(1.1)
    result = play(tmp_path, [
        {'name': 'logs2', 'opsready.operations.db_backup': dict(backup, kind='log')},
        {'name': 'replace', 'opsready.operations.db_restore': dict(restore, database=SOURCE, replace=True)},
    ], extravars)
    assert result.rc == 0, result.stdout[-5000:]
    assert result.result('replace')['replaced'] is True
    assert_same(latest, snapshot(server, SOURCE), 'restore over the original (replace)')

    # Over the original, back to the point in time: views, routines, triggers, events swapped too.
    result = play(tmp_path, [{'name': 'replace pitr', 'opsready.operations.db_restore': dict(
        restore, database=SOURCE, replace=True, stop_at=point.isoformat())}], extravars)
    assert result.rc == 0, result.stdout[-5000:]
    assert_same(at_point, snapshot(server, SOURCE), 'point-in-time restore over the original')
    assert server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%opsready%'") == []
    assert server.sql('SELECT @@gtid_strict_mode')[0][0] == '1'


def test_chain_holding_out_of_order_gtids_still_restores(mariadb_factory, tmp_path):
    """Logs written by an older version's replays hold GTIDs out of order; they must still read."""
    server = mariadb_factory()
    server.sql('CREATE DATABASE ooo; CREATE TABLE ooo.t (id INT PRIMARY KEY, v TEXT); '
               'INSERT INTO ooo.t VALUES (1, "a")')
    conn = login(server, 'pw')
    dest = tmp_path / 'backups'
    backup = dict(conn, engine='mariadb', database='ooo', dest=str(dest))
    result = play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup}], {'pw': server.password})
    assert result.rc == 0, result.stdout[-3000:]
    # What an old replay left behind: a transaction logged with an old sequence number.
    server.sql('INSERT INTO ooo.t VALUES (2, "b"); SET SESSION gtid_seq_no = 1; INSERT INTO ooo.t VALUES (3, "c"); '
               'INSERT INTO ooo.t VALUES (4, "d")')
    time.sleep(1.1)
    result = play(tmp_path, [
        {'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')},
        {'name': 'restore', 'opsready.operations.db_restore': dict(conn, engine='mariadb', src=str(dest),
                                                                   source_database='ooo', database='ooo_r')},
    ], {'pw': server.password})
    assert result.rc == 0, result.stdout[-3000:]
    assert server.sql('SELECT id FROM ooo_r.t ORDER BY id') == [('1',), ('2',), ('3',), ('4',)]


def test_failed_swap_is_undone_with_event_scheduler_on(mariadb_factory, tmp_path, monkeypatch):
    """A failure at the last swap step (creating the restored views, routines, triggers and events in the
    target) puts back the old tables, objects and character set; events keep definer and status."""
    import sys

    from tests.harness.playbook import REPO
    sys.path.insert(0, str(REPO / 'build'))
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
        OpsReadyError, ToolError)
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import restore as mysql_restore
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
    from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore

    server = mariadb_factory(extra_conf={'event_scheduler': 'ON'})
    assert server.sql('SELECT @@event_scheduler')[0][0] == 'ON'
    load(server, FIXTURE.format(db=q(SOURCE), tb=q(TABLE)))
    source = snapshot(server, SOURCE)
    conn = login(server, 'pw')
    dest = tmp_path / 'backups'
    result = play(tmp_path, [
        {'name': 'full', 'opsready.operations.db_backup': dict(conn, engine='mariadb', database=SOURCE,
                                                               dest=str(dest))},
        {'name': 'copy', 'opsready.operations.db_restore': dict(conn, engine='mariadb', src=str(dest),
                                                                source_database=SOURCE, database='target')},
    ], {'pw': server.password})
    assert result.rc == 0, result.stdout[-3000:]
    assert_same(source, snapshot(server, 'target'), 'restore with event_scheduler=ON')

    # The target now differs from the backup (another charset, an extra view and event, other rows).
    server.sql('ALTER DATABASE target CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE target; '
               'CREATE VIEW v_extra AS SELECT 1 AS one; DROP TRIGGER trg_ins; DELETE FROM audit; '
               'CREATE EVENT ev_extra ON SCHEDULE EVERY 1 DAY STARTS "2032-01-01" DISABLE DO SELECT 1')
    before = snapshot(server, 'target')
    real = mysql_restore._load_script

    def failing(engine, database, script, what):
        if what.startswith('load views'):
            real(engine, database, script, what)  # half done: the objects exist, then it "fails"
            raise ToolError('mariadb (%s) failed with exit code 1: injected fault' % what, rc=1)
        return real(engine, database, script, what)

    monkeypatch.setattr(mysql_restore, '_load_script', failing)
    request = RestoreRequest(engine='mariadb', src=str(dest), database='target', source_database=SOURCE,
                             replace=True)
    with pytest.raises(OpsReadyError, match='rolled back') as caught:
        run_restore(request, ConnectionParams(host=server.host, port=server.port, user=server.user,
                                              password=server.password))
    assert 'injected fault' in caught.value.message
    assert_same(before, snapshot(server, 'target'), 'target after a failed swap')
    assert server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%opsready%'") == []


def test_missing_privilege_refused_before_loading(mariadb_factory, tmp_path):
    """A login that may not create an object with the backup's definers is refused before the load."""
    server = mariadb_factory()
    server.sql("CREATE DATABASE lim_src; CREATE TABLE lim_src.t (id INT); INSERT INTO lim_src.t VALUES (1); "
               "CREATE USER 'other'@'localhost'; "
               "CREATE DEFINER='other'@'localhost' VIEW lim_src.v AS SELECT id FROM lim_src.t; "
               "CREATE USER 'limited'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON `lim\\_%%`.* TO 'limited'@'%%'"
               % server.password)
    admin = login(server, 'pw')
    limited = dict(admin, login_user='limited')
    dest = tmp_path / 'backups'
    result = play(tmp_path, [
        {'name': 'full', 'opsready.operations.db_backup': dict(admin, engine='mariadb', database='lim_src',
                                                               dest=str(dest))},
        {'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            limited, engine='mariadb', src=str(dest), source_database='lim_src', database='lim_target')},
    ], {'pw': server.password})
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result('full')['manifest']['database_objects']['definers'] == {'other@localhost': ['views']}
    refused = result.result('restore')
    assert refused['_event'] == 'runner_on_failed', refused
    assert 'before loading anything' in refused['msg'] and 'other@localhost' in refused['msg']
    assert 'load_dump' not in (refused.get('phases') or {})
    assert server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'lim\\_t%'") == []


def test_replace_into_hostile_name_with_views_routines_triggers(mariadb_factory, tmp_path):
    """A target named with ' " \\ ; -- and non-ASCII, holding views, routines and triggers, is replaced
    (its objects saved for the way back with mariadb-dump, which fails on such names only with --events)."""
    server = mariadb_factory()
    load(server, r"""
CREATE DATABASE plainsrc CHARACTER SET latin1;
USE plainsrc;
CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
INSERT INTO t VALUES (1, 'a'), (2, 'b');
CREATE VIEW v AS SELECT id FROM t;
CREATE PROCEDURE p() SELECT COUNT(*) FROM t;
CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.v = UPPER(NEW.v);
""")
    source = snapshot(server, 'plainsrc')
    conn = login(server, 'pw')
    dest = tmp_path / 'backups'
    restore = dict(conn, engine='mariadb', src=str(dest), source_database='plainsrc', database=COPY)
    result = play(tmp_path, [
        {'name': 'full', 'opsready.operations.db_backup': dict(conn, engine='mariadb', database='plainsrc',
                                                               dest=str(dest))},
        {'name': 'first', 'opsready.operations.db_restore': restore},
        {'name': 'replace', 'opsready.operations.db_restore': dict(restore, replace=True)},
    ], {'pw': server.password})
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result('replace')['replaced'] is True
    assert_same(source, snapshot(server, COPY), 'replace into a hostile name')
