"""Round 13b on a real MariaDB 10.11: what the server does with a versioned comment newer than itself (a comment: it
logs it as ``/* 999999 ...*/``), a stream holding one replayed through the replay's rewriter and the mariadb client
(the statement behind it lands; a skipped comment holding a quote, whose hidden GRANT the client and server run, is
refused), and the DEFINER the server logs under sql_mode ANSI_QUOTES (``"user"@"host"``), read by the scan."""

from __future__ import annotations

import datetime
import glob
import subprocess  # nosec B404
import time
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, params, restore
from tests.harness.servers import MariaDBServer

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    ReplayEventRewriter, check_statements, replay_server)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine

END = b'/*!*/;\n'
HEADER = b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\tthread_id=5\n'
# each behind a comment the server skips (its version newer than 10.11's; MySQL 5.7's), or with one inside
SKIPPED = [b"/*!999999 GRANT ALL ON *.* TO 'w'@'%' */ INSERT INTO t VALUES (1)",
           b"/*M!999999 CREATE USER 'w2'@'%' */ INSERT INTO t VALUES (2)",
           b"/*!50700 DROP USER 'w'@'%' */ INSERT INTO t VALUES (3)",
           b"SET STATEMENT max_statement_time=10 FOR /*!999999 REVOKE ALL ON *.* FROM 'w'@'%' */ "
           b"INSERT INTO t VALUES (4)"]
# read as code by the mariadb client (a string from the quote on), the server skips the comment and runs the GRANT
HIDING = b"INSERT INTO t VALUES (5) /*!999999 , (' */ ; GRANT ALL ON *.* TO 'w'@'%'; -- ') */"
ANSI = ("SET sql_mode = 'ANSI_QUOTES'; USE pr; CREATE USER 'a\"b'@'h''x'; "
        "CREATE DEFINER='a\"b'@'h''x' VIEW v AS SELECT 1 AS a; "
        "CREATE DEFINER='a\"b'@'h''x' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 1; "
        "CREATE DEFINER='a\"b'@'h''x' PROCEDURE p() SELECT 1; "
        "CREATE DEFINER='a\"b'@'h''x' FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1; "
        "CREATE DEFINER='a\"b'@'h''x' EVENT e ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1")


def stream(*statements: bytes) -> bytes:
    return b'DELIMITER /*!*/;\n' + b''.join(HEADER + s + b'\n' + END for s in statements) + b'DELIMITER ;\n'


def client(server, data: bytes) -> subprocess.CompletedProcess:
    argv = [server.bin('mariadb'), '--defaults-file=%s' % server.option_file(superuser=True), 'pr']
    return subprocess.run(argv, input=data, env=server._client_env(), capture_output=True, check=False)


def grants_of_w(server):
    return server.sql("SELECT User, Host FROM mysql.user WHERE User LIKE 'w%' ORDER BY 1") + \
        server.sql("SHOW GRANTS FOR 'w'@'%'")


@pytest.fixture(scope='module')
def mariadb() -> Iterator[Dict[str, Any]]:
    server = MariaDBServer()
    try:
        server.start()
        server.sql("CREATE DATABASE pr; USE pr; CREATE TABLE t (id INT); CREATE USER 'w'@'%'", superuser=True)
        engine = get_engine('mariadb', params(server))
        yield {'server': server, 'engine': engine}
    finally:
        server.cleanup()


def test_the_server_reads_a_newer_versioned_comment_as_a_comment_and_logs_it_so(mariadb):
    """Guard (what the replay must follow): 10.11 runs the INSERT behind each, none of the account statements in
    them, and logs the comment made plain (``/* 999999``)."""
    server = mariadb['server']
    before = grants_of_w(server)
    server.sql('USE pr; SET binlog_format = STATEMENT; ' + '; '.join(s.decode() for s in SKIPPED), superuser=True)
    assert server.sql('SELECT id FROM pr.t ORDER BY id') == [('1',), ('2',), ('3',), ('4',)] or \
        server.sql('SELECT id FROM pr.t ORDER BY id') == [(1,), (2,), (3,), (4,)]
    assert grants_of_w(server) == before
    logs = sorted(glob.glob(str(server.binlog_dir / 'mariadb-bin.0*')))
    out = subprocess.run([server.bin('mariadb-binlog'), '--no-defaults'] + logs, capture_output=True, check=True).stdout
    assert b"/* 999999 GRANT ALL ON *.* TO 'w'@'%' */ INSERT INTO t VALUES (1)" in out
    assert b"/*M 999999 CREATE USER" in out and b"/* 50700 DROP USER" in out
    server.sql('DELETE FROM pr.t', superuser=True)


def test_the_replay_keeps_the_statement_behind_a_skipped_comment(mariadb):
    """Failed before: each became DO 0 (the comment's account statement taken for the statement): rows 1-4 were
    silently missing from the restored copy. Replayed into the real server through the rewriter and the client."""
    server, engine = mariadb['server'], mariadb['engine']
    assert replay_server(engine)[0] // 100 == 1011
    rewriter = ReplayEventRewriter({}, replay_server(engine))
    data = stream(*SKIPPED)
    out = b''.join(rewriter.feed(data[i:i + 64]) for i in range(0, len(data), 64)) + rewriter.flush()
    before = grants_of_w(server)
    ran = client(server, out)
    assert ran.returncode == 0, ran.stderr
    rows = [int(r[0]) for r in server.sql('SELECT id FROM pr.t ORDER BY id')]
    server.sql('DELETE FROM pr.t', superuser=True)
    assert rows == [1, 2, 3, 4] and grants_of_w(server) == before


def test_a_skipped_comment_hiding_a_grant_is_refused(mariadb):
    """Failed before: the statement was an INSERT to the replay, the client sent it whole, and the server, skipping
    the comment, ran the GRANT after ``;`` against the live account (shown here with the raw stream, then undone);
    the replay refuses it."""
    server, engine = mariadb['server'], mariadb['engine']
    before = grants_of_w(server)
    ran = client(server, stream(HIDING))
    assert ran.returncode == 0, ran.stderr
    assert "GRANT ALL PRIVILEGES ON *.* TO `w`@`%`" in [r[0] for r in grants_of_w(server)]
    server.sql("REVOKE ALL ON *.* FROM 'w'@'%'; DELETE FROM pr.t", superuser=True)
    assert grants_of_w(server) == before
    rewriter = ReplayEventRewriter({}, replay_server(engine))
    with pytest.raises(OpsReadyError, match='versioned comment'):
        rewriter.feed(stream(HIDING))
        rewriter.flush()


def test_a_definer_logged_under_ansi_quotes_is_read(mariadb):
    """Failed before: under ANSI_QUOTES the server logs DEFINER="a""b"@"h'x": the scan recorded no definer for the
    view, trigger, procedure, function or event (not checked against this server's accounts, nor probed)."""
    server, engine = mariadb['server'], mariadb['engine']
    server.sql('FLUSH BINARY LOGS', superuser=True)
    server.sql(ANSI, superuser=True)
    logs = sorted(glob.glob(str(server.binlog_dir / 'mariadb-bin.0*')))[-1:]
    definers: Dict[str, Any] = {}
    check_statements(engine, [server.bin('mariadb-binlog'), '--no-defaults'], logs, 'pr', None, definers)
    assert sorted(definers.get('a"b@h\'x') or []) == ['events', 'routines', 'triggers', 'views']


# the copy's trigger (and a function) write into another live database; each statement is logged as a statement
FOREIGN = ("CREATE DATABASE audit; CREATE TABLE audit.log (id INT); CREATE DATABASE fr; USE fr; "
           "CREATE TABLE t (id INT); CREATE TABLE u (id INT); CREATE TABLE w (id INT); "
           "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO audit.log VALUES (NEW.id);\n"
           "DELIMITER //\nCREATE FUNCTION f(x INT) RETURNS INT MODIFIES SQL DATA "
           "BEGIN INSERT INTO audit.log VALUES (x); RETURN x; END//\nDELIMITER ;\n"
           "CREATE TRIGGER tw AFTER INSERT ON w FOR EACH ROW SET @x = f(NEW.id)")


@pytest.mark.parametrize('write', ['INSERT INTO t VALUES (7)', 'INSERT INTO u VALUES (f(8))',
                                   'INSERT INTO w VALUES (9)', 'SET sql_mode = ANSI_QUOTES; INSERT INTO "t" VALUES (6)',
                                   'ALTER TABLE t ADD COLUMN c INT; INSERT INTO t (id) VALUES (5)'])
def test_a_statement_firing_a_trigger_that_writes_another_database_is_refused(mariadb, tmp_path, write):
    """Failed before: the replay fired the copy's trigger (called its function), which wrote into the live
    audit.log a second time (the source's run of the statement had written it once): a restore changed a database
    it was not asked to touch (the ANSI_QUOTES "t" was let through until mariasec13c; the write after a migration is
    a guard). Now refused before anything is replayed; audit.log unchanged, no copy left."""
    server = mariadb['server']
    server.sql('DROP DATABASE IF EXISTS audit; DROP DATABASE IF EXISTS fr; DROP DATABASE IF EXISTS fr_copy',
               superuser=True)
    server.sql('SET GLOBAL log_bin_trust_function_creators = 1; ' + FOREIGN, superuser=True)
    backup(server, 'fr', tmp_path / 'b')
    time.sleep(1.1)
    server.sql('USE fr; SET binlog_format = STATEMENT; ' + write, superuser=True)
    time.sleep(1.1)
    stop = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.1)
    server.sql('CREATE TABLE fr.later (id INT)', superuser=True)   # the recoverable window reaches past stop
    backup(server, 'fr', tmp_path / 'b', kind='log')
    logged = server.sql('SELECT id FROM audit.log')
    assert len(logged) == 1
    with pytest.raises(OpsReadyError, match='another database of this server') as refused:
        restore(server, tmp_path / 'b', 'fr', 'fr_copy', stop_at=stop)
    assert 'stop_at' in str(refused.value)
    assert server.sql('SELECT id FROM audit.log') == logged
    assert server.sql("SHOW DATABASES LIKE 'fr\\_%'") == []


def test_a_trigger_writing_its_own_database_is_replayed(mariadb, tmp_path):
    """Guard (passed on the old code): a trigger whose body names no other database is fired in the copy as on the
    source, and the restore goes through."""
    server = mariadb['server']
    server.sql('CREATE DATABASE own; USE own; CREATE TABLE t (id INT); CREATE TABLE log (id INT); '
               'CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id)', superuser=True)
    backup(server, 'own', tmp_path / 'b')
    time.sleep(1.1)
    server.sql('USE own; SET binlog_format = STATEMENT; INSERT INTO t VALUES (3)', superuser=True)
    time.sleep(1.1)
    stop = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.1)
    server.sql('CREATE TABLE own.later (id INT)', superuser=True)
    backup(server, 'own', tmp_path / 'b', kind='log')
    restore(server, tmp_path / 'b', 'own', 'own_copy', stop_at=stop)
    assert [int(r[0]) for r in server.sql('SELECT id FROM own_copy.log')] == [3]
    assert [int(r[0]) for r in server.sql('SELECT id FROM own.log')] == [3]


HARMLESS = ('ALTER TABLE t ADD COLUMN c INT; CREATE INDEX ix ON t (id); INSERT INTO u SELECT id FROM t; '
            'INSERT INTO u SELECT id + 100 FROM v; '
            'DELETE FROM u WHERE id IN (SELECT id FROM t); TRUNCATE TABLE t')


def test_a_migration_of_an_audited_table_is_replayed(mariadb, tmp_path):
    """Failed before: ALTER TABLE, CREATE INDEX, TRUNCATE of the table whose trigger writes audit.log, a statement
    that only reads it or reads a view over audit.log were refused (any mention of the table or view), so a schema
    migration blocked every point-in-time restore after it. None fires the trigger: the restore goes through, the
    copy holds what the source held at stop_at, audit.log is not written."""
    server = mariadb['server']
    server.sql('DROP DATABASE IF EXISTS audit; DROP DATABASE IF EXISTS fr; DROP DATABASE IF EXISTS fr_copy',
               superuser=True)
    server.sql('SET GLOBAL log_bin_trust_function_creators = 1; ' + FOREIGN + '; INSERT INTO fr.t VALUES (5); '
               'CREATE VIEW fr.v AS SELECT id FROM audit.log', superuser=True)
    backup(server, 'fr', tmp_path / 'b')
    time.sleep(1.1)
    server.sql('USE fr; SET binlog_format = STATEMENT; ' + HARMLESS, superuser=True)
    time.sleep(1.1)
    stop = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.1)
    server.sql('CREATE TABLE fr.later (id INT)', superuser=True)
    backup(server, 'fr', tmp_path / 'b', kind='log')
    logged = server.sql('SELECT id FROM audit.log')
    restore(server, tmp_path / 'b', 'fr', 'fr_copy', stop_at=stop)
    assert server.sql('SELECT id FROM audit.log') == logged
    assert sorted(int(r[0]) for r in server.sql('SELECT id FROM fr_copy.u')) == sorted(
        int(r[0]) for r in server.sql('SELECT id FROM fr.u'))
    assert [int(r[0]) for r in server.sql('SELECT COUNT(*) FROM fr_copy.t')] == [0]
    assert 'c' in [r[0] for r in server.sql('SHOW COLUMNS FROM fr_copy.t')]
    server.sql('DROP DATABASE fr_copy', superuser=True)


def test_reading_a_view_that_calls_the_function_is_refused(mariadb, tmp_path):
    """Guard (refused on the old code too, which refused any mention of the view): reading a view whose column calls
    the function writing audit.log runs the function; the restore refuses the statement that reads it."""
    server = mariadb['server']
    server.sql('DROP DATABASE IF EXISTS audit; DROP DATABASE IF EXISTS fr; DROP DATABASE IF EXISTS fr_copy',
               superuser=True)
    server.sql('SET GLOBAL log_bin_trust_function_creators = 1; ' + FOREIGN
               + '; INSERT INTO fr.t VALUES (5); CREATE VIEW fr.vc AS SELECT f(id) AS id FROM fr.u', superuser=True)
    backup(server, 'fr', tmp_path / 'b')
    time.sleep(1.1)
    server.sql('USE fr; SET binlog_format = STATEMENT; INSERT INTO u VALUES (4); CREATE TABLE w2 (id INT); '
               'INSERT INTO w2 SELECT id FROM vc', superuser=True)
    time.sleep(1.1)
    stop = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.1)
    server.sql('CREATE TABLE fr.later (id INT)', superuser=True)
    backup(server, 'fr', tmp_path / 'b', kind='log')
    logged = server.sql('SELECT id FROM audit.log')
    with pytest.raises(OpsReadyError, match='another database of this server') as refused:
        restore(server, tmp_path / 'b', 'fr', 'fr_copy', stop_at=stop)
    assert 'view vc' in str(refused.value)
    assert server.sql('SELECT id FROM audit.log') == logged
    assert server.sql("SHOW DATABASES LIKE 'fr\\_%'") == []
