# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming public-key encryption of backup artifacts in the age v1 format (X25519 recipients).

Files written here are standard age files: ``age -d -i key.txt`` (Debian's ``age``), ``rage`` and
``pyrage`` decrypt them, and files they write to X25519 recipients decrypt here. The primitives are
the ``cryptography`` package's (X25519, HKDF-SHA-256, HMAC-SHA-256, ChaCha20-Poly1305, i.e. OpenSSL);
this file only frames them as the age specification (C2SP age.md) says:

- header ``age-encryption.org/v1``, one ``-> X25519`` stanza per recipient (the 16-byte file key
  wrapped with a key derived from an ephemeral X25519 exchange), ``---`` and the header HMAC;
- a 16-byte nonce, then the payload as the STREAM construction: 64 KiB plaintext chunks, each sealed
  with ChaCha20-Poly1305 under HKDF(file key, nonce, "payload"), nonce = 11-byte big-endian counter
  and a last-chunk flag, so truncation, reordering and any flipped bit fail authentication.

Why not pyrage (rage) for the stream, although it now streams at the same speed: it is a PyPI-only
Rust wheel that every managed host would need, and its ``encrypt_io``/``decrypt_io`` own the loop,
which needs a thread and a pipe in our push (write) and pull (read) pipelines. The decoder is held
to the C2SP CCTV vectors and to differential tests against ``age`` and pyrage instead; see
docs/encryption.md "Conformance".

Encryption is a push stage (``EncryptingWriter.write``) so it runs in the same single pass as
compression and hashing; decryption is a pull stage (``DecryptingReader.read``) under decompression.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import IO, Any, Dict, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


class _Primitives:
    """cryptography's classes, imported on first use: a backup that does not encrypt never loads OpenSSL's
    binding (~7 MB of RSS and 5-50 ms of start-up per process, depending on the release). A missing package
    raises ImportError here, after crypto_guard (check_available, or crypto_guard.require in the module) has
    had its chance to say what to install."""

    _loaded: Optional['_Primitives'] = None

    def __init__(self) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        self.InvalidTag = InvalidTag
        self.hashes = hashes
        self.X25519PrivateKey = X25519PrivateKey
        self.X25519PublicKey = X25519PublicKey
        self.ChaCha20Poly1305 = ChaCha20Poly1305
        self.HKDF = HKDF


def _c() -> _Primitives:
    if _Primitives._loaded is None:
        _Primitives._loaded = _Primitives()
    return _Primitives._loaded


FORMAT = 'age'
VERSION_LINE = b'age-encryption.org/v1'
SUFFIX = '.age'
CHUNK = 64 * 1024
TAG = 16
NONCE = 16
RECIPIENT_HRP = 'age'
IDENTITY_HRP = 'age-secret-key-'
X25519_LABEL = b'age-encryption.org/v1/X25519'


def check_available() -> None:
    message = crypto_guard.missing(crypto_guard.ENCRYPTION_MINIMUM, 'encrypt')
    if message:
        raise OpsReadyError(message)


# -- bech32 (BIP 173; age keys are bech32 without the 90-character limit) -------------------------
_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
_GEN = (0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3)


def _polymod(values: List[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ value
        for i in range(5):
            chk ^= _GEN[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp: str) -> List[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: Sequence[int], frombits: int, tobits: int, pad: bool) -> Optional[List[int]]:
    acc = bits = 0
    out = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        return None
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    five = _convertbits(data, 8, 5, True) or []
    values = _hrp_expand(hrp) + five
    polymod = _polymod(values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + '1' + ''.join(_CHARSET[d] for d in five + checksum)


def bech32_decode(text: str) -> Optional[tuple]:
    if text.lower() != text and text.upper() != text:
        return None
    text = text.lower()
    pos = text.rfind('1')
    if pos < 1 or pos + 7 > len(text) or any(c not in _CHARSET for c in text[pos + 1:]):
        return None
    hrp = text[:pos]
    data = [_CHARSET.find(c) for c in text[pos + 1:]]
    if _polymod(_hrp_expand(hrp) + data) != 1:
        return None
    decoded = _convertbits(data[:-6], 5, 8, False)
    if decoded is None:
        return None
    return hrp, bytes(decoded)


# -- keys -------------------------------------------------------------------------------------------
def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b'=')


_B64_ALPHABET = frozenset(b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')


def _unb64(text: bytes) -> bytes:
    """Canonical unpadded base64 (age spec, RFC 4648 3.5) or ValueError.

    ``b64decode(validate=True)`` alone accepts non-zero trailing bits (two spellings of one value)
    and padding: the spec says decoders MUST reject both, so the text must re-encode to itself.
    """
    if not _B64_ALPHABET.issuperset(text) or len(text) % 4 == 1:
        raise ValueError('not canonical unpadded base64')
    data = base64.b64decode(text + b'=' * (-len(text) % 4), validate=True)
    if _b64(data) != text:
        raise ValueError('not canonical unpadded base64')
    return data


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return _c().HKDF(algorithm=_c().hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def parse_recipient(text: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1...`` recipient; a clear error otherwise.

    Exactly as age reads one (``ParseX25519Recipient``): lower case (Bech32 allows one case or the other, age's
    recipient type is "age"), nothing around it. An upper-case or padded spelling was accepted here and refused
    by ``age -r``: a recipient list must mean the same thing to both."""
    decoded = bech32_decode(text)
    if decoded is None or decoded[0] != RECIPIENT_HRP or len(decoded[1]) != 32 or text != text.lower():
        shown = text if len(text) < 80 else text[:20] + '...'
        if text.strip().upper().startswith('AGE-SECRET-KEY-'):
            raise OpsReadyError('A recipient is an age identity (private key), not a public key: give the '
                                '"age1..." public key in recipients (age-keygen -y key.txt prints it).')
        if text != text.strip():
            raise OpsReadyError('Recipient %r has white space around it, which age refuses: give the "age1..." '
                                'public key alone (age-keygen -y key.txt prints it).' % shown)
        if decoded is not None and decoded[0] == RECIPIENT_HRP and len(decoded[1]) == 32:
            raise OpsReadyError('Recipient %r is not in lower case: age recipients are written "age1..." in lower '
                                'case, as age-keygen -y key.txt prints them (age refuses any other spelling).'
                                % shown)
        raise OpsReadyError('Recipient %r is not an age X25519 public key ("age1..." from age-keygen). '
                            'SSH and plugin recipients are not supported.' % shown)
    return decoded[1]


def _key_lines(text: str) -> List[str]:
    """The lines of an age identity or recipients file as age reads them (Go's ``bufio.ScanLines``): split at LF
    only, one CR before it dropped. ``str.splitlines`` also splits at VT, FF, FS-US, NEL and U+2028: a "# comment"
    holding one of them hid a key from age but not from us."""
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    return [line[:-1] if line.endswith('\r') else line for line in lines]


class Identity:
    """An X25519 identity (private key). ``repr`` never shows the secret."""

    def __init__(self, secret: bytes) -> None:
        check_available()
        self._key = _c().X25519PrivateKey.from_private_bytes(secret)
        self.public = self._key.public_key().public_bytes_raw()

    @property
    def recipient(self) -> str:
        return bech32_encode(RECIPIENT_HRP, self.public)

    def __repr__(self) -> str:
        return '<age identity for %s>' % self.recipient

    def shared_secret(self, share: bytes) -> bytes:
        """X25519 with the stanza's share; ValueError for a low-order share (all-zero result)."""
        # cryptography raises ValueError itself for an all-zero result; the explicit check keeps the
        # spec's "MUST abort" true whatever the backend does.
        try:
            shared = self._key.exchange(_c().X25519PublicKey.from_public_bytes(share))
        except ValueError:
            shared = b'\x00' * 32
        if shared == b'\x00' * 32:
            raise ValueError('an X25519 stanza with a low-order share: the shared secret is all zero')
        return shared

    def unwrap(self, share: bytes, body: bytes) -> Optional[bytes]:
        """The 16-byte file key when the stanza is ours, None when it is not; ValueError when malformed."""
        if len(share) != 32 or len(body) != 32:
            raise ValueError('X25519 stanza with a share or body that is not 32 bytes')
        key = _hkdf(self.shared_secret(share), share + self.public, X25519_LABEL)
        try:
            return _c().ChaCha20Poly1305(key).decrypt(b'\x00' * 12, body, None)
        except _c().InvalidTag:
            return None


def recipients_option(encrypt: bool, recipients: Optional[Sequence[str]], what: str) -> List[str]:
    """The modules' ``encrypt``/``recipients`` pair as normalised recipients ([] when not encrypting).

    Canonical (age's own spelling, anything else is refused) so a manifest and a later freshness check compare equal.
    ``what`` names what is encrypted in the message ("the backup", "archives").
    """
    if recipients and not encrypt:
        raise OpsReadyError('recipients is set but encrypt is false: set encrypt=true to encrypt %s, or drop '
                            'recipients.' % what)
    if not encrypt:
        return []
    if not recipients:
        # required_if accepts an empty list: without this the backup would be written in the clear.
        raise OpsReadyError('encrypt is true but recipients is empty: give at least one age public key '
                            '("age1...") to encrypt %s to.' % what)
    return [bech32_encode(RECIPIENT_HRP, parse_recipient(r)) for r in recipients]


def generate_identity() -> str:
    """A new ``AGE-SECRET-KEY-1...`` string (for tests and for the docs' key ceremony)."""
    check_available()
    key = _c().X25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return bech32_encode(IDENTITY_HRP, raw).upper()


def parse_identities(text: str, source: str = 'identity') -> List[Identity]:
    """Every ``AGE-SECRET-KEY-1`` line of an age identity file, read as age reads one (``parseIdentities``): a line
    is empty, a comment (``#`` in its first column) or exactly one upper-case key, nothing around it."""
    check_available()
    found = []
    for number, line in enumerate(_key_lines(text), 1):
        if not line or line.startswith('#'):
            continue
        decoded = bech32_decode(line)
        if decoded is None or decoded[0] != IDENTITY_HRP or len(decoded[1]) != 32 or line != line.upper():
            # Never echo the line: it may be a mangled secret.
            if line != line.strip():
                why = ('has white space around it (or is an indented comment), which age refuses: the key alone on '
                       'its line, comments with "#" in the first column')
            elif decoded is not None and decoded[0] == IDENTITY_HRP and len(decoded[1]) == 32:
                why = ('is not in upper case: age identities are written "AGE-SECRET-KEY-1..." in upper case, as '
                       'age-keygen writes them (age refuses any other spelling)')
            else:
                why = ('is not an age X25519 identity ("AGE-SECRET-KEY-1..." from age-keygen); passphrase, SSH and '
                       'plugin identities are not supported')
            raise OpsReadyError('%s line %d %s.' % (source, number, why))
        found.append(Identity(decoded[1]))
    if not found:
        raise OpsReadyError('%s holds no age identity ("AGE-SECRET-KEY-1..." line).' % source)
    return found


def load_identities(identity: Optional[str] = None, identity_file: Optional[str] = None) -> List[Identity]:
    """From the ``identity`` option (the key text) and/or ``identity_file`` (an age-keygen file)."""
    result: List[Identity] = []
    if identity:
        result += parse_identities(identity, 'identity')
    if identity_file:
        try:
            # An age identity file is a few hundred bytes: 1 MiB is generous, a FIFO or device is refused.
            text = safeio.read_regular(identity_file, 1024 * 1024, what='identity_file').decode('utf-8')
        except safeio.UnsafeFileError:
            raise
        except OSError as exc:
            raise OpsReadyError('Cannot read identity_file %s: %s.' % (identity_file, exc.strerror),
                                path=identity_file)
        except UnicodeDecodeError:
            # Never echo the content: it may be a mangled secret.
            raise OpsReadyError('identity_file %s is not a text file: give the age-keygen output '
                                '("AGE-SECRET-KEY-1..." line).' % identity_file, path=identity_file)
        result += parse_identities(text, 'identity_file %s' % identity_file)
    return result


# -- header -------------------------------------------------------------------------------------------
def _header(file_key: bytes, recipients: Sequence[bytes]) -> bytes:
    lines = [VERSION_LINE]
    for public in recipients:
        ephemeral = _c().X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(_c().X25519PublicKey.from_public_bytes(public))
        key = _hkdf(shared, share + public, X25519_LABEL)
        body = _c().ChaCha20Poly1305(key).encrypt(b'\x00' * 12, file_key, None)
        lines.append(b'-> X25519 ' + _b64(share))
        lines.append(_b64(body))  # 32 bytes -> 43 columns: one line shorter than 64, as required
    head = b'\n'.join(lines) + b'\n---'
    mac = hmac.new(_hkdf(file_key, b'', b'header'), head, hashlib.sha256).digest()
    return head + b' ' + _b64(mac) + b'\n'


# A header line longer than this is refused (age's own stanzas are at most ~1.5 KiB, post-quantum ones
# included), and so is a header larger than MAX_HEADER: a corrupt file must not make us buffer gigabytes.
MAX_LINE = 64 * 1024
MAX_HEADER = 1024 * 1024


class _Malformed(ValueError):
    """A header the age spec says to reject; DecryptingReader turns it into IntegrityError."""


def _read_header(handle: IO[bytes], name: str) -> tuple:
    """(header bytes up to and including ``---``, 32-byte MAC, [(args, body)]).

    Parses the ABNF of the spec exactly (age.md "ABNF definition of file header"): ``-> `` then one or
    more arguments of 1*VCHAR separated by single spaces; a body of canonical unpadded base64 in lines
    of exactly 64 columns closed by one shorter line (possibly empty); ``--- `` and 43 base64
    characters. Raises IntegrityError for a file that is not age v1, _Malformed for a broken header.
    """
    total = [0]

    def line() -> bytes:
        data = handle.readline(MAX_LINE + 1)
        total[0] += len(data)
        if not data.endswith(b'\n'):
            if len(data) > MAX_LINE:
                raise _Malformed('a header line longer than %d bytes' % MAX_LINE)
            raise _Malformed('it ends before the header MAC line; truncated?')
        if total[0] > MAX_HEADER:
            raise _Malformed('a header larger than %d bytes' % MAX_HEADER)
        return data[:-1]
    first = handle.readline(len(VERSION_LINE) + 1)
    if first != VERSION_LINE + b'\n':
        raise IntegrityError('%s is not an age v1 file (it does not start with %s): was it written with '
                             'encrypt=true?' % (name, VERSION_LINE.decode()), path=name)
    head = [VERSION_LINE]
    stanzas: List[tuple] = []
    while True:
        current = line()
        if current.startswith(b'---'):
            if not stanzas:
                raise _Malformed('no recipient stanza')
            if current[3:4] != b' ' or len(current) != 4 + 43:
                raise _Malformed('the MAC line is not "--- " and 43 base64 characters')
            head.append(b'---')
            return b'\n'.join(head), _unb64(current[4:]), stanzas
        if not current.startswith(b'-> '):
            raise _Malformed('a line that is neither a stanza ("-> ") nor the MAC ("---")')
        head.append(current)
        args = current[3:].split(b' ')
        for arg in args:
            # argument = 1*VCHAR: no empty argument (two spaces, trailing space), no control or 8-bit byte
            if not arg or min(arg) < 0x21 or max(arg) > 0x7e:
                raise _Malformed('a stanza argument that is empty or not printable ASCII')
        body_lines = []
        while True:
            body = line()
            if len(body) > 64:
                raise _Malformed('a stanza body line longer than 64 columns')
            head.append(body)
            body_lines.append(body)
            if len(body) < 64:
                break
        stanzas.append((args, _unb64(b''.join(body_lines))))


def _check_stanzas(stanzas: Sequence[tuple], identity: 'Identity') -> None:
    """Refuse the header for any malformed X25519 stanza and for scrypt beside other stanzas.

    Every X25519 stanza is checked, also those after the one that is ours: age and rage stop at the
    first stanza that is ours or malformed, so a malformed one after ours passes there; no age encoder
    writes one, and a backup tool has no reason to accept a header the spec calls malformed.
    """
    for args, body in stanzas:
        if args[0] == b'scrypt' and len(stanzas) != 1:
            raise _Malformed('an scrypt stanza beside other stanzas, which the spec forbids')
        if args[0] != b'X25519':
            continue  # other recipient types: ignored, as the spec requires
        if len(args) != 2:
            raise _Malformed('an X25519 stanza with %d arguments (needs exactly the share)' % (len(args) - 1))
        share = _unb64(args[1])
        if len(share) != 32 or len(body) != 32:
            raise _Malformed('an X25519 stanza whose share or body is not 32 bytes')
        # Low order is a property of the share (every clamped scalar is a multiple of the cofactor), so
        # one identity tells for all of them.
        identity.shared_secret(share)


def _stream_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, 'big') + (b'\x01' if last else b'\x00')


class EncryptingWriter:
    """Push stage: ``write()`` plaintext, ``close()`` seals the last chunk; writes age bytes to ``sink``.

    Hashes the plaintext it is given (``plaintext_sha256``) for the manifest.
    """

    def __init__(self, sink: Any, recipients: Sequence[str], hash_plaintext: bool = True) -> None:
        check_available()
        if not recipients:
            raise OpsReadyError('encrypt=true needs at least one recipient (an "age1..." public key).')
        publics = [parse_recipient(r) for r in recipients]
        self.recipients = [bech32_encode(RECIPIENT_HRP, p) for p in publics]
        self._sink = sink
        file_key = os.urandom(16)
        nonce = os.urandom(NONCE)
        sink.write(_header(file_key, publics) + nonce)
        self._aead = _c().ChaCha20Poly1305(_hkdf(file_key, nonce, b'payload'))
        self._into: Any = getattr(self._aead, 'encrypt_into', None)  # cryptography >= 45
        self._spare: Any = getattr(sink, 'spare', None)
        self._buffer = bytearray()
        self._counter = 0
        # A re-encryption (backup.rekey) already hashes the plaintext as it decrypts it: no second pass.
        self._hash = hash_plaintext
        self.plaintext = hashlib.sha256()
        self.plaintext_size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        """Seal every whole chunk that is known not to be the last one; keep the rest (1 byte to one chunk).

        Whole chunks are sealed straight from ``data`` into one output buffer (``encrypt_into`` where
        cryptography has it): no copy of the input into a buffer, no join. ``data`` is not kept (the caller may
        reuse it), and the buffer handed to the sink is never touched again (the sink may keep it). The output
        buffer is new, or one the sink's ``spare(size)`` returns (a bytearray of that size it no longer needs)."""
        if self._hash:
            self.plaintext.update(data)
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast('B')
        size = len(view)
        self.plaintext_size += size
        buf = self._buffer
        pos = 0
        if buf or size <= CHUNK:
            pos = min(CHUNK - len(buf), size)
            buf += view[:pos]
            if pos == size:
                return size  # all of it may still be the end: kept back
        # Here more bytes follow what buf holds, so buf (a whole chunk, or nothing) is not the last one.
        direct = (size - pos - 1) // CHUNK  # whole chunks of data after pos, keeping at least one byte back
        count = (1 if buf else 0) + direct
        # A sink may hand back a buffer it is done with (``spare``): no zero-filling and no page faults per block.
        out = self._spare(count * (CHUNK + TAG)) if self._spare is not None else None
        if out is None:
            out = bytearray(count * (CHUNK + TAG))
        target = memoryview(out)
        at = 0
        if buf:
            self._seal(buf, target[:CHUNK + TAG])
            at = CHUNK + TAG
        for start in range(pos, pos + direct * CHUNK, CHUNK):
            self._seal(view[start:start + CHUNK], target[at:at + CHUNK + TAG])
            at += CHUNK + TAG
        target.release()
        self._buffer = bytearray(view[pos + direct * CHUNK:])
        self._sink.write(out)
        return size

    def _seal(self, chunk: Any, target: Any) -> None:
        """One middle chunk of the STREAM, sealed into ``target`` (its length plus the tag)."""
        nonce = _stream_nonce(self._counter, False)
        self._counter += 1
        if self._into is not None:
            self._into(nonce, chunk, None, target)
        else:  # cryptography < 45
            target[:] = self._aead.encrypt(nonce, chunk, None)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._sink.write(self._aead.encrypt(_stream_nonce(self._counter, True), bytes(self._buffer), None))
        self._buffer = bytearray()

    def info(self, plaintext_sha256: Optional[str] = None, seal_checksum: bool = True) -> Dict[str, Any]:
        """What the manifest records: never a secret; the plaintext checksum sealed to the recipients.

        ``plaintext_sha256``: the checksum computed elsewhere when the writer was told not to hash.
        ``seal_checksum=False``: no plaintext checksum (the stream carries its own, see ArtifactWriter)."""
        record = {
            'format': FORMAT,
            'version': VERSION_LINE.decode(),
            'recipients': list(self.recipients),
            'plaintext_size': self.plaintext_size,
        }
        if seal_checksum:
            if not self._hash and plaintext_sha256 is None:
                raise ValueError('EncryptingWriter(hash_plaintext=False).info() needs plaintext_sha256')
            digest = plaintext_sha256 or self.plaintext.hexdigest()
            record['plaintext_sha256_sealed'] = seal_text(digest, self.recipients)
        return record


class DecryptingReader:
    """Pull stage: ``read()`` returns plaintext of an age file; authentication failure raises.

    ``expected_sha256`` and ``expected_size`` (when given) are compared with the plaintext at end of
    stream; ``plaintext`` is its SHA-256 unless ``hash_plaintext=False`` (and no ``expected_sha256``). Every
    failure, whatever the file holds, is an OpsReadyError (IntegrityError for a corrupt file); the handle
    is closed when the constructor fails, and by ``close()`` otherwise.

    ``read(n)`` follows io semantics: plaintext authenticated before a failure is returned first and
    the error is raised by the next call (so a reader of small pieces gets every authenticated byte,
    as the age test vectors require). ``read()`` without a size either returns the whole plaintext or
    raises: it never returns a stream cut short by an error.
    """

    def __init__(self, handle: IO[bytes], identities: Sequence[Identity], name: str,
                 recipients: Sequence[str] = (), expected_sha256: Optional[str] = None,
                 expected_size: Optional[int] = None, hash_plaintext: bool = True) -> None:
        self._handle = handle
        self.name = name
        try:
            check_available()
            if not identities:
                raise OpsReadyError('%s is encrypted (age, to %s): give identity or identity_file with the '
                                    'matching private key. Nothing was written.'
                                    % (name, ', '.join(recipients) or 'unknown recipients'), path=name)
            file_key = self._open_header(identities, recipients)
            nonce = handle.read(NONCE)
            if len(nonce) != NONCE:
                # The nonce closes the header (age counts a missing or short one as a header failure, like the
                # C2SP vectors stream_no_nonce and stream_short_nonce): nothing of the payload was read yet.
                raise IntegrityError('%s has a truncated age header (its 16-byte payload nonce is %s): it is corrupt '
                                     'or cut short; do not restore from it.'
                                     % (name, 'short' if nonce else 'missing'), path=name)
            self._aead = _c().ChaCha20Poly1305(_hkdf(file_key, nonce, b'payload'))
            self._decrypt_into: Any = getattr(self._aead, 'decrypt_into', None)  # cryptography >= 45
            self._counter = 0
            self._pending = self._read_full(CHUNK + TAG)
        except BaseException:
            handle.close()
            raise
        self._out = b''
        self._offset = 0
        self._eof = False
        self._error: Optional[OpsReadyError] = None
        self._expected = expected_sha256
        self._expected_size = expected_size
        # hash_plaintext=False: a caller that checks the stored bytes instead (backup.rekey) skips a SHA-256 pass.
        self._hash = hash_plaintext or bool(expected_sha256)
        self.plaintext = hashlib.sha256()
        self.plaintext_size = 0

    def _open_header(self, identities: Sequence[Identity], recipients: Sequence[str]) -> bytes:
        """Parse and check the header; the file key, or OpsReadyError."""
        name = self.name
        try:
            head, mac, stanzas = _read_header(self._handle, name)
            _check_stanzas(stanzas, identities[0])
            file_key = None
            for args, body in stanzas:
                if args[0] != b'X25519':
                    continue
                for identity in identities:
                    file_key = identity.unwrap(_unb64(args[1]), body)
                    if file_key is not None:
                        break
                if file_key is not None:
                    break
        except ValueError as exc:  # _Malformed, bad base64, low-order share
            raise IntegrityError('%s has a malformed age header (%s): it is corrupt or was not written by an '
                                 'age encoder; do not restore from it.' % (name, exc), path=name)
        if file_key is None and set(i.recipient for i in identities) & set(recipients):
            # The manifest says the file was encrypted to a key given here, yet no stanza opens with it: its header
            # was damaged (or replaced), and "use the matching identity" would send the operator hunting for a key
            # they already gave.
            raise IntegrityError('%s: the identity given (public key %s) is one it was encrypted to, yet no '
                                 'recipient stanza of its age header opens with it: the header is corrupt or was '
                                 'tampered with; do not restore from it. Nothing was written.'
                                 % (name, ', '.join(sorted(set(i.recipient for i in identities) & set(recipients)))),
                                 path=name)
        if file_key is None:
            raise OpsReadyError('%s cannot be decrypted with the identity given (public key %s): it was '
                                'encrypted to %s. Use the matching identity. Nothing was written.'
                                % (name, ', '.join(i.recipient for i in identities),
                                   ', '.join(recipients) or 'other recipients'), path=name)
        expected_mac = hmac.new(_hkdf(file_key, b'', b'header'), head, hashlib.sha256).digest()
        if not hmac.compare_digest(expected_mac, mac):
            raise IntegrityError('%s: the age header fails its MAC (tampered or corrupt); do not restore from '
                                 'it.' % name, path=name)
        return file_key

    def _read_full(self, size: int) -> bytes:
        data = self._handle.read(size)
        while data and len(data) < size:  # short reads from pipes and sockets
            more = self._handle.read(size - len(data))
            if not more:
                break
            data += more
        return data

    def _fail(self, what: str) -> IntegrityError:
        return IntegrityError('%s fails authentication at chunk %d (%s); do not restore from it. Nothing was '
                              'written.' % (self.name, self._counter, what), path=self.name)

    def _open_chunk(self, last: bool, current: bytes, into: Optional[memoryview]) -> Any:
        """The chunk's plaintext: a new bytes object, or the start of ``into`` (a memoryview of it) when given."""
        nonce = _stream_nonce(self._counter, last)
        if into is None or len(current) < TAG:
            plain = self._aead.decrypt(nonce, current, None)
            if into is not None:
                into[:len(plain)] = plain
                return into[:len(plain)]
            return plain
        target = into[:len(current) - TAG]
        try:
            self._decrypt_into(nonce, current, None, target)
        except _c().InvalidTag:
            # OpenSSL has already written the unauthenticated plaintext into the caller's buffer: wipe it.
            target[:] = bytes(len(target))
            raise
        return target

    def _next_chunk(self, into: Optional[memoryview] = None) -> Any:
        """Plaintext of the next chunk (into ``into`` when given: see ``_open_chunk``). A chunk is the last one
        when nothing follows it."""
        current = self._pending
        following = self._read_full(CHUNK + TAG) if len(current) == CHUNK + TAG else b''
        last = not following
        try:
            plain = self._open_chunk(last, current, into)
        except _c().InvalidTag:
            if len(current) != CHUNK + TAG:
                raise self._fail('corrupt, truncated or tampered' if current else 'the file ends early')
            try:
                # A full chunk authenticates under the other flag: a final chunk followed by more bytes,
                # or a middle chunk followed by nothing (the file is cut after it). Its plaintext is
                # authentic and is released, as age does; the next read raises.
                plain = self._open_chunk(not last, current, into)
            except _c().InvalidTag:
                raise self._fail('corrupt, truncated or tampered')
            self._error = self._fail('data after the final chunk' if following else
                                     'the file ends without a final chunk: truncated')
            last = False
        if last and not plain and self._counter > 0:
            raise self._fail('an empty final chunk after others: not a canonical age file')
        self._counter += 1
        self._pending = following
        if self._hash:
            self.plaintext.update(plain)
        self.plaintext_size += len(plain)
        if last:
            self._eof = True
            if self._expected_size is not None and self.plaintext_size != self._expected_size:
                raise IntegrityError('%s decrypts, but to %d bytes where the manifest says %d; do not restore from '
                                     'it.' % (self.name, self.plaintext_size, self._expected_size), path=self.name)
            if self._expected and self.plaintext.hexdigest() != self._expected:
                raise IntegrityError('%s decrypts, but its plaintext checksum %s differs from the one sealed in '
                                     'the manifest; do not restore from it.'
                                     % (self.name, self.plaintext.hexdigest()), path=self.name)
        return plain

    def read(self, size: Optional[int] = -1) -> bytes:
        parts: List[bytes] = []
        wanted = size if size is not None and size >= 0 else None
        got = 0
        while wanted is None or got < wanted:
            if self._offset >= len(self._out):
                if self._error is not None:
                    if parts and wanted is not None:
                        break  # give what was authenticated; the next call raises
                    raise self._error  # and every later call: a failed stream never looks finished
                if self._eof:
                    break
                try:
                    self._out = self._next_chunk()
                except OpsReadyError as exc:
                    self._error = exc
                    self._out, self._offset = b'', 0
                    continue
                self._offset = 0
                continue
            take = len(self._out) - self._offset if wanted is None else min(wanted - got, len(self._out) - self._offset)
            parts.append(self._out[self._offset:self._offset + take])
            self._offset += take
            got += take
        return b''.join(parts)

    def readinto(self, buffer: Any) -> int:
        """``read()`` into ``buffer`` (same semantics: authenticated bytes first, the error on the next call).

        Whole chunks are decrypted straight into the buffer (``decrypt_into``, cryptography >= 45): no plaintext
        object per chunk and no join, which is most of what a 1 GB stream costs besides the cipher. Bytes past
        the count returned are never unauthenticated plaintext."""
        view = memoryview(buffer)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast('B')
        size = len(view)
        got = 0
        if self._offset < len(self._out):  # what a smaller read() left of a chunk
            got = min(size, len(self._out) - self._offset)
            view[:got] = memoryview(self._out)[self._offset:self._offset + got]
            self._offset += got
        while got < size:
            if self._error is not None:
                if got:
                    break  # give what was authenticated; the next call raises
                raise self._error
            if self._eof:
                break
            if self._decrypt_into is None or size - got < CHUNK:
                try:  # a chunk that does not fit: through read()'s own buffer
                    take = self.read(size - got)
                except OpsReadyError:
                    if got:
                        break  # read() kept the error for the next call
                    raise
                view[got:got + len(take)] = take
                got += len(take)
                if not take:
                    break
                continue
            try:
                got += len(self._next_chunk(view[got:]))
            except OpsReadyError as exc:
                self._error = exc
        return got

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read to the end (authenticating every chunk and checking the plaintext checksum)."""
        while self.read(CHUNK):
            pass
        self._out = b''

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> 'DecryptingReader':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- small sealed values (the plaintext checksum in the manifest) ------------------------------------------
class _Bytes:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: Any) -> int:
        self.data += data
        return len(data)


def seal_text(text: str, recipients: Sequence[str]) -> str:
    """``text`` age-encrypted to ``recipients``, base64 (for a JSON field)."""
    out = _Bytes()
    writer = EncryptingWriter(out, recipients)
    writer.write(text.encode('utf-8'))
    writer.close()
    return base64.b64encode(bytes(out.data)).decode('ascii')


def open_sealed(blob: str, identities: Sequence[Identity], name: str) -> str:
    """The text ``seal_text`` sealed (a manifest field): OpsReadyError for anything else."""
    import binascii
    import io
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise IntegrityError('%s: the sealed plaintext checksum in the manifest is not base64; the manifest is '
                             'corrupt.' % name, path=name)
    with DecryptingReader(io.BytesIO(data), identities, name) as reader:
        plain = reader.read()
        if reader.read() != b'':  # pragma: no cover - read() returns everything or raises
            raise IntegrityError('%s: sealed value longer than read.' % name, path=name)
    try:
        return plain.decode('utf-8')
    except UnicodeDecodeError:
        raise IntegrityError('%s: the sealed plaintext checksum in the manifest is not text; the manifest is '
                             'corrupt.' % name, path=name)


def encrypted_name(path: str) -> str:
    return path + SUFFIX
