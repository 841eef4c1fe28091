"""ACME pieces that need no CA: the RFC 9773 certificate id and the ARI window decision, the CA's
refusals turned into messages (rateLimited with Retry-After), the ``replaces`` field on newOrder,
and the webroot responder (no symlink followed, every file and created directory removed)."""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from pki import CA, ec_key, now

from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_challenges, acme_issuer
from ansible_collections.opsready.operations.plugins.module_utils.certs.acme_renewal import ari_point, decide

from acme import messages  # noqa: I001 - the library under the issuer


def _cert_with(aki: bytes, serial: int) -> x509.Certificate:
    key = ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'ari.test')])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now() - datetime.timedelta(days=1))
            .not_valid_after(now() + datetime.timedelta(days=89))
            .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
            .sign(key, hashes.SHA256()))


def test_ari_cert_id_is_the_rfc_9773_example():
    # RFC 9773 section 4.1: keyIdentifier 69:88:5B:...:D4 and serial 00:87:65:43:21.
    aki = bytes.fromhex('69885B6B87464041E1B37B847BA0AE2CDE01C8D4')
    assert acme_issuer.ari_cert_id(_cert_with(aki, 0x87654321)) == 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE'


def test_new_order_carries_replaces():
    order = acme_issuer._NewOrder(identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value='a.test')],
                                  replaces='aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE')
    assert order.to_partial_json()['replaces'] == 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE'
    plain = acme_issuer._NewOrder(identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value='a.test')])
    assert 'replaces' not in plain.to_partial_json()


@pytest.fixture(scope='module')
def leaf():
    cert, _key = CA().issue('ari.test', days_left=60, lifetime=90)  # 2/3 left: not due by the lifetime rule
    return cert


def test_ari_window_in_the_future_is_not_due(leaf):
    t = now()
    window = {'start': t + datetime.timedelta(days=10), 'end': t + datetime.timedelta(days=12)}
    due, reason = decide(leaf, t, None, False, window)
    assert not due and 'ARI window' in reason and 'renews from' in reason


def test_ari_window_reached_is_due_even_when_the_lifetime_rule_says_no(leaf):
    t = now()
    window = {'start': t - datetime.timedelta(hours=2), 'end': t - datetime.timedelta(hours=1)}
    due, reason = decide(leaf, t, None, False, window)
    assert due and 'the CA asks for it' in reason


def test_lifetime_rule_still_renews_without_ari_and_when_forced(leaf):
    t = now()
    assert decide(leaf, t, None, False, None)[0] is False
    assert decide(leaf, t, 100, False, None)[0] is True
    assert decide(leaf, t, None, True, {'start': t + datetime.timedelta(days=10),
                                        'end': t + datetime.timedelta(days=12)})[0] is True


def test_ari_point_is_inside_the_window_and_stable():
    start = now()
    end = start + datetime.timedelta(days=2)
    points = {ari_point(start, end, serial) for serial in range(1, 50)}
    assert all(start <= p <= end for p in points) and len(points) > 40  # spread over the window
    assert ari_point(start, end, 12345) == ari_point(start, end, 12345)  # check mode and the run agree
    assert ari_point(end, start, 1) == end  # an empty window is its start


def test_rate_limited_says_retry_after_and_current_certificate_keeps_serving():
    session = acme_issuer.Session('https://ca.invalid/dir', ec_key())
    session.net.last_retry_after = '3600'
    error = messages.Error(typ='urn:ietf:params:acme:error:rateLimited', detail='too many certificates')
    exc = session.refused('the new order', error)
    assert 'rateLimited' in exc.message and 'Retry after' in exc.message and '3600 s' in exc.message
    assert 'keeps serving' in exc.message
    assert exc.details == {'acme_error': 'rateLimited', 'retry_after': '3600'}


def test_ca_outage_names_the_retry_time():
    session = acme_issuer.Session('https://ca.invalid/dir', ec_key())
    session.net.last_retry_after = 'Fri, 04 Dec 2026 18:00:00 GMT'
    error = messages.Error(typ='urn:ietf:params:acme:error:serverInternal', detail='down for maintenance')
    exc = session.refused('the directory request', error)
    assert 'retry later' in exc.message and '18:00:00' in exc.message


def test_account_key_types():
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    assert acme_issuer.jwk_of(rsa.generate_private_key(65537, 2048))[1].name == 'RS256'
    assert acme_issuer.jwk_of(ec.generate_private_key(ec.SECP384R1()))[1].name == 'ES384'
    with pytest.raises(acme_issuer.AcmeError, match='RSA or EC'):
        acme_issuer.jwk_of(ec.generate_private_key(ec.SECP521R1()))


def test_webroot_writes_and_removes_everything_it_made(tmp_path):
    webroot = tmp_path / 'www'
    webroot.mkdir()
    responder = acme_challenges.Webroot(str(webroot))
    token = 'A' * 43
    path = responder.deploy(token, token + '.thumbprint')
    assert open(path).read() == token + '.thumbprint'
    assert oct(os.stat(path).st_mode & 0o777) == '0o644'
    assert responder.cleanup() == []
    assert list(webroot.iterdir()) == []


def test_webroot_keeps_an_existing_challenge_directory(tmp_path):
    challenge_dir = tmp_path / '.well-known' / 'acme-challenge'
    challenge_dir.mkdir(parents=True)
    (challenge_dir / 'other-file').write_text('kept')
    responder = acme_challenges.Webroot(str(tmp_path))
    responder.deploy('B' * 43, 'x')
    responder.cleanup()
    assert sorted(p.name for p in challenge_dir.iterdir()) == ['other-file']


def test_webroot_never_follows_a_planted_symlink(tmp_path):
    webroot = tmp_path / 'www'
    webroot.mkdir()
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    os.symlink(elsewhere, webroot / '.well-known')
    responder = acme_challenges.Webroot(str(webroot))
    with pytest.raises(acme_challenges.ChallengeError, match='symlink'):
        responder.deploy('C' * 43, 'x')
    responder.cleanup()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize('token', ['../../etc/passwd', 'a/b' * 10, '', 'x' * 8, 'tok en' * 5])
def test_tokens_that_are_not_base64url_never_become_file_names(tmp_path, token):
    responder = acme_challenges.Webroot(str(tmp_path))
    with pytest.raises(acme_challenges.ChallengeError, match='base64url'):
        responder.deploy(token, 'x')
    responder.cleanup()
    assert list(tmp_path.iterdir()) == []
