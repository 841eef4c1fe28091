"""cert_renew writing into directories a user controls, and special files as its inputs.

Deterministic cases (the racing ones are in tests/faults/test_hostile_files.py): a key directory owned
by a user is refused unless ``owner`` names that user; planted symlinks are never written through or
read; FIFOs, /dev/zero and huge files as inputs fail at once with a message naming them."""

from __future__ import annotations

import os
import pwd
import signal
import stat

import pytest
from pki import CA, cert_pem

from ansible_collections.opsready.operations.plugins.module_utils.certs import loading, renewal
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

NOBODY = pwd.getpwnam('nobody') if 'nobody' in [p.pw_name for p in pwd.getpwall()] else None
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or NOBODY is None, reason='needs root and the nobody user')


def opts(cert, key, **extra):
    base = dict(path=str(cert), privatekey_path=str(key), ca_cert=None, ca_key=None, ca_key_passphrase=None,
                self_signed=False, renew_before_days=None, force=False, key_type='ec', key_size=4096,
                curve='secp256r1', common_name=None, subject_alt_names=None, valid_days=None, include_chain=False,
                backup_dir=None, keep_backups=5, csr_only=False, csr_path=None, install=None, rollback=False,
                owner=None)
    base.update(extra)
    return base


@pytest.fixture
def alarm():
    def expired(*_args):
        raise AssertionError('timed out: blocked on a special file')
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def setup(tmp_path):
    """A CA, an outside file root must never touch, and a service directory owned by nobody."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    outside = tmp_path / 'outside'
    outside.mkdir(mode=0o700)
    victim = outside / 'victim'
    victim.write_bytes(b'root only\n')
    os.chmod(victim, 0o600)
    svc = tmp_path / 'svc'
    svc.mkdir(mode=0o755)
    cert, key, old = ca.write_leaf(svc, 'svc.test', days_left=2)
    for path in (svc, cert, key):
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    return ca, ca_cert, ca_key, svc, cert, key, old, victim


def untouched(victim) -> bool:
    st = os.lstat(victim)
    return victim.read_bytes() == b'root only\n' and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0


def test_user_directory_is_refused_without_owner(setup):
    ca, ca_cert, ca_key, svc, cert, key, _old, _victim = setup
    before = {p.name: p.read_bytes() for p in svc.iterdir()}
    with pytest.raises(OpsReadyError) as info:
        renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert 'Refusing to write into %s as root' % svc in info.value.message and 'belongs to nobody' in info.value.message
    assert 'owner' in info.value.message
    assert {p.name: p.read_bytes() for p in svc.iterdir()} == before


def test_with_owner_the_files_belong_to_that_user_and_the_key_is_0600(setup):
    ca, ca_cert, ca_key, svc, cert, key, old, _victim = setup
    os.chmod(key, 0o644)   # a careless previous mode is not kept
    result = renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key, owner='nobody'), check_mode=False)
    assert result['changed']
    for path in (cert, key, result['backup']['cert'], result['backup']['key']):
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode) and st.st_uid == NOBODY.pw_uid, path
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(result['backup']['key']).st_mode) == 0o600
    assert loading.load_certificate_file(cert)[0][0].serial_number != old.serial_number


@pytest.mark.parametrize('planted', ['key', 'cert'])
def test_planted_symlink_is_never_followed(setup, planted):
    ca, ca_cert, ca_key, svc, cert, key, _old, victim = setup
    target = key if planted == 'key' else cert
    os.unlink(target)
    os.symlink(victim, target)
    os.lchown(target, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(OpsReadyError, match='is a symlink and symlinks are not followed'):
        renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key, owner='nobody', force=True), check_mode=False)
    assert untouched(victim)
    assert not [p for p in svc.iterdir() if p.name.endswith('.bak')], 'nothing kept from the victim'


def test_planted_pending_symlink_is_replaced_not_written_through(setup):
    _ca, _ca_cert, _ca_key, svc, cert, key, _old, victim = setup
    pending = str(key) + '.pending'
    os.symlink(victim, pending)
    os.lchown(pending, NOBODY.pw_uid, NOBODY.pw_gid)
    result = renewal.csr_only(opts(cert, key, csr_only=True, owner='nobody'), check_mode=False)
    assert result['changed'] and untouched(victim)
    st = os.lstat(pending)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == NOBODY.pw_uid


def test_group_or_world_writable_directory_is_refused_even_with_owner(setup):
    ca, ca_cert, ca_key, svc, cert, key, _old, _victim = setup
    os.chmod(svc, 0o1777)
    with pytest.raises(OpsReadyError, match='writable by others'):
        renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key, owner='nobody'), check_mode=False)


def test_root_directory_keeps_working_and_a_root_symlink_to_the_key_is_replaced(tmp_path):
    """A root-owned directory is trusted: its links were put there by root (e.g. key -> key.2026)."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    cert, key, _old = ca.write_leaf(live, 'root.test', days_left=2)
    os.rename(key, str(key) + '.2026')
    os.symlink(os.path.basename(key) + '.2026', key)
    result = renewal.renew(opts(cert, key, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    assert result['changed'] and stat.S_ISREG(os.lstat(key).st_mode)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


@pytest.mark.parametrize('special', ['fifo', 'dev-zero', 'directory', 'huge'])
@pytest.mark.parametrize('where', ['path', 'ca_cert', 'ca_key', 'install'])
def test_special_files_as_inputs_fail_at_once(tmp_path, alarm, special, where):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    cert, key, _old = ca.write_leaf(live, 'in.test', days_left=2)
    odd = live / 'odd.pem'
    if special == 'fifo':
        os.mkfifo(odd)
    elif special == 'dev-zero':
        os.symlink('/dev/zero', odd)
    elif special == 'directory':
        odd.mkdir()
    else:
        with open(odd, 'wb') as handle:
            handle.truncate(loading.MAX_CERT_FILE_BYTES + 1)
    o = opts(cert, key, ca_cert=ca_cert, ca_key=ca_key)
    if where == 'path':
        os.unlink(cert) if special != 'directory' else None
        o['path'] = str(odd)
    elif where == 'install':
        o.update(install=str(odd), ca_key=None)
    else:
        o[where] = str(odd)
    before = sorted(os.listdir(live))
    action = renewal.install if where == 'install' else renewal.renew
    with pytest.raises(OpsReadyError) as info:
        action(o, check_mode=False)
    message = info.value.message
    assert str(odd) in message or os.path.basename(str(odd)) in message, message
    assert any(word in message for word in ('FIFO', 'character device', 'directory', 'more than the')), message
    assert sorted(os.listdir(live)) == before


def test_issued_certificate_is_read_once_and_capped(tmp_path):
    """install reads what the CA issued with the same rules (regular file, cap), then swaps it in."""
    ca = CA()
    ca_cert, _ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    cert, key, _old = ca.write_leaf(live, 'ext.test', days_left=2)
    csr = renewal.csr_only(opts(cert, key, csr_only=True), check_mode=False)
    issued, _key = ca.issue('ext.test', 90, key=loading.load_private_key(csr['pending_privatekey_path']))
    (tmp_path / 'issued.pem').write_bytes(cert_pem(issued))
    result = renewal.install(opts(cert, key, install=str(tmp_path / 'issued.pem'), ca_cert=ca_cert), check_mode=False)
    assert result['changed'] and loading.load_certificate_file(cert)[0][0].serial_number == issued.serial_number
