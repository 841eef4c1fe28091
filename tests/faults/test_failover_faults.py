"""Fault matrix, failover (issue 17): the primary killed in a burst of commits, a standby whose WAL receiver was
stopped (its network cut), the candidate crashing while it is being promoted. Each case has its own PostgreSQL 15
primary + 2 standbys (tests/harness/replication.py); none is in the fast subset (a cluster start each)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import promote as pg_promote
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PsqlSession
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import node_specs
from tests.faults.helpers import play
from tests.harness.replication import poll
from tests.harness.reaper import start_reaper
from tests.integration import conftest_replication
from tests.integration.test_db_failover import failover_task, node_vars, recovery, writer_for

start_reaper()
pg_cluster_factory = conftest_replication.pg_cluster_factory


def lsn(text):
    hi, lo = text.split('/')
    return (int(hi, 16) << 32) + int(lo, 16)


def primaries(c):
    """The running nodes that take writes (the invariant: never more than one)."""
    return [n.name for n in c.nodes if n.is_running() and not recovery(n)]


def failover(tmp_path, c, fault, **args):
    return play(tmp_path, [failover_task(c, **args)], fault=fault).result('failover')


@pytest.mark.fault(fault='primary killed (kill -9) in a burst of commits', component='db_failover',
                   expected='the most advanced standby promoted, the old primary fenced (restarts as a standby), one '
                            'primary; acknowledged commits lost only with rpo_bytes > 0, the writer resumes')
def test_primary_killed_mid_burst(pg_cluster_factory, tmp_path, fault):
    # the harness's fast mode acknowledges commits before their WAL is written (synchronous_commit=off): a kill
    # would lose them on the primary itself. Durable local commits, asynchronous replication, as in production.
    c = pg_cluster_factory(standbys=2, primary_conf={'synchronous_commit': 'on'})
    fault.secret(c.primary.password)
    writer = writer_for(c)
    writer.create_table()
    writer.start()
    try:
        writer.wait_acks(200)
        c.primary.kill()
        res = failover(tmp_path, c, fault, action='failover', primary='primary')
        assert res['_event'] == 'runner_on_ok', res.get('msg')
        writer.wait_acks(20)                       # the writer's read-write multi-host conninfo finds the new one
    finally:
        writer.stop()
    positions = {n: lsn(p) for n, p in res['plan']['positions'].items()}
    assert positions[res['promoted']] == max(positions.values())
    new = c.node(res['promoted'])
    on_new = {int(r[0]) for r in new.sql('SELECT n FROM fo_writer')}
    lost = sorted(set(writer.acked) - on_new)
    fault.lost(commits=len(lost), of_commits=len(writer.acked))
    assert not lost or (res['rpo_bytes'] or 0) > 0, (lost[:5], res['rpo_bytes'])
    c.primary.start()
    assert recovery(c.primary) and primaries(c) == [new.name]
    fault.observed('%s promoted (most advanced), %d commits acknowledged, %d lost, rpo_bytes=%s; old primary '
                   'restarted as a standby' % (new.name, len(writer.acked), len(lost), res['rpo_bytes']))


@pytest.mark.fault(fault='one standby\'s WAL receiver stopped (network to it cut), then the primary killed',
                   component='db_failover',
                   expected='the streaming standby promoted (not the cut one), 0 rows lost, the cut standby '
                            'repointed and streaming from the new primary')
def test_cut_standby_is_not_promoted_and_follows(pg_cluster_factory, tmp_path, fault):
    c = pg_cluster_factory(standbys=2)
    fault.secret(c.primary.password)
    cut, good = c.standbys
    c.stop_walreceiver(cut)
    c.primary.sql('CREATE TABLE burst AS SELECT g AS n FROM generate_series(1, 5000) g')
    c.wait_replayed([good])
    c.primary.kill()
    res = failover(tmp_path, c, fault, action='failover', primary='primary')
    assert res['_event'] == 'runner_on_ok', res.get('msg')
    assert res['promoted'] == good.name and cut.name in res['repointed']
    rows = int(good.sql('SELECT count(*) FROM burst')[0][0])
    fault.lost(rows=5000 - rows, of_rows=5000)
    assert rows == 5000
    poll(lambda: c._one(cut, 'SELECT status FROM pg_stat_wal_receiver') == 'streaming', 30, 'the cut standby')
    poll(lambda: c._one(cut, "SELECT to_regclass('burst') IS NOT NULL") == 't', 30, 'the cut standby to catch up')
    assert primaries(c) == [good.name]
    fault.observed('%s promoted; %s (receiver stopped) repointed and streaming again; 0 of 5000 rows lost'
                   % (good.name, cut.name))


@pytest.mark.fault(fault='the candidate crashes (kill -9) as it is promoted', component='db_failover',
                   expected='the failover stops with the reason, the old primary stays fenced, no primary at all '
                            '(never two); a re-run promotes the other standby; the crashed one restarts as a standby')
def test_candidate_crash_during_promotion(pg_cluster_factory, tmp_path, fault, monkeypatch):
    c = pg_cluster_factory(standbys=2)
    fault.secret(c.primary.password)
    c.primary.sql('CREATE TABLE before_crash AS SELECT 1 AS n')
    c.wait_replayed()
    c.primary.kill()
    real_promote = pg_promote.PgNode.promote
    crashed = []

    def crash_then_promote(node, timeout):
        # the fault, injected at the step: the candidate's postmaster killed as pg_promote() is sent to it
        crashed.append(node.name)
        c.node(node.name).kill()
        return real_promote(node, timeout)

    monkeypatch.setattr(pg_promote.PgNode, 'promote', crash_then_promote)
    runner = ToolRunner(secrets=[c.primary.password])
    group = pg_promote.Group(node_specs([node_vars(n) for n in c.nodes]), runner, 10)
    with group, pytest.raises(OpsReadyError) as raised:
        pg_promote.failover(group, 'primary', None, False, False)
    monkeypatch.undo()
    fault.scan(raised.value.as_fail_kwargs(), where='failure')
    assert crashed and primaries(c) == []
    assert (c.primary.datadir / 'standby.signal').exists()           # the fence held
    res = failover(tmp_path, c, fault, action='failover', primary='primary')
    assert res['_event'] == 'runner_on_ok' and res['promoted'] != crashed[0], res.get('msg')
    c.node(crashed[0]).start()
    c.primary.start()
    assert primaries(c) == [res['promoted']]
    fault.lost(rows=0 if res['promoted'] and c.node(res['promoted']).sql('SELECT count(*) FROM before_crash')[0][0]
               == '1' else 1)
    fault.observed('promotion of %s failed (%s); 0 primaries meanwhile; re-run promoted %s; %s and the old primary '
                   'restarted as standbys' % (crashed[0], raised.value.message[:80], res['promoted'], crashed[0]))


@pytest.mark.parametrize('how', ['psql killed as the promotion is requested', 'backend terminated while polling'])
@pytest.mark.fault(fault='the session promoting the candidate dies mid-promotion (its psql killed as the request is '
                         'sent, or its backend terminated while the end of recovery is awaited), the candidate itself '
                         'alive', component='db_failover',
                   expected='the promotion is asked again on a new connection (promote if still in recovery, else '
                            'done): the candidate promoted once, the old primary fenced, exactly one primary')
def test_promoting_session_lost_mid_promotion(pg_cluster_factory, tmp_path, fault, monkeypatch, how):
    c = pg_cluster_factory(standbys=1)
    fault.secret(c.primary.password)
    c.primary.sql('CREATE TABLE before_loss AS SELECT 1 AS n')
    c.wait_replayed()
    c.primary.kill()
    real_query = PsqlSession.query
    lost = []

    def query(session, sql, **kw):
        if lost:
            return real_query(session, sql, **kw)
        if how.startswith('psql killed') and 'pg_promote(false)' in sql:
            os.kill(session.pid, signal.SIGKILL)
            session.proc.wait()
        elif how.startswith('backend terminated') and sql == pg_promote.PgNode.POLL_SQL:
            backend = real_query(session, 'SELECT pg_backend_pid()')[0][0]
            # pg_terminate_backend(pid, timeout) returns once the backend is gone (PostgreSQL 14+)
            c.standbys[0].sql('SELECT pg_terminate_backend(%s, 10000)' % backend, superuser=True)
        else:
            return real_query(session, sql, **kw)
        try:
            return real_query(session, sql, **kw)
        except OpsReadyError:
            lost.append(session.lost)      # the fault hit the query: the session ended under it
            raise

    monkeypatch.setattr(PsqlSession, 'query', query)
    group = pg_promote.Group(node_specs([node_vars(n) for n in c.nodes]), ToolRunner(secrets=[c.primary.password]),
                             10)
    with group:
        res = pg_promote.failover(group, 'primary', None, False, False)
    monkeypatch.undo()
    fault.scan(res, where='result')
    assert lost == [True], 'the fault did not hit the promotion: %r' % lost
    assert res['promoted'] == 'standby1' and primaries(c) == ['standby1']
    assert (c.primary.datadir / 'standby.signal').exists()           # the fence held
    assert c.standbys[0].sql('SELECT count(*) FROM before_loss')[0][0] == '1'
    c.primary.start()
    assert recovery(c.primary) and primaries(c) == ['standby1']
    fault.lost(rows=0)
    fault.observed('promoting session lost (%s); asked again on a new connection; standby1 promoted, the old '
                   'primary restarted as a standby; one primary' % how)


@pytest.mark.fault(fault='the candidate\'s postmaster alone is killed (kill -9) while it is being promoted; its '
                         'startup process and backends are left to notice', component='db_failover',
                   expected='never reported as promoted (a promotion counts only with a live postmaster after the end '
                            'of recovery): the failover stops with the reason, the old primary stays fenced, no '
                            'primary runs')
def test_candidate_postmaster_killed_mid_promotion(pg_cluster_factory, fault, monkeypatch):
    c = pg_cluster_factory(standbys=1)
    fault.secret(c.primary.password)
    c.wait_replayed()
    c.primary.kill()
    candidate = c.standbys[0]
    real_query = PsqlSession.query
    killed = []

    def query(session, sql, **kw):
        if 'pg_promote(' in sql and not killed:
            pid = int((candidate.datadir / 'postmaster.pid').read_text().split()[0])
            killed.append(pid)
            # the postmaster only (not its children): the startup process may still finish the promotion, and a
            # backend still answers queries until it waits for something
            timer = threading.Timer(0.01, os.kill, (pid, signal.SIGKILL))
            timer.start()
            try:
                return real_query(session, sql, **kw)
            finally:
                timer.join()
        return real_query(session, sql, **kw)

    monkeypatch.setattr(PsqlSession, 'query', query)
    group = pg_promote.Group(node_specs([node_vars(n) for n in c.nodes]), ToolRunner(secrets=[c.primary.password]),
                             10)
    with group, pytest.raises(OpsReadyError) as raised:
        pg_promote.failover(group, 'primary', None, False, False)
    monkeypatch.undo()
    fault.scan(raised.value.as_fail_kwargs(), where='failure')
    # no server runs at all (read from /proc, zombie-aware: the killed postmaster may not be reaped yet), so no primary
    assert killed and not [n for n in group.nodes.values() if n.is_running()]
    assert (c.primary.datadir / 'standby.signal').exists()           # the fence held
    fault.lost(rows=0)
    fault.observed('postmaster %d of %s killed during its promotion: failover stopped (%s); no primary; old primary '
                   'fenced' % (killed[0], candidate.name, raised.value.message[:100]))
