# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading certificates and keys: PEM, DER and bundles from files and globs, leaf certificates
from live TLS endpoints (handshake with SNI), private keys.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import glob
import os
import re
import socket
import ssl
import traceback
from typing import List, Optional, Tuple

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import types as key_types
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR: Optional[str] = None
except ImportError:  # pragma: no cover - exercised only where cryptography is missing
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

PEM_CERT_RE = re.compile(rb'-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----.+?'
                         rb'-----END (?:X509 |TRUSTED )?CERTIFICATE-----', re.DOTALL)
PEM_KEY_RE = re.compile(rb'-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----', re.DOTALL)


class CertificateLoadError(OpsReadyError):
    """A file or endpoint does not hold a usable certificate or key; the message names it."""


def expand_paths(patterns: List[str]) -> Tuple[List[str], List[CertificateLoadError]]:
    """(files, errors): files named by paths and globs, sorted and without duplicates. A literal path
    that does not exist is an error (a typo must not read as "no certificates"); a glob may match nothing."""
    found: List[str] = []
    missing: List[CertificateLoadError] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        else:
            if not os.path.exists(pattern):
                missing.append(CertificateLoadError('Certificate file %s does not exist: fix the path or remove it '
                                                    'from the list.' % pattern, path=pattern))
                continue
            matches = [pattern]
        for match in matches:
            if match not in found:
                found.append(match)
    return found, missing


def parse_certificates(data: bytes, source: str) -> Tuple[List[x509.Certificate], str]:
    """Every certificate in ``data`` (a PEM bundle or one DER certificate) and the format found."""
    blocks = PEM_CERT_RE.findall(data)
    if blocks:
        certs = []
        for index, block in enumerate(blocks):
            try:
                certs.append(x509.load_pem_x509_certificate(block.replace(b'TRUSTED CERTIFICATE', b'CERTIFICATE')))
            except ValueError as exc:
                raise CertificateLoadError('%s: PEM certificate #%d is corrupt (%s). Replace the file with a valid '
                                           'certificate or restore it from backup.' % (source, index + 1, exc),
                                           path=source)
        return certs, 'pem'
    if b'-----BEGIN' in data:
        raise CertificateLoadError('%s holds PEM data but no CERTIFICATE block (a key or CSR?). Point the path at '
                                   'the certificate file.' % source, path=source)
    try:
        return [x509.load_der_x509_certificate(data)], 'der'
    except ValueError:
        raise CertificateLoadError('%s is neither a PEM nor a DER certificate (%d bytes of something else). Replace '
                                   'it with a valid certificate or restore it from backup.' % (source, len(data)),
                                   path=source)


def load_certificate_file(path: str) -> Tuple[List[x509.Certificate], str]:
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except OSError as exc:
        raise CertificateLoadError('Cannot read certificate %s: %s.' % (path, exc.strerror), path=path)
    if not data.strip():
        raise CertificateLoadError('Certificate file %s is empty: restore it from backup or re-issue it.' % path,
                                   path=path)
    return parse_certificates(data, path)


def load_private_key(path: str, passphrase: Optional[str] = None) -> key_types.PrivateKeyTypes:
    """A private key from a PEM (also when the file holds certificates too) or DER file."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except OSError as exc:
        raise CertificateLoadError('Cannot read private key %s: %s.' % (path, exc.strerror), path=path)
    password = passphrase.encode('utf-8') if passphrase else None
    match = PEM_KEY_RE.search(data)
    try:
        if match:
            return serialization.load_pem_private_key(match.group(0), password=password)
        if b'-----BEGIN' in data:
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
