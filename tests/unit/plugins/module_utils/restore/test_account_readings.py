"""The account statements of the logs (GRANT, REVOKE, RENAME/DROP USER...) are read under the statement's own
sql_mode and character set, as the name readers are (``StreamMode.reading``): the ledger of the source's privileges
(``GrantLedger``) read them with the default reading, so under NO_BACKSLASH_ESCAPES ``'a\\'@'%'`` (the account
``a\\``@``%``) was misread, and under ANSI_QUOTES ``"a\\b"`` (the account ``a\\b``) was read as the string ``ab``:
the privileges the logs gave or took were booked to another account than the server's."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    check_statements, replay_grants)
from tests.unit.plugins.module_utils.restore.test_replay_name_modes import (
    ANSI_QUOTES, MARIADB_10_11, NO_BACKSLASH_ESCAPES, stream)

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
