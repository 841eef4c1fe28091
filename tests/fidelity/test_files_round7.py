"""Fidelity of file_backup -> file_restore, round 7: a target that spans file systems, a restore of part of a hard
link group, file capabilities and access ACLs.

- a restore into a tree holding a mount point (a tmpfs, a separate /var) moved the files in front of it, then
  stopped with "Invalid cross-device link" at the first file behind it: half a restore, and check mode had said
  nothing of it;
- ``only`` naming a hard link without its first name put a new copy at that name on every run (``changed`` for
  ever, the pair in the target split), where check mode said nothing would change;
- file capabilities (setcap) and access ACLs on files and directories: guards.

These call file_backup's and file_restore's module_utils directly, as round 6 does.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from tests.fidelity.test_files_round6 import NS, ROOT, backup, restore  # noqa: E402


def write(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, ns=(NS, NS))


def round_trip(src: Path, tmp_path: Path, first_restore: bool = True):
    """Back ``src`` up into tmp_path/backups and (``first_restore``) restore it into tmp_path/restored: the backup
    directory, the restore root and where ``src`` lands in it."""
    dest, target = tmp_path / 'backups', tmp_path / 'restored'
    backup(src, dest)
    if first_restore:
        restore(dest, target)
    return dest, target, target / str(src).lstrip('/')


def state(top: Path) -> dict:
    """Every entry below ``top``: mode, owner, mtime, inode, content."""
    found = {}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            body = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
            found[os.path.relpath(path, top)] = (st.st_mode, st.st_uid, st.st_mtime_ns, st.st_ino, body)
    return found


# -- a target that spans file systems ---------------------------------------------------------------------------

@pytest.fixture
def mounted(tmp_path):
    """Mount a small tmpfs at a path, or bind another directory of tmp_path there (the same file system, the same
    st_dev: a rename across it fails all the same); unmounted afterwards. Skips where mounting is not allowed."""
    points = []

    def mount(path: Path, kind: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if kind == 'bind':
            (tmp_path / 'bound').mkdir()
            argv = ['mount', '--bind', str(tmp_path / 'bound'), str(path)]
        else:
            argv = ['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(path)]
        done = subprocess.run(argv, capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip('cannot mount a tmpfs here (%s)' % done.stderr.decode(errors='replace').strip())
        points.append(path)
        return path
    yield mount
    for path in reversed(points):
        subprocess.run(['umount', '-l', str(path)], check=False)


@pytest.mark.skipif(not ROOT, reason='mounting needs root')
@pytest.mark.parametrize('kind', ['tmpfs', 'bind'])
def test_a_restore_over_a_mount_point_in_the_target_is_refused_before_anything_moves(tmp_path, mounted, kind):
    """``dest: /`` restoring /etc and /var where /var is its own file system, or a restore root holding a tmpfs: each
    file is moved from the staging directory (in dest) with one rename, which cannot cross file systems. The restore
    moved the files in front of the mount point, then failed with "Invalid cross-device link" at the first one behind
    it, leaving the tree half restored. It must refuse before anything moves, name what is behind the mount point and
    say what to do - and check mode must say the same. Files behind the mount point that need no change do not stop
    it (a re-restore of an unchanged tree)."""
    src = tmp_path / 'src'
    (src / 'data').mkdir(parents=True)
    write(src / 'a-first.conf', 'first\n')
    write(src / 'data' / 'inner.conf', 'inner\n')
    write(src / 'z-last.conf', 'last\n')
    dest, target, placed = round_trip(src, tmp_path, first_restore=False)
    mounted(placed / 'data', kind)
    # behind the mount point, nothing to change yet: the first restore is refused too (inner.conf is missing there)
    before = state(target)
    for check_mode in (True, False):
        with pytest.raises(OpsReadyError) as caught:
            restore(dest, target, check_mode=check_mode)
        message = str(caught.value)
        assert str(placed / 'data' / 'inner.conf') in message and 'mount point' in message, message
        assert 'Nothing was changed' in message, message
        assert state(target) == before, 'check' if check_mode else 'real'
    assert not [n for n in os.listdir(target) if n.startswith('.opsready-restore-')]
    # put the inner file in place by hand (as copying it there would): the rest restores, the mount is left alone
    shutil.copy2(src / 'data' / 'inner.conf', placed / 'data' / 'inner.conf')
    planned = restore(dest, target, check_mode=True)['restored']
    assert planned == [str(src / 'a-first.conf').lstrip('/'), str(src / 'z-last.conf').lstrip('/')]
    done = restore(dest, target)
    assert sorted(done['restored']) == [str(placed / 'a-first.conf'), str(placed / 'z-last.conf')], done
    assert (placed / 'z-last.conf').read_text() == 'last\n'
    assert restore(dest, target, check_mode=True)['restored'] == []
    assert restore(dest, target)['restored'] == []
    # an edit behind the mount point: refused again, the edit kept
    write(placed / 'data' / 'inner.conf', 'INNER\n')
    write(placed / 'a-first.conf', 'FIRST\n')
    with pytest.raises(OpsReadyError):
        restore(dest, target)
    assert (placed / 'a-first.conf').read_text() == 'FIRST\n'


# -- part of a hard link group --------------------------------------------------------------------------------------

@pytest.fixture
def linked_across(tmp_path):
    """A hard link group across directories: etc/app.key, also at keys/app.key and keys/old/app.key."""
    src = tmp_path / 'src'
    (src / 'etc').mkdir(parents=True)
    (src / 'keys' / 'old').mkdir(parents=True)
    write(src / 'etc' / 'app.key', 'secret key\n')
    os.link(src / 'etc' / 'app.key', src / 'keys' / 'app.key')
    os.link(src / 'etc' / 'app.key', src / 'keys' / 'old' / 'app.key')
    write(src / 'keys' / 'other', 'other\n')
    return src


def test_restoring_only_a_hard_link_without_its_first_name(tmp_path, linked_across):
    """``only: [/srv/keys]`` where the keys are hard links to /etc/app.key (archived first): the links were put in
    place as a fresh copy on every run - ``changed`` for ever, the target's pair split each time - while check mode
    said nothing would change. A name already holding the archived bytes, mode, owner and mtime is left alone (the
    group stays one inode); an edited one is put back (and said by check mode), the name not selected untouched."""
    src = linked_across
    dest, target, placed = round_trip(src, tmp_path)
    group = {os.lstat(placed / p).st_ino for p in ('etc/app.key', 'keys/app.key', 'keys/old/app.key')}
    assert len(group) == 1
    # the whole group restored again over an intact target: nothing listed, nothing moved (a guard)
    assert restore(dest, target, check_mode=True)['restored'] == []
    assert restore(dest, target)['restored'] == []
    only = [str(src / 'keys')]
    rel = str(src / 'keys').lstrip('/')
    assert restore(dest, target, only=only, check_mode=True)['restored'] == []
    again = restore(dest, target, only=only)
    assert again['restored'] == [], again
    assert {os.lstat(placed / p).st_ino for p in ('etc/app.key', 'keys/app.key', 'keys/old/app.key')} == group
    # the target's copy edited through one name (all three see it): the selected names come back, etc/ stays edited
    write(placed / 'etc' / 'app.key', 'edited key\n')
    check = restore(dest, target, only=only, check_mode=True)
    assert sorted(check['restored']) == [rel + '/app.key', rel + '/old/app.key'], check
    real = restore(dest, target, only=only)
    assert sorted(real['restored']) == [str(placed / 'keys' / 'app.key'), str(placed / 'keys' / 'old' / 'app.key')]
    assert (placed / 'keys' / 'app.key').read_text() == 'secret key\n'
    assert (placed / 'keys' / 'old' / 'app.key').read_text() == 'secret key\n'
    assert (placed / 'etc' / 'app.key').read_text() == 'edited key\n'
    assert restore(dest, target, only=only, check_mode=True)['restored'] == []
    assert restore(dest, target, only=only)['restored'] == []


# -- capabilities and access ACLs ---------------------------------------------------------------------------------

@pytest.mark.skipif(not ROOT or not shutil.which('setcap'), reason='file capabilities need root and setcap')
def test_file_capabilities_and_access_acls_round_trip_and_stay_put(tmp_path):
    """Regression guard (passed before): a binary with a file capability (setcap cap_net_bind_service=+ep, which a
    chown clears), owned by an id with no passwd entry, and access ACLs on a file and a directory: restored with
    them, then an unchanged tree is neither listed by check mode nor touched; a capability removed in the target is
    seen and put back."""
    src = tmp_path / 'src'
    (src / 'shared').mkdir(parents=True)
    binary = src / 'server'
    write(binary, '#!/bin/sh\n')
    os.chown(binary, 4_000_000, 4_000_001)
    binary.chmod(0o750)
    subprocess.run(['setcap', 'cap_net_bind_service=+ep', str(binary)], check=True)
    os.utime(binary, ns=(NS, NS))
    # user::rw- user:54321:r-- group::r-- mask::r-- other::--- (version 2; tag, perm, id per entry)
    acl = bytes.fromhex('02000000' + '01000600ffffffff' + '0200040031d40000' + '04000400ffffffff'
                        + '10000400ffffffff' + '20000000ffffffff')
    write(src / 'shared' / 'report', 'r\n')
    for path in (src / 'shared' / 'report', src / 'shared'):
        os.setxattr(path, 'system.posix_acl_access', acl)
        os.utime(path, ns=(NS, NS))
    dest, target, placed = round_trip(src, tmp_path)
    assert os.getxattr(placed / 'server', 'security.capability') == os.getxattr(binary, 'security.capability')
    assert (os.lstat(placed / 'server').st_uid, os.lstat(placed / 'server').st_gid) == (4_000_000, 4_000_001)
    for path in (placed / 'shared' / 'report', placed / 'shared'):
        assert os.getxattr(path, 'system.posix_acl_access') == \
            os.getxattr(src / path.relative_to(placed), 'system.posix_acl_access'), path
    before = state(target)
    assert restore(dest, target, check_mode=True)['restored'] == []
    assert restore(dest, target)['restored'] == [] and state(target) == before
    os.removexattr(placed / 'server', 'security.capability')
    assert restore(dest, target, check_mode=True)['restored'] == [str(src / 'server').lstrip('/')]
    assert restore(dest, target)['restored'] == [str(placed / 'server')]
    assert os.getxattr(placed / 'server', 'security.capability') == os.getxattr(binary, 'security.capability')


# -- only: what it names ----------------------------------------------------------------------------------------

def test_only_naming_nothing_in_the_archive_is_refused(tmp_path):
    """``only: [/etc/myap]`` (a typo), or a path of another host's set: the restore ended "ok" with nothing restored
    and nothing said, so a runbook step "restore the app's config" passed without restoring it. Each path of ``only``
    must name something archived, else the run fails naming it (check mode too) and changes nothing. The same path
    written with a trailing or doubled slash names what it names without, and ``/`` names everything."""
    src = tmp_path / 'src'
    (src / 'app').mkdir(parents=True)
    write(src / 'app' / 'app.conf', 'conf\n')
    write(src / 'other.conf', 'other\n')
    dest, target, placed = round_trip(src, tmp_path, first_restore=False)
    typo = str(src / 'ap')
    for check_mode in (True, False):
        with pytest.raises(OpsReadyError) as caught:
            restore(dest, target, only=[str(src / 'other.conf'), typo], check_mode=check_mode)
        assert typo in str(caught.value) and 'nothing' in str(caught.value), str(caught.value)
        assert not target.exists() or not list(target.iterdir())
    spelled = restore(dest, target, only=[str(src / 'app') + '/', str(src) + '//other.conf'])
    assert sorted(spelled['restored']) == [str(placed / 'app' / 'app.conf'), str(placed / 'other.conf')], spelled
    write(placed / 'app' / 'app.conf', 'CONF\n')
    edited = str(src / 'app' / 'app.conf').lstrip('/')
    assert restore(dest, target, only=['/'], check_mode=True)['restored'] == [edited]
    assert restore(dest, target, only=['/'])['restored'] == [str(placed / 'app' / 'app.conf')]


# -- check mode foresees the real run's refusals ------------------------------------------------------------------

@pytest.fixture
def flagged():
    """Paths given chattr flags by the test; cleared afterwards (an immutable file would stay in tmp_path)."""
    paths: list = []
    yield paths
    for path in paths:
        subprocess.run(['chattr', '-i', '-a', str(path)], capture_output=True, check=False)


@pytest.mark.skipif(not ROOT or not shutil.which('chattr'), reason='chattr +i needs root')
@pytest.mark.parametrize('case', ['file+i', 'file+a', 'directory+i'])
def test_check_mode_foresees_the_refusal_of_a_restore_over_fixed_files(tmp_path, flagged, case):
    """A changed file that is immutable or append-only in the target (or a file in an immutable directory): the real
    restore refuses before anything moves, but check mode listed the files as "would be restored" - a dry run that
    promised a restore the real run then refused. Check mode must fail with the same message."""
    src = tmp_path / 'src'
    (src / 'locked').mkdir(parents=True)
    for name in ('a.conf', 'resolv.conf', 'locked/key.pem'):
        write(src / name, 'original %s\n' % name)
    dest, target, placed = round_trip(src, tmp_path)
    write(placed / 'a.conf', 'edited a\n')
    kind, flag = case.split('+')
    fixed = placed / ('resolv.conf' if kind == 'file' else 'locked')
    changed = placed / ('resolv.conf' if kind == 'file' else 'locked/key.pem')
    write(changed, 'edited\n')
    flagged.append(fixed)
    if subprocess.run(['chattr', '+' + flag, str(fixed)], capture_output=True, check=False).returncode:
        pytest.skip('chattr is not allowed here')
    with pytest.raises(OpsReadyError) as real:
        restore(dest, target)
    with pytest.raises(OpsReadyError) as check:
        restore(dest, target, check_mode=True)
    assert str(check.value) == str(real.value)
    assert str(changed) in str(check.value) and 'Nothing was changed' in str(check.value), str(check.value)
    assert (placed / 'a.conf').read_text() == 'edited a\n'
