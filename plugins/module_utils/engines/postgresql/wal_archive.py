# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL ``archive_command`` helper: store one WAL segment as a compressed artifact + manifest.

Installed by the role ``opsready.operations.backup`` and run by PostgreSQL (as its service user) as::

    archive_command = '/usr/bin/python3 /usr/local/lib/opsready/pg_wal_archive.py <dest> %p %f'

It is deliberately standalone (standard library plus the optional ``zstandard`` package, no imports from
the collection) because it runs outside Ansible. It writes the same artifact/manifest format as
``db_backup``: ``<artifact>.partial`` streamed through compression + SHA-256, fsync, rename, then the
manifest written atomically. Exit status 0 only when both are durable; any failure exits non-zero so
PostgreSQL keeps the segment and retries. A segment archived before with identical content succeeds
again (PostgreSQL may re-archive after a crash); different content for the same name fails.

With ``--recipient age1...`` (repeatable) or ``--recipients-file`` the compressed segment is encrypted
to those age X25519 recipients in the same pass (``<artifact>.age``; the manifest's ``encryption`` record
is the one ``db_backup`` writes, so ``backup_verify``/``db_restore`` decrypt it with the identity). The
age framing here is encryption only (``_AgeWriter``, ~60 lines over the ``cryptography`` package, imported
only when encrypting, from its compiled binding where it has one: ``_primitives``); its output is held to the
collection's decoder and to Debian's ``age`` by the tests.
The manifest keeps the plaintext segment's SHA-256 (``plain_sha256``) so a re-archived segment can be
compared without the key, as pgBackRest does with its checksum in the file name.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import base64
import datetime
import glob
import gzip
import hashlib
import hmac
import json
import os
import re
import socket
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

WAL_FILE = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$')
CHUNK = 1024 * 1024
SUFFIX = {'zstd': '.zst', 'gzip': '.gz', 'none': ''}


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing(dest: str, wal_name: str) -> List[Dict[str, Any]]:
    found = []
    for path in glob.glob(os.path.join(glob.escape(dest), 'postgresql-cluster-wal-*-%s*.manifest.json' % wal_name)):
        try:
            with open(path, encoding='utf-8') as handle:
                found.append(json.load(handle))
        except (OSError, ValueError):
            continue
    return found


def _extra_file(dest: str, source: str, name: str) -> int:
    """History, backup-label and partial files: copied verbatim (atomically) into <dest>/pg_wal_extra/."""
    extra = os.path.join(dest, 'pg_wal_extra')
    os.makedirs(extra, mode=0o700, exist_ok=True)
    target = os.path.join(extra, name)
    with open(source, 'rb') as handle:
        data = handle.read()
    if os.path.exists(target):
        with open(target, 'rb') as handle:
            return 0 if handle.read() == data else _fail('%s already archived with different content' % name)
    fd, tmp = tempfile.mkstemp(dir=extra, prefix='.' + name)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    _fsync_dir(extra)
    return 0


def _fail(message: str) -> int:
    sys.stderr.write('opsready pg_wal_archive: %s\n' % message)
    return 1


# -- age v1 encryption (X25519 recipients), encrypt side only ------------------------------------------------
# The same framing as common/encryption.py (which this standalone file cannot import); tests decrypt what this
# writes with that module and with Debian's age.
AGE_SUFFIX = '.age'
AGE_CHUNK = 64 * 1024
_BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'


_AGE_HRP = [ord(c) >> 5 for c in 'age'] + [0] + [ord(c) & 31 for c in 'age']


class RecipientError(ValueError):
    pass


def _polymod(values: List[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ value
        for i, gen in enumerate((0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3)):
            chk ^= gen if (top >> i) & 1 else 0
    return chk


def parse_recipient(text: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1...`` recipient (bech32, BIP 173 checksum)."""
    text = text.strip()
    low = text.lower()
    pos = low.rfind('1')
    if (text not in (low, text.upper()) or low[:pos] != 'age' or len(low) - pos < 8
            or any(c not in _BECH32 for c in low[pos + 1:])):
        raise RecipientError('recipient %r is not an age X25519 public key ("age1..." from age-keygen -y)'
                             % (text[:20] + '...' if len(text) > 80 else text))
    values = _AGE_HRP + [_BECH32.find(c) for c in low[pos + 1:]]
    chk = _polymod(values)
    acc = bits = 0
    out = bytearray()
    for value in values[7:-6]:
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xff)
    if chk != 1 or len(out) != 32 or bits >= 5 or (acc & ((1 << bits) - 1)):
        raise RecipientError('recipient %r has a bad checksum or length: copy it again from age-keygen -y'
                             % (text[:20] + '...' if len(text) > 80 else text))
    return bytes(out)


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 (RFC 5869) for one 32-byte block: the standard library is enough, and faster to import."""
    prk = hmac.new(salt or b'\0' * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b'\x01', hashlib.sha256).digest()


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b'=')


class _AgeWriter:
    """Push stage: plaintext in by ``write``, age v1 bytes out to ``sink``; ``close`` seals the last chunk.

    Loading ``cryptography`` is the fixed cost of encrypting (its compiled module: ~12 ms with cryptography 4x,
    ~40 ms with Debian 12's 38), paid by every segment since PostgreSQL starts the helper once per segment. It
    runs in a thread while the main thread hashes and compresses (hashlib, zlib and zstandard release the GIL on
    large buffers); compressed bytes wait in memory until the key is ready (at most ``PENDING_LIMIT``, then
    ``write`` waits), so the stored bytes are the same as from a sequential writer.
    """

    PENDING_LIMIT = 64 * 1024 * 1024

    def __init__(self, sink: Any, publics: List[bytes]) -> None:
        import threading
        self._sink = sink
        self._buffer = bytearray()
        self._counter = 0
        self._seal: Any = None
        self._error: Optional[BaseException] = None
        self.size = 0
        self._thread = threading.Thread(target=self._prepare, args=(publics,), daemon=True)
        self._thread.start()

    def _prepare(self, publics: List[bytes]) -> None:
        try:
            self._head, self._seal_function = age_header(publics)
        except BaseException as exc:  # re-raised in the main thread by _ready()
            self._error = exc

    def _ready(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._seal is None:
            self._sink.write(self._head)
            self._seal = self._seal_function

    def write(self, data: Any) -> int:
        self.size += len(data)
        self._buffer += data
        if self._seal is None:
            if self._thread.is_alive() and len(self._buffer) < self.PENDING_LIMIT:
                return len(data)
            self._ready()
        self._seal_full_chunks()
        return len(data)

    def _seal_full_chunks(self) -> None:
        buf = self._buffer
        if len(buf) > AGE_CHUNK:  # keep at least one byte back: close() seals the last chunk with its flag
            end = ((len(buf) - 1) // AGE_CHUNK) * AGE_CHUNK
            out = []
            for start in range(0, end, AGE_CHUNK):
                # A copied slice, not a memoryview: cryptography < 40 (cffi) keeps the export alive and the
                # bytearray could not shrink below.
                out.append(self._seal(self._counter.to_bytes(11, 'big') + b'\0', bytes(buf[start:start + AGE_CHUNK]),
                                      None))
                self._counter += 1
            del buf[:end]
            self._sink.write(b''.join(out))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._seal is None:
            self._ready()
            self._seal_full_chunks()
        self._sink.write(self._seal(self._counter.to_bytes(11, 'big') + b'\x01', bytes(self._buffer), None))
        self._buffer = bytearray()


def _primitives() -> Tuple[Any, Any, Any]:
    """(ChaCha20Poly1305, generate an X25519 private key, load an X25519 public key) from ``cryptography``.

    From cryptography 42 on, the public classes are the compiled (Rust) binding's own objects: taken from the
    binding directly, the import skips the pure-Python layers above it (typing, enum, re and the cipher
    registries: most of the ~35 ms that loading ``cryptography`` costs each helper process, i.e. each segment).
    Older releases (Debian 12's 38) lack these names there and take the public modules, as before."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as binding  # type: ignore[import-not-found,unused-ignore]
        return binding.aead.ChaCha20Poly1305, binding.x25519.generate_key, binding.x25519.from_public_bytes
    except (ImportError, AttributeError):
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        return ChaCha20Poly1305, X25519PrivateKey.generate, X25519PublicKey.from_public_bytes


def age_header(publics: List[bytes]) -> Tuple[bytes, Any]:
    """(the age header + payload nonce, the payload's ChaCha20-Poly1305 ``encrypt``) for a new random file key."""
    ChaCha20Poly1305, generate, from_public_bytes = _primitives()  # noqa: N806 # a class, named as one
    file_key = os.urandom(16)
    lines = [b'age-encryption.org/v1']
    for public in publics:
        ephemeral = generate()
        share = _raw_public(ephemeral.public_key())
        shared = ephemeral.exchange(from_public_bytes(public))
        wrap = _hkdf(shared, share + public, b'age-encryption.org/v1/X25519')
        lines += [b'-> X25519 ' + _b64(share), _b64(ChaCha20Poly1305(wrap).encrypt(b'\0' * 12, file_key, None))]
    head = b'\n'.join(lines) + b'\n---'
    mac = hmac.new(_hkdf(file_key, b'', b'header'), head, hashlib.sha256).digest()
    nonce = os.urandom(16)
    return head + b' ' + _b64(mac) + b'\n' + nonce, ChaCha20Poly1305(_hkdf(file_key, nonce, b'payload')).encrypt


def _raw_public(key: Any) -> bytes:
    """The 32 raw bytes of an X25519 public key (``public_bytes_raw`` needs cryptography >= 40; Debian 12 has 38)."""
    if hasattr(key, 'public_bytes_raw'):
        return key.public_bytes_raw()  # type: ignore[no-any-return]  # and spares importing serialization (~20 ms)
    from cryptography.hazmat.primitives import serialization
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _recipient_text(public: bytes) -> str:
    """``age1...`` of a public key (normalised as the collection's manifests record it)."""
    acc = bits = 0
    five = []
    for byte in public:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    chk = _polymod(_AGE_HRP + five + [0] * 6) ^ 1
    return 'age1' + ''.join(_BECH32[d] for d in five + [(chk >> 5 * (5 - i)) & 31 for i in range(6)])


def read_recipients(recipients: Optional[List[str]], recipients_file: Optional[str]) -> List[bytes]:
    """Public keys from ``--recipient`` values and a recipients file (one per line, ``#`` comments)."""
    texts = list(recipients or [])
    if recipients_file:
        with open(recipients_file, encoding='utf-8') as handle:
            texts += [line.strip() for line in handle if line.strip() and not line.lstrip().startswith('#')]
        if not texts:
            raise RecipientError('recipients file %s holds no "age1..." line' % recipients_file)
    return [parse_recipient(t) for t in texts]


def _sha256_file(path: str) -> str:
    plain = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            plain.update(block)
    return plain.hexdigest()


def archive(dest: str, source: str, wal_name: str, compression: str = 'zstd', level: Optional[int] = None,
            server: Optional[str] = None, segment_size: Optional[int] = None,
            recipients: Optional[List[bytes]] = None) -> int:
    if not os.path.isdir(dest):
        return _fail('backup directory %s does not exist' % dest)
    match = WAL_FILE.match(wal_name)
    if not match:
        return _extra_file(dest, source, wal_name)
    started = datetime.datetime.now(datetime.timezone.utc)
    st = os.stat(source)
    size = segment_size or st.st_size
    previous = _existing(dest, wal_name)
    if previous:
        # Only a re-archive (after a crash) reads the segment twice; the normal case hashes it in the one pass below.
        if previous[0].get('plain_sha256') == _sha256_file(source):
            return 0  # already archived, same bytes
        return _fail('%s was archived before with different content; refusing to overwrite' % wal_name)
    name = 'postgresql-cluster-wal-%s-%s%s%s' % (_stamp(started), wal_name, SUFFIX[compression],
                                                 AGE_SUFFIX if recipients else '')
    artifact = os.path.join(dest, name)
    partial = artifact + '.partial'
    for stale in glob.glob(os.path.join(glob.escape(dest), 'postgresql-cluster-wal-*-%s*.partial' % wal_name)):
        os.unlink(stale)  # an earlier attempt for this segment was interrupted
    digest = hashlib.sha256()
    plain = hashlib.sha256()
    stored = 0
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, 'wb') as out:
            class Sink:
                def write(self, data: bytes) -> int:
                    nonlocal stored
                    digest.update(data)
                    stored += len(data)
                    return out.write(data)

                def flush(self) -> None:
                    out.flush()

            sink: Any = Sink()
            # One pass: read, SHA-256 of the segment, compression, age (when asked), SHA-256 of the stored bytes.
            encrypter = _AgeWriter(sink, recipients) if recipients else None
            target: Any = encrypter or sink
            with open(source, 'rb') as handle:
                if compression == 'zstd':
                    import zstandard
                    level = 3 if level is None else level
                    cctx = zstandard.ZstdCompressor(level=level)
                    writer = cctx.stream_writer(target, closefd=False)
                    for block in iter(lambda: handle.read(CHUNK), b''):
                        plain.update(block)
                        writer.write(block)
                    writer.flush(zstandard.FLUSH_FRAME)
                elif compression == 'gzip':
                    level = 6 if level is None else level
                    with gzip.GzipFile(fileobj=target, mode='wb', compresslevel=level, mtime=0) as gz:
                        for block in iter(lambda: handle.read(CHUNK), b''):
                            plain.update(block)
                            gz.write(block)
                else:
                    level = 0
                    for block in iter(lambda: handle.read(CHUNK), b''):
                        plain.update(block)
                        target.write(block)
            if encrypter is not None:
                encrypter.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, artifact)
        _fsync_dir(dest)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    timeline = int(match.group(1), 16)
    per_log = 0x100000000 // size
    segno = int(match.group(2), 16) * per_log + int(match.group(3), 16)
    finished = datetime.datetime.now(datetime.timezone.utc)
    last_write = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
    manifest = {
        'format': 1, 'id': name, 'artifact': name, 'engine': 'postgresql', 'kind': 'wal', 'database': '@cluster',
        'server': server or socket.gethostname(), 'started': _iso(started), 'finished': _iso(finished),
        'consistent_at': _iso(min(last_write, finished)), 'size': stored, 'sha256': digest.hexdigest(),
        'plain_sha256': plain.hexdigest(), 'raw_size': st.st_size, 'compression': compression,
        'compression_level': level, 'parent': None,
        'position': {'start': segno, 'end': segno + 1, 'timeline': timeline, 'wal_file': wal_name,
                     'wal_segment_size': size},
        'tool': {'name': 'opsready pg_wal_archive'},
    }
    if encrypter is not None and recipients:
        # No sealed checksum of the compressed stream (db_backup's plaintext_sha256_sealed): every chunk is
        # authenticated, and the WAL check compares the segment with plain_sha256 after decryption; sealing it
        # would cost a second SHA-256 pass and key exchange per segment.
        manifest['encryption'] = {
            'format': 'age', 'version': 'age-encryption.org/v1', 'recipients': [_recipient_text(p) for p in recipients],
            'plaintext_size': encrypter.size}
    target = artifact + '.manifest.json'
    fd, tmp = tempfile.mkstemp(dir=dest, prefix='.' + name + '.', suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as text:
        text.write(json.dumps(manifest, indent=2, sort_keys=True) + '\n')
        text.flush()
        os.fsync(text.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    _fsync_dir(dest)
    return 0


def main(argv: List[str]) -> int:
    import argparse
    parser = argparse.ArgumentParser(description='Archive one PostgreSQL WAL file into an opsready catalog.')
    parser.add_argument('dest')
    parser.add_argument('path', help='%%p: the WAL file to archive (relative to the data directory)')
    parser.add_argument('name', help='%%f: its file name')
    parser.add_argument('--compression', choices=sorted(SUFFIX), default='zstd')
    parser.add_argument('--level', type=int)
    parser.add_argument('--server')
    parser.add_argument('--recipient', action='append', default=[],
                        help='age public key ("age1...") to encrypt each segment to; repeatable')
    parser.add_argument('--recipients-file', help='file of age public keys, one per line ("#" comments)')
    args = parser.parse_args(argv)
    try:
        recipients = read_recipients(args.recipient, args.recipients_file)
    except (OSError, RecipientError) as exc:
        # Refuse rather than archive in the clear: PostgreSQL keeps the segment and pg_stat_archiver shows the failure.
        return _fail('not archiving %s: %s' % (args.name, exc))
    try:
        return archive(args.dest, args.path, args.name, args.compression, args.level, args.server,
                       recipients=recipients)
    except Exception as exc:  # PostgreSQL only needs a non-zero exit; the message goes to its log
        return _fail('archiving %s failed: %s' % (args.name, exc))


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
