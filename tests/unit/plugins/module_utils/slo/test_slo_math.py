"""SLO math against hand-computed windows: SLIs, error budget, burn rates and the multi-window alerts
at their edges (exactly at the factor, just below, just above, windows without data)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.slo import budget, definitions, sli
from ansible_collections.opsready.operations.plugins.module_utils.slo.sli import Event, Series

END = 2_000_000_000.0
H = 3600.0
# Ten days ago, ten million good events: the month's budget stays nearly whole, so the status follows
# the burn-rate alerts alone.
BG = Event(END - 10 * 86400, Fraction(10 ** 7), Fraction(10 ** 7))


def slo(**kw):
    spec = {'name': 'api', 'sli': 'error_rate', 'objective': 99.95, 'window': '30d', 'check': 'api'}
    spec.update(kw)
    return definitions.parse([spec])[0]


def ev(t, total, bad, latencies=()):
    return Event(t, Fraction(total - bad), Fraction(total), tuple(latencies))


def page(result):
    return result['alerts'][0]


def test_seed_budget_is_21_6_minutes_a_month():
    s = slo(sli='availability')
    assert s.allowed == Fraction(1, 2000)           # exactly 0.05 %, not 0.0004999999999999449
    r = budget.evaluate(s, Series([ev(END, 1, 0)]), END)
    assert r['budget']['allowed_seconds'] == 1296.0 and r['budget']['remaining_seconds'] == 1296.0
    assert r['status'] == 'ok' and r['met'] is True


def test_windows_are_half_open_and_add_up():
    series = Series([ev(END - 300, 10, 1), ev(END - 299, 10, 2), ev(END, 10, 3)])
    assert series.window(END, 300).total == 20 and series.window(END, 300).bad == 5
    assert series.window(END - 300, 300).bad == 1
    assert series.window(END, 600).bad == series.window(END, 300).bad + series.window(END - 300, 300).bad


@pytest.mark.parametrize('rest_bad, firing', [(64, False), (63, False), (65, True)])
def test_page_alert_at_exactly_14_4_does_not_fire_just_above_does(rest_bad, firing):
    # Short window (5 m): 8 of 1000 bad = 16x. Long window (1 h): (8 + rest_bad) of 10,000.
    # 72/10,000 = 0.72 % = exactly 14.4 x 0.05 %: the workbook's ">" does not fire; float math says 14.3999.
    series = Series([BG, ev(END - 1000, 9000, rest_bad), ev(END, 1000, 8)])
    r = budget.evaluate(slo(), series, END)
    assert page(r)['short_burn_rate'] == 16.0
    assert page(r)['long_burn_rate'] == pytest.approx((8 + rest_bad) / 10000 / 0.0005)
    assert page(r)['firing'] is firing
    assert (r['status'] == 'critical') is firing


def test_page_needs_both_windows_the_short_one_exactly_at_the_factor_does_not_fire():
    # 1 h: 86 of 10,000 = 17.2x; 5 m: 36 of 5000 = exactly 14.4x.
    r = budget.evaluate(slo(), Series([ev(END - 1800, 5000, 50), ev(END - 10, 5000, 36)]), END)
    assert page(r)['long_burn_rate'] == 17.2 and page(r)['short_burn_rate'] == 14.4
    assert page(r)['firing'] is False
    # The problem stopped 10 minutes ago: the long window still burns, the short is clean: no page.
    r = budget.evaluate(slo(), Series([ev(END - 600, 1000, 100), ev(END - 60, 1000, 0)]), END)
    assert page(r)['long_burn_rate'] == 100.0 and page(r)['short_burn_rate'] == 0.0 and not page(r)['firing']


def test_ticket_alerts_6x_and_1x():
    s = slo()
    # 6 h: 31 of 10,000 = 6.2x; 30 m: 4 of 1000 = 8x -> the 6 h / 30 m ticket fires, not the page.
    r = budget.evaluate(s, Series([BG, ev(END - 5 * H, 9000, 27), ev(END - 600, 1000, 4)]), END)
    six = r['alerts'][1]
    assert (six['long_window'], six['short_window'], six['factor']) == ('6h', '30m', 6.0)
    assert six['firing'] and not page(r)['firing'] and r['status'] == 'warning'
    # Exactly 6x over 6 h (30 of 10,000): no ticket.
    r = budget.evaluate(s, Series([ev(END - 5 * H, 9000, 26), ev(END - 600, 1000, 4)]), END)
    assert r['alerts'][1]['long_burn_rate'] == 6.0 and not r['alerts'][1]['firing']
    # 3 d / 6 h at 1x: 6 of 10,000 over 3 d (1.2x), 2 of 2000 over 6 h (2x).
    r = budget.evaluate(s, Series([ev(END - 48 * H, 8000, 4), ev(END - H, 2000, 2)]), END)
    slow = r['alerts'][2]
    assert (slow['long_window'], slow['short_window']) == ('3d', '6h')
    assert slow['long_burn_rate'] == 1.2 and slow['short_burn_rate'] == 2.0 and slow['firing']
    # Exactly 1x over 3 d: 5 of 10,000.
    r = budget.evaluate(s, Series([ev(END - 48 * H, 8000, 3), ev(END - H, 2000, 2)]), END)
    assert r['alerts'][2]['long_burn_rate'] == 1.0 and not r['alerts'][2]['firing']


def test_windows_without_data_never_fire_and_say_no_data():
    s = slo()
    # Everything failed an hour and a half ago; the last hour has no events at all.
    r = budget.evaluate(s, Series([ev(END - 1.5 * H, 100, 100)]), END)
    assert r['burn_rates']['1h'] is None and r['burn_rates']['5m'] is None
    assert not any(a['firing'] for a in r['alerts'][:2])
    # 3 d and 6 h both hold the failures: that ticket fires, and the month's budget is gone.
    assert r['alerts'][2]['firing'] is True and r['status'] == 'critical'
    r = budget.evaluate(s, Series([]), END)
    assert r['status'] == 'no_data' and r['sli_percent'] is None and r['budget']['remaining_percent'] is None
    assert r['met'] is None and 'no data' in r['message']
    assert all(v is None for v in r['burn_rates'].values())


def test_budget_alert_at_half_spent_and_exhausted():
    s = slo(sli='availability')
    # 100,000 probe runs over the month; 25 failed = 0.025 % = half of the 0.05 % budget (>= alerts).
    old = END - 10 * 86400
    r = budget.evaluate(s, Series([ev(old, 100000, 25)]), END)
    assert r['budget']['consumed_percent'] == 50.0 and r['budget']['alert'] is True
    assert r['status'] == 'warning' and r['budget']['remaining_seconds'] == 648.0
    r = budget.evaluate(s, Series([ev(old, 100000, 24)]), END)
    assert r['budget']['alert'] is False and r['status'] == 'ok' and r['budget']['consumed_percent'] == 48.0
    r = budget.evaluate(s, Series([ev(old, 100000, 24)]), END, budget_alert_percent=40)
    assert r['budget']['alert'] is True
    r = budget.evaluate(s, Series([ev(old, 100000, 60)]), END)
    assert r['status'] == 'critical' and r['budget']['remaining_percent'] == -20.0 and r['met'] is False
    # Events older than the SLO window do not count.
    r = budget.evaluate(s, Series([ev(END - 31 * 86400, 100, 100), ev(old, 100, 0)]), END)
    assert r['budget']['consumed_percent'] == 0.0 and r['events']['total'] == 100


def test_latency_sli_from_history_probes_nearest_rank_and_threshold():
    s = slo(name='api-p95', sli='latency', threshold_ms=200, objective=95)
    samples = []
    for i in range(20):   # one probe run per minute, 10 ms .. 200 ms, and a failed run without latency
        samples.append({'t': END - 1200 + 60 * i, 'host': 'h', 'probes': {'api': {'ok': 1, 'ms': 10.0 * (i + 1)}}})
    samples.append({'t': END - 30, 'host': 'h', 'probes': {'api': {'ok': 0}}})
    samples.append({'t': END - 20, 'host': 'other', 'probes': {'api': {'ok': 1, 'ms': 5000.0}}})
    series, runs = sli.history_series(s, samples, host='h')
    assert runs == 21
    r = budget.evaluate(s, series, END)
    assert r['latency_ms'] == {'p95': 190.0}        # 19th of 20
    assert r['sli_percent'] == 100.0 and r['status'] == 'ok'   # 200 ms is within the threshold
    more = samples + [{'t': END, 'host': 'h', 'probes': {'api': {'ok': 1, 'lat': [250.0, 199.0, 201.0]}}}]
    series = sli.history_series(s, more, host='h')[0]
    r = budget.evaluate(s, series, END)
    assert r['events']['total'] == 23 and r['events']['bad'] == 2   # per-request latencies count one each
    assert r['budget']['consumed_percent'] == pytest.approx(100 * (2 / 23) / 0.05, abs=0.01)


def test_availability_and_error_rate_from_history_probes():
    avail = slo(name='a', sli='availability')
    err = slo(name='e', sli='error_rate', objective=99.9)
    samples = [{'t': END - 300 * i, 'probes': {'api': {'ok': 1, 'n': 20, 'err': 1}}} for i in range(9)]
    samples.append({'t': END - 300 * 9, 'probes': {'api': {'ok': 0, 'n': 20, 'err': 20, 'timeout': 1}}})
    samples.append({'t': END - 10, 'probes': {'other': {'ok': 0}}})   # another check: not an event
    samples.append({'t': END - 5, 'verdict': 'ok'})                   # a line from before probes were kept
    a = budget.evaluate(avail, sli.history_series(avail, samples)[0], END)
    assert a['events'] == {'good': 9.0, 'bad': 1.0, 'total': 10.0, 'samples': 10} and a['sli_percent'] == 90.0
    e = budget.evaluate(err, sli.history_series(err, samples)[0], END)
    assert e['events']['total'] == 200 and e['events']['bad'] == 29 and e['error_rate_percent'] == 14.5


def test_histogram_quantile_like_prometheus():
    b = {0.1: Fraction(50), 0.2: Fraction(90), 0.5: Fraction(100), math.inf: Fraction(100)}
    assert sli.histogram_quantile(95, b) == pytest.approx(0.35)
    assert sli.histogram_quantile(50, b) == pytest.approx(0.1)
    assert sli.histogram_quantile(99, {**b, math.inf: Fraction(110)}) == 0.5   # in +Inf: the last bound
    assert sli.histogram_quantile(95, {math.inf: Fraction(0)}) is None


@pytest.mark.parametrize('spec, words', [
    ({'sli': 'latency'}, 'threshold_ms'),
    ({'objective': 100}, 'between 0 and 100'),
    ({'window': '30x'}, 'not a duration'),
    ({'check': None}, 'needs check'),
    ({'source': 'prometheus', 'check': None}, 'total_query'),
    ({'source': 'prometheus', 'check': None, 'total_query': 'a', 'good_query': 'b', 'bad_query': 'c'}, 'exactly one'),
    ({'source': 'prometheus', 'check': None, 'sli': 'latency', 'threshold_ms': 1}, 'bucket_query'),
    ({'total_query': 'x'}, 'source: prometheus only'),
    ({'name': 'bad name'}, 'name'),
    ({'bogus': 1}, 'unknown option'),
])
def test_definitions_are_refused_with_what_to_do(spec, words):
    base = {'name': 'api', 'sli': 'availability', 'objective': 99.9, 'check': 'api'}
    base.update(spec)
    with pytest.raises(OpsReadyError, match=words):
        definitions.parse([base])


def test_duplicate_names_and_durations():
    with pytest.raises(OpsReadyError, match='distinct'):
        definitions.parse([{'name': 'a', 'sli': 'availability', 'objective': 99, 'check': 'c'}] * 2)
    assert definitions.parse_duration('30d') == 2592000 and definitions.parse_duration(300) == 300
    assert definitions.format_duration(259200) == '3d' and definitions.format_duration(90) == '90s'
