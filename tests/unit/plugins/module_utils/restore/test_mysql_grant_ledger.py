"""The GRANT/REVOKE statements of the binary logs read (``privilege_change``) and replayed over the privileges a
dump recorded (``GrantLedger``): a partial REVOKE takes what it names only, a GRANT adds (round 10)."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    drop_account_statement, privilege_change, replay_grants)

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


# -- round 11: every form of account statement -------------------------------------------------------------------------
EMPTY = {'database': [], 'tables': [], 'columns': [], 'routines': []}


@pytest.mark.parametrize('statement,expected', [
    (b"GRANT SELECT ON t TO u", dict(kind='tables', db='pr', object='t', accounts=[('u', None)])),
    (b"REVOKE INSERT ON * FROM 'u'@'%'", dict(op='REVOKE', kind='database', db='pr', object=None)),
    (b"GRANT EXECUTE ON PROCEDURE `p q` TO u", dict(kind='routines', type='PROCEDURE', object='p q')),
])
def test_an_unqualified_object_is_one_of_the_database_the_statement_was_sent_with(statement, expected):
    change = privilege_change(statement, 'pr', 'pr')
    assert change and {k: change[k] for k in expected} == expected
    assert privilege_change(statement, 'pr') is False   # sent without USE pr (or with another database's)


@pytest.mark.parametrize('statement', [b"GRANT PROXY ON 'a'@'%' TO u", b'GRANT PROXY ON a TO u',
                                       b'GRANT SELECT ON other.t TO u', b'GRANT SELECT ON *.* TO u'])
def test_a_statement_sent_with_use_naming_no_object_of_the_database(statement):
    assert privilege_change(statement, 'pr', 'pr') is False


def test_rename_user_carries_the_privileges_to_the_new_name():
    """Regression of round 10's ledger: RENAME USER withheld every privilege of the old name."""
    grants = dict(EMPTY, database=[item('a', db='pr')], tables=[item('d', table='t')])
    ledger = replay_grants(grants, [b"RENAME USER a@'%' TO `b c`@'h', d TO e"], 'pr')
    assert [(i['user'], i['host']) for i in ledger.kept()['database']] == [('b c', 'h')]
    assert [(i['user'], i['host']) for i in ledger.kept()['tables']] == [('e', '%')]
    assert not ledger.withheld


def test_column_privileges_with_grant_option_give_the_table_its_option():
    ledger = replay_grants(dict(EMPTY), [b"GRANT SELECT (a) ON pr.t TO c WITH GRANT OPTION"], 'pr')
    assert ledger.kept()['tables'] == [{'user': 'c', 'host': '%', 'table': 't', 'privileges': [], 'grantable': True}]
    assert [i['column'] for i in ledger.kept()['columns']] == ['a']


def test_a_part_of_all_granted_in_the_logs_revoked_leaves_the_rest():
    everything = {'tables': ['SELECT', 'INSERT', 'UPDATE']}
    statements = [b"GRANT ALL ON pr.t TO g", b"REVOKE INSERT ON pr.t FROM g"]
    ledger = replay_grants(dict(EMPTY), statements, 'pr', all_privileges=everything)
    assert ledger.kept()['tables'][0]['privileges'] == ['SELECT', 'UPDATE']
    assert ledger.withheld == ['INSERT on table t for g@%']
    # what ALL is not known: the whole is withheld, and named
    assert not replay_grants(dict(EMPTY), statements, 'pr').kept()['tables']


def test_create_or_replace_user_takes_every_privilege_of_the_account():
    grants = dict(EMPTY, database=[item('a', db='pr'), item('k', db='pr')])
    ledger = replay_grants(grants, [b"CREATE OR REPLACE USER a@'%' IDENTIFIED BY 'pw', x ACCOUNT LOCK"], 'pr')
    assert [i['user'] for i in ledger.kept()['database']] == ['k']
    assert 'pw' not in ' '.join(ledger.shown)


def test_statements_sent_with_use_are_read_with_that_database():
    grants = dict(EMPTY, database=[item('r', db='pr')])
    ledger = replay_grants(grants, [(b'GRANT SELECT ON t TO u', True), (b'GRANT SELECT ON t TO v', False),
                                    (b'REVOKE SELECT ON * FROM r', True)], 'pr')
    assert [i['user'] for i in ledger.kept()['tables']] == ['u'] and not ledger.kept()['database']


@pytest.mark.parametrize('statement', [
    b"GRANT SELECT ON pr.t TO CURRENT_USER IDENTIFIED BY 'pw-1'",
    b"GRANT SELECT ON pr.t TO CURRENT_USER IDENTIFIED BY PASSWORD '*pw-1'",
    b"GRANT SELECT ON pr.t TO CURRENT_USER IDENTIFIED VIA ed25519 USING PASSWORD('pw-1')",
    b"GRANT SELECT ON pr.t TO CURRENT_USER IDENTIFIED BY 'pw-1\\' still', x IDENTIFIED BY \"pw-1\""])
def test_no_password_in_a_statement_a_warning_shows(statement):
    ledger = replay_grants(dict(EMPTY), [statement], 'pr')
    assert ledger.unread_grants and 'pw-1' not in ledger.unread_grants[0], ledger.unread_grants


@pytest.mark.parametrize('statement,dropped', [
    (b"# at 5\n#261206 server id 1\nGRANT SELECT ON t TO u\n", True),
    (b"\nCREATE OR REPLACE USER u IDENTIFIED BY 'x'\n", True), (b"\nSET PASSWORD FOR u = PASSWORD('x')\n", True),
    (b"\nSET DEFAULT ROLE r FOR u\n", True), (b"\nRENAME USER a TO b\n", True), (b"\nDROP ROLE r\n", True),
    (b"\nSET ROLE r\n", False), (b"\nINSERT INTO grant_log VALUES ('GRANT')\n", False),
    (b"\nCREATE TABLE user (id INT)\n", False)])
def test_the_replay_runs_no_account_statement(statement, dropped):
    out = drop_account_statement(statement)
    assert (out != statement) == dropped
    if dropped:   # its header comments kept, the statement a no-op
        assert out.endswith(b'DO 0\n') and out.startswith(statement[:statement.index(b'\n') + 1])


# statements that can run without a default database (none names an object unqualified: the server refuses ON t or
# ON * there, "No database selected"), each in a form the ledger reads and one it cannot
NO_DATABASE_NEEDED = [
    b"GRANT SELECT ON pr.t TO u", b"REVOKE SELECT ON pr.t FROM r", b"REVOKE ALL PRIVILEGES, GRANT OPTION FROM r",
    b"GRANT SELECT ON other.* TO r", b"REVOKE SELECT ON other.t FROM r", b"DROP USER r", b"RENAME USER r TO s",
    b"GRANT r TO u", b"GRANT PROXY ON ''@'%' TO u", b"CREATE OR REPLACE USER r", b"SET PASSWORD FOR r = ''",
    b"GRANT FROBNICATE ON pr.t TO r", b"REVOKE FROBNICATE ON pr.t FROM r", b"GRANT FROBNICATE ON other.t TO r",
    b"REVOKE FROBNICATE ON other.t FROM r"]


@pytest.mark.parametrize('statement', NO_DATABASE_NEEDED)
def test_a_statement_that_needs_no_database_leaves_the_same_privileges_with_either_flag(statement):
    """Guard (passed on the old code): ``sent_with_use`` matches the scan's two passes by text, in order, so of two
    statements of the same text, one sent with USE pr and one without, each may get the other's flag (mariadb-binlog
    prints the right ``use`` before every statement that has a default database: only one without can carry a stale
    one). Such a text names no object unqualified, and the privileges the ledger leaves are the same whichever it is
    read with, wherever it stands among other statements."""
    grants = dict(EMPTY, database=[item('r', db='pr')], tables=[item('r', db='pr', table='t')])
    around = [(b'GRANT UPDATE ON pr.t TO r', True), (b'REVOKE ALL PRIVILEGES, GRANT OPTION FROM q', False)]
    kept = []
    for first, second in ((True, False), (False, True)):
        ledger = replay_grants(grants, [(statement, first)] + around + [(statement, second)], 'pr')
        kept.append((ledger.kept(), ledger.withheld, ledger.unread))
    assert kept[0] == kept[1]
