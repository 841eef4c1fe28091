"""backup/rekey.py on real files: a rotation, idempotence, and the manifest roll-forward after a crash
between the swap and the manifest rewrite."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest, write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow


def key():
    secret = encryption.generate_identity()
    return encryption.parse_identities(secret)[0]


def encrypted_artifact(directory, recipients, payload=b'x' * 200_000):
    path = os.path.join(str(directory), 'etc-files-%s.tar.age' % utcnow().strftime('%Y%m%dT%H%M%S%fZ'))
    with ArtifactWriter(path, compression='none', recipients=recipients) as writer:
        writer.write(payload)
        stored = writer.commit()
    now = isoformat(utcnow())
    write_manifest(path, {'engine': 'files', 'kind': 'files', 'database': 'etc', 'started': now, 'finished': now,
                          'size': stored['size'], 'sha256': stored['sha256'], 'compression': 'none',
                          'encryption': stored['encryption']})
    return path


def test_rotation_then_nothing_to_do(tmp_path):
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient])
    planned = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=True)
    assert planned['rekeyed'] == [os.path.basename(path)] and planned['readable_by'] == {
        new.recipient: [os.path.basename(path)]}
    assert read_manifest(path + '.manifest.json').data['encryption']['recipients'] == [old.recipient]
    done = rekey.rekey(str(tmp_path), [new.recipient], [old, new])
    assert done['rekeyed'] == [os.path.basename(path)] and done['failed'] == []
    again = rekey.rekey(str(tmp_path), [new.recipient], [new])
    assert again['rekeyed'] == [] and again['already'] == [os.path.basename(path)]


def test_a_wrong_key_fails_that_artifact_and_keeps_it(tmp_path):
    owner, stranger, new = key(), key(), key()
    path = encrypted_artifact(tmp_path, [owner.recipient])
    before = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    result = rekey.rekey(str(tmp_path), [new.recipient], [stranger])
    assert result['rekeyed'] == [] and 'cannot be decrypted' in result['failed'][0]['msg']
    assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == before
    assert not os.path.exists(path + '.partial')


@pytest.mark.parametrize('swapped', [True, False])
def test_a_manifest_with_a_pending_rekey_describes_the_file_that_is_there(tmp_path, swapped):
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient])

    def crash(point, artifact_id):
        if point == ('after_swap' if swapped else 'after_pending'):
            raise RuntimeError('crash')

    with pytest.raises(RuntimeError):
        rekey.rekey(str(tmp_path), [new.recipient], [old], fault=crash)
    entry = Catalog(str(tmp_path)).entries[0]
    assert entry.data['sha256'] == hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert entry.data['encryption']['recipients'] == [new.recipient if swapped else old.recipient]
