# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a rotation policy: discover, decide, plan, rotate, tell writers to reopen, wait until they
did, then compress and delete.

The two modes and their trade-off:
- ``create``: the log is hard-linked to its rotated name, then a new empty file (created beforehand
  with the right owner/group/mode) is renamed over the log. The log path exists at every instant and
  no log is renamed without its new file in place. The writer keeps writing into the rotated copy
  until it reopens (``signal`` to the ``pidfile`` process, or ``postrotate``); compression and
  deletion wait until no process holds the copy open for writing, so no line is lost.
- ``copytruncate``: for writers that cannot reopen. The log is copied (then caught up to its end)
  and truncated in place. Lines written between the last read and the truncate are lost; the window
  is microseconds, but it is not zero (see the integration test that counts them).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import secrets
import stat
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import PARTIAL_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import default_threads
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.logrotate import compress as compress_mod
from ansible_collections.opsready.operations.plugins.module_utils.logrotate import safefs, signalling
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import (
    LogPlan, Policy, dated_pattern, list_rotated, plan_log)
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.safefs import LogDir, Refused, acting_as
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.targets import discover
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.triggers import StateFile, decide

CHUNK = 1024 * 1024
# Room left on the filesystem beyond the copy itself (copy modes): a full disk breaks the writer too.
FREE_MARGIN = 16 * 1024 * 1024
# beside the state file: the lock every run of one state file takes (``Rotation._locked``)
LOCK_SUFFIX = '.lock'
# the locks of the logs themselves (``log_locks``), whatever state file a run keeps. Root's are in /run (root's own,
# 0755), never in the world-writable /run/lock: there any account (and the schedule role's jobs running as their own
# user, whose lock directory is /run/lock/opsready) could make the directory first, and every rotation of root's would
# be refused. Another user's are a directory of its own in /run/lock, or in the temporary directory where it may not
# write there.
LOG_LOCK_DIR = '/run/opsready/log-locks'
USER_LOCK_PARENT = '/run/lock'


def log_lock_dir() -> str:
    """The directory of the per-log locks of this process's user (root's is ``LOG_LOCK_DIR``)."""
    uid = os.geteuid()
    if uid == 0:
        return LOG_LOCK_DIR
    parent = USER_LOCK_PARENT if os.access(USER_LOCK_PARENT, os.W_OK | os.X_OK) else tempfile.gettempdir()
    return os.path.join(parent, 'opsready-log-locks-%d' % uid)


def log_lock_name(dir_st: os.stat_result, base: str) -> str:
    """The lock file of log ``base`` of the directory ``dir_st`` (its stat): keyed on the directory's device and
    inode and the log's name, so two runs naming the log through other paths (a symlinked directory, ``..``) take
    one lock, and a rotation (a new inode under the same name) keeps it."""
    digest = hashlib.sha256(base.encode('utf-8', 'surrogateescape')).hexdigest()[:32]
    return 'log-%d-%d-%s.lock' % (dir_st.st_dev, dir_st.st_ino, digest)


def _lock_directory(check_mode: bool) -> Optional[str]:
    """``log_lock_dir()``, made 0700 where missing (check mode makes nothing: None when it is missing), and
    refused unless it is a directory of this user's that no one else may write: these runs are often root, and a
    lock directory another account controls would let it plant links (the lock files are opened O_NOFOLLOW too)
    or hold every log's lock."""
    path = log_lock_dir()
    try:
        # a link on the way is followed only where no other account could have planted it (safeio's refusal says)
        fd = safeio.open_directory(path) if check_mode else safeio.make_directories(path, 0o700, 0o755)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OpsReadyError('Cannot %s the log lock directory %s (%s): nothing was rotated. Remove what is there '
                            '(nothing of ours is ever anything but a directory of this user\'s).'
                            % ('open' if check_mode else 'make', path, exc.strerror or exc), lock=path)
    st = os.fstat(fd)
    os.close(fd)
    risk = None
    if not stat.S_ISDIR(st.st_mode):
        risk = 'it is not a directory'
    elif st.st_uid != os.geteuid():
        risk = 'it belongs to %s' % safeio.uid_name(st.st_uid)
    else:
        risk = safeio.directory_risk(st)
    if risk:
        raise OpsReadyError('Refusing the log lock directory %s: %s. Nothing was rotated. Remove it (the next run '
                            'makes it again, 0700, owned by uid %d).' % (path, risk, os.geteuid()), lock=path)
    return path


@contextlib.contextmanager
def log_locks(dirs: Dict[str, LogDir], logs: List[str], check_mode: bool) -> Iterator[None]:
    """Hold the lock of every log of ``logs`` (their directories open in ``dirs``) for the block, taken in one
    order (sorted by lock name) so that runs sharing several logs never wait for each other in a circle. Check mode
    waits for a running rotation of a log only where its lock file exists, and makes none."""
    directory = _lock_directory(check_mode) if logs else None
    if directory is None:
        yield
        return
    names = sorted({log_lock_name(os.fstat(dirs[os.path.dirname(log)].fd), os.path.basename(log)): log
                    for log in logs}.items())
    with contextlib.ExitStack() as stack:
        for name, log in names:
            stack.enter_context(locks.waiting(os.path.join(directory, name), 'rotation of %s' % log,
                                              create=not check_mode))
        yield


class RotationFailed(OpsReadyError):
    """One log could not be rotated; ``message`` says what is on disk now."""


def _catch_up_to_line_end(src: int, dst: int, limit: int) -> int:
    """Copy what is left of ``src`` into ``dst``, not stopping in the middle of a line.

    Reads do not take the inode lock: a write that spans a page boundary can be seen half-done (the
    first page's part is visible before the second is copied). Stopping there and truncating would
    leave a torn line in the copy, so while the last byte read is not a newline, read again (bounded,
    for writers that really do leave partial lines). ``ftruncate`` does wait for a write in progress.
    """
    copied = 0
    offset = os.lseek(src, 0, os.SEEK_CUR)
    last = os.pread(src, 1, offset - 1) if offset else b'\n'
    retries = 200
    while True:
        data = os.read(src, CHUNK)
        if data:
            copied += len(data)
            if copied > limit:
                raise OSError(28, 'the log kept growing past the free space of its filesystem while it was copied')
            os.write(dst, data)
            last = data[-1:]
            continue
        if last == b'\n' or retries == 0:
            return copied
        retries -= 1
        time.sleep(0.0005)


def _copy_all(src: int, dst: int, limit: int) -> int:
    copied = 0
    while True:
        data = os.read(src, CHUNK)
        if not data:
            return copied
        copied += len(data)
        if copied > limit:
            raise OSError(28, 'the log kept growing past the free space of its filesystem while it was copied')
        os.write(dst, data)


class _Step:
    """The file operations of one log's rotation, undone in reverse when a later one fails.

    Order (issue: a failure midway must leave the set of copies as it was):
    1. the new copy is made under a hidden temporary name (copy modes) or the log is pinned by an
       ``O_PATH`` descriptor (create mode), and the new empty log is prepared (create mode);
    2. copies beyond retention are moved aside to hidden names, the survivors renumbered, highest first;
    3. the copy gets its rotated name (``linkat``, never replacing a name);
    4. the commit: the new log is renamed over the log (create) or the log truncated (copytruncate);
    5. only then are the copies moved aside deleted and the temporary names removed.
    Any failure in 2-4 moves every renamed file back. Every hidden name left by a kill is redundant
    (the commit had not happened, or everything it holds has its final name) and the next run removes it.
    """

    def __init__(self, d: LogDir) -> None:
        self.d = d
        self.moved: List[Tuple[str, str]] = []     # (from, to), in the order done
        self.linked: Optional[Tuple[str, safefs.Ident]] = None
        self.temps: List[str] = []

    def move(self, src: str, dst: str) -> bool:
        try:
            self.d.move_no_replace(src, dst)
        except FileNotFoundError:
            if self.d.lstat_or_none(src) is None:
                return False        # vanished since it was listed: nothing to move
            raise
        self.moved.append((src, dst))
        return True

    def undo(self) -> List[str]:
        problems: List[str] = []
        if self.linked is not None:
            name, expect = self.linked
            if not self.d.unlink_if(name, expect):
                problems.append('%s could not be removed' % self.d.full(name))
        for src, dst in reversed(self.moved):
            try:
                self.d.move_no_replace(dst, src)
            except OSError as exc:
                problems.append('%s could not be renamed back to %s (%s)'
                                % (self.d.full(dst), self.d.full(src), exc.strerror or exc))
        for name in self.temps:
            self.d.unlink(name)
        return problems


def _new_log(d: LogDir, base: str, policy: Policy, st: os.stat_result) -> Tuple[str, int]:
    mode = policy.create_mode if policy.create_mode is not None else st.st_mode & 0o7777
    uid = policy.create_uid if policy.create_uid is not None else st.st_uid
    gid = policy.create_gid if policy.create_gid is not None else st.st_gid
    name, fd = d.create_temp(base, '.new')
    try:
        if (uid, gid) != (os.geteuid(), os.getegid()):
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        d.unlink(name)
        raise
    return name, fd


def rotate_one(d: LogDir, plan: LogPlan, policy: Policy,
               expect: Optional[safefs.Ident] = None) -> Tuple[int, List[str]]:
    """Rotate one log as ``plan`` says, every operation relative to ``d``; returns (bytes, deleted paths).

    ``expect``: the (device, inode) the log had when it was planned; anything else under its name
    (a symlink, a hard link, a FIFO, another file) is refused before anything is changed.
    """
    base = os.path.basename(plan.log)
    rotated = os.path.basename(plan.rotated_to)
    for path in plan.leftovers:
        d.unlink(os.path.basename(path))
    step = _Step(d)
    mode = policy.mode
    flags = None if mode == 'create' else (os.O_RDWR if mode == 'copytruncate' else os.O_RDONLY)
    src = d.open_regular(base, flags, expect=expect)
    copy_fd = -1
    committed = False
    try:
        st = os.fstat(src)
        if mode == 'create':
            new_name, new_fd = _new_log(d, base, policy, st)
            os.close(new_fd)
            step.temps.append(new_name)
        else:
            limit = d.free_bytes() - FREE_MARGIN
            if st.st_size > limit:
                raise RotationFailed('%s is %d bytes but its filesystem has only %d bytes free (keeping %d in '
                                     'reserve): a copy does not fit. Nothing was changed; free space or rotate '
                                     'with mode=create.'
                                     % (plan.log, st.st_size, max(limit, 0) + FREE_MARGIN, FREE_MARGIN), path=plan.log)
            copy_name, copy_fd = d.create_temp(base, '.copy')
            step.temps.append(copy_name)
            try:
                os.fchown(copy_fd, st.st_uid, st.st_gid)
            except PermissionError:
                pass
            os.fchmod(copy_fd, st.st_mode & 0o7777)
            copied = _copy_all(src, copy_fd, limit)
            os.fsync(copy_fd)
        doomed: List[Tuple[str, str]] = []
        try:
            for path in plan.delete:
                name = os.path.basename(path)
                aside = '.%s.%s.doomed' % (base, secrets.token_hex(6))
                if step.move(name, aside):
                    doomed.append((path, aside))
            for old, new in plan.shifts:
                step.move(os.path.basename(old), os.path.basename(new))
            pinned = src if mode == 'create' else copy_fd
            try:
                d.link_fd(pinned, rotated)
            except FileNotFoundError:
                # linkat of a file with no name left: the log was removed or renamed over meanwhile
                raise Refused('%s was removed or replaced while it was rotated: nothing of it was changed.'
                              % plan.log, path=plan.log)
            step.linked = (rotated, safefs.ident(os.fstat(pinned)))
            if mode == 'create':
                # Another tool (a leftover logrotate entry for the same log) may have rotated it meanwhile and made
                # a new log that its writer already fills: renaming over it would unname those lines. Refused and
                # undone instead (what remains is the instant between this look and the rename).
                there = d.lstat_or_none(base)
                if there is None or safefs.ident(there) != safefs.ident(st):
                    raise Refused('%s was rotated or replaced by something else (another logrotate?) while this run '
                                  'rotated it: nothing of it was changed; make sure one tool only rotates it.'
                                  % plan.log, path=plan.log)
                d.rename(new_name, base)      # the commit: the log path now names the new empty file
                step.temps.remove(new_name)
                size = st.st_size
            elif mode == 'copytruncate':
                # Catch up with what was appended meanwhile, then truncate at once: only lines
                # written between this last read and ftruncate are lost.
                copied += _catch_up_to_line_end(src, copy_fd, limit - copied)
                os.ftruncate(src, 0)          # the commit: nothing after it may be undone
                size = copied
            else:
                size = copied
        except BaseException as exc:
            problems = step.undo()
            if not problems:
                raise
            what = getattr(exc, 'message', None) or getattr(exc, 'strerror', None) or str(exc)
            raise RotationFailed('Rotating %s failed: %s; undoing it also failed: %s; %s.'
                                 % (plan.log, what, '; '.join(problems), d.describe(
                                     [base, rotated] + [os.path.basename(n) for _o, n in plan.shifts])),
                                 path=plan.log)
        committed = True
        if copy_fd >= 0:
            os.fsync(copy_fd)                 # the lines caught up after the first fsync
    except BaseException as exc:
        for name in step.temps:
            d.unlink(name)
        if not committed or isinstance(exc, OpsReadyError):
            raise
        raise RotationFailed('%s was rotated to %s but then %s; %s.' % (
            plan.log, plan.rotated_to, getattr(exc, 'strerror', None) or exc, d.describe([base, rotated])),
            path=plan.log)
    finally:
        os.close(src)
        if copy_fd >= 0:
            os.close(copy_fd)
    for name in step.temps:
        d.unlink(name)
    deleted = []
    for path, aside in doomed:
        if d.unlink(aside):
            deleted.append(path)
    d.fsync()
    return size, deleted


def rotate_create(log: str, rotated_to: str, policy: Policy) -> int:
    """Link ``log`` to ``rotated_to`` and atomically replace ``log`` with a new empty file."""
    d = LogDir.open(os.path.dirname(log))
    try:
        plan = LogPlan(log=log, reason='direct', size=0, rotated_to=rotated_to)
        return rotate_one(d, plan, Policy(**{**policy.__dict__, 'mode': 'create'}))[0]
    finally:
        d.close()


def _after_names(plan: LogPlan, policy: Policy, existing: List[str]) -> List[str]:
    names = set(existing)
    names.difference_update(plan.delete)
    names.difference_update(plan.leftovers)
    for src, dst in plan.shifts:
        names.discard(src)
        names.add(dst)
    names.add(plan.rotated_to)
    for stem in plan.compress:
        names.discard(stem)
        names.add(stem + policy.suffix)
    names.difference_update(plan.delete_after)
    return sorted(names)


def _dir_writable(d: LogDir) -> bool:
    # faccessat with the effective ids: the user the file operations run as (su) or this process
    return os.access('.', os.W_OK | os.X_OK, dir_fd=d.fd, effective_ids=True)


class Rotation:
    """One invocation of a policy over its targets.

    ``su_uid``/``su_gid``: the user and group the file operations run as (logrotate's ``su``);
    discovery, planning, rotation, compression and deletion run with those effective ids, while the
    state file, the pid file, signals, ``postrotate`` and the /proc scan for writers stay root's (as
    logrotate runs its scripts as root). Without them, a run as root refuses log directories that
    another user can write. ``check_dirs=False`` skips that refusal: only for tests that prove the
    descriptor-relative operations hold on their own.
    """

    def __init__(self, paths: List[str], policy: Policy, state_file: str, signal: Optional[str] = None,
                 pidfile: Optional[str] = None, postrotate: Optional[str] = None, threads: int = 0,
                 now: Optional[datetime.datetime] = None, su_uid: Optional[int] = None,
                 su_gid: Optional[int] = None, check_dirs: bool = True) -> None:
        policy.validate()
        # Before any log is touched: an account owning a directory above could link the state file's directory to
        # a directory of root's, where root would then create and replace the state file.
        safeio.check_parents(os.path.dirname(os.path.abspath(state_file)), 'write the rotation state into',
                             'The directory of state_file')
        self.paths = paths
        self.policy = policy
        self.state_file = state_file
        self.signal = signal or 'HUP'
        self.pidfile = pidfile
        self.postrotate = postrotate
        self.threads = threads if threads > 0 else default_threads()
        self.now = now or utcnow()
        self.su_uid = su_uid
        self.su_gid = su_gid
        self.check_dirs = check_dirs
        self._dirs: Dict[str, LogDir] = {}
        self._idents: Dict[str, safefs.Ident] = {}
        self._names: Dict[str, Tuple[List[str], List[str]]] = {}   # log: (names before, names after)
        if signal:
            signalling.signal_number(signal)
        self.result: Dict[str, Any] = {
            'changed': False, 'rotated': [], 'compressed': [], 'deleted': [], 'not_rotated': [], 'held_open': [],
            'missing': [], 'signalled': [], 'postrotate': None, 'plan': [], 'warnings': [], 'state_written': False,
            'diff': {'before': '', 'after': ''},
        }

    def _as_user(self) -> Any:
        return acting_as(self.su_uid, self.su_gid)

    def _discover(self) -> List[str]:
        dated = None
        if self.policy.dateext:
            dated = re.compile(dated_pattern(self.policy.dateformat).pattern + r'(\.zst|\.gz)?$')
        logs, missing = discover(self.paths, self.policy.missingok, dated)
        self.result['missing'] = missing
        return logs

    def _open_dirs(self, logs: List[str]) -> None:
        insecure: List[str] = []
        for log in logs:
            directory = os.path.dirname(log)
            if directory in self._dirs:
                continue
            d = LogDir.open(directory)
            self._dirs[directory] = d
            if self.check_dirs and self.su_uid is None and os.geteuid() == 0:
                why = safefs.insecure_reason(d.fd, directory)
                if why:
                    insecure.append(why)
        if insecure:
            raise OpsReadyError(
                'Refusing to rotate as root: %s. Whoever can write there could make root truncate, overwrite or '
                'disclose any file (logrotate refuses the same: "parent directory has insecure permissions"). '
                'Nothing was rotated. Set su (user and group to act as, usually the owner of the directory) so the '
                'files are rotated with that user\'s rights only, or make the directory and every directory above '
                'it owned by root and not writable by others.' % '; '.join(insecure), insecure=insecure)

    def _plans(self, logs: List[str], state: StateFile) -> List[LogPlan]:
        plans: List[LogPlan] = []
        p = self.policy
        for log in logs:
            d = self._dirs[os.path.dirname(log)]
            base = os.path.basename(log)
            st = d.lstat_or_none(base)
            if st is None or not stat.S_ISREG(st.st_mode):
                gone = 'it vanished' if st is None else 'it is no longer a regular file (a symlink or special file)'
                self.result['not_rotated'].append({'log': log, 'reason': gone})
                self.result['warnings'].append('%s not rotated: %s since it was found.' % (log, gone))
                continue
            self._idents[log] = safefs.ident(st)
            size = st.st_size
            due, reason, first_seen = decide(size, state.last_rotated(log), self.now, size_limit=p.size,
                                             minsize=p.minsize, interval=p.interval, force=p.force,
                                             notifempty=p.notifempty)
            if first_seen:
                state.record(log, self.now)
            if not due:
                self.result['not_rotated'].append({'log': log, 'reason': reason})
                continue
            names_here = d.listdir()
            plan, why = plan_log(log, size, reason, p, self.now, names=names_here, lstat=d.lstat)
            if plan is None:
                self.result['not_rotated'].append({'log': log, 'reason': why})
                self.result['warnings'].append('%s not rotated: %s.' % (log, why))
                continue
            for stem in plan.kept_plain:
                self.result['warnings'].append(
                    '%s will be left uncompressed: %s already exists and holds another copy, which compressing '
                    'would replace; look at both and remove the one not needed.' % (stem, stem + p.suffix))
            plans.append(plan)
            existing, leftovers = list_rotated(log, p, names_here, d.lstat)
            names = [log] + [r.path for r in existing] + leftovers
            self._names[log] = (sorted(names), _after_names(plan, p, names))
        self._show(plans)
        return plans

    def _show(self, plans: List[LogPlan]) -> None:
        """``plan`` and ``diff`` of the result: the rotations that will be made (check mode shows the same)."""
        before = [name for plan in plans for name in self._names[plan.log][0]]
        after = [name for plan in plans for name in self._names[plan.log][1]]
        self.result['plan'] = [plan.as_dict() for plan in plans]
        self.result['diff'] = {'before': '\n'.join(before) + ('\n' if before else ''),
                               'after': '\n'.join(after) + ('\n' if after else '')}

    def _ids(self, paths: List[str]) -> Dict[safefs.Ident, str]:
        """(device, inode) of each path, taken relative to its directory descriptor (never followed)."""
        ids: Dict[safefs.Ident, str] = {}
        for path in paths:
            st = self._dirs[os.path.dirname(path)].lstat_or_none(os.path.basename(path))
            if st is not None and stat.S_ISREG(st.st_mode):
                ids[safefs.ident(st)] = path
        return ids

    def _preflight(self, plans: List[LogPlan]) -> List[LogPlan]:
        doomed = [path for plan in plans for path in plan.delete]
        with self._as_user():
            unwritable = sorted({plan.log.rsplit('/', 1)[0] or '/' for plan in plans
                                 if not _dir_writable(self._dirs[os.path.dirname(plan.log)])})
            ids = self._ids(doomed)
        if unwritable:
            who = 'this user (uid %d)' % os.geteuid() if self.su_uid is None else 'the su user (uid %d)' % self.su_uid
            raise OpsReadyError('Cannot rotate: directory %s is not writable by %s. Nothing was rotated; run with '
                                'become: true, set su to the directory\'s owner, or fix the directory permissions.'
                                % (', '.join(unwritable), who), unwritable=unwritable)
        too_long = [why for why in (self._name_too_long(plan) for plan in plans) if why]
        if too_long:
            raise OpsReadyError('Cannot rotate: %s. Nothing was rotated; give the log a shorter name (or a shorter '
                                'dateformat).' % '; '.join(too_long))
        held = signalling.writers_holding(doomed, ids) if doomed else {}
        ready = []
        for plan in plans:
            blocking = {path: pids for path, pids in held.items() if path in plan.delete}
            if blocking:
                for path, pids in blocking.items():
                    self.result['held_open'].append({'path': path, 'pids': pids})
                why = ('old copies %s are still open for writing by pid %s: the writer never reopened its log '
                       '(configure signal/pidfile or postrotate); nothing of this log was deleted or rotated'
                       % (', '.join(sorted(blocking)), ', '.join(str(p) for v in blocking.values() for p in v)))
                self.result['not_rotated'].append({'log': plan.log, 'reason': why})
                self.result['warnings'].append('%s: %s.' % (plan.log, why))
                continue
            ready.append(plan)
        return ready

    def _name_too_long(self, plan: LogPlan) -> Optional[str]:
        """Why a name this rotation of ``plan`` makes in the log's directory is longer than its file system takes
        (NAME_MAX, 255 bytes on ext4/xfs); None when each fits. The rotation failed midway with "File name too long"
        naming a temporary file the operator never heard of, or rotated and then could not compress."""
        d = self._dirs[os.path.dirname(plan.log)]
        try:
            limit = os.fpathconf(d.fd, 'PC_NAME_MAX')
        except (OSError, ValueError):
            limit = 255
        base = os.path.basename(plan.log)
        # the new log's or the copy's temporary name (``LogDir.create_temp``: .<base>.<12 hex digits>.new), and the
        # name a copy to delete is set aside under (.doomed) while the rotation can still be undone
        temp = '.%s.%s%s' % (base, '0' * 12, '.new' if self.policy.mode == 'create' else '.copy')
        names = [temp, os.path.basename(plan.rotated_to)]
        if plan.delete:
            names.append('.%s.%s.doomed' % (base, '0' * 12))
        names += [os.path.basename(new) for _old, new in plan.shifts]
        names += [os.path.basename(path) + self.policy.suffix + PARTIAL_SUFFIX for path in plan.compress]
        longest = max(names, key=lambda n: len(os.fsencode(n)))
        size = len(os.fsencode(longest))
        if size <= limit:
            return None
        return ('%s would need the name %s (%d bytes) in %s, longer than the %d bytes its file system takes'
                % (plan.log, longest, size, d.path, limit))

    def _rotate_one(self, plan: LogPlan) -> None:
        d = self._dirs[os.path.dirname(plan.log)]
        with self._as_user():
            size, deleted = rotate_one(d, plan, self.policy, expect=self._idents.get(plan.log))
        self.result['deleted'].extend(deleted)
        self.result['rotated'].append({'log': plan.log, 'rotated_to': plan.rotated_to, 'size': size,
                                       'reason': plan.reason, 'mode': self.policy.mode})

    def _notify(self, pid: Optional[int]) -> bool:
        if not self.result['rotated']:
            return False
        notified = False
        if pid is not None:
            signalling.send_signal(pid, self.signal)
            self.result['signalled'].append(pid)
            notified = True
        if self.postrotate:
            self.result['postrotate'] = signalling.run_postrotate(self.postrotate)
            notified = True
        return notified

    def _compress_one(self, path: str) -> Tuple[str, Any]:
        p = self.policy
        d = self._dirs[os.path.dirname(path)]
        name = os.path.basename(path)
        try:
            return 'ok', compress_mod.compress_file(path, p.compression, p.compression_level, threads=1, logdir=d)
        except OpsReadyError as exc:
            return 'warn', exc.message
        except OSError as exc:
            target = name + p.suffix
            return 'error', 'Compressing %s failed: %s (%s); %s.' % (
                path, exc.strerror or exc, d.shown(exc.filename) or path,
                d.describe([name, target, target + '.partial']))

    def _finish(self, plans: List[LogPlan], notified: bool) -> List[str]:
        errors: List[str] = []
        rotated = {entry['log'] for entry in self.result['rotated']}
        plans = [plan for plan in plans if plan.log in rotated]
        to_compress = [path for plan in plans for path in plan.compress]
        to_delete = [path for plan in plans for path in plan.delete_after]
        rotated_from = {path: plan.log for plan in plans for path in plan.delete_after}
        watched = to_compress + to_delete
        if not watched:
            return errors
        timeout = self.policy.reopen_timeout if notified and self.policy.mode == 'create' else 0.0
        with self._as_user():
            ids = self._ids(watched)
        held = signalling.wait_released(watched, timeout, ids=ids)
        for path, pids in sorted(held.items()):
            self.result['held_open'].append({'path': path, 'pids': pids})
            self.result['warnings'].append(
                '%s is still open for writing by pid %s%s: it was left as it is (not compressed or deleted) so '
                'nothing is lost; configure signal/pidfile or postrotate so the writer reopens its log.'
                % (path, ', '.join(str(p) for p in pids),
                   ' %.1fs after it was told to reopen' % timeout if notified else ''))
        with self._as_user():
            for path in to_delete:
                if path in held:
                    continue
                d = self._dirs[os.path.dirname(path)]
                try:
                    if d.unlink(os.path.basename(path)):
                        self.result['deleted'].append(path)
                except OSError as exc:
                    # the log was rotated: say so with the rest of the result, naming the copy by its path (the
                    # bare OSError named it relative to nothing, and the result of the run was lost)
                    errors.append('%s was rotated but deleting its copy %s (rotate=0) failed: %s; it was left as it '
                                  'is: look at what is there now and remove it by hand.'
                                  % (rotated_from[path], path, exc.strerror or exc))
            # Anything still under the name is handed to compress_file, which refuses (with a warning naming
            # it) what is not the regular file it should be: a symlink, a FIFO or a device swapped in.
            jobs = [path for path in to_compress if path not in held
                    and self._dirs[os.path.dirname(path)].lstat_or_none(os.path.basename(path)) is not None]
            if not jobs:
                return errors
            workers = min(self.threads, len(jobs))
            if workers > 1:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    outcomes = list(pool.map(self._compress_one, jobs))
            else:
                outcomes = [self._compress_one(path) for path in jobs]
        for status, value in outcomes:
            if status == 'ok':
                if value.get('note'):
                    self.result['warnings'].append(value.pop('note') + '.')
                self.result['compressed'].append(value)
            elif status == 'warn':
                self.result['warnings'].append(value)
            else:
                errors.append(value)
        return errors

    def run(self, check_mode: bool = False) -> Dict[str, Any]:
        try:
            with self._locked(check_mode):
                return self._run(check_mode)
        finally:
            for d in self._dirs.values():
                d.close()
            self._dirs.clear()

    def _locked(self, check_mode: bool) -> Any:
        """One run at a time per state file, as logrotate locks its state file: two runs on one log at once (a
        timer's and an operator's) each copied it before either truncated it (copytruncate: every line twice), and
        the later state written lost the other's. The next run waits (bounded) and then plans on what it finds.
        Check mode changes nothing on disk: it waits for a running rotation only where its lock file exists."""
        if not check_mode:
            try:
                safeio.makedirs(os.path.dirname(os.path.abspath(self.state_file)), 0o755)
            except OSError as exc:
                raise OpsReadyError('Cannot write state file %s (%s): make its directory writable or set state_file. '
                                    'Nothing was rotated.' % (self.state_file, exc.strerror or exc))
        return locks.waiting(self.state_file + LOCK_SUFFIX, 'log rotation state file %s' % self.state_file,
                             create=not check_mode)

    def _run(self, check_mode: bool) -> Dict[str, Any]:
        state = StateFile(self.state_file)
        pid = signalling.read_pidfile(self.pidfile) if self.pidfile else None
        with self._as_user():
            logs = self._discover()
            self._open_dirs(logs)
        # Each log's own lock (root's, not the su user's), before it is planned on: the state file's lock keeps out
        # the runs of that state file only, and a run with another state file that planned on the log before this
        # one rotated it failed midway (the log replaced, or its rotated name taken, since it was looked at).
        with log_locks(self._dirs, logs, check_mode):
            return self._run_locked(check_mode, state, pid, logs)

    def _run_locked(self, check_mode: bool, state: StateFile, pid: Optional[int], logs: List[str]) -> Dict[str, Any]:
        with self._as_user():
            plans = self._plans(logs, state)
        # The pre-flight only looks (directory access, /proc): check mode makes it too, so that it plans,
        # reports and diffs what the real run does, not a rotation the real run then refuses.
        if plans:
            plans = self._preflight(plans)
            self._show(plans)
        if check_mode:
            # what the real run reports, as far as it is known before anything is done (a rotated copy's size is
            # the log's size now; compressed sizes are not known: the plan lists what would be compressed)
            self.result['rotated'] = [{'log': plan.log, 'rotated_to': plan.rotated_to, 'size': plan.size,
                                       'reason': plan.reason, 'mode': self.policy.mode} for plan in plans]
            self.result['deleted'] = ([path for plan in plans for path in plan.delete]
                                      + [path for plan in plans for path in plan.delete_after])
            self.result['changed'] = bool(plans) or state.dirty
            return self.result
        errors: List[str] = []
        for plan in plans:
            try:
                self._rotate_one(plan)
                state.record(plan.log, self.now)
            except OpsReadyError as exc:
                errors.append(exc.message)
            except OSError as exc:
                # named by its path: the error carries a name relative to the log's directory or a /proc/self/fd path
                logdir = self._dirs.get(os.path.dirname(plan.log))
                shown = logdir.shown(exc.filename) if logdir is not None and exc.filename else exc.filename or plan.log
                errors.append('Rotating %s failed: %s (%s); nothing of it was changed: the log and its copies are as '
                              'they were.' % (plan.log, exc.strerror or exc, shown))
        self.result['state_written'] = state.save()
        try:
            notified = self._notify(pid)
        except OpsReadyError as exc:
            errors.append('%s The rotated copies were kept uncompressed.' % exc.message)
            notified = False
            plans = []
        errors.extend(self._finish(plans, notified))
        self.result['changed'] = bool(self.result['rotated'] or self.result['deleted'] or self.result['compressed']
                                      or self.result['state_written'])
        if errors:
            raise OpsReadyError(' '.join(errors), **{k: v for k, v in self.result.items() if k != 'diff'})
        return self.result
