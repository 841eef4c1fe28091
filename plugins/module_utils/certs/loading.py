# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading certificates and keys: PEM, DER and bundles from files and globs, leaf certificates
from live TLS endpoints (handshake with SNI), private keys.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import base64
import binascii
import glob
import os
import re
import socket
import ssl
import stat
from typing import List, Optional, Tuple

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import types as key_types
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

PEM_KEY_RE = re.compile(rb'-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----', re.DOTALL)


class CertificateLoadError(OpsReadyError):
    """A file or endpoint does not hold a usable certificate or key; the message names it."""


# A certificate file (a bundle of every CA on a system is about 250 KiB) or a key is never this big;
# anything larger is the wrong file, and reading it could exhaust memory (/dev/zero never ends).
MAX_CERT_FILE_BYTES = 16 * safeio.MiB
MAX_KEY_FILE_BYTES = 1 * safeio.MiB

PEM_BEGIN_RE = re.compile(rb'-----BEGIN ([A-Z0-9 #]+)-----')
CERT_LABELS = (b'CERTIFICATE', b'X509 CERTIFICATE', b'TRUSTED CERTIFICATE')
LABEL_WORDS = (
    (b'PRIVATE KEY', 'a private key'), (b'CERTIFICATE REQUEST', 'a CSR'), (b'PUBLIC KEY', 'a public key'),
    (b'X509 CRL', 'a CRL'), (b'PKCS7', 'a PKCS#7 bundle'), (b'PARAMETERS', 'key parameters'),
)


def _glob_base(pattern: str) -> str:
    """The directory a glob searches under: its longest leading part without wildcards."""
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    base = os.sep.join(fixed) or (os.sep if pattern.startswith(os.sep) else '.')
    return os.path.realpath(base)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _trusted_link(path: str) -> bool:
    """A symlink only root (or this user) could have put there: its owner is one of them, and so is
    the directory holding it, which nobody else can write to."""
    try:
        link = os.lstat(path)
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return link.st_uid in (0, os.geteuid()) and safeio.directory_risk(parent) is None


def _skip_reason(match: str, base: str) -> Optional[str]:
    """Why a glob match is not read (None: read it)."""
    try:
        st = os.stat(match)
    except OSError:
        return safeio.explain_missing(match, 'Glob match') or 'Glob match %s vanished.' % match
    if os.path.islink(match):
        target = os.path.realpath(match)
        if not _inside(target, base) and not _trusted_link(match):
            return ('Glob match %s is a symlink to %s, outside %s, planted where others can write: not followed. '
                    'Name the target itself if it is wanted.' % (match, target, base))
    if not stat.S_ISREG(st.st_mode):
        return 'Glob match %s is %s, not a certificate file: skipped.' % (match, safeio.kind_of(st.st_mode))
    if st.st_size > MAX_CERT_FILE_BYTES:
        return ('Glob match %s is %s, more than the %s a certificate file can hold: skipped.'
                % (match, safeio.human_size(st.st_size), safeio.human_size(MAX_CERT_FILE_BYTES)))
    return None


def expand_paths(patterns: List[str]) -> Tuple[List[str], List[CertificateLoadError]]:
    """(files, errors): files named by paths and globs, sorted and without duplicates. A literal path
    that does not exist is an error (a typo must not read as "no certificates"); a glob may match nothing.
    Glob matches that are not read (directories, FIFOs, devices, dangling links and loops, symlinks out of
    the glob's directory planted by someone else) are errors too, flagged ``details['skipped']``."""
    found: List[str] = []
    errors: List[CertificateLoadError] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            base = _glob_base(pattern)
            matches = []
            for match in sorted(glob.glob(pattern)):
                reason = _skip_reason(match, base)
                if reason:
                    errors.append(CertificateLoadError(reason, path=match, skipped=True))
                else:
                    matches.append(match)
        else:
            if not os.path.lexists(pattern) or not os.path.exists(pattern):
                message = safeio.explain_missing(pattern, 'Certificate file')
                if not os.path.lexists(pattern):
                    message = ('Certificate file %s does not exist: fix the path or remove it from the list.'
                               % pattern)
                errors.append(CertificateLoadError(message, path=pattern))
                continue
            matches = [pattern]
        for match in matches:
            if match not in found:
                found.append(match)
    return found, errors


def _der_length(data: bytes) -> Optional[int]:
    """Total length an outer DER SEQUENCE announces (header included); None if it is not one."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2:2 + count], 'big')


def _describe_labels(labels: List[bytes]) -> str:
    words = []
    for label in labels:
        word = next((w for key, w in LABEL_WORDS if key in label), 'something else')
        text = '%s (%s)' % (label.decode('ascii', 'replace'), word)
        if text not in words:
            words.append(text)
    return ', '.join(words)


def _pem_blocks(data: bytes, source: str) -> List[Tuple[int, bytes, bytes]]:
    """(line number, label, body) of every certificate PEM block; a block cut short is an error."""
    blocks = []
    for begin in PEM_BEGIN_RE.finditer(data):
        label = begin.group(1)
        if label not in CERT_LABELS:
            continue
        line = data.count(b'\n', 0, begin.start()) + 1
        end_marker = b'-----END ' + label + b'-----'
        end = data.find(end_marker, begin.end())
        following = PEM_BEGIN_RE.search(data, begin.end())
        if end < 0 or (following is not None and following.start() < end):
            raise CertificateLoadError(
                '%s: the PEM certificate starting at line %d is truncated (BEGIN %s without its END line). The '
                'file was cut short (full disk, interrupted copy?): restore it from backup or re-issue it.'
                % (source, line, label.decode('ascii')), path=source)
        blocks.append((line, label, data[begin.end():end]))
    return blocks


def parse_certificates(data: bytes, source: str) -> Tuple[List[x509.Certificate], str]:
    """Every certificate in ``data`` (a PEM bundle or one DER certificate) and the format found."""
    if b'-----BEGIN' in data:
        blocks = _pem_blocks(data, source)
        if not blocks:
            labels = PEM_BEGIN_RE.findall(data)
            if not labels:
                raise CertificateLoadError('%s: the PEM data is truncated (a BEGIN line is cut off and no complete '
                                           'block follows). Restore the file from backup or re-issue it.' % source,
                                           path=source)
            raise CertificateLoadError('%s holds PEM data but no CERTIFICATE block: it holds %s. Point the path at '
                                       'the certificate file.' % (source, _describe_labels(labels)), path=source)
        certs = []
        for number, (line, label, body) in enumerate(blocks, 1):
            body = b''.join(body.split())
            try:
                der = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise CertificateLoadError('%s: PEM certificate #%d (line %d) is corrupt: its body is not base64. '
                                           'Replace the file with a valid certificate or restore it from backup.'
                                           % (source, number, line), path=source)
            announced = _der_length(der)
            if announced is not None and announced > len(der):
                raise CertificateLoadError('%s: PEM certificate #%d (line %d) is truncated: its DER announces %d bytes '
                                           'and holds %d. Restore the file from backup or re-issue it.'
                                           % (source, number, line, announced, len(der)), path=source)
            if label == b'TRUSTED CERTIFICATE' and announced is not None:
                der = der[:announced]  # OpenSSL's trust settings follow the certificate
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise CertificateLoadError('%s: PEM certificate #%d (line %d) is corrupt (%s). Replace the file with '
                                           'a valid certificate or restore it from backup.'
                                           % (source, number, line, exc), path=source)
        return certs, 'pem'
    announced = _der_length(data)
    if announced is not None and announced > len(data):
        raise CertificateLoadError('%s is a truncated DER certificate: it announces %d bytes and holds %d. Restore '
                                   'it from backup or re-issue it.' % (source, announced, len(data)), path=source)
    if announced is not None and announced < len(data):
        der_certs = _der_sequence(data, source)
        if der_certs:
            return der_certs, 'der'
    try:
        return [x509.load_der_x509_certificate(data)], 'der'
    except ValueError:
        if _looks_pkcs12(data):
            raise CertificateLoadError(
                '%s is a PKCS#12 bundle (certificate and key in one binary file), which is not read or written here; '
                'it was left as it is. Keep the certificate as PEM and the key in its own file for the service '
                '(openssl pkcs12 -in FILE -nokeys / -nocerts), or rebuild the bundle from them after renewal.'
                % source, path=source)
        raise CertificateLoadError('%s is neither a PEM nor a DER certificate (%d bytes of something else). Replace '
                                   'it with a valid certificate or restore it from backup.' % (source, len(data)),
                                   path=source)


def _der_sequence(data: bytes, source: str) -> List[x509.Certificate]:
    """Consecutive DER certificates (``cat leaf.der ca.der``), trailing whitespace allowed (a newline an editor or a
    text-mode copy added); [] when the first is no certificate. Other bytes after them are named, never read as
    "not a certificate at all"."""
    certs: List[x509.Certificate] = []
    offset = 0
    while offset < len(data) and data[offset:].strip():
        length = _der_length(data[offset:])
        if length is None or offset + length > len(data):
            break
        try:
            certs.append(x509.load_der_x509_certificate(data[offset:offset + length]))
        except ValueError:
            break
        offset += length
    rest = data[offset:]
    if certs and rest.strip():
        plural = '' if len(certs) == 1 else 's'
        raise CertificateLoadError('%s holds %d DER certificate%s followed by %d bytes that are not one: remove them '
                                   '(or restore the file from backup).' % (source, len(certs), plural, len(rest)),
                                   path=source)
    return certs


# PFX (RFC 7292): SEQUENCE { version INTEGER 3, authSafe ContentInfo { contentType id-data | id-signedData ... } }
_PKCS7_DATA = b'\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07'


def _looks_pkcs12(data: bytes) -> bool:
    if data[:1] != b'\x30' or len(data) < 24:
        return False
    head = data[:48]
    version_at = head.find(b'\x02\x01\x03')
    return 0 < version_at <= 5 and head.find(_PKCS7_DATA, version_at) != -1


def read_file(path: str, limit: int, what: str) -> bytes:
    """A regular file within ``limit`` bytes; a FIFO, device, directory, loop or huge file is refused."""
    try:
        return safeio.read_regular(path, limit, what=what)
    except safeio.UnsafeFileError as exc:
        raise CertificateLoadError(exc.message, path=path)


def load_certificate_file(path: str) -> Tuple[List[x509.Certificate], str]:
    data = read_file(path, MAX_CERT_FILE_BYTES, 'Certificate file')
    if not data.strip():
        raise CertificateLoadError('Certificate file %s is empty: restore it from backup or re-issue it.' % path,
                                   path=path)
    return parse_certificates(data, path)


def load_private_key(path: str, passphrase: Optional[str] = None) -> key_types.PrivateKeyTypes:
    """A private key from a PEM (also when the file holds certificates too) or DER file."""
    return parse_private_key(read_file(path, MAX_KEY_FILE_BYTES, 'Private key'), path, passphrase)


def parse_private_key(data: bytes, path: str, passphrase: Optional[str] = None) -> key_types.PrivateKeyTypes:
    """A private key from the bytes of a PEM or DER file; ``path`` names it in messages."""
    password = passphrase.encode('utf-8') if passphrase else None
    match = PEM_KEY_RE.search(data)
    try:
        if match:
            return serialization.load_pem_private_key(match.group(0), password=password)
        if b'-----BEGIN' in data:
            if re.search(rb'-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----', data):
                raise CertificateLoadError('Private key %s is truncated (its BEGIN PRIVATE KEY line has no END line): '
                                           'restore it from backup.' % path, path=path)
            raise CertificateLoadError('%s holds no PEM PRIVATE KEY block: point the option at the key file.' % path,
                                       path=path)
        return serialization.load_der_private_key(data, password=password)
    except TypeError as exc:
        raise CertificateLoadError('Private key %s: %s. Give (or remove) the passphrase.' % (path, exc), path=path)
    except ValueError:
        raise CertificateLoadError('Private key %s cannot be loaded (corrupt, unsupported, or wrong passphrase).'
                                   % path, path=path)


def fetch_endpoint_certificate(host: str, port: int, server_name: Optional[str] = None,
                               timeout: float = 10.0) -> x509.Certificate:
    """The leaf certificate a TLS endpoint serves. Nothing is verified here (an expired or
    untrusted certificate is exactly what an inventory must be able to see); the caller inspects it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = server_name if server_name is not None else host
    where = '%s:%d' % (host, port)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=sni or None) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateLoadError('TLS handshake with %s (SNI %s) failed: %s. Check that the service is up and '
                                   'speaks TLS on that port.' % (where, sni or '-', exc), endpoint=where)
    if not der:
        raise CertificateLoadError('%s completed a TLS handshake without a certificate.' % where, endpoint=where)
    return x509.load_der_x509_certificate(der)
