"""Verify the patching role upgraded the test package and reported it (converge then idempotence)."""

import json

REPORT = '/tmp/molecule-patching/reports/patching-molecule.json'


def test_package_upgraded(host):
    pkg = host.package('opsready-testpkg-molecule')
    assert pkg.is_installed
    assert pkg.version == '2.0'
    assert host.file('/usr/share/opsready-testpkg-molecule/VERSION').content_string == '2.0\n'


def test_report_records_the_outcome(host):
    report = json.loads(host.file(REPORT).content_string)
    entry = report['hosts']['localhost']
    # The idempotence run found nothing to do and recorded the host as unchanged.
    assert entry['status'] == 'unchanged'
    assert entry['upgraded'] == []
    assert host.file(REPORT.replace('.json', '.md')).contains('| localhost | unchanged |')
