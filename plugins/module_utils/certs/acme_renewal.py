# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACME as an issuer of cert_renew: decide (ARI window, else one third of the lifetime or
renew_before_days), order with HTTP-01 or DNS-01, check the new pair, swap it in with the same code
as every other issuer (renewal._install -> swap.swap_in: previous pair kept, atomic writes), and
optionally revoke the replaced certificate.

When the certificate is not due, the CA is not contacted: the ARI answer of an earlier run (its
window and when to ask again) is kept in ``<path>.acme.json`` next to the certificate, so that a
run inside the Retry-After of the CA's last answer decides from that. Check mode never contacts the CA.

Challenge files and records are removed in a ``finally``, whatever happens to the order.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.certs import (
    inspection, keys, loading, renewal, signing, swap)
from ansible_collections.opsready.operations.plugins.module_utils.certs.policy import renewal_due
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_issuer

STATE_SUFFIX = '.acme.json'
ACCOUNT_KEY_MODE = 0o600
# No renewalInfo in the directory: look again after a day (a CA may start offering it).
NO_ARI_RECHECK = datetime.timedelta(days=1)
MAX_STATE_BYTES = 64 * 1024


def default_account_key_path(opts: Dict[str, Any]) -> str:
    """One account per CA and key directory: ``<key dir>/acme-account.<CA host[-port]>.key``."""
    host = re.sub(r'[^A-Za-z0-9.-]', '-', re.sub(r'^[a-z]+://', '', opts['acme']['directory_url']).split('/')[0])
    return os.path.join(os.path.dirname(os.path.abspath(opts['privatekey_path'])), 'acme-account.%s.key' % host)


def _parse_time(text: Optional[str]) -> Optional[datetime.datetime]:
    if not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def ari_point(start: datetime.datetime, end: datetime.datetime, serial: int) -> datetime.datetime:
    """The moment inside the ARI window this certificate renews: a fixed fraction of the window derived
    from the serial, so that many hosts spread over the window (RFC 9773 4.2) and check mode and the
    real run agree."""
    if end <= start:
        return start
    fraction = int(hashlib.sha256(str(serial).encode('ascii')).hexdigest()[:8], 16) / float(0xFFFFFFFF)
    return start + (end - start) * fraction


def decide(cert: x509.Certificate, now: datetime.datetime, renew_before_days: Optional[float], force: bool,
           ari: Optional[Dict[str, Any]]) -> Tuple[bool, str]:
    """(due, reason). ``ari`` is the CA's window for this certificate ({start, end}) or None."""
    due, reason = renewal_due(cert, now, renew_before_days, force)
    if due or ari is None or not ari.get('start') or not ari.get('end'):
        return due, reason
    point = ari_point(ari['start'], ari['end'], cert.serial_number)
    window = 'ARI window %s to %s' % (isoformat(ari['start']), isoformat(ari['end']))
    if now >= point:
        return True, '%s: renewing from %s (the CA asks for it; %s otherwise)' % (window, isoformat(point), reason)
    return False, '%s: renews from %s (%s)' % (window, isoformat(point), reason)


class State:
    """``<path>.acme.json``: the CA's last ARI answer for the installed certificate."""

    def __init__(self, pair: swap.Pair) -> None:
        self.pair = pair
        self.name = pair.cert_name + STATE_SUFFIX
        self.data: Dict[str, Any] = {}
        try:
            raw = pair.cert_dir.read(self.name, MAX_STATE_BYTES, 'ACME state')
            self.data = json.loads(raw.decode('utf-8')) if raw else {}
            if not isinstance(self.data, dict):
                self.data = {}
        except (ValueError, OpsReadyError, RecursionError):
            self.data = {}  # a damaged cache only costs one question to the CA

    def fresh_for(self, cert: x509.Certificate, directory_url: str, now: datetime.datetime) -> bool:
        next_check = _parse_time(self.data.get('next_check'))
        return (self.data.get('serial') == inspection.serial_hex(cert) and self.data.get('directory_url') ==
                directory_url and next_check is not None and now < next_check)

    def window(self) -> Optional[Dict[str, Any]]:
        start, end = _parse_time(self.data.get('window_start')), _parse_time(self.data.get('window_end'))
        return {'start': start, 'end': end} if start and end else None

    def save(self, cert: x509.Certificate, directory_url: str, offered: bool, info: Optional[Dict[str, Any]],
             next_check: datetime.datetime) -> None:
        self.data = {'serial': inspection.serial_hex(cert), 'directory_url': directory_url, 'ari_offered': offered,
                     'next_check': isoformat(next_check)}
        if info:
            self.data.update(window_start=isoformat(info['start']), window_end=isoformat(info['end']),
                             explanation_url=info.get('explanation_url'), cert_id=info.get('cert_id'))
        self.pair.cert_dir.write_atomic(self.name, (json.dumps(self.data, indent=1) + '\n').encode('utf-8'),
                                        mode=0o644)


def _account_key(pair: swap.Pair, acme: Dict[str, Any], path: str, check_mode: bool) -> Tuple[Any, bool]:
    """(key or None in check mode when absent, created). Created as EC P-256, 0600, never overwritten."""
    if acme.get('account_key_content'):
        return loading.parse_private_key(acme['account_key_content'].encode('utf-8'), 'account_key_content'), False
    directory = pair.directory(os.path.dirname(path), create_mode=0o700)
    name = os.path.basename(path)
    data = directory.read(name, loading.MAX_KEY_FILE_BYTES, 'ACME account key')
    if data is not None:
        # The mode of the key read, not of a link to it (always 0777): SafeDir.read follows a link only in a
        # directory of root's (the cert modules' rule for keys) and refuses one elsewhere.
        st = os.stat(name, dir_fd=directory.fd, follow_symlinks=directory.trusted)
        if st.st_mode & 0o077:
            shown = path
            if directory.trusted and stat.S_ISLNK(os.lstat(path).st_mode):
                shown = '%s (the file its symlink names, %s)' % (path, os.path.realpath(path))
            raise OpsReadyError('ACME account key %s is readable by group or others (mode %o): chmod 600 it, and '
                                'consider it exposed.' % (shown, st.st_mode & 0o777))
        return loading.parse_private_key(data, path), False
    if check_mode:
        return None, True
    key = keys.generate_private_key('ec', 4096, 'secp256r1')
    directory.write_atomic(name, keys.private_key_pem(key), mode=ACCOUNT_KEY_MODE)
    return key, True


def _identifiers(opts: Dict[str, Any], current: Optional[x509.Certificate]) -> Tuple[Any, List[Any]]:
    sans = renewal._sans(opts, current)
    if not sans and opts.get('common_name'):
        sans = [signing.parse_san(opts['common_name'])]
    if not sans:
        raise OpsReadyError('No names to order for %s: set subject_alt_names (DNS names) or common_name.'
                            % opts['path'])
    for san in sans:
        if not isinstance(san, (x509.DNSName, x509.IPAddress)):
            raise OpsReadyError('ACME CAs issue for DNS names and IP addresses only, not %s: drop it from '
                                'subject_alt_names.' % san)
    common_name = opts.get('common_name')
    if common_name is None and current is not None:
        cns = current.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        common_name = cns[0].value if cns else None
    if common_name is None:
        first = sans[0]
        common_name = first.value if isinstance(first, x509.DNSName) else None
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, str(common_name))] if common_name else [])
    return name, sans


def _responder(acme: Dict[str, Any]) -> Any:
    from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_challenges
    kind = acme['challenge']
    if kind == 'http-01':
        if acme.get('webroot'):
            return acme_challenges.Webroot(acme['webroot'])
        return acme_challenges.Listener(acme.get('listen_address') or '0.0.0.0', int(acme.get('listen_port') or 80))  # nosec B104
    return acme_challenges.RFC2136(acme['dns_server'], int(acme.get('dns_port') or 53), acme['tsig_key_name'],
                                   acme['tsig_secret'], acme.get('tsig_algorithm') or 'hmac-sha256',
                                   zone=acme.get('dns_zone'), ttl=int(acme.get('dns_ttl') or 60),
                                   propagation_timeout=float(acme.get('propagation_timeout') or 120),
                                   check_servers=acme.get('propagation_servers'))


def _run_challenges(session: acme_issuer.Session, orderr: Any, responder: Any, acme: Dict[str, Any],
                    record: Dict[str, Any]) -> None:
    from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_issuer
    wanted = acme['challenge']
    pending = []
    for authzr in orderr.authorizations:
        if authzr.body.status.name == 'valid':
            continue  # the CA reuses an earlier validation
        identifier = ('*.' if authzr.body.wildcard else '') + authzr.body.identifier.value
        challb = next((c for c in authzr.body.challenges if c.chall.typ == wanted), None)
        if challb is None:
            offered = ', '.join(sorted(c.chall.typ for c in authzr.body.challenges))
            raise acme_issuer.AcmeError('The CA offers no %s challenge for %s (it offers %s)%s: choose one of those.'
                                        % (wanted, identifier, offered,
                                           ' - wildcards need dns-01' if authzr.body.wildcard else ''))
        validation = challb.chall.validation(session.jwk)
        if wanted == 'http-01':
            where = responder.deploy(challb.chall.encode('token'), validation)
        else:
            where = responder.deploy(challb.chall.validation_domain_name(authzr.body.identifier.value), validation)
        record.setdefault('challenges', []).append({'identifier': identifier, 'type': wanted, 'at': where})
        pending.append(challb)
    if wanted == 'dns-01' and pending:
        record['propagation_seconds'] = round(responder.wait_propagation(), 2)
    for challb in pending:
        session.answer(challb)


def acme_renew(opts: Dict[str, Any], check_mode: bool, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    now = now or utcnow()
    # The account key and the state file are staged as the pair is: a killed run's copies (one a private key) too.
    also = [os.path.abspath(opts['path']) + STATE_SUFFIX]
    if not opts['acme'].get('account_key_content'):
        also.append(os.path.abspath(opts['acme'].get('account_key_path') or default_account_key_path(opts)))
    return renewal.run_on_pair(opts, check_mode, now, lambda pair: _acme_renew(pair, opts, check_mode, now), also)


def _acme_renew(pair: swap.Pair, opts: Dict[str, Any], check_mode: bool, now: datetime.datetime) -> Dict[str, Any]:
    acme = opts['acme']
    directory_url = acme['directory_url']
    account_key_path = os.path.abspath(acme.get('account_key_path') or default_account_key_path(opts))
    repaired = renewal.repair_interrupted_swap(pair, opts, check_mode)
    current = renewal._load_current(pair, opts, repaired['cert'])
    state = State(pair)
    ari_window = None
    consult_ari = False
    if current is None:
        subject, sans = _identifiers(opts, current)
        due, reason = True, 'no certificate at %s yet' % opts['path']
    else:
        subject, sans = _identifiers(opts, current)
        # As sets, case-folded: CAs reorder SANs (Let's Encrypt sorts them); a list order must not renew every run.
        names_changed = (opts.get('subject_alt_names') is not None
                         and {n.lower() for n in inspection.subject_alt_names_of(sans)}
                         != {n.lower() for n in inspection.subject_alt_names(current)})
        if state.fresh_for(current, directory_url, now):
            ari_window = state.window()
        elif acme.get('ari', True) and not check_mode:
            consult_ari = True
        due, reason = decide(current, now, opts.get('renew_before_days'), bool(opts.get('force')), ari_window)
        if not due and names_changed:
            due, reason = True, 'subject_alt_names changed to %s' % ', '.join(inspection.subject_alt_names_of(sans))
        if not due and not consult_ari and acme.get('ari', True) and check_mode and ari_window is None:
            reason += '; ARI not consulted (check mode contacts no CA)'
    result = renewal._result(current, now, due, reason)
    renewal._merge_repair(result, repaired)
    result.update(acme={'directory_url': directory_url, 'account_key_path': None if acme.get('account_key_content')
                        else account_key_path, 'contacted_ca': False})
    if not due and not consult_ari:
        return result
    if check_mode:
        result['changed'] = True
        after = dict(renewal.summary(current, now))
        after.update(serial='(issued by the CA)', subject=subject.rfc4514_string(),
                     subject_alt_names=inspection.subject_alt_names_of(sans))
        result['certificate'] = after
        result['diff']['after'] = renewal._diff_text(after)
        renewal.foresee_modes(pair, result)
        return result
    # The ACME library (~0.5 s to import) is loaded only when the CA is to be asked: a run where nothing is
    # due, and check mode, never pay for it.
    from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_issuer
    account_key, created = _account_key(pair, acme, account_key_path, False)
    result['acme']['account_key_created'] = created
    session = acme_issuer.Session(directory_url, account_key, acme.get('tls_ca_bundle'),
                                  timeout=int(acme.get('timeout') or 30),
                                  validate_certs=acme.get('validate_certs', True))
    result['acme']['contacted_ca'] = True
    session.connect()
    if consult_ari and current is not None:
        info = session.renewal_info(current) if session.offers_ari() else None
        state.save(current, directory_url, session.offers_ari(), info,
                   info['next_check'] if info else now + NO_ARI_RECHECK)
        if info:
            result['acme']['ari'] = {'window_start': isoformat(info['start']), 'window_end': isoformat(info['end']),
                                     'explanation_url': info.get('explanation_url')}
            due, reason = decide(current, now, opts.get('renew_before_days'), bool(opts.get('force')), info)
        result.update(due=due, reason=reason)
        if not due:
            return result
    note = renewal.key_type_note(opts, current)
    if note:
        result.setdefault('warnings', []).append(note)
    opts = renewal.with_key_options(opts, current)
    account = session.register(list(acme.get('contact') or []), bool(acme.get('agree_tos')), acme.get('eab_kid'),
                               acme.get('eab_hmac_key'), acme.get('eab_hmac_algorithm') or 'HS256')
    result['acme']['account_uri'] = account['uri']
    result['acme']['account_created'] = account['created']
    replaces = acme_issuer.ari_cert_id(current) if (current is not None and session.offers_ari()) else None
    key = keys.generate_private_key(opts['key_type'], opts['key_size'], opts['curve'])
    csr_pem = signing.build_csr(key, subject, sans, signing.tls_features_of(current)).public_bytes(
        serialization.Encoding.PEM)
    record: Dict[str, Any] = {'replaces': replaces}
    result['acme']['order'] = record
    responder = _responder(acme)
    try:
        orderr = session.order(csr_pem, replaces)
        record['uri'] = orderr.uri
        _run_challenges(session, orderr, responder, acme, record)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=int(acme.get('order_timeout') or 180))
        orderr = session.finalize(orderr, deadline)
    finally:
        errors = responder.cleanup()
        record['challenges_removed'] = not errors
        if errors:
            record['cleanup_errors'] = errors
    chain_pem, chain_why = acme_issuer.pick_chain(orderr, acme.get('preferred_chain'))
    record['chain'] = chain_why
    chain = x509.load_pem_x509_certificates(chain_pem.encode('ascii'))
    # The certificate of the new key, then its issuers in order, re-encoded: a chain sent out of order (or with
    # text around it) was written as received, and clients that need the intermediate after the leaf failed.
    leaf = next((c for c in chain if inspection.key_matches(c, key)), chain[0])
    ordered = renewal._issuance_order(leaf, chain)
    trusted = (loading.load_certificate_file(acme['ca_bundle'])[0] if acme.get('ca_bundle') else [ordered[-1]])
    now = utcnow()  # the CA dates the certificate at issuance, after this run started
    source = '%s (from %s)' % (opts['path'], directory_url)
    renewal._check_new_pair(leaf, key, ordered[1:], trusted, now, source)
    # The checks an installed certificate passes: the names ordered (those of the live certificate, or
    # subject_alt_names) are all covered, and it can serve TLS where the live one did.
    renewal._check_names_kept(leaf, dict(opts, subject_alt_names=inspection.subject_alt_names_of(sans)), current,
                              source)
    renewal.check_usages_kept(leaf, current, source)
    cert_bytes = (b''.join(c.public_bytes(serialization.Encoding.PEM) for c in ordered) if acme.get('fullchain', True)
                  else leaf.public_bytes(serialization.Encoding.PEM))
    result['changed'] = True
    renewal.warn_features_lost(result, leaf, current, source)
    result = renewal._install(pair, opts, result, leaf, cert_bytes, renewal.key_pem_for(opts, key), now)
    # The new certificate is in place: its ARI answer is asked for at the next run after next_check.
    state.save(leaf, directory_url, session.offers_ari(), None, now + NO_ARI_RECHECK)
    if acme.get('revoke_replaced') and current is not None:
        reason_code = acme.get('revoke_reason') or 'superseded'
        try:
            session.revoke(current, reason_code)
            result['acme']['revoked'] = {'serial': inspection.serial_hex(current), 'reason': reason_code}
        except acme_issuer.AcmeError as exc:
            # The new pair is in place and served after the reload; the revocation is retried by hand.
            result['acme']['revoked'] = {'serial': inspection.serial_hex(current), 'error': str(exc)}
            result.setdefault('warnings', []).append('The replaced certificate %s was NOT revoked: %s'
                                                     % (inspection.serial_hex(current), exc))
    return result
