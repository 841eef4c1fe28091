"""MariaDB restore against classes of input an outside run aims at: a view reading another database, a
routine whose DEFINER does not exist on the target, replace onto a target holding objects the backup lacks,
two targets whose names differ only in characters the temporary name strips, restored at the same time."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402


def params(server):
    return ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)


def backup(server, db, dest):
    return run_backup(get_engine('mariadb', params(server)), BackupOptions(kind='full', dest=str(dest), database=db))


def restore(server, src, source, target, **kw):
    return run_restore(RestoreRequest(engine='mariadb', src=str(src), source_database=source, database=target, **kw),
                       params(server))


def q(name):
    return '`%s`' % name.replace('`', '``')


def test_view_on_other_database(maria_db, tmp_path):
    server = maria_db.server
    other = maria_db.name + '_other'
    server.sql('CREATE DATABASE %s' % q(other))
    try:
        server.sql('CREATE TABLE o (x int); INSERT INTO o VALUES (7)', database=other)
        maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1);'
                     'CREATE VIEW v AS SELECT x FROM %s.o' % q(other))
        backup(server, maria_db.name, tmp_path / 'b')
        target = maria_db.name + '_r'
        restore(server, tmp_path / 'b', maria_db.name, target)
        assert server.sql('SELECT x FROM v', database=target) == [('7',)] or \
            server.sql('SELECT x FROM v', database=target) == [(7,)]
    finally:
        server.sql('DROP DATABASE IF EXISTS %s' % q(other))
        server.sql('DROP DATABASE IF EXISTS %s' % q(maria_db.name + '_r'))


def test_replace_drops_what_the_backup_lacks(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1)')
    backup(server, maria_db.name, tmp_path / 'b')
    maria_db.sql('CREATE TABLE extra (y int); INSERT INTO extra VALUES (2); CREATE VIEW ev AS SELECT 1 AS one;'
                 'CREATE PROCEDURE ep() SELECT 1')
    restore(server, tmp_path / 'b', maria_db.name, maria_db.name, replace=True)
    names = sorted(r[0] for r in server.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '%s'" % maria_db.name))
    routines = server.sql("SELECT routine_name FROM information_schema.routines WHERE routine_schema = '%s'"
                          % maria_db.name)
    assert names == ['t'] and not routines, (names, routines)


def test_refused_without_replace_touches_nothing(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1)')
    backup(server, maria_db.name, tmp_path / 'b')
    maria_db.sql('INSERT INTO t VALUES (2)')
    before = server.sql('SHOW DATABASES')
    with pytest.raises(OpsReadyError, match='replace=true'):
        restore(server, tmp_path / 'b', maria_db.name, maria_db.name)
    assert server.sql('SHOW DATABASES') == before
    assert len(maria_db.sql('SELECT x FROM t')) == 2


def test_colliding_sanitised_names_concurrently(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2), (3)')
    backup(server, maria_db.name, tmp_path / 'b')
    targets = [maria_db.name + suffix for suffix in ('-a', '.a', 'é')]
    errors = []

    def run(target):
        try:
            restore(server, tmp_path / 'b', maria_db.name, target)
        except Exception as exc:  # noqa: BLE001
            errors.append((target, exc))
    try:
        threads = [threading.Thread(target=run, args=(t,)) for t in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for target in targets:
            assert len(server.sql('SELECT x FROM %s.t' % q(target))) == 3
    finally:
        for target in targets:
            server.sql('DROP DATABASE IF EXISTS %s' % q(target))


@pytest.mark.parametrize('suffix', ['%_x', 'é' * 30])
@pytest.mark.parametrize('target_suffix', ['', '_copy'])
def test_qualified_trigger_and_missing_definer(maria_db, tmp_path, suffix, target_suffix):
    """A trigger created as "CREATE TRIGGER db.tr ... ON db.t" (migration tools write it so) keeps the source
    name in the dump: loaded as it is, it was created in the SOURCE database (a restore into a copy wrote into
    the source; a replace failed with 'already exists'). Definers that do not exist on the server; source and
    target names holding LIKE wildcards and non-ASCII (a wildcard must not reach a neighbour)."""
    server = maria_db.server
    source = (maria_db.name + suffix)[:59]
    target = source + target_suffix
    neighbour = maria_db.name + 'ZYx'  # matches the pattern '<name>%_x'
    server.sql('CREATE DATABASE %s; CREATE DATABASE %s' % (q(source), q(neighbour)))
    try:
        server.sql('CREATE TABLE %s.n (x int)' % q(neighbour))
        server.sql("CREATE TABLE {db}.t (x int); INSERT INTO {db}.t VALUES (1);"
                   "CREATE DEFINER=`ghost`@`%` PROCEDURE {db}.p() SELECT 1;"
                   "CREATE DEFINER=`ghost`@`%` TRIGGER {db}.tr BEFORE INSERT ON {db}.t FOR EACH ROW SET NEW.x = 5;"
                   "CREATE TRIGGER {db}.tr2 BEFORE UPDATE ON t FOR EACH ROW SET NEW.x = 6"
                   .format(db=q(source)))
        backup(server, source, tmp_path / 'b')
        server.sql('CREATE TABLE %s.later (y int); DROP TRIGGER %s.tr2' % (q(source), q(source)))
        result = restore(server, tmp_path / 'b', source, target, replace=True)
        assert result['changed']
        assert len(server.sql('SELECT x FROM %s.t' % q(target))) == 1
        assert not server.sql("SHOW TABLES FROM %s LIKE 'later'" % q(target))
        assert server.sql('SELECT count(*) FROM %s.n' % q(neighbour))[0][0] in ('0', 0)
        triggers = {}
        for db in sorted({source, target}):
            triggers[db] = sorted(r[0] for r in server.sql(
                "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = "
                "CONVERT(UNHEX('%s') USING utf8mb4)" % db.encode().hex()))
        assert triggers[target] == ['tr', 'tr2'], triggers
        if target != source:
            assert triggers[source] == ['tr'], triggers  # the source untouched (tr2 was dropped after the backup)
        definers = server.sql("SELECT definer FROM information_schema.routines WHERE routine_schema = "
                              "CONVERT(UNHEX('%s') USING utf8mb4)" % target.encode().hex())
        assert [d[0] for d in definers] == ['ghost@%'], definers
    finally:
        server.sql('DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s'
                   % (q(source), q(neighbour), q(source + '_copy')))


@pytest.mark.parametrize('suffix', ["o'brien", 'back\\slash', 'dq"x'])
def test_quote_names_back_up_without_events(maria_db, tmp_path, suffix):
    """A database named with ' " or \\ (legal, common: o'brien) was refused by every backup, though only
    mariadb-dump --events cannot select it: without events it is dumped (--skip-events) and restored."""
    server = maria_db.server
    source = maria_db.name + suffix
    server.sql('CREATE DATABASE %s' % q(source))
    try:
        server.sql("CREATE TABLE {db}.t (x int); INSERT INTO {db}.t VALUES (1), (2);"
                   "CREATE VIEW {db}.v AS SELECT x FROM {db}.t; CREATE PROCEDURE {db}.p() SELECT 1;"
                   "CREATE TRIGGER {db}.tr BEFORE INSERT ON {db}.t FOR EACH ROW SET NEW.x = NEW.x + 0"
                   .format(db=q(source)))
        result = backup(server, source, tmp_path / 'b')
        assert result['verification'][0]['ok'], result['verification']
        server.sql('DELETE FROM %s.t' % q(source))
        restore(server, tmp_path / 'b', source, source, replace=True)
        assert len(server.sql('SELECT x FROM %s.v' % q(source))) == 2
        server.sql('CREATE EVENT %s.e ON SCHEDULE EVERY 1 DAY DO SELECT 1' % q(source))
        with pytest.raises(OpsReadyError, match='events'):
            backup(server, source, tmp_path / 'c')
    finally:
        server.sql('DROP DATABASE IF EXISTS %s' % q(source))


def test_view_with_missing_definer_restores(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1);'
                 'CREATE DEFINER=`ghost`@`%` VIEW v AS SELECT x FROM t')
    backup(server, maria_db.name, tmp_path / 'b')
    target = maria_db.name + '_r'
    try:
        restore(server, tmp_path / 'b', maria_db.name, target)
        assert server.sql("SELECT definer FROM information_schema.views WHERE table_schema = '%s'" % target) == \
            [('ghost@%',)]
    finally:
        server.sql('DROP DATABASE IF EXISTS %s' % q(target))


def hexname(name):
    return "CONVERT(UNHEX('%s') USING utf8mb4)" % name.encode().hex()


@pytest.mark.parametrize('hostile, replace', [(False, False), (True, True)], ids=['new-name', 'hostile-replace'])
def test_views_whose_dump_names_their_database(maria_db, tmp_path, hostile, replace):
    """mariadb-dump writes a view with the dumped database's qualifiers when the view also reads another
    database (every name qualified: 'from (`src`.`t` join `o`.`o`)') or when its DEFINER is missing (its columns:
    'select `src`.`t`.`x` AS `x` from `t`'). Restored elsewhere, the first read the SOURCE's table, the second
    failed 'Unknown column' and rolled the whole restore back. Qualifiers naming other databases stay; a
    literal holding "`src`.", a column named like the database and such a view over another view come through
    as they were; the names hold backticks, dots, quotes, spaces and non-ASCII."""
    server = maria_db.server
    tag = maria_db.name[-8:]
    source = ('s%s`q.\'"\\ é' % tag) if hostile else maria_db.name
    target = source if replace else maria_db.name[:40] + ' r.é`x'
    other, ghost = 'o%s.é' % tag, 'ghost_%s' % tag
    src, lit = q(source), ("'%s.t.x'" % q(source).replace("'", "''").replace('\\', '\\\\'))
    if hostile:
        server.sql('CREATE DATABASE %s' % src)
    server.sql('CREATE DATABASE %s' % q(other))
    try:
        server.sql(
            'CREATE TABLE {o}.o (y int); INSERT INTO {o}.o VALUES (1), (2);'
            'CREATE TABLE {s}.t (x int, {sc} int); INSERT INTO {s}.t VALUES (1, 10);'
            'CREATE VIEW {s}.v_join AS SELECT t.x, o.y FROM {s}.t JOIN {o}.o ON o.y = t.x;'
            'CREATE DEFINER={g}@`%` VIEW {s}.v_ghost AS SELECT x, {sc}, {lit} AS s FROM {s}.t;'
            'CREATE DEFINER={g}@`%` VIEW {s}.v_chain AS SELECT x, y FROM {s}.v_join;'
            'CREATE DEFINER={g}@`%` VIEW {s}.v_other AS SELECT y FROM {o}.o'
            .format(s=src, o=q(other), sc=src, g=q(ghost), lit=lit))
        backup(server, source, tmp_path / 'b')
        server.sql('DELETE FROM %s.t' % src)  # a view still reading the source would now see no row
        result = restore(server, tmp_path / 'b', source, target, replace=replace)
        assert result['changed'] and result['target']['objects'] == {'views': 4}, result
        views = dict(server.sql('SELECT table_name, definer FROM information_schema.views WHERE table_schema = %s'
                                % hexname(target)))
        assert views == {'v_join': server.user + '@%', 'v_ghost': ghost + '@%', 'v_chain': ghost + '@%',
                         'v_other': ghost + '@%'}, views
        tgt = q(target)
        assert [tuple(map(str, r)) for r in server.sql('SELECT x, y FROM %s.v_join' % tgt)] == [('1', '1')]
        server.sql("CREATE USER %s@'%%'; GRANT SELECT ON *.* TO %s@'%%'" % (q(ghost), q(ghost)))
        rows = server.sql('SELECT x, %s, s, y FROM %s.v_ghost JOIN %s.v_chain USING (x)' % (src, tgt, tgt))
        assert [tuple(map(str, r)) for r in rows] == [('1', '10', '%s.t.x' % src, '1')], rows
        assert sorted(str(r[0]) for r in server.sql('SELECT y FROM %s.v_other' % tgt)) == ['1', '2']
        text = server.sql('SELECT view_definition FROM information_schema.views WHERE table_schema = %s AND '
                          "table_name = 'v_other'" % hexname(target))[0][0]
        assert '%s.`o`' % q(other) in text, text
    finally:
        server.sql("DROP USER IF EXISTS %s@'%%'" % q(ghost))
        for db in {other, target} | ({source} if hostile else set()):
            server.sql('DROP DATABASE IF EXISTS %s' % q(db))


def test_replace_onto_a_target_in_use(maria_db, tmp_path, monkeypatch):
    """A session holds an open transaction on the target's table (its metadata lock) for longer than the
    client waits: the swap must give up inside the server, roll back, say the target is in use, and leave
    nothing queued that runs later (before: RENAME TABLE waited a year's lock_wait_timeout, the client was
    stopped after 70 s, and the queued RENAME ran once the session ended, after 'rolled back').
    The swap's lock wait is 30 s; the test runs the same statements with 5 s (the time is not what it proves)."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import restore as mysql_restore
    monkeypatch.setattr(mysql_restore, 'SWAP_LOCK_WAIT', 5)
    monkeypatch.setattr(mysql_restore, 'LOCK_WAIT_PREFIX', 'SET SESSION lock_wait_timeout = 5; ')
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1)')
    backup(server, maria_db.name, tmp_path / 'b')
    maria_db.sql('INSERT INTO t VALUES (2)')
    holder = threading.Thread(target=lambda: maria_db.sql(
        'BEGIN; SELECT count(*) FROM t; SELECT SLEEP(150); COMMIT', check=False, timeout=200))
    holder.start()
    try:
        time.sleep(1)
        started = time.monotonic()
        with pytest.raises(OpsReadyError, match='in use'):
            restore(server, tmp_path / 'b', maria_db.name, maria_db.name, replace=True)
        assert time.monotonic() - started < 65
    finally:
        for row in server.sql("SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(150)%'"):
            server.sql('KILL %s' % row[0], check=False)
        holder.join()
    time.sleep(2)  # anything still queued in the server would run now
    assert sorted(r[0] for r in maria_db.sql('SELECT x FROM t')) == ['1', '2']
    leftovers = server.sql("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '%opsready%'")
    assert not [r for r in leftovers if r[0].startswith(maria_db.name[:20])], leftovers


def test_check_mode_reports_the_replace_and_changes_nothing(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1); CREATE VIEW v AS SELECT x FROM t')
    backup(server, maria_db.name, tmp_path / 'b')
    maria_db.sql('INSERT INTO t VALUES (2); CREATE TABLE extra (y int)')
    schemas = server.sql('SELECT schema_name FROM information_schema.schemata ORDER BY 1')
    result = restore(server, tmp_path / 'b', maria_db.name, maria_db.name, replace=True, check_mode=True)
    assert result['changed'] and result['replaced'] is True, result
    assert result['target']['existing'] == {'tables': 2, 'views': 1, 'routines': 0, 'triggers': 0, 'events': 0}
    assert server.sql('SELECT schema_name FROM information_schema.schemata ORDER BY 1') == schemas
    assert len(maria_db.sql('SELECT x FROM t')) == 2
    fresh = restore(server, tmp_path / 'b', maria_db.name, maria_db.name + '_new', check_mode=True)
    assert fresh['replaced'] is False and fresh['target']['existing'] is None, fresh


def test_view_joining_another_database_reads_the_restored_table(maria_db, tmp_path):
    """A view (its definer exists) joining its own table with another database's: the server prints every name of it
    qualified, its own database's too ('from (`src`.`t` join `o`.`o` ...)'). Restored under another name, it was
    created reading the SOURCE's table: no error, the wrong rows."""
    server = maria_db.server
    other = maria_db.name + '_o'
    server.sql('CREATE DATABASE %s' % q(other))
    target = maria_db.name + '_r'
    try:
        server.sql('CREATE TABLE o (y int); INSERT INTO o VALUES (1), (2)', database=other)
        maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1);'
                     'CREATE VIEW v AS SELECT t.x, o.y FROM t JOIN %s.o ON o.y = t.x' % q(other))
        backup(server, maria_db.name, tmp_path / 'b')
        maria_db.sql('UPDATE t SET x = 2')
        restore(server, tmp_path / 'b', maria_db.name, target)
        assert [tuple(map(str, r)) for r in server.sql('SELECT x, y FROM v', database=target)] == [('1', '1')]
        maria_db.sql('DROP TABLE t')  # the restored view must not need the source at all
        assert [tuple(map(str, r)) for r in server.sql('SELECT x, y FROM v', database=target)] == [('1', '1')]
    finally:
        server.sql('DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s' % (q(other), q(target)))
