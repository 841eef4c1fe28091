# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where ``redis_restore target=file`` may write: an existing RDB is a database, and a running server's is not ours.

A redis-server ``chdir``s into its ``dir`` at start (and at ``CONFIG SET dir``), so a running server whose working
directory (``/proc/<pid>/cwd``) is dest's directory - compared by device and inode with the directory held for the
write, whatever path names it - saves its ``dbfilename`` there on every save and at shutdown: an RDB put at that
name while it runs is lost without a word. Its ``dbfilename`` cannot be read from outside (the server rewrites its
process title, its config file may be anywhere), and any name may be it: so the server is asked (``INFO server``
for its pid, ``CONFIG GET dbfilename``) through the connection the task gives (``server``), and without an answer
a file in its directory is written only when the operator says it is not the server's (``allow_running_server``;
never the default ``dump.rdb``). A file the server says is its own is refused whatever the options.

Every look at dest (exists? what is it? holds this snapshot already? writable?) goes through the descriptor of its
directory, opened component by component without following a link another account planted
(``safeio.open_directory``), the one ``restore.restore_file`` then writes into.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    open_artifact, verify_checksums)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    RedisClient, RedisConnection, RedisError, connection_argument_spec, connection_from_params)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.files.safe_read import UnsafeFileError

__all__ = ['connection_argument_spec', 'connection_from_params', 'check_dest', 'held_directory']

SERVER_NAMES = ('redis-server', 'valkey-server')
DEFAULT_DBFILENAME = 'dump.rdb'
CHUNK = 1024 * 1024


@contextlib.contextmanager
def held_directory(dest: str) -> Iterator[int]:
    """A descriptor of dest's directory for the checks and the write (closed on exit)."""
    directory = os.path.dirname(os.path.abspath(dest))
    try:
        dir_fd = safeio.open_directory(directory)
    except UnsafeFileError:
        raise
    except FileNotFoundError:
        raise OpsReadyError('The directory of dest %s does not exist: create it first. Nothing was written.' % dest,
                            dest=dest)
    except OSError as exc:
        raise OpsReadyError('Cannot open the directory %s of dest: %s. Nothing was written.'
                            % (directory, exc.strerror or exc), dest=dest)
    try:
        yield dir_fd
    finally:
        os.close(dir_fd)


def running_servers_at(dir_fd: int, proc: str = '/proc') -> List[Tuple[int, str]]:
    """(pid, name) of each running redis-server (or valkey-server) whose working directory is the directory held by
    ``dir_fd`` (same device and inode: a path through a link, a bind mount or a renamed parent is the same place)."""
    held = os.fstat(dir_fd)
    found = []
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        try:
            with open(os.path.join(proc, pid, 'comm'), encoding='utf-8', errors='replace') as handle:
                name = handle.read().strip()
            if name not in SERVER_NAMES:
                continue
            cwd = os.stat(os.path.join(proc, pid, 'cwd'))
            if (cwd.st_dev, cwd.st_ino) == (held.st_dev, held.st_ino):
                found.append((int(pid), name))
        except OSError:
            continue   # gone, or not ours to look at
    return found


def ask_dbfilename(server: RedisConnection,
                   runner: Optional[ToolRunner] = None) -> Tuple[Optional[int], Optional[str], Optional[str]]:
    """(pid, dbfilename, why not) of the server at ``server``: its ``process_id`` (INFO server) and ``CONFIG GET
    dbfilename``; the third item says why one of them could not be had."""
    client = RedisClient(server, runner)
    try:
        pid = int(client.info('server').get('process_id') or 0) or None
    except (RedisError, ValueError) as exc:
        return None, None, 'asking %s failed: %s' % (server.label(), getattr(exc, 'message', exc))
    name = client.config_get('dbfilename')
    if name is None:
        return pid, None, '%s refused CONFIG GET dbfilename (renamed command or ACL)' % server.label()
    return pid, name, None


def refuse_running_owner(dir_fd: int, dest: str, allow: bool, server: Optional[RedisConnection],
                         runner: Optional[ToolRunner] = None) -> List[str]:
    """Raise ``OpsReadyError`` when a running redis-server in dest's directory saves (or may save) to dest; returns
    the warnings of what was let through."""
    running = running_servers_at(dir_fd)
    if not running:
        return []
    directory, name = os.path.dirname(dest), os.path.basename(dest)
    asked: Dict[int, str] = {}
    why = 'no server connection given (server)'
    if server is not None:
        pid, dbfilename, reason = ask_dbfilename(server, runner)
        if pid is not None and dbfilename is not None:
            asked[pid] = dbfilename
        why = reason or ('the server at %s is pid %s, not one running in %s' % (server.label(), pid, directory))
    warnings = []
    for pid, comm in running:
        if pid in asked:
            if asked[pid] == name:
                raise OpsReadyError('%s (pid %d) runs in %s and its dbfilename is %s: it saves its data to %s on its '
                                    'next save and at shutdown, and the restored file would be overwritten and lost. '
                                    'stop the server first, then restore (or restore under another name and move it '
                                    'in while it is stopped, docs/redis.md). Nothing was written.'
                                    % (comm, pid, directory, name, dest), dest=dest, pid=pid)
            continue   # the server said which file is its own: not this one
        if not allow or name == DEFAULT_DBFILENAME:
            raise OpsReadyError('%s (pid %d) runs in %s and saves its data there, to its dbfilename, on every save and '
                                'at shutdown: %s may be that file, and the restored file would then be overwritten and '
                                'lost. Its dbfilename could not be asked (%s). stop the server first; or give its '
                                'connection in server (host, port, password) so it is asked; or, when %s is not its '
                                'dbfilename%s, set allow_running_server=true. Nothing was written.'
                                % (comm, pid, directory, dest, why, name,
                                   ' (it is the default one, so it is refused unless the server says otherwise)'
                                   if name == DEFAULT_DBFILENAME else ''), dest=dest, pid=pid)
        warnings.append('%s (pid %d) runs in %s: if %s is its dbfilename it overwrites the restored file on its next '
                        'save; stop it before it loads the file (allow_running_server=true)'
                        % (comm, pid, directory, name))
    return warnings


def check_dest(dir_fd: int, dest: str, manifest: Manifest, identities: Sequence[Any] = (), replace: bool = False,
               allow_running: bool = False, server: Optional[RedisConnection] = None,
               runner: Optional[ToolRunner] = None) -> Dict[str, Any]:
    """Every refusal of ``target=file`` before anything is written (check mode meets the same ones), looked at through
    ``dir_fd`` (``held_directory``): ``{'exists', 'holds_snapshot', 'warnings'}``."""
    name = os.path.basename(dest)
    warnings = refuse_running_owner(dir_fd, dest, allow_running, server, runner)
    try:
        found: Optional[os.stat_result] = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        found = None
    if found is not None and not (stat.S_ISREG(found.st_mode) or stat.S_ISLNK(found.st_mode)):
        raise OpsReadyError('dest %s is %s, not an RDB file: choose the path of a file. Nothing was written.'
                            % (dest, safeio.kind_of(found.st_mode)), dest=dest)
    if not safeio.may_write('/proc/self/fd/%d' % dir_fd):
        raise OpsReadyError('The directory %s of dest is not writable by this user (a read-only mount or an immutable '
                            'directory?): the RDB is written there as %s.partial and renamed. Nothing was written.'
                            % (os.path.dirname(dest), name), dest=dest)
    same = False
    if found is not None:
        verify_checksums(manifest)
        same = holds_snapshot(dir_fd, name, manifest, identities)
        if not same and not replace:
            what = ('is a symlink (replace=true replaces the link, not the file it points at)'
                    if stat.S_ISLNK(found.st_mode) else 'is a regular file (%s)' % safeio.human_size(found.st_size))
            raise OpsReadyError('%s %s and does not hold this snapshot: it may be another server\'s data. Set '
                                'replace=true to replace it (stop the server that loads it first), or choose another '
                                'dest.' % (dest, what), dest=dest)
    return {'exists': found is not None, 'holds_snapshot': same, 'warnings': warnings}


def holds_snapshot(dir_fd: int, name: str, manifest: Manifest, identities: Sequence[Any] = ()) -> bool:
    """Whether ``name`` in the directory held by ``dir_fd`` itself (not a link's target) is a regular file holding
    exactly the artifact's RDB, compared as the artifact streams: a difference stops the read at once."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    with os.fdopen(fd, 'rb') as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        with open_artifact(manifest, identities) as source:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    return not handle.read(1)
                if handle.read(len(chunk)) != chunk:
                    return False
