# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Telling writers to reopen their log, and proving they did.

- ``read_pidfile`` / ``send_signal``: the pid file must name a live process before anything is
  renamed, so a dead service is an error and not a silent "rotated but nobody reopened".
- ``run_postrotate``: a shell command run once per invocation (logrotate's ``sharedscripts``).
- ``writers_holding``: one scan of /proc/*/fd for processes that hold given files open *for
  writing*; compressing or deleting such a file would lose what they write next.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import signal as signal_mod
import time
from typing import Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner

PROC = '/proc'


def signal_number(name: str) -> int:
    text = str(name).strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith('SIG'):
        text = 'SIG' + text
    try:
        return int(getattr(signal_mod.Signals, text))
    except AttributeError:
        raise OpsReadyError('signal %r is not a signal name (use HUP, USR1, USR2, ...).' % name)


def read_pidfile(path: str) -> int:
    """The live pid named by ``path``; an error (before any rotation) if missing, malformed or dead."""
    try:
        with open(path, encoding='ascii', errors='replace') as handle:
            text = handle.read().strip().split()
    except FileNotFoundError:
        raise OpsReadyError('pid file %s does not exist: is the service running? Nothing was rotated.' % path)
    except OSError as exc:
        raise OpsReadyError('Cannot read pid file %s (%s). Nothing was rotated.' % (path, exc.strerror or exc))
    if not text or not text[0].isdigit() or int(text[0]) <= 0:
        raise OpsReadyError('pid file %s does not hold a process id. Nothing was rotated.' % path)
    pid = int(text[0])
    if not process_alive(pid):
        raise OpsReadyError('pid file %s names pid %d but no such process runs (stale pid file: is the service '
                            'down?). Nothing was rotated; start the service or fix the pid file.' % (path, pid),
                            pid=pid)
    return pid


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('%s/%d/stat' % (PROC, pid)) as handle:
            # A zombie has exited; it will never reopen anything.
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return True


def send_signal(pid: int, signame: str) -> None:
    try:
        os.kill(pid, signal_number(signame))
    except ProcessLookupError:
        raise OpsReadyError('Process %d exited before it could be signalled to reopen its log.' % pid, pid=pid)
    except PermissionError:
        raise OpsReadyError('Not allowed to signal process %d: run as its owner or root (become: true).' % pid,
                            pid=pid)


def run_postrotate(command: str, timeout: float = 300) -> Dict[str, object]:
    rc, out, err = ToolRunner().run(['/bin/sh', '-c', command], timeout=timeout, check=True, what='postrotate')
    return {'rc': rc, 'stdout': out[-2000:], 'stderr': err[-2000:]}


def _file_ids(paths: Iterable[str]) -> Dict[Tuple[int, int], str]:
    ids: Dict[Tuple[int, int], str] = {}
    for path in paths:
        try:
            # lstat: a name swapped for a symlink is not the rotated copy (and is never followed)
            st = os.lstat(path)
        except OSError:
            continue
        ids[(st.st_dev, st.st_ino)] = path
    return ids


def _writable_fd(pid: str, fd: str) -> bool:
    try:
        with open('%s/%s/fdinfo/%s' % (PROC, pid, fd)) as handle:
            for line in handle:
                if line.startswith('flags:'):
                    return int(line.split()[1], 8) & 0o3 != 0
    except (OSError, ValueError, IndexError):
        pass
    return True  # cannot tell: assume it writes (the safe side)


def _open_fds() -> Iterator[Tuple[int, str, str]]:
    """(pid, fd, /proc/<pid>/fd/<fd>) for every open descriptor this process may look at.

    Processes come and go while /proc is walked; one that vanished is skipped, not an error.
    """
    try:
        pids = [p for p in os.listdir(PROC) if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        fd_dir = '%s/%s/fd' % (PROC, pid)
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            yield int(pid), fd, '%s/%s' % (fd_dir, fd)


def writers_holding(paths: Iterable[str],
                    ids: Optional[Dict[Tuple[int, int], str]] = None) -> Dict[str, List[int]]:
    """{path: [pids]} for files in ``paths`` that some process holds open for writing.

    ``ids`` ({(device, inode): path}) names the files by what was opened instead of by path (the
    rotation takes them relative to its directory descriptors); ``paths`` then only filters it.
    """
    if ids is None:
        ids = _file_ids(paths)
    else:
        wanted = set(paths)
        ids = {key: path for key, path in ids.items() if path in wanted}
    held: Dict[str, List[int]] = {}
    if not ids:
        return held
    me = os.getpid()
    for pid, fd, fd_path in _open_fds():
        if pid == me:
            continue
        try:
            st = os.stat(fd_path)
        except OSError:
            continue
        path = ids.get((st.st_dev, st.st_ino))
        if path is not None and _writable_fd(str(pid), fd):
            pids_for = held.setdefault(path, [])
            if pid not in pids_for:
                pids_for.append(pid)
    return held


def wait_released(paths: List[str], timeout: float, poll: float = 0.02,
                  ids: Optional[Dict[Tuple[int, int], str]] = None) -> Dict[str, List[int]]:
    """Poll until no writer holds any of ``paths`` or ``timeout`` passes; returns what is still held."""
    deadline = time.monotonic() + timeout
    pending: Set[str] = set(paths)
    while True:
        held = writers_holding(sorted(pending), ids)
        if not held or time.monotonic() >= deadline:
            return held
        pending = set(held)
        time.sleep(poll)
        poll = min(poll * 2, 0.5)


def deleted_but_open(directory: str) -> List[Dict[str, object]]:
    """Processes holding a deleted file under ``directory`` open (disk space not freed)."""
    found: List[Dict[str, object]] = []
    prefix = os.path.abspath(directory).rstrip('/') + '/'
    for pid, fd, fd_path in _open_fds():
        try:
            target: Optional[str] = os.readlink(fd_path)
        except OSError:
            continue
        if target and target.startswith(prefix) and target.endswith(' (deleted)'):
            found.append({'pid': pid, 'fd': int(fd), 'path': target[:-len(' (deleted)')]})
    return found
