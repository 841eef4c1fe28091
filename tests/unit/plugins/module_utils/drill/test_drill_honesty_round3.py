"""Drill honesty, round 3: what a passing drill did not prove is said (failing-first, then fixed).

A drill that passes means the restore works within the objectives. A drill without smoke queries passed on the
integrity check alone without a word; a chain with logs replayed (PITR, binlogs) was never compared with the
source's tables and rows without a word; find_backup is outside the RTO, and a slow one was visible only as a row
of the steps table.
"""

from __future__ import annotations

import datetime

from ansible_collections.opsready.operations.plugins.module_utils.drill.html import render_html
from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import measure
from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report, render_markdown

START = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _step(name, begin, end, ok=True, result=None):
    return {'name': name, 'started': '2026-11-29T12:%02d:%02dZ' % divmod(begin, 60),
            'finished': '2026-11-29T12:%02d:%02dZ' % divmod(end, 60), 'ok': ok, 'result': result}


def database(smoke=True, integrity_result='sqlite integrity_check: ok; against the source at backup time: ok',
             find_seconds=1, chain=('full',), engine='sqlite', rto=3600, **extra):
    steps = [_step('find_backup', 0, find_seconds), _step('restore', find_seconds, find_seconds + 5),
             _step('integrity', find_seconds + 5, find_seconds + 6, result=integrity_result)]
    if smoke:
        steps.append(_step('smoke', find_seconds + 6, find_seconds + 7, result='1 smoke query passed'))
    steps.append(_step('cleanup', find_seconds + 7, find_seconds + 8))
    entry = {'name': 'app', 'engine': engine, 'steps': steps, 'objectives': {'rto_seconds': rto, 'rpo_seconds': 300},
             'backup': {'recoverable_until': '2026-11-29T11:59:50Z', 'chain': list(chain)}}
    entry.update(extra)
    return entry


def test_a_drill_without_smoke_queries_passes_with_a_warning_that_says_so():
    out = measure(database(smoke=False), START)
    assert out['passed']
    assert any(w.startswith('smoke:') and 'integrity check alone' in w for w in out['warnings']), out['warnings']
    # with warnings counted as failures the drill fails, the missing smoke queries as its reason
    strict = measure(database(smoke=False), START, warnings_fail=True)
    assert not strict['passed'] and any('smoke queries' in r for r in strict['reasons'])
    # the report shows it under the verdict
    report = build_report([database(smoke=False)], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:09Z',
                          host='h')
    assert 'integrity check alone' in render_markdown(report)


def test_a_drill_with_smoke_queries_has_no_such_warning():
    """Regression guard (no warning before either)."""
    assert measure(database(), START)['warnings'] == []


def test_a_chain_not_compared_with_the_source_says_why():
    out = measure(database(chain=('full', 'log1', 'log2'), integrity_result='sqlite integrity_check: ok',
                           engine='mariadb'), START)
    assert out['passed']
    found = [w for w in out['warnings'] if w.startswith('integrity:')]
    assert found and 'not compared with the source' in found[0] and '2 log artifact(s)' in found[0], out['warnings']
    pitr = measure(database(chain=('base', 'wal'), integrity_result='pg_amcheck: ok', engine='postgresql',
                            stop_at='2026-11-29T11:59:00Z', backup={'recoverable_until': '2026-11-29T11:59:50Z'}),
                   START)
    assert any('point in time' in w for w in pitr['warnings']), pitr['warnings']


def test_a_failed_drill_gets_no_unproved_warnings():
    """A failed step already fails the drill; the warnings of what a pass did not prove would be noise."""
    entry = database(smoke=False)
    entry['steps'][1]['ok'] = False
    assert not [w for w in measure(entry, START)['warnings'] if w.startswith(('smoke:', 'integrity:'))]


def test_find_backup_is_outside_the_rto_and_the_report_says_so_with_its_time():
    quick = measure(database(), START)
    assert quick['find_backup_seconds'] == 1.0 and quick['rto_from'] == 'restore'
    assert quick['rto_seconds'] == 7.0   # restore start to smoke end: find_backup not counted
    report = build_report([database()], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:09Z', host='h')
    text = render_markdown(report)
    assert 'find_backup (reading the catalog) took 1.00 s and is not in the RTO' in text, text
    assert 'not in the RTO' in render_html(report, [])


def test_a_slow_find_backup_is_a_warning():
    out = measure(database(find_seconds=400, rto=3600), START)
    assert out['rto_seconds'] == 7.0 and out['rto_verdict'] == 'pass'
    assert any(w.startswith('find_backup:') and '6 min 40 s' in w and '11%' in w for w in out['warnings']), \
        out['warnings']
