# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite restore: decompress next to the target, ``PRAGMA integrity_check``, then one rename.

The backup is decompressed into ``<target>.opsready-restore-<id>`` in the target's directory (same
file system, so the final ``rename`` is atomic), fsynced and checked. Only then is the old file (with
its ``-wal``/``-shm``, which would otherwise be replayed over the restored file) moved aside and the
new one renamed into place; the old file is deleted last. Stop the application that has the file open
first: SQLite cannot swap a database under an open connection.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup import source as source_summary
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.backup import connect, integrity_check
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.client import user_of
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import Restorer, RestoreRequest, Timer

SIDECARS = ('-wal', '-shm', '-journal')


def target_state(path: str) -> Dict[str, Any]:
    """Whether the target file exists and holds anything (tables or bytes)."""
    if not os.path.exists(path):
        return {'exists': False, 'empty': True, 'tables': 0}
    if os.path.getsize(path) == 0:
        return {'exists': True, 'empty': True, 'tables': 0}
    try:
        conn = connect(path, 'ro', timeout=5)
        try:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return {'exists': True, 'empty': False, 'tables': None}  # not even SQLite: never overwrite silently
    return {'exists': True, 'empty': tables == 0, 'tables': tables}


def check_target(request: RestoreRequest, path: str) -> Dict[str, Any]:
    state = target_state(path)
    if state['exists'] and not state['empty'] and not request.replace:
        raise OpsReadyError('Target %s exists and is not empty (%s tables): set replace=true to overwrite it, or '
                            'restore to another path.' % (path, state['tables'] if state['tables'] is not None
                                                          else 'unreadable, not an SQLite file'), target=path)
    holder = user_of(path) if state['exists'] else None
    if holder is not None:
        # Swapped in under an open connection, the file is not the application's: it goes on committing into the
        # old, unlinked one, and every write it makes from then on is lost.
        raise OpsReadyError('Target %s is open in another process (pid %d): stop the application '
                            'that uses it, then run the restore again. Nothing was changed.'
                            % (path, holder), target=path, pid=holder)
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        raise OpsReadyError('Directory %s of the target does not exist: create it first.' % directory, target=path)
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


def target_lock(path: str) -> Any:
    """One restore or clean-up per target file at a time: two swaps interleaved would each move the other's new
    file (or its sidecars) aside and delete it, and both report success."""
    lock = os.path.join(os.path.dirname(path), '.%s.opsready-lock' % os.path.basename(path))
    return locks.exclusive(lock, 'Another db_restore into (or state=absent of) %s is running: nothing was changed. '
                           'Wait for it to finish' % path, remove=True)


def sweep_staging(path: str) -> Dict[str, Any]:
    """Under ``target_lock`` (no run into ``path`` is live): the files a killed run left beside ``path``. Its staging
    copy (``<path>.opsready-restore-<id>`` and its sidecars: the backup decrypted, decompressed) is removed
    (``removed_scratch``); the previous file a swap had moved aside (``.opsready-old-<id>``, the target's own
    data, maybe its only copy when the run died mid-swap) is kept and named in a warning. Regular files of exactly
    that shape only, never through a link."""
    directory, base = os.path.dirname(path), os.path.basename(path)
    shape = re.compile(r'%s\.opsready-(restore|old)-[0-9a-f]{8}(%s)?\Z'
                       % (re.escape(base), '|'.join(re.escape(s) for s in SIDECARS)))
    removed: List[str] = []
    warnings: List[str] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    for name in names:
        match = shape.match(name)
        item = os.path.join(directory, name)
        if not match or not os.path.isfile(item) or os.path.islink(item):
            continue
        if match.group(1) == 'old':
            warnings.append('%s holds what a db_restore into %s killed during its swap moved aside (the previous '
                            'file): check %s, then remove it by hand' % (item, path, path))
            continue
        try:
            os.unlink(item)
            removed.append(item)
        except OSError as exc:
            warnings.append('%s (a decrypted, decompressed copy left by a killed db_restore into %s) was not removed '
                            '(%s): remove it by hand' % (item, path, exc.strerror or exc))
    return {'removed_scratch': removed, 'warnings': warnings}


def restore(request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    path = _target(request)
    check_target(request, path)        # its refusals (no parent directory, ...) before a lock file is made
    with target_lock(path):
        return _restore_locked(request, path, chain, timer)


def _restore_locked(request: RestoreRequest, path: str, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    before = check_target(request, path)
    swept = sweep_staging(path)
    if len(chain) != 1:
        raise OpsReadyError('SQLite backups are single full copies; the chain has %d pieces.' % len(chain))
    manifest = chain[0]
    token = uuid.uuid4().hex[:8]
    staging = '%s.opsready-restore-%s' % (path, token)
    old = '%s.opsready-old-%s' % (path, token)
    stat = os.stat(path) if before['exists'] else None
    try:
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        created = os.fstat(fd)
        with os.fdopen(fd, 'wb') as out:
            # Decrypted (when encrypted) and decompressed; drained to the end, so the last age chunk is
            # authenticated before the copy is checked and swapped in.
            with open_artifact(manifest, request.identities) as source:
                while True:
                    data = source.read(CHUNK)
                    if not data:
                        break
                    out.write(data)
            out.flush()
            os.fsync(out.fileno())
        timer.lap('copy')
        check = _integrity(staging, manifest)
        timer.lap('integrity_check')
        os.close(_open_created(staging, created))     # still ours before SQLite opens it by name again
        journal = set_journal_mode(staging, source_journal_mode(manifest))
        if stat is not None:
            _hand_over(staging, created, stat.st_mode & 0o7777, stat.st_uid, stat.st_gid)
        else:
            recorded = _recorded_file(manifest)
            if recorded is not None:
                _hand_over(staging, created, *recorded)
    except BaseException:
        _unlink(staging)
        raise
    # Swap: old file and its sidecars aside, new file in, old ones removed. A failure in between puts
    # the old file back.
    moved: List[str] = []
    try:
        for suffix in ('',) + SIDECARS:
            if os.path.exists(path + suffix):
                os.rename(path + suffix, old + suffix)
                moved.append(suffix)
        os.rename(staging, path)
        fsync_dir(os.path.dirname(path))
    except BaseException:
        for suffix in moved:
            if not os.path.exists(path + suffix):
                os.rename(old + suffix, path + suffix)
        _unlink(staging)
        raise
    for suffix in moved:
        _unlink(old + suffix)
    for suffix in SIDECARS:  # set_journal_mode's connection removed them; never leave a stale one
        _unlink(staging + suffix)
    timer.lap('swap')
    result = {'target': {'database': path, 'server': 'localhost', 'replaced_existing': before['exists'],
                         'tables': check['tables'], 'rows': check['rows_total'],
                         'journal_mode': journal or 'delete'},
              'integrity_check': check['integrity_check'], 'source_check': check['source_check'],
              'replaced': before['exists'] and not before['empty'], 'removed_scratch': swept['removed_scratch']}
    if swept['warnings']:
        result['warnings'] = swept['warnings']
    return result


def drop(request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    """state=absent: remove a scratch SQLite file (and its sidecars)."""
    path = _target(request)
    present = [path + s for s in ('',) + SIDECARS if os.path.exists(path + s)]
    swept: Dict[str, Any] = {'removed_scratch': [], 'warnings': []}
    if not check_mode and os.path.isdir(os.path.dirname(path)):
        with target_lock(path):
            swept = sweep_staging(path)
            for item in present:
                _unlink(item)
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


def _hand_over(staging: str, created: os.stat_result, mode: int, uid: int, gid: int) -> None:
    """The old file's (or, for a new file, the source's) mode and owner onto the checked copy, through a
    descriptor of the very file this run created: the directory is often the application account's, which could
    swap the staging name for a link (to /etc/shadow) while the copy was being checked, and a chmod/chown by name
    would follow it."""
    fd = _open_created(staging, created)
    try:
        os.fchmod(fd, mode)
        try:
            os.fchown(fd, uid, gid)
        except PermissionError:
            pass
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class SQLiteRestore(Restorer):
    """db_restore for SQLite: the target is a file path; no server, no backup engine."""

    def catalog_database(self, source: str) -> str:
        return os.path.abspath(source)  # db_backup catalogs SQLite sets by absolute path

    def check(self, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
        path = os.path.abspath(request.database or '')
        check_target(request, path)
        return {'database': path}

    def restore(self, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
        return restore(request, chain, timer)

    def drop(self, request: RestoreRequest) -> Dict[str, Any]:
        return drop(request, request.check_mode)
