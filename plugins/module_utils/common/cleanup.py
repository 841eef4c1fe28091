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
import stat
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

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


def remove_path(path: str) -> Optional[str]:
    """Remove ``path``, a file or a whole directory (a link itself, never what it points to), checked: None once
    it is gone, else why it is not (for a warning that names it)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(mode):
        done = remove_tree(path)
        return None if done['cleaned_up'] else done['reason']
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return '%s: %s' % (path, exc.strerror or exc)
    return None


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in the directory held by ``dir_fd``, a file or a whole tree, never following a link (a link
    is removed as a link): each directory below is opened with O_NOFOLLOW relative to the one above and checked to
    be the one looked at, so an account that can write there cannot swap a subdirectory for a link to a directory
    of root's between the look and the removal. FileNotFoundError when ``name`` is not there."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        held = os.fstat(fd)
        if (held.st_dev, held.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.ESTALE, 'replaced while it was removed', name)
        for entry in os.listdir(fd):
            try:
                remove_at(fd, entry)
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def leftover_warning(path: str, reason: str) -> str:
    return ('The leftover %s of an interrupted run could not be removed (%s): it is not a backup (no manifest); '
            'remove it by hand.' % (path, reason))


def staging_warning(path: str, reason: str) -> str:
    return ('The staging directory %s of this backup could not be removed (%s): it is not a backup (no manifest) and '
            'may hold unencrypted data; remove it by hand (lsattr shows an immutable or append-only flag; chattr -i '
            '/ -a clears it).' % (path, reason))


def remove_staging(path: str, left: Dict[str, str]) -> None:
    """Remove a run's staging file or directory, checked: one that stays goes into ``left`` (path: why) for the
    run to report (``leftovers_left`` and a warning on success, ``told_staging`` on failure)."""
    reason = remove_path(path)
    if reason is not None:
        left[path] = reason


def told_staging(exc: BaseException, left: Dict[str, str]) -> BaseException:
    """``exc`` (being raised) told together with the staging ``left`` behind: an OpsReadyError gets it in its
    message and ``leftovers_left``; another Exception becomes one that says both; a KeyboardInterrupt or
    SystemExit is raised as it is."""
    if not left:
        return exc
    told = ' '.join(staging_warning(path, reason) for path, reason in sorted(left.items()))
    if isinstance(exc, OpsReadyError):
        exc.message = '%s Also: %s' % (exc.message, told)
        exc.details['leftovers_left'] = sorted(set(exc.details.get('leftovers_left') or []) | set(left))
        return exc
    if isinstance(exc, Exception):
        return OpsReadyError('%s; also: %s' % (exc, told), leftovers_left=sorted(left))
    return exc
