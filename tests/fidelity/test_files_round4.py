"""Fidelity of file_backup -> file_restore, round 4: kinds of entries and trees the earlier rounds did not try.

- FIFOs, sockets and device nodes inside a tree: FIFOs and devices are archived as tar entries (tar does the
  same) and come back as what they were; a socket cannot be archived and is said so (``not_archived`` and a
  warning), never silently absent from the restore;
- a directory replaced by a regular file (or a FIFO) while the walk is about to enter it;
- extended attributes on symlinks (``trusted.*`` as root) and file flags (chattr +d, +A): kept, or the restore
  says what it dropped;
- sparse files: holes are skipped when read (SEEK_DATA/SEEK_HOLE), archived as GNU sparse entries (PAX 1.0) that
  GNU tar reads, and restored as holes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402

ROOT = os.geteuid() == 0
NS = 1_600_000_000_123_456_789


def backup_task(paths, dest, **extra):
    args = {'paths': [str(p) for p in paths], 'dest': str(dest), 'name': 'app'}
    args.update(extra)
    return {'name': 'backup', 'opsready.operations.file_backup': args}


def restore_task(src, dest, **extra):
    args = {'src': str(src), 'dest': str(dest), 'name': 'app'}
    args.update(extra)
    return {'name': 'restore', 'opsready.operations.file_restore': args}


def entry(path) -> tuple:
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    rdev = st.st_rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else None
    body = os.readlink(path) if kind == stat.S_IFLNK else (Path(path).read_bytes() if kind == stat.S_IFREG else None)
    return stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, rdev, body


def tree(top) -> Dict[str, tuple]:
    found = {}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, top)] = entry(path)
    return found


# -- FIFOs, sockets, devices ------------------------------------------------------------------------------------

def special_tree(src: Path):
    """A tree with a regular file, a FIFO, a bound unix socket and (as root) a character and a block device."""
    src.mkdir(parents=True)
    (src / 'app.conf').write_text('listen 8080\n')
    os.mkfifo(src / 'control.fifo', 0o620)
    os.chmod(src / 'control.fifo', 0o620)
    os.utime(src / 'control.fifo', ns=(NS, NS))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(src / 'app.sock'))
    server.listen(1)
    if ROOT:
        os.mknod(src / 'null', 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod(src / 'null', 0o666)
        os.mknod(src / 'loop-disk', 0o600 | stat.S_IFBLK, os.makedev(7, 200))
        os.chown(src / 'loop-disk', 0, 6)
        os.utime(src / 'loop-disk', ns=(NS, NS))
    return server


def test_fifos_and_devices_are_archived_and_sockets_said_so(tmp_path):
    """A FIFO (an application's control pipe) and device nodes (a chroot's /dev, a container's rootfs) inside a
    backed-up tree were left out, listed only in ``not_archived``, with no warning: the restored tree lacked them
    and the application failed to start. tar archives both as entries: so must file_backup, without ever opening
    them (a FIFO without a writer blocks). A socket cannot be archived (its server makes it again): it must be in
    ``not_archived`` with a warning. A second restore changes nothing."""
    src = tmp_path / 'src' / 'chroot'
    server = special_tree(src)
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    try:
        expected = tree(src)
        result = run_playbook(write_playbook(tmp_path, [backup_task([src], dest, compression='none')]), timeout=300)
    finally:
        server.close()
    assert result.rc == 0, result.stdout[-3000:]
    out = result.result('backup')
    assert out['not_archived'] == [{'path': str(src / 'app.sock'), 'reason': 'a socket'}], out['not_archived']
    warnings = ' '.join(out.get('warnings') or [])
    assert str(src / 'app.sock') in warnings and 'socket' in warnings, out
    with tarfile.open(out['archive']) as tar:
        kinds = {m.name.rsplit('/', 1)[-1]: m for m in tar}
    assert kinds['control.fifo'].isfifo()
    if ROOT:
        assert kinds['null'].ischr() and (kinds['null'].devmajor, kinds['null'].devminor) == (1, 3)
        assert kinds['loop-disk'].isblk() and (kinds['loop-disk'].devmajor, kinds['loop-disk'].devminor) == (7, 200)
    # GNU tar reads the archive as the same entries
    listing = subprocess.run(['tar', '-tvf', out['archive']], capture_output=True, text=True, check=False)
    assert listing.returncode == 0, listing.stderr
    assert any(line.startswith('p') and line.endswith('control.fifo') for line in listing.stdout.splitlines())
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, target)]), timeout=300)
    assert result.rc == 0, result.stdout[-3000:]
    assert not result.result('restore').get('warnings'), result.result('restore')
    restored = target / str(src).lstrip('/')
    expected.pop('app.sock')
    assert tree(restored) == expected
    again = run_playbook(write_playbook(tmp_path, [restore_task(dest, target)]), timeout=300)
    assert again.rc == 0 and again.result('restore')['changed'] is False, again.stdout[-3000:]


def readable_runtime(lib: Path) -> str:
    """What another account needs to import extract: the clone (CI's is a 0700 temporary directory) and the venv
    are root's, so the collection's plugins and the third-party packages extract imports are copied to ``lib``."""
    from ansible_collections.opsready.operations.plugins.module_utils.files import extract  # noqa: F401
    collection = lib / 'ansible_collections' / 'opsready' / 'operations'
    shutil.copytree(Path(__file__).resolve().parents[2] / 'plugins', collection / 'plugins',
                    ignore=shutil.ignore_patterns('__pycache__'))
    sites = [path for path in sys.path if path.endswith('site-packages')]
    for name, module in list(sys.modules.items()):
        source = getattr(module, '__file__', None)
        if '.' in name or not source or not any(source.startswith(site + os.sep) for site in sites):
            continue
        origin = Path(source)
        if origin.name == '__init__.py':
            shutil.copytree(origin.parent, lib / origin.parent.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy2(origin, lib / origin.name)
    return str(lib)


@pytest.mark.skipif(not ROOT, reason='making device nodes needs root')
def test_devices_restored_by_another_user_are_reported(tmp_path):
    """Only root makes device nodes: a restore by another user (into their own directory) puts back everything
    else and says which device nodes it could not make, instead of failing or leaving them out in silence."""
    src = tmp_path / 'src' / 'chroot'
    special_tree(src).close()
    dest = tmp_path / 'backups'
    assert run_playbook(write_playbook(tmp_path, [backup_task([src], dest)])).rc == 0
    user_home = Path(tempfile.mkdtemp(prefix='opsready-nobody-', dir='/tmp'))   # tmp_path's parents are 0700
    try:
        subprocess.run(['cp', '-a', str(dest), str(user_home / 'backups')], check=True)
        lib = readable_runtime(user_home / 'lib')
        subprocess.run(['chown', '-R', '65534:65534', str(user_home)], check=True)
        code = ('import json, sys\n'
                'from ansible_collections.opsready.operations.plugins.module_utils.files import extract\n'
                'm = extract.find_archive(sys.argv[1], "app")\n'
                'print(json.dumps(extract.restore_archive(m, sys.argv[2])))\n')
        run = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                              os.path.realpath(sys.executable), '-c', code, str(user_home / 'backups'),
                              str(user_home / 'restored')], env=dict(os.environ, PYTHONPATH=lib),
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        outcome = json.loads(run.stdout)
        dropped = {p['path'].rsplit('/', 1)[-1]: p['reason'] for p in outcome['not_restored']}
        assert set(dropped) == {'null', 'loop-disk'}, outcome
        assert 'device' in dropped['null'] and 'root' in dropped['null'], dropped
        restored = user_home / 'restored' / str(src).lstrip('/')
        assert stat.S_ISFIFO(os.lstat(restored / 'control.fifo').st_mode)
        assert (restored / 'app.conf').read_text() == 'listen 8080\n'
        assert not os.path.lexists(restored / 'null')
    finally:
        shutil.rmtree(user_home)


# -- a directory replaced while the walk enters it --------------------------------------------------------------

@pytest.mark.parametrize('replacement', ['file', 'fifo', 'symlink'])
@pytest.mark.parametrize('moment', ['after-listed', 'at-open'])
def test_a_directory_replaced_mid_walk_is_recorded(tmp_path, monkeypatch, replacement, moment):
    """A directory swapped for a regular file (a log rotation that replaces a directory, a package upgrade) after
    the walk listed it as a directory failed the whole backup inside os.fwalk ("Not a directory") or, swapped a
    moment later, left its content out in silence; a FIFO swapped in blocked the backup on open. The backup must go
    through and record the path in ``not_archived``."""
    from ansible_collections.opsready.operations.plugins.module_utils.files import archive
    src = tmp_path / 'src'
    for name in ('a', 'b', 'c'):
        (src / name).mkdir(parents=True)
        (src / name / 'inside').write_text(name)

    def swap():
        (src / 'b' / 'inside').unlink()
        (src / 'b').rmdir()
        if replacement == 'file':
            (src / 'b').write_text('now a file\n')
        elif replacement == 'fifo':
            os.mkfifo(src / 'b')
        else:
            os.symlink('/etc', src / 'b')
    swapped = []
    if moment == 'after-listed':
        real_add = archive.add_entry

        def add_then_swap(tar, path, *args, **kwargs):
            done = real_add(tar, path, *args, **kwargs)
            if path == str(src / 'c') and not swapped:   # every entry of src was archived, none entered yet
                swap()
                swapped.append(path)
            return done
        monkeypatch.setattr(archive, 'add_entry', add_then_swap)
    else:
        real_open = os.open

        def open_then_swap(path, flags, *args, **kwargs):
            if path == 'b' and kwargs.get('dir_fd') is not None and not swapped:
                swap()
                swapped.append(path)
            return real_open(path, flags, *args, **kwargs)
        monkeypatch.setattr(os, 'open', open_then_swap)
    dest = tmp_path / 'backups'
    archive.prepare_dest(str(dest), False)
    started = time.monotonic()
    manifest = archive.create_archive([str(src)], str(dest), 'set', compression='none')
    assert swapped and time.monotonic() - started < 60
    assert manifest['not_archived'] == [{'path': str(src / 'b'), 'reason': 'directory replaced by %s while the '
                                         'backup ran (what it held is not in the archive)' % {
                                             'file': 'a regular file', 'fifo': 'a FIFO (named pipe)',
                                             'symlink': 'a symlink'}[replacement]}], manifest['not_archived']
    with tarfile.open(manifest['path']) as tar:
        names = sorted(m.name[len(str(src).lstrip('/')):] for m in tar)
    assert names == ['', '/a', '/a/inside', '/b', '/c', '/c/inside'], names


# -- sparse files -----------------------------------------------------------------------------------------------

def make_sparse(path: Path, size: int, extents) -> bytes:
    """A file of ``size`` bytes holding data only at ``extents`` ((offset, length)); returns its content."""
    content = bytearray(size)
    with open(path, 'wb') as handle:
        handle.truncate(size)
        for offset, length in extents:
            data = os.urandom(length)
            handle.seek(offset)
            handle.write(data)
            content[offset:offset + length] = data
    return bytes(content)


@pytest.mark.parametrize('shape', ['hole-at-end', 'data-at-end', 'all-hole'])
def test_sparse_files_are_archived_as_gnu_sparse_and_restored_with_holes(tmp_path, shape):
    """A 9 GiB sparse disk image took 17-26 s to back up: every byte of its holes was read, hashed and compressed.
    Its data extents alone must be read (SEEK_DATA/SEEK_HOLE) and archived as a GNU sparse member (PAX format 1.0),
    which GNU tar lists and extracts with holes, and which file_restore puts back with holes; the drill still
    proves its content."""
    mib = 1 << 20
    size = 256 * mib + 12345
    extents = {'hole-at-end': [(0, 4096), (100 * mib, mib + 17)],
               'data-at-end': [(3 * mib, 8192), (size - 5000, 5000)],
               'all-hole': []}[shape]
    src = tmp_path / 'src' / 'images'
    src.mkdir(parents=True)
    content = make_sparse(src / 'disk.img', size, extents)
    os.utime(src / 'disk.img', ns=(NS, NS))
    (src / 'plain.conf').write_text('x\n')
    st = os.stat(src / 'disk.img')
    if st.st_blocks * 512 >= size:
        pytest.skip('this file system does not keep holes')
    dest = tmp_path / 'backups'
    result = run_playbook(write_playbook(tmp_path, [backup_task([src], dest, compression='none')]))
    assert result.rc == 0, result.stdout[-3000:]
    out = result.result('backup')
    archive_path = out['archive']
    # only the data was stored: the uncompressed archive is about the data's size, not 256 MiB
    assert os.path.getsize(archive_path) < sum(length for _o, length in extents) + mib, os.path.getsize(archive_path)
    with tarfile.open(archive_path) as tar:
        member = tar.getmember(str(src / 'disk.img').lstrip('/'))
        assert member.sparse is not None and member.size == size
        assert tar.extractfile(member).read() == content
    # GNU tar: lists the real name and size, extracts with holes
    listing = subprocess.run(['tar', '-tvf', archive_path], capture_output=True, text=True, check=False)
    assert listing.returncode == 0 and not listing.stderr, listing.stderr
    line = [x for x in listing.stdout.splitlines() if x.endswith('disk.img')]
    assert line and str(size) in line[0].split() and 'GNUSparseFile' not in listing.stdout, listing.stdout
    by_gnu = tmp_path / 'gnu'
    by_gnu.mkdir()
    run = subprocess.run(['tar', '-xf', archive_path, '-C', str(by_gnu)], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0 and not run.stderr, run.stderr
    extracted = by_gnu / str(src / 'disk.img').lstrip('/')
    assert extracted.read_bytes() == content and os.stat(extracted).st_blocks * 512 < 2 * mib + 65536
    # file_restore: the same bytes, holes kept, the exact mtime; a second restore changes nothing
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, target), restore_task(dest, target)]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = target / str(src / 'disk.img').lstrip('/')
    assert restored.read_bytes() == content
    again = os.stat(restored)
    assert again.st_blocks * 512 < 2 * mib + 65536 and again.st_mtime_ns == NS and again.st_size == size
    assert result.result('restore')['changed'] is False   # the last one
    # the drill's check of the restored tree against the manifest's member records
    from ansible_collections.opsready.operations.plugins.module_utils.drill.fileset import compare_tree
    assert compare_tree(str(target), out['manifest']['files'], owners=True) == []
    with open(restored, 'r+b') as handle:
        handle.seek(size - 1)
        handle.write(b'\x01')
    assert compare_tree(str(target), out['manifest']['files'], owners=True) == [
        '%s: content differs from the backup (chunk digest or size)' % str(src / 'disk.img').lstrip('/')]


# -- extended attributes on symlinks, file flags ----------------------------------------------------------------

def lsattr(path) -> str:
    run = subprocess.run(['lsattr', '-d', str(path)], capture_output=True, text=True, check=False)
    return run.stdout.split()[0] if run.returncode == 0 else ''


@pytest.fixture
def flagged():
    """Paths given file flags by the test; cleared afterwards (an immutable file would stay in tmp_path)."""
    made = []
    yield made
    for path in made:
        subprocess.run(['chattr', '-iadA', str(path)], capture_output=True, check=False)


@pytest.mark.skipif(not ROOT, reason='trusted.* and chattr +i need root')
def test_symlink_xattrs_and_file_flags_are_kept_or_reported(tmp_path, flagged):
    """``trusted.*`` on a symlink (root can set it; an overlay or a security tool keeps its marks there) and file
    flags (chattr +d nodump, +A noatime on a file and +d on a directory: what dump-based tools and mail spools rely
    on) were dropped by backup and restore without a word. The symlink's attributes and the harmless flags must come
    back; an immutable flag is not set again (the restored file would refuse the next restore and a drill's
    cleanup) and the restore says so, naming the file and the chattr to run."""
    src = tmp_path / 'src' / 'spool'
    (src / 'queue').mkdir(parents=True)
    (src / 'queue' / 'msg').write_text('m\n')
    (src / 'index.db').write_text('i\n')
    (src / 'pinned.conf').write_text('p\n')
    os.symlink('queue/msg', src / 'latest')
    try:
        os.setxattr(src / 'latest', 'trusted.overlay.origin', b'\x00\xfbmark', follow_symlinks=False)
    except OSError:
        pytest.skip('this file system takes no trusted.* on symlinks')
    for path, flags in ((src / 'index.db', '+dA'), (src / 'queue', '+d'), (src / 'pinned.conf', '+i')):
        flagged.append(path)
        if subprocess.run(['chattr', flags, str(path)], capture_output=True, check=False).returncode:
            pytest.skip('chattr %s is not supported here' % flags)
    before = {name: lsattr(src / name) for name in ('index.db', 'queue', 'pinned.conf', 'queue/msg')}
    assert 'd' in before['index.db'] and 'A' in before['index.db'] and 'i' in before['pinned.conf']
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [backup_task([src], dest), restore_task(dest, target)]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = target / str(src).lstrip('/')
    flagged.append(restored / 'pinned.conf')
    assert os.getxattr(restored / 'latest', 'trusted.overlay.origin', follow_symlinks=False) == b'\x00\xfbmark'
    after = {name: lsattr(restored / name) for name in before}
    assert after['index.db'] == before['index.db'] and after['queue'] == before['queue'], (before, after)
    assert after['queue/msg'] == before['queue/msg']
    assert 'i' not in after['pinned.conf']
    out = result.result('restore')
    assert out['not_restored'] == [{'path': str(src / 'pinned.conf').lstrip('/'), 'reason': (
        'file flag schg (chattr +i) not restored: set it again with chattr +i once the restored file is '
        'checked')}], out['not_restored']
    assert any('chattr +i' in w for w in out.get('warnings') or []), out
