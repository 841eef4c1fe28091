"""Fidelity, MariaDB, round 4: events on a server whose event scheduler is ON, and regression guards for values and
table kinds that are easy to lose in a dump (big rows, ENUM index 0, TIMESTAMP under a named time zone, generated
and invisible columns, sequences, system-versioned history, CHECK constraints, spatial data)."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from tests.fidelity.test_mariadb_gaps import backup, params, restore
from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import restore as mysql_restore  # noqa: E402,E501
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402

# Every status an event can have, names and comments that hold the status words, a body with ENABLE in a string and
# a comment, a name with a line break and a backtick. Each event writes DATABASE() to side.hits when it runs: a row
# naming the temporary copy is an event that ran inside the copy before the swap.
EVENTS = r"""
SET GLOBAL event_scheduler = OFF;
CREATE DATABASE side;
CREATE TABLE side.hits (db VARCHAR(200), ev VARCHAR(64), at DATETIME(6));
CREATE TABLE side.blocker (id INT);
CREATE DATABASE ev;
USE ev;
CREATE TABLE t (id INT PRIMARY KEY);
CREATE EVENT tick ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE ENABLE
  DO INSERT INTO side.hits VALUES (DATABASE(), 'tick', NOW(6));
CREATE EVENT `ON COMPLETION PRESERVE ENABLE DO` ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE DISABLE
  COMMENT 'ENABLE DO x ''*/ ENABLE' DO INSERT INTO side.hits VALUES (DATABASE(), 'off', NOW(6));
CREATE EVENT `sl``ave
two` ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE DISABLE ON SLAVE
  DO INSERT INTO side.hits VALUES (DATABASE(), 'slave', NOW(6));
DELIMITER //
CREATE EVENT `body ENABLE` ON SCHEDULE EVERY 1 SECOND STARTS '2020-01-01 00:00:00' ENDS '2037-01-01 00:00:00'
  ON COMPLETION PRESERVE COMMENT 'DISABLE' DO BEGIN
  /* ON COMPLETION PRESERVE DISABLE */
  INSERT INTO side.hits VALUES (DATABASE(), 'body', NOW(6)); SET @x = 'DISABLE ON SLAVE';
END//
DELIMITER ;
CREATE EVENT later ON SCHEDULE AT '2036-01-01 00:00:00' ON COMPLETION PRESERVE ENABLE
  DO INSERT INTO side.hits VALUES (DATABASE(), 'later', NOW(6));
SET NAMES latin1; SET time_zone = '+05:00'; SET sql_mode = 'ANSI_QUOTES';
CREATE EVENT zoned ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE
  DO INSERT INTO side.hits VALUES (DATABASE(), 'zoned', NOW(6));
SET NAMES utf8mb4; SET time_zone = SYSTEM; SET sql_mode = DEFAULT;
ALTER DATABASE ev COLLATE utf8mb4_unicode_ci;
-- loaded after the events: holds the load while another session locks side.blocker
CREATE VIEW v AS SELECT id FROM side.blocker;
"""


def statuses(server, db):
    """Each event's status and what else an ALTER EVENT would rewrite (the session's character set, the database's
    collation), with the rest of its definition."""
    return server.sql("SELECT EVENT_NAME, STATUS, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION, "
                      "SQL_MODE, TIME_ZONE, DEFINER, EVENT_DEFINITION, INTERVAL_VALUE, INTERVAL_FIELD, STARTS, ENDS, "
                      "EXECUTE_AT, ON_COMPLETION, EVENT_COMMENT FROM information_schema.EVENTS "
                      "WHERE EVENT_SCHEMA = '%s' ORDER BY 1" % db)


def hold_lock(server, seconds, ready):
    """side.blocker locked for ``seconds`` by another session: the restore's load waits at the view after the
    events were created, so a scheduler that may run them has that long to do so."""
    def run():
        server.sql('LOCK TABLES side.blocker WRITE; DO SLEEP(%s); UNLOCK TABLES;' % seconds)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'DO SLEEP(%s)%%'"
                      % seconds)[0][0] != '0':
            ready.set()
            return thread
        time.sleep(0.05)
    raise AssertionError('the locking session did not start')


@pytest.fixture
def scheduled(mariadb_factory):
    server = mariadb_factory()
    server.sql(EVENTS)
    try:
        yield server
    finally:
        server.sql('SET GLOBAL event_scheduler = OFF')


def test_events_due_every_second_restore_with_scheduler_on(scheduled, tmp_path):
    """event_scheduler ON and events due every second: the dump's CREATE EVENT ... ENABLE ran them in the temporary
    copy while the rest of the dump loaded, and the restore refused the copy ("ran inside the temporary copy"). Every
    event loads DISABLED; after the swap each gets its source status back (or stays disabled: events=disabled)."""
    server = scheduled
    source = statuses(server, 'ev')
    assert sorted(r[1] for r in source) == ['DISABLED', 'ENABLED', 'ENABLED', 'ENABLED', 'ENABLED',
                                            'SLAVESIDE_DISABLED']
    assert {r[4] for r in source} == {'utf8mb4_general_ci'} and ('zoned', 'ENABLED', 'latin1') == source[-1][:3]
    backup(server, 'ev', tmp_path / 'b')
    server.sql('SET GLOBAL event_scheduler = ON')
    for target, kw in (('ev_copy', {}), ('ev_drill', {'events': 'disabled'})):
        ready = threading.Event()
        thread = hold_lock(server, 2.5, ready)
        result = restore(server, tmp_path / 'b', 'ev', target, **kw)
        thread.join(30)
        ran = server.sql("SELECT db, ev FROM side.hits WHERE db LIKE '%opsready%'")
        assert ran == [], 'events ran inside the temporary copy: %s' % ran
        want = source if not kw else [r[:1] + ('DISABLED',) + r[2:] for r in source]
        assert statuses(server, target) == want, result
    time.sleep(1.5)
    assert server.sql("SELECT COUNT(*) FROM side.hits WHERE db = 'ev_copy' AND ev = 'tick'")[0][0] != '0', \
        'the restored enabled event does not run'
    assert server.sql("SELECT COUNT(*) FROM side.hits WHERE db = 'ev_drill'")[0][0] == '0'


def test_an_event_that_ran_in_the_copy_still_refuses_it(scheduled):
    """The guard behind the rewrite: an event of the copy that has run (LAST_EXECUTED set) fails the restore."""
    server = scheduled
    server.sql('SET GLOBAL event_scheduler = ON')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not server.sql(
            "SELECT LAST_EXECUTED FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'ev' AND EVENT_NAME = 'tick'"
    )[0][0]:
        time.sleep(0.2)
    server.sql('SET GLOBAL event_scheduler = OFF')
    engine = get_engine('mariadb', params(server))
    with pytest.raises(OpsReadyError, match='ran inside the temporary copy'):
        mysql_restore._quiesce_events(engine, 'ev', {})


DATABASE_FUNCTION = r"""
CREATE DATABASE src;
USE src;
CREATE TABLE t (id INT PRIMARY KEY);
CREATE TABLE plain (id INT PRIMARY KEY);
CREATE TABLE audit (db VARCHAR(200), what VARCHAR(20));
CREATE FUNCTION whereami() RETURNS VARCHAR(200) DETERMINISTIC RETURN DATABASE();
CREATE FUNCTION `indirect`() RETURNS VARCHAR(200) DETERMINISTIC RETURN CONCAT('via ', whereami());
CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (DATABASE(), 'trigger');
CREATE TRIGGER tr_plain AFTER INSERT ON plain FOR EACH ROW INSERT INTO audit VALUES ('fixed', 'plain');
CREATE VIEW here AS SELECT SCHEMA() AS db;
"""


@pytest.mark.parametrize('binlog_format', ['STATEMENT', 'MIXED'])
def test_replayed_statement_firing_a_trigger_that_calls_database_is_named(mariadb_factory, tmp_path, binlog_format):
    """binlog_format=STATEMENT (and MIXED, which logs these as statements too): the replay runs the statement in the
    copy and the copy's trigger, stored function or view computes DATABASE() there: the copy's temporary name was
    written where the source wrote its own, and only statements with DATABASE() in their own text were named."""
    server = mariadb_factory(extra_conf={'binlog_format': binlog_format})
    server.sql(DATABASE_FUNCTION)
    backup(server, 'src', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("USE src; INSERT INTO t VALUES (1); INSERT INTO audit VALUES (`indirect`(), 'func'); "
               "INSERT INTO audit SELECT db, 'view' FROM here; INSERT INTO plain VALUES (1)")
    time.sleep(1.1)
    backup(server, 'src', tmp_path / 'b', kind='log')
    result = restore(server, tmp_path / 'b', 'src', 'dst')
    written = server.sql("SELECT what FROM dst.audit WHERE db LIKE '%opsready_restore%' ORDER BY 1")
    assert written == [('func',), ('trigger',), ('view',)], written   # the hazard: the temporary name in the data
    assert server.sql("SELECT db FROM dst.audit WHERE what = 'func'")[0][0].startswith('via dst__opsready_restore')
    warning = ' '.join(w for w in result.get('warnings', []) if 'DATABASE()' in w)
    for statement in ('INSERT INTO t VALUES (1)', "INSERT INTO audit VALUES (`indirect`(), 'func')",
                      "INSERT INTO audit SELECT db, 'view' FROM here"):
        assert statement in warning, (statement, result.get('warnings'))
    assert 'INSERT INTO plain' not in warning and '(through trigger tr)' in warning, warning


def test_rows_longer_than_the_client_default_packet_round_trip(mariadb_factory, tmp_path):
    """A row longer than 16 MiB (the dump tool's and the client's default max_allowed_packet) on a server that allows
    64 MiB: the dump failed to read it ("Got packet bigger than 'max_allowed_packet'"), and a row of 9 MiB, written
    as hex, made an INSERT longer than the client would send, so the restore failed. Every row comes back."""
    server = mariadb_factory(extra_conf={'max_allowed_packet': '64M'})
    server.sql("CREATE DATABASE big; CREATE TABLE big.b (id INT PRIMARY KEY, v LONGBLOB); "
               "INSERT INTO big.b VALUES (1, REPEAT('x', 17 * 1024 * 1024)), (2, 'small'), "
               "(3, REPEAT(X'00FF', 9 * 512 * 1024))")
    rows = 'SELECT id, LENGTH(v), MD5(v) FROM %s.b ORDER BY id'
    source = server.sql(rows % 'big')
    backup(server, 'big', tmp_path / 'b')
    restore(server, tmp_path / 'b', 'big', 'big2')
    assert server.sql(rows % 'big2') == source


def test_row_over_the_servers_max_allowed_packet_fails_loudly_and_says_what_to_do(mariadb_factory, tmp_path):
    """A row that fits the server's max_allowed_packet but whose INSERT (hex, twice its size) does not: the load
    fails and is rolled back (no row silently left out), with a message of a readable size (the client echoed
    the whole failed statement, megabytes of hex, into it) that names max_allowed_packet; raised, it restores."""
    server = mariadb_factory(extra_conf={'max_allowed_packet': '4M'})
    server.sql("CREATE DATABASE big; CREATE TABLE big.b (id INT PRIMARY KEY, v LONGBLOB); "
               "INSERT INTO big.b VALUES (1, REPEAT('x', 3 * 1024 * 1024)), (2, 'small')")
    rows = 'SELECT id, LENGTH(v), MD5(v) FROM %s.b ORDER BY id'
    source = server.sql(rows % 'big')
    backup(server, 'big', tmp_path / 'b')
    with pytest.raises(OpsReadyError) as caught:
        restore(server, tmp_path / 'b', 'big', 'big2')
    assert 'max_allowed_packet' in caught.value.message and len(caught.value.message) < 4000, \
        caught.value.message[:4000]
    assert len(str(caught.value.details.get('stderr', ''))) < 100000
    assert server.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'big2%'") == [('0',)]
    server.sql('SET GLOBAL max_allowed_packet = 16 * 1024 * 1024')
    restore(server, tmp_path / 'b', 'big', 'big2')
    assert server.sql(rows % 'big2') == source


GUARDS = r"""
CREATE DATABASE g;
USE g;
SET SESSION sql_mode = '';
CREATE TABLE en (id INT PRIMARY KEY, e ENUM('a', 'b') NOT NULL, z ENUM('', 'x') NULL, s SET('p', 'q'));
INSERT INTO en VALUES (1, 'bogus', 'x', 'p,bogus'), (2, 'b', 'bogus', ''), (3, 'a', '', 'q');
SET SESSION sql_mode = DEFAULT;
SET SESSION time_zone = 'Europe/Paris';
CREATE TABLE tz (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL, dt DATETIME(6), d DATE);
-- the hour Paris lives twice (2024-10-27 02:00-03:00, CEST then CET), and the one it skips in spring
INSERT INTO tz VALUES (1, FROM_UNIXTIME(1729989000.25), '2024-10-27 02:30:00.25', '2024-10-27'),
  (2, FROM_UNIXTIME(1729992600.5), NULL, NULL), (3, '2024-03-31 03:30:00', '2024-03-31 02:30:00', NULL),
  (4, '1970-01-01 01:00:01', '1000-01-01 00:00:00', '9999-12-31');
SET SESSION time_zone = SYSTEM;
CREATE TABLE gen (id INT PRIMARY KEY, a INT, b VARCHAR(10), v INT AS (a * 2) VIRTUAL, s VARCHAR(20) AS (CONCAT(b, '!'))
  STORED, h INT INVISIBLE DEFAULT 7, vi INT AS (a + h) VIRTUAL INVISIBLE, KEY (v), UNIQUE KEY (s));
INSERT INTO gen (id, a, b, h) VALUES (1, 1, 'x', 1), (2, NULL, NULL, NULL), (3, 3, 'z', DEFAULT);
CREATE SEQUENCE sq START WITH 100 INCREMENT BY 5 MINVALUE 1 MAXVALUE 10000 CACHE 3 CYCLE;
DO NEXTVAL(sq); DO NEXTVAL(sq); DO NEXTVAL(sq); DO NEXTVAL(sq);
CREATE SEQUENCE sq_nocache NOCACHE;
DO NEXTVAL(sq_nocache); DO NEXTVAL(sq_nocache);
CREATE TABLE hist (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING;
INSERT INTO hist VALUES (1, 1), (2, 2);
DO SLEEP(0.2);
UPDATE hist SET v = v + 10;
DO SLEEP(0.2);
DELETE FROM hist WHERE id = 2;
CREATE TABLE chk (id INT PRIMARY KEY, n INT CHECK (n > 0), m INT, CONSTRAINT both_pos CHECK (n + m > 0));
INSERT INTO chk VALUES (1, 1, 1);
SET SESSION check_constraint_checks = 0;
INSERT INTO chk VALUES (2, -1, -5);
SET SESSION check_constraint_checks = 1;
CREATE TABLE geo (id INT PRIMARY KEY, g GEOMETRY REF_SYSTEM_ID=4326 NOT NULL, p POINT, c GEOMETRYCOLLECTION,
  SPATIAL KEY (g));
INSERT INTO geo VALUES (1, ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 0),(1 1,2 1,2 2,1 1))', 4326),
  ST_PointFromText('POINT(1.5 -2.25)'),
  ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1e300 -1e-300))')),
  (2, ST_GeomFromText('MULTIPOINT(0 0,1 1)', 4326), NULL, ST_GeomFromText('GEOMETRYCOLLECTION EMPTY'));
"""

GUARD_QUERIES = {
    'enum': 'SELECT id, e + 0, HEX(e), z + 0, HEX(z), s + 0 FROM en ORDER BY id',
    'timestamps': 'SELECT id, UNIX_TIMESTAMP(ts), dt, d FROM tz ORDER BY id',
    'generated': 'SELECT id, a, b, v, s, h, vi FROM gen ORDER BY id',
    'sequence': 'SELECT * FROM sq',
    'sequence_nocache': 'SELECT * FROM sq_nocache',
    'history': 'SELECT id, v, UNIX_TIMESTAMP(ROW_START) - (SELECT UNIX_TIMESTAMP(MIN(ROW_START)) FROM hist FOR '
               'SYSTEM_TIME ALL), ROW_END = TIMESTAMP\'2038-01-19 03:14:07.999999\' FROM hist FOR SYSTEM_TIME ALL '
               'ORDER BY id, ROW_START',
    'history_rows': 'SELECT COUNT(*) FROM hist FOR SYSTEM_TIME ALL',
    'checks': 'SELECT * FROM chk ORDER BY id',
    'geo': 'SELECT id, HEX(ST_AsWKB(g)), ST_SRID(g), HEX(p), HEX(c) FROM geo ORDER BY id',
}


def guarded(server, db):
    out = {name: server.sql("USE %s; SET time_zone = '+00:00'; %s" % (db, sql))
           for name, sql in GUARD_QUERIES.items()}
    out['definitions'] = {t: server.sql('SHOW CREATE TABLE %s.%s' % (db, t))[0][1] for t in
                          ('en', 'tz', 'gen', 'sq', 'hist', 'chk', 'geo')}
    return out


def test_values_and_table_kinds_round_trip_under_a_named_time_zone(mariadb_factory, tmp_path):
    """ENUM/SET values stored under a non-strict sql_mode (index 0, the empty error value, next to a real ''
    member), TIMESTAMPs written in the hour a named time zone lives twice and read back on a server whose
    time_zone is that zone, VIRTUAL/STORED/INVISIBLE columns, sequences (cached and not) with their current
    values, system-versioned history, rows that violate a CHECK (written with check_constraint_checks=0), spatial
    data with SRIDs: each restored as the source holds it."""
    server = mariadb_factory()
    zone = server.sql("SELECT COUNT(*) FROM mysql.time_zone_name WHERE Name = 'Europe/Paris'")[0][0]
    if zone == '0':
        import subprocess
        sql = subprocess.run([server.bin('mariadb-tzinfo-to-sql'), '/usr/share/zoneinfo/Europe/Paris', 'Europe/Paris'],
                             capture_output=True, check=True).stdout.decode()
        server.sql('USE mysql;\n' + sql, superuser=True)
    server.sql("SET GLOBAL time_zone = 'Europe/Paris'")
    server.sql(GUARDS)
    source = guarded(server, 'g')
    assert source['enum'][0][1:3] == ('0', '') and source['checks'][1] == ('2', '-1', '-5')
    assert len({r[1] for r in source['timestamps'][:2]}) == 2 and source['history_rows'] == [('4',)]
    backup(server, 'g', tmp_path / 'b')
    restore(server, tmp_path / 'b', 'g', 'g2')
    restored = guarded(server, 'g2')
    for snap in (source, restored):   # z's error value next to its '' member: the next test
        snap['enum'] = [r[:3] + r[4:] for r in snap['enum']]
    assert restored == source


@pytest.mark.xfail(strict=True, reason=(
    "mariadb-dump writes an ENUM value as its text: the error value (index 0, stored for an invalid value under a "
    "non-strict sql_mode) is written '' like a real '' member, and loads as that member (index 1). The dump "
    "carries nothing that tells them apart; the backup would have to record the rows (ENUM columns with a '' member "
    "only) and the restore set them back by key."))
def test_enum_error_value_next_to_an_empty_member(mariadb_factory, tmp_path):
    server = mariadb_factory()
    server.sql("CREATE DATABASE g; SET SESSION sql_mode = ''; CREATE TABLE g.en (id INT PRIMARY KEY, z ENUM('', 'x')); "
               "INSERT INTO g.en VALUES (1, 'bogus'), (2, ''), (3, 'x')")
    query = 'SELECT id, z + 0 FROM %s.en ORDER BY id'
    assert server.sql(query % 'g') == [('1', '0'), ('2', '1'), ('3', '2')]
    backup(server, 'g', tmp_path / 'b')
    restore(server, tmp_path / 'b', 'g', 'g2')
    assert server.sql(query % 'g2') == server.sql(query % 'g')


def test_enum_error_value_next_to_an_empty_member_is_named(mariadb_factory, tmp_path):
    """What the dump cannot carry (the previous test) is said: by the backup (its manifest's warning and
    enum_error_values) and by every restore of it. A '' member whose rows are all real members, a '' inside another
    member's text, and the error value in a column without a '' member (it round-trips) are not named."""
    server = mariadb_factory()
    server.sql("CREATE DATABASE g; SET SESSION sql_mode = ''; USE g; "
               "CREATE TABLE en (id INT PRIMARY KEY, z ENUM('', 'x'), ok ENUM('', 'y'), q ENUM('a''''b', 'c'), "
               "n ENUM('a', 'b')); INSERT INTO en VALUES (1, 'bogus', '', 'bogus', 'bogus'), (2, 'bogus', 'y', 'c', "
               "'a'), (3, '', NULL, 'a''''b', NULL)")
    manifest = backup(server, 'g', tmp_path / 'b')['manifest']
    assert manifest.get('enum_error_values') == {'g.en.z': 2}, manifest
    assert 'g.en.z (2)' in manifest['warning']
    result = restore(server, tmp_path / 'b', 'g', 'g2')
    assert any('g.en.z' in w and "error value (index 0)" in w for w in result.get('warnings', [])), result
    assert server.sql('SELECT id, q + 0, n + 0 FROM g2.en ORDER BY id') == server.sql(
        'SELECT id, q + 0, n + 0 FROM g.en ORDER BY id')


def test_all_databases_dump_is_refused_not_loaded_over_the_live_databases(mariadb_factory, tmp_path):
    """A restore of an all-databases dump (source_database=@all) into a target name loaded its CREATE DATABASE /
    USE statements as written: every live database of the server was dropped and recreated from the dump (rows
    written since were gone, the grant tables too), and the run reported the empty target as restored."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions

    import zstandard

    server = mariadb_factory()
    server.sql('CREATE DATABASE a1; CREATE TABLE a1.t (id INT); INSERT INTO a1.t VALUES (1)')
    run_backup(get_engine('mariadb', params(server)),
               BackupOptions(kind='full', dest=str(tmp_path / 'all'), all_databases=True))
    # what it is for: loaded by hand onto a server to replace, its accounts and grants (rows of the mysql schema's
    # tables) take effect at once
    [dump] = (tmp_path / 'all').rglob('*.sql.zst')
    with open(dump, 'rb') as handle:
        text = zstandard.ZstdDecompressor().stream_reader(handle).read()
    assert b'INSERT INTO `global_priv`' in text and b'\n/*! FLUSH PRIVILEGES */;' in text
    server.sql('INSERT INTO a1.t VALUES (2)')
    with pytest.raises(OpsReadyError, match='all-databases dump'):
        restore(server, tmp_path / 'all', '@all', 'x1')
    assert server.sql('SELECT id FROM a1.t ORDER BY id') == [('1',), ('2',)]
    assert server.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'x1%'") == [('0',)]
