# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private key generation and serialisation (RSA 4096 by default, EC P-256 / P-384).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.asymmetric import types as key_types
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

CURVES = {'secp256r1': 'SECP256R1', 'secp384r1': 'SECP384R1'}  # option value -> cryptography class name
RSA_SIZES = (2048, 3072, 4096)
DEFAULT_TYPE, DEFAULT_SIZE, DEFAULT_CURVE = 'rsa', 4096, 'secp256r1'


def key_options_for(key_type: Optional[str], key_size: Optional[int], curve: Optional[str],
                    current_public_key: Any = None) -> Tuple[str, int, str]:
    """(key_type, key_size, curve) of the new key: what is given, else what the live certificate's key is.

    A renewal that switched an EC certificate to RSA (the old default) broke a service whose cipher list
    is ECDSA only, and RSA 4096 one that cannot handle it; the live key is what the service is known to
    serve. A live key outside the supported set (RSA 1024, P-521, Ed25519) gets the nearest supported one.
    """
    if key_type is None:
        key_type = DEFAULT_TYPE
        if isinstance(current_public_key, ec.EllipticCurvePublicKey):
            key_type = 'ec'
            if curve is None:
                curve = current_public_key.curve.name if current_public_key.curve.name in CURVES else 'secp384r1'
        elif isinstance(current_public_key, rsa.RSAPublicKey) and key_size is None:
            key_size = next((size for size in RSA_SIZES if size >= current_public_key.key_size), RSA_SIZES[-1])
    return key_type, key_size if key_size is not None else DEFAULT_SIZE, curve if curve is not None else DEFAULT_CURVE


def check_key_options(key_type: str, key_size: Optional[int], curve: Optional[str]) -> None:
    if key_type == 'rsa':
        if key_size not in RSA_SIZES:
            raise OpsReadyError('key_size %s is not supported for RSA: use one of %s (4096 is the default).'
                                % (key_size, ', '.join(str(s) for s in RSA_SIZES)))
    elif key_type == 'ec':
        if curve not in CURVES:
            raise OpsReadyError('curve %s is not supported: use secp256r1 (P-256) or secp384r1 (P-384).' % curve)
    else:
        raise OpsReadyError('key_type %s is not supported: use rsa or ec.' % key_type)


def generate_private_key(key_type: str = 'rsa', key_size: int = 4096,
                         curve: str = 'secp256r1') -> key_types.CertificateIssuerPrivateKeyTypes:
    check_key_options(key_type, key_size, curve)
    if key_type == 'rsa':
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return ec.generate_private_key(getattr(ec, CURVES[curve])())


def private_key_pem(key: key_types.PrivateKeyTypes, passphrase: Optional[str] = None) -> bytes:
    """PKCS#8 PEM: unencrypted (what ``openssl req -nodes`` writes), or with ``passphrase`` encrypted with the best
    encryption the cryptography library has (community.crypto's ``cipher=auto``); the file must be 0600 either
    way."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode('utf-8')) if passphrase
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
