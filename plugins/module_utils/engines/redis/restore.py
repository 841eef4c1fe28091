# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a Redis RDB artifact: to a file (the ``dbfilename`` of a stopped server) or to a scratch instance.

A live Redis cannot take an RDB in place: the operator stops the server, puts the file where its ``dir`` and
``dbfilename`` say (``restore_file``) and starts it. Proving an artifact restores does not need that server:
``scratch_instance`` starts a throw-away redis-server on 127.0.0.1 on a free port, its config (with a random
``requirepass``) in a 0600 file of a private directory holding the RDB as its ``dbfilename``, persistence off,
waits until the load finished, and always stops it and removes the directory. The RDB in it is the artifact
decrypted and decompressed (0600, in the 0700 directory): a removal that fails is never passed over
(``remove_scratch``): it is retried while the error may pass, and what is left is reported with its path and the
reason (``cleaned_up: false``), so the drill's clean-up step fails instead of claiming a directory it left.
The directory is a common/scratch.py one (``opsready-scratch-redis-*``, its owner file locked while the drill
runs): a drill killed with SIGKILL (no ``finally`` runs) leaves it, and the next drill with the same parent
removes it (``sweep_scratch``) once the lock proves the killed run gone.

Key counts: redis-check-rdb counted the snapshot's keys at backup time. A server drops the keys whose TTL ran
out by the time it loads them, so a snapshot with ``expires`` keys may restore up to that many fewer; a
snapshot without expiring keys restores exactly its count.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess  # nosec B404 # argv lists only
import time
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch, sweep
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    RedisClient, RedisConnection, RedisError, keyspace_keys)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import dest as dest_checks


def free_port(host: str = '127.0.0.1') -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def restore_file(manifest: Manifest, dest: str, identities: Sequence[Any] = (), mode: int = 0o600,
                 dir_fd: Optional[int] = None) -> int:
    """Write the artifact's RDB to ``dest`` (via ``dest.partial``, fsync, rename); returns its size.

    The directory is often the redis account's, this run root's. It is opened once, component by component without
    following a link another account could have planted (``safeio.open_directory``), and everything after goes
    relative to that descriptor: an account owning a directory above could otherwise swap ``dest``'s directory for
    a link to a directory of root's, and the partial file would be made, and renamed over a file of the same name,
    there. ``dir_fd``: that descriptor, already held by the caller (``dest.held_directory``, whose checks looked
    at this very directory)."""
    if dir_fd is None:
        with dest_checks.held_directory(dest) as held:
            return restore_file(manifest, dest, identities, mode, held)
    name = os.path.basename(dest)
    partial = name + '.partial'
    size = 0
    # A leftover (or a symlink planted) at the partial name is removed, never written through, and the new file
    # is created exclusively.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial, dir_fd=dir_fd)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                     dir_fd=dir_fd)
        with os.fdopen(fd, 'wb') as out, open_artifact(manifest, identities) as source:
            while True:
                chunk = source.read(1024 * 1024)
                if not chunk:
                    break
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.rename(partial, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial, dir_fd=dir_fd)
        raise
    return size


class ScratchRedis:
    """A running scratch redis-server; ``client`` talks to it."""

    def __init__(self, directory: str, port: int, password: str, proc: subprocess.Popen, runner: ToolRunner) -> None:
        self.directory = directory
        self.port = port
        self.proc = proc
        self.client = RedisClient(RedisConnection(host='127.0.0.1', port=port, password=password), runner)

    def keys(self) -> int:
        return keyspace_keys(self.client.info('keyspace'))

    def log(self) -> str:
        try:
            with open(os.path.join(self.directory, 'redis.log'), encoding='utf-8', errors='replace') as handle:
                return ' | '.join(line.strip() for line in handle.read().splitlines()[-5:])
        except OSError:
            return ''


SCRATCH_KIND = 'redis'
PR_SET_PDEATHSIG = 1


def die_with_parent() -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the process that started it dies (Linux
    ``prctl(PR_SET_PDEATHSIG)``): a drill killed with SIGKILL runs no ``finally``, and its scratch redis-server,
    the RDB loaded and listening, would otherwise live on, reparented to init, after the next drill swept its
    directory. None where prctl is not to be had (the server is still stopped on every other path)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)   # loaded here, not in the child between fork and exec
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:   # it died before the request took effect
            os._exit(1)
    return preexec


def sweep_scratch(workdir: Optional[str] = None) -> Dict[str, Any]:
    """Remove the drill scratch directories in ``workdir`` (default the system's temp dir) that killed drills
    left: ``{'removed_scratch': [paths], 'warnings': [...]}`` (common/scratch.py proves each run gone)."""
    return sweep(workdir, [SCRATCH_KIND])


def remove_scratch(made: Scratch) -> Dict[str, Any]:
    """``Scratch.remove`` of the scratch directory, with ``error``: one sentence saying what is left and what to
    do."""
    outcome = dict(made.remove())
    if not outcome['cleaned_up']:
        rdb = (' It still holds dump.rdb, the decrypted and decompressed RDB (0600).'
               if 'dump.rdb' in outcome['left'] else '')
        outcome['error'] = ('the scratch directory %s was not removed (%s).%s Remove it by hand (lsattr shows an '
                            'immutable or append-only flag; chattr -i / -a clears it).'
                            % (made.path, outcome['reason'], rdb))
    return outcome


def conf_string(value: str) -> str:
    """``value`` as one double-quoted argument of redis.conf (sdssplitargs): every byte outside printable ASCII,
    and the quote and backslash, as ``\\xHH``. scratch_dir is the operator's path and may hold any byte but NUL: a
    '"' or a line break in it ended the value, and what followed was read as directives of a server run as root."""
    return '"' + ''.join(chr(b) if 0x20 <= b < 0x7f and b not in (0x22, 0x5c) else '\\x%02x' % b
                         for b in os.fsencode(value)) + '"'


@contextlib.contextmanager
def scratch_instance(manifest: Manifest, identities: Sequence[Any] = (), port: Optional[int] = None,
                     workdir: Optional[str] = None, timeout: float = 300,
                     runner: Optional[ToolRunner] = None,
                     cleanup: Optional[Dict[str, Any]] = None) -> Iterator[ScratchRedis]:
    """The artifact loaded into a throw-away redis-server (stopped and removed on exit). ``cleanup`` (a dict)
    receives ``remove_scratch``'s outcome; without one, a directory left behind raises (unless the block is
    already raising: that failure is the one told)."""
    runner = runner or ToolRunner()
    server = runner.which('redis-server', 'Install the redis-server package on the drill host.')
    # 0700, its owner file locked (common/scratch.py); a workdir another account could rename it in is refused
    # (its link would be followed).
    made = Scratch(SCRATCH_KIND, workdir, 'redis_restore', 'scratch_dir')
    directory = made.path
    proc: Optional[subprocess.Popen] = None
    raising = False
    try:
        restore_file(manifest, os.path.join(directory, 'dump.rdb'), identities)
        port = port or free_port()
        password = secrets.token_urlsafe(24)
        runner.add_secret(password)
        conf = os.path.join(directory, 'redis.conf')
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write('\n'.join([
                'bind 127.0.0.1', 'port %d' % port, 'protected-mode yes', 'daemonize no',
                'dir %s' % conf_string(directory), 'dbfilename dump.rdb',
                'logfile %s' % conf_string(os.path.join(directory, 'redis.log')),
                # Load the RDB, never write it back nor an AOF: the scratch copy stays what the artifact holds.
                'save ""', 'appendonly no', 'requirepass %s' % conf_string(password), 'maxmemory 0', '']))
        proc = subprocess.Popen([server, conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # nosec B603
                                stderr=subprocess.DEVNULL, cwd=directory, preexec_fn=die_with_parent())
        scratch = ScratchRedis(directory, port, password, proc, runner)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise IntegrityError('redis-server did not load %s (exit %s): %s'
                                     % (manifest.path, proc.returncode, scratch.log()), path=manifest.path)
            try:
                if scratch.client.info('persistence').get('loading') == '0':
                    break
            except RedisError:
                pass  # not listening yet, or LOADING
            if time.monotonic() > deadline:
                raise OpsReadyError('The scratch redis-server on port %d did not finish loading %s within %ds: %s'
                                    % (port, manifest.path, timeout, scratch.log()), path=manifest.path)
            time.sleep(0.05)
        yield scratch
    except BaseException:
        raising = True
        raise
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        outcome = remove_scratch(made)
        if cleanup is not None:
            cleanup.update(outcome)
        elif not outcome['cleaned_up'] and not raising:
            raise OpsReadyError(outcome['error'][0].upper() + outcome['error'][1:], path=directory)


def compare_keys(manifest: Manifest, restored: int) -> Dict[str, Any]:
    """The restored key count against the snapshot's (expiring keys may have expired since: see above)."""
    details = manifest.data.get('details') or {}
    snapshot = details.get('keys')
    expires = int(details.get('expires') or 0)
    if snapshot is None:
        # Nothing to compare with: the load itself (redis-server checks the RDB's checksum) is all that was proved.
        warning = ('key count not checked: %s records none (taken before key counts were recorded); take a new '
                   'backup' % manifest.id)
        return {'keys': restored, 'key_check': 'restored %d keys; %s' % (restored, warning), 'warning': warning}
    if restored == snapshot or (snapshot - expires <= restored < snapshot):
        note = '' if restored == snapshot else ' (%d expired since the snapshot)' % (snapshot - restored)
        return {'keys': restored, 'snapshot_keys': snapshot,
                'key_check': 'restored %d keys, the snapshot held %d%s' % (restored, snapshot, note)}
    raise IntegrityError('The restore of %s holds %d keys, the snapshot held %d (%d with a TTL).'
                         % (manifest.path, restored, snapshot, expires), path=manifest.path)
