"""File restores compared entry by entry with their source, the way ``rsync -aHn --itemize-changes`` would, plus
what rsync does not look at by default (mtimes to the nanosecond, symlink mtimes, numeric owners without a passwd
entry). Real ansible-playbook runs of file_backup / file_restore: plain, gzip and age-encrypted."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402

NS = 1_600_000_000_123_456_789
ROOT = os.geteuid() == 0


def make_tree(top: Path) -> Path:
    """Everything rsync -aH compares: modes with setuid/setgid/sticky, owners without a passwd entry, hard links,
    symlinks (relative, absolute, dangling, out of the tree), empty files and directories, a read-only directory
    with content, hostile names; every entry with a sub-second mtime, directories' set last."""
    src = top / 'srv' / 'app'
    src.mkdir(parents=True)

    def put(name, data=b'x', mode=0o644):
        path = src / name
        path.write_bytes(data)
        path.chmod(mode)
        return path

    put('plain.conf', b'listen = 8080\n')
    put('suid', b'#!/bin/sh\n', 0o4755)
    put('sgid', b'#!/bin/sh\n', 0o2750)
    put('group-writable', b'gw\n', 0o664)
    put('empty', b'')
    (src / 'sticky').mkdir()
    (src / 'sticky').chmod(0o1777)
    (src / 'empty-dir').mkdir()
    (src / 'sub' / 'deeper').mkdir(parents=True)
    put('sub/deeper/leaf.txt', b'leaf\n', 0o600)
    (src / 'ro').mkdir()
    put('ro/inside', b'inside\n')
    (src / 'ro').chmod(0o555)
    put('hard-a', b'two names, one inode\n')
    os.link(src / 'hard-a', src / 'hard-b')
    os.symlink('plain.conf', src / 'rel-link')
    os.symlink('/etc/hostname', src / 'abs-link')
    os.symlink('nowhere', src / 'dangling')
    os.symlink('../../../outside', src / 'out-link')
    put('new\nline', b'n')
    put('back\\slash', b'b')
    put('-leading-dash', b'd')
    put(os.fsdecode(b'latin1-\xe9'), b'not utf-8')
    put('L' * 255, b'long name')
    if ROOT:
        put('nobody-owns', b'o')
        os.chown(src / 'nobody-owns', 54321, 54322)        # no passwd/group entry: kept by number
        os.lchown(src / 'rel-link', 54321, 54322)
        os.chown(src / 'sub', 54321, 54322)
    for root, dirs, files in os.walk(src, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(root, name), ns=(NS, NS), follow_symlinks=False)
    os.utime(src, ns=(NS, NS + 111))
    return src


def snapshot(top: Path) -> Dict[str, Tuple]:
    """type, mode, owner, mtime (ns), size, content or link target, and hard-link group of every entry."""
    entries = {}
    inodes: Dict[Tuple[int, int], str] = {}
    for root, dirs, files in os.walk(top):
        for name in [''] + dirs + files if root == str(top) else dirs + files:
            path = os.path.join(root, name) if name else root
            st = os.lstat(path)
            rel = os.path.relpath(path, top)
            if stat.S_ISREG(st.st_mode):
                body = Path(path).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            else:
                body = None
            link_group = inodes.setdefault((st.st_dev, st.st_ino), rel) if stat.S_ISREG(st.st_mode) else None
            entries[rel] = (stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid,
                            st.st_mtime_ns, st.st_size if not stat.S_ISDIR(st.st_mode) else None, body, link_group)
    return entries


def assert_same_tree(src: Path, restored: Path) -> None:
    expected, found = snapshot(src), snapshot(restored)
    diff = {name: (expected.get(name), found.get(name)) for name in set(expected) | set(found)
            if expected.get(name) != found.get(name)}
    assert not diff, 'restored tree differs from its source:\n%s' % '\n'.join(
        '%r\n  source:   %r\n  restored: %r' % (name, a, b) for name, (a, b) in sorted(diff.items()))
    # and what rsync itself sees (content, type, mode, owner, times, links, hard links)
    out = subprocess.run(['rsync', '-aHn', '--numeric-ids', '--itemize-changes', '%s/' % src, '%s/' % restored],
                         capture_output=True, check=True).stdout.decode('utf-8', 'backslashreplace')
    assert out.strip() == '', 'rsync -aHn sees differences:\n%s' % out


def deep_snapshot(top: Path) -> Dict[str, Tuple]:
    """``snapshot`` through directory descriptors (paths longer than PATH_MAX)."""
    entries = {}
    for root, dirs, files, root_fd in os.fwalk(top):
        for name in dirs + files:
            st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY, dir_fd=root_fd)
                body = os.read(fd, 1 << 20)
                os.close(fd)
            else:
                body = os.readlink(name, dir_fd=root_fd) if stat.S_ISLNK(st.st_mode) else None
            entries[os.path.relpath(os.path.join(root, name), top)] = (
                stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, st.st_mtime_ns,
                st.st_nlink, body)
    assert len(entries) > 26
    return entries


def backup_task(src, dest, **extra):
    args = {'paths': [str(src)], 'dest': str(dest), 'name': 'app'}
    args.update(extra)
    return {'name': 'backup', 'opsready.operations.file_backup': args}


def restore_task(src, dest, **extra):
    args = {'src': str(src), 'dest': str(dest), 'name': 'app'}
    args.update(extra)
    return {'name': 'restore', 'opsready.operations.file_restore': args}


@pytest.mark.parametrize('variant', ['zstd', 'gzip', 'age'])
def test_restored_tree_is_identical_to_its_source(tmp_path, variant):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    backup_args: Dict = {'compression': variant} if variant != 'age' else {}
    restore_args: Dict = {}
    if variant == 'age':
        secret = encryption.generate_identity()
        backup_args.update(encrypt=True, recipients=[encryption.parse_identities(secret)[0].recipient])
        restore_args['identity'] = secret
    tasks = [backup_task(src, dest, **backup_args), restore_task(dest, target, **restore_args)]
    result = run_playbook(write_playbook(tmp_path, tasks))
    assert result.rc == 0, result.stdout[-3000:]
    assert_same_tree(src, target / str(src).lstrip('/'))


def test_restore_over_a_target_puts_back_owner_mode_and_mtime_of_identical_content(tmp_path):
    """Same bytes but another mtime (a touch), mode or owner: rsync -a sees a difference, so the restore must."""
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    assert run_playbook(write_playbook(tmp_path, [backup_task(src, dest)])).rc == 0
    reference = tmp_path / 'reference'
    assert run_playbook(write_playbook(tmp_path, [restore_task(dest, reference)])).rc == 0
    os.utime(src / 'plain.conf', ns=(NS + 5, NS + 5))                  # touched, same content
    os.utime(src / 'sub' / 'deeper' / 'leaf.txt', None)
    os.utime(src / 'rel-link', ns=(NS + 7, NS + 7), follow_symlinks=False)
    if ROOT:
        os.chown(src / 'empty', 54321, 0)
    (src / 'sub').chmod(0o700)
    os.utime(src / 'sub', ns=(NS + 9, NS + 9))
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = set(result.result('restore')['restored'])
    assert {str(src / 'plain.conf'), str(src / 'sub' / 'deeper' / 'leaf.txt'), str(src / 'rel-link')} <= restored
    assert_same_tree(reference / str(src).lstrip('/'), src)
    # and now nothing differs: a second restore changes nothing
    again = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]))
    assert again.rc == 0 and again.result('restore')['changed'] is False
    # check mode agrees: nothing listed; and it lists a touched file
    check = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]), check=True)
    assert check.rc == 0 and check.result('restore')['restored'] == []
    os.utime(src / 'plain.conf', ns=(NS + 5, NS + 5))
    check = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]), check=True)
    assert check.result('restore')['restored'] == [str(src / 'plain.conf')]


def test_gnu_tar_reads_the_nanosecond_mtimes(tmp_path):
    """The exact mtime rides in the pax header GNU tar writes and reads (--format=posix)."""
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    assert run_playbook(write_playbook(tmp_path, [backup_task(src, dest, compression='none')])).rc == 0
    archive = next(p for p in dest.iterdir() if p.name.endswith('.tar'))
    out = tmp_path / 'gnu'
    out.mkdir()
    subprocess.run(['tar', '-xpf', str(archive), '-C', str(out)], check=True)
    assert os.lstat(out / str(src).lstrip('/') / 'plain.conf').st_mtime_ns == NS


def test_paths_longer_than_path_max_round_trip(tmp_path):
    """A tree 5,000+ bytes deep (names of 200 bytes): every call with the whole path fails with ENAMETOOLONG, so
    both sides must work relative to directory descriptors. Backed up, restored, and restored again unchanged."""
    src = tmp_path / 'src' / 'deep'
    src.mkdir(parents=True)
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _level in range(26):
            os.mkdir('d' * 200, dir_fd=fd)
            child = os.open('d' * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open('leaf.conf', os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(leaf, b'deep = true\n')
        os.close(leaf)
        os.link('leaf.conf', 'leaf-link', src_dir_fd=fd, dst_dir_fd=fd)
        os.symlink('leaf.conf', 'leaf-sym', dir_fd=fd)
        os.utime('leaf.conf', ns=(NS, NS), dir_fd=fd)
    finally:
        os.close(fd)
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [backup_task(src, dest), restore_task(dest, target)]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = target / str(src).lstrip('/')
    # rsync gives up on such paths ("filename overflows max-path len"): compared through descriptors instead
    assert deep_snapshot(restored) == deep_snapshot(src)
    assert not list(target.glob('.opsready-restore-*')), 'staging directory left behind'
    again = run_playbook(write_playbook(tmp_path, [restore_task(dest, target)]))
    assert again.rc == 0 and again.result('restore')['changed'] is False, again.stdout[-3000:]


def test_sparse_files_come_back_sparse(tmp_path):
    """A 256 MiB sparse file with 8 KiB of data (a VM image, a pre-sized database): the restore must not
    allocate 256 MiB of zeros. A fully allocated file of zeros stays allocated (it may be pre-sized on purpose)."""
    src = tmp_path / 'src' / 'images'
    src.mkdir(parents=True)
    size = 256 * 1024 * 1024
    with open(src / 'disk.img', 'wb') as handle:
        handle.write(b'head' * 1024)
        handle.seek(size - 4096)
        handle.write(b'tail' * 1024)
    (src / 'zeros.bin').write_bytes(bytes(1024 * 1024))
    os.utime(src / 'disk.img', ns=(NS, NS))
    assert os.stat(src / 'disk.img').st_blocks * 512 < 1024 * 1024, 'this file system does not keep holes'
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [backup_task(src, dest), restore_task(dest, target)]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = target / str(src).lstrip('/')
    st = os.stat(restored / 'disk.img')
    assert st.st_size == size and st.st_mtime_ns == NS
    assert st.st_blocks * 512 < 1024 * 1024, 'holes filled: %d bytes allocated' % (st.st_blocks * 512)
    with open(restored / 'disk.img', 'rb') as handle:
        assert handle.read(4096) == b'head' * 1024
        handle.seek(size - 4096)
        assert handle.read() == b'tail' * 1024
    assert os.stat(restored / 'zeros.bin').st_blocks * 512 >= 1024 * 1024
    assert_same_tree(src, restored)


def test_skip_unchanged_sees_content_changed_with_the_mtime_put_back(tmp_path):
    """cp -p, rsync -t, touch -r, a tool that restores the mtime after an edit: same size, same mtime, new
    content. Skipping the backup then would leave the old content as the newest archive; the inode's ctime (which
    nobody can set) says it changed."""
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    book = write_playbook(tmp_path, [backup_task(src, dest, skip_unchanged=True)])
    assert run_playbook(book).result('backup')['changed'] is True
    assert run_playbook(book).result('backup')['changed'] is False
    (src / 'plain.conf').write_bytes(b'listen = 9090\n')      # same size
    os.utime(src / 'plain.conf', ns=(NS, NS))
    out = run_playbook(book).result('backup')
    assert out['changed'] is True and out['skipped_unchanged'] is False
    target = tmp_path / 'restored'
    assert run_playbook(write_playbook(tmp_path, [restore_task(dest, target)])).rc == 0
    assert (target / str(src).lstrip('/') / 'plain.conf').read_bytes() == b'listen = 9090\n'


def acl(*entries):
    """A system.posix_acl_* value (version 2; tag, perm, id per entry), what setfacl writes."""
    import struct
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, perm, ident) for tag, perm, ident in entries)


ACL_FILE = acl((0x01, 6, 0xFFFFFFFF), (0x02, 4, 54321), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF),
               (0x20, 4, 0xFFFFFFFF))
ACL_DIR = acl((0x01, 7, 0xFFFFFFFF), (0x02, 5, 54321), (0x04, 5, 0xFFFFFFFF), (0x10, 5, 0xFFFFFFFF),
              (0x20, 5, 0xFFFFFFFF))


def xattrs(path):
    return {name: os.getxattr(path, name) for name in sorted(os.listxattr(path))}


@pytest.mark.skipif(not ROOT, reason='ACLs naming another user and file capabilities need root')
def test_extended_attributes_acls_and_capabilities_round_trip(tmp_path):
    src = tmp_path / 'src' / 'opt' / 'app'
    (src / 'shared').mkdir(parents=True)
    tool = src / 'bind-helper'
    tool.write_bytes(b'\x7fELF not really\n')
    tool.chmod(0o750)
    try:
        os.setxattr(tool, 'user.origin', b'vendor\x00\xff\n binary')
    except OSError:
        pytest.skip('this file system does not take user extended attributes')
    subprocess.run(['setcap', 'cap_net_bind_service=+ep', str(tool)], check=True)
    (src / 'report.txt').write_text('r\n')
    os.setxattr(src / 'report.txt', 'system.posix_acl_access', ACL_FILE)
    os.setxattr(src / 'shared', 'system.posix_acl_access', ACL_DIR)
    os.setxattr(src / 'shared', 'system.posix_acl_default', ACL_DIR)
    os.setxattr(src / 'shared', 'user.purpose', b'drop box')
    expected = {str(p.relative_to(src)): xattrs(p) for p in [tool, src / 'report.txt', src / 'shared']}
    assert 'security.capability' in expected['bind-helper']
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [backup_task(src, dest), restore_task(dest, target)]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = target / str(src).lstrip('/')
    assert {name: xattrs(restored / name) for name in expected} == expected
    out = subprocess.run(['rsync', '-aHAXn', '--numeric-ids', '--itemize-changes', '%s/' % src, '%s/' % restored],
                         capture_output=True, check=True).stdout.decode()
    assert out.strip() == '', out
    # over the tree: an attribute lost since (same content, mode, owner, mtime) is put back
    os.removexattr(src / 'report.txt', 'system.posix_acl_access')
    os.utime(src / 'report.txt', ns=(os.stat(restored / 'report.txt').st_mtime_ns,) * 2)
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]))
    assert result.rc == 0, result.stdout[-3000:]
    assert xattrs(src / 'report.txt') == expected['report.txt']
