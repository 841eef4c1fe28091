"""Verify the health role's outputs: a parsable textfile, a fleet report, a history per run."""

import json

from prometheus_client.parser import text_string_to_metric_families

STATE = '/tmp/molecule-health'


def test_textfile_parses(host):
    text = host.file(STATE + '/opsready_health.prom').content_string
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families['opsready_health_verdict'].samples[0].value in (0, 1)
    assert families['opsready_health_check_up'].samples[0].labels['check'] == 'shell-works'
    # Prometheus' own linter (Debian's prometheus package) accepts the names and units
    lint = host.run('promtool check metrics < %s/opsready_health.prom' % STATE)
    assert lint.rc == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr


def test_fleet_report(host):
    report = json.loads(host.file(STATE + '/fleet.json').content_string)
    assert [h['host'] for h in report['hosts']] == ['localhost']
    assert report['hosts'][0]['verdict'] in ('ok', 'warning')


def test_slo_in_the_fleet_report_and_rules_promtool_accepts(host):
    report = json.loads(host.file(STATE + '/fleet.json').content_string)
    assert [(r['slo'], r['status']) for r in report['slos']] == [('shell-availability', 'ok')]
    assert report['slo_services'] == {'shell': 'ok'}
    lint = host.run('promtool check rules %s/opsready-rules.yml' % STATE)
    assert lint.rc == 0, lint.stdout + lint.stderr


def test_history_has_one_sample_per_run(host):
    # converge + idempotence = two runs
    assert len(host.file(STATE + '/history.jsonl').content_string.splitlines()) == 2
