"""files.tarsafe: FramedTarInfo (a tar stream that stops parsing midway is an error, not its end) and
refuse_ambiguous (one path archived as two things, a hard link to a directory, header values no file can have)."""

from __future__ import annotations

import io
import tarfile

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.files import tarsafe


def member(name, kind=tarfile.REGTYPE, link='', **values):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    for key, value in values.items():
        setattr(info, key, value)
    return info


def raw(*names) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b'abc'))
    return buf.getvalue()


def names(data: bytes) -> list:
    with tarfile.open(fileobj=io.BytesIO(data), mode='r|', tarinfo=tarsafe.FramedTarInfo) as tar:
        return [m.name for m in tar]


def test_a_whole_archive_lists_every_member_and_ends_at_its_end_blocks():
    assert names(raw('a', 'b')) == ['a', 'b']
    assert names(raw('a', 'b') + b'junk after the end' * 100) == ['a', 'b']
    assert names(raw('a', 'b')[:2048]) == ['a', 'b']   # no end blocks: the end of the data is the end, as in tar


def test_a_block_that_is_not_a_header_after_the_first_member_is_an_error():
    data = raw('a', 'b')
    with pytest.raises(tarfile.ReadError, match='byte 1024'):
        names(data[:1024] + b'x' * 512 + data[1024:])
    with pytest.raises(tarfile.ReadError):   # not a tar at all: tarfile's own refusal, unchanged
        names(b'x' * 1024)


@pytest.mark.parametrize('name, key', [('a/b', 'a/b'), ('./a/b', 'a/b'), ('a//b/', 'a/b'), ('.', '.'), ('./', '.')])
def test_path_key(name, key):
    assert tarsafe.path_key(name) == key


def test_repeats_of_one_entry_pass():
    tarsafe.refuse_ambiguous([
        member('d', tarfile.DIRTYPE), member('./d', tarfile.DIRTYPE), member('d/f'),
        member('d/f', tarfile.LNKTYPE, 'd/f'),
        member('s', tarfile.SYMTYPE, 'x'), member('s', tarfile.SYMTYPE, './x'),
        member('old', mtime=-86400 * 365), member('far', mtime=2 ** 34), member('nobody', uid=2 ** 32 - 2),
        member('./', tarfile.DIRTYPE), member('x' * 255), member('l', tarfile.SYMTYPE, 'y' * 4095)], 'a.tar')


@pytest.mark.parametrize('members, said', [
    ([member('s', tarfile.SYMTYPE, '/etc'), member('s', tarfile.DIRTYPE)], 'as a symlink to /etc and as a directory'),
    ([member('s', tarfile.SYMTYPE, 'a'), member('s', tarfile.SYMTYPE, 'b')], 'as a symlink to a and as a symlink to b'),
    ([member('d', tarfile.DIRTYPE), member('h', tarfile.LNKTYPE, './d')], 'a hard link to the directory'),
    ([member('f', uid=-5)], 'uid -5'),
    ([member('f', gid=2 ** 40)], 'gid 1099511627776'),
    ([member('f', mtime=float('nan'))], 'mtime nan'),
    ([member('f', mtime=1e30)], 'mtime 1e+30'),
    ([member('h', tarfile.LNKTYPE, 'f'), member('f')], 'which the archive does not hold before it'),
    ([member('h', tarfile.LNKTYPE, 'h')], 'a hard link to h, which'),
    ([member('s', tarfile.SYMTYPE, 'x'), member('h', tarfile.LNKTYPE, 's')], 'a hard link to the symlink s'),
    ([member('a\0b')], 'a NUL byte in its name'),
    ([member('s', tarfile.SYMTYPE, 'a\0b')], 'a NUL byte in its link target'),
    ([member('d/' + 'x' * 256)], 'a name of 256 bytes'),
    ([member('s', tarfile.SYMTYPE, 'x' * 4096)], 'a symlink target of 4096 bytes'),
    ([member('./', tarfile.SYMTYPE, '/etc')], 'the restore root itself as a symlink'),
])
def test_what_no_file_backup_writes_is_refused(members, said):
    with pytest.raises(IntegrityError, match='a.tar') as refused:
        tarsafe.refuse_ambiguous(members, 'a.tar', outcome='Nothing was written.')
    assert said in str(refused.value) and str(refused.value).endswith('. Nothing was written.')
    # without an outcome (backup_verify, which writes nothing in any case), the same words less that one
    with pytest.raises(IntegrityError, match='a.tar') as verified:
        tarsafe.refuse_ambiguous(members, 'a.tar')
    assert str(verified.value) + ' Nothing was written.' == str(refused.value)
    assert 'othing was written' not in str(verified.value)
