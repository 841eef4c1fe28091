"""health_check's ``redis`` type through ansible-playbook against real redis-server instances (tests/harness/redis.py).

One health history across three playbook runs: a cache filled past maxmemory with allkeys-lru (first run: the
evictions since start; second run: the evictions since the first as a rate, then none in a run right after: no
finding), a cache with noeviction refusing writes (critical "Redis out of memory"), and the LRU cache restarted
between runs (its counters start from zero: reset, never a negative rate). The textfiles pass promtool.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.promtool import check_textfile
from tests.harness.redis import RedisServer


@pytest.fixture(scope='module')
def servers():
    started = []
    try:
        lru = RedisServer({'maxmemory': '2mb', 'maxmemory-policy': 'allkeys-lru'}).start()
        started.append(lru)
        full = RedisServer({'maxmemory': '2mb', 'maxmemory-policy': 'noeviction'}).start()
        started.append(full)
        yield lru, full
    finally:
        for server in started:
            server.stop()


def _pipe(server, count, prefix):
    """Writes through one connection; with noeviction some are refused (redis-cli --pipe exits non-zero)."""
    lines = ['SET %s:%d %s' % (prefix, i, 'v' * 100) for i in range(count)]
    return subprocess.run(server.cli_argv('--pipe'), env=server.env(), input=('\r\n'.join(lines) + '\r\n').encode(),
                          capture_output=True, timeout=60, check=False)


def _fill_and_free(server, count, prefix):
    """Writes past maxmemory (evictions), then FLUSHALL: the counters stay, and no command of a later run
    (even INFO, which makes Redis evict when it is over maxmemory) evicts again."""
    _pipe(server, count, prefix)
    server.cli('FLUSHALL')


def _evicted(server):
    return int([line for line in server.cli('INFO', 'stats').splitlines()
                if line.startswith('evicted_keys:')][0].split(':')[1])


def health(name, servers, tmp_path, **extra):
    lru, full = servers
    checks = [{'type': 'redis', 'name': 'cache', 'host': lru.host, 'port': lru.port, 'password': lru.password,
               'unit': 'redis-server'},
              {'type': 'redis', 'name': 'sessions', 'host': full.host, 'port': full.port, 'password': full.password}]
    args = {'checks': checks, 'metrics': [], 'fail_on': 'never', 'history_path': str(tmp_path / 'history.jsonl'),
            'textfile_path': str(tmp_path / 'health.prom')}
    task = {'name': name, 'opsready.operations.health_check': args, 'register': name.replace(' ', '_')}
    task.update(extra)
    return task


def by_check(result):
    found = {}
    for item in result['findings']:
        found.setdefault(item['check'], {})[item['condition']] = item
    return found, {c['name']: c for c in result['checks']}


def samples(textfile, name):
    text = check_textfile(textfile)
    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


def test_redis_check_rates_between_runs_noeviction_and_a_restart(servers, tmp_path):
    lru, full = servers
    _fill_and_free(lru, 30000, 'a')
    refused = _pipe(full, 30000, 'f')
    assert b'OOM' in refused.stdout + refused.stderr or refused.returncode != 0
    history = tmp_path / 'history.jsonl'

    # Run 1 (and a check-mode run before it, which writes no history): the evictions since Redis started.
    first = run_playbook(write_playbook(tmp_path, [health('predict', servers, tmp_path, check_mode=True),
                                                   health('first', servers, tmp_path)]))
    assert first.result('predict')['written'] == {}
    res = first.result('first')
    assert res['verdict'] == 'critical'
    found, checks = by_check(res)
    assert found['sessions']['redis_memory']['severity'] == 'critical'
    assert 'Redis out of memory' in found['sessions']['redis_memory']['message']
    evictions = found['cache']['redis_evictions']
    assert evictions['severity'] == 'warning' and 'since it started' in evictions['message']
    assert evictions['unit'] == 'redis-server'
    assert evictions['value'] == checks['cache']['redis']['facts']['evicted_keys'] > 0
    assert checks['cache']['redis']['facts']['since_previous'] is None
    assert len(history.read_text().splitlines()) == 1
    line = json.loads(history.read_text())
    assert set(line['db']) == {'redis@%s:%d' % (lru.host, lru.port), 'redis@%s:%d' % (full.host, full.port)}
    before = _evicted(lru)

    # Run 2: more writes evict more keys; counted since run 1, as a rate. A run right after evicted nothing.
    _fill_and_free(lru, 30000, 'b')
    more = _evicted(lru) - before
    assert more > 0
    second = run_playbook(write_playbook(tmp_path, [health('second', servers, tmp_path),
                                                    health('quiet', servers, tmp_path)]))
    found, checks = by_check(second.result('second'))
    change = checks['cache']['redis']['facts']['since_previous']
    assert change['deltas']['evicted_keys'] == more and change['reset'] == []
    assert change['rates']['evicted_keys'] == pytest.approx(more / change['interval_seconds'], rel=1e-3)
    evictions = found['cache']['redis_evictions']
    assert evictions['value'] == more and 'in the last' in evictions['message']
    assert evictions['rate_per_second'] == change['rates']['evicted_keys']
    # noeviction stays critical on every run: used_memory is at maxmemory, writes are refused.
    assert found['sessions']['redis_memory']['severity'] == 'critical'
    found, checks = by_check(second.result('quiet'))
    assert 'redis_evictions' not in found.get('cache', {}), found
    assert checks['cache']['redis']['facts']['since_previous']['deltas']['evicted_keys'] == 0
    rates = samples(tmp_path / 'health.prom', 'opsready_redis_rate_per_second')
    key = (('check', 'cache'), ('server', '%s:%d' % (lru.host, lru.port)), ('statistic', 'evicted_keys'))
    assert rates[key] == 0
    assert samples(tmp_path / 'health.prom', 'opsready_redis_verdict')[
        (('check', 'sessions'), ('server', '%s:%d' % (full.host, full.port)))] == 2

    # Run 3 after a restart of the LRU cache: its counters are lower than the history's; never a negative rate.
    lru.proc.terminate()
    lru.proc.wait(timeout=15)
    lru.start()
    _fill_and_free(lru, 20000, 'c')
    assert 0 < _evicted(lru) < before + more
    third = run_playbook(write_playbook(tmp_path, [health('restarted', servers, tmp_path)]))
    found, checks = by_check(third.result('restarted'))
    change = checks['cache']['redis']['facts']['since_previous']
    assert 'evicted_keys' in change['reset'], change
    assert change['deltas']['evicted_keys'] == _evicted(lru)
    assert all(v >= 0 for v in change['deltas'].values()) and all(v >= 0 for v in change['rates'].values())
    assert all(v >= 0 for v in samples(tmp_path / 'health.prom', 'opsready_redis_rate_per_second').values())
    assert found['cache']['redis_evictions']['value'] == _evicted(lru)
    assert len(history.read_text().splitlines()) == 4
    for server in (lru, full):
        assert server.password not in first.stdout + second.stdout + third.stdout
