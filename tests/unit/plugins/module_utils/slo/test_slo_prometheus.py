"""SLIs from a Prometheus HTTP API (a loopback server answering query_range like Prometheus), computed
by hand: counters summed over instances, a counter reset, a latency histogram, refused queries."""

from __future__ import annotations

from fractions import Fraction

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.slo import budget, definitions, prometheus_api
from tests.harness.prometheus_api import BAD, BUCKETS, GOOD, NOW, TOTAL, api_scenario


@pytest.fixture(scope='module')
def prom():
    fake = api_scenario()
    url = fake.start()
    yield fake, url
    fake.stop()


def _slo(**kw):
    spec = {'name': 'api-errors', 'sli': 'error_rate', 'objective': 99.9, 'window': '3d', 'source': 'prometheus',
            'total_query': TOTAL, 'bad_query': BAD}
    spec.update(kw)
    return definitions.parse([spec])[0]


def test_counter_increments_treat_a_drop_as_a_reset():
    values = [[0, '10'], [30, '25'], [60, '5'], [90, 'NaN'], [120, '7']]
    assert prometheus_api.increments(values) == [(30.0, Fraction(15)), (60.0, Fraction(5)), (120.0, Fraction(2))]


def test_coarse_step_stays_under_the_point_limit_and_divides_the_windows():
    day = 86400
    assert prometheus_api.coarse_step(30 * day, (30 * day, 3 * day)) == 300
    # 90 days: at least 778 s, so 780 s; 3 d is no multiple of 780 or 840; 900 divides both.
    step = prometheus_api.coarse_step(90 * day, (90 * day, 3 * day))
    assert step == 900 and 90 * day / step <= prometheus_api.MAX_POINTS
    assert prometheus_api.coarse_step(3 * day, (3 * day,)) == 60
    assert prometheus_api.coarse_step(7 * day + 1, (7 * day + 1,)) == 120   # nothing divides: the least


def test_error_rate_sli_from_counters_with_a_reset(prom):
    fake, url = prom
    client = prometheus_api.Client(url, headers={'Authorization': 'Bearer prom-token'})
    slo = _slo()
    series, end = prometheus_api.prometheus_series(slo, client.query_range, NOW + 17)
    assert end == NOW and client.queries == 4
    # Every 30 s: 450 requests (a 300 + b 150); in the last 20 minutes 30 of them failed.
    five = series.window(end, 300)
    assert (five.total, five.bad) == (4500, 300)            # 10 steps
    hour = series.window(end, 3600)
    assert (hour.total, hour.bad) == (54000, 1200)           # b's reset 2 h ago is counted, not subtracted
    assert series.window(end, 6 * 3600).total == 450 * 720   # across the reset
    whole = series.window(end, 3 * 86400)                    # 60 s steps: 4320 x 900
    assert (whole.total, whole.bad) == (3888000, 1200)
    r = budget.evaluate(slo, series, end)
    page = r['alerts'][0]
    # 1 h: 1200/54000 = 2.22 % = 22.2x of 0.1 %; 5 m: 300/4500 = 66.7x -> page.
    assert page['firing'] and page['long_burn_rate'] == pytest.approx(22.2222, abs=1e-4)
    assert page['short_burn_rate'] == pytest.approx(66.6667, abs=1e-4)
    # 6 h: 1200/324000 = 3.7x < 6 -> no 6 h ticket; 3 d: 0.31x -> none.
    assert not r['alerts'][1]['firing'] and not r['alerts'][2]['firing']
    assert r['budget']['consumed_percent'] == pytest.approx(100 * 1200 / 3888000 / 0.001, abs=0.01)
    assert r['status'] == 'critical' and r['error_rate_percent'] == pytest.approx(0.0309, abs=1e-4)
    # Raw counters were asked for (the reset arithmetic is ours), with the caller's headers.
    asked = fake.requests[-4:]
    assert {a['query']['query'] for a in asked} == {TOTAL, BAD}
    assert {a['query']['step'] for a in asked} == {'30s', '60s'}
    assert all(a['headers'].get('Authorization') == 'Bearer prom-token' for a in asked)


def test_good_query_is_the_complement_of_bad_query(prom):
    _fake, url = prom
    client = prometheus_api.Client(url)
    by_good, end = prometheus_api.prometheus_series(_slo(bad_query=None, good_query=GOOD), client.query_range, NOW)
    by_bad = prometheus_api.prometheus_series(_slo(), client.query_range, NOW)[0]
    for seconds in (300, 3600, 6 * 3600, 3 * 86400):
        assert (by_good.window(end, seconds).good, by_good.window(end, seconds).total) == \
            (by_bad.window(end, seconds).good, by_bad.window(end, seconds).total)


def test_latency_sli_from_histogram_buckets(prom):
    _fake, url = prom
    client = prometheus_api.Client(url)
    slo = _slo(name='api-p95', sli='latency', objective=95, threshold_ms=200, total_query=None, bad_query=None,
               bucket_query=BUCKETS)
    series, end = prometheus_api.prometheus_series(slo, client.query_range, NOW)
    r = budget.evaluate(slo, series, end)
    # 290 of 300 within 0.2 s: 96.67 % good, 3.33 % of the 5 % budget = 66.7 % spent -> budget alert.
    assert r['sli_percent'] == pytest.approx(96.6667, abs=1e-4)
    assert r['budget']['consumed_percent'] == pytest.approx(66.67, abs=0.01) and r['budget']['alert']
    assert r['status'] == 'warning'
    # histogram_quantile: rank 285 in (0.1, 0.2]: 0.1 + 0.1 x 85/90 s.
    assert r['latency_ms']['p95'] == pytest.approx(194.444, abs=1e-3)
    bad = _slo(name='x', sli='latency', objective=95, threshold_ms=250, total_query=None, bad_query=None,
               bucket_query=BUCKETS)
    with pytest.raises(OpsReadyError, match=r'no bucket le="0.25".*0.1, 0.2, 0.5, inf'):
        prometheus_api.prometheus_series(bad, client.query_range, NOW)


def test_refused_and_unreachable_servers_say_what_to_check(prom):
    _fake, url = prom
    with pytest.raises(OpsReadyError, match=r'HTTP 400, bad_data: invalid parameter'):
        prometheus_api.Client(url).query_range('rate(x[5m]', NOW - 60, NOW, 30)
    with pytest.raises(OpsReadyError, match='cannot be reached'):
        prometheus_api.Client('http://127.0.0.1:9', timeout=2).query_range(TOTAL, NOW - 60, NOW, 30)
    with pytest.raises(OpsReadyError, match='not an http'):
        prometheus_api.Client('ftp://x')
