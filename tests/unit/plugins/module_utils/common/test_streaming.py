"""ArtifactWriter: one pass, bounded memory, atomic; what it records must match the bytes on disk."""

import gzip
import hashlib
import os
import threading
import time

import pytest
import zstandard

from ansible_collections.opsready.operations.plugins.module_utils.common import streaming
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    ArtifactWriter, open_decompressed, verify_file)


@pytest.mark.parametrize('compression', ['zstd', 'gzip', 'none'])
def test_roundtrip_and_checksum_of_stored_bytes(tmp_path, compression):
    payload = os.urandom(3 * 1024 * 1024) + b'text ' * 200000
    path = str(tmp_path / 'a.bin')
    with ArtifactWriter(path, compression=compression, threads=2, hash_plain=True) as writer:
        for start in range(0, len(payload), 65536):
            writer.write(payload[start:start + 65536])
        info = writer.commit()
    assert not os.path.exists(path + '.partial')
    stored = open(path, 'rb').read()
    assert info['sha256'] == hashlib.sha256(stored).hexdigest()
    assert info['plain_sha256'] == hashlib.sha256(payload).hexdigest()
    assert info['size'] == len(stored) and info['raw_size'] == len(payload)
    with open_decompressed(path, compression) as stream:
        assert stream.read() == payload
    # standard tools read the format we write
    if compression == 'zstd':
        assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == payload
    elif compression == 'gzip':
        assert gzip.decompress(stored) == payload
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_exception_inside_with_removes_partial(tmp_path):
    path = str(tmp_path / 'b.zst')
    with pytest.raises(RuntimeError):
        with ArtifactWriter(path) as writer:
            writer.write(b'x' * 1000)
            raise RuntimeError('source died')
    assert os.listdir(tmp_path) == []


def test_stale_partial_is_replaced(tmp_path):
    path = str(tmp_path / 'c.zst')
    open(path + '.partial', 'wb').write(b'old junk')
    with ArtifactWriter(path) as writer:
        writer.write(b'new')
        writer.commit()
    assert sorted(os.listdir(tmp_path)) == ['c.zst']


def test_unknown_compression_is_a_clear_error(tmp_path):
    with pytest.raises(OpsReadyError, match='Unknown compression'):
        ArtifactWriter(str(tmp_path / 'd'), compression='lz4')
    assert os.listdir(tmp_path) == []


def test_verify_file_catches_flip_and_truncation(tmp_path):
    path = str(tmp_path / 'e.zst')
    with ArtifactWriter(path) as writer:
        writer.write(os.urandom(100000))
        info = writer.commit()
    verify_file(path, info['sha256'], info['size'])
    data = bytearray(open(path, 'rb').read())
    data[500] ^= 0x10
    open(path, 'wb').write(bytes(data))
    with pytest.raises(IntegrityError, match='fails its checksum'):
        verify_file(path, info['sha256'], info['size'])
    open(path, 'wb').write(bytes(data[:-10]))
    with pytest.raises(IntegrityError, match='truncated'):
        verify_file(path, info['sha256'], info['size'])
    os.unlink(path)
    with pytest.raises(IntegrityError, match='missing'):
        verify_file(path, info['sha256'], info['size'])


def test_large_artifact_is_synced_while_written_and_the_sync_thread_ends(tmp_path, monkeypatch):
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(streaming, 'SYNC_EVERY', 1024 * 1024)
    monkeypatch.setattr(streaming.os, 'fdatasync', lambda fd: (synced.append(fd), real(fd)))
    data = os.urandom(5 * 1024 * 1024)
    path = tmp_path / 'big.bin'
    writer = streaming.ArtifactWriter(str(path), compression='none')
    for start in range(0, len(data), 256 * 1024):
        writer.write(data[start:start + 256 * 1024])
    # the sync thread runs when it gets a CPU: on a loaded machine commit() could stop it before its first turn
    # (the final fsync covers that case); give it that turn, bounded
    deadline = time.monotonic() + 10
    while not synced and time.monotonic() < deadline:
        time.sleep(0.01)
    result = writer.commit()
    assert synced, 'no background fdatasync while a 5 MB artifact was written with SYNC_EVERY=1 MB'
    assert not [t for t in threading.enumerate() if t.name == 'opsready-sync'], 'the sync thread outlived commit'
    assert path.read_bytes() == data and result['sha256'] == hashlib.sha256(data).hexdigest()


def test_aborted_large_artifact_stops_the_sync_thread_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, 'SYNC_EVERY', 1024 * 1024)
    path = tmp_path / 'big.bin'
    writer = streaming.ArtifactWriter(str(path), compression='zstd')
    writer.write(os.urandom(3 * 1024 * 1024))
    writer.abort()
    assert not [t for t in threading.enumerate() if t.name == 'opsready-sync']
    assert list(tmp_path.iterdir()) == []


def test_the_sync_cadence_is_the_writers_own(tmp_path, monkeypatch):
    """``sync_every`` sets one writer's background write-back cadence (file_backup's 16 MB: a shorter final fsync);
    a writer without it, and backup_rekey's writer, keep the shared SYNC_EVERY (64 MB)."""
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(streaming.os, 'fdatasync', lambda fd: (synced.append(fd), real(fd)))
    assert streaming.SYNC_EVERY == 64 * 1024 * 1024
    data = os.urandom(5 * 1024 * 1024)

    def write(name, **kwargs):
        synced.clear()
        writer = streaming.ArtifactWriter(str(tmp_path / name), compression='none', **kwargs)
        for start in range(0, len(data), 256 * 1024):
            writer.write(data[start:start + 256 * 1024])
        deadline = time.monotonic() + 10
        while kwargs and not synced and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.commit()
        return list(synced)

    assert write('own.bin', sync_every=1024 * 1024), 'no background fdatasync with sync_every=1 MB'
    assert write('default.bin') == [], 'a 5 MB artifact was synced in the background at the default 64 MB cadence'
    with pytest.raises(ValueError, match='sync_every'):
        streaming.ArtifactWriter(str(tmp_path / 'bad.bin'), compression='none', sync_every=0)
    assert not (tmp_path / 'bad.bin.partial').exists()
