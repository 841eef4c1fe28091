"""opsready.operations.incident with ``changes`` (a fleet's incidents in one run) through ansible-playbook:
check mode and diff, changed exact, per-change results, and the errors that record nothing."""

from __future__ import annotations

import json

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
