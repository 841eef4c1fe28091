"""A file written to while file_backup reads it: the archived copy may mix old and new bytes (or be cut, or padded
with zeros), so the run must say which files, in its result and in the manifest, never store them silently."""

from __future__ import annotations

import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import archive


@pytest.mark.parametrize('change', ['grows', 'shrinks', 'rewritten'])
def test_a_file_changed_while_read_is_reported(tmp_path, monkeypatch, change):
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'steady.conf').write_text('a = 1\n')
    busy = tree / 'busy.log'
    busy.write_bytes(b'x' * 100_000)
    real_read = archive._Padded.read
    done = []

    def read(self, size=-1):
        if not done and os.fstat(self.handle.fileno()).st_ino == os.stat(busy).st_ino:
            done.append(True)   # the writer strikes once, between the header and the data
            if change == 'grows':
                with open(busy, 'ab') as handle:
                    handle.write(b'y' * 5000)
            elif change == 'shrinks':
                os.truncate(busy, 10)
            else:
                with open(busy, 'r+b') as handle:
                    handle.write(b'z' * 10)
                os.utime(busy, ns=(1, 1_700_000_000_000_000_001))
        return real_read(self, size)

    monkeypatch.setattr(archive._Padded, 'read', read)
    dest = tmp_path / 'b'
    archive.prepare_dest(str(dest), False)
    manifest = archive.create_archive([str(tree)], str(dest), 'set', compression='none')
    assert done
    assert [entry['path'] for entry in manifest['changed_while_read']] == [str(busy)]
    assert 'changed while it was read' in manifest['changed_while_read'][0]['reason']
    with open(manifest['path'] + '.manifest.json') as handle:
        assert str(busy) in handle.read()    # recorded for whoever restores it later


def test_a_quiet_tree_reports_nothing(tmp_path):
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'a').write_text('a')
    dest = tmp_path / 'b'
    archive.prepare_dest(str(dest), False)
    manifest = archive.create_archive([str(tree)], str(dest), 'set', compression='none')
    assert 'changed_while_read' not in manifest
