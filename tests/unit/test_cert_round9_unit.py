"""Round 9 of the certificate red team: what a PKI operator meets with real certificates after a renewal.

- a run killed between the key rename and the certificate rename leaves a new key with the old certificate;
  the next run must put a matching pair back before it decides anything (and never keep the broken pair as
  the "previous pair" a rollback would restore);
- an issued certificate (external CA or ACME) that cannot serve TLS where the live one did (extended key usage
  without serverAuth, key usage without digitalSignature, a CA certificate) is refused before the swap;
- the ACME chain is checked like an installed one (every name kept) and written leaf first, issuers in order;
- a world-readable key is replaced 0600, not 0640 with whatever group it had;
- cert_info names every SAN as openssl does (othername, DirName, Registered ID), never a Python repr;
- an HTTP-01 token with a trailing newline never becomes a file name.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

sys.path.insert(0, str(Path(__file__).resolve().parent / 'plugins' / 'module_utils' / 'certs'))
from pki import CA, cert_pem, ec_key, key_pem, now  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.certs import (  # noqa: E402
    acme_challenges, acme_renewal, inspection, inventory, loading, renewal, swap)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio  # noqa: E402


def opts(cert, key, **extra):
    base = dict(path=str(cert), privatekey_path=str(key), ca_cert=None, ca_key=None, ca_key_passphrase=None,
                self_signed=False, renew_before_days=None, force=False, key_type=None, key_size=None, curve=None,
                common_name=None, subject_alt_names=None, valid_days=None, include_chain=False, backup_dir=None,
                keep_backups=5, csr_only=False, csr_path=None, install=None, rollback=False, owner=None)
    base.update(extra)
    return base


def live_pair_matches(cert_path, key_path) -> bool:
    cert = renewal._leaf_of(loading.load_certificate_file(str(cert_path))[0], swap.Pair(str(cert_path),
                                                                                        str(key_path)), {})
    return inspection.key_matches(cert, loading.load_private_key(str(key_path)))


@pytest.fixture
def pki(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    return ca, ca_cert, ca_key, live


# --- a run killed between the two renames -------------------------------------------------------------------

def _renew_killed_before_cert_rename(options):
    """The renewal, with the process killed (no finally, no except) right when the certificate is to be renamed."""
    real = safeio.SafeDir.commit

    def commit(self, tmp, name, sync=True):
        if name == os.path.basename(options['path']):
            os._exit(9)
        return real(self, tmp, name, sync)

    safeio.SafeDir.commit = commit
    renewal.renew(options, check_mode=False)
    os._exit(0)


def _kill_mid_swap(options):
    proc = multiprocessing.get_context('fork').Process(target=_renew_killed_before_cert_rename, args=(options,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 9


@pytest.mark.parametrize('due', [True, False])
def test_run_killed_between_key_and_cert_rename_is_repaired_by_the_next_run(pki, due):
    """The key is renamed first, then the certificate. Killed in between (OOM killer, reboot, a timeout of the
    play), the service is left with the new key and the old certificate and cannot load them. The next run decided
    from the certificate alone: not due -> "ok" with the broken pair served; due -> the broken pair kept as the
    newest .bak pair, which a rollback then restored."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, old = ca.write_leaf(live, 'crash.test', days_left=5 if due else 80, lifetime=90)
    old_key = Path(key_path).read_bytes()
    _kill_mid_swap(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, force=True))
    assert Path(key_path).read_bytes() != old_key and not live_pair_matches(cert_path, key_path)

    check = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=True)
    assert check['changed'] and 'interrupted' in ' '.join(check.get('warnings', []))
    assert not live_pair_matches(cert_path, key_path)   # check mode wrote nothing

    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert result['changed'] and 'interrupted' in ' '.join(result.get('warnings', []))
    assert live_pair_matches(cert_path, key_path)
    if not due:
        assert Path(key_path).read_bytes() == old_key
        assert loading.load_certificate_file(cert_path)[0][0].serial_number == old.serial_number
    else:
        assert loading.load_certificate_file(cert_path)[0][0].serial_number != old.serial_number
    # Every kept pair is a pair: a rollback never restores a key with another certificate.
    with swap.Pair(cert_path, key_path) as pair:
        for _stamp, cert_bak, key_bak in pair.backups():
            assert live_pair_matches(cert_bak, key_bak), cert_bak
    again = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert not again['changed'] and not again.get('warnings')


def test_mismatched_pair_without_a_kept_pair_to_explain_it_is_said(pki):
    """Regression guard for the repair above: a mismatch no kept pair explains is never "repaired" by guessing;
    the run says so (the certificate is left to the renewal or the operator)."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'stray.test', days_left=80, lifetime=90)
    Path(key_path).write_bytes(key_pem(ec_key()))
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert not result['changed']
    assert any('does not match' in w for w in result.get('warnings', []))


# --- issued certificates that cannot serve TLS -------------------------------------------------------------

def _issue(ca, key, names, eku=(ExtendedKeyUsageOID.SERVER_AUTH,), key_usage='default', is_ca=False):
    start = now() - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .issuer_name(ca.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=90))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if key_usage is not None:
        digital = key_usage == 'default'
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=digital, content_commitment=not digital, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=False, encipher_only=False,
            decipher_only=False), critical=True)
    return builder.sign(ca.key, hashes.SHA256())


UNUSABLE = {
    'client-auth only': (dict(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)), 'serverAuth'),
    'code signing only': (dict(eku=(ExtendedKeyUsageOID.CODE_SIGNING,)), 'serverAuth'),
    'key usage without digitalSignature': (dict(key_usage='non-repudiation only'), 'digitalSignature'),
    'a CA certificate': (dict(is_ca=True), 'a CA certificate'),
}


@pytest.mark.parametrize('kind', sorted(UNUSABLE))
def test_install_refuses_an_issued_certificate_that_cannot_serve_tls(pki, kind):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'usage.test', days_left=5, lifetime=90)
    renewal.csr_only(opts(cert_path, key_path, csr_only=True), check_mode=False)
    pending = loading.load_private_key(key_path + '.pending')
    issued = live / 'issued.pem'
    extensions, said = UNUSABLE[kind]
    issued.write_bytes(cert_pem(_issue(ca, pending, ['usage.test'], **extensions)))
    before = {p.name: p.read_bytes() for p in live.iterdir()}
    with pytest.raises(renewal.RenewalError) as info:
        renewal.install(opts(cert_path, key_path, ca_cert=ca_cert, install=str(issued),
                             subject_alt_names=['DNS:usage.test']), check_mode=True)
    assert 'nothing was swapped' in info.value.message and said in info.value.message
    with pytest.raises(renewal.RenewalError):
        renewal.install(opts(cert_path, key_path, ca_cert=ca_cert, install=str(issued),
                             subject_alt_names=['DNS:usage.test']), check_mode=False)
    assert {p.name: p.read_bytes() for p in live.iterdir()} == before


def test_install_accepts_usages_a_server_can_use(pki):
    """Regression guard: no EKU at all (any purpose), anyExtendedKeyUsage, or serverAuth among others pass."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'fine.test', days_left=5, lifetime=90)
    for eku in (None, (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,),
                (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH)):
        renewal.csr_only(opts(cert_path, key_path, csr_only=True, force=True), check_mode=False)
        pending = loading.load_private_key(key_path + '.pending')
        issued = live / 'issued.pem'
        issued.write_bytes(cert_pem(_issue(ca, pending, ['fine.test'], eku=eku)))
        result = renewal.install(opts(cert_path, key_path, ca_cert=ca_cert, install=str(issued),
                                      subject_alt_names=['DNS:fine.test']), check_mode=False)
        assert result['changed'] and live_pair_matches(cert_path, key_path)


# --- ACME: the chain the CA returns -----------------------------------------------------------------------

class _Order:
    def __init__(self, csr_pem):
        self.csr_pem = csr_pem
        self.uri = 'https://ca.test/order/1'
        self.authorizations = []
        self.fullchain_pem = ''
        self.alternative_fullchains_pem = []


def _fake_acme(monkeypatch, make_chain):
    """A CA that answers every request and issues what ``make_chain(csr)`` returns (the network is the only fake)."""
    from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_issuer

    class Session:
        def __init__(self, *args, **kwargs):
            self.jwk = None

        def connect(self):
            return {}

        def offers_ari(self):
            return False

        def register(self, *args):
            return {'uri': 'https://ca.test/acct/1', 'created': False}

        def order(self, csr_pem, replaces):
            return _Order(csr_pem)

        def finalize(self, orderr, deadline):
            orderr.fullchain_pem = make_chain(x509.load_pem_x509_csr(orderr.csr_pem))
            return orderr

    monkeypatch.setattr(acme_issuer, 'Session', Session)


def _acme_opts(cert_path, key_path, tmp_path, **extra):
    webroot = tmp_path / 'www'
    webroot.mkdir(exist_ok=True)
    acme = dict(directory_url='https://ca.test/directory', account_key_path=str(tmp_path / 'account.key'),
                account_key_content=None, contact=[], agree_tos=True, eab_kid=None, eab_hmac_key=None,
                eab_hmac_algorithm='HS256', challenge='http-01', webroot=str(webroot), preferred_chain=None,
                fullchain=True, ca_bundle=None, tls_ca_bundle=None, validate_certs=True, ari=False,
                revoke_replaced=False, revoke_reason='superseded', timeout=30, order_timeout=180)
    return opts(cert_path, key_path, acme=acme, **extra)


def _intermediate(ca):
    key = ec_key()
    start = now() - datetime.timedelta(days=1)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'opsready test intermediate')]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca.key, hashes.SHA256()))

    class Inter:
        pass
    inter = Inter()
    inter.cert, inter.key = cert, key
    return inter


def test_acme_certificate_missing_a_name_is_refused(pki, tmp_path, monkeypatch):
    """An ACME CA that issues for fewer names than ordered (a bug, a policy, a hostile CA): the install path
    refused it, the ACME path swapped it in and clients of the dropped name were refused."""
    ca, _ca_cert, _ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'a.test', days_left=5, lifetime=90)
    _fake_acme(monkeypatch, lambda csr: (cert_pem(_issue(ca, _KeyOf(csr), ['a.test'])) + cert_pem(ca.cert))
               .decode())
    before = Path(cert_path).read_bytes()
    with pytest.raises(renewal.RenewalError, match='does not cover IP:127.0.0.1'):
        acme_renewal.acme_renew(_acme_opts(cert_path, key_path, tmp_path), check_mode=False)
    assert Path(cert_path).read_bytes() == before


def test_acme_certificate_for_client_auth_only_is_refused(pki, tmp_path, monkeypatch):
    ca, _ca_cert, _ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'b.test', days_left=5, lifetime=90)
    _fake_acme(monkeypatch, lambda csr: (cert_pem(_issue(ca, _KeyOf(csr), ['b.test'],
                                                         eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)))
                                         + cert_pem(ca.cert)).decode())
    with pytest.raises(renewal.RenewalError, match='serverAuth'):
        acme_renewal.acme_renew(_acme_opts(cert_path, key_path, tmp_path, subject_alt_names=['DNS:b.test']),
                                check_mode=False)


def test_acme_chain_out_of_order_is_written_leaf_first(pki, tmp_path, monkeypatch):
    """A CA (or a proxy) returns leaf, root, intermediate: the file was written as received and a client that
    needs the intermediate right after the leaf (Java, older OpenSSL) failed the handshake."""
    ca, _ca_cert, _ca_key, live = pki
    inter = _intermediate(ca)
    cert_path, key_path, _old = ca.write_leaf(live, 'c.test', days_left=5, lifetime=90)

    def chain(csr):
        start = now() - datetime.timedelta(minutes=5)
        leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(inter.cert.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=90))
                .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                               critical=False)
                .sign(inter.key, hashes.SHA256()))
        return (b'explanatory text from the CA\n' + cert_pem(leaf) + cert_pem(ca.cert) + cert_pem(inter.cert)).decode()

    _fake_acme(monkeypatch, chain)
    result = acme_renewal.acme_renew(_acme_opts(cert_path, key_path, tmp_path), check_mode=False)
    assert result['changed']
    written = Path(cert_path).read_bytes()
    certs = x509.load_pem_x509_certificates(written)
    assert [c.subject for c in certs[1:]] == [inter.cert.subject, ca.cert.subject]
    assert written.startswith(b'-----BEGIN CERTIFICATE-----')
    assert live_pair_matches(cert_path, key_path)


class _KeyOf:
    """The public key of a CSR, passed where _issue wants ``key.public_key()``."""

    def __init__(self, csr):
        self._public = csr.public_key()

    def public_key(self):
        return self._public


# --- key modes -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('old_mode,expected', [(0o644, 0o600), (0o666, 0o600), (0o604, 0o600), (0o640, 0o640),
                                               (0o400, 0o400)])
def test_key_readable_by_others_is_replaced_0600_under_umask_000(pki, old_mode, expected):
    """A key left 0644 (a copy with the wrong umask) was replaced 0640, still readable by its group - 'users' on
    many hosts. Readable by others means it was never meant to be shared: the new key is 0600. A deliberate 0640
    (the ssl-cert group PostgreSQL reads through) and a stricter mode are kept (those two: guards)."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'mode.test', days_left=5, lifetime=90)
    os.chown(key_path, 0, 100)
    os.chmod(key_path, old_mode)
    previous = os.umask(0)
    try:
        result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    finally:
        os.umask(previous)
    assert result['changed']
    assert stat.S_IMODE(os.stat(key_path).st_mode) == expected
    assert stat.S_IMODE(os.stat(result['backup']['key']).st_mode) == 0o600
    if old_mode & 0o004:
        assert any('readable by others' in w for w in result.get('warnings', []))


# --- cert_info: every SAN as openssl names it -------------------------------------------------------------

def test_cert_info_names_othername_dirname_and_registered_id_sans(tmp_path):
    """An AD / smart-card certificate carries a UPN (otherName), a DirName and a Registered ID: cert_info showed
    them as Python reprs ("othername:b'\\x0c...'", "othername:<Name(CN=x)>")."""
    key = ec_key()
    upn = ObjectIdentifier('1.3.6.1.4.1.311.20.2.3')
    sans = [x509.DNSName('*.wild.test'), x509.IPAddress(__import__('ipaddress').ip_address('2001:db8::1')),
            x509.OtherName(upn, b'\x0c\x11user@corp.example'),
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'dir name')])),
            x509.RegisteredID(ObjectIdentifier('1.2.3.4'))]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'san.test')])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now() - datetime.timedelta(days=1))
            .not_valid_after(now() + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(key, hashes.SHA256()))
    path = tmp_path / 'san.der'
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    certs, errors = inventory.collect([str(path)], [])
    assert not errors
    assert certs[0]['subject_alt_names'] == ['DNS:*.wild.test', 'IP:2001:db8::1',
                                             'othername:UPN:user@corp.example', 'DirName:CN=dir name',
                                             'Registered ID:1.2.3.4']


# --- HTTP-01 token -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('token', ['A' * 43 + '\n', 'A' * 43 + '\r\n', '\n' + 'A' * 43])
def test_token_with_a_line_break_never_becomes_a_file_name(tmp_path, token):
    """``re.match('...$')`` accepts a string ending in a newline: a token 'AAA...\\n' made a file whose name
    ends in a newline (served at no URL the CA asks for, and left a name tools choke on)."""
    responder = acme_challenges.Webroot(str(tmp_path))
    with pytest.raises(acme_challenges.ChallengeError, match='base64url'):
        responder.deploy(token, 'x')
    responder.cleanup()
    assert list(tmp_path.iterdir()) == []


# --- cert_info: DER files as they are found ---------------------------------------------------------------

def _der_cert():
    ca = CA()
    cert, _key = ca.issue('der.test', 30)
    return ca, cert, cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize('tail', [b'\n', b'\r\n', b'\n\n  \n'])
def test_der_certificate_with_a_trailing_newline_is_read(tmp_path, tail):
    """A DER certificate with a newline after it (an editor, ``echo >>``, a transfer in text mode) was reported as
    "neither a PEM nor a DER certificate": an inventory then lost a certificate that every tool reads."""
    _ca, cert, der = _der_cert()
    path = tmp_path / 'cert.der'
    path.write_bytes(der + tail)
    certs, errors = inventory.collect([str(path)], [])
    assert not errors and [c['format'] for c in certs] == ['der']
    assert certs[0]['serial'] == inspection.serial_hex(cert)


def test_concatenated_der_certificates_are_all_reported(tmp_path):
    """``cat leaf.der ca.der > chain.der``: every certificate is reported, in order, as for a PEM bundle."""
    ca, cert, der = _der_cert()
    path = tmp_path / 'chain.der'
    path.write_bytes(der + ca.cert.public_bytes(serialization.Encoding.DER))
    certs, errors = inventory.collect([str(path)], [])
    assert not errors
    assert [(c['index'], c['format'], c['subject']) for c in certs] == [
        (0, 'der', cert.subject.rfc4514_string()), (1, 'der', ca.cert.subject.rfc4514_string())]


def test_der_certificate_followed_by_garbage_is_named_as_such(tmp_path):
    _ca, _cert, der = _der_cert()
    path = tmp_path / 'cert.der'
    path.write_bytes(der + b'\x00garbage')
    with pytest.raises(loading.CertificateLoadError) as info:
        inventory.collect([str(path)], [])
    assert 'DER certificate' in info.value.message and '8 bytes' in info.value.message
    assert 'neither' not in info.value.message


# --- the chain file ----------------------------------------------------------------------------------------

def test_full_chain_file_stays_a_full_chain(pki):
    """nginx's ssl_certificate is the leaf followed by its intermediates. A renewal without include_chain (the
    certificates role passes false unless told) wrote the leaf alone: clients without the intermediate cached
    failed the handshake with "unable to get local issuer certificate"."""
    ca, _root_cert, _root_key, live = pki
    inter = _intermediate(ca)
    inter_cert, inter_key = live.parent / 'inter.crt', live.parent / 'inter.key'
    inter_cert.write_bytes(cert_pem(inter.cert) + cert_pem(ca.cert))
    inter_key.write_bytes(key_pem(inter.key))
    key = ec_key()
    start = now() - datetime.timedelta(days=85)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'full.test')]))
            .issuer_name(inter.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName('full.test')]), critical=False)
            .sign(inter.key, hashes.SHA256()))
    cert_path, key_path = live / 'full.pem', live / 'full.key'
    cert_path.write_bytes(cert_pem(leaf) + cert_pem(inter.cert))
    key_path.write_bytes(key_pem(key))
    os.chmod(key_path, 0o600)
    result = renewal.renew(opts(cert_path, key_path, ca_cert=str(inter_cert), ca_key=str(inter_key)), check_mode=False)
    assert result['changed']
    certs = loading.load_certificate_file(str(cert_path))[0]
    assert certs[0].serial_number != leaf.serial_number
    assert [c.subject for c in certs[1:2]] == [inter.cert.subject]
    assert inspection.verify_chain(certs[0], certs[1:], [ca.cert], now())[0]


def test_leaf_only_file_stays_leaf_only(pki):
    """Regression guard: a file that held the leaf alone is not given a chain nobody asked for."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'leaf.test', days_left=5, lifetime=90)
    renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert len(loading.load_certificate_file(cert_path)[0]) == 1


def test_combined_file_readable_by_others_is_replaced_0600(tmp_path):
    """A combined PEM (certificate + key, haproxy's crt) left 0644 was written 0640 with its group - often 'users' -
    so the new key it holds stayed readable by that group, as did its kept copy. Like a key file: 0600."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert, key = ca.issue('app.test', days_left=2)
    combined, key_path = tmp_path / 'app.pem', tmp_path / 'app.key'
    combined.write_bytes(cert_pem(cert) + key_pem(key))
    key_path.write_bytes(key_pem(key))
    os.chmod(key_path, 0o600)
    os.chown(combined, 0, 100)
    os.chmod(combined, 0o644)
    result = renewal.renew(opts(combined, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert result['changed'] and b'PRIVATE KEY' in combined.read_bytes()
    assert stat.S_IMODE(combined.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(result['backup']['cert']).st_mode) == 0o600
    assert any('readable by others' in w for w in result.get('warnings', []))


# --- the window between the two renames ----------------------------------------------------------------------

def test_nothing_is_written_between_the_key_rename_and_the_certificate_rename(pki, monkeypatch):
    """Between the key's rename and the certificate's, the pair on disk does not match: a service reloading on a
    file-change event (inotify: Caddy, Traefik, kubelet) or a crash then finds no usable pair. The certificate was
    only written and fsynced after the key was in place, stretching that window by a whole fsync (seconds on a busy
    disk). Both files are now written and fsynced first; the two renames follow each other."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'window.test', days_left=5, lifetime=90)
    events = []
    real_write, real_fsync, real_replace = os.write, os.fsync, os.replace

    def write(fd, data):
        events.append('write')
        return real_write(fd, data)

    def fsync(fd):
        events.append('fsync')
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        events.append('replace:' + os.path.basename(dst))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, 'write', write)
    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    monkeypatch.undo()
    key_at = events.index('replace:window.test.key')
    assert events[key_at + 1] == 'replace:window.test.crt', events[key_at:]
    assert live_pair_matches(cert_path, key_path)
