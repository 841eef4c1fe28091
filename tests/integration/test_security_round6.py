"""Security review, round 6, through the certificates role: an encrypted live key's passphrase reaches cert_renew
from a variable the item names (privatekey_passphrase_var), never from the loop item itself, which Ansible copies
into task results, job events and logs (the password_var rule of the dr_drill, maintenance and recovery roles)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.harness.playbook import run_playbook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils' / 'certs'))
from pki import CA, cert_pem, ec_key  # noqa: E402

PLAYBOOK = 'playbooks/cert_renewal.yml'
PASSPHRASE = 'R0le-pa55phrase-n0t-shown'


def encrypted_item(tmp_path: Path) -> dict:
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    key = ec_key()
    cert, _key = ca.issue('enc.test', days_left=2, key=key)
    (tmp_path / 'enc.crt').write_bytes(cert_pem(cert))
    (tmp_path / 'enc.key').write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    (tmp_path / 'enc.key').chmod(0o600)
    return dict(name='enc', path=str(tmp_path / 'enc.crt'), privatekey_path=str(tmp_path / 'enc.key'),
                ca_cert=ca_cert, ca_key=ca_key, key_type='ec')


def test_role_renews_an_encrypted_key_with_the_passphrase_its_item_names(tmp_path):
    item = dict(encrypted_item(tmp_path), privatekey_passphrase_var='vault_enc_key_passphrase')
    before = (tmp_path / 'enc.crt').read_bytes()
    run = run_playbook(PLAYBOOK, extravars=dict(certificates_list=[item], vault_enc_key_passphrase=PASSPHRASE))
    assert run.rc == 0, run.stdout[-3000:]
    assert (tmp_path / 'enc.crt').read_bytes() != before
    text = (tmp_path / 'enc.key').read_bytes()
    assert b'ENCRYPTED' in text
    serialization.load_pem_private_key(text, password=PASSPHRASE.encode())
    results = json.dumps([e.get('event_data', {}).get('res') for e in run.events])
    assert PASSPHRASE not in results and PASSPHRASE not in run.stdout


def test_role_refuses_a_passphrase_written_into_the_item(tmp_path):
    item = dict(encrypted_item(tmp_path), privatekey_passphrase=PASSPHRASE)
    before = (tmp_path / 'enc.crt').read_bytes()
    run = run_playbook(PLAYBOOK, extravars=dict(certificates_list=[item]))
    assert run.rc != 0 and 'privatekey_passphrase_var' in run.stdout, run.stdout[-3000:]
    assert (tmp_path / 'enc.crt').read_bytes() == before
    assert PASSPHRASE not in run.stdout


def test_schedule_never_shows_a_job_s_extra_vars(tmp_path):
    """A job's extra vars are written 0600 (they may hold a vault-decrypted password for the scheduled run), but
    --diff printed the whole file and the loop item carried them into every result of the loop."""
    from tests.integration.test_schedule import schedule
    proj = tmp_path / 'project'
    (proj / 'playbooks').mkdir(parents=True)
    (proj / 'playbooks' / 'marker.yml').write_text('- hosts: all\n  gather_facts: false\n  tasks: []\n')
    dirs = {k: tmp_path / k for k in ('cron', 'units', 'config', 'logs', 'locks')}
    for key in ('cron', 'units'):
        dirs[key].mkdir()
    job = {'name': 'marker', 'playbook': 'playbooks/marker.yml', 'cron': '*/5 * * * *', 'on_calendar': '*:0/5',
           'extra_vars': {'login_password': PASSPHRASE}}
    # check mode runs with --diff here, and the loops' results are the same as in a real run (test_schedule.py
    # proves the file's content by running the job)
    run = schedule({'dir': proj, **dirs}, [job], check=True)
    assert run.rc == 0, run.stdout[-3000:]
    assert PASSPHRASE not in run.stdout
    assert PASSPHRASE not in json.dumps([e.get('event_data', {}).get('res') for e in run.events])


def test_recovery_health_probe_never_shows_a_token_in_its_url(tmp_path):
    """The recovery role probed each health_url with ansible.builtin.uri, labelled the loop with the URL and
    returned it (url, invocation, the loop item): a token in its query string was in the output and every job
    event. Through health_check's http check the token is starred, and the loop item is the service's name."""
    import http.server
    import threading

    from tests.harness.playbook import write_playbook

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path.endswith('access_token=' + PASSPHRASE) else 401)
            self.end_headers()
            self.wfile.write(b'ready')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = 'http://127.0.0.1:%d/health?access_token=%s' % (server.server_address[1], PASSPHRASE)
        services = [{'name': 'app', 'health_url': url, 'health_body': 'ready'}]
        playbook = write_playbook(tmp_path, [{'ansible.builtin.include_role': {
            'name': 'opsready.operations.recovery', 'tasks_from': 'verify'}}])
        run = run_playbook(playbook, extravars={'recovery_services': services, 'recovery_health_retries': 0})
        assert run.rc == 0, run.stdout[-3000:]
        assert PASSPHRASE not in run.stdout
        assert PASSPHRASE not in json.dumps([e.get('event_data', {}).get('res') for e in run.events])
        # a service that does not answer still fails the verification, naming the service, not the token
        services = [{'name': 'app', 'health_url': url.replace(PASSPHRASE, 'wrong-' + PASSPHRASE)}]
        run = run_playbook(playbook, extravars={'recovery_services': services, 'recovery_health_retries': 0})
        assert run.rc != 0 and 'RECOVERY FAILED VERIFICATION' in run.stdout and 'app' in run.stdout
        assert PASSPHRASE not in run.stdout
    finally:
        server.shutdown()
