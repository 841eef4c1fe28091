"""ArtifactWriter with recipients: the age stage runs beside the producer, and its failures still fail the artifact.

Issue 22: the encrypted file backup was 1.13x of ``tar | zstd -T2 | age`` because tar, each file's SHA-256,
feeding zstd, sealing, two more SHA-256 and the write took turns in one thread. The encryption stage now runs in
its own thread behind a bounded queue; these tests hold it to that and to the error handling a second thread
needs (an error there must surface in the caller, and abort must leave nothing behind).
"""

from __future__ import annotations

import os
import threading

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    ArtifactWriter, drain, open_decompressed, sha256_file)


@pytest.fixture(scope='module')
def keypair():
    secret = encryption.generate_identity()
    return secret, encryption.parse_identities(secret)[0].recipient


def _threads():
    return [t for t in threading.enumerate() if t.name == 'opsready-encrypt']


def test_encryption_runs_beside_the_producer(tmp_path, keypair, monkeypatch):
    secret, recipient = keypair
    seen = set()
    original = encryption.EncryptingWriter.write

    def recording(self, data):
        if len(data) > 1000:  # not seal_text's checksum (sealed by commit() for the manifest)
            seen.add(threading.get_ident())
        return original(self, data)

    monkeypatch.setattr(encryption.EncryptingWriter, 'write', recording)
    data = os.urandom(3 * 1024 * 1024)
    path = str(tmp_path / 'a.zst.age')
    with ArtifactWriter(path, compression='zstd', threads=2, recipients=[recipient]) as writer:
        for start in range(0, len(data), 1 << 20):
            writer.write(data[start:start + (1 << 20)])
        stored = writer.commit()
    assert seen and threading.get_ident() not in seen, 'the age stage ran in the producer thread'
    assert stored['sha256'] == sha256_file(path) and stored['size'] == os.path.getsize(path)
    with open_decompressed(path, 'zstd', stored['encryption'], encryption.parse_identities(secret)) as stream:
        assert stream.read() == data
        drain(stream)
    assert _threads() == []


def test_a_failure_in_the_encryption_thread_fails_the_artifact(tmp_path, keypair):
    unused, recipient = keypair
    path = str(tmp_path / 'a.age')
    with pytest.raises((OSError, ValueError)):
        with ArtifactWriter(path, compression='none', recipients=[recipient]) as writer:
            writer.write(b'x' * 200000)
            writer._handle.close()  # the disk write fails in the encryption thread from now on
            for dummy in range(50):
                writer.write(b'y' * 200000)
            writer.commit()
    assert os.listdir(str(tmp_path)) == []
    assert _threads() == []


def test_abort_stops_the_thread_and_removes_the_partial_file(tmp_path, keypair):
    unused, recipient = keypair
    path = str(tmp_path / 'a.zst.age')
    with pytest.raises(RuntimeError, match='source failed'):
        with ArtifactWriter(path, compression='zstd', recipients=[recipient]) as writer:
            for dummy in range(20):
                writer.write(os.urandom(256 * 1024))
            raise RuntimeError('source failed')
    assert os.listdir(str(tmp_path)) == []
    assert _threads() == []


@pytest.mark.parametrize('recipients', [True, False], ids=['encrypted', 'plain'])
def test_compressed_output_reaches_the_next_stage_in_large_pieces(tmp_path, keypair, monkeypatch, recipients):
    """zstd's output goes on in pieces of up to 1 MiB (CHUNK), not its 128 KiB default: each piece is a Python call
    and, encrypted, a queue handoff with a GIL switch each way between the producer and the age thread."""
    secret, recipient = keypair
    sizes = []
    if recipients:
        original = encryption.EncryptingWriter.write

        def recording(self, data):
            sizes.append(len(data))
            return original(self, data)
        monkeypatch.setattr(encryption.EncryptingWriter, 'write', recording)
    else:
        from ansible_collections.opsready.operations.plugins.module_utils.common import streaming
        original_sink = streaming._HashingSink.write

        def recording_sink(self, data):
            sizes.append(len(data))
            return original_sink(self, data)
        monkeypatch.setattr(streaming._HashingSink, 'write', recording_sink)
    data = os.urandom(8 * 1024 * 1024)  # incompressible: ~8 MiB of output
    path = str(tmp_path / ('a.zst.age' if recipients else 'a.zst'))
    with ArtifactWriter(path, compression='zstd', threads=2, recipients=[recipient] if recipients else None) as writer:
        for start in range(0, len(data), 1 << 20):
            writer.write(data[start:start + (1 << 20)])
        stored = writer.commit()
    big = [size for size in sizes if size > 1000]
    assert sum(big) >= len(data)
    assert len(big) <= 12, 'zstd output handed on in %d pieces (sizes %s)' % (len(big), sorted(set(big)))
    assert stored['sha256'] == sha256_file(path)
    with open_decompressed(path, 'zstd', stored.get('encryption'),
                           encryption.parse_identities(secret) if recipients else None) as stream:
        assert stream.read() == data
