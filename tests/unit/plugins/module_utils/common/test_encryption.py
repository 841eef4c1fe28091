"""age encryption: our files open with Debian's age and pyrage, theirs open with ours; tampering fails."""

import hashlib
import io
import os
import subprocess

import pyrage
import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    ArtifactWriter, drain, open_decompressed, sha256_file)

AGE = '/usr/bin/age'
SIZES = [0, 1, 1000, 65535, 65536, 65537, 3 * 65536, 3 * 65536 + 7, 1024 * 1024 + 3]


class Sink:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data
        return len(data)


def encrypt(data, recipients, pieces=7777):
    sink = Sink()
    writer = encryption.EncryptingWriter(sink, recipients)
    for start in range(0, len(data), pieces):
        writer.write(data[start:start + pieces])
    writer.close()
    return bytes(sink.data), writer


def decrypt(blob, identities, **kwargs):
    reader = encryption.DecryptingReader(io.BytesIO(blob), identities, 'test.age', **kwargs)
    out = bytearray()
    while True:
        chunk = reader.read(10000)
        if not chunk:
            return bytes(out)
        out += chunk


@pytest.fixture(scope='module')
def keypair():
    secret = encryption.generate_identity()
    identity = encryption.parse_identities(secret)[0]
    return secret, identity.recipient


def test_bech32_roundtrip_matches_pyrage(keypair):
    secret, recipient = keypair
    assert str(pyrage.x25519.Identity.from_str(secret).to_public()) == recipient
    theirs = pyrage.x25519.Identity.generate()
    assert encryption.parse_identities(str(theirs))[0].recipient == str(theirs.to_public())


@pytest.mark.parametrize('size', SIZES)
def test_roundtrip_and_pyrage_interop(keypair, size):
    secret, recipient = keypair
    data = os.urandom(size)
    blob, writer = encrypt(data, [recipient])
    identities = encryption.parse_identities(secret)
    assert decrypt(blob, identities) == data
    assert pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(secret)]) == data
    theirs = pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(recipient)])
    assert decrypt(theirs, identities) == data
    assert writer.plaintext.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize('pieces', [[1], [65535, 1, 65536], [65536, 65536], [65537], [200_000, 3], [131591] * 5,
                                    [0, 65536 * 3, 0, 7], [10, 65530, 65536 * 2 - 4, 65536 * 2]])
def test_any_split_of_the_writes_gives_the_same_chunks(keypair, pieces):
    """The writer seals whole chunks straight from the caller's buffer and copies only the head that completes a
    held chunk: however the stream is cut into writes, the file has the chunks of one write (and pyrage reads it)."""
    secret, recipient = keypair
    data = os.urandom(sum(pieces))
    split, dummy = encrypt_pieces(data, [recipient], pieces)
    whole, dummy = encrypt_pieces(data, [recipient], [len(data)])
    assert len(split) == len(whole)
    assert pyrage.decrypt(split, [pyrage.x25519.Identity.from_str(secret)]) == data
    assert decrypt(split, encryption.parse_identities(secret)) == data


def encrypt_pieces(data, recipients, pieces):
    sink = Sink()
    writer = encryption.EncryptingWriter(sink, recipients)
    offset = 0
    for piece in pieces:
        writer.write(memoryview(data)[offset:offset + piece] if piece % 2 else data[offset:offset + piece])
        offset += piece
    writer.close()
    return bytes(sink.data), writer


@pytest.mark.parametrize('size', [0, 65536, 200000])
def test_debian_age_cli_interop(tmp_path, keypair, size):
    secret, recipient = keypair
    key = tmp_path / 'key.txt'
    key.write_text('# created: test\n# public key: %s\n%s\n' % (recipient, secret))
    key.chmod(0o600)
    data = os.urandom(size)
    blob, dummy = encrypt(data, [recipient])
    (tmp_path / 'ours.age').write_bytes(blob)
    out = subprocess.run([AGE, '-d', '-i', str(key), str(tmp_path / 'ours.age')], capture_output=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == data
    (tmp_path / 'plain').write_bytes(data)
    subprocess.run([AGE, '-r', recipient, '-o', str(tmp_path / 'theirs.age'), str(tmp_path / 'plain')], check=True)
    identities = encryption.load_identities(identity_file=str(key))
    assert decrypt((tmp_path / 'theirs.age').read_bytes(), identities) == data


def test_two_recipients_either_key_decrypts():
    first, second = encryption.generate_identity(), encryption.generate_identity()
    recipients = [encryption.parse_identities(k)[0].recipient for k in (first, second)]
    blob, dummy = encrypt(b'x' * 100000, recipients)
    for key in (first, second):
        assert decrypt(blob, encryption.parse_identities(key)) == b'x' * 100000


def test_wrong_key_is_clear_and_names_the_artifact(keypair):
    dummy_secret, recipient = keypair
    blob, dummy = encrypt(b'secret rows', [recipient])
    other = encryption.parse_identities(encryption.generate_identity())
    with pytest.raises(OpsReadyError, match=r'test\.age cannot be decrypted with the identity given') as info:
        decrypt(blob, other, recipients=[recipient])
    assert recipient in info.value.message
    with pytest.raises(OpsReadyError, match='give identity or identity_file'):
        decrypt(blob, [])


TAMPERED = {
    'payload': r'fails authentication at chunk 0 ',
    'last': r'fails authentication at chunk 3 ',
    'header_mac': r'the age header fails its MAC',
    'header_line': r'the age header fails its MAC',
    'truncate_chunk': r'fails authentication at chunk 2 .*without a final chunk: truncated',
    'truncate_tail': r'fails authentication at chunk 3 ',
}


@pytest.mark.parametrize('where', sorted(TAMPERED))
def test_tampering_fails_authentication_naming_what_failed(keypair, where):
    secret, recipient = keypair
    blob = bytearray(encrypt(os.urandom(200000), [recipient])[0])
    header_end = blob.index(b'\n---') + 1
    if where == 'payload':
        blob[header_end + 200] ^= 1
    elif where == 'last':
        blob[-3] ^= 1
    elif where == 'header_mac':
        mac = header_end + 4 + 20  # a middle character of the MAC: still canonical base64, another value
        blob[mac] = ord('A') if blob[mac] != ord('A') else ord('B')
    elif where == 'header_line':
        # a grease stanza added by someone else: the header no longer matches its MAC
        blob[header_end:header_end] = b'-> extra-grease x\n\n'
    elif where == 'truncate_chunk':
        del blob[-(200000 - 3 * 65536 + 16):]  # drop the whole last chunk: chunk 2 is not marked last
    else:
        del blob[-5:]
    with pytest.raises(IntegrityError, match=TAMPERED[where]):
        decrypt(bytes(blob), encryption.parse_identities(secret))


def test_bad_keys_are_rejected_without_echoing_secrets(keypair):
    secret, dummy = keypair
    with pytest.raises(OpsReadyError, match='not a public key'):
        encryption.parse_recipient(secret)
    with pytest.raises(OpsReadyError, match='not an age X25519 public key'):
        encryption.parse_recipient('age1notakey')
    mangled = secret[:-3] + 'QQQ'
    with pytest.raises(OpsReadyError) as info:
        encryption.parse_identities(mangled)
    assert mangled not in info.value.message and 'line 1' in info.value.message


@pytest.mark.parametrize('compression', ['zstd', 'gzip', 'none'])
def test_artifact_writer_encrypts_in_one_pass(tmp_path, keypair, compression):
    secret, recipient = keypair
    data = os.urandom(300000) + b'a' * 2000000
    path = str(tmp_path / ('artifact.bin' + encryption.SUFFIX))
    with ArtifactWriter(path, compression=compression, recipients=[recipient]) as writer:
        for start in range(0, len(data), 100000):
            writer.write(data[start:start + 100000])
        stored = writer.commit()
    assert stored['sha256'] == sha256_file(path) and stored['size'] == os.path.getsize(path)
    info = stored['encryption']
    assert info['format'] == 'age' and info['recipients'] == [recipient]
    assert secret not in repr(stored)
    identities = encryption.parse_identities(secret)
    decrypted = decrypt(open(path, 'rb').read(), identities)  # what `age -d` prints
    if compression == 'zstd':  # the frame's content checksum instead (test_encrypted_stream_checks.py)
        assert 'plaintext_sha256_sealed' not in info
    else:
        assert encryption.open_sealed(info['plaintext_sha256_sealed'], identities, 'x') == \
            hashlib.sha256(decrypted).hexdigest()
    assert info['plaintext_size'] == len(decrypted)
    with open_decompressed(path, compression, info, identities) as stream:
        assert stream.read() == data
        drain(stream)


def test_plaintext_checksum_mismatch_is_caught(tmp_path, keypair):
    secret, recipient = keypair
    path = str(tmp_path / 'a.age')
    with ArtifactWriter(path, compression='none', recipients=[recipient]) as writer:
        writer.write(b'hello' * 1000)
        stored = writer.commit()
    info = dict(stored['encryption'], plaintext_sha256_sealed=encryption.seal_text('0' * 64, [recipient]))
    with pytest.raises(IntegrityError, match='plaintext checksum'):
        with open_decompressed(path, 'none', info, encryption.parse_identities(secret)) as stream:
            drain(stream)


def test_bad_recipient_fails_before_any_file(tmp_path):
    path = str(tmp_path / 'a.zst.age')
    with pytest.raises(OpsReadyError):
        ArtifactWriter(path, recipients=['age1bogus'])
    assert os.listdir(str(tmp_path)) == []


def test_recipients_option_normalises_and_refuses_half_set_options():
    recipient = encryption.parse_identities(encryption.generate_identity())[0].recipient
    assert encryption.recipients_option(True, [recipient], 'the backup') == [recipient]
    for shouted in (recipient.upper(), '  ' + recipient + ' '):  # age refuses both (round 9): so do we
        with pytest.raises(OpsReadyError):
            encryption.recipients_option(True, [shouted], 'the backup')
    assert encryption.recipients_option(False, None, 'the backup') == []
    with pytest.raises(OpsReadyError, match='encrypt is false: set encrypt=true to encrypt archives'):
        encryption.recipients_option(False, [recipient], 'archives')
    with pytest.raises(OpsReadyError):
        encryption.recipients_option(True, ['age1notarecipient'], 'the backup')
    with pytest.raises(OpsReadyError, match='recipients is empty'):  # never a silent plaintext backup
        encryption.recipients_option(True, [], 'the backup')


@pytest.mark.parametrize('pieces', [[65536], [1024 * 1024], [1, 65535, 65536, 65537, 200000, 3]],
                         ids=['chunk', '1MiB', 'mixed'])
def test_writer_seals_from_a_reused_buffer_and_readinto_opens_it(tmp_path, keypair, pieces):
    """EncryptingWriter seals whole chunks straight from the caller's buffer and readinto() decrypts straight into
    one: the writer must not keep the buffer (rekey refills one 1 MiB buffer from the pipe), the sink may keep what
    it was given, and Debian's age must read the result byte for byte."""
    secret, recipient = keypair
    data = os.urandom(3 * 1024 * 1024 + 12345)
    kept = []

    class KeepingSink:
        def write(self, block):
            kept.append(block)  # no copy: the writer must hand over buffers it never touches again
            return len(block)

    writer = encryption.EncryptingWriter(KeepingSink(), [recipient])
    reused = bytearray(max(pieces))
    at = turn = 0
    while at < len(data):
        size = min(pieces[turn % len(pieces)], len(data) - at)
        turn += 1
        reused[:size] = data[at:at + size]
        writer.write(memoryview(reused)[:size])
        reused[:] = b'\x00' * len(reused)  # the caller reuses its buffer at once
        at += size
    writer.close()
    blob = b''.join(bytes(block) for block in kept)
    assert writer.plaintext.hexdigest() == hashlib.sha256(data).hexdigest()
    assert writer.plaintext_size == len(data)
    key = tmp_path / 'key.txt'
    key.write_text('%s\n' % secret)
    key.chmod(0o600)
    (tmp_path / 'ours.age').write_bytes(blob)
    out = subprocess.run([AGE, '-d', '-i', str(key), str(tmp_path / 'ours.age')], capture_output=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == data
    reader = encryption.DecryptingReader(io.BytesIO(blob), encryption.parse_identities(secret), 'test.age',
                                         expected_sha256=hashlib.sha256(data).hexdigest())
    buffer = bytearray(max(pieces) + 1)
    plain = bytearray()
    while True:
        count = reader.readinto(buffer)
        if not count:
            break
        plain += buffer[:count]
    assert bytes(plain) == data


def test_writer_and_readinto_without_the_into_methods(keypair):
    """cryptography < 45 (Debian 12 has 38) has no encrypt_into/decrypt_into: the same bytes come out by the
    bytes-returning calls."""
    secret, recipient = keypair
    data = os.urandom(5 * 65536 + 99)
    sink = Sink()
    writer = encryption.EncryptingWriter(sink, [recipient])
    writer._into = None
    for start in range(0, len(data), 200000):
        writer.write(data[start:start + 200000])
    writer.close()
    blob = bytes(sink.data)
    reader = encryption.DecryptingReader(io.BytesIO(blob), encryption.parse_identities(secret), 'test.age')
    reader._decrypt_into = None
    buffer = bytearray(3 * 65536)
    plain = bytearray()
    while True:
        count = reader.readinto(buffer)
        if not count:
            break
        plain += buffer[:count]
    assert bytes(plain) == data
    assert pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(secret)]) == data


def test_writer_refills_the_buffers_a_sink_hands_back(keypair):
    """A sink with spare(size) gets its own buffers back to be filled again (no new buffer per block); every byte of
    a refilled buffer is overwritten, so nothing of the previous block survives into the file."""
    secret, recipient = keypair
    data = os.urandom(4 * 1024 * 1024 + 5)

    class RecyclingSink:
        def __init__(self):
            self.data, self.free, self.reused, self.seen = bytearray(), [], 0, set()

        def write(self, block):
            self.data += block
            if isinstance(block, bytearray):
                self.seen.add(id(block))
                block[:] = b'\xee' * len(block)  # done with it: poison it before it is refilled
                self.free.append(block)
            return len(block)

        def spare(self, size):
            if self.free and len(self.free[-1]) == size:
                self.reused += 1
                return self.free.pop()
            return None

    sink = RecyclingSink()
    writer = encryption.EncryptingWriter(sink, [recipient])
    for start in range(0, len(data), 1024 * 1024):
        writer.write(memoryview(data)[start:start + 1024 * 1024])
    writer.close()
    assert sink.reused == 2 and len(sink.seen) == 3  # 15 chunks new, 16 new, 16 twice refilled, 1 new
    assert pyrage.decrypt(bytes(sink.data), [pyrage.x25519.Identity.from_str(secret)]) == data
