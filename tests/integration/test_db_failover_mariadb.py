"""db_failover engine=mariadb: GTID switchover both ways through ansible-playbook, nothing lost, the demoted node
read_only and replicating; a candidate with a stopped IO thread is refused; check mode changes nothing."""

from __future__ import annotations

import time

from tests.harness.playbook import run_playbook, write_playbook
from tests.integration import conftest_replication

maria_cluster = conftest_replication.maria_cluster


def run(tmp_path, m, check=False, **args):
    args.update(engine='mariadb', replication_user=m.repl_user, replication_password=m.repl_password, timeout=30,
                nodes=[{'name': n.name, 'login_host': n.host, 'login_port': n.port, 'login_user': n.user,
                        'login_password': n.password} for n in m.nodes])
    book = write_playbook(tmp_path, [{'name': 'sw', 'opsready.operations.db_failover': args}])
    return run_playbook(book, check=check).result('sw')


def one(node, sql):
    return node.sql(sql)[0][0]


def wait_count(node, expect):
    deadline = time.monotonic() + 20
    while one(node, 'SELECT count(*) FROM fo.t') != expect:
        assert time.monotonic() < deadline, 'replication did not deliver %s rows' % expect
        time.sleep(0.05)


def test_mariadb_gtid_switchover_both_ways(maria_cluster, tmp_path):
    m = maria_cluster
    primary, replica = m.primary, m.replicas[0]
    primary.sql('CREATE DATABASE fo; CREATE TABLE fo.t (id int primary key); INSERT INTO fo.t VALUES (1), (2)')
    m.wait_replayed()
    checked = run(tmp_path, m, check=True, action='switchover', primary='primary', candidate='replica1')
    assert checked['changed'] is True and 'Would promote replica1' in checked['msg']
    assert one(primary, 'SELECT @@read_only') == '0' and one(replica, 'SELECT @@read_only') == '1'

    m.stop_slave(replica, 'IO_THREAD')
    refused = run(tmp_path, m, action='switchover', primary='primary', candidate='replica1')
    assert refused['_event'] == 'runner_on_failed' and 'does not replicate' in refused['msg']
    m.start_slave(replica, 'IO_THREAD')
    m.wait_replayed()

    there = run(tmp_path, m, action='switchover', primary='primary', candidate='replica1')
    assert there['_event'] == 'runner_on_ok', there.get('msg')
    assert one(replica, 'SELECT @@read_only') == '0' and one(primary, 'SELECT @@read_only') == '1'
    replica.sql('INSERT INTO fo.t VALUES (3)')
    wait_count(primary, '3')
    again = run(tmp_path, m, action='switchover', primary='primary', candidate='replica1')
    assert again['changed'] is False
    back = run(tmp_path, m, action='switchover', primary='replica1', candidate='primary')
    assert back['_event'] == 'runner_on_ok', back.get('msg')
    primary.sql('INSERT INTO fo.t VALUES (4)')
    wait_count(replica, '4')
    assert one(primary, 'SELECT @@read_only') == '0' and one(replica, 'SELECT @@read_only') == '1'
