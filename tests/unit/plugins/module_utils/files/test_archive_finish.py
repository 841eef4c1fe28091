"""The serial finish of file_backup (docs/bench.md, issue 22). The archive is written back every FILE_SYNC_EVERY
bytes (16 MB), not at the shared 64 MB cadence: the fsync after the last byte then has at most 16 MB left (25-30 ms
-> 1-13 ms on a 525 MB tree). backup_rekey's writer keeps streaming.SYNC_EVERY. The sealed file list of an encrypted
set is made while the artifact commits, and is the list of what was archived."""

from __future__ import annotations

import json
import threading

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common import streaming
from ansible_collections.opsready.operations.plugins.module_utils.files import archive


def test_the_archive_writer_gets_the_file_backup_cadence(tmp_path, monkeypatch):
    seen = []
    real = streaming.ArtifactWriter.__init__

    def init(self, *args, **kwargs):
        seen.append(kwargs.get('sync_every'))
        real(self, *args, **kwargs)

    monkeypatch.setattr(archive.ArtifactWriter, '__init__', init)
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'a.conf').write_text('a = 1\n')
    dest = tmp_path / 'b'
    archive.prepare_dest(str(dest), False)
    archive.create_archive([str(tree)], str(dest), 'set', compression='none')
    assert seen == [archive.FILE_SYNC_EVERY] == [16 * 1024 * 1024]
    assert streaming.SYNC_EVERY == 64 * 1024 * 1024   # the shared cadence (backup_rekey's) is unchanged


def _tree(tmp_path):
    tree = tmp_path / 'tree'
    tree.mkdir()
    for index in range(5):
        (tree / ('f%d.conf' % index)).write_text('a = %d\n' % index)
    dest = tmp_path / 'b'
    archive.prepare_dest(str(dest), False)
    return tree, dest


def test_the_sealed_file_list_is_made_during_the_commit_and_is_the_archived_list(tmp_path, monkeypatch):
    identity = encryption.parse_identities(encryption.generate_identity())[0]
    tree, dest = _tree(tmp_path)
    events = []
    real_commit, real_seal = streaming.ArtifactWriter.commit, encryption.seal_text

    def commit(self):
        events.append('commit')
        return real_commit(self)

    def seal_text(text, recipients):
        events.append(threading.current_thread().name)
        return real_seal(text, recipients)

    monkeypatch.setattr(streaming.ArtifactWriter, 'commit', commit)
    monkeypatch.setattr(encryption, 'seal_text', seal_text)
    manifest = archive.create_archive([str(tree)], str(dest), 'set', recipients=[identity.recipient])
    assert sorted(events) == ['commit', 'opsready-seal-list']
    assert not [t for t in threading.enumerate() if t.name == 'opsready-seal-list']
    listed = json.loads(encryption.open_sealed(manifest['files_sealed'], [identity], 'manifest'))
    names = sorted(r['path'].rsplit('/', 1)[-1] for r in listed if r['type'] == 'file')
    assert names == ['f%d.conf' % index for index in range(5)]
    assert 'files' not in manifest


def test_a_failed_commit_leaves_no_sealing_thread_and_no_manifest(tmp_path, monkeypatch):
    identity = encryption.parse_identities(encryption.generate_identity())[0]
    tree, dest = _tree(tmp_path)

    def commit(self):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(streaming.ArtifactWriter, 'commit', commit)
    with pytest.raises(archive.OpsReadyError, match='No space left'):
        archive.create_archive([str(tree)], str(dest), 'set', recipients=[identity.recipient])
    assert not [t for t in threading.enumerate() if t.name == 'opsready-seal-list']
    assert list(dest.iterdir()) == []
