"""backup/rekey.py held to an outside acceptance review: what a rotation must never do silently (skip an artifact
whose manifest cannot be read, or report a plan check mode cannot keep), what it must not abort the whole run for
(one missing artifact, a hostile name in the way), and recipient lists that mean the same set."""

from __future__ import annotations

import hashlib
import json
import os
import signal

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import set_lock
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


def _opens(entry, identities):
    """The artifact decrypts end to end with ``identities`` to the plaintext its manifest seals, and the manifest's
    checksum and size are the file's."""
    data = open(entry.path, 'rb').read()
    assert entry.data['sha256'] == hashlib.sha256(data).hexdigest() and entry.data['size'] == len(data), entry.id
    info = entry.data['encryption']
    sealed = encryption.open_sealed(info['plaintext_sha256_sealed'], identities, entry.id)
    with open(entry.path, 'rb') as raw:
        encryption.DecryptingReader(raw, identities, entry.id, expected_sha256=sealed,
                                    expected_size=info['plaintext_size']).drain()


@pytest.mark.parametrize('point', rekey.POINTS + (rekey.STREAM_POINT,))
def test_a_rotation_killed_at_every_step_is_completed_by_the_next_run(tmp_path, point):
    """A real SIGKILL of the rotating process (no ``finally``, no thread joined, the decrypting child orphaned) at
    each step of the second artifact: every artifact still opens with the keys its manifest names and matches it,
    and the next run completes the rotation."""
    old, new = key(), key()
    paths = [encrypted_artifact(tmp_path, [old.recipient], payload=os.urandom(300_000)) for dummy in range(3)]
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the killed run
        seen = []

        def kill(where, artifact_id):
            if where == point:
                seen.append(artifact_id)
                if len(seen) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
        try:
            rekey.rekey(str(tmp_path), [new.recipient], [old], fault=kill)
        finally:
            os._exit(3)
    assert os.waitpid(pid, 0)[1] == signal.SIGKILL
    for entry in Catalog(str(tmp_path)).entries:
        recipients = entry.data['encryption']['recipients']
        assert recipients in ([old.recipient], [new.recipient])
        _opens(entry, [old] if recipients == [old.recipient] else [new])
    done = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert done['failed'] == [] and len(done['rekeyed']) + len(done['already']) == 3
    if point != 'after_manifest':
        assert [s['id'] for s in done['settled']] == [os.path.basename(paths[1])]
    assert not [n for n in os.listdir(str(tmp_path)) if n.endswith('.partial')]
    for entry in Catalog(str(tmp_path)).entries:
        assert rekey.PENDING not in entry.data and entry.data['encryption']['recipients'] == [new.recipient]
        _opens(entry, [new])
        with pytest.raises(OpsReadyError):
            _opens(entry, [old])
    again = rekey.rekey(str(tmp_path), [new.recipient], [new])
    assert again['rekeyed'] == [] and again['settled'] == [] and len(again['already']) == 3


def test_a_second_rotation_of_the_directory_fails_at_once_and_changes_nothing(tmp_path):
    """Two rotations at once would each settle what the other is doing: the second one, started while the first
    is between writing the pending manifest and the swap, would rewrite that manifest from what it read and remove
    the first one's new file."""
    old, new = key(), key()
    for dummy in range(2):
        encrypted_artifact(tmp_path, [old.recipient])
    seen = {}

    def second_run(point, artifact_id):
        if point == 'after_pending' and not seen:
            seen['before'] = snapshot(tmp_path)
            with pytest.raises(OpsReadyError, match='Another backup_rekey is running .*run this one again'):
                rekey.rekey(str(tmp_path), [new.recipient], [old])
            seen['after'] = snapshot(tmp_path)

    done = rekey.rekey(str(tmp_path), [new.recipient], [old], fault=second_run)
    assert seen['after'] == seen['before']
    assert done['failed'] == [] and len(done['rekeyed']) == 2
    assert not [n for n in os.listdir(str(tmp_path)) if n.endswith(('.lock', '.partial'))]


def test_an_artifact_whose_set_is_being_backed_up_is_left_for_the_next_run(tmp_path):
    """A backup of the set removes .partial files of its set and prunes while it holds the set's lock: the
    rotation does not swap an artifact of a set under a running backup."""
    old, new = key(), key()
    busy = encrypted_artifact(tmp_path, [old.recipient])
    other = str(tmp_path / ('other-' + os.path.basename(busy).split('-', 2)[2]))
    second = encrypted_artifact(tmp_path, [old.recipient])
    for suffix in ('', '.manifest.json'):
        os.rename(second + suffix, other + suffix)
    data = json.loads(open(other + '.manifest.json').read())
    data.update(id=os.path.basename(other), artifact=os.path.basename(other))
    with open(other + '.manifest.json', 'w') as handle:
        json.dump(data, handle)
    before = snapshot(tmp_path)
    with set_lock(str(tmp_path), 'etc-files'):
        result = rekey.rekey(str(tmp_path), [new.recipient], [old])
        assert {n: before[n] for n in before if n.startswith('etc-')} == \
            {n: h for n, h in snapshot(tmp_path).items() if n.startswith('etc-')}
    assert result['rekeyed'] == [os.path.basename(other)]
    assert [f['id'] for f in result['failed']] == [os.path.basename(busy)]
    assert 'Run backup_rekey again once that backup has finished' in result['failed'][0]['msg']
    assert rekey.rekey(str(tmp_path), [new.recipient], [old])['rekeyed'] == [os.path.basename(busy)]


def test_the_stream_verifier_reads_the_written_buffers_without_copying_them(tmp_path, monkeypatch):
    """The in-stream verification (new key given) took a copy of every block written; it now reads the sink's own
    buffer and hands it back for refilling once decrypted. The 6 MiB stream reuses buffers many times over, so a
    buffer handed back too early would fail the verification (and the rotation)."""
    import threading
    old, new = key(), key()
    payload = os.urandom(1 << 20) * 6
    path = encrypted_artifact(tmp_path, [old.recipient], payload=payload)
    queued, back = [], []
    real_init = rekey._StreamVerifier.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        real_put = self._queue.put

        def put(item, *a, **k):
            if item is not None:
                queued.append(type(item[0] if isinstance(item, tuple) else item))
            return real_put(item, *a, **k)
        self._queue.put = put
    monkeypatch.setattr(rekey._StreamVerifier, '__init__', init)
    real_back = getattr(rekey._HashingSink, '_give_back', None)
    if real_back is not None:
        def give_back(self, data):
            back.append(threading.current_thread().name)
            return real_back(self, data)
        monkeypatch.setattr(rekey._HashingSink, '_give_back', give_back)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old, new])
    assert result['rekeyed'] == [os.path.basename(path)] and result['failed'] == [], result
    # immutable bytes (the header, a last short block) need no copy: every sealed block is the sink's bytearray
    assert queued.count(bytearray) >= 40 and queued.count(bytes) <= 2, 'the verifier was fed copies: %s' % queued
    assert back.count('opsready-rekey-verify') >= 10
    with open(path, 'rb') as handle:
        assert encryption.DecryptingReader(handle, [new], path).read() == payload
