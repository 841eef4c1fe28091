# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Target discovery: which log files a policy applies to (explicit paths and globs).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from typing import List, Optional, Pattern, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

# Names a glob must never pick up as a live log: our own rotations, compressed files, partial writes.
ROTATED_NAME = re.compile(r'(\.\d+)(\.zst|\.gz)?$|\.(zst|gz|xz|bz2|partial|tmp)$')


def _path_max() -> int:
    try:
        return os.pathconf('/', 'PC_PATH_MAX')
    except (OSError, ValueError):
        return 4096


PATH_MAX = _path_max()


def _is_glob(pattern: str) -> bool:
    return glob.has_magic(pattern)


def discover(patterns: List[str], missingok: bool = False,
             dated: Optional[Pattern[str]] = None) -> Tuple[List[str], List[str]]:
    """Expand ``patterns`` into existing regular files; returns (logs, missing patterns).

    A glob never matches files that look like rotated copies (``app.log.1``, ``app.log.2.zst``,
    ``app.log-20260101`` when ``dated`` is given) so a policy on ``/var/log/app/*`` does not rotate
    its own rotations. A pattern matching nothing is an error unless ``missingok``.
    """
    if not patterns:
        raise OpsReadyError('paths is empty: name at least one log file or glob.')
    found: List[str] = []
    missing: List[str] = []
    for pattern in patterns:
        if not os.path.isabs(pattern):
            raise OpsReadyError('Log path %r is relative: give an absolute path or glob.' % pattern)
        # The system takes no path this long: lstat failed with a bare "File name too long" and a glob matched
        # nothing, so the log was "missing" (skipped in silence with missingok) while it was there, growing.
        if len(os.fsencode(pattern)) >= PATH_MAX:
            raise OpsReadyError('Log path %s is %d bytes, longer than the %d bytes (PATH_MAX) a path may have on this '
                                'system: it cannot be checked or rotated. Nothing was rotated; rotate it through a '
                                'shorter path (a bind mount or a symlink to its directory).'
                                % (pattern, len(os.fsencode(pattern)), PATH_MAX), path=pattern)
        if _is_glob(pattern):
            matches = []
            for path in sorted(glob.glob(pattern)):
                name = os.path.basename(path)
                if ROTATED_NAME.search(name) or (dated is not None and dated.search(name)):
                    continue
                if os.path.isfile(path) and not os.path.islink(path):
                    matches.append(path)
        else:
            matches = []
            try:
                st: Optional[os.stat_result] = os.lstat(pattern)
            except FileNotFoundError:
                st = None
            if st is not None:
                if stat.S_ISLNK(st.st_mode):
                    try:
                        # readlink, not realpath: the name may change again meanwhile (a user racing it)
                        pointee = os.readlink(pattern)
                    except OSError:
                        pointee = '?'
                    raise OpsReadyError('Log path %s is a symlink (to %s): rotate the file it points to instead, '
                                        'renaming a link would not rotate the log.' % (pattern, pointee))
                if not stat.S_ISREG(st.st_mode):
                    raise OpsReadyError('Log path %s is not a regular file.' % pattern)
                matches.append(pattern)
        if not matches:
            missing.append(pattern)
        for path in matches:
            path = os.path.abspath(path)
            if path not in found:
                found.append(path)
    if missing and not missingok:
        raise OpsReadyError('No log file matches %s: fix the path or glob, or set missingok=true if the '
                            'log may legitimately be absent.' % ', '.join(missing), missing=missing)
    return found, missing
