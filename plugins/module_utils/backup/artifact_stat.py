# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stat signature of a backup's artifact: what a passed verification records and retention trusts.

Apart from retention.py, which re-exports it: verification (``jobs.verify_one``, right after a backup's dump
when ``verify`` is on) needs only this, and importing retention compiled it and the whole catalog (~2,500 lines
from the payload zip, which keeps no .pyc) on the backup's critical path.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest


def artifact_signature(entry: 'Manifest') -> Optional[List[List[int]]]:
    """[inode, size, mtime_ns, ctime_ns] of the artifact (of each member of a multi-file one); None when one is not
    a regular file. Any write changes ctime (which no tool can set back): an unchanged signature is an unchanged file
    for every writer but the disk itself."""
    if entry.members:
        paths = [os.path.join(entry.directory, member['path']) for member in entry.members]
    else:
        paths = [entry.path]
    found = []
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        found.append([info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns])
    return found
