"""health_check against real local endpoints, a real PostgreSQL through pyodbc, real files."""

from __future__ import annotations

import os
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.promtool import check_textfile
from tests.integration.health_servers import HttpServer, TcpListener, free_port, self_signed

# The shared CI machine is often at 100 % CPU: tests that are not about CPU switch that threshold off
# so the verdict depends only on what the test sets up.
QUIET = {'cpu_percent': {'warning': None, 'critical': None},
         'load_per_core': {'warning': None, 'critical': None}}


def health_task(name: str = 'health', **args):
    args.setdefault('thresholds', QUIET)
    return {'name': name, 'opsready.operations.health_check': args, 'register': 'health'}


@pytest.fixture(scope='module')
def endpoints(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tls')
    cert, key = self_signed(tmp, days=20)
    listener = TcpListener()
    plain = HttpServer()
    tls = HttpServer((cert, key))
    yield {'listener': listener, 'http': plain, 'https': tls, 'cert': cert}
    listener.close()
    plain.close()
    tls.close()


def test_endpoints_up_down_slow_and_outputs(endpoints, tmp_path):
    http = endpoints['http']
    https = endpoints['https']
    closed = free_port()
    pidfile = tmp_path / 'me.pid'
    pidfile.write_text('%d\n' % os.getpid())
    textfile = tmp_path / 'health.prom'
    history = tmp_path / 'history.jsonl'
    checks = [
        {'type': 'tcp', 'name': 'listener', 'host': '127.0.0.1', 'port': endpoints['listener'].port},
        {'type': 'tcp', 'name': 'closed', 'host': '127.0.0.1', 'port': closed, 'unit': 'myapp'},
        {'type': 'http', 'name': 'ok', 'url': http.url('/ok'), 'body_contains': 'good', 'requests': 5},
        {'type': 'http', 'name': 'json', 'url': http.url('/json'), 'json_query': 'db.up', 'json_expect': True},
        {'type': 'http', 'name': 'degraded', 'url': http.url('/degraded'), 'json_query': 'status',
         'json_expect': 'ok', 'severity': 'warning'},
        {'type': 'http', 'name': 'error', 'url': http.url('/err')},
        {'type': 'http', 'name': 'slow', 'url': http.url('/slow'), 'timeout': 1.5, 'unit': 'myapp'},
        {'type': 'http', 'name': 'tls', 'url': https.url('/ok'), 'ca_path': endpoints['cert']},
        {'type': 'http', 'name': 'auth', 'url': http.url('/auth'), 'headers': {'Authorization': 'Bearer s3cret-token'}},
        {'type': 'command', 'name': 'true', 'argv': ['true']},
        {'type': 'command', 'name': 'false', 'cmd': 'sh -c "echo disk says no; exit 3"'},
        {'type': 'process', 'name': 'pytest', 'pidfile': str(pidfile)},
    ]
    book = write_playbook(tmp_path, [health_task(checks=checks, fail_on='never', textfile_path=str(textfile),
                                                 history_path=str(history), host_label='box1')])
    started = time.monotonic()
    run = run_playbook(book)
    wall = time.monotonic() - started
    assert run.rc == 0, run.stdout[-3000:]
    res = run.result('health')
    by = {c['name']: c for c in res['checks']}
    assert by['listener']['ok'] and by['listener']['latency_ms'] is not None
    assert not by['closed']['ok'] and by['closed']['condition'] == 'service_down'
    assert by['ok']['ok'] and by['ok']['requests'] == 5 and by['ok']['error_rate_percent'] == 0
    assert by['json']['ok']
    assert not by['degraded']['ok'] and 'expected "ok"' in by['degraded']['message']
    assert not by['error']['ok'] and by['error']['status'] == 500
    assert not by['slow']['ok'] and by['slow']['condition'] == 'api_timeout'
    # The hung endpoint cost its timeout, not the 30 s it would have taken.
    assert by['slow']['duration_seconds'] < 5
    assert wall < 28
    assert by['tls']['ok'] and 19 < by['tls']['tls_days_remaining'] <= 20
    assert by['auth']['ok'], by['auth']
    assert by['true']['ok'] and not by['false']['ok'] and by['false']['rc'] == 3
    assert 'disk says no' in by['false']['message']
    assert by['pytest']['ok']

    findings = {(f['check'], f['condition']): f for f in res['findings']}
    assert findings[('closed', 'service_down')]['unit'] == 'myapp'
    assert findings[('slow', 'api_timeout')]['severity'] == 'critical'
    assert findings[('degraded', 'api_error')]['severity'] == 'warning'
    tls_finding = findings[('tls', 'certificate_expiry')]
    assert tls_finding['severity'] == 'warning' and tls_finding['threshold'] == 30
    for f in res['findings']:
        assert set(f) >= {'check', 'value', 'threshold', 'severity', 'message'}
    assert res['verdict'] == 'critical'
    assert res['findings'][0]['severity'] == 'critical'  # worst first
    assert 's3cret-token' not in run.stdout

    # Prometheus textfile: Prometheus' own linter accepts it, it parses with the reference parser and says
    # what the result says.
    families = {f.name: f for f in text_string_to_metric_families(check_textfile(textfile))}
    assert families['opsready_health_verdict'].samples[0].value == 2
    up = {s.labels['check']: s.value for s in families['opsready_health_check_up'].samples}
    assert up['listener'] == 1 and up['closed'] == 0 and up['slow'] == 0
    mounts = {s.labels['mountpoint'] for s in families['opsready_health_filesystem_used_ratio'].samples}
    assert '/' in mounts and not any(m.startswith('/proc') or m.startswith('/sys') for m in mounts)
    assert 0 < families['opsready_health_memory_usage_ratio'].samples[0].value < 1
    tls_expiry = families['opsready_health_check_tls_expiry_timestamp_seconds'].samples
    expiry = {s.labels['check']: s.value for s in tls_expiry}
    assert 19 * 86400 < expiry['tls'] - time.time() <= 20 * 86400
    assert res['written']['textfile'] == str(textfile)
    line = history.read_text().splitlines()
    assert len(line) == 1 and '"host":"box1"' in line[0] and '"/"' in line[0]


def test_postgres_through_pyodbc_up_then_down(postgres_factory, tmp_path):
    pg = postgres_factory()
    conn = pg.odbc_connection_string('postgres')
    # The password goes in its own no_log option, not in the string.
    parts = [p for p in conn.split(';') if p and not p.lower().startswith('pwd=')]
    checks = [{'type': 'db', 'name': 'pg', 'connection_string': ';'.join(parts), 'password': pg.password,
               'unit': 'postgresql', 'timeout': 5},
              {'type': 'db', 'name': 'pg-native', 'engine': 'postgresql', 'host': pg.host, 'port': pg.port,
               'user': pg.user, 'password': pg.password, 'database': 'postgres'}]
    # A loaded machine can take more than 250 ms to connect: latency is not what this test is about.
    quiet = dict(QUIET, latency_ms={'warning': None, 'critical': None})
    book = write_playbook(tmp_path, [health_task(checks=checks, metrics=[], fail_on='never', thresholds=quiet)])
    up = run_playbook(book)
    res = up.result('health')
    by = {c['name']: c for c in res['checks']}
    assert by['pg']['ok'], by['pg']
    assert by['pg-native']['ok'], by['pg-native']
    assert res['verdict'] == 'ok', res['findings']
    assert pg.password not in up.stdout

    pg.stop()
    down = run_playbook(book)
    res = down.result('health')
    by = {c['name']: c for c in res['checks']}
    assert not by['pg']['ok'] and by['pg']['condition'] == 'database_connection'
    assert not by['pg-native']['ok']
    finding = [f for f in res['findings'] if f['check'] == 'pg'][0]
    assert finding['unit'] == 'postgresql' and finding['severity'] == 'critical'
    assert pg.password not in down.stdout


def test_thresholds_forced_low_fail_the_play(tmp_path):
    book = write_playbook(tmp_path, [
        health_task(thresholds={'memory_percent': {'warning': 0.5, 'critical': 1}, 'cpu_percent': None},
                    metrics=['memory']),
        {'name': 'after', 'ansible.builtin.debug': {'msg': 'must not run'}},
    ])
    run = run_playbook(book)
    assert run.rc != 0
    res = run.result('health')
    assert res['_event'] == 'runner_on_failed'
    assert res['verdict'] == 'critical'
    assert 'Health verdict is critical' in res['msg'] and 'Memory use' in res['msg']
    assert not run.task_results('after')


def test_fail_on_warning(tmp_path):
    book = write_playbook(tmp_path, [health_task(thresholds={'memory_percent': {'warning': 1, 'critical': None}},
                                                 metrics=['memory'], fail_on='warning')])
    run = run_playbook(book)
    assert run.rc != 0 and run.result('health')['verdict'] == 'warning'


@pytest.mark.parametrize('args,expect', [
    ({'checks': [{'type': 'smtp', 'host': 'x'}]}, 'value of type must be one of'),
    ({'thresholds': {'disk_percent': {'warning': 95, 'critical': 90}}}, 'must not be above critical'),
    ({'thresholds': {'memory_percent': 120}}, 'cannot be over 100'),
    ({'checks': [{'type': 'http', 'url': 'localhost:80/x'}]}, 'not an http:// or https:// URL'),
    ({'checks': [{'type': 'tcp', 'host': 'x', 'port': 1, 'url': 'http://x'}]}, 'does not apply to tcp'),
    ({'thresholds': {'tls_days': {'warning': 3, 'critical': 7}}}, 'must not be below critical'),
    ({'textfile_path': '/tmp/health.txt'}, 'must end in .prom'),
])
def test_bad_input_fails_before_measuring(tmp_path, args, expect):
    book = write_playbook(tmp_path, [health_task(**args)])
    run = run_playbook(book)
    res = run.result('health')
    assert run.rc != 0 and expect in res['msg'], res['msg']
    assert 'metrics' not in res


def test_check_mode_writes_nothing(tmp_path):
    textfile = tmp_path / 'h.prom'
    history = tmp_path / 'h.jsonl'
    book = write_playbook(tmp_path, [health_task(metrics=['memory'], textfile_path=str(textfile),
                                                 history_path=str(history), fail_on='never')])
    run = run_playbook(book, check=True, diff=True)
    res = run.result('health')
    # Nothing written, but the prediction is honest: a real run would write both files.
    assert run.rc == 0 and res['changed'] is True and res['written'] == {}
    assert not textfile.exists() and not history.exists()
    assert [d['before_header'] for d in res['diff']] == [str(textfile), str(history)]
    assert 'opsready_health_verdict' in res['diff'][0]['after'] and res['diff'][0]['before'] == ''


def test_changed_only_when_a_file_changed(tmp_path):
    """Measuring alone is not a change; writing the textfile or appending a history sample is."""
    textfile = tmp_path / 'h.prom'
    history = tmp_path / 'h.jsonl'
    tasks = [dict(health_task('measure', metrics=['memory'], fail_on='never'), register='measure'),
             dict(health_task('textfile', metrics=['memory'], fail_on='never', textfile_path=str(textfile)),
                  register='textfile'),
             dict(health_task('history', metrics=['memory'], fail_on='never', history_path=str(history)),
                  register='history')]
    run = run_playbook(write_playbook(tmp_path, tasks))
    assert run.rc == 0
    assert run.result('measure')['changed'] is False and run.result('measure')['written'] == {}
    res = run.result('textfile')
    assert res['changed'] is True and res['written']['textfile_changed'] is True and textfile.exists()
    assert run.result('history')['changed'] is True and len(history.read_text().splitlines()) == 1
