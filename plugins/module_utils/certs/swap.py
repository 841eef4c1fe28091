# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swapping a key + certificate pair in place, keeping the previous pair, and rolling back.

Layout (``backup_dir`` unset): the previous certificate is kept next to the certificate as
``<cert name>.<UTC stamp>.cert.bak`` and the previous key next to the key (normally a 0700
directory) as ``<key name>.<UTC stamp>.key.bak``, always 0600. A pair is the two files with the same
stamp. A rolled-back pair is kept as ``.cert.rejected`` / ``.key.rejected`` for inspection.

Each file is replaced atomically (common/atomic.py: temp file, fsync, rename, fsync dir) with its
owner, group and mode preserved. Two files cannot be renamed in one step: the key goes first, then
the certificate; if the certificate write fails the old key is written back before the error is
raised, so the pair on disk always matches.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_bytes
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

STAMP_RE = r'(\d{8}T\d{12}Z)'
KEY_MODE = 0o600
CERT_MODE = 0o644


class Pair:
    """Where a certificate and its key live and where their backups go."""

    def __init__(self, cert_path: str, key_path: str, backup_dir: Optional[str] = None) -> None:
        if os.path.abspath(cert_path) == os.path.abspath(key_path):
            raise OpsReadyError('path and privatekey_path are the same file (%s): combined key+certificate files are '
                                'not supported; keep the key in its own file.' % cert_path)
        self.cert_path = cert_path
        self.key_path = key_path
        self.cert_backup_dir = backup_dir or os.path.dirname(os.path.abspath(cert_path))
        self.key_backup_dir = backup_dir or os.path.dirname(os.path.abspath(key_path))

    def backup_names(self, stamp: str, suffix: str = 'bak') -> Tuple[str, str]:
        return (os.path.join(self.cert_backup_dir, '%s.%s.cert.%s' % (os.path.basename(self.cert_path), stamp, suffix)),
                os.path.join(self.key_backup_dir, '%s.%s.key.%s' % (os.path.basename(self.key_path), stamp, suffix)))

    def backups(self) -> List[Tuple[str, str, str]]:
        """Complete backup pairs (stamp, cert backup, key backup), newest first."""
        cert_re = re.compile(re.escape(os.path.basename(self.cert_path)) + r'\.' + STAMP_RE + r'\.cert\.bak$')
        stamps = []
        if os.path.isdir(self.cert_backup_dir):
            for name in os.listdir(self.cert_backup_dir):
                match = cert_re.match(name)
                if match:
                    stamps.append(match.group(1))
        pairs = []
        for stamp in sorted(stamps, reverse=True):
            cert_bak, key_bak = self.backup_names(stamp)
            if os.path.isfile(key_bak):
                pairs.append((stamp, cert_bak, key_bak))
        return pairs


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _owner_mode(path: str, default_mode: int) -> Tuple[int, Optional[int], Optional[int]]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return default_mode, None, None
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


def _ensure_dir(path: str, mode: int) -> None:
    if not os.path.isdir(path):
        os.makedirs(path, mode)


def _write_pair(pair: Pair, cert_bytes: bytes, key_bytes: bytes) -> None:
    key_mode, key_uid, key_gid = _owner_mode(pair.key_path, KEY_MODE)
    cert_mode, cert_uid, cert_gid = _owner_mode(pair.cert_path, CERT_MODE)
    old_key = _read(pair.key_path)
    # Never let a key become readable by others through a permissive previous mode.
    key_mode &= ~0o007
    atomic_write_bytes(pair.key_path, key_bytes, mode=key_mode, uid=key_uid, gid=key_gid)
    try:
        atomic_write_bytes(pair.cert_path, cert_bytes, mode=cert_mode, uid=cert_uid, gid=cert_gid)
    except BaseException:
        if old_key is not None:
            atomic_write_bytes(pair.key_path, old_key, mode=key_mode, uid=key_uid, gid=key_gid)
        raise


def keep_copy(pair: Pair, stamp: str, suffix: str = 'bak') -> Dict[str, str]:
    """Copy the live pair to timestamped files (key 0600); returns their paths ({} if nothing live)."""
    cert_bytes = _read(pair.cert_path)
    key_bytes = _read(pair.key_path)
    if cert_bytes is None or key_bytes is None:
        return {}
    cert_bak, key_bak = pair.backup_names(stamp, suffix)
    _ensure_dir(pair.cert_backup_dir, 0o755)
    _ensure_dir(pair.key_backup_dir, 0o700)
    cert_mode, _uid, _gid = _owner_mode(pair.cert_path, CERT_MODE)
    atomic_write_bytes(key_bak, key_bytes, mode=KEY_MODE)
    atomic_write_bytes(cert_bak, cert_bytes, mode=cert_mode & 0o7777)
    return {'cert': cert_bak, 'key': key_bak}


def swap_in(pair: Pair, cert_bytes: bytes, key_bytes: bytes, stamp: str) -> Dict[str, str]:
    """Keep the previous pair, then put the new one in place. Returns the backup paths."""
    backup = keep_copy(pair, stamp)
    _write_pair(pair, cert_bytes, key_bytes)
    return backup


def live_matches_backup(pair: Pair) -> bool:
    """Whether the live pair is byte-identical to the newest backup (a rollback already happened)."""
    pairs = pair.backups()
    if not pairs:
        return False
    _stamp, cert_bak, key_bak = pairs[0]
    return _read(pair.cert_path) == _read(cert_bak) and _read(pair.key_path) == _read(key_bak)


def rollback(pair: Pair, stamp: str, check_mode: bool = False) -> Dict[str, object]:
    """Put the newest backup pair back. The pair being replaced is kept as ``.rejected``.
    Returns {changed, restored_from, rejected}."""
    pairs = pair.backups()
    if not pairs:
        raise OpsReadyError('No previous key/certificate pair of %s is kept (looked for %s.<stamp>.cert.bak in %s): '
                            'nothing to roll back to. Restore from your file backups.'
                            % (pair.cert_path, os.path.basename(pair.cert_path), pair.cert_backup_dir))
    _backup_stamp, cert_bak, key_bak = pairs[0]
    cert_bytes = _read(cert_bak)
    key_bytes = _read(key_bak)
    if cert_bytes is None or key_bytes is None:
        raise OpsReadyError('Backup pair %s / %s vanished while rolling back.' % (cert_bak, key_bak))
    if _read(pair.cert_path) == cert_bytes and _read(pair.key_path) == key_bytes:
        return {'changed': False, 'restored_from': {'cert': cert_bak, 'key': key_bak}, 'rejected': {}}
    rejected: Dict[str, str] = {}
    if not check_mode:
        rejected = keep_copy(pair, stamp, suffix='rejected')
        _write_pair(pair, cert_bytes, key_bytes)
    return {'changed': True, 'restored_from': {'cert': cert_bak, 'key': key_bak}, 'rejected': rejected}


def prune_backups(pair: Pair, keep: int, check_mode: bool = False) -> List[str]:
    """Delete backup pairs beyond the newest ``keep`` (0 keeps all). Returns the deleted paths."""
    if keep <= 0:
        return []
    deleted = []
    for _stamp, cert_bak, key_bak in pair.backups()[keep:]:
        for path in (cert_bak, key_bak):
            if not check_mode:
                os.unlink(path)
            deleted.append(path)
    return deleted
