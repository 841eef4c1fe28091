"""The GRANT statements a MariaDB restore gives the restored database (engines/mysql/grants.py)."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import grants as mg

GRANTS = {
    'database': [{'user': 'app', 'host': '%', 'privileges': ['INSERT', 'SELECT'], 'grantable': False, 'db': 'a_b'},
                 {'user': 'r', 'host': '', 'privileges': ['SELECT'], 'grantable': True, 'db': 'a\\_b'}],
    'tables': [{'user': "o`'u", 'host': 'localhost', 'table': 't`x', 'privileges': ['DELETE'], 'grantable': True}],
    'columns': [{'user': 'rep', 'host': '10.%', 'table': 't', 'column': 'a', 'privileges': ['SELECT', 'UPDATE']},
                {'user': 'rep', 'host': '10.%', 'table': 't', 'column': 'b', 'privileges': ['SELECT']}],
    'routines': [{'user': 'app', 'host': '%', 'routine': 'p', 'type': 'PROCEDURE', 'privileges': ['EXECUTE'],
                  'grantable': False},
                 {'user': 'app', 'host': '%', 'routine': 'pk', 'type': 'PACKAGE', 'privileges': ['EXECUTE'],
                  'grantable': False}],
}
ACCOUNTS = [('app', '%'), ('r', ''), ("o`'u", 'localhost'), ('rep', '10.%')]


def test_grant_statements_name_the_target_exactly_and_quote_accounts_with_backticks():
    statements, skipped = mg.grant_statements(GRANTS, 'x_y%', ACCOUNTS, ['r'], source='a_b')
    sql = [s for _what, s in statements]
    assert sql == [
        'GRANT INSERT, SELECT ON `x\\_y\\%`.* TO `app`@`%`',
        'GRANT SELECT ON `x\\_y\\%`.* TO `r` WITH GRANT OPTION',
        "GRANT DELETE ON `x_y%`.`t``x` TO `o``'u`@`localhost` WITH GRANT OPTION",
        'GRANT SELECT (`a`, `b`), UPDATE (`a`) ON `x_y%`.`t` TO `rep`@`10.%`',
        'GRANT EXECUTE ON PROCEDURE `x_y%`.`p` TO `app`@`%`']
    assert skipped == ['privileges on PACKAGE pk (not restored)']


def test_same_name_keeps_the_recorded_form_and_missing_accounts_are_named():
    statements, skipped = mg.grant_statements(GRANTS, 'a_b', [('app', '%')], [], source='a_b')
    assert [s for _w, s in statements][0] == 'GRANT INSERT, SELECT ON `a_b`.* TO `app`@`%`'
    assert any("for r@'' (no such account" in note for note in skipped)
    assert any("o`'u@localhost" in note for note in skipped)


def test_old_manifest_without_grants():
    assert mg.apply_grants(None, None, 'x')['restored'] is False
