# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A certificate inventory: every certificate of some files, globs and endpoints, described.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Optional, Tuple

try:
    from cryptography import x509
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.certs import inspection, loading
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import utcnow


def _entry(cert: x509.Certificate, now: datetime.datetime, source: str, kind: str, index: int, fmt: str,
           chain: List[x509.Certificate], trusted: Optional[List[x509.Certificate]]) -> Dict[str, Any]:
    entry = inspection.describe(cert, now)
    entry.update(source=source, kind=kind, index=index, format=fmt, key_matches=None, chain_valid=None,
                 chain_reason=None)
    if trusted is not None:
        ok, reason = inspection.verify_chain(cert, chain, trusted, now)
        entry.update(chain_valid=ok, chain_reason=reason)
    return entry


def collect(paths: List[str], endpoints: List[Dict[str, Any]], privatekey_paths: Optional[Dict[str, str]] = None,
            passphrase: Optional[str] = None, ca_bundle: Optional[str] = None, timeout: float = 10.0,
            stop_on_error: bool = True, now: Optional[datetime.datetime] = None,
            passphrases: Optional[Dict[str, str]] = None) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(certificates, errors). With ``stop_on_error`` the first error is raised (naming its source).
    ``passphrases``: certificate path -> the passphrase of its key in ``privatekey_paths`` (each key its own, as
    the certificates role holds them), ``passphrase`` for the keys without one."""
    now = now or utcnow()
    keys_by_path = {os.path.abspath(k): v for k, v in (privatekey_paths or {}).items()}
    passphrase_by_path = {os.path.abspath(k): str(v) for k, v in (passphrases or {}).items() if v is not None}
    trusted = loading.load_certificate_file(ca_bundle)[0] if ca_bundle else None
    certificates: List[Dict[str, Any]] = []
    errors: List[Dict[str, Any]] = []

    def failed(source: str, exc: OpsReadyError) -> None:
        if stop_on_error:
            raise exc
        errors.append({'source': source, 'msg': exc.message})

    files, problems = loading.expand_paths(paths)
    for exc in problems:
        if exc.details.get('skipped'):
            # What a glob matched but did not read is listed, never silent, and never fails the task:
            # a FIFO or a directory next to the certificates is not a broken certificate.
            errors.append({'source': str(exc.details.get('path', '')), 'msg': exc.message, 'skipped': True})
        else:
            failed(str(exc.details.get('path', '')), exc)
    for path in files:
        try:
            certs, fmt = loading.load_certificate_file(path)
        except OpsReadyError as exc:
            failed(path, exc)
            continue
        key_path = keys_by_path.get(os.path.abspath(path))
        key = None
        if key_path:
            try:
                key = loading.load_private_key(key_path, passphrase_by_path.get(os.path.abspath(path), passphrase))
            except OpsReadyError as exc:
                # The certificate is still reported (key_matches stays null); the key error is listed.
                failed(key_path, exc)
        for index, cert in enumerate(certs):
            entry = _entry(cert, now, path, 'file', index, fmt, certs[index + 1:], trusted)
            if key is not None and index == 0:
                entry['key_matches'] = inspection.key_matches(cert, key)
                entry['privatekey_path'] = key_path
            certificates.append(entry)
    for endpoint in endpoints:
        where = '%s:%d' % (endpoint['host'], endpoint.get('port') or 443)
        try:
            cert = loading.fetch_endpoint_certificate(endpoint['host'], int(endpoint.get('port') or 443),
                                                      endpoint.get('server_name'), timeout)
        except OpsReadyError as exc:
            failed(where, exc)
            continue
        entry = _entry(cert, now, where, 'endpoint', 0, 'tls', [], trusted)
        entry['server_name'] = endpoint.get('server_name') if endpoint.get('server_name') is not None \
            else endpoint['host']
        certificates.append(entry)
    return certificates, errors
