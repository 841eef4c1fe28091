"""Fidelity of file_backup -> file_restore, round 3: fixtures the earlier rounds did not try, through real
ansible-playbook runs, compared with lstat, extended attributes and file flags.

- a restore into a directory that carries a default ACL (the restored files must not inherit entries their
  source never had);
- a restore over a tree holding an immutable file (chattr +i): refused before anything moves, not half done;
- a source named in ``paths`` that is itself a symlink to a directory (only the link is archived: said so);
- directories removed while the backup walks the tree (a cache or spool emptied by its application);
- a single file as the whole set, symlink loops, numeric owners beyond the ustar fields, mtimes before 1970
  and after 2242, a mode-0000 directory with content, a symlink target that is not UTF-8.
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List

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


def acl(*entries):
    """A system.posix_acl_* value (version 2; tag, perm, id per entry), what setfacl writes."""
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, perm, ident) for tag, perm, ident in entries)


NO_ID = 0xFFFFFFFF
# user::rwx user:54321:r-x group::r-x mask::r-x other::r-x (setfacl -m u:54321:rx, and -d for the default)
ACL_DIR = acl((0x01, 7, NO_ID), (0x02, 5, 54321), (0x04, 5, NO_ID), (0x10, 5, NO_ID), (0x20, 5, NO_ID))


def xattrs(path) -> Dict[str, bytes]:
    return {name: os.getxattr(path, name, follow_symlinks=False)
            for name in sorted(os.listxattr(path, follow_symlinks=False))}


def entry(path) -> tuple:
    st = os.lstat(path)
    body = os.readlink(path) if stat.S_ISLNK(st.st_mode) else (
        Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, body,
            xattrs(path) if not stat.S_ISLNK(st.st_mode) else {})


def tree(top) -> Dict[str, tuple]:
    found = {}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, top)] = entry(path)
    return found


# -- a restore into a directory with a default ACL -------------------------------------------------------------

@pytest.mark.skipif(not ROOT, reason='an ACL naming another user needs root')
def test_restore_into_a_directory_with_a_default_acl_adds_no_acl(tmp_path):
    """A restore target (``/srv/restore``, a shared drop directory) often has a default ACL: everything created
    in it inherits its entries. The restored tree must carry the ACLs it was archived with - none here - not
    ``user:54321:r-x`` on every file and directory (``getfacl`` and ``rsync -A`` show them; that user could read
    what the source kept from them)."""
    src = tmp_path / 'src' / 'etc' / 'app'
    (src / 'conf.d').mkdir(parents=True)
    (src / 'app.conf').write_text('secret = 1\n')
    (src / 'app.conf').chmod(0o600)
    (src / 'conf.d' / 'extra.conf').write_text('x\n')
    (src / 'with-acl').mkdir()
    os.setxattr(src / 'with-acl', 'system.posix_acl_access', ACL_DIR)
    expected = tree(src)
    dest = tmp_path / 'backups'
    target = tmp_path / 'restore'
    target.mkdir()
    try:
        os.setxattr(target, 'system.posix_acl_default', ACL_DIR)
    except OSError:
        pytest.skip('this file system does not take POSIX ACLs')
    result = run_playbook(write_playbook(tmp_path, [backup_task([src], dest), restore_task(dest, target)]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = target / str(src).lstrip('/')
    assert tree(restored) == expected
    assert not list(target.glob('.opsready-restore-*'))
# -- a restore over an immutable file ---------------------------------------------------------------------------


def chattr(path, flags):
    return subprocess.run(['chattr', flags, str(path)], capture_output=True, check=False)


@pytest.fixture
def immutables():
    """Paths made immutable/append-only by the test; their flags are cleared afterwards (or tmp_path stays)."""
    made: List[Path] = []
    yield made
    for path in made:
        chattr(path, '-ia')


@pytest.mark.skipif(not ROOT, reason='chattr +i needs CAP_LINUX_IMMUTABLE')
@pytest.mark.parametrize('flag', ['+i', '+a'])
def test_restore_over_an_immutable_file_is_refused_before_anything_moves(tmp_path, immutables, flag):
    """/etc/resolv.conf made immutable so DHCP stops rewriting it: a restore of /etc over it failed with
    "[Errno 1] Operation not permitted: 'resolv.conf' -> 'resolv.conf'" after the files before it were already
    replaced. It must be refused up front, naming the file and the way out, with nothing changed; an immutable file
    that already holds the archived content is left alone and does not stop the restore."""
    src = tmp_path / 'src' / 'etc'
    (src / 'app').mkdir(parents=True)
    for name in ('a.conf', 'resolv.conf', 'z.conf', 'app/same.conf'):
        (src / name).write_text('original %s\n' % name)
    dest = tmp_path / 'backups'
    assert run_playbook(write_playbook(tmp_path, [backup_task([src], dest)])).rc == 0
    # the identical immutable file alone: left alone, the restore goes through
    immutables.append(src / 'app' / 'same.conf')
    if chattr(src / 'app' / 'same.conf', flag).returncode:
        pytest.skip('chattr is not allowed here')
    (src / 'a.conf').write_text('edited a\n')
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]))
    assert result.rc == 0, result.stdout[-3000:]
    assert (src / 'a.conf').read_text() == 'original a.conf\n'
    # a changed immutable file: refused, nothing moved
    (src / 'a.conf').write_text('edited a\n')
    (src / 'z.conf').write_text('edited z\n')
    (src / 'resolv.conf').write_text('nameserver 10.0.0.53\n')
    immutables.append(src / 'resolv.conf')
    assert chattr(src / 'resolv.conf', flag).returncode == 0
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]))
    assert result.rc != 0
    msg = result.result('restore')['msg']
    assert str(src / 'resolv.conf') in msg and 'chattr' in msg and 'Nothing was changed' in msg, msg
    assert (src / 'a.conf').read_text() == 'edited a\n'
    assert (src / 'z.conf').read_text() == 'edited z\n'
    assert not list(src.parent.glob('.opsready-restore-*')) and not list(Path('/').glob('.opsready-restore-*'))


@pytest.mark.skipif(not ROOT, reason='chattr +i needs CAP_LINUX_IMMUTABLE')
def test_restore_into_an_immutable_directory(tmp_path, immutables):
    """An immutable directory (a locked-down /etc/ssl/private): left as it is when the archive holds what it holds
    (not even a chmod to its own mode, which the flag refuses), refused up front when a file in it differs."""
    src = tmp_path / 'src' / 'locked'
    src.mkdir(parents=True)
    (src / 'key.pem').write_text('key\n')
    (src / 'other').write_text('o\n')
    dest = tmp_path / 'backups'
    assert run_playbook(write_playbook(tmp_path, [backup_task([src.parent], dest)])).rc == 0
    immutables.append(src)
    if chattr(src, '+i').returncode:
        pytest.skip('chattr is not allowed here')
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]))
    assert result.rc == 0 and result.result('restore')['changed'] is False, result.stdout[-3000:]
    chattr(src, '-i')
    (src / 'key.pem').write_text('rotated\n')
    chattr(src, '+i')
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/')]))
    assert result.rc != 0
    msg = result.result('restore')['msg']
    assert '%s (its directory is immutable)' % (src / 'key.pem') in msg and 'Nothing was changed' in msg, msg
    assert (src / 'key.pem').read_text() == 'rotated\n'


# -- what is in the backup when a source is a link, or the tree changes under the walk ----------------------------

def test_a_source_that_is_a_symlink_to_a_directory_is_said_to_be_only_a_link(tmp_path):
    """``paths: [/var/lib/app]`` where /var/lib/app is a symlink to /data/app (moved to a bigger disk): the archive
    holds one symlink and none of the data. Archiving the link is right (tar does the same, and the restore puts
    the link back), but the run must say that the data is not in it, not report a tidy success."""
    data = tmp_path / 'data' / 'app'
    data.mkdir(parents=True)
    (data / 'db.bin').write_bytes(b'important' * 100)
    link = tmp_path / 'var' / 'lib' / 'app'
    link.parent.mkdir(parents=True)
    os.symlink(data, link)
    (tmp_path / 'etc').mkdir()
    os.symlink(tmp_path / 'etc' / 'real.conf', tmp_path / 'etc' / 'app.conf')   # to a file: the same
    (tmp_path / 'etc' / 'real.conf').write_text('x\n')
    dest = tmp_path / 'backups'
    result = run_playbook(write_playbook(tmp_path, [backup_task([link, tmp_path / 'etc' / 'app.conf'], dest)]))
    assert result.rc == 0, result.stdout[-3000:]
    out = result.result('backup')
    warnings = ' '.join(out.get('warnings') or [])
    assert str(link) in warnings and str(data) in warnings and 'only the link' in warnings, out
    assert str(tmp_path / 'etc' / 'real.conf') in warnings, out
    # named as well: nothing to say about the link
    result = run_playbook(write_playbook(tmp_path, [backup_task([link, data], dest)]))
    assert result.rc == 0 and not result.result('backup').get('warnings'), result.stdout[-3000:]


def test_directories_removed_while_the_backup_walks_are_reported_not_fatal(tmp_path):
    """A spool or cache whose subdirectories come and go (a mail queue, a build cache): one removed after the walk
    listed it and before the walk entered it failed the whole backup with "No such file or directory", while a
    removed file was skipped. The backup must go through, and say what was removed (a warning, and
    ``not_archived`` in the result and the manifest); a restore of it works."""
    src = tmp_path / 'src' / 'spool'
    queue = src / 'queue'
    (queue / '0-big').mkdir(parents=True)
    for i in range(4):   # entered first (listed with the messages), read slowly enough for the removal to land
        with open(queue / '0-big' / ('part%d' % i), 'wb') as handle:
            handle.write(os.urandom(1 << 20) * 48)
    for i in range(20):
        (queue / ('msg%02d' % i)).mkdir()
        (queue / ('msg%02d' % i) / 'body').write_text('m\n')
    dest = tmp_path / 'backups'
    dest.mkdir(mode=0o700)
    done = threading.Event()

    def remove_when_the_archive_is_written():
        while not done.is_set():
            if any(p.name.endswith('.partial') for p in dest.iterdir()):
                for entry in sorted(queue.glob('msg*')):
                    (entry / 'body').unlink()
                    entry.rmdir()
                return
    remover = threading.Thread(target=remove_when_the_archive_is_written)
    remover.start()
    try:
        result = run_playbook(write_playbook(tmp_path, [backup_task([src], dest, compression='gzip',
                                                                    compression_level=1)]))
    finally:
        done.set()
        remover.join()
    assert not list(queue.glob('msg*')), 'the removal did not run'
    assert result.rc == 0, result.stdout[-3000:]
    out = result.result('backup')
    gone = [e for e in out['not_archived'] if 'removed while' in e['reason']]
    assert gone and all(str(queue / 'msg') in e['path'] for e in gone), out['not_archived']
    assert any('removed while' in w for w in out.get('warnings') or []), out
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, target)]))
    assert result.rc == 0, result.stdout[-3000:]
    assert (target / str(queue).lstrip('/') / '0-big' / 'part3').stat().st_size == 48 << 20


# -- what round trips already (kept so it stays that way) --------------------------------------------------------

@pytest.mark.skipif(not ROOT, reason='owners beyond the passwd file need root')
@pytest.mark.parametrize('variant', ['zstd', 'age'])
def test_odd_entries_round_trip(tmp_path, variant):
    """Owners beyond the ustar fields (uid 3,000,000,000: a user namespace's range), mtimes before 1970 and after
    2242 (beyond the 11 octal digits), a mode-0000 directory with content, symlink loops and a link to ``/``, a
    symlink target that is not UTF-8, an xattr value of 1 KiB of binary, and a single file as a second source."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    src = tmp_path / 'src' / 'odd'
    src.mkdir(parents=True)
    (src / 'big-ids').write_text('b\n')
    os.chown(src / 'big-ids', 3000000000, 3000000001)
    (src / 'before-1970').write_text('o\n')
    os.utime(src / 'before-1970', ns=(-1000000000123, -1000000000123))
    (src / 'after-2242').write_text('f\n')
    os.utime(src / 'after-2242', ns=(9999999999 * 10 ** 9 + 5,) * 2)
    (src / 'locked').mkdir()
    (src / 'locked' / 'inside').write_text('i\n')
    os.symlink('loop-b', src / 'loop-a')
    os.symlink('loop-a', src / 'loop-b')
    os.symlink('/', src / 'to-root')
    os.symlink(os.fsdecode(b'target-\xff-\n'), src / 'odd-target')
    (src / 'blob-xattr').write_text('x\n')
    os.setxattr(src / 'blob-xattr', 'user.blob', bytes(range(256)) * 4)
    (src / 'locked').chmod(0)
    single = tmp_path / 'src' / 'single.conf'
    single.write_text('alone\n')
    os.utime(single, ns=(NS, NS))
    os.utime(src, ns=(NS, NS))
    expected = tree(src)
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    backup_args: Dict = {}
    restore_args: Dict = {}
    if variant == 'age':
        secret = encryption.generate_identity()
        backup_args.update(encrypt=True, recipients=[encryption.parse_identities(secret)[0].recipient])
        restore_args['identity'] = secret
    result = run_playbook(write_playbook(tmp_path, [backup_task([src, single], dest, **backup_args),
                                                    restore_task(dest, target, **restore_args)]))
    assert result.rc == 0, result.stdout[-3000:]
    assert not result.result('backup').get('warnings'), result.result('backup')
    restored = target / str(src).lstrip('/')
    assert tree(restored) == expected
    assert entry(restored) == entry(src)
    assert entry(target / str(single).lstrip('/')) == entry(single)
