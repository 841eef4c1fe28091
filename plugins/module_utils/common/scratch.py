# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private scratch directories for what may hold a backup's plaintext (a decrypted or decompressed dump, binary
log, base backup or RDB), and the sweep of those a killed run left behind.

A scratch directory is ``<tmpdir>/opsready-scratch-<kind>-<random>``, mode 0700 (files in it are created 0600),
holding ``.opsready-scratch-owner``: a 0600 file that names the module, its pid and uid, and that the run holds an
exclusive ``flock`` on for as long as it uses the directory. The kernel releases that lock when the process ends,
however it ends (SIGKILL, an OOM kill: no ``finally`` runs), so a lock that can be taken proves the run that made
the directory is gone, and the name, the owner file and the owner (our uid, no symlink) prove it is ours.
``sweep`` removes exactly those, and says which; anything that cannot be proven (another uid, no owner file, a
lock still held, a look-alike name) is never touched. The proof is only as good as ``flock`` on tmpdir: on a
network filesystem (NFS, CIFS, ...) a lock may be local to one host (NFS mounted ``nolock``, or a tmpdir shared
by several hosts), so a live run elsewhere would look dead; there ``sweep`` removes nothing and says so.
Removal goes through ``cleanup.remove_tree``: what could not be removed is reported with its path, never passed
over.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.cleanup import remove_tree
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

PREFIX = 'opsready-scratch-'
OWNER_FILE = '.opsready-scratch-owner'
# kind: lower-case letters, digits and dashes; then mkdtemp's 8 random characters.
NAME = re.compile(r'\Aopsready-scratch-([a-z0-9-]+)-[A-Za-z0-9_]{8}\Z')


def scratch_root(tmpdir: Optional[str] = None) -> str:
    return tmpdir or tempfile.gettempdir()


class Scratch:
    """One scratch directory, held (its owner file locked) until ``remove``. Use as a context manager, or call
    ``remove`` on every exit path and report its outcome."""

    def __init__(self, kind: str, tmpdir: Optional[str] = None, module: str = '', option: str = 'tmpdir') -> None:
        if not re.match(r'\A[a-z0-9-]+\Z', kind):
            raise ValueError('scratch kind %r' % kind)
        self.kind = kind
        # mkdtemp makes the directory 0700 with O_EXCL semantics; the chmod guards against an odd umask-less FS.
        # private_tempdir refuses a parent another account could rename the new directory in (a link put at its
        # name would take the plaintext where root writes it).
        # ``option`` names the setting that chose tmpdir, for that refusal's message.
        self.path = safeio.private_tempdir(scratch_root(tmpdir), '%s%s-' % (PREFIX, kind), option)
        os.chmod(self.path, 0o700)
        self._fd: Optional[int] = None
        try:
            fd = os.open(os.path.join(self.path, OWNER_FILE),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._fd = fd
            # Locked before anything is written: a sweep that gets in between reads an empty file, proves nothing
            # and leaves the directory alone.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps({'kind': kind, 'module': module, 'pid': os.getpid(),
                                     'uid': os.geteuid()}).encode('utf-8'))
        except BaseException:
            self._release()
            remove_tree(self.path)
            raise
        self.outcome: Optional[Dict[str, Any]] = None

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def create(self, name: str) -> int:
        """A new 0600 file in the directory (never through a link); returns its descriptor."""
        return os.open(self.file(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    def _release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def remove(self) -> Dict[str, Any]:
        """Remove the directory (idempotent): ``cleanup.remove_tree``'s outcome, with ``warning`` (a sentence
        naming the path and what holds plaintext) when something stayed."""
        if self.outcome is None or not self.outcome['cleaned_up']:
            # The lock is kept while removing: a concurrent sweep sees the directory as in use.
            self.outcome = remove_tree(self.path)
            self._release()
            if not self.outcome['cleaned_up']:
                self.outcome['warning'] = left_warning(self.outcome, self.kind)
        return self.outcome

    def __enter__(self) -> 'Scratch':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


# What a scratch directory of each kind holds, for the warning when it stays (default: PLAINTEXT).
PLAINTEXT = 'a decrypted or decompressed copy of backup data'
HOLDS = {'offsite': 'copies of the offsite destination\'s manifests',
         'pg-globals': 'the roles script of a globals restore (password hashes)'}


def left_warning(outcome: Dict[str, Any], kind: str = '') -> str:
    return ('scratch directory %s (%s) was not removed (%s; left: %s): remove it by hand (lsattr shows an immutable '
            'or append-only flag; chattr -i / -a clears it)'
            % (outcome['path'], HOLDS.get(kind, PLAINTEXT), outcome.get('reason'),
               ', '.join(outcome.get('left') or []) or 'nothing listed'))


# The scratch directories backup_verify (and db_backup's verification) make: each holds a decrypted,
# decompressed artifact (a base backup, an SQLite file, an RDB, a binary log).
VERIFY_KINDS = ('pg-verify', 'sqlite-verify', 'redis-verify', 'binlog-verify')


@contextlib.contextmanager
def scratch(kind: str, report: Dict[str, Any], tmpdir: Optional[str] = None, module: str = '') -> Iterator[Scratch]:
    """A ``Scratch`` for the block, removed when it ends: a removal that fails is told in the error being raised
    (``told_left``), or, when the block succeeded, put in ``report`` (``scratch_left``: [path], ``scratch_warning``)
    for the caller's result."""
    made = Scratch(kind, tmpdir, module)
    try:
        yield made
    except BaseException as exc:
        raise told_left(exc, made.remove())
    outcome = made.remove()
    if not outcome['cleaned_up']:
        report.update(scratch_left=[outcome['path']], scratch_warning=outcome['warning'])


def told_left(exc: BaseException, outcome: Dict[str, Any]) -> BaseException:
    """``exc`` (being raised) told together with the scratch directory that stayed (``outcome``: ``remove``'s):
    an OpsReadyError gets it in its message and ``scratch_left``; another error becomes one that says both."""
    if outcome['cleaned_up']:
        return exc
    if isinstance(exc, OpsReadyError):
        exc.message = '%s Also: %s.' % (exc.message, outcome['warning'])
        exc.details['scratch_left'] = [outcome['path']]
        return exc
    if isinstance(exc, Exception):
        return OpsReadyError('%s; also: %s.' % (exc, outcome['warning']), scratch_left=[outcome['path']])
    return exc


MOUNTINFO = '/proc/self/mountinfo'
# Filesystems where an flock may not be seen by every host that uses the directory (see the module docstring).
NETWORK_FILESYSTEMS = frozenset((
    '9p', 'afs', 'ceph', 'cifs', 'fuse.gcsfuse', 'fuse.glusterfs', 'fuse.rclone', 'fuse.s3fs', 'fuse.sshfs',
    'glusterfs', 'gpfs', 'lustre', 'ncpfs', 'nfs', 'nfs4', 'smb3', 'smbfs'))


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040 ...)
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: str) -> Optional[str]:
    """The type of the filesystem ``path`` lies on (``/proc/self/mountinfo``: the last mount on the longest
    mount point above it), None when it cannot be told."""
    real = os.path.realpath(path)
    best, found = '', None
    for mount, fstype in mounts():
        if (real == mount or real.startswith(mount.rstrip('/') + '/')) and len(mount) >= len(best):
            best, found = mount, fstype
    return found


def mounts() -> List[Tuple[str, str]]:
    """Every mount of this process's namespace as (mount point, filesystem type), from ``/proc/self/mountinfo`` in
    its order (a later mount on the same point hides an earlier one); [] when it cannot be read."""
    try:
        with open(MOUNTINFO, encoding='utf-8', errors='surrogateescape') as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        left, sep, right = line.partition(' - ')
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        found.append((_unescape(fields[4]), right.split()[0]))
    return found


def network_warning(root: str, fstype: str) -> str:
    return ('scratch directories that killed runs left in %s were not removed: it is on a %s filesystem, where '
            'the lock that proves a run gone may not be seen by another host (docs/architecture.md, "Scratch '
            'directories"). Remove opsready-scratch-* directories there by hand once no run uses them, or point the '
            'temporary directory at a local filesystem' % (root, fstype))


def _own_directory(path: str) -> bool:
    """``path`` is a directory of this uid (not a link to one)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def sweep(tmpdir: Optional[str] = None, kinds: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Remove the scratch directories (of ``kinds``, default all) in ``tmpdir`` (default: the system's) that a run
    of this collection made and no running process holds: ``{'removed_scratch': [paths], 'warnings': [...]}``.
    A directory is removed only when its name has the prefix, it is a directory (not a link) of this uid, its
    owner file is a regular file of this uid naming the same kind, and that file's lock can be taken (its run
    ended). On a network filesystem nothing is removed: a warning says so (only when there is something to
    remove)."""
    root = scratch_root(tmpdir)
    removed: List[str] = []
    warnings: List[str] = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return {'removed_scratch': removed, 'warnings': warnings}
    candidates = []
    for name in names:
        match = NAME.match(name)
        if match and (kinds is None or match.group(1) in kinds):
            candidates.append((name, match))
    fstype = filesystem_type(root) if candidates else None
    if fstype in NETWORK_FILESYSTEMS:
        return {'removed_scratch': removed, 'warnings': [network_warning(root, str(fstype))]}
    for name, match in candidates:
        path = os.path.join(root, name)
        if not _own_directory(path):
            continue
        try:
            fd = os.open(os.path.join(path, OWNER_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue   # no owner file (or a link there): not provably ours
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue   # held: its run is alive
            try:
                record = json.loads(os.read(fd, 4096).decode('utf-8'))
            except (ValueError, RecursionError):   # RecursionError: 4 KiB of '[' nest deeper than json recurses
                continue   # empty (a run between creating and writing it) or not ours
            if not isinstance(record, dict) or record.get('kind') != match.group(1):
                continue
            outcome = remove_tree(path)
            if outcome['cleaned_up']:
                removed.append(path)
            else:
                warnings.append('left by a killed run (pid %s): %s'
                                % (record.get('pid'), left_warning(outcome, match.group(1))))
        finally:
            os.close(fd)
    return {'removed_scratch': removed, 'warnings': warnings}
