# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talking to an ACME CA (RFC 8555) through the ``acme`` library that certbot is built on.

JWS signing, nonces, account registration, External Account Binding, orders, polling and the
alternate-chain links are the library's (maintained with certbot, tested against Boulder and Let's
Encrypt); this file only adds what it lacks - the ``replaces`` field of RFC 9773 on a new order, the
Retry-After of an error answer - and turns its errors into messages that say what to do.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import base64
import datetime
import math
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:  # crypto_guard.require() in the module reports it
    pass

try:
    import josepy as jose
    import requests
    from acme import client as acme_client
    from acme import crypto_util as acme_crypto_util
    from acme import errors as acme_errors
    from acme import messages
    HAS_ACME = True
    ACME_IMPORT_ERROR: Optional[str] = None
except ImportError:
    HAS_ACME = False
    ACME_IMPORT_ERROR = traceback.format_exc()

LETSENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory'
LETSENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory'
USER_AGENT = 'opsready.operations-cert_renew (acme-python)'
# RFC 5280 reason codes the option accepts.
REVOCATION_REASONS = {'unspecified': 0, 'key_compromise': 1, 'superseded': 4, 'cessation_of_operation': 5}
ERROR_PREFIX = 'urn:ietf:params:acme:error:'


class AcmeError(OpsReadyError):
    """The CA refused or could not be reached; nothing on disk was changed."""


if HAS_ACME:
    class _NewOrder(messages.NewOrder):
        """newOrder with RFC 9773's ``replaces`` (the ARI certificate id of the certificate it renews)."""
        replaces: Optional[str] = jose.field('replaces', omitempty=True)

    class _Network(acme_client.ClientNetwork):
        """Keeps the Retry-After of the last error answer (the library drops it)."""
        last_retry_after: Optional[str] = None

        def _check_response(self, response: Any, content_type: Optional[str] = None) -> Any:  # type: ignore[override]
            if not response.ok:
                self.last_retry_after = response.headers.get('Retry-After')
            return super()._check_response(response, content_type=content_type)

    class _Client(acme_client.ClientV2):
        """The library's client with ``replaces`` on new orders and a quicker poll.

        The library polls authorizations and orders every full second; a CA usually validates and issues
        in a fraction of that (pebble in ~50 ms, Let's Encrypt in a few hundred), so each renewal would
        wait ~2 s for nothing. Here the poll starts at 0.1 s and doubles up to 2 s, and a Retry-After the
        CA sends is honoured (RFC 8555 7.5.1 / 7.4), capped by the deadline.
        """

        def _wait(self, response: Any, delay: float, deadline: datetime.datetime) -> float:
            retry_after = response.headers.get('Retry-After') if response is not None else None
            if retry_after:
                until = min(self.retry_after(response, 1), deadline)
                pause = (until - datetime.datetime.now()).total_seconds()
            else:
                pause = min(delay, (deadline - datetime.datetime.now()).total_seconds())
            if pause > 0:
                time.sleep(pause)
            return min(delay * 2, 2.0)

        def poll_authorizations(self, orderr: Any, deadline: datetime.datetime) -> Any:
            responses = []
            for authzr in orderr.authorizations:
                delay = 0.1
                while True:
                    authzr, response = self.poll(authzr)
                    if authzr.body.status != messages.STATUS_PENDING:
                        responses.append(authzr)
                        break
                    if datetime.datetime.now() >= deadline:
                        raise acme_errors.TimeoutError()
                    delay = self._wait(response, delay, deadline)
            failed = [a for a in responses if a.body.status != messages.STATUS_VALID]
            if failed:
                raise acme_errors.ValidationError(failed)
            return orderr.update(authorizations=responses)

        def poll_finalization(self, orderr: Any, deadline: datetime.datetime,
                              fetch_alternative_chains: bool = False) -> Any:
            delay = 0.1
            response = None
            while True:
                if response is not None:
                    if datetime.datetime.now() >= deadline:
                        raise acme_errors.TimeoutError()
                    delay = self._wait(response, delay, deadline)
                response = self._post_as_get(orderr.uri)
                body = messages.Order.from_json(response.json())
                if body.status == messages.STATUS_INVALID:
                    if body.error is not None:
                        raise acme_errors.IssuanceError(body.error)
                    raise acme_errors.ClientError('the CA marked the order invalid without a reason')
                if body.status == messages.STATUS_READY:
                    self.begin_finalization(orderr)
                    delay = 0.1
                elif body.status == messages.STATUS_VALID and body.certificate is not None:
                    certificate = self._post_as_get(body.certificate)
                    orderr = orderr.update(body=body, fullchain_pem=certificate.text)
                    if fetch_alternative_chains:
                        alternates = [self._post_as_get(url).text
                                      for url in self._get_links(certificate, 'alternate')]
                        orderr = orderr.update(alternative_fullchains_pem=alternates)
                    return orderr

        def new_order_replacing(self, csr_pem: bytes, replaces: Optional[str]) -> Any:
            """The library's new_order, with ``replaces`` set when renewing under ARI."""
            if not replaces:
                return self.new_order(csr_pem)
            csr = x509.load_pem_x509_csr(csr_pem)
            dns_names, ips = acme_crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
            identifiers = ([messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in dns_names]
                           + [messages.Identifier(typ=messages.IDENTIFIER_IP, value=str(i)) for i in ips])
            response = self._post(self.directory['newOrder'], _NewOrder(identifiers=identifiers, replaces=replaces))
            body = messages.Order.from_json(response.json())
            authorizations = [self._authzr_from_response(self._post_as_get(url), uri=url)
                              for url in body.authorizations]
            return messages.OrderResource(body=body, uri=response.headers.get('Location'),
                                          authorizations=authorizations, csr_pem=csr_pem)


def ari_cert_id(cert: x509.Certificate) -> Optional[str]:
    """RFC 9773 4.1: base64url(AKI keyIdentifier) '.' base64url(DER serial); None without an AKI."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None
    if not aki:
        return None
    serial = cert.serial_number
    serial_bytes = serial.to_bytes(math.ceil((serial.bit_length() + 1) / 8), byteorder='big', signed=True)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode('ascii').rstrip('=')
    return '%s.%s' % (b64(aki), b64(serial_bytes))


def jwk_of(key: Any) -> Tuple[Any, Any]:
    """(JWK, signature algorithm) for an account key: RS256 for RSA, ES256/ES384 for P-256/P-384."""
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {'secp256r1': jose.ES256, 'secp384r1': jose.ES384}.get(key.curve.name)
        if alg is not None:
            return jose.JWKEC(key=key), alg
    raise AcmeError('The ACME account key must be RSA or EC P-256/P-384; give another account_key_path.')


def _retry_text(value: Optional[str], now: datetime.datetime) -> str:
    if not value:
        return ''
    try:
        seconds = int(value)
        return ' Retry after %s (Retry-After: %s s).' % ((now + datetime.timedelta(seconds=seconds)).isoformat(),
                                                         seconds)
    except ValueError:
        return ' Retry after %s (Retry-After).' % value


class Session:
    """One account at one ACME directory: connect, register, order, revoke."""

    def __init__(self, directory_url: str, account_key: Any, tls_ca_bundle: Optional[str] = None,
                 timeout: int = 30, validate_certs: bool = True) -> None:
        self.directory_url = directory_url
        self.jwk, self.alg = jwk_of(account_key)
        verify: Any = tls_ca_bundle if (tls_ca_bundle and validate_certs) else validate_certs
        self.net = _Network(self.jwk, alg=self.alg, verify_ssl=verify, user_agent=USER_AGENT, timeout=timeout)
        self.client: Any = None
        self.account_uri: Optional[str] = None

    # Every call to the CA goes through here so that a refusal or an outage reads the same everywhere.
    def call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        self.net.last_retry_after = None
        try:
            return func(*args, **kwargs)
        except messages.Error as exc:
            raise self.refused(what, exc)
        except acme_errors.ValidationError as exc:
            raise AcmeError('The CA did not validate the challenges of the order: %s. Nothing was swapped; check '
                            'that the names resolve to this host and the responder is reachable from the CA.'
                            % self.describe_failed(exc.failed_authzrs), acme_error='validation')
        except acme_errors.IssuanceError as exc:
            raise self.refused(what, exc.error)
        except acme_errors.TimeoutError:
            raise AcmeError('The CA did not finish %s before the timeout: it may be overloaded; run again later. '
                            'Nothing was swapped; the current certificate keeps serving.' % what)
        except acme_errors.ConflictError:
            raise
        except (acme_errors.ClientError, requests.exceptions.RequestException) as exc:
            raise AcmeError('The ACME CA at %s could not be reached or answered garbage during %s (%s): check '
                            'directory_url, the network and tls_ca_bundle; the current certificate keeps serving.%s'
                            % (self.directory_url, what, exc,
                               _retry_text(self.net.last_retry_after, datetime.datetime.now(datetime.timezone.utc))))

    def refused(self, what: str, exc: Any) -> AcmeError:
        code = (exc.typ or '').replace(ERROR_PREFIX, '')
        retry = _retry_text(self.net.last_retry_after, datetime.datetime.now(datetime.timezone.utc))
        if code == 'rateLimited':
            hint = ('The CA rate-limits this account or these names: do not retry in a loop.%s The current '
                    'certificate keeps serving.' % (retry or ' The CA gave no Retry-After; wait an hour.'))
        elif code == 'externalAccountRequired':
            hint = 'This CA requires External Account Binding: set eab_kid and eab_hmac_key from the CA.'
        elif code == 'unauthorized' and 'binding' in (exc.detail or '').lower():
            hint = 'Check eab_kid and eab_hmac_key (they must be a pair the CA issued).'
        elif code == 'userActionRequired':
            hint = 'The CA wants the terms of service (re)accepted: read them and set agree_tos.'
        elif code in ('serverInternal',) or exc.typ is None:
            hint = 'The CA failed internally: retry later.%s The current certificate keeps serving.' % retry
        else:
            hint = 'Nothing was swapped; the current certificate keeps serving.%s' % retry
        return AcmeError('The ACME CA refused %s: %s: %s. %s' % (what, code or 'error', exc.detail or exc, hint),
                         acme_error=code, retry_after=self.net.last_retry_after)

    @staticmethod
    def describe_failed(failed: List[Any]) -> str:
        parts = []
        for authzr in failed:
            identifier = authzr.body.identifier.value
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    parts.append('%s %s: %s: %s' % (identifier, challb.chall.typ,
                                                    (challb.error.typ or '').replace(ERROR_PREFIX, ''),
                                                    challb.error.detail))
            if not any(c.error is not None for c in authzr.body.challenges):
                parts.append('%s: authorization %s' % (identifier, authzr.body.status))
        return '; '.join(parts) or 'no reason given'

    def connect(self) -> Any:
        directory = self.call('the directory request', acme_client.ClientV2.get_directory, self.directory_url,
                              self.net)
        self.client = _Client(directory, self.net)
        return directory

    @property
    def directory(self) -> Any:
        return self.client.directory

    def terms_of_service(self) -> Optional[str]:
        meta = getattr(self.directory, 'meta', None)
        return getattr(meta, 'terms_of_service', None) if meta is not None else None

    def offers_ari(self) -> bool:
        try:
            return bool(self.directory['renewalInfo'])
        except KeyError:
            return False

    def register(self, contact: List[str], agree_tos: bool, eab_kid: Optional[str],
                 eab_hmac_key: Optional[str], eab_alg: str = 'HS256') -> Dict[str, Any]:
        """Register the account key, or find its existing account. Returns {uri, created}."""
        tos = self.terms_of_service()
        if tos and not agree_tos:
            raise AcmeError('The CA at %s has terms of service (%s): read them and set agree_tos: true to register '
                            'the account.' % (self.directory_url, tos))
        required = self.client.external_account_required()
        if required and not (eab_kid and eab_hmac_key):
            raise AcmeError('The CA at %s requires External Account Binding: set eab_kid and eab_hmac_key (the key '
                            'id and HMAC key the CA gave for this account); nothing was registered.'
                            % self.directory_url)
        eab = None
        if eab_kid and eab_hmac_key:
            try:
                eab = messages.ExternalAccountBinding.from_data(account_public_key=self.jwk.public_key(), kid=eab_kid,
                                                                hmac_key=eab_hmac_key, directory=self.directory,
                                                                hmac_alg=eab_alg)
            except (ValueError, TypeError, base64.binascii.Error):  # type: ignore[attr-defined]
                raise AcmeError('eab_hmac_key is not base64url as the CA hands it out; copy it again (not shown).')
        contacts = tuple(c if ':' in c else 'mailto:' + c for c in contact)
        registration = messages.NewRegistration(contact=contacts, terms_of_service_agreed=bool(agree_tos) or None,
                                                external_account_binding=eab)
        try:
            regr = self.call('the account registration', self.client.new_account, registration)
            created = True
        except acme_errors.ConflictError as exc:
            # The key already has an account (RFC 8555 7.3.1: 200 + Location): use it.
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            created = False
        self.net.account = regr
        self.account_uri = regr.uri
        return {'uri': regr.uri, 'created': created}

    def renewal_info(self, cert: x509.Certificate) -> Optional[Dict[str, Any]]:
        """The CA's suggested window for ``cert`` (RFC 9773) and when to ask again; None if not offered."""
        cert_id = ari_cert_id(cert)
        if not self.offers_ari() or cert_id is None:
            return None
        url = self.directory['renewalInfo'].rstrip('/') + '/' + cert_id
        response = self.call('the renewal information request', self.net.get, url, content_type='application/json')
        info = messages.RenewalInfo.from_json(response.json())
        now = datetime.datetime.now(datetime.timezone.utc)
        try:
            seconds = int(response.headers.get('Retry-After', '21600'))
        except ValueError:
            seconds = 21600
        seconds = max(60, min(seconds, 86400))  # RFC 9773 4.3.2: clamp to sane bounds
        return {'start': info.suggested_window.start, 'end': info.suggested_window.end,
                'explanation_url': response.json().get('explanationURL'),
                'next_check': now + datetime.timedelta(seconds=seconds), 'cert_id': cert_id}

    def order(self, csr_pem: bytes, replaces: Optional[str]) -> Any:
        try:
            return self.call('the new order', self.client.new_order_replacing, csr_pem, replaces)
        except AcmeError as exc:
            # RFC 9773 5: a CA may refuse ``replaces`` (already replaced, unknown); order without it.
            if replaces and exc.details.get('acme_error') in ('alreadyReplaced', 'malformed', 'conflict'):
                return self.call('the new order', self.client.new_order_replacing, csr_pem, None)
            raise

    def answer(self, challb: Any) -> None:
        response = challb.chall.response(self.jwk)
        self.call('the challenge answer', self.client.answer_challenge, challb, response)

    def finalize(self, orderr: Any, deadline: datetime.datetime) -> Any:
        orderr = self.call('the validation', self.client.poll_authorizations, orderr, deadline)
        return self.call('the order', self.client.finalize_order, orderr, deadline, fetch_alternative_chains=True)

    def revoke(self, cert: x509.Certificate, reason: str) -> None:
        self.call('the revocation', self.client.revoke, cert, REVOCATION_REASONS[reason])


def pick_chain(orderr: Any, preferred_chain: Optional[str]) -> Tuple[str, str]:
    """(full chain PEM, why) - the CA's default chain, or the first alternate whose topmost issuer CN
    (or any certificate's issuer CN) is ``preferred_chain``, as certbot's --preferred-chain does."""
    chains = [orderr.fullchain_pem] + list(orderr.alternative_fullchains_pem or [])
    if not preferred_chain:
        return chains[0], 'default chain'
    for index, pem in enumerate(chains):
        certs = x509.load_pem_x509_certificates(pem.encode('ascii'))
        names = []
        for cert in certs:
            names += [a.value for a in cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        if preferred_chain in names:
            return pem, ('default chain' if index == 0 else 'alternate chain %d' % index) + \
                ' (issuer %s)' % preferred_chain
    return chains[0], 'default chain (no chain has issuer %s; %d offered)' % (preferred_chain, len(chains))
