"""Security review, round 6: a passphrase-encrypted live key.

cert_renew said "give the passphrase" for an encrypted live key but had no option to give it, so ``install`` of
a certificate issued for the live key (no pending key) could not be done at all; and every renewal silently wrote
the new key unencrypted. ``privatekey_passphrase`` (no_log) reads the live and pending keys; ``privatekey_cipher``
(community.crypto's ``cipher``: V(auto), or V(none)) says how the new key is written, encrypted with the same
passphrase by default when one is given.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from pki import CA, cert_pem, ec_key

from ansible_collections.opsready.operations.plugins.module_utils.certs import inspection, loading, renewal
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

PASS = 'c0rrect-h0rse-batt3ry'


def opts(cert, key, **extra):
    base = dict(path=cert, privatekey_path=key, ca_cert=None, ca_key=None, ca_key_passphrase=None, self_signed=False,
                renew_before_days=None, force=False, key_type='ec', key_size=4096, curve='secp256r1',
                common_name=None, subject_alt_names=None, valid_days=None, include_chain=False, backup_dir=None,
                keep_backups=5, csr_only=False, csr_path=None, install=None, rollback=False, owner=None,
                privatekey_passphrase=None, privatekey_cipher=None)
    base.update(extra)
    return base


def encrypted_pem(key, passphrase: str = PASS) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase.encode()))


@pytest.fixture
def live(tmp_path):
    """A CA and a live pair whose key is encrypted with PASS; the certificate is due."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    directory = tmp_path / 'live'
    directory.mkdir()
    key = ec_key()
    cert, _key = ca.issue('app.test', days_left=2, key=key)
    (directory / 'app.crt').write_bytes(cert_pem(cert))
    (directory / 'app.key').write_bytes(encrypted_pem(key))
    (directory / 'app.key').chmod(0o600)
    return ca, ca_cert, ca_key, directory, key


def test_install_for_the_encrypted_live_key_with_its_passphrase(live, tmp_path):
    ca, ca_cert, _ca_key, directory, key = live
    issued, _key = ca.issue('app.test', days_left=80, key=key)
    (tmp_path / 'issued.crt').write_bytes(cert_pem(issued))
    o = opts(str(directory / 'app.crt'), str(directory / 'app.key'), ca_cert=ca_cert,
             install=str(tmp_path / 'issued.crt'), privatekey_passphrase=PASS)
    result = renewal.install(o, check_mode=False)
    assert result['changed'] and not result.get('warnings'), result
    assert loading.load_certificate_file(str(directory / 'app.crt'))[0][0] == issued
    text = (directory / 'app.key').read_bytes()
    assert b'ENCRYPTED' in text      # still encrypted, with the same passphrase
    assert inspection.key_matches(issued, loading.load_private_key(str(directory / 'app.key'), PASS))
    assert PASS not in repr(result)


def test_install_for_an_encrypted_live_key_without_the_passphrase_names_the_option(live, tmp_path):
    ca, ca_cert, _ca_key, directory, key = live
    issued, _key = ca.issue('app.test', days_left=80, key=key)
    (tmp_path / 'issued.crt').write_bytes(cert_pem(issued))
    o = opts(str(directory / 'app.crt'), str(directory / 'app.key'), ca_cert=ca_cert,
             install=str(tmp_path / 'issued.crt'))
    with pytest.raises(OpsReadyError) as caught:
        renewal.install(o, check_mode=False)
    assert 'privatekey_passphrase' in caught.value.message


def test_wrong_passphrase_is_said_without_echoing_it(live, tmp_path):
    ca, ca_cert, _ca_key, directory, key = live
    issued, _key = ca.issue('app.test', days_left=80, key=key)
    (tmp_path / 'issued.crt').write_bytes(cert_pem(issued))
    o = opts(str(directory / 'app.crt'), str(directory / 'app.key'), ca_cert=ca_cert,
             install=str(tmp_path / 'issued.crt'), privatekey_passphrase='not-' + PASS)
    with pytest.raises(OpsReadyError) as caught:
        renewal.install(o, check_mode=False)
    assert 'wrong passphrase' in caught.value.message and PASS not in caught.value.message


@pytest.mark.parametrize('cipher', [None, 'auto', 'none'])
def test_renewed_key_keeps_the_passphrase_unless_told_not_to(live, cipher):
    ca, ca_cert, ca_key, directory, _key = live
    o = opts(str(directory / 'app.crt'), str(directory / 'app.key'), ca_cert=ca_cert, ca_key=ca_key,
             privatekey_passphrase=PASS, privatekey_cipher=cipher)
    result = renewal.renew(o, check_mode=False)
    assert result['changed']
    text = (directory / 'app.key').read_bytes()
    new = loading.load_certificate_file(str(directory / 'app.crt'))[0][0]
    if cipher == 'none':
        assert b'ENCRYPTED' not in text
        assert inspection.key_matches(new, loading.load_private_key(str(directory / 'app.key')))
    else:
        assert b'ENCRYPTED' in text and not result.get('warnings')
        assert inspection.key_matches(new, loading.load_private_key(str(directory / 'app.key'), PASS))


def test_csr_only_then_install_keep_the_pending_key_encrypted(live, tmp_path):
    ca, ca_cert, _ca_key, directory, _key = live
    base = dict(ca_cert=ca_cert, privatekey_passphrase=PASS)
    o = opts(str(directory / 'app.crt'), str(directory / 'app.key'), csr_only=True, **base)
    renewal.csr_only(o, check_mode=False)
    pending = (directory / ('app.key' + renewal.PENDING_SUFFIX)).read_bytes()
    assert b'ENCRYPTED' in pending
    key = loading.parse_private_key(pending, 'pending', PASS)
    issued, _key = ca.issue('app.test', days_left=80, key=key)
    (tmp_path / 'issued.crt').write_bytes(cert_pem(issued))
    o = opts(str(directory / 'app.crt'), str(directory / 'app.key'), install=str(tmp_path / 'issued.crt'), **base)
    assert renewal.install(o, check_mode=False)['changed']
    assert inspection.key_matches(issued, loading.load_private_key(str(directory / 'app.key'), PASS))
