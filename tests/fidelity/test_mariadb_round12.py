"""Fidelity, MariaDB, round 12: the point-in-time replay runs no account statement of the binary logs against the
server's live accounts, whatever its form: longer than 64 KiB (a column list, a comment), in a versioned comment
(``/*!100000 CREATE USER ... */``); one whose first words come after a comment longer than 64 KiB is refused before
anything runs, and so is a statement holding the replay stream's statement end (``/*!*/;`` and a line end) in a
string: cut there, a rewritten piece left a quote open, and a later string ran as SQL on this server (an account
with INSERT on the database made another a global GRANT). Earlier rounds: ``test_mariadb*.py``."""

from __future__ import annotations

import datetime
import time
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.fidelity.test_mariadb_round11 import ACCOUNT_STATE
from tests.harness.servers import MariaDBServer

SECRET = 'Secr3t-pw-r12'
PAD = 70000   # bytes: longer than the replay's 64 KiB statement window

BEFORE = ("CREATE DATABASE pr; USE pr; CREATE TABLE t (id INT, a INT); CREATE TABLE n (s TEXT); "
          "CREATE USER 'w'@'%'; GRANT INSERT ON pr.* TO 'w'@'%'; CREATE USER 'gcol'@'%'")
# each sent with USE pr: replayed as written, they would change the live accounts (the later statement undoes it
# on the source; the replay runs none of the short ones)
LONG = {
    'CREATE USER with a 70 KB comment': "EXECUTE IMMEDIATE CONCAT('CREATE USER ''big''@''%%'' /* ', REPEAT('y', %d), "
                                        "' */'); DROP USER 'big'@'%%'" % PAD,
    'GRANT with a 70 KB column list': "GRANT SELECT (a" + ' ' * PAD + ") ON t TO 'gcol'@'%'; "
                                      "REVOKE SELECT (a) ON t FROM 'gcol'@'%'",
    'ALTER USER IDENTIFIED BY with a 70 KB comment': ("EXECUTE IMMEDIATE CONCAT('ALTER USER ''gcol''@''%%'' IDENTIFIED "
                                                      "BY ''%s'' /* ', REPEAT('p', %d), ' */'); "
                                                      "ALTER USER 'gcol'@'%%' IDENTIFIED BY ''" % (SECRET, PAD)),
    'CREATE USER in a versioned comment': "/*!100000 CREATE USER 'vc'@'%' */; DROP USER 'vc'@'%'",
    'SET STATEMENT ... FOR CREATE USER': ("SET STATEMENT max_statement_time=100 FOR CREATE USER 'ss'@'%'; "
                                          "DROP USER 'ss'@'%'"),
    # read by the ledger: w holds them on the copy
    'SET STATEMENT ... FOR GRANT, a versioned GRANT': ("SET STATEMENT max_statement_time=100 FOR GRANT SELECT ON t TO "
                                                       "'w'@'%'; /*!100000 GRANT UPDATE ON t TO 'w'@'%' */"),
    'CREATE USER in a versioned comment, 70 KB long': "EXECUTE IMMEDIATE CONCAT('/*!100000 CREATE USER ''vl''@''%%'' "
                                                      "/* ', REPEAT('v', %d), ' */ */'); DROP USER 'vl'@'%%'" % PAD,
}
# DDL is logged as a statement whatever binlog_format: the first view's string holds a statement end, then a GRANT
# the old rewriter made DO 0 (with its closing quote), so the client read on in the string up to the second view's
# quote, and ran the rest: a GRANT ALL ON *.* from whoever can create a view in the database
SPLIT = ("USE pr; CREATE VIEW v1 AS SELECT 'x/*!*/;\nGRANT SELECT ON t TO w' AS s",
         "USE pr; CREATE VIEW v2 AS SELECT ' AS s; GRANT ALL ON *.* TO w WITH GRANT OPTION; -- ' AS s")
HIDDEN = "EXECUTE IMMEDIATE CONCAT('/* ', REPEAT('c', %d), ' */ CREATE USER ''hid''@''%%''')" % PAD


def grants_on(server, database):
    """SHOW GRANTS FOR w, the lines naming ``database`` (its name written as ``pr``; ``\\_`` escapes read as _)."""
    return sorted(line.replace('\\_', '_').replace('`%s`' % database, '`pr`') for (line,) in
                  server.sql("SHOW GRANTS FOR 'w'@'%'") if '`%s`' % database in line.replace('\\_', '_'))


@pytest.fixture(scope='module')
def replayed(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    """One full backup; after it, a REVOKE and GRANT ON * and each long form (up to ``stop``), then a
    statement whose first words come after a 70 KB comment; one log backup. A restore up to ``stop`` into
    ``pr_copy``, one of everything into ``pr_all`` (refused)."""
    tmp = tmp_path_factory.mktemp('round12')
    server = MariaDBServer()
    try:
        server.start()
        server.sql(BEFORE, superuser=True)
        backup(server, 'pr', tmp / 'b')
        time.sleep(1.1)
        server.sql("USE pr; INSERT INTO t VALUES (1, 1)", superuser=True)
        server.sql("USE pr; REVOKE INSERT ON pr.* FROM 'w'@'%'; GRANT INSERT ON * TO 'w'@'%'", superuser=True)
        for sql in LONG.values():
            server.sql('USE pr; ' + sql, superuser=True)
        time.sleep(1.1)
        stop = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        server.sql('USE pr; ' + HIDDEN + "; DROP USER 'hid'@'%'", superuser=True)
        time.sleep(1.1)
        backup(server, 'pr', tmp / 'b', kind='log')
        backup(server, 'pr', tmp / 's')
        time.sleep(1.1)
        for sql in SPLIT:
            server.sql(sql)   # the harness's application account, not the superuser
        time.sleep(1.1)
        backup(server, 'pr', tmp / 's', kind='log')
        out: Dict[str, Any] = {'server': server, 'live': grants_on(server, 'pr'), 'accounts': server.sql(ACCOUNT_STATE)}
        try:
            out['result'] = restore(server, tmp / 'b', 'pr', 'pr_copy', stop_at=stop)
            out['copied'] = grants_on(server, 'pr_copy')
            out['rows'] = server.sql('SELECT id FROM pr_copy.t')
        except Exception as exc:   # each test names the failure
            out['failed'] = exc
        out['accounts_after'] = server.sql(ACCOUNT_STATE)
        try:
            restore(server, tmp / 'b', 'pr', 'pr_all')
        except Exception as exc:
            out['refused'] = exc
        out['accounts_after_refusal'] = server.sql(ACCOUNT_STATE)
        out['pr_all'] = server.sql("SHOW DATABASES LIKE 'pr\\_all'")
        out['w_before_split'] = server.sql("SHOW GRANTS FOR 'w'@'%'")
        try:
            restore(server, tmp / 's', 'pr', 'pr_split')
        except Exception as exc:
            out['split'] = exc
        out['w_after_split'] = server.sql("SHOW GRANTS FOR 'w'@'%'")
        yield out
    finally:
        server.cleanup()


def test_no_long_or_versioned_account_statement_changes_a_live_account(replayed):
    """Failed before: each statement of ``LONG`` (longer than 64 KiB, or in a versioned comment) was replayed as
    written, against the live accounts (big, vl, vc created, gcol's password set: the restore changed them)."""
    assert 'failed' not in replayed, replayed.get('failed')
    assert replayed['rows'] == [('1',)]
    assert replayed['accounts_after'] == replayed['accounts']


def test_the_copy_holds_the_privileges_the_short_statements_leave(replayed):
    """The account statements around the long ones are read (REVOKE then GRANT ON * with USE pr: w holds INSERT on
    the copy; SELECT, UPDATE on t from a SET STATEMENT ... FOR GRANT and a versioned GRANT). Failed before: the
    replay itself failed (ERROR 1064) on the long statements; the two GRANTs were not read."""
    assert 'failed' not in replayed, replayed.get('failed')
    assert replayed['copied'] == replayed['live']
    assert replayed['copied'], replayed['live']


def test_a_statement_whose_first_words_are_out_of_reach_is_refused_before_anything_runs(replayed):
    """An account statement behind a 70 KB comment: the restore is refused with a message that says why, before
    the replay; no account changed, no copy left, no password in the message."""
    refused = replayed.get('refused')
    assert refused is not None and 'first words' in str(refused), refused
    assert 'stop_at' in str(refused) and SECRET not in str(refused)
    assert replayed['accounts_after_refusal'] == replayed['accounts']
    assert replayed['pr_all'] == []
    assert SECRET not in repr(replayed.get('result'))


def test_a_statement_end_inside_a_string_is_refused_and_runs_nothing(replayed):
    """Failed before: the replay cut the first INSERT's string at the statement end it holds, made the GRANT after
    it DO 0 (its closing quote with it), and the mariadb client read on in the string up to the second INSERT's
    quote: its GRANT ALL ON *.* ran on this server. Now the restore is refused before anything runs."""
    split = replayed.get('split')
    assert replayed['w_after_split'] == replayed['w_before_split']
    assert split is not None and '/*!*/;' in str(split) and 'stop_at' in str(split), split
