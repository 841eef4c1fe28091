"""Thresholds, capacity trends, incident folding, history bounds, exposition, webhook retries."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import (
    alerts, capacity, checks, history, incidents, prometheus, thresholds)

DAY = 86400.0


def test_threshold_levels_and_direction():
    th = thresholds.parse({'disk_percent': {'warning': 50, 'critical': 70}, 'tls_days': {'warning': 20}})
    assert th['disk_percent'].evaluate(49) == 'ok'
    assert th['disk_percent'].evaluate(60) == 'warning'
    assert th['disk_percent'].evaluate(70.5) == 'critical'
    assert th['tls_days'].evaluate(25) == 'ok' and th['tls_days'].evaluate(10) == 'warning'
    assert th['tls_days'].evaluate(3) == 'critical'
    assert th['cpu_percent'].critical == 80 and th['memory_percent'].critical == 85
    # A bare number is the critical level and pulls the warning down with it.
    assert thresholds.parse({'cpu_percent': 50})['cpu_percent'].as_dict() == {'warning': 50.0, 'critical': 50.0}
    off = thresholds.parse({'cpu_percent': {'warning': None, 'critical': None}})['cpu_percent']
    assert off.evaluate(100) == 'ok'


@pytest.mark.parametrize('user,message', [
    ({'disk_percent': {'warning': 95, 'critical': 90}}, 'must not be above critical'),
    ({'disk_percent': 101}, 'cannot be over 100'),
    ({'disk_percent': {'warn': 1}}, 'accepts only warning and critical'),
    ({'nope': 1}, 'Unknown threshold'),
    ({'latency_ms': -1}, 'must not be negative'),
    ({'latency_ms': 'fast'}, 'must be a number'),
])
def test_threshold_errors(user, message):
    with pytest.raises(OpsReadyError, match=message):
        thresholds.parse(user)


def test_check_registry_validation():
    assert set(checks.REGISTRY) >= {'tcp', 'http', 'db', 'process', 'service', 'command'}
    specs = checks.normalise([{'type': 'tcp', 'host': 'h', 'port': 1}, {'type': 'http', 'url': 'http://x/'}])
    assert specs[0]['name'] == 'tcp:h:1' and specs[1]['requests'] == 1 and specs[1]['method'] == 'GET'
    with pytest.raises(OpsReadyError, match='two checks are named'):
        checks.normalise([{'type': 'tcp', 'host': 'h', 'port': 1}] * 2)
    with pytest.raises(OpsReadyError, match='needs port'):
        checks.normalise([{'type': 'tcp', 'host': 'h'}])
    with pytest.raises(OpsReadyError, match='mutually exclusive'):
        checks.normalise([{'type': 'db', 'connection_string': 'Driver=x', 'engine': 'postgresql'}])
    with pytest.raises(OpsReadyError, match='JMESPath'):
        checks.normalise([{'type': 'http', 'url': 'http://x/', 'json_query': 'a[?'}])


def test_connection_string_secrets_and_description():
    spec = {'connection_string': 'Driver={PostgreSQL Unicode};Server=db;Pwd={p;w}}d};Uid=u', 'password': None,
            'timeout': 3}
    assert 'p;w}d' in checks.connection_secrets(spec)
    assert 'Pwd' not in checks.describe_connection_string(spec['connection_string'])
    text = checks.odbc_string(dict(spec, connection_string='Driver={PostgreSQL Unicode};Server=db', password='x}y'))
    assert 'PWD={x}}y};' in text and 'CommLog=0' in text and 'connect_timeout=3' in text


def test_least_squares_days_until_full():
    # Disk grows 1 point per day from 50 %: 90 % is crossed 40 days after the first sample.
    samples = [{'t': i * DAY, 'host': 'h', 'fs': {'/var': [50.0 + i, 1.0, 100 * 2**30, (50 + i) * 2**30]},
                'mem': 40.0} for i in range(11)]
    result = capacity.analyze(samples, {'disk_percent': 90.0, 'memory_percent': 85.0, 'inode_percent': 90.0},
                              horizon_days=60)
    fs = [r for r in result['resources'] if r['resource'] == 'filesystem:/var'][0]
    assert fs['slope_per_day'] == pytest.approx(1.0) and fs['r2'] == pytest.approx(1.0)
    assert fs['days_until_threshold'] == pytest.approx(30.0)
    mem = [r for r in result['resources'] if r['resource'] == 'memory'][0]
    assert mem['trend'] == 'flat' and mem['days_until_threshold'] is None
    rec = result['recommendations'][0]
    assert rec['action'] == 'grow_disk' and 'within 30 days' in rec['message']
    # Used at horizon: 60 GiB + 60 days * 1 GiB = 120 GiB; under 90 % needs 133.3 GiB.
    assert rec['recommended_size_bytes'] == pytest.approx(120 * 2**30 / 0.9, rel=1e-6)
    # Outside the horizon: no recommendation.
    assert not capacity.analyze(samples, {'disk_percent': 90.0}, horizon_days=10)['recommendations']


def test_capacity_insufficient_data():
    result = capacity.analyze([{'t': 0, 'cpu': 10}, {'t': 60, 'cpu': 12}], {'cpu_percent': 80.0})
    assert result['resources'][0]['trend'] == 'insufficient_data'


def test_history_is_bounded_and_skips_torn_lines(tmp_path):
    path = str(tmp_path / 'h.jsonl')
    counts = [history.append(path, {'t': i, 'cpu': i}, max_entries=20) for i in range(40)]
    # grows to 20 + 10 % slack (22), then the 23rd line trims it back to the newest 20, and so on
    assert counts[:22] == list(range(1, 23))
    assert counts[22:28] == [20, 21, 22, 20, 21, 22]
    assert counts[-1] == 22
    with open(path, 'a') as handle:
        handle.write('{"t": 99, "cpu"')  # torn line
    samples, bad = history.load(path)
    assert bad == 1
    assert [s['t'] for s in samples] == list(range(18, 40))  # the newest ones, in order, none lost in between


def test_incident_lifecycle_dedup_and_targets(tmp_path):
    store = incidents.IncidentStore(str(tmp_path / 'inc.jsonl'))

    def change(state, **kw):
        args = dict(iid=None, key='health:h1', severity=None, title=None, description=None, components=[],
                    note=None, actor=None)
        args.update(kw)
        with store.locked():
            recs = store.load()
            plan = incidents.plan_change(recs, state, **args)
            if plan['event']:
                store.append({k: v for k, v in plan['event'].items() if v is not None})
            return plan['event'], store.load()

    event, recs = change('open', severity=3, title='h1 critical', components=['disk'])
    assert event['event'] == 'open'
    iid = event['id']
    assert change('open', severity=3, title='h1 critical', components=['disk'])[0] is None  # no duplicate
    event, recs = change('open', severity=1, title='h1 critical')
    assert event['event'] == 'update' and recs[iid]['severity'] == 1
    event, recs = change('investigating', note='restarted nginx')
    assert recs[iid]['status'] == 'investigating' and recs[iid]['acknowledged_at']
    event, recs = change('resolved', note='ok again')
    assert recs[iid]['status'] == 'resolved'
    assert change('resolved')[0] is None
    event, recs = change('open', severity=4, title='again')
    assert event['id'] != iid and len(recs) == 2
    full = incidents.with_targets(recs[iid])
    assert full['severity_name'] == 'critical' and full['response_breached'] is False
    assert [e['event'] for e in recs[iid]['timeline']] == ['open', 'update', 'update', 'resolve']
    with pytest.raises(OpsReadyError, match='needs severity'):
        change('open', key='other', title='x')


def test_exposition_parses_and_escapes():
    result = {'verdict': 'warning', 'duration_seconds': 0.5,
              'metrics': {'cpu': {'percent': 12.5}, 'filesystems': [
                  {'mountpoint': '/mnt/we"ird\\path', 'device': 'd', 'fstype': 'ext4', 'percent': 50.0,
                   'total_bytes': 10, 'free_bytes': 5, 'inode_percent': None},
                  {'mountpoint': '/nfs', 'error': 'hung'}]},
              'checks': [{'name': 'web', 'type': 'http', 'ok': False, 'latency_ms': 12.0}],
              'findings': [{'check': 'web', 'severity': 'critical'}]}
    fams = {f.name: f for f in text_string_to_metric_families(prometheus.build(result, 1700000000.0))}
    assert fams['opsready_health_verdict'].samples[0].value == 1
    labels = [s.labels['mountpoint'] for s in fams['opsready_health_filesystem_used_ratio'].samples]
    assert labels == ['/mnt/we"ird\\path']
    up = {s.labels['mountpoint']: s.value for s in fams['opsready_health_filesystem_up'].samples}
    assert up['/nfs'] == 0
    assert fams['opsready_health_check_latency_seconds'].samples[0].value == pytest.approx(0.012)


class _Flaky(http.server.BaseHTTPRequestHandler):
    calls = []
    agents = []

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        _Flaky.calls.append((self.path, body, self.headers.get('Authorization')))
        _Flaky.agents.append((self.headers.get('User-Agent'), self.headers.get('Content-Type')))
        if self.path == '/slow':
            time.sleep(2)
        code = {'/flaky': 503 if len(_Flaky.calls) < 3 else 200, '/bad': 404}.get(self.path, 200)
        self.send_response(code)
        self.send_header('Content-Length', '0')
        self.end_headers()


def test_webhook_retries_with_backoff_then_gives_up_on_4xx():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = 'http://127.0.0.1:%d' % server.server_address[1]
    waits = []
    try:
        _Flaky.calls.clear()
        sent = alerts.post_json(url + '/flaky', {'a': 1}, retries=4, backoff=0.5, headers={'Authorization': 't'},
                                sleep=waits.append)
        assert sent['sent'] and sent['attempts'] == 3 and waits == [0.5, 1.0]
        assert _Flaky.calls[0][1] == {'a': 1} and _Flaky.calls[0][2] == 't'
        waits.clear()
        sent = alerts.post_json(url + '/bad', {}, retries=4, sleep=waits.append)
        assert not sent['sent'] and sent['attempts'] == 1 and sent['status'] == 404
        assert set(_Flaky.agents) == {('opsready-alert', 'application/json')}
        # A server that does not answer within the timeout: retried, then reported as a timeout.
        waits.clear()
        sent = alerts.post_json(url + '/slow', {}, retries=1, backoff=0.25, timeout=0.5, sleep=waits.append)
        assert not sent['sent'] and sent['attempts'] == 2 and waits == [0.25]
        assert sent['error'] == 'timed out after 0.5s' and sent['status'] is None
    finally:
        server.shutdown()
        server.server_close()
    sent = alerts.post_json(url + '/gone', {}, retries=2, backoff=0, timeout=1, sleep=waits.append)
    assert not sent['sent'] and sent['attempts'] == 3
    assert 'refused' in sent['error'], sent


def test_webhook_sends_only_the_given_headers_never_netrc_credentials(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    netrc = tmp_path / 'netrc'
    netrc.write_text('machine 127.0.0.1 login ops password netrc-secret\n')
    netrc.chmod(0o600)
    monkeypatch.setenv('NETRC', str(netrc))
    try:
        _Flaky.calls.clear()
        assert alerts.post_json('http://127.0.0.1:%d/ok' % server.server_address[1], {'b': 2})['sent']
        assert _Flaky.calls == [('/ok', {'b': 2}, None)]
    finally:
        server.shutdown()
        server.server_close()
