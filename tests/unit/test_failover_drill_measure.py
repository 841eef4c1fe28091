"""Failover drill figures: RTO from acknowledgements, RPO from lost acknowledged commits, judged by drill_report."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import measure as judge
from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report, render_markdown
from ansible_collections.opsready.operations.plugins.module_utils.replication.drill import measure


def test_failover_rto_is_kill_to_first_ack_and_rpo_counts_lost_acks():
    acked = {1: 1.0, 2: 2.0, 3: 9.5, 4: 9.8, 5: 12.0, 6: 12.5}
    m = measure('failover', acked, present=[1, 2, 5, 6, 7], t_event=10.0, t_end=13.0)
    assert m['rto_seconds'] == 2.0
    assert m['lost_commits'] == 2 and m['lost'] == [3, 4]
    assert m['rpo_seconds'] == 0.5                         # the first lost commit was acknowledged 0.5 s before
    assert m['acknowledged'] == 6 and m['max_acknowledged'] == 6


def test_switchover_rto_is_the_longest_pause_and_nothing_lost():
    acked = {1: 9.9, 2: 10.1, 3: 11.6, 4: 11.7}
    m = measure('switchover', acked, present=[1, 2, 3, 4], t_event=10.0, t_end=12.0)
    assert m['rto_seconds'] == 1.5 and m['lost_commits'] == 0 and m['rpo_seconds'] == 0.0


def steps():
    return [{'name': 'kill', 'started': '2026-12-04T10:00:00Z', 'finished': '2026-12-04T10:00:00Z', 'ok': True},
            {'name': 'failover', 'started': '2026-12-04T10:00:00Z', 'finished': '2026-12-04T10:00:01Z', 'ok': True}]


def test_drill_report_judges_observed_figures():
    db = {'name': 'pg', 'engine': 'postgresql', 'steps': steps(),
          'measured': {'rto_seconds': 1.2, 'rpo_seconds': 0.4, 'lost_commits': 3, 'acknowledged': 100},
          'objectives': {'rto_seconds': 60, 'rpo_seconds': 5}}
    import datetime
    started = datetime.datetime(2026, 12, 4, 10, tzinfo=datetime.timezone.utc)
    ok = judge(db, started)
    assert ok['passed'] and ok['rto_verdict'] == 'pass' and ok['rpo_verdict'] == 'pass'
    strict = judge(dict(db, objectives={'rto_seconds': 60, 'rpo_seconds': 5, 'lost_commits': 0}), started)
    assert not strict['passed'] and strict['rpo_verdict'] == 'fail'
    assert '3 acknowledged commits were lost' in strict['reasons'][0]
    slow = judge(dict(db, measured={'rto_seconds': None, 'rpo_seconds': 0, 'lost_commits': 0}), started)
    assert not slow['passed'] and slow['rto_verdict'] == 'not_measured'
    report = build_report([db], '2026-12-04T10:00:00Z', '2026-12-04T10:00:02Z', title='Failover drill')
    text = render_markdown(report)
    assert 'acknowledged commits: 100, lost: 3' in text and 'backup used' not in text
