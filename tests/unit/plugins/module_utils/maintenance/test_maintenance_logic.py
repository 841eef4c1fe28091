"""Unit tests: identifiers, clean-up rules, the B-tree estimate, and the SQL Server backend against a
RECORDING FAKE of pyodbc (no SQL Server runs here: this proves statements and decisions, not server semantics)."""

from __future__ import annotations

import re
from typing import Any, List, Tuple

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
    CleanupSpec, MaintenanceOptions, run_maintenance)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import quote_literal
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.identifiers import TableRef, quote_ident
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.maintenance import (
    estimate_btree_pages)
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.maintenance import (
    SQLServerMaintenance, connection_string)


@pytest.mark.parametrize('bad', ['', 'ta.b.c', 'a\x00b', 'x' * 129, '"unterminated', '"q"x.y', 's."a'])
def test_bad_identifiers_refused(bad):
    with pytest.raises(OpsReadyError):
        TableRef.parse(bad)


@pytest.mark.parametrize('text, schema, name', [
    ('a b', None, 'a b'), ('x;drop', None, 'x;drop'), ('1abc', None, '1abc'), ('a"b', None, 'a"b'),
    ('MixedCase', None, 'MixedCase'), ('ünï 名前', None, 'ünï 名前'), ('s.t', 's', 't'),
    ('"a.b"', None, 'a.b'), ('"Sales Dept"."v1.2 totals"', 'Sales Dept', 'v1.2 totals'), ('"x""y".z', 'x"y', 'z'),
])
def test_names_needing_quotes_are_parsed_exactly(text, schema, name):
    ref = TableRef.parse(text)
    assert (ref.schema, ref.name) == (schema, name)


def test_names_are_quoted_by_each_engines_helper():
    assert TableRef('a"b', 'S c').quoted('postgresql') == '"S c"."a""b"'
    assert TableRef('a`b').quoted('mariadb', 'd`b') == '`d``b`.`a``b`'
    assert TableRef('a]b', 'dbo').quoted('sqlserver') == '[dbo].[a]]b]'
    with pytest.raises(OpsReadyError, match='63 bytes'):
        TableRef('é' * 40).quoted('postgresql')   # 80 bytes: PostgreSQL would cut it
    with pytest.raises(OpsReadyError, match='ends with a space'):
        TableRef('trailing ').quoted('mariadb', 'd')


def test_quoting_per_dialect():
    t = TableRef.parse('app.events')
    assert t.quoted('postgresql') == '"app"."events"'
    assert t.quoted('sqlserver') == '[app].[events]'
    assert TableRef.parse('events').quoted('mariadb', 'my-db') == '`my-db`.`events`'
    assert quote_ident('odd`name', 'mariadb', strict=False) == '`odd``name`'
    # PostgreSQL literals (the only user of this helper): backslashes quoted, not refused; same on or off.
    assert quote_literal("it's") == "E'it''s'"
    assert quote_literal("a\\'b") == "E'a\\\\''b'"
    with pytest.raises(OpsReadyError):
        quote_literal('a\x00b')


def test_cleanup_rule_validation():
    spec = CleanupSpec.from_dict({'table': 'events', 'column': 'ts', 'older_than_days': 3}, 'public')
    assert spec.table.label == 'public.events' and spec.batch_size == 1000 and spec.column_format == 'timestamp'
    for bad in ({'table': 'e', 'column': 'ts', 'older_than_days': 0},
                {'table': 'e', 'column': 'ts'},
                {'table': 'e', 'column': 'ts', 'older_than_days': 1, 'batch_size': 0},
                {'table': 'e', 'column': 'ts', 'older_than_days': 1, 'column_format': 'iso'},
                {'table': 'e', 'column': 'ts\x00', 'older_than_days': 1}):
        with pytest.raises(OpsReadyError):
            CleanupSpec.from_dict(bad)
    # a column name that reads like SQL is only a name (quoted; the server then says it does not exist)
    assert CleanupSpec.from_dict({'table': 'e', 'column': 'ts or 1=1', 'older_than_days': 1}).column == 'ts or 1=1'


def test_btree_estimate_matches_a_fresh_md5_index():
    # pgstatindex on a fresh index of 200,000 md5() keys (avg_width 33) reported 1,444 pages (11,829,248 bytes).
    pages = estimate_btree_pages(200000, 33, 90)
    assert abs(pages - 1444) / 1444 < 0.05
    assert estimate_btree_pages(0, 8, 90) >= 2


class FakeCursor:
    def __init__(self, server: 'FakeSQLServer') -> None:
        self.server = server
        self.rowcount = -1
        self._rows: List[Tuple[Any, ...]] = []

    def execute(self, sql: str, *params: Any) -> 'FakeCursor':
        self.server.calls.append((sql, params))
        for pattern, answer in self.server.script:
            if re.search(pattern, sql):
                result = answer(sql, params) if callable(answer) else answer
                if isinstance(result, int):
                    self.rowcount, self._rows = result, []
                else:
                    self.rowcount, self._rows = len(result), list(result)
                return self
        raise AssertionError('fake: unexpected statement %r' % sql)

    def fetchall(self) -> List[Tuple[Any, ...]]:
        return self._rows


class FakeSQLServer:
    """A recording fake of pyodbc.connect for the maintenance statements."""

    def __init__(self, script: list) -> None:
        self.script = script
        self.calls: List[Tuple[str, tuple]] = []
        self.connect_args: Any = None
        self.closed = False

    def connect(self, conn_str: str, autocommit: bool = False, timeout: int = 0) -> 'FakeSQLServer':
        self.connect_args = (conn_str, autocommit, timeout)
        return self

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True

    def statements(self, prefix: str) -> List[str]:
        return [c[0] for c in self.calls if c[0].startswith(prefix)]


BASE = [
    (r'^SET LOCK_TIMEOUT', 0),
    (r'SERVERPROPERTY', [('16.0.4135.4', 2)]),
    (r'FROM sys.tables t JOIN sys.schemas', [('dbo', 'orders'), ('dbo', 'lines'), ('sales', 'quiet')]),
]
FRAG = [('dbo', 'orders', 'ix_orders_date', 45.0, 5000), ('dbo', 'orders', 'pk_orders', 12.0, 4000),
        ('dbo', 'lines', 'ix_small', 80.0, 100), ('sales', 'quiet', 'pk_quiet', 1.0, 9000)]
STATS = [('dbo', 'orders', 1500, 10000, '2024-01-01T00:00:00', 3, 0), ('dbo', 'lines', 0, 500, '2024-01-01', 1, 0),
         ('sales', 'quiet', 0, 9000, '2024-01-01', 1, 1)]


def sqlserver(script, **opts) -> Tuple[SQLServerMaintenance, FakeSQLServer, MaintenanceOptions]:
    fake = FakeSQLServer(BASE + script)
    options = MaintenanceOptions(**opts)
    conn = ConnectionParams(host='sql1', port=1433, user='maint', password='S3cret!}x')
    return SQLServerMaintenance('shop', options, conn, connect=fake.connect), fake, options


def test_sqlserver_reindex_and_statistics_decisions():
    backend, fake, opts = sqlserver([(r'dm_db_index_physical_stats', FRAG), (r'dm_db_stats_properties', STATS),
                                     (r'^ALTER INDEX|^UPDATE STATISTICS', 0)], tasks=['analyze', 'reindex'])
    result = run_maintenance(backend, opts)
    assert fake.statements('ALTER INDEX') == ['ALTER INDEX [ix_orders_date] ON [dbo].[orders] REBUILD',
                                              'ALTER INDEX [pk_orders] ON [dbo].[orders] REORGANIZE']
    # orders: modified; quiet: a statistic never updated; lines: nothing modified.
    assert fake.statements('UPDATE STATISTICS') == ['UPDATE STATISTICS [dbo].[orders] WITH FULLSCAN',
                                                    'UPDATE STATISTICS [sales].[quiet] WITH FULLSCAN']
    not_due = {(n['task'], n['object']): n['reason'] for n in result['not_due']}
    assert 'below min_size_mb' in not_due[('reindex', 'dbo.lines.ix_small')]
    assert 'below reorganize_threshold' in not_due[('reindex', 'sales.quiet.pk_quiet')]
    assert ('analyze', 'dbo.lines') in not_due
    assert result['changed'] is True and fake.closed
    conn_str, autocommit, _timeout = fake.connect_args
    assert autocommit is True and 'PWD={S3cret!}}x}' in conn_str and 'SERVER={sql1,1433}' in conn_str
    assert 'S3cret' not in repr(result)
    assert fake.calls[0][0] == 'SET LOCK_TIMEOUT 10000'


def test_sqlserver_online_rebuild_needs_enterprise():
    backend, fake, opts = sqlserver([], tasks=['reindex'], online_rebuild=True)
    with pytest.raises(OpsReadyError, match='online_rebuild needs SQL Server Enterprise'):
        run_maintenance(backend, opts)
    fake.script[1] = (r'SERVERPROPERTY', [('16.0', 3)])
    fake.script += [(r'dm_db_index_physical_stats', FRAG[:1]), (r'^ALTER INDEX', 0)]
    run_maintenance(backend, opts)
    assert fake.statements('ALTER INDEX') == [
        'ALTER INDEX [ix_orders_date] ON [dbo].[orders] REBUILD WITH (ONLINE = ON)']


def test_sqlserver_cleanup_batches_and_check_mode():
    remaining = {'n': 2500}

    def delete(sql, params):
        n = min(remaining['n'], 1000)
        remaining['n'] -= n
        return n

    script = [(r'OBJECT_ID\(\?, \'U\'\), \(SELECT TYPE_NAME', [(1234, 'datetime2')]),
              (r'DATEADD\(day', [('2024-05-01 00:00:00',)]),
              (r'^SELECT COUNT_BIG', lambda sql, params: [(remaining['n'],)]),
              (r'^DELETE TOP', delete)]
    rule = CleanupSpec.from_dict({'table': 'audit', 'column': 'at', 'older_than_days': 30}, 'dbo')
    backend, fake, opts = sqlserver(script, tasks=['cleanup'], cleanup=[rule])
    result = run_maintenance(backend, opts, check_mode=True)
    assert result['rows_to_remove'] == {'dbo.audit': 2500} and fake.statements('DELETE') == []
    assert result['changed'] is True
    result = run_maintenance(backend, opts)
    deletes = [c for c in fake.calls if c[0].startswith('DELETE')]
    assert len(deletes) == 3 and result['rows_removed'] == {'dbo.audit': 2500}
    assert deletes[0] == ('DELETE TOP (1000) FROM [dbo].[audit] WHERE [at] < ?', ('2024-05-01 00:00:00',))
    assert fake.calls[-1][0].startswith('DELETE') and fake.closed


def test_sqlserver_lock_timeout_is_reported_per_object():
    def locked(sql, params):
        raise RuntimeError("('HYT00', '[HYT00] Lock request time out period exceeded. (1222)')")

    backend, fake, opts = sqlserver([(r'dm_db_stats_properties', STATS), (r'^UPDATE STATISTICS', locked)],
                                    tasks=['analyze'], lock_timeout=2)
    result = run_maintenance(backend, opts)
    assert [f['object'] for f in result['failures']] == ['dbo.orders', 'sales.quiet']
    assert 'lock_timeout=2s' in result['msg']
    assert result['changed'] is False


def test_task_not_supported_fails_before_connecting():
    backend, fake, opts = sqlserver([], tasks=['vacuum'])
    with pytest.raises(OpsReadyError, match='do not apply to engine sqlserver'):
        run_maintenance(backend, opts)
    assert fake.connect_args is None


def test_connection_string_without_user_uses_integrated_auth():
    text = connection_string(ConnectionParams(host='h', trust_server_certificate=True), 'db')
    assert 'Trusted_Connection=yes' in text and 'TrustServerCertificate=yes' in text and 'PWD' not in text
