"""A versioned comment (``/*!NNNNNN ... */``, ``/*M!NNNNNN ... */``) is read as the server that runs the replay reads
it: code when its version is not newer than that server's (MariaDB also skips a MySQL 5.7+ one, 50700-99999, not
marked ``M``; MySQL knows no ``/*M!``), a comment otherwise, as the server itself logs it (``/* 999999 ...*/``:
``tests/fidelity/test_mariadb_versioned_replay.py`` shows it on a real server). A statement behind a skipped comment
naming GRANT is no account statement and is replayed; one whose skipped comment holds a quote (what the server that
logged it ran as code, this one does not) is refused."""

from __future__ import annotations

import subprocess  # nosec B404

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    STATEMENT_CARRY, ReplayEventRewriter, check_statements, logged_definers, replay_server, server_text,
    statement_kind)

END = b'/*!*/;\n'
HEADER = b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\tthread_id=5\n'
MARIADB_10_11 = (101106, True)
MYSQL_8 = (80036, False)
INSERT = b'INSERT INTO t VALUES (1)'


def replayed(data: bytes, server, size: int = 4096) -> bytes:
    rewriter = ReplayEventRewriter({}, server)
    return b''.join(rewriter.feed(data[i:i + size]) for i in range(0, len(data), size)) + rewriter.flush()


SKIPPED = [
    b'/*!999999 GRANT ALL ON *.* TO x */ ' + INSERT,
    b"/*M!999999 GRANT ALL ON *.* TO 'x'@'%' */ " + INSERT,
    b'/*!999999 GRANT ALL ON *.* TO "x"@`%` */ ' + INSERT,
    b'/*!101107 CREATE USER x */ ' + INSERT,          # one patch release newer than the server
    b'/*!50700 DROP USER x */ ' + INSERT,             # MySQL 5.7's: MariaDB skips it
    b'/*!80000 SET PASSWORD FOR x = */ ' + INSERT,
    b'/*!999999 SET STATEMENT max_statement_time=1 FOR GRANT ALL ON *.* TO x */ ' + INSERT,
    b'SET STATEMENT max_statement_time=1 FOR /*!999999 REVOKE ALL ON *.* FROM x */ ' + INSERT,
]


@pytest.mark.parametrize('statement', SKIPPED)
@pytest.mark.parametrize('size', [7, 4096])
def test_a_statement_behind_a_comment_the_server_skips_is_replayed(statement, size):
    """Failed before: the skipped comment's GRANT (or CREATE USER...) was read as the statement's, which became
    ``DO 0``: the INSERT the server would have run was silently lost."""
    out = replayed(HEADER + statement + b'\n' + END, MARIADB_10_11, size)
    assert INSERT in out and b'DO 0' not in out, out


@pytest.mark.parametrize('statement', [
    b'/*!100000 GRANT SELECT ON t TO x */', b'/*!101106 CREATE USER x */', b'/*M!100500 DROP USER x */',
    b'/*!GRANT SELECT ON t TO x */', b'/*M!GRANT SELECT ON t TO x */', b'/*!40101 CREATE ROLE r */',
    b'/*M!50700 GRANT SELECT ON t TO x */', b'/*!999999 SELECT 1; */ GRANT SELECT ON t TO x',
    b'SET STATEMENT max_statement_time=1 FOR /*!100000 GRANT SELECT ON t TO x */'])
def test_an_account_statement_in_a_comment_the_server_runs_is_never_run(statement):
    """Guard (passed on the old code, which read every versioned comment as code): a version not newer than the
    server's, a MariaDB-marked one, one with no version; a skipped comment before the real statement."""
    out = replayed(HEADER + statement + b'\n' + END, MARIADB_10_11)
    assert out.endswith(b'DO 0\n' + END) and b'GRANT' not in out.replace(b'/* 999999 SELECT 1; */', b''), out


def test_a_version_of_fewer_than_five_digits_is_code():
    """Failed before: ``/*!1 GRANT ...`` had its digits dropped and became DO 0; the server reads ``1 GRANT ...``
    (an error it reports, not a statement the replay may hide)."""
    out = replayed(HEADER + b'/*!1 GRANT SELECT ON t TO x */\n' + END, MARIADB_10_11)
    assert b'DO 0' not in out and b'/*!1 GRANT' in out


def test_mysql_reads_a_mariadb_comment_as_a_comment():
    """Failed before: MySQL knows no ``/*M!``; its GRANT was taken for the statement."""
    assert statement_kind(server_text(b'/*M!100000 GRANT ALL ON *.* TO x */ ' + INSERT, MYSQL_8)) == 'other'
    assert statement_kind(server_text(b'/*!50700 GRANT ALL ON *.* TO x */', MYSQL_8)) == 'account'


def test_a_long_statement_behind_a_skipped_comment_is_passed_on():
    """Failed before: its head was read as an account statement: the long INSERT was dropped whole."""
    statement = b"/*!999999 GRANT ALL ON *.* TO x */ INSERT INTO t VALUES ('" + b'v' * 2 * STATEMENT_CARRY + b"')"
    out = replayed(HEADER + statement + b'\n' + END, MARIADB_10_11)
    assert b'v' * 2 * STATEMENT_CARRY in out and b'DO 0' not in out


HIDING = [
    b"INSERT INTO t VALUES (1) /*!999999 , (' */ ; GRANT ALL ON *.* TO w; -- ') */",
    b'CREATE TABLE t2 (a INT) /*!999999 COMMENT "x */ ; DROP USER w; #" */',
    b'INSERT INTO t VALUES (1) /*!999999 -- */ ; GRANT ALL ON *.* TO w',
    b'INSERT INTO t VALUES (1) /*!999999 `a */ ; GRANT ALL ON *.* TO w; -- ` */',
    b'INSERT INTO t VALUES (1) /*!999999 /* a comment inside */ */',   # refused too: no reading of it is needed
    b"INSERT INTO t VALUES (1) /*!999999 'a\\' */ ; GRANT ALL ON *.* TO w; -- ' */",   # open without escapes
]


@pytest.mark.parametrize('statement', HIDING)
def test_a_skipped_comment_holding_a_quote_is_refused(statement, tmp_path):
    """Failed before: the client (and a newer source server) read the comment's quote as a string reaching past the
    comment's end, this server skips the comment and runs what follows it: the GRANT after ``;`` ran against this
    server's live accounts. Refused by the scan before anything is made, and by the replay itself."""
    with pytest.raises(OpsReadyError, match='versioned comment') as refused:
        replayed(HEADER + statement + b'\n' + END, MARIADB_10_11)
    assert 'stop_at' in str(refused.value)
    path = tmp_path / 'stream'
    path.write_bytes(b'DELIMITER /*!*/;\nuse `pr`/*!*/;\nSET TIMESTAMP=1/*!*/;\n' + statement + b'\n' + END)
    with pytest.raises(OpsReadyError, match='Nothing was restored') as refused:
        check_statements(_Stream(path), ['mariadb-binlog'], [], 'pr', server=MARIADB_10_11)
    assert 'versioned comment' in str(refused.value)


def test_a_quote_in_a_comment_the_server_runs_is_not_refused():
    """Guard (passed on the old code): read as code by client and server alike."""
    statement = b"INSERT INTO t VALUES (1) /*!100000 , ('a */ b') */"
    assert replayed(HEADER + statement + b'\n' + END, MARIADB_10_11).count(statement) == 1


class _Stream:
    """An engine whose mariadb-binlog prints ``path`` (a real process: ``cat``), for ``check_statements``."""

    def __init__(self, path, version='10.11.6-MariaDB-log'):
        self.path, self.version, self.flavor = path, version, 'mariadb'
        self.runner = self

    def ping(self):
        return {'server_version': self.version}

    @staticmethod
    def query(_sql):
        return [('pr',), ('mysql',)]

    def popen(self, _argv, env=None):
        return subprocess.Popen(['cat', str(self.path)], stdout=subprocess.PIPE, env=env)

    @staticmethod
    def finish(proc, _argv, what=None):
        proc.wait()
        return ''


def test_the_scan_collects_account_statements_as_the_server_reads_them(tmp_path):
    """Failed before: the INSERT behind a skipped GRANT was collected as an account statement (the ledger withheld
    privileges for it); the GRANT in a comment the server runs is collected as the server reads it. The server is
    this engine's (SELECT VERSION())."""
    path = tmp_path / 'stream'
    path.write_bytes(b'DELIMITER /*!*/;\nuse `pr`/*!*/;\nSET TIMESTAMP=1/*!*/;\n'
                     + b'/*!999999 REVOKE ALL ON *.* FROM w */ ' + INSERT + b'\n' + END
                     + b'/*!100000 GRANT SELECT ON pr.t TO w */\n' + END)
    accounts = []
    assert check_statements(_Stream(path), ['mariadb-binlog'], [], 'pr', None, None, accounts) == []
    assert [a[0] for a in accounts] == [b'/*!100000 GRANT SELECT ON pr.t TO w */']


@pytest.mark.parametrize('version, expected', [
    ('10.11.19-MariaDB-0+deb12u1-log', (101119, True)), ('11.4.2-MariaDB', (110402, True)),
    ('8.0.36', (80036, False)), ('', None)])
def test_the_server_is_read_from_its_version(version, expected):
    class Engine:
        flavor = 'mysql'

        @staticmethod
        def ping():
            return {'server_version': version}
    assert replay_server(Engine()) == expected


@pytest.mark.parametrize('statement, expected', [
    (b'CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS SELECT 1',
     [('root@localhost', 'views')]),
    (b'CREATE ALGORITHM=UNDEFINED DEFINER="root"@"localhost" SQL SECURITY DEFINER VIEW "v" AS SELECT 1',
     [('root@localhost', 'views')]),
    (b'CREATE DEFINER="a""b"@"h\'x" PROCEDURE "p"() SELECT 1', [('a"b@h\'x', 'routines')]),
    (b'CREATE DEFINER="a\\b"@"%" FUNCTION f() RETURNS INT RETURN 1', [('a\\b@%', 'routines')]),
    (b'CREATE DEFINER=`a``b`@`h"x` EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1', [('a`b@h"x', 'events')]),
    (b'CREATE DEFINER="root"@"localhost" TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a=1',
     [('root@localhost', 'triggers')]),
    (b"CREATE DEFINER='u\\'s'@'h''x' VIEW v AS SELECT 1", [("u's@h'x", 'views')]),
    (b'CREATE DEFINER=u@localhost VIEW v AS SELECT 1', [('u@localhost', 'views')]),
    (b'CREATE DEFINER=`r` VIEW v AS SELECT 1', [('r@', 'views')]),
])
def test_every_definer_form_is_read(statement, expected):
    """Failed before for all but the first, ``a`b`` and the role: only DEFINER=`user`@`host` was read, while under
    sql_mode ANSI_QUOTES the server logs DEFINER="user"@"host" (``test_mariadb_versioned_replay.py``): such an
    object's definer was neither recorded nor checked (check mode's warning of a definer absent here, the probe that
    the restoring account may lend it)."""
    assert logged_definers(statement) == expected
