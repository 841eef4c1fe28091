"""The health history records every check's outcome per run (the input of history-sourced SLOs),
and histories written before that (no ``probes``) still load and still feed capacity planning."""

from __future__ import annotations

import json

from ansible_collections.opsready.operations.plugins.module_utils.health import capacity, history


def _result():
    return {
        'verdict': 'warning',
        'metrics': {'memory': {'percent': 40.0, 'swap_percent': 0.0, 'total_bytes': 1 << 30}},
        'checks': [
            {'name': 'api', 'type': 'http', 'ok': True, 'latency_ms': 180.5, 'requests': 20, 'errors': 1},
            {'name': 'pg', 'type': 'db', 'ok': False, 'latency_ms': None, 'timed_out': True},
            {'name': 'port', 'type': 'tcp', 'ok': True, 'latency_ms': 0.4},
            {'name': 'many', 'type': 'http', 'ok': True, 'latency_ms': 9.0, 'requests': 3, 'errors': 0,
             'latencies_ms': [3.0, 9.0, 4.5]},
        ],
    }


def test_sample_records_each_check_outcome_latency_and_request_counts():
    line = history.sample(_result(), 1000.0, 'h1')
    assert line['probes'] == {
        'api': {'type': 'http', 'ok': 1, 'ms': 180.5, 'n': 20, 'err': 1},
        'pg': {'type': 'db', 'ok': 0, 'timeout': 1},
        'port': {'type': 'tcp', 'ok': 1, 'ms': 0.4},
        # Per-request latencies, when a check returns them, are kept (window percentiles need them).
        'many': {'type': 'http', 'ok': 1, 'ms': 9.0, 'n': 3, 'err': 0, 'lat': [3.0, 9.0, 4.5]},
    }
    assert line['mem'] == 40.0


def test_sample_without_checks_has_no_probes_key():
    line = history.sample({'verdict': 'ok', 'metrics': {}}, 5.0, 'h')
    assert 'probes' not in line


def test_old_history_lines_still_load_and_plan(tmp_path):
    path = tmp_path / 'h.jsonl'
    old = [{'t': 1000.0 + i * 300, 'host': 'h', 'verdict': 'ok', 'mem': 40.0 + i} for i in range(5)]
    new = history.sample(_result(), 1000.0 + 5 * 300, 'h')
    path.write_text(''.join(json.dumps(x) + '\n' for x in old + [new]))
    samples, bad = history.load(str(path))
    assert bad == 0 and len(samples) == 6 and samples[-1]['probes']['api']['n'] == 20
    plan = capacity.analyze(samples, {'memory_percent': 85.0}, horizon_days=90, window_days=30, min_samples=3)
    assert any(r['resource'] == 'memory' for r in plan['resources'])
