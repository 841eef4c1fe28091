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
