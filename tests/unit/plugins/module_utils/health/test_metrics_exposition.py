"""Every metric family the collection can write passes `promtool check metrics` and is in docs/metrics.md.

The health result and the backup record below carry every field the exposition reads, so every family
is rendered; the family set is compared with the names in the modules' sources (a metric added without a
test fails here) and with the reference table in docs/metrics.md (one added without docs fails too).
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.opsready.operations.plugins.module_utils.health import (
    backup_freshness, prometheus, replication_check)
from ansible_collections.opsready.operations.plugins.module_utils.slo.exposition import sample_text as slo_text
from tests.harness.promtool import check_metrics

REPO = Path(__file__).resolve().parents[5]
NOW = 1764000000.0

FULL_RESULT = {
    'verdict': 'warning', 'duration_seconds': 1.25,
    'metrics': {
        'cpu': {'percent': 12.5},
        'load': {'per_core1': 0.1, 'per_core5': 0.2, 'per_core15': 0.3},
        'memory': {'percent': 40.0, 'swap_percent': 1.5},
        'filesystems': [
            {'mountpoint': '/', 'device': '/dev/sda1', 'fstype': 'ext4', 'percent': 50.0, 'total_bytes': 1000,
             'free_bytes': 500, 'inode_percent': 3.0},
            {'mountpoint': '/mnt/hung "nfs"\\share', 'device': 'srv:/x', 'fstype': 'nfs', 'error': 'timed out'},
        ],
        'network': [{'interface': 'eth0', 'rx_bytes_per_second': 1000.0, 'tx_bytes_per_second': 2000.0,
                     'percent': 0.25}],
        'tcp_established': 4,
    },
    'checks': [
        {'name': 'web', 'type': 'http', 'ok': True, 'latency_ms': 12.0, 'error_rate_percent': 2.5,
         'tls_not_after': '2026-12-24T00:00:00Z', 'tls_days_remaining': 20.0},
        {'name': 'db', 'type': 'db', 'ok': False},
        # every replication series (replication_check.expose): a primary with a replica and a slot, a standby
        {'name': 'pg-primary', 'type': 'replication', 'ok': True, 'latency_ms': 20.0, 'replication': {
            'role': 'primary', 'verdict': 'warning', 'lag_bytes': None, 'lag_seconds': None, 'timeline': 1,
            'replicas': [{'name': 'standby1', 'lag_bytes': 0, 'lag_seconds': 0.002}],
            'slots': [{'slot_name': 'standby1', 'active': True, 'retained_bytes': 8192}], 'upstream': None}},
        {'name': 'pg-standby', 'type': 'replication', 'ok': True, 'latency_ms': 20.0, 'replication': {
            'role': 'standby', 'verdict': 'ok', 'lag_bytes': 0, 'lag_seconds': 0.0, 'timeline': 1,
            'replicas': [], 'slots': [], 'upstream': {'status': 'streaming'}}},
    ],
    'findings': [{'check': 'web', 'severity': 'warning'}, {'check': 'db', 'severity': 'critical'}],
}

FULL_RECORD = {
    'engine': 'postgresql', 'database': 'shop', 'artifacts': 3, 'fulls': 1, 'logs': 2,
    'last_success_timestamp': NOW - 60, 'last_full_success_timestamp': NOW - 3600, 'last_duration_seconds': 42.0,
    'last_size_bytes': 1024, 'last_verified': True, 'last_encrypted': True, 'size_bytes_total': 4096,
    'recoverable_until_ts': NOW - 60, 'newest_log_ts': NOW - 60, 'rpo_objective_seconds': 300.0, 'rpo_breached': False,
}


def _families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def _documented():
    text = (REPO / 'docs' / 'metrics.md').read_text()
    # the first cell of the reference tables (the "Renamed" table lists old names in its first cell:
    # stop there)
    reference = text.split('## Renamed')[0]
    return set(re.findall(r'^\| `(opsready_\w+)`', reference, re.M))


def test_health_exposition_passes_promtool_with_every_family():
    text = prometheus.build(FULL_RESULT, NOW)
    check_metrics(text, 'health_check textfile')
    families = _families(text)
    source = (REPO / 'plugins' / 'module_utils' / 'health' / 'prometheus.py').read_text()
    source += Path(replication_check.__file__).read_text()
    in_code = {prometheus.PREFIX + name for name in re.findall(r"exp\.add\('(\w+)'", source)}
    assert set(families) == in_code, 'families the code can emit but this test does not render: %s' % (
        in_code - set(families))


def test_backup_exposition_passes_promtool_with_every_family():
    text = backup_freshness.prometheus_text([FULL_RECORD, dict(FULL_RECORD, engine='files', database='etc',
                                                               last_verified=None, last_encrypted=False)],
                                            '/var/backups/opsready')
    check_metrics(text, 'backup_metrics textfile')
    assert set(_families(text)) == {'%s_%s' % (backup_freshness.PREFIX, m[0]) for m in backup_freshness.METRICS}


# A db_insights snapshot with every part the exposition reads (opsready_db_*).
FULL_SNAPSHOT = {
    'engine': 'postgresql', 'server': 'db1:5432', 'verdict': 'warning',
    'connections': {'used': 5, 'max': 20, 'percent': 25.0, 'by_user': [{'user': 'app', 'count': 5}],
                    'by_database': [{'database': 'app', 'count': 5}]},
    'lock_waits': [{'pid': 3, 'wait_seconds': 2.5, 'blockers': [{'pid': 2}]}],
    'deadlocks': {'total': 4, 'since_last_sample': 1},
    'transactions': {'longest': {'seconds': 9.0}, 'idle_in_transaction_longest': {'seconds': 3.0}},
    'replication_slots': [{'name': 's1', 'active': False, 'retained_bytes': 1 << 30}],
    'cache': {'hit_percent': 99.5, 'interval_hit_percent': 97.0},
    'bloat': [{'table': 'public.t', 'size_bytes': 1 << 26, 'bloat_bytes': 1 << 25}],
    'statements': {'enabled': True, 'by_mean_time': [{'mean_ms': 1500.0}]},
    'slow_log': {'slow_queries': 12}, 'waits': [{'wait_type': 'LCK_M_X', 'wait_time_ms': 2500}],
    'since_previous': {'interval_seconds': 300.0, 'rates': {'deadlocks': 0.01}},
}


def _insights_families():
    from ansible_collections.opsready.operations.plugins.module_utils.insights import exposition
    text = exposition.build([FULL_SNAPSHOT], NOW)
    check_metrics(text, 'db_insights textfile')
    # the parser names a counter family without its _total suffix; the reference lists the sample name
    return {f.name + '_total' if f.type == 'counter' else f.name for f in text_string_to_metric_families(text)}


def _redis_families():
    from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import insights as redis_insights
    facts = {'keys': 10, 'keyspace_hits': 8, 'keyspace_misses': 2, 'hit_ratio': 0.8, 'used_memory_bytes': 900,
             'maxmemory_bytes': 1000, 'memory_used_ratio': 0.9, 'maxmemory_policy': 'noeviction', 'evicted_keys': 0,
             'oom_rejected_commands': 1, 'connected_clients': 3, 'blocked_clients': 0, 'maxclients': 100,
             'rejected_connections': 0, 'role': 'replica', 'master_link_status': 'up', 'master_sync_in_progress': False,
             'replication_lag_seconds': 1.0, 'replication_lag_bytes': 0,
             'replicas': [{'address': '10.0.0.3:6379', 'state': 'online', 'lag_seconds': 0.0, 'lag_bytes': 0}],
             'rdb_last_bgsave_status': 'ok', 'rdb_last_save_time': NOW - 60, 'rdb_changes_since_last_save': 4,
             'aof_enabled': True, 'aof_last_write_status': 'ok', 'aof_last_bgrewrite_status': 'ok'}
    # A previous sample in the health history (the redis check type) adds the interval's rates.
    previous = dict(redis_insights.counters(facts), keyspace_hits=4, keyspace_misses=1)
    redis_insights.apply_change(facts, (NOW - 60, previous), NOW)
    verdict, findings = redis_insights.evaluate(facts, dict(redis_insights.DEFAULT_THRESHOLDS))
    text = redis_insights.render_metrics('cache', facts, verdict, findings, now=NOW)
    check_metrics(text, 'redis_insights textfile')
    return {f.name + '_total' if f.type == 'counter' else f.name for f in text_string_to_metric_families(text)}


def test_every_family_is_in_the_metrics_reference():
    emitted = set(_families(prometheus.build(FULL_RESULT, NOW)))
    emitted |= set(_families(backup_freshness.prometheus_text([FULL_RECORD], '/b')))
    emitted |= set(_families(slo_text(NOW)))
    emitted |= _insights_families()
    emitted |= _redis_families()
    documented = _documented()
    assert emitted - documented == set(), 'add to docs/metrics.md: %s' % sorted(emitted - documented)
    assert documented - emitted == set(), 'docs/metrics.md lists metrics nothing writes: %s' % sorted(
        documented - emitted)


def test_units_and_ratios():
    fams = _families(prometheus.build(FULL_RESULT, NOW))

    def value(name, **labels):
        return next(s.value for s in fams[name].samples if all(s.labels.get(k) == v for k, v in labels.items()))

    assert value('opsready_health_cpu_usage_ratio') == pytest.approx(0.125)
    assert value('opsready_health_memory_usage_ratio') == pytest.approx(0.40)
    assert value('opsready_health_swap_usage_ratio') == pytest.approx(0.015)
    assert value('opsready_health_filesystem_used_ratio', mountpoint='/') == pytest.approx(0.5)
    assert value('opsready_health_filesystem_inodes_used_ratio', mountpoint='/') == pytest.approx(0.03)
    assert value('opsready_health_filesystem_up', mountpoint='/mnt/hung "nfs"\\share') == 0
    assert value('opsready_health_network_link_usage_ratio', interface='eth0') == pytest.approx(0.0025)
    assert value('opsready_health_check_error_ratio', check='web') == pytest.approx(0.025)
    expiry = datetime.datetime(2026, 12, 24, tzinfo=datetime.timezone.utc).timestamp()
    assert value('opsready_health_check_tls_expiry_timestamp_seconds', check='web') == expiry
    assert value('opsready_health_check_latency_seconds', check='web') == pytest.approx(0.012)
    assert value('opsready_health_finding_severity', check='db') == 2
    backup = _families(backup_freshness.prometheus_text([FULL_RECORD], '/b'))
    assert backup['opsready_backup_catalog_size_bytes'].samples[0].value == 4096


@pytest.mark.parametrize('bad, problem', [
    ('# HELP x_bytes_total b\n# TYPE x_bytes_total gauge\nx_bytes_total 1\n', '_total'),
    ('# HELP x_days d\n# TYPE x_days gauge\nx_days 1\n', 'seconds'),
    ('# HELP x_percent p\n# TYPE x_percent gauge\nx_percent 50\n', 'ratio'),
    ('# HELP x_ratio r\n# TYPE x_ratio gauge\nx_ratio 50\n', 'not a 0-1 ratio'),
])
def test_the_checker_catches_the_classes_it_is_for(bad, problem):
    with pytest.raises(AssertionError, match=problem):
        check_metrics(bad)
