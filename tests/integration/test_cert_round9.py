"""Round 9 of the certificate red team through real ansible-playbook runs of the modules: what an operator sees
after a renewal that was killed between the key and the certificate, and what cert_info reports for files as
they are found (a DER certificate with a newline after it).

The logic is tested in tests/unit/test_cert_round9_unit.py; here the module's result, warnings and check mode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.harness.playbook import run_playbook, write_playbook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils' / 'certs'))
from pki import CA, ec_key, key_pem, serial_hex  # noqa: E402


def _interrupted_pair(tmp_path):
    """A live pair as a run killed between the two renames leaves it: the kept .bak pair, the new key, the old cert."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    cert_path, key_path, old = ca.write_leaf(live, 'killed.test', days_left=80, lifetime=90)
    old_key = Path(key_path).read_bytes()
    stamp = '20261206T120000000000Z'   # the kept pair the killed run wrote first, as cert_renew names it
    Path(cert_path + '.%s.cert.bak' % stamp).write_bytes(Path(cert_path).read_bytes())
    Path(key_path + '.%s.key.bak' % stamp).write_bytes(old_key)
    os.chmod(key_path + '.%s.key.bak' % stamp, 0o600)
    Path(key_path).write_bytes(key_pem(ec_key()))
    return ca_cert, ca_key, cert_path, key_path, old, old_key


def test_module_undoes_an_interrupted_swap_and_check_mode_foresees_it(tmp_path):
    ca_cert, ca_key, cert_path, key_path, old, old_key = _interrupted_pair(tmp_path)
    task = {'name': 'renew', 'register': 'r', 'opsready.operations.cert_renew': {
        'path': cert_path, 'privatekey_path': key_path, 'ca_cert': ca_cert, 'ca_key': ca_key}}
    show = {'name': 'show', 'ansible.builtin.debug': {'var': 'r'}}
    playbook = write_playbook(tmp_path, [task, show])
    dry = run_playbook(playbook, check=True, diff=True)
    assert not dry.failed
    dry_result = dry.result('renew')
    assert dry_result['changed'] and 'interrupted' in dry.stdout
    assert Path(key_path).read_bytes() != old_key   # check mode wrote nothing

    run = run_playbook(playbook)
    assert not run.failed
    result = run.result('renew')
    assert result['changed'] and not result['due']
    assert 'interrupted between replacing the key and the certificate' in run.stdout
    assert Path(key_path).read_bytes() == old_key
    assert result['certificate']['serial'] == serial_hex(old)

    again = run_playbook(playbook)
    assert not again.failed and not again.result('renew')['changed'] and 'interrupted' not in again.stdout


def test_cert_info_reads_a_der_certificate_with_a_trailing_newline(tmp_path):
    ca = CA()
    cert, _key = ca.issue('der.test', 30)
    path = tmp_path / 'app.der'
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER) + b'\n')
    os.chmod(path, 0o644)
    playbook = write_playbook(tmp_path, [{'name': 'info', 'register': 'i', 'opsready.operations.cert_info': {
        'paths': [str(path)]}}])
    run = run_playbook(playbook)
    assert not run.failed
    certs = run.result('info')['certificates']
    assert [(c['format'], c['serial']) for c in certs] == [('der', serial_hex(cert))]
