"""redis_insights through ansible-playbook against real redis-server instances (tests/harness/redis.py).

Induced conditions: a cache filled past maxmemory with allkeys-lru (evictions counted: warning), the same with
noeviction (writes refused: critical "Redis out of memory"), maxclients reached (rejected connections, the
pool exhausted). One playbook run covers them all; the textfiles pass promtool.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.promtool import check_textfile
from tests.harness.redis import RedisServer


def series(textfile, name):
    text = check_textfile(textfile)
    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


def one(textfile, name):
    values = list(series(textfile, name).values())
    assert len(values) == 1, (name, values)
    return values[0]


def task(name, server, textfile=None, **extra):
    args = {'host': server.host, 'port': server.port, 'password': server.password}
    if textfile:
        args['textfile_path'] = str(textfile)
    args.update(extra)
    return {'name': name, 'opsready.operations.redis_insights': args, 'register': name.replace(' ', '_')}


@pytest.fixture(scope='module')
def servers():
    started = []
    try:
        lru = RedisServer({'maxmemory': '3mb', 'maxmemory-policy': 'allkeys-lru'}).start()
        started.append(lru)
        full = RedisServer({'maxmemory': '3mb', 'maxmemory-policy': 'noeviction'}).start()
        started.append(full)
        clients = RedisServer({'maxclients': '8'}).start()
        started.append(clients)
        yield lru, full, clients
    finally:
        for server in started:
            server.stop()


def _pipe(server, count, prefix):
    """Writes through one connection; with noeviction some are refused (redis-cli --pipe exits non-zero)."""
    lines = ['SET %s:%d %s' % (prefix, i, 'v' * 100) for i in range(count)]
    return subprocess.run(server.cli_argv('--pipe'), env=server.env(), input=('\r\n'.join(lines) + '\r\n').encode(),
                          capture_output=True, timeout=60, check=False)


def _hold_connections(server, count):
    socks = []
    for _index in range(count):
        s = socket.create_connection((server.host, server.port), timeout=5)
        socks.append(s)
    return socks


def test_redis_insights_induced_conditions(servers, tmp_path):
    lru, full, clients = servers
    _pipe(lru, 40000, 'lru')
    refused = _pipe(full, 40000, 'full')
    assert b'OOM' in refused.stdout + refused.stderr or refused.returncode != 0
    for i in range(50):
        lru.cli('GET', 'lru:%d' % i)            # hits or misses: which keys the approximate LRU kept is chance
    # One certain hit (a key just written is the most recent: kept) and one certain miss (a key never written):
    # reading only the first keys gave no hit at all once in CI (every one of them evicted).
    lru.cli('SET', 'lru:fresh', 'x')
    lru.cli('GET', 'lru:fresh')
    lru.cli('GET', 'lru:never-written')
    # maxclients 8: hold 10 sockets (2 refused by the server), wait until it counted them, keep 7 open so the
    # module's own connection is the 8th: the pool is exhausted (critical) and connections were rejected.
    held = _hold_connections(clients, 10)
    for s in held[8:]:
        # The server accepts, answers the error and closes: reading it proves the refusal was counted.
        assert b'max number of clients reached' in s.recv(200)
    for s in held[7:]:
        s.close()
    files = {n: tmp_path / ('%s.prom' % n) for n in ('lru', 'full', 'clients')}
    wrong = task('wrong password', lru)
    wrong['opsready.operations.redis_insights']['password'] = 'not-' + lru.password
    wrong['ignore_errors'] = True
    tasks = [task('lru', lru, files['lru']), task('full', full, files['full']),
             task('clients', clients, files['clients']),
             dict(task('lru again', lru, files['lru']), check_mode=True),
             task('fail on critical', full, fail_on='critical'), wrong]
    tasks[4]['ignore_errors'] = True
    run = run_playbook(write_playbook(tmp_path, tasks), diff=True)
    for s in held[:7]:
        s.close()

    res = run.result('lru')
    assert res['verdict'] == 'warning', res['findings']
    assert res['facts']['evicted_keys'] > 0 and res['facts']['maxmemory_policy'] == 'allkeys-lru'
    assert [f['name'] for f in res['findings']] == ['evictions'], res['findings']
    assert res['changed'] is True and res['diff']['after'].startswith('# HELP')
    assert one(files['lru'], 'opsready_redis_evicted_keys_total') == res['facts']['evicted_keys']
    assert one(files['lru'], 'opsready_redis_verdict') == 1
    assert 0 < one(files['lru'], 'opsready_redis_hit_ratio') < 1
    assert one(files['lru'], 'opsready_redis_memory_used_ratio') > 0.5
    # Check mode predicts (used memory and evictions move on a full LRU cache) and leaves the file alone.
    again = run.result('lru again')
    assert again['changed'] is True and again['diff']['before'] == res['diff']['after']
    assert files['lru'].read_text() == res['diff']['after']

    res = run.result('full')
    assert res['verdict'] == 'critical'
    assert res['findings'][0]['name'] == 'memory' and 'Redis out of memory' in res['findings'][0]['message']
    assert res['facts']['oom_rejected_commands'] > 0 and res['facts']['evicted_keys'] == 0
    assert one(files['full'], 'opsready_redis_finding_severity') == 2
    assert one(files['full'], 'opsready_redis_oom_rejected_commands_total') > 0
    failed = run.result('fail on critical')
    assert failed['_event'] == 'runner_on_failed' and 'Redis out of memory' in failed['msg']

    res = run.result('clients')
    names = {f['name']: f for f in res['findings']}
    assert res['facts']['rejected_connections'] == 2 and res['facts']['maxclients'] == 8
    assert names['clients']['severity'] == 'critical' and 'exhausted' in names['clients']['message']
    assert names['rejected_connections']['severity'] == 'warning'
    assert one(files['clients'], 'opsready_redis_rejected_connections_total') == 2
    assert one(files['clients'], 'opsready_redis_clients_max') == 8

    bad = run.result('wrong password')
    assert bad['_event'] == 'runner_on_failed' and 'refused the credentials' in bad['msg']
    assert lru.password not in run.stdout


def test_redis_insights_replication(tmp_path):
    """A real replica: role, link and lag from both ends; the primary gone -> the replica's link is down (critical)."""
    primary = RedisServer().start()
    replica = None
    try:
        replica = RedisServer({'replicaof': '%s %d' % (primary.host, primary.port), 'masterauth': primary.password},
                              password=primary.password).start()
        primary.fill(100)
        deadline = time.monotonic() + 20
        while 'master_link_status:up' not in replica.cli('INFO', 'replication') and time.monotonic() < deadline:
            time.sleep(0.05)
        tasks = [task('primary', primary, tmp_path / 'primary.prom'),
                 task('replica', replica, tmp_path / 'replica.prom')]
        up = run_playbook(write_playbook(tmp_path, tasks))
        res = up.result('primary')
        assert res['facts']['role'] == 'primary' and len(res['facts']['replicas']) == 1, res['facts']
        assert res['verdict'] == 'ok', res['findings']
        assert one(tmp_path / 'primary.prom', 'opsready_redis_replicas') == 1
        res = up.result('replica')
        assert res['facts']['role'] == 'replica' and res['facts']['master_link_status'] == 'up'
        assert res['verdict'] == 'ok' and one(tmp_path / 'replica.prom', 'opsready_redis_is_primary') == 0

        primary.stop()
        down = run_playbook(write_playbook(tmp_path, [task('replica', replica)]))
        res = down.result('replica')
        assert res['verdict'] == 'critical' and res['findings'][0]['name'] == 'replication', res['findings']
        assert 'link to its primary is down' in res['findings'][0]['message']
    finally:
        primary.stop()
        if replica is not None:
            replica.stop()
