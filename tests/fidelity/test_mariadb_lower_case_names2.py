"""Fidelity, MariaDB with lower_case_table_names=1 (round 2): the server keeps a database's name in its privilege
tables and writes it in its binary logs folded by its own case table (``files_charset_info``, utf8mb3_general_ci),
not by Python's ``str.lower``. A backup of ``MyApp`` read its privileges by the name as written (mysql.db holds
``myapp``): none were recorded, so a restore under another name gave them to nobody; and a backup of ``İx`` (U+0130)
looked for ``use `i̇x``` (Python folds İ to i + a combining dot) where the server logs ``use `ix```: every statement
of the replay was skipped or refused. (The server of this file is started with the setting: a fresh datadir.)"""

from __future__ import annotations

import datetime
import time
from types import SimpleNamespace
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, params, restore
from tests.harness.servers import MariaDBServer

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    late_grants, logged_name)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine

# names whose server folding is not Python's: İ (U+0130; Python: i + U+0307), ẞ (U+1E9E; the server keeps it),
# Glagolitic Ⰰ (U+2C00) and Georgian Ⴀ (U+10A0; newer than the server's table: kept), Σ at a word's end (Python:
# final sigma ς; the server: σ), the Kelvin sign (both: k)
SPECIAL = ['\u0130x', '\u1e9ex', '\u2c00x', '\u10a0x', 'A\u03a3', '\u212ax']


@pytest.fixture(scope='module')
def server() -> Iterator[MariaDBServer]:
    server = MariaDBServer(extra_conf={'lower_case_table_names': 1})
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope='module')
def mixed(server, tmp_path_factory) -> Dict[str, Any]:
    tmp = tmp_path_factory.mktemp('lctn2')
    server.sql("CREATE DATABASE MyApp; CREATE TABLE MyApp.t (id INT, Col INT); INSERT INTO MyApp.t VALUES (1, 1); "
               "CREATE USER app; GRANT SELECT ON MyApp.* TO app; GRANT INSERT (Col) ON MyApp.t TO app; "
               "GRANT DELETE ON MyApp.T TO app", superuser=True)
    out: Dict[str, Any] = {'lctn': server.sql('SELECT @@lower_case_table_names')}
    backup(server, 'MyApp', tmp / 'b')
    out['restored'] = restore(server, tmp / 'b', 'MyApp', 'copy_app')
    out['db'] = server.sql("SELECT Db, Select_priv FROM mysql.db WHERE User = 'app' ORDER BY Db", superuser=True)
    out['tables'] = server.sql("SELECT Db, Table_name, Table_priv FROM mysql.tables_priv WHERE User = 'app' "
                               "ORDER BY Db", superuser=True)
    out['columns'] = server.sql("SELECT Db, Column_name FROM mysql.columns_priv WHERE User = 'app' ORDER BY Db",
                                superuser=True)
    server.sql('GRANT UPDATE ON MyApp.* TO app', superuser=True)
    engine = get_engine('mariadb', params(server))
    recorded = {'database_grants': {'database': [], 'tables': [], 'columns': [], 'routines': []}}
    out['late'] = late_grants(engine, SimpleNamespace(database='MyApp', data=recorded))
    return out


def test_a_mixed_case_named_database_s_privileges_are_recorded_and_given(mixed):
    """Failed before: read_grants asked mysql.db for Db 'MyApp' (it holds 'myapp'): the backup recorded no privilege
    and the restore under another name gave copy_app none."""
    assert mixed['lctn'] == [('1',)]
    assert not isinstance(mixed['restored'], Exception), mixed['restored']
    assert ('copy\\_app', 'Y') in mixed['db'], mixed['db']
    assert any(r[0] == 'copy_app' and r[1] == 't' for r in mixed['tables']), mixed['tables']
    assert ('copy_app', 'Col') in mixed['columns'], mixed['columns']


def test_late_grants_read_the_name_the_server_keeps(mixed):
    """Failed before: late_grants (the privileges granted on the source since the dump, lent to the copy) found none."""
    assert [i['privileges'] for i in mixed['late'].get('database', [])] == [['SELECT', 'UPDATE']], mixed['late']
    assert mixed['late'].get('columns'), mixed['late']


@pytest.mark.parametrize('name', SPECIAL)
def test_the_logged_name_is_the_server_s_folding(server, name):
    """Failed before (İ, ẞ, Ⰰ, Ⴀ, final Σ): Python's str.lower, not the server's case table."""
    before = set(server.sql('SHOW DATABASES', superuser=True))
    server.sql('CREATE DATABASE `%s`' % name, superuser=True)
    try:
        kept = sorted(set(server.sql('SHOW DATABASES', superuser=True)) - before)
        assert len(kept) == 1 and logged_name(get_engine('mariadb', params(server)), name) == kept[0][0], kept
    finally:
        server.sql('DROP DATABASE `%s`' % name, superuser=True)


@pytest.mark.parametrize('name', ['A\u03a3', '\u0130x'])
def test_a_backup_of_a_name_the_server_folds_its_own_way_is_replayed(server, tmp_path, name):
    """Failed before: backed up as AΣ, the statements logged under use `aσ` (Python folds a final Σ to ς) were not
    the source's for the replay; İx could not be backed up (information_schema.SCHEMATA does not find it by that name
    on 10.11: see test_mariadb_lower_case_names3)."""
    server.sql('CREATE DATABASE `%s`; CREATE TABLE `%s`.t (id INT); INSERT INTO `%s`.t VALUES (1)' % (name, name, name),
               superuser=True)
    try:
        backup(server, name, tmp_path / 's')
        time.sleep(1.1)
        server.sql('SET binlog_format=STATEMENT; USE `%s`; INSERT INTO t VALUES (2)' % name, superuser=True)
        time.sleep(1.1)
        stop = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        server.sql('CREATE DATABASE later_s', superuser=True)
        backup(server, name, tmp_path / 's', kind='log')
        restore(server, tmp_path / 's', name, 'copy_s', stop_at=stop)
        assert server.sql('SELECT id FROM copy_s.t ORDER BY id') == [('1',), ('2',)]
    finally:
        server.sql('DROP DATABASE IF EXISTS `%s`; DROP DATABASE IF EXISTS copy_s; DROP DATABASE IF EXISTS later_s'
                   % name, superuser=True)
