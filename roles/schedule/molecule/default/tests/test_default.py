"""Verify the schedule role installed locked cron jobs for the health check and the monthly drill."""

import json

ROOT = '/tmp/molecule-schedule'


def test_cron_entries(host):
    health = host.file('%s/cron.d/opsready-health' % ROOT)
    drill = host.file('%s/cron.d/opsready-dr-drill' % ROOT)
    assert health.exists and drill.exists and health.mode == 0o644
    assert '*/5 * * * * root %s/etc/health.sh' % ROOT in health.content_string
    assert '0 3 1 * * root %s/etc/dr-drill.sh' % ROOT in drill.content_string


def test_runner_scripts_take_the_lock(host):
    script = host.file('%s/etc/dr-drill.sh' % ROOT)
    assert script.mode == 0o750
    assert 'flock --nonblock --conflict-exit-code 75 %s/lock/backup.lock' % ROOT in script.content_string
    assert host.run('sh -n %s/etc/dr-drill.sh' % ROOT).rc == 0


def test_extra_vars_are_private(host):
    extra = host.file('%s/etc/dr-drill.json' % ROOT)
    assert extra.mode == 0o600
    assert json.loads(extra.content_string) == {'dr_drill_min_interval': 86400}
