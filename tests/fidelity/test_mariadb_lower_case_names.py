"""Fidelity, MariaDB with lower_case_table_names=1: the server compares database names without case, so
``INSERT INTO SRC.t`` is a write to src's table t. The scan before a point-in-time replay compared names byte for
byte: sent while another database was the default, the statement was not seen to name src, the replay (which keeps
a statement by its default database) skipped it, and the restored copy silently missed the row. Now refused, as
``src.t`` is. (The server of this file is started with the setting: a fresh datadir, as every fidelity file's.)"""

from __future__ import annotations

import datetime
import time
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.harness.servers import MariaDBServer

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

BEFORE = ("CREATE DATABASE src; CREATE TABLE src.t (id INT); INSERT INTO src.t VALUES (1); CREATE DATABASE other; "
          "CREATE DATABASE MyApp; CREATE TABLE MyApp.t (id INT); INSERT INTO MyApp.t VALUES (1)")
STATEMENTS = {
    'upper': "SET binlog_format=STATEMENT; USE other; INSERT INTO SRC.t VALUES (2)",
    'plain': "SET binlog_format=STATEMENT; USE other; INSERT INTO src.t VALUES (3)",   # refused before too
    # USE SRC: with 1 the server logs the default database folded (use `src`), so mariadb-binlog --database=src
    # (a byte comparison) keeps it and the scan sees the source (with 2 it would log `SRC`: see the unit tests)
    'use_upper': "SET binlog_format=STATEMENT; USE SRC; INSERT INTO t VALUES (4)",
    # the server keeps it as src's (mysql.db: src): the copy gets it too
    'grant': "CREATE USER app; GRANT SELECT ON SRC.* TO app",
    # backed up as MyApp (db_backup database: MyApp; the server keeps it as myapp and logs use `myapp`)
    'mixed': "SET binlog_format=STATEMENT; USE MyApp; INSERT INTO t VALUES (5)",
    'mixed_row': "SET binlog_format=ROW; USE MyApp; INSERT INTO t VALUES (6)",
}
BACKED_UP = {'mixed': 'MyApp', 'mixed_row': 'MyApp'}   # the others: src


@pytest.fixture(scope='module')
def replayed(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    tmp = tmp_path_factory.mktemp('lctn')
    server = MariaDBServer(extra_conf={'lower_case_table_names': 1})
    try:
        server.start()
        server.sql(BEFORE, superuser=True)
        out: Dict[str, Any] = {'lctn': server.sql('SELECT @@lower_case_table_names')}
        stops: Dict[str, datetime.datetime] = {}
        for name, sql in STATEMENTS.items():
            backup(server, BACKED_UP.get(name, 'src'), tmp / name)
            time.sleep(1.1)
            server.sql(sql, superuser=True)
            time.sleep(1.1)
            stops[name] = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        server.sql('CREATE TABLE other.later (id INT)', superuser=True)
        for name in stops:
            backup(server, BACKED_UP.get(name, 'src'), tmp / name, kind='log')
        for name, stop in stops.items():
            try:
                if name in BACKED_UP:   # check mode reads the logs as the real run does
                    out[name + '_check'] = restore(server, tmp / name, BACKED_UP[name], 'src_' + name, stop_at=stop,
                                                   check_mode=True)
                out[name] = restore(server, tmp / name, BACKED_UP.get(name, 'src'), 'src_' + name, stop_at=stop)
                out[name + '_rows'] = server.sql('SELECT id FROM src_%s.t ORDER BY id' % name)
                out[name + '_grants'] = server.sql("SELECT Db FROM mysql.db WHERE User = 'app'", superuser=True)
            except Exception as exc:   # each test names the failure
                out[name] = exc
        yield out
    finally:
        server.cleanup()


@pytest.mark.parametrize('name', ['upper', 'plain'])
def test_a_statement_naming_the_source_in_another_case_sent_without_use_is_refused(replayed, name):
    """Failed before ('upper'): the restore succeeded and the copy silently missed row 2 (rows 1 only)."""
    assert replayed['lctn'] == [('1',)]
    refused = replayed[name]
    assert isinstance(refused, OpsReadyError), (refused, replayed.get(name + '_rows'))
    assert 'names database src explicitly' in str(refused) and 'stop_at' in str(refused)


def test_a_statement_sent_with_use_of_the_source_in_another_case_is_replayed(replayed):
    """Guard: ``USE SRC`` is logged ``use `src``` on this server, so the replay keeps the statement."""
    assert not isinstance(replayed['use_upper'], Exception), replayed['use_upper']
    assert replayed['use_upper_rows'][-1] == ('4',)   # (rows 2 and 3 were in its full backup)


def test_a_grant_naming_the_source_in_another_case_is_given_to_the_copy(replayed):
    """Failed before (unit: test_the_grant_ledger_folds_database_names_where_the_server_does): the ledger read
    ``GRANT SELECT ON SRC.*`` as another database's, so the copy did not get it."""
    assert not isinstance(replayed['grant'], Exception), replayed['grant']
    assert ('src\\_grant',) in replayed['grant_grants'], replayed['grant_grants']   # (as apply_grants writes it)


@pytest.mark.parametrize('name', ['mixed', 'mixed_row'])
def test_a_backup_naming_the_database_in_mixed_case_is_replayed(replayed, name):
    """Failed before: backed up as MyApp, every statement logged under use `myapp` was refused as sent in another
    case (a message about lower_case_table_names=2), and mariadb-binlog --database=MyApp would have skipped it."""
    assert not isinstance(replayed[name], Exception), replayed[name]
    assert replayed[name + '_check'].get('changed') is True, replayed[name + '_check']
    # (mixed_row's full backup holds row 5 already)
    assert replayed[name + '_rows'] == [('1',), ('5',)] + ([('6',)] if name == 'mixed_row' else []), \
        replayed[name + '_rows']


def test_lower_case_table_names_2_is_0_on_a_case_sensitive_file_system(tmp_path):
    """What the code must be right for: asked for 2 on a case-sensitive file system (Linux, ext4/xfs), MariaDB warns
    and runs with 0 (names compared exactly); 2 is only run on a case-insensitive one (e.g. an ext4 casefold
    directory), where ``USE Src`` is logged as written (the unit tests refuse a replay holding one)."""
    server = MariaDBServer(extra_conf={'lower_case_table_names': 2})
    try:
        server.start()
        facts = server.sql('SELECT @@lower_case_table_names, @@lower_case_file_system')
    finally:
        server.cleanup()
    assert facts == [('0', '0')] or facts[0][1] == '1', facts
