"""file_backup's own tar header builder (archive.fast_header / TarWriter) against tarfile's: byte for byte the same
archive, over every kind of member file_backup writes and the limits of each ustar field; anything the fast path
does not handle goes to tarfile."""

from __future__ import annotations

import io
import os
import random
import tarfile

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import archive


def tarfile_bytes(info):
    return info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')


def member(name, kind=tarfile.REGTYPE, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def names(rng):
    alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789._-+@ %=,ABC'
    for length in list(range(1, 8)) + [98, 99, 100, 101, 102, 154, 155, 156, 200, 255, 256, 1000, 5000]:
        parts, total = [], 0
        while total < length:
            part = ''.join(rng.choice(alphabet) for dummy in range(rng.randint(1, 40)))
            parts.append(part)
            total += len(part) + 1
        yield '/'.join(parts)[:length].strip('/') or 'x'


@pytest.mark.parametrize('kind', [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_every_member_kind_name_length_and_pax_record_matches_tarfile(kind):
    rng = random.Random(kind)
    count = 0
    for name in names(rng):
        for linkname in ('', 'target', 'l' * 100, 'l' * 101, 'x/' * 300):
            for uname, gname in (('', ''), ('root', 'root'), ('u' * 32, 'g' * 33), ('u' * 40, 'g' * 31)):
                for pax in ({}, {'mtime': '1796478857.269828058'}, {'mtime': '1.000000001', 'OPSREADY.sparse': '1'},
                            {'SCHILY.xattr.user.note': 'v' * rng.randint(0, 700)}, {'path': 'given/by/pax'}):
                    info = member(name, kind, linkname=linkname if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else '',
                                  uname=uname, gname=gname, mode=rng.choice([0, 0o644, 0o7777, 0o100755]),
                                  uid=rng.choice([0, 1000, 0o7777777]), gid=rng.choice([0, 4, 0o7777777]),
                                  size=rng.choice([0, 1, 511, 512, 513, 0o77777777777]) if kind == tarfile.REGTYPE
                                  else 0,
                                  mtime=rng.choice([0, 1796478857, 0o77777777777]))
                    info.pax_headers = dict(pax)
                    fast = archive.fast_header(info)
                    assert fast is not None, (name, linkname, uname, gname, pax)
                    assert fast == tarfile_bytes(info), (name, linkname, uname, gname, pax)
                    count += 1
    assert count > 1000


@pytest.mark.parametrize('change', [
    dict(name='caf\u00e9/menu.txt'), dict(name='bad\udcffname'), dict(linkname='\u00fc', type=tarfile.SYMTYPE),
    dict(uname='j\u00f6rg'), dict(gname='\u00e9quipe'), dict(uid=0o10000000), dict(gid=-1),
    dict(size=0o100000000000), dict(mtime=-1), dict(mtime=0o100000000000), dict(mtime=1.5),
    dict(type=tarfile.CHRTYPE), dict(type=tarfile.FIFOTYPE), dict(pax_headers={'SCHILY.xattr.user.b': 'v\udcff'}),
    dict(pax_headers={'SCHILY.xattr.user.\u00e9': 'v'}),
])
def test_what_the_fast_path_does_not_handle_goes_to_tarfile_and_comes_out_the_same(change):
    info = member('etc/app.conf', uid=0, gid=0, size=10, mtime=1796478857, uname='root', gname='root')
    for key, value in change.items():
        setattr(info, key, value)
    assert archive.fast_header(info) is None
    out = io.BytesIO()
    tar = archive.TarWriter(out)
    tar.addfile(info)
    tar.close()
    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode='w', format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info)
    assert out.getvalue() == reference.getvalue()


def make_tree(root):
    rng = random.Random(7)
    (root / 'a' / ('deep' * 30)).mkdir(parents=True)
    (root / 'empty').mkdir()
    for index in range(60):
        folder = root / 'a' if index % 3 else root / 'a' / ('deep' * 30)
        path = folder / ('f%03d-%s.txt' % (index, 'n' * rng.randint(0, 120)))
        path.write_bytes(os.urandom(rng.choice([0, 1, 511, 512, 513, 5000, 70000])))
        os.utime(path, ns=(rng.randint(0, 2 ** 33) * 10 ** 9 + rng.choice([0, 1, 999999999]),) * 2)
    os.symlink('f001-' + 'n' * 150, root / 'a' / 'link')
    os.link(root / 'a' / os.listdir(root / 'a')[-1], root / 'a' / 'hard')
    (root / 'sparse').write_bytes(b'')
    with open(root / 'sparse', 'r+b') as handle:
        handle.truncate(3 << 20)
        handle.seek(1 << 20)
        handle.write(b'data')
    try:
        os.setxattr(root / 'a' / 'link', 'user.x', b'1', follow_symlinks=False)
    except OSError:
        pass
    try:
        os.setxattr(root / 'empty', 'user.note', b'hello')
    except OSError:
        pass


def archive_with(tar_factory, root):
    out = io.BytesIO()
    tar = tar_factory(out)
    links = {}
    files = []
    buffer = bytearray(archive.CHUNK)
    for path, st, dir_fd, entry in archive.walk_entries([str(root)]):
        archive.add_entry(tar, path, st, dir_fd, entry, links, files, buffer, [])
    tar.close()
    return out.getvalue(), files


def test_a_whole_tree_archives_byte_for_byte_as_tarfile_would(tmp_path):
    root = tmp_path / 'tree'
    make_tree(root)
    ours, files = archive_with(archive.TarWriter, root)
    theirs, files_tarfile = archive_with(lambda out: tarfile.open(fileobj=out, mode='w', format=tarfile.PAX_FORMAT,
                                                                  copybufsize=archive.CHUNK), root)
    assert ours == theirs
    assert files == files_tarfile
    with tarfile.open(fileobj=io.BytesIO(ours)) as tar:
        assert len(tar.getmembers()) == len(files)
