"""The WAL helper's age encryption by each layer of ``cryptography`` it can load (issue 18, the per-segment cost).

PostgreSQL starts the helper once per segment, so what it imports is paid per segment: with Debian 12's
cryptography 38 the public modules load the whole OpenSSL backend (all of x509 with it, ~43 ms of CPU). The
helper takes the cheapest layer the host has: the compiled binding's classes (42+), else the cffi module of
OpenSSL functions (< 42), else the public modules. Every layer is held here to the C2SP CCTV age vectors byte for
byte (same file key and nonce: same header MAC and payload), to RFC 7748's X25519 vector, and to the collection's
decoder; the interpreter the backup role runs by default (/usr/bin/python3) is tested as well as this one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (
    wal_archive as pg_wal_archive)
from tests.unit.plugins.module_utils.common.test_encryption_vectors import NAMES, classify, load

HELPER = pg_wal_archive.__file__
SYSTEM_PYTHON = '/usr/bin/python3'
NAME = '000000010000000000000007'
# RFC 7748, section 6.1.
ALICE = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'
ALICE_PUBLIC = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'
BOB_PUBLIC = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'
SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'

# Run by each interpreter: every loader the host serves encrypts every case with the case's file key and nonce.
LAYER_SCRIPT = r'''
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location('pg_wal_archive', sys.argv[1])
helper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helper)
cases = json.load(open(sys.argv[2]))
report = {}
for loader in helper.LOADERS:
    try:
        layer = loader()
    except (ImportError, AttributeError):
        continue
    name, public, exchange, sealer = layer
    report[name] = {'public': public(bytes.fromhex(cases['alice'])).hex(),
                    'shared': exchange(bytes.fromhex(cases['alice']), bytes.fromhex(cases['bob'])).hex()}
    for case in cases['vectors']:
        plain = open(case['plain'], 'rb').read()
        with open(case['plain'] + '.' + name.replace(' ', '_'), 'wb') as out:
            head = lambda: helper.finish_header([bytes.fromhex(case['stanzas'])], bytes.fromhex(case['file_key']),
                                                bytes.fromhex(case['nonce']), sealer)
            writer = helper._AgeWriter(out, [], prepare=head)
            for start in range(0, len(plain), 100003):  # writes that do not fall on chunk boundaries
                writer.write(plain[start:start + 100003])
            writer.close()
    helper_key = bytes.fromhex(cases['recipient'])
    with open(cases['fresh'] + '.' + name.replace(' ', '_'), 'wb') as out:
        writer = helper._AgeWriter(out, [helper_key, helper_key], prepare=lambda: helper.age_header(
            [helper_key, helper_key], layer))
        writer.write(open(cases['fresh'], 'rb').read())
        writer.close()
print(json.dumps(report))
'''


def success_vectors():
    """(name, raw stanza block, file key, nonce, payload as stored, identities) of the X25519 vectors that decrypt."""
    found = []
    for name in NAMES:
        fields, body = load(name)
        identities, skip = classify(fields)
        if skip or fields['expect'] != ['success']:
            continue
        head, dummy, rest = body.partition(b'\n---')
        mac_line, dummy, rest = rest.partition(b'\n')
        found.append((name, head[len(b'age-encryption.org/v1\n'):], bytes.fromhex(fields['file key'][0]),
                      rest[:16], body, [encryption.parse_identities(i)[0] for i in identities]))
    return found


def interpreters():
    found = [sys.executable]
    if os.path.exists(SYSTEM_PYTHON) and subprocess.run([SYSTEM_PYTHON, '-c', 'import cryptography'],
                                                        capture_output=True, check=False).returncode == 0:
        found.append(SYSTEM_PYTHON)
    return found


@pytest.fixture(scope='module')
def vectors():
    cases = success_vectors()
    assert len(cases) >= 12, [c[0] for c in cases]
    return cases


@pytest.mark.parametrize('python', interpreters())
def test_every_layer_writes_the_age_vectors_byte_for_byte(vectors, python, tmp_path):
    key = encryption.parse_identities(encryption.generate_identity())[0]
    fresh = tmp_path / 'fresh'
    fresh.write_bytes(os.urandom(70000) + b'\0' * 200000)
    cases = {'alice': ALICE, 'bob': BOB_PUBLIC, 'recipient': pg_wal_archive.parse_recipient(key.recipient).hex(),
             'fresh': str(fresh), 'vectors': []}
    for name, stanzas, file_key, nonce, body, identities in vectors:
        plain = tmp_path / name
        with encryption.DecryptingReader(io.BytesIO(body), identities, name) as reader:
            plain.write_bytes(reader.read())
        cases['vectors'].append({'name': name, 'stanzas': stanzas.hex(), 'file_key': file_key.hex(),
                                 'nonce': nonce.hex(), 'plain': str(plain)})
    (tmp_path / 'cases.json').write_text(json.dumps(cases))
    (tmp_path / 'layers.py').write_text(LAYER_SCRIPT)
    done = subprocess.run([python, str(tmp_path / 'layers.py'), HELPER, str(tmp_path / 'cases.json')],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 'public modules' in report and len(report) >= 2, report  # the cheap layer of this release, and the API
    for layer, x25519 in report.items():
        assert x25519 == {'public': ALICE_PUBLIC, 'shared': SHARED}, layer
        for vector in vectors:
            name, body = vector[0], vector[4]
            mine = (tmp_path / (name + '.' + layer.replace(' ', '_'))).read_bytes()
            assert hashlib.sha256(mine).hexdigest() == hashlib.sha256(body).hexdigest(), (layer, name)
        # A fresh file (random key, two stanzas to one recipient) opens with the collection's decoder.
        stored = (tmp_path / ('fresh.' + layer.replace(' ', '_'))).read_bytes()
        with encryption.DecryptingReader(io.BytesIO(stored), [key], 'fresh', recipients=[key.recipient] * 2) as reader:
            assert reader.read() == fresh.read_bytes(), layer


def test_the_system_python_takes_the_cheap_layer_of_its_cryptography(tmp_path):
    """The backup role's archive_command runs /usr/bin/python3: with Debian 12's cryptography 38 the encrypting
    helper never loads the OpenSSL backend (which imports x509, email, typing: ~43 ms of CPU per segment)."""
    if SYSTEM_PYTHON not in interpreters():
        pytest.skip('no %s with cryptography' % SYSTEM_PYTHON)
    dest = tmp_path / 'catalog'
    dest.mkdir()
    seg = tmp_path / NAME
    seg.write_bytes(os.urandom(100000) + b'\0' * (16 * 1024 * 1024 - 100000))
    recipient = encryption.parse_identities(encryption.generate_identity())[0].recipient
    probe = ('import runpy, sys, atexit; sys.argv = sys.argv[1:]; '
             'atexit.register(lambda: sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")); '
             'runpy.run_path(sys.argv[0], run_name="__main__")')
    done = subprocess.run([SYSTEM_PYTHON, '-c', probe, HELPER, str(dest), str(seg), seg.name, '--compression', 'gzip',
                           '--recipient', recipient], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    modules = done.stderr.split('MODULES ', 1)[1].split()
    assert 'cryptography' in modules
    heavy = [m for m in modules if m.startswith(('cryptography.x509', 'cryptography.hazmat.backends',
                                                 'cryptography.hazmat.primitives'))]
    assert heavy == [], heavy
    if 'cryptography.hazmat.bindings._openssl' in modules:  # a release < 42: its Rust module is not needed either
        assert 'cryptography.hazmat.bindings._rust' not in modules
