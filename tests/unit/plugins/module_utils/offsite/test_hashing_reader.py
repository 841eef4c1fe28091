"""The upload reader's SHA-256 computed beside the upload (``background=True``, GCS and Azure): the same digest as
hashing in line, whatever the read sizes; a failed upload leaves no thread behind and no digest claimed."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import BackgroundSha256, HashingReader


@pytest.mark.parametrize('size', [0, 1, 1024 * 1024, 3 * 1024 * 1024 + 17])
@pytest.mark.parametrize('read', [None, 1000, 256 * 1024, 8 * 1024 * 1024])
def test_background_digest_equals_inline(tmp_path, size, read):
    path = tmp_path / 'artifact'
    data = os.urandom(size)
    path.write_bytes(data)
    reader = HashingReader(str(path), background=True)
    got = b''
    while True:
        block = reader.read(read) if read else reader.read()
        if not block:
            break
        got += block
    reader.close()   # the stores close in ``finally`` before they ask for the digest
    assert got == data and reader.size == size
    assert reader.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert reader.sha256.hexdigest() == hashlib.sha256(data).hexdigest()   # asking twice is fine


def test_failed_upload_ends_the_thread(tmp_path):
    path = tmp_path / 'artifact'
    path.write_bytes(os.urandom(3 * 1024 * 1024))
    before = threading.active_count()
    reader = HashingReader(str(path), fail_after=2 * 1024 * 1024, background=True)
    reader.read(1024 * 1024)
    with pytest.raises(OSError, match='simulated connection loss'):
        reader.read(2 * 1024 * 1024)
    reader.close()
    reader.sha256._thread.join(timeout=10)
    assert threading.active_count() == before
    with pytest.raises(ValueError):
        reader.sha256.update(b'more')


def test_many_blocks_keep_their_order():
    digest = BackgroundSha256()
    blocks = [os.urandom(n) for n in range(1, 3000, 7)]
    for block in blocks:
        digest.update(block)
    assert digest.hexdigest() == hashlib.sha256(b''.join(blocks)).hexdigest()


def test_a_hashing_thread_without_a_core_does_not_hold_up_the_upload():
    """On a busy machine the hashing thread may wait long for a core: the uploading thread then hashes the oldest
    blocks itself (in order) instead of sleeping until the thread has run, and holds at most ``behind`` + 1."""
    go = threading.Event()

    class Starved(BackgroundSha256):
        def _run(self) -> None:
            go.wait(60)   # as if never scheduled
            super()._run()

    digest = Starved()
    blocks = [os.urandom(64 * 1024 + n) for n in range(20)]
    held = []
    fed = threading.Event()

    def upload() -> None:
        for block in blocks:
            digest.update(block)
            held.append(len(digest._pending))
        fed.set()

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    try:
        assert fed.wait(5), 'update() waited for the hashing thread'
        assert max(held) <= 3
    finally:
        go.set()
        uploader.join(60)
    assert digest.hexdigest() == hashlib.sha256(b''.join(blocks)).hexdigest()
