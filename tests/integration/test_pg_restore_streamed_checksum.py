"""PostgreSQL db_restore hashes the artifact in the read that loads it (no second pass over it): a corrupt
artifact must still never reach the target. Damage that decompression cannot see (one character of a row in
an uncompressed dump) loads without an error into the temporary database; the checksum compared at the end of
the read must drop it and leave the target exactly as it was, with no scratch copy left behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402

MARK = b'row-marker-4242'


def params(server):
    return ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)


def seed(db) -> None:
    db.sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);"
           "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 2000) g;"
           "INSERT INTO items VALUES (0, '%s')" % MARK.decode())


def fingerprint(server, database: str) -> tuple:
    return tuple(server.sql("SELECT count(*), md5(string_agg(id::text || name, ',' ORDER BY id)) FROM items",
                            database=database)[0])


def leftovers(server) -> list:
    return [r[0] for r in server.sql("SELECT datname FROM pg_database WHERE datname LIKE '%opsready%'")]


def backup(server, db, dest: Path, **options) -> dict:
    opts = BackupOptions(kind='full', dest=str(dest), database=db, **options)
    return run_backup(get_engine('postgresql', params(server)), opts, verify=False)['manifest']


def restore(server, src: Path, source: str, target: str, **kw) -> dict:
    return run_restore(RestoreRequest(engine='postgresql', src=str(src), source_database=source, database=target,
                                      **kw), params(server))


def damage_row(path: str) -> None:
    """One character of one row changed, same size: only the checksum can tell."""
    data = Path(path).read_bytes()
    assert data.count(MARK) == 1
    Path(path).write_bytes(data.replace(MARK, MARK[:-1] + b'3'))


def flip_middle(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0x5A
    Path(path).write_bytes(bytes(data))


@pytest.mark.parametrize('compression,jobs,fmt,damage', [
    ('none', 1, 'custom', damage_row),     # pg_restore reads our stream on stdin
    ('none', 1, 'plain', damage_row),      # psql reads our stream on stdin
    ('zstd', 2, 'custom', flip_middle),    # decompressed copy for pg_restore -j, fed by zstd -d
    ('gzip', 2, 'custom', flip_middle),    # decompressed copy written here
])
def test_corrupt_artifact_never_reaches_the_target(pg_db, tmp_path, compression, jobs, fmt, damage):
    server = pg_db.server
    seed(pg_db)
    dest = tmp_path / 'b'
    manifest = backup(server, pg_db.name, dest, compression=compression, format=fmt)
    pg_db.sql("UPDATE items SET name = 'changed after the backup' WHERE id < 10")
    before = fingerprint(server, pg_db.name)
    damage(manifest['path'])
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    with pytest.raises(IntegrityError) as failed:
        restore(server, dest, pg_db.name, pg_db.name, replace=True, jobs=jobs, tmpdir=str(scratch))
    exc = failed.value
    assert 'before touching the target' in exc.message and manifest['id'] in exc.message, exc.message
    assert exc.details.get('phase') == 'verify' and exc.details.get('artifact') == manifest['id']
    assert fingerprint(server, pg_db.name) == before
    assert leftovers(server) == []
    assert os.listdir(scratch) == []   # no decompressed copy left behind
    # a new name: nothing of that name may appear
    with pytest.raises(IntegrityError):
        restore(server, dest, pg_db.name, pg_db.name + '_new', jobs=jobs, tmpdir=str(scratch))
    assert server.sql("SELECT count(*) FROM pg_database WHERE datname = '%s_new'" % pg_db.name)[0][0] == '0'
    assert leftovers(server) == [] and os.listdir(scratch) == []


@pytest.mark.parametrize('compression,jobs', [('zstd', 2), ('none', 1)])
def test_streamed_checksum_reported_and_data_intact(pg_db, tmp_path, compression, jobs):
    server = pg_db.server
    seed(pg_db)
    expected = fingerprint(server, pg_db.name)
    dest = tmp_path / 'b'
    manifest = backup(server, pg_db.name, dest, compression=compression)
    target = pg_db.name + '_copy'
    try:
        result = restore(server, dest, pg_db.name, target, jobs=jobs, tmpdir=str(tmp_path))
        assert result['verification'][0]['checksum'] == 'ok', result['verification']
        assert result['verification'][0]['checked'].startswith('while restoring')
        assert result['verification'][0]['id'] == manifest['id']
        assert fingerprint(server, target) == expected
        # check mode restores nothing: it reads the whole artifact up front
        damage_or_flip = damage_row if compression == 'none' else flip_middle
        damage_or_flip(manifest['path'])
        with pytest.raises(IntegrityError) as failed:
            restore(server, dest, pg_db.name, target + '2', jobs=jobs, check_mode=True)
        assert failed.value.details.get('phase') == 'verify'
    finally:
        server.drop_database(target)


def test_truncated_artifact_refused_before_anything_is_created(pg_db, tmp_path):
    server = pg_db.server
    seed(pg_db)
    dest = tmp_path / 'b'
    manifest = backup(server, pg_db.name, dest, compression='zstd')
    with open(manifest['path'], 'r+b') as handle:
        handle.truncate(os.path.getsize(manifest['path']) - 100)
    with pytest.raises(IntegrityError) as failed:
        restore(server, dest, pg_db.name, pg_db.name + '_new', jobs=2, tmpdir=str(tmp_path))
    assert 'truncated' in failed.value.message and failed.value.details.get('phase') == 'verify'
    assert leftovers(server) == []
