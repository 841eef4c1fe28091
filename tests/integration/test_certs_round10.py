"""Certificates, round 10: what the stale-staged sweep of cert_renew (leftfix9b) still missed, and cert_info's key type
of an RSA-PSS certificate.

- A run killed between staging and renaming leaves ``.<name>.<12 hex>.tmp`` beside every file it writes. The sweep
  covered the pair, the pending key and the kept pairs, not the ACME account key (a private key), the ACME state
  file nor the CSR of ``csr_only``; nor the staged files of a pair written for another account (``owner``: they
  are chowned to it); and a failure that was an OSError (disk full) lost the list of what had been removed.
- cert_info reported the key of a certificate whose key is RSA-PSS only (id-RSASSA-PSS) as ``rsa``.
"""

from __future__ import annotations

import datetime
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.unit.test_cert_round9_unit import _acme_opts, opts, pki  # noqa: E402,F401  # pylint: disable=unused-import

from ansible_collections.opsready.operations.plugins.module_utils.certs import (  # noqa: E402
    acme_renewal, renewal, swap)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402


def _later(minutes):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)


def _staged(path, owner=None) -> str:
    """What a run killed between staging and renaming leaves beside ``path`` (an hour old)."""
    staged = os.path.join(os.path.dirname(str(path)), '.%s.%s.tmp' % (os.path.basename(str(path)), '0a1b2c3d4e5f'))
    Path(staged).write_bytes(b'-----BEGIN PRIVATE KEY-----\nleft by a killed run\n')
    os.chmod(staged, 0o600)
    if owner is not None:
        os.chown(staged, owner, owner)
    old = time.time() - 3600
    os.utime(staged, (old, old))
    return staged


def test_acme_account_key_and_state_staged_files_are_swept(pki, tmp_path):  # noqa: F811
    """The ACME account key (a private key, 0600) and the state file are written through the same staging; a killed
    run's staged copies were never removed."""
    ca, _ca_cert, _ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'acme.test', days_left=80, lifetime=90)
    options = _acme_opts(cert_path, key_path, tmp_path)
    options['acme']['directory_url'] = 'https://127.0.0.1:9/directory'   # nothing answers: the run may fail
    account = _staged(options['acme']['account_key_path'])
    state = _staged(cert_path + acme_renewal.STATE_SUFFIX)
    try:
        result = acme_renewal.acme_renew(options, check_mode=False, now=_later(20))
        removed = result['removed_staged_files']
    except OpsReadyError as exc:
        removed = exc.details.get('removed_staged_files')
    assert removed == sorted([account, state])
    assert not os.path.lexists(account) and not os.path.lexists(state)


def test_csr_only_staged_csr_is_swept(pki, tmp_path):  # noqa: F811
    ca, _ca_cert, _ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'csr.test', days_left=80, lifetime=90)
    csr_dir = tmp_path / 'csrs'
    csr_dir.mkdir()
    csr_path = csr_dir / 'csr.test.csr'
    staged = _staged(csr_path)
    default_staged = _staged(cert_path + '.csr')
    result = renewal.csr_only(opts(cert_path, key_path, csr_only=True, csr_path=str(csr_path)), check_mode=True,
                              now=_later(20))
    assert result['removed_staged_files'] == sorted([staged])
    assert os.path.exists(staged)
    result = renewal.csr_only(opts(cert_path, key_path, csr_only=True, csr_path=str(csr_path)), check_mode=False,
                              now=_later(20))
    assert result['removed_staged_files'] == sorted([staged]) and not os.path.lexists(staged)
    result = renewal.csr_only(opts(cert_path, key_path, csr_only=True), check_mode=False, now=_later(20))
    assert result['removed_staged_files'] == [default_staged] and not os.path.lexists(default_staged)


@pytest.mark.skipif(os.geteuid() != 0, reason='chowns to another account')
def test_staged_files_of_a_pair_written_for_owner_are_swept(pki, tmp_path):  # noqa: F811
    """With ``owner``, staged files are chowned to that account: the sweep took only the running user's."""
    ca, _ca_cert, _ca_key, live = pki
    app = tmp_path / 'app'
    app.mkdir(mode=0o755)
    os.chown(app, 65534, 65534)
    cert_path, key_path, _old = ca.write_leaf(app, 'owned.test', days_left=80, lifetime=90)
    for path in (cert_path, key_path):
        os.chown(path, 65534, 65534)
    key_tmp = _staged(key_path, owner=65534)
    cert_tmp = _staged(cert_path, owner=65534)
    result = renewal.renew(opts(cert_path, key_path, ca_cert=_ca_cert, ca_key=_ca_key, owner='65534'),
                           check_mode=False, now=_later(20))
    assert result['removed_staged_files'] == sorted([key_tmp, cert_tmp])
    assert not os.path.lexists(key_tmp) and not os.path.lexists(cert_tmp)


def test_os_error_keeps_the_list_of_removed_staged_files(pki, monkeypatch):  # noqa: F811
    """A failure that is an OSError (the disk filled while the new pair was written) lost which staged files this run
    had already removed: the operator was told nothing of them."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'full.test', days_left=5, lifetime=90)
    key_tmp = _staged(key_path)

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key_path)
    monkeypatch.setattr(swap, 'write_pair', disk_full)
    with pytest.raises(OpsReadyError) as caught:
        renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False, now=_later(20))
    assert caught.value.details.get('removed_staged_files') == [key_tmp]
    assert 'No space left on device' in caught.value.message and cert_path in caught.value.message


def test_cert_info_reports_an_rsa_pss_key_as_rsa_pss(tmp_path):
    key, cert = tmp_path / 'pss.key', tmp_path / 'pss.crt'
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048', '-out',
                    str(key)], check=True, capture_output=True)
    subprocess.run(['openssl', 'req', '-new', '-x509', '-key', str(key), '-subj', '/CN=pss.test', '-days', '30',
                    '-out', str(cert)], check=True, capture_output=True)
    rsa_key, rsa_cert = tmp_path / 'rsa.key', tmp_path / 'rsa.crt'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', str(rsa_key), '-subj',
                    '/CN=rsa.test', '-days', '30', '-out', str(rsa_cert)], check=True, capture_output=True)
    book = write_playbook(tmp_path, [{'name': 'info', 'opsready.operations.cert_info': {
        'paths': [str(cert), str(rsa_cert)], 'privatekey_paths': {str(cert): str(key), str(rsa_cert): str(rsa_key)}}}])
    run = run_playbook(book)
    assert not run.failed, run.stdout[-2000:]
    found = {c['common_name']: c for c in run.result('info')['certificates']}
    assert (found['pss.test']['key_type'], found['pss.test']['key_size']) == ('rsa-pss', 2048)
    assert found['rsa.test']['key_type'] == 'rsa'   # guard: plain RSA unchanged
    assert found['pss.test'].get('key_matches', True) is not False, found['pss.test']


def test_renewing_an_rsa_pss_certificate_says_the_key_type_changes(tmp_path):
    """The renewal of an RSA-PSS certificate made a plain RSA key without a word (key_options_for took the PSS key for
    rsa): it now warns, and key_type given says which key is meant (no warning)."""
    key, cert = tmp_path / 'pss.key', tmp_path / 'pss.crt'
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048', '-out',
                    str(key)], check=True, capture_output=True)
    subprocess.run(['openssl', 'req', '-new', '-x509', '-key', str(key), '-subj', '/CN=pss.test', '-days', '30',
                    '-out', str(cert)], check=True, capture_output=True)
    os.chmod(key, 0o600)
    chosen = renewal.renew(opts(str(cert), str(key), self_signed=True, force=True, key_type='rsa', key_size=2048),
                           check_mode=True)
    assert chosen['changed'] and not any('RSA-PSS' in w for w in chosen.get('warnings', []))
    dry = renewal.renew(opts(str(cert), str(key), self_signed=True, force=True), check_mode=True)
    assert any('RSA-PSS' in w and 'key_type' in w for w in dry.get('warnings', [])), dry.get('warnings')
    result = renewal.renew(opts(str(cert), str(key), self_signed=True, force=True), check_mode=False)
    assert result['changed'] and result['certificate']['key_type'] == 'rsa'
    assert any('RSA-PSS' in w and 'key_type' in w for w in result.get('warnings', [])), result.get('warnings')
