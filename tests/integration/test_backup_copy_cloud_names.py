"""Hostile names at the Azure (Azurite), GCS (gcp-storage-emulator) and S3 (moto server) offsite stores: prefixes
and backup set names with spaces, non-ASCII, quotes, ``%``, ``#``, ``?``, ``&``, ``;`` round-trip exactly;
``..``/``.`` segments, empty segments,
control characters and names over the services' 1024-byte limit are refused up front with a message naming the
option (they used to surface as an authorisation failure or a 120 s timeout); and a tampered manifest at the
destination never makes a pull write outside its directory."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store  # noqa: E402
from tests.harness.cloud import Azurite, GcsEmulator  # noqa: E402
from tests.harness.s3 import S3Server  # noqa: E402
from tests.integration.test_backup_copy import synthetic_catalog  # noqa: E402
from tests.integration.test_backup_copy_cloud import Cloud  # noqa: E402


class S3Cloud(Cloud):
    """The S3 test server seen the same way (S3 keys: at most 1024 bytes of UTF-8, like GCS)."""

    def options(self, space: str, prefix: str) -> dict:
        self.server.client().create_bucket(Bucket=space)
        return {'backend': 's3', 'bucket': space, 'prefix': prefix, 'endpoint_url': self.server.endpoint_url}

    def store(self, options: dict, **extra):
        server = self.server
        return S3Store(options['bucket'], options['prefix'], endpoint_url=options['endpoint_url'],
                       access_key=server.access_key, secret_key=server.secret_key, region=server.region, **extra)


@pytest.fixture(scope='module', params=['azure', 'gcs', 's3'])
def cloud(request):
    if request.param == 's3':
        with S3Server() as server:
            yield S3Cloud('s3', server)
        return
    server = Azurite() if request.param == 'azure' else GcsEmulator(bucket='unused-default')
    with server:
        yield Cloud(request.param, server)


def space(request) -> str:
    return 'n' + hashlib.sha1(request.node.name.encode()).hexdigest()[:14]


@pytest.mark.parametrize('prefix, database', [
    ('host 1/ünïcødé 名前', 'my db ü 名'),
    ('pct%20/h#sh?q=1&x;y', "a%2Fb#c?d'e"),
    ('q"uote\'s/a b;c&d', 'db "x" \'y\' & z;'),
])
def test_hostile_prefixes_and_set_names_round_trip_exactly(tmp_path, cloud, request, prefix, database):
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [1], database=database)
    store = cloud.store(cloud.options(space(request), prefix))
    assert sorted(offsite.push(store, str(local))['uploaded']) == sorted(ids)
    assert sorted(store.list_files()) == sorted(ids + [i + '.manifest.json' for i in ids])
    # a second run finds what the first sent under the same names (nothing was re-encoded on the way)
    assert offsite.push(store, str(local))['already_present'] == len(ids)
    fetched = tmp_path / 'fetched'
    assert sorted(offsite.pull(store, str(fetched))['downloaded']) == sorted(ids)
    for name in os.listdir(local):
        assert (fetched / name).read_bytes() == (local / name).read_bytes(), name


REFUSED = ['a/../b', '..', './x', 'a//b', 'x\ny', 'tab\there', 'nul\x00', 'p' * 1100]


@pytest.mark.parametrize('prefix', REFUSED + ['azure-only'])
def test_prefixes_the_service_would_rewrite_or_refuse_are_refused_up_front(tmp_path, cloud, request, prefix):
    if prefix == 'azure-only':
        if cloud.kind != 'azure':
            pytest.skip('GCS and S3 keep a backslash and a trailing dot as they are')
        prefixes = ['back\\slash', 'dot./x']   # Azure turns \ into / and drops a segment's trailing dot
    else:
        prefixes = [prefix]
    options = cloud.options(space(request), 'ok')
    for value in prefixes:
        with pytest.raises(OpsReadyError, match='prefix') as info:
            cloud.store(dict(options, prefix=value))
        assert 'Traceback' not in str(info.value) and 'Choose another prefix' in str(info.value)


def test_a_name_over_the_limit_is_refused_before_anything_is_uploaded(tmp_path, cloud, request):
    local = tmp_path / 'backups'
    synthetic_catalog(local, [1], database='d' * 100)
    store = cloud.store(cloud.options(space(request), 'p' * 900))
    with pytest.raises(OpsReadyError, match='1024'):
        offsite.push(store, str(local))
    assert store.list_files() == {}, 'a refused push uploaded something'


@pytest.mark.parametrize('field, value', [
    ('artifact', '../escaped.bin'),
    ('artifact', '/tmp/opsready-escaped-abs.bin'),
    ('artifact', 'sub/../../escaped.bin'),
    ('id', '../escaped'),
    ('members', '../../escaped-member'),
])
def test_a_tampered_manifest_never_writes_outside_the_pull_directory(tmp_path, cloud, request, field, value):
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [1])
    store = cloud.store(cloud.options(space(request), 'tamper'))
    offsite.push(store, str(local))
    manifest = json.loads(store.read_bytes(ids[0] + '.manifest.json'))
    if field == 'members':
        manifest['members'] = [{'path': value, 'size': manifest['size'], 'sha256': manifest['sha256']}]
    else:
        manifest[field] = value
    store.put_bytes(ids[0] + '.manifest.json', json.dumps(manifest).encode())
    # the object the hostile name points at exists at the destination, so only the name check can stop it
    target = value.lstrip('/') if field != 'id' else value + '.manifest.json'
    if field != 'id' and '..' not in target:
        store.put_bytes(target, store.read_bytes(ids[0]))
    pulls = tmp_path / 'deep' / 'pull'
    with pytest.raises(OpsReadyError, match='not a plain relative name|outside'):
        offsite.pull(store, str(pulls))
    assert not os.path.exists('/tmp/opsready-escaped-abs.bin')
    escaped = list(tmp_path.rglob('escaped*'))
    assert escaped == [], escaped
    assert not pulls.exists() or list(pulls.iterdir()) == [], 'a refused pull left files behind'


def test_a_link_planted_at_a_partial_name_is_never_written_through(tmp_path, cloud, request):
    """The pull directory may be writable by another account, and the names a pull writes are predictable (the
    catalog's artifact names + .partial): a link planted there must be replaced, never written (or chmod'ed)
    through."""
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [1])
    store = cloud.store(cloud.options(space(request), 'links'))
    offsite.push(store, str(local))
    pulls = tmp_path / 'pull'
    pulls.mkdir()
    victim = tmp_path / 'victim'
    victim.write_text('precious\n')
    os.chmod(victim, 0o644)
    os.symlink(str(victim), str(pulls / (ids[0] + '.partial')))
    offsite.pull(store, str(pulls))
    assert victim.read_text() == 'precious\n' and oct(os.stat(victim).st_mode & 0o777) == '0o644'
    assert (pulls / ids[0]).read_bytes() == (local / ids[0]).read_bytes()
    assert not os.path.lexists(pulls / (ids[0] + '.partial'))
