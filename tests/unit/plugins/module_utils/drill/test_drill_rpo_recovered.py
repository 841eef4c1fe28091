"""RPO measured from what the restore read back from the restored data, next to the catalog's claim."""

from __future__ import annotations

import datetime

from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import measure
from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report, render_markdown

START = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
STEPS = [{'name': 'restore', 'started': '2026-11-29T12:00:01Z', 'finished': '2026-11-29T12:00:05Z', 'ok': True},
         {'name': 'integrity', 'started': '2026-11-29T12:00:05Z', 'finished': '2026-11-29T12:00:06Z', 'ok': True}]


def db(**extra):
    entry = {'name': 'pg', 'engine': 'postgresql', 'steps': STEPS, 'objectives': {'rpo_seconds': 60},
             'backup': {'recoverable_until': '2026-11-29T11:59:50Z'}}
    entry.update(extra)
    return entry


def test_rpo_from_the_recovered_point_and_the_claim_beside_it():
    out = measure(db(recovered={'at': '2026-11-29T11:59:49.500000Z', 'source': 'pg_last_xact_replay_timestamp()'}),
                  START)
    assert out['rpo_seconds'] == 11.5 and out['rpo_claimed_seconds'] == 11.0 and out['rpo_basis'] == 'recovered'
    # measured from the restore start (12:00:01), when it read the catalog
    assert out['rpo_flag'] is None and out['passed']


def test_a_recovered_point_behind_the_claim_is_flagged_and_judged():
    out = measure(db(recovered={'at': '2026-11-29T11:57:00Z', 'source': 'pg_last_xact_replay_timestamp()'}), START)
    assert out['rpo_seconds'] == 181.0 and out['rpo_claimed_seconds'] == 11.0
    assert out['rpo_difference_seconds'] == 170.0
    assert 'before' in out['rpo_flag'] and '2026-11-29T11:57:00Z' in out['rpo_flag']
    assert out['rpo_verdict'] == 'fail' and not out['passed']   # the catalog alone would have passed


def test_without_a_recovered_point_the_catalog_is_the_measure():
    out = measure(db(), START)
    assert out['rpo_seconds'] == 10.0 and out['rpo_basis'] == 'catalog' and out['rpo_flag'] is None


def test_stop_at_drill_measures_from_stop_at_and_fails_on_data_after_it():
    good = measure(db(stop_at='2026-11-29T11:00:00Z', recovered={'at': '2026-11-29T10:59:59.250000Z'}), START)
    assert good['rpo_seconds'] == 0.75 and good['rpo_claimed_seconds'] == 0.0 and good['passed']
    bad = measure(db(stop_at='2026-11-29T11:00:00Z', recovered={'at': '2026-11-29T11:00:03Z'}), START)
    assert not bad['passed'] and any('after the stop_at' in r for r in bad['reasons'])
    assert 'after' in bad['rpo_flag']


def test_report_shows_both_figures_and_the_flag():
    report = build_report([db(recovered={'at': '2026-11-29T11:57:00Z', 'source': 'last binary log event'})],
                          started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:07Z', host='h')
    text = render_markdown(report)
    assert 'RPO 3 min 1 s, by the catalog 11.0 s' in text and 'RPO flag' in text
    from ansible_collections.opsready.operations.plugins.module_utils.drill.html import render_html
    html = render_html(report, [])
    assert 'catalog and restored data differ' in html and '2026-11-29T11:57:00Z' in html


def test_rpo_is_measured_from_when_the_restore_read_the_catalog():
    out = measure(db(recovered={'at': '2026-11-29T12:00:02Z', 'catalog_read_at': '2026-11-29T12:00:02.500000Z'}),
                  START)
    assert out['rpo_seconds'] == 0.5   # WAL archived after the drill started is in the copy: not counted as loss
