"""paths naming a directory and something inside it (/etc/nginx and /etc/nginx/sites-enabled): each entry is
archived once, counted once, and the archive restores (it failed with 'No such file or directory')."""

from __future__ import annotations

import os
import tarfile

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract


def test_overlapping_paths_archive_each_entry_once_and_restore(tmp_path):
    src = tmp_path / 'src'
    (src / 'conf').mkdir(parents=True)
    (src / 'conf' / 'a.conf').write_text('a\n')
    (src / 'top.conf').write_text('t\n')
    paths = [str(src / 'conf'), str(src), str(src / 'top.conf'), str(src / 'conf') + '/']
    _digest, count, _secret = archive.tree_fingerprint(paths)
    assert count == 2
    dest = tmp_path / 'bk'
    archive.prepare_dest(str(dest), False)
    made = archive.create_archive(paths, str(dest), 's', compression='none')
    with tarfile.open(made['path']) as tar:
        names = tar.getnames()
    assert len(names) == len(set(names)) == made['member_count'] == 4
    target = tmp_path / 'r'
    outcome = extract.restore_archive(read_manifest(made['path'] + '.manifest.json'), str(target))
    wanted = (str(src / 'conf' / 'a.conf'), str(src / 'top.conf'))
    assert sorted(outcome['restored']) == sorted(str(target) + p for p in wanted)
    assert (target / str(src).lstrip('/') / 'conf' / 'a.conf').read_text() == 'a\n'


def test_an_old_archive_with_duplicate_members_restores(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'a.conf').write_text('a\n')
    dest = tmp_path / 'bk'
    archive.prepare_dest(str(dest), False)
    real_walk = archive.walk_entries

    def twice(paths, gone=None):     # what archives written before the fix hold for overlapping paths
        yield from real_walk(paths, gone)
        yield from real_walk([str(src / 'a.conf')], gone)
    archive.walk_entries, saved = twice, archive.walk_entries
    try:
        made = archive.create_archive([str(src)], str(dest), 's', compression='none')
    finally:
        archive.walk_entries = saved
    assert made['member_count'] == 3
    target = tmp_path / 'r'
    extract.restore_archive(read_manifest(made['path'] + '.manifest.json'), str(target))
    assert (target / str(src).lstrip('/') / 'a.conf').read_text() == 'a\n'
    assert os.listdir(target / str(src).lstrip('/')) == ['a.conf']
