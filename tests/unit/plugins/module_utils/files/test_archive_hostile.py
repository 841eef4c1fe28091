"""file_backup's archive code against hostile trees: special files, files swapped for links,
a backup directory others control."""

from __future__ import annotations

import os
import socket
import tarfile

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import archive


def members(path):
    with tarfile.open(path) as tar:
        return {m.name.rsplit('/', 1)[-1]: m for m in tar}


def test_special_files_in_a_tree_are_archived_or_listed(tmp_path):
    """A FIFO is archived as an entry (never opened: it has no writer); a socket cannot be, and is listed."""
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'app.conf').write_text('a = 1\n')
    os.mkfifo(tree / 'control.fifo')
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tree / 'app.sock'))
    (tree / 'loop').symlink_to(tree / 'loop')
    os.link(tree / 'app.conf', tree / 'hard.conf')
    dest = tmp_path / 'b'
    archive.prepare_dest(str(dest), False)
    try:
        manifest = archive.create_archive([str(tree)], str(dest), 'set', compression='none')
    finally:
        server.close()
    found = members(manifest['path'])
    assert found['control.fifo'].isfifo() and 'app.sock' not in found and found['loop'].issym()
    assert found['hard.conf'].islnk() or found['app.conf'].islnk()   # a hard link stays one link
    assert manifest['not_archived'] == [{'path': str(tree / 'app.sock'), 'reason': 'a socket'}]


@pytest.mark.parametrize('source', ['/dev/zero', 'fifo'])
def test_special_file_as_a_source_is_an_error(tmp_path, source):
    if source == 'fifo':
        source = str(tmp_path / 'fifo')
        os.mkfifo(source)
    with pytest.raises(OpsReadyError, match='only files, directories and symlinks are backed up'):
        archive.check_sources([source])


def test_a_file_that_shrinks_while_read_is_padded(tmp_path, monkeypatch):
    """Its owner truncating it at the right moment must not fail root's backup."""
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'grows.log').write_bytes(b'x' * 10000)
    real = archive._tarinfo

    def shrink_after_stat(st, arcname, linkname=''):
        info = real(st, arcname, linkname)
        if arcname.endswith('grows.log'):
            os.truncate(tree / 'grows.log', 100)   # the owner truncates between fstat and read
        return info

    monkeypatch.setattr(archive, '_tarinfo', shrink_after_stat)
    dest = tmp_path / 'b'
    archive.prepare_dest(str(dest), False)
    manifest = archive.create_archive([str(tree)], str(dest), 'set', compression='none')
    with tarfile.open(manifest['path']) as tar:
        data = tar.extractfile([m for m in tar if m.name.endswith('grows.log')][0]).read()
    assert data == b'x' * 100 + b'\0' * 9900


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to hand a directory to another user')
@pytest.mark.parametrize('how', ['other-user', 'world-writable'])
def test_backup_directory_others_control_is_refused(tmp_path, how):
    dest = tmp_path / 'shared'
    dest.mkdir()
    if how == 'other-user':
        os.chown(dest, 65534, 65534)
    else:
        os.chmod(dest, 0o1777)
    with pytest.raises(OpsReadyError, match='not safe to write archives into'):
        archive.prepare_dest(str(dest), True)
    assert os.stat(dest).st_mode & 0o7777 == (0o1777 if how == 'world-writable' else os.stat(dest).st_mode & 0o7777)


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to hand a directory to another user')
@pytest.mark.parametrize('how', ['parent-other-user', 'parent-group-writable', 'link-of-other-user-in-sticky'])
def test_backup_directory_below_what_others_control_is_refused(tmp_path, how):
    """The dest's owner and mode are fine, but another account can rename it away (or re-point the link to it)."""
    parent = tmp_path / 'parent'
    parent.mkdir()
    dest = parent / 'backups'
    if how == 'parent-other-user':
        os.chown(parent, 65534, 65534)
    elif how == 'parent-group-writable':
        os.chmod(parent, 0o770)
    else:
        os.chmod(parent, 0o1777)   # a sticky directory: an entry of another user's there is still theirs
        real = tmp_path / 'real'
        real.mkdir(mode=0o700)
        link = parent / 'link'
        link.symlink_to(real)
        os.lchown(link, 65534, 65534)
        dest = link / 'backups'
    with pytest.raises(OpsReadyError, match='not safe to write archives into'):
        archive.prepare_dest(str(dest), False)
    assert not os.path.lexists(str(dest))   # nothing created below it


def test_backup_directory_of_roots_in_a_sticky_directory_is_accepted(tmp_path):
    sticky = tmp_path / 'sticky'
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    assert archive.prepare_dest(str(sticky / 'mine' / 'backups'), True)
    assert os.stat(sticky / 'mine' / 'backups').st_mode & 0o777 == 0o700
