"""Verify the log_rotation role: one rotated, compressed copy (the idempotence run rotated nothing more)
and a logrotate policy that logrotate itself accepts."""

BASE = '/tmp/molecule-log-rotation'


def test_rotated_once_and_compressed(host):
    listing = sorted(host.run('ls %s/log' % BASE).stdout.split())
    assert listing == ['app.log', 'app.log.1.zst']
    assert host.file('%s/log/app.log' % BASE).size == 0
    assert host.file('%s/log/app.log' % BASE).mode == 0o640
    content = host.run('zstd -dc %s/log/app.log.1.zst' % BASE)
    assert content.rc == 0 and content.stdout == 'line\n' * 500


def test_logrotate_policy_is_valid_and_equivalent(host):
    policy = host.file('%s/logrotate.d/app' % BASE)
    assert policy.mode == 0o644
    text = policy.content_string
    for directive in ('size 1k', 'rotate 3', 'compressext .zst', 'missingok', 'notifempty', 'create'):
        assert directive in text
    check = host.run('/usr/sbin/logrotate -d %s/logrotate.d/app' % BASE)
    assert check.rc == 0, check.stderr
