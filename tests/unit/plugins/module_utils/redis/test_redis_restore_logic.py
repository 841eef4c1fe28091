"""Redis restores: the restored key count against the snapshot's (expiring keys may be dropped on load)."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.restore import compare_keys


def manifest(keys, expires=0):
    return Manifest({'id': 'redis-x-full-1.rdb.zst', 'artifact': 'redis-x-full-1.rdb.zst', 'engine': 'redis',
                     'kind': 'full', 'started': '2026-12-04T00:00:00Z', 'finished': '2026-12-04T00:00:01Z',
                     'size': 1, 'sha256': '0' * 64, 'compression': 'zstd',
                     'details': {'keys': keys, 'expires': expires}}, '/backups')


def test_exact_count_without_ttls():
    assert compare_keys(manifest(100), 100)['key_check'] == 'restored 100 keys, the snapshot held 100'
    for restored in (99, 101, 0):
        with pytest.raises(IntegrityError, match='holds %d keys, the snapshot held 100' % restored):
            compare_keys(manifest(100), restored)


def test_keys_with_ttl_may_have_expired_but_no_more():
    assert 'expired since the snapshot' in compare_keys(manifest(100, expires=5), 96)['key_check']
    assert compare_keys(manifest(100, expires=5), 95)['keys'] == 95
    with pytest.raises(IntegrityError):
        compare_keys(manifest(100, expires=5), 94)
    with pytest.raises(IntegrityError):
        compare_keys(manifest(100, expires=5), 101)
