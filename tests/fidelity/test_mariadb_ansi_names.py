"""Fidelity, MariaDB: the scan before a point-in-time replay reads the names of a statement under the sql_mode it ran
with (mariadb-binlog prints ``SET @@session.sql_mode=N`` before it). With ANSI_QUOTES, ``"aq"."t"`` is the table t
of database aq; read with the default sql_mode it was two strings, so:

- ``UPDATE "aq"."t"`` / ``ALTER TABLE "aq"."t"`` sent while another database was the default was not seen to name
  the source: the replay (which keeps a statement by its default database) skipped it and the restored copy silently
  missed it, where the same statement written ``aq.t`` is refused;
- ``INSERT INTO "aq_live"."t"`` sent with USE aq was not seen to name another database: the replay ran it as
  written, and the live aq_live.t got the row a second time.

Both are now refused before anything is made, as their unquoted equivalents are. Earlier: ``test_mariadb*.py``."""

from __future__ import annotations

import datetime
import time
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.harness.servers import MariaDBServer

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

BEFORE = ("CREATE DATABASE aq; CREATE TABLE aq.t (id INT); INSERT INTO aq.t VALUES (1); "
          "CREATE DATABASE aq_live; CREATE TABLE aq_live.t (id INT); INSERT INTO aq_live.t VALUES (1); "
          "CREATE TABLE aq_live.audit (id INT); CREATE TABLE aq.t2 (id INT); "
          "CREATE TRIGGER aq.tr AFTER INSERT ON aq.t2 FOR EACH ROW INSERT INTO aq_live.audit VALUES (NEW.id)")
# sent with another database the default: the statement of aq the replay would skip
SKIPPED = {
    'update': "SET binlog_format=STATEMENT; SET sql_mode='ANSI_QUOTES'; USE aq_live; UPDATE \"aq\".\"t\" SET id = 2",
    'alter': "SET sql_mode='ANSI_QUOTES'; USE aq_live; ALTER TABLE \"aq\".t ADD COLUMN c INT",
    'plain': "SET binlog_format=STATEMENT; USE aq_live; UPDATE aq.t SET id = 3",   # the existing, unquoted case
}
# sent with USE aq: the replay would run it against the live aq_live
OTHER = "SET binlog_format=STATEMENT; SET sql_mode='ANSI_QUOTES'; USE aq; INSERT INTO \"aq_live\".\"t\" VALUES (7)"
# sent with USE aq: it fires the trigger tr, whose body writes the live aq_live.audit (replayed, a second time)
REACH = "SET binlog_format=STATEMENT; SET sql_mode='ANSI_QUOTES'; USE aq; INSERT INTO \"t2\" VALUES (5)"
STATEMENTS = dict(SKIPPED, other=OTHER, reach=REACH)


@pytest.fixture(scope='module')
def replayed(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    tmp = tmp_path_factory.mktemp('ansi_names')
    server = MariaDBServer()
    try:
        server.start()
        server.sql(BEFORE, superuser=True)
        stops: Dict[str, datetime.datetime] = {}
        for name in STATEMENTS:
            backup(server, 'aq', tmp / name)
            time.sleep(1.1)
            server.sql(STATEMENTS[name], superuser=True)
            time.sleep(1.1)
            stops[name] = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        server.sql('CREATE TABLE aq_live.later (id INT)', superuser=True)   # the logs go on past the last stop_at
        for name in stops:
            backup(server, 'aq', tmp / name, kind='log')
        out: Dict[str, Any] = {'server': server}
        for name, stop in stops.items():
            out[name + '_before'] = server.sql('SELECT id FROM aq_live.t ORDER BY id')
            out[name + '_audit_before'] = server.sql('SELECT id FROM aq_live.audit ORDER BY id')
            try:   # check mode foresees what the real run does
                out[name + '_check'] = restore(server, tmp / name, 'aq', 'aq_' + name, stop_at=stop, check_mode=True)
            except Exception as exc:
                out[name + '_check'] = exc
            try:
                out[name] = restore(server, tmp / name, 'aq', 'aq_' + name, stop_at=stop)
                out[name + '_rows'] = server.sql('SELECT * FROM aq_%s.t ORDER BY id' % name)
            except Exception as exc:   # each test names the failure
                out[name] = exc
            out[name + '_live'] = server.sql('SELECT id FROM aq_live.t ORDER BY id')
            out[name + '_audit'] = server.sql('SELECT id FROM aq_live.audit ORDER BY id')
            out[name + '_left'] = server.sql("SHOW DATABASES LIKE 'aq\\_%s%%'" % name)
        yield out
    finally:
        server.cleanup()


def test_the_unquoted_statement_of_the_source_sent_without_use_is_refused(replayed):
    """Guard (passed on the old code): the behaviour the ANSI_QUOTES statements below now share."""
    refused = replayed['plain']
    assert isinstance(refused, OpsReadyError), (refused, replayed.get('plain_rows'))
    assert 'names database aq explicitly' in str(refused) and 'stop_at' in str(refused)
    assert replayed['plain_left'] == []


@pytest.mark.parametrize('name', ['update', 'alter'])
def test_an_ansi_quoted_statement_of_the_source_sent_without_use_is_refused(replayed, name):
    """Failed before: the restore succeeded and the copy silently missed the statement (id still 1; no column c)."""
    refused = replayed[name]
    assert isinstance(refused, OpsReadyError), (refused, replayed.get(name + '_rows'))
    assert 'names database aq explicitly' in str(refused) and 'Nothing was restored' in str(refused)
    assert 'stop_at' in str(refused)
    assert replayed[name + '_left'] == []


def test_an_ansi_quoted_statement_run_with_use_naming_another_database_is_refused(replayed):
    """Failed before: the replay ran the INSERT against the live aq_live (a second row 7 there)."""
    refused = replayed['other']
    assert replayed['other_live'] == replayed['other_before'] == [('1',), ('7',)]
    assert isinstance(refused, OpsReadyError), (refused, replayed.get('other_rows'))
    assert 'names database aq_live' in str(refused) and 'Nothing was restored' in str(refused)
    assert replayed['other_left'] == []


def test_check_mode_foresees_the_scan_refusals(replayed):
    """Guard (passed on the old code for the unquoted case; failed for the ANSI ones with the real run): check mode
    refuses each statement of the scan as the real run does."""
    for name in ('plain', 'update', 'alter', 'other'):
        foreseen = replayed[name + '_check']
        assert isinstance(foreseen, OpsReadyError) and str(foreseen) == str(replayed[name]), (name, foreseen)


def test_check_mode_foresees_the_foreign_reach_refusal(replayed):
    """Failed before: check mode reported ok (the foreign-reach scan reads the loaded copy's triggers, which check
    mode never loads), while the real run refused the INSERT firing the trigger that writes the live aq_live.audit.
    Check mode now reads the source database's objects on this server for it, and refuses the same way."""
    refused, foreseen = replayed['reach'], replayed['reach_check']
    assert isinstance(refused, OpsReadyError) and 'trigger tr' in str(refused), refused
    assert replayed['reach_audit'] == replayed['reach_audit_before'] == [('5',)]
    assert replayed['reach_left'] == []
    assert isinstance(foreseen, OpsReadyError), foreseen
    assert 'trigger tr' in str(foreseen) and 'fires, calls or writes through' in str(foreseen)
