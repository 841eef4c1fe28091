"""On a server with ``lower_case_table_names`` 1 or 2 a database name is compared without case: ``SRC.orders`` is the
table orders of database src. The scan before a point-in-time replay compared the names of a statement byte for byte,
so ``INSERT INTO SRC.orders`` sent without USE src was not seen to name the source (the replay, keeping a statement
by its default database, skipped it: the copy silently missed the row), ``INSERT INTO MYSQL.user`` sent with USE src
was not seen to name another database, and a trigger body writing ``AUDIT.log`` was not seen as foreign. The engine
asks the setting once with its other server facts (``server_facts``); with 1 or 2 names are compared folded."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    check_statements, folds_names, foreign_objects, logged_name, named_databases, replay_grants)
from tests.unit.plugins.module_utils.restore.test_replay_name_modes import MARIADB_10_11, _Stream, stream


class _Folding(_Stream):
    lctn = 1

    def ping(self):
        return {'server_version': '10.11.6-MariaDB-log', 'lower_case_table_names': self.lctn}


def folding(tmp_path, use: bytes, statement: bytes, lctn: int = 1):
    engine = stream(tmp_path, use, statement, 0)
    folded = _Folding(engine.path)
    folded.lctn = lctn
    return folded


@pytest.mark.parametrize('lctn', [1, 2])
@pytest.mark.parametrize('statement', [b'INSERT INTO PR.orders VALUES (1)', b'UPDATE `Pr`.orders SET a = 1',
                                       b'ALTER TABLE pR.orders ADD COLUMN c INT'])
def test_a_statement_naming_the_source_in_another_case_is_refused(tmp_path, statement, lctn):
    """Failed before: sent without USE src, it was not seen to name src: the replay skipped it, the copy missed it."""
    with pytest.raises(OpsReadyError, match='names database pr explicitly'):
        check_statements(folding(tmp_path, b'', statement, lctn), ['mariadb-binlog'], ['f'], 'pr', server=MARIADB_10_11)


def test_a_statement_run_with_use_naming_another_database_in_another_case_is_refused(tmp_path):
    """Failed before: ``MYSQL.user`` was not seen to be the live mysql database: the replay ran the INSERT there."""
    with pytest.raises(OpsReadyError, match='names database mysql'):
        check_statements(folding(tmp_path, b'pr', b"INSERT INTO MYSQL.user_x VALUES ('x')"),
                         ['mariadb-binlog'], ['f'], 'pr', server=MARIADB_10_11)


def test_names_are_compared_exactly_where_the_server_tells_case():
    """Guard: with lower_case_table_names 0 ``SRC`` and ``src`` are two databases."""
    assert named_databases(b'INSERT INTO SRC.t VALUES (1)', ['src']) == []
    assert named_databases(b'INSERT INTO SRC.t VALUES (1)', ['src'], fold=True) == ['src']
    assert named_databases(b'INSERT INTO `\xc3\x89t\xc3\xa9`.t VALUES (1)', ['\xe9t\xe9'], fold=True) == ['\xe9t\xe9']


class _Bodies:
    """An engine (lower_case_table_names=1) with databases src and audit, src's trigger writing ``AUDIT.log``."""
    flavor = 'mariadb'

    @staticmethod
    def ping():
        return {'server_version': '10.11.6-MariaDB-log', 'lower_case_table_names': 1}

    @staticmethod
    def query(sql):
        if sql == 'SHOW DATABASES':
            return [('src',), ('audit',)]
        if 'TRIGGERS' in sql:
            return [('trigger', 'tr', 'orders', "INSERT INTO AUDIT.log VALUES (NEW.id)", 'STRICT_TRANS_TABLES')]
        return []


def test_a_body_naming_another_database_in_another_case_is_foreign():
    """Failed before: ``AUDIT.log`` was not seen as database audit's: a statement firing the trigger was replayed."""
    assert foreign_objects(_Bodies(), 'src')['tables'] == {b'orders': 'trigger tr'}


@pytest.mark.parametrize('use', [b'PR', b'Pr'])
@pytest.mark.parametrize('statement', [b'INSERT INTO orders VALUES (1)', b'UPDATE orders SET a = 1'])
def test_a_statement_sent_with_use_of_the_source_in_another_case_is_refused(tmp_path, use, statement):
    """Failed before: with lower_case_table_names=2 (a case-insensitive file system) the server keeps the default
    database as the client wrote it (``USE Pr`` is logged ``use `Pr```; with 1 it logs ``pr``). The replay's filter,
    ``mariadb-binlog --database=pr``, compares bytes (strcmp): it skipped the statement, the copy missed the row."""
    with pytest.raises(OpsReadyError, match='sent with USE %s' % use.decode()):
        check_statements(folding(tmp_path, use, statement, 2), ['mariadb-binlog'], ['f'], 'pr', server=MARIADB_10_11)


def test_a_statement_sent_with_use_of_another_case_is_another_database_where_case_counts(tmp_path):
    """Guard: with lower_case_table_names 0 ``PR`` is another database: its statements are no concern of pr's."""
    assert check_statements(folding(tmp_path, b'PR', b'INSERT INTO orders VALUES (1)', 0),
                            ['mariadb-binlog'], ['f'], 'pr', server=MARIADB_10_11) == []


@pytest.mark.parametrize('source', ['Pr', 'PR'])
def test_a_source_named_in_another_case_is_replayed_where_the_server_logs_it_folded(tmp_path, source):
    """Failed before: with lower_case_table_names=1 a backup of ``database: Pr`` (the server took it as pr) finds its
    statements logged ``use `pr```: each was refused as sent in another case (a message about
    lower_case_table_names=2), and mariadb-binlog --database=Pr would have skipped them. The logs are read by the
    name the server writes (``logged_name``)."""
    assert check_statements(folding(tmp_path, b'pr', b'INSERT INTO orders VALUES (1)', 1),
                            ['mariadb-binlog'], ['f'], source, server=MARIADB_10_11) == []
    assert logged_name(_Folding(tmp_path), source) == 'pr'


def test_the_logged_name_is_as_given_unless_the_server_logs_it_folded(tmp_path):
    """Guard: with 2 the server logs the name as written (``USE Pr`` stays refused above), with 0 names are exact."""
    for lctn in (0, 2):
        engine = _Folding(tmp_path)
        engine.lctn = lctn
        assert logged_name(engine, 'Pr') == 'Pr'


EMPTY = {'database': [], 'tables': [], 'columns': [], 'routines': []}


def _db_item(user: str, db: str = 'pr') -> dict:
    return {'user': user, 'host': '%', 'privileges': ['SELECT', 'INSERT'], 'grantable': False, 'db': db}


def test_the_grant_ledger_folds_database_names_where_the_server_does():
    """Failed before: on a lower_case_table_names=1 server ``GRANT SELECT ON PR.* TO app`` is a grant on pr (the
    server keeps it as pr in mysql.db): the ledger read it as another database's, so the copy did not get it; and
    ``REVOKE INSERT ON Pr.* FROM old`` took old's privilege on pr, but the ledger left it to be given to the copy."""
    ledger = replay_grants(dict(EMPTY, database=[_db_item('old')]),
                           [b'GRANT SELECT ON PR.* TO app', b'REVOKE INSERT ON Pr.* FROM old',
                            b'GRANT UPDATE ON `PR`.T TO app'], 'pr', fold=True)
    kept = ledger.kept()
    assert sorted((i['user'], i.get('db'), tuple(i['privileges'])) for i in kept['database']) == [
        ('app', 'pr', ('SELECT',)), ('old', 'pr', ('SELECT',))]
    assert [(i['user'], i['table']) for i in kept['tables']] == [('app', 't')]   # (as tables_priv keeps it)
    assert ledger.withheld == ['INSERT on the database for old@%']


def test_the_grant_ledger_reads_a_grant_sent_with_use_of_the_source_on_a_folding_server(tmp_path):
    """Failed before: the account statements the scan hands on, read by a folding ledger, give app its grant."""
    accounts: list = []
    check_statements(folding(tmp_path, b'pr', b'GRANT SELECT ON PR.t TO app'), ['mariadb-binlog'], ['f'], 'pr',
                     accounts=accounts, server=MARIADB_10_11)
    assert [i['user'] for i in replay_grants(EMPTY, accounts, 'pr', fold=True).kept()['tables']] == ['app']


def test_the_grant_ledger_tells_case_where_the_server_does():
    """Guard: with lower_case_table_names 0 ``PR`` is another database."""
    ledger = replay_grants(dict(EMPTY), [b'GRANT SELECT ON PR.* TO app'], 'pr')
    assert not ledger.kept()['database']


def test_the_grant_ledger_matches_a_recorded_name_in_another_case():
    """With 2 the source may be ``Pr`` (kept as created): ``REVOKE SELECT ON PR.T`` takes the recorded ``Pr``.t's."""
    grants = dict(EMPTY, database=[_db_item('a', 'Pr')],
                  tables=[{'user': 'a', 'host': '%', 'privileges': ['SELECT'], 'grantable': False, 'table': 'T'}])
    ledger = replay_grants(grants, [b'REVOKE SELECT ON PR.T FROM a', b'REVOKE INSERT ON pr.* FROM a'], 'Pr', fold=True)
    assert not ledger.kept()['tables'] and [i['privileges'] for i in ledger.kept()['database']] == [['SELECT']]


@pytest.mark.parametrize('fold', [False, True])
def test_the_grant_ledger_compares_column_names_without_case(fold):
    """Failed before: MariaDB's column names are never told by case (``GRANT SELECT (Col)`` then ``REVOKE SELECT
    (col)`` is one column, whatever lower_case_table_names is); the ledger kept Col's privilege for the copy."""
    column = {'user': 'a', 'host': '%', 'table': 't', 'column': 'Col', 'privileges': ['SELECT', 'INSERT']}
    ledger = replay_grants(dict(EMPTY, columns=[column]),
                           [b'REVOKE SELECT (col) ON pr.t FROM a', b'GRANT UPDATE (COL) ON pr.t TO b',
                            b'REVOKE UPDATE (cOl) ON pr.t FROM b'], 'pr', fold=fold)
    assert [(i['user'], i['privileges']) for i in ledger.kept()['columns']] == [('a', ['INSERT'])]
    assert ledger.withheld[0] == 'SELECT on column t.Col for a@%'


class _Filtering(_Folding):
    """mariadb-binlog --database=X: only the statements logged under ``use `X``` (byte for byte), as the tool does."""

    def popen(self, argv, env=None):
        wanted = [a.split('=', 1)[1].encode() for a in argv if a.startswith('--database=')]
        text = self.path.read_bytes()
        if wanted and b'use `%s`' % wanted[0] not in text:
            text = b''
        out = self.path.parent / 'filtered'
        out.write_bytes(text)
        return subprocess.Popen(['cat', str(out)], stdout=subprocess.PIPE, env=env)


@pytest.mark.parametrize('statement', [b'REVOKE SELECT ON * FROM a', b'REVOKE SELECT ON orders FROM a'])
def test_a_revoke_sent_with_use_of_the_source_in_another_case_is_booked_to_the_source(tmp_path, statement):
    """Failed before: with lower_case_table_names=2 ``USE Pr`` is logged as written; the REVOKE it sent took a's
    privilege on pr (the server folds the name of a grant), but the ledger read it as sent without USE pr (no
    database): the copy would have kept what the logs revoked."""
    engine = _Filtering(stream(tmp_path, b'Pr', statement, 0).path)
    engine.lctn = 2
    accounts: list = []
    check_statements(engine, ['mariadb-binlog'], ['f'], 'pr', accounts=accounts, server=MARIADB_10_11)
    assert [a[1] for a in accounts] == [True]
    grants = dict(EMPTY, database=[_db_item('a')],
                  tables=[{'user': 'a', 'host': '%', 'privileges': ['SELECT'], 'grantable': False, 'table': 'orders'}])
    kept = replay_grants(grants, accounts, 'pr', fold=True).kept()
    on_database = b'*' in statement
    assert [i['privileges'] for i in kept['database']] == ([['INSERT']] if on_database else [['SELECT', 'INSERT']])
    assert len(kept['tables']) == (1 if on_database else 0)


def test_a_revoke_sent_with_use_of_another_case_is_another_database_s_where_case_counts(tmp_path):
    """Guard: with lower_case_table_names 0 ``USE Pr`` is another database."""
    engine = _Filtering(stream(tmp_path, b'Pr', b'REVOKE SELECT ON * FROM a', 0).path)
    engine.lctn = 0
    accounts: list = []
    check_statements(engine, ['mariadb-binlog'], ['f'], 'pr', accounts=accounts, server=MARIADB_10_11)
    assert [a[1] for a in accounts] == [False]


class _CaseTable:
    """An engine (lower_case_table_names=1) answering the case-table query as MariaDB 10.11 does: İ (U+0130) is i,
    ẞ (U+1E9E) is kept; the rest as Python's lower case (one character each). Counts the queries."""
    flavor = 'mariadb'

    def __init__(self, answer=True):
        self.asked, self.answer = [], answer

    @staticmethod
    def ping():
        return {'server_version': '10.11.6-MariaDB-log', 'lower_case_table_names': 1}

    def query(self, sql):
        self.asked.append(sql)
        if not self.answer:
            return [('not hex',)]
        chars = bytes.fromhex(sql.split("X'")[1].split("'")[0]).decode('utf-8')
        low = ''.join('i' if c == '\u0130' else c if c == '\u1e9e' or len(c.lower()) != 1 else c.lower()
                      for c in chars)
        return [(low.encode('utf-8').hex().upper(),)]


def test_names_are_folded_by_the_server_s_case_table_asked_once_per_engine():
    """Failed before: Python's str.lower (İx -> i + U+0307 + x, ẞ -> ß), not the server's table; asked once."""
    engine = _CaseTable()
    assert logged_name(engine, '\u0130x') == 'ix' and logged_name(engine, '\u1e9eX') == '\u1e9ex'
    assert named_databases(b'INSERT INTO `\xc4\xb0X`.t VALUES (1)', ['ix'], fold=folds_names(engine)) == ['ix']
    assert len(engine.asked) == 1, engine.asked


def test_names_are_folded_by_python_where_the_server_cannot_tell_its_table():
    """Guard: an answer that is not the table (a server refusing the query) leaves Python's lower case."""
    engine = _CaseTable(answer=False)
    assert logged_name(engine, 'MyApp') == 'myapp' and folds_names(engine) is True
