"""file_restore's check mode against the real restore: check mode compared only size, mtime, mode and owner of an
existing target, the real restore also its content, extended attributes, file flags and symlink target, so
``--check --diff`` said "nothing would change" before a restore that then changed files.

Each case alters one entry of a restored tree in a way that keeps size, mtime, mode and owner; check mode must list
exactly that entry, the real restore must then put exactly it back, and a second check run must list nothing.

These call file_restore's module_utils directly: the module reports ``changed=bool(restored)`` and the diff from
the same list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract  # noqa: E402

ROOT = os.geteuid() == 0
NS = 1_600_000_000_123_456_789


@pytest.fixture(scope='module')
def archived(tmp_path_factory):
    """One backup of a small tree (files with and without an xattr, a symlink), shared by every case."""
    base = tmp_path_factory.mktemp('checkmode')
    src = base / 'src'
    src.mkdir()
    (src / 'app.conf').write_text('listen 8080\n')
    (src / 'tagged.conf').write_text('tagged\n')
    (src / 'plain.txt').write_text('plain\n')
    (src / 'aaaa').write_text('a\n')
    (src / 'bbbb').write_text('b\n')
    os.symlink('aaaa', src / 'current')
    os.symlink('aaaa', src / 'marked')
    with open(src / 'disk.img', 'wb') as image:   # sparse: archived as a GNU sparse member
        image.truncate(8 * 1024 * 1024)
        image.seek(4 * 1024 * 1024)
        image.write(b'data' * 1024)
    try:
        os.setxattr(src / 'tagged.conf', 'user.origin', b'backup')
    except OSError:
        pytest.skip('this file system takes no user.* extended attributes')
    for path in (src / 'app.conf', src / 'tagged.conf', src / 'plain.txt', src / 'aaaa', src / 'bbbb',
                 src / 'disk.img'):
        os.utime(path, ns=(NS, NS))
    for path in (src / 'current', src / 'marked'):
        os.utime(path, ns=(NS, NS), follow_symlinks=False)
    dest = base / 'backups'
    archive.prepare_dest(str(dest), False)
    archive.create_archive([str(src)], str(dest), 'set', compression='zstd' if extract.HAS_ZSTD else 'gzip')
    yield src, extract.find_archive(str(dest), 'set')
    shutil.rmtree(base, ignore_errors=True)


def _same_size_content(path: Path) -> None:
    st = os.lstat(path)
    path.write_text('listen 9090\n')
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _sparse_data_changed(path: Path) -> None:
    st = os.lstat(path)
    with open(path, 'r+b') as image:
        image.seek(4 * 1024 * 1024 + 100)
        image.write(b'DATA')
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _symlink_xattr_added(path: Path) -> None:
    if not ROOT:
        pytest.skip('trusted.* on a symlink needs root')
    try:
        os.setxattr(path, 'trusted.added', b'x', follow_symlinks=False)
    except OSError:
        pytest.skip('this file system takes no trusted.* on symlinks')


def _xattr_added(path: Path) -> None:
    st = os.lstat(path)
    os.setxattr(path, 'user.added', b'x')
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _xattr_removed(path: Path) -> None:
    os.removexattr(path, 'user.origin')


def _flag_added(path: Path) -> None:
    if subprocess.run(['chattr', '+d', str(path)], capture_output=True, check=False).returncode:
        pytest.skip('chattr +d is not supported on this file system')


def _symlink_retargeted(path: Path) -> None:
    st = os.lstat(path)
    os.unlink(path)
    os.symlink('bbbb', path)   # as long as 'aaaa': the same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    if ROOT:
        os.lchown(path, st.st_uid, st.st_gid)


CASES = {
    'same-size content, mtime put back': ('app.conf', _same_size_content),
    'extended attribute added': ('plain.txt', _xattr_added),
    'extended attribute removed': ('tagged.conf', _xattr_removed),
    'file flag added (chattr +d)': ('plain.txt', _flag_added),
    'symlink retargeted to a same-length target': ('current', _symlink_retargeted),
    'sparse file, bytes in its data changed': ('disk.img', _sparse_data_changed),
    'extended attribute added to a symlink': ('marked', _symlink_xattr_added),
}


@pytest.mark.parametrize('case', list(CASES))
def test_check_mode_sees_what_the_restore_changes(archived, tmp_path, case):
    src, manifest = archived
    entry, alter = CASES[case]
    target = tmp_path / 'restored'
    extract.restore_archive(manifest, str(target))
    assert extract.restore_archive(manifest, str(target), check_mode=True)['restored'] == []
    rel = os.path.relpath(src, '/')
    path = target / rel / entry
    before = os.lstat(path)
    try:
        alter(path)
        after = os.lstat(path)
        assert (after.st_size, after.st_mtime_ns, after.st_mode, after.st_uid, after.st_gid) == \
            (before.st_size, before.st_mtime_ns, before.st_mode, before.st_uid, before.st_gid)

        check = extract.restore_archive(manifest, str(target), check_mode=True)
        assert check['restored'] == [os.path.join(rel, entry)], case   # changed=true, the diff lists it alone

        real = extract.restore_archive(manifest, str(target))
        assert real['restored'] == [str(path)], case
        assert extract.restore_archive(manifest, str(target), check_mode=True)['restored'] == []
        if os.path.islink(path):
            assert os.readlink(path) == os.readlink(src / entry)
            assert os.listxattr(path, follow_symlinks=False) == os.listxattr(src / entry, follow_symlinks=False)
        else:
            assert path.read_bytes() == (src / entry).read_bytes()
            assert sorted(os.listxattr(path)) == sorted(os.listxattr(src / entry))
    finally:
        subprocess.run(['chattr', '-d', str(path)], capture_output=True, check=False)


def test_check_mode_on_an_unchanged_tree_lists_nothing(archived, tmp_path):
    """An identical tree (a sparse file included): nothing listed, every file counted unchanged."""
    src, manifest = archived
    target = tmp_path / 'restored'
    extract.restore_archive(manifest, str(target))
    check = extract.restore_archive(manifest, str(target), check_mode=True)
    assert check['restored'] == []
    assert check['unchanged'] == len(list(src.iterdir()))
