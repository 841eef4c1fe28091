# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swapping a key + certificate pair in place, keeping the previous pair, and rolling back.

Layout (``backup_dir`` unset): the previous certificate is kept next to the certificate as
``<cert name>.<UTC stamp>.cert.bak`` and the previous key next to the key (normally a 0700
directory) as ``<key name>.<UTC stamp>.key.bak``, always 0600. A pair is the two files with the same
stamp. A rolled-back pair is kept as ``.cert.rejected`` / ``.key.rejected`` for inspection.

Each file is replaced atomically (temp file, fsync, rename, fsync dir) with its owner, group and mode
preserved. Two files cannot be renamed in one step: both are written and fsynced first, then the key is
renamed, then the certificate; if the certificate rename fails the old key is written back before the
error is raised. A run killed between the two renames is undone by the next run
(renewal.repair_interrupted_swap, from the pair kept just before).

Every file is reached through its directory opened once (files/safeio.py ``SafeDir``): reads never
follow a symlink the directory's user could have planted, new files are created exclusively and
renamed into place relative to the directory's descriptor, so a user who can write to the directory
cannot make root write the key through a symlink or read a file of theirs choosing. Such a directory
is refused unless ``owner`` names that user; the files are then written for that user, the key 0600.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.certs.loading import PEM_KEY_RE
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import (
    MiB, SafeDir, UnsafeFileError, staged_name_re)

STAMP_RE = r'(\d{8}T\d{12}Z)'
KEY_MODE = 0o600
CERT_MODE = 0o644
# A certificate chain or a key file is a few KiB; a cap keeps a planted /dev/zero or a huge file out.
MAX_PAIR_FILE_BYTES = 16 * MiB


class Pair:
    """Where a certificate and its key live and where their backups go; each directory opened once."""

    def __init__(self, cert_path: str, key_path: str, backup_dir: Optional[str] = None,
                 owner: Optional[Tuple[int, int]] = None) -> None:
        if os.path.abspath(cert_path) == os.path.abspath(key_path):
            raise OpsReadyError('path and privatekey_path are the same file (%s): combined key+certificate files are '
                                'not supported; keep the key in its own file.' % cert_path)
        self.cert_path = os.path.abspath(cert_path)
        self.key_path = os.path.abspath(key_path)
        self.owner = owner
        self.backup_dir = os.path.abspath(backup_dir) if backup_dir else None
        self.cert_backup_dir = self.backup_dir or os.path.dirname(self.cert_path)
        self.key_backup_dir = self.backup_dir or os.path.dirname(self.key_path)
        self.cert_name = os.path.basename(self.cert_path)
        self.key_name = os.path.basename(self.key_path)
        self._dirs: Dict[str, SafeDir] = {}
        self.warnings: List[str] = []   # what the swap decided on its own (a key mode tightened), for the result
        try:
            self.cert_dir = self.directory(os.path.dirname(self.cert_path))
            self.key_dir = self.directory(os.path.dirname(self.key_path))
        except BaseException:
            self.close()
            raise

    def directory(self, path: str, create_mode: Optional[int] = None) -> SafeDir:
        """The directory ``path`` opened once (and checked) for the life of the pair."""
        if path not in self._dirs:
            self._dirs[path] = SafeDir(path, owner=self.owner, create_mode=create_mode)
        return self._dirs[path]

    def backup_dirs(self) -> Tuple[SafeDir, SafeDir]:
        # The key's directory first: when both are one backup_dir it holds kept private keys, so it is made 0700.
        key_dir = self.directory(self.key_backup_dir, create_mode=0o700)
        return self.directory(self.cert_backup_dir, create_mode=0o755), key_dir

    def close(self) -> None:
        for directory in self._dirs.values():
            directory.close()
        self._dirs = {}

    def __enter__(self) -> 'Pair':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def backup_names(self, stamp: str, suffix: str = 'bak') -> Tuple[str, str]:
        return ('%s.%s.cert.%s' % (self.cert_name, stamp, suffix), '%s.%s.key.%s' % (self.key_name, stamp, suffix))

    def backup_paths(self, stamp: str, suffix: str = 'bak') -> Tuple[str, str]:
        cert_bak, key_bak = self.backup_names(stamp, suffix)
        return os.path.join(self.cert_backup_dir, cert_bak), os.path.join(self.key_backup_dir, key_bak)

    def backups(self) -> List[Tuple[str, str, str]]:
        """Complete backup pairs (stamp, cert backup path, key backup path), newest first."""
        if not (os.path.isdir(self.cert_backup_dir) and os.path.isdir(self.key_backup_dir)):
            return []
        cert_dir, key_dir = self.backup_dirs()
        cert_re = re.compile(re.escape(self.cert_name) + r'\.' + STAMP_RE + r'\.cert\.bak$')
        stamps = [m.group(1) for m in (cert_re.match(n) for n in cert_dir.listdir()) if m]
        pairs = []
        for stamp in sorted(stamps, reverse=True):
            cert_bak, key_bak = self.backup_names(stamp)
            key_st = key_dir.lstat(key_bak)
            if key_st is not None and stat.S_ISREG(key_st.st_mode):
                pairs.append((stamp,) + self.backup_paths(stamp))
        return pairs

    def read_cert(self) -> Optional[bytes]:
        return self.cert_dir.read(self.cert_name, MAX_PAIR_FILE_BYTES, 'Certificate')

    def read_key(self) -> Optional[bytes]:
        return self.key_dir.read(self.key_name, MAX_PAIR_FILE_BYTES, 'Private key')

    def read_in(self, directory: SafeDir, name: str, what: str) -> Optional[bytes]:
        return directory.read(name, MAX_PAIR_FILE_BYTES, what)


def _owner_mode(directory: SafeDir, name: str, default_mode: int) -> Tuple[int, Optional[int], Optional[int]]:
    """Mode and owner to give the new file: those of the one it replaces, in a trusted directory."""
    if directory.owner is not None or not directory.trusted:
        return default_mode, None, None  # SafeDir writes for the named owner
    try:
        st = os.stat(name, dir_fd=directory.fd, follow_symlinks=True)
    except FileNotFoundError:
        return default_mode, None, None
    if not stat.S_ISREG(st.st_mode):
        return default_mode, None, None
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


def holds_private_key(data: Optional[bytes]) -> bool:
    """Whether ``data`` (a certificate file) also holds a PEM private key: a combined file (haproxy's ``crt``)."""
    return bool(data) and PEM_KEY_RE.search(data or b'') is not None


def _cert_mode_mask(data: Optional[bytes]) -> int:
    # A certificate file holding a key is a key file: never group-writable or readable by others.
    return 0o740 if holds_private_key(data) else 0o7755


def _key_file_mode(pair: Pair, path: str, mode: int) -> int:
    """The mode for a file holding a private key that replaces one of ``mode``: a mode that let others read it was
    no deliberate choice, nor is its group read then (0644 kept as 0640 left the key to 'users' on many hosts):
    0600, said in a warning. A group-only 0640 (the ssl-cert group PostgreSQL reads through) is kept."""
    if mode & 0o007:
        pair.warnings.append('%s was readable by others (mode %04o): the new file, which holds the private key, is '
                             '0600. Consider the previous key exposed; give a group read access with chmod 640 if a '
                             'service needs it.' % (path, mode & 0o777))
        return KEY_MODE
    return mode & 0o740


def write_pair(pair: Pair, cert_bytes: bytes, key_bytes: bytes) -> None:
    key_mode, key_uid, key_gid = _owner_mode(pair.key_dir, pair.key_name, KEY_MODE)
    cert_mode, cert_uid, cert_gid = _owner_mode(pair.cert_dir, pair.cert_name, CERT_MODE)
    old_key = pair.read_key()
    # Never let a key become readable by others or writable by its group through a permissive previous
    # mode; 0600 where the directory belongs to a user.
    key_mode = _key_file_mode(pair, pair.key_path, key_mode)
    if holds_private_key(cert_bytes):
        cert_mode = _key_file_mode(pair, pair.cert_path, cert_mode)
    # Both files are written and fsynced before either is renamed: between the key's rename and the certificate's
    # the pair on disk does not match (a service reloading on a file event, or a crash, finds no usable pair), and
    # that window is now two renames, not a whole write and fsync of the certificate.
    key_tmp = pair.key_dir.stage(pair.key_name, key_bytes, mode=key_mode, uid=key_uid, gid=key_gid)
    try:
        cert_tmp = pair.cert_dir.stage(pair.cert_name, cert_bytes, mode=cert_mode & _cert_mode_mask(cert_bytes),
                                       uid=cert_uid, gid=cert_gid)
    except BaseException:
        pair.key_dir.discard(key_tmp)
        raise
    try:
        pair.key_dir.commit(key_tmp, pair.key_name, sync=False)
    except BaseException:
        pair.cert_dir.discard(cert_tmp)
        raise
    try:
        pair.cert_dir.commit(cert_tmp, pair.cert_name, sync=False)
    except BaseException:
        pair.cert_dir.discard(cert_tmp)
        if old_key is not None:
            pair.key_dir.write_atomic(pair.key_name, old_key, mode=key_mode, uid=key_uid, gid=key_gid)
        raise
    pair.key_dir.sync()
    pair.cert_dir.sync()


def foresee_modes(pair: Pair, cert_holds_key: bool) -> None:
    """What :func:`write_pair` would decide on its own about the modes (a key readable by others made 0600), added to
    ``pair.warnings`` as the write would: check mode says what the run will. ``cert_holds_key``: the certificate
    file to be written holds the key (a combined file)."""
    key_mode = _owner_mode(pair.key_dir, pair.key_name, KEY_MODE)[0]
    _key_file_mode(pair, pair.key_path, key_mode)
    if cert_holds_key:
        _key_file_mode(pair, pair.cert_path, _owner_mode(pair.cert_dir, pair.cert_name, CERT_MODE)[0])


def sweep_staged(pair: Pair, check_mode: bool, now: Optional[float] = None, also: Sequence[str] = ()) -> List[str]:
    """Remove (check mode: only list) what a killed run of the pair left staged: ``.<name>.<12 hex>.tmp`` beside the
    key (a new private key, else never removed), the certificate, the pending key and the kept pairs, and beside each
    path of ``also`` (the CSR, the ACME account key and state file). Only these names, only stale files of this user
    or of the pair's ``owner`` (``SafeDir.stale_staged``: a concurrent run's are younger)."""
    patterns: Dict[str, List[str]] = {}

    def look_for(directory: str, name: str, tail: str = '') -> None:
        # as staged_name names it: a name over ~237 bytes is staged under its first characters (staged_name_re);
        # ``tail``'s characters are literal but for '#', any digit (a stamp's)
        atoms = ['[0-9]' if c == '#' else re.escape(c) for c in tail]
        patterns.setdefault(directory, []).append(staged_name_re(name, atoms))
    for path in also:
        look_for(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
    look_for(os.path.dirname(pair.cert_path), pair.cert_name)
    look_for(os.path.dirname(pair.key_path), pair.key_name)
    look_for(os.path.dirname(pair.key_path), pair.key_name, '.pending')
    stamp = '.' + '#' * 8 + 'T' + '#' * 12 + 'Z'   # STAMP_RE
    for suffix in ('bak', 'rejected'):
        look_for(pair.cert_backup_dir, pair.cert_name, stamp + '.cert.' + suffix)
        look_for(pair.key_backup_dir, pair.key_name, stamp + '.key.' + suffix)
    found: List[str] = []
    for path, names in patterns.items():
        if path not in pair._dirs:
            if not os.path.isdir(path):
                continue   # a backup_dir not made yet holds nothing
            try:
                pair.directory(path)
            except UnsafeFileError:
                continue   # a backup_dir the swap itself refuses (saying why) is not swept either
        found.extend(pair.directory(path).stale_staged('|'.join(names), remove=not check_mode, now=now))
    return sorted(found)


def keep_copy(pair: Pair, stamp: str, suffix: str = 'bak') -> Dict[str, str]:
    """Copy the live pair to timestamped files (key 0600); returns their paths ({} if nothing live)."""
    cert_bytes = pair.read_cert()
    key_bytes = pair.read_key()
    if cert_bytes is None or key_bytes is None:
        return {}
    cert_dir, key_dir = pair.backup_dirs()
    cert_bak, key_bak = pair.backup_names(stamp, suffix)
    cert_mode, _uid, _gid = _owner_mode(pair.cert_dir, pair.cert_name, CERT_MODE)
    key_dir.write_atomic(key_bak, key_bytes, mode=KEY_MODE)
    # A kept combined file holds the old key: kept 0600 as every kept key is.
    cert_dir.write_atomic(cert_bak, cert_bytes, mode=KEY_MODE if holds_private_key(cert_bytes) else cert_mode & 0o755)
    cert_path, key_path = pair.backup_paths(stamp, suffix)
    return {'cert': cert_path, 'key': key_path}


def swap_in(pair: Pair, cert_bytes: bytes, key_bytes: bytes, stamp: str) -> Dict[str, str]:
    """Keep the previous pair, then put the new one in place. Returns the backup paths."""
    backup = keep_copy(pair, stamp)
    write_pair(pair, cert_bytes, key_bytes)
    return backup


def read_backup(pair: Pair, stamp: str) -> Tuple[Optional[bytes], Optional[bytes]]:
    cert_dir, key_dir = pair.backup_dirs()
    cert_bak, key_bak = pair.backup_names(stamp)
    return (pair.read_in(cert_dir, cert_bak, 'Kept certificate'), pair.read_in(key_dir, key_bak, 'Kept private key'))


def live_matches_backup(pair: Pair) -> bool:
    """Whether the live pair is byte-identical to the newest backup (a rollback already happened)."""
    pairs = pair.backups()
    if not pairs:
        return False
    cert_bytes, key_bytes = read_backup(pair, pairs[0][0])
    return pair.read_cert() == cert_bytes and pair.read_key() == key_bytes


def rollback(pair: Pair, stamp: str, check_mode: bool = False) -> Dict[str, object]:
    """Put the newest backup pair back. The pair being replaced is kept as ``.rejected``.
    Returns {changed, restored_from, rejected}."""
    pairs = pair.backups()
    if not pairs:
        raise OpsReadyError('No previous key/certificate pair of %s is kept (looked for %s.<stamp>.cert.bak in %s): '
                            'nothing to roll back to. Restore from your file backups.'
                            % (pair.cert_path, pair.cert_name, pair.cert_backup_dir))
    backup_stamp, cert_bak, key_bak = pairs[0]
    cert_bytes, key_bytes = read_backup(pair, backup_stamp)
    if cert_bytes is None or key_bytes is None:
        raise OpsReadyError('Backup pair %s / %s vanished while rolling back.' % (cert_bak, key_bak))
    if pair.read_cert() == cert_bytes and pair.read_key() == key_bytes:
        return {'changed': False, 'restored_from': {'cert': cert_bak, 'key': key_bak}, 'rejected': {}}
    rejected: Dict[str, str] = {}
    if check_mode:
        foresee_modes(pair, holds_private_key(cert_bytes))
    else:
        rejected = keep_copy(pair, stamp, suffix='rejected')
        write_pair(pair, cert_bytes, key_bytes)
    return {'changed': True, 'restored_from': {'cert': cert_bak, 'key': key_bak}, 'rejected': rejected}


def prune_backups(pair: Pair, keep: int, check_mode: bool = False) -> List[str]:
    """Delete backup pairs beyond the newest ``keep`` (0 keeps all). Returns the deleted paths."""
    if keep <= 0:
        return []
    deleted = []
    cert_dir, key_dir = pair.backup_dirs()
    for stamp, cert_bak, key_bak in pair.backups()[keep:]:
        cert_name, key_name = pair.backup_names(stamp)
        for directory, name, path in ((cert_dir, cert_name, cert_bak), (key_dir, key_name, key_bak)):
            if not check_mode:
                directory.unlink(name)
            deleted.append(path)
    return deleted
