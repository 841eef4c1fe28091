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

import datetime
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import default_threads
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import utcnow
from ansible_collections.opsready.operations.plugins.module_utils.logrotate import compress as compress_mod
from ansible_collections.opsready.operations.plugins.module_utils.logrotate import signalling
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import (
    LogPlan, Policy, dated_pattern, list_rotated, plan_log)
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.targets import discover
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.triggers import StateFile, decide

CHUNK = 1024 * 1024


def _link_no_replace(src: str, dst: str) -> None:
    """rename() that refuses to overwrite: link then unlink (same directory, same filesystem)."""
    os.link(src, dst)
    os.unlink(src)


def _new_file(log: str, policy: Policy, st: os.stat_result) -> str:
    directory, base = os.path.split(log)
    mode = policy.create_mode if policy.create_mode is not None else st.st_mode & 0o7777
    uid = policy.create_uid if policy.create_uid is not None else st.st_uid
    gid = policy.create_gid if policy.create_gid is not None else st.st_gid
    fd, tmp = tempfile.mkstemp(prefix='.' + base + '.', suffix='.new', dir=directory)
    try:
        if (uid, gid) != (os.getuid(), os.getgid()):
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def rotate_create(log: str, rotated_to: str, policy: Policy) -> int:
    """Link ``log`` to ``rotated_to`` and atomically replace ``log`` with a new empty file."""
    st = os.stat(log)
    tmp = _new_file(log, policy, st)
    try:
        os.link(log, rotated_to)
    except BaseException:
        os.unlink(tmp)
        raise
    try:
        os.rename(tmp, log)
    except BaseException:
        os.unlink(rotated_to)
        os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(log))
    return st.st_size


def _catch_up_to_line_end(src: int, dst: int) -> int:
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
            os.write(dst, data)
            copied += len(data)
            last = data[-1:]
            continue
        if last == b'\n' or retries == 0:
            return copied
        retries -= 1
        time.sleep(0.0005)


def rotate_copytruncate(log: str, rotated_to: str, policy: Policy) -> int:
    """Copy ``log`` to ``rotated_to`` (fsynced), catch up to its end, then truncate it in place."""
    if os.path.lexists(rotated_to):
        raise FileExistsError(17, 'File exists', rotated_to)
    directory, base = os.path.split(log)
    src = os.open(log, os.O_RDWR)
    try:
        st = os.fstat(src)
        fd, tmp = tempfile.mkstemp(prefix='.' + base + '.', suffix='.copy', dir=directory)
        try:
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
            except PermissionError:
                pass
            os.fchmod(fd, st.st_mode & 0o7777)
            copied = 0
            while True:
                data = os.read(src, CHUNK)
                if not data:
                    break
                os.write(fd, data)
                copied += len(data)
            os.fsync(fd)
            # Catch up with what was appended during the copy and fsync, then truncate at once:
            # only lines written between this last read and ftruncate are lost.
            copied += _catch_up_to_line_end(src, fd)
            os.ftruncate(src, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
    finally:
        os.close(src)
    try:
        _link_no_replace(tmp, rotated_to)
    except OSError as exc:
        raise OpsReadyError('%s was copied and truncated but its copy could not be named %s (%s): the lines are in '
                            '%s, move them by hand.' % (log, rotated_to, exc.strerror or exc, tmp), path=tmp)
    fsync_dir(directory)
    return copied


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


def _dir_writable(directory: str) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)


class Rotation:
    """One invocation of a policy over its targets."""

    def __init__(self, paths: List[str], policy: Policy, state_file: str, signal: Optional[str] = None,
                 pidfile: Optional[str] = None, postrotate: Optional[str] = None, threads: int = 0,
                 now: Optional[datetime.datetime] = None) -> None:
        policy.validate()
        self.paths = paths
        self.policy = policy
        self.state_file = state_file
        self.signal = signal or 'HUP'
        self.pidfile = pidfile
        self.postrotate = postrotate
        self.threads = threads if threads > 0 else default_threads()
        self.now = now or utcnow()
        if signal:
            signalling.signal_number(signal)
        self.result: Dict[str, Any] = {
            'changed': False, 'rotated': [], 'compressed': [], 'deleted': [], 'not_rotated': [], 'held_open': [],
            'missing': [], 'signalled': [], 'postrotate': None, 'plan': [], 'warnings': [], 'state_written': False,
            'diff': {'before': '', 'after': ''},
        }

    def _discover(self) -> List[str]:
        dated = None
        if self.policy.dateext:
            dated = re.compile(dated_pattern(self.policy.dateformat).pattern + r'(\.zst|\.gz)?$')
        logs, missing = discover(self.paths, self.policy.missingok, dated)
        self.result['missing'] = missing
        return logs

    def _plans(self, logs: List[str], state: StateFile) -> List[LogPlan]:
        plans: List[LogPlan] = []
        before: List[str] = []
        after: List[str] = []
        p = self.policy
        for log in logs:
            size = os.stat(log).st_size
            due, reason, first_seen = decide(size, state.last_rotated(log), self.now, size_limit=p.size,
                                             minsize=p.minsize, interval=p.interval, force=p.force,
                                             notifempty=p.notifempty)
            if first_seen:
                state.record(log, self.now)
            if not due:
                self.result['not_rotated'].append({'log': log, 'reason': reason})
                continue
            plan, why = plan_log(log, size, reason, p, self.now)
            if plan is None:
                self.result['not_rotated'].append({'log': log, 'reason': why})
                self.result['warnings'].append('%s not rotated: %s.' % (log, why))
                continue
            plans.append(plan)
            existing, leftovers = list_rotated(log, p)
            names = [log] + [r.path for r in existing] + leftovers
            before.extend(sorted(names))
            after.extend(_after_names(plan, p, names))
        self.result['plan'] = [plan.as_dict() for plan in plans]
        self.result['diff'] = {'before': '\n'.join(before) + ('\n' if before else ''),
                               'after': '\n'.join(after) + ('\n' if after else '')}
        return plans

    def _preflight(self, plans: List[LogPlan]) -> List[LogPlan]:
        directories = {os.path.dirname(plan.log) for plan in plans}
        unwritable = sorted(d for d in directories if not _dir_writable(d))
        if unwritable:
            raise OpsReadyError('Cannot rotate: directory %s is not writable by this user (uid %d). Nothing was '
                                'rotated; run with become: true or fix the directory permissions.'
                                % (', '.join(unwritable), os.getuid()), unwritable=unwritable)
        doomed = [path for plan in plans for path in plan.delete]
        held = signalling.writers_holding(doomed) if doomed else {}
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

    def _rotate_one(self, plan: LogPlan) -> None:
        for path in plan.leftovers + plan.delete:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            if path in plan.delete:
                self.result['deleted'].append(path)
        for src, dst in plan.shifts:
            _link_no_replace(src, dst)
        if self.policy.mode == 'create':
            size = rotate_create(plan.log, plan.rotated_to, self.policy)
        else:
            size = rotate_copytruncate(plan.log, plan.rotated_to, self.policy)
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

    def _finish(self, plans: List[LogPlan], notified: bool) -> List[str]:
        errors: List[str] = []
        rotated = {entry['log'] for entry in self.result['rotated']}
        plans = [plan for plan in plans if plan.log in rotated]
        to_compress = [path for plan in plans for path in plan.compress]
        to_delete = [path for plan in plans for path in plan.delete_after]
        watched = to_compress + to_delete
        if not watched:
            return errors
        timeout = self.policy.reopen_timeout if notified and self.policy.mode == 'create' else 0.0
        held = signalling.wait_released(watched, timeout)
        for path, pids in sorted(held.items()):
            self.result['held_open'].append({'path': path, 'pids': pids})
            self.result['warnings'].append(
                '%s is still open for writing by pid %s%s: it was left as it is (not compressed or deleted) so '
                'nothing is lost; configure signal/pidfile or postrotate so the writer reopens its log.'
                % (path, ', '.join(str(p) for p in pids),
                   ' %.1fs after it was told to reopen' % timeout if notified else ''))
        for path in to_delete:
            if path not in held:
                os.unlink(path)
                self.result['deleted'].append(path)
        jobs = [path for path in to_compress if path not in held and os.path.exists(path)]
        if not jobs:
            return errors
        p = self.policy

        def one(path: str) -> Tuple[str, Any]:
            try:
                return 'ok', compress_mod.compress_file(path, p.compression, p.compression_level, threads=1)
            except OpsReadyError as exc:
                return 'warn', exc.message
            except OSError as exc:
                return 'error', 'Compressing %s failed: %s; the plain copy was kept.' % (path, exc.strerror or exc)

        workers = min(self.threads, len(jobs))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(one, jobs))
        else:
            outcomes = [one(path) for path in jobs]
        for status, value in outcomes:
            if status == 'ok':
                self.result['compressed'].append(value)
            elif status == 'warn':
                self.result['warnings'].append(value)
            else:
                errors.append(value)
        return errors

    def run(self, check_mode: bool = False) -> Dict[str, Any]:
        logs = self._discover()
        state = StateFile(self.state_file)
        pid = signalling.read_pidfile(self.pidfile) if self.pidfile else None
        plans = self._plans(logs, state)
        if check_mode:
            self.result['changed'] = bool(plans) or state.dirty
            return self.result
        plans = self._preflight(plans) if plans else plans
        errors: List[str] = []
        for plan in plans:
            try:
                self._rotate_one(plan)
                state.record(plan.log, self.now)
            except OSError as exc:
                errors.append('Rotating %s failed: %s (%s); the log was left in place, not renamed.'
                              % (plan.log, exc.strerror or exc, getattr(exc, 'filename', '') or plan.log))
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
