"""Test PKI made with the cryptography library directly (not with the code under test):
a local CA, leaf certificates with any validity window, mismatched keys, garbage and DER files."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = datetime.timezone.utc


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CA:
    def __init__(self, name: str = 'opsready test CA', days: int = 3650) -> None:
        self.key = ec_key()
        start = now() - datetime.timedelta(days=1)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))

    def write(self, directory: Path) -> Tuple[str, str]:
        cert_path, key_path = directory / 'ca.crt', directory / 'ca.key'
        cert_path.write_bytes(cert_pem(self.cert))
        key_path.write_bytes(key_pem(self.key))
        os.chmod(key_path, 0o600)
        return str(cert_path), str(key_path)

    def issue(self, cn: str, days_left: float, lifetime: float = 90, key=None,
              sans: Optional[List[str]] = None) -> Tuple[x509.Certificate, object]:
        """A leaf with ``days_left`` days remaining out of ``lifetime`` (negative: already expired)."""
        key = key or ec_key()
        end = now() + datetime.timedelta(days=days_left)
        start = end - datetime.timedelta(days=lifetime)
        names: List[x509.GeneralName] = []
        for san in (sans if sans is not None else ['DNS:' + cn, 'IP:127.0.0.1']):
            kind, _sep, value = san.partition(':')
            names.append(x509.IPAddress(ipaddress.ip_address(value)) if kind == 'IP' else x509.DNSName(value))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'OpsReady Test'),
                                         x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert, key

    def write_leaf(self, directory: Path, name: str, days_left: float, lifetime: float = 90,
                   key=None) -> Tuple[str, str, x509.Certificate]:
        cert, key = self.issue(name, days_left, lifetime, key)
        cert_path, key_path = directory / (name + '.crt'), directory / (name + '.key')
        cert_path.write_bytes(cert_pem(cert))
        key_path.write_bytes(key_pem(key))
        os.chmod(key_path, 0o600)
        return str(cert_path), str(key_path), cert


def serial_hex(cert: x509.Certificate) -> str:
    text = '%X' % cert.serial_number
    return text if len(text) % 2 == 0 else '0' + text
