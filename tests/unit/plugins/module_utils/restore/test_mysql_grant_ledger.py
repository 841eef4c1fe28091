"""The GRANT/REVOKE statements of the binary logs read (``privilege_change``) and replayed over the privileges a
dump recorded (``GrantLedger``): a partial REVOKE takes what it names only, a GRANT adds (round 10)."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    privilege_change, replay_grants)

READ = [
    (b"REVOKE INSERT ON pr.* FROM 'p'@'%'",
     dict(op='REVOKE', kind='database', db='pr', object=None, privileges=[('INSERT', None)], accounts=[('p', '%')])),
    (b'REVOKE /* why */ UPDATE, DELETE VERSIONING ROWS ON `pr`.`t` FROM q, "dq"@"h"',
     dict(op='REVOKE', kind='tables', object='t', privileges=[('UPDATE', None), ('DELETE HISTORY', None)],
          accounts=[('q', None), ('dq', 'h')])),
    (b"REVOKE SELECT (a, `b c`), UPDATE (`x``y`) ON pr.t FROM `u`@`h`",
     dict(kind='tables', privileges=[('SELECT', ['a', 'b c']), ('UPDATE', ['x`y'])], accounts=[('u', 'h')])),
    (b"GRANT EXECUTE ON PROCEDURE pr.p TO 'it''s'@'%' WITH GRANT OPTION",
     dict(op='GRANT', kind='routines', type='PROCEDURE', object='p', grant_option=True, accounts=[("it's", '%')])),
    (b"GRANT EXECUTE ON PACKAGE BODY pr.pk TO r", dict(kind='routines', type='PACKAGE BODY', object='pk')),
    (b"GRANT ALL PRIVILEGES ON pr.* TO u1 IDENTIFIED BY 'a,b', u2@localhost REQUIRE NONE",
     dict(kind='database', privileges=[('ALL', None)], grant_option=False,
          accounts=[('u1', None), ('u2', 'localhost')])),
    (b"REVOKE GRANT OPTION ON pr.* FROM g", dict(kind='database', privileges=[], grant_option=True)),
]


@pytest.mark.parametrize('statement,expected', READ)
def test_privilege_change_reads_the_statement(statement, expected):
    change = privilege_change(statement, 'pr')
    assert change, statement
    assert {k: change[k] for k in expected} == expected


def test_an_escaped_database_level_name_is_the_source():
    change = privilege_change(b"GRANT SELECT ON `pr\\_x`.* TO u", 'pr_x')
    assert change and change['db'] == 'pr\\_x' and change['kind'] == 'database'
    assert privilege_change(b"GRANT SELECT ON `pr\\_x`.* TO u", 'pr') is False


@pytest.mark.parametrize('statement', [
    b'GRANT r1 TO u', b'REVOKE r1 FROM u', b'REVOKE SELECT ON other.* FROM u', b'GRANT SELECT ON *.* TO u',
    b'GRANT SELECT ON t TO u', b"GRANT SELECT ON other.t TO 'pr'@'%'", b'CREATE USER n', b'DROP USER u'])
def test_statements_that_give_or_take_nothing_on_the_source(statement):
    assert privilege_change(statement, 'pr') is False


@pytest.mark.parametrize('statement', [b'GRANT SELECT ON pr.t TO CURRENT_USER', b'REVOKE SELECT ON pr.* FROM',
                                       b'GRANT SELECT ON pr.* TO u@', b"GRANT SELECT ON pr.t 'x' TO u"])
def test_a_statement_on_the_source_that_cannot_be_read(statement):
    assert privilege_change(statement, 'pr') is None


def item(user, host='%', privileges=('SELECT',), grantable=False, **kw):
    return dict({'user': user, 'host': host, 'privileges': list(privileges), 'grantable': grantable}, **kw)


def test_the_ledger_takes_what_was_revoked_and_adds_what_was_granted():
    grants = {'database': [item('p', privileges=['SELECT', 'INSERT'], db='pr'), item('e', db='pr\\_x')],
              'tables': [item('q', privileges=['SELECT', 'UPDATE'], table='t', grantable=True)],
              'columns': [item('c', table='t', column='a'), item('c', table='t', column='b')],
              'routines': [item('r', privileges=['EXECUTE', 'ALTER ROUTINE'], routine='P', type='PROCEDURE')]}
    ledger = replay_grants(grants, [
        b"REVOKE INSERT ON pr.* FROM p", b"REVOKE SELECT ON `pr`.* FROM e",      # e's row is `pr\_x`: untouched
        b"REVOKE UPDATE, GRANT OPTION ON pr.t FROM q", b"REVOKE SELECT (a) ON pr.t FROM c",
        b"REVOKE ALTER ROUTINE ON PROCEDURE pr.p FROM r", b"GRANT DELETE ON pr.* TO p",
        b"GRANT SELECT ON pr.t2 TO n@localhost", b"GRANT ALL ON pr.* TO a", b"REVOKE INSERT ON pr.* FROM a",
        b"GRANT SELECT ON pr.t TO CURRENT_USER"], 'pr')
    kept = ledger.kept()
    assert kept['database'] == [item('p', privileges=['SELECT', 'DELETE'], db='pr'), item('e', db='pr\\_x')]
    assert kept['tables'] == [item('q', table='t'), item('n', 'localhost', table='t2')]
    assert kept['columns'] == [item('c', table='t', column='b')]
    assert kept['routines'] == [item('r', privileges=['EXECUTE'], routine='P', type='PROCEDURE')]
    assert ledger.withheld == ['INSERT on the database for p@%', 'UPDATE on table t for q@%',
                               'GRANT OPTION on table t for q@%', 'SELECT on column t.a for c@%',
                               'ALTER ROUTINE on procedure P for r@%',
                               # ALL granted in the logs, then part of it revoked: all of it withheld
                               'ALL PRIVILEGES on the database for a@%']
    assert ledger.given[:2] == ['DELETE on the database for p@%', 'SELECT on table t2 for n@localhost']
    assert ledger.unread_grants == ["'GRANT SELECT ON pr.t TO CURRENT_USER'"] and not ledger.unread
    recorded, from_logs = ledger.split()
    assert from_logs['database'] == [item('p', privileges=['SELECT', 'DELETE'], db='pr')]
    assert recorded['database'] == [item('e', db='pr\\_x')]


def test_a_privilege_revoked_on_a_table_is_taken_from_its_columns_too():
    """As the server does (REVOKE SELECT ON t takes SELECT (a) too; a database-level REVOKE leaves both)."""
    grants = {'database': [item('c', db='pr')], 'tables': [item('c', privileges=['INSERT'], table='t')],
              'columns': [item('c', table='t', column='a'), item('c', privileges=['UPDATE'], table='t', column='b')],
              'routines': []}
    ledger = replay_grants(grants, [b'REVOKE SELECT ON pr.* FROM c', b'REVOKE SELECT ON pr.t FROM c'], 'pr')
    kept = ledger.kept()
    assert kept['database'] == [] and kept['tables'] == [item('c', privileges=['INSERT'], table='t')]
    assert kept['columns'] == [item('c', privileges=['UPDATE'], table='t', column='b')]
    assert ledger.withheld == ['SELECT on the database for c@%', 'SELECT on column t.a for c@%']


def test_a_revoke_whose_privileges_cannot_be_read_withholds_all_of_its_accounts():
    grants = {'database': [item('p', db='pr'), item('o', db='pr')], 'tables': [], 'columns': [], 'routines': []}
    ledger = replay_grants(grants, [b"REVOKE SELECT ON pr.t 'x' FROM p"], 'pr')
    assert ledger.kept()['database'] == [item('o', db='pr')] and ledger.coarse
