"""An encrypted file archive written before issue 22's content-checksum change (its manifest seals the SHA-256
of the compressed stream): today's code restores it byte for byte, verifies it, drills it, re-keys it, and still
compares the sealed checksum (tests/data/filecrypt-v1/README.md says how it was written)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.drill import fileset
from ansible_collections.opsready.operations.plugins.module_utils.files.extract import find_archive, restore_archive

FIXTURE = Path(__file__).resolve().parents[4] / 'data' / 'filecrypt-v1'
SOURCE = 'tmp/opsready-filecrypt-v1/tree'  # members are stored relative to /


def expected_tree():
    rng = random.Random(22)
    conf = b''.join(b'key%d = value %d\n' % (i, rng.randrange(1000)) for i in range(2000))
    return {'conf/app.conf': conf, 'blob.bin': rng.randbytes(60_000)}


@pytest.fixture()
def backups(tmp_path):
    directory = tmp_path / 'backups'
    directory.mkdir()
    for name in os.listdir(FIXTURE):
        if '.tar.' in name:
            shutil.copy(FIXTURE / name, directory / name)
    identities = encryption.parse_identities((FIXTURE / 'identity.txt').read_text())
    return directory, identities


def test_the_fixture_is_an_old_archive(backups):
    directory, dummy = backups
    manifest = find_archive(str(directory), 'v1')
    assert 'plaintext_sha256_sealed' in manifest.data['encryption']


def test_restores_byte_identical_and_verifies(backups, tmp_path):
    directory, identities = backups
    manifest = find_archive(str(directory), 'v1')
    target = tmp_path / 'restored'
    restore_archive(manifest, str(target), identities=identities)
    for name, data in expected_tree().items():
        assert (target / SOURCE / name).read_bytes() == data, name
    assert os.readlink(str(target / SOURCE / 'link')) == 'conf/app.conf'
    with open_artifact(manifest, identities, verify=True) as stream:  # backup_verify deep's read
        assert len(stream.read()) == manifest.data['raw_size']


def test_its_sealed_checksum_is_still_compared(backups, tmp_path):
    directory, identities = backups
    manifest = find_archive(str(directory), 'v1')
    path = manifest.path + '.manifest.json'
    data = json.loads(Path(path).read_text())
    data['encryption']['plaintext_sha256_sealed'] = encryption.seal_text('0' * 64, data['encryption']['recipients'])
    Path(path).write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match='plaintext checksum'):
        restore_archive(read_manifest(path), str(tmp_path / 'restored'), identities=identities)
    assert not (tmp_path / 'restored' / SOURCE).exists()


def test_the_drill_checks_it(backups, tmp_path):
    directory, identities = backups
    result = fileset.drill_fileset(str(directory), 'v1', str(tmp_path / 'scratch'), identities=identities)
    assert result['ok'], result


def test_rekey_then_restore_with_the_new_key(backups, tmp_path):
    directory, identities = backups
    new = encryption.parse_identities(encryption.generate_identity())
    done = rekey.rekey(str(directory), [new[0].recipient], identities)
    assert len(done['rekeyed']) == 1, done
    manifest = find_archive(str(directory), 'v1')
    assert manifest.data['encryption']['recipients'] == [new[0].recipient]
    target = tmp_path / 'restored'
    restore_archive(manifest, str(target), identities=new)
    for name, data in expected_tree().items():
        assert (target / SOURCE / name).read_bytes() == data, name
