"""Fault matrix, hostile filesystem: an unprivileged user (created and removed here) races symlinks and
renames against root's writes and reads in a directory that user owns - cert_renew's key and
certificate, file_backup's source tree, file_restore's target tree - and special files (FIFO,
/dev/zero, directories, symlink loops, huge sparse files) are given to every module that reads paths.

Each race runs for a few seconds: the racer (a separate process running as the user) counts every
swap it made; root runs the real code in a loop meanwhile. Afterwards every file outside the user's
tree is compared with its state before (content, mode, owner, mtime): "files outside the tree
touched" must be 0, and no byte of a root-only secret may reach the user's tree or an archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from tests.faults.helpers import play, unprivileged_python

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils' / 'certs'))
from pki import CA  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.certs import renewal  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract  # noqa: E402

RACE_SECONDS = 3.0
SECRET = b'ROOT-ONLY-SECRET-' + b'x' * 47   # 64 bytes, the size of every file the racer owns

# The racer: runs as the unprivileged user, in the directory it owns, until its deadline; prints how
# many swaps it made. Modes: cert (hijack root's temp files, swap key/cert/pending for links to the
# victim), backup (flip each file between itself and a link to the secret), restore (swap a directory
# of the tree for a link to a directory outside it).
RACER = r'''
import json, os, sys, time
mode, tree, victim, secret_dir, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
deadline = time.time() + seconds
tries = 0
os.chdir(tree)

import ctypes
libc = ctypes.CDLL(None, use_errno=True)

def exchange(a, b):
    return libc.renameat2(-100, a, -100, b, 2)   # AT_FDCWD, RENAME_EXCHANGE

def swap_to_link(name, target):
    global tries
    try:
        os.symlink(target, name + '.lnk')
        os.rename(name + '.lnk', name)
        tries += 1
    except OSError:
        try:
            os.unlink(name + '.lnk')
        except OSError:
            pass

while time.time() < deadline:
    if mode == 'cert':
        for name in os.listdir('.'):
            if name.startswith('.') and name.endswith('.tmp'):
                try:
                    os.rename(name, name + '.stolen')      # root's temp file, replaced by a link
                    os.symlink(victim, name)
                    tries += 1
                except OSError:
                    pass
        for name in ('svc.crt', 'svc.key', 'svc.key.pending'):
            swap_to_link(name, victim)
        time.sleep(0.0005)
        for name in ('svc.crt', 'svc.key', 'svc.key.pending'):
            if os.path.islink(name):
                try:
                    os.unlink(name)
                except OSError:
                    pass
        for name in os.listdir('.'):
            if name.endswith('.stolen'):
                try:
                    os.unlink(name)
                except OSError:
                    pass
        time.sleep(0.003)   # let root complete some runs between the swaps
    elif mode == 'backup':
        # Temporary names live in a scratch directory of the user's on the same filesystem, so the tree
        # only ever holds the files themselves, each either regular or a link to the secret.
        for name in sorted(os.listdir('.'))[:4]:   # a few files flipped fast: many flips per backup
            scratch = os.path.join(secret_dir, name)
            try:
                os.symlink(victim, scratch + '.lnk')
                os.rename(scratch + '.lnk', name)
                tries += 1
                with open(scratch + '.new', 'wb') as handle:
                    handle.write(b'u' * 64)
                os.rename(scratch + '.new', name)
            except OSError:
                pass
    elif mode == 'restore':
        # renameat2(RENAME_EXCHANGE) swaps the directory and a link to outside atomically, both ways:
        # 'sub' is never missing, so root never sees a gap, only the link or the directory.
        if not os.path.lexists('sub.lnk'):
            os.symlink(secret_dir, 'sub.lnk')
        if exchange(b'sub.lnk', b'sub') == 0:
            tries += 1
            time.sleep(0.0005)
            exchange(b'sub.lnk', b'sub')
        time.sleep(0.02)   # let root complete some restores between the swaps
print(json.dumps({'tries': tries}))
'''


@pytest.fixture(scope='module')
def racer_user() -> Iterator[pwd.struct_passwd]:
    """A throw-away unprivileged user, removed at the end."""
    if os.geteuid() != 0 or not shutil.which('useradd'):
        pytest.skip('needs root and useradd to create an unprivileged user')
    name = 'opsready-race-%s' % secrets.token_hex(3)
    subprocess.run(['useradd', '--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(['userdel', name], check=False, capture_output=True)
        subprocess.run(['groupdel', name], check=False, capture_output=True)


@pytest.fixture
def arena(racer_user) -> Iterator[Dict[str, Path]]:
    """/tmp/opsready-hostile-X (root, 0755): outside/ (root: a victim file others may read, a root-only
    secret, a directory of root's), tree/ (owned by the user)."""
    base = Path(tempfile.mkdtemp(prefix='opsready-hostile-'))
    os.chmod(base, 0o755)
    outside = base / 'outside'
    outside.mkdir(mode=0o755)
    (outside / 'victim').write_bytes(b'root file that must not change\n')
    os.chmod(outside / 'victim', 0o644)
    (outside / 'secret').write_bytes(SECRET)
    os.chmod(outside / 'secret', 0o600)
    (outside / 'etc').mkdir(mode=0o755)
    (outside / 'etc' / 'passwd').write_bytes(b'root:x:0:0\n')
    tree = base / 'tree'
    tree.mkdir(mode=0o755)
    os.chown(tree, racer_user.pw_uid, racer_user.pw_gid)
    try:
        yield {'base': base, 'outside': outside, 'tree': tree}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def snapshot(root: Path) -> Dict[str, Tuple]:
    """Everything under ``root``: type, mode, owner, size, mtime and content digest."""
    state = {}
    for path in [root] + sorted(root.rglob('*')):
        st = os.lstat(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ''
        state[str(path)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                            st.st_mtime_ns, digest)
    return state


def touched(before: Dict[str, Tuple], after: Dict[str, Tuple]) -> int:
    return len({k for k in set(before) | set(after) if before.get(k) != after.get(k)})


def start_racer(user, mode: str, tree: Path, victim: Path, secret_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([unprivileged_python(), '-c', RACER, mode, str(tree), str(victim), str(secret_dir),
                             str(RACE_SECONDS)], user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/')


def racer_tries(proc: subprocess.Popen) -> int:
    out, err = proc.communicate(timeout=RACE_SECONDS + 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])['tries']


def readable_by(user, root: Path) -> Iterator[Path]:
    """Regular files under ``root`` that ``user`` can read (owner, or others may read)."""
    for path in root.rglob('*'):
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and (st.st_uid == user.pw_uid or st.st_mode & 0o004):
            yield path


def cert_opts(tree: Path, user, **extra):
    base = dict(path=str(tree / 'svc.crt'), privatekey_path=str(tree / 'svc.key'), ca_cert=None, ca_key=None,
                ca_key_passphrase=None, self_signed=True, renew_before_days=None, force=True, key_type='ec',
                key_size=4096, curve='secp256r1', common_name='svc.test', subject_alt_names=None, valid_days=30,
                include_chain=False, backup_dir=None, keep_backups=2, csr_only=False, csr_path=None, install=None,
                rollback=False, owner=user.pw_name)
    base.update(extra)
    return base


@pytest.mark.fast
@pytest.mark.fault(fault='user races symlinks/renames against cert_renew writes', component='cert_renew',
                   expected='the key is never written through a link, is 0600 and the user\'s; files outside the '
                            'tree touched: 0; no root secret in the user\'s files')
def test_cert_renew_against_a_racing_user(racer_user, arena, fault):
    tree, outside = arena['tree'], arena['outside']
    before = snapshot(outside)
    # Without owner=, root refuses the user's directory outright.
    with pytest.raises(OpsReadyError, match='Refusing to write into'):
        renewal.renew(cert_opts(tree, racer_user, owner=None), check_mode=False)
    runs = {'renewed': 0, 'csr': 0, 'refused': 0, 'failed': 0}
    modes = []
    proc = start_racer(racer_user, 'cert', tree, outside / 'victim', outside)
    deadline = time.time() + RACE_SECONDS
    while time.time() < deadline:
        for action, kind in ((renewal.renew, 'renewed'), (renewal.csr_only, 'csr')):
            try:
                action(cert_opts(tree, racer_user, csr_only=kind == 'csr'), check_mode=False)
                runs[kind] += 1
                st = os.lstat(tree / 'svc.key')
                if stat.S_ISREG(st.st_mode):
                    modes.append((stat.S_IMODE(st.st_mode), st.st_uid))
            except OpsReadyError:
                runs['refused'] += 1       # a planted link seen and refused: a clear message
            except OSError:
                runs['failed'] += 1        # a file pulled away mid-run by its owner: the run fails
    tries = racer_tries(proc)
    outside_touched = touched(before, snapshot(outside))
    leaked = [str(p) for p in readable_by(racer_user, tree) if SECRET in p.read_bytes()]
    wrong_modes = [m for m in modes if m != (0o600, racer_user.pw_uid)]
    fault.observed('%d races tried by the user; %d renewals, %d CSRs, %d refused (planted link seen), %d failed '
                   '(file pulled away); files outside the tree touched: %d; root secrets leaked: %d; keys not 0600 '
                   'and the user\'s: %d' % (tries, runs['renewed'], runs['csr'], runs['refused'], runs['failed'],
                                            outside_touched, len(leaked), len(wrong_modes)))
    fault.lost(outside_touched=outside_touched)
    fault.row.update(races_tried=tries, outside_touched=outside_touched)
    assert tries > 20 and runs['renewed'] + runs['csr'] > 3
    assert outside_touched == 0 and leaked == [] and wrong_modes == []


def make_tree(tree: Path, user, count: int = 40) -> None:
    for index in range(count):
        path = tree / ('f%03d' % index)
        path.write_bytes(b'u' * 64)
        os.chown(path, user.pw_uid, user.pw_gid)


@pytest.mark.fast
@pytest.mark.fault(fault='user flips files to symlinks during file_backup', component='file_backup',
                   expected='no byte of a root-only file in any archive; files outside the tree touched: 0')
def test_file_backup_against_a_racing_user(racer_user, arena, fault):
    tree, outside, base = arena['tree'], arena['outside'], arena['base']
    make_tree(tree, racer_user, count=8)
    dest = base / 'backups'
    before = snapshot(outside)
    scratch = base / 'scratch'
    scratch.mkdir()
    os.chown(scratch, racer_user.pw_uid, racer_user.pw_gid)
    proc = start_racer(racer_user, 'backup', tree, outside / 'secret', scratch)
    deadline = time.time() + RACE_SECONDS
    backups = failed = 0
    while time.time() < deadline:
        try:
            archive.prepare_dest(str(dest), True)
            archive.create_archive([str(tree)], str(dest), 'race', compression='none')
            backups += 1
        except (OpsReadyError, OSError):
            failed += 1
    tries = racer_tries(proc)
    leaked = members = 0
    for manifest_path in dest.glob('*.manifest.json'):
        manifest = read_manifest(str(manifest_path))
        with tarfile.open(manifest.path) as tar:
            for member in tar:
                members += 1
                if member.isfile() and SECRET in tar.extractfile(member).read():
                    leaked += 1
    outside_touched = touched(before, snapshot(outside))
    fault.observed('%d races tried; %d backups (%d failed), %d members archived; members holding the root-only '
                   'secret: %d; files outside the tree touched: %d' % (tries, backups, failed, members, leaked,
                                                                       outside_touched))
    fault.lost(outside_touched=outside_touched)
    fault.row.update(races_tried=tries, outside_touched=outside_touched)
    assert tries > 20 and backups > 3
    assert leaked == 0 and outside_touched == 0


def remove_tree_files(sub: Path) -> None:
    """Empty the user's directory without following links (root must not delete through one either)."""
    try:
        fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        for name in os.listdir(fd):
            try:
                os.unlink(name, dir_fd=fd)
            except OSError:
                pass
    finally:
        os.close(fd)


@pytest.mark.fast
@pytest.mark.fault(fault='user swaps a directory for a symlink during file_restore', component='file_restore',
                   expected='nothing written outside the target tree (files outside touched: 0)')
def test_file_restore_against_a_racing_user(racer_user, arena, fault):
    outside, base = arena['outside'], arena['base']
    # The archive: <root>/home/u/sub/f*, as a backup of a user's home would hold it.
    source = base / 'source'
    (source / 'home' / 'u' / 'sub').mkdir(parents=True)
    make_tree(source / 'home' / 'u' / 'sub', racer_user, count=20)
    for directory in (source / 'home' / 'u', source / 'home' / 'u' / 'sub'):
        os.chown(directory, racer_user.pw_uid, racer_user.pw_gid)   # restored as the user's, as in a real home
    dest = base / 'backups'
    archive.prepare_dest(str(dest), True)
    manifest = read_manifest(archive.create_archive([str(source)], str(dest), 'home', compression='none')['path']
                             + '.manifest.json')
    # The restore target: the user's home (tree) inside root's target root.
    target = base / 'target'
    home = target / str(source / 'home').lstrip('/')
    home.parent.mkdir(parents=True)
    home.mkdir()
    user_dir = home / 'u'
    user_dir.mkdir()
    os.chown(user_dir, racer_user.pw_uid, racer_user.pw_gid)
    (user_dir / 'sub').mkdir()
    os.chown(user_dir / 'sub', racer_user.pw_uid, racer_user.pw_gid)
    before = snapshot(outside)
    proc = start_racer(racer_user, 'restore', user_dir, outside / 'victim', outside / 'etc')
    deadline = time.time() + RACE_SECONDS
    restores = refused = failed = 0
    reasons: set = set()
    while time.time() < deadline:
        remove_tree_files(user_dir / 'sub')
        try:
            extract.restore_archive(manifest, str(target))
            restores += 1
        except OpsReadyError:
            refused += 1
        except OSError as exc:
            failed += 1
            reasons.add('%s: %s' % (type(exc).__name__, exc.strerror))
    tries = racer_tries(proc)
    outside_touched = touched(before, snapshot(outside))
    fault.observed('%d races tried; %d restores, %d refused (planted link seen), %d failed %s; files outside the tree '
                   'touched: %d' % (tries, restores, refused, failed, sorted(reasons), outside_touched))
    fault.lost(outside_touched=outside_touched)
    fault.row.update(races_tried=tries, outside_touched=outside_touched)
    assert tries > 20 and restores + refused > 3
    assert outside_touched == 0


@pytest.mark.fast
@pytest.mark.fault(fault='special files and huge inputs as paths', component='cert_info, cert_renew, file_backup',
                   expected='each refused at once with a message naming what the path is; nothing hangs or '
                            'exhausts memory')
def test_special_files_through_the_modules(tmp_path, fault):
    fifo = tmp_path / 'cert.fifo'
    os.mkfifo(fifo)
    loop = tmp_path / 'loop.pem'
    loop.symlink_to(loop)
    huge = tmp_path / 'huge.pem'
    with open(huge, 'wb') as handle:
        handle.truncate(64 * 1024 * 1024 * 1024)   # 64 GiB, sparse
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'app.conf').write_text('x = 1\n')
    os.mkfifo(tree / 'control.fifo')
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    crt, key, _old = ca.write_leaf(live, 'special.test', days_left=2)
    started = time.time()
    result = play(tmp_path, [
        {'name': 'info', 'opsready.operations.cert_info': {
            'paths': [str(fifo), '/dev/zero', str(tmp_path), str(loop), str(huge), str(tmp_path / '*')],
            'on_error': 'report'}, 'register': 'info'},
        {'name': 'renew', 'ignore_errors': True, 'opsready.operations.cert_renew': {
            'path': crt, 'privatekey_path': key, 'ca_cert': str(fifo), 'ca_key': '/dev/zero'}},
        {'name': 'install', 'ignore_errors': True, 'opsready.operations.cert_renew': {
            'path': crt, 'privatekey_path': key, 'ca_cert': ca_cert, 'install': str(huge)}},
        {'name': 'backup', 'opsready.operations.file_backup': {'paths': [str(tree)], 'dest': str(tmp_path / 'b')}},
        {'name': 'backup zero', 'ignore_errors': True, 'opsready.operations.file_backup': {
            'paths': ['/dev/zero'], 'dest': str(tmp_path / 'b')}},
    ], fault=fault, timeout=120)
    elapsed = time.time() - started
    errors = {e['source']: e['msg'] for e in result.result('info')['errors']}
    renew_msg = result.result('renew')['msg']
    install_msg = result.result('install')['msg']
    backup = result.result('backup')
    zero_msg = result.result('backup zero')['msg']
    fault.observed('cert_info: %d errors (FIFO, device, directory, loop, 64 GiB sparse) in %.1f s for the whole play; '
                   'cert_renew: "%s"; install: "%s"; file_backup skipped %s; /dev/zero as source: "%s"'
                   % (len(errors), elapsed, renew_msg[:60], install_msg[:60],
                      [s['reason'] for s in backup['not_archived']], zero_msg[:50]))
    fault.lost(files=0)
    assert 'FIFO' in errors[str(fifo)] and 'character device' in errors['/dev/zero']
    assert 'directory' in errors[str(tmp_path)] and 'symlink loop' in errors[str(loop)]
    assert 'more than the 16.0 MiB' in errors[str(huge)]
    assert 'FIFO' in renew_msg and 'more than the' in install_msg
    assert backup['changed'] and backup['not_archived'] == []   # the FIFO archived as an entry, never opened
    assert 'character device' in zero_msg
    assert crt and open(crt, 'rb').read() and elapsed < 90
