"""Redis insights: verdicts at the threshold edges, INFO parsing, the textfile's conventions, argv hygiene."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import insights
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    RedisClient, RedisConnection, keyspace_keys, parse_info)
from tests.harness.promtool import check_metrics

TH = dict(insights.DEFAULT_THRESHOLDS)


def facts(**over):
    base = {'keys': 10, 'keyspace_hits': 0, 'keyspace_misses': 0, 'hit_ratio': None, 'used_memory_bytes': 100,
            'maxmemory_bytes': 0, 'memory_used_ratio': None, 'maxmemory_policy': 'noeviction', 'evicted_keys': 0,
            'oom_rejected_commands': 0, 'connected_clients': 1, 'blocked_clients': 0, 'maxclients': 100,
            'rejected_connections': 0, 'role': 'primary', 'replicas': [], 'master_link_status': None,
            'master_sync_in_progress': False, 'rdb_last_bgsave_status': 'ok', 'rdb_last_save_time': 1.7e9,
            'rdb_changes_since_last_save': 0, 'aof_enabled': False, 'aof_last_write_status': 'ok',
            'aof_last_bgrewrite_status': 'ok'}
    base.update(over)
    return base


def names(result):
    return [(f['name'], f['severity']) for f in result[1]]


def test_healthy_is_ok():
    assert insights.evaluate(facts(), TH) == ('ok', [])


@pytest.mark.parametrize('ratio, oom, expected', [
    (0.84, 0, []), (0.85, 0, [('memory', 'warning')]), (0.95, 0, [('memory', 'critical')]),
    (0.90, 3, [('memory', 'critical')]), (0.50, 3, []),
])
def test_noeviction_memory_edges(ratio, oom, expected):
    got = insights.evaluate(facts(maxmemory_bytes=1000, used_memory_bytes=int(ratio * 1000), memory_used_ratio=ratio,
                                  oom_rejected_commands=oom), TH)
    assert names(got) == expected
    if expected and expected[0][1] == 'critical':
        assert 'Redis out of memory' in got[1][0]['message']


def test_eviction_policy_full_is_not_oom_but_evictions_warn():
    got = insights.evaluate(facts(maxmemory_policy='allkeys-lru', memory_used_ratio=1.0, evicted_keys=5), TH)
    assert names(got) == [('evictions', 'warning')]
    assert insights.evaluate(facts(evicted_keys=5), dict(TH, evictions_warning=0))[0] == 'ok'


def test_clients_hit_ratio_replication_persistence():
    assert names(insights.evaluate(facts(connected_clients=80), TH)) == [('clients', 'warning')]
    assert names(insights.evaluate(facts(connected_clients=95), TH)) == [('clients', 'critical')]
    assert names(insights.evaluate(facts(keyspace_hits=790, keyspace_misses=210, hit_ratio=0.79), TH)) == \
        [('hit_ratio', 'warning')]
    assert names(insights.evaluate(facts(keyspace_hits=7, keyspace_misses=3, hit_ratio=0.7), TH)) == []
    assert names(insights.evaluate(facts(role='replica', master_link_status='down'), TH)) == \
        [('replication', 'critical')]
    assert names(insights.evaluate(facts(role='replica', master_link_status='up', replication_lag_seconds=10), TH)) \
        == [('replication', 'warning')]
    assert names(insights.evaluate(facts(rdb_last_bgsave_status='err'), TH)) == [('rdb', 'critical')]
    assert names(insights.evaluate(facts(aof_enabled=True, aof_last_write_status='err'), TH)) == [('aof', 'critical')]


def test_info_parsing():
    info = parse_info('# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb5:keys=4,expires=1,avg_ttl=9\r\n'
                      'errorstat_OOM:count=2\r\n')
    assert keyspace_keys(info) == 7


def test_textfile_passes_promtool_and_clamps_ratio():
    f = facts(maxmemory_bytes=1000, used_memory_bytes=1020, memory_used_ratio=1.02, hit_ratio=0.5,
              replicas=[{'address': '10.0.0.2:6379', 'state': 'online', 'lag_seconds': 1.0, 'lag_bytes': 0}])
    verdict, found = insights.evaluate(f, TH)
    text = insights.render_metrics('cache "a"', f, verdict, found, now=1.8e9)
    check_metrics(text)
    assert 'opsready_redis_memory_used_ratio{server="cache \\"a\\""} 1\n' in text  # clamped to 1
    check_metrics(insights.render_metrics('x', None, 'critical', [{'name': 'up', 'severity': 'critical'}]))


def test_password_never_in_argv():
    client = RedisClient(RedisConnection(password='s3cret-pw', username='app'))
    argv = client.argv('INFO')
    assert 's3cret-pw' not in ' '.join(argv) and '-a' not in argv
    assert client.env() == {'REDISCLI_AUTH': 's3cret-pw'}
