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
