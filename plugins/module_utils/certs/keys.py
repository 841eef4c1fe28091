# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private key generation and serialisation (RSA 4096 by default, EC P-256 / P-384).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Optional

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.asymmetric import types as key_types
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

CURVES = {'secp256r1': 'SECP256R1', 'secp384r1': 'SECP384R1'}  # option value -> cryptography class name
RSA_SIZES = (2048, 3072, 4096)


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


def private_key_pem(key: key_types.PrivateKeyTypes) -> bytes:
    """Unencrypted PKCS#8 PEM (what ``openssl req -nodes`` writes); the file must be 0600."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
