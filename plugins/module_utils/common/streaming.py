# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One-pass streaming of a byte stream through compression and SHA-256 into an atomic artifact.

The artifact is written as ``<path>.partial`` and renamed into place only by ``commit()``, after an
fsync; memory use is bounded by the chunk size whatever the input size. The SHA-256 is of the stored
(compressed) bytes, so verification needs neither the key nor a decompression pass.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import queue
import threading
import zlib
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Dict, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import PARTIAL_SUFFIX, fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

# encryption (and cryptography, tens of ms to import) is imported where it is used: catalog reads import this
# file for PARTIAL_SUFFIX and never encrypt (issue 22, module start-up).
if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption

try:
    import zstandard
    HAS_ZSTD = True
    ZSTD_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only where zstandard is missing
    HAS_ZSTD = False
    ZSTD_IMPORT_ERROR = exc

CHUNK = 1024 * 1024
COMPRESSIONS = ('zstd', 'gzip', 'none')
SUFFIXES = {'zstd': '.zst', 'gzip': '.gz', 'none': ''}
DEFAULT_LEVELS = {'zstd': 3, 'gzip': 6, 'none': 0}


def compression_argument_spec() -> Dict[str, Dict[str, Any]]:
    """compression/compression_level/threads (documented by the ``opsready.operations.compression`` fragment)."""
    return dict(compression=dict(type='str', choices=list(COMPRESSIONS), default='zstd'),
                compression_level=dict(type='int'),
                threads=dict(type='int', default=0))


def compression_suffix(compression: str) -> str:
    check_compression(compression)
    return SUFFIXES[compression]


def check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise OpsReadyError('Unknown compression %r: use one of %s.' % (compression, ', '.join(COMPRESSIONS)))
    if compression == 'zstd' and not HAS_ZSTD:
        raise OpsReadyError('compression=zstd needs the Python package zstandard on the managed host '
                            '(pip install zstandard), or use compression=gzip.')


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1))


# glibc's malloc tunables (mallopt's parameter numbers) and what keep_heap sets them to.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_MMAP_THRESHOLD = 32 * 1024 * 1024   # glibc's largest accepted value on 64-bit (HEAP_MAX_SIZE / 2)
HEAP_TRIM_THRESHOLD = 64 * 1024 * 1024
_heap_kept = False


def keep_heap() -> None:
    """Have glibc keep freed heap memory for reuse instead of handing it back to the kernel (once per process).

    Streaming an artifact allocates and frees a few megabytes over and over: zstd's 1 MiB output pieces (a new
    bytes object each, freed by the encryption thread), the encrypter's sealed blocks, zstd's job buffers. With
    glibc's defaults the heap's top is trimmed (and large blocks mmapped) again and again, so those pages were
    faulted in and zeroed anew by the kernel: ~17,000 of the ~40,000 minor faults of a 300 MB encrypted file
    backup, ~0.05-0.07 CPU s (4 %) of kernel time (docs/bench.md, issue 22). Freed memory stays with the process
    up to HEAP_TRIM_THRESHOLD (a module process exits when its task ends). glibc only; elsewhere nothing is done.
    """
    global _heap_kept
    if _heap_kept:
        return
    _heap_kept = True
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
        # the mmap threshold first: setting either one stops glibc's own adjustment of both
        mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)
    except (ImportError, OSError, AttributeError):  # no ctypes, no C library to load, not glibc
        pass


# Once an artifact passes this size, a second thread fdatasyncs it each time it grows by as much again (the default
# cadence; a writer may have its own: ``ArtifactWriter(sync_every=...)``).
SYNC_EVERY = 64 * 1024 * 1024


class BackgroundSync:
    """fdatasync the artifact from a second thread while it is written.

    The kernel holds gigabytes of dirty pages on a large machine before it writes back on its own, so
    the fsync that commits an artifact would otherwise write the whole file at the end, after the dump
    has finished; syncing as it grows overlaps that I/O with the dump, and the final fsync has little left.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._wake = threading.Event()
        self._stopping = False
        self.error: Optional[OSError] = None
        self._thread = threading.Thread(target=self._run, name='opsready-sync', daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                os.fdatasync(self._fd)
            except OSError as exc:  # surfaces at commit; the final fsync reports it too
                self.error = exc
                return

    def stop(self) -> None:
        """Wait for a sync in progress; must run before the descriptor is closed."""
        self._stopping = True
        self._wake.set()
        self._thread.join()


class _HashingSink:
    """File-like sink that hashes and counts what the compressor writes, then writes it to disk."""

    def __init__(self, handle: BinaryIO, sync_every: int) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.syncer: Optional[BackgroundSync] = None
        self._sync_every = sync_every
        self._next_sync = sync_every

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        self.size += len(data)
        written = self._handle.write(data)
        if self.size >= self._next_sync:
            self._next_sync = self.size + self._sync_every
            if self.syncer is None:
                self.syncer = BackgroundSync(self._handle.fileno())
            self.syncer.poke()
        return written

    def stop_sync(self) -> None:
        if self.syncer is not None:
            self.syncer.stop()
            error, self.syncer = self.syncer.error, None
            if error is not None:
                raise error

    def flush(self) -> None:
        self._handle.flush()


class _GzipCompressor:
    def __init__(self, sink: _HashingSink, level: int) -> None:
        self._sink = sink
        self._zobj = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: Any) -> int:
        out = self._zobj.compress(data)
        if out:
            self._sink.write(out)
        return len(data)

    def close(self) -> None:
        self._sink.write(self._zobj.flush(zlib.Z_FINISH))


class _EncryptingThread:
    """Runs the encryption stage (age: plaintext SHA-256, ChaCha20-Poly1305, the stored bytes' SHA-256, the
    write) in a second thread, fed the compressor's output through a bounded queue.

    In one thread the tar stream, each file's SHA-256, feeding zstd and then sealing, hashing twice and
    writing every compressed chunk took turns; hashing, AEAD sealing and writing release the GIL, so here
    they overlap the next chunk's tar and compression work (the raw ``tar | zstd | age`` pipeline runs them in
    three processes). Memory stays bounded: at most ``DEPTH`` chunks wait. An error in the thread is raised
    by the next ``write()`` or by ``close()``; ``stop()`` ends the thread without finishing the stream.
    """

    DEPTH = 8

    def __init__(self, encrypter: Any) -> None:
        self._encrypter = encrypter
        self._queue: 'queue.Queue[Optional[bytes]]' = queue.Queue(self.DEPTH)
        self._error: Optional[BaseException] = None
        self._abandon = False
        self._thread = threading.Thread(target=self._run, name='opsready-encrypt', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        encrypt = self._encrypter.write
        get = self._queue.get
        while True:
            data = get()
            if data is None or self._abandon:
                return
            if self._error is None:
                try:
                    encrypt(data)
                except BaseException as exc:  # raised in the writer's thread by write()/close()
                    self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: Any) -> int:
        self._check()
        # zstandard hands over a new bytes object per output buffer; anything else is copied, as the
        # caller may reuse its buffer while this one waits in the queue.
        self._queue.put(data if isinstance(data, bytes) else bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Wait until everything queued is encrypted and written; raise what the thread met."""
        self._queue.put(None)
        self._thread.join()
        self._check()

    def stop(self) -> None:
        """Abandon the stream (abort): the thread drops what is queued and ends before the file is closed."""
        if self._thread.is_alive():
            self._abandon = True
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put(None)
            self._thread.join()


class _Passthrough:
    def __init__(self, sink: _HashingSink) -> None:
        self._sink = sink

    def write(self, data: Any) -> int:
        self._sink.write(data)
        return len(data)

    def close(self) -> None:
        pass


class ArtifactWriter:
    """Write one artifact: ``write()`` raw bytes, then ``commit()``; ``abort()`` or an exception
    inside ``with`` removes the partial file so nothing half-written is left to trust.

    With ``recipients`` (age public keys) the compressed stream is age-encrypted before the hashing
    sink, in the same pass: ``sha256``/``size`` are then of the encrypted bytes (verifiable without the
    key) and ``commit()`` adds ``encryption`` (format, recipients, sealed plaintext checksum) for the
    manifest. The caller names the file (``encryption.SUFFIX`` is ``.age``).

    ``compressed_by_tool`` says the tool already compressed its output (``pg_basebackup
    --compress=client-zstd``): the bytes are stored as they come (encrypted when asked), the manifest
    still records ``compression``/``level``, and ``raw_size`` is unknown (None).

    ``sync_every``: the background write-back cadence in bytes (``SYNC_EVERY`` when None). A shorter one leaves less
    for the fsync after the last byte (the serial finish), at the cost of more fdatasync calls during the stream.
    """

    def __init__(self, path: str, compression: str = 'zstd', level: Optional[int] = None,
                 threads: int = 0, mode: int = 0o600, hash_plain: bool = False,
                 recipients: Optional[Sequence[str]] = None, compressed_by_tool: bool = False,
                 sync_every: Optional[int] = None) -> None:
        check_compression(compression)
        if sync_every is None:
            sync_every = SYNC_EVERY   # read here, not bound as the default: tests set the module's constant
        if sync_every <= 0:
            raise ValueError('sync_every must be a positive byte count, not %r' % sync_every)
        if recipients:
            from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
            # Bad recipients fail here, before the partial file exists.
            for recipient in recipients:
                encryption.parse_recipient(recipient)
        self.path = path
        self.partial_path = path + PARTIAL_SUFFIX
        self.compression = compression
        self.level = DEFAULT_LEVELS[compression] if level is None else level
        self.threads = threads if threads > 0 else default_threads()
        self.raw_size = 0
        self._compressed_by_tool = compressed_by_tool
        self._plain = hashlib.sha256() if hash_plain else None
        keep_heap()
        self._done = False
        if os.path.lexists(self.partial_path):
            os.unlink(self.partial_path)
        fd = os.open(self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self._handle = os.fdopen(fd, 'wb', buffering=CHUNK)
        self._sink = _HashingSink(self._handle, sync_every)
        self._encrypter: Optional[encryption.EncryptingWriter] = None
        self._encrypt_thread: Optional[_EncryptingThread] = None
        target: Any = self._sink
        # Encrypted zstd: the frame carries zstd's content checksum (XXH64 of the raw bytes, what the zstd CLI
        # writes by default), checked by every decompression, and the manifest no sealed SHA-256 of the
        # compressed stream: that second SHA-256 pass over the stream saw only the encrypter's own buffering,
        # the content checksum spans compressor, queue and encrypter (docs/encryption.md "Checks of an
        # encrypted artifact"). gzip (CRC-32 of its own) and streams we do not compress keep the sealed SHA-256.
        self._content_checksum = bool(recipients) and compression == 'zstd' and not compressed_by_tool
        if recipients:
            from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
            self._encrypter = encryption.EncryptingWriter(self._sink, recipients,
                                                          hash_plaintext=not self._content_checksum)
            self._encrypt_thread = target = _EncryptingThread(self._encrypter)
        self._compressor: Any
        if compressed_by_tool or compression == 'none':
            self._compressor = _Passthrough(target)
        elif compression == 'zstd':
            # threads=1 would still run a worker; 0 keeps compression in this thread for tiny inputs.
            params = zstandard.ZstdCompressor(level=self.level, threads=self.threads if self.threads > 1 else 0,
                                              write_checksum=self._content_checksum)
            # Output in 1 MiB pieces, not zstd's 128 KiB default: each piece is a Python call and, encrypted, a queue
            # handoff to the age thread with a GIL switch each way; at 128 KiB the two threads traded the GIL ~2,000
            # times for a 255 MB archive and wall time rose ~8 % on a busy 2-core machine (docs/bench.md).
            self._compressor = params.stream_writer(target, closefd=False, write_return_read=True, write_size=CHUNK)
        else:
            self._compressor = _GzipCompressor(target, self.level)

    def write(self, data: Any) -> int:
        self.raw_size += len(data)
        if self._plain is not None:
            self._plain.update(data)
        self._compressor.write(data)
        return len(data)

    def tell(self) -> int:
        """The raw bytes written so far (the writer only appends: what tarfile's mode 'w' asks)."""
        return self.raw_size

    def copy_from(self, source: IO[bytes], chunk: int = CHUNK) -> int:
        """Stream everything ``source`` yields; returns the raw byte count copied."""
        total = 0
        read = source.read
        while True:
            data = read(chunk)
            if not data:
                return total
            self.write(data)
            total += len(data)

    def commit(self) -> Dict[str, Any]:
        """Finish compression, fsync, rename into place; returns size/sha256 for the manifest."""
        if self.compression == 'zstd' and not isinstance(self._compressor, _Passthrough):
            self._compressor.flush(zstandard.FLUSH_FRAME)
        self._compressor.close()
        if self._encrypt_thread is not None:
            self._encrypt_thread.close()
        if self._encrypter is not None:
            self._encrypter.close()
        self._handle.flush()
        self._sink.stop_sync()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.partial_path, self.path)
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._done = True
        result = {
            'path': self.path,
            'size': self._sink.size,
            'sha256': self._sink.sha256.hexdigest(),
            'raw_size': None if self._compressed_by_tool else self.raw_size,
            'compression': self.compression,
            'compression_level': self.level,
        }
        if self._plain is not None:
            result['plain_sha256'] = self._plain.hexdigest()
        if self._encrypter is not None:
            result['encryption'] = self._encrypter.info(seal_checksum=not self._content_checksum)
        return result

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._encrypt_thread is not None:
            self._encrypt_thread.stop()
        try:
            self._sink.stop_sync()
        except OSError:
            pass
        try:
            self._handle.close()
        except Exception:  # nosec B110 # cleanup after a failure: keep the original error
            pass
        try:
            os.unlink(self.partial_path)
        except OSError:
            pass

    def __enter__(self) -> 'ArtifactWriter':
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None or not self._done:
            self.abort()


def sha256_file(path: str, chunk: int = CHUNK) -> str:
    """The SHA-256 of a stored file, never read through a symlink or from a FIFO (``safeio.open_stored``)."""
    digest = hashlib.sha256()
    with safeio.open_stored(path) as handle:
        while True:
            data = handle.read(chunk)
            if not data:
                return digest.hexdigest()
            digest.update(data)


def verify_size(path: str, size: Optional[int] = None) -> None:
    """Raise IntegrityError unless the file exists with the manifest's size (no read: the cheap half of
    ``verify_file``, for a reader that checks the checksum while it streams, see ``ChecksummedFile``)."""
    try:
        # lstat: a link planted at the name (to a root file of the same size) is not the artifact
        st = safeio.lstat_stored(path)
    except safeio.UnsafeFileError as exc:
        raise IntegrityError(exc.message, path=path)
    if st is None:
        raise IntegrityError('Artifact %s is missing: its manifest names it but the file is gone.' % path, path=path)
    actual_size = st.st_size
    if size is not None and actual_size != size:
        raise IntegrityError('Artifact %s is %d bytes but its manifest says %d: it is truncated or was '
                             'replaced; do not restore from it.' % (path, actual_size, size), path=path)


def checksum_mismatch(path: str, actual: str, sha256: str) -> IntegrityError:
    return IntegrityError('Artifact %s fails its checksum (sha256 %s, manifest %s): it is corrupt; do not '
                          'restore from it.' % (path, actual, sha256), path=path)


def verify_file(path: str, sha256: str, size: Optional[int] = None) -> None:
    """Raise IntegrityError unless the file on disk has the manifest's size and checksum."""
    verify_size(path, size)
    try:
        actual = sha256_file(path)
    except safeio.UnsafeFileError as exc:   # swapped since verify_size looked
        raise IntegrityError(exc.message, path=path)
    if actual != sha256:
        raise checksum_mismatch(path, actual, sha256)


class ChecksummedFile:
    """The stored bytes of an artifact, hashed as they are read: the one read a restore makes serves both the
    checksum and the load. ``finish()`` (called by ``read`` at the end of the file, idempotent) reads what
    is left and raises ``IntegrityError`` unless size and SHA-256 are the manifest's. A consumer of these
    bytes must hold what it produced from them apart (temporary database, scratch file) until then."""

    def __init__(self, path: str, sha256: str, size: Optional[int] = None) -> None:
        self.path = path
        self._expected = sha256
        self._size = size
        self._handle: Any = safeio.open_stored(path)
        self._digest = hashlib.sha256()
        self._read = 0
        self._done = False

    def read(self, size: int = -1) -> bytes:
        return self._hashed(self._handle.read(size), size)

    def readline(self, size: int = -1) -> bytes:
        """The age header parser reads its lines with this (encrypted artifacts): hashed like ``read``."""
        return self._hashed(self._handle.readline(size), size)

    def _hashed(self, data: bytes, size: int) -> bytes:
        if data:
            self._digest.update(data)  # releases the GIL on large buffers: a consumer thread keeps running
            self._read += len(data)
        elif size != 0:
            self.finish()
        return bytes(data)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._handle.fileno())

    @property
    def bytes_read(self) -> int:
        return self._read

    def hexdigest(self) -> str:
        """The SHA-256 of what was read so far (of the whole file once ``finish()`` returned)."""
        return self._digest.hexdigest()

    def finish(self) -> None:
        if self._done:
            return
        while True:
            data = self._handle.read(CHUNK)
            if not data:
                break
            self._digest.update(data)
            self._read += len(data)
        self._done = True
        if self._size is not None and self._read != self._size:
            raise IntegrityError('Artifact %s is %d bytes but its manifest says %d: it is truncated or was '
                                 'replaced; do not restore from it.' % (self.path, self._read, self._size),
                                 path=self.path)
        actual = self._digest.hexdigest()
        if actual != self._expected:
            raise checksum_mismatch(self.path, actual, self._expected)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> 'ChecksummedFile':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_decompressed(path: str, compression: str, encryption_info: Optional[Dict[str, Any]] = None,
                      identities: Optional[Sequence[encryption.Identity]] = None,
                      handle: Optional[Any] = None) -> IO[bytes]:
    """A readable stream of the artifact's original bytes.

    ``encryption_info`` is the manifest's ``encryption`` record: the file is then decrypted on the fly
    with ``identities`` (a wrong or missing key raises before a byte is returned). Read to the end (see
    ``drain``) so the last chunk is authenticated and the plaintext checksum compared.
    """
    check_compression(compression)
    # ``handle``: the stored bytes already opened (a ``ChecksummedFile`` hashing them on the way)
    raw: Any = safeio.open_stored(path) if handle is None else handle
    if encryption_info:
        raw = open_decrypted(raw, path, encryption_info, identities or [])
    if compression == 'zstd':
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    if compression == 'gzip':
        return gzip.GzipFile(fileobj=raw, mode='rb')  # type: ignore[return-value]
    return raw  # type: ignore[no-any-return]


def open_decrypted(handle: Any, path: str, encryption_info: Dict[str, Any],
                   identities: Sequence[encryption.Identity]) -> encryption.DecryptingReader:
    """The decrypted (still compressed) bytes of an encrypted artifact, checked against the manifest."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    if encryption_info.get('format') != encryption.FORMAT:
        handle.close()
        raise OpsReadyError('%s is encrypted with %r, which this version cannot read (age only).'
                            % (path, encryption_info.get('format')), path=path)
    recipients = encryption_info.get('recipients') or []
    # Every writer records the size of the stream it encrypted: a stream cut short or grown on its way into the
    # encrypter (a bug; the AEAD authenticates only what it was given) fails here, whatever else the manifest has.
    size = encryption_info.get('plaintext_size')
    expected_size = size if isinstance(size, int) and not isinstance(size, bool) else None
    expected = None
    try:
        if identities and encryption_info.get('plaintext_sha256_sealed'):
            try:
                expected = encryption.open_sealed(encryption_info['plaintext_sha256_sealed'], identities, path)
            except OpsReadyError:
                pass  # the reader below raises the clear wrong-key message
        return encryption.DecryptingReader(handle, identities, path, recipients=recipients,
                                           expected_sha256=expected, expected_size=expected_size)
    except BaseException:
        handle.close()
        raise


def drain(stream: IO[bytes], chunk: int = CHUNK) -> int:
    """Read ``stream`` to its end (authenticates an encrypted tail); returns the bytes skipped."""
    total = 0
    while True:
        data = stream.read(chunk)
        if not data:
            return total
        total += len(data)
