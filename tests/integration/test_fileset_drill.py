"""File-set drills (issue 18): the dr_drill role (playbooks/dr_drill.yml, real ansible-playbook) drills
file_backup sets of configuration, certificates and keys: restored into a scratch root, every file proved against
the manifest (SHA-256, mode, owner), certificates parsed and matched with their keys, ``haproxy -c`` run on the
restored tree. A set whose configuration fails its check fails the drill with haproxy's output in the report; an
encrypted set drills with the identity. Scratch roots are removed either way."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which('haproxy'), reason='haproxy (bindep.txt [test]) is not installed')

GOOD = """global
    log stdout format raw local0
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend web
    bind 127.0.0.1:18443 ssl crt {pem}
    default_backend app
backend app
    server app1 127.0.0.1:18081
"""


def key_and_cert(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def make_tree(top: Path, config_extra: str = '') -> Path:
    """etc/haproxy (config 0640, certificate bundle key+cert 0600) and etc/ssl (cert 0644, key 0600, a link)."""
    haproxy = top / 'etc' / 'haproxy'
    ssl = top / 'etc' / 'ssl'
    haproxy.mkdir(parents=True)
    ssl.mkdir(parents=True)
    key, cert = key_and_cert('www.example.test')
    pem = haproxy / 'site.pem'
    pem.write_bytes(cert + key)
    pem.chmod(0o600)
    (haproxy / 'haproxy.cfg').write_text(GOOD.format(pem=pem) + config_extra)
    (haproxy / 'haproxy.cfg').chmod(0o640)
    key2, cert2 = key_and_cert('api.example.test')
    (ssl / 'api.crt').write_bytes(cert2)
    (ssl / 'api.key').write_bytes(key2)
    (ssl / 'api.key').chmod(0o600)
    (ssl / 'current.crt').symlink_to('api.crt')
    ssl.chmod(0o750)
    return top / 'etc'


def test_fileset_drill_passes_and_a_failing_check_fails_it(tmp_path):
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    identity = tmp_path / 'key.txt'
    identity.write_text(secret + '\n')
    good = make_tree(tmp_path / 'good')
    bad = make_tree(tmp_path / 'bad', config_extra='    server app2 127.0.0.1:18082 no_such_keyword\n')
    backups = tmp_path / 'backups'
    book = tmp_path / 'backup.yml'
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'good', 'opsready.operations.file_backup': {'paths': [str(good)], 'dest': str(backups),
                                                             'name': 'proxy', 'encrypt': True,
                                                             'recipients': [recipient]}},
        {'name': 'bad', 'opsready.operations.file_backup': {'paths': [str(bad)], 'dest': str(backups),
                                                            'name': 'proxy-bad'}}]}]))
    result = run_playbook(str(book))
    assert result.rc == 0, result.stdout[-3000:]
    manifest = json.loads(next(backups.glob('proxy-2*.manifest.json')).read_text())
    assert 'files' not in manifest and manifest['files_sealed']  # encrypted set: its file hashes are sealed too
    listed = json.loads(next(backups.glob('proxy-bad-*.manifest.json')).read_text())['files']
    assert {r['path'].rsplit('/', 1)[-1]: r['mode'] for r in listed if r['type'] == 'file'}['api.key'] == '0600'

    reports = tmp_path / 'reports'
    scratch = tmp_path / 'scratch'
    sets = [{'name': 'proxy', 'backup_dir': str(backups), 'identity_file': str(identity),
             'check_command': 'haproxy -c -f {root}%s/haproxy/haproxy.cfg' % good},
            {'name': 'proxy-bad', 'backup_dir': str(backups),
             'check_command': ['haproxy', '-c', '-f', '{root}%s/haproxy/haproxy.cfg' % bad]}]
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(reports), 'dr_drill_scratch_dir': str(scratch), 'dr_drill_filesets': sets})
    assert result.rc != 0, 'a failing check command must fail the drill'
    report = json.loads(sorted(reports.glob('drill-*.json'))[-1].read_text())
    entries = {db['name']: db for db in report['databases']}
    proxy = entries['proxy']
    steps = {s['name']: s for s in proxy['steps']}
    assert proxy['passed'], proxy['reasons']
    assert [s['name'] for s in proxy['steps']] == ['find_backup', 'restore', 'integrity', 'smoke', 'cleanup']
    integrity = steps['integrity']['details']
    assert integrity['problem_count'] == 0 and integrity['files'] == 4, integrity
    matched = {c['path'].rsplit('/', 1)[-1]: c.get('matches') for c in integrity['certificates']
               if c['kind'] == 'private key'}
    assert sorted(matched) == ['api.key', 'site.pem'] and all(matched.values()), integrity['certificates']
    assert steps['smoke']['details']['rc'] == 0 and proxy['rto_seconds'] is not None
    bad_entry = entries['proxy-bad']
    assert not bad_entry['passed']
    smoke = {s['name']: s for s in bad_entry['steps']}['smoke']
    assert not smoke['ok'] and 'no_such_keyword' in smoke['error'], smoke
    assert 'no_such_keyword' in smoke['details']['output']
    assert any('no_such_keyword' in reason for reason in report['reasons'])
    assert not scratch.exists() or os.listdir(scratch) == [], os.listdir(scratch)

    # Check mode restores nothing; an empty check command is refused before any work.
    step = {'step': 'fileset', 'backup_dir': str(backups), 'fileset': 'proxy-bad', 'scratch_root': str(scratch / 'x')}
    book = tmp_path / 'check.yml'
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'check mode', 'opsready.operations.drill_step': step, 'check_mode': True},
        {'name': 'empty command', 'ignore_errors': True,
         'opsready.operations.drill_step': dict(step, check_command='')}]}]))
    result = run_playbook(str(book))
    checked = result.result('check mode')
    assert checked['ok'] and checked['changed'] is False and 'check mode' in checked['result'], checked
    assert 'check_command is empty' in result.result('empty command')['msg']
    assert not (scratch / 'x').exists()
