"""Certificate inventory and renewal end to end: real PKI made in the test, real TLS servers on
loopback that reload on SIGHUP, real ansible-playbook runs of playbooks/cert_renewal.yml.

Scenarios: due ones renewed and served, fresh ones untouched (second run changed nothing), a
renewal whose service does not pick it up is rolled back and the old certificate still served,
garbage gets a clear error naming the file, check mode changes nothing and shows the serials.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.harness.playbook import VENV_PYTHON, run_playbook, write_playbook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils' / 'certs'))
from pki import CA, cert_pem, ec_key, key_pem, serial_hex  # noqa: E402

PLAYBOOK = 'playbooks/cert_renewal.yml'

# A TLS server like nginx: loads cert+key at start, reloads them on SIGHUP (keeping the old ones when
# the new pair does not load), and chooses a certificate by SNI when given a second pair.
SERVER = r'''
import signal, socket, ssl, sys, threading
port, pidfile, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sni = sys.argv[5:8]
state = {}

def load():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if sni:
        other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        other.load_cert_chain(sni[1], sni[2])
        def pick(sock, name, _ctx):
            if name == sni[0]:
                sock.context = other
        ctx.sni_callback = pick
    return ctx

def reload(*_):
    try:
        state['ctx'] = load()
        print('reloaded', flush=True)
    except Exception as exc:
        print('reload failed, keeping the old certificate: %s' % exc, flush=True)

state['ctx'] = load()
signal.signal(signal.SIGHUP, reload)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', port))
srv.listen(16)
open(pidfile, 'w').write('%d\n' % __import__('os').getpid())

def serve(conn):
    try:
        with state['ctx'].wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)
    except Exception:
        pass

while True:
    try:
        conn, _ = srv.accept()
    except InterruptedError:
        continue
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class TLSServer:
    def __init__(self, directory: Path, cert: str, key: str, sni=None) -> None:
        self.port = free_port()
        self.pidfile = directory / ('server-%d.pid' % self.port)
        script = directory / 'tls_server.py'
        script.write_text(SERVER)
        self.log = open(directory / ('server-%d.log' % self.port), 'w')
        self.proc = subprocess.Popen([VENV_PYTHON, str(script), str(self.port), str(self.pidfile), cert, key]
                                     + list(sni or []), stdout=self.log, stderr=subprocess.STDOUT)
        for _attempt in range(100):
            if self.pidfile.exists() and self.pidfile.read_text().strip():
                return
            time.sleep(0.05)
        raise RuntimeError('TLS test server did not start')

    def served(self, server_name: str = 'localhost') -> x509.Certificate:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(('127.0.0.1', self.port), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname=server_name) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def servers():
    started = []
    yield lambda *a, **kw: started.append(TLSServer(*a, **kw)) or started[-1]
    for server in started:
        server.stop()


def read(path: str) -> bytes:
    with open(path, 'rb') as handle:
        return handle.read()


def load(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(read(path))


def renew_results(run):
    return [r for r in run.task_results() if (r.get('_task') or '').startswith('Renew when due - ')]


def test_renew_reload_probe_rollback(tmp_path, servers):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    due_crt, due_key, due_old = ca.write_leaf(live, 'due.test', days_left=5, lifetime=90)
    fresh_crt, fresh_key, fresh_old = ca.write_leaf(live, 'fresh.test', days_left=200, lifetime=365)
    exp_crt, exp_key, exp_old = ca.write_leaf(live, 'expired.test', days_left=-2, lifetime=30)
    # A certificate whose key file holds another key (inventory must flag it).
    odd_crt, odd_key, _odd_cert = ca.write_leaf(live, 'nomatch.test', days_left=300, lifetime=365)
    Path(odd_key).write_bytes(key_pem(ec_key()))
    garbage = live / 'garbage.crt'
    garbage.write_bytes(b'this is not a certificate\n')
    os.chmod(due_key, 0o640)
    fresh_before = (read(fresh_crt), read(fresh_key))
    exp_before = (read(exp_crt), read(exp_key))

    good = servers(tmp_path, due_crt, due_key)
    # This service never picks up a new certificate (its reload does nothing): the probe must see the
    # old serial, and the role must roll back and fail.
    stuck = servers(tmp_path, exp_crt, exp_key)
    report = tmp_path / 'report.json'
    common = dict(ca_cert=ca_cert, ca_key=ca_key, key_type='ec')
    items = [
        dict(name='due', path=due_crt, privatekey_path=due_key, reload_command=['kill', '-HUP', str(good.proc.pid)],
             endpoint=dict(host='127.0.0.1', port=good.port, server_name='due.test'), **common),
        dict(name='fresh', path=fresh_crt, privatekey_path=fresh_key, **common),
        dict(name='expired', path=exp_crt, privatekey_path=exp_key, reload_command=['true'],
             endpoint=dict(host='127.0.0.1', port=stuck.port), **common),
        dict(name='nomatch', path=odd_crt, privatekey_path=odd_key, **common),
        dict(name='garbage', path=str(garbage), privatekey_path=str(live / 'garbage.key'), **common),
    ]
    extravars = dict(certificates_list=items, certificates_report_path=str(report),
                     certificates_probe_retries=3, certificates_probe_delay=1, certificates_ca_bundle=ca_cert)
    run = run_playbook(PLAYBOOK, extravars=extravars)

    assert run.rc != 0, 'the play must fail when a renewal is rolled back or a file is garbage'
    final = run.result('Fail with the reason of every certificate that could not be renewed')['msg']
    # Garbage: a clear error naming the file; nothing written next to it.
    assert str(garbage) in final and 'neither a PEM nor a DER certificate' in final
    assert sorted(p.name for p in live.iterdir() if p.name.startswith('garbage')) == ['garbage.crt']

    # Due: renewed on disk, served after the reload, previous pair kept, key mode preserved.
    new_due = load(due_crt)
    assert new_due.serial_number != due_old.serial_number
    assert new_due.subject == due_old.subject
    assert good.served('due.test').serial_number == new_due.serial_number
    assert oct(os.stat(due_key).st_mode & 0o777) == '0o640'
    kept = sorted(p.name for p in live.iterdir() if p.name.startswith('due.') and p.name.endswith('.bak'))
    assert len(kept) == 2
    assert read(str(live / [k for k in kept if '.cert.' in k][0])) == cert_pem(due_old)
    assert oct(os.stat(live / [k for k in kept if '.key.' in k][0]).st_mode & 0o777) == '0o600'

    # Fresh: untouched, not even a backup.
    assert (read(fresh_crt), read(fresh_key)) == fresh_before
    assert not [p for p in live.iterdir() if p.name.startswith('fresh.') and p.name.endswith('.bak')]

    # Expired behind a service that never reloads: renewed, probe failed, rolled back, old still served.
    assert (read(exp_crt), read(exp_key)) == exp_before
    assert stuck.served().serial_number == exp_old.serial_number
    assert 'expired: expired:' not in final and 'expired: 127.0.0.1:%d serves' % stuck.port in final
    assert 'expired:' in final and 'instead of the new serial' in final and 'rolled back to serial %s' % serial_hex(
        exp_old) in final and 'the endpoint serves it again' in final
    rejected = [p for p in live.iterdir() if p.name.startswith('expired.') and p.name.endswith('.rejected')]
    assert len(rejected) == 2

    # The JSON report: every readable certificate with days remaining, the key mismatch, the error.
    data = json.loads(report.read_text())
    by_source = {c['source']: c for c in data['inventory']}
    assert by_source[due_crt]['days_remaining'] < 6 and by_source[fresh_crt]['days_remaining'] > 199
    assert by_source[exp_crt]['expired'] is True and by_source[exp_crt]['chain_valid'] is False
    assert by_source[odd_crt]['key_matches'] is False and by_source[fresh_crt]['key_matches'] is True
    assert [e['source'] for e in data['inventory_errors']] == [str(garbage)]
    outcomes = {o['name']: o for o in data['outcomes']}
    assert outcomes['due']['renewed'] and outcomes['due']['served'] == serial_hex(new_due)
    assert not outcomes['fresh']['renewed']
    assert outcomes['expired']['rolled_back'] is True
    assert 'UNREADABLE' in run.stdout and 'BAD' in run.stdout        # the table shows both problems

    # Second run over the healthy ones: nothing due, nothing changed, the play passes.
    again = run_playbook(PLAYBOOK, extravars=dict(extravars, certificates_list=items[:2]))
    assert again.rc == 0
    results = renew_results(again)
    assert len(results) == 2 and not any(r.get('changed') for r in results)
    assert load(due_crt).serial_number == new_due.serial_number
    assert good.served('due.test').serial_number == new_due.serial_number


def test_failed_reload_command_rolls_back(tmp_path, servers):
    """The reload itself fails (config test refuses, service down): roll back, fail with the reason."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    crt, key, old = ca.write_leaf(tmp_path, 'svc.test', days_left=3, lifetime=90)
    before = (read(crt), read(key))
    server = servers(tmp_path, crt, key)
    items = [dict(name='svc', path=crt, privatekey_path=key, ca_cert=ca_cert, ca_key=ca_key, key_type='ec',
                  reload_command=['sh', '-c', 'echo "nginx: configuration test failed" >&2; exit 1'],
                  endpoint=dict(host='127.0.0.1', port=server.port))]
    run = run_playbook(PLAYBOOK, extravars=dict(certificates_list=items, certificates_probe_retries=2))
    assert run.rc != 0
    final = run.result('Fail with the reason of every certificate that could not be renewed')['msg']
    # The command, its exit code and its stderr; the item named once.
    assert "reload command sh -c 'echo \"nginx: configuration test failed\" >&2; exit 1' exited with 1: " \
        "nginx: configuration test failed" in final, final
    assert 'non-zero return code' not in final and final.startswith('svc: reload command') and 'svc: svc:' not in final
    assert 'rolled back to serial %s' % serial_hex(old) in final
    assert (read(crt), read(key)) == before
    assert server.served().serial_number == old.serial_number


def test_check_mode_changes_nothing_and_diff_shows_serials(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    crt, key, old = ca.write_leaf(tmp_path, 'check.test', days_left=5, lifetime=90)
    before = sorted(os.listdir(tmp_path))
    items = [dict(name='check', path=crt, privatekey_path=key, ca_cert=ca_cert, ca_key=ca_key,
                  reload_command=['false'], endpoint=dict(host='127.0.0.1', port=free_port()))]
    run = run_playbook(PLAYBOOK, extravars=dict(certificates_list=items), check=True, diff=True)
    assert run.rc == 0
    result = run.result('Renew when due - check')
    assert result['changed'] and result['previous']['serial'] == serial_hex(old)
    assert 'serial: %s' % serial_hex(old) in result['diff']['before']
    assert 'serial: (new random serial)' in result['diff']['after']
    assert sorted(os.listdir(tmp_path)) == before and load(crt).serial_number == old.serial_number


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to hand a directory to another user')
def test_user_owned_directory_needs_owner_through_the_role(tmp_path):
    """The role passes each item's owner: refused without it (nothing written), renewed for that user with it."""
    import pwd
    nobody = pwd.getpwnam('nobody')
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    svc = tmp_path / 'svc'
    svc.mkdir()
    crt, key, old = ca.write_leaf(svc, 'svc.test', days_left=2)
    for path in (svc, crt, key):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    item = dict(name='svc', path=crt, privatekey_path=key, ca_cert=ca_cert, ca_key=ca_key, key_type='ec')
    refused = run_playbook(PLAYBOOK, extravars=dict(certificates_list=[item]))
    final = refused.result('Fail with the reason of every certificate that could not be renewed')['msg']
    assert refused.rc != 0 and 'Refusing to write into %s as root' % svc in final and 'nothing was swapped' in final
    assert sorted(p.name for p in svc.iterdir()) == ['svc.test.crt', 'svc.test.key']
    renewed = run_playbook(PLAYBOOK, extravars=dict(certificates_list=[dict(item, owner='nobody')]))
    assert renewed.rc == 0
    assert load(crt).serial_number != old.serial_number
    for path in [crt, key] + [str(p) for p in svc.iterdir()]:
        assert os.lstat(path).st_uid == nobody.pw_uid, path
    assert oct(os.stat(key).st_mode & 0o777) == '0o600'


def test_cert_info_files_der_bundle_and_sni_endpoint(tmp_path, servers):
    ca = CA()
    ca_cert, _ca_key_path = ca.write(tmp_path)
    a_crt, a_key, a = ca.write_leaf(tmp_path, 'a.test', days_left=60, lifetime=90)
    b_crt, b_key, b = ca.write_leaf(tmp_path, 'b.test', days_left=10, lifetime=90)
    der = tmp_path / 'a.der'
    der.write_bytes(a.public_bytes(serialization.Encoding.DER))
    chain = tmp_path / 'fullchain.pem'
    chain.write_bytes(cert_pem(b) + cert_pem(ca.cert))
    server = servers(tmp_path, a_crt, a_key, sni=['b.test', b_crt, b_key])
    playbook = write_playbook(tmp_path, [{
        'name': 'inventory', 'register': 'inv',
        'opsready.operations.cert_info': {
            'paths': [str(der), str(chain)], 'ca_bundle': ca_cert,
            'endpoints': [{'host': '127.0.0.1', 'port': server.port},
                          {'host': '127.0.0.1', 'port': server.port, 'server_name': 'b.test'}]}}])
    run = run_playbook(playbook)
    assert run.rc == 0
    certs = run.result('inventory')['certificates']
    assert [(c['source'], c['format'], c['index']) for c in certs[:3]] == [
        (str(der), 'der', 0), (str(chain), 'pem', 0), (str(chain), 'pem', 1)]
    assert certs[0]['serial'] == serial_hex(a) and certs[0]['chain_valid'] is True
    assert certs[1]['serial'] == serial_hex(b) and certs[2]['self_signed'] is True
    assert certs[3]['serial'] == serial_hex(a) and certs[4]['serial'] == serial_hex(b)
    assert certs[4]['server_name'] == 'b.test' and 9 < certs[4]['days_remaining'] <= 10
    assert run.result('inventory')['changed'] is False

    garbage = tmp_path / 'junk.pem'
    garbage.write_bytes(b'\x00\x01junk')
    playbook = write_playbook(tmp_path, [{'name': 'inventory', 'opsready.operations.cert_info': {
        'paths': [str(garbage)]}}])
    run = run_playbook(playbook)
    assert run.rc != 0 and str(garbage) in run.result('inventory')['msg']
