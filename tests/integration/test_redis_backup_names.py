"""redis_backup with hostile backup set names (``database``, a label for Redis): spaces, non-ASCII, path
separators, ``..``, ``%#?``, a line break and a 300-character name each give one artifact directly inside
``dest`` whose manifest keeps the name exactly, found again by backup_info under that name; nothing is written
outside ``dest`` (a long name used to fail with "File name too long")."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

NAMES = ['my set ü 名前 %41#?&;$(id)', '../../escaped', '/abs/set', 'line\nbreak', 'l' * 300]


@pytest.fixture(scope='module')
def redis():
    with RedisServer() as server:
        server.fill(100)
        yield server


def test_hostile_set_names_round_trip_inside_dest(redis, tmp_path):
    area = tmp_path / 'area'
    dest = area / 'deep' / 'catalog'
    conn = {'host': redis.host, 'port': redis.port, 'password': redis.password}
    tasks = [{'name': 'backup %d' % i, 'opsready.operations.redis_backup': dict(conn, dest=str(dest), database=name)}
             for i, name in enumerate(NAMES)]
    tasks.append({'name': 'info', 'opsready.operations.backup_info': {'path': str(dest)}})
    result = run_playbook(write_playbook(tmp_path, tasks))
    assert not result.failed, result.stdout[-3000:]
    artifacts = set()
    for i, name in enumerate(NAMES):
        manifest = result.result('backup %d' % i)['manifest']
        assert manifest['database'] == name
        assert '/' not in manifest['artifact'] and len(manifest['artifact']) < 200, manifest['artifact']
        artifacts.add(manifest['artifact'])
    assert len(artifacts) == len(NAMES)
    assert sorted(s['database'] for s in result.result('info')['sets']) == sorted(NAMES)
    # only dest holds files: the artifacts and their manifests
    written = [os.path.relpath(os.path.join(d, f), str(area)) for d, dummy, files in os.walk(str(area))
               for f in files if not f.startswith('.')]
    assert sorted(written) == sorted(os.path.join('deep', 'catalog', n) for n in os.listdir(dest)
                                     if not n.startswith('.')), written
    assert not os.path.exists('/abs')
    assert len([n for n in os.listdir(dest) if not n.startswith('.')]) == 2 * len(NAMES)
