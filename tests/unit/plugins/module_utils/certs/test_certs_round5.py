"""Round 5: what an external CA hands back is installed only as a pair that serves: the leaf first,
then its issuers in order, nothing else (no key, no trailing bytes), every intermediate present, and
no name of the live certificate lost. A refusal changes nothing on disk."""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pki import CA, cert_pem, key_pem

from ansible_collections.opsready.operations.plugins.module_utils.certs import inspection, loading, renewal
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


def opts(cert, key, **extra):
    base = dict(path=cert, privatekey_path=key, ca_cert=None, ca_key=None, ca_key_passphrase=None, self_signed=False,
                renew_before_days=None, force=False, key_type='ec', key_size=4096, curve='secp256r1',
                common_name=None, subject_alt_names=None, valid_days=None, include_chain=False, backup_dir=None,
                keep_backups=5, csr_only=False, csr_path=None, install=None, rollback=False, owner=None)
    base.update(extra)
    return base


def intermediate_of(root: CA, name: str = 'opsready intermediate', days: float = 1000) -> CA:
    inter = CA(name)
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    inter.cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                  .issuer_name(root.cert.subject).public_key(inter.key.public_key())
                  .serial_number(x509.random_serial_number())
                  .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
                  .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                  .sign(root.key, hashes.SHA256()))
    return inter


@pytest.fixture
def chain(tmp_path):
    """A live leaf (key + leaf + intermediate) issued by an intermediate under a root; ca_cert = root + intermediate."""
    root = CA('opsready root')
    inter = intermediate_of(root)
    live = tmp_path / 'live'
    live.mkdir()
    old, key = inter.issue('www.test', 3, sans=['DNS:www.test', 'DNS:test'])
    cert_path, key_path = live / 'site.crt', live / 'site.key'
    cert_path.write_bytes(cert_pem(old) + cert_pem(inter.cert))
    key_path.write_bytes(key_pem(key))
    os.chmod(key_path, 0o600)
    bundle = tmp_path / 'ca-bundle.crt'
    bundle.write_bytes(cert_pem(root.cert) + cert_pem(inter.cert))
    return root, inter, key, str(cert_path), str(key_path), str(bundle)


def snapshot(*paths):
    return [(open(p, 'rb').read(), os.stat(p).st_mode) for p in paths]


def install(tmp_path, cert_path, key_path, bundle, data, **extra):
    issued = tmp_path / 'issued.pem'
    issued.write_bytes(data)
    return renewal.install(opts(cert_path, key_path, install=str(issued), ca_cert=bundle, **extra), check_mode=False)


def test_issued_file_without_its_intermediate_is_refused(tmp_path, chain):
    root, inter, key, cert_path, key_path, bundle = chain
    before = snapshot(cert_path, key_path)
    new, _k = inter.issue('www.test', 90, key=key, sans=['DNS:www.test', 'DNS:test'])
    with pytest.raises(OpsReadyError, match='intermediate'):
        install(tmp_path, cert_path, key_path, bundle, cert_pem(new))
    assert snapshot(cert_path, key_path) == before


def test_issued_file_out_of_order_with_garbage_and_a_key_is_installed_clean(tmp_path, chain):
    root, inter, key, cert_path, key_path, bundle = chain
    new, _k = inter.issue('www.test', 90, key=key, sans=['DNS:www.test', 'DNS:test'])
    messy = (cert_pem(root.cert) + cert_pem(inter.cert) + cert_pem(new) + key_pem(key)
             + b'\nissued by the portal; questions to pki@example.com\n')
    result = install(tmp_path, cert_path, key_path, bundle, messy)
    assert result['changed']
    data = open(cert_path, 'rb').read()
    assert b'PRIVATE KEY' not in data and b'portal' not in data   # the cert file is 0644: never a key in it
    certs, _fmt = loading.parse_certificates(data, cert_path)
    assert [c.serial_number for c in certs] == [new.serial_number, inter.cert.serial_number, root.cert.serial_number]


def test_issued_certificate_that_lost_a_name_is_refused(tmp_path, chain):
    root, inter, key, cert_path, key_path, bundle = chain
    before = snapshot(cert_path, key_path)
    new, _k = inter.issue('www.test', 90, key=key, sans=['DNS:www.test'])
    with pytest.raises(OpsReadyError, match='DNS:test'):
        install(tmp_path, cert_path, key_path, bundle, cert_pem(new) + cert_pem(inter.cert))
    assert snapshot(cert_path, key_path) == before
    # naming the new list on purpose is what allows dropping a name
    result = install(tmp_path, cert_path, key_path, bundle, cert_pem(new) + cert_pem(inter.cert),
                     subject_alt_names=['DNS:www.test'])
    assert result['changed']


def test_expired_intermediate_is_refused(tmp_path, chain):
    root, inter, key, cert_path, key_path, bundle = chain
    before = snapshot(cert_path, key_path)
    old_inter = intermediate_of(root, 'expired intermediate', days=1)   # started 2 days ago: expired
    new, _k = old_inter.issue('www.test', 90, key=key, sans=['DNS:www.test', 'DNS:test'])
    with pytest.raises(OpsReadyError, match='not valid now'):
        install(tmp_path, cert_path, key_path, bundle, cert_pem(new) + cert_pem(old_inter.cert))
    assert snapshot(cert_path, key_path) == before


def test_a_der_certificate_file_stays_der(tmp_path):
    """A service configured with a DER file cannot read the PEM a renewal used to write there."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert_path, key_path, old = ca.write_leaf(tmp_path, 'der.test', 3)
    with open(cert_path, 'wb') as handle:
        handle.write(old.public_bytes(serialization.Encoding.DER))
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, include_chain=True),
                           check_mode=False)
    assert result['changed']
    with open(cert_path, 'rb') as handle:
        new = x509.load_der_x509_certificate(handle.read())   # raises on PEM
    assert new.serial_number != old.serial_number
    assert any('DER' in w for w in result.get('warnings', []))   # the chain asked for cannot be in a DER file


@pytest.mark.parametrize('old_key', ['rsa2048', 'secp384r1'])
def test_renewal_keeps_the_key_type_of_the_live_certificate(tmp_path, old_key):
    """Without key_type, an EC certificate behind an ECDSA-only cipher list must not come back RSA (nor an
    RSA 2048 one as RSA 4096 for a device that cannot do 4096): the service would stop serving it."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if old_key == 'rsa2048'
           else ec.generate_private_key(ec.SECP384R1()))
    cert_path, key_path, _old = ca.write_leaf(tmp_path, 'keep.test', 3, key=key)
    o = opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, key_type=None, key_size=None, curve=None)
    dry = renewal.renew(o, check_mode=True)
    result = renewal.renew(o, check_mode=False)
    new_key = loading.load_private_key(key_path)
    if old_key == 'rsa2048':
        assert isinstance(new_key, rsa.RSAPrivateKey) and new_key.key_size == 2048
        assert (dry['certificate']['key_type'], dry['certificate']['key_size']) == ('rsa', 2048)
    else:
        assert isinstance(new_key, ec.EllipticCurvePrivateKey) and new_key.curve.name == 'secp384r1'
        assert (dry['certificate']['key_type'], dry['certificate']['curve']) == ('ec', 'secp384r1')
    assert result['certificate']['key_type'] == dry['certificate']['key_type']
    # asked for explicitly, the type changes
    renewal.renew(dict(o, force=True, key_type='ec', curve='secp256r1'), check_mode=False)
    assert loading.load_private_key(key_path).curve.name == 'secp256r1'


def test_an_encrypted_live_key_is_replaced_by_a_0600_key_and_the_result_says_it_is_not_encrypted(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    cert_path, key_path, _old = ca.write_leaf(tmp_path, 'enc.test', 3, key=key)
    with open(key_path, 'wb') as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b'secret passphrase')))
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, key_type=None, key_size=None,
                                curve=None), check_mode=False)
    assert result['changed'] and oct(os.stat(key_path).st_mode & 0o777) == '0o600'
    assert any('not encrypted' in w for w in result.get('warnings', []))
    assert 'secret passphrase' not in repr(result)


def test_live_file_with_its_ca_first_renews_the_leaf_not_the_ca(tmp_path):
    """A live file holding the CA before the leaf: the renewal took the CA's subject and no names (the
    checks passed, the new certificate covered nothing the service is reached by)."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert_path, key_path, old = ca.write_leaf(tmp_path, 'order.test', 3)
    with open(cert_path, 'wb') as handle:
        handle.write(cert_pem(ca.cert) + cert_pem(old))
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert result['previous']['subject'] == old.subject.rfc4514_string()
    new = loading.load_certificate_file(cert_path)[0][0]
    assert new.subject == old.subject
    assert inspection.subject_alt_names(new) == ['DNS:order.test', 'IP:127.0.0.1']
