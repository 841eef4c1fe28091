"""db_failover against real PostgreSQL 15 streaming replication (primary + 2 standbys on loopback).

Every action runs through ansible-playbook. The module-scoped cluster is shared by the tests in order: the plan and
refusals first, then switchover both ways under a writer, then the kill -9 failover, fencing and rejoin.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.harness.pg_writer import PgWriter
from tests.harness.playbook import REPO, run_playbook, write_playbook
from tests.harness.reaper import start_reaper
from tests.integration import conftest_replication

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import promote  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (  # noqa: E402
    PsqlSession)
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import node_specs  # noqa: E402

start_reaper()
# The fixtures, registered for this module (conftest_replication is not a conftest pytest loads by itself).
pg_cluster = conftest_replication.pg_cluster
pg_cluster_factory = conftest_replication.pg_cluster_factory


def node_vars(node):
    return {'name': node.name, 'login_host': node.host, 'login_port': node.port, 'login_user': node.user,
            'login_password': node.password, 'data_dir': str(node.datadir), 'connect_timeout': 2,
            'start_options': '-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s'
                             % (node.port, node.socket_dir)}


def failover_task(cluster, order=None, **args):
    nodes = [cluster.node(n) for n in order] if order else cluster.nodes
    args.setdefault('timeout', 30)
    args['nodes'] = [node_vars(n) for n in nodes]
    return {'name': 'failover', 'opsready.operations.db_failover': args, 'register': 'out'}


def run(tmp_path, cluster, check=False, order=None, **args):
    book = write_playbook(tmp_path, [failover_task(cluster, order, **args)])
    result = run_playbook(book, check=check)
    return result, result.result('failover')


def recovery(node) -> bool:
    return node.sql('SELECT pg_is_in_recovery()')[0][0] == 't'


def writer_for(cluster) -> PgWriter:
    hosts = ','.join(n.host for n in cluster.nodes)
    ports = ','.join(str(n.port) for n in cluster.nodes)
    conninfo = ('host=%s port=%s user=%s dbname=postgres target_session_attrs=read-write sslmode=disable'
                % (hosts, ports, cluster.primary.user))
    return PgWriter(cluster.primary.bin('psql'), conninfo, cluster.primary.password)


def test_plan_and_check_mode_change_nothing(pg_cluster, tmp_path):
    c = pg_cluster
    _run, plan = run(tmp_path, c, action='plan', plan_for='switchover', primary='primary', candidate='standby1')
    assert plan['_event'] == 'runner_on_ok' and plan['changed'] is False
    assert plan['plan']['promote'] == 'standby1' and plan['plan']['demote'] == 'primary'
    assert {n['name']: n['role'] for n in plan['nodes']} == {'primary': 'primary', 'standby1': 'standby',
                                                             'standby2': 'standby'}
    _run, fplan = run(tmp_path, c, action='plan', plan_for='failover', primary='primary')
    assert fplan['_event'] == 'runner_on_failed' and 'is up and is a primary' in fplan['msg']
    _run, checked = run(tmp_path, c, check=True, action='switchover', primary='primary', candidate='standby1')
    assert checked['_event'] == 'runner_on_ok' and checked['changed'] is True
    assert 'Would promote standby1' in checked['msg']
    assert not recovery(c.primary) and recovery(c.standbys[0]) and recovery(c.standbys[1])
    assert not os.path.exists(c.primary.datadir / 'standby.signal')


def test_lagging_candidate_is_refused(pg_cluster, tmp_path):
    c = pg_cluster
    c.pause_replay(c.standbys[1])
    try:
        c.generate_wal(2 << 20)
        _run, out = run(tmp_path, c, action='switchover', primary='primary', candidate='standby2', max_lag=1 << 20)
        assert out['_event'] == 'runner_on_failed'
        assert 'lags' in out['msg'] and 'Nothing was changed' in out['msg'] and out['lag_bytes'] > 1 << 20
        assert not recovery(c.primary) and recovery(c.standbys[1])
    finally:
        c.resume_replay(c.standbys[1])
    c.wait_replayed()


def test_switchover_both_ways_under_a_writer_loses_nothing(pg_cluster, tmp_path):
    c = pg_cluster
    writer = writer_for(c)
    writer.create_table()
    writer.start()
    try:
        writer.wait_acks(50)
        _run, there = run(tmp_path, c, action='switchover', primary='primary', candidate='standby1')
        assert there['_event'] == 'runner_on_ok', there.get('msg')
        assert there['changed'] is True and there['promoted'] == 'standby1'
        assert not recovery(c.standbys[0]) and recovery(c.primary) and recovery(c.standbys[1])
        writer.wait_acks(50)
        _run, again = run(tmp_path, c, action='switchover', primary='primary', candidate='standby1')
        assert again['changed'] is False          # idempotent: already done
        _run, back = run(tmp_path, c, action='switchover', primary='standby1', candidate='primary')
        assert back['_event'] == 'runner_on_ok', back.get('msg')
        writer.wait_acks(50)
    finally:
        writer.stop()
    assert not recovery(c.primary) and recovery(c.standbys[0]) and recovery(c.standbys[1])
    present = {int(r[0]) for r in c.primary.sql('SELECT n FROM fo_writer')}
    lost = sorted(set(writer.acked) - present)
    assert lost == [], 'acknowledged rows lost in the switchovers: %s' % lost[:20]
    assert writer.reconnects >= 2
    c.wait_replayed()
    for standby in c.standbys:
        assert standby.sql('SELECT count(*) FROM fo_writer') == c.primary.sql('SELECT count(*) FROM fo_writer')


def test_failover_after_kill9_promotes_most_advanced_fences_and_rejoins(pg_cluster, tmp_path):
    c = pg_cluster
    s1, s2 = c.standbys
    c.primary.sql('CREATE TABLE fo_fail (n int)')
    c.wait_replayed()
    c.stop_walreceiver(s2)                      # standby2 falls behind
    c.primary.sql('INSERT INTO fo_fail SELECT generate_series(1, 100)')
    c.wait_replayed([s1])
    c.stop_walreceiver(s1)                      # the primary then writes what no standby gets: it diverges
    c.primary.sql('INSERT INTO fo_fail SELECT generate_series(101, 200)')
    c.primary.sql('CHECKPOINT')
    c.primary.kill()
    # standby2 is listed first: the preference order must not win over the WAL position.
    order = ['primary', 'standby2', 'standby1']
    _run, plan = run(tmp_path, c, order=order, action='plan', plan_for='failover', primary='primary')
    assert plan['plan']['promote'] == 'standby1' and plan['changed'] is False
    assert recovery(s1)
    _run, out = run(tmp_path, c, order=order, action='failover', primary='primary')
    assert out['_event'] == 'runner_on_ok', out.get('msg')
    assert out['promoted'] == 'standby1' and out['fence']['state'] == 'marked'
    assert out['rpo_bytes'] > 0
    assert not recovery(s1)
    assert s1.sql('SELECT count(*) FROM fo_fail') == [('100',)]
    # standby2 follows the new primary
    s1.sql('INSERT INTO fo_fail VALUES (1000)')
    deadline = time.monotonic() + 60   # a loaded CI host: the follower restarts its walreceiver (retry interval 5 s)
    while s2.sql('SELECT count(*) FROM fo_fail WHERE n = 1000') != [('1',)]:
        assert time.monotonic() < deadline, 'standby2 does not follow standby1'
        time.sleep(0.05)
    # Fencing: the old primary, restarted, refuses writes.
    assert (c.primary.datadir / 'standby.signal').exists()
    c.primary.start()
    assert recovery(c.primary)
    res = c.primary._run_client([c.primary.bin('psql'), '-X', '-c', 'INSERT INTO fo_fail VALUES (-1)'],
                                env=c.primary.dsn_env(), input_text=None, timeout=30, check=False)
    assert res.returncode != 0 and 'read-only transaction' in res.stderr, res.stderr
    # A re-run does not promote anyone else.
    _run, rerun = run(tmp_path, c, order=order, action='failover', primary='primary')
    assert rerun['_event'] == 'runner_on_ok' and rerun['promoted'] is None and rerun['primary'] == 'standby1'
    # Rejoin with pg_rewind: the old primary's extra rows are gone, it streams from standby1.
    _run, rejoined = run(tmp_path, c, action='rejoin', node='primary', primary='standby1')
    assert rejoined['_event'] == 'runner_on_ok', rejoined.get('msg')
    assert rejoined['changed'] is True and rejoined['rewound'] is True
    assert recovery(c.primary)
    s1.sql('INSERT INTO fo_fail VALUES (2000)')
    deadline = time.monotonic() + 60
    while c.primary.sql('SELECT count(*) FROM fo_fail WHERE n = 2000') != [('1',)]:
        assert time.monotonic() < deadline, 'rejoined node does not replay'
        time.sleep(0.05)
    assert c.primary.sql('SELECT count(*) FROM fo_fail WHERE n > 100 AND n < 1000') == [('0',)]
    assert not (c.primary.datadir / 'opsready_fence.json').exists()
    _run, again = run(tmp_path, c, action='rejoin', node='primary', primary='standby1')
    assert again['changed'] is False


def test_candidate_crashing_during_promotion_never_makes_two_primaries(pg_cluster_factory, tmp_path):
    c = pg_cluster_factory(standbys=1)
    cand = c.standbys[0]
    # The candidate's postmaster is SIGKILLed by its own end-of-recovery command: it dies mid-promotion.
    cand.sql("ALTER SYSTEM SET recovery_end_command = 'kill -9 $(head -1 %s/postmaster.pid)'" % cand.datadir,
             superuser=True)
    cand.sql('SELECT pg_reload_conf()', superuser=True)
    c.wait_replayed()
    _run, out = run(tmp_path, c, action='switchover', primary='primary', candidate='standby1', timeout=15)
    assert out['_event'] == 'runner_on_failed'
    assert 'stopped safely' in out['msg'], out['msg']
    assert not c.primary.is_running()
    assert (c.primary.datadir / 'standby.signal').exists()
    # Whatever the candidate does when it comes back, the old primary can only come back read-only.
    cand.start()
    c.primary.start()
    primaries = [n.name for n in c.nodes if not recovery(n)]
    assert len(primaries) <= 1 and 'primary' not in primaries, primaries


def primaries_of(cluster):
    """The running nodes that take writes (the invariant: never more than one)."""
    return [n.name for n in cluster.nodes if n.is_running() and not recovery(n)]


def test_a_down_former_primary_blocks_a_second_promotion(pg_cluster_factory, tmp_path):
    """A failover done, then its new primary crashes, then the old job runs again (primary=the first primary): the
    crashed node's data directory says "in production" without standby.signal, so promoting the other standby
    would make two primaries the moment it restarts."""
    c = pg_cluster_factory(standbys=2)
    c.primary.sql('CREATE TABLE fo_twice AS SELECT 1 AS n')
    c.wait_replayed()
    c.primary.kill()
    _run, first = run(tmp_path, c, action='failover', primary='primary')
    assert first['_event'] == 'runner_on_ok', first.get('msg')
    promoted = c.node(first['promoted'])
    other = [n for n in c.standbys if n.name != promoted.name][0]
    promoted.sql('INSERT INTO fo_twice VALUES (2)')
    promoted.kill()
    _run, planned = run(tmp_path, c, action='plan', plan_for='failover', primary='primary')
    assert planned['_event'] == 'runner_on_failed' and planned['refused'] == promoted.name, planned.get('msg')
    _run, again = run(tmp_path, c, action='failover', primary='primary')
    assert again['_event'] == 'runner_on_failed'
    assert again['refused'] == promoted.name and 'last ran as a primary' in again['msg'], again['msg']
    assert 'primary=%s' % promoted.name in again['msg']
    assert recovery(other)                                     # nothing was promoted
    # What the message says to do: fail over from the node that really failed.
    _run, right = run(tmp_path, c, action='failover', primary=promoted.name)
    assert right['_event'] == 'runner_on_ok', right.get('msg')
    assert right['promoted'] == other.name and (promoted.datadir / 'standby.signal').exists()
    promoted.start()
    c.primary.start()
    assert primaries_of(c) == [other.name]


def test_candidate_dying_after_its_promotion_is_fenced(pg_cluster_factory, tmp_path, monkeypatch):
    """The candidate's server dies right after its recovery ended (standby.signal already gone) and before the
    module saw it alive: the failover fails, and the candidate must not be able to restart as a primary beside the
    standby a re-run promotes."""
    c = pg_cluster_factory(standbys=2)
    c.wait_replayed()
    c.primary.kill()
    real_query = PsqlSession.query
    killed = []

    def query(session, sql, **kw):
        if sql == promote.PgNode.ALIVE_SQL and not killed:
            # recovery has ended (the poll said so): the whole server crashes now
            name = [n.name for n in c.standbys if not n.is_running() or not recovery(n)][0]
            killed.append(name)
            c.node(name).kill()
        return real_query(session, sql, **kw)

    monkeypatch.setattr(PsqlSession, 'query', query)
    group = promote.Group(node_specs([node_vars(n) for n in c.nodes]), ToolRunner(secrets=[c.primary.password]), 10)
    with group, pytest.raises(OpsReadyError) as raised:
        promote.failover(group, 'primary', None, False, False)
    monkeypatch.undo()
    assert killed, 'the fault did not hit the promotion'
    crashed = c.node(killed[0])
    details = raised.value.details
    assert details['candidate_fence']['state'] == 'marked', raised.value.message
    assert 'fenced too' in raised.value.message
    assert (crashed.datadir / 'standby.signal').exists() and (c.primary.datadir / 'standby.signal').exists()
    _run, rerun = run(tmp_path, c, action='failover', primary='primary')
    assert rerun['_event'] == 'runner_on_ok', rerun.get('msg')
    assert rerun['promoted'] not in (None, crashed.name)
    crashed.start()
    c.primary.start()
    assert primaries_of(c) == [rerun['promoted']]
