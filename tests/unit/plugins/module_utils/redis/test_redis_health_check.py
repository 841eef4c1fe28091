"""The health_check ``redis`` type: options, validation, counters between runs (rates, restarts), findings,
the textfile, and the module's documentation of the options."""

from __future__ import annotations

import ast
import os

import pytest
import yaml

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import insights
from ansible_collections.opsready.operations.plugins.module_utils.health import assess, checks, history, prometheus
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import health as redis_check
from ansible_collections.opsready.operations.plugins.module_utils.insights import deltas
from tests.harness.promtool import check_metrics

TH = dict(insights.DEFAULT_THRESHOLDS)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..'))


def facts(**over):
    base = {'keys': 10, 'keyspace_hits': 0, 'keyspace_misses': 0, 'hit_ratio': None, 'used_memory_bytes': 100,
            'maxmemory_bytes': 1000, 'memory_used_ratio': 0.1, 'maxmemory_policy': 'allkeys-lru', 'evicted_keys': 0,
            'oom_rejected_commands': 0, 'connected_clients': 1, 'blocked_clients': 0, 'maxclients': 100,
            'rejected_connections': 0, 'role': 'primary', 'replicas': [], 'master_link_status': None,
            'master_sync_in_progress': False, 'rdb_last_bgsave_status': 'ok', 'rdb_last_save_time': 1.7e9,
            'rdb_changes_since_last_save': 0, 'aof_enabled': False, 'aof_last_write_status': 'ok',
            'aof_last_bgrewrite_status': 'ok', 'run_id': 'a' * 40, 'uptime_seconds': 86400}
    base.update(over)
    return base


def test_the_type_is_registered_with_the_shared_option_spellings():
    assert checks.REGISTRY['redis'].__class__ is redis_check.RedisCheck
    merged = checks.suboptions()
    assert 'redis' in merged['type']['choices'] and merged['redis_thresholds'] == {'type': 'dict'}
    spec = checks.normalise([{'type': 'redis'}])[0]
    assert spec['name'] == 'redis:127.0.0.1:6379'
    assert checks.normalise([{'type': 'redis', 'unix_socket': '/run/redis/redis.sock'}])[0]['name'] == \
        'redis:/run/redis/redis.sock'


@pytest.mark.parametrize('spec, message', [
    ({'redis_thresholds': {'evictions': 1}}, 'Unknown Redis threshold'),
    ({'redis_thresholds': {'memory_warning': 'lots'}}, 'must be a number'),
    ({'host': 'h', 'unix_socket': '/s'}, 'mutually exclusive'),
    ({'ca_path': '/ca.pem'}, 'only with tls'),
    ({'engine': 'postgresql'}, 'does not apply to redis checks'),
])
def test_bad_specs_are_refused_before_anything_runs(spec, message):
    with pytest.raises(OpsReadyError, match=message):
        checks.normalise([dict(spec, type='redis')])


def test_the_health_run_hands_its_history_to_redis_checks(tmp_path):
    path = str(tmp_path / 'h.jsonl')
    plan = assess.Plan(checks=[{'type': 'redis'}], metrics=[], history_path=path)
    assert plan.checks[0]['_history_path'] == path


def test_an_unreachable_redis_is_a_redis_connection_finding_without_the_password():
    plan = assess.Plan(checks=[{'type': 'redis', 'port': 1, 'password': 'pw-secret-9', 'timeout': 2}], metrics=[])
    result = assess.run(plan)
    assert result['verdict'] == 'critical'
    assert result['findings'][0]['condition'] == 'redis_connection'
    assert 'Cannot connect to Redis' in result['findings'][0]['message']
    assert 'pw-secret-9' not in repr(result)


def test_deltas_become_rates_and_the_interval_judges_evictions():
    prev = (1000.0, insights.counters(facts(evicted_keys=500, keyspace_hits=100, keyspace_misses=0)))
    now = facts(evicted_keys=800, keyspace_hits=1100, keyspace_misses=9000)
    change = insights.apply_change(now, prev, 1060.0)
    assert change['deltas']['evicted_keys'] == 300 and change['rates']['evicted_keys'] == 5.0
    assert change['reset'] == []
    assert now['interval_lookups'] == 10000 and now['interval_hit_ratio'] == pytest.approx(0.1)
    verdict, found = insights.evaluate(now, TH)
    by = {f['name']: f for f in found}
    assert by['evictions']['value'] == 300 and by['evictions']['rate_per_second'] == 5.0
    assert 'in the last 60s (5/s)' in by['evictions']['message']
    assert by['hit_ratio']['value'] == pytest.approx(0.1) and 'in the last 60s' in by['hit_ratio']['message']
    # No eviction since the previous run: no finding, although the server evicted 800 keys since it started.
    quiet = facts(evicted_keys=800, keyspace_hits=1100, keyspace_misses=9000)
    insights.apply_change(quiet, (1060.0, insights.counters(now)), 1120.0)
    assert insights.evaluate(quiet, TH) == ('ok', [])
    # The first run has no interval: judged since the start, as redis_insights does.
    first = facts(evicted_keys=800)
    assert insights.apply_change(first, None, 1000.0) == {} and first['since_previous'] is None
    assert 'since it started' in insights.evaluate(first, TH)[1][0]['message']


@pytest.mark.parametrize('before, after, how', [
    # Restarted and evicted less than before: the counter went down.
    ({'evicted_keys': 900}, {'evicted_keys': 40, 'run_id': 'b' * 40}, 'lower'),
    # Restarted and evicted more than before: only the run_id tells; 1000-900 would be a small wrong delta.
    ({'evicted_keys': 900}, {'evicted_keys': 1000, 'run_id': 'b' * 40}, 'run_id'),
    # An old sample without run_id: the uptime, shorter than the interval, tells.
    ({'evicted_keys': 900, 'run_id': None}, {'evicted_keys': 1000, 'uptime_seconds': 30}, 'uptime'),
])
def test_a_restart_counts_from_zero_never_negative(before, after, how):
    prev = (1000.0, insights.counters(facts(**before)))
    now = facts(**after)
    change = insights.apply_change(now, prev, 1100.0)
    assert all(v >= 0 for v in change['deltas'].values()) and all(v >= 0 for v in change['rates'].values())
    assert change['deltas']['evicted_keys'] == after['evicted_keys'] and 'evicted_keys' in change['reset']


def test_the_same_run_id_is_no_restart_even_when_the_clock_jumped():
    prev = (1000.0, insights.counters(facts(evicted_keys=900)))
    now = facts(evicted_keys=905, uptime_seconds=3600)
    change = insights.apply_change(now, prev, 1000.0 + 86400)  # the wall clock jumped a day ahead
    assert change['deltas']['evicted_keys'] == 5 and change['reset'] == []


def test_deltas_compute_restarted_flag_is_generic():
    assert deltas.compute((0.0, {'n': 5}), 10.0, {'n': 7}, restarted=True)['deltas'] == {'n': 7}
    assert deltas.compute((0.0, {'n': 5}), 10.0, {'n': 7})['deltas'] == {'n': 2}


def _result(found, verdict, name='cache', server='127.0.0.1:6379', f=None):
    return {'ok': True, 'name': name, 'type': 'redis', 'server': server, 'latency_ms': 1.0, 'key': 'redis@' + server,
            'counters': insights.counters(f or facts()), 'verdict': verdict,
            'redis': {'facts': f or facts(), 'findings': found, 'verdict': verdict}}


def test_findings_carry_health_conditions_and_the_textfile_has_redis_families(tmp_path):
    f = facts(maxmemory_policy='noeviction', memory_used_ratio=0.97, oom_rejected_commands=3,
              role='replica', master_link_status='down')
    verdict, found = insights.evaluate(f, TH)
    spec = checks.normalise([{'type': 'redis', 'name': 'cache', 'unit': 'redis-server'}])[0]
    check = checks.REGISTRY['redis']
    out = check.evaluate(spec, _result(found, verdict, f=f), {})
    conditions = {x['condition']: x for x in out}
    assert set(conditions) == {'redis_memory', 'replication_stopped'}
    assert conditions['redis_memory']['severity'] == 'critical' and conditions['redis_memory']['unit'] == 'redis-server'
    assert conditions['redis_memory']['check'] == 'cache' and conditions['redis_memory']['type'] == 'redis'
    # Two redis checks in one health textfile: one HELP per family, samples labelled by check.
    result = {'verdict': verdict, 'metrics': {}, 'findings': out, 'duration_seconds': 0.1,
              'checks': [_result(found, verdict, f=f), _result([], 'ok', name='sessions', server='10.0.0.2:6379')]}
    text = prometheus.build(result, 1.8e9)
    check_metrics(text)
    assert text.count('# HELP opsready_redis_verdict ') == 1
    assert 'opsready_redis_verdict{check="cache",server="127.0.0.1:6379"} 2' in text
    assert 'opsready_redis_verdict{check="sessions",server="10.0.0.2:6379"} 0' in text
    assert 'opsready_redis_finding_severity{check="cache",finding="memory",server="127.0.0.1:6379"} 2' in text
    # The history keeps the counters (and run_id) under the server's key.
    line = history.sample(result, 1.8e9, 'h1')
    assert line['db']['redis@127.0.0.1:6379']['run_id'] == 'a' * 40


def test_rates_reach_the_textfile():
    f = facts(evicted_keys=800)
    insights.apply_change(f, (1000.0, insights.counters(facts(evicted_keys=200))), 1060.0)
    text = insights.render_metrics('s', f, *insights.evaluate(f, TH), now=1.8e9)
    check_metrics(text)
    assert 'opsready_redis_rate_per_second{server="s",statistic="evicted_keys"} 10' in text
    assert 'opsready_redis_sample_interval_seconds{server="s"} 60' in text


def test_the_module_documents_every_check_option():
    # Importing the module registers every type it offers (the ones in files of their own too).
    from ansible_collections.opsready.operations.plugins.modules import health_check  # noqa: F401
    with open(os.path.join(ROOT, 'plugins', 'modules', 'health_check.py')) as handle:
        source = handle.read()
    doc = None
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'DOCUMENTATION':
            doc = yaml.safe_load(node.value.value)
    documented = doc['options']['checks']['suboptions']
    merged = checks.suboptions()
    assert sorted(documented) == sorted(merged)
    assert documented['type']['choices'] == sorted(checks.REGISTRY)
    for key in ('redis_thresholds', 'tls'):
        assert documented[key]['type'] == merged[key]['type']
