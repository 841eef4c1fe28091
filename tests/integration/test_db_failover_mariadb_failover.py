"""db_failover engine=mariadb, unplanned: failover after kill -9 picks the replica holding the most GTIDs and
repoints the other; the old primary, restarted writable, is fenced by a re-run (a write through an application
login is refused); rejoin makes it a GTID replica again. Then a failover with the primary still reachable (its
replicas cut off) fences it first and counts the transactions lost (RPO); rejoining it is refused for exactly
those errant transactions, in check mode too, and changes nothing.

HAProxy (a throw-away one in front of the cluster) is repointed by db_endpoint
right after the failover, in the same play, and a client connecting through it reaches the new primary.

One 3-node cluster for the whole story (about 30 s of the layer's time on an idle machine)."""

from __future__ import annotations

import os
import tempfile
import time

import pytest

from tests.harness.haproxy import Haproxy
from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.servers import MariaDBServer
from tests.integration import conftest_replication

maria_cluster_factory = conftest_replication.maria_cluster_factory


def failover_task(m, **args):
    args.update(engine='mariadb', replication_user=m.repl_user, replication_password=m.repl_password, timeout=30,
                nodes=[{'name': n.name, 'login_host': n.host, 'login_port': n.port, 'login_user': n.user,
                        'login_password': n.password} for n in m.nodes])
    return {'name': 'fo', 'register': 'fo', 'opsready.operations.db_failover': args}


def run(tmp_path, m, check=False, **args):
    book = write_playbook(tmp_path, [failover_task(m, **args)])
    return run_playbook(book, check=check).result('fo')


def client(node: MariaDBServer, port: int, user: str, password: str, sql: str):
    """``sql`` through a TCP connection to 127.0.0.1:``port`` as ``user`` (password in a 0600 option file)."""
    fd, path = tempfile.mkstemp(prefix='opsready-test-', suffix='.cnf')
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write('[client]\nuser=%s\npassword="%s"\nhost=127.0.0.1\nport=%d\nprotocol=TCP\n'
                         % (user, password, port))
        return node._run_client([node.bin('mariadb'), '--defaults-file=' + path, '-N', '-B', '-e', sql],
                                env=node._client_env(), input_text=None, timeout=30, check=False)
    finally:
        os.unlink(path)


def server_id_through(proxy: Haproxy, node: MariaDBServer) -> str:
    """@@server_id of the server a new client connection through HAProxy reaches."""
    res = client(node, proxy.port, node.user, node.password, 'SELECT @@server_id')
    return res.stdout.strip() if res.returncode == 0 else 'error: ' + res.stderr.strip()


def one(node, sql):
    return node.sql(sql)[0][0]


def wait_count(node, expect, table='fo.t'):
    deadline = time.monotonic() + 30
    while one(node, 'SELECT count(*) FROM %s' % table) != expect:
        assert time.monotonic() < deadline, '%s did not reach %s rows' % (node.name, expect)
        time.sleep(0.05)


def app_write(node: MariaDBServer, value: int):
    """An INSERT through the application login (no SUPER / READ ONLY ADMIN: read_only applies to it)."""
    return client(node, node.port, 'app', 'App-pw1', 'INSERT INTO fo.t VALUES (%d)' % value)


@pytest.fixture
def cluster(maria_cluster_factory):
    m = maria_cluster_factory(replicas=2)
    m.primary.sql("CREATE DATABASE fo; CREATE TABLE fo.t (id int primary key); INSERT INTO fo.t VALUES (1), (2);"
                  "CREATE USER app@'%' IDENTIFIED BY 'App-pw1'; GRANT SELECT, INSERT ON fo.* TO app@'%';")
    m.wait_replayed()
    proxy = Haproxy(m.primary).start()
    yield m, proxy
    proxy.stop()


def test_failover_fence_rejoin_and_errant_refusal(cluster, tmp_path):
    m, proxy = cluster
    primary, r1, r2 = m.primary, m.replicas[0], m.replicas[1]
    assert server_id_through(proxy, primary) == one(primary, 'SELECT @@server_id')
    # replica1 misses row 3, replica2 has it: replica2 is the most advanced
    m.stop_slave(r1, 'IO_THREAD')
    primary.sql('INSERT INTO fo.t VALUES (3)')
    m.wait_replayed([r2])
    primary.kill()

    plan = run(tmp_path, m, check=True, action='failover', primary='primary')
    assert plan['changed'] is True and plan['plan']['promote'] == 'replica2', plan
    assert plan['plan']['ranking']['best'] == ['replica2'] and plan['plan']['others_behind'] == {'replica1': 1}
    assert plan['fence']['fenced'] is False and plan['rpo_transactions'] is None
    assert one(r2, 'SELECT @@read_only') == '1' and m.slave_status(r2), 'check mode changed replica2'

    # the failover, then HAProxy's backend server repointed at whoever was promoted (validated, graceful reload)
    endpoint = {'name': 'ep', 'vars': {'ports': {n.name: n.port for n in m.nodes}},
                'opsready.operations.db_endpoint': {
                    'kind': 'haproxy', 'path': str(proxy.cfg), 'backend': 'db', 'entries': ['primary'],
                    'host': '127.0.0.1', 'port': '{{ ports[fo.promoted] }}', 'pid_file': str(proxy.pid_file),
                    'validate_command': [proxy.binary, '-c', '-f', '%s']}}
    play = run_playbook(write_playbook(tmp_path, [failover_task(m, action='failover', primary='primary'), endpoint]))
    done = play.result('fo')
    assert done['_event'] == 'runner_on_ok', done.get('msg')
    ep = play.result('ep')
    assert ep['_event'] == 'runner_on_ok' and ep['changed'] is True and ep['reload'] == 'signal', ep.get('msg')
    assert ':%d' % r2.port in proxy.cfg.read_text()
    # a client connecting through HAProxy now reaches the new primary (the new worker takes new connections)
    deadline = time.monotonic() + 15
    while server_id_through(proxy, r2) != one(r2, 'SELECT @@server_id'):
        assert time.monotonic() < deadline, server_id_through(proxy, r2)
        time.sleep(0.1)
    assert done['promoted'] == 'replica2' and done['repointed'] == ['replica1'] and done['fence']['state'] == \
        'unreachable'
    assert one(r2, 'SELECT @@read_only') == '0' and not m.slave_status(r2)
    wait_count(r1, '3')                      # replica1 follows replica2 and got row 3 from it
    r2.sql('INSERT INTO fo.t VALUES (4)')

    # the old primary comes back writable (MariaDB keeps no read_only over a restart): a re-run fences it
    primary.start()
    assert one(primary, 'SELECT @@read_only') == '0'
    again = run(tmp_path, m, action='failover', primary='primary')
    assert again['_event'] == 'runner_on_ok' and again['primary'] == 'replica2' and again['changed'] is True
    assert again['fence']['fenced'] is True and one(primary, 'SELECT @@read_only') == '1'
    refused_write = app_write(primary, 100)
    assert refused_write.returncode != 0 and '1290' in refused_write.stderr, refused_write.stderr  # fenced

    back = run(tmp_path, m, action='rejoin', node='primary', primary='replica2')
    assert back['_event'] == 'runner_on_ok' and back['changed'] is True, back.get('msg')
    wait_count(primary, '4')
    assert one(primary, 'SELECT @@read_only') == '1'
    assert run(tmp_path, m, action='rejoin', node='primary', primary='replica2')['changed'] is False

    # replica2 (now the primary) is cut off from its replicas and commits two more: a failover fences it (it is
    # reachable), promotes the first listed of the two equal replicas, and counts those two as lost
    m.stop_slave(primary, 'IO_THREAD')
    m.stop_slave(r1, 'IO_THREAD')
    r2.sql('INSERT INTO fo.t VALUES (5), (6); INSERT INTO fo.t VALUES (7)')
    cut = run(tmp_path, m, action='failover', primary='replica2')
    assert cut['_event'] == 'runner_on_ok', cut.get('msg')
    assert cut['promoted'] == 'primary' and cut['fence']['fenced'] is True and cut['rpo_transactions'] == 2, cut
    assert one(r2, 'SELECT @@read_only') == '1' and one(primary, 'SELECT @@read_only') == '0'
    primary.sql('INSERT INTO fo.t VALUES (8)')
    wait_count(r1, '5')

    # rejoining replica2 is refused for exactly those two errant transactions; check mode refuses too
    for check in (True, False):
        refused = run(tmp_path, m, check=check, action='rejoin', node='replica2', primary='primary')
        assert refused['_event'] == 'runner_on_failed', refused
        assert 'errant' in refused['msg'] and '2 transaction(s)' in refused['msg'] and 're-clone' in refused['msg']
        assert refused['errant'][0]['transactions'] == 2
    assert not m.slave_status(r2) and one(r2, 'SELECT count(*) FROM fo.t') == '7'
