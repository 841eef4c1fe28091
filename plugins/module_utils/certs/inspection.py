# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inspecting certificates: names, validity, lifetime left, key type, key match, chain verification.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric import types as key_types
except ImportError:  # crypto_guard.require() in the module reports it
    pass

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


# id-RSASSA-PSS (RFC 4055): an RSA key restricted to PSS signatures. The library loads it as an RSA key; only the
# algorithm of the certificate's SubjectPublicKeyInfo tells it apart.
RSASSA_PSS_OID = '1.2.840.113549.1.1.10'


def public_key_info(key: Any, algorithm_oid: Optional[str] = None) -> Tuple[str, Optional[int], Optional[str]]:
    """(type, size in bits, curve) of a public or private key; ``algorithm_oid``: the dotted OID of the
    SubjectPublicKeyInfo it came from, when known (``rsa-pss`` for an RSA key restricted to PSS)."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return 'rsa-pss' if algorithm_oid == RSASSA_PSS_OID else 'rsa', key.key_size, None
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return 'ec', key.curve.key_size, key.curve.name
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return 'ed25519', 256, None
    if isinstance(key, (ed448.Ed448PublicKey, ed448.Ed448PrivateKey)):
        return 'ed448', 456, None
    if isinstance(key, (dsa.DSAPublicKey, dsa.DSAPrivateKey)):
        return 'dsa', key.key_size, None
    return 'unknown', None, None


def public_key_oid(cert: x509.Certificate) -> Optional[str]:
    """The dotted OID of the certificate's public key algorithm (None where the library cannot say)."""
    try:
        return cert.public_key_algorithm_oid.dotted_string
    except Exception:  # noqa: BLE001 - an older cryptography without the attribute, or an OID it cannot parse
        return None


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


_WEAK_HASHES = {'sha1': 'SHA-1', 'md5': 'MD5'}
_weak_hash_usable: Dict[str, bool] = {}


def _hash_usable(hash_alg: Any) -> bool:
    """Whether this host's crypto library verifies signatures over ``hash_alg`` at all. Some (FIPS,
    RHEL 9 crypto policies) refuse SHA-1: a refusal there says nothing about the certificate."""
    name = hash_alg.name
    if name not in _weak_hash_usable:
        try:
            key = ec.generate_private_key(ec.SECP256R1())
            signature = key.sign(b'probe', ec.ECDSA(hash_alg))
            key.public_key().verify(signature, b'probe', ec.ECDSA(hash_alg))
            _weak_hash_usable[name] = True
        except Exception:  # noqa: BLE001 - any refusal means "cannot be checked here"
            _weak_hash_usable[name] = False
    return _weak_hash_usable[name]


def _hash_name(cert: x509.Certificate) -> Optional[str]:
    try:
        hash_alg = cert.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - an algorithm the library does not know
        return None
    return hash_alg.name if hash_alg is not None else None


def _algorithm_name(cert: x509.Certificate) -> str:
    try:
        hash_alg = cert.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - an algorithm the library does not know
        hash_alg = None
    if hash_alg is not None:
        return _WEAK_HASHES.get(hash_alg.name, hash_alg.name.upper())
    name = getattr(cert.signature_algorithm_oid, '_name', None)
    return name if name and name != 'Unknown OID' else cert.signature_algorithm_oid.dotted_string


def check_signature(cert: x509.Certificate, issuer_public_key: Any) -> Tuple[Optional[bool], str]:
    """Whether ``issuer_public_key`` signed ``cert``: (True, ...) verified, (False, why) it did not, or
    (None, why) when this host cannot check that signature algorithm.

    ``verify_directly_issued_by`` refuses SHA-1 outright ("Unsupported signature algorithm"), which
    would read as "not issued by"; the public key's own ``verify`` still checks SHA-1 where the
    library allows it, as ``openssl verify`` does."""
    algorithm = _algorithm_name(cert)
    try:
        hash_alg = cert.signature_hash_algorithm
    except Exception as exc:  # noqa: BLE001 - UnsupportedAlgorithm for an unknown OID
        return None, 'signature algorithm %s cannot be verified (%s)' % (algorithm, exc)
    try:
        params = cert.signature_algorithm_parameters
    except Exception:  # noqa: BLE001
        params = None
    signature, tbs = cert.signature, cert.tbs_certificate_bytes
    try:
        if isinstance(issuer_public_key, rsa.RSAPublicKey):
            if not isinstance(params, padding.AsymmetricPadding):
                params = padding.PKCS1v15()
            issuer_public_key.verify(signature, tbs, params, hash_alg)  # type: ignore[arg-type]
        elif isinstance(issuer_public_key, ec.EllipticCurvePublicKey):
            issuer_public_key.verify(signature, tbs, ec.ECDSA(hash_alg))  # type: ignore[arg-type]
        elif isinstance(issuer_public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            issuer_public_key.verify(signature, tbs)
        elif isinstance(issuer_public_key, dsa.DSAPublicKey):
            issuer_public_key.verify(signature, tbs, hash_alg)  # type: ignore[arg-type]
        else:
            return None, 'signature algorithm %s with a %s key cannot be verified' % (
                algorithm, type(issuer_public_key).__name__)
    except InvalidSignature:
        if hash_alg is not None and hash_alg.name in _WEAK_HASHES and not _hash_usable(hash_alg):
            return None, 'signature algorithm %s cannot be verified on this host (its crypto policy refuses it)' % (
                algorithm)
        return False, 'the %s signature does not verify' % algorithm
    except (UnsupportedAlgorithm, ValueError) as exc:
        return None, 'signature algorithm %s cannot be verified (%s)' % (algorithm, exc)
    except TypeError:
        # e.g. an ECDSA signature checked against an RSA key: a different signer.
        return False, 'signed with a different kind of key (%s)' % algorithm
    return True, 'the %s signature verifies' % algorithm


def _key_identifiers(cert: x509.Certificate) -> Tuple[Optional[bytes], Optional[bytes]]:
    """(subject key identifier, authority key identifier) when present."""
    ski = aki = None
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except (x509.ExtensionNotFound, ValueError):
        pass
    return ski, aki


def _may_have_issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Names match and the key identifiers, where both are present, do too."""
    if issuer.subject != cert.issuer:
        return False
    _ski, aki = _key_identifiers(cert)
    issuer_ski, _aki = _key_identifiers(issuer)
    return not (aki and issuer_ski and aki != issuer_ski)


def self_signature(cert: x509.Certificate) -> Tuple[bool, str]:
    """(self-signed, why): by names and key identifiers, plus the signature where it can be checked."""
    if cert.issuer != cert.subject:
        return False, 'issuer differs from subject'
    if not _may_have_issued(cert, cert):
        return False, 'issuer equals subject but its authority key identifier is not its own key identifier'
    ok, why = check_signature(cert, cert.public_key())
    if ok is None:
        return True, 'issuer equals subject and key identifiers agree; %s' % why
    if not ok:
        return False, 'issuer equals subject but %s with its own key' % why
    return True, 'issuer equals subject and %s with its own key' % why


def is_self_signed(cert: x509.Certificate) -> bool:
    return self_signature(cert)[0]


def verify_chain(cert: x509.Certificate, intermediates: Sequence[x509.Certificate],
                 trusted: Sequence[x509.Certificate], now: datetime.datetime,
                 max_depth: int = 8) -> Tuple[bool, str]:
    """Whether ``cert`` chains to one of ``trusted`` through ``intermediates`` (or the trusted
    certificates themselves, as ``openssl verify -CAfile`` does). Signatures (SHA-1 included, where this
    host can check them), issuer names, key identifiers and the validity of every link at ``now`` are
    checked; host names and key usages are not. Returns (ok, reason)."""
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
        unverifiable = None
        for candidate in pool:
            if candidate is current or not _may_have_issued(current, candidate):
                continue
            ok, why = check_signature(current, candidate.public_key())
            if ok:
                issuer = candidate
                break
            if ok is None and unverifiable is None:
                unverifiable = why
        if issuer is None:
            if unverifiable:
                return False, 'the signature of %s cannot be checked: %s' % (current.subject.rfc4514_string(),
                                                                             unverifiable)
            return False, 'no issuer of %s in the CA bundle verifies its signature' % current.subject.rfc4514_string()
        if fingerprint_sha256(issuer) == fingerprint_sha256(current):
            return False, 'self-signed %s is not in the CA bundle' % current.subject.rfc4514_string()
        current = issuer
    return False, 'chain longer than %d certificates' % max_depth


def describe(cert: x509.Certificate, now: datetime.datetime) -> Dict[str, Any]:
    """Everything an operator looks at, as plain JSON-able values."""
    days, fraction = lifetime_left(cert, now)
    key_type, key_size, curve = public_key_info(cert.public_key(), public_key_oid(cert))
    self_signed, self_signed_reason = self_signature(cert)
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
        'signature_algorithm': _hash_name(cert),
        'self_signed': self_signed,
        'self_signed_reason': self_signed_reason,
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
        elif isinstance(name, x509.DirectoryName):
            out.append('DirName:' + name.value.rfc4514_string())
        elif isinstance(name, x509.RegisteredID):
            out.append('Registered ID:' + name.value.dotted_string)
        elif isinstance(name, x509.OtherName):
            out.append('othername:' + _other_name(name))
        else:
            out.append('othername:' + str(name.value))
    return out


# otherName types openssl names (``othername: UPN::user@example.com``); the value is a DER string.
_OTHER_NAMES = {'1.3.6.1.4.1.311.20.2.3': 'UPN', '1.3.6.1.5.5.7.8.7': 'SRVName', '1.3.6.1.5.5.7.8.9': 'SmtpUTF8Mailbox'}
_DER_STRINGS = {0x0C: 'utf-8', 0x16: 'ascii', 0x13: 'ascii', 0x1E: 'utf-16-be'}


def _other_name(name: x509.OtherName) -> str:
    """``<type>:<text>`` for the string types openssl decodes, ``<OID>:<hex of the DER value>`` otherwise -
    never a Python repr of bytes."""
    oid = name.type_id.dotted_string
    label = _OTHER_NAMES.get(oid, oid)
    value = name.value
    if len(value) >= 2 and value[0] in _DER_STRINGS and value[1] < 0x80 and len(value) == 2 + value[1]:
        try:
            return '%s:%s' % (label, value[2:].decode(_DER_STRINGS[value[0]]))
        except UnicodeDecodeError:
            pass
    return '%s:%s' % (label, value.hex())
