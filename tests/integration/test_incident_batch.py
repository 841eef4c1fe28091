"""opsready.operations.incident with ``changes`` (a fleet's incidents in one run) through ansible-playbook:
check mode and diff, changed exact, per-change results, and the errors that record nothing."""

from __future__ import annotations

import http.server
import json
import threading
import time

from tests.harness.playbook import run_playbook, write_playbook

CHANGES = [{'key': 'health:db1', 'title': 'db1 is critical', 'severity': 2, 'components': ['db1', 'memory']},
           {'key': 'health:web1', 'state': 'resolved', 'note': 'health verdict ok'}]


def task(store, changes, name='incidents', **extra):
    return dict({'name': name, 'opsready.operations.incident': {'store': str(store), 'actor': 'health',
                                                                'changes': changes}, 'register': 'out'}, **extra)


def test_batch_check_mode_diff_then_apply_then_idempotent(tmp_path):
    store = tmp_path / 'incidents.jsonl'
    playbook = write_playbook(tmp_path, [task(store, CHANGES)])
    check = run_playbook(playbook, check=True, diff=True)
    assert check.rc == 0, check.stdout[-3000:]
    result = check.result('incidents')
    assert result['changed'] is True and result['created'] is True
    assert [(r['key'], r['state'], r['changed']) for r in result['results']] == [
        ('health:db1', 'open', True), ('health:web1', 'resolved', False)]
    assert '+++ after: health:db1' in check.stdout and 'status: new' in check.stdout   # a diff per changed key
    assert 'health:web1' not in check.stdout
    assert not store.exists()

    applied = run_playbook(playbook)
    assert applied.rc == 0, applied.stdout[-3000:]
    results = applied.result('incidents')['results']
    assert results[0]['created'] is True and results[0]['incident']['severity_name'] == 'high'
    assert results[1]['incident'] is None
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert [(e['event'], e['key'], e['actor']) for e in lines] == [('open', 'health:db1', 'health')]

    again = run_playbook(playbook)
    assert again.rc == 0
    assert again.result('incidents')['changed'] is False
    assert len(store.read_text().splitlines()) == 1


def test_batch_errors_record_nothing(tmp_path):
    store = tmp_path / 'incidents.jsonl'
    tasks = [task(store, CHANGES + [{'state': 'open', 'title': 'no key', 'severity': 3}], name='no key',
                  ignore_errors=True),
             task(store, CHANGES + [{'key': 'health:x', 'title': 'no severity'}], name='no severity',
                  ignore_errors=True),
             dict(task(store, CHANGES, name='both'), **{'opsready.operations.incident': {
                 'store': str(store), 'key': 'health:db1', 'changes': CHANGES}}, ignore_errors=True)]
    run = run_playbook(write_playbook(tmp_path, tasks))
    assert 'changes[2] has neither key nor id' in run.result('no key')['msg']
    assert 'needs severity' in run.result('no severity')['msg']
    assert 'mutually exclusive' in run.result('both')['msg']
    assert not store.exists()


class _Hook(http.server.BaseHTTPRequestHandler):
    events: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        _Hook.events.append((body['event'], body['incident']['key']))
        time.sleep(0.2)                         # a slow receiver: the keys are sent concurrently
        self.send_response(204)
        self.end_headers()


def test_batch_notifies_every_change_once_in_order_per_key(tmp_path):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.events = []
    try:
        url = 'http://127.0.0.1:%d/hook' % server.server_address[1]
        changes = []
        for i in range(20):
            changes.append({'key': 'health:h%02d' % i, 'title': 'h%02d is critical' % i, 'severity': 2})
            changes.append({'key': 'health:h%02d' % i, 'state': 'resolved', 'note': 'ok again'})
        changes.append({'key': 'health:quiet', 'state': 'resolved'})       # nothing open: no event, no call
        tasks = [dict(task(tmp_path / 'incidents.jsonl', changes), **{'opsready.operations.incident': {
            'store': str(tmp_path / 'incidents.jsonl'), 'changes': changes, 'webhook': {'url': url}}})]
        run = run_playbook(write_playbook(tmp_path, tasks))
    finally:
        server.shutdown()
        server.server_close()
    assert run.rc == 0, run.stdout[-3000:]
    assert sorted(_Hook.events) == sorted([(e, 'health:h%02d' % i) for i in range(20) for e in ('open', 'resolve')])
    for i in range(20):   # one key's changes arrive in the order they were made
        key = 'health:h%02d' % i
        assert [e for e, k in _Hook.events if k == key] == ['open', 'resolve']
    results = run.result('incidents')['results']
    assert all(r['notification']['sent'] for r in results if r['changed'])
    assert 'notification' not in results[-1]
