# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL point-in-time recovery: base backup + archived WAL into a scratch cluster.

1. ``datadir`` must be absent or empty (or ``replace`` with no server running on it).
2. The base backup (a ``pg_basebackup -Ft -X fetch`` tar stream) is extracted into
   ``<datadir>.opsready-restore-<id>``; the WAL segments of the chain are decompressed into
   ``<datadir>.opsready-wal-<id>`` for ``restore_command = 'cp <dir>/%f "%p"'``.
3. ``postgresql.auto.conf`` gets ``restore_command``, ``recovery_target_time = stop_at`` (when given and
   before the end of the chain), ``recovery_target_action = promote``, and ``archive_mode = off`` (a
   scratch copy must never archive into the production WAL archive); ``recovery.signal`` is created.
   When the backup holds no ``postgresql.conf``/``pg_hba.conf`` (Debian keeps them in /etc), minimal
   ones are written (local socket only, ``peer``).
4. A temporary server (``pg_ctl``, as the data directory's owner: ``postgres`` when run as root) is
   started on ``port`` (a free one when unset) with its socket in ``<datadir>.run``; it replays WAL up
   to the target and promotes itself. ``pg_last_xact_replay_timestamp()`` is the point reached.
   PostgreSQL stops only at a commit later than the target: when the archive holds none, the target is
   dropped and the whole archive replayed (that is the state at ``stop_at``); a recovery without a
   target must end in the chain's last segment (a damaged one would end it early, silently). Settings
   the source had higher (recovery pauses for them) are raised on the copy. A failure is reported from
   the server log: its FATAL line and a fix first, the tail after.
5. It is stopped, the staging directory renamed to ``datadir`` (the old one, with ``replace``, removed),
   and started again when ``server_state=started``. Any failure before the rename stops the temporary
   server and removes the staging directories: ``datadir`` stays as it was.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.cleanup import remove_tree
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, parse_time
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import CATALOG_OPTIONS
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
    PostgresEngine, lsn_to_int)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.postmaster import postmaster_pid
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import conf_literal
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import timelines
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
    Restorer, RestoreRequest, Timer, select_chain)
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import (
    ClusterDir, UnsafeFileError, open_directory, open_regular_stream, read_regular, uid_name)
from ansible_collections.opsready.operations.plugins.module_utils.files.tarsafe import extract_all, read_stream

START_TIMEOUT = 600
CONF_LIMIT = 16 * 1024 * 1024


def _owner() -> Tuple[Optional[str], int, int]:
    """The OS account the scratch server runs as (postgres when we are root)."""
    if os.geteuid() != 0:
        return None, os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam('postgres')
    except KeyError:
        raise OpsReadyError('Running as root, but there is no "postgres" OS account to run the recovered server '
                            'as (PostgreSQL refuses to run as root). Install the server package or run as the '
                            'PostgreSQL owner.')
    return 'postgres', pw.pw_uid, pw.pw_gid


def _server_running(datadir: str) -> Optional[int]:
    pid = postmaster_pid(datadir)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _datadir(request: RestoreRequest) -> str:
    if not request.datadir:
        raise OpsReadyError('datadir is required for a physical PostgreSQL restore.')
    return os.path.abspath(request.datadir)


def check_target(request: RestoreRequest) -> Dict[str, Any]:
    datadir = _datadir(request)
    parent = os.path.dirname(datadir)
    if not os.path.isdir(parent):
        raise OpsReadyError('The parent directory %s of datadir does not exist: create it first.' % parent)
    owner, uid, gid = _owner()
    if owner:
        _check_reachable(parent, owner, uid, gid)
    exists = os.path.exists(datadir)
    if exists:
        if not os.path.isdir(datadir):
            raise OpsReadyError('datadir %s exists and is not a directory.' % datadir)
        pid = _server_running(datadir)
        if pid:
            raise OpsReadyError('A PostgreSQL server (pid %d) runs on %s: stop it (or use state=absent) before '
                                'restoring into it.' % (pid, datadir), datadir=datadir)
        if os.listdir(datadir) and not request.replace:
            raise OpsReadyError('datadir %s exists and is not empty: set replace=true to replace it, or choose an '
                                'empty or new directory.' % datadir, datadir=datadir)
    return {'datadir': datadir, 'exists': exists}


def _check_reachable(directory: str, owner: str, uid: int, gid: int) -> None:
    """The server runs as ``owner``: every directory above datadir must let it through."""
    path = directory
    while True:
        st = os.stat(path)
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            raise OpsReadyError('The recovered server runs as %s, which cannot enter %s (mode %o): choose a datadir '
                                'under a directory it can reach, or chmod o+x %s.'
                                % (owner, path, st.st_mode & 0o7777, path), datadir=directory)
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _secure_tree(top: str, uid: int, gid: int) -> None:
    """``top`` 0700 and, as root, everything in it owned by the server's account, never through a symlink.

    The datadir's parent is usually the postgres account's: it can put a link at any name there (``<datadir>.run``
    -> /etc) or swap one of our directories for one. Everything here goes through descriptors opened without
    following links (``fwalk`` with ``follow_symlinks=False`` walks a top only when it is not a link, and never
    descends through one); a link at ``top`` fails the run."""
    # The parent opened one component at a time (a link another account controls on the way is refused), the
    # directory by its last name without following it, and the walk made below that descriptor, never by path: the
    # account owning the directories above could swap one for a link to a directory of root's holding the same name.
    parent_fd = open_directory(os.path.dirname(top))
    try:
        fd = os.open(os.path.basename(top), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except OSError as exc:
        raise OpsReadyError('%s is not a directory of this run (%s): refusing to change its owner or mode. Remove '
                            'it (another account may have planted a link there) and run again.'
                            % (top, exc.strerror or exc), path=top)
    finally:
        os.close(parent_fd)
    try:
        os.fchmod(fd, 0o700)
        if os.geteuid() != 0:
            return
        os.fchown(fd, uid, gid)
        for _dirpath, dirnames, filenames, dir_fd in os.fwalk('.', follow_symlinks=False, dir_fd=fd):
            for name in dirnames + filenames:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(fd)


def _make_rundir(rundir: str) -> None:
    """The socket/log directory beside datadir: made now, or kept from an earlier run when it is a real directory
    (a link planted at its name is refused by ``_secure_tree``)."""
    # Relative to a descriptor of the parent (walked without following a link another account planted): the account
    # owning a directory above could otherwise swap the parent for a link to a directory of root's, and root would
    # make the directory there.
    parent_fd = open_directory(os.path.dirname(rundir))
    try:
        os.mkdir(os.path.basename(rundir), 0o700, dir_fd=parent_fd)
    except FileExistsError:
        pass
    finally:
        os.close(parent_fd)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)


def _make_private_dir(path: str, what: str) -> int:
    """A new 0700 directory of this user's at ``path`` (a staging directory beside datadir), made and opened relative
    to a descriptor of its parent; its descriptor.

    The parent is usually the postgres account's (/var/lib/postgresql/16): it can rename what root made there away
    and put a link to a directory of root's at its name at any moment. Root therefore fills the directory only
    through the descriptor returned here (never by its name), and checks that what it opened is the directory it
    made (its own, 0700): never a link, never one of that account's."""
    if not os.path.isdir('/proc/self/fd'):
        raise OpsReadyError('/proc is not mounted: the base backup is extracted through /proc/self/fd so that the '
                            'owner of %s cannot redirect it. Mount /proc and run again.' % os.path.dirname(path))
    parent_fd = open_directory(os.path.dirname(path))
    name = os.path.basename(path)
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            raise OpsReadyError('The %s %s was replaced right after it was created (%s): another account writes into '
                                '%s. Nothing was restored.' % (what, path, exc.strerror, os.path.dirname(path)),
                                path=path)
    finally:
        os.close(parent_fd)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        os.close(fd)
        raise OpsReadyError('The %s %s was replaced right after it was created (now %s\'s, mode %04o): another account '
                            'writes into %s. Nothing was restored.'
                            % (what, path, uid_name(st.st_uid), stat.S_IMODE(st.st_mode), os.path.dirname(path)),
                            path=path)
    return fd


def _extract_base(manifest: Manifest, staging: str, identities: Optional[List[Any]] = None) -> None:
    fd = _make_private_dir(staging, 'PITR staging directory')
    try:
        # read_stream: a base backup that stops parsing midway (its checksum matching a rewritten manifest) was taken
        # as ending there; with PG_VERSION among the first members, the server was started on the partial data
        # directory. It is refused here: the caller removes the staging directory, datadir is untouched.
        with open_artifact(manifest, identities) as source:
            with read_stream(source, manifest.path, what='Base backup',
                             outcome='No server was started.') as tar:
                # through the descriptor: a rename of ``staging`` (or a link put at its name) changes nothing
                extract_all(tar, '/proc/self/fd/%d' % fd, archive=manifest.path, dest_fd=fd)
        try:
            found = os.stat('PG_VERSION', dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            raise IntegrityError('Base backup %s holds no PG_VERSION: it is not a data directory.' % manifest.id,
                                 path=manifest.path)
    finally:
        os.close(fd)


def _write_at(dir_fd: int, name: str, chunks: Any) -> None:
    """``name`` in the directory ``dir_fd`` (root's, 0700: nobody else plants names there), never through a link."""
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o600,
                  dir_fd=dir_fd)
    with os.fdopen(out, 'wb') as handle:
        for data in chunks:
            handle.write(data)


def _read_chunks(source: Any) -> Any:
    while True:
        data = source.read(CHUNK)
        if not data:
            return
        yield data


def _stage_wal(logs: List[Manifest], waldir: str, identities: Optional[List[Any]] = None,
               dir_fd: Optional[int] = None) -> List[str]:
    """The chain's WAL segments decompressed into ``waldir``, made here (or given open as ``dir_fd``) and written
    through its descriptor (see ``_make_private_dir``)."""
    fd = _make_private_dir(waldir, 'PITR WAL directory') if dir_fd is None else dir_fd
    names = []
    try:
        for manifest in logs:
            name = manifest.position.get('wal_file') or manifest.data.get('wal_file')
            if not name:
                raise OpsReadyError('WAL artifact %s names no WAL segment (position.wal_file) in its manifest.'
                                    % manifest.id)
            with open_artifact(manifest, identities) as source:
                _write_at(fd, os.path.basename(name), _read_chunks(source))
            names.append(os.path.basename(name))
    finally:
        if dir_fd is None:
            os.close(fd)
    return names


HISTORY_FILE = timelines.HISTORY_FILE


def history_files(base: Manifest, logs: List[Manifest], every: bool = False) -> List[str]:
    """The timeline history files the chain's WAL needs (paths in ``<catalog>/pg_wal_extra/``), or a refusal.

    After a promotion the WAL continues on timeline 2 (``00000002...``) and ``00000002.history`` says where it
    forked. Without it PostgreSQL (``recovery_target_timeline = 'latest'``) never learns timeline 2 exists: it
    replays timeline 1 to its end and stops there, before every transaction of the new timeline. pg_wal_archive
    keeps history files in ``<catalog>/pg_wal_extra/``. Only those of the timelines the chain's segments are on:
    a later timeline whose segments are not in the chain would make recovery follow it (and find no WAL). Asked by
    check mode too, so the plan refuses what the run would. ``every``: the history files of later timelines too, for a
    recovery along a timeline given by number (``target_timeline``), which they do not redirect: PostgreSQL
    promotes onto the timeline after the newest it can find, and one the archive's other branch already is would
    be taken again otherwise."""
    timelines = {int(m.position.get('timeline') or 1) for m in logs}
    top = max(timelines) if timelines else 1
    extra = os.path.join(base.directory, 'pg_wal_extra')
    try:
        names = sorted(os.listdir(extra))
    except OSError:
        names = []
    found = [name for name in names if HISTORY_FILE.match(name) and (every or int(name[:8], 16) <= top)]
    # The base backup's own timeline needs none (the control file names it); each later one does.
    start = int(base.position.get('timeline') or 1)
    missing = sorted('%08X.history' % t for t in timelines if t > start and '%08X.history' % t not in found)
    if missing:
        raise OpsReadyError(
            'The chain holds WAL of a timeline after a promotion, but its history file (%s) is not in %s: without it '
            'recovery cannot follow the timeline switch and would stop at the end of the old timeline. Copy the '
            'history file from the promoted server\'s pg_wal (or its archive) into %s, or restore to a point before '
            'the switch.' % (', '.join(missing), extra, extra), missing_history=missing)
    return [os.path.join(extra, name) for name in found]


def _stage_history(base: Manifest, logs: List[Manifest], waldir: str, dir_fd: Optional[int] = None,
                   every: bool = False) -> List[str]:
    """``history_files`` copied beside the segments for ``restore_command``; their names. Written through ``dir_fd``
    (the WAL directory this run made), or a descriptor of ``waldir`` opened without following a link another account
    could have put on the way."""
    staged = []
    fd = open_directory(waldir) if dir_fd is None else dir_fd
    try:
        for path in history_files(base, logs, every):
            # The archive is written by the server account: a link or a FIFO at the name is refused, not followed.
            data = read_regular(path, HISTORY_LIMIT, what='Timeline history file', follow=False)
            _write_at(fd, os.path.basename(path), [data])
            staged.append(os.path.basename(path))
    finally:
        if dir_fd is None:
            os.close(fd)
    return staged


def _staging_dir(staging: str) -> ClusterDir:
    """The staging directory this run made (root's until ``_secure_tree``, the server account's after), opened once.
    Its parent is usually the server account's, which could rename it away and put a link to /etc at its name: the
    descriptor is judged (made here or the account's, writable by nobody else, a PG_VERSION in it) and every write
    below goes through it."""
    _name, uid, gid = _owner()
    return ClusterDir(staging, (uid, gid), what='PITR staging directory', marker='PG_VERSION', made_here=True)


def recovery_timeline(request: RestoreRequest, base: Manifest) -> Optional[str]:
    """``recovery_target_timeline`` for ``target_timeline`` (None: PostgreSQL's default, latest): ``current`` is the
    base backup's timeline, named by number (the chain was chosen along it)."""
    if request.target_timeline == 'current':
        return str(int(base.position.get('timeline') or 1))
    return request.target_timeline


def _configure(staging: str, waldir: str, target: Optional[datetime.datetime],
               timeline: Optional[str] = None) -> None:
    hba = os.path.join(staging, 'pg_hba.conf')
    with _staging_dir(staging) as cluster:
        if not cluster.exists('postgresql.conf'):
            cluster.write_atomic('postgresql.conf',
                                 b'# written by opsready db_restore: the backup held no postgresql.conf\n', 0o600)
        if not cluster.exists('pg_hba.conf'):
            # The server listens on 127.0.0.1 only. Password logins there let a DR drill check the copy with the
            # source's own roles and passwords (they are in the cluster); md5 accepts SCRAM and md5 secrets.
            cluster.write_atomic('pg_hba.conf', b'# written by opsready db_restore: the backup held no pg_hba.conf\n'
                                 b'local all all peer\n'
                                 b'host all all 127.0.0.1/32 md5\n', 0o600)
        lines = ['', '# --- opsready db_restore: point-in-time recovery ---',
                 "restore_command = %s" % conf_literal('cp %s/%%f "%%p"' % shlex.quote(waldir)),
                 "recovery_target_action = 'promote'",
                 "archive_mode = 'off'",
                 "hba_file = %s" % conf_literal(hba),
                 "ident_file = %s" % conf_literal(os.path.join(staging, 'pg_ident.conf'))]
        if timeline is not None:
            lines.append('recovery_target_timeline = %s' % conf_literal(timeline))
        if not cluster.exists('pg_ident.conf'):
            cluster.write_atomic('pg_ident.conf', b'', 0o600)
        auto = cluster.read('postgresql.auto.conf', CONF_LIMIT, what='postgresql.auto.conf') or b''
        cluster.write_atomic('postgresql.auto.conf', auto + ('\n'.join(lines) + '\n').encode('utf-8'), 0o600)
        _set_conf_in(cluster, {'recovery_target_time': target.isoformat() if target is not None else None})
        cluster.write_atomic('recovery.signal', b'', 0o600)
        for stale in ('postmaster.pid', 'postmaster.opts', 'standby.signal'):
            cluster.remove(stale)


def _set_conf(staging: str, settings: Dict[str, Optional[str]]) -> None:
    """Set (or, with None, remove) settings in ``postgresql.auto.conf``, the file read last."""
    with _staging_dir(staging) as cluster:
        _set_conf_in(cluster, settings)


def _set_conf_in(cluster: ClusterDir, settings: Dict[str, Optional[str]]) -> None:
    # Once staging is the server account's, that account could put a link here: read without following it, and
    # replace the file (a new inode renamed over the name) instead of writing through whatever the name leads to.
    raw = cluster.read('postgresql.auto.conf', CONF_LIMIT, what='postgresql.auto.conf')
    if raw is None:
        raise UnsafeFileError('postgresql.auto.conf is missing from %s: the staged cluster is incomplete.'
                              % cluster.path, path=cluster.join('postgresql.auto.conf'))
    kept = [line for line in raw.decode('utf-8').splitlines()
            if not any(line.startswith(name + ' = ') for name in settings)]
    kept += ['%s = %s' % (name, conf_literal(value)) for name, value in settings.items() if value is not None]
    cluster.write_atomic('postgresql.auto.conf', ('\n'.join(kept) + '\n').encode('utf-8'), 0o600)


def _set_target(staging: str, target: Optional[datetime.datetime]) -> None:
    """``recovery_target_time``, or none: without it recovery replays all archived WAL."""
    _set_conf(staging, {'recovery_target_time': target.isoformat() if target is not None else None})


# -- the server log --------------------------------------------------------------------------------------
# The scratch server runs with lc_messages=C and log_timezone=UTC so these patterns hold whatever the
# source cluster's postgresql.conf says.
LOG_MESSAGE = re.compile(r'\b(PANIC|FATAL|ERROR|WARNING|LOG|DETAIL|HINT|CONTEXT):\s+(.*)$')
NOT_REACHED = 'recovery ended before configured recovery target was reached'
# restore_command probing for WAL past the end of the archive (and for timeline history files) prints
# this on every recovery; it is normal and says nothing about a failure.
PROBE = re.compile(r'^cp: cannot stat ')
LAST_XACT = re.compile(r'last completed transaction was at log time (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)'
                       r'([+-]\d\d(?::?\d\d)?)?')
PAUSED = 'recovery has paused'
# PostgreSQL >= 14 pauses a hot-standby recovery (or aborts it before consistency) when the WAL records a
# setting of the source higher than the restored postgresql.conf has.
LOWER_SETTING = re.compile(r'(\w+) = (\d+) is a lower setting than on the primary server, where its value was (\d+)')
LOWER_SETTINGS_NAMES = ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions',
                        'max_locks_per_transaction')
FIXES = [
    (re.compile(re.escape(NOT_REACHED)),
     'the archived WAL holds no transaction after stop_at and could not be replayed to its end: check the WAL '
     'segments of the chain (backup_verify), or restore to the end of the archive (stop_at unset).'),
    (re.compile(r'recovery stop point is before consistent recovery point'),
     'stop_at is earlier than the end of the base backup: choose a stop_at at or after the start of the window '
     'backup_info reports, or an older base backup.'),
    (re.compile(r'could not create any TCP/IP sockets|could not bind|Address already in use'),
     'port {port} is taken: give another port, or leave port unset so a free one is chosen.'),
    (re.compile(r'could not create lock file|could not create Unix-domain socket'),
     'the server cannot use its socket directory {rundir}: remove stale files there or choose another datadir.'),
    (re.compile(r'No space left on device'),
     'the file system holding datadir is full: free space, or choose a datadir with room for the whole cluster '
     'and its WAL.'),
    (re.compile(r'Permission denied'),
     'the server runs as {os_user}: datadir, its parent directories and the WAL staging directory next to it '
     'must be reachable by that account.'),
    (re.compile(r'insufficient parameter settings|is not possible because|parameter settings'),
     'a setting of the source cluster recorded in the WAL (max_connections, max_worker_processes, '
     'max_wal_senders, max_prepared_transactions, max_locks_per_transaction) is higher than in the backed-up '
     'postgresql.conf: raise it there (DETAIL names it) and take a new base backup.'),
    (re.compile(r'WAL ends before (end of online backup|consistent recovery point)'),
     'WAL written while the base backup ran is missing: the base backup cannot be made consistent; use another '
     'base backup (backup_verify deep=true proves one).'),
    (re.compile(r'database files are incompatible with server'),
     'the base backup comes from another PostgreSQL major version than {pg_ctl}: install the matching server '
     'binaries.'),
    (re.compile(r'could not locate a valid checkpoint record|invalid checkpoint record|invalid primary checkpoint'),
     'the base backup\'s own WAL is missing or damaged: verify the base backup (backup_verify deep=true) or use '
     'another one.'),
    (re.compile(r'is not a child of this server\'s history|requested timeline'),
     'the WAL belongs to a timeline whose history file is not in the catalog: restore from a base backup taken '
     'after the last failover.'),
]


def analyse_log(text: str, **context: Any) -> Dict[str, Any]:
    """What a failed recovery's server log says: its first FATAL/PANIC (with PostgreSQL's DETAIL/HINT), a
    one-line fix for the known causes, and the tail without restore_command's ``cp: cannot stat`` probes."""
    lines = text.splitlines()
    fatal: Optional[str] = None
    notes: List[str] = []
    for line in lines:
        match = LOG_MESSAGE.search(line)
        if not match:
            continue
        level, message = match.group(1), match.group(2).strip()
        if fatal is None:
            if level in ('FATAL', 'PANIC'):
                fatal = '%s: %s' % (level, message)
            continue
        if level in ('DETAIL', 'HINT'):
            notes.append('%s: %s' % (level, message))
            continue
        break
    fix = None
    if fatal:
        for pattern, hint in FIXES:
            if pattern.search(fatal) or any(pattern.search(n) for n in notes):
                fix = hint.format(**{k: context.get(k, '?') for k in ('port', 'rundir', 'os_user', 'pg_ctl')})
                break
    probes = [line for line in lines if PROBE.match(line)]
    tail = [line for line in lines if not PROBE.match(line) and line.strip()][-12:]
    return {'fatal': fatal, 'notes': notes, 'fix': fix, 'probes': len(probes), 'tail': tail}


def last_transaction(text: str) -> Optional[datetime.datetime]:
    """``last completed transaction was at log time ...`` (logged at the end of redo), in UTC."""
    found = LAST_XACT.findall(text)
    if not found:
        return None
    stamp, zone = found[-1]
    zone = zone or '+00'
    if len(zone) == 3:
        zone += ':00'
    try:
        return datetime.datetime.fromisoformat(stamp.replace(' ', 'T') + zone).astimezone(datetime.timezone.utc)
    except ValueError:
        return None


class RecoveryFailed(OpsReadyError):
    """The scratch server stopped or never started; ``analysis`` is what its log says."""

    def __init__(self, what: str, log: str, analysis: Dict[str, Any]) -> None:
        self.what = what
        self.log = log
        self.analysis = analysis
        super().__init__(what, log=log, log_tail=analysis['tail'])

    def describe(self, datadir: str, outcome: Optional[str] = None) -> str:
        """The FATAL line first, then the fix, then what was done, then the log tail."""
        a = self.analysis
        head = []
        if a['fatal']:
            head.append(' '.join([a['fatal']] + a['notes']))
            head.append('Fix: %s' % (a['fix'] or 'the server log lines below say why.'))
            head.append('(%s)' % self.what)
        else:
            head.append(self.what)
        probes = (' (%d "cp: cannot stat" lines left out: restore_command looking for WAL past the end of the '
                  'archive, normal in every recovery)' % a['probes']) if a['probes'] else ''
        outcome = outcome or ('Point-in-time recovery into %s failed and was cleaned up (%s untouched).'
                              % (datadir, datadir))
        tail = ' | '.join(a['tail'])
        return '%s %s Server log %s, last lines%s: %s' % (' '.join(head), outcome, self.log, probes, tail)


class RecoveryPaused(OpsReadyError):
    """Recovery waits for an operator because the source had higher ``settings`` than the copy."""

    def __init__(self, settings: Dict[str, int]) -> None:
        super().__init__('recovery paused: %s' % ', '.join('%s %d' % kv for kv in sorted(settings.items())))
        self.settings = settings


def lower_settings(text: str) -> Dict[str, int]:
    """Settings the WAL says the source had higher than the copy (``DETAIL: x = 1 is a lower setting ...``)."""
    return {m.group(1): int(m.group(3)) for m in LOWER_SETTING.finditer(text)}


class ScratchServer:
    """pg_ctl for the recovered cluster, run as its owner."""

    def __init__(self, engine: PostgresEngine, datadir: str, rundir: str, port: int, owner: Optional[str]) -> None:
        self.engine = engine
        self.datadir = datadir
        self.rundir = rundir
        self.port = port
        self.owner = owner
        self.log = os.path.join(rundir, 'postgresql.log')
        self.log_offset = 0

    def _as_owner(self, argv: List[str]) -> List[str]:
        if self.owner:
            return [shutil.which('runuser') or '/usr/sbin/runuser', '-u', self.owner, '--'] + argv
        return argv

    def pg_ctl(self, *args: str, timeout: int = START_TIMEOUT) -> str:
        argv = self._as_owner([self.engine.tool('pg_ctl'), '-D', self.datadir] + list(args))
        _rc, out, _err = self.engine.runner.run(argv, timeout=timeout + 30, cwd=self.rundir,
                                                what='pg_ctl %s' % args[-1])
        return out

    def start(self) -> None:
        # lc_messages=C and log_timezone=UTC: the log is parsed (analyse_log, last_transaction).
        options = ("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c lc_messages=C "
                   "-c log_timezone=UTC" % (self.port, shlex.quote(self.rundir)))
        try:
            self.log_offset = os.path.getsize(self.log)
        except OSError:
            self.log_offset = 0
        try:
            self.pg_ctl('-w', '-t', str(START_TIMEOUT), '-l', self.log, '-o', options, 'start')
        except ToolError as exc:
            raise self.failed('the recovered server did not start: %s' % exc.message)

    def failed(self, what: str) -> RecoveryFailed:
        analysis = analyse_log(self.log_text(self.log_offset), port=self.port, rundir=self.rundir,
                               os_user=self.owner or 'the current user', pg_ctl=self.engine.tool('pg_ctl'))
        return RecoveryFailed(what, self.log, analysis)

    def stop(self) -> None:
        if _server_running(self.datadir):
            self.pg_ctl('-w', '-t', '120', '-m', 'fast', 'stop', timeout=120)

    def psql(self, sql: str) -> str:
        argv = self._as_owner([self.engine.tool('psql'), '-X', '-A', '-t', '-q', '-h', self.rundir, '-p',
                               str(self.port), '-d', 'postgres', '-c', sql])
        # The recovered copy's own database and role settings apply to this superuser session: search_path pinned
        # in the startup packet, as every session of the client (client.py), so pg_is_in_recovery() is the catalog's.
        env = {'PGUSER': self.owner or pwd.getpwuid(os.getuid()).pw_name,
               'PGOPTIONS': CATALOG_OPTIONS}
        _rc, out, _err = self.engine.runner.run(argv, env=env, timeout=60, what='psql (recovered server)')
        return out.strip()

    def wait_promoted(self, timeout: int = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        next_look = time.monotonic() + 1
        while True:
            if not _server_running(self.datadir):
                raise self.failed('the recovered server stopped during recovery')
            if time.monotonic() > next_look:  # a paused recovery would wait for the timeout: read the log
                next_look = time.monotonic() + 1
                text = self.log_text(self.log_offset)
                if PAUSED in text:
                    settings = lower_settings(text)
                    if settings:
                        raise RecoveryPaused(settings)
                    raise self.failed('recovery paused and waits for an operator')
            try:
                if self.psql('SELECT pg_is_in_recovery()') == 'f':
                    return
            except ToolError:
                pass
            if time.monotonic() > deadline:
                raise self.failed('recovery did not finish within %ds' % timeout)
            time.sleep(0.2)

    def log_text(self, offset: int = 0, limit: int = 1024 * 1024) -> str:
        """The log from ``offset`` on (a start's own lines), at most its last ``limit`` bytes."""
        # The run directory is the server account's: it could put a link to a file of root's (whose lines would
        # then be quoted in the failure message), a FIFO or /dev/zero at the log's name. Never followed or opened.
        try:
            handle = open_regular_stream(self.log, what='Server log', limit=1 << 62, follow=False)
        except UnsafeFileError as exc:
            return exc.message
        except OSError:
            return ''
        if handle is None:
            return ''
        with handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, handle.tell() - limit))
            return handle.read(limit).decode('utf-8', 'replace')


HISTORY_LIMIT = timelines.HISTORY_LIMIT


def _end_of_recovery(staging: str) -> Optional[int]:
    """The LSN where recovery ended: the switch point in the newest timeline history file it wrote."""
    histories = sorted(glob.glob(os.path.join(glob.escape(staging), 'pg_wal', '*.history')))
    if not histories:
        return None
    # staging was the server account's during the recovery: a link or a FIFO at the name is refused, not read
    raw = read_regular(histories[-1], HISTORY_LIMIT, what='Timeline history file', follow=False)
    text = raw.decode('utf-8', 'replace')
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith('#')]
    if not rows or len(rows[-1]) < 2:
        return None
    return lsn_to_int(rows[-1][1])


def _check_replayed_all(staging: str, base: Manifest, logs: List[Manifest]) -> Optional[str]:
    """Recovery without a time target ends wherever the WAL stops being valid, and promotes there without a word.

    A segment that is damaged (archived that way: its checksum matches) would silently cut the restore short;
    the switch point of the new timeline must lie inside the last archived segment of the chain.
    """
    if not logs:
        return None
    end = _end_of_recovery(staging)
    size = int(base.position.get('wal_segment_size') or logs[-1].position.get('wal_segment_size') or 0)
    if end is None or not size:
        return None
    last = int(logs[-1].position['start'])
    if end > last * size:
        return '%X/%X' % (end >> 32, end & 0xFFFFFFFF)
    stopped = end // size
    bad = [m for m in logs if int(m.position['start']) == stopped]
    name = bad[0].position.get('wal_file') if bad else 'segment %d' % stopped
    before = [m for m in logs if int(m.position['start']) < stopped]
    raise OpsReadyError(
        'Recovery stopped at LSN %X/%X, in WAL %s, before the last archived segment %s: %s holds no valid WAL '
        'there although its checksum matches its manifest (it was archived damaged). Restoring would silently lose '
        'everything after it. Restore with stop_at at or before %s (the end of the intact WAL), or put a good copy '
        'of %s back in the catalog.'
        % (end >> 32, end & 0xFFFFFFFF, name, logs[-1].position.get('wal_file'), name,
           isoformat(before[-1].consistent_at) if before else isoformat(base.consistent_at), name),
        damaged=name)


def _run_recovery(server: ScratchServer, staging: str, raised: Dict[str, int]) -> None:
    """Start the scratch server and wait until it promoted itself.

    When the WAL says the source ran with a higher max_connections (max_worker_processes, max_wal_senders,
    max_prepared_transactions, max_locks_per_transaction) than the backed-up postgresql.conf has, PostgreSQL
    pauses recovery (or aborts it before consistency) until someone raises it: the copy is ours, so it is
    raised to the source's value (``raised``, reported) and recovery resumed.
    """
    for _attempt in range(len(LOWER_SETTINGS_NAMES) + 1):
        try:
            server.start()
            server.wait_promoted()
            return
        except RecoveryPaused as exc:
            needed = exc.settings
            server.stop()
        except RecoveryFailed:
            needed = lower_settings(server.log_text(server.log_offset))
            if not needed:
                raise
            server.stop()
        higher = {k: v for k, v in needed.items() if v > raised.get(k, -1)}
        if not higher:
            break
        raised.update(higher)
        _set_conf(staging, {k: str(v) for k, v in raised.items()})
    raise server.failed('recovery still stops for settings after raising %s' % ', '.join(
        '%s to %d' % kv for kv in sorted(raised.items())))


STAGING_KINDS = ('restore', 'wal', 'old')


def stale_staging(datadir: str) -> List[str]:
    """The staging directories a killed run into ``datadir`` left beside it (``<datadir>.opsready-restore-<id>``:
    the extracted base backup, ``.opsready-wal-<id>``: the decrypted WAL, ``.opsready-old-<id>``: the previous
    cluster renamed aside), each plaintext. Only call under ``target_lock``: no run into ``datadir`` is live, so a
    directory of that exact shape is a killed run's. Links are never followed."""
    parent, base = os.path.dirname(datadir), os.path.basename(datadir)
    shape = re.compile(r'%s\.opsready-(%s)-[0-9a-f]{8}\Z' % (re.escape(base), '|'.join(STAGING_KINDS)))
    try:
        # never through a link swapped in above (the restore itself then refuses the parent, saying why)
        parent_fd = open_directory(parent)
    except (OSError, UnsafeFileError):
        return []
    found = []
    try:
        for name in sorted(os.listdir(parent_fd)):
            if not shape.match(name):
                continue
            try:
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                found.append(os.path.join(parent, name))
    finally:
        os.close(parent_fd)
    return found


def _remove_beside(path: str) -> Dict[str, Any]:
    """``remove_tree`` of ``path`` (a staging directory beside datadir) through a descriptor of its parent, walked
    without following a link another account planted: the account owning a directory above could otherwise swap the
    parent for a link to a directory of root's holding a directory of that name, and root would remove it. A parent
    refused is an outcome with ``cleaned_up: false`` and the refusal as its reason."""
    try:
        parent_fd = open_directory(os.path.dirname(path))
    except (OSError, UnsafeFileError) as exc:
        return {'cleaned_up': False, 'path': path, 'left': [],
                'reason': str(exc) if isinstance(exc, UnsafeFileError) else (exc.strerror or str(exc))}
    try:
        via = '/proc/self/fd/%d/%s' % (parent_fd, os.path.basename(path))
        outcome = remove_tree(via)
    finally:
        os.close(parent_fd)
    outcome['path'] = path
    if outcome.get('reason'):
        outcome['reason'] = outcome['reason'].replace(via, path)
    return outcome


def sweep_staging(datadir: str) -> Dict[str, Any]:
    """Remove what ``stale_staging`` finds: ``{'removed_scratch': [...], 'warnings': [...]}``. One a scratch server
    still runs on (a killed run's pg_ctl-started server outlives it) is left, with a warning."""
    removed: List[str] = []
    warnings: List[str] = []
    for path in stale_staging(datadir):
        pid = _server_running(path)
        if pid:
            warnings.append('%s, left by a killed db_restore into %s, still has a PostgreSQL server running on it '
                            '(pid %d): stop it (pg_ctl stop -D %s) and the next run removes the directory'
                            % (path, datadir, pid, shlex.quote(path)))
            continue
        outcome = _remove_beside(path)
        if outcome['cleaned_up']:
            removed.append(path)
        else:
            warnings.append(_left_warning(outcome, 'left by a killed db_restore into %s' % datadir))
    return {'removed_scratch': removed, 'warnings': warnings}


def _left_warning(outcome: Dict[str, Any], what: str) -> str:
    return ('staging directory %s (%s; a decrypted base backup or WAL) was not removed (%s; left: %s): remove it by '
            'hand (lsattr shows an immutable or append-only flag; chattr -i / -a clears it)'
            % (outcome['path'], what, outcome.get('reason'), ', '.join(outcome.get('left') or [])[:300] or 'nothing'))


def _remove_staging(paths: List[str], what: str) -> List[Dict[str, Any]]:
    """Remove each of ``paths``; the outcomes that failed, each with its ``warning``."""
    left = []
    for path in paths:
        outcome = _remove_beside(path)
        if not outcome['cleaned_up']:
            outcome['warning'] = _left_warning(outcome, what)
            left.append(outcome)
    return left


def lock_path(datadir: str) -> str:
    """The lock of one datadir: a hidden file beside it while a run holds it (the datadir itself is renamed during
    the run)."""
    return os.path.join(os.path.dirname(datadir), '.%s.opsready-lock' % os.path.basename(datadir))


def target_lock(request: RestoreRequest) -> Any:
    """One restore or clean-up per datadir at a time. Two at once would both stage, recover and rename onto the
    same directory (the second failing after all its work, its staging left behind) or remove it under the other."""
    datadir = _datadir(request)
    parent = os.path.dirname(datadir)
    if not os.path.isdir(parent):
        raise OpsReadyError('The parent directory %s of datadir does not exist: create it first.' % parent)
    return locks.exclusive(lock_path(datadir), 'Another db_restore into (or state=absent of) datadir %s is running: '
                           'nothing was changed. Wait for it to finish' % datadir, remove=True)


def restore(engine: PostgresEngine, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    with target_lock(request):
        return _restore_locked(engine, request, chain, timer)


def _restore_locked(engine: PostgresEngine, request: RestoreRequest, chain: List[Manifest],
                    timer: Timer) -> Dict[str, Any]:
    base, logs = chain[0], chain[1:]
    before = check_target(request)
    datadir = before['datadir']
    swept = sweep_staging(datadir)   # under the lock: a killed run's staging (plaintext) goes first
    owner, uid, gid = _owner()
    token = uuid.uuid4().hex[:8]
    staging = '%s.opsready-restore-%s' % (datadir, token)
    waldir = '%s.opsready-wal-%s' % (datadir, token)
    rundir = datadir + '.run'
    port = request.port or _free_port()
    server = ScratchServer(engine, staging, rundir, port, owner)
    # recovery_target_time makes PostgreSQL stop at the first commit later than it, and fail ("recovery ended
    # before configured recovery target was reached") when the archived WAL holds none. Each archived segment's
    # consistent_at is its last write, after every commit it holds: from that instant on, no commit in the chain
    # is later than stop_at and the state at stop_at is the whole archive, replayed without a target.
    target = request.stop_at
    if target is not None and logs and target >= Catalog.reaches(chain):
        target = None
    try:
        _extract_base(base, staging, engine.identities)
        timer.lap('extract_base')
        wal_fd = _make_private_dir(waldir, 'PITR WAL directory')
        try:
            wal = _stage_wal(logs, waldir, engine.identities, dir_fd=wal_fd)
            history = _stage_history(base, logs, waldir, dir_fd=wal_fd,
                                     every=recovery_timeline(request, base) not in (None, 'latest'))
        finally:
            os.close(wal_fd)
        timer.lap('stage_wal')
        _configure(staging, waldir, target, recovery_timeline(request, base))
        _make_rundir(rundir)
        for path in (staging, waldir, rundir):
            _secure_tree(path, uid, gid)
        raised: Dict[str, int] = {}
        try:
            _run_recovery(server, staging, raised)
        except RecoveryFailed as exc:
            if target is None or not (exc.analysis['fatal'] or '').endswith(NOT_REACHED):
                raise
            # Replayed to the end of the archive without meeting a commit later than stop_at (the last commit is
            # before it): that end is the state at stop_at. Resume without the target; _check_replayed_all below
            # proves the end reached is the end of the chain, not a damaged segment.
            server.stop()
            _set_target(staging, None)
            target = None
            _run_recovery(server, staging, raised)
        end_lsn = _check_replayed_all(staging, base, logs) if target is None else None
        replayed = server.psql("SELECT coalesce(pg_last_xact_replay_timestamp()::text, '')")
        log_text = server.log_text()
        timer.lap('recovery')
        server.stop()
    except BaseException as exc:
        try:
            server.stop()
        except Exception:  # nosec B110 # best effort: the original error is the one to report
            pass
        left = _remove_staging([staging, waldir], 'of this run, which failed')
        told: BaseException = exc
        if isinstance(exc, RecoveryFailed):
            told = OpsReadyError(exc.describe(datadir), datadir=datadir, log=exc.log, log_tail=exc.analysis['tail'],
                                 fatal=exc.analysis['fatal'], fix=exc.analysis['fix'])
        elif isinstance(exc, OpsReadyError) and not isinstance(exc, IntegrityError):
            told = OpsReadyError('Point-in-time recovery into %s failed and was cleaned up (%s untouched): %s'
                                 % (datadir, datadir, exc.message), **dict(exc.details, datadir=datadir))
        if left and isinstance(told, OpsReadyError):
            told.message = '%s Also: %s.' % (told.message, '; '.join(o['warning'] for o in left))
            told.details['scratch_left'] = [o['path'] for o in left]
        if told is exc:
            raise
        raise told
    left = _remove_staging([waldir], 'the WAL this run replayed')
    left += _put_in_place(datadir, staging, token, before['exists'])
    replaced = before['exists']
    # Settings that pointed at the staging directory now point at datadir (atomically: a crash here must not
    # leave the recovered cluster with an empty configuration).
    with ClusterDir(datadir, (uid, gid), what='datadir', marker='PG_VERSION', made_here=True) as cluster:
        text = (cluster.read('postgresql.auto.conf', CONF_LIMIT, what='postgresql.auto.conf') or b'').decode('utf-8')
        cluster.write_atomic('postgresql.auto.conf', text.replace(staging, datadir).encode('utf-8'), 0o600)
    server.datadir = datadir
    timer.lap('swap')
    pid = None
    if request.server_state == 'started':
        try:
            server.start()
        except RecoveryFailed as exc:
            outcome = ('Point-in-time recovery into %s completed and the cluster is in place, but it did not start '
                       'again.' % datadir)
            raise OpsReadyError(exc.describe(datadir, outcome), datadir=datadir, log=exc.log,
                                log_tail=exc.analysis['tail'], fatal=exc.analysis['fatal'], fix=exc.analysis['fix'])
        pid = _server_running(datadir)
        timer.lap('start')
    # After a resumed recovery the second run may replay no transaction at all: the log of the first has it.
    last = parse_time(replayed, 'pg_last_xact_replay_timestamp') if replayed else last_transaction(log_text)
    result: Dict[str, Any] = {
        'target': {'datadir': datadir, 'port': port, 'host': '127.0.0.1', 'socket_dir': rundir, 'log': server.log,
                   'pid': pid, 'state': request.server_state, 'os_user': owner},
        'wal_segments': wal, 'replaced': replaced,
        'recovery_target': 'time' if target is not None else 'end_of_archive',
        'stop_at_after_last_transaction': request.stop_at is not None and target is None}
    if history:
        result['timeline_history'] = history
    if raised:
        result['raised_settings'] = raised
    if end_lsn:
        result['end_lsn'] = end_lsn
    if last:
        result['point_reached'] = isoformat(last)
        result['last_transaction_replayed'] = isoformat(last)
    result['recovered_point'] = recovered_point(base, last)
    result['removed_scratch'] = swept['removed_scratch']
    warnings = swept['warnings'] + [o['warning'] for o in left]
    if left:
        result['scratch_left'] = [o['path'] for o in left]
    if warnings:
        result['warnings'] = warnings
    return result


def _put_in_place(datadir: str, staging: str, token: str, exists: bool) -> List[Dict[str, Any]]:
    """The recovered cluster renamed to ``datadir`` (the one there, if any, renamed aside and removed); the removals
    that failed.

    The renames are made relative to a descriptor of datadir's parent, opened one component at a time without
    following a link another account could have put on the way (``open_directory``): the directories above a data
    directory are the server account's (/var/lib/postgresql/16), which could swap one for a link to a directory of
    root's holding a ``main`` (/etc/postgresql/16), and a rename by path would move root's directory aside."""
    parent_fd = open_directory(os.path.dirname(datadir))
    name, staged = os.path.basename(datadir), os.path.basename(staging)
    try:
        if not exists:
            os.rename(staged, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            return []
        aside = '%s.opsready-old-%s' % (name, token)
        os.rename(name, aside, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        os.rename(staged, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        outcome = _remove_at(parent_fd, os.path.join(os.path.dirname(datadir), aside))
        if outcome['cleaned_up']:
            return []
        outcome['warning'] = _left_warning(outcome, 'the cluster this run replaced')
        return [outcome]
    finally:
        os.close(parent_fd)


def _remove_at(parent_fd: int, path: str) -> Dict[str, Any]:
    """``remove_tree`` of ``path``'s last name in the directory ``parent_fd`` (through /proc/self/fd: the directory
    held open, whatever its path leads to now); the outcome names ``path``, never the /proc path."""
    proc = '/proc/self/fd/%d' % parent_fd
    outcome = remove_tree('%s/%s' % (proc, os.path.basename(path)))
    outcome['path'] = path
    if outcome.get('reason'):
        outcome['reason'] = outcome['reason'].replace(proc, os.path.dirname(path))
    return outcome


def recovered_point(base: Manifest, last: Optional[datetime.datetime]) -> Dict[str, Any]:
    """The instant the recovered cluster provably equals the source at, read from the recovered server.

    ``pg_last_xact_replay_timestamp()`` (read before the scratch server stops: a restarted server forgets it) is
    the time stamp of the last commit or abort record replayed, written by the source when that transaction
    ended. Replay is in WAL order, so every transaction that ended before it is in the copy and none that ended
    after it: the copy is the source as of that instant. Other WAL records carry no time, so an idle stretch
    after it cannot be proven recovered; the catalog's ``recoverable_until`` (when the segment was archived) is a
    claim about the archive, not about the data. ``track_commit_timestamp`` would need the setting on the source,
    and the ``recovery stopping before ...`` log line exists only with a target. Without any transaction replayed
    after the end of the base backup, the copy is the base backup as of its end."""
    if last is not None and last >= base.consistent_at:
        return {'at': isoformat(last), 'source': 'pg_last_xact_replay_timestamp() of the recovered cluster'}
    return {'at': isoformat(base.consistent_at),
            'source': 'end of base backup %s (no transaction replayed after it)' % base.id}


def drop(request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    """state=absent: stop the scratch server of ``datadir`` and delete it (DR drill clean-up)."""
    datadir = _datadir(request)
    rundir = datadir + '.run'
    exists = os.path.exists(datadir) or os.path.exists(rundir)
    stale = stale_staging(datadir)
    swept: Dict[str, Any] = {'removed_scratch': [], 'warnings': []}
    if (exists or stale) and not check_mode:
        with target_lock(request):
            swept = sweep_staging(datadir)
            if exists:
                _drop_locked(datadir, rundir)
    result = {'changed': exists or bool(swept['removed_scratch']), 'target': {'datadir': datadir, 'removed': exists},
              'removed_scratch': swept['removed_scratch']}
    if swept['warnings']:
        result['warnings'] = swept['warnings']
    return result


def _drop_locked(datadir: str, rundir: str) -> None:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    owner, _uid, _gid = _owner()
    server = ScratchServer(PostgresEngine(ConnectionParams()), datadir, rundir, 0, owner)
    if os.path.isdir(datadir):
        server.stop()
    # Checked: a data directory left behind (a full copy of the cluster) fails the clean-up with its path and the
    # reason, instead of a "removed" over it. Removed relative to a descriptor of the parent opened without following
    # a link another account could have put on the way: the directories above are the server account's, which could
    # swap one for a link to a directory of root's holding a "main" (/etc/postgresql/16), removed by path otherwise.
    parent_fd = open_directory(os.path.dirname(datadir))
    left = []
    try:
        for path in (datadir, rundir):
            outcome = _remove_at(parent_fd, path)
            if not outcome['cleaned_up']:
                left.append(outcome)
    finally:
        os.close(parent_fd)
    if left:
        raise OpsReadyError('The scratch data directory was not removed completely: %s. Remove it by hand (lsattr '
                            'shows an immutable or append-only flag; chattr -i / -a clears it).'
                            % '; '.join('%s (%s; left: %s)' % (o['path'], o['reason'], ', '.join(o['left'][:5]))
                                        for o in left), left=[o['path'] for o in left])


class PitrRestore(Restorer):
    """db_restore for PostgreSQL physical point-in-time recovery (a base backup plus WAL into ``datadir``)."""

    restore_with = restore

    def narrow(self, request: RestoreRequest, catalog: Catalog) -> Catalog:
        def base_timeline() -> int:
            return int(select_chain(catalog, request.artifact, request.stop_at)[0].position.get('timeline') or 1)
        return timelines.select(catalog, request.target_timeline, request.stop_at, base_timeline)[0]

    def check(self, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
        history = [os.path.basename(p) for p in history_files(
            chain[0], chain[1:], recovery_timeline(request, chain[0]) not in (None, 'latest'))]
        result = check_target(request)
        if history:
            result['timeline_history'] = history
        return result

    def drop(self, request: RestoreRequest) -> Dict[str, Any]:
        return drop(request, request.check_mode)
