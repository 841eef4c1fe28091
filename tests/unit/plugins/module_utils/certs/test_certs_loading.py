"""Loading and inspecting real certificates: PEM, bundles, DER, garbage, key match, chain."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from pki import CA, cert_pem, ec_key, key_pem, now, serial_hex

from ansible_collections.opsready.operations.plugins.module_utils.certs import inspection, inventory, loading
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


@pytest.fixture(scope='module')
def ca():
    return CA()


def test_pem_bundle_and_der_load(tmp_path, ca):
    leaf, _key = ca.issue('app.test', 30)
    bundle = tmp_path / 'fullchain.pem'
    bundle.write_bytes(cert_pem(leaf) + b'\n' + cert_pem(ca.cert))
    certs, fmt = loading.load_certificate_file(str(bundle))
    assert fmt == 'pem' and [c.serial_number for c in certs] == [leaf.serial_number, ca.cert.serial_number]
    der = tmp_path / 'leaf.der'
    der.write_bytes(leaf.public_bytes(serialization.Encoding.DER))
    certs, fmt = loading.load_certificate_file(str(der))
    assert fmt == 'der' and certs[0].serial_number == leaf.serial_number


@pytest.mark.parametrize('content, expected', [
    (b'this is not a certificate\n', 'neither a PEM nor a DER'),
    (b'', 'is empty'),
    (b'-----BEGIN CERTIFICATE-----\nAAAAgarbage\n-----END CERTIFICATE-----\n', 'corrupt'),
])
def test_garbage_names_the_file(tmp_path, content, expected):
    path = tmp_path / 'broken.pem'
    path.write_bytes(content)
    with pytest.raises(OpsReadyError) as info:
        loading.load_certificate_file(str(path))
    assert str(path) in info.value.message and expected in info.value.message


def test_key_file_given_as_certificate_is_explained(tmp_path):
    path = tmp_path / 'oops.pem'
    path.write_bytes(key_pem(ec_key()))
    with pytest.raises(OpsReadyError, match='no CERTIFICATE block'):
        loading.load_certificate_file(str(path))


def test_describe_days_fraction_and_key(ca):
    leaf, key = ca.issue('app.test', 30, lifetime=90, sans=['DNS:app.test', 'DNS:www.app.test', 'IP:127.0.0.1'])
    info = inspection.describe(leaf, now())
    assert 29.9 < info['days_remaining'] <= 30
    assert abs(info['lifetime_remaining'] - 30 / 90) < 0.01
    assert info['subject_alt_names'] == ['DNS:app.test', 'DNS:www.app.test', 'IP:127.0.0.1']
    assert info['common_name'] == 'app.test' and info['issuer'] == 'CN=opsready test CA'
    assert info['serial'] == serial_hex(leaf)
    assert (info['key_type'], info['key_size'], info['curve']) == ('ec', 256, 'secp256r1')
    assert not info['expired'] and not info['self_signed']
    assert inspection.key_matches(leaf, key) and not inspection.key_matches(leaf, ec_key())


def test_chain_verification(ca):
    leaf, _key = ca.issue('app.test', 30)
    assert inspection.verify_chain(leaf, [], [ca.cert], now())[0]
    other = CA('another CA')
    ok, reason = inspection.verify_chain(leaf, [], [other.cert], now())
    assert not ok and 'no issuer' in reason
    expired, _key = ca.issue('old.test', -1)
    ok, reason = inspection.verify_chain(expired, [], [ca.cert], now())
    assert not ok and 'not valid now' in reason
    # An impostor CA with the same name but another key must not verify.
    impostor = CA('opsready test CA')
    assert not inspection.verify_chain(leaf, [], [impostor.cert], now())[0]


def test_inventory_reports_or_fails_on_errors(tmp_path, ca):
    good, key = ca.issue('good.test', 100, lifetime=365)
    (tmp_path / 'good.crt').write_bytes(cert_pem(good))
    (tmp_path / 'good.key').write_bytes(key_pem(key))
    (tmp_path / 'bad.crt').write_bytes(b'garbage')
    (tmp_path / 'ca.crt').write_bytes(cert_pem(ca.cert))
    certs, errors = inventory.collect([str(tmp_path / '*.crt'), str(tmp_path / 'missing.crt')], [],
                                      privatekey_paths={str(tmp_path / 'good.crt'): str(tmp_path / 'good.key')},
                                      ca_bundle=str(tmp_path / 'ca.crt'), stop_on_error=False)
    by_source = {c['source']: c for c in certs}
    assert by_source[str(tmp_path / 'good.crt')]['key_matches'] is True
    assert by_source[str(tmp_path / 'good.crt')]['chain_valid'] is True
    assert by_source[str(tmp_path / 'ca.crt')]['self_signed'] is True
    assert sorted(e['source'] for e in errors) == [str(tmp_path / 'bad.crt'), str(tmp_path / 'missing.crt')]
    with pytest.raises(OpsReadyError, match='bad.crt'):
        inventory.collect([str(tmp_path / '*.crt')], [], stop_on_error=True)


def test_not_yet_valid_is_reported(ca):
    leaf, _key = ca.issue('future.test', 100, lifetime=50)
    info = inspection.describe(leaf, now() - datetime.timedelta(days=60))
    assert info['not_yet_valid'] is True


def test_unreadable_key_still_reports_the_certificate(tmp_path, ca):
    good, _key = ca.issue('k.test', 100, lifetime=365)
    (tmp_path / 'k.crt').write_bytes(cert_pem(good))
    certs, errors = inventory.collect([str(tmp_path / 'k.crt')], [],
                                      privatekey_paths={str(tmp_path / 'k.crt'): str(tmp_path / 'missing.key')},
                                      stop_on_error=False)
    assert certs[0]['serial'] == serial_hex(good) and certs[0]['key_matches'] is None
    assert errors[0]['source'] == str(tmp_path / 'missing.key') and 'Cannot read private key' in errors[0]['msg']
