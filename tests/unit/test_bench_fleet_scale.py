"""Self-test of bench/fleet_scale.py's helpers (no timing assertions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'bench'))

import fleet_scale  # noqa: E402


def test_inventory_hosts_are_local_and_never_share_a_history_file(tmp_path):
    path = fleet_scale.write_inventory(tmp_path / 'inv.yml', 120, tmp_path / 'history')
    hosts = yaml.safe_load(path.read_text())['all']['hosts']
    assert len(hosts) == 120 and sorted(hosts)[0] == 'h000' and sorted(hosts)[-1] == 'h119'
    assert {h['ansible_connection'] for h in hosts.values()} == {'local'}
    histories = [h['health_history_path'] for h in hosts.values()]
    assert len(set(histories)) == 120


def test_task_spans_cover_first_start_to_last_result(tmp_path):
    log = tmp_path / 'tasks.jsonl'

    def line(stamp, task, host, ms, status='ok'):
        return json.dumps({'timestamp': stamp, 'context': {'task': task, 'host': host, 'duration_ms': ms,
                                                           'status': status}})
    log.write_text('\n'.join([
        line('2026-12-04T10:00:01.000000Z', 'Measure health', 'h000', 500),
        line('2026-12-04T10:00:03.000000Z', 'Measure health', 'h001', 800),
        line('2026-12-04T10:00:03.500000Z', 'Fail a host', 'h000', 10, 'skipped'),
        line('2026-12-04T10:00:03.600000Z', 'Fail a host', 'h001', 10, 'skipped'),
    ]) + '\n')
    spans = fleet_scale.task_spans(log)
    expected = [('Measure health', 2, {'ok': 2}), ('Fail a host', 2, {'skipped': 2})]
    assert [(t, n, s) for t, dummy, n, s in spans] == expected
    assert spans[0][1] == pytest.approx(2.5)       # 10:00:00.5 (first start) to 10:00:03 (last result)
    assert spans[1][1] == pytest.approx(0.11)


def test_sides_run_the_playbook_and_setup_on_one_inventory(tmp_path):
    ours, raw, renders, spans = fleet_scale.sides(tmp_path, 7, 5, history=False)
    inventory = str(tmp_path / 'fleet-7.yml')
    assert inventory in ours.command and inventory in raw.command
    assert 'ansible.builtin.setup' in raw.command and any(c.endswith('health.yml') for c in ours.command)
    assert ours.env['ANSIBLE_CALLBACKS_ENABLED'] == raw.env['ANSIBLE_CALLBACKS_ENABLED']
    assert renders == [] and spans == []
