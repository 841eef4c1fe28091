"""Database insights without a server: thresholds and verdicts, deltas from the history, the exposition
(promtool), the PostgreSQL bloat estimate, MariaDB's deadlock section and slow log parsers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[5]))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.health import history  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.insights import (  # noqa: E402
    core, deltas, exposition, verdicts)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import insights as mysql  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    insights as postgresql)
from tests.harness import promtool  # noqa: E402


def snapshot(**over):
    snap = {
        'engine': 'postgresql', 'server': 'db1:5432',
        'connections': {'used': 5, 'max': 20, 'percent': 25.0, 'by_user': [{'user': 'app', 'count': 5}],
                        'by_database': [{'database': 'app', 'count': 5}]},
        'lock_waits': [], 'deadlocks': {'total': 4, 'since_last_sample': None},
        'transactions': {'longest': None, 'idle_in_transaction_longest': None},
        'replication_slots': [], 'cache': {}, 'bloat': [], 'statements': {'enabled': False},
    }
    snap.update(over)
    return snap


def conditions(found):
    return [(f['condition'], f['severity']) for f in found]


@pytest.mark.parametrize('used,expected', [(15, []), (16, [('db_connections', 'warning')]),
                                           (17, [('db_connections', 'warning')]),
                                           (18, [('db_connections', 'critical')]),
                                           (20, [('db_connections', 'critical')])])
def test_connection_levels_are_reached_at_or_above(used, expected):
    snap = snapshot(connections={'used': used, 'max': 20, 'percent': core.percent(used, 20), 'by_user': []})
    assert conditions(verdicts.evaluate('c', snap, verdicts.parse({}))) == expected


def test_lock_wait_finding_names_the_blocker():
    waits = [{'pid': 11, 'query': 'UPDATE t SET v = 2 WHERE id = 1', 'wait_seconds': 42.0,
              'blockers': [{'pid': 7, 'user': 'batch', 'state': 'idle in transaction',
                            'query': 'UPDATE t SET v = 1 WHERE id = 1'}]}]
    found = verdicts.evaluate('c', snapshot(lock_waits=waits), verdicts.parse({}))
    assert conditions(found) == [('lock_contention', 'warning')]
    assert 'pid 7' in found[0]['message'] and 'batch' in found[0]['message'] and 'idle in transaction' in \
        found[0]['message']
    assert found[0]['blocking_pids'] == [7]


def test_deadlocks_judge_the_interval_not_the_total():
    levels = verdicts.parse({})
    assert verdicts.evaluate('c', snapshot(deadlocks={'total': 9, 'since_last_sample': None}), levels) == []
    assert verdicts.evaluate('c', snapshot(deadlocks={'total': 9, 'since_last_sample': 0}), levels) == []
    assert conditions(verdicts.evaluate('c', snapshot(deadlocks={'total': 9, 'since_last_sample': 1}), levels)) == [
        ('deadlock', 'warning')]


def test_cache_hit_is_lower_is_worse_and_needs_enough_accesses():
    levels = verdicts.parse({})
    few = snapshot(cache={'hit_percent': 50.0, 'accesses': 100})
    assert verdicts.evaluate('c', few, levels) == []
    many = snapshot(cache={'hit_percent': 80.0, 'accesses': 10 ** 6, 'interval_hit_percent': 94.0,
                           'interval_accesses': 20000})
    assert conditions(verdicts.evaluate('c', many, levels)) == [('cache_hit', 'warning')], 'the interval counts'


def test_threshold_validation():
    with pytest.raises(OpsReadyError, match='Unknown insights threshold'):
        verdicts.parse({'cpu_percent': 5})
    with pytest.raises(OpsReadyError, match='must not be above critical'):
        verdicts.parse({'connections_percent': {'warning': 95, 'critical': 90}})
    with pytest.raises(OpsReadyError, match='must not be below critical'):
        verdicts.parse({'cache_hit_percent': {'warning': 80, 'critical': 90}})
    with pytest.raises(OpsReadyError, match='over 100'):
        verdicts.parse({'connections_percent': 120})
    levels = verdicts.parse({'connections_percent': 70, 'statement_mean_ms': {'warning': 100}})
    assert levels['connections_percent'].as_dict() == {'warning': 70.0, 'critical': 70.0}
    assert levels['statement_mean_ms'].as_dict() == {'warning': 100.0, 'critical': None}


def test_deltas_rates_and_resets():
    change = deltas.compute((100.0, {'deadlocks': 3, 'commits': 1000, 'text': 'x'}), 160.0,
                            {'deadlocks': 4, 'commits': 400, 'new': 5})
    assert change['deltas'] == {'deadlocks': 1, 'commits': 400}
    assert change['reset'] == ['commits'], 'a counter that went down was reset: its value is the increase'
    assert change['rates']['deadlocks'] == round(1 / 60.0, 6)
    assert deltas.compute(None, 1.0, {'deadlocks': 1}) == {}
    assert deltas.compute((5.0, {'deadlocks': 1}), 5.0, {'deadlocks': 1}) == {}, 'no interval, no rate'


def test_previous_sample_is_the_newest_of_that_server(tmp_path, monkeypatch):
    path = str(tmp_path / 'history.jsonl')
    key = deltas.series_key('postgresql', 'db1:5432')
    other = deltas.series_key('postgresql', 'db2:5432')
    history.append(path, {'t': 10, 'host': 'h', 'verdict': 'ok', 'db': {key: {'deadlocks': 1}}}, 100)
    history.append(path, {'t': 20, 'host': 'h', 'verdict': 'ok', 'db': {key: {'deadlocks': 2}}}, 100)
    history.append(path, {'t': 30, 'host': 'h', 'verdict': 'ok', 'db': {other: {'deadlocks': 9}}}, 100)
    for i in range(50):   # host samples without db counters crowd the tail
        history.append(path, {'t': 40 + i, 'host': 'h', 'verdict': 'ok', 'cpu': 1.0, 'pad': 'x' * 200}, 1000)
    assert deltas.previous(path, key) == (20.0, {'deadlocks': 2})
    monkeypatch.setattr(deltas, 'TAIL_BYTES', 512)
    assert deltas.previous(path, key) == (20.0, {'deadlocks': 2}), 'found past the tail by the full scan'
    assert deltas.previous(str(tmp_path / 'missing.jsonl'), key) is None
    assert deltas.previous(None, key) is None


def test_health_history_sample_keeps_insight_counters():
    result = {'verdict': 'ok', 'metrics': {}, 'checks': [
        {'name': 'a', 'key': 'postgresql@db1:5432', 'counters': {'deadlocks': 3}}, {'name': 'tcp'}]}
    line = history.sample(result, 5.0, 'h')
    assert line['db'] == {'postgresql@db1:5432': {'deadlocks': 3}}


def test_exposition_passes_promtool():
    snap = snapshot(
        lock_waits=[{'pid': 3, 'wait_seconds': 2.5, 'blockers': [{'pid': 2}]}],
        replication_slots=[{'name': 'standby"1', 'active': False, 'retained_bytes': 1 << 30}],
        cache={'hit_percent': 99.5, 'interval_hit_percent': 97.0},
        bloat=[{'table': 'public.t', 'size_bytes': 1 << 26, 'bloat_bytes': 1 << 25}],
        statements={'enabled': True, 'by_mean_time': [{'mean_ms': 1500.0}]},
        slow_log={'slow_queries': 12}, waits=[{'wait_type': 'LCK_M_X', 'wait_time_ms': 2500}],
        since_previous={'interval_seconds': 300.0, 'rates': {'deadlocks': 0.01}},
        verdict='warning')
    snap['deadlocks']['since_last_sample'] = 1
    text = exposition.build([snap, {'engine': 'mariadb', 'server': 'db2:3306', 'error': 'down'}], 1.8e9)
    promtool.check_metrics(text, 'db insights')
    assert 'opsready_db_connections_usage_ratio{engine="postgresql",server="db1:5432"} 0.25' in text
    assert '# TYPE opsready_db_deadlocks_total counter' in text
    assert 'opsready_db_up{engine="mariadb",server="db2:3306"} 0' in text
    assert 'slot="standby\\"1"' in text


def test_bloat_estimate_from_statistics_and_dead_tuples():
    # 1000 pages of 8 KiB holding 20000 rows of 100 bytes (132 with header, alignment, pointer): 61 per page,
    # 328 pages needed, 672 wasted.
    table = {'schema': 'public', 'name': 't', 'size_bytes': 8192 * 1000, 'pages': 1000, 'tuples': 20000,
             'row_width': 100, 'fillfactor': 100, 'live_tuples': 20000, 'dead_tuples': 0}
    est = postgresql._bloat(table, 8192)
    assert est['method'] == 'statistics' and est['bloat_bytes'] == 672 * 8192 and est['bloat_percent'] == 67.2
    table.update(row_width=None, live_tuples=300, dead_tuples=700)
    est = postgresql._bloat(table, 8192)
    assert est['method'] == 'dead_tuples' and est['bloat_percent'] == 70.0


INNODB_STATUS = """
=====================================
2026-12-04 17:00:00 0x7f INNODB MONITOR OUTPUT
=====================================
------------------------
LATEST DETECTED DEADLOCK
------------------------
2026-12-04 16:59:58 0x7f2c
*** (1) TRANSACTION:
TRANSACTION 1234, ACTIVE 1 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 3 lock struct(s), heap size 1128, 2 row lock(s)
MySQL thread id 31, OS thread handle 1, query id 99 127.0.0.1 opsready Updating
UPDATE d.t SET v = v + 1 WHERE id = 2
*** WAITING FOR THIS LOCK TO BE GRANTED:
RECORD LOCKS space id 5 page no 3 n bits 72 index PRIMARY of table `d`.`t` trx id 1234 lock_mode X locks rec
*** (2) TRANSACTION:
TRANSACTION 1235, ACTIVE 1 sec starting index read
mysql tables in use 1, locked 1
MySQL thread id 32, OS thread handle 2, query id 100 127.0.0.1 opsready Updating
UPDATE d.t SET v = v + 1 WHERE id = 1
*** WE ROLL BACK TRANSACTION (2)
------------
TRANSACTIONS
------------
"""


def test_latest_deadlock_section():
    latest = mysql.latest_deadlock(INNODB_STATUS)
    assert latest['at'].startswith('2026-12-04 16:59:58')
    assert latest['threads'] == [31, 32] and latest['rolled_back'] == 2
    assert latest['queries'] == ['UPDATE d.t SET v = v + 1 WHERE id = 2', 'UPDATE d.t SET v = v + 1 WHERE id = 1']
    assert mysql.latest_deadlock('no deadlock here') is None
    mariadb = mysql.latest_deadlock(INNODB_STATUS.replace('MySQL thread id', 'MariaDB thread id'))
    assert mariadb['threads'] == [31, 32] and mariadb['queries'] == latest['queries']


def test_slow_log_file_summary(tmp_path):
    log = tmp_path / 'slow.log'
    entries = []
    for seconds, query in ((0.5, 'SELECT SLEEP(0.5);'), (2.25, 'SELECT * FROM big;'), (1.0, 'UPDATE t SET v=1;')):
        entries.append('# Time: 261204 17:00:00\n# User@Host: app[app] @ localhost []\n# Thread_id: 8  Schema: d\n'
                       '# Query_time: %s  Lock_time: 0.000100  Rows_sent: 1  Rows_examined: 10\n'
                       'use d;\nSET timestamp=1796403600;\n%s\n' % (seconds, query))
    log.write_text(''.join(entries))
    summary = mysql.summarize_slow_log_file(str(log), 2)
    assert summary['entries_read'] == 3
    assert [e['query'] for e in summary['slowest']] == ['SELECT * FROM big;', 'UPDATE t SET v=1;']
    assert json.dumps(summary)


def test_options_are_bounded():
    with pytest.raises(OpsReadyError, match='top must be between'):
        core.Options(top=-1).validate()


def test_health_textfile_gets_the_insight_checks_samples(tmp_path):
    from ansible_collections.opsready.operations.plugins.module_utils.health import assess
    plan = assess.Plan(checks=[], metrics=[], textfile_path=str(tmp_path / 'h.prom'))
    result = {'verdict': 'warning', 'metrics': {}, 'findings': [], 'duration_seconds': 0.1, 'checks': [
        {'name': 'pg', 'type': 'insights', 'ok': True, 'latency_ms': 12.0,
         'insights': snapshot(verdict='warning', since_previous=None)}]}
    assess.record(plan, result, timestamp=1.8e9)
    text = promtool.check_textfile(tmp_path / 'h.prom')
    assert 'opsready_db_verdict{check="pg",engine="postgresql",server="db1:5432"} 1' in text
    assert 'opsready_health_verdict 1' in text


def test_mysql8_reads_performance_schema_where_mariadb_reads_information_schema():
    """MySQL 8 has no information_schema.GLOBAL_STATUS nor INNODB_LOCK_WAITS (no MySQL server runs here: the
    statement is checked, not run)."""
    options = core.Options()
    maria = mysql._snapshot_sql('mariadb', digests=True, slow_table=True, options=options)
    mysql8 = mysql._snapshot_sql('mysql', digests=True, slow_table=True, options=options)
    assert 'information_schema.GLOBAL_STATUS' in maria and 'information_schema.INNODB_LOCK_WAITS' in maria
    assert "'INNODB_DEADLOCKS'" in maria, 'MariaDB keeps status names in upper case'
    assert 'performance_schema.global_status' in mysql8 and 'performance_schema.data_lock_waits' in mysql8
    assert 'GLOBAL_STATUS' not in mysql8 and 'INNODB_LOCK_WAITS' not in mysql8
    assert "NAME = 'lock_deadlocks'" in mysql8 and 'lock_deadlocks' not in maria
    bare = mysql._snapshot_sql('mariadb', digests=False, slow_table=False, options=options)
    assert 'events_statements_summary_by_digest' not in bare and 'mysql.slow_log' not in bare
