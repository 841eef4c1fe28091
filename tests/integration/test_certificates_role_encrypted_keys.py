"""Security and Ansible-conformance sweep, round 7, through real ansible-playbook runs.

- The certificates role inventories each certificate with cert_info before it renews: with an encrypted key, that
  step got no passphrase, so it listed a key error and ``key_matches: null`` for a pair that is fine. Each item's
  ``privatekey_passphrase_var`` now reaches cert_info too (its own passphrase per key), never shown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.harness.playbook import run_playbook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils' / 'certs'))
from pki import CA, cert_pem, ec_key  # noqa: E402

PLAYBOOK = 'playbooks/cert_renewal.yml'


def _encrypted_leaf(ca: CA, directory: Path, name: str, passphrase: str, days_left: float) -> tuple:
    key = ec_key()
    cert, dummy = ca.issue(name, days_left=days_left, key=key)
    crt, pem = directory / ('%s.crt' % name), directory / ('%s.key' % name)
    crt.write_bytes(cert_pem(cert))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(passphrase.encode())))
    pem.chmod(0o600)
    return str(crt), str(pem)


def test_certificates_role_inventory_opens_encrypted_keys_with_their_passphrases(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    secrets = {'vault_one_key_passphrase': 'One-pa55-n0t-in-0utput',
               'vault_two_key_passphrase': 'Two-pa55-n0t-in-0utput'}
    one = _encrypted_leaf(ca, tmp_path, 'one.test', secrets['vault_one_key_passphrase'], days_left=200)
    two = _encrypted_leaf(ca, tmp_path, 'two.test', secrets['vault_two_key_passphrase'], days_left=200)
    report = tmp_path / 'report.json'
    items = [dict(name='one', path=one[0], privatekey_path=one[1], privatekey_passphrase_var='vault_one_key_passphrase',
                  ca_cert=ca_cert, ca_key=ca_key),
             dict(name='two', path=two[0], privatekey_path=two[1], privatekey_passphrase_var='vault_two_key_passphrase',
                  ca_cert=ca_cert, ca_key=ca_key)]
    run = run_playbook(PLAYBOOK, extravars=dict(secrets, certificates_list=items,
                                                certificates_report_path=str(report)))
    assert run.rc == 0, run.stdout[-4000:]
    inventory = run.result('Inventory the configured certificates')
    assert inventory.get('errors') == [], inventory.get('errors')
    assert [c['key_matches'] for c in inventory['certificates']] == [True, True]
    written = json.loads(report.read_text())
    assert written['inventory_errors'] == [] and [c['key_matches'] for c in written['inventory']] == [True, True]
    for secret in secrets.values():
        assert secret not in run.stdout
        assert secret not in json.dumps(run.events)
        assert secret not in report.read_text()
