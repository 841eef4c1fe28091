"""file_restore ``only`` selecting a hard-linked file without the name it was archived under first: the content is
in the archive, so it is restored - not refused as an escaping member, nor called a corrupt archive."""

from __future__ import annotations

import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract


@pytest.mark.parametrize('selected', ['b', 'b/two'])
def test_only_a_hard_links_second_name(tmp_path, selected):
    src = tmp_path / 'src'
    (src / 'a').mkdir(parents=True)
    (src / 'b').mkdir()
    (src / 'a' / 'one').write_text('same inode\n')
    os.link(src / 'a' / 'one', src / 'b' / 'two')
    dest = tmp_path / 'bk'
    archive.prepare_dest(str(dest), False)
    made = archive.create_archive([str(src)], str(dest), 's', compression='none')
    manifest = read_manifest(made['path'] + '.manifest.json')
    target = tmp_path / 'r'
    root = target / str(src).lstrip('/')
    # a stale first name in the target must not become the second name's content
    (root / 'a').mkdir(parents=True)
    (root / 'a' / 'one').write_text('stale\n')
    outcome = extract.restore_archive(manifest, str(target), only=[str(src / selected)])
    assert (root / 'b' / 'two').read_text() == 'same inode\n'
    assert (root / 'a' / 'one').read_text() == 'stale\n'       # not selected: left alone
    assert outcome['restored'] == [str(root / 'b' / 'two')]
    assert not list(target.glob('.opsready-restore-*'))
