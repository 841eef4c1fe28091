"""safeio.open_stored / lstat_stored: a file a catalog holds is read only when it is a regular file at its own
name (no symlink followed, no FIFO opened in a way that blocks, no device), and SafeDir refuses a directory that an
account other than root (or the named owner) could rename away from a directory above it."""

from __future__ import annotations

import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def test_a_regular_file_is_read(tmp_path):
    path = tmp_path / 'a.zst'
    path.write_bytes(b'x' * 100)
    with safeio.open_stored(str(path)) as handle:
        assert handle.read() == b'x' * 100
    assert safeio.lstat_stored(str(path)).st_size == 100


@pytest.mark.parametrize('kind', ['symlink', 'fifo', 'directory', 'dev-zero'])
def test_what_is_not_a_stored_file_is_refused(tmp_path, kind):
    path = tmp_path / 'a.zst'
    (tmp_path / 'real').write_bytes(b'secret')
    if kind == 'symlink':
        os.symlink(tmp_path / 'real', path)
    elif kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'directory':
        path.mkdir()
    else:
        os.symlink('/dev/zero', path)
    with pytest.raises(safeio.UnsafeFileError, match='a.zst is (a symlink|a FIFO|a directory)'):
        safeio.open_stored(str(path))
    with pytest.raises(safeio.UnsafeFileError, match='a.zst is (a symlink|a FIFO|a directory)'):
        safeio.lstat_stored(str(path))


def test_nothing_there(tmp_path):
    with pytest.raises(FileNotFoundError):
        safeio.open_stored(str(tmp_path / 'gone'))
    assert safeio.lstat_stored(str(tmp_path / 'gone')) is None


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to give a directory to another uid')
def test_safedir_refuses_a_directory_another_account_can_rename(tmp_path):
    above = tmp_path / 'app'
    above.mkdir(mode=0o755)
    os.chown(above, 4321, 4321)
    inner = above / 'tls'
    inner.mkdir(mode=0o755)    # root's, but its name is in the account's directory
    with pytest.raises(safeio.UnsafeFileError, match='could rename it away'):
        safeio.SafeDir(str(inner))
    with pytest.raises(safeio.UnsafeFileError, match='could rename it away'):
        safeio.SafeDir(str(above / 'new'), create_mode=0o700)
    assert not (above / 'new').exists()
    # the account named as owner is trusted as much as root (its own directories hold its certificates)
    safeio.SafeDir(str(inner), owner=(4321, 4321)).close()


def test_single_link_refuses_a_second_name(tmp_path):
    path = tmp_path / 'svc.key'
    path.write_bytes(b'key')
    assert safeio.read_regular(str(path), 100, single_link=True) == b'key'
    os.link(path, tmp_path / 'elsewhere')
    assert safeio.read_regular(str(path), 100) == b'key'
    with pytest.raises(safeio.UnsafeFileError, match='svc.key has 2 hard links'):
        safeio.read_regular(str(path), 100, what='Private key', single_link=True)
