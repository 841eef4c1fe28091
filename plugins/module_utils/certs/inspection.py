# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inspecting certificates: names, validity, lifetime left, key type, key match, chain verification.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import traceback
from typing import Any, Dict, List, Optional, Sequence, Tuple

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.hazmat.primitives.asymmetric import types as key_types
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR: Optional[str] = None
except ImportError:  # pragma: no cover - exercised only where cryptography is missing
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat

DAY = 86400.0


def serial_hex(cert: x509.Certificate) -> str:
    """The serial as openssl prints it with ``-serial`` (upper-case hex, even length)."""
    text = '%X' % cert.serial_number
    return text if len(text) % 2 == 0 else '0' + text


def fingerprint_sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def subject_alt_names(cert: x509.Certificate) -> List[str]:
    """SANs as ``DNS:name`` / ``IP:address`` / ``email:x`` / ``URI:x`` strings (openssl's spelling)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return subject_alt_names_from_ext(ext)


def public_key_info(key: Any) -> Tuple[str, Optional[int], Optional[str]]:
    """(type, size in bits, curve) of a public or private key."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return 'rsa', key.key_size, None
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return 'ec', key.curve.key_size, key.curve.name
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return 'ed25519', 256, None
    if isinstance(key, (ed448.Ed448PublicKey, ed448.Ed448PrivateKey)):
        return 'ed448', 456, None
    if isinstance(key, (dsa.DSAPublicKey, dsa.DSAPrivateKey)):
        return 'dsa', key.key_size, None
    return 'unknown', None, None


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: x509.Certificate, private_key: key_types.PrivateKeyTypes) -> bool:
    """Whether ``private_key`` is the key of ``cert`` (same public key)."""
    return _spki(cert.public_key()) == _spki(private_key.public_key())


def csr_matches_key(csr: x509.CertificateSigningRequest, private_key: key_types.PrivateKeyTypes) -> bool:
    return _spki(csr.public_key()) == _spki(private_key.public_key())


def not_before(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_before_utc


def not_after(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_after_utc


def lifetime_left(cert: x509.Certificate, now: datetime.datetime) -> Tuple[float, float]:
    """(days remaining, fraction of the lifetime remaining in [0, 1])."""
    total = (not_after(cert) - not_before(cert)).total_seconds()
    left = (not_after(cert) - now).total_seconds()
    fraction = 0.0 if total <= 0 else max(0.0, min(1.0, left / total))
    return left / DAY, fraction


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_chain(cert: x509.Certificate, intermediates: Sequence[x509.Certificate],
                 trusted: Sequence[x509.Certificate], now: datetime.datetime,
                 max_depth: int = 8) -> Tuple[bool, str]:
    """Whether ``cert`` chains to one of ``trusted`` through ``intermediates`` (or the trusted
    certificates themselves, as ``openssl verify -CAfile`` does). Signatures, issuer names and the
    validity of every link at ``now`` are checked; host names and key usages are not.
    Returns (ok, reason)."""
    trusted_fps = {fingerprint_sha256(c) for c in trusted}
    pool = list(intermediates) + list(trusted)
    current = cert
    for _depth in range(max_depth):
        if not (not_before(current) <= now <= not_after(current)):
            return False, 'certificate %s is not valid now (valid %s to %s)' % (
                current.subject.rfc4514_string(), isoformat(not_before(current)), isoformat(not_after(current)))
        if fingerprint_sha256(current) in trusted_fps:
            return True, 'chains to trusted %s' % current.subject.rfc4514_string()
        issuer = None
        for candidate in pool:
            if candidate.subject != current.issuer or candidate is current:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = candidate
            break
        if issuer is None:
            return False, 'no issuer of %s in the CA bundle verifies its signature' % current.subject.rfc4514_string()
        if fingerprint_sha256(issuer) == fingerprint_sha256(current):
            return False, 'self-signed %s is not in the CA bundle' % current.subject.rfc4514_string()
        current = issuer
    return False, 'chain longer than %d certificates' % max_depth


def describe(cert: x509.Certificate, now: datetime.datetime) -> Dict[str, Any]:
    """Everything an operator looks at, as plain JSON-able values."""
    days, fraction = lifetime_left(cert, now)
    key_type, key_size, curve = public_key_info(cert.public_key())
    try:
        common_name = str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
    except IndexError:
        common_name = None
    return {
        'subject': cert.subject.rfc4514_string(),
        'common_name': common_name,
        'issuer': cert.issuer.rfc4514_string(),
        'subject_alt_names': subject_alt_names(cert),
        'serial': serial_hex(cert),
        'not_before': isoformat(not_before(cert)),
        'not_after': isoformat(not_after(cert)),
        'days_remaining': round(days, 2),
        'lifetime_remaining': round(fraction, 4),
        'expired': now > not_after(cert),
        'not_yet_valid': now < not_before(cert),
        'key_type': key_type,
        'key_size': key_size,
        'curve': curve,
        'signature_algorithm': (cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None),
        'self_signed': is_self_signed(cert),
        'fingerprint_sha256': fingerprint_sha256(cert),
    }


def subject_alt_names_of(names: Sequence[x509.GeneralName]) -> List[str]:
    """``DNS:x`` strings for a list of GeneralName (as in a CSR being built)."""
    if not names:
        return []
    return subject_alt_names_from_ext(x509.SubjectAlternativeName(list(names)))


def subject_alt_names_from_ext(ext: x509.SubjectAlternativeName) -> List[str]:
    out = []
    for name in ext:
        if isinstance(name, x509.DNSName):
            out.append('DNS:' + name.value)
        elif isinstance(name, x509.IPAddress):
            out.append('IP:' + str(name.value))
        elif isinstance(name, x509.RFC822Name):
            out.append('email:' + name.value)
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append('URI:' + name.value)
        else:
            out.append('othername:' + str(name.value))
    return out
