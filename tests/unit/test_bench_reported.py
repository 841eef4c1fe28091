"""bench/reported.py: a side whose run reports its own time is compared on that time; and every bench of
issue 22's list runs its rows through bench/common.compare (load printed, rounds until the spread is known)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / 'bench'
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from reported import reported  # noqa: E402

CONVERTED = ('drill_pitr', 'dr_drill', 'db_restore', 'acme_renew', 'patching', 'log_rotate', 'encryption',
             'db_backup')


def test_compare_uses_the_reported_times():
    ours = common.Side(label='ours', command=lambda: None)
    raw = common.Side(label='raw', command=lambda: None)
    times = reported(ours)
    told = iter([2.0, 2.2, 1.8, 2.0, 2.1])
    ours.command = lambda: times.append(next(told))
    raw_times = reported(raw)
    raw.command = lambda: raw_times.append(1.0)
    lines = []
    rows = common.compare('reported', ours, [raw], [common.Target(3.0)], runs=3, max_rounds=5, log=lines.append)
    row = rows[0]
    assert row.ours_walls[:3] == [2.0, 2.2, 1.8] and set(row.raw_walls) == {1.0}
    assert row.ours['wall_s'] == 2.0 and abs(row.ratio_wall - 2.0) < 1e-9
    assert row.runs >= 3 and row.load is not None
    assert any('run 1:    2.00 s' in line for line in lines), lines[:4]


def test_a_run_that_reports_nothing_keeps_its_measured_wall():
    side = common.Side(label='x', command=lambda: None)
    reported(side)
    sample = common.run_side(side)
    assert sample.wall < 1.0 and side.samples == [sample]


def test_issue_22_benches_compare_their_sides():
    for name in CONVERTED:
        tree = ast.parse((BENCH / (name + '.py')).read_text())
        called = {node.func.id for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert 'compare' in called, '%s does not run its sides through common.compare' % name
