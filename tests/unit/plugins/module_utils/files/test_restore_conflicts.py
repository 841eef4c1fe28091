"""A restore over a tree where an archived file's name is now a directory (or an archived directory's name a
file) cannot finish: it must refuse before it moves anything, not after half the files were replaced."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract


@pytest.mark.parametrize('conflict', ['dir-where-file', 'file-where-dir'])
def test_a_type_conflict_is_refused_before_anything_moves(tmp_path, conflict):
    src = tmp_path / 'src'
    (src / 'sub').mkdir(parents=True)
    (src / 'a.conf').write_text('archived a\n')
    (src / 'sub' / 'inner.conf').write_text('inner\n')
    (src / 'z.conf').write_text('archived z\n')
    dest = tmp_path / 'bk'
    archive.prepare_dest(str(dest), False)
    made = archive.create_archive([str(src)], str(dest), 's', compression='none')
    manifest = read_manifest(made['path'] + '.manifest.json')
    (src / 'a.conf').write_text('edited a\n')
    if conflict == 'dir-where-file':
        (src / 'z.conf').unlink()
        (src / 'z.conf').mkdir()
    else:
        (src / 'sub' / 'inner.conf').unlink()
        (src / 'sub').rmdir()
        (src / 'sub').write_text('now a file\n')
    with pytest.raises(OpsReadyError) as caught:
        extract.restore_archive(manifest, '/')
    assert (src / 'a.conf').read_text() == 'edited a\n', 'half restored: a.conf was replaced before the refusal'
    assert 'nothing was changed' in caught.value.message.lower()
    assert not list(src.parent.glob('.opsready-restore-*')) and not list(tmp_path.glob('.opsready-restore-*'))
