"""The failover role through playbooks/switchover.yml and playbooks/failover.yml on a real cluster behind a real
PgBouncer: --check prints the plan and changes nothing; the real runs switch, fence, repoint, fire the hook."""

from __future__ import annotations

import json

from tests.harness.pgbouncer import Bouncer
from tests.harness.playbook import run_playbook
from tests.harness.reaper import start_reaper
from tests.integration import conftest_replication
from tests.integration.test_db_failover import node_vars, recovery

start_reaper()
pg_cluster_factory = conftest_replication.pg_cluster_factory


def test_switchover_and_failover_playbooks(pg_cluster_factory, tmp_path):
    c = pg_cluster_factory(standbys=1)
    bouncer = Bouncer(c.primary).start()
    try:
        hook = tmp_path / 'hook.env'
        extra = {'failover_nodes': [node_vars(n) for n in c.nodes], 'failover_primary': 'primary',
                 'failover_candidate': 'standby1', 'failover_timeout': 30,
                 'failover_endpoints': [{'path': str(bouncer.ini), 'entries': ['app']}],
                 'failover_hook_command': ['sh', '-c', 'env | grep ^OPSREADY_PRIMARY_ | sort > %s' % hook],
                 'failover_report_path': str(tmp_path / 'record.json')}
        ini = bouncer.ini.read_text()
        plan = run_playbook('playbooks/switchover.yml', extravars=extra, check=True)
        assert plan.rc == 0 and 'Would promote standby1' in plan.stdout
        assert not recovery(c.primary) and recovery(c.standbys[0]) and bouncer.ini.read_text() == ini
        assert not hook.exists()

        done = run_playbook('playbooks/switchover.yml', extravars=extra)
        assert done.rc == 0, done.stdout[-3000:]
        assert not recovery(c.standbys[0]) and recovery(c.primary)
        assert 'port=%d' % c.standbys[0].port in bouncer.ini.read_text()
        assert 'OPSREADY_PRIMARY_NAME=standby1' in hook.read_text()
        assert json.loads((tmp_path / 'record.json').read_text())['promoted'] == 'standby1'

        # now standby1 is lost: the failover playbook fences it and promotes the old primary back
        hook.unlink()
        c.standbys[0].kill()
        extra.update(failover_primary='standby1', failover_candidate='')
        down = run_playbook('playbooks/failover.yml', extravars=extra)
        assert down.rc == 0, down.stdout[-3000:]
        assert not recovery(c.primary)
        assert (c.standbys[0].datadir / 'standby.signal').exists()
        assert 'port=%d' % c.primary.port in bouncer.ini.read_text()
        assert 'OPSREADY_PRIMARY_NAME=primary' in hook.read_text()
    finally:
        bouncer.stop()
