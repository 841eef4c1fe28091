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
age framing here is encryption only (``_AgeWriter`` over X25519 and ChaCha20-Poly1305 from the ``cryptography``
package, imported only when encrypting, from the layer of it that is cheapest to load: ``LOADERS``); its output
is held to the C2SP age vectors byte for byte, to the collection's decoder and to Debian's ``age`` by the tests.
The manifest keeps the plaintext segment's SHA-256 (``plain_sha256``) so a re-archived segment can be
compared without the key, as pgBackRest does with its checksum in the file name.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import base64
import datetime
import errno
import glob
import gzip
import hashlib
import hmac
import json
import os
import re
import socket
import stat
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

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


class NotAFile(OSError):
    """A path that is not a regular file (a FIFO, a device, a symlink where none is followed): never read."""


_KINDS = ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))


def _open_regular(path: str, what: str) -> Any:
    """``path`` opened for reading when it is a regular file: never through a symlink at its name, never a FIFO
    (opening one blocks the archiver until someone writes to it) or a device (/dev/zero never ends). The catalog
    and pg_wal are shared with other accounts on some hosts; the archiver must neither hang nor read what a planted
    link names. The descriptor is opened non-blocking and judged by ``fstat``, so a swap after a check counts."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFile(errno.ELOOP, '%s %s is a symlink, which is not followed' % (what, path))
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((text for test, text in _KINDS if test(mode)), 'a special file')
            raise NotAFile(errno.EINVAL, '%s %s is %s, not a regular file' % (what, path, kind))
        os.set_blocking(fd, True)
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


MANIFEST_LIMIT = 16 * 1024 * 1024
# The members every manifest has (backup/manifest.py REQUIRED; this helper imports nothing from the collection).
REQUIRED = ('id', 'artifact', 'engine', 'kind', 'started', 'finished', 'size', 'sha256', 'compression')


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError('a member appears twice in one object')
    return data


def _no_constant(name: str) -> Any:
    raise ValueError('%s is not a JSON value' % name)


def loads_strict(raw: bytes) -> Any:
    """JSON as the catalog reads a manifest (backup/manifest.py ``loads_strict``, kept in step by the tests): UTF-8,
    no NaN/Infinity, no member named twice, not nested past the decoder; ValueError otherwise."""
    try:
        return json.loads(raw.decode('utf-8'), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError('arrays or objects nested too deep')


def _not_ours(dest: str, data: Any) -> Optional[str]:
    """Why ``data`` is no manifest the catalog would list for a segment archived here, or None. The re-archive
    check must not be easier to satisfy than the catalog: a manifest it takes and the catalog ignores answers
    "already archived" (PostgreSQL then recycles the segment) for a segment no restore can find."""
    if not isinstance(data, dict):
        return 'not a manifest (no JSON object)'
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        return 'not a manifest (no %s)' % ', '.join(missing)
    for key in ('id', 'artifact', 'engine', 'kind', 'started', 'finished', 'sha256', 'compression', 'plain_sha256'):
        if (key in data or key in REQUIRED) and not isinstance(data.get(key), str):
            return 'not a manifest (%s is not text)' % key
    if not isinstance(data['size'], int) or isinstance(data['size'], bool) or data['size'] < 0:
        return 'not a manifest (size is not a byte count)'
    artifact = data['artifact']
    if '/' in artifact or artifact in ('', '.', '..') or not os.path.isfile(os.path.join(dest, artifact)) \
            or os.path.islink(os.path.join(dest, artifact)):
        return 'its artifact %r is not a file here' % artifact
    return None


def _existing(dest: str, wal_name: str) -> List[Dict[str, Any]]:
    found = []
    for path in glob.glob(os.path.join(glob.escape(dest), 'postgresql-cluster-wal-*-%s*.manifest.json' % wal_name)):
        try:
            with _open_regular(path, 'manifest') as handle:
                data = loads_strict(handle.read(MANIFEST_LIMIT + 1))
        except NotAFile as exc:
            # planted by someone who can write the archive: not a copy of this segment, and no reason to stop
            # archiving (PostgreSQL would retry it forever while pg_wal fills up); said in the server's log
            sys.stderr.write('opsready pg_wal_archive: ignoring %s\n' % exc.strerror)
            continue
        except OSError:
            continue
        except ValueError as exc:
            # damaged or planted (a member twice, NaN, too deep): the catalog ignores it, so it is no copy of
            # this segment, and failing would make PostgreSQL retry forever, as for a planted special file
            sys.stderr.write('opsready pg_wal_archive: ignoring %s: not a manifest (%s)\n' % (path, exc))
            continue
        problem = _not_ours(dest, data)
        if problem:
            sys.stderr.write('opsready pg_wal_archive: ignoring %s: %s\n' % (path, problem))
            continue
        found.append(data)
    return found


def _extra_file(dest: str, source: str, name: str) -> int:
    """History, backup-label and partial files: copied verbatim (atomically) into <dest>/pg_wal_extra/."""
    extra = os.path.join(dest, 'pg_wal_extra')
    os.makedirs(extra, mode=0o700, exist_ok=True)
    if os.path.islink(extra):
        return _fail('%s is a symlink: not writing %s through it; make it a directory' % (extra, name))
    target = os.path.join(extra, name)
    with _open_regular(source, 'WAL file') as handle:
        data = handle.read()
    try:
        with _open_regular(target, 'archived copy') as handle:
            return 0 if handle.read() == data else _fail('%s already archived with different content' % name)
    except FileNotFoundError:
        pass
    except NotAFile as exc:
        # not an archived copy: replaced below by the rename (which never writes through a link)
        sys.stderr.write('opsready pg_wal_archive: replacing %s\n' % exc.strerror)
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
    """The 32-byte X25519 public key of an ``age1...`` recipient (bech32, BIP 173 checksum).

    As age reads one: lower case only, nothing around it (``age -r`` refuses ``AGE1...`` and a padded key)."""
    low = text.lower()
    pos = low.rfind('1')
    if (text != low or low[:pos] != 'age' or len(low) - pos < 8
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

    ``prepare`` makes the header and the payload's sealing function (``age_header``: loading the primitives, the
    key exchange). It runs in a thread while the main thread hashes and compresses (hashlib, zlib and zstandard
    release the GIL on large buffers); compressed bytes wait in memory until the key is ready (at most
    ``PENDING_LIMIT``, then ``write`` waits), so the stored bytes are the same as from a sequential writer.
    Chunks are sealed from a view of the pending bytes into one reused output buffer: no copy or allocation per
    64 KiB chunk.
    """

    PENDING_LIMIT = 64 * 1024 * 1024

    def __init__(self, sink: Any, publics: List[bytes], prepare: Optional[Callable[[], Tuple[bytes, Any]]] = None
                 ) -> None:
        import threading
        self._sink = sink
        self._buffer = bytearray()
        self._out = bytearray()
        self._counter = 0
        self._seal: Any = None
        self._error: Optional[BaseException] = None
        self.size = 0
        self._prepare_with = prepare or (lambda: age_header(publics))
        self._thread = threading.Thread(target=self._prepare, daemon=True)
        self._thread.start()

    def _prepare(self) -> None:
        try:
            self._head, self._seal_function = self._prepare_with()
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
        self._seal_chunks(False)
        return len(data)

    def _seal_chunks(self, last: bool) -> None:
        """Seal the pending bytes' full chunks, keeping at least one byte back (``close`` seals the last chunk,
        flagged, with what remains: at most one full chunk, and empty only when the whole payload is)."""
        buf = self._buffer
        count = (len(buf) - 1) // AGE_CHUNK if len(buf) else 0
        sizes = [AGE_CHUNK] * count + ([len(buf) - count * AGE_CHUNK] if last else [])
        if not sizes:
            return
        total = sum(sizes) + 16 * len(sizes)
        if len(self._out) < total:
            self._out = bytearray(total)
        src, dst = memoryview(buf), memoryview(self._out)
        start = at = 0
        try:
            for n, size in enumerate(sizes):
                flag = b'\x01' if last and n == len(sizes) - 1 else b'\0'
                self._seal(self._counter.to_bytes(11, 'big') + flag, src[start:start + size], dst[at:at + size + 16])
                self._counter += 1
                start += size
                at += size + 16
            self._sink.write(dst[:at])
        finally:
            src.release()
            dst.release()
        # A new tail (under 64 KiB), not ``del buf[:start]``: a cipher layer that kept an export of the
        # pending buffer alive could not make it shrink.
        self._buffer = buf[start:]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._seal is None:
            self._ready()
        self._seal_chunks(True)
        self._buffer = bytearray()


# -- the primitives (X25519, ChaCha20-Poly1305), from the layer of ``cryptography`` cheapest to load -------
# PostgreSQL starts the helper once per 16 MB segment, so loading the primitives is paid per segment. The public
# modules (``cryptography.hazmat.primitives...``) load the whole backend: with Debian 12's cryptography 38 that is
# its OpenSSL backend, which imports all of x509 (and email, typing, ...), ~43 ms of CPU, more than the sealing of
# a segment costs. Each loader below returns (name, public(secret), exchange(secret, peer), sealer(key)) where
# ``sealer(key)(nonce, src, dst)`` writes ChaCha20-Poly1305 of ``src`` plus its 16-byte tag into ``dst``.

def _from_binding() -> Tuple[str, Any, Any, Any]:
    """cryptography >= 42: the public classes are the compiled (Rust) binding's own objects; taken from the binding
    directly, the import skips the pure-Python layers above it (~5 ms of CPU instead of ~35)."""
    from cryptography.hazmat.bindings._rust import openssl as binding  # type: ignore[import-not-found,unused-ignore]
    x25519, aead = binding.x25519, binding.aead.ChaCha20Poly1305
    private, public_key = x25519.from_private_bytes, x25519.from_public_bytes

    def public(secret: bytes) -> bytes:
        return private(secret).public_key().public_bytes_raw()  # type: ignore[no-any-return]

    def exchange(secret: bytes, peer: bytes) -> bytes:
        return private(secret).exchange(public_key(peer))  # type: ignore[no-any-return]

    def sealer(key: bytes) -> Any:
        cipher = aead(key)
        if hasattr(cipher, 'encrypt_into'):  # cryptography >= 45: straight into the output buffer
            into = cipher.encrypt_into
            return lambda nonce, src, dst: into(nonce, src, None, dst)
        encrypt = cipher.encrypt

        def seal(nonce: bytes, src: Any, dst: Any) -> None:
            dst[:] = encrypt(nonce, src, None)
        return seal
    return 'binding', public, exchange, sealer


def _from_openssl_cffi() -> Tuple[str, Any, Any, Any]:
    """cryptography < 42 (Debian 12's 38): its cffi module of OpenSSL functions, without the backend above it (~1 ms
    of CPU to load instead of ~43). The calls are the ones that release's backend makes for X25519 and
    ChaCha20-Poly1305 (``backends/openssl/x25519.py``, ``aead.py``), with one cipher context for the payload."""
    from cryptography.hazmat.bindings._openssl import ffi, lib  # type: ignore[import-not-found,unused-ignore]
    null = ffi.NULL
    for name in ('EVP_PKEY_new_raw_private_key', 'EVP_PKEY_get_raw_public_key', 'EVP_PKEY_derive_set_peer',
                 'EVP_CIPHER_CTX_ctrl', 'EVP_CTRL_AEAD_GET_TAG', 'NID_X25519'):
        getattr(lib, name)  # AttributeError: a build without them takes the next loader

    def check(ok: bool, what: str) -> None:
        if not ok:
            lib.ERR_clear_error()
            raise RuntimeError('OpenSSL (through cryptography\'s binding) failed: %s' % what)

    def pkey(raw: bytes, private: bool) -> Any:
        make = lib.EVP_PKEY_new_raw_private_key if private else lib.EVP_PKEY_new_raw_public_key
        key = make(lib.NID_X25519, null, raw, len(raw))
        check(key != null, 'loading an X25519 key')
        return ffi.gc(key, lib.EVP_PKEY_free)

    def public(secret: bytes) -> bytes:
        out, size = ffi.new('unsigned char[32]'), ffi.new('size_t *', 32)
        check(lib.EVP_PKEY_get_raw_public_key(pkey(secret, True), out, size) == 1 and size[0] == 32,
              'X25519 public key')
        return ffi.buffer(out, 32)[:]  # type: ignore[no-any-return]

    def exchange(secret: bytes, peer: bytes) -> bytes:
        ctx = lib.EVP_PKEY_CTX_new(pkey(secret, True), null)   # holds its own reference to the key
        check(ctx != null, 'X25519 context')
        ctx = ffi.gc(ctx, lib.EVP_PKEY_CTX_free)
        out, size = ffi.new('unsigned char[32]'), ffi.new('size_t *', 32)
        # OpenSSL refuses an all-zero shared secret (a low-order recipient key), as age requires.
        check(lib.EVP_PKEY_derive_init(ctx) == 1 and lib.EVP_PKEY_derive_set_peer(ctx, pkey(peer, False)) == 1
              and lib.EVP_PKEY_derive(ctx, out, size) == 1 and size[0] == 32, 'X25519 key exchange')
        return ffi.buffer(out, 32)[:]  # type: ignore[no-any-return]

    def sealer(key: bytes) -> Any:
        cipher, ctx = lib.EVP_get_cipherbyname(b'chacha20-poly1305'), lib.EVP_CIPHER_CTX_new()
        check(cipher != null and ctx != null, 'ChaCha20-Poly1305 context')
        ctx = ffi.gc(ctx, lib.EVP_CIPHER_CTX_free)
        check(lib.EVP_CipherInit_ex(ctx, cipher, null, null, null, 1) == 1
              and lib.EVP_CIPHER_CTX_ctrl(ctx, lib.EVP_CTRL_AEAD_SET_IVLEN, 12, null) == 1, 'ChaCha20-Poly1305 setup')
        size = ffi.new('int *')

        def seal(nonce: bytes, src: Any, dst: Any) -> None:
            n = len(src)
            if len(dst) != n + 16:
                raise ValueError('output buffer of %d bytes for %d bytes of input' % (len(dst), n))
            with ffi.from_buffer('unsigned char[]', src) as pin, \
                    ffi.from_buffer('unsigned char[]', dst, True) as pout:
                # Key and nonce together for every chunk: a fresh ChaCha20-Poly1305 state (counters, MAC).
                ok = (lib.EVP_CipherInit_ex(ctx, null, null, key, nonce, 1) == 1
                      and lib.EVP_CipherUpdate(ctx, pout, size, pin, n) == 1 and size[0] == n
                      and lib.EVP_CipherFinal_ex(ctx, pout + n, size) == 1 and size[0] == 0
                      and lib.EVP_CIPHER_CTX_ctrl(ctx, lib.EVP_CTRL_AEAD_GET_TAG, 16, pout + n) == 1)
            check(ok, 'ChaCha20-Poly1305 encryption')
        return seal
    return 'openssl cffi', public, exchange, sealer


def _from_public_modules() -> Tuple[str, Any, Any, Any]:
    """Any release: the documented API (the slowest to load)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    def public(secret: bytes) -> bytes:
        return _raw_public(X25519PrivateKey.from_private_bytes(secret).public_key())

    def exchange(secret: bytes, peer: bytes) -> bytes:
        return X25519PrivateKey.from_private_bytes(secret).exchange(X25519PublicKey.from_public_bytes(peer))

    def sealer(key: bytes) -> Any:
        encrypt = ChaCha20Poly1305(key).encrypt

        def seal(nonce: bytes, src: Any, dst: Any) -> None:
            # A copy, not the view: cryptography < 40 (cffi) could keep an export of it alive.
            dst[:] = encrypt(nonce, bytes(src), None)
        return seal
    return 'public modules', public, exchange, sealer


# The cffi module first: it exists only in releases < 42 (cheapest there), and looking for it in a later one costs
# a failed import, where trying the Rust binding first would load that 5 ms module in a release < 42 for nothing.
LOADERS = (_from_openssl_cffi, _from_binding, _from_public_modules)


def _primitives() -> Tuple[str, Any, Any, Any]:
    """The first loader this host's ``cryptography`` serves (ImportError when it has none)."""
    for loader in LOADERS[:-1]:
        try:
            return loader()
        except (ImportError, AttributeError):
            continue
    return LOADERS[-1]()


def age_header(publics: List[bytes], primitives: Optional[Tuple[str, Any, Any, Any]] = None) -> Tuple[bytes, Any]:
    """(the age header + payload nonce, the payload's sealing function) for a new random file key."""
    primitives = primitives or _primitives()
    dummy, public, exchange, sealer = primitives
    file_key = os.urandom(16)
    stanzas = []
    for recipient in publics:
        secret = os.urandom(32)   # the ephemeral X25519 scalar (clamped by X25519 itself)
        share = public(secret)
        wrap = _hkdf(exchange(secret, recipient), share + recipient, b'age-encryption.org/v1/X25519')
        body = bytearray(32)
        sealer(wrap)(b'\0' * 12, file_key, memoryview(body))
        stanzas.append(b'-> X25519 ' + _b64(share) + b'\n' + _b64(bytes(body)))
    return finish_header(stanzas, file_key, os.urandom(16), sealer)


def finish_header(stanzas: List[bytes], file_key: bytes, nonce: bytes, sealer: Any) -> Tuple[bytes, Any]:
    """The header around ``stanzas`` with its MAC, the payload nonce, and the payload's sealing function."""
    head = b'\n'.join([b'age-encryption.org/v1'] + stanzas) + b'\n---'
    mac = hmac.new(_hkdf(file_key, b'', b'header'), head, hashlib.sha256).digest()
    return head + b' ' + _b64(mac) + b'\n' + nonce, sealer(_hkdf(file_key, nonce, b'payload'))


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
        with open(recipients_file, encoding='utf-8', newline='') as handle:
            # age's ParseRecipients: lines split at LF (a CR before it dropped); empty lines and lines starting with
            # "#" skipped; any other line is one recipient exactly (an indented comment or a padded key is refused).
            for line in handle.read().split('\n'):
                line = line[:-1] if line.endswith('\r') else line
                if line and not line.startswith('#'):
                    texts.append(line)
        if not texts:
            raise RecipientError('recipients file %s holds no "age1..." line' % recipients_file)
    return [parse_recipient(t) for t in texts]


def _sha256_file(path: str) -> str:
    plain = hashlib.sha256()
    with _open_regular(path, 'WAL segment') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            plain.update(block)
    return plain.hexdigest()


def _segment_origin(source: str, size: int) -> Optional[str]:
    """``pg:<system identifier>`` from the segment's first page (its long header: magic, info with XLP_LONG_HEADER,
    timeline, page address, remaining length, then the system identifier and the segment and block sizes, in the
    byte order of this machine, the server's): the same origin db_backup records from pg_control_system(), so that
    a shared archive never chains one cluster's WAL onto another's base backup. None when it cannot tell."""
    try:
        with _open_regular(source, 'WAL segment') as handle:
            head = handle.read(40)
        if len(head) < 40:
            return None
        info = int.from_bytes(head[2:4], sys.byteorder)
        sysid = int.from_bytes(head[24:32], sys.byteorder)
        seg_size = int.from_bytes(head[32:36], sys.byteorder)
    except OSError:
        return None
    if not info & 0x0002 or not sysid or seg_size != size:
        return None
    return 'pg:%d' % sysid


def archive(dest: str, source: str, wal_name: str, compression: str = 'zstd', level: Optional[int] = None,
            server: Optional[str] = None, segment_size: Optional[int] = None,
            recipients: Optional[List[bytes]] = None) -> int:
    if not os.path.isdir(dest):
        return _fail('backup directory %s does not exist' % dest)
    match = WAL_FILE.match(wal_name)
    if not match:
        return _extra_file(dest, source, wal_name)
    started = datetime.datetime.now(datetime.timezone.utc)
    with _open_regular(source, 'WAL segment') as probe:   # a FIFO or a link in pg_wal: refused, not read
        st = os.fstat(probe.fileno())
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
            with _open_regular(source, 'WAL segment') as handle:
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
    origin = _segment_origin(source, size)
    if origin:
        # without it (a segment whose header cannot be read) the WAL joins its set's only origin, as old manifests do
        manifest['origin'] = origin
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
    os.replace(tmp, target)      # mkstemp made it 0600
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
