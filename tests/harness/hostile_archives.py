"""Hand-crafted file_backup archives file_restore refuses (and backup_verify with it), and the helpers that write them.

One place for the cases, imported by every layer that runs them: the fidelity rounds (tests/fidelity/test_files_round10
and 11: file_restore, real run and check mode), the unit test of backup_verify's shared refusal
(tests/unit/.../files/test_verify_refuses_unrestorable.py) and the playbook run of both modules
(tests/integration/test_backup_verify_unrestorable_files.py). The unit and integration layers imported them from the
fidelity modules, so running them depended on tests/fidelity being importable as it was.

Each archive is written beside a manifest whose size and SHA-256 match it (``crafted``): whoever can write the backup
directory can write both, so only the checks of what the archive holds can refuse it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

NAME = 'set-20261129T000000000000Z.tar'

Entries = List[Tuple[tarfile.TarInfo, Optional[bytes]]]


def info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, mode: int = 0o644, link: str = '',
         pax: Any = None) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.size, member.mode, member.linkname = kind, size, mode, link
    member.uid = member.gid = 0
    member.mtime = 1_600_000_000
    if pax:
        member.pax_headers = dict(pax)
    return member


def tar_bytes(entries: Entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for member, data in entries:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def crafted(backups: Path, raw: bytes, recipient: str = '') -> None:
    """``raw`` as a file backup of set ``set`` in ``backups`` with a manifest that agrees with it (size, SHA-256;
    encrypted to ``recipient`` when given)."""
    backups.mkdir(parents=True, exist_ok=True)
    common = {'engine': 'files', 'kind': 'files', 'database': 'set', 'started': '2026-11-29T00:00:00Z',
              'finished': '2026-11-29T00:00:01Z'}
    if recipient:
        from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
        name = NAME + '.age'
        with ArtifactWriter(str(backups / name), compression='none', recipients=[recipient]) as writer:
            writer.write(raw)
            stored = writer.commit()
        manifest = dict(stored, **common)
    else:
        name = NAME
        (backups / name).write_bytes(raw)
        manifest = dict(common, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(), compression='none')
    manifest.update(id=name, artifact=name)
    (backups / (name + '.manifest.json')).write_text(json.dumps(manifest))


# -- a tar stream that stops parsing midway (refused while it is read: tarsafe.read_stream) ----------------------

def _three(pax_b: Any = None) -> Entries:
    return [(info('a', size=2), b'aa'), (info('b', size=1024, pax=pax_b), b'b' * 1024), (info('c', size=2), b'cc')]


def three() -> bytes:
    """The well-formed archive the framing cases break: members a, b, c."""
    return tar_bytes(_three())


def _inserted_between() -> bytes:
    raw = tar_bytes(_three())
    return raw[:1024] + b'A' * 512 + raw[1024:]     # after a's header and data block


def _pax_size_smaller() -> bytes:
    # b's pax header says 512 bytes where its ustar header and the data say 1024: the parser lands in b's data
    # where c's header belongs
    return tar_bytes(_three(pax_b={'size': '512'}))


def _sparse_map_malformed() -> bytes:
    pax = {'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'x',
           'GNU.sparse.realsize': '4096'}
    # the map announces one segment and the block ends after its count
    return tar_bytes([(info('a', size=2), b'aa'), (info('x', size=2, pax=pax), b'1\n')])


STREAMS = {'bytes inserted between members': _inserted_between, 'pax size smaller than its data': _pax_size_smaller,
           'sparse map malformed': _sparse_map_malformed}


# -- refused on the member list (tarsafe.refuse_unrestorable) ---------------------------------------------------

# one path archived twice as different things, or a hard link file_restore cannot make
AMBIGUOUS: Dict[str, Entries] = {
    'symlink then a directory of that name': [
        (info('d', tarfile.SYMTYPE, link='/etc'), None), (info('d', tarfile.DIRTYPE, mode=0o755), None),
        (info('d/x', size=2), b'hi')],
    'a file and a symlink spelled ./e/x': [
        (info('e', tarfile.DIRTYPE, mode=0o755), None), (info('e/x', size=2), b'AA'),
        (info('./e/x', tarfile.SYMTYPE, link='/etc/shadow'), None)],
    'a directory then a file of that name': [
        (info('k', tarfile.DIRTYPE, mode=0o755), None), (info('k', size=2), b'hi')],
    'a hard link to a directory': [
        (info('e', tarfile.DIRTYPE, mode=0o755), None), (info('h', tarfile.LNKTYPE, link='e'), None)],
    'a hard link before its file': [(info('h', tarfile.LNKTYPE, link='f'), None), (info('f', size=2), b'hi')],
    'a hard link to nothing archived': [(info('ok', size=2), b'ok'), (info('h', tarfile.LNKTYPE, link='gone'), None)],
    'a hard link to itself': [(info('ok', size=2), b'ok'), (info('h', tarfile.LNKTYPE, link='h'), None)],
}

HARDLINK_TO_A_SYMLINK: Dict[str, Entries] = {
    'a hard link to a symlink': [(info('s', tarfile.SYMTYPE, link='/etc/shadow'), None),
                                 (info('h', tarfile.LNKTYPE, link='s'), None)]}

# a member below one that is not a directory (either order)
UNDER: Dict[str, Entries] = {
    'a file then a member below it': [(info('e', size=2), b'ee'), (info('e/x', size=2), b'xx')],
    'a symlink then a member below it': [(info('e', tarfile.SYMTYPE, link='/etc'), None),
                                         (info('e/x', size=2), b'xx')],
    'a FIFO then a member two levels below it': [(info('e', tarfile.FIFOTYPE), None), (info('e/x/y', size=2), b'yy')],
    'a file then a directory below it': [(info('e', size=2), b'ee'), (info('e/x', tarfile.DIRTYPE, mode=0o755), None)],
    'a hard link then a member below it': [(info('f', size=2), b'ff'), (info('e', tarfile.LNKTYPE, link='f'), None),
                                           (info('e/x', size=2), b'xx')],
    'a member then a file at its directory': [(info('e/x', size=2), b'xx'), (info('e', size=2), b'ee')],
    'a member then a symlink at its directory': [(info('e/x', size=2), b'xx'),
                                                 (info('e', tarfile.SYMTYPE, link='/etc'), None)],
}

ESCAPING: Dict[str, Entries] = {
    'an absolute path': [(info('/etc/cron.d/x', size=2), b'hi')],
    'a parent directory reference': [(info('a/../../x', size=2), b'hi')],
    'a hard link outside the root': [(info('h', tarfile.LNKTYPE, link='../etc/shadow'), None)],
    'a relative symlink outside the root': [(info('s', tarfile.SYMTYPE, link='../../etc'), None)],
}

# header values no file can have: the pax headers of member 'x' (after a sound member 'ok')
OUT_OF_RANGE = {'uid beyond 32 bits': {'uid': str(2 ** 40)}, 'mtime nan': {'mtime': 'nan'},
                'mtime 1e30': {'mtime': '1e30'}, 'gid negative': {'gid': '-5'}}

# names no file can have: the member, after a sound member 'ok'
NAMES = {'NUL in a name': info('x', size=2, pax={'path': 'a\0b'}),
         'NUL in a link target': info('x', tarfile.SYMTYPE, pax={'linkpath': 'a\0b'}),
         'a 300-byte name': info('d/' + 'x' * 300, size=2),
         'the root as a file': info('.', size=2),
         'the root as a symlink': info('./', tarfile.SYMTYPE, link='/etc')}


def out_of_range(case: str) -> Entries:
    return [(info('ok', size=2), b'ok'), (info('x', size=2, pax=OUT_OF_RANGE[case]), b'hi')]


def badly_named(case: str) -> Entries:
    member = NAMES[case]
    return [(info('ok', size=2), b'ok'), (member, b'hi' if member.isreg() else None)]


def refused_entries(case: str) -> Entries:
    """The entries of any member-list case above, by its name."""
    for cases in (AMBIGUOUS, HARDLINK_TO_A_SYMLINK, UNDER, ESCAPING):
        if case in cases:
            return cases[case]
    if case in OUT_OF_RANGE:
        return out_of_range(case)
    return badly_named(case)


REFUSED = sorted(list(AMBIGUOUS) + list(HARDLINK_TO_A_SYMLINK) + list(UNDER) + list(ESCAPING) + list(OUT_OF_RANGE)
                 + list(NAMES))
