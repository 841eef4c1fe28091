"""Encrypted file backups end to end: real playbook runs, Debian's age decrypts our archives,
a wrong or missing key writes nothing, the key never shows in output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402


def make_tree(root: Path) -> Path:
    src = root / 'etc' / 'pki'
    (src / 'private').mkdir(parents=True)
    key = src / 'private' / 'server.key'
    key.write_text('-----BEGIN PRIVATE KEY-----\nMIIEvQ-not-really\n-----END PRIVATE KEY-----\n')
    key.chmod(0o600)
    (src / 'server.crt').write_text('-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n')
    (src / 'blob.bin').write_bytes(os.urandom(500_000))
    return src


@pytest.fixture()
def keys(tmp_path):
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    key_file = tmp_path / 'backup-key.txt'
    key_file.write_text('# public key: %s\n%s\n' % (recipient, secret))
    key_file.chmod(0o600)
    return secret, recipient, key_file


def backup(src, dest, **extra):
    args = {'paths': [str(src)], 'dest': str(dest), 'name': 'pki'}
    args.update(extra)
    return {'name': 'backup', 'opsready.operations.file_backup': args}


def restore(src, dest, **extra):
    args = {'src': str(src), 'dest': str(dest), 'name': 'pki'}
    args.update(extra)
    return {'name': 'restore', 'opsready.operations.file_restore': args}


def test_encrypted_backup_restores_and_debian_age_reads_it(tmp_path, keys):
    secret, recipient, key_file = keys
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    book = write_playbook(tmp_path, [backup(src, dest, encrypt=True, recipients=[recipient]),
                                     restore(dest, target, identity='{{ backup_identity }}')])
    result = run_playbook(book, extravars={'backup_identity': secret}, verbosity=3)
    assert result.rc == 0, result.stdout[-3000:]
    assert secret not in result.stdout and secret[20:40] not in result.stdout
    archive = Path(result.result('backup')['archive'])
    assert archive.name.endswith('.tar.zst.age')
    manifest_text = Path(str(archive) + '.manifest.json').read_text()
    manifest = json.loads(manifest_text)
    assert secret not in manifest_text
    assert manifest['encryption']['format'] == 'age' and manifest['encryption']['recipients'] == [recipient]
    # stored checksum is of the encrypted bytes: verifiable without the key
    assert manifest['sha256'] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert b'PRIVATE KEY' not in archive.read_bytes()
    # Debian's age decrypts it: a zstd frame with its content checksum (`zstd -dc` checks it), of the size the
    # manifest says; no sealed SHA-256 of the compressed stream (docs/encryption.md "Checks of an encrypted artifact")
    plain = subprocess.run(['age', '-d', '-i', str(key_file), str(archive)], capture_output=True, check=True).stdout
    assert 'plaintext_sha256_sealed' not in manifest['encryption']
    assert len(plain) == manifest['encryption']['plaintext_size']
    assert plain[4] & 0x04, 'zstd frame header: content checksum flag'
    listing = subprocess.run('age -d -i %s %s | zstd -dc | tar -tf -' % (key_file, archive), shell=True,
                             capture_output=True, text=True, check=True).stdout
    assert 'etc/pki/private/server.key' in listing
    out = result.result('restore')
    assert out['encrypted'] is True and out['changed'] is True
    restored = target / str(src).lstrip('/')
    assert (restored / 'private' / 'server.key').read_text() == (src / 'private' / 'server.key').read_text()
    assert (restored / 'blob.bin').read_bytes() == (src / 'blob.bin').read_bytes()
    assert oct((restored / 'private' / 'server.key').stat().st_mode & 0o777) == '0o600'
    # identity_file works the same, and a second run changes nothing
    again = run_playbook(write_playbook(tmp_path, [restore(dest, target, identity_file=str(key_file))]))
    assert again.rc == 0 and again.result('restore')['changed'] is False


@pytest.mark.parametrize('how', ['wrong_key', 'missing_key', 'tampered'])
def test_bad_key_or_tampered_archive_writes_nothing(tmp_path, keys, how):
    secret, recipient, dummy = keys
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    made = run_playbook(write_playbook(tmp_path, [backup(src, dest, encrypt=True, recipients=[recipient])]))
    assert made.rc == 0
    archive = Path(made.result('backup')['archive'])
    extra = {'identity': secret}
    if how == 'wrong_key':
        extra = {'identity': encryption.generate_identity()}
    elif how == 'missing_key':
        extra = {}
    else:
        # An attacker who rewrites the archive and its manifest checksum still fails authentication.
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0x40
        archive.write_bytes(bytes(data))
        manifest_path = Path(str(archive) + '.manifest.json')
        manifest = json.loads(manifest_path.read_text())
        manifest['sha256'] = hashlib.sha256(bytes(data)).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [restore(dest, target, **extra)]))
    assert result.rc != 0
    msg = result.result('restore')['msg']
    assert archive.name in msg, msg
    expected = {'wrong_key': 'cannot be decrypted with the identity given',
                'missing_key': 'give identity or identity_file',
                'tampered': 'fails authentication'}[how]
    assert expected in msg
    assert not target.exists(), 'a failed decrypt must not create or write the target'


def test_encryption_options_are_validated_and_change_defeats_skip_unchanged(tmp_path, keys):
    dummy, recipient, dummy_file = keys
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    bad = run_playbook(write_playbook(tmp_path, [backup(src, dest, encrypt=True)]))
    assert bad.rc != 0 and 'recipients' in bad.result('backup')['msg']
    bad = run_playbook(write_playbook(tmp_path, [backup(src, dest, encrypt=True, recipients=['age1nope'])]))
    assert bad.rc != 0 and 'not an age X25519 public key' in bad.result('backup')['msg']
    assert not dest.exists() or not list(dest.iterdir())
    plain = run_playbook(write_playbook(tmp_path, [backup(src, dest, skip_unchanged=True)]))
    assert plain.rc == 0 and plain.result('backup')['changed'] is True
    enc = run_playbook(write_playbook(tmp_path, [backup(src, dest, skip_unchanged=True, encrypt=True,
                                                        recipients=[recipient])]))
    assert enc.rc == 0 and enc.result('backup')['changed'] is True, 'switching on encryption must write a new archive'
    same = run_playbook(write_playbook(tmp_path, [backup(src, dest, skip_unchanged=True, encrypt=True,
                                                         recipients=[recipient])]))
    assert same.rc == 0 and same.result('backup')['changed'] is False
