"""ArtifactWriter(encrypt_process=True): the age stage in a forked child process (file_backup's path).

Why: ChaCha20-Poly1305 in ``cryptography`` holds the GIL, so the encrypting thread took turns with the tar stream.
These tests hold the child to the contract of the thread: the artifact decrypts to what was written, and a failure
in the child (a write error from the kernel, the child killed) fails the artifact, leaving no ``.partial``, no
child process (zombie or not) and no open descriptor; an abort never lets the child seal a stream cut short.
"""

from __future__ import annotations

import os
import resource
import signal

import psutil
import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    ArtifactWriter, drain, open_decompressed, sha256_file)


@pytest.fixture(scope='module')
def keypair():
    secret = encryption.generate_identity()
    return secret, encryption.parse_identities(secret)[0].recipient


def own_fds():
    return sorted(os.listdir('/proc/self/fd'))


def children():
    return psutil.Process().children(recursive=True)


@pytest.mark.parametrize('compression', ['zstd', 'gzip', 'none'])
def test_the_child_writes_an_age_file_that_decrypts_to_the_input(tmp_path, keypair, compression):
    secret, recipient = keypair
    data = os.urandom(1 << 20) * 3 + b'tail'
    path = str(tmp_path / 'a.age')
    fds = own_fds()
    with ArtifactWriter(path, compression=compression, threads=2, recipients=[recipient],
                        encrypt_process=True) as writer:
        assert len(children()) == 1, 'no encrypting child process'
        for start in range(0, len(data), 1 << 20):
            writer.write(data[start:start + (1 << 20)])
        stored = writer.commit()
    assert children() == [] and own_fds() == fds and os.listdir(str(tmp_path)) == ['a.age']
    assert stored['sha256'] == sha256_file(path) and stored['size'] == os.path.getsize(path)
    assert stored['encryption']['recipients'] == [recipient]
    identities = encryption.parse_identities(secret)
    with open_decompressed(path, compression, stored['encryption'], identities) as stream:
        assert stream.read() == data
        drain(stream)


def test_a_write_error_in_the_child_fails_the_artifact(tmp_path, keypair):
    """A real EFBIG from the kernel (RLIMIT_FSIZE, inherited by the child): what a full disk does."""
    unused, recipient = keypair
    path = str(tmp_path / 'a.age')
    fds = own_fds()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, limits[1]))
    try:
        with pytest.raises(OSError, match='File too large'):
            with ArtifactWriter(path, compression='none', recipients=[recipient], encrypt_process=True) as writer:
                for dummy in range(8):
                    writer.write(os.urandom(1 << 20))
                writer.commit()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert os.listdir(str(tmp_path)) == [] and children() == [] and own_fds() == fds


def test_the_child_killed_mid_stream_fails_the_artifact(tmp_path, keypair):
    unused, recipient = keypair
    path = str(tmp_path / 'a.age')
    fds = own_fds()
    with pytest.raises((OpsReadyError, OSError), match='killed by signal 9|Broken pipe'):
        with ArtifactWriter(path, compression='none', recipients=[recipient], encrypt_process=True) as writer:
            writer.write(os.urandom(1 << 20))
            os.kill(children()[0].pid, signal.SIGKILL)
            for dummy in range(4):
                writer.write(os.urandom(1 << 20))
            writer.commit()
    assert os.listdir(str(tmp_path)) == [] and children() == [] and own_fds() == fds


def test_abort_kills_the_child_before_it_seals_anything(tmp_path, keypair):
    unused, recipient = keypair
    path = str(tmp_path / 'a.zst.age')
    fds = own_fds()
    with pytest.raises(RuntimeError, match='source failed'):
        with ArtifactWriter(path, compression='zstd', recipients=[recipient], encrypt_process=True) as writer:
            for dummy in range(8):
                writer.write(os.urandom(256 * 1024))
            raise RuntimeError('source failed')
    assert os.listdir(str(tmp_path)) == [] and children() == [] and own_fds() == fds
