"""MariaDB: a scratch copy does not run the source's scheduled events (``events: disabled``, the drill's choice).

A restore gives the events the status they had at backup time, so a DR drill's scratch copy of a database with
an enabled event started running it on the event scheduler the moment the swap was done, for as long as the
drill held the copy: the body of an event often names another database on the same server (the production one:
``DELETE FROM shop.sessions ...``), so the drill wrote to production.
"""

from __future__ import annotations

import time

from tests.fidelity.test_mariadb_gaps import backup, restore

# The scheduler is off while the copy loads: an event due during the load would run in the copy and the restore
# refuses that copy (a separate, older guard). It is turned on once the restore is done, the drill's situation.
SOURCE = """
SET GLOBAL event_scheduler = OFF;
CREATE DATABASE shop;
CREATE DATABASE side;
CREATE TABLE side.hits (db VARCHAR(64), at DATETIME(6));
USE shop;
CREATE TABLE t (id INT PRIMARY KEY);
CREATE EVENT tick ON SCHEDULE EVERY 1 SECOND DO INSERT INTO side.hits VALUES (DATABASE(), NOW(6));
CREATE EVENT off ON SCHEDULE EVERY 1 DAY DISABLE DO INSERT INTO side.hits VALUES ('off', NOW(6));
"""


def status(server, db):
    return server.sql("SELECT EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '%s' "
                      'ORDER BY 1' % db)


def hits_from(server, db):
    return int(server.sql("SELECT COUNT(*) FROM side.hits WHERE db = '%s'" % db)[0][0])


def test_disabled_leaves_every_event_of_the_copy_disabled_and_source_keeps_status(mariadb_factory, tmp_path):
    server = mariadb_factory()
    server.sql(SOURCE)
    backup(server, 'shop', tmp_path / 'b')
    result = restore(server, tmp_path / 'b', 'shop', 'scratch', events='disabled')
    assert status(server, 'scratch') == [('off', 'DISABLED'), ('tick', 'DISABLED')], result
    # the default gives each event the status it was backed up with (a real restore resumes the schedule)
    restore(server, tmp_path / 'b', 'shop', 'again')
    assert status(server, 'again') == [('off', 'DISABLED'), ('tick', 'ENABLED')]
    server.sql('SET GLOBAL event_scheduler = ON')
    try:
        time.sleep(2.5)
        assert hits_from(server, 'scratch') == 0, 'the scratch copy ran the source event'
        assert hits_from(server, 'shop') > 0, 'the source event did not run: the test proves nothing'
    finally:
        server.sql('SET GLOBAL event_scheduler = OFF')
