"""playbooks/failover_drill.yml on a real cluster behind a real PgBouncer: kill -9 of the primary under a writer,
measured RTO/RPO in the drill report and history; the switchover variant loses nothing."""

from __future__ import annotations

import json

from tests.harness.pgbouncer import Bouncer
from tests.harness.playbook import run_playbook
from tests.harness.reaper import start_reaper
from tests.integration import conftest_replication
from tests.integration.test_db_failover import node_vars, recovery

start_reaper()
pg_cluster_factory = conftest_replication.pg_cluster_factory


def test_failover_then_switchover_drill(pg_cluster_factory, tmp_path):
    c = pg_cluster_factory(standbys=2)
    bouncer = Bouncer(c.primary).start()
    reports = tmp_path / 'drills'
    try:
        extra = {'failover_nodes': [node_vars(n) for n in c.nodes], 'failover_primary': 'primary',
                 'failover_timeout': 30, 'failover_drill_report_dir': str(reports),
                 'failover_drill_writer': {'host': '127.0.0.1', 'port': bouncer.port, 'database': 'app',
                                           'database_on_node': 'postgres', 'user': bouncer.user,
                                           'password': bouncer.password, 'warmup': 100, 'after': 30},
                 'failover_drill_endpoint': {'path': str(bouncer.ini), 'entries': ['app']},
                 'failover_drill_objectives': {'rto_seconds': 30, 'rpo_seconds': 5}}
        run = run_playbook('playbooks/failover_drill.yml', extravars=extra)
        drill = run.result('Run the drill')
        assert drill['_event'] == 'runner_on_ok', drill.get('msg')
        m = drill['measured']
        promoted = c.node(m['promoted'])
        assert m['promoted'] in ('standby1', 'standby2') and not recovery(promoted)
        assert m['rto_seconds'] is not None and 0 < m['rto_seconds'] < 30
        # the drill's count of lost commits is the writer's: every reported lost row is absent on the new
        # primary, and every other acknowledged row is there.
        present = {int(r[0]) for r in promoted.sql('SELECT n FROM opsready_drill_writes')}
        lost = set(m['lost'])
        assert len(lost) == m['lost_commits'] and not (lost & present)
        assert m['acknowledged'] - m['lost_commits'] <= len({n for n in present if n <= m['max_acknowledged']})
        report = run.result('Report the drill')
        data = json.loads(open(report['paths']['json']).read())
        assert data['databases'][0]['measured']['lost_commits'] == m['lost_commits']
        assert data['databases'][0]['rto_seconds'] == m['rto_seconds']
        assert 'acknowledged commits' in open(report['paths']['markdown']).read()
        print('failover drill: RTO %.3f s, lost %d of %d, rpo_bytes %s'
              % (m['rto_seconds'], m['lost_commits'], m['acknowledged'], m['rpo_bytes']))

        # the switchover variant, from the promoted node back to the other standby: must lose nothing
        other = 'standby2' if m['promoted'] == 'standby1' else 'standby1'
        extra.update(failover_drill_mode='switchover', failover_primary=m['promoted'], failover_candidate=other,
                     failover_drill_objectives={'rto_seconds': 30, 'rpo_seconds': 5})
        sw = run_playbook('playbooks/failover_drill.yml', extravars=extra)
        res = sw.result('Run the drill')
        assert res['_event'] == 'runner_on_ok', res.get('msg')
        assert res['measured']['lost_commits'] == 0 and res['measured']['acknowledged'] > 100
        assert sw.result('Report the drill')['passed'] is True, sw.result('Report the drill')['reasons']
        assert sw.rc == 0
        history = (reports / 'drills.jsonl').read_text().splitlines()
        assert len(history) == 2
        print('switchover drill: longest write pause %.3f s, lost 0 of %d'
              % (res['measured']['rto_seconds'], res['measured']['acknowledged']))
    finally:
        bouncer.stop()
