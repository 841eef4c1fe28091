# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File-tree backups: a tar stream through ``ArtifactWriter`` (compression + SHA-256, one pass).

Members are stored relative to ``/`` (``etc/myapp/app.conf``) so a restore to ``/`` puts them back
where they were and a restore to another root reproduces the tree under it.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import tarfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest, write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    ArtifactWriter, compression_suffix)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp, utcnow

ENGINE = 'files'
KIND = 'files'
# File names that mark a tree as holding private keys (archives are always 0600; these also
# tighten the backup directory to 0700).
SECRET_HINTS = ('.key', '.pem', '.p12', '.pfx', 'id_rsa', 'id_ed25519', 'private')


def _arcname(path: str) -> str:
    return os.path.abspath(path).lstrip('/') or '.'


def walk_sources(paths: List[str]) -> Iterator[Tuple[str, os.stat_result]]:
    """Every path to archive (directories included, symlinks not followed), sorted for stable output."""
    for top in paths:
        top = os.path.abspath(top)
        st = os.lstat(top)
        yield top, st
        if not stat.S_ISDIR(st.st_mode):
            continue
        for root, dirs, files in os.walk(top, onerror=_raise):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(root, name)
                yield path, os.lstat(path)


def _raise(exc: OSError) -> None:
    raise exc


def check_sources(paths: List[str]) -> None:
    """Clear errors before anything is written: a missing or unreadable source stops the run."""
    if not paths:
        raise OpsReadyError('paths is empty: name at least one file or directory to back up.')
    for path in paths:
        if not os.path.lexists(path):
            raise OpsReadyError('Source %s does not exist: fix paths (nothing was archived).' % path, path=path)
        if not os.access(path, os.R_OK):
            raise OpsReadyError('Source %s is not readable by this user: run with become or fix its '
                                'permissions (nothing was archived).' % path, path=path)


def tree_fingerprint(paths: List[str]) -> Tuple[str, int, bool]:
    """A digest of names, sizes, modes, owners and mtimes: equal digests mean nothing changed.

    Returns (digest, regular file count, whether a private key seems to be included).
    """
    digest = hashlib.sha256()
    count = 0
    secret = False
    for path, st in walk_sources(paths):
        record = '%s\0%o\0%d\0%d\0%d\0%d\n' % (path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_uid, st.st_gid)
        digest.update(record.encode('utf-8', 'surrogateescape'))
        if stat.S_ISREG(st.st_mode):
            count += 1
            name = os.path.basename(path).lower()
            if any(h in name for h in SECRET_HINTS) or '/private/' in path or not st.st_mode & 0o044:
                secret = True
        if stat.S_ISREG(st.st_mode) and not os.access(path, os.R_OK):
            raise OpsReadyError('%s is not readable by this user: run with become or fix its permissions '
                                '(nothing was archived).' % path, path=path)
    return digest.hexdigest(), count, secret


def prepare_dest(dest: str, secret: bool) -> bool:
    """Create the backup directory 0700; returns True if it was created or tightened."""
    changed = False
    if not os.path.isdir(dest):
        try:
            os.makedirs(dest, mode=0o700)
        except OSError as exc:
            raise OpsReadyError('Cannot create backup directory %s: %s' % (dest, exc.strerror), path=dest)
        changed = True
    if secret and stat.S_IMODE(os.stat(dest).st_mode) & 0o077:
        os.chmod(dest, 0o700)
        changed = True
    if not os.access(dest, os.W_OK | os.X_OK):
        raise OpsReadyError('Backup directory %s is not writable by this user: fix its permissions or choose '
                            'another dest.' % dest, path=dest)
    return changed


def latest_archive(dest: str, set_name: str) -> Optional[Manifest]:
    if not os.path.isdir(dest):
        return None
    entries = [m for m in Catalog(dest, engine=ENGINE, database=set_name).fulls() if m.verified is not False]
    return entries[-1] if entries else None


def create_archive(paths: List[str], dest: str, set_name: str, compression: str = 'zstd',
                   level: Optional[int] = None, threads: int = 0, fingerprint: Optional[str] = None,
                   file_count: Optional[int] = None, recipients: Optional[List[str]] = None) -> Dict[str, Any]:
    """Archive ``paths`` into ``dest``; returns the manifest (written after the artifact is durable).

    With ``recipients`` the archive is age-encrypted in the same pass (``<name>.tar.zst.age``).
    """
    started = utcnow()
    name = '%s-%s.tar%s%s' % (set_name, stamp(started), compression_suffix(compression),
                              encryption.SUFFIX if recipients else '')
    artifact = os.path.join(dest, name)
    members = 0
    try:
        with ArtifactWriter(artifact, compression=compression, level=level, threads=threads,
                            recipients=recipients) as writer:
            with tarfile.open(fileobj=writer, mode='w|', format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for path, _st in walk_sources(paths):
                    tar.add(path, arcname=_arcname(path), recursive=False)
                    members += 1
            stored = writer.commit()
    except OSError as exc:
        raise OpsReadyError('Writing %s failed: %s. The partial archive was removed and no manifest written.'
                            % (artifact, exc.strerror or exc), path=artifact)
    finished = utcnow()
    manifest = {
        'engine': ENGINE,
        'kind': KIND,
        'server': socket.gethostname(),
        'database': set_name,
        'started': isoformat(started),
        'finished': isoformat(finished),
        'consistent_at': isoformat(finished),
        'size': stored['size'],
        'sha256': stored['sha256'],
        'raw_size': stored['raw_size'],
        'compression': stored['compression'],
        'compression_level': stored['compression_level'],
        'tool': {'name': 'python-tarfile', 'format': 'pax'},
        'parent': None,
        'sources': [os.path.abspath(p) for p in paths],
        'file_count': file_count,
        'member_count': members,
        'fingerprint': fingerprint,
    }
    if 'encryption' in stored:
        manifest['encryption'] = stored['encryption']
    write_manifest(artifact, manifest)
    manifest['path'] = artifact
    return manifest
