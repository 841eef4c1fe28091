"""What detects a damaged encrypted artifact now that an encrypted zstd stream carries zstd's content checksum
instead of a sealed SHA-256 of the compressed stream (issue 22; docs/encryption.md "Checks of an encrypted
artifact"): a truncated or altered file, a wrong key, and a bug in the writer that hands the encrypter something
else than the compressor wrote. Each is refused by restore, by the verify/drill read and by the file restore."""

from __future__ import annotations

import os
import random

import pytest
import zstandard

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    ArtifactWriter, drain, open_decompressed)
from ansible_collections.opsready.operations.plugins.module_utils.files import archive
from ansible_collections.opsready.operations.plugins.module_utils.files.extract import restore_archive


@pytest.fixture(scope='module')
def keys():
    secret = encryption.generate_identity()
    identities = encryption.parse_identities(secret)
    return identities, identities[0].recipient


def payload():
    rng = random.Random(5)
    # random bytes: zstd stores them as raw blocks, where only the content checksum tells a changed byte
    return rng.randbytes(600_000) + b'log line 42\n' * 50_000


def write(path, recipient, data):
    with ArtifactWriter(path, compression='zstd', threads=2, recipients=[recipient]) as writer:
        for start in range(0, len(data), 100_000):
            writer.write(data[start:start + 100_000])
        return writer.commit()


def read_back(path, stored, identities):
    with open_decompressed(path, 'zstd', stored['encryption'], identities) as stream:
        data = stream.read()
        drain(stream)
    return data


def test_an_encrypted_zstd_stream_carries_the_content_checksum_instead_of_a_sealed_sha256(tmp_path, keys):
    identities, recipient = keys
    path = str(tmp_path / 'a.zst.age')
    data = payload()
    stored = write(path, recipient, data)
    assert 'plaintext_sha256_sealed' not in stored['encryption']
    with open(path, 'rb') as handle:
        compressed = encryption.DecryptingReader(handle, identities, path).read()
    assert zstandard.get_frame_parameters(compressed).has_checksum
    assert len(compressed) == stored['encryption']['plaintext_size']
    assert read_back(path, stored, identities) == data


class _FaultyAead:
    """The encrypter's buffering gone wrong: what is sealed differs from what the compressor handed over."""

    def __init__(self, real, how):
        self.real, self.how, self.calls = real, how, 0

    def encrypt(self, nonce, data, aad):
        self.calls += 1
        last = nonce[-1] == 1
        data = bytes(data)
        if self.how == 'flip' and self.calls == 3:
            data = data[:1000] + bytes([data[1000] ^ 0x20]) + data[1001:]
        elif self.how == 'drop' and self.calls == 3:
            data = data[:-100]
        elif self.how == 'repeat' and self.calls == 3:
            self.real.encrypt(nonce, data, aad)
            data = data + data[:100]
        elif self.how == 'tail' and last:
            data = data[:-4]  # the frame's checksum never sealed: the last bytes are lost
        return self.real.encrypt(nonce, data, aad)


@pytest.mark.parametrize('how', ['flip', 'drop', 'repeat', 'tail'])
def test_a_writer_that_corrupts_the_stream_before_sealing_is_caught(tmp_path, keys, monkeypatch, how):
    identities, recipient = keys
    real_init = encryption.EncryptingWriter.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self._aead = _FaultyAead(self._aead, how)
        self._into = None   # seal through the faulty wrapper, not the real encrypt_into

    monkeypatch.setattr(encryption.EncryptingWriter, '__init__', init)
    path = str(tmp_path / 'a.zst.age')
    try:
        stored = write(path, recipient, payload())
    except ValueError:
        # the writer seals middle chunks into fixed-size slots: a sealed chunk of another length fails the
        # write itself (nothing is committed), earlier than any reader could notice
        assert how in ('drop', 'repeat')
        assert not os.path.exists(path)
        return
    finally:
        monkeypatch.undo()
    # every chunk authenticates (the AEAD sealed what it was given) and the stored SHA-256 matches the file
    with pytest.raises((IntegrityError, zstandard.ZstdError)):
        read_back(path, stored, identities)
    name = os.path.basename(path)
    manifest = Manifest(dict(stored, engine='files', kind='files', database='x', artifact=name, id=name,
                             started='2026-01-01T00:00:00Z', finished='2026-01-01T00:00:01Z'), str(tmp_path))
    with pytest.raises(IntegrityError):
        with open_artifact(manifest, identities, verify=True) as stream:  # backup_verify deep, restores
            stream.read()


@pytest.mark.parametrize('how', ['truncated', 'altered', 'wrong_key'])
def test_a_damaged_file_or_a_wrong_key_is_caught(tmp_path, keys, how):
    identities, recipient = keys
    path = str(tmp_path / 'a.zst.age')
    stored = write(path, recipient, payload())
    blob = bytearray(open(path, 'rb').read())
    if how == 'truncated':
        del blob[-70_000:]
    elif how == 'altered':
        blob[len(blob) // 2] ^= 1
    else:
        identities = encryption.parse_identities(encryption.generate_identity())
    with open(path, 'wb') as handle:
        handle.write(bytes(blob))
    expected = {'truncated': 'fails authentication', 'altered': 'fails authentication',
                'wrong_key': 'cannot be decrypted with the identity given'}[how]
    with pytest.raises(OpsReadyError, match=expected):
        read_back(path, stored, identities)


@pytest.mark.parametrize('how', ['flip', 'tail'])
def test_file_restore_refuses_an_archive_the_writer_corrupted(tmp_path, keys, monkeypatch, how):
    identities, recipient = keys
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'blob.bin').write_bytes(payload())
    dest = tmp_path / 'backups'
    archive.prepare_dest(str(dest), False)
    real_init = encryption.EncryptingWriter.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self._aead = _FaultyAead(self._aead, how)
        self._into = None   # seal through the faulty wrapper, not the real encrypt_into

    monkeypatch.setattr(encryption.EncryptingWriter, '__init__', init)
    written = archive.create_archive([str(tree)], str(dest), 'set', recipients=[recipient], threads=2)
    monkeypatch.undo()
    from ansible_collections.opsready.operations.plugins.module_utils.files.extract import find_archive
    target = tmp_path / 'restored'
    with pytest.raises(IntegrityError, match=os.path.basename(written['path'])):
        restore_archive(find_archive(str(dest), 'set'), str(target), identities=identities)
    assert not (target / str(tree).lstrip('/')).exists()
