"""Extended attributes a restore target cannot take are reported, the file restored anyway."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract


def test_an_attribute_the_target_refuses_is_reported_not_dropped(tmp_path, monkeypatch):
    tree = tmp_path / 'tree'
    tree.mkdir()
    conf = tree / 'app.conf'
    conf.write_text('a = 1\n')
    try:
        os.setxattr(conf, 'user.origin', b'vendor')
    except OSError:
        pytest.skip('this file system does not take user extended attributes')
    dest = tmp_path / 'b'
    archive.prepare_dest(str(dest), False)
    made = archive.create_archive([str(tree)], str(dest), 'set', compression='none')

    def refuse(*_args, **_kwargs):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, 'setxattr', refuse)
    outcome = extract.restore_archive(read_manifest(made['path'] + '.manifest.json'), str(tmp_path / 'r'))
    restored = tmp_path / 'r' / str(conf).lstrip('/')
    assert restored.read_text() == 'a = 1\n'
    assert outcome['not_restored'] == [{'path': str(conf).lstrip('/'),
                                        'reason': 'extended attribute user.origin not restored: %s'
                                        % os.strerror(errno.EOPNOTSUPP)}]
