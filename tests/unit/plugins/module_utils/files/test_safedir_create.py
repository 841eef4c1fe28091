"""SafeDir(create_mode=..., owner=...) makes a directory and hands it to ``owner``. The parent may be that
owner's: between the mkdir and a chown by name it could swap the new name for a link to /etc, and root would chown
/etc. The chown goes through a descriptor opened without following links; a swapped name is refused."""

from __future__ import annotations

import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def test_a_created_directory_is_handed_to_its_owner(tmp_path):
    target = tmp_path / 'certs'
    handle = safeio.SafeDir(str(target), owner=(1234, 1234), create_mode=0o750)
    try:
        st = os.stat(target)
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (1234, 1234)
    finally:
        handle.close()


@pytest.mark.skipif(os.geteuid() != 0, reason='the chown happens only as root')
def test_a_name_swapped_for_a_link_after_mkdir_is_refused(tmp_path, monkeypatch):
    victim = tmp_path / 'etc'
    victim.mkdir()
    target = tmp_path / 'certs'
    real_mkdir = os.mkdir

    def mkdir_then_swap(path, mode=0o777, *, dir_fd=None):
        real_mkdir(path, mode, dir_fd=dir_fd)   # SafeDir makes each component relative to the one above
        os.rename(path, path + '.moved', src_dir_fd=dir_fd, dst_dir_fd=dir_fd)   # the parent's owner moves it ...
        os.symlink(str(victim), path, dir_fd=dir_fd)                              # ... and plants a link at the name

    monkeypatch.setattr(safeio.os, 'mkdir', mkdir_then_swap)
    with pytest.raises(safeio.UnsafeFileError, match='replaced by a symlink'):
        safeio.SafeDir(str(target), owner=(1234, 1234), create_mode=0o750)
    assert os.stat(victim).st_uid == 0
