"""SQL Server insights against the RECORDING FAKE of pyodbc (tests/unit/fakes/pyodbc_recording.py).

No SQL Server runs here: the fake answers the DMV statements with scripted rows. This proves the T-SQL
(the operations document's slow-query query, blocking, wait stats, counters), the call sequence (one
connection, every result set drained, closed) and how rows become a snapshot, deltas and findings; not
what a live SQL Server returns."""

from __future__ import annotations

import decimal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[5]))

from ansible_collections.opsready.operations.plugins.module_utils.engines import registry  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver import (  # noqa: E402
    client as sqlserver_client)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.health import history  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.insights import (  # noqa: E402
    core, exposition, verdicts)
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver import insights as ins  # noqa: E402
from tests.harness import promtool  # noqa: E402
from tests.unit.fakes import pyodbc_recording as fake  # noqa: E402

PASSWORD = 'S3cret;pa}ss'


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(sqlserver_client, 'pyodbc', fake)
    monkeypatch.setattr(sqlserver_client, 'HAS_PYODBC', True)
    srv = fake.reset()
    script(srv, deadlocks=5, lock_wait_ms=1000)
    return srv


def script(srv, deadlocks, lock_wait_ms):
    srv.answers = [
        ('@@MAX_CONNECTIONS', [(100, 91, '16.0.4135.4')]),
        ('GROUP BY login_name', [('app', 'shop', 80), ('report', 'shop', 10), ('app', 'crm', 1)]),
        ('r.blocking_session_id <> 0', [(61, 55, 'LCK_M_U', 42000, 'KEY: 5:72057594043236352 (8194443284a0)', 'shop',
                                         'app', 'UPDATE dbo.orders SET state = 2 WHERE id = @1', 'batch', 'sleeping',
                                         'BEGIN TRAN; UPDATE dbo.orders SET state = 1 WHERE id = 7', 300)]),
        ('ORDER BY avg_elapsed_time DESC', [(3, 9000000, 27000000, 100000, 50, 'SELECT * FROM dbo.report_slow', 'shop'),
                                            (1000, 2000, 2000000, 1500000, 10, 'SELECT 1', 'shop')]),
        ('ORDER BY qs.total_elapsed_time DESC', [(3, 9000000, 27000000, 100000, 50, 'SELECT * FROM dbo.report_slow',
                                                  'shop')]),
        ('sys.dm_os_wait_stats', [('LCK_M_U', 12, lock_wait_ms, 5), ('PAGEIOLATCH_SH', 900, 500, 10)]),
        ('sys.dm_os_performance_counters', [('Number of Deadlocks/sec', '_Total', deadlocks),
                                            ('Buffer cache hit ratio', '', 97),
                                            ('Buffer cache hit ratio base', '', 100),
                                            ('Lock Waits/sec', '_Total', 40)]),
        ('sys.dm_tran_active_transactions', [(55, 'batch', 'sleeping', 300, 'BEGIN TRAN; UPDATE dbo.orders')]),
    ]


def collector():
    conn = ConnectionParams(host='sql1', port=1433, user='monitor', password=PASSWORD, connect_timeout=7)
    return registry.get_insights('sqlserver', conn)


def executed(srv):
    return [c[1] for c in srv.calls if c[0] == 'execute']


def test_dmv_statements_and_call_sequence(server):
    snap = core.run(collector(), core.Options(top=5), verdicts.parse({}), 'sql1')
    statements = executed(server)
    seed = [s for s in statements if 'ORDER BY avg_elapsed_time DESC' in s]
    assert seed and 'qs.total_elapsed_time / qs.execution_count AS avg_elapsed_time' in seed[0]
    assert 'CROSS APPLY sys.dm_exec_sql_text(qs.sql_handle) st' in seed[0], "the operations document's query"
    assert [c for c in server.calls if c[0] == 'execute' and c[1] == seed[0]][0][2] == (5,), 'TOP (?) bound'
    assert any('FROM sys.dm_exec_requests r' in s for s in statements)
    assert any("N'WAITFOR'" in s for s in statements), 'idle waits excluded'
    assert len([c for c in server.calls if c[0] == 'connect']) == 1 and server.open_connections == 0
    assert all(c[1] == 0 for c in server.calls if c[0] == 'cursor.close'), 'every result set drained'
    assert PASSWORD not in repr(snap)
    assert snap['connections'] == {'used': 91, 'max': 100, 'percent': 91.0,
                                   'by_user': [{'user': 'app', 'count': 81}, {'user': 'report', 'count': 10}],
                                   'by_database': [{'database': 'shop', 'count': 90}, {'database': 'crm', 'count': 1}]}
    wait = snap['lock_waits'][0]
    assert wait['pid'] == 61 and wait['wait_seconds'] == 42.0
    assert wait['blockers'] == [{'pid': 55, 'user': 'batch', 'state': 'sleeping', 'transaction_seconds': 300,
                                 'query': 'BEGIN TRAN; UPDATE dbo.orders SET state = 1 WHERE id = 7'}]
    assert snap['statements']['by_mean_time'][0]['mean_ms'] == 9000.0
    assert snap['cache']['hit_percent'] == 97.0
    found = {f['condition']: f for f in snap['findings']}
    assert found['db_connections']['severity'] == 'critical'
    assert found['lock_contention']['severity'] == 'warning' and 'pid 55' in found['lock_contention']['message']
    assert 'deadlock' not in found, 'no previous sample: a baseline'
    promtool.check_metrics(exposition.build([snap], 1.8e9), 'sqlserver insights')


def test_counters_become_deltas_between_runs(server, tmp_path):
    path = str(tmp_path / 'history.jsonl')
    first = core.run(collector(), core.Options(), verdicts.parse({}), 'sql1', history_path=path, now=1000.0)
    history.append(path, {'t': 1000.0, 'host': 'h', 'verdict': first['verdict'],
                          'db': core.history_counters([first])}, 100)
    script(server, deadlocks=7, lock_wait_ms=61000)
    second = core.run(collector(), core.Options(), verdicts.parse({}), 'sql1', history_path=path, now=1060.0)
    assert second['deadlocks'] == {'total': 7, 'since_last_sample': 2}
    assert second['since_previous']['deltas']['wait_ms:LCK_M_U'] == 60000
    assert second['since_previous']['rates']['wait_ms:LCK_M_U'] == 1000.0
    assert ('deadlock', 'warning') in [(f['condition'], f['severity']) for f in second['findings']]


def test_connect_failure_is_an_operator_message(server):
    server.connect_error = ('08001', '[08001] TCP Provider: Error code 0x2749 (10057) password=%s' % PASSWORD)
    with pytest.raises(Exception) as info:
        core.run(collector(), core.Options(), verdicts.parse({}), 'sql1')
    assert 'Cannot connect to SQL Server at host sql1 port 1433' in str(info.value)
    assert PASSWORD not in str(info.value)


def test_decimal_values_are_plain_numbers():
    assert ins._num(decimal.Decimal('1.5')) == 1.5
