"""PostgreSQL base backup compressed by the server (``pg_basebackup --compress=server-zstd`` into a staging
directory, hashed while it is written, backup_manifest kept in a zstd skippable frame): one artifact whose
checksum covers every byte, which ``zstd -d`` turns into the tar pg_basebackup wrote, which pg_verifybackup
accepts, and which leaves nothing behind when pg_basebackup fails."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (  # noqa: E402
    IntegrityError, OpsReadyError)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (  # noqa: E402
    read_backup_manifest)


def params(server, password=None):
    return ConnectionParams(host=server.host, port=server.port, user=server.user,
                            password=password or server.password)


def base(server, dest, verify=True, password=None, **options):
    opts = BackupOptions(kind='base', dest=str(dest), **options)
    return run_backup(get_engine('postgresql', params(server, password)), opts, verify=verify)['manifest']


def test_server_compressed_base_is_one_verifiable_artifact(postgres_server, tmp_path):
    manifest = base(postgres_server, tmp_path / 'b', threads=2)
    assert manifest['tool']['compression'] == 'server' and manifest['compression'] == 'zstd'
    assert manifest['verification']['ok'] is True, manifest['verification']
    path = manifest['path']
    # the checksum read behind pg_basebackup covers every byte of the file as stored
    assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == manifest['sha256']
    assert os.path.getsize(path) == manifest['size']
    # zstd -d (which skips the manifest frame) gives the tar; the frame gives backup_manifest
    plain = subprocess.run(['zstd', '-q', '-d', '-c', path], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(plain), mode='r|') as tar:
        names = [member.name for member in tar]
    assert 'PG_VERSION' in names and 'backup_label' in names and 'backup_manifest' not in names
    data = Manifest(manifest, str(tmp_path / 'b'))
    content = read_backup_manifest(data)
    assert content is not None and b'"Files"' in content and len(content) == manifest['backup_manifest']['size']
    assert not [n for n in os.listdir(tmp_path / 'b') if n.endswith('.partial')]
    # a changed manifest frame is refused (pg_verifybackup would read a manifest not made for this backup)
    raw = bytearray(open(path, 'rb').read())
    raw[manifest['backup_manifest']['offset'] + 20] ^= 0x01
    open(path, 'wb').write(bytes(raw))
    with pytest.raises(IntegrityError):
        read_backup_manifest(data)


def test_gzip_and_failed_runs_keep_the_streamed_path_and_leave_nothing(postgres_server, tmp_path):
    gz = base(postgres_server, tmp_path / 'g', verify=False, compression='gzip')
    assert 'backup_manifest' not in gz and gz['tool'].get('compression') != 'server'
    # a refused login: pg_basebackup fails, no staging directory or artifact is left
    dest = tmp_path / 'f'
    with pytest.raises(OpsReadyError):
        base(postgres_server, dest, verify=False, password='not-the-password')
    assert not dest.exists() or os.listdir(dest) == []


def test_hashed_bytes_go_to_disk_while_the_writer_runs(tmp_path, monkeypatch):
    """Issue 22: what was hashed behind pg_basebackup is handed to writeback as it goes (one contiguous run of
    hints from byte 0), so the artifact's one fsync at the end waits for the tail only; the digest still
    covers every byte exactly once."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import backup
    if not hasattr(os, 'posix_fadvise'):
        pytest.skip('no posix_fadvise on this platform')
    hints = []
    real = os.posix_fadvise

    def spy(fd, offset, length, advice):
        hints.append((offset, length, advice))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, 'posix_fadvise', spy)
    monkeypatch.setattr(backup, 'WRITEBACK_STEP', 256 * 1024)
    path = tmp_path / 'base.tar.zst'
    # a real writer appending 6 MiB in 64 KiB pieces over ~1 s, as pg_basebackup appends its tar
    writer = subprocess.Popen([sys.executable, '-c', (
        'import os, sys, time\n'
        'with open(sys.argv[1], "wb") as out:\n'
        '    for n in range(96):\n'
        '        out.write(os.urandom(65536)); out.flush()\n'
        '        time.sleep(0.01)\n'), str(path)])
    digest = hashlib.sha256()
    size = backup._hash_behind(str(path), writer, digest)
    assert writer.wait() == 0
    size += backup._hash_rest(str(path), size, digest)
    content = path.read_bytes()
    assert size == len(content) == 96 * 65536 and digest.hexdigest() == hashlib.sha256(content).hexdigest()
    assert hints and all(advice == os.POSIX_FADV_DONTNEED for dummy, dummy, advice in hints)
    ends = 0
    for offset, length, dummy in hints:
        assert offset == ends and length >= 256 * 1024
        ends += length
    assert 1024 * 1024 <= ends <= size


def test_the_artifact_is_durable_from_its_own_fsync(postgres_server, tmp_path, monkeypatch):
    """pg_basebackup runs with --no-sync: the artifact's durability rests on the module's fsync of the file
    after its last byte (the backup_manifest frame), before the rename, and the fsync of the destination
    directory after it."""
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        info = os.fstat(fd)
        events.append(('fsync', info.st_ino, info.st_size))
        return real_fsync(fd)

    def rename(src, dst, **kwargs):
        events.append(('rename', os.stat(src).st_ino, str(dst)))
        return real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'rename', rename)
    dest = tmp_path / 'd'
    manifest = base(postgres_server, dest, verify=False, threads=2)
    assert manifest['tool']['compression'] == 'server'
    inode = os.stat(manifest['path']).st_ino
    moved = events.index(('rename', inode, manifest['path']))
    assert ('fsync', inode, manifest['size']) in events[:moved]
    dest_inode = os.stat(dest).st_ino
    assert any(event[0] == 'fsync' and event[1] == dest_inode for event in events[moved:])
