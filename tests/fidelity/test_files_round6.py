"""Fidelity of file_backup -> file_restore, round 6: what a restore cannot give back is said, and check mode says
what the real run will do.

- a hard link to a file outside the backed-up set came back as a separate file, with nothing said;
- a restore by another user than root gave every entry its own owner in silence;
- check mode by such a user listed every setuid file as "would change" on every run (the real restore clears the
  bit and then leaves the file alone) and did not say which bits the real run clears;
- check mode read every byte of a sparse member's holes from the archive to compare it;
- check mode was untested on encrypted archives and hard links.

These call file_backup's and file_restore's module_utils directly (their module wrappers only turn the returned
lists into warnings); another user's restore runs in a child process under setpriv.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract  # noqa: E402

ROOT = os.geteuid() == 0
NS = 1_600_000_000_123_456_789


def backup(src, dest: Path, **extra) -> dict:
    archive.prepare_dest(str(dest), False)
    return archive.create_archive([str(s) for s in (src if isinstance(src, list) else [src])], str(dest), 'set',
                                  compression='none', **extra)


def restore(dest: Path, target: Path, **extra) -> dict:
    return extract.restore_archive(extract.find_archive(str(dest), 'set'), str(target), **extra)


# -- hard links to files outside the set -------------------------------------------------------------------------

def test_hard_links_to_files_outside_the_set_are_reported_at_backup_time(tmp_path):
    """A file of the set with another name outside it (``/etc/app/tls.key`` linked from ``/srv/keys``) is archived as
    a plain file: a restore cannot make the link to a name it does not have, so the pair comes back as two files and
    an edit of one no longer shows in the other. Said at backup time (the operator can then add the other name to
    paths while the source still exists), in the result and in the manifest, and again by the restore. Links whose
    names are all in the set are not listed."""
    src = tmp_path / 'src'
    src.mkdir()
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    (outside / 'shared.key').write_text('k\n')
    os.link(outside / 'shared.key', src / 'tls.key')
    (src / 'a').write_text('a\n')
    os.link(src / 'a', src / 'b')                      # both names in the set
    (src / 'three').write_text('3\n')
    os.link(src / 'three', src / 'three-again')        # two of three names in the set
    os.link(src / 'three', outside / 'three-outside')
    manifest = backup(src, tmp_path / 'backups')
    found = {e['path']: e for e in manifest['hardlinks_outside']}
    assert sorted(found) == [str(src / 'three'), str(src / 'tls.key')], manifest['hardlinks_outside']
    assert found[str(src / 'tls.key')]['links'] == 2 and found[str(src / 'tls.key')]['archived'] == 1
    assert found[str(src / 'three')]['links'] == 3 and found[str(src / 'three')]['archived'] == 2
    stored = json.loads(Path(manifest['path'] + '.manifest.json').read_text()) \
        if os.path.exists(manifest['path'] + '.manifest.json') else None
    if stored is not None:
        assert stored['hardlinks_outside'] == manifest['hardlinks_outside']
    # and at restore time, in check mode as in the real run, for the files restored (``only`` narrows it)
    target = tmp_path / 'restored'
    for check_mode in (True, False):
        outcome = restore(tmp_path / 'backups', target, check_mode=check_mode)
        assert outcome['hardlinks_outside'] == manifest['hardlinks_outside'], outcome
    narrowed = restore(tmp_path / 'backups', target, only=[str(src / 'a'), str(src / 'b')])
    assert narrowed['hardlinks_outside'] == []


# -- another user's restore: owners, setuid bits, check mode ------------------------------------------------------

def _as_nobody(home: Path, steps: list) -> list:
    """Run ``steps`` (each ``[check_mode, dest]``) as uid 65534 in one child; returns each restore_archive outcome."""
    code = ('import json, sys\n'
            'from ansible_collections.opsready.operations.plugins.module_utils.files import extract\n'
            'm = extract.find_archive(sys.argv[1], "set")\n'
            'print(json.dumps([extract.restore_archive(m, d, check_mode=c) for c, d in json.loads(sys.argv[2])]))\n')
    run = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                          os.path.realpath(sys.executable), '-c', code, str(home / 'backups'), json.dumps(steps)],
                         env=dict(os.environ, PYTHONPATH=str(home / 'lib')), capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture(scope='module')
def nobody_home(tmp_path_factory):
    """A backup of root's files (setuid, setgid, other owners) copied where uid 65534 can read it, with the runtime
    that user needs to import extract."""
    if not ROOT:
        pytest.skip('files of several owners need root')
    from tests.fidelity.test_files_round4 import readable_runtime
    base = tmp_path_factory.mktemp('nobody')
    src = base / 'src' / 'bin'
    src.mkdir(parents=True)
    files = {'suid-root': (0o4755, 0, 0), 'sgid-shadow': (0o2755, 0, 42), 'plain-root': (0o644, 0, 0),
             'theirs': (0o644, 65534, 65534), 'theirs-sgid': (0o2755, 65534, 65534)}
    for name, (mode, uid, gid) in files.items():
        (src / name).write_text(name)
        os.chown(src / name, uid, gid)
        os.chmod(src / name, mode)
        os.utime(src / name, ns=(NS, NS))
    os.mknod(src / 'null', 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    home = Path(tempfile.mkdtemp(prefix='opsready-nobody-', dir='/tmp'))   # tmp_path's parents are 0700
    try:
        backup(src, base / 'backups')
        subprocess.run(['cp', '-a', str(base / 'backups'), str(home / 'backups')], check=True)
        readable_runtime(home / 'lib')
        subprocess.run(['chown', '-R', '65534:65534', str(home)], check=True)
        yield home, src
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def test_another_users_restore_reports_the_owners_it_could_not_give(nobody_home):
    """Only root gives a file its archived owner: another user's restore made every entry that user's and said
    nothing of it (only the setuid/setgid bits it cleared were listed). Now the entries whose archived owner or group
    differs from what they got are counted, the first ones listed with what they should have been, in check mode as
    in the real run, and again on a re-restore (the tree still differs from the archive)."""
    home, src = nobody_home
    target = str(home / 'owners')
    check, real, again = _as_nobody(home, [[True, target], [False, target], [False, target]])
    rel = str(src).lstrip('/')
    for outcome in (check, real, again):
        owners = outcome['owners_not_restored']
        # the directories src's parents and src itself are root's too
        names = {e['path'] for e in owners['entries']}
        assert {rel + '/suid-root', rel + '/sgid-shadow', rel + '/plain-root'} <= names, owners
        assert rel + '/theirs' not in names and rel + '/theirs-sgid' not in names, owners
        assert owners['count'] == len(owners['entries']), owners
        shadow = [e for e in owners['entries'] if e['path'] == rel + '/sgid-shadow'][0]
        assert (shadow['uid'], shadow['gid']) == (0, 42), shadow
    assert again['restored'] == [], again


def test_another_users_check_mode_foresees_the_setid_bits_the_restore_clears(nobody_home):
    """Check mode by another user than root compared the archived mode (04755) with the file in place, which the
    real restore had given 0755 (its setuid bit cleared, the owner being that user): every check run listed the
    setuid and setgid files as "would change" though a restore left them alone, and no check run said which bits a
    restore clears; a device node, which such a restore cannot make, was listed as "would restore" every time. Now
    check mode reports both in not_restored, as the real run does, and an unchanged tree lists nothing."""
    home, src = nobody_home
    target = str(home / 'setid')
    first_check, real, check_after = _as_nobody(home, [[True, target], [False, target], [True, target]])
    told = sorted(p['path'].rsplit('/', 1)[-1] for p in real['not_restored'])
    assert told == ['null', 'sgid-shadow', 'suid-root'], real
    assert sorted(p['path'].rsplit('/', 1)[-1] for p in first_check['not_restored']) == told, first_check
    assert check_after['restored'] == [] and check_after['unchanged'] == real['unchanged'] + len(real['restored'])
    assert sorted(p['path'].rsplit('/', 1)[-1] for p in check_after['not_restored']) == told, check_after
    restored = home / 'setid' / str(src).lstrip('/')
    assert stat.S_IMODE(os.lstat(restored / 'theirs-sgid').st_mode) == 0o2755


# -- check mode: sparse members, encrypted archives, hard links -----------------------------------------------------

def test_check_mode_reads_only_the_data_of_a_sparse_member(tmp_path):
    """Check mode's second pass over the archive digested a sparse member through tarfile, which hands out every
    byte of the holes as zeros: 64 GiB of zeros read and compared for a disk image holding 2 MiB of data (~40 s
    here). Now only the member's data extents are read (its sparse map), and a change in them is still seen."""
    src = tmp_path / 'src'
    src.mkdir()
    image = src / 'disk.img'
    with open(image, 'wb') as handle:
        handle.truncate(64 << 30)
        handle.seek(1 << 20)
        handle.write(b'boot' * (256 << 10))
        handle.seek(40 << 30)
        handle.write(b'data' * (256 << 10))
    os.utime(image, ns=(NS, NS))
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    restore(dest, target)
    started = time.monotonic()
    check = restore(dest, target, check_mode=True)
    took = time.monotonic() - started
    assert check['restored'] == [] and check['unchanged'] == 1, check
    assert took < 5, 'check mode took %.1f s over an identical 64 GiB sparse file' % took
    placed = target / str(image).lstrip('/')
    with open(placed, 'r+b') as handle:
        handle.seek((40 << 30) + 10)
        handle.write(b'DATA')
    os.utime(placed, ns=(NS, NS))
    assert restore(dest, target, check_mode=True)['restored'] == [str(image).lstrip('/')]


@pytest.fixture
def linked_tree(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'first').write_text('shared content\n')
    os.link(src / 'first', src / 'second')
    (src / 'other.conf').write_text('other\n')
    for path in (src / 'first', src / 'other.conf'):
        os.utime(path, ns=(NS, NS))
    return src


@pytest.mark.parametrize('encrypted', [False, True], ids=['plain', 'age'])
def test_check_mode_agrees_with_the_restore_on_hard_links_and_encrypted_archives(tmp_path, linked_tree, encrypted):
    """Regression guard (passed before): check mode over an encrypted archive, and over hard links - an identical
    tree lists nothing; a link split into two files of the same content, mode and mtime lists the name the restore
    links again; a same-size edit with its mtime put back is seen through the decryption."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    src = linked_tree
    extra: dict = {}
    identities = None
    if encrypted:
        secret = encryption.generate_identity()
        identities = encryption.parse_identities(secret)
        extra['recipients'] = [identities[0].recipient]
    dest = tmp_path / 'backups'
    backup(src, dest, **extra)
    target = tmp_path / 'restored'
    restore(dest, target, identities=identities)
    rel = str(src).lstrip('/')
    placed = target / rel
    assert os.lstat(placed / 'first').st_ino == os.lstat(placed / 'second').st_ino
    assert restore(dest, target, check_mode=True, identities=identities)['restored'] == []
    # split the pair: 'second' becomes a copy with the same bytes, mode and mtime
    os.unlink(placed / 'second')
    shutil.copy2(placed / 'first', placed / 'second')
    os.utime(placed / 'second', ns=(NS, NS))
    edited = placed / 'other.conf'
    edited.write_text('OTHER\n')
    os.utime(edited, ns=(NS, NS))
    check = restore(dest, target, check_mode=True, identities=identities)
    assert sorted(check['restored']) == [rel + '/other.conf', rel + '/second'], check
    real = restore(dest, target, identities=identities)
    assert sorted(real['restored']) == [str(placed / 'other.conf'), str(placed / 'second')], real
    assert os.lstat(placed / 'first').st_ino == os.lstat(placed / 'second').st_ino
    assert restore(dest, target, check_mode=True, identities=identities)['restored'] == []


# -- red team: names, directories, types, symlinks in the target, what a re-restore leaves ------------------------

def _hostile_tree(top: Path) -> Path:
    """Every kind of legal name (newline, backslash, leading '-', 255 bytes, not UTF-8) and a path longer than
    PATH_MAX (4096), built through directory descriptors."""
    from tests.integration.test_file_fidelity import make_tree
    src = make_tree(top)
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _level in range(20):   # 20 x 250 bytes
            name = 'd' * 250
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open(os.fsdecode(b'deep-\xff\nleaf'), os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(leaf, b'deep\n')
        os.utime(leaf, ns=(NS, NS))
        os.close(leaf)
    finally:
        os.close(fd)
    return src


def test_check_mode_and_re_restore_over_every_kind_of_name(tmp_path):
    """Regression guard where it passes: a tree of hostile names (newline, backslash, leading '-', 255-byte and
    non-UTF-8 names, a path beyond 4096 bytes) restored, then checked and restored again: nothing listed, nothing
    put back; one same-size edit of the non-UTF-8 deep leaf is listed by check mode and put back alone."""
    src = _hostile_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    restore(dest, target)
    assert restore(dest, target, check_mode=True)['restored'] == []
    assert restore(dest, target)['restored'] == []
    deep = os.path.join(str(src).lstrip('/'), *(['d' * 250] * 20), os.fsdecode(b'deep-\xff\nleaf'))
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    parts = deep.split('/')
    for part in parts[:-1]:
        child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    leaf = os.open(parts[-1], os.O_WRONLY, dir_fd=fd)
    os.write(leaf, b'DEEP\n')
    os.utime(leaf, ns=(NS, NS))
    os.close(leaf)
    os.close(fd)
    assert restore(dest, target, check_mode=True)['restored'] == [deep]
    assert [os.path.relpath(p, str(target)) for p in restore(dest, target)['restored']] == [deep]


def test_a_directory_whose_mode_or_mtime_drifted_is_put_back_and_said(tmp_path):
    """A directory chmod'ed 0777 (or its mtime changed) after a restore: the re-restore put its archived mode and
    mtime back but reported nothing (``restored`` lists files only: changed=false after a change), and check mode
    did not look at directories at all; an empty directory missing from the target was made again with
    changed=false. Now both list such directories in ``directories`` (the module's changed and diff include them);
    an untouched tree lists nothing."""
    src = tmp_path / 'src'
    (src / 'conf.d').mkdir(parents=True)
    (src / 'conf.d' / 'a.conf').write_text('a\n')
    (src / 'empty').mkdir()
    (src / 'empty').chmod(0o750)
    for path in (src / 'conf.d' / 'a.conf', src / 'conf.d', src / 'empty', src):
        os.utime(path, ns=(NS, NS))
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    restore(dest, target)
    placed = target / str(src).lstrip('/')
    for name in ('conf.d', 'empty', ''):
        st = os.lstat(placed / name)
        assert (st.st_mtime_ns, stat.S_IMODE(st.st_mode)) == (NS, stat.S_IMODE(os.lstat(src / name).st_mode)), name
    (placed / 'conf.d').chmod(0o777)
    os.utime(placed / 'empty', ns=(NS + 5, NS + 5))
    rel = str(src).lstrip('/')
    check = restore(dest, target, check_mode=True)
    assert check['restored'] == [] and sorted(check['directories']) == [rel + '/conf.d', rel + '/empty'], check
    real = restore(dest, target)
    assert real['restored'] == [] and sorted(real['directories']) == [str(placed / 'conf.d'), str(placed / 'empty')]
    assert stat.S_IMODE(os.lstat(placed / 'conf.d').st_mode) == stat.S_IMODE(os.lstat(src / 'conf.d').st_mode)
    assert os.lstat(placed / 'empty').st_mtime_ns == NS
    assert restore(dest, target, check_mode=True)['directories'] == []
    assert restore(dest, target)['directories'] == []
    # a directory missing from the target (an empty one: no file is restored into it) is made and said
    (placed / 'empty').rmdir()   # its parent's mtime changes too, and is put back
    assert restore(dest, target, check_mode=True)['directories'] == [rel, rel + '/empty']
    again = restore(dest, target)
    assert again['restored'] == [] and sorted(again['directories']) == [str(placed), str(placed / 'empty')], again


def test_entries_that_changed_type_in_the_target(tmp_path):
    """Regression guard where it passes. In the target since the last restore: a file became a directory, a
    directory became a file, a symlink became a file, a file became a symlink to a file outside. The first two are
    refused before anything moves (nothing is deleted that the user did not ask to delete), the others replaced -
    the outside file is never written through."""
    src = tmp_path / 'src'
    (src / 'dir').mkdir(parents=True)
    (src / 'dir' / 'inner').write_text('inner\n')
    (src / 'file').write_text('file\n')
    (src / 'was-link-now-file').symlink_to('file')
    (src / 'was-file-now-link').write_text('mine\n')
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    restore(dest, target)
    placed = target / str(src).lstrip('/')
    outside = tmp_path / 'outside.txt'
    outside.write_text('outside\n')
    (placed / 'was-link-now-file').unlink()
    (placed / 'was-link-now-file').write_text('a file now\n')
    (placed / 'was-file-now-link').unlink()
    (placed / 'was-file-now-link').symlink_to(outside)
    real = restore(dest, target)
    assert sorted(real['restored']) == [str(placed / 'was-file-now-link'), str(placed / 'was-link-now-file')]
    assert outside.read_text() == 'outside\n'
    assert os.readlink(placed / 'was-link-now-file') == 'file'
    assert (placed / 'was-file-now-link').read_text() == 'mine\n' and not (placed / 'was-file-now-link').is_symlink()
    # a file where the archive has a directory, a directory where it has a file: refused, both kept as they are
    shutil.rmtree(placed / 'dir')
    (placed / 'dir').write_text('user data\n')
    (placed / 'file').unlink()
    (placed / 'file').mkdir()
    (placed / 'file' / 'user-made').write_text('keep me\n')
    with pytest.raises(extract.OpsReadyError, match='another type'):
        restore(dest, target)
    assert (placed / 'dir').read_text() == 'user data\n'
    assert (placed / 'file' / 'user-made').read_text() == 'keep me\n'


def test_a_symlink_in_the_target_leading_outside_is_never_written_through(tmp_path):
    """A restore into another root whose tree holds a symlink (root's own, in a directory only root writes) where
    the archive has a directory, leading outside that root (``restored/etc -> /etc``): the restore followed it - a
    restore meant for an inspection directory wrote into the live tree. A link that stays inside the root is
    followed as before (``/var/run -> /run`` with dest ``/``)."""
    src = tmp_path / 'src'
    (src / 'conf').mkdir(parents=True)
    (src / 'conf' / 'app.conf').write_text('archived\n')
    (src / 'data').mkdir()
    (src / 'data' / 'x').write_text('x\n')
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    placed = target / str(src).lstrip('/')
    placed.mkdir(parents=True)
    live = tmp_path / 'live'
    live.mkdir()
    (live / 'app.conf').write_text('live\n')
    (placed / 'conf').symlink_to(live)
    (placed / 'moved-data').mkdir()
    (placed / 'data').symlink_to('moved-data')   # inside the root: followed
    with pytest.raises(extract.OpsReadyError, match='not followed'):
        restore(dest, target)
    assert (live / 'app.conf').read_text() == 'live\n'
    assert sorted(os.listdir(live)) == ['app.conf']
    (placed / 'conf').unlink()
    restore(dest, target)
    assert (placed / 'moved-data' / 'x').read_text() == 'x\n'
    assert (placed / 'conf' / 'app.conf').read_text() == 'archived\n'


def test_a_re_restore_deletes_nothing_it_was_not_asked_to(tmp_path):
    """Regression guard (passed before): files the user added in restored directories and beside them, and files
    outside an ``only`` selection, survive every restore; a restored file's access time is its mtime."""
    src = tmp_path / 'src'
    (src / 'a').mkdir(parents=True)
    (src / 'a' / 'one').write_text('1\n')
    (src / 'b').mkdir()
    (src / 'b' / 'two').write_text('2\n')
    os.utime(src / 'a' / 'one', ns=(NS, NS))
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    restore(dest, target)
    placed = target / str(src).lstrip('/')
    st = os.lstat(placed / 'a' / 'one')
    assert st.st_atime_ns == st.st_mtime_ns == NS
    (placed / 'a' / 'user-added').write_text('mine\n')
    (target / 'beside').write_text('mine\n')
    (placed / 'b' / 'two').write_text('edited\n')
    restore(dest, target, only=[str(src / 'a')])
    assert (placed / 'b' / 'two').read_text() == 'edited\n'
    restore(dest, target)
    assert (placed / 'a' / 'user-added').read_text() == 'mine\n' and (target / 'beside').read_text() == 'mine\n'
    assert (placed / 'b' / 'two').read_text() == '2\n'


def _acl(*entries) -> bytes:
    import struct
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, perm, ident) for tag, perm, ident in entries)


# a default ACL giving uid 65534 rwx: USER_OBJ, USER, GROUP_OBJ, MASK, OTHER
NOBODY_DEFAULT = _acl((1, 7, 0xffffffff), (2, 7, 65534), (4, 5, 0xffffffff), (0x10, 7, 0xffffffff),
                      (0x20, 5, 0xffffffff))


def test_a_default_acl_added_to_or_removed_from_a_restored_directory_is_seen_and_put_back(tmp_path):
    """A directory archived with a default ACL, another without: after the restore, the first loses its default
    ACL and the second gains one (future files there would be given to uid 65534). Check mode lists both
    directories and the restore puts the archived ACLs back (it compared a directory's attributes, but listed
    nothing, and check mode did not look)."""
    src = tmp_path / 'src'
    (src / 'shared').mkdir(parents=True)
    (src / 'private').mkdir()
    try:
        os.setxattr(src / 'shared', 'system.posix_acl_default', NOBODY_DEFAULT)
    except OSError:
        pytest.skip('this file system takes no POSIX ACLs')
    for path in (src / 'shared', src / 'private', src):
        os.utime(path, ns=(NS, NS))
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    restore(dest, target)
    placed = target / str(src).lstrip('/')
    archived = os.getxattr(src / 'shared', 'system.posix_acl_default')
    assert os.getxattr(placed / 'shared', 'system.posix_acl_default') == archived
    os.removexattr(placed / 'shared', 'system.posix_acl_default')
    os.setxattr(placed / 'private', 'system.posix_acl_default', NOBODY_DEFAULT)
    rel = str(src).lstrip('/')
    assert sorted(restore(dest, target, check_mode=True)['directories']) == [rel + '/private', rel + '/shared']
    assert sorted(restore(dest, target)['directories']) == [str(placed / 'private'), str(placed / 'shared')]
    assert 'system.posix_acl_default' not in os.listxattr(placed / 'private')
    assert 'system.posix_acl_default' in os.listxattr(placed / 'shared')
    assert restore(dest, target, check_mode=True)['directories'] == []


def test_the_modules_warn_of_outside_hard_links_and_list_directories(tmp_path):
    """The module side, through ansible-playbook: file_backup returns hardlinks_outside and warns; file_restore
    returns it with a warning too, and a directory put back counts as changed (it was changed=false), in check mode
    as in the real run."""
    from tests.harness.playbook import run_playbook, write_playbook
    src = tmp_path / 'src'
    (src / 'conf.d').mkdir(parents=True)
    (tmp_path / 'keys').mkdir()
    (tmp_path / 'keys' / 'tls.key').write_text('k\n')
    os.link(tmp_path / 'keys' / 'tls.key', src / 'tls.key')
    dest, target = tmp_path / 'backups', tmp_path / 'restored'

    def task(module, **args):
        return {'name': module, 'opsready.operations.' + module: args}

    first = run_playbook(write_playbook(tmp_path, [
        task('file_backup', paths=[str(src)], dest=str(dest), name='app'),
        task('file_restore', src=str(dest), dest=str(target), name='app')]))
    assert first.rc == 0, first.stdout[-3000:]
    backed, restored = first.result('file_backup'), first.result('file_restore')
    assert [e['path'] for e in backed['hardlinks_outside']] == [str(src / 'tls.key')], backed
    assert any('hard link' in w and str(src / 'tls.key') in w for w in backed['warnings']), backed
    assert restored['hardlinks_outside'] == backed['hardlinks_outside']
    assert any('hard link' in w for w in restored['warnings']), restored
    assert restored['owners_not_restored'] == {'count': 0, 'entries': []}
    (target / str(src).lstrip('/') / 'conf.d').chmod(0o777)
    tasks = [task('file_restore', src=str(dest), dest=str(target), name='app')]
    check = run_playbook(write_playbook(tmp_path, tasks), check=True)
    assert check.rc == 0 and check.result('file_restore')['changed'] is True, check.stdout[-3000:]
    placed = str(target / str(src).lstrip('/') / 'conf.d')
    assert check.result('file_restore')['directories'] == [placed]
    real = run_playbook(write_playbook(tmp_path, tasks))
    assert real.rc == 0 and real.result('file_restore')['changed'] is True, real.stdout[-3000:]
    assert real.result('file_restore')['directories'] == [placed] and real.result('file_restore')['restored'] == []
    again = run_playbook(write_playbook(tmp_path, tasks))
    assert again.rc == 0 and again.result('file_restore')['changed'] is False, again.stdout[-3000:]
