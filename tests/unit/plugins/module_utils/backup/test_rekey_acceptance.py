"""backup/rekey.py held to an outside acceptance review: what a rotation must never do silently (skip an artifact
whose manifest cannot be read, or report a plan check mode cannot keep), what it must not abort the whole run for
(one missing artifact, a hostile name in the way), and recipient lists that mean the same set."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from tests.unit.plugins.module_utils.backup.test_rekey import encrypted_artifact, key, snapshot


@pytest.mark.parametrize('how', ['torn', 'symlink'])
def test_an_artifact_whose_manifest_cannot_be_read_is_reported_not_passed_over(tmp_path, how):
    """A torn (or symlinked) manifest hides its artifact from the catalog: the rotation must say it did not rotate
    it (the retired key still opens it), not report every artifact rotated."""
    old, new = key(), key()
    hidden = encrypted_artifact(tmp_path, [old.recipient])
    encrypted_artifact(tmp_path, [old.recipient])
    manifest = hidden + '.manifest.json'
    if how == 'torn':
        text = open(manifest).read()
        with open(manifest, 'w') as handle:
            handle.write(text[:len(text) // 2])
    else:
        elsewhere = tmp_path / 'elsewhere'
        elsewhere.mkdir()
        os.rename(manifest, str(elsewhere / 'm.json'))
        os.symlink(str(elsewhere / 'm.json'), manifest)
    for check_mode in (True, False):
        result = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=check_mode)
        assert len(result['rekeyed']) == (1 if check_mode else 0) or not check_mode
        failed = [f for f in result['failed'] if os.path.basename(manifest) in f['msg']]
        assert len(failed) == 1, result['failed']
        assert 'was not re-encrypted' in failed[0]['msg'] and 'run backup_rekey again' in failed[0]['msg']
    assert encryption.DecryptingReader(open(hidden, 'rb'), [old], hidden).drain() is None


def test_check_mode_reports_the_settling_the_real_run_does(tmp_path):
    old, new = key(), key()
    encrypted_artifact(tmp_path, [old.recipient])

    def crash(point, artifact_id):
        if point == 'after_swap':
            raise RuntimeError('power loss')

    with pytest.raises(RuntimeError):
        rekey.rekey(str(tmp_path), [new.recipient], [old], fault=crash)
    before = snapshot(tmp_path)
    planned = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=True)
    assert snapshot(tmp_path) == before
    done = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert done['settled'] == [{'id': done['already'][0], 'what': 'manifest completed'}]
    assert planned['settled'] == done['settled'] and planned['already'] == done['already']


def test_check_mode_reports_an_identity_that_opens_nothing_as_the_real_run_would(tmp_path):
    old, new, stranger = key(), key(), key()
    encrypted_artifact(tmp_path, [old.recipient])
    before = snapshot(tmp_path)
    planned = rekey.rekey(str(tmp_path), [new.recipient], [stranger], check_mode=True)
    assert snapshot(tmp_path) == before
    done = rekey.rekey(str(tmp_path), [new.recipient], [stranger])
    assert planned['rekeyed'] == done['rekeyed'] == []
    assert [f['id'] for f in planned['failed']] == [f['id'] for f in done['failed']]
    assert 'cannot be decrypted' in planned['failed'][0]['msg'] and stranger.recipient in planned['failed'][0]['msg']


def test_a_duplicated_recipient_is_the_same_set(tmp_path):
    new = key()
    path = encrypted_artifact(tmp_path, [new.recipient])
    twice = rekey.rekey(str(tmp_path), [new.recipient, new.recipient], [new])
    assert twice['rekeyed'] == [] and twice['recipients'] == [new.recipient]
    assert twice['readable_by'] == {new.recipient: [os.path.basename(path)]}


@pytest.mark.parametrize('how', ['artifact missing', 'partial is a directory'])
def test_one_artifact_in_the_way_fails_alone_and_says_what_to_do(tmp_path, how):
    old, new = key(), key()
    odd = encrypted_artifact(tmp_path, [old.recipient])
    fine = encrypted_artifact(tmp_path, [old.recipient])
    if how == 'artifact missing':
        os.unlink(odd)
    else:
        os.mkdir(odd + '.partial')
    result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert result['rekeyed'] == [os.path.basename(fine)]
    assert [f['id'] for f in result['failed']] == [os.path.basename(odd)]
    message = result['failed'][0]['msg']
    assert 'run backup_rekey again' in message, message
    if how == 'artifact missing':
        assert 'missing' in message
    assert json.loads(open(odd + '.manifest.json').read())['encryption']['recipients'] == [old.recipient]


def test_a_corrupt_recipient_stanza_is_not_called_a_wrong_key(tmp_path):
    """The identity the manifest names does not open the header: the header is damaged, and "use the matching
    identity" would send the operator hunting for a key they already gave."""
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient])
    data = bytearray(open(path, 'rb').read())
    at = data.index(b'-> X25519 ') + 20   # a character of the stanza's share, swapped for another valid one
    data[at] = ord('A') if data[at] != ord('A') else ord('B')
    with open(path, 'wb') as handle:
        handle.write(bytes(data))
    result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    message = result['failed'][0]['msg']
    assert 'corrupt' in message and 'Use the matching identity' not in message, message
    with pytest.raises(OpsReadyError, match='corrupt'):
        encryption.DecryptingReader(open(path, 'rb'), [old], path, recipients=[old.recipient])
    assert Catalog(str(tmp_path)).entries[0].data['encryption']['recipients'] == [old.recipient]
