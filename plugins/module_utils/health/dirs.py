# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a directory health_check reads or writes is safe from other users (DESIGN: root in a directory a
user controls).

- Writable by others, or by a group other than root, without the sticky bit: any such user can replace or
  remove every name in it. health_check refuses to write its textfile or history there as root, and a backup
  directory like that is a critical finding (anyone could swap the backups the check vouches for).
- Owned by another non-root user: that user can swap the names root writes. The writers never follow a
  planted link (mkstemp + rename, O_NOFOLLOW appends), so the write goes ahead, reported as a warning.
- Sticky and world-writable (/tmp style): others cannot rename or remove root's files; fine.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import pwd
import stat
from typing import Optional, Tuple


def _user(uid: int) -> str:
    try:
        return '%s (uid %d)' % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return 'uid %d' % uid


def open_to_others(st: os.stat_result, group_ok: bool = False) -> bool:
    """Writable by others (or by a non-root group unless ``group_ok``), and not sticky."""
    writable = st.st_mode & stat.S_IWOTH or (not group_ok and st.st_mode & stat.S_IWGRP and st.st_gid != 0)
    return bool(writable) and not st.st_mode & stat.S_ISVTX


def risk(path: str, group_ok: bool = False) -> Optional[Tuple[str, str]]:
    """(severity, reason) of directory ``path``, or None when it is safe (or cannot be read: callers report
    a missing directory themselves). ``group_ok``: a group may write it (a backup directory the database's own
    group writes: PostgreSQL's archive_command runs as postgres)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if open_to_others(st, group_ok):
        who = 'every user' if st.st_mode & stat.S_IWOTH else 'group %d' % st.st_gid
        return ('critical', '%s is writable by %s without the sticky bit (mode %04o): they can replace or remove '
                'any file in it' % (path, who, stat.S_IMODE(st.st_mode)))
    if st.st_uid not in (0, os.geteuid()):
        return ('warning', '%s belongs to %s, not root: that user can swap the files root writes there'
                % (path, _user(st.st_uid)))
    return None
