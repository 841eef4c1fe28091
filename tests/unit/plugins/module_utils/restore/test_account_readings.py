"""The account statements of the logs (GRANT, REVOKE, RENAME/DROP USER...) are read under the statement's own
sql_mode and character set, as the name readers are (``StreamMode.reading``): the ledger of the source's privileges
(``GrantLedger``) read them with the default reading, so under NO_BACKSLASH_ESCAPES ``'a\\'@'%'`` (the account
``a\\``@``%``) was misread, and under ANSI_QUOTES ``"a\\b"`` (the account ``a\\b``) was read as the string ``ab``:
the privileges the logs gave or took were booked to another account than the server's."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    STATEMENT_CARRY, ReplayEventRewriter, check_statements, head_kind, replay_grants, unreadable_head)
from tests.unit.plugins.module_utils.restore.test_replay_name_modes import (
    ANSI_QUOTES, END, MARIADB_10_11, NO_BACKSLASH_ESCAPES, stream)

EMPTY = {'database': [], 'tables': [], 'columns': [], 'routines': []}


def ledger_of(tmp_path, statement: bytes, sql_mode: int):
    accounts: list = []
    check_statements(stream(tmp_path, b'pr', statement, sql_mode), ['mariadb-binlog'], ['f'], 'pr',
                     accounts=accounts, server=MARIADB_10_11)
    assert accounts
    return replay_grants(EMPTY, accounts, 'pr')


@pytest.mark.parametrize('statement, sql_mode, user', [
    (b"GRANT SELECT ON pr.t TO 'a\\'@'%'", NO_BACKSLASH_ESCAPES, 'a\\'),
    (b'GRANT SELECT ON pr.t TO "a\\b"@"%"', ANSI_QUOTES, 'a\\b'),
    (b'GRANT SELECT ON pr.t TO "a\\b"@"%"', 0, 'ab'),   # (guard: a string with escapes, as before)
])
def test_a_grant_is_booked_to_the_account_the_server_read(tmp_path, statement, sql_mode, user):
    """Failed before (the first two): the GRANT was unread or booked to ``ab``."""
    kept = ledger_of(tmp_path, statement, sql_mode).kept()
    assert [(g['user'], g['host'], g['table']) for g in kept['tables']] == [(user, '%', 't')]


def test_a_rename_and_a_revoke_follow_the_statement_reading(tmp_path):
    """Failed before: RENAME USER "a\\b" TO "c" under ANSI_QUOTES moved the privileges of ``ab``."""
    grants = dict(EMPTY, tables=[{'user': 'a\\b', 'host': '%', 'privileges': ['SELECT'], 'grantable': False,
                                  'table': 't'}])
    accounts: list = []
    check_statements(stream(tmp_path, b'pr', b'RENAME USER "a\\b"@"%" TO "c"@"%"', ANSI_QUOTES),
                     ['mariadb-binlog'], ['f'], 'pr', accounts=accounts, server=MARIADB_10_11)
    kept = replay_grants(grants, accounts, 'pr').kept()
    assert [(g['user'], g['host']) for g in kept['tables']] == [('c', '%')]


# A long account statement (longer than the replay's window) read under NO_BACKSLASH_ESCAPES: the server takes
# 'a\' as the string a\ (default_master_connection takes any text; MariaDB 10.11 logs it so), then a comment, then
# FOR GRANT. Read with the default reading the string ran on to the quote in the comment, and FOR INSERT in the
# comment was the statement: 'other', so the replay passed the GRANT on (it ran, changing the live privileges).
LONG_GRANT = (b"SET STATEMENT default_master_connection='a\\' /* x' FOR INSERT */ FOR GRANT SELECT ON pr.t TO w /* "
              + b'z' * 3 * STATEMENT_CARRY + b" */")


def test_a_long_statement_head_is_read_under_its_reading():
    """Failed before: ``head_kind`` and ``unreadable_head`` took no reading (the default one)."""
    reading = (False, False, None)
    assert head_kind(LONG_GRANT[:STATEMENT_CARRY], reading) == 'account'
    assert not unreadable_head(LONG_GRANT, reading)
    assert head_kind(LONG_GRANT[:STATEMENT_CARRY]) == 'other'   # (guard: read with escapes it is another)


def test_the_replay_drops_a_long_account_statement_read_under_its_reading():
    """Failed before: the GRANT was passed on to the mariadb client."""
    data = (b'SET @@session.sql_mode=%d' % NO_BACKSLASH_ESCAPES + END + b'# at 4\n' + LONG_GRANT + b'\n' + END
            + b'INSERT INTO t VALUES (1)\n' + END)
    for size in (4096, 65537):
        rewriter = ReplayEventRewriter({})
        out = b''.join(rewriter.feed(data[i:i + size]) for i in range(0, len(data), size)) + rewriter.flush()
        assert b'GRANT' not in out and b'DO 0' in out and b'INSERT INTO t VALUES (1)' in out, size
