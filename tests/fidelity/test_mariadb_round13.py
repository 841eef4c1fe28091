"""Fidelity, MariaDB, round 13: the replay's check for a statement end (``/*!*/;`` and a line end) inside a string
holds whatever the statement's sql_mode (with NO_BACKSLASH_ESCAPES, ``'a\\'`` is a whole string for the server and
the mariadb client, and the check, reading the backslash as an escape, saw the next string closed where the client
saw it open: an account statement after the end was made ``DO 0`` and a later string ran as SQL on this server) and
whatever the statement's length (one longer than the replay's 64 KiB window was passed on unchecked). Statements
that run account statements indirectly (a ``BEGIN NOT ATOMIC`` block, ``EXECUTE IMMEDIATE``, ``PREPARE``/``EXECUTE``,
``CALL`` of a procedure) are logged as the account statements they ran, which the replay runs none of. Earlier rounds:
``test_mariadb*.py``."""

from __future__ import annotations

import datetime
import glob
import subprocess  # nosec B404
import time
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.fidelity.test_mariadb_round11 import ACCOUNT_STATE
from tests.fidelity.test_mariadb_round12 import grants_on
from tests.harness.servers import MariaDBServer

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    GtidStripper, ReplayEventRewriter, _Chained)

PAD = 70000   # bytes: longer than the replay's 64 KiB statement window
BEFORE = ("CREATE DATABASE pr; USE pr; CREATE TABLE t (id INT); CREATE USER 'w'@'%'; GRANT INSERT ON pr.* TO 'w'@'%'; "
          "CREATE USER 'g'@'%'")
# each run with USE pr by the superuser, each account statement undone on the source right after: the live accounts
# end as they began, and a replay that ran any of them would change them
INDIRECT = [
    "SET binlog_format=STATEMENT;\nDELIMITER //\nBEGIN NOT ATOMIC INSERT INTO t VALUES (1); "
    "CREATE USER 'blk'@'%'; DROP USER 'blk'@'%'; END//\nDELIMITER ;",
    "DELIMITER //\nIF 1 THEN GRANT SELECT ON pr.t TO 'w'@'%'; REVOKE SELECT ON pr.t FROM 'w'@'%'; END IF//\n"
    "DELIMITER ;",
    "EXECUTE IMMEDIATE 'CREATE USER ''imm''@''%'''; DROP USER 'imm'@'%'",
    "PREPARE s FROM 'SET PASSWORD FOR ''w''@''%'' = PASSWORD(''pw13'')'; EXECUTE s; SET PASSWORD FOR 'w'@'%' = ''",
    "DELIMITER //\nCREATE PROCEDURE p() BEGIN CREATE USER 'prc'@'%'; END//\nDELIMITER ;\nCALL p(); DROP USER 'prc'@'%'",
    "INSERT INTO t VALUES (2)",
]
# the same account statement text sent without a default database and with USE pr, in turns (sent_with_use matches
# the scan's two passes by text, in order: a text sent both ways may get the other's flag; its reading is the same)
TURNS = [(False, "GRANT SELECT ON pr.t TO 'w'@'%'"), (True, "REVOKE SELECT ON pr.t FROM 'w'@'%'"),
         (True, "GRANT SELECT ON pr.t TO 'w'@'%'"), (True, "GRANT UPDATE ON t TO 'w'@'%'"),
         (False, "REVOKE UPDATE ON pr.t FROM 'w'@'%'"), (True, "GRANT UPDATE ON t TO 'w'@'%'"),
         (False, "REVOKE SELECT ON pr.t FROM 'w'@'%'"), (True, "GRANT SELECT ON pr.t TO 'w'@'%'")]
# NO_BACKSLASH_ESCAPES: the first view's second string holds the statement end, then a GRANT and a line comment; the
# second view's string ends the first's as the client read the old replay, and its GRANT ALL ran
MODE_SPLIT = ("SET sql_mode = 'NO_BACKSLASH_ESCAPES'; USE pr; "
              "CREATE VIEW v1 AS SELECT 'a\\' AS x, '/*!*/;\nGRANT SELECT ON t TO w; -- ' AS y; "
              "CREATE VIEW v2 AS SELECT ' AS s; GRANT ALL ON *.* TO w WITH GRANT OPTION; -- ' AS s")
# gbk: 0xbf 0x5c is one character, its second byte a backslash: the old check read it as escaping the quote after it
GBK_SPLIT = (b"USE pr; CREATE VIEW v4 AS SELECT '\xbf\x5c' AS x, '/*!*/;\nGRANT SELECT ON t TO g; -- ' AS y; "
             b"CREATE VIEW v5 AS SELECT ' AS s; GRANT ALL ON *.* TO g WITH GRANT OPTION; -- ' AS s;\n")
LONG_SPLIT = ("USE pr; CREATE VIEW v3 AS SELECT '" + 'x' * PAD + "/*!*/;\nGRANT ALL ON *.* TO w; -- ' AS s")


def grants_of_w(server):
    return server.sql("SHOW GRANTS FOR 'w'@'%'") + server.sql("SHOW GRANTS FOR 'g'@'%'")


def as_gbk_client(server, sql: bytes) -> None:
    """``sql`` (bytes, gbk) through the mariadb client, as the harness's application account."""
    argv = [server.bin('mariadb'), '--defaults-file=%s' % server.option_file(), '--default-character-set=gbk']
    subprocess.run(argv, input=sql, env=server._client_env(), capture_output=True, check=True)


@pytest.fixture(scope='module')
def replayed(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    tmp = tmp_path_factory.mktemp('round13')
    server = MariaDBServer()
    try:
        server.start()
        server.sql(BEFORE, superuser=True)
        backup(server, 'pr', tmp / 'i')
        time.sleep(1.1)
        for sql in INDIRECT:
            server.sql('USE pr;\n' + sql, superuser=True)
        for used, sql in TURNS:
            server.sql(('USE pr; ' if used else '') + sql, superuser=True)
        time.sleep(1.1)
        stop = datetime.datetime.now(datetime.timezone.utc)
        backup(server, 'pr', tmp / 'm')
        time.sleep(1.1)
        server.sql(MODE_SPLIT)   # the harness's application account, not the superuser
        time.sleep(1.1)
        stops = {'mode': datetime.datetime.now(datetime.timezone.utc)}
        backup(server, 'pr', tmp / 'g')
        time.sleep(1.1)
        as_gbk_client(server, GBK_SPLIT)
        time.sleep(1.1)
        stops['gbk'] = datetime.datetime.now(datetime.timezone.utc)
        backup(server, 'pr', tmp / 'l')
        time.sleep(1.1)
        server.sql(LONG_SPLIT)
        for where in 'imgl':
            backup(server, 'pr', tmp / where, kind='log')
        out: Dict[str, Any] = {'server': server, 'accounts': server.sql(ACCOUNT_STATE)}
        try:
            out['result'] = restore(server, tmp / 'i', 'pr', 'pr_ind', stop_at=stop)
            out['rows'] = server.sql('SELECT id FROM pr_ind.t ORDER BY id')
            out['routines'] = server.sql("SELECT ROUTINE_NAME FROM information_schema.ROUTINES "
                                         "WHERE ROUTINE_SCHEMA = 'pr_ind'")
        except Exception as exc:   # each test names the failure
            out['failed'] = exc
        out['accounts_after'] = server.sql(ACCOUNT_STATE)
        out['live'], out['copied'] = grants_on(server, 'pr'), grants_on(server, 'pr_ind')
        for name, where in (('mode', 'm'), ('gbk', 'g'), ('long', 'l')):
            out[name + '_before'] = grants_of_w(server)
            try:
                out[name] = restore(server, tmp / where, 'pr', 'pr_' + name, stop_at=stops.get(name))
            except Exception as exc:
                out[name] = exc
            out[name + '_w'] = grants_of_w(server)
            out[name + '_left'] = server.sql("SHOW DATABASES LIKE 'pr\\_%s%%'" % name)
        # the replay's own rewriter, fed the real stream of the whole log (the scan before it refuses the long view)
        logs = sorted(glob.glob(str(server.binlog_dir / 'mariadb-bin.0*')))
        argv = [server.bin('mariadb-binlog'), '--no-defaults', '--database=pr', '--rewrite-db=pr->pr_x'] + logs
        out['stream'] = subprocess.run(argv, capture_output=True, check=True).stdout
        yield out
    finally:
        server.cleanup()


def test_statements_run_through_blocks_execute_and_call_change_no_live_account(replayed):
    """Guard (passed on the old code): MariaDB logs the account statements a BEGIN NOT ATOMIC block, an IF, EXECUTE
    IMMEDIATE, PREPARE/EXECUTE or CALL ran as statements of their own (not the block), and the replay runs none of
    them; the block's INSERT and the procedure (its body holding CREATE USER) are restored."""
    assert 'failed' not in replayed, replayed.get('failed')
    assert replayed['accounts_after'] == replayed['accounts']
    assert replayed['rows'] == [('1',), ('2',)]
    assert replayed['routines'] == [('p',)]


def test_the_same_account_statement_sent_with_and_without_use_gives_the_live_privileges(replayed):
    """Guard (passed on the old code): ``sent_with_use`` pairs the scan's two passes by text, in order, so a text sent
    both with USE pr and without may take the other's flag; a statement sent without a default database names no
    object unqualified (the server refuses ON t there: no database selected) and is read the same either way, and
    mariadb-binlog prints the right ``use`` before every statement that has one. The copy holds what the live
    database holds."""
    assert 'failed' not in replayed, replayed.get('failed')
    assert replayed['copied'] == replayed['live']
    assert 'GRANT SELECT, UPDATE ON `pr`.`t` TO `w`@`%`' in replayed['live']


def test_a_statement_end_in_a_string_under_no_backslash_escapes_is_refused(replayed):
    """Failed before: with NO_BACKSLASH_ESCAPES the check read 'a\\' as an open string, so the second string (holding
    the statement end) as closed; the GRANT after the end became DO 0, the mariadb client read on in the string up
    to the second view's quote, and its GRANT ALL ON *.* ran on this server. Now refused before anything runs."""
    refused = replayed['mode']
    assert replayed['mode_w'] == replayed['mode_before']
    assert isinstance(refused, OpsReadyError) and 'inside a string' in str(refused), refused
    assert 'stop_at' in str(refused)
    assert replayed['mode_left'] == []
    assert 'Nothing was restored' in str(refused)   # by the scan, before the copy is made


def test_a_statement_end_in_a_string_after_a_gbk_character_ending_in_a_backslash_byte_is_refused(replayed):
    """Failed before: the check read the second byte (0x5c) of the gbk character 0xbf5c as a backslash escaping the
    quote after it, so the second string (holding the statement end) as closed; the mariadb client, switched to gbk
    by the stream, read the character whole, and the second view's GRANT ALL ON *.* ran on this server."""
    refused = replayed['gbk']
    assert replayed['gbk_w'] == replayed['gbk_before']
    assert isinstance(refused, OpsReadyError) and 'inside a string' in str(refused), refused
    assert replayed['gbk_left'] == []
    assert 'Nothing was restored' in str(refused)   # by the scan, before the copy is made


def test_a_long_statement_end_in_a_string_is_refused(replayed):
    """Guard (passed on the old code): the restore's scan refuses a 70 KB statement holding the statement end in a
    string before anything runs."""
    refused = replayed['long']
    assert replayed['long_w'] == replayed['long_before']
    assert isinstance(refused, OpsReadyError) and 'inside a string' in str(refused), refused
    assert replayed['long_left'] == []


@pytest.mark.parametrize('size', [4096, 65536, 1 << 20])
def test_the_replay_rewriter_itself_refuses_them(replayed, size):
    """Failed before: the rewriter (the replay's last check, whatever the scan let through) passed a statement longer
    than 64 KiB on unchecked and made the GRANT after its statement end DO 0, and read the NO_BACKSLASH_ESCAPES
    statement with escapes, and the gbk one byte by byte."""
    data = replayed['stream']
    views = [data.index(b'VIEW `%s`' % view) for view in (b'v1', b'v4', b'v3')]
    head = data[:data.rindex(b'\n# at ', 0, min(views))]
    for view in views:
        piece = head + data[data.rindex(b'\n# at ', 0, view):data.index(b'\n# at ', view)]
        rewriter = _Chained(GtidStripper(), ReplayEventRewriter({}))
        with pytest.raises(OpsReadyError, match='inside a string'):
            for i in range(0, len(piece), size):
                rewriter.feed(piece[i:i + size])
            rewriter.flush()
