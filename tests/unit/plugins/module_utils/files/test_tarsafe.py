"""files.tarsafe: hostile members are refused whether or not the interpreter has PEP 706 filters.

CI runs Debian's python3.11 (3.11.2, no ``filter=`` argument); developer machines may have 3.11.4+.
Both paths are exercised by forcing ``HAS_EXTRACTION_FILTER`` off and on.
"""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.files import tarsafe

FILTER_STATES = [False] + ([True] if hasattr(tarfile, 'tar_filter') else [])


def archive(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == 'file':
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            elif kind == 'dir':
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                tar.addfile(info)
            elif kind == 'hardlink':
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
    buf.seek(0)
    return buf


@pytest.fixture(params=FILTER_STATES, ids=lambda state: 'filter' if state else 'no-filter')
def filter_state(request, monkeypatch):
    monkeypatch.setattr(tarsafe, 'HAS_EXTRACTION_FILTER', request.param)
    return request.param


def test_extract_all_keeps_tree_and_directory_mode(tmp_path, filter_state):
    src = archive(('data', 'dir', None), ('data/PG_VERSION', 'file', b'15\n'), ('data/link', 'sym', 'PG_VERSION'))
    with tarfile.open(fileobj=src, mode='r|') as tar:
        tarsafe.extract_all(tar, str(tmp_path))
    assert (tmp_path / 'data' / 'PG_VERSION').read_bytes() == b'15\n'
    assert os.readlink(tmp_path / 'data' / 'link') == 'PG_VERSION'
    assert (tmp_path / 'data').stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize('member', [('../outside', 'file', b'x'), ('/etc/evil', 'file', b'x'),
                                    ('a/../../outside', 'file', b'x'), ('esc', 'sym', '../../etc')])
def test_escaping_member_is_refused_before_it_is_written(tmp_path, filter_state, member):
    root = tmp_path / 'root'
    root.mkdir()
    with tarfile.open(fileobj=archive(member), mode='r|') as tar:
        with pytest.raises(IntegrityError, match='escape the target root'):
            tarsafe.extract_all(tar, str(root))
    assert list(root.iterdir()) == [] and not (tmp_path / 'outside').exists()


def test_extract_member_refuses_escape(tmp_path, filter_state):
    with tarfile.open(fileobj=archive(('../x', 'file', b'x')), mode='r|') as tar:
        member = tar.next()
        with pytest.raises(IntegrityError):
            tarsafe.extract_member(tar, member, str(tmp_path))
    assert not (tmp_path.parent / 'x').exists()


def _through_symlink_cases(victim):
    return {
        'absolute symlink then a file under it': [('etc', 'sym', str(victim)), ('etc/evil', 'file', b'x')],
        'relative symlink chain to the parent': [('a', 'sym', '.'), ('a/b', 'sym', '..'), ('b/evil', 'file', b'x')],
    }


@pytest.mark.parametrize('case', ['absolute symlink then a file under it', 'relative symlink chain to the parent'])
def test_member_written_through_a_planted_symlink_is_refused(tmp_path, filter_state, case):
    victim = tmp_path / 'victim'
    victim.mkdir()
    root = tmp_path / 'root'
    root.mkdir()
    members = _through_symlink_cases(victim)[case]
    with tarfile.open(fileobj=archive(*members), mode='r|') as tar:
        with pytest.raises(IntegrityError, match='escape the target root') as info:
            tarsafe.extract_all(tar, str(root), archive='/backups/evil.tar')
    assert '/backups/evil.tar' in str(info.value)
    assert list(victim.iterdir()) == [] and not (tmp_path / 'evil').exists()


def test_regular_member_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path, filter_state):
    outside = tmp_path / 'outside.conf'
    outside.write_bytes(b'keep me\n')
    root = tmp_path / 'root'
    root.mkdir()
    members = [('x', 'sym', str(outside)), ('x', 'file', b'archived\n')]
    with tarfile.open(fileobj=archive(*members), mode='r|') as tar:
        for member in tar:
            tarsafe.extract_member(tar, member, str(root))
    assert outside.read_bytes() == b'keep me\n'
    assert not (root / 'x').is_symlink() and (root / 'x').read_bytes() == b'archived\n'


def test_hard_link_to_a_file_outside_is_refused(tmp_path, filter_state):
    root = tmp_path / 'root'
    root.mkdir()
    members = [('d', 'sym', str(tmp_path)), ('h', 'hardlink', 'd/secret')]
    (tmp_path / 'secret').write_bytes(b's')
    with tarfile.open(fileobj=archive(*members), mode='r|') as tar:
        with pytest.raises(IntegrityError):
            tarsafe.extract_all(tar, str(root))
    assert not (root / 'h').exists()


def _extract_by_fd(root, members):
    """extract_member as file_restore calls it: the root's descriptor, tar writing through /proc/self/fd/N."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with tarfile.open(fileobj=archive(*members), mode='r|') as tar:
            for member in tar:
                tarsafe.extract_member(tar, member, '/proc/self/fd/%d' % fd, archive='/backups/a.tar', dest_fd=fd)
    finally:
        os.close(fd)


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc')
@pytest.mark.parametrize('case', ['absolute symlink then a file under it', 'relative symlink chain to the parent',
                                  'hard link through a symlink', 'hard link to a symlink'])
def test_by_descriptor_nothing_is_written_through_a_symlink(tmp_path, filter_state, case):
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'secret').write_bytes(b's')
    root = tmp_path / 'root'
    root.mkdir()
    members = dict(_through_symlink_cases(victim), **{
        'hard link through a symlink': [('d', 'sym', str(victim)), ('h', 'hardlink', 'd/secret')],
        'hard link to a symlink': [('s', 'sym', str(victim / 'secret')), ('h', 'hardlink', 's')]})[case]
    with pytest.raises(IntegrityError, match='escape the target root'):
        _extract_by_fd(root, members)
    assert sorted(p.name for p in victim.iterdir()) == ['secret'] and not (root / 'h').exists()
    assert os.stat(victim / 'secret').st_nlink == 1


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc')
def test_by_descriptor_a_tree_with_links_is_extracted(tmp_path, filter_state):
    outside = tmp_path / 'outside.conf'
    outside.write_bytes(b'keep me\n')
    root = tmp_path / 'root'
    root.mkdir()
    _extract_by_fd(root, [('etc', 'dir', None), ('etc/a.conf', 'file', b'a\n'),
                          ('etc/h.conf', 'hardlink', 'etc/a.conf'), ('etc/l', 'sym', 'a.conf'),
                          ('x', 'sym', str(outside)), ('x', 'file', b'archived\n')])
    assert (root / 'etc' / 'h.conf').read_bytes() == b'a\n' and os.stat(root / 'etc' / 'a.conf').st_nlink == 2
    assert os.readlink(root / 'etc' / 'l') == 'a.conf'
    assert outside.read_bytes() == b'keep me\n' and (root / 'x').read_bytes() == b'archived\n'


def test_extract_all_refuses_device_nodes(tmp_path):
    """file_restore makes FIFOs and device nodes again (file_backup archives them); extract_all, for PostgreSQL base
    backups and WAL archives that never hold a device node, still refuses one before writing it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        info = tarfile.TarInfo('base/mem')
        info.type, info.devmajor, info.devminor, info.mode = tarfile.CHRTYPE, 1, 1, 0o666
        tar.addfile(info)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode='r') as tar:
        with pytest.raises(IntegrityError, match='device file'):
            tarsafe.extract_all(tar, str(tmp_path))
    assert not os.path.lexists(tmp_path / 'base' / 'mem')
    assert tarsafe._unsafe_reason(info) is None   # file_restore's per-member check lets it through
