"""MariaDB restore, round 7: grants refused while lent (by account, as a DEFINER is written), the hint a replay
failing on a privilege gets, and the text naming the tables the generated-values check could not read."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import ToolError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import grants as mg
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import generated_unchecked_text
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import lending_hint

GRANTS = {'database': [{'user': 'app', 'host': '%', 'privileges': ['SELECT'], 'grantable': False, 'db': 'a'},
                       {'user': 'r', 'host': '', 'privileges': ['SELECT'], 'grantable': False, 'db': 'a'}],
          'tables': [{'user': 'we@b', 'host': '10.0.0.1', 'table': 't', 'privileges': ['DELETE'], 'grantable': False}]}


class _NoGrantOption:
    """Reads the accounts; refuses every GRANT (a login without GRANT OPTION)."""

    def query(self, sql):
        if sql.startswith('SELECT User, Host FROM mysql.user'):
            return [['app', '%'], ['r', ''], ['we@b', '10.0.0.1']]
        if 'is_role' in sql:
            return [['r']]
        raise ToolError("ERROR 1044 (42000): Access denied for user 'rs'@'%' to database 'x'")


def test_refused_grants_name_their_account_as_a_definer_reads():
    result = mg.apply_grants(_NoGrantOption(), GRANTS, 'x')
    assert [r['account'] for r in result['refused']] == ['app@%', 'r', 'we@b@10.0.0.1']
    assert all('1044' in r['error'] for r in result['refused'])
    assert len(result['skipped']) == 3 and not result['applied']


def test_lending_hint_only_for_a_privilege_failure_with_refused_grants():
    refused = [{'account': 'app@%', 'what': 'SELECT on the database for app@%', 'error': 'ERROR 1044'}]
    assert 'GRANT OPTION' in lending_hint(refused, 'ERROR 1142 (42000): TRIGGER command denied')
    assert lending_hint(refused, 'ERROR 1062 Duplicate entry') == ''
    assert lending_hint([], 'ERROR 1142 (42000): TRIGGER command denied') == ''


def test_unchecked_tables_are_named_with_what_to_do():
    text = generated_unchecked_text({'d.t': "ERROR 1044 (42000): Access denied for user 'bk'@'%' to database 'd'"})
    assert 'd.t' in text and 'CREATE TEMPORARY TABLES' in text
    assert 'CREATE TEMPORARY TABLES' not in generated_unchecked_text({'d.t': 'ERROR 1292 Incorrect value'})
