"""db_failover action=failover with max_loss: the allowed loss is judged before anything changes (round 9 of the DR
audit). An unplanned failover computed the old primary's WAL end (pg_waldump) only after it had promoted the
standby, so a standby far behind the dead primary was promoted whatever the loss, and the loss was learnt afterwards.
With ``max_loss`` (bytes) the failover, its check mode and plan refuse, changing nothing, when the most advanced
standby lacks more of the old primary's WAL than allowed, and the plan says how much (``loss_bytes``); the failover
role and playbook pass it on (failover_max_loss)."""

from __future__ import annotations

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.reaper import start_reaper
from tests.integration import conftest_replication
from tests.integration.test_db_failover import failover_task, node_vars, recovery

start_reaper()
pg_cluster_factory = conftest_replication.pg_cluster_factory


def run(tmp_path, cluster, check=False, **args):
    book = write_playbook(tmp_path, [dict(failover_task(cluster, **args), ignore_errors=True)])
    return run_playbook(book, check=check).result('failover')


def test_a_standby_lacking_more_than_max_loss_is_not_promoted(pg_cluster_factory, tmp_path):
    c = pg_cluster_factory(standbys=1, primary_conf={'synchronous_commit': 'on'})
    standby = c.standbys[0]
    c.primary.sql('CREATE TABLE kept AS SELECT 1 AS n')
    c.wait_replayed()
    c.stop_walreceiver(standby)
    c.primary.sql('CREATE TABLE unshipped AS SELECT g AS n FROM generate_series(1, 20000) g')
    c.primary.kill()
    for check in (True, False):
        res = run(tmp_path, c, check=check, action='failover', primary='primary', max_loss=0)
        assert res['_event'] == 'runner_on_failed' and 'max_loss' in res['msg'] and 'would be lost' in res['msg'], res
        assert res['loss_bytes'] > 100000, res
    res = run(tmp_path, c, action='plan', plan_for='failover', primary='primary', max_loss=0)
    assert res['_event'] == 'runner_on_failed' and 'would be lost' in res['msg'], res
    book = run_playbook('playbooks/failover.yml', extravars={
        'failover_nodes': [node_vars(n) for n in c.nodes], 'failover_primary': 'primary', 'failover_timeout': 30,
        'failover_max_loss': 0})
    assert book.rc != 0 and 'would be lost' in book.stdout, book.stdout[-3000:]
    assert recovery(standby)                                    # not promoted
    assert not (c.primary.datadir / 'standby.signal').exists()  # the old primary was not fenced either
    # allowed: the same loss within max_loss promotes, and rpo_bytes is the loss judged before
    res = run(tmp_path, c, action='failover', primary='primary', max_loss=64 * 1024 * 1024)
    assert res['_event'] == 'runner_on_ok' and res['promoted'] == standby.name, res.get('msg')
    assert res['plan']['loss_bytes'] == res['rpo_bytes'] > 100000, res
