"""Fidelity, MariaDB, round 5: events the binary logs create, alter, enable, disable or rename (replayed into the
restore's temporary copy while the event scheduler may run them), and object kinds and properties the earlier rounds
(``test_mariadb*.py``) did not create."""

from __future__ import annotations

import threading
import time

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.fidelity.test_mariadb_round4 import hold_lock

# The source: a procedure that writes to ANOTHER database (side.hits, what a production job does), events of the
# dump in each status. After the dump the binary logs create events (with and without a status clause, ON SLAVE),
# enable a disabled one, disable an enabled one, rename one; every event calls note(), so an event that runs
# inside the temporary copy writes the copy's name into side.hits. A statement-logged INSERT whose trigger writes
# side.blocker holds the replay (the test locks side.blocker) after the events were created: a scheduler that may
# run them has that long to do so.
EVENTS = r"""
SET GLOBAL event_scheduler = OFF;
CREATE DATABASE side;
CREATE TABLE side.hits (db VARCHAR(200), ev VARCHAR(64), at DATETIME(6));
CREATE TABLE side.blocker (id INT);
CREATE DATABASE rev;
USE rev;
CREATE TABLE t (id INT PRIMARY KEY);
CREATE PROCEDURE note(what VARCHAR(64)) INSERT INTO side.hits VALUES (DATABASE(), what, NOW(6));
CREATE TRIGGER hold AFTER INSERT ON t FOR EACH ROW INSERT INTO side.blocker VALUES (NEW.id);
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
INSERT INTO t VALUES (1);
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
            ready = threading.Event()
            thread = hold_lock(server, 2.5, ready)
            result = restore(server, tmp_path / 'b', 'rev', target, **kw)
            thread.join(30)
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
