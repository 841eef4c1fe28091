# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removing a scratch tree, checked: what a drill or restore leaves behind is removed or reported, never passed
over (``shutil.rmtree(..., ignore_errors=True)`` reports nothing when an immutable file, an append-only or
read-only directory keeps a copy of production data on disk).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from typing import Any, Dict, List, Tuple

# A removal that failed for one of these will fail again: no retry (root meets EPERM on an immutable or
# append-only file or directory, EROFS on a read-only mount). Others (ENOTEMPTY while a server's child still
# writes a file into it, EBUSY) may pass.
PERMANENT_ERRNOS = (errno.EPERM, errno.EACCES, errno.EROFS)


def remove_tree(directory: str, attempts: int = 5, delay: float = 0.2) -> Dict[str, Any]:
    """Remove ``directory`` and all in it, checked: ``{'cleaned_up': True, 'path': ...}``, or ``cleaned_up:
    False`` with ``left`` (what is still there, relative, the first 20) and ``reason`` (each failed removal, the
    first 5). Every removal is tried, even after one failed, so a directory that cannot go still loses the files
    that can."""
    errors: List[Tuple[str, BaseException]] = []

    def failed(_func: Any, path: str, exc_info: Any) -> None:
        errors.append((path, exc_info[1]))

    for attempt in range(attempts):
        del errors[:]
        if not os.path.lexists(directory):
            return {'cleaned_up': True, 'path': directory}
        shutil.rmtree(directory, onerror=failed)  # pylint: disable=deprecated-argument
        if not os.path.lexists(directory):
            return {'cleaned_up': True, 'path': directory}
        if any(getattr(exc, 'errno', None) in PERMANENT_ERRNOS for _path, exc in errors):
            break
        time.sleep(delay * (attempt + 1))
    left: List[str] = []
    for root, dirs, files in os.walk(directory):
        left += [os.path.relpath(os.path.join(root, name), directory) for name in sorted(dirs) + sorted(files)]
    reason = '; '.join('%s: %s' % (path, getattr(exc, 'strerror', None) or exc) for path, exc in errors[:5]) \
        or 'still there after %d attempts' % attempts
    return {'cleaned_up': False, 'path': directory, 'left': left[:20], 'reason': reason}
