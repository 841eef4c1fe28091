"""Fidelity, MariaDB, round 5: events the binary logs create, alter, enable, disable or rename (replayed into the
restore's temporary copy while the event scheduler may run them), and object kinds and properties the earlier rounds
(``test_mariadb*.py``) did not create."""

from __future__ import annotations

import threading
import time

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
