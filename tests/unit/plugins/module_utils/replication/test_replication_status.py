"""Replication verdict logic: thresholds, reasons from PostgreSQL and MariaDB/MySQL status, positions compared.

The status documents below have the shape the servers return (the PostgreSQL one is what STATUS_SQL's JSON
holds; the MySQL rows are SHOW REPLICA STATUS columns); the live servers are in
tests/integration/test_replication_info.py.
"""

from __future__ import annotations

import copy

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import checks, prometheus, replication_check
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import replication as mysql
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import replication as postgresql
from ansible_collections.opsready.operations.plugins.module_utils.replication import status as st
from tests.harness.promtool import check_metrics

MIB = 1024 * 1024

# ------------------------------------------------------------------------------------------------ thresholds


def test_levels_default_bare_number_and_dict():
    lv = st.parse_level('max_lag_bytes', None)
    assert (lv.warning, lv.critical) == (16 * MIB, 256 * MIB)
    lv = st.parse_level('max_lag_seconds', 10)   # bare number: critical; default warning 30 lowered to it
    assert (lv.warning, lv.critical) == (10, 10)
    lv = st.parse_level('max_lag_seconds', 600)
    assert (lv.warning, lv.critical) == (30, 600)
    lv = st.parse_level('max_lag_seconds', {'warning': None, 'critical': 5})
    assert (lv.warning, lv.critical) == (None, 5)
    assert lv.evaluate(5) == 'ok' and lv.evaluate(5.1) == 'critical' and lv.evaluate(None) == 'ok'


@pytest.mark.parametrize('value, match', [
    (-1, 'negative'), (True, 'number'), ('ten', 'number'), ({'warning': 9, 'critical': 3}, 'above critical'),
    ({'warn': 1}, 'only warning and critical'),
])
def test_bad_levels_are_refused_with_the_option_name(value, match):
    with pytest.raises(OpsReadyError, match=match) as exc:
        st.parse_level('max_lag_seconds', value)
    assert 'max_lag_seconds' in exc.value.message


def test_limits_validate_role_and_count():
    with pytest.raises(OpsReadyError, match='expected_role'):
        st.Limits(expected_role='leader')
    with pytest.raises(OpsReadyError, match='min_replicas'):
        st.Limits(min_replicas=-1)
    assert st.Limits.from_params({}).as_dict()['max_lag_seconds'] == {'warning': 30.0, 'critical': 300.0}


# ------------------------------------------------------------------------------------------------ PostgreSQL
PG_PRIMARY = {
    'in_recovery': False, 'server_version': '15.8', 'server_version_num': 150008, 'current_lsn': '0/5000000',
    'receive_lsn': None, 'replay_lsn': None, 'replay_paused': None, 'replay_lag_seconds': None, 'timeline': 1,
    'settings': {'default_transaction_read_only': 'off', 'primary_conninfo': ''},
    'replicas': [
        {'name': 'standby1', 'client_addr': '10.0.0.2', 'state': 'streaming', 'sync_state': 'async',
         'replay_lsn': '0/5000000', 'lag_bytes': 0, 'lag_seconds': 0.001, 'slot_name': 'standby1'},
        {'name': 'standby2', 'client_addr': '10.0.0.3', 'state': 'streaming', 'sync_state': 'async',
         'replay_lsn': '0/5000000', 'lag_bytes': 0, 'lag_seconds': None, 'slot_name': 'standby2'},
    ],
    'receiver': None,
    'slots': [{'slot_name': 'standby1', 'slot_type': 'physical', 'active': True, 'wal_status': 'reserved',
               'restart_lsn': '0/5000000', 'retained_bytes': 0},
              {'slot_name': 'standby2', 'slot_type': 'physical', 'active': True, 'wal_status': 'reserved',
               'restart_lsn': '0/5000000', 'retained_bytes': 0}],
}
PG_STANDBY = {
    'in_recovery': True, 'server_version': '15.8', 'current_lsn': None, 'receive_lsn': '0/5000000',
    'replay_lsn': '0/5000000', 'replay_paused': False, 'replay_lag_seconds': 0, 'timeline': 1,
    'settings': {'primary_conninfo': "host=10.0.0.1 port=5432 user=repl password='s3cr3t pass' "
                                     "application_name=standby1"},
    'replicas': [], 'slots': [],
    'receiver': {'status': 'streaming', 'sender_host': '10.0.0.1', 'sender_port': 5432, 'received_tli': 1,
                 'flushed_lsn': '0/5000000', 'latest_end_lsn': '0/5000000', 'slot_name': 'standby1',
                 'conninfo': 'never read'},
}


def pg(raw, **limits):
    status = postgresql.shape(copy.deepcopy(raw))
    return st.finish(status, postgresql.assess(status, st.Limits(**limits)))


def conditions(status):
    return [(r['severity'], r['condition']) for r in status['reasons']]


def test_healthy_primary_and_standby_are_ok():
    p = pg(PG_PRIMARY, min_replicas=2, expected_role='primary')
    assert p['verdict'] == 'ok' and p['role'] == 'primary' and p['position']['received'] == 0x5000000
    s = pg(PG_STANDBY, expected_role='standby')
    assert s['verdict'] == 'ok' and s['role'] == 'standby' and s['lag_bytes'] == 0 and s['lag_seconds'] == 0
    assert s['upstream']['status'] == 'streaming'


def test_standby_conninfo_keeps_no_password():
    s = pg(PG_STANDBY)
    expected = {'host': '10.0.0.1', 'port': '5432', 'user': 'repl', 'application_name': 'standby1'}
    assert s['settings']['primary_conninfo'] == expected
    assert 's3cr3t' not in repr(s) and 'never read' not in repr(s)
    assert postgresql.conninfo_summary(r"host='a b' password='x\'y' port = 5433") == {'host': 'a b', 'port': '5433'}


def test_standby_without_walreceiver_is_critical_and_says_why():
    raw = dict(PG_STANDBY, receiver=None)
    s = pg(raw)
    assert s['verdict'] == 'critical' and conditions(s) == [('critical', st.STOPPED)]
    assert 'host=10.0.0.1 port=5432' in s['reasons'][0]['message']
    raw['settings'] = {'primary_conninfo': ''}
    assert 'primary_conninfo is empty' in pg(raw)['reasons'][0]['message']
    raw = dict(PG_STANDBY, receiver=dict(PG_STANDBY['receiver'], status='waiting'))
    assert conditions(pg(raw)) == [('critical', st.STOPPED)]


def test_standby_lag_bytes_and_seconds_against_thresholds():
    raw = dict(PG_STANDBY, replay_lsn='0/4000000', replay_lag_seconds=45.5,
               receiver=dict(PG_STANDBY['receiver'], latest_end_lsn='0/6000000'))
    s = pg(raw)
    assert s['lag_bytes'] == 0x2000000 and s['lag_seconds'] == 45.5
    assert conditions(s) == [('warning', st.LAG), ('warning', st.LAG)]
    s = pg(raw, max_lag_bytes=16 * MIB, max_lag_seconds={'warning': 60, 'critical': 120})
    assert conditions(s) == [('critical', st.LAG)]
    assert '32.0 MiB' in s['reasons'][0]['message'] and s['reasons'][0]['threshold'] == 16 * MIB
    assert s['position']['replayed'] == 0x4000000 and s['position']['received'] == 0x5000000


def test_paused_replay_warns():
    assert conditions(pg(dict(PG_STANDBY, replay_paused=True))) == [('warning', st.PAUSED)]


def test_primary_side_replica_lag_missing_standby_and_slots():
    raw = copy.deepcopy(PG_PRIMARY)
    raw['replicas'][1]['lag_bytes'] = 300 * MIB
    raw['replicas'][1]['lag_seconds'] = 40.0
    s = pg(raw)
    assert conditions(s) == [('critical', st.LAG), ('warning', st.LAG)]
    assert all(r['subject'] == 'standby2' for r in s['reasons'])
    # standby1 gone: its slot is inactive (critical, with the WAL it holds), one standby short
    raw = copy.deepcopy(PG_PRIMARY)
    del raw['replicas'][0]
    raw['slots'][0].update(active=False, retained_bytes=2 * 1024 * MIB)
    s = pg(raw, min_replicas=2)
    assert sorted(conditions(s)) == [('critical', st.MISSING), ('critical', st.SLOT), ('warning', st.SLOT)]
    assert any('2.0 GiB' in r['message'] and 'inactive' in r['message'] for r in s['reasons'])
    assert conditions(pg(raw, inactive_slot_severity='ok', max_slot_retained_bytes=None)) == [('warning', st.SLOT)]
    assert conditions(pg(raw, ignore_slots=['standby1'])) == []
    raw['slots'][0].update(active=True, wal_status='lost', retained_bytes=0)
    assert conditions(pg(raw)) == [('critical', st.SLOT)]


def test_catching_up_replica_and_unreadable_lsns_warn():
    raw = copy.deepcopy(PG_PRIMARY)
    raw['replicas'][0].update(state='catchup')
    raw['replicas'][1].update(lag_bytes=None)
    assert sorted(conditions(pg(raw))) == [('warning', st.LAG), ('warning', st.STOPPED)]


def test_roles_against_expectation():
    s = pg(PG_PRIMARY, expected_role='standby')
    assert conditions(s) == [('critical', st.ROLE)] and 'fence' in s['reasons'][0]['message']
    assert conditions(pg(PG_STANDBY, expected_role='primary')) == [('critical', st.ROLE)]
    ro = copy.deepcopy(PG_PRIMARY)
    ro['settings']['default_transaction_read_only'] = 'on'
    assert conditions(pg(ro)) == [('warning', st.CONFIG)]


# ------------------------------------------------------------------------------------------ MariaDB / MySQL
MARIADB_ROW = {
    'Connection_name': '', 'Slave_IO_State': 'Waiting for master to send event', 'Master_Host': '10.0.0.1',
    'Master_Port': '3306', 'Master_User': 'repl', 'Slave_IO_Running': 'Yes', 'Slave_SQL_Running': 'Yes',
    'Seconds_Behind_Master': '0', 'Last_IO_Errno': '0', 'Last_IO_Error': '', 'Last_SQL_Errno': '0',
    'Last_SQL_Error': '', 'Using_Gtid': 'Slave_Pos', 'Gtid_IO_Pos': '0-1-12', 'Gtid_Slave_Pos': '0-1-10',
    'SQL_Delay': '0',
}
MYSQL_ROW = {
    'Replica_IO_State': 'Waiting for source to send event', 'Source_Host': '10.0.0.1', 'Source_Port': '3306',
    'Replica_IO_Running': 'Yes', 'Replica_SQL_Running': 'Yes', 'Seconds_Behind_Source': '0',
    'Last_IO_Errno': '0', 'Last_IO_Error': '', 'Last_SQL_Errno': '0', 'Last_SQL_Error': '', 'Auto_Position': '1',
    'Retrieved_Gtid_Set': '3E11FA47-71CA-11E1-9E33-C80AA9429562:1-12',
    'Executed_Gtid_Set': '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10', 'Channel_Name': '',
}
MARIADB_VARS = {'version': '10.11.6-MariaDB', 'server_id': '2', 'read_only': 'ON', 'log_bin': 'ON',
                'gtid_current_pos': '0-1-10', 'gtid_binlog_pos': '0-1-10', 'gtid_slave_pos': '0-1-10',
                'gtid_strict_mode': 'ON'}
MYSQL_VARS = {'version': '8.0.36', 'server_id': '2', 'read_only': 'OFF', 'super_read_only': 'ON', 'log_bin': 'ON',
              'gtid_mode': 'ON', 'gtid_executed': '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10\n'}


def my(flavor, variables, rows, dump=(), **limits):
    status = mysql.shape(flavor, dict(variables), [mysql.normalise_row(r) for r in rows], list(dump))
    return st.finish(status, mysql.assess(status, st.Limits(**limits)))


def test_both_column_spellings_map_to_the_same_keys():
    a, b = mysql.normalise_row(MARIADB_ROW), mysql.normalise_row(MYSQL_ROW)
    for key in ('io_running', 'sql_running', 'seconds_behind', 'upstream_host', 'upstream_port', 'last_io_errno'):
        assert a[key] == b[key], key
    assert a['seconds_behind'] == 0 and a['io_running_ok'] and b['sql_running_ok']


def test_healthy_replicas_positions_and_transactions_behind():
    m = my('mariadb', MARIADB_VARS, [MARIADB_ROW], expected_role='standby')
    assert m['verdict'] == 'ok' and m['role'] == 'standby' and m['lag_seconds'] == 0.0
    assert m['position']['received'] == '0-1-12' and m['position']['replayed'] == '0-1-10'
    assert m['upstream']['transactions_behind'] == 2
    y = my('mysql', MYSQL_VARS, [MYSQL_ROW], expected_role='standby')
    assert y['verdict'] == 'ok' and y['read_only'] is True
    assert y['position']['received'] == '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-12'
    assert y['upstream']['transactions_behind'] == 2


def test_broken_io_thread_is_critical_with_the_last_error():
    row = dict(MARIADB_ROW, Slave_IO_Running='Connecting', Seconds_Behind_Master=None, Last_IO_Errno='1045',
               Last_IO_Error="error connecting to master 'repl@10.0.0.1:3306' - Access denied for user 'repl'")
    m = my('mariadb', MARIADB_VARS, [row])
    assert conditions(m) == [('critical', st.STOPPED)]
    assert '1045' in m['reasons'][0]['message'] and 'Access denied' in m['reasons'][0]['message']
    assert m['lag_seconds'] is None
    row = dict(MYSQL_ROW, Replica_SQL_Running='No', Last_SQL_Errno='1062', Last_SQL_Error='Duplicate entry',
               Seconds_Behind_Source=None)
    y = my('mysql', MYSQL_VARS, [row])
    assert conditions(y) == [('critical', st.STOPPED)] and 'Duplicate entry' in y['reasons'][0]['message']


def test_seconds_behind_no_gtid_writable_replica_and_missing_replicas():
    row = dict(MARIADB_ROW, Seconds_Behind_Master='400', Using_Gtid='No')
    m = my('mariadb', dict(MARIADB_VARS, read_only='OFF'), [row])
    assert sorted(conditions(m)) == [('critical', st.LAG), ('warning', st.CONFIG), ('warning', st.CONFIG)]
    primary = my('mariadb', dict(MARIADB_VARS, read_only='OFF'), [], min_replicas=1)
    assert primary['role'] == 'primary' and conditions(primary) == [('critical', st.MISSING)]
    dump = [['7', 'repl', '10.0.0.2:51234', '120', 'Master has sent all binlog to slave']]
    primary = my('mariadb', dict(MARIADB_VARS, read_only='OFF'), [], dump, min_replicas=1)
    assert primary['verdict'] == 'ok' and primary['replicas'][0]['client_addr'] == '10.0.0.2'


# ------------------------------------------------------------------------------------------------ positions
def test_mariadb_gtid_lists():
    assert st.parse_mariadb_gtids('0-1-100,1-2-7\n') == {0: (1, 100), 1: (2, 7)}
    assert st.merge_mariadb_gtids('0-1-100,1-2-7', '0-3-101', '') == '0-3-101,1-2-7'
    with pytest.raises(OpsReadyError, match='not a MariaDB GTID'):
        st.parse_mariadb_gtids('0-1')


def test_mysql_gtid_sets():
    u = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
    v = '4e11fa47-71ca-11e1-9e33-c80aa9429562'
    parsed = st.parse_mysql_gtid_set('%s:1-5:7:6,\n%s:1-3' % (u.upper(), v))
    assert parsed == {u: [(1, 7)], v: [(1, 3)]}
    assert st.union_mysql_gtid_sets('%s:1-5' % u, '%s:8-9' % u) == '%s:1-5:8-9' % u
    assert st.missing('mysql_gtid', '%s:1-5' % u, '%s:1-9,%s:1-2' % (u, v)) == 6
    assert st.parse_mysql_gtid_set('%s:tag:1-2' % u) == {'%s:tag' % u: [(1, 2)]}
    with pytest.raises(OpsReadyError):
        st.parse_mysql_gtid_set('nonsense:1-2')


def test_compare_and_most_advanced_lsn():
    a = {'position': {'kind': 'lsn', 'timeline': 1, 'received': 500, 'replayed': 400}}
    b = {'position': {'kind': 'lsn', 'timeline': 1, 'received': 300, 'replayed': 300}}
    c = {'position': {'kind': 'lsn', 'timeline': 2, 'received': 900, 'replayed': 900}}
    assert st.compare(a, b) == 1 and st.compare(b, a) == -1 and st.compare(a, a) == 0
    assert st.compare(a, b, 'replayed') == 1
    assert st.compare(a, c) is None  # another timeline: not comparable
    assert st.behind(a, b) == {'bytes': 200}
    result = st.most_advanced({'s1': a, 's2': b, 'gone': {'position': None}})
    assert result == {'best': ['s1'], 'behind': {'s2': {'bytes': 200}}, 'incomparable': ['gone']}
    tie = st.most_advanced({'s1': a, 's3': copy.deepcopy(a)})
    assert tie['best'] == ['s1', 's3']
    with pytest.raises(OpsReadyError):
        st.compare(a, b, 'flushed')


def test_compare_gtids_and_divergence():
    a = {'kind': 'mariadb_gtid', 'received': '0-1-12,1-5-3', 'replayed': '0-1-10,1-5-3'}
    b = {'kind': 'mariadb_gtid', 'received': '0-1-10', 'replayed': '0-1-10'}
    assert st.compare(a, b) == 1 and st.behind(a, b) == {'transactions': 5}
    assert st.compare(a, b, 'replayed') == 1
    d = {'kind': 'mariadb_gtid', 'received': '0-1-9,2-7-1', 'replayed': '0-1-9,2-7-1'}
    assert st.compare(a, d) is None and st.behind(a, d) is None
    assert st.most_advanced({'a': {'position': a}, 'd': {'position': d}})['best'] == []
    assert st.compare(a, {'kind': 'lsn', 'received': 1, 'replayed': 1}) is None


# ------------------------------------------------------------------------------------------------ health check
def test_replication_check_options_merge_and_validate_before_running():
    merged = checks.suboptions()
    assert 'replication' in merged['type']['choices'] and merged['password'] == {'type': 'str', 'no_log': True}
    spec = checks.normalise([{'type': 'replication', 'replication_engine': 'postgresql', 'host': '127.0.0.1',
                              'port': 5432, 'max_lag_seconds': 60}])[0]
    assert spec['name'] == 'replication:postgresql@127.0.0.1:5432'
    with pytest.raises(OpsReadyError, match='max_lag_bytes'):
        checks.normalise([{'type': 'replication', 'replication_engine': 'mariadb', 'max_lag_bytes': -5}])
    with pytest.raises(OpsReadyError, match='needs replication_engine'):
        checks.normalise([{'type': 'replication', 'host': 'x'}])
    with pytest.raises(OpsReadyError, match='does not apply'):
        checks.normalise([{'type': 'tcp', 'host': 'x', 'port': 1, 'max_lag_seconds': 3}])


def _check_result(status):
    summary = {k: status.get(k) for k in ('role', 'verdict', 'reasons', 'lag_bytes', 'lag_seconds', 'position',
                                          'timeline', 'read_only', 'replicas', 'upstream', 'slots')}
    return {'name': 'repl', 'type': 'replication', 'ok': status['verdict'] != 'critical', 'replication': summary}


def test_reasons_become_findings_and_series_pass_promtool():
    raw = copy.deepcopy(PG_PRIMARY)
    del raw['replicas'][0]
    raw['slots'][0].update(active=False, retained_bytes=5 * MIB)
    status = pg(raw, min_replicas=2)
    spec = checks.normalise([{'type': 'replication', 'name': 'repl', 'replication_engine': 'postgresql',
                              'unit': 'postgresql'}])[0]
    check = checks.REGISTRY['replication']
    found = check.evaluate(spec, _check_result(status), {})
    assert {f['condition'] for f in found} == {st.MISSING, st.SLOT}
    assert all(f['check'] == 'repl' and f['type'] == 'replication' and f['unit'] == 'postgresql' for f in found)
    down = check.evaluate(spec, {'ok': False, 'condition': 'database_connection', 'message': 'refused'}, {})
    assert down[0]['condition'] == 'database_connection' and down[0]['severity'] == 'critical'
    standby = my('mariadb', MARIADB_VARS, [dict(MARIADB_ROW, Slave_IO_Running='No')])
    result = {'verdict': 'critical', 'checks': [_check_result(status),
                                                dict(_check_result(standby), name='replica')], 'findings': found}
    text = prometheus.build(result, 1764000000.0)
    check_metrics(text, 'replication series')
    assert 'opsready_health_replication_slot_retained_bytes{check="repl",slot="standby1"} 5242880' in text
    assert 'opsready_health_replication_upstream_up{check="replica"} 0' in text
    assert replication_check.expose is prometheus.EXPOSERS['replication']


def test_a_login_without_pg_monitor_is_told_to_get_it_not_judged_broken():
    # without pg_monitor, pg_stat_replication / pg_stat_wal_receiver rows exist but their columns are NULL
    raw = copy.deepcopy(PG_PRIMARY)
    for r in raw['replicas']:
        r.update(state=None, sync_state=None, replay_lsn=None, lag_bytes=None, lag_seconds=None)
    p = pg(raw, min_replicas=2)
    assert conditions(p) == [('warning', st.CONFIG)] and 'pg_monitor' in p['reasons'][0]['message']
    raw = dict(PG_STANDBY, receiver={k: None for k in PG_STANDBY['receiver']},
               settings={'primary_conninfo': None})
    s = pg(raw)
    assert conditions(s) == [('warning', st.CONFIG)] and 'pg_monitor' in s['reasons'][0]['message']


def test_node_status_refuses_engines_without_replication_status():
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    with pytest.raises(OpsReadyError, match="Unknown engine 'sqlite' for replication status"):
        st.node_status('sqlite', ConnectionParams())
