"""Verify the recovery role put the release and the configuration back, once, and restarted the service once."""

import json

BASE = '/tmp/molecule-recovery'


def test_release_rolled_back(host):
    link = host.file('%s/app/current' % BASE)
    assert link.is_symlink and link.linked_to == '%s/app/releases/v1' % BASE
    record = json.loads(host.file('%s/app/.opsready-rollback.json' % BASE).content_string)
    assert record == {'from': 'v2', 'to': 'v1'}


def test_configuration_restored(host):
    assert host.file('%s/etc/app/app.conf' % BASE).content_string == 'healthy = yes\n'


def test_service_restarted_once(host):
    # converge restarted it; the idempotence run changed nothing, so it did not restart again
    assert len(host.file('%s/restarts' % BASE).content_string.splitlines()) == 1
