# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore of file-tree archives: verify first, refuse escaping members, stage, then swap in.

Extraction goes into a staging directory next to the target root; only when the whole archive has
been read without error are the files moved into place (one rename each), so a corrupt or hostile
archive leaves the target as it was.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import stat
import tarfile
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    MANIFEST_SUFFIX, Manifest, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common.encryption import Identity
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    drain, open_decompressed, verify_file)
from ansible_collections.opsready.operations.plugins.module_utils.files.archive import ENGINE
from ansible_collections.opsready.operations.plugins.module_utils.files.tarsafe import (  # noqa: F401 (re-exported)
    check_members, extract_member)


def find_archive(src: str, set_name: Optional[str] = None, artifact: Optional[str] = None) -> Manifest:
    """``src`` is one archive (its manifest must exist) or a backup directory (newest of the set)."""
    if os.path.isfile(src):
        manifest_path = src if src.endswith(MANIFEST_SUFFIX) else src + MANIFEST_SUFFIX
        if not os.path.isfile(manifest_path):
            raise IntegrityError('%s has no manifest (%s): it is not a complete backup and will not be '
                                 'restored.' % (src, os.path.basename(manifest_path)), path=src)
        return read_manifest(manifest_path)
    if not os.path.isdir(src):
        raise OpsReadyError('src %s is neither a backup directory nor an archive.' % src, path=src)
    catalog = Catalog(src, engine=ENGINE, database=set_name)
    if artifact:
        return catalog.get(os.path.basename(artifact))
    candidates = [m for m in catalog.fulls() if catalog.usable(m)]
    if not candidates:
        raise OpsReadyError('No file backup%s with a manifest in %s.'
                            % (' of set %r' % set_name if set_name else '', src), path=src)
    return candidates[-1]


def _open(manifest: Manifest, identities: Optional[Sequence[Identity]]) -> Any:
    """The archive's tar stream, decrypted on the fly when the manifest says it is encrypted."""
    return open_decompressed(manifest.path, manifest.data['compression'], manifest.data.get('encryption'),
                             identities)


def list_members(manifest: Manifest, identities: Optional[Sequence[Identity]] = None) -> List[tarfile.TarInfo]:
    """Read the archive's member list (used by check mode and to refuse hostile archives early).

    Reads to the end, so an encrypted archive is fully authenticated before anything is extracted.
    """
    members = []
    with _open(manifest, identities) as stream:
        with tarfile.open(fileobj=stream, mode='r|') as tar:  # type: ignore[call-overload]
            for member in tar:
                members.append(member)
        drain(stream)
    return members


def restore_archive(manifest: Manifest, dest: str, only: Optional[List[str]] = None,
                    check_mode: bool = False, identities: Optional[Sequence[Identity]] = None) -> Dict[str, Any]:
    """Verify, extract into staging, then move each changed file into place under ``dest``."""
    verify_file(manifest.path, manifest.data['sha256'], manifest.data.get('size'))
    members = list_members(manifest, identities)
    check_members(members, manifest.path)
    wanted = [m for m in members if not only or any(m.name == o.strip('/') or m.name.startswith(o.strip('/') + '/')
                                                    for o in only)]
    if check_mode:
        changed = [m.name for m in wanted if not m.isdir() and not _same_as_target(m, dest)]
        return {'restored': changed, 'unchanged': len(wanted) - len(changed), 'staged': None}
    if not os.path.isdir(dest):
        os.makedirs(dest, mode=0o755)
    staging = tempfile.mkdtemp(prefix='.opsready-restore-', dir=dest)
    try:
        with _open(manifest, identities) as stream:
            with tarfile.open(fileobj=stream, mode='r|') as tar:  # type: ignore[call-overload]
                names = {m.name for m in wanted}
                for member in tar:
                    if member.name in names:
                        extract_member(tar, member, staging, numeric_owner=os.geteuid() == 0,
                                       archive=manifest.path)
            drain(stream)
        restored = _swap_in(staging, dest, wanted)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {'restored': restored, 'unchanged': len([m for m in wanted if not m.isdir()]) - len(restored),
            'staged': None}


def _same_as_target(member: tarfile.TarInfo, dest: str) -> bool:
    target = os.path.join(dest, member.name)
    try:
        st = os.lstat(target)
    except OSError:
        return False
    if member.isfile():
        return stat.S_ISREG(st.st_mode) and st.st_size == member.size and int(st.st_mtime) == int(member.mtime) \
            and stat.S_IMODE(st.st_mode) == member.mode
    if member.issym():
        return stat.S_ISLNK(st.st_mode) and os.readlink(target) == member.linkname
    return True


def _swap_in(staging: str, dest: str, members: List[tarfile.TarInfo]) -> List[str]:
    restored = []
    # Directories first (parents before children), files after; directory modes re-applied last
    # so a read-only directory does not block its own files.
    dirs = [m for m in members if m.isdir()]
    for member in dirs:
        os.makedirs(os.path.join(dest, member.name), exist_ok=True)
    for member in members:
        if member.isdir():
            continue
        staged = os.path.join(staging, member.name)
        target = os.path.join(dest, member.name)
        if member.isfile() and os.path.isfile(target) and not os.path.islink(target) \
                and filecmp.cmp(staged, target, shallow=False) \
                and stat.S_IMODE(os.stat(target).st_mode) == member.mode:
            continue
        if member.issym() and os.path.islink(target) and os.readlink(target) == member.linkname:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(target) and not os.path.islink(target):
            raise OpsReadyError('Cannot restore file %s: a directory is in the way.' % target, path=target)
        os.replace(staged, target)
        restored.append(target)
    for member in sorted(dirs, key=lambda m: m.name.count('/'), reverse=True):
        staged = os.path.join(staging, member.name)
        target = os.path.join(dest, member.name)
        if os.path.isdir(staged):
            shutil.copystat(staged, target)
            if os.geteuid() == 0:
                st = os.stat(staged)
                os.chown(target, st.st_uid, st.st_gid)
    return restored
