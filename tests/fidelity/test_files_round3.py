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
import sys
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
