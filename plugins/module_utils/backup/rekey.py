# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key rotation: re-encrypt the kept age-encrypted artifacts of a catalog to a new recipient set.

One streaming pass per artifact (decrypt with the given identity, encrypt to the new recipients, 64 KiB
at a time: never the artifact in memory), written side by side as ``<artifact>.partial``. The new file
is checked before it replaces the old one: the plaintext that went in hashes to the checksum sealed in
the manifest (and has its size), the file on disk has the size written, and when one of the given
identities is among the new recipients the new file is decrypted end to end and compared again.

Swap order, so that an artifact is readable by the old keys or by the new ones at every moment and its
manifest always describes the file that is there:

1. the manifest is rewritten (atomically) with ``rekey_pending``: the new file's sha256, size,
   encryption record and inode; the main fields still describe the old file, which is still there;
2. the ``.partial`` is renamed over the artifact (atomic; the inode moves with it) and the directory fsynced;
3. the manifest is rewritten with the new fields and without ``rekey_pending``.

A crash between 2 and 3 leaves a manifest whose ``rekey_pending`` inode is the artifact's: every reader
(``manifest.Manifest``) then takes the pending fields, so the manifest still matches the file; the next
run writes it out. A crash before 2 leaves the old artifact, the old manifest fields and a stale
``.partial`` the next run removes.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest, write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import PARTIAL_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow

BLOCK = 1024 * 1024
PENDING = 'rekey_pending'
# Fault-injection points (tests): the hook is called with (point, artifact id) and may raise.
POINTS = ('after_partial', 'after_pending', 'after_swap', 'after_manifest')


def recipients_of(entry: Manifest) -> List[str]:
    return sorted((entry.data.get('encryption') or {}).get('recipients') or [])


def _fields(data: Dict[str, Any]) -> Dict[str, Any]:
    return dict((k, v) for k, v in data.items() if k != PENDING)


class _HashingSink:
    """Writes and hashes the ciphertext in its own thread (hashing and write() release the GIL), so the
    encryption in the main thread does not wait for them."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._queue: 'queue.Queue[Optional[bytes]]' = queue.Queue(maxsize=8)
        self._failure: List[BaseException] = []
        self._thread = threading.Thread(target=self._run, name='opsready-rekey-write', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._failure:
                continue  # keep draining so the producer never blocks
            try:
                self.handle.write(data)
                self.sha256.update(data)
            except BaseException as exc:  # re-raised in the main thread by write()/finish()
                self._failure.append(exc)

    def write(self, data: Any) -> int:
        if self._failure:
            raise self._failure[0]
        self._queue.put(bytes(data))
        self.size += len(data)
        return len(data)

    def finish(self) -> None:
        """Wait for every queued block; raise what the writing thread met."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._failure:
            raise self._failure[0]


def _pump(reader: Any, writer: Any) -> None:
    """Copy ``reader`` into ``writer`` with reading/decrypting in a second thread: hashing, file I/O and
    (in part) the AEAD release the GIL, so decryption and encryption overlap as in ``age -d | age -r``."""
    blocks: 'queue.Queue[bytes]' = queue.Queue(maxsize=4)
    failure: List[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            while not stop.is_set():
                block = reader.read(BLOCK)
                blocks.put(block)
                if not block:
                    return
        except BaseException as exc:  # handed to the main thread, re-raised there
            failure.append(exc)
            blocks.put(b'')

    thread = threading.Thread(target=produce, name='opsready-rekey-read', daemon=True)
    thread.start()
    try:
        while True:
            block = blocks.get()
            if not block:
                break
            writer.write(block)
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                blocks.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()
    if failure:
        raise failure[0]


def settle(entry: Manifest) -> Optional[str]:
    """Finish or undo what an interrupted run left for ``entry``; returns what was done (None: nothing)."""
    partial = entry.path + PARTIAL_SUFFIX
    done = None
    if PENDING in entry.data:
        # Manifest() already took the pending fields when the swap happened: writing drops the marker.
        write_manifest(entry.path, _fields(entry.data))
        entry.data = _fields(entry.data)
        done = 'manifest completed'
    if os.path.lexists(partial):
        os.unlink(partial)
        fsync_dir(entry.directory)
        done = done or 'stale %s removed' % os.path.basename(partial)
    return done


def _verify_new(entry: Manifest, partial: str, sink: _HashingSink, info: Dict[str, Any], expected: str,
                size: Optional[int], identities: Sequence[encryption.Identity], wanted: List[str]) -> None:
    if info['plaintext_size'] != size and size is not None:
        raise IntegrityError('%s: re-encrypted %d plaintext bytes, the manifest records %d; the old file was kept.'
                             % (entry.path, info['plaintext_size'], size), path=entry.path)
    # No read-back of the bytes just written: it would hash the page cache, not the disk. The size is checked;
    # the decryption below (when a new key is given) proves the new file opens and yields the sealed checksum.
    if os.path.getsize(partial) != sink.size:
        raise IntegrityError('%s has %d bytes on disk, not the %d written; the old file was kept.'
                             % (partial, os.path.getsize(partial), sink.size), path=partial)
    new_keys = [i for i in identities if i.recipient in wanted]
    if new_keys:
        with open(partial, 'rb') as raw:
            reader = encryption.DecryptingReader(raw, new_keys, partial, recipients=wanted, expected_sha256=expected)
            reader.drain()


def rekey(directory: str, recipients: Sequence[str], identities: Sequence[encryption.Identity],
          check_mode: bool = False, engine: Optional[str] = None, database: Optional[str] = None,
          fault: Optional[Callable[[str, str], None]] = None) -> Dict[str, Any]:
    """Re-encrypt every encrypted artifact of ``directory`` not already encrypted to exactly ``recipients``."""
    wanted = sorted(encryption.recipients_option(True, list(recipients), 'the artifacts'))
    if not os.path.isdir(directory):
        raise OpsReadyError('Backup directory %s does not exist.' % directory, path=directory)
    catalog = Catalog(directory, engine=engine, database=database)
    result: Dict[str, Any] = {'rekeyed': [], 'already': [], 'not_encrypted': [], 'settled': [], 'failed': [],
                              'bytes': 0, 'recipients': wanted}
    now = isoformat(utcnow())
    for entry in catalog.entries:
        if not entry.data.get('encryption'):
            result['not_encrypted'].append(entry.id)
            continue
        if entry.members:
            result['failed'].append({'id': entry.id, 'msg': 'multi-file artifacts are not re-encrypted here'})
            continue
        if not check_mode:
            done = settle(entry)
            if done:
                result['settled'].append({'id': entry.id, 'what': done})
        current = recipients_of(entry)
        if current == wanted:
            result['already'].append(entry.id)
            continue
        result['rekeyed'].append(entry.id)
        if check_mode:
            continue
        try:
            result['bytes'] += _rekey_one(entry, wanted, current, identities, now, fault)
        except OpsReadyError as exc:
            result['rekeyed'].remove(entry.id)
            result['failed'].append({'id': entry.id, 'msg': exc.message})
    result['readable_by'] = readable_by(Catalog(directory, engine=engine, database=database), wanted,
                                        planned=result['rekeyed'] if check_mode else None)
    return result


def _rekey_one(entry: Manifest, wanted: List[str], current: List[str], identities: Sequence[encryption.Identity],
               now: str, fault: Optional[Callable[[str, str], None]]) -> int:
    info_old = entry.data['encryption']
    path = entry.path
    partial = path + PARTIAL_SUFFIX
    expected = None
    if info_old.get('plaintext_sha256_sealed') and identities:
        try:
            expected = encryption.open_sealed(info_old['plaintext_sha256_sealed'], identities, path)
        except OpsReadyError:
            pass  # the reader below says clearly that the key does not open it
    raw = open(path, 'rb')
    reader = encryption.DecryptingReader(raw, identities, path, recipients=current, expected_sha256=expected)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with reader, os.fdopen(fd, 'wb') as handle:
            sink = _HashingSink(handle)
            try:
                writer = encryption.EncryptingWriter(sink, wanted, hash_plaintext=False)
                _pump(reader, writer)
                writer.close()
            finally:
                sink.finish()
            handle.flush()
            os.fsync(handle.fileno())
        info = writer.info(reader.plaintext.hexdigest())
        if expected is None:
            expected = reader.plaintext.hexdigest()  # an old manifest without a sealed checksum
        if reader.plaintext.hexdigest() != expected:
            raise IntegrityError('%s decrypts to a plaintext whose sha256 differs from the manifest; the old file was '
                                 'kept.' % path, path=path)
        _verify_new(entry, partial, sink, info, expected, info_old.get('plaintext_size'), identities, wanted)
        if fault:
            fault('after_partial', entry.id)
        retired = sorted(set(info_old.get('retired') or []) | (set(current) - set(wanted)))
        info['retired'] = [r for r in retired if r not in wanted]
        info['rekeyed_at'] = now
        new_fields = {'sha256': sink.sha256.hexdigest(), 'size': sink.size, 'encryption': info}
        # 1. the manifest learns of the new file (by inode) while still describing the old one
        write_manifest(path, dict(_fields(entry.data), **{PENDING: dict(new_fields, inode=os.stat(partial).st_ino)}))
        if fault:
            fault('after_pending', entry.id)
        # 2. the swap: readers see the old file or the new one
        os.replace(partial, path)
        fsync_dir(entry.directory)
        if fault:
            fault('after_swap', entry.id)
        # 3. the manifest describes the new file only
        write_manifest(path, dict(_fields(entry.data), **new_fields))
        entry.data = dict(_fields(entry.data), **new_fields)
        if fault:
            fault('after_manifest', entry.id)
        return sink.size
    except (OpsReadyError, OSError):
        # A refused or failed re-encryption keeps the old file; a crash (or an injected fault) leaves the
        # .partial for settle() on the next run.
        if os.path.lexists(partial):
            os.unlink(partial)
        raise


def readable_by(catalog: Catalog, wanted: List[str], planned: Optional[List[str]] = None) -> Dict[str, List[str]]:
    """recipient -> the encrypted artifacts it opens (after the run; in check mode, after the planned one)."""
    result: Dict[str, List[str]] = {}
    for entry in catalog.entries:
        if not entry.data.get('encryption'):
            continue
        keys = wanted if planned is not None and entry.id in planned else recipients_of(entry)
        for key in keys:
            result.setdefault(key, []).append(entry.id)
    return result


def still_opened_by(directory: str, identities: Sequence[Any]) -> Dict[str, List[str]]:
    """For each given identity's recipient: the artifacts of ``directory`` still encrypted to it."""
    keys = {getattr(i, 'recipient', None) for i in identities} - {None}
    found: Dict[str, List[str]] = {}
    if not keys:
        return found
    try:
        catalog = Catalog(directory)
    except OpsReadyError:
        return found
    for entry in catalog.all_entries:
        for key in set(recipients_of(entry)) & keys:
            found.setdefault(key, []).append(entry.id)
    return found


__all__ = ['rekey', 'settle', 'readable_by', 'still_opened_by', 'POINTS', 'PENDING']
