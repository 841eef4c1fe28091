"""backup_verify of a file_backup archive fails exactly when file_restore refuses the archive's member list.

backup_verify read a file archive to its end (framing, header values) and passed it; file_restore then refused the
same archive up front: one path archived as two things, a hard link to a directory / before its file / to nothing /
to itself / to a symlink, a member under a non-directory member, a member escaping the root, names no file can have.
"Proven restorable" was not: the operator learnt at restore time. Both now run one check of the member list
(``tarsafe.refuse_unrestorable``), and backup_verify fails with file_restore's own message, naming the archive.

The archives are file_restore's own crafted fixtures (tests/harness/hostile_archives.py, which the fidelity rounds 10
and 11 run file_restore on), beside a manifest whose checksum matches them: whoever can write the backup directory can
write both.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Dict

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import jobs
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.files import extract, tarsafe
from tests.harness.hostile_archives import AMBIGUOUS, NAME, REFUSED, STREAMS, UNDER, crafted, info, refused_entries, \
    tar_bytes


# what file_restore adds to a refusal of the archive, before anything is written (not said by backup_verify)
WRITTEN_NOTHING = 'Nothing was written.'

# what file_restore restores: repeats of one entry (archives of overlapping paths), a directory after its content, a
# path whose directory is not archived, a hard link after its file
RESTORABLE = {
    'repeats of one entry': [(info('f', size=2), b'AA'), (info('./f', size=2, mode=0o4755), b'BB'),
                             (info('f', size=3), b'CCC')],
    'directories in any order': [
        (info('d', tarfile.DIRTYPE, mode=0o755), None), (info('d/x', size=2), b'xx'), (info('late/y', size=2), b'yy'),
        (info('late', tarfile.DIRTYPE, mode=0o750), None), (info('loose/deep/z', size=2), b'zz')],
    'a hard link after its file, an absolute symlink': [
        (info('f', size=2), b'ff'), (info('h', tarfile.LNKTYPE, link='f'), None),
        (info('s', tarfile.SYMTYPE, link='/etc/hosts'), None)],
}


def _restore_refusal(backups: Path, target: Path) -> str:
    target.mkdir()
    with pytest.raises(IntegrityError) as refused:
        extract.restore_archive(extract.find_archive(str(backups), 'set'), str(target), check_mode=True)
    return str(refused.value)


@pytest.mark.parametrize('case', REFUSED)
def test_backup_verify_fails_with_the_refusal_file_restore_gives(tmp_path, case):
    backups = tmp_path / 'b'
    crafted(backups, tar_bytes(refused_entries(case)))
    refusal = _restore_refusal(backups, tmp_path / 't')
    verified = jobs.verify_path(str(backups), record=False)
    assert [r['ok'] for r in verified['results']] == [False], json.dumps(verified['results'], default=str)
    said = verified['results'][0]['error']
    # file_restore's own words; only file_restore, refusing before it writes anything, says so (a verify writes
    # nothing in any case: "Nothing was written" there read as if it might have)
    assert NAME in said and refusal == said + ' ' + WRITTEN_NOTHING, (said, refusal)
    assert 'nothing was written' not in said.lower() and 'put in place' not in said, said
    assert verified['failed'][0]['error'] == said


@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case', sorted(STREAMS))
def test_a_tar_stream_that_stops_parsing_midway_is_told_alike_by_both(tmp_path, case, check_mode):
    """backup_verify said "File archive X cannot be read as a tar archive ...", file_restore "Archive X ...": one
    archive, one message (naming it and what to do), file_restore adding that it wrote nothing."""
    backups = tmp_path / 'b'
    crafted(backups, STREAMS[case]())
    target = tmp_path / 't'
    target.mkdir()
    with pytest.raises(IntegrityError) as refused:
        extract.restore_archive(extract.find_archive(str(backups), 'set'), str(target), check_mode=check_mode)
    verified = jobs.verify_path(str(backups), record=False)
    said = verified['failed'][0]['error']
    assert said.startswith('Archive %s cannot be read as a tar archive (' % (backups / NAME)), said
    assert said.endswith('do not restore from it.'), said
    assert str(refused.value) == said + ' ' + WRITTEN_NOTHING, (str(refused.value), said)


def test_a_refused_archive_is_recorded_as_failed_verification(tmp_path):
    """record=true records the failed verification in the manifest: retention and file_restore pass it over."""
    backups = tmp_path / 'b'
    crafted(backups, tar_bytes(AMBIGUOUS['a hard link to a directory']))
    assert jobs.verify_path(str(backups))['failed']
    data = json.loads((backups / (NAME + '.manifest.json')).read_text())
    assert data['verification']['ok'] is False
    assert 'hard link to the directory' in data['verification']['checks']['error']


@pytest.mark.parametrize('case', sorted(RESTORABLE))
def test_what_file_restore_restores_still_verifies(tmp_path, case):
    backups = tmp_path / 'b'
    crafted(backups, tar_bytes(RESTORABLE[case]))
    extract.restore_archive(extract.find_archive(str(backups), 'set'), str(tmp_path / 't'))
    verified = jobs.verify_path(str(backups), record=False)
    assert [r['ok'] for r in verified['results']] == [True], verified['results']
    assert verified['results'][0]['checks']['members'] == len(RESTORABLE[case])


def test_an_encrypted_archive_is_checked_when_verified_deeply(tmp_path):
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    identities = encryption.parse_identities(encryption.generate_identity())
    backups = tmp_path / 'b'
    crafted(backups, tar_bytes(UNDER['a symlink then a member below it']), recipient=identities[0].recipient)
    shallow = jobs.verify_path(str(backups), record=False)
    assert shallow['failed'] == []   # the checksum alone: the member list is not read without the key
    deep = jobs.verify_path(str(backups), record=False, deep=True, identities=identities)
    assert 'a directory on its path is a symlink or not a directory' in deep['failed'][0]['error']


# -- an extraction filter's refusal (Python 3.12+, the backports) ------------------------------------------------------

class _OutsideDestination(tarfile.TarError):
    """What tarfile.OutsideDestinationError is: a FilterError (a TarError) carrying the member and the path."""

    def __init__(self, tarinfo: tarfile.TarInfo, path: str) -> None:
        self.tarinfo, self._path = tarinfo, path
        super().__init__('%r would be extracted to %r, which is outside the destination' % (tarinfo.name, path))


def test_an_extraction_filter_refusal_names_the_member_and_what_is_wrong(monkeypatch):
    """It read "Base backup ... cannot be read as a tar archive (OutsideDestinationError: ...)": the archive reads
    fine; one member is refused."""
    monkeypatch.setattr(tarsafe, '_FILTER_ERRORS', (_OutsideDestination,))
    raw = tar_bytes([(info('ok', size=2), b'ok'), (info('x', size=2), b'hi')])
    with pytest.raises(IntegrityError) as refused:
        with tarsafe.read_stream(io.BytesIO(raw), '/b/base.tar', what='Base backup', outcome='No server was started.') \
                as tar:
            for member in tar:
                if member.name == 'x':
                    raise _OutsideDestination(member, '/proc/self/fd/7/x')
    said = str(refused.value)
    assert 'cannot be read as a tar archive' not in said, said
    assert said.startswith("Base backup /b/base.tar holds a member the tar extraction filter refuses: 'x' ("), said
    assert 'outside' in said and said.endswith('No server was started.'), said
    assert refused.value.details['path'] == '/b/base.tar' and refused.value.details['unsafe_members'] == ['x']


def test_what_is_refused_is_one_check_shared_by_file_restore_and_backup_verify(tmp_path, monkeypatch):
    """Not a copy: replacing tarsafe.refuse_unrestorable changes both."""
    calls: Dict[str, int] = {}

    def refuse(members, archive, **told):
        calls[archive] = calls.get(archive, 0) + 1
        raise IntegrityError('refused by the shared check', path=archive)
    monkeypatch.setattr(tarsafe, 'refuse_unrestorable', refuse)
    backups = tmp_path / 'b'
    crafted(backups, tar_bytes(RESTORABLE['repeats of one entry']))
    assert 'refused by the shared check' in _restore_refusal(backups, tmp_path / 't')
    assert jobs.verify_path(str(backups), record=False)['failed'][0]['error'] == 'refused by the shared check'
    assert list(calls.values()) == [2]
