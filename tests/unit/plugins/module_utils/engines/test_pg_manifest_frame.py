"""A base backup's backup_manifest frame is read at the offset and size its manifest records: a damaged or
edited manifest must give an integrity error naming the file, never a read of whatever size it says."""

from __future__ import annotations

import hashlib
import struct
import types

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
    SKIPPABLE_MAGIC, read_backup_manifest)


def artifact(tmp_path, content=b'{"PostgreSQL-Backup-Manifest-Version": 1}'):
    path = tmp_path / 'base.tar.zst'
    path.write_bytes(b'x' * 100 + struct.pack('<II', SKIPPABLE_MAGIC, len(content)) + content)
    info = {'offset': 100, 'size': len(content), 'sha256': hashlib.sha256(content).hexdigest()}
    return str(path), info, content


def entry(path, info):
    return types.SimpleNamespace(path=path, data={'backup_manifest': info})


def test_the_recorded_frame_is_read_and_checked(tmp_path):
    path, info, content = artifact(tmp_path)
    assert read_backup_manifest(entry(path, info)) == content


@pytest.mark.parametrize('change', [{'size': 1 << 50}, {'size': -1}, {'offset': 1 << 50}, {'offset': -5},
                                    {'size': 'x'}, {'offset': None}, {'size': 10 ** 30}])
def test_a_frame_outside_the_file_is_an_integrity_error(tmp_path, change):
    path, info, _content = artifact(tmp_path)
    info.update(change)
    with pytest.raises(IntegrityError, match='backup_manifest'):
        read_backup_manifest(entry(path, info))
