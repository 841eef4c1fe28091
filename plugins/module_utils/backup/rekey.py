# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key rotation: re-encrypt the kept age-encrypted artifacts of a catalog to a new recipient set.

One streaming pass per artifact (decrypt with the given identity, encrypt to the new recipients, 64 KiB
at a time: never the artifact in memory), written side by side as ``<artifact>.partial``. Decryption runs
in a forked child process that hands the plaintext here through a small shared-memory ring (see
``_DecryptingChild``): ChaCha20-Poly1305 in older ``cryptography`` releases holds the GIL, so two threads of one
process would take turns on one core where ``age -d | age -r`` uses two (50.0 releases it in ``encrypt``,
``encrypt_into`` and ``decrypt_into``: two threads took 1.07-1.19x the time of one, as ``hashlib`` does; the
process works with both, and keeps the key-holding decryption apart from the writing). The chunks are
decrypted straight into the ring and sealed straight from it (``decrypt_into``/``encrypt_into``): no copy of
the stream besides the file reads and writes. The new file is checked before it replaces the old one: the
plaintext that went in hashes to the checksum sealed in the manifest (and has its size), or, without a sealed
checksum, the old file as read hashes to the manifest's sha256; the file on disk has the size written, and
when one of the given identities is among the new recipients the new file is decrypted end to end with it, from the
bytes as they are written (``_StreamVerifier``, in the same pass), and its plaintext compared again.

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

import contextlib
import hashlib
import io
import json
import os
import mmap
import queue
import signal
import stat
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import ARTIFACT_NAME, Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.leftovers import set_lock_path
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    Manifest, loads_strict, read_manifest, write_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common import locks, streaming
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import PARTIAL_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

# Two chunks per block, four blocks in the ring, two in the write queue: short bursts per stage, and room for the
# child to run ahead. On a busy machine a stage that works in long bursts waits longer for a CPU each time, and a
# stage holding one of only two blocks stalls the others (1 GB, alternated rounds on 2 cores: at load 9 and
# normal priority, 128 KiB x 2 slots 6.7 s, 128 KiB x 4 5.8 s, 256 KiB x 4 8.5 s; with most of both cores (nice -20)
# 2.57 / 2.40 / 2.35 s, the pipe 2.18 s). 512 KiB blocks cut the hand-offs' CPU (256 MB: 0.73-0.76 CPU s vs
# 0.76-0.83) but at load 7 took longer (2.2-2.8 s vs 1.2-2.1 s, alternated): not taken.
BLOCK = 128 * 1024
# What the in-stream verification (_StreamVerifier) reads at a time: an age chunk and its tag.
CHUNK_READ = encryption.CHUNK + encryption.TAG
# The child tells the kernel to drop the old file's pages behind it every DROP_EVERY bytes: the file is read once
# and replaced, so its cache is of no further use, and dropping it while the stream runs (on a core the stream
# shares) takes that work out of the swap at the end, where freeing a cached 1 GB file took ~0.08 s of the ~0.2 s.
# Not for a file changed in the last DROP_AGE seconds: its pages may still be dirty (the kernel writes them back
# within ~35 s by default), and the advice would have the kernel write out a file that is about to be deleted
# (measured on a freshly copied 1 GB artifact: the rotation took ~0.1 s longer).
DROP_EVERY = 32 * 1024 * 1024
DROP_AGE = 120
PENDING = 'rekey_pending'
# What every age v1 file begins with: an artifact whose manifest records no encryption is looked at for it.
AGE_HEADER = encryption.VERSION_LINE + b'\n'
# Held in the backup directory for a whole (real) run: one rotation of a directory at a time.
RUN_LOCK = '.backup_rekey.lock'
# What a set lock held by a backup of the set is called (the start of locks.exclusive's busy message).
SET_BUSY = 'A backup of this set is running'
# Fault-injection points (tests): the hook is called with (point, artifact id) and may raise.
POINTS = ('after_partial', 'after_pending', 'after_swap', 'after_manifest')
# The decrypting child's report (``_DecryptingChild.result``) is a few hundred bytes: anything longer is not one.
REPORT_LIMIT = 64 * 1024
# ... and this one, in the parent after the first plaintext block came from the decrypting child (tests kill it).
STREAM_POINT = 'streaming'


def recipients_of(entry: Manifest) -> List[str]:
    return sorted(set((entry.data.get('encryption') or {}).get('recipients') or []))


def _fields(data: Dict[str, Any]) -> Dict[str, Any]:
    return dict((k, v) for k, v in data.items() if k != PENDING)


class _HashingSink:
    """Writes and hashes the ciphertext in its own thread (hashing and write() release the GIL), so the
    encryption in the main thread does not wait for them. Like ``ArtifactWriter``, it has the file written back
    as it grows (``streaming.BackgroundSync``), so the fsync before the swap does not write a whole new artifact
    after the stream has ended."""

    def __init__(self, handle: Any, verifier: Optional['_StreamVerifier'] = None) -> None:
        self.handle = handle
        self._verifier = verifier
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._written = 0
        self._next_sync = streaming.SYNC_EVERY
        self._syncer: Optional[streaming.BackgroundSync] = None
        self._queue: 'queue.Queue[Any]' = queue.Queue(maxsize=2)
        self._spare: List[bytearray] = []   # written and hashed: EncryptingWriter refills them (spare())
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
                self._written += len(data)
                if self._verifier is not None:
                    # the bytes just written, not copied: a bytearray comes back to spare() once it was decrypted
                    self._verifier.feed(data, self._give_back if isinstance(data, bytearray) else None)
                elif isinstance(data, bytearray):
                    self._give_back(data)
                if self._written >= self._next_sync:
                    self._next_sync = self._written + streaming.SYNC_EVERY
                    self.handle.flush()  # what the buffered handle holds is not the kernel's to write back yet
                    if self._syncer is None:
                        self._syncer = streaming.BackgroundSync(self.handle.fileno())
                    self._syncer.poke()
            except BaseException as exc:  # re-raised in the main thread by write()/finish()
                self._failure.append(exc)

    def _give_back(self, data: bytearray) -> None:
        """``data`` was written, hashed (and verified): EncryptingWriter may fill it again (``spare()``)."""
        if len(self._spare) < 4:
            self._spare.append(data)  # list.append/pop are atomic: no lock (called from this and the verify thread)

    def spare(self, size: int) -> Optional[bytearray]:
        """A buffer already written and hashed, for EncryptingWriter to fill again (None: allocate one)."""
        try:
            data = self._spare.pop()
        except IndexError:
            return None
        return data if len(data) == size else None

    def write(self, data: Any) -> int:
        if self._failure:
            raise self._failure[0]
        # EncryptingWriter hands over a buffer it never touches again (until spare() gives it back): queued as is.
        self._queue.put(data if isinstance(data, (bytes, bytearray)) else bytes(data))
        self.size += len(data)
        return len(data)

    def finish(self) -> None:
        """Wait for every queued block; raise what the writing thread met."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._verifier is not None:
            self._verifier.stop()   # everything written was fed: its verdict is read by _verify_new
        if self._syncer is not None:   # before the descriptor is closed; its error is the final fsync's too
            self._syncer.stop()
            error, self._syncer = self._syncer.error, None
            if error is not None and not self._failure:
                self._failure.append(error)
        if self._failure:
            raise self._failure[0]


class _QueueRaw(io.RawIOBase):
    """The bytes fed to a ``_StreamVerifier``, as a file for ``DecryptingReader`` (end of file at the sentinel).
    A block comes with what to call once it has been read whole (the sink takes its buffer back to refill it)."""

    def __init__(self, source: 'queue.Queue[Optional[Tuple[Any, Optional[Callable[[Any], None]]]]]') -> None:
        super().__init__()
        self._source = source
        self._block = memoryview(b'')
        self._owned: Optional[Tuple[Any, Optional[Callable[[Any], None]]]] = None
        self.ended = False

    def readable(self) -> bool:
        return True

    def _done(self) -> None:
        """The current block was read whole: its buffer goes back to its owner (no view of it kept here)."""
        self._block = memoryview(b'')
        owned, self._owned = self._owned, None
        if owned is not None and owned[1] is not None:
            owned[1](owned[0])

    def take(self) -> bool:
        """The next block from the queue (False: the sentinel came)."""
        self._done()
        item = self._source.get()
        if item is None:
            self.ended = True
            return False
        self._owned = item
        self._block = memoryview(item[0])
        return True

    def readinto(self, target: Any) -> int:
        while not self._block:
            if self.ended or not self.take():
                return 0
        count = min(len(target), len(self._block))
        target[:count] = self._block[:count]
        self._block = self._block[count:]
        if not self._block:
            self._done()
        return count


class _StreamVerifier:
    """Decrypts the new file with the new identity while it is written, from the bytes the sink writes (in a
    thread of its own; ChaCha20-Poly1305 and SHA-256 release the GIL), instead of reading the whole file back once
    the stream has ended: the same proof (every chunk authenticates under the new key, the plaintext has the sealed
    checksum, nothing follows the final chunk), without a second pass after the stream. A read-back would have
    hashed the page cache, not the disk, as these bytes are: the size on disk is checked apart.

    After ``stop()``: ``verified`` (every chunk authenticated up to the final one, at the end of what was written)
    and the plaintext's ``sha256`` and ``size``, compared by ``_verify_new``; or ``error``, what the decryption met.
    The thread keeps taking what is fed after a failure, so the writer never blocks on it."""

    def __init__(self, identities: Sequence[encryption.Identity], name: str, recipients: List[str]) -> None:
        self._args = (identities, name, recipients)
        self._queue: 'queue.Queue[Optional[Tuple[Any, Optional[Callable[[Any], None]]]]]' = queue.Queue(maxsize=4)
        self.error: Optional[BaseException] = None
        self.verified = False
        self.sha256: Optional[str] = None
        self.size = 0
        self._thread = threading.Thread(target=self._run, name='opsready-rekey-verify', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        identities, name, recipients = self._args
        raw = _QueueRaw(self._queue)
        try:
            reader = encryption.DecryptingReader(io.BufferedReader(raw, CHUNK_READ), identities, name,
                                                 recipients=recipients)
            reader.drain()
            self.sha256, self.size = reader.plaintext.hexdigest(), reader.plaintext_size
            self.verified = raw.ended   # drain() returned at the end of what was written, not before
        except BaseException as exc:  # reported by _verify_new, before the swap
            self.error = exc
        while not raw.ended:   # what is still fed after a failure (each buffer handed back as it comes)
            raw.take()
        raw._done()   # pylint: disable=protected-access

    def feed(self, data: Any, done: Optional[Callable[[Any], None]] = None) -> None:
        """``data`` as written, not copied: its writer does not touch it again until ``done(data)`` is called
        (once it has been decrypted; None for an immutable ``bytes``)."""
        self._queue.put((data, done))

    def stop(self) -> None:
        """End of the stream (or the run given up): wait for the verdict."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _drop_behind(fd: int, dropped: int) -> int:
    """Drop the page cache of ``fd`` up to its read position once DROP_EVERY more bytes were read; returns the new
    mark. Advice only: the file is not changed, and an error (a file system without it) changes nothing."""
    position = os.lseek(fd, 0, os.SEEK_CUR)
    if position - dropped < DROP_EVERY:
        return dropped
    try:
        os.posix_fadvise(fd, dropped, position - dropped, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    return position


class _DecryptingChild:
    """The plaintext of ``reader`` (header already opened here), decrypted in a forked child into shared memory.

    Why a process: the AEAD of older cryptography releases holds the GIL, so a decrypting thread and the encrypting
    one would share one core (see the module docstring).
    Why a fork (not a new interpreter): the child already holds the opened reader (the file key, the file position),
    so no key material crosses argv, an environment, a file or a pipe, and no code has to be found on disk (a
    module runs from its AnsiballZ payload).

    Why shared memory: the plaintext goes through a ring of ``SLOTS`` blocks of an anonymous shared mapping
    (no file: it is gone with both processes) that the child decrypts into and the parent encrypts from, so it is
    not copied into a pipe and out of it again (2 GB of copies per GB, ~10 % of a rotation's CPU). The pipes carry
    only block numbers: ``free`` (parent to child) the blocks the parent is done with, ``data`` (child to parent)
    ``(block, length)`` of each one filled, in stream order. A block is refilled only after the parent handed it
    back, so the parent never reads a block being written. The child keeps only the encrypted file's descriptor and
    its pipe ends; at the end of the stream it closes ``data`` and writes one JSON report to ``status``: the
    plaintext's sha256 and size once every chunk authenticated and the sealed checksum matched, or the error. The
    parent trusts the stream only after that report (``result()``); ``close()`` kills and reaps the child on every
    other path (closing the pipes first: a child waiting for a free block gets end-of-file).
    """

    SLOTS = 4
    _MESSAGE = struct.Struct('<II')

    def __init__(self, reader: encryption.DecryptingReader, name: str) -> None:
        self.name = name
        self.received = 0
        self.pid: Optional[int] = None
        self._fds: List[int] = []
        self._held: Optional[int] = None
        self._ring = memoryview(mmap.mmap(-1, self.SLOTS * BLOCK))  # MAP_SHARED | MAP_ANONYMOUS
        try:
            data_r, data_w = os.pipe()
            self._fds += [data_r, data_w]
            free_r, free_w = os.pipe()
            self._fds += [free_r, free_w]
            status_r, status_w = os.pipe()
            self._fds += [status_r, status_w]
            os.write(free_w, bytes(range(self.SLOTS)))  # every block free; fits any pipe buffer
            pid = os.fork()
        except BaseException:
            self._close_fds()
            raise
        if pid == 0:  # pragma: no cover - the child (coverage does not follow a fork)
            code = 1
            try:
                code = self._child(reader, self._ring, free_r, data_w, status_w)
            finally:
                os._exit(code)
        self.pid = pid
        for fd in (data_w, free_r, status_w):
            os.close(fd)
            self._fds.remove(fd)
        self._data, self._free, self._status = data_r, free_w, status_r
        reader.close()  # the child has its own descriptor of the file

    @classmethod
    def _child(cls, reader: encryption.DecryptingReader, ring: memoryview, free_r: int, data_w: int,
               status_w: int) -> int:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        keep = sorted({reader._handle.fileno(), free_r, data_w, status_w})  # pylint: disable=protected-access
        low = 3
        for fd in keep + [os.sysconf('SC_OPEN_MAX') if hasattr(os, 'sysconf') else 65536]:
            if fd > low:
                os.closerange(low, fd)  # nothing of the parent's (locks, other files, the module's pipes)
            low = max(low, fd + 1)
        report: Dict[str, Any]
        source = reader._handle.fileno()  # pylint: disable=protected-access
        drop = bool(DROP_EVERY) and hasattr(os, 'posix_fadvise') and time.time() - os.fstat(source).st_mtime > DROP_AGE
        dropped = 0
        try:
            while True:
                slot = os.read(free_r, 1)
                if not slot:
                    return 1  # the parent is gone or gave up
                index = slot[0]
                count = reader.readinto(ring[index * BLOCK:(index + 1) * BLOCK])
                if not count:
                    break
                _write_all(data_w, cls._MESSAGE.pack(index, count))
                if drop:
                    dropped = _drop_behind(source, dropped)
            report = {'ok': True, 'sha256': reader.plaintext.hexdigest(), 'size': reader.plaintext_size}
            handle = reader._handle  # pylint: disable=protected-access
            if isinstance(handle, streaming.ChecksummedFile):
                handle.finish()  # the whole file read and compared (raises IntegrityError on a mismatch)
                report.update(stored_sha256=handle.hexdigest(), stored_size=handle.bytes_read)
        except OpsReadyError as exc:
            report = {'ok': False, 'integrity': isinstance(exc, IntegrityError), 'message': exc.message}
        except BaseException as exc:  # an I/O error reading the file, a signal: reported, never raised here
            report = {'ok': False, 'integrity': False,
                      'message': '%s: decryption failed: %s' % (reader.name, getattr(exc, 'strerror', None) or exc)}
        try:
            os.close(data_w)  # end of stream for the parent, then the verdict
            _write_all(status_w, json.dumps(report).encode('utf-8'))
            os.close(status_w)
        except OSError:  # the parent is gone
            return 1
        return 0

    def next_block(self) -> Optional[memoryview]:
        """The next block of plaintext (a view of the shared ring, valid until the next call), None at the end."""
        if self._held is not None:
            slot, self._held = self._held, None
            try:
                os.write(self._free, bytes([slot]))  # one byte: never a short write
            except BrokenPipeError:
                pass  # the child has ended (its last block was this one) or died: the data pipe and report tell
        message = b''
        while len(message) < self._MESSAGE.size:
            more = os.read(self._data, self._MESSAGE.size - len(message))
            if not more:
                if message:
                    raise IntegrityError('%s: the process decrypting it sent a cut message; the old file was kept.'
                                         % self.name, path=self.name)
                return None
            message += more
        slot, count = self._MESSAGE.unpack(message)
        if slot >= self.SLOTS or not 0 < count <= BLOCK:
            raise IntegrityError('%s: the process decrypting it sent block %d of %d bytes; the old file was kept.'
                                 % (self.name, slot, count), path=self.name)
        self._held = slot
        self.received += count
        return self._ring[slot * BLOCK:slot * BLOCK + count]

    def result(self) -> Dict[str, Any]:
        """The child's report once the stream ended (sha256, size); raises what the child met."""
        raw = b''
        while len(raw) <= REPORT_LIMIT:
            more = os.read(self._status, 65536)
            if not more:
                break
            raw += more
        status = self._reap(kill=len(raw) > REPORT_LIMIT)   # a child still writing past the cap is not waited for
        # The report decides whether the re-encrypted file replaces the old one: read as the catalog reads a
        # manifest (a duplicated "ok" is not its last value, NaN is not a size), refused whole otherwise.
        if raw:
            why = None
            if len(raw) > REPORT_LIMIT:
                why = 'more than %d bytes' % REPORT_LIMIT
            else:
                try:
                    report = loads_strict(raw)
                except ValueError as exc:
                    why = str(exc)
                else:
                    if not isinstance(report, dict):
                        why = 'not a JSON object'
            if why is not None:
                raise OpsReadyError('%s: the process decrypting it sent a report that cannot be trusted (%s); the old '
                                    'file was kept. Run backup_rekey again; report this as a bug if it recurs.'
                                    % (self.name, why), path=self.name)
        else:
            report = None
        if not isinstance(report, dict):
            if os.WIFSIGNALED(status):
                how = 'was killed by signal %d' % os.WTERMSIG(status)
            else:
                how = 'exited with status %d' % os.WEXITSTATUS(status)
            raise OpsReadyError('%s: the process decrypting it %s before it finished; the old file was kept. Run '
                                'backup_rekey again (check the system log for an out-of-memory kill).'
                                % (self.name, how), path=self.name)
        if not report.get('ok'):
            error = IntegrityError if report.get('integrity') else OpsReadyError
            message = str(report.get('message'))
            if 'old file was kept' not in message:
                message += ' The old file was kept.'
            raise error(message, path=self.name)
        if report.get('size') != self.received:
            raise IntegrityError('%s: %d plaintext bytes came through the pipe, the decrypting process sent %s; the '
                                 'old file was kept.' % (self.name, self.received, report.get('size')), path=self.name)
        return report

    def _close_fds(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def _reap(self, kill: bool) -> int:
        self._close_fds()  # a child blocked writing gets EPIPE
        pid, self.pid = self.pid, None
        if pid is None:
            return 0
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)  # still our child: not reaped yet, so the pid cannot be reused
            except ProcessLookupError:
                pass
        return os.waitpid(pid, 0)[1]

    def close(self) -> None:
        """Kill and reap the child if ``result()`` did not; close the pipes. Every path ends here."""
        self._reap(kill=True)


def settle(entry: Manifest, check_mode: bool = False) -> Optional[str]:
    """Finish or undo what an interrupted run left for ``entry``; returns what was done (None: nothing). In check
    mode, what would be done, and nothing is."""
    partial = entry.path + PARTIAL_SUFFIX
    done = None
    if PENDING in entry.data:
        # Manifest() already took the pending fields when the swap happened: writing drops the marker.
        if not check_mode:
            write_manifest(entry.path, _fields(entry.data), manifest_path=entry.manifest_path)
            entry.data = _fields(entry.data)
        done = 'manifest completed'
    try:
        found = os.lstat(partial)
    except FileNotFoundError:
        found = None
    if found is not None:
        # Not one of ours (a rekey writes a file there): removing a tree is not this module's to decide. Looked at
        # before the unlink, so that check mode fails it as the run does.
        if stat.S_ISDIR(found.st_mode):
            raise _partial_is_a_directory(partial)
        if not check_mode:
            try:
                os.unlink(partial)
            except IsADirectoryError:   # made a directory since the lstat
                raise _partial_is_a_directory(partial)
            fsync_dir(entry.directory)
        done = done or 'stale %s removed' % os.path.basename(partial)
    return done


def _partial_is_a_directory(partial: str) -> OpsReadyError:
    return OpsReadyError('%s is a directory where backup_rekey writes the re-encrypted file; the artifact was not '
                         're-encrypted. Move it away and run backup_rekey again.' % partial, path=partial)


def _broken_failures(catalog: Catalog) -> List[Dict[str, str]]:
    """The manifests the catalog could not read (torn, not JSON, a symlink...): their artifacts are not in the
    catalog, so a rotation would pass over them while reporting every artifact rotated, the retired key still
    opening them. Reported as failures instead, by manifest name (their artifact and set are unknown)."""
    failures = []
    for broken in catalog.broken:
        name = os.path.basename(broken['manifest'])
        failures.append({'id': name, 'msg': 'manifest %s cannot be read (%s): its artifact, if it has one, was not '
                                            're-encrypted and keeps its old keys. Repair or remove the manifest (and '
                                            'its artifact), then run backup_rekey again.'
                                            % (name, str(broken.get('error', '')).rstrip('.'))})
    return failures


def _check_opens(entry: Manifest, current: List[str], identities: Sequence[encryption.Identity]) -> None:
    """Check mode: the header opens with the identities given (what the real run meets first), nothing else read."""
    try:
        handle = safeio.open_stored(entry.path)
    except FileNotFoundError:
        raise OpsReadyError(_missing(entry), path=entry.path)
    reader = encryption.DecryptingReader(handle, identities, entry.path, recipients=current)
    reader.close()


def _starts_as_age(path: str) -> bool:
    """Whether the file at ``path`` begins with the age v1 header. Read as every stored file is (``open_stored``: no
    link followed, no wait on a FIFO); what cannot be read that way (missing, a link, not a regular file) is not
    judged here."""
    try:
        handle = safeio.open_stored(path)
    except (OSError, OpsReadyError):
        return False
    with handle:
        return handle.read(len(AGE_HEADER)) == AGE_HEADER


def _unrecorded_age(entry: Manifest) -> str:
    return ('%s is an age file (it begins with the age header) but its manifest %s records no encryption, so '
            'backup_rekey cannot tell which keys open it nor check what it decrypts to: it was not re-encrypted, and '
            'a key this rotation retires may still open it. Put the encryption record back in the manifest (from a '
            'copy of it) and run backup_rekey again; or take a new encrypted backup of its set, delete this artifact '
            'and its manifest, and run backup_rekey again.' % (entry.path, os.path.basename(entry.manifest_path)))


def _multi_file(entry: Manifest) -> str:
    return ('%s is a multi-file (directory format) artifact whose manifest records encryption: backup_rekey '
            're-encrypts single-file artifacts only (this collection never encrypts a directory-format dump), so it '
            'was not re-encrypted and the keys it had still open it. Take a new encrypted backup of its set in a '
            'single-file format (format=custom), delete this artifact and its manifest once the new one is verified, '
            'then run backup_rekey again.' % entry.path)


def _missing(entry: Manifest) -> str:
    return ('%s is missing (its manifest %s is there): nothing was re-encrypted. Restore the file, or remove the '
            'manifest if the backup is gone, then run backup_rekey again.'
            % (entry.path, os.path.basename(entry.manifest_path)))


def _verify_new(entry: Manifest, partial: str, sink: _HashingSink, info: Dict[str, Any], expected: Optional[str],
                size: Optional[int]) -> None:
    if info['plaintext_size'] != size and size is not None:
        raise IntegrityError('%s: re-encrypted %d plaintext bytes, the manifest records %d; the old file was kept.'
                             % (entry.path, info['plaintext_size'], size), path=entry.path)
    # No read-back of the bytes just written: it would hash the page cache, not the disk. The size is checked;
    # the decryption of the written stream (_StreamVerifier, when a new key is given) proves the new file opens
    # with it and yields the plaintext that went in (its sha256 and size).
    if os.path.getsize(partial) != sink.size:
        raise IntegrityError('%s has %d bytes on disk, not the %d written; the old file was kept.'
                             % (partial, os.path.getsize(partial), sink.size), path=partial)
    verifier = sink._verifier  # pylint: disable=protected-access
    if verifier is not None and (verifier.error is not None or not verifier.verified):
        error = verifier.error
        why = error.message if isinstance(error, OpsReadyError) else str(error or 'the stream did not end')
        raise IntegrityError('%s: the re-encrypted file does not decrypt with the new key (%s); the old file was '
                             'kept.' % (entry.path, why), path=entry.path)
    if verifier is not None and ((expected is not None and verifier.sha256 != expected)
                                 or verifier.size != info['plaintext_size']):
        raise IntegrityError('%s: the re-encrypted file decrypts with the new key to %d bytes of sha256 %s, not the %d '
                             'bytes of %s that went in; the old file was kept.'
                             % (entry.path, verifier.size, verifier.sha256, info['plaintext_size'], expected),
                             path=entry.path)


def rekey(directory: str, recipients: Sequence[str], identities: Sequence[encryption.Identity],
          check_mode: bool = False, engine: Optional[str] = None, database: Optional[str] = None,
          fault: Optional[Callable[[str, str], None]] = None,
          owner: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    """Re-encrypt every encrypted artifact of ``directory`` not already encrypted to exactly ``recipients``.
    ``owner`` (uid, gid): an account trusted as much as root with the directory, as db_backup's ``owner``
    (``safeio.check_backup_dir``)."""
    # A set: the same key named twice is the same recipient set (and one stanza), not a reason to rotate again.
    wanted = sorted(set(encryption.recipients_option(True, list(recipients), 'the artifacts')))
    if not os.path.isdir(directory):
        raise OpsReadyError('Backup directory %s does not exist.' % directory, path=directory)
    # Root writes <artifact>.partial there, renames it over the artifact, rewrites manifests and makes lock files: an
    # account that owns or can write the directory (or one above it) could swap those names for symlinks and have
    # root overwrite any file. Refused as db_backup and file_backup refuse such a dest, in check mode too, before
    # anything is read or locked; never chmod'ed either (its owner would only loosen it again).
    safeio.check_backup_dir(directory, what='re-encrypted backups', owner=owner)
    result: Dict[str, Any] = {'rekeyed': [], 'already': [], 'not_encrypted': [], 'settled': [], 'failed': [],
                              'bytes': 0, 'recipients': wanted, 'previous_recipients': {}}
    now = isoformat(utcnow())
    releases: List[threading.Thread] = []
    with contextlib.ExitStack() as held:
        if not check_mode:
            # Two rotations of one directory at once would each settle what the other is doing (one rewriting a
            # manifest from what it read before the other's swap: a manifest describing a file no longer there).
            held.enter_context(locks.exclusive(
                os.path.join(directory, RUN_LOCK),
                'Another backup_rekey is running in %s: wait for it to finish, then run this one again'
                % directory, remove=True))   # a run leaves nothing behind (locks.exclusive: removal is safe)
        # Read under the run lock: a catalog read before it could hold what a run finishing meanwhile rewrote.
        catalog = Catalog(directory, engine=engine, database=database)
        try:
            for entry in catalog.entries:
                _one(entry, wanted, identities, check_mode, now, fault, releases, result)
            result['failed'] += _broken_failures(catalog)
            result['readable_by'] = readable_by(Catalog(directory, engine=engine, database=database), wanted,
                                                planned=result['rekeyed'] if check_mode else None)
        finally:
            for thread in releases:   # nothing of the run outlives it
                thread.join()
    return result


def _set_lock(entry: Manifest) -> Optional[str]:
    """The lock file of the backup set ``entry`` belongs to (``artifacts.set_lock_path``: ``.<prefix>.lock``, the
    prefix being the artifact name before its time stamp), or None for a name without one."""
    stamp = ARTIFACT_NAME.search(entry.id)
    prefix = entry.id[:stamp.start()] if stamp else ''
    # One separator dash dropped, no more: file_backup name=etc- writes etc--<stamp> under .etc-.lock.
    prefix = prefix[:-1] if prefix.endswith('-') else prefix
    return set_lock_path(entry.directory, prefix) if prefix else None


def _one(entry: Manifest, wanted: List[str], identities: Sequence[encryption.Identity], check_mode: bool, now: str,
         fault: Optional[Callable[[str, str], None]], releases: List[threading.Thread], result: Dict[str, Any]) -> None:
    """Settle and re-encrypt one artifact into ``result``; its own trouble is reported for it alone."""
    if not entry.data.get('encryption'):
        if not entry.members and _starts_as_age(entry.path):
            # Left alone as "not encrypted", it would still open with the keys this rotation retires while the run
            # reports done; without the record nothing says which keys those are or what it must decrypt to.
            result['failed'].append({'id': entry.id, 'msg': _unrecorded_age(entry)})
        else:
            result['not_encrypted'].append(entry.id)
        return
    if entry.members:
        result['failed'].append({'id': entry.id, 'msg': _multi_file(entry)})
        return
    lock = None if check_mode else _set_lock(entry)
    try:
        with contextlib.ExitStack() as held:
            if lock is not None:
                # The backup runs of its set (under this lock) tidy .partial files, prune and record checks in the
                # manifest: none of it while this artifact is swapped. (The manifest is read again below.)
                made = not os.path.lexists(lock)
                try:
                    # Removed again when this run made it (the set's backups make and keep theirs); made, it is the
                    # directory owner's, as the lock of a backup run as that owner (become_user) is: a file left by
                    # a killed rotation, root's and 0600, would have such a backup fail to open it.
                    directory = os.stat(entry.directory)
                    held.enter_context(locks.exclusive(lock, SET_BUSY, remove=made,
                                                       owner=(directory.st_uid, directory.st_gid)
                                                       if made and os.geteuid() == 0 else None))
                except OpsReadyError as exc:
                    if exc.message.startswith(SET_BUSY):
                        raise OpsReadyError('%s: %s; it was not re-encrypted. Run backup_rekey again once that '
                                            'backup has finished.' % (entry.path, exc.message.rstrip('.')),
                                            path=entry.path)
                    # not a running backup (a link or a FIFO at the name, a read-only or unwritable directory...):
                    # the lock's own words
                    raise OpsReadyError('%s was not re-encrypted: %s' % (entry.path, exc.message), path=entry.path)
            # Read again right before it is settled, set lock or not (a WAL segment has none): the catalog's copy
            # may hold an earlier run's rekey_pending and old fields, which settle() would write back over the
            # manifest that run finished.
            if not os.path.lexists(entry.manifest_path):
                return   # pruned by a backup run since the catalog was read: nothing left to rotate
            entry.data = read_manifest(entry.manifest_path).data
            # check mode: what the real run would settle, done by nothing
            done = settle(entry, check_mode)
            if done:
                result['settled'].append({'id': entry.id, 'what': done})
            current = recipients_of(entry)
            if current == wanted:
                result['already'].append(entry.id)
                return
            if check_mode:
                _check_opens(entry, current, identities)   # a key that opens nothing fails here as in the run
            else:
                result['bytes'] += _rekey_one(entry, wanted, current, identities, now, fault, releases)
            result['rekeyed'].append(entry.id)
            result['previous_recipients'][entry.id] = current   # public keys: the diff names them
    except OpsReadyError as exc:
        result['failed'].append({'id': entry.id, 'msg': exc.message})
    except OSError as exc:
        # One artifact's trouble (a file gone, a name in the way) is not the others': reported for it alone.
        # Whatever step it stopped at, its manifest describes the file that is there (see the module docstring).
        message = _missing(entry) if isinstance(exc, FileNotFoundError) and exc.filename == entry.path \
            else ('%s: %s (%s); the manifest still describes the file that is there. Fix that, then run '
                  'backup_rekey again.' % (entry.path, exc.strerror or exc, exc.filename or entry.path))
        result['failed'].append({'id': entry.id, 'msg': message})


def _hold(path: str) -> Optional[int]:
    """A read-only descriptor of the file about to be replaced (None: it cannot be opened; the rename frees it)."""
    try:   # no link followed, and no wait on a FIFO planted at the name
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except OSError:
        return None


def _release(fd: Optional[int], releases: List[threading.Thread]) -> None:
    """Close ``fd`` in a thread (``rekey()`` joins them all before it returns): the last reference to the replaced
    file goes, and the kernel frees its blocks and cache there, not in the rename."""
    if fd is None:
        return
    thread = threading.Thread(target=os.close, args=(fd,), name='opsready-rekey-release', daemon=True)
    try:
        thread.start()
    except RuntimeError:   # no thread to be had: closed here
        os.close(fd)
        return
    releases.append(thread)


def _rekey_one(entry: Manifest, wanted: List[str], current: List[str], identities: Sequence[encryption.Identity],
               now: str, fault: Optional[Callable[[str, str], None]], releases: List[threading.Thread]) -> int:
    info_old = entry.data['encryption']
    path = entry.path
    partial = path + PARTIAL_SUFFIX
    expected = None
    sealed = bool(info_old.get('plaintext_sha256_sealed'))
    if sealed and identities:
        try:
            expected = encryption.open_sealed(info_old['plaintext_sha256_sealed'], identities, path)
        except OpsReadyError:
            pass  # the reader below says clearly that the key does not open it
    raw: Any
    if sealed:
        raw = safeio.open_stored(path)
    else:
        # No sealed plaintext checksum (an encrypted zstd stream carries its own content checksum, which a
        # re-encryption does not decompress to see): the manifest's SHA-256 of the stored bytes is what tells that
        # this file is the backup and not another age file written to the same public key. The child hashes the
        # file as it reads it (instead of the plaintext: the same one pass) and the parent compares the digest.
        if not entry.data.get('sha256'):
            raise IntegrityError('%s: its manifest has neither a sealed plaintext checksum nor a sha256 of the file, '
                                 'so nothing proves the file is the backup; the old file was kept.' % path, path=path)
        raw = streaming.ChecksummedFile(path, entry.data['sha256'], entry.data.get('size'))
    # The header is opened here (a wrong key fails before any process is started), the stream in the child.
    # The new file gets a sealed plaintext checksum where the old one had one, or where no zstd content checksum
    # stands in for it (docs/encryption.md "Checks of an encrypted artifact"): then the child hashes the plaintext.
    seal_new = sealed or entry.data.get('compression') != 'zstd'
    reader = encryption.DecryptingReader(raw, identities, path, recipients=current, expected_sha256=expected,
                                         hash_plaintext=seal_new)
    try:
        child = _DecryptingChild(reader, path)
    finally:
        reader.close()
    try:
        try:
            # Opened after the fork: the child never holds the new file.
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                # With one of the new keys at hand, the new file is decrypted as it is written (see _StreamVerifier).
                new_keys = [i for i in identities if i.recipient in wanted]
                verifier = _StreamVerifier(new_keys, partial, wanted) if new_keys else None
                try:
                    sink = _HashingSink(handle, verifier)
                except BaseException:
                    if verifier is not None:
                        verifier.stop()   # no thread left waiting for bytes that never come
                    raise
                try:
                    writer = encryption.EncryptingWriter(sink, wanted, hash_plaintext=False)
                    first = True
                    while True:
                        block = child.next_block()  # handed back by the next call: the writer keeps none of it
                        if block is None:
                            break
                        writer.write(block)
                        if first and fault:
                            fault(STREAM_POINT, entry.id)
                        first = False
                    report = child.result()  # before sealing the last chunk: a failed stream is not finished
                    writer.close()
                finally:
                    sink.finish()
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise OpsReadyError('%s: writing %s failed: %s. The old file was kept; free space (or fix the directory) '
                                'and run backup_rekey again.' % (path, partial, exc.strerror or exc), path=partial)
        finally:
            child.close()
        if sealed:
            plaintext = report['sha256']
            if expected is None:
                expected = plaintext  # pragma: no cover - the reader refused a key that does not open the seal
            if plaintext != expected:
                raise IntegrityError('%s decrypts to a plaintext whose sha256 differs from the manifest; the old file '
                                     'was kept.' % path, path=path)
            info = writer.info(plaintext)
        else:
            size = entry.data.get('size')
            found = (path, report.get('stored_sha256'), report.get('stored_size'), entry.data['sha256'], size)
            if found[1] != found[3] or (size is not None and found[2] != size):
                raise IntegrityError('%s fails its checksum (sha256 %s of %s bytes, manifest %s of %s): it is not the '
                                     'backup; the old file was kept.' % found, path=path)
            expected = report['sha256'] if seal_new else None
            info = writer.info(expected, seal_checksum=seal_new)
        _verify_new(entry, partial, sink, info, expected, info_old.get('plaintext_size'))
        if fault:
            fault('after_partial', entry.id)
        retired = sorted(set(info_old.get('retired') or []) | (set(current) - set(wanted)))
        info['retired'] = [r for r in retired if r not in wanted]
        info['rekeyed_at'] = now
        new_fields = {'sha256': sink.sha256.hexdigest(), 'size': sink.size, 'encryption': info}
        # 1. the manifest learns of the new file (by inode) while still describing the old one
        write_manifest(path, dict(_fields(entry.data), **{PENDING: dict(new_fields, inode=os.stat(partial).st_ino)}),
                       manifest_path=entry.manifest_path)
        if fault:
            fault('after_pending', entry.id)
        # 2. the swap: readers see the old file or the new one. The old file is held open across it, so that freeing
        # its blocks (on a file system mounted with discard, ~0.3 s per GB of waiting in the rename) happens when
        # the descriptor is closed, in a thread, while the manifest is written and the next artifact streams.
        held = _hold(path)
        try:
            os.replace(partial, path)
        finally:
            _release(held, releases)
        fsync_dir(entry.directory)
        if fault:
            fault('after_swap', entry.id)
        # 3. the manifest describes the new file only
        write_manifest(path, dict(_fields(entry.data), **new_fields), manifest_path=entry.manifest_path)
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


__all__ = ['rekey', 'settle', 'readable_by', 'still_opened_by', 'POINTS', 'STREAM_POINT', 'PENDING']
