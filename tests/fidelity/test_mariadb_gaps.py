"""Restore fidelity, MariaDB: object kinds and properties the rich fixture of ``test_mariadb.py`` leaves out,
each backed up and restored with the product and compared as a DBA would."""

from __future__ import annotations

import sys

from tests.fidelity.test_mariadb import assert_same, q, snapshot
from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402


def params(server):
    return ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)


def backup(server, db, dest, kind='full'):
    return run_backup(get_engine('mariadb', params(server)), BackupOptions(kind=kind, dest=str(dest), database=db))


def backup_as(server, engine, db, dest):
    return run_backup(get_engine(engine, params(server)), BackupOptions(kind='full', dest=str(dest), database=db))


def restore(server, src, source, target, **kw):
    return run_restore(RestoreRequest(engine='mariadb', src=str(src), source_database=source, database=target, **kw),
                       params(server))


def extra(server, db):
    lit = "'" + db.replace('\\', '\\\\').replace("'", "''") + "'"
    out = {}
    out['schema'] = server.sql('SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, SCHEMA_COMMENT FROM '
                               'information_schema.SCHEMATA WHERE SCHEMA_NAME = %s' % lit)
    out['columns'] = server.sql('SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, '
                                'COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, GENERATION_EXPRESSION, '
                                'COLUMN_COMMENT, IS_GENERATED FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s '
                                'ORDER BY TABLE_NAME, ORDINAL_POSITION' % lit)
    out['tables'] = server.sql('SELECT TABLE_NAME, ENGINE, ROW_FORMAT, AUTO_INCREMENT, TABLE_COLLATION, '
                               'CREATE_OPTIONS, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s '
                               'ORDER BY TABLE_NAME' % lit)
    out['checks'] = server.sql('SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM '
                               'information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s ORDER BY 1, 2' % lit)
    out['fks'] = server.sql('SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, '
                            'UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS '
                            'WHERE CONSTRAINT_SCHEMA = %s ORDER BY 1' % lit)
    out['partitions'] = server.sql('SELECT TABLE_NAME, PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, '
                                   'PARTITION_DESCRIPTION, TABLE_ROWS FROM information_schema.PARTITIONS WHERE '
                                   'TABLE_SCHEMA = %s AND PARTITION_NAME IS NOT NULL ORDER BY 1, 2' % lit)
    out['routines'] = server.sql('SELECT ROUTINE_NAME, SQL_MODE, SECURITY_TYPE, IS_DETERMINISTIC, ROUTINE_COMMENT, '
                                 'DEFINER, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION FROM '
                                 'information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s ORDER BY 1' % lit)
    out['events'] = server.sql('SELECT EVENT_NAME, DEFINER, TIME_ZONE, STATUS, SQL_MODE, EVENT_COMMENT, '
                               'ON_COMPLETION, INTERVAL_VALUE, INTERVAL_FIELD, STARTS, ENDS, EXECUTE_AT FROM '
                               'information_schema.EVENTS WHERE EVENT_SCHEMA = %s ORDER BY 1' % lit)
    out['triggers'] = server.sql('SELECT TRIGGER_NAME, SQL_MODE, DEFINER, ACTION_ORDER, CHARACTER_SET_CLIENT, '
                                 'DATABASE_COLLATION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s '
                                 'ORDER BY 1' % lit)
    return out


def history(server, db, table):
    """Every row version of a system-versioned table, with its period (what FOR SYSTEM_TIME reads)."""
    return server.sql('SELECT id, v, ROW_START, ROW_END FROM %s.%s FOR SYSTEM_TIME ALL ORDER BY id, ROW_START'
                      % (q(db), q(table)))


EXPLORE = r"""
CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci COMMENT 'the ledger; l''apostrophe';
USE {db};
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB ROW_FORMAT=COMPRESSED COMMENT='p';
CREATE TABLE child (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_child FOREIGN KEY (pid) REFERENCES parent (id)
  ON DELETE CASCADE ON UPDATE SET NULL, CONSTRAINT chk_pos CHECK (id > 0)) ENGINE=InnoDB;
CREATE TABLE selfref (id INT PRIMARY KEY, up INT, FOREIGN KEY (up) REFERENCES selfref (id));
INSERT INTO parent VALUES (1, 'a'), (2, 'b');
INSERT INTO child VALUES (10, 1), (20, 2);
INSERT INTO selfref VALUES (1, NULL), (2, 1);
CREATE TABLE ver (id INT PRIMARY KEY, v VARCHAR(20)) WITH SYSTEM VERSIONING;
INSERT INTO ver VALUES (1, 'one'), (2, 'two');
DO SLEEP(1.1);
UPDATE ver SET v = 'uno' WHERE id = 1;
DELETE FROM ver WHERE id = 2;
CREATE TABLE inv (id INT PRIMARY KEY, secret VARCHAR(10) INVISIBLE DEFAULT 'hid', shown INT);
INSERT INTO inv (id, secret, shown) VALUES (1, 'x', 1), (2, DEFAULT, 2);
SET SESSION sql_mode = '';
CREATE TABLE zero (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL);
INSERT INTO zero VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'), (2, '2020-00-15', NULL, NULL);
SET SESSION sql_mode = DEFAULT;
SET SESSION time_zone = '+05:30';
CREATE TABLE tz (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL, dt DATETIME);
INSERT INTO tz VALUES (1, '2024-03-31 02:30:00.5', '2024-03-31 02:30:00'), (2, '1970-01-01 05:30:01', NULL);
SET SESSION time_zone = SYSTEM;
CREATE TABLE part (id INT, created DATE, PRIMARY KEY (id, created)) PARTITION BY RANGE (YEAR(created))
  (PARTITION p2020 VALUES LESS THAN (2021) COMMENT 'old', PARTITION pmax VALUES LESS THAN MAXVALUE);
INSERT INTO part VALUES (1, '2020-05-05'), (2, '2024-01-01');
CREATE TABLE bytes (id INT PRIMARY KEY, b LONGBLOB, t TEXT CHARACTER SET binary);
INSERT INTO bytes VALUES (1, {allbytes}, {allbytes});
CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT) AUTO_INCREMENT=1000;
INSERT INTO ai (v) VALUES (1), (2), (3);
DELETE FROM ai WHERE v = 3;
CREATE TABLE gis (id INT PRIMARY KEY, g GEOMETRY NOT NULL, SPATIAL INDEX (g), j JSON CHECK (JSON_VALID(j)));
INSERT INTO gis VALUES (1, ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 4326), '{{"a": 1}}');
CREATE SEQUENCE seq START WITH 10 INCREMENT BY 3 MAXVALUE 1000 CYCLE CACHE 5;
DO NEXTVAL(seq); DO NEXTVAL(seq);
CREATE TABLE `select` (`from` INT PRIMARY KEY, `a.b` INT, `sp ace` INT, `ünï` INT);
INSERT INTO `select` VALUES (1, 2, 3, 4);
SET sql_mode = 'NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO';
CREATE DEFINER = CURRENT_USER PROCEDURE p_mode() SQL SECURITY INVOKER NOT DETERMINISTIC COMMENT 'c' SELECT 1/0;
CREATE TRIGGER trg_mode BEFORE INSERT ON parent FOR EACH ROW SET NEW.name = CONCAT(NEW.name, '');
CREATE TRIGGER trg_mode2 BEFORE INSERT ON parent FOR EACH ROW PRECEDES trg_mode SET NEW.name = TRIM(NEW.name);
SET sql_mode = DEFAULT;
SET time_zone = '+03:00';
CREATE EVENT ev_tz ON SCHEDULE EVERY 1 HOUR STARTS '2035-01-01 10:00:00' ENDS '2036-01-01 00:00:00'
  ON COMPLETION PRESERVE DISABLE ON SLAVE DO DELETE FROM ai WHERE id < 0;
SET time_zone = SYSTEM;
CREATE ALGORITHM=TEMPTABLE SQL SECURITY INVOKER VIEW v_tt AS SELECT id, name FROM parent;
CREATE ALGORITHM=MERGE VIEW v_lc AS SELECT id, name FROM parent WHERE id > 0 WITH LOCAL CHECK OPTION;
"""


def load_explore(server, db):
    allbytes = "X'" + bytes(range(256)).hex() + "'"
    server.sql(EXPLORE.format(db=q(db), allbytes=allbytes))


def described(server, db):
    """The DBA's view of ``db``: SHOW CREATE and checksums (``snapshot``), information_schema rows, every row
    version of the system-versioned table; the database's own name normalised away."""
    rows = extra(server, db)
    # a foreign key names its referenced table's schema: the restored database itself
    rows['fks'] = [r[:3] + ('<DB>' if r[3] == db else r[3],) + r[4:] for r in rows['fks']]
    # TABLE_ROWS of a partition is an estimate (ANALYZE TABLE refreshes it), not data
    rows['partitions'] = [r[:-1] for r in rows['partitions']]
    return {'snapshot': snapshot(server, db), 'information_schema': rows, 'history': history(server, db, 'ver')}


def test_kinds_and_properties_round_trip_new_and_over_existing(mariadb_factory, tmp_path):
    """Foreign keys, check constraints, a system-versioned table with history, invisible columns, zero dates
    (permissive sql_mode), TIMESTAMPs written in another time zone on a non-UTC server, partitions, every
    byte value, AUTO_INCREMENT past deleted rows, a cycling sequence, reserved and dotted names, routine and
    trigger sql_mode, trigger order, an event with its time zone, view options, and the database COMMENT:
    restored under a new name and over an existing database that held other objects and another comment."""
    server = mariadb_factory(extra_conf={'default-time-zone': '-07:00'})
    load_explore(server, 'src')
    source = described(server, 'src')
    assert len(source['history']) == 3 and source['information_schema']['schema'][0][2] == "the ledger; l'apostrophe"
    server.sql("CREATE DATABASE dst2 CHARACTER SET latin1 COMMENT 'old one'; USE dst2; "
               "CREATE TABLE leftover (id INT); CREATE TABLE parent (x INT); CREATE PROCEDURE p_old() SELECT 1; "
               "CREATE EVENT ev_old ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1")
    backup(server, 'src', tmp_path / 'b')
    restore(server, tmp_path / 'b', 'src', 'dst')
    result = restore(server, tmp_path / 'b', 'src', 'dst2', replace=True)
    assert result['replaced'] is True
    assert_same(source, described(server, 'dst'), 'restore under a new name')
    assert_same(source, described(server, 'dst2'), 'restore over an existing database (replace)')


def test_transaction_precise_history_is_named_in_the_manifest(mariadb_factory, tmp_path):
    """mariadb-dump --dump-history cannot save transaction-precise history: the backup still runs (current rows)
    and its manifest says which table lost its history, instead of the history vanishing unmentioned."""
    server = mariadb_factory()
    server.sql('CREATE DATABASE tp; USE tp; CREATE TABLE trx (x INT, s BIGINT UNSIGNED AS ROW START INVISIBLE, '
               'e BIGINT UNSIGNED AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME(s, e)) WITH SYSTEM VERSIONING; '
               'INSERT INTO trx VALUES (1); UPDATE trx SET x = 2')
    manifest = backup(server, 'tp', tmp_path / 'b')['manifest']
    assert 'tp.trx' in manifest['warning'] and 'transaction-precise' in manifest['warning']
    restore(server, tmp_path / 'b', 'tp', 'tp_r')
    assert server.sql('SELECT x FROM tp_r.trx') == [('2',)]


def test_failed_swap_puts_the_old_comment_back(mariadb_factory, tmp_path, monkeypatch):
    """A restore over an existing database that fails at its last step leaves the old database COMMENT."""
    import pytest

    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
        OpsReadyError, ToolError)
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import restore as mysql_restore

    server = mariadb_factory()
    server.sql("CREATE DATABASE cs COMMENT 'new'; CREATE TABLE cs.t (id INT); CREATE VIEW cs.v AS SELECT id FROM cs.t;"
               "CREATE DATABASE ct COMMENT 'old \\\\ one'; CREATE TABLE ct.t (id INT); INSERT INTO ct.t VALUES (1)")
    backup(server, 'cs', tmp_path / 'b')
    restore(server, tmp_path / 'b', 'cs', 'fresh')
    assert server.sql("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ('fresh', 'ct') "
                      "ORDER BY SCHEMA_NAME") == [('old \\ one',), ('new',)]

    def failing(engine, database, script, what):
        raise ToolError('mariadb (%s) failed with exit code 1: injected fault' % what, rc=1)

    monkeypatch.setattr(mysql_restore, '_load_script', failing)
    with pytest.raises(OpsReadyError, match='rolled back'):
        restore(server, tmp_path / 'b', 'cs', 'ct', replace=True)
    assert server.sql("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'ct'") == [
        ('old \\ one',)]
    assert server.sql('SELECT id FROM ct.t') == [('1',)]


def test_point_in_time_replay_keeps_history_sequences_time_zones(mariadb_factory, tmp_path):
    """Changes after the dump travel by binary log: new row versions of the system-versioned table, a sequence
    advanced, TIMESTAMPs written from another time zone, DDL sent with USE of the database, and an ALTER DATABASE
    of its character set, collation and comment (the restore set the dump's instead)."""
    import time

    server = mariadb_factory(extra_conf={'default-time-zone': '-07:00'})
    load_explore(server, 'src')
    backup(server, 'src', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("USE src; INSERT INTO ver VALUES (3, 'three'); UPDATE ver SET v = 'eins' WHERE id = 1; "
               "DO NEXTVAL(seq); SET time_zone = '+09:00'; INSERT INTO tz VALUES (3, '2025-10-26 01:30:00', NULL); "
               "INSERT INTO ai (v) VALUES (9); ALTER TABLE parent ADD COLUMN added INT DEFAULT 7 COMMENT 'new'; "
               "INSERT INTO parent (id, name) VALUES (3, 'c'); DROP TABLE `select`; "
               "CREATE TABLE newt (id INT PRIMARY KEY) COMMENT 'made later'; INSERT INTO newt VALUES (1); "
               "ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_german1_ci COMMENT 'changed ✓ later'")
    time.sleep(1.1)
    backup(server, 'src', tmp_path / 'b', kind='log')
    source = described(server, 'src')
    assert len(source['history']) == 5
    assert source['information_schema']['schema'] == [('latin1', 'latin1_german1_ci', 'changed ✓ later')]
    restore(server, tmp_path / 'b', 'src', 'dst')
    assert_same(source, described(server, 'dst'), 'point-in-time restore (latest)')


def test_statement_naming_the_source_database_is_refused_not_skipped(mariadb_factory, tmp_path):
    """DDL after the dump that names the database explicitly: sent without USE it was skipped by the replay (the
    copy silently lacked the new column and kept a dropped table); sent with USE src, ``TRUNCATE src.t`` ran
    against the live source during the restore. Both are refused before the copy is swapped in, the source and
    the target untouched."""
    import pytest

    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

    server = mariadb_factory()
    server.sql('CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2); '
               'CREATE TABLE app.gone (id INT); CREATE DATABASE other; '
               "CREATE DATABASE dst; CREATE TABLE dst.keep (id INT); INSERT INTO dst.keep VALUES (5)")
    backup(server, 'app', tmp_path / 'b')
    server.sql("ALTER TABLE app.t ADD COLUMN c INT DEFAULT 3; USE other; DROP TABLE app.gone")
    backup(server, 'app', tmp_path / 'b', kind='log')
    with pytest.raises(OpsReadyError, match='names database app explicitly') as caught:
        restore(server, tmp_path / 'b', 'app', 'dst', replace=True)
    assert 'ALTER TABLE app.t ADD COLUMN c' in caught.value.message
    assert server.sql('SELECT id FROM dst.keep') == [('5',)]

    # With USE of the database: the statement ran against the source itself, emptying the live table.
    server.sql('INSERT INTO app.t (id) VALUES (3)')
    backup(server, 'app', tmp_path / 'c')
    server.sql('USE app; TRUNCATE TABLE app.t; INSERT INTO t (id) VALUES (7)')
    backup(server, 'app', tmp_path / 'c', kind='log')
    with pytest.raises(OpsReadyError, match='names database app explicitly'):
        restore(server, tmp_path / 'c', 'app', 'copy')
    assert server.sql('SELECT id FROM app.t') == [('7',)]
    assert server.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'copy%'") == [('0',)]


def test_drop_database_in_the_logs_never_reaches_the_live_source(mariadb_factory, tmp_path):
    """The source dropped and recreated after the dump, from a session using it: the replay ran DROP DATABASE and
    CREATE DATABASE as written, against the live source (its new tables gone), then failed. Refused up front."""
    import pytest

    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

    server = mariadb_factory()
    server.sql('CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2)')
    backup(server, 'app', tmp_path / 'b')
    server.sql('USE app; DROP DATABASE app; CREATE DATABASE app; USE app; CREATE TABLE t (id INT PRIMARY KEY); '
               'INSERT INTO t VALUES (9)')
    backup(server, 'app', tmp_path / 'b', kind='log')
    with pytest.raises(OpsReadyError, match="names database app explicitly: 'DROP DATABASE app'"):
        restore(server, tmp_path / 'b', 'app', 'copy')
    assert server.sql('SELECT id FROM app.t') == [('9',)]


def test_objects_created_under_another_database_collation(mariadb_factory, tmp_path):
    """Routines, triggers and events keep the database collation they were created under; mariadb-dump switches
    the database's collation around them by NAME. Loaded under another name that altered the source's collation
    (and gave the copy's objects the copy's collation); after the source was dropped, the restore (the disaster
    it is for) failed ("Can't create/write to file ./cs/db.opt")."""
    server = mariadb_factory()
    server.sql("CREATE DATABASE cs CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE cs; CREATE TABLE t (id INT); "
               "CREATE PROCEDURE p() SELECT 1; CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @x = 1; "
               "CREATE EVENT ev ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01' DISABLE DO SELECT 1; "
               "ALTER DATABASE cs CHARACTER SET latin1 COLLATE latin1_german1_ci; "
               "CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1")
    source = extra(server, 'cs')
    assert [r[-1] for r in source['routines']] == ['latin1_german1_ci', 'utf8mb4_unicode_ci']
    backup(server, 'cs', tmp_path / 'b')
    restore(server, tmp_path / 'b', 'cs', 'copy')
    assert_same(source, extra(server, 'copy'), 'restore under a new name')
    server.sql('DROP DATABASE cs')
    restore(server, tmp_path / 'b', 'cs', 'cs')
    assert_same(source, extra(server, 'cs'), 'restore after the source was dropped')


def test_statement_run_in_the_source_naming_another_database_is_refused(mariadb_factory, tmp_path):
    """``USE app; TRUNCATE TABLE other.t`` after the dump: the replay ran it as written, emptying the live table of
    another database during a restore of app. Refused; a statement of another session that only names another
    database (no USE app), maintenance and grants naming app do not stop the restore."""
    import pytest

    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

    server = mariadb_factory()
    server.sql('CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); CREATE DATABASE other; '
               'CREATE TABLE other.t (id INT); INSERT INTO other.t VALUES (1), (2)')
    backup(server, 'app', tmp_path / 'b')
    server.sql('USE app; INSERT INTO t VALUES (1); USE other; CREATE TABLE other.u (id INT); USE app; '
               'INSERT INTO t VALUES (2)')
    server.sql('CREATE TABLE other.w (id INT); INSERT INTO app.t VALUES (3)')  # no default database
    # what changes no data of app, or is not part of its backup: maintenance (as the maintenance role runs it) and
    # grants, without USE app
    server.sql("ANALYZE TABLE app.t; OPTIMIZE TABLE `app`.`t`; CREATE USER reader; GRANT SELECT ON app.* TO reader; "
               "GRANT INSERT ON `app`.`t` TO reader; REVOKE INSERT ON app.t FROM reader")
    backup(server, 'app', tmp_path / 'b', kind='log')
    restore(server, tmp_path / 'b', 'app', 'first')
    assert server.sql('SELECT id FROM first.t ORDER BY id') == [('1',), ('2',), ('3',)]

    server.sql('USE app; TRUNCATE TABLE other.t; INSERT INTO other.t VALUES (9)')
    backup(server, 'app', tmp_path / 'b', kind='log')
    with pytest.raises(OpsReadyError, match=r"run with USE app that names database other: 'TRUNCATE TABLE other\.t'"):
        restore(server, tmp_path / 'b', 'app', 'second')
    assert server.sql('SELECT id FROM other.t') == [('9',)]


def test_overdue_one_time_event_is_reported_not_silently_lost(mariadb_factory, tmp_path):
    """With event_scheduler OFF (the default) a one-time event whose time has passed stays in the source; the
    server drops it as the dump creates it (ON COMPLETION NOT PRESERVE). The restore cannot keep it, and says so."""
    import time

    server = mariadb_factory()
    server.sql("CREATE DATABASE app; USE app; CREATE TABLE ev (id INT); "
               "CREATE EVENT once ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL 1 SECOND DO INSERT INTO ev VALUES (1); "
               "CREATE EVENT daily ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01' DO DELETE FROM ev")
    time.sleep(2.5)
    assert server.sql("SELECT @@event_scheduler, COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'app'") \
        == [('OFF', '2')]
    backup(server, 'app', tmp_path / 'b')
    result = restore(server, tmp_path / 'b', 'app', 'r')
    assert server.sql("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'r'") == [('daily',)]
    assert any('held 2 events' in w and 'loaded 1 events' in w for w in result.get('warnings', [])), (
        result.get('warnings'), result.get('target'))


def test_all_databases_and_mysql_flavor_backups(mariadb_factory, tmp_path):
    """The history option applies to an all-databases dump too; a mysql-flavor backup (mysqldump, no
    --dump-history) still records the objects and the comment (read from SCHEMATA where the server has it)."""
    import zstandard

    server = mariadb_factory()
    server.sql("CREATE DATABASE a1 COMMENT 'c'; CREATE TABLE a1.v (id INT PRIMARY KEY, x INT) WITH SYSTEM VERSIONING; "
               "INSERT INTO a1.v VALUES (1, 1); UPDATE a1.v SET x = 2; CREATE VIEW a1.w AS SELECT id FROM a1.v")
    options = BackupOptions(kind='full', dest=str(tmp_path / 'all'), all_databases=True)
    run_backup(get_engine('mariadb', params(server)), options)
    [dump] = (tmp_path / 'all').rglob('*.sql.zst')
    with open(dump, 'rb') as handle:
        text = zstandard.ZstdDecompressor().stream_reader(handle).read()
    assert b'system_versioning_insert_history=1' in text and b"(1,1,'" in text
    mysql = backup_as(server, 'mysql', 'a1', tmp_path / 'my')['manifest']
    assert mysql['database_objects']['views'] == 1 and mysql['database_comment'] == 'c'
