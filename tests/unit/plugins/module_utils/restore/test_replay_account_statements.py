"""The binlog replay runs no account statement (GRANT, REVOKE, CREATE/ALTER/DROP/RENAME USER or ROLE, SET PASSWORD,
SET DEFAULT ROLE) against the server's live accounts, whatever its length, its chunking, its case, its leading
comments or versioned comments (``/*!100000 ...*/``, ``/*M!...*/``); one whose first words the rewriter cannot
reach is refused, not passed on."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    STATEMENT_CARRY, ReplayEventRewriter, account_text, drop_account_statement, head_words, splits_a_literal,
    statement_kind, unreadable_head)

END = b'/*!*/;\n'
BIG = 3 * STATEMENT_CARRY


def stream(*statements: bytes) -> bytes:
    return b''.join(b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\n' + s + b'\n' + END
                    for s in statements)


def replayed(data: bytes, size: int) -> bytes:
    rewriter = ReplayEventRewriter({})
    return b''.join(rewriter.feed(data[i:i + size]) for i in range(0, len(data), size)) + rewriter.flush()


@pytest.mark.parametrize('statement', [
    b'/*!100000 CREATE USER u */', b'/*M!100000 GRANT SELECT ON t TO u */', b'/*!GRANT SELECT ON t TO u*/',
    b'CREATE /*!50000 OR REPLACE */ USER u', b'/*' + b'x' * 400 + b'*/ GRANT SELECT ON t TO u',
    b'-- a comment\nREVOKE SELECT ON t FROM u', b'# a comment\n\tgrant select on t to u', b'  \n drop user u',
    b'/* c */ /*!100000 SET */ PASSWORD FOR u = PASSWORD(\'x\')', b'set /* c */ default role r for u',
    b'/*!40101 CREATE OR REPLACE ROLE r */', b'ALTER /*M!100500 USER */ u ACCOUNT LOCK'])
def test_an_account_statement_behind_comments_or_versioned_comments_is_one(statement):
    """Failed before: a versioned comment's version number was read as the first word, a leading comment longer
    than 256 bytes hid the statement, and a versioned comment inside the first words hid USER. Guards (passed on
    the old code): /*!GRANT with no version, -- and # comments, lower case, leading white space."""
    assert statement_kind(statement) == 'account'
    out = drop_account_statement(b'\n' + statement + b'\n')
    assert out.endswith(b'DO 0\n') and head_words(out) == [b'DO', b'0'], out


@pytest.mark.parametrize('statement', [
    b'/* GRANT SELECT ON t TO u */ SELECT 1', b"SELECT '/*!100000 GRANT'", b'/*!100000 SET ROLE r */',
    b'CREATE TABLE user (id INT)', b'INSERT INTO t VALUES (1) /* GRANT */', b'-- GRANT\nSELECT 1'])
def test_other_statements_are_not(statement):
    """Guard (passed on the old code): comments naming GRANT are no account statement."""
    assert statement_kind(statement) == 'other'


LONG = [
    b'GRANT SELECT (' + b', '.join([b'a'] * (BIG // 3)) + b') ON t TO u',
    b"CREATE USER u IDENTIFIED BY 'pw' /* " + b'y' * BIG + b" */",
    b'/* ' + b'z' * (STATEMENT_CARRY // 2) + b' */ GRANT SELECT ON t TO u /* ' + b'z' * BIG + b' */',
    b'/*!100000 CREATE USER u */ /* ' + b'w' * BIG + b' */',
    b"alter user u identified by 'pw' /* " + b"'" * BIG + b" */",
]


@pytest.mark.parametrize('n', range(len(LONG)))
def test_a_long_account_statement_is_a_no_op_whatever_the_chunking(n):
    """Failed before: an account statement longer than 64 KiB passed through unchanged (the replay ran it against
    the live accounts)."""
    data = stream(b"INSERT INTO t VALUES ('GRANT')", LONG[n], b'INSERT INTO t VALUES (2)')
    want = stream(b"INSERT INTO t VALUES ('GRANT')", b'DO 0', b'INSERT INTO t VALUES (2)')
    want = want.replace(b'DO 0\n\n', b'DO 0\n')
    for size in (4096, 65536, 65537, 100000, len(data)):
        assert replayed(data, size) == want, size


def test_a_long_other_statement_passes_on():
    """Guard (passed on the old code): a long statement that changes no account is replayed as written."""
    big = stream(b"INSERT INTO t VALUES ('" + b'GRANT ' * BIG + b"')", b'SELECT 1')
    for size in (4096, 70000, len(big)):
        assert replayed(big, size) == big


def test_a_statement_whose_first_words_are_out_of_reach_is_refused():
    """An account statement behind a leading comment longer than 64 KiB: the rewriter cannot tell what it is before
    passing its start on; the scan refuses it (``unreadable_head``), the rewriter too."""
    hidden = b'/* ' + b'c' * BIG + b' */ GRANT SELECT ON t TO u'
    assert unreadable_head(hidden)
    assert not unreadable_head(LONG[0]) and not unreadable_head(b'SELECT 1')
    assert not unreadable_head(b"INSERT INTO t VALUES ('" + b'x' * BIG + b"')")
    with pytest.raises(OpsReadyError, match='first words'):
        replayed(stream(hidden), 4096)


@pytest.mark.parametrize('piece,split', [
    (b"CREATE VIEW v AS SELECT 'x", True), (b'SELECT "a\\"b', True), (b'SELECT `a', True), (b'SELECT 1 /* c', True),
    (b"SELECT 'a\\'", True),
    (b"INSERT INTO t VALUES ('a''b', \"x\\\"y\", `c``d`)", False), (b"# it's\nSELECT 1", False),
    (b"SELECT 1 -- it's", False), (b'/*!100000 CREATE USER x', False), (b"SELECT 'a\\\\'", False),
    (b"# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\nSET TIMESTAMP=1", False),
    (b"BINLOG '\nAbCd+/==\n'", False)])
def test_a_piece_leaving_a_string_or_comment_open_is_found(piece, split):
    assert splits_a_literal(piece) == split


def test_the_replay_refuses_a_statement_end_inside_a_string():
    """Failed before: the statement end inside the string cut the statement, the piece after it (a GRANT) became
    DO 0 with the string's closing quote, and the mariadb client read the following statements as the string and
    a later string's text as SQL."""
    data = stream(b"CREATE VIEW v1 AS SELECT 'x/*!*/;\nGRANT SELECT ON t TO w' AS s", b'SELECT 1')
    for size in (7, 4096, len(data)):
        with pytest.raises(OpsReadyError, match='inside a string'):
            replayed(data, size)


@pytest.mark.parametrize('statement', [
    b"SET STATEMENT max_statement_time=100 FOR CREATE USER 'ss'@'%'",
    b"set statement sql_mode='', lock_wait_timeout=(SELECT 1) for grant select on t to u",
    b"/*!100000 SET STATEMENT max_statement_time=1 FOR */ DROP USER u"])
def test_set_statement_for_an_account_statement_is_one(statement):
    """Failed before: MariaDB runs and logs SET STATEMENT ... FOR CREATE USER as the CREATE USER; the replay ran it
    against the live accounts."""
    assert statement_kind(statement) == 'account'


@pytest.mark.parametrize('statement', [b'SET STATEMENT max_statement_time=1 FOR SELECT 1', b'SET @a = 1',
                                       b'SET ROLE r', b'SET'])
def test_set_statement_for_another_statement_is_not(statement):
    """Guard (passed on the old code)."""
    assert statement_kind(statement) == 'other'


def test_the_ledger_reads_what_the_server_runs():
    """Failed before: a GRANT in a versioned comment or behind SET STATEMENT ... FOR was not read (the copy lacked
    its privilege)."""
    assert account_text(b"/*!100000 GRANT SELECT ON pr.t TO u */") == b' GRANT SELECT ON pr.t TO u '
    assert account_text(b"SET STATEMENT a=(1) FOR GRANT SELECT ON pr.t TO u") == b' GRANT SELECT ON pr.t TO u'
    assert account_text(b"SET @a = 'x'") == b"SET @a = 'x'"
