"""Operations red team, round 6: a must-staple certificate renewed.

A live certificate carrying the TLS Feature extension (RFC 7633, ``status_request``: OCSP must-staple) was
renewed without it: the CSR asked for the subject and SANs only and the local CA / self-signed path copied only the
SANs. The renewal silently dropped a security property the operator had chosen (clients stop enforcing a stapled
OCSP answer). The new certificate, the CSR for an external CA and the ACME order now ask for the same features.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pki import CA, cert_pem, ec_key, key_pem, now

from ansible_collections.opsready.operations.plugins.module_utils.certs import loading, renewal

STAPLE = x509.TLSFeature([x509.TLSFeatureType.status_request])


def opts(cert, key, **extra):
    base = dict(path=cert, privatekey_path=key, ca_cert=None, ca_key=None, ca_key_passphrase=None, self_signed=False,
                renew_before_days=None, force=False, key_type=None, key_size=None, curve=None,
                common_name=None, subject_alt_names=None, valid_days=None, include_chain=False, backup_dir=None,
                keep_backups=5, csr_only=False, csr_path=None, install=None, rollback=False, owner=None,
                privatekey_passphrase=None, privatekey_cipher=None)
    base.update(extra)
    return base


def must_staple_leaf(ca, directory, self_signed=False):
    key = ec_key()
    end = now() + datetime.timedelta(days=2)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'staple.test')])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(subject if self_signed else ca.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(end - datetime.timedelta(days=90)).not_valid_after(end)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName('staple.test')]), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(STAPLE, critical=False))
    cert = builder.sign(key if self_signed else ca.key, hashes.SHA256())
    (directory / 'app.crt').write_bytes(cert_pem(cert))
    (directory / 'app.key').write_bytes(key_pem(key))
    (directory / 'app.key').chmod(0o600)
    return str(directory / 'app.crt'), str(directory / 'app.key')


def features(obj):
    try:
        return list(obj.extensions.get_extension_for_class(x509.TLSFeature).value)
    except x509.ExtensionNotFound:
        return []


def test_local_ca_renewal_keeps_must_staple(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert, key = must_staple_leaf(ca, tmp_path)
    result = renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert result['changed']
    new = loading.load_certificate_file(cert)[0][0]
    assert features(new) == [x509.TLSFeatureType.status_request]
    again = renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert not again['changed']


def test_self_signed_renewal_keeps_must_staple(tmp_path):
    cert, key = must_staple_leaf(None, tmp_path, self_signed=True)
    assert renewal.renew(opts(cert, key, self_signed=True), check_mode=False)['changed']
    assert features(loading.load_certificate_file(cert)[0][0]) == [x509.TLSFeatureType.status_request]


def test_csr_for_an_external_ca_asks_for_must_staple(tmp_path):
    ca = CA()
    cert, key = must_staple_leaf(ca, tmp_path)
    result = renewal.csr_only(opts(cert, key, csr_only=True), check_mode=False)
    csr = x509.load_pem_x509_csr(result['csr'].encode())
    assert features(csr) == [x509.TLSFeatureType.status_request]


def test_no_must_staple_stays_without(tmp_path):
    """Regression guard (passed before): a certificate without the extension does not gain it."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert, key, _c = ca.write_leaf(tmp_path, 'plain', days_left=2)
    assert renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)['changed']
    assert features(loading.load_certificate_file(cert)[0][0]) == []


def test_an_old_csr_without_must_staple_is_replaced(tmp_path):
    ca = CA()
    cert, key = must_staple_leaf(ca, tmp_path)
    first = renewal.csr_only(opts(cert, key, csr_only=True), check_mode=False)
    # a CSR written before must-staple was kept: same key, subject and SANs, no TLS Feature
    pending = loading.load_private_key(key + '.pending')
    old = x509.CertificateSigningRequestBuilder().subject_name(
        x509.load_pem_x509_csr(first['csr'].encode()).subject).add_extension(
        x509.SubjectAlternativeName([x509.DNSName('staple.test')]), critical=False).sign(pending, hashes.SHA256())
    (tmp_path / 'app.crt.csr').write_bytes(old.public_bytes(serialization.Encoding.PEM))
    assert renewal.csr_only(opts(cert, key, csr_only=True), check_mode=True)['changed']
    again = renewal.csr_only(opts(cert, key, csr_only=True), check_mode=False)
    assert features(x509.load_pem_x509_csr(again['csr'].encode())) == [x509.TLSFeatureType.status_request]
    assert not renewal.csr_only(opts(cert, key, csr_only=True), check_mode=False)['changed']


def test_installing_an_issued_certificate_without_must_staple_warns(tmp_path):
    ca = CA()
    ca_cert, _ca_key = ca.write(tmp_path)
    cert, key = must_staple_leaf(ca, tmp_path)
    renewal.csr_only(opts(cert, key, csr_only=True), check_mode=False)
    issued, _k = ca.issue('staple.test', days_left=80, key=loading.load_private_key(key + '.pending'),
                          sans=['DNS:staple.test'])
    (tmp_path / 'issued.crt').write_bytes(cert_pem(issued))
    result = renewal.install(opts(cert, key, ca_cert=ca_cert, install=str(tmp_path / 'issued.crt')),
                             check_mode=False)
    assert result['changed']
    assert any('must-staple' in w for w in result.get('warnings', [])), result.get('warnings')


# A combined PEM: the certificate file also holds the private key (haproxy's ``crt``, some appliances), with the key
# in its own file as privatekey_path as well. Renewal rewrote the file with the certificate only: the service found
# no key in it at its next reload and failed to start. The key block is now written back (the new key), and the file
# is treated as a key: never group-writable or world-readable, nor its kept copy.

def combined(tmp_path, mode=0o644):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert, key = ca.issue('app.test', days_left=2)
    (tmp_path / 'app.pem').write_bytes(cert_pem(cert) + key_pem(key))
    (tmp_path / 'app.pem').chmod(mode)
    (tmp_path / 'app.key').write_bytes(key_pem(key))
    (tmp_path / 'app.key').chmod(0o600)
    return opts(str(tmp_path / 'app.pem'), str(tmp_path / 'app.key'), ca_cert=ca_cert, ca_key=ca_key)


def test_combined_pem_keeps_its_key_block_with_the_new_key(tmp_path):
    o = combined(tmp_path)
    before = (tmp_path / 'app.pem').read_bytes()
    assert renewal.renew(o, check_mode=True)['changed']
    assert (tmp_path / 'app.pem').read_bytes() == before
    assert renewal.renew(o, check_mode=False)['changed']
    data = (tmp_path / 'app.pem').read_bytes()
    new_cert = x509.load_pem_x509_certificates(data)[0]
    combined_key = serialization.load_pem_private_key(data, None)
    separate_key = loading.load_private_key(o['privatekey_path'])
    assert combined_key.private_numbers() == separate_key.private_numbers()
    assert new_cert.public_key() == combined_key.public_key()
    assert (tmp_path / 'app.pem').stat().st_mode & 0o037 == 0, oct((tmp_path / 'app.pem').stat().st_mode)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith('app.pem.') and p.name.endswith('.cert.bak')]
    assert len(kept) == 1 and b'PRIVATE KEY' in kept[0].read_bytes()
    assert kept[0].stat().st_mode & 0o037 == 0, oct(kept[0].stat().st_mode)
    assert not renewal.renew(o, check_mode=False)['changed']


def test_combined_pem_rollback_puts_the_old_key_block_back(tmp_path):
    """Regression guard (passed before): rollback restores the kept combined file byte for byte."""
    o = combined(tmp_path, mode=0o600)
    before = (tmp_path / 'app.pem').read_bytes()
    renewal.renew(o, check_mode=False)
    assert renewal.rollback(dict(o, rollback=True), check_mode=False)['changed']
    assert (tmp_path / 'app.pem').read_bytes() == before


# A PKCS#12 bundle given as path was refused as "neither a PEM nor a DER certificate ... restore it from backup":
# the operator was sent to restore a file that is not damaged. The message now says what the file is and what to do.

def test_a_pkcs12_bundle_is_named_as_such_and_left_as_it_is(tmp_path):
    from cryptography.hazmat.primitives.serialization import pkcs12
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert, key = ca.issue('app.test', days_left=2)
    for password in (None, b'secret'):
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        (tmp_path / 'app.p12').write_bytes(pkcs12.serialize_key_and_certificates(b'app', key, cert, [ca.cert],
                                                                                 encryption))
        (tmp_path / 'app.key').write_bytes(key_pem(key))
        before = (tmp_path / 'app.p12').read_bytes()
        for check_mode in (True, False):
            try:
                renewal.renew(opts(str(tmp_path / 'app.p12'), str(tmp_path / 'app.key'), ca_cert=ca_cert,
                                   ca_key=ca_key), check_mode=check_mode)
            except loading.CertificateLoadError as exc:
                assert 'PKCS#12' in exc.message and 'restore it from backup' not in exc.message, exc.message
            else:
                raise AssertionError('a PKCS#12 bundle was accepted')
        assert (tmp_path / 'app.p12').read_bytes() == before
