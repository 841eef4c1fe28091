# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CSRs and certificates: a request keeping the old subject and SANs, signed by a local CA or
self-signed.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import List, Optional

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.asymmetric import types as key_types
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

# Backdate not_before a little so a host whose clock is slightly behind accepts the certificate.
BACKDATE = datetime.timedelta(minutes=5)


def parse_san(text: str) -> x509.GeneralName:
    """``DNS:x``, ``IP:1.2.3.4``, ``email:x``, ``URI:x``; a bare value is an IP if it parses as one, else DNS."""
    kind, sep, value = text.partition(':')
    if not sep or kind.upper() not in ('DNS', 'IP', 'EMAIL', 'URI'):
        kind, value = '', text
    kind = kind.upper()
    try:
        if kind == 'IP' or (not kind and _is_ip(value)):
            return x509.IPAddress(ipaddress.ip_address(value))
        if kind == 'EMAIL':
            return x509.RFC822Name(value)
        if kind == 'URI':
            return x509.UniformResourceIdentifier(value)
        return x509.DNSName(value)
    except ValueError as exc:
        raise OpsReadyError('subject_alt_names entry %r is invalid (%s): use DNS:name, IP:address, email:x or URI:x.'
                            % (text, exc))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def build_subject(common_name: Optional[str], previous: Optional[x509.Name]) -> x509.Name:
    """The previous subject, with the common name replaced when one is given."""
    if previous is None or len(previous) == 0:
        if not common_name:
            raise OpsReadyError('No subject to keep and no common_name given: set common_name.')
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    if not common_name:
        return previous
    attrs = [a for a in previous if a.oid != NameOID.COMMON_NAME]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def tls_features_of(cert: Optional[x509.Certificate]) -> Optional[x509.TLSFeature]:
    """The TLS Feature extension (RFC 7633; ``status_request`` is OCSP must-staple) of ``cert``, if any."""
    if cert is None:
        return None
    try:
        return cert.extensions.get_extension_for_class(x509.TLSFeature).value
    except x509.ExtensionNotFound:
        return None


def build_csr(key: key_types.CertificateIssuerPrivateKeyTypes, subject: x509.Name,
              sans: List[x509.GeneralName],
              tls_features: Optional[x509.TLSFeature] = None) -> x509.CertificateSigningRequest:
    """``tls_features``: the live certificate's must-staple request, kept so a renewal does not drop it."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if tls_features is not None:
        builder = builder.add_extension(tls_features, critical=False)
    return builder.sign(key, hashes.SHA256())


def _key_usage(public_key: object) -> x509.KeyUsage:
    encipher = isinstance(public_key, rsa.RSAPublicKey)
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=encipher,
                         data_encipherment=False, key_agreement=isinstance(public_key, ec.EllipticCurvePublicKey),
                         key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)


def sign_certificate(csr: x509.CertificateSigningRequest, valid_days: float, now: datetime.datetime,
                     issuer_cert: Optional[x509.Certificate],
                     issuer_key: key_types.CertificateIssuerPrivateKeyTypes,
                     extended_key_usage: Optional[List[x509.ObjectIdentifier]] = None) -> x509.Certificate:
    """A leaf certificate for ``csr``: signed by ``issuer_cert``/``issuer_key`` or, with
    ``issuer_cert=None``, self-signed by ``issuer_key`` (which must then be the CSR's key).
    The validity never extends past the issuer's own not_after."""
    public_key = csr.public_key()
    start = now - BACKDATE
    end = now + datetime.timedelta(days=valid_days)
    if issuer_cert is not None and end > issuer_cert.not_valid_after_utc:
        end = issuer_cert.not_valid_after_utc
    if end <= now:
        if issuer_cert is None:
            raise OpsReadyError('valid_days must be more than 0.')
        raise OpsReadyError('The CA certificate expires at %s: a certificate signed by it would not be valid. Renew '
                            'the CA first.' % issuer_cert.not_valid_after_utc)
    issuer_name = issuer_cert.subject if issuer_cert is not None else csr.subject
    builder = (x509.CertificateBuilder()
               .subject_name(csr.subject)
               .issuer_name(issuer_name)
               .public_key(public_key)  # type: ignore[arg-type]
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_key_usage(public_key), critical=True)
               .add_extension(x509.ExtendedKeyUsage(extended_key_usage or [ExtendedKeyUsageOID.SERVER_AUTH]),
                              critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),  # type: ignore[arg-type]
                              critical=False))
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        builder = builder.add_extension(san.value, critical=False)
    except x509.ExtensionNotFound:
        pass
    try:
        # must-staple asked for in the CSR (kept from the live certificate): dropping it would silently
        # stop clients from requiring a stapled OCSP answer
        builder = builder.add_extension(csr.extensions.get_extension_for_class(x509.TLSFeature).value, critical=False)
    except x509.ExtensionNotFound:
        pass
    if issuer_cert is not None:
        try:
            ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())  # type: ignore[arg-type]
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(issuer_key, None if _no_digest(issuer_key) else hashes.SHA256())


def _no_digest(key: object) -> bool:
    return not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))


def extended_key_usage_of(cert: Optional[x509.Certificate]) -> Optional[List[x509.ObjectIdentifier]]:
    if cert is None:
        return None
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None
