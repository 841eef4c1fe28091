"""The accounts an account statement of the binary logs takes privileges on the restored database from, and the
recorded grants a restore withholds for them (``taken_accounts``, ``withheld_grants``)."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    taken_accounts, withheld_grants)

CASES = [
    (b"REVOKE SELECT, INSERT ON rv.* FROM 'evil'@'%'", [('evil', '%')]),
    (b'REVOKE SELECT ON `rv`.`t` FROM evil', [('evil', None)]),
    (b"REVOKE EXECUTE ON PROCEDURE rv.p FROM 'it''s'@'%', \"dq\"@\"h\"", [("it's", '%'), ('dq', 'h')]),
    (b"REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'all'@'%', b@localhost", [('all', '%'), ('b', 'localhost')]),
    (b"DROP USER IF EXISTS gone@localhost, `x``y`@'h'", [('gone', 'localhost'), ('x`y', 'h')]),
    (b"RENAME USER a@'%' TO c@'%', d TO e", [('a', '%'), ('d', None)]),
    (b'DROP ROLE r', [('r', None)]),
    (b'REVOKE SELECT ON other.* FROM ok', []),           # another database
    (b"REVOKE SELECT ON other.t FROM 'rv'@'%'", []),      # an account named like the database
    (b'REVOKE r1 FROM u', []),                            # a role
    (b'GRANT SELECT ON rv.* TO z', []),
    (b'CREATE USER n', []),
    (b'REVOKE SELECT ON rv.* FROM CURRENT_USER', None),   # not an account name: unread
]


@pytest.mark.parametrize('statement,accounts', CASES)
def test_taken_accounts(statement, accounts):
    assert taken_accounts(statement, 'rv') == accounts


def grant(user, host, **kw):
    return dict({'user': user, 'host': host, 'privileges': ['SELECT'], 'grantable': False, 'db': 'rv'}, **kw)


def test_withheld_are_those_of_the_accounts_taken_from_only():
    grants = {'database': [grant('evil', '%'), grant('ok', '%'), grant('r', '')],
              'tables': [grant('evil', 'localhost', table='t')], 'columns': [], 'routines': []}
    kept, withheld, shown, unread = withheld_grants(grants, [b"REVOKE SELECT ON rv.* FROM evil",
                                                             b'REVOKE SELECT ON other.* FROM ok', b'DROP ROLE r'], 'rv')
    assert kept['database'] == [grant('ok', '%')] and kept['tables'] == [grant('evil', 'localhost', table='t')]
    assert withheld == ['SELECT on the database for evil@%', 'SELECT on the database for r@']
    assert shown == ["'REVOKE SELECT ON rv.* FROM evil'", "'DROP ROLE r'"] and not unread
    # a statement whose accounts cannot be read: nothing recorded is given
    kept, withheld, shown, unread = withheld_grants(grants, [b'REVOKE SELECT ON rv.* FROM CURRENT_USER'], 'rv')
    assert unread and not any(kept.values()) and len(withheld) == 4
    assert withheld_grants(grants, [], 'rv') == (grants, [], [], False)
