"""Self-test of bench/health_check.py's fleet-at-scale helpers (no timing assertions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'bench'))

import health_check  # noqa: E402


def line(stamp, task, host='h00'):
    return json.dumps({'timestamp': stamp, 'context': {'host': host, 'task': task, 'duration_ms': 5}})


def test_fleet_render_seconds_spans_the_fleet_tasks(tmp_path):
    log = tmp_path / 'tasks.jsonl'
    log.write_text('\n'.join([
        line('2026-12-04T10:00:00.000000Z', 'opsready.operations.health : Measure health'),
        line('2026-12-04T10:00:01.000000Z', 'opsready.operations.health : Fleet view', 'h00'),
        line('2026-12-04T10:00:01.500000Z', 'opsready.operations.health : Fleet view', 'h01'),
        line('2026-12-04T10:00:02.000000Z', 'opsready.operations.health : Collect the fleet view'),
        line('2026-12-04T10:00:03.750000Z', 'opsready.operations.health : Write the fleet report'),
    ]) + '\n')
    assert health_check.fleet_render_seconds(log) == pytest.approx(2.25)


def test_fleet_render_seconds_refuses_a_log_without_the_fleet_view(tmp_path):
    log = tmp_path / 'tasks.jsonl'
    log.write_text(line('2026-12-04T10:00:00.000000Z', 'Measure health') + '\n')
    with pytest.raises(RuntimeError, match='no fleet view'):
        health_check.fleet_render_seconds(log)


def test_playbook_sides_build_the_same_inventory_for_both(tmp_path):
    ours, raw, renders = health_check.playbook_sides(tmp_path, 12, 50)
    inventory = tmp_path / 'fleet-12.yml'
    assert str(inventory) in ours.command and str(inventory) in raw.command
    assert inventory.read_text().count('ansible_connection: local') == 12
    assert '-f' in ours.command and '50' in ours.command and 'health_fail_on=never' in ours.command
    assert renders == []
