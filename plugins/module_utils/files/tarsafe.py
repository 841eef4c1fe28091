# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe tar extraction on every Python the modules run on.

``tarfile``'s extraction filters (PEP 706) exist from Python 3.12 and in 3.8-3.11 point releases
that backported them (3.11.4+); Debian 12's stock python3.11 (3.11.2) does not have them, and a
managed host may run anything from 3.9 on. Every member is therefore checked here first: by name
(no absolute paths, no ``..``, no links or devices escaping the root) and against what is already on
disk (its parent directory must resolve inside the root, so no member is written through a symlink an
earlier member planted; an existing symlink at its own path is replaced, never written through). The
``tar`` filter is added on top where the interpreter has it; it also clears setuid/setgid/sticky and
group/other-write bits, which the older interpreters restore as archived.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import tarfile
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError

HAS_EXTRACTION_FILTER = hasattr(tarfile, 'tar_filter')


def _unsafe_reason(member: tarfile.TarInfo) -> Optional[str]:
    name = member.name
    if name.startswith('/') or os.path.isabs(name):
        return 'absolute path'
    if '..' in name.split('/'):
        return 'parent directory reference (..)'
    if member.issym() or member.islnk():
        target = member.linkname
        if member.islnk() and (target.startswith('/') or '..' in target.split('/')):
            return 'hard link outside the archive root'
        if member.issym():
            resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
            if target.startswith('/') or resolved == '..' or resolved.startswith('../'):
                # Absolute symlinks are legitimate in /etc trees; they are restored as links, never
                # followed while extracting, so they cannot write outside the root.
                return None if target.startswith('/') else 'symlink pointing outside the target root'
    if member.isdev():
        return 'device file'
    return None


def check_members(members: List[tarfile.TarInfo], archive: str = '') -> None:
    bad = [(m.name, reason) for m in members for reason in [_unsafe_reason(m)] if reason]
    if bad:
        _refuse(bad, archive)


def _refuse(bad: List[Any], archive: str) -> None:
    shown = '; '.join('%s (%s)' % item for item in bad[:5])
    raise IntegrityError('Archive %sholds members that would escape the target root: %s. It is not trusted; '
                         'nothing from it was put in place.' % (archive + ' ' if archive else '', shown),
                         unsafe_members=[b[0] for b in bad], **({'path': archive} if archive else {}))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _guard_on_disk(member: tarfile.TarInfo, dest: str, archive: str) -> None:
    """Refuse a member that would be written through a symlink already extracted under ``dest``."""
    root = os.path.realpath(dest)
    parent = os.path.realpath(os.path.join(root, os.path.dirname(member.name)))
    if not _inside(parent, root):
        _refuse([(member.name, 'its directory is a symlink leading outside the target root')], archive)
    if member.islnk() and not _inside(os.path.realpath(os.path.join(root, member.linkname)), root):
        _refuse([(member.name, 'hard link to a file outside the target root')], archive)
    target = os.path.join(parent, os.path.basename(member.name.rstrip('/')))
    if os.path.islink(target):
        # tar replaces what is there; writing through the link (open, chmod, utime) would reach its target
        os.unlink(target)
    elif os.path.isdir(target) and not member.isdir():
        _refuse([(member.name, 'would replace a directory extracted before it')], archive)


def _filter_kwargs() -> Dict[str, Any]:
    return {'filter': 'tar'} if HAS_EXTRACTION_FILTER else {}


def extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str, numeric_owner: bool = False,
                   archive: str = '') -> None:
    """Extract one member under ``dest`` after refusing it if it would escape."""
    check_members([member], archive)
    _guard_on_disk(member, dest, archive)
    tar.extract(member, dest, set_attrs=True, numeric_owner=numeric_owner, **_filter_kwargs())


def extract_all(tar: tarfile.TarFile, dest: str, numeric_owner: bool = False, archive: str = '') -> None:
    """Extract a whole (possibly streamed) archive, checking each member as it is read.

    ``extractall`` is kept (rather than a loop of ``extract``) because it sets directory modes and
    times last, after their contents are written: a 0700 PostgreSQL data directory stays 0700.
    """
    def checked() -> Iterator[tarfile.TarInfo]:
        for member in tar:
            check_members([member], archive)
            _guard_on_disk(member, dest, archive)
            yield member
    tar.extractall(  # nosec B202 # members checked one by one
        dest, members=checked(), numeric_owner=numeric_owner, **_filter_kwargs())
