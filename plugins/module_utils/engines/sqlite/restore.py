# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite restore: decompress into a private scratch directory, ``PRAGMA integrity_check`` there, copy next to the
target, then one rename.

The backup is decompressed into a root-only scratch directory and checked there (SQLite opens files by name and
makes ``-journal``/``-wal``/``-shm`` next to them: in the target's directory, often the application account's, that
account could swap those names for links to root's files). The checked copy is then written into
``<target>.opsready-restore-<id>`` in the target's directory (same file system, so the final ``rename`` is atomic),
created and renamed relative to a descriptor of that directory held from the start (never through a link swapped in
above it), fsynced. Only then is the old file (with its ``-wal``/``-shm``, which would otherwise be replayed over the
restored file) moved aside and the new one renamed into place; the old file is deleted last. Stop the application
that has the file open first: SQLite cannot swap a database under an open connection.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import stat
import uuid
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import PREFIX as SCRATCH_PREFIX
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch, scratch
from ansible_collections.opsready.operations.plugins.module_utils.files.safe_read import UnsafeFileError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import open_directory
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup import source as source_summary
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.backup import connect, integrity_check
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.client import user_of
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import Restorer, RestoreRequest, Timer

SIDECARS = ('-wal', '-shm', '-journal')
NAME_MAX = 255
SCRATCH_KIND = 'sqlite-restore'
# The longest tail the restore puts after the target's name: ".opsready-restore-<8 hex>-journal".
INTERNAL_TAIL = len('.opsready-restore-') + 8 + max(len(s) for s in SIDECARS)


def stem(base: str) -> str:
    """The name the restore's own files (lock, staging copy, old file moved aside) are made from: the target's name,
    or, when that name plus the longest tail would pass the 255-byte file name limit (SQLite takes names up to 247
    bytes), a prefix of it and a digest of the whole name (the same name always gives the same stem, so a killed
    run's files are still found and swept)."""
    raw = os.fsencode(base)
    if len(raw) + INTERNAL_TAIL <= NAME_MAX:
        return base
    digest = hashlib.sha256(raw).hexdigest()[:16]
    keep = raw[:NAME_MAX - INTERNAL_TAIL - len(digest) - 1].decode('utf-8', 'ignore')
    return '%s~%s' % (keep, digest)


def target_state(path: str, dir_fd: int) -> Dict[str, Any]:
    """Whether the target file exists and holds anything (tables or bytes), looked at in the directory held by
    ``dir_fd`` (``open_target_dir``), as the rest of the restore works: never through a link. A link at the target's
    name is refused, not followed: root would otherwise open (and SQLite make a ``-shm`` beside) whatever an account
    that can write the directory pointed it at, and the swap would replace the link, not the file the application
    reads through it. Anything but a regular file is refused (a FIFO blocks SQLite, a directory is not a database)."""
    base = os.path.basename(path)
    found = _lstat_at(dir_fd, base)
    if found is None:
        return {'exists': False, 'empty': True, 'tables': 0}
    if stat.S_ISLNK(found.st_mode):
        raise OpsReadyError('Target %s is a symlink (to %s): root does not open a database through a link (whoever can '
                            'write %s could point it at a file of root\'s), nor replace the link by a file. Set '
                            'database to the path of the file itself. Nothing was changed.'
                            % (path, os.readlink(base, dir_fd=dir_fd), os.path.dirname(path)), target=path)
    if not stat.S_ISREG(found.st_mode):
        raise OpsReadyError('Target %s is %s, not a regular file: it is not an SQLite database to replace. Remove it '
                            'or restore to another path. Nothing was changed.'
                            % (path, safeio.kind_of(found.st_mode)), target=path)
    fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        held = os.fstat(fd)
        if (held.st_dev, held.st_ino) != (found.st_dev, found.st_ino) or not stat.S_ISREG(held.st_mode):
            raise OpsReadyError('Target %s was replaced while it was looked at: someone else writes into %s. Nothing '
                                'was changed.' % (path, os.path.dirname(path)), target=path)
        pending = pending_writes(dir_fd, base)
        tables = _count_tables(dir_fd, base, held) if held.st_size else 0
    finally:
        os.close(fd)
    return {'exists': True, 'empty': tables == 0 and pending is None, 'tables': tables, 'pending': pending}


# The first bytes of a rollback journal that still has to be played back (SQLite's aJournalMagic); a committed
# journal kept in PERSIST mode has them zeroed.
HOT_JOURNAL_MAGIC = bytes.fromhex('d9d505f920a163d7')
WAL_HEADER_SIZE = 32


def pending_writes(dir_fd: int, base: str) -> Optional[str]:
    """The sidecar of ``base`` holding writes its main file does not show yet (``-wal`` with frames, a hot
    ``-journal``), looked at in the held directory without following links; None when there is none.

    The table count reads the main file alone: what such a sidecar holds would only be seen by a connection that
    opens (and, on a WAL database, creates) the sidecars, so any target with one counts as not empty."""
    wal = _lstat_at(dir_fd, base + '-wal')
    if wal is not None and (not stat.S_ISREG(wal.st_mode) or wal.st_size > WAL_HEADER_SIZE):
        return base + '-wal'
    journal = _lstat_at(dir_fd, base + '-journal')
    if journal is None:
        return None
    if not stat.S_ISREG(journal.st_mode):
        return base + '-journal'
    try:
        fd = os.open(base + '-journal', os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return base + '-journal'
    try:
        head = os.read(fd, len(HOT_JOURNAL_MAGIC))
    finally:
        os.close(fd)
    return base + '-journal' if head == HOT_JOURNAL_MAGIC else None


def _count_tables(dir_fd: int, base: str, held: os.stat_result) -> Optional[int]:
    """Tables in the main file ``held`` (``base`` in the directory of ``dir_fd``); None when it is not SQLite.

    Opened ``immutable``: SQLite opens no sidecar and makes none. A read-only connection made the ``-shm`` of a WAL
    database (O_CREAT, as root) at a path SQLite resolves itself from ``/proc/self/fd/<dir_fd>``: a parent swapped
    for a link in that instant had root create it in a directory of the account's choosing. What the sidecars hold
    is judged by ``pending_writes``. That SQLite opened ``held`` itself is checked on the descriptors it holds (a
    swap between its look-up and its open is refused, not read)."""
    try:
        conn = connect('/proc/self/fd/%d/%s' % (dir_fd, base), 'immutable', timeout=5)
        try:
            if not _holds_open(held):
                raise OpsReadyError('Target %s/%s was replaced while SQLite opened it: someone else writes into its '
                                    'directory. Nothing was changed.' % (os.readlink('/proc/self/fd/%d' % dir_fd),
                                                                         base))
            return int(conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None   # not even SQLite: never overwritten silently


def _holds_open(held: os.stat_result) -> bool:
    """Whether this process has ``held`` open at least twice (the caller's descriptor and SQLite's)."""
    times = 0
    for name in os.listdir('/proc/self/fd'):
        try:
            st = os.stat('/proc/self/fd/%s' % name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
            times += 1
    return times >= 2


def check_target(request: RestoreRequest, path: str, dir_fd: Optional[int] = None) -> Dict[str, Any]:
    """What the restore (and check mode) refuses about the target before anything is made: read in the directory
    held by ``dir_fd`` (opened here when None)."""
    if dir_fd is None:
        held = open_target_dir(path)
        try:
            return check_target(request, path, held)
        finally:
            os.close(held)
    state = target_state(path, dir_fd)
    if state['exists'] and not state['empty'] and not request.replace:
        content = ('%s tables' % state['tables'] if state['tables'] is not None else 'unreadable, not an SQLite file')
        if state.get('pending'):
            content += ' in the file, and writes not yet checkpointed into it in %s' % state['pending']
        raise OpsReadyError('Target %s exists and is not empty (%s): set replace=true to overwrite it, or restore to '
                            'another path.' % (path, content), target=path)
    holder = user_of('/proc/self/fd/%d/%s' % (dir_fd, os.path.basename(path))) if state['exists'] else None
    if holder is not None:
        # Swapped in under an open connection, the file is not the application's: it goes on committing into the
        # old, unlinked one, and every write it makes from then on is lost.
        raise OpsReadyError('Target %s is open in another process (pid %d): stop the application '
                            'that uses it, then run the restore again. Nothing was changed.'
                            % (path, holder), target=path, pid=holder)
    # The lock file, the staging copy and the swap are made there: a directory root may not write (read-only mount,
    # immutable) is told now, in check mode too, not met halfway.
    if not safeio.may_write('/proc/self/fd/%d' % dir_fd):
        raise OpsReadyError('Directory %s of the target is not writable by this user (a read-only mount or an '
                            'immutable directory?): the restore makes its copy there and renames it into place. '
                            'Nothing was changed.' % (os.path.dirname(path) or '.'), target=path)
    return state


def _integrity(path: str, manifest: Manifest) -> Dict[str, Any]:
    """Integrity check of the decompressed copy, then what it holds against what the source held."""
    held = integrity_check(path, 'the copy restored from %s' % manifest.path, report_path=manifest.path, summary=True)
    checks = source_summary.compare(manifest.data.get(source_summary.SOURCE_KEY), held,
                                    'The copy restored from %s' % manifest.path, manifest.path, exact=True)
    return {'integrity_check': 'ok', 'tables': held['tables'], 'rows_total': held['rows_total'],
            'source_check': checks['source_check']}


def source_journal_mode(manifest: Manifest) -> Optional[str]:
    held = manifest.data.get(source_summary.SOURCE_KEY) or {}
    mode = held.get('journal_mode') or (manifest.data.get('details') or {}).get('journal_mode')
    return str(mode).lower() if mode else None


def set_journal_mode(path: str, mode: Optional[str]) -> Optional[str]:
    """Give the restored file the source's journal mode. Only WAL is stored in the file itself (the
    artifact is kept in rollback mode so it is one standalone file); the others are per connection."""
    if mode != 'wal':
        return None
    conn = connect(path, 'rw')
    try:
        found = conn.execute('PRAGMA journal_mode=WAL').fetchone()[0]
    finally:
        conn.close()  # the last connection checkpoints and removes -wal/-shm
    if str(found).lower() != 'wal':
        raise OpsReadyError('Could not put the restored copy of %s back into WAL mode (SQLite answered %s).'
                            % (path, found), target=path)
    return 'wal'


def _target(request: RestoreRequest) -> str:
    if not request.database:
        raise OpsReadyError('database (the path of the target SQLite file) is required.')
    return os.path.abspath(request.database)


def target_lock(path: str, dir_fd: Optional[int] = None) -> Any:
    """One restore or clean-up per target file at a time: two swaps interleaved would each move the other's new
    file (or its sidecars) aside and delete it, and both report success. ``dir_fd``: the held descriptor of the
    target's directory (``open_target_dir``), the lock file is made there."""
    lock = os.path.join(os.path.dirname(path), '.%s.opsready-lock' % stem(os.path.basename(path)))
    return locks.exclusive(lock, 'Another db_restore into (or state=absent of) %s is running: nothing was changed. '
                           'Wait for it to finish' % path, remove=True, dir_fd=dir_fd)


def open_target_dir(path: str) -> int:
    """A descriptor of the directory of ``path``, walked component by component without following a link another
    account could have planted (``safeio.open_directory``). The directory is often the application account's, and
    an account owning a directory above it could swap it for a link to a directory of root's while the restore
    runs: everything after this (staging copy, swap, removal of the old file) goes relative to this descriptor."""
    directory = os.path.dirname(path) or '.'
    try:
        return open_directory(directory)
    except UnsafeFileError:
        raise
    except FileNotFoundError:
        raise OpsReadyError('Directory %s of the target does not exist: create it first.' % directory, target=path)
    except OSError as exc:
        raise OpsReadyError('Cannot open directory %s of the target: %s. Nothing was changed.'
                            % (directory, exc.strerror or exc), target=path)


def _lstat_at(dir_fd: int, name: str) -> Optional[os.stat_result]:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _unlink_at(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def sweep_staging(path: str, dir_fd: int) -> Dict[str, Any]:
    """Under ``target_lock`` (no run into ``path`` is live): the files a killed run left beside ``path``, in the
    directory held by ``dir_fd``. Its staging copy (``<path>.opsready-restore-<id>`` and its sidecars: the backup
    decrypted, decompressed) is removed (``removed_scratch``); the previous file a swap had moved aside
    (``.opsready-old-<id>``, the target's own data, maybe its only copy when the run died mid-swap) is kept and named
    in a warning. Regular files of exactly that shape only, never through a link."""
    directory, base = os.path.dirname(path), os.path.basename(path)
    shape = re.compile(r'%s\.opsready-(restore|old)-[0-9a-f]{8}(%s)?\Z'
                       % (re.escape(stem(base)), '|'.join(re.escape(s) for s in SIDECARS)))
    removed: List[str] = []
    warnings: List[str] = []
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError:
        names = []
    for name in names:
        match = shape.match(name)
        if match is None:
            continue
        item = os.path.join(directory, name)
        found = _lstat_at(dir_fd, name)
        if found is None or not stat.S_ISREG(found.st_mode):
            continue
        if match.group(1) == 'old':
            warnings.append('%s holds what a db_restore into %s killed during its swap moved aside (the previous '
                            'file): check %s, then remove it by hand' % (item, path, path))
            continue
        try:
            os.unlink(name, dir_fd=dir_fd)
            removed.append(item)
        except OSError as exc:
            warnings.append('%s (a decrypted, decompressed copy left by a killed db_restore into %s) was not removed '
                            '(%s): remove it by hand' % (item, path, exc.strerror or exc))
    return {'removed_scratch': removed, 'warnings': warnings}


def check_scratch(request: RestoreRequest) -> None:
    """What making the private scratch directory in tmpdir would refuse (check mode foresees it; the run meets it
    before the target's lock file is made)."""
    safeio.check_tempdir(request.tmpdir, '%s%s-' % (SCRATCH_PREFIX, SCRATCH_KIND), 'tmpdir')


def restore(request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    path = _target(request)
    dir_fd = open_target_dir(path)
    try:
        check_target(request, path, dir_fd)        # its refusals (held open, read-only, ...) before a lock file is made
        check_scratch(request)
        with target_lock(path, dir_fd):
            return _restore_locked(request, path, dir_fd, chain, timer)
    finally:
        os.close(dir_fd)


def _checked_copy(request: RestoreRequest, manifest: Manifest, work: Scratch, timer: Timer) -> Tuple[int, Any, Any]:
    """The artifact decompressed into the private scratch directory, checked by SQLite there (integrity_check,
    journal mode): SQLite opens files by name and makes sidecars next to them, which in the target's directory
    (another account's) could be swapped for links. Returns a descriptor of that very file (the caller closes it),
    the check's result and the journal mode."""
    copy = work.file('restored.db')
    # read back (copied into place) from this descriptor, not by name
    fd = os.open(copy, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        created = os.fstat(fd)
        # Decrypted (when encrypted) and decompressed; drained to the end, so the last age chunk is authenticated
        # before the copy is checked and swapped in.
        with open_artifact(manifest, request.identities) as source:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                _write_all(fd, data)
        timer.lap('copy')
        check = _integrity(copy, manifest)
        timer.lap('integrity_check')
        journal = set_journal_mode(copy, source_journal_mode(manifest))
        os.close(_open_created(copy, created))     # what is copied into place is the file that was checked
    except BaseException:
        os.close(fd)
        raise
    return fd, check, journal


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _place(src_fd: int, dir_fd: int, staging: str, owner: Optional[Tuple[int, int, int]]) -> None:
    """The checked copy into ``staging`` in the held directory: created there (never through a link, never over an
    existing name), 0600 while written, then given ``owner`` (mode, uid, gid) through its descriptor, fsynced."""
    out = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                  dir_fd=dir_fd)
    try:
        os.lseek(src_fd, 0, os.SEEK_SET)
        while True:
            data = os.read(src_fd, CHUNK)
            if not data:
                break
            _write_all(out, data)
        if owner is not None:
            os.fchmod(out, owner[0])
            try:
                os.fchown(out, owner[1], owner[2])
            except PermissionError:
                pass
        os.fsync(out)
    finally:
        os.close(out)


def _restore_locked(request: RestoreRequest, path: str, dir_fd: int, chain: List[Manifest],
                    timer: Timer) -> Dict[str, Any]:
    before = check_target(request, path, dir_fd)
    swept = sweep_staging(path, dir_fd)
    if len(chain) != 1:
        raise OpsReadyError('SQLite backups are single full copies; the chain has %d pieces.' % len(chain))
    manifest = chain[0]
    base = os.path.basename(path)
    token = uuid.uuid4().hex[:8]
    staging = '%s.opsready-restore-%s' % (stem(base), token)
    old = '%s.opsready-old-%s' % (stem(base), token)
    try:
        live: Optional[os.stat_result] = os.stat(base, dir_fd=dir_fd) if before['exists'] else None
    except FileNotFoundError:
        live = None
    owner = ((live.st_mode & 0o7777, live.st_uid, live.st_gid) if live is not None
             else _recorded_file(manifest))
    report: Dict[str, Any] = {}
    with scratch(SCRATCH_KIND, report, request.tmpdir, 'db_restore') as work:
        src_fd, check, journal = _checked_copy(request, manifest, work, timer)
        try:
            _place(src_fd, dir_fd, staging, owner)
        except BaseException:
            _unlink_at(dir_fd, staging)
            raise
        finally:
            os.close(src_fd)
    # The target was looked at before the copy and its check (minutes for a big database): an application that
    # opened it meanwhile would go on committing into the old file after the swap, and lose those writes.
    holder = user_of('/proc/self/fd/%d/%s' % (dir_fd, base)) if _lstat_at(dir_fd, base) is not None else None
    if holder is not None:
        _unlink_at(dir_fd, staging)
        raise OpsReadyError('Target %s was opened by another process (pid %d) while the backup was being copied and '
                            'checked: nothing was replaced. Stop the application that uses it, then run the '
                            'restore again.' % (path, holder), target=path, pid=holder)
    # Swap, relative to the held directory: old file and its sidecars aside, new file in, old ones removed. A
    # failure in between puts the old file back.
    moved: List[str] = []
    try:
        for suffix in ('',) + SIDECARS:
            if _lstat_at(dir_fd, base + suffix) is not None:
                os.rename(base + suffix, old + suffix, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                moved.append(suffix)
        os.rename(staging, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except BaseException:
        for suffix in moved:
            if _lstat_at(dir_fd, base + suffix) is None:
                os.rename(old + suffix, base + suffix, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        _unlink_at(dir_fd, staging)
        raise
    for suffix in moved:
        _unlink_at(dir_fd, old + suffix)
    timer.lap('swap')
    result = {'target': {'database': path, 'server': 'localhost', 'replaced_existing': before['exists'],
                         'tables': check['tables'], 'rows': check['rows_total'],
                         'journal_mode': journal or 'delete'},
              'integrity_check': check['integrity_check'], 'source_check': check['source_check'],
              'replaced': before['exists'] and not before['empty'], 'removed_scratch': swept['removed_scratch']}
    warnings = list(swept['warnings'])
    if report.get('scratch_warning'):
        warnings.append(report['scratch_warning'])
        result['scratch_left'] = report['scratch_left']
    if warnings:
        result['warnings'] = warnings
    return result


def drop(request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    """state=absent: remove a scratch SQLite file (and its sidecars). What is there is looked at in the directory
    held as the removal holds it (check mode too: a parent swapped for a link is refused by both, never listed)."""
    path = _target(request)
    swept: Dict[str, Any] = {'removed_scratch': [], 'warnings': []}
    try:
        dir_fd = open_target_dir(path)
    except OpsReadyError:
        if os.path.lexists(os.path.dirname(path)):
            raise
        return {'changed': False, 'target': {'database': path, 'removed': []}, 'removed_scratch': []}
    try:
        base = os.path.basename(path)
        present = [path + s for s in ('',) + SIDECARS if _lstat_at(dir_fd, base + s) is not None]
        if not check_mode:
            with target_lock(path, dir_fd):
                swept = sweep_staging(path, dir_fd)
                present = [path + s for s in ('',) + SIDECARS if _lstat_at(dir_fd, base + s) is not None]
                for item in present:
                    _unlink_at(dir_fd, os.path.basename(item))
    finally:
        os.close(dir_fd)
    result = {'changed': bool(present) or bool(swept['removed_scratch']),
              'target': {'database': path, 'removed': present}, 'removed_scratch': swept['removed_scratch']}
    if swept['warnings']:
        result['warnings'] = swept['warnings']
    return result


def _open_created(staging: str, created: os.stat_result) -> int:
    """A descriptor of ``staging`` when the name still leads to the file this run created (not through a link)."""
    try:
        fd = os.open(staging, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) == (created.st_dev, created.st_ino):
            return fd
        os.close(fd)
    raise OpsReadyError('The restored copy %s was replaced by another file while it was checked: nothing was swapped '
                        'in. Someone else writes into this directory; run again and find out who.' % staging,
                        target=staging)


def _recorded_file(manifest: Manifest) -> Optional[Tuple[int, int, int]]:
    """(mode, uid, gid) the source file had at backup time; None for a manifest written before they were kept."""
    held: Dict[str, Any] = (manifest.data.get('details') or {}).get('file') or {}
    try:
        return int(held['mode'], 8) & 0o7777, int(held['uid']), int(held['gid'])
    except (TypeError, KeyError, ValueError):
        return None


class SQLiteRestore(Restorer):
    """db_restore for SQLite: the target is a file path; no server, no backup engine."""

    def catalog_database(self, source: str) -> str:
        return os.path.abspath(source)  # db_backup catalogs SQLite sets by absolute path

    def check(self, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
        path = os.path.abspath(request.database or '')
        check_target(request, path)
        check_scratch(request)
        return {'database': path}

    def restore(self, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
        return restore(request, chain, timer)

    def drop(self, request: RestoreRequest) -> Dict[str, Any]:
        return drop(request, request.check_mode)
