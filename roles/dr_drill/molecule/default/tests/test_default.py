"""Verify the dr_drill role drilled once, passed, reported, and left no scratch copy behind."""

import json

ROOT = '/tmp/molecule-dr-drill'


def _reports(host):
    return sorted(n for n in host.run('ls %s/reports' % ROOT).stdout.split() if n.endswith('.json'))


def test_one_passing_drill_after_converge_and_idempotence(host):
    # converge drilled; the idempotence run found the passing drill younger than an hour and skipped it
    assert len(_reports(host)) == 1
    history = host.file('%s/reports/drills.jsonl' % ROOT).content_string.splitlines()
    assert len(history) == 1 and json.loads(history[0])['passed'] is True


def test_report_has_verdicts_and_every_step(host):
    report = json.loads(host.file('%s/reports/%s' % (ROOT, _reports(host)[0])).content_string)
    db = report['databases'][0]
    assert report['verdict'] == 'PASSED'
    assert [s['name'] for s in db['steps']] == ['find_backup', 'restore', 'integrity', 'smoke', 'cleanup']
    assert db['rto_verdict'] == 'pass' and db['rpo_verdict'] == 'pass'
    html = host.file('%s/reports/%s' % (ROOT, _reports(host)[0].replace('.json', '.html')))
    assert html.exists and 'DR drill PASSED' in html.content_string


def test_scratch_copy_removed_and_source_untouched(host):
    assert not host.file('%s/scratch/app-drill.sqlite' % ROOT).exists
    assert host.file('%s/app.sqlite' % ROOT).exists
