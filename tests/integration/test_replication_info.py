"""replication_info and the replication health check through ansible-playbook, against real clusters.

PostgreSQL 15 primary + 2 streaming standbys (physical slots), MariaDB primary + GTID replica, all on 127.0.0.1
(tests/harness/replication.py). The clusters are module-scoped; each test puts back what it broke.
"""

from __future__ import annotations

import json
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.promtool import check_textfile
from tests.harness.replication import poll

MIB = 1024 * 1024

pytest_plugins = ['tests.integration.conftest_replication']


def login(node, **extra):
    args = {'login_host': node.host, 'login_port': node.port, 'login_user': node.user,
            'login_password': node.password, 'connect_timeout': 5}
    args.update(extra)
    return args


def info_task(name, engine, node, **extra):
    args = login(node, engine=engine)
    args.update(extra)
    return {'name': name, 'opsready.operations.replication_info': args, 'register': name.replace(' ', '_')}


def check_spec(name, engine, node, **extra):
    spec = {'type': 'replication', 'name': name, 'replication_engine': engine, 'host': node.host,
            'port': node.port, 'user': node.user, 'password': node.password}
    spec.update(extra)
    return spec


def health_task(checks, textfile):
    return {'name': 'health', 'register': 'health', 'opsready.operations.health_check': {
        'checks': checks, 'metrics': [], 'fail_on': 'never', 'textfile_path': str(textfile)}}


def conditions(result):
    return sorted((r['severity'], r['condition']) for r in result['reasons'])


def series(textfile, name):
    text = check_textfile(textfile)
    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


# ------------------------------------------------------------------------------------------------ PostgreSQL
def test_pg_healthy_cluster_from_both_ends(pg_cluster, tmp_path):
    c = pg_cluster
    c.generate_wal(64 << 10)
    c.wait_replayed()
    s1, s2 = c.standbys
    textfile = tmp_path / 'health.prom'
    tasks = [
        info_task('primary', 'postgresql', c.primary, expected_role='primary', min_replicas=2),
        info_task('standby1', 'postgresql', s1, expected_role='standby'),
        dict(info_task('standby2', 'postgresql', s2, expected_role='standby', fail_on='warning'), check_mode=True),
        health_task([check_spec('pg-primary', 'postgresql', c.primary, expected_role='primary', min_replicas=2),
                     check_spec('pg-standby1', 'postgresql', s1, expected_role='standby')], textfile),
    ]
    run = run_playbook(write_playbook(tmp_path, tasks))
    assert run.rc == 0, run.stdout[-4000:]
    primary, sb1, sb2 = run.result('primary'), run.result('standby1'), run.result('standby2')
    for res in (primary, sb1, sb2):
        assert res['verdict'] == 'ok', res['reasons']
        assert res['changed'] is False and res['engine'] == 'postgresql'
    assert primary['role'] == 'primary' and primary['timeline'] == 1
    assert [(r['name'], r['state'], r['slot_name']) for r in primary['replicas']] == [
        ('standby1', 'streaming', 'standby1'), ('standby2', 'streaming', 'standby2')]
    assert all(r['lag_bytes'] == 0 for r in primary['replicas'])
    assert [(s['slot_name'], s['active']) for s in primary['slots']] == [('standby1', True), ('standby2', True)]
    assert sb1['role'] == 'standby' and sb1['lag_bytes'] == 0 and sb1['lag_seconds'] == 0
    assert sb1['upstream']['status'] == 'streaming' and sb1['upstream']['sender_port'] == c.primary.port
    # no password in what comes back, even from the standby's primary_conninfo
    assert c.primary.password not in json.dumps([primary, sb1, sb2])
    assert sb1['settings']['primary_conninfo']['application_name'] == 'standby1'
    # positions: all three hold the same WAL (nothing written meanwhile)
    assert sb1['position']['received'] == sb2['position']['received'] == primary['position']['received']
    health = run.result('health')
    assert health['verdict'] == 'ok', health['findings']
    verdicts = series(textfile, 'opsready_health_replication_verdict')
    assert verdicts == {(('check', 'pg-primary'),): 0, (('check', 'pg-standby1'),): 0}
    assert series(textfile, 'opsready_health_replication_upstream_up') == {(('check', 'pg-standby1'),): 1}
    assert series(textfile, 'opsready_health_replication_replicas')[(('check', 'pg-primary'),)] == 2


def test_pg_cut_standbys_are_critical_on_both_sides_and_open_an_incident(pg_cluster, tmp_path):
    c = pg_cluster
    s1, s2 = c.standbys
    c.stop_walreceiver(s1)                 # network cut: primary_conninfo emptied, no walreceiver
    c.break_conninfo(s2, 'password')       # the walreceiver retries with a wrong password
    try:
        c.generate_wal(2 * MIB)            # WAL the slots must now keep for the absent standbys
        c.switch_wal()
        textfile = tmp_path / 'health.prom'
        store = tmp_path / 'incidents.jsonl'
        tasks = [
            info_task('primary', 'postgresql', c.primary, min_replicas=2,
                      max_slot_retained_bytes={'warning': 1 * MIB, 'critical': 64 * MIB}),
            info_task('standby1', 'postgresql', s1),
            info_task('standby2', 'postgresql', s2),
            {'name': 'health role', 'ansible.builtin.include_role': {'name': 'opsready.operations.health'},
             'vars': {'health_checks': [check_spec('pg-primary', 'postgresql', c.primary, min_replicas=2),
                                        check_spec('pg-standby1', 'postgresql', s1)],
                      'health_metrics': [], 'health_fail_on': 'never', 'health_textfile_path': str(textfile),
                      'health_incident_store': str(store), 'health_capacity_plan': False}},
        ]
        run = run_playbook(write_playbook(tmp_path, tasks))
    finally:
        c.restore_walreceiver(s1)
        c.restore_walreceiver(s2)
    assert run.rc == 0, run.stdout[-4000:]
    primary = run.result('primary')
    assert primary['verdict'] == 'critical'
    assert ('critical', 'replica_missing') in conditions(primary)
    slots = {r['subject']: r for r in primary['reasons'] if r['condition'] == 'replication_slot'}
    assert set(slots) == {'standby1', 'standby2'}
    assert {s['slot_name']: s['active'] for s in primary['slots']} == {'standby1': False, 'standby2': False}
    assert all(s['retained_bytes'] > 2 * MIB for s in primary['slots'])
    # each slot: inactive (critical) and its retained WAL past the 1 MiB warning level
    assert sorted(r['severity'] for r in primary['reasons'] if r['subject'] == 'standby1') == ['critical', 'warning']
    sb1, sb2 = run.result('standby1'), run.result('standby2')
    assert sb1['verdict'] == 'critical' and conditions(sb1) == [('critical', 'replication_stopped')]
    assert 'primary_conninfo is empty' in sb1['reasons'][0]['message']
    assert sb2['verdict'] == 'critical' and ('critical', 'replication_stopped') in conditions(sb2)
    assert 'host=127.0.0.1 port=%d' % c.primary.port in sb2['reasons'][0]['message']
    assert c.primary.password not in json.dumps(sb2)
    # the health role: findings, verdict, textfile and an incident naming the checks
    health = run.result('Measure health')
    assert health['verdict'] == 'critical'
    assert {'replica_missing', 'replication_slot', 'replication_stopped'} <= set(health['conditions'])
    assert series(textfile, 'opsready_health_replication_upstream_up') == {(('check', 'pg-standby1'),): 0}
    active = series(textfile, 'opsready_health_replication_slot_active')
    assert active[(('check', 'pg-primary'), ('slot', 'standby1'))] == 0
    opened = [json.loads(line) for line in store.read_text().splitlines()]
    assert opened[0]['event'] == 'open' and {'pg-primary', 'pg-standby1'} <= set(opened[0]['components'])
    c.wait_replayed()  # both stream again and caught up


class Writer:
    """Commits small WAL-heavy transactions until stopped (the 'writer' of the lag test)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.commits = 0

    def _run(self):
        while not self.stop.is_set():
            self.cluster.generate_wal(256 << 10)
            self.commits += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def test_pg_lag_under_a_writer_crosses_the_thresholds(pg_cluster, tmp_path):
    c = pg_cluster
    s2 = c.standbys[1]
    c.pause_replay(s2)                     # WAL still arrives; replay stops: lag in bytes and seconds grows
    try:
        with Writer(c) as writer:
            poll(lambda: c.lag_bytes(s2) > 3 * MIB, 60, 'standby2 to fall 3 MiB behind')
            time.sleep(1.2)                # the replay timestamp ages past the 1 s warning level
            tasks = [
                info_task('standby2', 'postgresql', s2, max_lag_bytes={'warning': 1 * MIB, 'critical': 1024 * MIB},
                          max_lag_seconds={'warning': 1, 'critical': 3600}),
                info_task('primary', 'postgresql', c.primary, max_lag_bytes=2 * MIB, max_lag_seconds=3600),
                info_task('strict', 'postgresql', s2, max_lag_bytes=1 * MIB, fail_on='critical'),
            ]
            run = run_playbook(write_playbook(tmp_path, tasks))
            assert writer.commits > 0
    finally:
        c.resume_replay(s2)
    assert run.rc != 0  # the fail_on=critical task failed the play
    sb2 = run.result('standby2')
    assert sb2['verdict'] == 'warning', sb2['reasons']
    assert conditions(sb2) == [('warning', 'replication_lag'), ('warning', 'replication_lag'),
                               ('warning', 'replication_paused')]
    assert sb2['lag_bytes'] > 3 * MIB and sb2['lag_seconds'] > 1 and sb2['replay_paused'] is True
    primary = run.result('primary')
    assert primary['verdict'] == 'critical'
    lagging = [r for r in primary['reasons'] if r['condition'] == 'replication_lag']
    assert [r['subject'] for r in lagging] == ['standby2'] and lagging[0]['value'] > 2 * MIB
    strict = run.result('strict')
    assert strict['_event'] == 'runner_on_failed' and 'Replication verdict is critical' in strict['msg']
    c.wait_replayed([s2], timeout=60)


# ------------------------------------------------------------------------------------------------ MariaDB
def test_mariadb_gtid_replica_healthy_then_broken_io_thread(maria_cluster, tmp_path):
    m = maria_cluster
    r = m.replicas[0]
    m.primary.sql('CREATE DATABASE IF NOT EXISTS shop; CREATE TABLE IF NOT EXISTS shop.t (id int primary key);'
                  'INSERT INTO shop.t VALUES (1), (2);')
    m.wait_replayed()
    gtid = m.gtid_positions(m.primary)['gtid_binlog_pos']
    tasks = [info_task('primary', 'mariadb', m.primary, expected_role='primary', min_replicas=1),
             info_task('replica', 'mariadb', r, expected_role='standby')]
    run = run_playbook(write_playbook(tmp_path, tasks))
    assert run.rc == 0, run.stdout[-4000:]
    primary, replica = run.result('primary'), run.result('replica')
    assert primary['verdict'] == 'ok' and replica['verdict'] == 'ok', (primary['reasons'], replica['reasons'])
    assert primary['role'] == 'primary' and len(primary['replicas']) == 1
    assert replica['role'] == 'standby' and replica['read_only'] is True and replica['lag_seconds'] == 0
    assert replica['upstream']['using_gtid'] == 'Slave_Pos' and replica['upstream']['io_running'] == 'Yes'
    assert replica['position']['gtid_slave_pos'] == gtid == primary['position']['gtid_binlog_pos']
    assert replica['position']['received'] == replica['position']['replayed'] == gtid
    assert replica['upstream']['transactions_behind'] == 0

    m.break_io_thread(r, 'password')
    try:
        m.primary.sql('INSERT INTO shop.t VALUES (3)')  # the replica cannot fetch this one
        tasks = [info_task('replica', 'mariadb', r),
                 health_task([check_spec('maria-replica', 'mariadb', r, expected_role='standby')],
                             tmp_path / 'health.prom')]
        run = run_playbook(write_playbook(tmp_path, tasks))
    finally:
        m.restore_io_thread(r)
    assert run.rc == 0, run.stdout[-4000:]
    replica = run.result('replica')
    assert replica['verdict'] == 'critical' and conditions(replica) == [('critical', 'replication_stopped')]
    assert replica['upstream']['last_io_errno'] == 1045 and replica['upstream']['io_running'] == 'Connecting'
    assert 'Access denied' in replica['reasons'][0]['message'] and '1045' in replica['reasons'][0]['message']
    assert replica['lag_seconds'] is None
    assert replica['position']['gtid_slave_pos'] == gtid  # the GTIDs it holds: behind the primary now
    health = run.result('health')
    assert health['verdict'] == 'critical'
    finding = health['findings'][0]
    assert finding['condition'] == 'replication_stopped' and 'Access denied' in finding['message']
    assert series(tmp_path / 'health.prom', 'opsready_health_replication_upstream_up') == {
        (('check', 'maria-replica'),): 0}
    m.wait_replayed()
    assert r.sql('SELECT count(*) FROM shop.t') == [('3',)]


def test_module_refuses_bad_input_and_unreachable_servers(pg_cluster, tmp_path):
    cases = {'bad_threshold': ({'max_lag_seconds': {'warning': 10, 'critical': 5}}, 'must not be above critical'),
             'closed_port': ({'login_port': 1}, 'Cannot connect to PostgreSQL at host 127.0.0.1 port 1')}
    tasks = []
    for name, (bad, _message) in cases.items():
        args = login(pg_cluster.primary, engine='postgresql')
        args.update(bad)
        tasks.append({'name': name, 'opsready.operations.replication_info': args, 'ignore_errors': True})
    run = run_playbook(write_playbook(tmp_path, tasks))
    for name, (_bad, message) in cases.items():
        res = run.result(name)
        assert res['_event'] == 'runner_on_failed' and message in res['msg'], res['msg']
        assert pg_cluster.primary.password not in json.dumps(res)
