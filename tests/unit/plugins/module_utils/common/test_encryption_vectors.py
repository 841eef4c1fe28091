"""The C2SP CCTV age vectors (tests/data/age-cctv) against common/encryption.py.

Every vector for X25519 identities runs: a ``success`` vector decrypts to the payload whose SHA-256 it
gives, every other one is refused with an OpsReadyError (never another exception), by one ``read()``
and by small reads alike; plaintext released before a payload failure is what the vector says it is.
Armored, scrypt and post-quantum vectors are features the collection does not implement: skipped.
"""

import hashlib
import io
import os
import zlib

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'data', 'age-cctv')
# Any valid identity for the one vector that names none (`empty`): it must be refused all the same.
SPARE_IDENTITY = 'AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0'
SMALL_READS = (1, 7, 4099, 65536, 65537, 3)
# readinto: chunks decrypted straight into the buffer (a whole chunk fits) mixed with pieces that do not fit.
INTO_SIZES = (65536, 7, 3 * 65536 + 5, 65535, 1)
WHOLE = (1024 * 1024,)


def load(name):
    with open(os.path.join(VECTORS, name + '.bin'), 'rb') as handle:
        raw = handle.read()
    head, dummy, body = raw.partition(b'\n\n')
    fields = {}
    for line in head.decode('utf-8').split('\n'):
        key, dummy, value = line.partition(': ')
        fields.setdefault(key, []).append(value)
    if fields.get('compressed') == ['zlib']:
        body = zlib.decompress(body)
    return fields, body


def classify(fields):
    """(identities to use, skip reason or None)."""
    if fields.get('armored'):
        return None, 'ASCII armor is not supported (artifacts are binary age files)'
    x25519 = [i for i in fields.get('identity', []) if i.startswith('AGE-SECRET-KEY-1')]
    if not x25519 and any(i.startswith('AGE-SECRET-KEY-PQ-') for i in fields.get('identity', [])):
        return None, 'post-quantum (mlkem768x25519) identities are not supported'
    if not x25519 and fields.get('passphrase'):
        return None, 'scrypt (passphrase) identities are not supported'
    return x25519 or [SPARE_IDENTITY], None


NAMES = sorted(n[:-len('.bin')] for n in os.listdir(VECTORS) if n.endswith('.bin'))


class Tracked(io.BytesIO):
    """A file whose close() is recorded even after the reader drops it."""


SENTINEL = 0xA5


def run_into(reader, sizes):
    """readinto() with buffers of ``sizes`` in turn: (plaintext released, exception or None). Past the count
    returned, a buffer holds what it held (SENTINEL) or zeros: never plaintext that failed authentication."""
    out = bytearray()
    turn = 0
    while True:
        buffer = bytearray([SENTINEL]) * sizes[turn % len(sizes)]
        turn += 1
        try:
            count = reader.readinto(buffer)
        except OpsReadyError as exc:
            assert set(buffer) <= {SENTINEL, 0}, 'unauthenticated plaintext left in the buffer'
            return bytes(out), exc
        assert set(buffer[count:]) <= {SENTINEL, 0}, 'unauthenticated plaintext left past the count'
        if not count:
            return bytes(out), None
        out += buffer[:count]


def run(body, identities, sizes, into=False):
    """Decrypt; returns (plaintext released, exception or None)."""
    handle = Tracked(body)
    out = bytearray()
    try:
        reader = encryption.DecryptingReader(handle, identities, 'vector.age')
    except OpsReadyError as exc:
        assert handle.closed, 'the file is left open after a refused header'
        return bytes(out), exc
    with reader:
        if into:
            return run_into(reader, sizes)
        turn = 0
        try:
            while True:
                chunk = reader.read(sizes[turn % len(sizes)]) if sizes else reader.read()
                turn += 1
                if not chunk:
                    return bytes(out), None
                out += chunk
                if not sizes:
                    assert reader.read() == b''
                    return bytes(out), None
        except OpsReadyError as exc:
            return bytes(out), exc
    raise AssertionError('unreachable')


def test_every_vector_is_vendored_and_69_run():
    """A fresh clone holds the whole set; the X25519 share of it is the issue's 69."""
    assert len(NAMES) == 143
    run_ = [n for n in NAMES if classify(load(n)[0])[1] is None]
    assert len(run_) == 69


@pytest.mark.parametrize('sizes,into', [(None, False), (SMALL_READS, False), (INTO_SIZES, True), (WHOLE, True)],
                         ids=['read_all', 'small_reads', 'readinto', 'readinto_1MiB'])
@pytest.mark.parametrize('name', NAMES)
def test_cctv_vector(name, sizes, into):
    fields, body = load(name)
    identities, reason = classify(fields)
    if reason:
        pytest.skip(reason)
    parsed = [encryption.parse_identities(i)[0] for i in identities]
    plain, error = run(body, parsed, sizes, into)
    expect = fields['expect'][0]
    payload = fields.get('payload', [None])[0]
    if expect == 'success':
        assert error is None, '%s must decrypt: %s' % (name, error)
        assert hashlib.sha256(plain).hexdigest() == payload
        return
    assert error is not None, '%s (%s) was decrypted and %d bytes returned' % (name, expect, len(plain))
    if expect != 'payload failure' or sizes is None:
        # Nothing is released before a header failure; read() returns all or raises, never a cut stream.
        assert plain == b''
    elif payload is not None:  # small reads get every authenticated byte before the failure
        assert hashlib.sha256(plain).hexdigest() == payload
