# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renewal of one key + certificate pair: decide, generate, sign, check, swap; or write a CSR for an
external CA and install what it issues; or roll back to the previous pair.

Nothing is swapped in before these hold for the new pair: the key matches the certificate, the
chain verifies to the CA (or to itself when self-signed), and the validity covers now.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.certs import inspection, keys, loading, signing, swap
from ansible_collections.opsready.operations.plugins.module_utils.certs.policy import renewal_due
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

PENDING_SUFFIX = '.pending'
DEFAULT_VALID_DAYS = 365


class RenewalError(OpsReadyError):
    """The new pair failed a check before the swap; nothing on disk was changed."""


def summary(cert: Optional[x509.Certificate], now: datetime.datetime) -> Dict[str, Any]:
    if cert is None:
        return {}
    info = inspection.describe(cert, now)
    return {k: info[k] for k in ('serial', 'subject', 'subject_alt_names', 'issuer', 'not_before', 'not_after',
                                 'days_remaining', 'key_type', 'key_size', 'curve', 'fingerprint_sha256')}


def _diff_text(info: Dict[str, Any]) -> str:
    if not info:
        return ''
    return ''.join('%s: %s\n' % (k, info.get(k)) for k in ('serial', 'subject', 'subject_alt_names', 'not_before',
                                                           'not_after', 'key_type', 'key_size', 'curve'))


def _load_current(pair: swap.Pair, opts: Optional[Dict[str, Any]] = None,
                  data: Optional[bytes] = None) -> Optional[x509.Certificate]:
    """The live certificate, read through its directory's descriptor (never through a planted link); ``data``: the
    bytes that will be live (check mode, after an interrupted swap that this run would undo)."""
    if data is None:
        data = pair.read_cert()
    if data is None:
        return None
    if not data.strip():
        raise OpsReadyError('Certificate file %s is empty: restore it from backup, or remove it to issue a first '
                            'certificate.' % pair.cert_path, path=pair.cert_path)
    certs, _fmt = loading.parse_certificates(data, pair.cert_path)
    return _leaf_of(certs, pair, opts or {})


def _leaf_of(certs: List[x509.Certificate], pair: swap.Pair, opts: Dict[str, Any]) -> x509.Certificate:
    """The certificate of the live key (else the first one that is not a CA), wherever it is in the file.

    A file holding its CA first made the renewal copy the CA's subject and names: the new certificate passed
    every check and covered none of the names the service is reached by.
    """
    if len(certs) == 1:
        return certs[0]
    try:
        key = parse_key(pair.read_key() or b'', pair.key_path, opts)
        match = next((c for c in certs if inspection.key_matches(c, key)), None)
    except (OpsReadyError, ValueError, TypeError):
        match = None   # no key yet, or one encrypted with a passphrase: fall back on the CA flag
    if match is not None:
        return match
    for cert in certs:
        try:
            if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return cert
        except x509.ExtensionNotFound:
            return cert
    return certs[0]


def open_pair(opts: Dict[str, Any]) -> swap.Pair:
    """The pair's directories opened and checked; a directory a user controls needs ``owner``."""
    return swap.Pair(opts['path'], opts['privatekey_path'], opts.get('backup_dir'),
                     owner=safeio.resolve_user(opts.get('owner')))


def os_failure(path: str, exc: OSError) -> OpsReadyError:
    """An OSError of a renewal (disk full, a read-only mount) said as the module says it, with what is left."""
    return OpsReadyError('Certificate renewal of %s failed: %s (%s). The previous pair is still in place or kept as a '
                         '.bak pair next to it.' % (path, exc.strerror or exc, getattr(exc, 'filename', '') or path))


def run_on_pair(opts: Dict[str, Any], check_mode: bool, now: datetime.datetime,
                body: Callable[[swap.Pair], Dict[str, Any]], also: Sequence[str] = ()) -> Dict[str, Any]:
    """``body`` on the pair opened, after the files a killed run left staged beside it are removed (check mode: only
    named): ``removed_staged_files`` in the result, with a warning; on a failure, in the error's details (an OSError
    becomes an OpsReadyError for that). Swept beside the pair's files, the CSR (every entry point: the next run may
    not be a csr_only one) and each path of ``also`` (the ACME account key and state file)."""
    csr_path = os.path.abspath(opts.get('csr_path') or opts['path'] + '.csr')
    with open_pair(opts) as pair:
        swept = swap.sweep_staged(pair, check_mode, now.timestamp(), also=[csr_path] + list(also))
        try:
            result = body(pair)
        except OpsReadyError as exc:
            if swept:
                exc.details.setdefault('removed_staged_files', swept)
            raise
        except OSError as exc:
            failure = os_failure(opts['path'], exc)
            if swept:
                failure.details['removed_staged_files'] = swept
            raise failure from exc
    result['removed_staged_files'] = swept
    if swept:
        done = 'would be removed (check mode)' if check_mode else 'were removed'
        message = ('%s staged file(s) a killed run left beside the pair (older than %d minutes, a new private key '
                   'among them if beside the key) %s: %s.')
        message %= (len(swept), safeio.STAGED_STALE_S // 60, done, ', '.join(swept))
        result.setdefault('warnings', []).insert(0, message)
    return result


def repair_interrupted_swap(pair: swap.Pair, opts: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Put a matching pair back when the live key is not the key of the live certificate.

    The key is renamed into place first, then the certificate: a run killed in between (OOM killer, reboot, the
    play's timeout) leaves the new key with the old certificate (or, in a rollback, the kept key with the rejected
    certificate), which no service can load. The newest kept pair explains that state exactly when it shares one
    of the two files with the live pair and is itself a pair: it is put back, as the run that was killed would
    have done. A mismatch nothing explains is reported, never repaired by guessing.

    Returns {changed, warnings, cert}: ``cert`` the bytes of the certificate live after the repair (or None)."""
    done: Dict[str, Any] = {'changed': False, 'warnings': [], 'cert': None}
    cert_bytes, key_bytes = pair.read_cert(), pair.read_key()
    if not cert_bytes or not key_bytes:
        return done
    try:
        certs = loading.parse_certificates(cert_bytes, pair.cert_path)[0]
        key = parse_key(key_bytes, pair.key_path, opts)
    except (OpsReadyError, ValueError, TypeError):
        return done   # unreadable or encrypted without its passphrase: the renewal itself says so
    if any(inspection.key_matches(c, key) for c in certs):
        return done
    kept = pair.backups()
    if kept:
        stamp_, cert_bak, key_bak = kept[0]
        kept_cert, kept_key = swap.read_backup(pair, stamp_)
        try:
            kept_ok = (kept_cert is not None and kept_key is not None
                       and (kept_cert == cert_bytes or kept_key == key_bytes)
                       and any(inspection.key_matches(c, parse_key(kept_key, key_bak, opts))
                               for c in loading.parse_certificates(kept_cert, cert_bak)[0]))
        except (OpsReadyError, ValueError, TypeError):
            kept_ok = False
        if kept_ok and kept_cert is not None and kept_key is not None:
            done['warnings'].append(
                '%s and %s did not match: a run was interrupted between replacing the key and the certificate. The '
                'kept pair %s / %s was put back%s.' % (pair.cert_path, pair.key_path, cert_bak, key_bak,
                                                       ' (check mode: would be)' if check_mode else ''))
            if not check_mode:
                swap.write_pair(pair, kept_cert, kept_key)
            done.update(changed=True, cert=kept_cert)
            return done
    done['warnings'].append(
        '%s does not match the private key %s: a service cannot load this pair. No kept pair explains it; put the '
        'right key back, or renew with force=true to replace both.' % (pair.cert_path, pair.key_path))
    return done


def foresee_modes(pair: swap.Pair, result: Dict[str, Any]) -> None:
    """Check mode: the warnings the swap would give about modes it decides (a key readable by others made 0600)."""
    swap.foresee_modes(pair, swap.holds_private_key(pair.read_cert()))
    if pair.warnings:
        result.setdefault('warnings', []).extend(pair.warnings)


def _merge_repair(result: Dict[str, Any], repaired: Dict[str, Any]) -> None:
    if repaired['warnings']:
        result.setdefault('warnings', []).extend(repaired['warnings'])
    if repaired['changed']:
        result['changed'] = True


def _encrypted(data: bytes) -> bool:
    # PKCS#8 "ENCRYPTED PRIVATE KEY", or the traditional "Proc-Type: 4,ENCRYPTED" header
    return b'ENCRYPTED' in data


def parse_key(data: bytes, path: str, opts: Dict[str, Any]) -> Any:
    """The private key ``data`` (of the file ``path``), decrypted with ``privatekey_passphrase`` when it is
    encrypted. An unencrypted key is read as it is, passphrase given or not (a pending key written before the
    passphrase was set). The passphrase is never in a message."""
    passphrase = opts.get('privatekey_passphrase')
    if not _encrypted(data):
        return loading.parse_private_key(data, path)
    if not passphrase:
        raise OpsReadyError('Private key %s is encrypted with a passphrase: give it as privatekey_passphrase (it is '
                            'never logged or shown).' % path, path=path)
    return loading.parse_private_key(data, path, passphrase)


def key_pem_for(opts: Dict[str, Any], key: Any) -> bytes:
    """The new key as written: encrypted with ``privatekey_passphrase`` unless ``privatekey_cipher`` is V(none)
    (default: encrypted when a passphrase is given, as the live key was)."""
    passphrase = opts.get('privatekey_passphrase')
    cipher = opts.get('privatekey_cipher') or ('auto' if passphrase else 'none')
    if cipher == 'auto' and not passphrase:
        raise OpsReadyError('privatekey_cipher=auto encrypts the new key with privatekey_passphrase: give it, or '
                            'set privatekey_cipher=none.')
    return keys.private_key_pem(key, passphrase if cipher == 'auto' else None)


def key_type_note(opts: Dict[str, Any], current: Optional[x509.Certificate]) -> Optional[str]:
    """A warning when the new key is not of the live key's type though key_type was not given: an RSA-PSS key
    (id-RSASSA-PSS) is renewed as a plain RSA key (this collection makes rsa and ec keys only)."""
    if opts.get('key_type') is None and current is not None \
            and inspection.public_key_info(current.public_key(), inspection.public_key_oid(current))[0] == 'rsa-pss':
        return ('The live key of %s is RSA-PSS (id-RSASSA-PSS); the new key is a plain RSA key (rsaEncryption), which '
                'signs with PSS too but is not restricted to it. Set key_type (rsa or ec) to say which key is meant.'
                % opts['path'])
    return None


def with_key_options(opts: Dict[str, Any], current: Optional[x509.Certificate]) -> Dict[str, Any]:
    """``opts`` with key_type/key_size/curve filled in (from the live certificate where not given) and checked."""
    key_type, key_size, curve = keys.key_options_for(opts.get('key_type'), opts.get('key_size'), opts.get('curve'),
                                                     current.public_key() if current is not None else None)
    keys.check_key_options(key_type, key_size, curve)
    return dict(opts, key_type=key_type, key_size=key_size, curve=curve)


def _sans(opts: Dict[str, Any], current: Optional[x509.Certificate]) -> List[x509.GeneralName]:
    if opts.get('subject_alt_names') is not None:
        return [signing.parse_san(s) for s in opts['subject_alt_names']]
    if current is None:
        return []
    try:
        return list(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _check_new_pair(cert: x509.Certificate, key: Any, chain: List[x509.Certificate],
                    trusted: List[x509.Certificate], now: datetime.datetime, source: str) -> None:
    if not inspection.key_matches(cert, key):
        raise RenewalError('%s: the new certificate does not match its private key; nothing was swapped.' % source)
    ok, reason = inspection.verify_chain(cert, chain, trusted, now)
    if not ok:
        raise RenewalError('%s: the new certificate does not verify (%s); nothing was swapped. Check ca_cert.'
                           % (source, reason))
    if not (cert.not_valid_before_utc <= now < cert.not_valid_after_utc):
        raise RenewalError('%s: the new certificate is not valid now (%s to %s); nothing was swapped. Check the clock.'
                           % (source, isoformat(cert.not_valid_before_utc), isoformat(cert.not_valid_after_utc)))


def _load_ca(opts: Dict[str, Any]) -> List[x509.Certificate]:
    certs, _fmt = loading.load_certificate_file(opts['ca_cert'])
    return certs


def _result(current: Optional[x509.Certificate], now: datetime.datetime, due: bool, reason: str) -> Dict[str, Any]:
    return {'changed': False, 'due': due, 'reason': reason, 'previous': summary(current, now),
            'certificate': summary(current, now), 'backup': {}, 'deleted_backups': [], 'csr_path': None,
            'rolled_back': False, 'diff': {'before': _diff_text(summary(current, now)),
                                           'after': _diff_text(summary(current, now))}}


def _decide(opts: Dict[str, Any], current: Optional[x509.Certificate], now: datetime.datetime):
    if current is None:
        if not opts.get('common_name'):
            raise OpsReadyError('%s does not exist and no common_name is given: set common_name (and '
                                'subject_alt_names) to issue a first certificate, or fix the path.' % opts['path'])
        return True, 'no certificate at %s yet' % opts['path']
    return renewal_due(current, now, opts.get('renew_before_days'), bool(opts.get('force')))


def renew(opts: Dict[str, Any], check_mode: bool, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """Renew with a local CA or self-signed when due."""
    now = now or utcnow()
    return run_on_pair(opts, check_mode, now, lambda pair: _renew(pair, opts, check_mode, now))


def _renew(pair: swap.Pair, opts: Dict[str, Any], check_mode: bool, now: datetime.datetime) -> Dict[str, Any]:
    repaired = repair_interrupted_swap(pair, opts, check_mode)
    current = _load_current(pair, opts, repaired['cert'])
    due, reason = _decide(opts, current, now)
    result = _result(current, now, due, reason)
    _merge_repair(result, repaired)
    if not due:
        return result
    note = key_type_note(opts, current)
    if note:
        result.setdefault('warnings', []).append(note)
    opts = with_key_options(opts, current)
    ca_certs: List[x509.Certificate] = []
    ca_key = None
    if opts.get('ca_cert'):
        ca_certs = _load_ca(opts)
        ca_key = loading.load_private_key(opts['ca_key'], opts.get('ca_key_passphrase'))
        if not inspection.key_matches(ca_certs[0], ca_key):
            raise OpsReadyError('ca_key %s is not the key of ca_cert %s: give the matching CA key.'
                                % (opts['ca_key'], opts['ca_cert']))
        if now >= ca_certs[0].not_valid_after_utc:
            raise OpsReadyError('ca_cert %s expired at %s: renew the CA before its leaf certificates.'
                                % (opts['ca_cert'], isoformat(ca_certs[0].not_valid_after_utc)))
    elif not opts.get('self_signed'):
        raise OpsReadyError('%s is due (%s) but no issuer is configured: set ca_cert and ca_key for a local CA, '
                            'self_signed=true, or csr_only=true for an external CA.' % (opts['path'], reason))
    valid_days = opts.get('valid_days')
    if not valid_days:
        valid_days = (round((current.not_valid_after_utc - current.not_valid_before_utc).total_seconds() / 86400.0)
                      if current is not None else DEFAULT_VALID_DAYS) or DEFAULT_VALID_DAYS
    subject = signing.build_subject(opts.get('common_name'), current.subject if current is not None else None)
    sans = _sans(opts, current)
    planned_end = now + datetime.timedelta(days=valid_days)
    if ca_certs and planned_end > ca_certs[0].not_valid_after_utc:
        planned_end = ca_certs[0].not_valid_after_utc
    result['changed'] = True
    if check_mode:
        after = dict(summary(current, now))
        after.update(serial='(new random serial)', subject=subject.rfc4514_string(),
                     subject_alt_names=inspection.subject_alt_names_of(sans),
                     not_before=isoformat(now - signing.BACKDATE), not_after=isoformat(planned_end),
                     key_type=opts['key_type'],
                     key_size=opts['key_size'] if opts['key_type'] == 'rsa' else int(opts['curve'][4:7]),
                     curve=opts['curve'] if opts['key_type'] == 'ec' else None)
        result['certificate'] = after
        result['diff']['after'] = _diff_text(after)
        foresee_modes(pair, result)
        return result
    key = keys.generate_private_key(opts['key_type'], opts['key_size'], opts['curve'])
    csr = signing.build_csr(key, subject, sans, signing.tls_features_of(current))
    eku = signing.extended_key_usage_of(current)
    if ca_certs:
        cert = signing.sign_certificate(csr, valid_days, now, ca_certs[0], ca_key, eku)  # type: ignore[arg-type]
        trusted = ca_certs
    else:
        cert = signing.sign_certificate(csr, valid_days, now, None, key, eku)
        trusted = [cert]
    _check_new_pair(cert, key, [], trusted, now, opts['path'])
    cert_bytes = _pem(cert)
    # A full chain file (nginx's ssl_certificate: the leaf, then its intermediates) stays one: written with the
    # leaf alone, clients without the intermediate cached fail the handshake.
    if (opts.get('include_chain') or _holds_chain(pair)) and ca_certs:
        cert_bytes += b''.join(_pem(c) for c in _issuance_order(cert, ca_certs)[1:])
    return _install(pair, opts, result, cert, cert_bytes, key_pem_for(opts, key), now)


def _holds_chain(pair: swap.Pair) -> bool:
    """Whether the live certificate file holds more than one certificate (a full chain)."""
    data = pair.read_cert()
    if not data:
        return False
    try:
        return len(loading.parse_certificates(data, pair.cert_path)[0]) > 1
    except OpsReadyError:
        return False


def _install(pair: swap.Pair, opts: Dict[str, Any], result: Dict[str, Any], cert: x509.Certificate,
             cert_bytes: bytes, key_bytes: bytes, now: datetime.datetime) -> Dict[str, Any]:
    live = pair.read_cert()
    if live and b'-----BEGIN' not in live:
        # The live file is DER (one certificate): the service reading it cannot parse PEM, so it stays DER.
        if cert_bytes.count(b'-----BEGIN CERTIFICATE-----') > 1:
            result.setdefault('warnings', []).append(
                '%s is a DER file, which holds one certificate: the chain was not written into it (give the '
                'service its chain in a file of its own).' % pair.cert_path)
        cert_bytes = cert.public_bytes(serialization.Encoding.DER)
    elif swap.holds_private_key(live):
        # A combined file (certificate and key, as haproxy's crt): written back without its key, the service
        # finds no key at its next reload. It gets the new key, the same bytes as privatekey_path.
        cert_bytes = cert_bytes + key_bytes
    old_key = pair.read_key()
    if old_key and _encrypted(old_key) and not _encrypted(key_bytes) and opts.get('privatekey_cipher') != 'none':
        # Services configured with a passphrase load an unencrypted key as well; the operator must know the
        # key at rest is now protected by its file mode only (unless they chose so with privatekey_cipher=none).
        result.setdefault('warnings', []).append(
            '%s was encrypted with a passphrase; the new key is not encrypted, only protected by its file mode. '
            'Give privatekey_passphrase to keep it encrypted with the same passphrase, or privatekey_cipher=none '
            'to say an unencrypted key is meant.' % pair.key_path)
    result['backup'] = swap.swap_in(pair, cert_bytes, key_bytes, stamp(now))
    if pair.warnings:
        result.setdefault('warnings', []).extend(pair.warnings)
    installed = _load_current(pair, opts)
    if installed is None or installed.serial_number != cert.serial_number:
        raise OpsReadyError('After the swap %s does not hold the new certificate: another process changed it. '
                            'The previous pair is kept at %s.' % (pair.cert_path, result['backup']))
    result['deleted_backups'] = swap.prune_backups(pair, int(opts.get('keep_backups') or 0))
    result['certificate'] = summary(installed, now)
    result['diff']['after'] = _diff_text(result['certificate'])
    return result


def csr_only(opts: Dict[str, Any], check_mode: bool, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """When due, write a new private key (``<privatekey_path>.pending``, 0600) and a CSR for it."""
    now = now or utcnow()
    return run_on_pair(opts, check_mode, now, lambda pair: _csr_only(pair, opts, check_mode, now))


def _csr_only(pair: swap.Pair, opts: Dict[str, Any], check_mode: bool, now: datetime.datetime) -> Dict[str, Any]:
    current = _load_current(pair, opts)
    due, reason = _decide(opts, current, now)
    result = _result(current, now, due, reason)
    csr_path = os.path.abspath(opts.get('csr_path') or opts['path'] + '.csr')
    pending = pair.key_path + PENDING_SUFFIX
    pending_name = pair.key_name + PENDING_SUFFIX
    csr_dir = pair.directory(os.path.dirname(csr_path))
    csr_name = os.path.basename(csr_path)
    result.update(csr_path=csr_path, pending_privatekey_path=pending)
    if not due:
        return result
    note = key_type_note(opts, current)
    if note:
        result.setdefault('warnings', []).append(note)
    opts = with_key_options(opts, current)
    subject = signing.build_subject(opts.get('common_name'), current.subject if current is not None else None)
    sans = _sans(opts, current)
    if pair.key_dir.exists(pending_name) and csr_dir.exists(csr_name):
        try:
            key = parse_key(pair.read_in(pair.key_dir, pending_name, 'Pending private key') or b'', pending, opts)
            existing = x509.load_pem_x509_csr(pair.read_in(csr_dir, csr_name, 'CSR') or b'')
            same = (inspection.csr_matches_key(existing, key) and existing.subject == subject
                    and inspection.subject_alt_names_of(_csr_sans(existing)) == inspection.subject_alt_names_of(sans)
                    and _csr_features(existing) == signing.tls_features_of(current))
        except (OpsReadyError, ValueError):
            same = False
        if same:
            result['csr'] = existing.public_bytes(serialization.Encoding.PEM).decode('ascii')
            return result
    result['changed'] = True
    result['diff']['after'] = 'csr: %s\nsubject: %s\nsubject_alt_names: %s\n' % (
        csr_path, subject.rfc4514_string(), inspection.subject_alt_names_of(sans))
    if check_mode:
        return result
    key = keys.generate_private_key(opts['key_type'], opts['key_size'], opts['curve'])
    csr = signing.build_csr(key, subject, sans, signing.tls_features_of(current))
    pair.key_dir.write_atomic(pending_name, key_pem_for(opts, key), mode=swap.KEY_MODE)
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    csr_dir.write_atomic(csr_name, csr_pem, mode=0o644)
    result['csr'] = csr_pem.decode('ascii')
    return result


def _csr_features(csr: x509.CertificateSigningRequest) -> Optional[x509.TLSFeature]:
    try:
        return csr.extensions.get_extension_for_class(x509.TLSFeature).value
    except x509.ExtensionNotFound:
        return None


def _csr_sans(csr: x509.CertificateSigningRequest) -> List[x509.GeneralName]:
    try:
        return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def install(opts: Dict[str, Any], check_mode: bool, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """Swap in a certificate issued by an external CA for the pending key (or the current key)."""
    now = now or utcnow()
    return run_on_pair(opts, check_mode, now, lambda pair: _install_issued(pair, opts, check_mode, now))


def _issuance_order(leaf: x509.Certificate, others: List[x509.Certificate]) -> List[x509.Certificate]:
    """``leaf``, then the certificate that issued it, and so on (what a TLS server must send, in that
    order); certificates of the file that are not on that path follow in their original order."""
    path = [leaf]
    rest = [c for c in others if c is not leaf]
    while rest:
        current = path[-1]
        if inspection.self_signature(current)[0]:
            break
        issuer = next((c for c in rest if inspection._may_have_issued(current, c)
                       and inspection.check_signature(current, c.public_key())[0]), None)
        if issuer is None:
            break
        path.append(issuer)
        rest.remove(issuer)
    return path + rest


def _check_served_chain(leaf: x509.Certificate, chain: List[x509.Certificate], trusted: List[x509.Certificate],
                        now: datetime.datetime, source: str) -> None:
    """A client that trusts only the root must be able to build the path from what the file serves."""
    roots = [c for c in trusted if inspection.self_signature(c)[0]]
    if not roots or len(roots) == len(trusted):
        return   # ca_cert names the issuer itself as the anchor: nothing to require beyond the verification
    ok, why = inspection.verify_chain(leaf, chain, roots, now)
    if not ok:
        raise RenewalError('%s lacks an intermediate certificate: a client that trusts only the root in ca_cert '
                           'cannot build the chain from what the file serves (%s); nothing was swapped. Install the '
                           'full chain the CA issued (the certificate, then its intermediates).' % (source, why))


def _check_names_kept(leaf: x509.Certificate, opts: Dict[str, Any], current: Optional[x509.Certificate],
                      source: str) -> None:
    """Every name the live certificate (or, when given, subject_alt_names) covers is still covered."""
    if opts.get('subject_alt_names') is not None:
        expected = inspection.subject_alt_names_of([signing.parse_san(s) for s in opts['subject_alt_names']])
    elif current is not None:
        expected = inspection.subject_alt_names(current)
    else:
        return
    have = {name.lower() for name in inspection.subject_alt_names(leaf)}
    lost = [name for name in expected if name.lower() not in have]
    if lost:
        raise RenewalError('%s does not cover %s, which the %s: clients using %s would be refused; nothing was '
                           'swapped. Have the CA issue a certificate with every name, or set subject_alt_names to '
                           'the new list to drop names on purpose.'
                           % (source, ', '.join(lost), 'subject_alt_names option lists' if opts.get(
                               'subject_alt_names') is not None else 'live certificate covers',
                              'that name' if len(lost) == 1 else 'those names'))


def check_usages_kept(leaf: x509.Certificate, current: Optional[x509.Certificate], source: str) -> None:
    """The issued certificate can do what the live one did for a TLS server, else nothing is swapped.

    A CA may issue from the wrong profile (a client or code-signing template, a CA template): every check before
    passed - key, chain, names, validity - and every TLS client refused the server after the reload."""
    problems = []
    # What the live certificate is used for (any purpose, or none said: a TLS server's).
    wanted = [oid for oid in signing.extended_key_usage_of(current) or []
              if oid != ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE] or [ExtendedKeyUsageOID.SERVER_AUTH]
    have = signing.extended_key_usage_of(leaf)
    if have is not None and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in have:
        lost = [oid for oid in wanted if oid not in have]
        if lost:
            problems.append('its extended key usage (%s) lacks %s'
                            % (', '.join(_eku_name(o) for o in have) or 'none', ', '.join(_eku_name(o) for o in lost)))
    signs, signed = _key_usage(leaf), _key_usage(current)
    if signs is not None and not signs.digital_signature and (signed is None or signed.digital_signature):
        problems.append('its key usage lacks digitalSignature (TLS 1.3 and every ECDHE handshake sign with the key)')
    if _is_ca(leaf) and not (current is not None and _is_ca(current)):
        problems.append('it is a CA certificate (basicConstraints CA:TRUE), which browsers refuse as a server '
                        'certificate')
    if problems:
        raise RenewalError('%s cannot serve as %s: %s; nothing was swapped. Have the CA issue it from a TLS server '
                           'profile.' % (source, 'the certificate it replaces' if current is not None
                                         else 'a TLS server certificate', '; '.join(problems)))


_EKU_NAMES = {'1.3.6.1.5.5.7.3.1': 'serverAuth', '1.3.6.1.5.5.7.3.2': 'clientAuth', '1.3.6.1.5.5.7.3.3': 'codeSigning',
              '1.3.6.1.5.5.7.3.4': 'emailProtection', '1.3.6.1.5.5.7.3.8': 'timeStamping',
              '1.3.6.1.5.5.7.3.9': 'OCSPSigning'}


def _eku_name(oid: x509.ObjectIdentifier) -> str:
    return _EKU_NAMES.get(oid.dotted_string, oid.dotted_string)


def _key_usage(cert: Optional[x509.Certificate]) -> Optional[x509.KeyUsage]:
    if cert is None:
        return None
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def warn_features_lost(result: Dict[str, Any], leaf: x509.Certificate, current: Optional[x509.Certificate],
                       source: str) -> None:
    """Warn when the live certificate asked for OCSP must-staple (TLS Feature) and the issued one does not.

    The CSR asks for it; a CA may still leave it out (Let's Encrypt ended must-staple in 2025). Not a refusal:
    the certificate serves every name; but the operator chose that clients require a stapled OCSP answer.
    """
    before = signing.tls_features_of(current)
    if before is None:
        return
    after = signing.tls_features_of(leaf)
    lost = [f.name for f in before if after is None or f not in list(after)]
    if lost:
        result.setdefault('warnings', []).append(
            '%s lacks the TLS feature %s (OCSP must-staple) that the live certificate %s carries, although the '
            'request asked for it: the CA left it out. Clients will no longer require a stapled OCSP answer; ask '
            'the CA to issue with must-staple if it is still wanted.' % (source, ', '.join(lost), result.get(
                'previous', {}).get('serial', '')))


def _install_issued(pair: swap.Pair, opts: Dict[str, Any], check_mode: bool,
                    now: datetime.datetime) -> Dict[str, Any]:
    repaired = repair_interrupted_swap(pair, opts, check_mode)
    current = _load_current(pair, opts, repaired['cert'])
    raw = loading.read_file(opts['install'], loading.MAX_CERT_FILE_BYTES, 'Issued certificate')
    issued_certs, _fmt = loading.parse_certificates(raw, opts['install'])
    pending = pair.key_path + PENDING_SUFFIX
    pending_name = pair.key_name + PENDING_SUFFIX
    key = None
    leaf = issued_certs[0]
    # The leaf is the certificate of the pending (or current) key, wherever the CA put it in the file.
    for name, path in ((pending_name, pending), (pair.key_name, pair.key_path)):
        data = pair.read_in(pair.key_dir, name, 'Private key')
        if data is not None:
            loaded = parse_key(data, path, opts)
            match = next((c for c in issued_certs if inspection.key_matches(c, loaded)), None)
            if match is not None:
                leaf, key = match, loaded
                break
    result = _result(current, now, True, 'install %s' % opts['install'])
    _merge_repair(result, repaired)
    if current is not None and current.fingerprint(inspection.hashes.SHA256()) == leaf.fingerprint(
            inspection.hashes.SHA256()):
        result.update(due=False, reason='%s is already installed' % opts['install'])
        return result
    if key is None:
        raise RenewalError('%s does not match %s nor %s: install the certificate issued for the CSR that csr_only '
                           'wrote; nothing was swapped.' % (opts['install'], pending, opts['privatekey_path']))
    ordered = _issuance_order(leaf, issued_certs)
    trusted = _load_ca(opts)
    _check_new_pair(leaf, key, ordered[1:], trusted, now, opts['install'])
    _check_served_chain(leaf, ordered[1:], trusted, now, opts['install'])
    _check_names_kept(leaf, opts, current, opts['install'])
    check_usages_kept(leaf, current, opts['install'])
    warn_features_lost(result, leaf, current, opts['install'])
    result['changed'] = True
    result['certificate'] = summary(leaf, now)
    result['diff']['after'] = _diff_text(result['certificate'])
    if check_mode:
        foresee_modes(pair, result)
        return result
    # Re-encoded, not copied: the file the CA handed over may hold its key (this file is 0644), comments or a
    # chain out of order; the service gets the leaf, then its issuers.
    cert_bytes = b''.join(_pem(c) for c in ordered)
    result = _install(pair, opts, result, leaf, cert_bytes, key_pem_for(opts, key), now)
    if pair.key_dir.exists(pending_name):
        pair.key_dir.unlink(pending_name)
    return result


def rollback(opts: Dict[str, Any], check_mode: bool, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """Put the newest kept pair back in place (after a failed probe)."""
    now = now or utcnow()
    return run_on_pair(opts, check_mode, now, lambda pair: _rollback(pair, check_mode, now))


def _rollback(pair: swap.Pair, check_mode: bool, now: datetime.datetime) -> Dict[str, Any]:
    current = _load_current(pair)
    done = swap.rollback(pair, stamp(now), check_mode)
    result = _result(current, now, False, 'rollback')
    result.update(changed=bool(done['changed']), rolled_back=bool(done['changed']),
                  restored_from=done['restored_from'], rejected=done['rejected'])
    if pair.warnings:
        result.setdefault('warnings', []).extend(pair.warnings)
    restored_path = str(done['restored_from']['cert'])  # type: ignore[index]
    cert_dir, _key_dir = pair.backup_dirs()
    restored_bytes = pair.read_in(cert_dir, os.path.basename(restored_path), 'Kept certificate') or b''
    restored = loading.parse_certificates(restored_bytes, restored_path)[0][0]
    result['certificate'] = summary(restored, now)
    result['diff']['after'] = _diff_text(result['certificate'])
    return result
