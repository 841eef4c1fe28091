"""prometheus_rules through ansible-playbook (changed, idempotent, check mode with diff, a refused file
never written), then promtool: `check rules` on the written file and `test rules` driving the burn-rate,
budget (at its exact edge) and backup alerts with synthetic series."""

from __future__ import annotations

import subprocess

import yaml

from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.promtool import promtool

SLOS = [
    {'name': 'api-availability', 'service': 'api', 'sli': 'availability', 'objective': 99.95, 'check': 'api'},
    {'name': 'api-latency', 'service': 'api', 'sli': 'latency', 'threshold_ms': 200, 'objective': 95, 'check': 'api'},
    {'name': 'api-errors', 'service': 'api', 'sli': 'error_rate', 'objective': 99.9, 'source': 'prometheus',
     'total_query': 'http_requests_total{job="api"}', 'bad_query': 'http_requests_total{job="api",code=~"5.."}'},
    # Budget 25 % and half of it 12.5 %: exact in binary, so the edge below is exactly at the level.
    {'name': 'edge', 'service': 'edge', 'sli': 'availability', 'objective': 75, 'check': 'edge'},
]


def _task(name, dest, **extra):
    args = {'dest': str(dest), 'slos': SLOS, 'thresholds': {'rpo_minutes': 15}, 'validate': 'always'}
    args.update(extra)
    return {'name': name, 'opsready.operations.prometheus_rules': args, 'ignore_errors': name.startswith('bad')}


def _alert(doc, group, name, **labels):
    for rule in next(g for g in doc['groups'] if g['name'] == group)['rules']:
        if rule.get('alert') == name and all(rule['labels'].get(k) == v for k, v in labels.items()):
            return rule
    raise AssertionError('no %s in %s' % (name, group))


def test_rules_written_idempotent_and_alerting_as_computed(tmp_path):
    dest = tmp_path / 'opsready.yml'
    other = tmp_path / 'bad.yml'
    other.write_text('groups: []\n')
    tasks = [
        _task('check mode', dest, _check=True),
        _task('write', dest),
        _task('again', dest),
        _task('bad rule', other, extra_rules=[{'alert': 'Broken', 'expr': 'rate(x[5m]'}]),
    ]
    for t in tasks:
        if t['opsready.operations.prometheus_rules'].pop('_check', False):
            t['check_mode'] = True
            t['diff'] = True
    run = run_playbook(write_playbook(tmp_path, tasks))
    assert run.rc == 0, run.stdout[-3000:]
    preview = run.result('check mode')
    assert preview['changed'] is True and preview['diff']['before'] == ''
    assert 'OpsreadySloBurnRate' in preview['diff']['after']
    written = run.result('write')
    assert written['changed'] is True and written['validated'] is True and 'SUCCESS' in written['promtool_output']
    assert written['groups'] == ['opsready-slo-api-availability', 'opsready-slo-api-latency', 'opsready-slo-api-errors',
                                 'opsready-slo-edge', 'opsready-host', 'opsready-backup']
    assert run.result('again')['changed'] is False
    bad = run.result('bad rule')
    assert bad['_event'] == 'runner_on_failed' and 'promtool check rules refused' in bad['msg']
    assert other.read_text() == 'groups: []\n'          # a refused file is never written
    assert oct(dest.stat().st_mode & 0o777) == '0o644'

    check = subprocess.run([promtool(), 'check', 'rules', str(dest)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    doc = yaml.safe_load(dest.read_text())
    edge_budget = _alert(doc, 'opsready-slo-edge', 'OpsreadySloErrorBudgetSpent')
    backup = _alert(doc, 'opsready-backup', 'OpsreadyFullBackupTooOld')
    api = {'check': 'api', 'instance': 'h1', 'job': 'node', 'type': 'http'}
    edge = {'check': 'edge', 'instance': 'h1', 'job': 'node', 'type': 'tcp'}
    db = {'engine': 'postgresql', 'database': 'app', 'directory': '/srv/backup'}

    def expected(group, labels, *long_windows):
        rules = [_alert(doc, group, 'OpsreadySloBurnRate', long_window=w) for w in long_windows]
        return [{'exp_labels': dict(r['labels'], **labels), 'exp_annotations': r['annotations']} for r in rules]

    def series(name, labels):
        return '%s{%s}' % (name, ','.join('%s="%s"' % kv for kv in sorted(labels.items())))

    tests = {'rule_files': [str(dest)], 'evaluation_interval': '1m', 'tests': [
        {   # 10 requests/s answered 200; from minute 101 one more per second answered 500.
            'interval': '1m',
            'input_series': [
                {'series': 'http_requests_total{job="api",code="200"}', 'values': '0+600x120'},
                {'series': 'http_requests_total{job="api",code="500"}', 'values': '0x100 0+60x19'},
            ],
            'alert_rule_test': [
                {'eval_time': '100m', 'alertname': 'OpsreadySloBurnRate', 'exp_alerts': []},
                # 1 h: ~19 of 60 minutes at 1/11 errors = 2.9 % > 1.44 %; 5 m: 9.1 % > 1.44 %: page; the two
                # hours of data are all of the 6 h and 3 d windows too: both tickets.
                {'eval_time': '120m', 'alertname': 'OpsreadySloBurnRate',
                 'exp_alerts': expected('opsready-slo-api-errors', {}, '1h', '6h', '3d')},
            ],
        },
        {   # The health check's probe of "api" fails for the last 20 minutes of two hours.
            'interval': '1m',
            'input_series': [{'series': series('opsready_health_check_up', api), 'values': '1x99 0x20'}],
            'alert_rule_test': [
                {'eval_time': '99m', 'alertname': 'OpsreadySloBurnRate', 'exp_alerts': []},
                {'eval_time': '120m', 'alertname': 'OpsreadySloBurnRate',
                 'exp_alerts': expected('opsready-slo-api-availability', api, '1h', '6h', '3d')},
            ],
        },
        {   # Edges: 1 of 8 probes down = exactly 12.5 % = half of the 25 % budget: the budget alert (>=)
            # fires; 1 of 9 (11.1 %) does not.
            'interval': '1m',
            'input_series': [{'series': series('opsready_health_check_up', edge), 'values': '0 1 1 1 1 1 1 1 1'}],
            'alert_rule_test': [
                {'eval_time': '7m', 'alertname': 'OpsreadySloErrorBudgetSpent',
                 'exp_alerts': [{'exp_labels': dict(edge_budget['labels'], **edge),
                                 'exp_annotations': edge_budget['annotations']}]},
                {'eval_time': '8m', 'alertname': 'OpsreadySloErrorBudgetSpent', 'exp_alerts': []},
            ],
        },
        {   # 1 of 4 down is a burn of exactly 1x over 3 d and 6 h: the 1x ticket (>) does not fire; 2 of 5 does.
            'interval': '1m',
            'input_series': [{'series': series('opsready_health_check_up', edge), 'values': '0 1 1 1 0'}],
            'alert_rule_test': [
                {'eval_time': '3m', 'alertname': 'OpsreadySloBurnRate', 'exp_alerts': []},
                {'eval_time': '4m', 'alertname': 'OpsreadySloBurnRate',
                 'exp_alerts': expected('opsready-slo-edge', edge, '3d')},
            ],
        },
        {   # A nightly full that stopped: 26 h after the last one the backup alert fires, not before.
            'interval': '1h',
            'input_series': [{'series': series('opsready_backup_last_full_success_timestamp_seconds', db),
                              'values': '0x30'}],
            'alert_rule_test': [
                {'eval_time': '26h', 'alertname': 'OpsreadyFullBackupTooOld', 'exp_alerts': []},
                {'eval_time': '27h', 'alertname': 'OpsreadyFullBackupTooOld', 'exp_alerts': [
                    {'exp_labels': dict(backup['labels'], **db), 'exp_annotations': {
                        'summary': 'The newest full backup of app is older than 26h',
                        'description': 'No full backup of postgresql app in /srv/backup finished in the last 26h.'}}]},
            ],
        },
    ]}
    test_file = tmp_path / 'rules_test.yml'
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = subprocess.run([promtool(), 'test', 'rules', str(test_file)], capture_output=True, text=True,
                            check=False, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
