"""slo_report through ansible-playbook: the seeds' SLOs over a recorded 30-day health history
(hand-computed), the same over a Prometheus query_range API on loopback, fail_on, refusals."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.prometheus_api import BAD, NOW as PROM_NOW, TOTAL, api_scenario
from tests.harness.promtool import check_textfile

END = 1_780_000_200   # evaluation_time: every probe is at END - 300 * i
STEP = 300


def recorded_history(path):
    """30 days of 5-minute probes of the http check "api" (20 requests each) and 2 days of the db check
    "app-db", written the way health_check's history writes them (one JSON line per run).

    api: 3 runs failed entirely ten days ago; the last hour (12 runs) 2 of 20 requests failed each;
    100 runs answered in 250 ms, the others in 120 ms.  app-db: 18 of 576 runs took 60 ms, others 20 ms.
    """
    lines = []
    for i in reversed(range(30 * 86400 // STEP)):
        t = END - STEP * i
        probes = {'api': {'type': 'http', 'ok': 1, 'ms': 250.0 if 1000 <= i < 1100 else 120.0, 'n': 20, 'err': 0}}
        if i in (2880, 2881, 2882):
            probes['api'] = {'type': 'http', 'ok': 0, 'n': 20, 'err': 20, 'timeout': 1}
        elif i < 12:
            probes['api']['err'] = 2
        if i < 576:
            probes['app-db'] = {'type': 'db', 'ok': 1, 'ms': 60.0 if i % 32 == 5 else 20.0}
        lines.append(json.dumps({'t': t, 'host': 'app1', 'verdict': 'ok', 'mem': 40.0, 'probes': probes}))
    lines.append('{"t": broken')   # a torn line is skipped, not fatal
    path.write_text('\n'.join(lines) + '\n')


SEED_SLOS = [
    {'name': 'api-availability', 'service': 'api', 'sli': 'availability', 'objective': 99.95, 'check': 'api'},
    {'name': 'api-latency', 'service': 'api', 'sli': 'latency', 'threshold_ms': 200, 'objective': 95, 'check': 'api'},
    {'name': 'api-errors', 'service': 'api', 'sli': 'error_rate', 'objective': 99.9, 'check': 'api'},
    {'name': 'db-latency', 'service': 'database', 'sli': 'latency', 'threshold_ms': 50, 'objective': 95,
     'check': 'app-db'},
]


@pytest.fixture(scope='module')
def prometheus():
    fake = api_scenario()
    url = fake.start()
    yield fake, url
    fake.stop()


def test_seed_slos_from_history_and_prometheus(tmp_path, prometheus):
    fake, url = prometheus
    history = tmp_path / 'history.jsonl'
    recorded_history(history)
    tasks = [
        {'name': 'from history', 'opsready.operations.slo_report': {
            'history_path': str(history), 'host': 'app1', 'evaluation_time': str(END), 'slos': SEED_SLOS,
            'textfile_path': str(tmp_path / 'opsready_slo.prom')}, 'register': 'hist'},
        {'name': 'from prometheus', 'opsready.operations.slo_report': {
            'prometheus_url': url, 'prometheus_headers': {'Authorization': 'Bearer prom-s3cret'},
            'evaluation_time': str(PROM_NOW), 'slos': [
                {'name': 'api-errors', 'service': 'api', 'sli': 'error_rate', 'objective': 99.9, 'window': '3d',
                 'source': 'prometheus', 'total_query': TOTAL, 'bad_query': BAD}]}},
        {'name': 'fail on critical', 'opsready.operations.slo_report': {
            'history_path': str(history), 'evaluation_time': '2026-05-28T20:30:00Z', 'slos': SEED_SLOS,
            'fail_on': 'critical'}, 'ignore_errors': True},
        {'name': 'refused', 'opsready.operations.slo_report': {
            'history_path': str(history), 'slos': [{'name': 'x', 'sli': 'latency', 'objective': 95, 'check': 'api'}]},
         'ignore_errors': True},
        {'name': 'in check mode', 'opsready.operations.slo_report': {
            'history_path': str(history), 'host': 'app1', 'evaluation_time': str(END), 'slos': SEED_SLOS[:1],
            'textfile_path': str(tmp_path / 'check.prom')}, 'check_mode': True},
    ]
    run = run_playbook(write_playbook(tmp_path, tasks))
    assert run.rc == 0, run.stdout[-3000:]
    r = run.result('from history')
    assert r['changed'] is False and r['skipped_lines'] == 1
    by = {s['name']: s for s in r['slos']}
    a = by['api-availability']
    # 3 failed of 8640 runs: 99.9653 %; 3/8640 / 0.05 % = 69.44 % of the budget: the seeds' 50 % alert.
    assert a['events'] == {'good': 8637.0, 'bad': 3.0, 'total': 8640.0, 'samples': 8640}
    assert a['budget']['consumed_percent'] == 69.44 and a['budget']['alert'] and a['status'] == 'warning'
    assert a['budget']['allowed_seconds'] == 1296.0 and a['budget']['remaining_seconds'] == 396.0
    lat = by['api-latency']
    # Failed runs have no latency: 100 slow of 8637 answered = 1.158 % of a 5 % budget.
    assert lat['events']['total'] == 8637 and lat['events']['bad'] == 100 and lat['latency_ms'] == {'p95': 120.0}
    assert lat['status'] == 'ok' and lat['budget']['consumed_percent'] == pytest.approx(23.16, abs=0.01)
    err = by['api-errors']
    # Last hour: 24 of 240 requests failed = 10 % = 100x a 0.1 % budget over 1 h and over 5 m: page.
    page = err['alerts'][0]
    assert page['firing'] and page['long_burn_rate'] == 100.0 and page['short_burn_rate'] == 100.0
    assert err['status'] == 'critical' and err['events']['bad'] == 84 and err['events']['total'] == 172800
    assert err['budget']['consumed_percent'] == pytest.approx(48.61, abs=0.01) and not err['budget']['alert']
    db = by['db-latency']
    # 18 of 576 over 50 ms: 3.125 % of a 5 % budget = 62.5 %; two days of a 30-day window.
    assert db['events']['bad'] == 18 and db['budget']['consumed_percent'] == 62.5 and db['status'] == 'warning'
    assert db['coverage_percent'] == pytest.approx(100 * (575 * 300) / (30 * 86400), abs=0.01)
    assert r['services'] == {'api': 'critical', 'database': 'warning'} and r['status'] == 'critical'
    assert {(f['slo'], f['severity']) for f in r['firing']} == {
        ('api-errors', 'page'), ('api-errors', 'ticket'), ('api-availability', 'budget'), ('db-latency', 'budget')}
    # 6 h: 24 of 1440 = 16.7x, 30 m 100x; 3 d: 24 of 17,280 = 1.39x, 6 h 16.7x: both tickets fire too.
    assert [a['firing'] for a in err['alerts']] == [True, True, True]
    assert r['table'][0].split()[:3] == ['service', 'slo', 'status']

    p = run.result('from prometheus')
    (e,) = p['slos']
    assert e['alerts'][0]['firing'] and e['status'] == 'critical' and e['events']['total'] == 3888000
    assert 'prom-s3cret' not in run.stdout
    assert any(req['headers'].get('Authorization') == 'Bearer prom-s3cret' for req in fake.requests)

    failed = run.result('fail on critical')
    assert failed['_event'] == 'runner_on_failed'
    assert 'SLO status is critical (fail_on=critical)' in failed['msg'] and 'api-errors' in failed['msg']
    refused = run.result('refused')
    assert refused['_event'] == 'runner_on_failed' and 'threshold_ms' in refused['msg']
    checked = run.result('in check mode')
    assert checked['slos'][0]['status'] == 'warning' and checked['written'] == {}
    assert not (tmp_path / 'check.prom').exists()

    # The textfile passes promtool check metrics and carries what the report said.
    assert r['written'] == {'textfile': str(tmp_path / 'opsready_slo.prom')}
    families = {f.name: f for f in text_string_to_metric_families(check_textfile(tmp_path / 'opsready_slo.prom'))}
    values = {(s.name, s.labels.get('slo'), s.labels.get('window') or s.labels.get('long_window')): s.value
              for f in families.values() for s in f.samples}
    assert values[('opsready_slo_status', 'api-errors', None)] == 2
    assert values[('opsready_slo_alert_firing', 'api-errors', '1h')] == 1
    assert values[('opsready_slo_burn_rate', 'api-errors', '1h')] == 100.0
    assert values[('opsready_slo_error_budget_remaining', 'api-availability', None)] == pytest.approx(0.3056)
    assert values[('opsready_slo_budget_alert_firing', 'api-availability', None)] == 1
    assert values[('opsready_slo_last_evaluation_timestamp_seconds', None, None)] == END
