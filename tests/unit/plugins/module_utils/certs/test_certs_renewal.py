"""Renewal end to end on real files: window, local CA, self-signed, checks before the swap, kept
previous pair, owner/mode preserved, check mode, CSR + install for an external CA, rollback."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from pki import CA, cert_pem, ec_key, key_pem, now, serial_hex

from ansible_collections.opsready.operations.plugins.module_utils.certs import inspection, loading, renewal, swap
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def opts(cert, key, **extra):
    base = dict(path=cert, privatekey_path=key, ca_cert=None, ca_key=None, ca_key_passphrase=None, self_signed=False,
                renew_before_days=None, force=False, key_type='ec', key_size=4096, curve='secp256r1',
                common_name=None, subject_alt_names=None, valid_days=None, include_chain=False, backup_dir=None,
                keep_backups=5, csr_only=False, csr_path=None, install=None, rollback=False, owner=None)
    base.update(extra)
    return base


def load(path):
    return loading.load_certificate_file(path)[0][0]


@pytest.fixture
def pki(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    return ca, ca_cert, ca_key, live


def test_due_certificate_is_renewed_and_previous_pair_kept(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, old = ca.write_leaf(live, 'due.test', days_left=5, lifetime=90)
    os.chmod(cert_path, 0o640)
    os.chmod(key_path, 0o400)
    os.chown(key_path, 0, 4)   # root:adm, as ssl-cert style group ownership
    old_key_bytes = open(key_path, 'rb').read()
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert result['changed'] and result['due']
    new = load(cert_path)
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject
    assert inspection.subject_alt_names(new) == ['DNS:due.test', 'IP:127.0.0.1']
    assert inspection.key_matches(new, loading.load_private_key(key_path))
    assert inspection.verify_chain(new, [], [ca.cert], now())[0]
    assert 89 < (new.not_valid_after_utc - now()).days + 1 <= 90      # keeps the 90-day lifetime
    assert stat.S_IMODE(os.stat(cert_path).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o400
    assert os.stat(key_path).st_gid == 4
    assert result['previous']['serial'] == serial_hex(old) and result['certificate']['serial'] == serial_hex(new)
    backup = result['backup']
    assert open(backup['cert'], 'rb').read() == cert_pem(old)
    assert open(backup['key'], 'rb').read() == old_key_bytes
    assert stat.S_IMODE(os.stat(backup['key']).st_mode) == 0o600
    # Second run: nothing due, nothing touched.
    again = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert not again['changed'] and not again['due'] and load(cert_path).serial_number == new.serial_number


def test_fresh_certificate_untouched_and_check_mode_writes_nothing(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, old = ca.write_leaf(live, 'fresh.test', days_left=200, lifetime=365)
    before = sorted(os.listdir(live))
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert not result['changed'] and 'renews below one third' in result['reason']
    forced = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, force=True, valid_days=30),
                           check_mode=True)
    assert forced['changed'] and forced['previous']['serial'] == serial_hex(old)
    assert forced['certificate']['serial'] == '(new random serial)'
    assert 'serial: %s' % serial_hex(old) in forced['diff']['before']
    assert forced['certificate']['not_after'][:10] in forced['diff']['after']
    assert sorted(os.listdir(live)) == before and load(cert_path).serial_number == old.serial_number


def test_expired_self_signed_and_issuer_must_be_explicit(tmp_path):
    ca = CA()
    cert_path, key_path, _old = ca.write_leaf(tmp_path, 'expired.test', days_left=-3, lifetime=30)
    with pytest.raises(OpsReadyError, match='no issuer is configured'):
        renewal.renew(opts(cert_path, key_path), check_mode=False)
    result = renewal.renew(opts(cert_path, key_path, self_signed=True, curve='secp384r1'), check_mode=False)
    assert result['changed'] and 'expired' in result['reason']
    new = load(cert_path)
    assert inspection.is_self_signed(new)
    assert inspection.public_key_info(new.public_key()) == ('ec', 384, 'secp384r1')


def test_default_key_is_rsa_4096(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert_path, key_path, _old = ca.write_leaf(tmp_path, 'rsa.test', days_left=1)
    o = opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, key_type='rsa')   # key_size default 4096
    renewal.renew(o, check_mode=False)
    assert inspection.public_key_info(load(cert_path).public_key()) == ('rsa', 4096, None)
    key_text = open(key_path, 'rb').read()
    assert b'BEGIN PRIVATE KEY' in key_text and b'ENCRYPTED' not in key_text


def test_wrong_ca_key_changes_nothing(pki):
    ca, ca_cert, _ca_key, live = pki
    cert_path, key_path, old = ca.write_leaf(live, 'due.test', days_left=2)
    wrong = live / 'wrong-ca.key'
    wrong.write_bytes(key_pem(ec_key()))
    with pytest.raises(OpsReadyError, match='is not the key of ca_cert'):
        renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=str(wrong)), check_mode=False)
    assert load(cert_path).serial_number == old.serial_number
    assert [n for n in os.listdir(live) if '.bak' in n] == []


def test_new_names_and_chain_file(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'old.test', days_left=2)
    renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, common_name='new.test',
                       subject_alt_names=['new.test', 'IP:127.0.0.2'], include_chain=True), check_mode=False)
    certs, _pem_text = loading.load_certificate_file(cert_path)
    assert len(certs) == 2 and certs[1].serial_number == ca.cert.serial_number
    assert inspection.subject_alt_names(certs[0]) == ['DNS:new.test', 'IP:127.0.0.2']
    assert 'CN=new.test' in certs[0].subject.rfc4514_string() and 'O=OpsReady Test' in certs[0].subject.rfc4514_string()


def test_swap_failure_puts_old_key_back(pki, monkeypatch):
    """Fault injection: the certificate write fails (the disk is full), and its rename fails after the key's.
    Both files are written before either is renamed (certfid9), so a failed write no longer reaches the key."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, old = ca.write_leaf(live, 'fault.test', days_left=2)
    old_key = open(key_path, 'rb').read()
    for step in ('stage', 'commit'):
        real = getattr(safeio.SafeDir, step)

        def failing(directory, name, *args, real=real, step=step, **kw):
            target = args[0] if step == 'commit' else name
            if directory.join(target) == cert_path:
                raise OSError(28, 'No space left on device', cert_path)
            return real(directory, name, *args, **kw)

        monkeypatch.setattr(safeio.SafeDir, step, failing)
        # an OSError reaches the caller as the module words it (hostfs10: with the staged files removed before it)
        with pytest.raises(OpsReadyError, match='No space left on device'):
            renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
        monkeypatch.undo()
        assert open(key_path, 'rb').read() == old_key and load(cert_path).serial_number == old.serial_number
        assert not [n for n in os.listdir(live) if n.endswith('.tmp')]


def test_rollback_restores_previous_pair_and_is_idempotent(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, old = ca.write_leaf(live, 'rb.test', days_left=2)
    old_key = open(key_path, 'rb').read()
    renewed = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    check = renewal.rollback(opts(cert_path, key_path, rollback=True), check_mode=True)
    assert check['changed'] and load(cert_path).serial_number != old.serial_number
    result = renewal.rollback(opts(cert_path, key_path, rollback=True), check_mode=False)
    assert result['changed'] and result['rolled_back']
    assert load(cert_path).serial_number == old.serial_number and open(key_path, 'rb').read() == old_key
    assert result['certificate']['serial'] == serial_hex(old)
    rejected = load(result['rejected']['cert'])
    assert serial_hex(rejected) == renewed['certificate']['serial']
    assert stat.S_IMODE(os.stat(result['rejected']['key']).st_mode) == 0o600
    again = renewal.rollback(opts(cert_path, key_path, rollback=True), check_mode=False)
    assert not again['changed']


def test_rollback_without_backup_says_so(tmp_path):
    ca = CA()
    cert_path, key_path, _cert = ca.write_leaf(tmp_path, 'nobak.test', days_left=20)
    with pytest.raises(OpsReadyError, match='nothing to roll back to'):
        renewal.rollback(opts(cert_path, key_path, rollback=True), check_mode=False)


def test_keep_backups_prunes_oldest_pairs(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _cert = ca.write_leaf(live, 'many.test', days_left=2)
    for _renewal in range(4):
        renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, force=True, keep_backups=2),
                      check_mode=False)
    pair = swap.Pair(cert_path, key_path)
    assert len(pair.backups()) == 2
    assert len([n for n in os.listdir(live) if n.endswith('.bak')]) == 4


def test_backup_dir(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _cert = ca.write_leaf(live, 'bd.test', days_left=2)
    backups = live.parent / 'kept'
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key, backup_dir=str(backups)),
                           check_mode=False)
    assert os.path.dirname(result['backup']['key']) == str(backups)
    # a directory made to hold kept private keys is private, and so is each kept key
    assert stat.S_IMODE(os.stat(backups).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(result['backup']['key']).st_mode) == 0o600


def test_csr_only_then_install(pki):
    ca, ca_cert, _ca_key, live = pki
    cert_path, key_path, old = ca.write_leaf(live, 'ext.test', days_left=3)
    o = opts(cert_path, key_path, csr_only=True)
    first = renewal.csr_only(o, check_mode=False)
    assert first['changed'] and os.path.exists(first['csr_path'])
    pending = first['pending_privatekey_path']
    assert stat.S_IMODE(os.stat(pending).st_mode) == 0o600
    again = renewal.csr_only(o, check_mode=False)
    assert not again['changed'], 'an unchanged CSR must not be rewritten'
    assert load(cert_path).serial_number == old.serial_number       # nothing swapped yet
    csr = x509.load_pem_x509_csr(open(first['csr_path'], 'rb').read())
    assert csr.subject == old.subject
    # The "external CA" signs the CSR.
    issued, _key = ca.issue('ext.test', 90, lifetime=90, key=loading.load_private_key(pending))
    issued_path = live.parent / 'issued.pem'
    issued_path.write_bytes(cert_pem(issued))
    # A certificate for another key is refused, nothing swapped.
    stray, _key = ca.issue('ext.test', 90)
    stray_path = live.parent / 'stray.pem'
    stray_path.write_bytes(cert_pem(stray))
    with pytest.raises(OpsReadyError, match='does not match'):
        renewal.install(opts(cert_path, key_path, install=str(stray_path), ca_cert=ca_cert), check_mode=False)
    # Wrong CA bundle: refused.
    other = CA('other CA')
    other_ca = live.parent / 'other-ca.crt'
    other_ca.write_bytes(cert_pem(other.cert))
    with pytest.raises(OpsReadyError, match='does not verify'):
        renewal.install(opts(cert_path, key_path, install=str(issued_path), ca_cert=str(other_ca)), check_mode=False)
    assert load(cert_path).serial_number == old.serial_number
    result = renewal.install(opts(cert_path, key_path, install=str(issued_path), ca_cert=ca_cert), check_mode=False)
    assert result['changed'] and load(cert_path).serial_number == issued.serial_number
    assert inspection.key_matches(load(cert_path), loading.load_private_key(key_path))
    assert not os.path.exists(pending)
    assert not renewal.install(opts(cert_path, key_path, install=str(issued_path), ca_cert=ca_cert),
                               check_mode=False)['changed']
