# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where ``redis_restore target=file`` may write: an existing RDB is a database, and a running server's is not ours.

A redis-server ``chdir``s into its ``dir`` at start, so a running server's working directory (``/proc/<pid>/cwd``)
is where it saves its ``dbfilename``; it rewrites that file on every save and at shutdown, so an RDB put there
while it runs is lost without a word. Its ``dbfilename`` cannot be read from outside (the server rewrites its
process title, its config file may be anywhere): the default name (``dump.rdb``) there is refused, another name
there is written with a warning (docs/redis.md's procedure writes ``restore.rdb`` beside the running server's).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import stat
from typing import Any, List, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest

SERVER_NAMES = ('redis-server', 'valkey-server')
DEFAULT_DBFILENAME = 'dump.rdb'
CHUNK = 1024 * 1024


def running_servers_in(directory: str, proc: str = '/proc') -> List[Tuple[int, str]]:
    """(pid, name) of each running redis-server (or valkey-server) whose working directory is ``directory``."""
    wanted = os.path.realpath(directory)
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
            if os.readlink(os.path.join(proc, pid, 'cwd')) == wanted:
                found.append((int(pid), name))
        except OSError:
            continue   # gone, or not ours to look at
    return found


def holds_snapshot(dest: str, manifest: Manifest, identities: Sequence[Any] = ()) -> bool:
    """Whether ``dest`` itself (not a link's target) is a regular file holding exactly the artifact's RDB, compared
    as the artifact streams: a difference stops the read at once."""
    try:
        fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
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
