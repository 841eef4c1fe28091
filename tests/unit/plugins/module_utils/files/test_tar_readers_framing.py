"""Every tar reader of the collection refuses a stream that stops parsing midway, or a header no file can have.

file_restore read its archives through ``tarsafe.FramedTarInfo`` (round 10); the other readers opened ``tarfile``
themselves, and ``tarfile`` takes a block that is not a header, found after the first member, for the end of the
archive. A base backup whose checksum matches its manifest (a manifest rewritten with it, an archive made on a
compromised host: the checksum proves only that the bytes are the ones recorded) then extracted its first members
and the PITR started the server on the partial data directory; backup_verify passed a file_backup archive without a
``member_count`` in its manifest, and ran pg_verifybackup on a partial base backup. Each reader now goes through
``tarsafe.read_stream``: the artifact is named, nothing is put in place, pg_verifybackup never runs.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from types import SimpleNamespace
from typing import Any, List

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import jobs
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import backup as pg_backup
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr
from ansible_collections.opsready.operations.plugins.module_utils.files import tarsafe

MANIFEST = b'{"PostgreSQL-Backup-Manifest-Version": 1, "Files": []}'


def _member(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, pax: Any = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, 0o600 if kind == tarfile.REGTYPE else 0o700, 1600000000
    info.uid, info.gid = 0, 0
    if pax:
        info.pax_headers = dict(pax)
    return info


def _tar(entries: List[Any]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _base_entries(pax_c: Any = None) -> List[Any]:
    """A base backup as pg_basebackup's tar, its backup_manifest first (so that what follows a cut is data files)."""
    return [(_member('backup_manifest', len(MANIFEST)), MANIFEST), (_member('PG_VERSION', 3), b'16\n'),
            (_member('global', kind=tarfile.DIRTYPE), None), (_member('global/pg_control', 1024), b'C' * 1024),
            (_member('base', kind=tarfile.DIRTYPE), None), (_member('base/1259', 2, pax=pax_c), b'rr'),
            (_member('base/2608', 2), b'ss')]


def _inserted_between() -> bytes:
    raw = _tar(_base_entries())
    cut = raw.index(b'global/pg_control') // 512 * 512   # its header (after global/'s)
    return raw[:cut] + b'A' * 512 + raw[cut:]


def _pax_size_smaller() -> bytes:
    entries = _base_entries()
    entries[3] = (_member('global/pg_control', 1024, pax={'size': '512'}), b'C' * 1024)
    return _tar(entries)


def _impossible_uid() -> bytes:
    return _tar(_base_entries(pax_c={'uid': str(2 ** 40)}))


def _mtime_nan() -> bytes:
    return _tar(_base_entries(pax_c={'mtime': 'nan'}))


STREAMS = {'bytes inserted between members': _inserted_between, 'pax size smaller than its data': _pax_size_smaller,
           'uid beyond 32 bits': _impossible_uid, 'mtime nan': _mtime_nan}


def test_the_fixtures_are_broken_as_meant():
    """Without the shared reader, tarfile stops early on the framing cases (no error) and lists the others."""
    for case in ('bytes inserted between members', 'pax size smaller than its data'):
        with tarfile.open(fileobj=io.BytesIO(STREAMS[case]()), mode='r|') as tar:
            names = [m.name for m in tar]
        assert 'base/2608' not in names and names[:2] == ['backup_manifest', 'PG_VERSION'], (case, names)


def _manifest(name: str, **data: Any) -> Any:
    return SimpleNamespace(id=name, path='/var/backups/pg/' + name, data=data, position={})


def _serving(monkeypatch, module: Any, raw: bytes) -> None:
    @contextlib.contextmanager
    def open_artifact(manifest, identities=None, verify=False):
        yield io.BytesIO(raw)
    monkeypatch.setattr(module, 'open_artifact', open_artifact)


# -- the shared reader -------------------------------------------------------------------------------------------

def _read_all(raw: bytes) -> List[str]:
    names = []
    with tarsafe.read_stream(io.BytesIO(raw), '/b/x.tar', what='Base backup') as tar:
        for member in tar:
            names.append(member.name)
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                handle.read()
    return names


@pytest.mark.parametrize('case', sorted(STREAMS))
def test_the_shared_reader_refuses_and_names_the_artifact(case):
    with pytest.raises(IntegrityError) as refused:
        _read_all(STREAMS[case]())
    message = str(refused.value)
    assert message.startswith('Base backup /b/x.tar ') and refused.value.details['path'] == '/b/x.tar', message


def test_the_shared_reader_reads_a_whole_archive_and_stops_at_its_end_blocks():
    raw = _tar(_base_entries())
    assert _read_all(raw + b'Z' * 4096) == [e[0].name for e in _base_entries()]
    with pytest.raises(IntegrityError, match='not a tar archive|cannot be read'):
        _read_all(b'x' * 2048)


@pytest.mark.parametrize('position', [0, 1, 3])
def test_values_left_to_the_caller_are_left_for_every_member_the_first_included(position):
    """``values=False`` (file_restore, the file-archive verify) leaves header values no file can have to the caller,
    which lists every such member at once (refuse_ambiguous): the first member too. ``TarFile`` reads its first
    header while it opens, before the context manager could switch the check off: a first member with a uid beyond
    32 bits was refused as "cannot be read as a tar archive" instead."""
    entries = _base_entries()
    info, data = entries[position]
    info.pax_headers = {'uid': str(2 ** 40)}
    with tarsafe.read_stream(io.BytesIO(_tar(entries)), '/b/x.tar', values=False) as tar:
        members = list(tar)
    assert [m.name for m in members] == [e[0].name for e in entries]
    assert members[position].uid == 2 ** 40
    with pytest.raises(IntegrityError, match='header values no file can have'):
        _read_all(_tar(entries))


# -- PITR base backup extraction ---------------------------------------------------------------------------------

@pytest.mark.parametrize('case', sorted(STREAMS))
def test_pitr_refuses_a_base_backup_that_stops_parsing_midway(tmp_path, monkeypatch, case):
    """The PITR extracted the members before the bad block, found PG_VERSION among them and went on to start the
    server on the partial data directory (uid/mtime: an OverflowError/ValueError traceback)."""
    _serving(monkeypatch, pitr, STREAMS[case]())
    with pytest.raises(IntegrityError) as refused:
        pitr._extract_base(_manifest('pg-base-1'), str(tmp_path / 'main.opsready-restore-1'))
    message = str(refused.value)
    assert 'pg-base-1' in message and refused.value.details['path'] == '/var/backups/pg/pg-base-1', message


def test_pitr_extracts_a_whole_base_backup(tmp_path, monkeypatch):
    _serving(monkeypatch, pitr, _tar(_base_entries()))
    staging = tmp_path / 'main.opsready-restore-1'
    pitr._extract_base(_manifest('pg-base-1'), str(staging))
    assert (staging / 'base' / '2608').read_bytes() == b'ss' and (staging / 'global').stat().st_mode & 0o777 == 0o700


# -- backup_verify: base backups (pg_verifybackup) and file_backup archives ---------------------------------------

class _Runner:
    def __init__(self) -> None:
        self.ran: List[Any] = []

    def run(self, argv, what=''):
        self.ran.append(argv)
        return 0, 'backup successfully verified\n', ''


@pytest.mark.parametrize('case', sorted(STREAMS))
def test_backup_verify_refuses_a_base_backup_that_stops_parsing_midway(tmp_path, monkeypatch, case):
    """pg_verifybackup ran on the members before the bad block (a backup_manifest crafted with them passes it)."""
    _serving(monkeypatch, pg_backup, STREAMS[case]())
    monkeypatch.setenv('TMPDIR', str(tmp_path))
    runner = _Runner()
    engine = SimpleNamespace(identities=None, runner=runner, tool=lambda name: '/usr/bin/' + name)
    with pytest.raises(IntegrityError) as refused:
        pg_backup.PostgresEngine._verify_base(engine, _manifest('pg-base-1'))   # type: ignore[arg-type]
    assert '/var/backups/pg/pg-base-1' in str(refused.value), str(refused.value)
    assert runner.ran == [], 'pg_verifybackup ran on a partial base backup'


def test_backup_verify_runs_pg_verifybackup_on_a_whole_base_backup(tmp_path, monkeypatch):
    _serving(monkeypatch, pg_backup, _tar(_base_entries()))
    monkeypatch.setenv('TMPDIR', str(tmp_path))
    runner = _Runner()
    engine = SimpleNamespace(identities=None, runner=runner, tool=lambda name: '/usr/bin/' + name)
    assert pg_backup.PostgresEngine._verify_base(engine, _manifest('pg-base-1'))['engine_check'] == 'pg_verifybackup'
    assert len(runner.ran) == 1


@pytest.mark.parametrize('case', sorted(STREAMS))
def test_backup_verify_refuses_a_file_archive_that_stops_parsing_midway(monkeypatch, case):
    """Without a member_count in its manifest (an older one, or one rewritten), the members before the bad block
    were counted and the archive verified ok."""
    _serving(monkeypatch, jobs, STREAMS[case]())
    with pytest.raises(IntegrityError) as refused:
        jobs._verify_files_artifact(_manifest('files-set-1.tar'))   # type: ignore[arg-type]
    assert '/var/backups/pg/files-set-1.tar' in str(refused.value), str(refused.value)


def test_backup_verify_counts_a_whole_file_archive(monkeypatch):
    _serving(monkeypatch, jobs, _tar(_base_entries()))
    entry = _manifest('files-set-1.tar', member_count=7)
    assert jobs._verify_files_artifact(entry)['members'] == 7   # type: ignore[arg-type]


def test_no_tar_reader_in_plugins_bypasses_the_shared_one():
    """The class: a tar archive opened anywhere in plugins/ other than through tarsafe.read_stream reads it with
    tarfile's own parsing, which ends a stream at its first bad header in silence."""
    import ast
    from pathlib import Path
    root = Path(tarsafe.__file__).resolve().parents[2]
    found = []
    for path in sorted(root.rglob('*.py')):
        if path.name == 'tarsafe.py' and path.parent.name == 'files':
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ('open', 'TarFile', 'is_tarfile') and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id in ('tarfile', 'TarFile'):
                found.append('%s:%d' % (path.relative_to(root), node.lineno))
    assert found == [], 'tar archives opened without tarsafe.read_stream: %s' % found
