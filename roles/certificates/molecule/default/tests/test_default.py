"""Verify the certificates role renewed the due certificate once and left the fresh one alone."""

import json

BASE = '/tmp/molecule-certificates'


def _openssl(host, *args):
    result = host.run('openssl ' + ' '.join(args))
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def test_due_certificate_renewed_and_valid(host):
    # checkend: still valid in 80 days (the original expired in 5).
    assert host.run('openssl x509 -checkend %d -noout -in %s/tls/due.crt' % (80 * 86400, BASE)).rc == 0
    verify = host.run('openssl verify -CAfile %s/ca/ca.crt %s/tls/due.crt' % (BASE, BASE))
    assert verify.rc == 0, verify.stdout + verify.stderr
    cert_pub = _openssl(host, 'x509 -noout -pubkey -in %s/tls/due.crt' % BASE)
    key_pub = _openssl(host, 'pkey -pubout -in %s/tls/private/due.key' % BASE)
    assert cert_pub == key_pub
    assert 'DNS:due.molecule.test' in _openssl(host, 'x509 -noout -ext subjectAltName -in %s/tls/due.crt' % BASE)
    assert host.file('%s/tls/private/due.key' % BASE).mode == 0o600


def test_previous_pair_kept_once(host):
    # converge renewed once; the idempotence run found nothing due.
    listing = host.run('ls %s/tls %s/tls/private' % (BASE, BASE)).stdout.split()
    assert len([n for n in listing if n.startswith('due.crt.') and n.endswith('.cert.bak')]) == 1
    keys = [n for n in listing if n.startswith('due.key.') and n.endswith('.key.bak')]
    assert len(keys) == 1
    assert host.file('%s/tls/private/%s' % (BASE, keys[0])).mode == 0o600


def test_fresh_certificate_untouched(host):
    assert host.file('%s/tls/fresh.crt' % BASE).sha256sum == host.file('%s/fresh.orig' % BASE).sha256sum
    assert not [n for n in host.run('ls %s/tls' % BASE).stdout.split() if n.startswith('fresh.crt.')]


def test_report(host):
    report = json.loads(host.file('%s/report.json' % BASE).content_string)
    by_name = {c['source'].rsplit('/', 1)[-1]: c for c in report['inventory']}
    assert by_name['fresh.crt']['days_remaining'] > 360 and by_name['fresh.crt']['chain_valid'] is True
    assert by_name['due.crt']['key_matches'] is True
    assert report['failures'] == []
