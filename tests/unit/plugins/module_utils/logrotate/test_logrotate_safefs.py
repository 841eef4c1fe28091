"""Rotation against a hostile or failing filesystem: descriptor-relative operations, insecure
directories, failures midway that must leave the set of copies as it was, and compression reports
that say what is on disk."""

from __future__ import annotations

import datetime
import os
import stat
import threading
import time

import pytest
import zstandard

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.logrotate import compress
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.safefs import (
    LogDir, Refused, acting_as, ident, insecure_reason)

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)


def names(directory):
    return sorted(os.listdir(directory))


def test_open_regular_refuses_links_special_files_and_swaps(tmp_path):
    (tmp_path / 'app.log').write_text('x\n')
    outside = tmp_path / 'outside'
    outside.write_text('secret\n')
    (tmp_path / 'link').symlink_to(outside)
    os.mkfifo(tmp_path / 'fifo')
    os.link(tmp_path / 'app.log', tmp_path / 'second')
    d = LogDir.open(str(tmp_path))
    try:
        with pytest.raises(Refused, match='symlink'):
            d.open_regular('link', os.O_RDWR)
        with pytest.raises(Refused, match='not a regular file'):
            d.open_regular('fifo', os.O_RDONLY)          # would block forever if it were opened
        with pytest.raises(Refused, match='2 hard links'):
            d.open_regular('app.log', os.O_RDWR)
        os.unlink(tmp_path / 'second')
        planned = ident(d.lstat('app.log'))
        (tmp_path / 'app.log').rename(tmp_path / 'old')
        (tmp_path / 'app.log').write_text('swapped\n')
        with pytest.raises(Refused, match='replaced by another file'):
            d.open_regular('app.log', os.O_RDWR, expect=planned)
        fd = d.open_regular('app.log', os.O_RDONLY)
        assert os.read(fd, 100) == b'swapped\n'
        os.close(fd)
    finally:
        d.close()
    assert outside.read_text() == 'secret\n'


def test_directory_path_swapped_after_open_changes_nothing(tmp_path):
    real = tmp_path / 'logs'
    real.mkdir()
    (real / 'app.log').write_text('mine\n')
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'app.log').write_text('not mine\n')
    d = LogDir.open(str(real))
    try:
        real.rename(tmp_path / 'moved')
        real.symlink_to(other)                      # the path now leads elsewhere; the descriptor does not
        d.unlink('app.log')
    finally:
        d.close()
    assert not (tmp_path / 'moved' / 'app.log').exists() and (other / 'app.log').read_text() == 'not mine\n'


@pytest.mark.skipif(os.geteuid() != 0, reason='ownership checks need root')
def test_insecure_reason(tmp_path):
    base = tmp_path / 'base'
    base.mkdir(mode=0o755)
    logs = base / 'logs'
    logs.mkdir(mode=0o755)

    def reason():
        fd = os.open(str(logs), os.O_RDONLY | os.O_DIRECTORY)
        try:
            return insecure_reason(fd, str(logs))
        finally:
            os.close(fd)

    assert reason() is None
    logs.chmod(0o777)
    assert 'insecure permissions' in reason()
    logs.chmod(0o775)
    assert reason() is None                          # group root may write, as logrotate allows
    os.chown(logs, 0, 12345)
    assert 'writable by a group which is not root' in reason()
    os.chown(logs, 12345, 0)
    logs.chmod(0o755)
    assert 'owned by uid 12345' in reason()
    os.chown(logs, 0, 0)
    base.chmod(0o1777)
    assert reason() is None                          # sticky above (/tmp): the entry below cannot be renamed
    base.chmod(0o777)
    assert 'a directory above' in reason()


@pytest.mark.skipif(os.geteuid() != 0, reason='switching user needs root')
def test_acting_as_switches_and_restores(tmp_path):
    groups = os.getgroups()
    with acting_as(65534, 65534):
        assert (os.geteuid(), os.getegid(), os.getgroups()) == (65534, 65534, [65534])
        with pytest.raises(PermissionError):
            os.open(str(tmp_path / 'x'), os.O_CREAT | os.O_WRONLY, 0o600)   # tmp_path is root's 0700
    assert (os.geteuid(), os.getegid(), os.getgroups()) == (0, 0, groups)


def test_failure_midway_leaves_the_set_as_it_was(tmp_path):
    """A copy that cannot be renamed (here replaced by a directory after the plan was made: a directory there up
    front is refused while planning) stops the rotation after the newer renames were done: they are undone and
    nothing is deleted, so no gap and no lost copy."""
    log = tmp_path / 'app.log'
    log.write_text('live\n')
    (tmp_path / 'app.log.1').write_text('one\n')
    (tmp_path / 'app.log.2').write_text('two\n')
    (tmp_path / 'app.log.3.zst').write_bytes(b'three')
    (tmp_path / 'app.log.4.zst').write_bytes(b'four')

    class SwappedAfterPlanning(Rotation):
        def _preflight(self, plans):
            ready = super()._preflight(plans)
            (tmp_path / 'app.log.2').unlink()
            (tmp_path / 'app.log.2').mkdir()
            return ready

    rotation = SwappedAfterPlanning([str(log)], Policy(force=True, rotate=4),
                                    str(tmp_path.parent / 'state-midway.json'), now=NOW, check_dirs=False)
    with pytest.raises(OpsReadyError) as failure:
        rotation.run()
    assert 'nothing of it was changed' in failure.value.message
    assert names(tmp_path) == ['app.log', 'app.log.1', 'app.log.2', 'app.log.3.zst', 'app.log.4.zst']
    assert (tmp_path / 'app.log.2').is_dir() and (tmp_path / 'app.log.1').read_text() == 'one\n'
    assert log.read_text() == 'live\n' and (tmp_path / 'app.log.4.zst').read_bytes() == b'four'
    assert failure.value.details['deleted'] == [] and failure.value.details['rotated'] == []


def test_compress_reports_a_plain_copy_deleted_meanwhile(tmp_path):
    """The plain copy disappears while it is compressed: the .zst is complete and the report says the
    plain copy was already gone (not that it "was kept")."""
    path = tmp_path / 'app.log.1'
    data = os.urandom(48 * 1024 * 1024)
    path.write_bytes(data)
    partial = tmp_path / 'app.log.1.zst.partial'

    def remove_when_started():
        deadline = time.monotonic() + 30
        while not partial.exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        path.unlink()

    remover = threading.Thread(target=remove_when_started)
    remover.start()
    info = compress.compress_file(str(path))
    remover.join()
    assert 'already been removed by something else' in info['note']
    assert names(tmp_path) == ['app.log.1.zst']
    with open(tmp_path / 'app.log.1.zst', 'rb') as handle:
        assert zstandard.ZstdDecompressor().stream_reader(handle).read() == data


def test_compress_refuses_a_copy_swapped_for_a_link(tmp_path):
    target = tmp_path / 'secret'
    target.write_text('secret\n')
    (tmp_path / 'app.log.2').symlink_to(target)
    with pytest.raises(Refused, match='symlink'):
        compress.compress_file(str(tmp_path / 'app.log.2'))
    assert names(tmp_path) == ['app.log.2', 'secret'] and target.read_text() == 'secret\n'
    assert stat.S_ISLNK((tmp_path / 'app.log.2').lstat().st_mode)
