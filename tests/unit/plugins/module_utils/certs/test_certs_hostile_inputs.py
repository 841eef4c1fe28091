"""cert_info's inputs from a hostile or broken filesystem: FIFOs, devices, directories, huge files,
symlink loops and dangling links, links out of a glob's directory; truncated PEM and DER; and SHA-1
signed certificates (roots of the system trust store, a SHA-1 leaf that ``openssl verify`` accepts)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pki import CA, cert_pem, ec_key, key_pem, now

from ansible_collections.opsready.operations.plugins.module_utils.certs import inspection, inventory, loading
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

NOBODY = 65534


@pytest.fixture(scope='module')
def ca():
    return CA()


@pytest.fixture
def alarm():
    """Fail instead of hanging: a FIFO read without a writer blocks forever."""
    def expired(*_args):
        raise AssertionError('timed out: the reader blocked')
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def load_error(path) -> str:
    with pytest.raises(OpsReadyError) as info:
        loading.load_certificate_file(str(path))
    return info.value.message


# -- special files given as paths ------------------------------------------------------------------

def test_fifo_is_refused_without_blocking(tmp_path, alarm):
    fifo = tmp_path / 'cert.pem'
    os.mkfifo(fifo)
    message = load_error(fifo)
    assert str(fifo) in message and 'FIFO' in message and 'not a regular file' in message


def test_dev_zero_is_refused_without_reading(alarm):
    message = load_error('/dev/zero')
    assert 'character device' in message and 'not a regular file' in message


def test_directory_is_refused(tmp_path):
    assert 'is a directory' in load_error(tmp_path)


def test_huge_file_is_refused_before_reading(tmp_path):
    huge = tmp_path / 'huge.pem'
    with open(huge, 'wb') as handle:
        handle.truncate(loading.MAX_CERT_FILE_BYTES + 1)  # sparse: nothing on disk, 16 MiB + 1 to a reader
    message = load_error(huge)
    assert 'more than the 16.0 MiB' in message and 'was not read' in message


def test_huge_private_key_is_refused(tmp_path):
    huge = tmp_path / 'huge.key'
    with open(huge, 'wb') as handle:
        handle.truncate(loading.MAX_KEY_FILE_BYTES + 1)
    with pytest.raises(OpsReadyError, match='more than the 1.0 MiB'):
        loading.load_private_key(str(huge))


def test_fifo_as_private_key_is_refused(tmp_path, alarm):
    fifo = tmp_path / 'key.pem'
    os.mkfifo(fifo)
    with pytest.raises(OpsReadyError, match='FIFO'):
        loading.load_private_key(str(fifo))


def test_symlink_loop_says_loop(tmp_path):
    (tmp_path / 'a.pem').symlink_to(tmp_path / 'b.pem')
    (tmp_path / 'b.pem').symlink_to(tmp_path / 'a.pem')
    found, errors = loading.expand_paths([str(tmp_path / 'a.pem')])
    assert found == [] and 'symlink loop' in errors[0].message and 'does not exist' not in errors[0].message
    assert 'symlink loop' in load_error(tmp_path / 'a.pem')


def test_dangling_symlink_names_its_target(tmp_path):
    (tmp_path / 'cert.pem').symlink_to(tmp_path / 'gone.pem')
    _found, errors = loading.expand_paths([str(tmp_path / 'cert.pem')])
    assert 'is a symlink to %s, which does not exist' % (tmp_path / 'gone.pem') in errors[0].message


def test_special_files_through_the_inventory_fail_or_report(tmp_path, alarm):
    fifo = tmp_path / 'fifo.pem'
    os.mkfifo(fifo)
    with pytest.raises(OpsReadyError, match='FIFO'):
        inventory.collect([str(fifo)], [], stop_on_error=True)
    certs, errors = inventory.collect([str(fifo), '/dev/zero'], [], stop_on_error=False)
    assert certs == [] and [e['source'] for e in errors] == [str(fifo), '/dev/zero']


# -- globs report what they skip -------------------------------------------------------------------

def test_glob_reports_what_it_skipped(tmp_path, ca, alarm):
    tree = tmp_path / 'tls'
    outside = tmp_path / 'outside'
    tree.mkdir()
    outside.mkdir()
    leaf, _key = ca.issue('good.test', 30)
    (tree / 'good.pem').write_bytes(cert_pem(leaf))
    (outside / 'elsewhere.pem').write_bytes(cert_pem(ca.cert))
    os.mkfifo(tree / 'fifo.pem')
    (tree / 'dir.pem').mkdir()
    (tree / 'loop.pem').symlink_to(tree / 'loop.pem')
    (tree / 'dangling.pem').symlink_to(tree / 'nothing')
    (tree / 'zero.pem').symlink_to('/dev/zero')
    (tree / 'inside.pem').symlink_to(tree / 'good.pem')               # inside the tree: read
    (tree / 'root-link.pem').symlink_to(outside / 'elsewhere.pem')    # root's own link in root's dir: read
    (tree / 'user-link.pem').symlink_to(outside / 'elsewhere.pem')    # someone else's link out of the tree
    os.lchown(tree / 'user-link.pem', NOBODY, NOBODY)
    certs, errors = inventory.collect([str(tree / '*.pem')], [], stop_on_error=True)
    assert sorted(os.path.basename(c['source']) for c in certs) == ['good.pem', 'inside.pem', 'root-link.pem']
    skipped = {os.path.basename(e['source']): e['msg'] for e in errors}
    assert all(e.get('skipped') for e in errors)
    assert sorted(skipped) == ['dangling.pem', 'dir.pem', 'fifo.pem', 'loop.pem', 'user-link.pem', 'zero.pem']
    assert 'FIFO' in skipped['fifo.pem'] and 'directory' in skipped['dir.pem']
    assert 'symlink loop' in skipped['loop.pem'] and 'does not exist' in skipped['dangling.pem']
    assert 'character device' in skipped['zero.pem']
    assert 'outside' in skipped['user-link.pem'] and 'not followed' in skipped['user-link.pem']


def test_glob_in_a_directory_others_can_write_does_not_follow_links_out(tmp_path, ca):
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(shared, 0o1777)
    secret = tmp_path / 'secret.pem'
    secret.write_bytes(cert_pem(ca.cert))
    (shared / 'planted.pem').symlink_to(secret)  # owned by root, but in a directory anyone can write
    certs, errors = inventory.collect([str(shared / '*.pem')], [], stop_on_error=True)
    assert certs == [] and 'not followed' in errors[0]['msg']


# -- truncated and mislabelled PEM / DER -----------------------------------------------------------

@pytest.mark.parametrize('cut', ['half', 'begin-then-garbage', 'inside-begin-line', 'second-of-bundle'])
def test_truncated_pem_says_truncated(tmp_path, ca, cut):
    leaf, _key = ca.issue('cut.test', 30)
    pem = cert_pem(leaf)
    data = {'half': pem[:len(pem) // 2],
            'begin-then-garbage': b'-----BEGIN CERTIFICATE-----\nthis is not base64 at all\n',
            'inside-begin-line': b'-----BEGIN CERTIF',
            'second-of-bundle': pem + cert_pem(ca.cert)[:200]}[cut]
    path = tmp_path / 'cut.pem'
    path.write_bytes(data)
    message = load_error(path)
    assert 'truncated' in message and str(path) in message and 'key or CSR' not in message


def test_pem_with_end_but_cut_der_says_truncated(tmp_path, ca):
    leaf, _key = ca.issue('der.test', 30)
    der = leaf.public_bytes(serialization.Encoding.DER)
    import base64
    body = base64.encodebytes(der[:len(der) - 40])
    path = tmp_path / 'short.pem'
    path.write_bytes(b'-----BEGIN CERTIFICATE-----\n' + body + b'-----END CERTIFICATE-----\n')
    message = load_error(path)
    assert 'truncated' in message and 'announces %d bytes and holds %d' % (len(der), len(der) - 40) in message


def test_truncated_der_says_truncated(tmp_path, ca):
    leaf, _key = ca.issue('der.test', 30)
    der = leaf.public_bytes(serialization.Encoding.DER)
    path = tmp_path / 'short.der'
    path.write_bytes(der[:300])
    assert 'truncated DER certificate' in load_error(path)


def test_key_and_csr_are_named_for_what_they_are(tmp_path):
    key = ec_key()
    (tmp_path / 'key.pem').write_bytes(key_pem(key))
    assert 'PRIVATE KEY (a private key)' in load_error(tmp_path / 'key.pem')
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, 'x')])).sign(key, hashes.SHA256()))
    (tmp_path / 'req.pem').write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    assert 'CERTIFICATE REQUEST (a CSR)' in load_error(tmp_path / 'req.pem')


def test_truncated_private_key_says_truncated(tmp_path):
    pem = key_pem(ec_key())
    (tmp_path / 'cut.key').write_bytes(pem[:len(pem) // 2])
    with pytest.raises(OpsReadyError, match='truncated'):
        loading.load_private_key(str(tmp_path / 'cut.key'))


# -- SHA-1 signatures ------------------------------------------------------------------------------

def openssl(*args: str) -> None:
    subprocess.run(['openssl'] + list(args), check=True, capture_output=True)


@pytest.fixture(scope='module')
def sha1_pki(tmp_path_factory):
    """A SHA-1 self-signed root and a SHA-1 leaf made by openssl (cryptography refuses to sign SHA-1)."""
    if not shutil.which('openssl'):
        pytest.skip('openssl is not installed')
    d = tmp_path_factory.mktemp('sha1')
    openssl('req', '-x509', '-sha1', '-newkey', 'rsa:2048', '-nodes', '-keyout', str(d / 'root.key'),
            '-out', str(d / 'root.crt'), '-subj', '/CN=SHA-1 Test Root', '-days', '30')
    openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', str(d / 'leaf.key'), '-out', str(d / 'leaf.csr'),
            '-subj', '/CN=sha1.test')
    openssl('x509', '-req', '-sha1', '-in', str(d / 'leaf.csr'), '-CA', str(d / 'root.crt'), '-CAkey',
            str(d / 'root.key'), '-CAcreateserial', '-days', '10', '-out', str(d / 'leaf.crt'))
    return d


def test_sha1_root_is_self_signed(sha1_pki):
    root = loading.load_certificate_file(str(sha1_pki / 'root.crt'))[0][0]
    assert root.signature_hash_algorithm.name == 'sha1'
    info = inspection.describe(root, now())
    assert info['self_signed'] is True and 'SHA-1' in info['self_signed_reason']


def test_sha1_leaf_chain_is_valid_as_openssl_says(sha1_pki):
    verdict = subprocess.run(['openssl', 'verify', '-CAfile', str(sha1_pki / 'root.crt'), str(sha1_pki / 'leaf.crt')],
                             capture_output=True, text=True, check=False)
    certs, errors = inventory.collect([str(sha1_pki / 'leaf.crt')], [], ca_bundle=str(sha1_pki / 'root.crt'))
    assert errors == []
    assert certs[0]['chain_valid'] is (verdict.returncode == 0), (certs[0]['chain_reason'], verdict.stdout)
    assert certs[0]['chain_valid'] is True


def test_sha1_leaf_under_another_root_of_the_same_name_does_not_verify(sha1_pki, tmp_path):
    openssl('req', '-x509', '-sha1', '-newkey', 'rsa:2048', '-nodes', '-keyout', str(tmp_path / 'k'),
            '-out', str(tmp_path / 'impostor.crt'), '-subj', '/CN=SHA-1 Test Root', '-days', '30')
    certs, _errors = inventory.collect([str(sha1_pki / 'leaf.crt')], [], ca_bundle=str(tmp_path / 'impostor.crt'))
    assert certs[0]['chain_valid'] is False


def test_same_name_signed_by_another_key_is_not_self_signed(tmp_path):
    """Issuer == subject is not enough: a CA re-keyed or cross-signed under the same name."""
    signer, subject_key = ec_key(), ec_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, 'Same Name CA')])
    start = now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start.replace(year=start.year + 1)).sign(signer, hashes.SHA256()))
    ok, reason = inspection.self_signature(cert)
    assert ok is False and 'does not verify' in reason


def system_roots():
    roots = []
    for path in sorted(glob.glob('/etc/ssl/certs/*.pem')):
        cert = loading.load_certificate_file(path)[0][0]
        if cert.issuer == cert.subject:
            roots.append((path, cert))
    return roots


@pytest.mark.filterwarnings('ignore::cryptography.utils.CryptographyDeprecationWarning')
def test_every_self_issued_root_of_the_system_trust_store_is_self_signed():
    roots = system_roots() if os.path.isdir('/etc/ssl/certs') else []
    if not roots:
        pytest.skip('no system trust store in /etc/ssl/certs')
    sha1 = [p for p, c in roots if c.signature_hash_algorithm and c.signature_hash_algorithm.name == 'sha1']
    wrong = [(p, inspection.self_signature(c)[1]) for p, c in roots if not inspection.is_self_signed(c)]
    assert wrong == []
    assert sha1, 'the trust store here has SHA-1 roots (DigiCert Global Root CA, ...): the test means them'


@pytest.mark.filterwarnings('ignore::cryptography.utils.CryptographyDeprecationWarning')
def test_system_bundle_verifies_a_sha1_root_chain():
    bundle = '/etc/ssl/certs/ca-certificates.crt'
    roots = [p for p, c in system_roots() if c.signature_hash_algorithm and c.signature_hash_algorithm.name == 'sha1'
             and c.not_valid_after_utc > now()] if os.path.isfile(bundle) else []
    if not roots:
        pytest.skip('no system CA bundle with SHA-1 roots')
    certs, errors = inventory.collect(roots[:5], [], ca_bundle=bundle)
    assert errors == [] and all(c['chain_valid'] and c['self_signed'] for c in certs)


def test_unreadable_paths_keep_the_glob_base(tmp_path):
    # A glob whose directory does not exist matches nothing, as before.
    assert loading.expand_paths([str(tmp_path / 'nope' / '*.pem')]) == ([], [])


def test_trusted_certificate_label_loads(tmp_path, ca):
    path = Path(tmp_path / 'trusted.pem')
    subprocess.run(['openssl', 'x509', '-addtrust', 'serverAuth', '-out', str(path)], input=cert_pem(ca.cert),
                   check=True, capture_output=True)
    assert b'TRUSTED CERTIFICATE' in path.read_bytes()
    certs, _fmt = loading.load_certificate_file(str(path))
    assert certs[0].serial_number == ca.cert.serial_number


def with_unknown_signature_algorithm(cert: x509.Certificate) -> x509.Certificate:
    """The same certificate with its ecdsa-with-SHA256 OID turned into one no library knows."""
    der = cert.public_bytes(serialization.Encoding.DER)
    known, unknown = bytes.fromhex('06082A8648CE3D040302'), bytes.fromhex('06082A8648CE3D040309')
    assert der.count(known) == 2
    return x509.load_der_x509_certificate(der.replace(known, unknown))


def test_signature_that_cannot_be_checked_is_said_so(ca):
    """Self-signature decided by names and key identifiers; the chain is not claimed valid."""
    root = with_unknown_signature_algorithm(ca.cert)
    ok, reason = inspection.self_signature(root)
    assert ok is True and 'signature algorithm 1.2.840.10045.4.3.9 cannot be verified' in reason
    leaf, _key = ca.issue('odd-alg.test', 30)
    ok, reason = inspection.verify_chain(with_unknown_signature_algorithm(leaf), [], [ca.cert], now())
    assert ok is False and 'cannot be checked' in reason and '1.2.840.10045.4.3.9' in reason
