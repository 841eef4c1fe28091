"""Fidelity of file_backup -> file_restore, round 5: restores over an existing tree that differs only in what the
earlier rounds did not compare, sparse files restored over, and files rewritten while they are read.

- a re-restore over a tree whose symlink carries other extended attributes, or whose file or directory carries
  other file flags (chattr +d, +A), put nothing back and reported the tree unchanged;
- a re-restore over an identical sparse file read every byte of its holes to compare it;
- a file rewritten while it was read, its mtime then put back (``cp -p``, ``rsync -t`` in place), was archived
  torn and reported nowhere.

These call file_backup's and file_restore's module_utils directly (their module wrappers add nothing here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract  # noqa: E402

ROOT = os.geteuid() == 0
NS = 1_600_000_000_123_456_789


def backup(src: Path, dest: Path) -> dict:
    archive.prepare_dest(str(dest), False)
    return archive.create_archive([str(src)], str(dest), 'set', compression='none')


def restore(dest: Path, target: Path) -> dict:
    return extract.restore_archive(extract.find_archive(str(dest), 'set'), str(target))


def lsattr(path) -> str:
    run = subprocess.run(['lsattr', '-d', str(path)], capture_output=True, text=True, check=False)
    return run.stdout.split()[0] if run.returncode == 0 else ''


@pytest.fixture
def flagged():
    """Paths given file flags by the test; cleared afterwards."""
    made = []
    yield made
    for path in made:
        subprocess.run(['chattr', '-iadA', str(path)], capture_output=True, check=False)


# -- a restore over a tree that differs only in symlink xattrs or file flags -------------------------------------

@pytest.mark.skipif(not ROOT, reason='trusted.* and chattr need root')
def test_a_restore_over_a_tree_differing_only_in_symlink_xattrs_or_file_flags_puts_them_back(tmp_path, flagged):
    """A symlink whose ``trusted.*`` attributes were changed or removed, a file and a directory given or cleared a
    file flag (chattr +d / +A) since the restore: the next restore compared contents, modes, owners, mtimes and the
    regular files' attributes only, left all of them as they were and reported the tree unchanged."""
    src = tmp_path / 'src' / 'spool'
    (src / 'queue').mkdir(parents=True)
    (src / 'queue' / 'msg').write_text('m\n')
    (src / 'index.db').write_text('i\n')
    (src / 'plain.conf').write_text('p\n')
    (src / 'cache').mkdir()
    os.symlink('queue/msg', src / 'latest')
    os.symlink('index.db', src / 'bare-link')
    try:
        os.setxattr(src / 'latest', 'trusted.overlay.origin', b'\x00mark', follow_symlinks=False)
    except OSError:
        pytest.skip('this file system takes no trusted.* on symlinks')
    for path, flags in ((src / 'index.db', '+dA'), (src / 'queue', '+d')):
        flagged.append(path)
        if subprocess.run(['chattr', flags, str(path)], capture_output=True, check=False).returncode:
            pytest.skip('chattr %s is not supported here' % flags)
    for path in (src / 'queue' / 'msg', src / 'index.db', src / 'plain.conf', src / 'queue', src / 'cache', src):
        os.utime(path, ns=(NS, NS))
    dest, target = tmp_path / 'backups', tmp_path / 'restored'
    backup(src, dest)
    first = restore(dest, target)
    assert first['not_restored'] == [], first
    restored = target / str(src).lstrip('/')
    before = {name: lsattr(restored / name) for name in ('index.db', 'queue', 'plain.conf', 'cache')}
    flagged.extend(restored / name for name in before)
    # what changed on the target since: attributes and flags only (contents, modes, owners and mtimes as archived)
    os.setxattr(restored / 'latest', 'trusted.overlay.origin', b'\x00other', follow_symlinks=False)
    os.setxattr(restored / 'bare-link', 'trusted.added', b'x', follow_symlinks=False)
    for name, flags in (('index.db', '-d'), ('plain.conf', '+d'), ('queue', '-d'), ('cache', '+A')):
        subprocess.run(['chattr', flags, str(restored / name)], check=True)
    for name in ('index.db', 'plain.conf', 'queue', 'cache'):
        os.utime(restored / name, ns=(NS, NS))
    again = restore(dest, target)
    assert os.getxattr(restored / 'latest', 'trusted.overlay.origin', follow_symlinks=False) == b'\x00mark'
    assert 'trusted.added' not in os.listxattr(restored / 'bare-link', follow_symlinks=False)
    assert {name: lsattr(restored / name) for name in before} == before
    put_back = sorted(os.path.basename(p) for p in again['restored'])
    assert put_back == ['bare-link', 'index.db', 'latest', 'plain.conf'], again
    # and once put back, the next restore leaves everything alone
    assert restore(dest, target)['restored'] == []


@pytest.mark.skipif(not ROOT, reason='chattr on a directory of root\'s')
def test_a_restore_into_a_directory_with_inherited_flags_adds_no_flag(tmp_path, flagged):
    """Files and directories made under a directory with chattr +d (nodump) or +A (noatime) inherit those flags
    (ext4, XFS): a restore into such a target (a /srv/restore marked nodump) gave every restored file a flag its
    source never had - a nodump-based backup of the restored tree then silently skipped all of it. As with the
    default ACL of round 3, the restored entries must carry the archived flags only."""
    src = tmp_path / 'src' / 'app'
    (src / 'conf').mkdir(parents=True)
    (src / 'conf' / 'app.conf').write_text('c\n')
    (src / 'data.db').write_text('d\n')
    dest, target = tmp_path / 'backups', tmp_path / 'restored'
    backup(src, dest)
    target.mkdir()
    flagged.append(target)
    if subprocess.run(['chattr', '+dA', str(target)], capture_output=True, check=False).returncode:
        pytest.skip('chattr +dA is not supported here')
    outcome = restore(dest, target)
    assert outcome['not_restored'] == [], outcome
    restored = target / str(src).lstrip('/')
    flags = {str(p.relative_to(restored)): lsattr(p) for p in [restored, *restored.rglob('*')]}
    flagged.extend(restored.rglob('*'))
    assert {name: ('d' in f or 'A' in f) for name, f in flags.items()} == dict.fromkeys(flags, False), flags


# -- a restore over an identical sparse file ---------------------------------------------------------------------

def test_a_restore_over_a_sparse_file_compares_its_data_not_its_holes(tmp_path):
    """A re-restore over an identical 9 GiB sparse disk image read both copies byte by byte, holes included, to
    find them equal: 96 s here for 12 KiB of data. Only the data extents of either file need reading (SEEK_DATA /
    SEEK_HOLE; where both have a hole both read zeros); a byte written into a hole of the target, or changed in its
    data, must still be found and put back."""
    gib = 1 << 30
    size = 8 * gib + 4096
    src = tmp_path / 'src' / 'images'
    src.mkdir(parents=True)
    with open(src / 'disk.img', 'wb') as handle:
        handle.truncate(size)
        for offset in (0, 3 * gib, size - 4096):
            handle.seek(offset)
            handle.write(os.urandom(4096))
    os.utime(src / 'disk.img', ns=(NS, NS))
    if os.stat(src / 'disk.img').st_blocks * 512 >= size:
        pytest.skip('this file system does not keep holes')
    dest, target = tmp_path / 'backups', tmp_path / 'restored'
    backup(src, dest)
    restored = target / str(src / 'disk.img').lstrip('/')
    assert len(restore(dest, target)['restored']) == 1
    original = os.stat(restored)
    started = time.monotonic()
    assert restore(dest, target)['restored'] == []
    elapsed = time.monotonic() - started
    assert elapsed < 10, 'an identical 8 GiB sparse file took %.1f s to compare' % elapsed
    assert os.stat(restored).st_ino == original.st_ino
    for offset, byte in ((5 * gib, b'\x01'), (3 * gib + 100, None)):   # into a hole; within the data
        with open(restored, 'r+b') as handle:
            handle.seek(offset)
            old = handle.read(1)
            handle.seek(offset)
            handle.write(byte or bytes([old[0] ^ 0xFF]))
        os.utime(restored, ns=(NS, NS))
        assert [os.path.basename(p) for p in restore(dest, target)['restored']] == ['disk.img'], offset
        with open(restored, 'rb') as handle:
            handle.seek(offset)
            assert handle.read(1) == (bytes(1) if byte else old)


# -- a file rewritten while it is read, its mtime put back ------------------------------------------------------

@pytest.mark.parametrize('kind', ['plain', 'sparse'])
def test_a_file_rewritten_while_read_with_its_mtime_put_back_is_reported(tmp_path, monkeypatch, kind):
    """A file rewritten in place while file_backup read it, then given its old mtime back (``cp -p`` or
    ``rsync -t --inplace`` over it, an application that keeps mtimes): size and mtime were as before, so the
    archived copy - half old, half new - was reported nowhere. The ctime cannot be put back: it must be compared
    too (GNU tar's "file changed as we read it" does), and the file listed in ``changed_while_read``."""
    src = tmp_path / 'src'
    src.mkdir()
    path = src / 'ledger.db'
    mib = 1 << 20
    with open(path, 'wb') as handle:
        if kind == 'sparse':
            handle.truncate(64 * mib)
        handle.write(b'o' * (3 * mib))
    os.utime(path, ns=(NS, NS))
    reader = archive._SparseReader if kind == 'sparse' else archive._Padded
    real_read = reader.read
    rewritten = []

    def read_then_rewrite(self, size=-1):
        data = real_read(self, size)
        if not rewritten:
            with open(path, 'r+b') as handle:
                handle.write(b'n' * (3 * mib))
            os.utime(path, ns=(NS, NS))
            rewritten.append(True)
        return data
    monkeypatch.setattr(reader, 'read', read_then_rewrite)
    manifest = backup(src, tmp_path / 'backups')
    assert rewritten
    assert [c['path'] for c in manifest.get('changed_while_read') or []] == [str(path)], manifest


# -- every sparse writer path ------------------------------------------------------------------------------------

@pytest.mark.parametrize('path', ['data-beyond-the-size-field', 'no-seek-data'])
def test_every_sparse_writer_path_restores_holes(tmp_path, monkeypatch, path):
    """A sparse file whose data (with its map) did not fit the ustar size field (8 GiB) was archived with every
    byte of its holes under the old ``OPSREADY.sparse`` keyword: a 100 GiB image with 9 GiB of data read and
    stored 100 GiB. It must be a GNU sparse member as any other (its stored size in the base-256 size field, which
    tarfile and GNU tar read; a pax "size" record would hide the map from tarfile). The limit is lowered here to
    1 MiB: 8 GiB of data is no test. Only where the file system cannot tell holes (no SEEK_DATA) is the old keyword
    still written - and read back as holes; GNU tar extracts both without a warning."""
    mib = 1 << 20
    size = 64 * mib
    src = tmp_path / 'src'
    src.mkdir()
    content = bytearray(size)
    with open(src / 'disk.img', 'wb') as handle:
        handle.truncate(size)
        for offset, length in ((mib, 3 * mib), (40 * mib, 4096)):
            data = os.urandom(length)
            handle.seek(offset)
            handle.write(data)
            content[offset:offset + length] = data
    if os.stat(src / 'disk.img').st_blocks * 512 >= size:
        pytest.skip('this file system does not keep holes')
    if path == 'no-seek-data':
        monkeypatch.setattr(archive.safeio, 'data_segments', lambda fd, size: None)
    else:
        monkeypatch.setattr(archive, '_SPARSE_STORED_LIMIT', mib)
    dest, target = tmp_path / 'backups', tmp_path / 'restored'
    manifest = backup(src, dest)
    import tarfile
    with tarfile.open(manifest['path']) as tar:
        member = tar.getmember(str(src / 'disk.img').lstrip('/'))
        assert member.size == size
        if path == 'no-seek-data':
            assert member.pax_headers.get('OPSREADY.sparse') == '1' and member.sparse is None
        else:
            assert 'OPSREADY.sparse' not in member.pax_headers and member.sparse is not None
            assert os.path.getsize(manifest['path']) < 5 * mib
        assert tar.extractfile(member).read() == content
    gnu = tmp_path / 'gnu'
    gnu.mkdir()
    run = subprocess.run(['tar', '--warning=no-unknown-keyword', '-xf', manifest['path'], '-C', str(gnu)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0 and not run.stderr, run.stderr
    assert (gnu / str(src / 'disk.img').lstrip('/')).read_bytes() == content
    restore(dest, target)
    restored = target / str(src / 'disk.img').lstrip('/')
    assert restored.read_bytes() == content
    assert os.stat(restored).st_blocks * 512 < 5 * mib


# -- setuid and setgid files restored by another user ------------------------------------------------------------

@pytest.mark.skipif(not ROOT, reason='files of several owners need root')
def test_setuid_and_setgid_files_restored_by_another_user_are_reported_not_given_to_them(tmp_path):
    """As root the bits come back with their owners (the first restore below checks it). A restore by another user
    cannot give files their archived owners: tarfile dropped the owner in silence and still set the mode, so a
    setuid-root binary came back setuid to that user (and a setgid-shadow one setgid to the user's group), with
    nothing said. As GNU tar does, the bits are cleared where the owner they belong to could not be set, and the
    restore names each file; a file the user owns in the archive keeps its bits."""
    import json
    import shutil
    import stat
    import tempfile
    from tests.fidelity.test_files_round4 import readable_runtime
    src = tmp_path / 'src' / 'bin'
    src.mkdir(parents=True)
    files = {'suid-root': (0o4755, 0, 0), 'sgid-shadow': (0o2755, 0, 42), 'both': (0o6750, 1234, 1234),
             'nobody-sgid': (0o2755, 65534, 65534), 'plain': (0o644, 1234, 1234)}
    for name, (mode, uid, gid) in files.items():
        (src / name).write_text(name)
        os.chown(src / name, uid, gid)
        os.chmod(src / name, mode)
    dest = tmp_path / 'backups'
    backup(src, dest)
    as_root = tmp_path / 'as-root'
    assert restore(dest, as_root)['not_restored'] == []
    for name, (mode, uid, gid) in files.items():
        st = os.lstat(as_root / str(src / name).lstrip('/'))
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, gid), name
    home = Path(tempfile.mkdtemp(prefix='opsready-nobody-', dir='/tmp'))   # tmp_path's parents are 0700
    try:
        subprocess.run(['cp', '-a', str(dest), str(home / 'backups')], check=True)
        lib = readable_runtime(home / 'lib')
        subprocess.run(['chown', '-R', '65534:65534', str(home)], check=True)
        code = ('import json, sys\n'
                'from ansible_collections.opsready.operations.plugins.module_utils.files import extract\n'
                'm = extract.find_archive(sys.argv[1], "set")\n'
                'print(json.dumps(extract.restore_archive(m, sys.argv[2])))\n')
        run = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                              os.path.realpath(sys.executable), '-c', code, str(home / 'backups'),
                              str(home / 'restored')], env=dict(os.environ, PYTHONPATH=lib),
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        outcome = json.loads(run.stdout)
        restored = home / 'restored' / str(src).lstrip('/')
        modes = {name: stat.S_IMODE(os.lstat(restored / name).st_mode) for name in files}
        assert modes == {'suid-root': 0o755, 'sgid-shadow': 0o755, 'both': 0o750, 'nobody-sgid': 0o2755,
                         'plain': 0o644}, {k: oct(v) for k, v in modes.items()}
        told = {p['path'].rsplit('/', 1)[-1]: p['reason'] for p in outcome['not_restored']}
        assert sorted(told) == ['both', 'sgid-shadow', 'suid-root'], outcome
        assert 'setuid' in told['suid-root'] and 'root' in told['suid-root'], told
        assert 'setgid' in told['sgid-shadow'] and 'setuid' in told['both'] and 'setgid' in told['both'], told
        # a second restore by the same user changes nothing and says the same
        again = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                                os.path.realpath(sys.executable), '-c', code, str(home / 'backups'),
                                str(home / 'restored')], env=dict(os.environ, PYTHONPATH=lib),
                               capture_output=True, text=True, check=False)
        assert again.returncode == 0 and json.loads(again.stdout)['restored'] == [], again.stdout[-2000:]
    finally:
        shutil.rmtree(home)


# -- access times of the source ----------------------------------------------------------------------------------

def test_a_backup_leaves_the_source_access_times_as_they_were(tmp_path):
    """Reading every file (and listing every directory) of the set updated their access times (relatime does when
    the atime is older than the mtime): each backup made the whole tree look just used, defeating tmpwatch-style
    cleanups and "last accessed" audits of the source. Read with O_NOATIME (root, or the files' owner), as GNU
    tar --atime-preserve=system does, nothing of the source changes."""
    src = tmp_path / 'src'
    (src / 'cache').mkdir(parents=True)
    (src / 'cache' / 'old.bin').write_bytes(b'x' * 5000)
    (src / 'cache' / 'sparse.img').write_bytes(b'')
    with open(src / 'cache' / 'sparse.img', 'r+b') as handle:
        handle.truncate(32 << 20)
        handle.write(b'data')
    old = NS - 10 ** 12
    for path in (src / 'cache' / 'old.bin', src / 'cache' / 'sparse.img', src / 'cache', src):
        os.utime(path, ns=(old, NS))
    backup(src, tmp_path / 'backups')
    times = {str(p.relative_to(tmp_path)): os.stat(p).st_atime_ns
             for p in (src, src / 'cache', src / 'cache' / 'old.bin', src / 'cache' / 'sparse.img')}
    assert times == dict.fromkeys(times, old), times
