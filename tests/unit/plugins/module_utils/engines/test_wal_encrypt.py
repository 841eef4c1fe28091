"""The archive_command helper encrypting WAL segments (issue 18): run as PostgreSQL runs it (a subprocess of the
system-independent interpreter), its age output opened by the collection's decoder and by Debian's ``age``."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import verify_path
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (
    wal_archive as pg_wal_archive)

SEG = 16 * 1024 * 1024
HELPER = pg_wal_archive.__file__
NAME = '000000010000000000000007'


class Key:
    def __init__(self, directory, name):
        self.secret = encryption.generate_identity()
        self.identities = encryption.parse_identities(self.secret)
        self.recipient = self.identities[0].recipient
        self.file = directory / ('%s.txt' % name)
        self.file.write_text('# public key: %s\n%s\n' % (self.recipient, self.secret))


@pytest.fixture()
def setup(tmp_path):
    dest = tmp_path / 'catalog'
    dest.mkdir()
    seg = tmp_path / NAME
    # WAL-like: a compressible page stream with random tails, zero padding at the end.
    pages = b''.join(b'\x10\xd1' + os.urandom(64) + bytes([n % 251]) * 8000 for n in range(1024))
    seg.write_bytes(pages[:SEG // 2] + b'\0' * (SEG - min(len(pages), SEG // 2)))
    return dest, seg, Key(tmp_path, 'key'), Key(tmp_path, 'other')


def run(dest, seg, *extra):
    return subprocess.run([sys.executable, HELPER, str(dest), str(seg), seg.name] + list(extra),
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize('compression', ['gzip', 'zstd', 'none'])
def test_encrypted_segment_opens_with_the_identity_and_with_debian_age(setup, compression):
    dest, seg, key, other = setup
    done = run(dest, seg, '--compression', compression, '--recipient', key.recipient, '--recipient', other.recipient)
    assert done.returncode == 0, done.stderr
    (wal,) = Catalog(str(dest), 'postgresql', '@cluster').logs()
    assert wal.path.endswith(NAME + pg_wal_archive.SUFFIX[compression] + '.age'), wal.path
    enc = wal.data['encryption']
    assert enc['format'] == 'age' and enc['recipients'] == [key.recipient, other.recipient]
    assert wal.data['plain_sha256'] == hashlib.sha256(seg.read_bytes()).hexdigest()
    with open(wal.path, 'rb') as handle:
        stored = handle.read()
    assert stored.startswith(b'age-encryption.org/v1\n') and seg.read_bytes()[:4096] not in stored
    # Without a key: the stored checksum; with it: decrypt, authenticate, sealed checksum, WAL digest.
    assert verify_path(str(dest), record=False, checksum_only=True)['failed'] == []
    deep = verify_path(str(dest), record=False, deep=True, identities=key.identities)
    assert deep['failed'] == [], deep
    with open_artifact(wal, other.identities) as source:
        assert source.read() == seg.read_bytes()
    if shutil.which('age'):
        plain = subprocess.run(['age', '-d', '-i', str(key.file), wal.path], capture_output=True, check=True).stdout
        if compression == 'gzip':
            plain = gzip.decompress(plain)
        elif compression == 'zstd':
            import zstandard
            plain = zstandard.ZstdDecompressor().decompress(plain, max_output_size=SEG)
        assert plain == seg.read_bytes()
    # PostgreSQL re-archives after a crash: same bytes succeed without a second artifact; other bytes fail.
    assert run(dest, seg, '--compression', compression, '--recipient', key.recipient).returncode == 0
    assert len(Catalog(str(dest)).entries) == 1
    seg.write_bytes(b'y' * SEG)
    failed = run(dest, seg, '--compression', compression, '--recipient', key.recipient)
    assert failed.returncode != 0 and 'different content' in failed.stderr


def test_wrong_key_and_tampered_segment_fail_naming_the_segment(setup):
    dest, seg, key, other = setup
    rfile = dest.parent / 'recipients.txt'
    rfile.write_text('# the restore key\n%s\n' % key.recipient)
    assert run(dest, seg, '--compression', 'gzip', '--recipients-file', str(rfile)).returncode == 0
    (wal,) = Catalog(str(dest), 'postgresql', '@cluster').logs()
    with pytest.raises(OpsReadyError, match='cannot be decrypted with the identity') as wrong:
        with open_artifact(wal, other.identities) as source:
            source.read()
    assert NAME in wrong.value.message
    # Flip one byte in the payload and fix the stored checksum (whoever can write the catalog can do both).
    data = bytearray(open(wal.path, 'rb').read())
    data[len(data) // 2] ^= 1
    open(wal.path, 'wb').write(bytes(data))
    manifest_path = wal.path + '.manifest.json'
    manifest = json.load(open(manifest_path))
    manifest['sha256'] = hashlib.sha256(bytes(data)).hexdigest()
    open(manifest_path, 'w').write(json.dumps(manifest))
    (wal,) = Catalog(str(dest), 'postgresql', '@cluster').logs()
    with pytest.raises(IntegrityError, match='fails authentication') as tampered:
        with open_artifact(wal, key.identities) as source:
            source.read()
    assert NAME in tampered.value.message


@pytest.mark.parametrize('bad', [
    'AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSMRV0C',  # a private key
    'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8q',  # checksum: last character changed
    'age1',
    'Age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p',  # mixed case
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI',
    'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n#',
])
def test_bad_recipient_refuses_to_archive_in_the_clear(setup, bad):
    dest, seg, _key, _other = setup
    failed = run(dest, seg, '--recipient', bad)
    assert failed.returncode != 0 and 'not archiving' in failed.stderr
    assert os.listdir(dest) == []
    with pytest.raises(OpsReadyError):
        encryption.parse_recipient(bad)


def test_recipient_parsing_agrees_with_the_collection():
    for _n in range(50):
        recipient = encryption.parse_identities(encryption.generate_identity())[0].recipient
        assert pg_wal_archive.parse_recipient(recipient) == encryption.parse_recipient(recipient)
        for shouted in (recipient.upper(), recipient + ' '):  # refused by age, by the collection and here
            with pytest.raises(pg_wal_archive.RecipientError):
                pg_wal_archive.parse_recipient(shouted)
        assert pg_wal_archive._recipient_text(pg_wal_archive.parse_recipient(recipient)) == recipient
    # The age spec's example recipient.
    known = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'
    assert pg_wal_archive.parse_recipient(known) == encryption.parse_recipient(known)


def test_without_cryptography_the_helper_fails_and_leaves_nothing(setup):
    """The key is prepared in a thread: its failure must still fail the segment (never a clear-text artifact)."""
    dest, seg, key, _other = setup
    shim = ('import runpy, sys; sys.modules["cryptography"] = None; sys.argv = sys.argv[1:]; '
            'runpy.run_path(sys.argv[0], run_name="__main__")')
    failed = subprocess.run([sys.executable, '-c', shim, HELPER, str(dest), str(seg), seg.name, '--compression', 'gzip',
                             '--recipient', key.recipient], capture_output=True, text=True, check=False)
    assert failed.returncode != 0 and 'cryptography' in failed.stderr, failed.stderr
    assert os.listdir(dest) == []


def test_encrypting_helper_skips_the_pure_python_layers_of_cryptography(setup):
    """Loading cryptography is the per-segment cost of encryption: with a release whose public classes are its
    binding's (42+), the helper process never imports the cipher registry modules above it."""
    import cryptography
    if int(cryptography.__version__.split('.')[0]) < 42:
        pytest.skip('cryptography %s has no compiled AEAD binding' % cryptography.__version__)
    dest, seg, key, _other = setup
    probe = ('import runpy, sys, atexit; sys.argv = sys.argv[1:]; '
             'atexit.register(lambda: sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")); '
             'runpy.run_path(sys.argv[0], run_name="__main__")')
    done = subprocess.run([sys.executable, '-c', probe, HELPER, str(dest), str(seg), seg.name, '--compression', 'gzip',
                           '--recipient', key.recipient], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    modules = done.stderr.split('MODULES ', 1)[1].split()
    assert 'cryptography.hazmat.bindings._rust' in modules
    assert 'cryptography.hazmat.primitives.ciphers' not in modules and 'cryptography.utils' not in modules
