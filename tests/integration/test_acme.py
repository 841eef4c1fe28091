"""ACME renewal end to end against a real ACME CA on loopback: Debian's pebble, with named (bind9)
answering the test zone (every name -> 127.0.0.1) and taking TSIG-signed RFC 2136 updates, and nginx
serving the webroot and the renewed certificate. Validation is real: pebble connects back to the
HTTP-01 responder and looks the DNS-01 TXT records up in named. Every run is a real ansible-playbook.

Cases: first issuance over HTTP-01 (built-in listener, webroot) with several SANs; not due -> no request
to the CA at all; check mode contacts no CA and says why; renewal of a due certificate served by nginx
through the certificates role (reload + probe of the new serial) with the replaced one revoked; DNS-01
wildcard with the records removed; EAB required: missing -> clear error, given -> issued; an order the CA
rejects (nothing on disk changes, challenge files removed); an alternate chain selected; secrets and the
account key never in the output.

pebble 2.4 (Debian 12) offers no renewalInfo: the ARI case checks the fallback (no ``replaces``, the
lifetime rule, the cached "not offered" answer); the ARI window logic is unit-tested.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.harness.acme import DNSServer, Nginx, Pebble, free_port, make_tls_identity
from tests.harness.playbook import run_playbook, write_playbook

TASK = 'acme renew'


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('acme-lab')
    with DNSServer(root / 'dns') as dns, Pebble(root / 'pebble', dns=dns, alternate_roots=1) as ca:
        yield dns, ca


def acme_opts(ca, **extra):
    opts = dict(directory_url=ca.directory_url, tls_ca_bundle=ca.tls_ca_path, contact=['ops@acme.test'],
                agree_tos=True, listen_address='127.0.0.1', listen_port=ca.http_port)
    opts.update(extra)
    return opts


def renew(tmp_path, ca, name, sans, check=False, diff=False, **kw):
    live = tmp_path / 'live'
    live.mkdir(exist_ok=True)
    args = dict(path=str(live / ('%s.crt' % name)), privatekey_path=str(live / ('%s.key' % name)), key_type='ec',
                subject_alt_names=sans)
    args['acme'] = acme_opts(ca, **kw.pop('acme', {}))
    args.update(kw)
    play = write_playbook(tmp_path, [{'name': TASK, 'opsready.operations.cert_renew': args, 'register': 'out',
                                      'ignore_errors': True}])
    run = run_playbook(play, check=check, diff=diff)
    res = run.result(TASK)
    res['failed'] = res['_event'] == 'runner_on_failed'
    return run, res, args


def load(path) -> list:
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob('*'))}


def test_listener_issuance_idempotence_and_check_mode(tmp_path, lab):
    dns, ca = lab
    sans = ['DNS:www.acme.test', 'DNS:api.acme.test', 'DNS:acme.test']
    run, res, args = renew(tmp_path, ca, 'www', sans)
    assert res.get('changed') is True, run.stdout[-3000:]
    chain = load(args['path'])
    assert len(chain) >= 2, 'the chain as the CA returns it follows the leaf'
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert sorted(names) == ['acme.test', 'api.acme.test', 'www.acme.test']
    assert res['acme']['account_created'] is True and res['acme']['order']['challenges_removed'] is True
    assert {c['type'] for c in res['acme']['order']['challenges']} == {'http-01'}
    account_key = Path(res['acme']['account_key_path'])
    assert account_key.parent == Path(args['privatekey_path']).parent
    assert stat.S_IMODE(account_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(args['privatekey_path']).st_mode) == 0o600
    key_body = account_key.read_text().split('-----')[2].strip().splitlines()[1]
    assert key_body not in run.stdout and key_body not in json.dumps(run.events)
    # pebble 2.4 offers no ARI: no ``replaces``, the lifetime rule decides, the answer is cached.
    assert res['acme']['order']['replaces'] is None
    state = json.loads(Path(args['path'] + '.acme.json').read_text())
    assert state['ari_offered'] is False and state['serial'] == res['certificate']['serial']

    # Not due: no request to the CA at all (pebble logs one line per request).
    before = ca.requests_logged()
    # (the names in another order and case: the same set, not a change)
    run2, res2, _args = renew(tmp_path, ca, 'www', [n.upper() for n in reversed(sans)])
    assert res2.get('changed') is False and res2['due'] is False and res2['acme']['contacted_ca'] is False
    assert 'of the lifetime' in res2['reason']
    assert ca.requests_logged() == before
    assert load(args['path'])[0].serial_number == chain[0].serial_number

    # The same account is reused for the next certificate of the directory.
    run3, res3, _args = renew(tmp_path, ca, 'mail', ['DNS:mail.acme.test'])
    assert res3.get('changed') is True and res3['acme']['account_created'] is False
    assert res3['acme']['account_uri'] == res['acme']['account_uri']

    # Check mode on a due certificate: says why, changes nothing, contacts no CA.
    files = snapshot(tmp_path / 'live')
    before = ca.requests_logged()
    run4, res4, _args = renew(tmp_path, ca, 'www', sans, check=True, diff=True, renew_before_days=100000)
    assert res4['changed'] is True and res4['due'] is True and 'fewer than renew_before_days' in res4['reason']
    assert res4['acme']['contacted_ca'] is False and ca.requests_logged() == before
    assert snapshot(tmp_path / 'live') == files


def test_dns01_wildcard_records_removed(tmp_path, lab):
    dns, ca = lab
    run, res, args = renew(tmp_path, ca, 'wild', ['DNS:*.acme.test', 'DNS:acme.test'],
                           acme=dict(challenge='dns-01', dns_server='127.0.0.1', dns_port=dns.port,
                                     tsig_key_name=dns.tsig_name, tsig_secret=dns.tsig_secret,
                                     propagation_timeout=20))
    assert res.get('changed') is True, run.stdout[-3000:]
    leaf = load(args['path'])[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert sorted(names) == ['*.acme.test', 'acme.test']
    order = res['acme']['order']
    assert {c['type'] for c in order['challenges']} == {'dns-01'} and order['challenges_removed'] is True
    assert dns.tsig_secret not in run.stdout and dns.tsig_secret not in json.dumps(run.events)
    txt = subprocess.run(['dig', '+short', '-p', str(dns.port), '@127.0.0.1', 'TXT', '_acme-challenge.acme.test'],
                         capture_output=True, text=True, check=True).stdout
    assert txt.strip() == '', 'challenge TXT records left behind: %s' % txt


def test_wildcard_over_http01_is_refused_clearly(tmp_path, lab):
    _dns, ca = lab
    run, res, args = renew(tmp_path, ca, 'badwild', ['DNS:*.acme.test'])
    assert res.get('failed') and 'offers no http-01 challenge' in res['msg'] and 'dns-01' in res['msg']
    assert not os.path.exists(args['path'])


def test_rejected_order_changes_nothing_and_removes_challenge_files(tmp_path, lab):
    """The CA cannot reach the webroot (nothing serves it): the order fails, the live pair and its
    directory are byte-identical, and the token files and the directories made for them are gone."""
    _dns, ca = lab
    run, res, args = renew(tmp_path, ca, 'site', ['DNS:site.acme.test'])
    assert res.get('changed') is True
    webroot = tmp_path / 'unserved-webroot'
    webroot.mkdir()
    before = snapshot(tmp_path / 'live')
    run2, res2, _args = renew(tmp_path, ca, 'site', ['DNS:site.acme.test'], force=True, acme=dict(webroot=str(webroot)))
    assert res2.get('failed'), run2.stdout[-3000:]
    assert 'did not validate' in res2['msg'] and 'site.acme.test http-01' in res2['msg']
    assert 'Nothing was swapped' in res2['msg']
    after = snapshot(tmp_path / 'live')
    assert after == before, 'the live directory changed after a rejected order'
    assert list(webroot.iterdir()) == [], 'challenge files or directories left in the webroot'


def test_eab_required_missing_and_given(tmp_path, lab):
    dns, _ca = lab
    kid, hmac = 'kid-ops', 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W'
    with Pebble(tmp_path / 'pebble-eab', dns=dns, eab={kid: hmac}) as eab_ca:
        run, res, args = renew(tmp_path, eab_ca, 'eab', ['DNS:eab.acme.test'])
        assert res.get('failed') and 'requires External Account Binding' in res['msg'] and 'eab_kid' in res['msg']
        assert not os.path.exists(args['path'])
        run2, res2, _args = renew(tmp_path, eab_ca, 'eab', ['DNS:eab.acme.test'],
                                  acme=dict(eab_kid=kid, eab_hmac_key=hmac))
        assert res2.get('changed') is True, run2.stdout[-3000:]
        assert hmac not in run2.stdout and hmac not in json.dumps(run2.events)
        # A wrong HMAC key: the CA refuses the binding, with a message that names what to check.
        run3, res3, _args = renew(tmp_path, eab_ca, 'eab2', ['DNS:eab2.acme.test'],
                                  acme=dict(eab_kid=kid, eab_hmac_key=hmac[::-1],
                                            account_key_path=str(tmp_path / 'other-account.key')))
        assert res3.get('failed') and 'refused the account registration' in res3['msg'], res3


def test_alternate_chain_selected(tmp_path, lab):
    _dns, ca = lab
    alternate_root = x509.load_pem_x509_certificate(ca.roots_pem(1))
    cn = alternate_root.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    run, res, args = renew(tmp_path, ca, 'alt', ['DNS:alt.acme.test'], acme=dict(preferred_chain=cn))
    assert res.get('changed') is True and res['acme']['order']['chain'].startswith('alternate chain 1'), res
    chain = load(args['path'])
    assert chain[-1].issuer == alternate_root.subject


def test_role_renews_due_certificate_served_by_nginx(tmp_path, lab):
    """First issuance by webroot while nginx serves it, then the certificates role renews the due
    certificate, reloads nginx, probes the new serial, and revokes the replaced certificate."""
    _dns, ca = lab
    webroot = tmp_path / 'www'
    webroot.mkdir()
    live = tmp_path / 'live'
    live.mkdir()
    placeholder = make_tls_identity(tmp_path, ['shop.acme.test'])
    crt, key = live / 'shop.crt', live / 'shop.key'
    crt.write_bytes(Path(placeholder['cert']).read_bytes())
    key.write_bytes(Path(placeholder['key']).read_bytes())
    os.chmod(key, 0o600)
    with Nginx(tmp_path / 'nginx', http_port=ca.http_port, webroot=webroot, cert=str(crt), key=str(key)) as nginx:
        item = dict(name='shop', path=str(crt), privatekey_path=str(key), key_type='ec',
                    subject_alt_names=['DNS:shop.acme.test', 'DNS:www.shop.acme.test'],
                    acme=dict(webroot=str(webroot), revoke_replaced=True), reload_command=nginx.reload_command,
                    endpoint=dict(host='127.0.0.1', port=nginx.tls_port, server_name='shop.acme.test'))
        extravars = dict(certificates_list=[item], certificates_key_type='ec', certificates_probe_retries=20,
                         certificates_probe_delay=1,
                         certificates_acme=dict(directory_url=ca.directory_url, tls_ca_bundle=ca.tls_ca_path,
                                                contact=['ops@acme.test'], agree_tos=True))
        # The placeholder is self-signed and valid for two days: force the first ACME issuance.
        first = run_playbook('playbooks/cert_renewal.yml', extravars=dict(
            extravars, certificates_list=[dict(item, force=True, acme=dict(webroot=str(webroot)))]))
        assert first.rc == 0, first.stdout[-4000:]
        issued = load(crt)[0]
        assert nginx.served('shop.acme.test').serial_number == issued.serial_number
        assert not (webroot / '.well-known').exists()

        # Due by renew_before_days (pebble's certificates live five years): renewed, reloaded, probed.
        second = run_playbook('playbooks/cert_renewal.yml', extravars=dict(
            extravars, certificates_list=[dict(item, renew_before_days=100000)]))
        assert second.rc == 0, second.stdout[-4000:]
        renewed = load(crt)[0]
        assert renewed.serial_number != issued.serial_number
        assert nginx.served('shop.acme.test').serial_number == renewed.serial_number
        res = [r for r in second.task_results() if (r.get('_task') or '').startswith('Renew when due')][-1]
        assert res['acme']['revoked'] == {'serial': res['previous']['serial'], 'reason': 'superseded'}
        kept = [p.name for p in live.iterdir() if p.name.endswith('.cert.bak')]
        assert len(kept) == 2, 'the placeholder and the first ACME certificate are kept'
        assert not (webroot / '.well-known').exists()

        # Not due: the role changes nothing and the CA hears nothing.
        before = ca.requests_logged()
        third = run_playbook('playbooks/cert_renewal.yml', extravars=extravars)
        assert third.rc == 0 and ca.requests_logged() == before
        res = [r for r in third.task_results() if (r.get('_task') or '').startswith('Renew when due')][-1]
        assert res['changed'] is False and res['acme']['contacted_ca'] is False


def test_unreachable_ca_is_a_clear_failure(tmp_path, lab):
    _dns, ca = lab
    run, res, args = renew(tmp_path, ca, 'down', ['DNS:down.acme.test'],
                           acme=dict(directory_url='https://127.0.0.1:%d/dir' % free_port()))
    assert res.get('failed') and 'could not be reached' in res['msg'] and 'keeps serving' in res['msg']
    assert not os.path.exists(args['path'])


def test_account_key_from_vault_is_never_written_nor_shown(tmp_path, lab):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode('ascii')
    _dns, ca = lab
    run, res, args = renew(tmp_path, ca, 'vault', ['DNS:vault.acme.test'], acme=dict(account_key_content=pem))
    assert res.get('changed') is True, run.stdout[-3000:]
    assert res['acme']['account_key_path'] is None
    assert not [p for p in (tmp_path / 'live').iterdir() if p.name.startswith('acme-account')]
    body = pem.splitlines()[1]
    assert body not in run.stdout and body not in json.dumps(run.events)
