# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe tar extraction on every Python the modules run on.

``tarfile``'s extraction filters (PEP 706) exist from Python 3.12 and in 3.8-3.11 point releases
that backported them (3.11.4+); Debian 12's stock python3.11 (3.11.2) does not have them, and a
managed host may run anything from 3.9 on. Every member is therefore checked here first (no
absolute paths, no ``..``, no links or devices escaping the root) and the ``tar`` filter is added on
top where the interpreter has it.

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
            if target.startswith('/') or resolved.startswith('..'):
                # Absolute symlinks are legitimate in /etc trees; they are restored as links, never
                # followed while extracting, so they cannot write outside the root.
                return None if target.startswith('/') else 'symlink pointing outside the target root'
    if member.isdev():
        return 'device file'
    return None


def check_members(members: List[tarfile.TarInfo]) -> None:
    bad = [(m.name, reason) for m in members for reason in [_unsafe_reason(m)] if reason]
    if bad:
        shown = '; '.join('%s (%s)' % item for item in bad[:5])
        raise IntegrityError('Archive holds members that would escape the target root: %s. Nothing was '
                             'restored.' % shown, unsafe_members=[b[0] for b in bad])


def _filter_kwargs() -> Dict[str, Any]:
    return {'filter': 'tar'} if HAS_EXTRACTION_FILTER else {}


def extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str, numeric_owner: bool = False) -> None:
    """Extract one member under ``dest`` after refusing it if it would escape."""
    check_members([member])
    tar.extract(member, dest, set_attrs=True, numeric_owner=numeric_owner, **_filter_kwargs())


def extract_all(tar: tarfile.TarFile, dest: str, numeric_owner: bool = False) -> None:
    """Extract a whole (possibly streamed) archive, checking each member as it is read.

    ``extractall`` is kept (rather than a loop of ``extract``) because it sets directory modes and
    times last, after their contents are written: a 0700 PostgreSQL data directory stays 0700.
    """
    def checked() -> Iterator[tarfile.TarInfo]:
        for member in tar:
            check_members([member])
            yield member
    tar.extractall(dest, members=checked(), numeric_owner=numeric_owner, **_filter_kwargs())
