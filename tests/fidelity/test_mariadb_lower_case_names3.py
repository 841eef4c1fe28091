"""Fidelity, MariaDB with lower_case_table_names=1 (round 3): a database named ``İx`` (U+0130) is kept as ``ix`` (the
server folds it by its own case table), but ``information_schema.SCHEMATA WHERE SCHEMA_NAME = 'İx'`` finds nothing
on 10.11 (every other lookup by that name does): a backup said the database did not exist, maintenance too. And a
restore's check of its target compared the name the server keeps with the one asked (``myapp`` is not ``MyApp``):
an existing target was taken as absent. Each lookup of a database by name now compares the name the server keeps
(lower_case_table_names 1: the folded name; 2: both folded; 0: exact). (A fresh datadir with the setting.)"""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, params, restore
from tests.harness.servers import MariaDBServer

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.maintenance import MySQLMaintenance
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import objects_of, schema_exists
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import MaintenanceOptions

# İ (U+0130: the server folds it to i, Python to i + U+0307), Σ at a word's end (the server: σ, Python: ς), and a
# name in mixed case
NAMES = ['\u0130x', 'A\u03a3', 'MyApp']


@pytest.fixture(scope='module')
def server() -> Iterator[MariaDBServer]:
    server = MariaDBServer(extra_conf={'lower_case_table_names': 1})
    try:
        server.start()
        assert server.sql('SELECT @@lower_case_table_names') == [('1',)]
        yield server
    finally:
        server.cleanup()


@pytest.fixture()
def named(server, request) -> Iterator[str]:
    name = request.param
    try:
        server.sql("CREATE DATABASE `%s` COMMENT 'kept'; USE `%s`; CREATE TABLE t (id INT); "
                   "INSERT INTO t VALUES (1), (2); "
                   "CREATE VIEW v AS SELECT id FROM t; CREATE PROCEDURE p() SELECT 1; CREATE FUNCTION f() RETURNS INT "
                   "DETERMINISTIC RETURN 1; CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 1; "
                   "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1" % (name, name), superuser=True)
        yield name
    finally:
        server.sql('DROP DATABASE IF EXISTS `%s`; DROP DATABASE IF EXISTS copy_n' % name, superuser=True)


@pytest.mark.parametrize('named', NAMES, indirect=True)
def test_a_database_the_server_folds_its_own_way_is_backed_up_and_restored(server, named, tmp_path):
    """Failed before (İx): 'Database 'İx' does not exist' (database_defaults asked SCHEMATA by the name as written)."""
    manifest = backup(server, named, tmp_path / 'b')
    assert manifest is not None
    restore(server, tmp_path / 'b', named, 'copy_n')
    assert server.sql('SELECT id FROM copy_n.t ORDER BY id') == [('1',), ('2',)]
    assert server.sql("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'copy_n'") \
        == [('kept',)]
    objects = get_engine('mariadb', params(server)).database_objects(named)   # (what the manifest records)
    assert {k: objects[k] for k in ('views', 'routines', 'triggers', 'events')} \
        == {'views': 1, 'routines': 2, 'triggers': 1, 'events': 1}, objects
    assert server.sql("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'copy_n' "
                      "ORDER BY 1") == [('f',), ('p',)]
    assert server.sql("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'copy_n'") == [('1',)]
    assert server.sql("SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'copy_n'") == [('1',)]


@pytest.mark.parametrize('named', NAMES, indirect=True)
def test_a_restore_onto_the_name_itself_sees_the_existing_database(server, named, tmp_path):
    """Failed before (İx, MyApp): schema_exists found nothing (İx) or compared ``myapp`` with ``MyApp``, so the
    target was taken as absent: no refusal of a non-empty target without replace."""
    engine = get_engine('mariadb', params(server))
    assert schema_exists(engine, named)
    backup(server, named, tmp_path / 'b')
    refused = None
    try:
        restore(server, tmp_path / 'b', named, named)
    except Exception as exc:  # noqa: BLE001 # the refusal is the point
        refused = exc
    assert refused is not None and 'exists and is not empty' in str(refused), refused
    restore(server, tmp_path / 'b', named, named, replace=True)
    assert server.sql('SELECT id FROM `%s`.t ORDER BY id' % named) == [('1',), ('2',)]
    objects = objects_of(engine, named)
    assert {k: len(v) for k, v in objects.items()} == {'views': 1, 'routines': 2, 'triggers': 1, 'events': 1}, objects


@pytest.mark.parametrize('named', NAMES, indirect=True)
def test_maintenance_opens_a_database_the_server_folds_its_own_way(server, named):
    """Failed before (İx): 'Database İx does not exist'."""
    backend = MySQLMaintenance(named, MaintenanceOptions(), params(server))
    assert backend.open()['server_version']
    assert [t.name for t in backend.list_tables()] == ['t']


def test_case_counts_where_the_server_says_it_does(tmp_path):
    """lower_case_table_names=0 stays exact: MyApp is found by its own name only (myapp and MYAPP are others)."""
    exact = MariaDBServer()
    try:
        exact.start()
        assert exact.sql('SELECT @@lower_case_table_names') == [('0',)]
        exact.sql('CREATE DATABASE MyApp; CREATE TABLE MyApp.t (id INT); CREATE DATABASE `\u0130x`', superuser=True)
        engine = get_engine('mariadb', params(exact))
        assert schema_exists(engine, 'MyApp') and schema_exists(engine, '\u0130x')
        assert not any(schema_exists(engine, n) for n in ('myapp', 'MYAPP', 'ix'))
        # a name no database can have (beyond utf8mb3) is not the one utf8mb3 makes of it ('?x')
        exact.sql('CREATE DATABASE `?x`', superuser=True)
        assert schema_exists(engine, '?x') and not schema_exists(engine, '\U0001F600x')
        assert engine.database_defaults('MyApp')['character_set']
        with pytest.raises(OpsReadyError, match='does not exist'):
            engine.database_defaults('myapp')
        with pytest.raises(OpsReadyError, match='does not exist'):
            MySQLMaintenance('myapp', MaintenanceOptions(), params(exact)).open()
        assert MySQLMaintenance('MyApp', MaintenanceOptions(), params(exact)).open()['server_version']
    finally:
        exact.cleanup()
