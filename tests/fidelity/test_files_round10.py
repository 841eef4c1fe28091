"""Fidelity of file_restore, round 10: archives crafted by hand (a consistent manifest beside them: whoever can write
the backup directory can write both), and a directory of the target swapped for a link after the files moved in.

- A tar stream that stops parsing midway (data that is not a header where the next header belongs: a pax ``size``
  smaller than the data it announces, bytes inserted between members) was taken as the end of the archive: the
  members before it were restored, the rest dropped, and the run ended ``ok`` - in check mode too. Encryption does
  not help: age authenticates what the writer sealed, and anyone can seal to a public recipient. A malformed sparse
  map ended in a ValueError traceback. Each is now refused before anything is written, check mode included.
- One path archived twice as different things (a symlink, then a directory of that name with a file below it; ``e/x``
  and ``./e/x``, a file and a symlink): staging kept the last, the move used the first, and the run stopped midway
  (``d/x was not extracted``, a bare ``FileNotFoundError``) after moving part of the archive in - a symlink to
  /etc/shadow included. A hard link to a directory failed with a bare "Operation not permitted". Refused before
  anything moves now; repeats of one entry (old archives of overlapping paths) still restore, the first kept. A
  hard link before its file, to nothing archived or to itself: check mode listed it, the run failed with a bare
  "No such file or directory"; refused alike now.
- Header values no file can have (a pax ``uid`` beyond 32 bits, an ``mtime`` of ``nan`` or ``1e30``; a NUL byte in
  a name or link target, a 300-byte name, the restore root itself as a file or symlink) passed check mode and then
  failed the real run (OverflowError/ValueError tracebacks, "File name too long", "Is a directory"). Refused alike
  in both.
- A source root cannot read (root without CAP_DAC_OVERRIDE stands in for root on a root-squashed NFS export):
  an unreadable directory failed the backup with "Permission denied (sub)", its last name only; a file that became
  unreadable after the readability check, with "Writing <archive> failed". Both name the source in full now.
- Probe (passed on the code as it was): a directory of the target replaced by a link to a directory outside after
  the files were moved in, right before the directories get their archived mode, owner and time.

These call file_restore's module_utils directly (its module wrapper turns OpsReadyError into fail_json).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (  # noqa: E402
    IntegrityError, OpsReadyError)
from ansible_collections.opsready.operations.plugins.module_utils.files import extract  # noqa: E402
from tests.harness.hostile_archives import (  # noqa: E402  (the cases, shared with the unit and integration layers)
    AMBIGUOUS, NAME, NAMES, OUT_OF_RANGE, STREAMS, badly_named, crafted, info, out_of_range, tar_bytes, three)


def restore(backups: Path, target: Path, check_mode: bool = False, identities=None) -> dict:
    return extract.restore_archive(extract.find_archive(str(backups), 'set'), str(target), check_mode=check_mode,
                                   identities=identities)


def listing(top: Path) -> list:
    return sorted(os.path.relpath(os.path.join(here, n), top) for here, dirs, files in os.walk(top)
                  for n in dirs + files)


# -- a tar stream that stops parsing midway ---------------------------------------------------------------------

@pytest.fixture(scope='module')
def age_key():
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    secret = encryption.generate_identity()
    identities = encryption.parse_identities(secret)
    return identities, identities[0].recipient


@pytest.mark.parametrize('encrypted', [False, True], ids=['plain', 'age'])
@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('stream', sorted(STREAMS))
def test_a_tar_stream_that_stops_parsing_midway_is_refused(tmp_path, age_key, stream, check_mode, encrypted):
    identities, recipient = age_key
    raw = STREAMS[stream]()
    with tarfile.open(fileobj=io.BytesIO(raw), mode='r|') as tar:
        try:
            seen = [m.name for m in tar]
        except (tarfile.TarError, ValueError):
            seen = None
    assert seen != ['a', 'b', 'c']   # the fixture is broken as meant: tarfile alone stops early (or fails)
    crafted(tmp_path / 'b', raw, recipient if encrypted else '')
    target = tmp_path / 't'
    target.mkdir()
    with pytest.raises(IntegrityError) as failed:
        restore(tmp_path / 'b', target, check_mode=check_mode, identities=identities if encrypted else None)
    message = str(failed.value)
    assert NAME in message and 'Nothing was written' in message, message
    assert listing(target) == []


def test_a_well_formed_archive_with_bytes_after_its_end_still_restores(tmp_path):
    """What follows the end-of-archive blocks is not read (GNU tar does the same): not refused."""
    crafted(tmp_path / 'b', three() + b'Z' * 4096)
    restored = restore(tmp_path / 'b', tmp_path / 't')['restored']
    assert sorted(os.path.basename(p) for p in restored) == ['a', 'b', 'c']


# -- one path archived twice as different things ----------------------------------------------------------------

@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case', sorted(AMBIGUOUS))
def test_a_path_archived_as_two_things_is_refused_before_anything_moves(tmp_path, case, check_mode):
    crafted(tmp_path / 'b', tar_bytes(AMBIGUOUS[case]))
    target = tmp_path / 't'
    target.mkdir()
    with pytest.raises(IntegrityError) as failed:
        restore(tmp_path / 'b', target, check_mode=check_mode)
    message = str(failed.value)
    assert NAME in message and 'nothing' in message.lower(), message
    assert listing(target) == [], 'moved in before the refusal: %s' % listing(target)


def test_repeats_of_one_entry_restore_the_first_and_settle(tmp_path):
    """The same name twice as the same kind (old archives of overlapping paths; a file read twice): the first is
    what check mode compares, what the restore puts in place, and a second run finds nothing to change."""
    crafted(tmp_path / 'b', tar_bytes([
        (info('f', size=2), b'AA'), (info('./f', size=2, mode=0o4755), b'BB'), (info('f', size=3), b'CCC')]))
    target = tmp_path / 't'
    assert [os.path.basename(p) for p in restore(tmp_path / 'b', target, check_mode=True)['restored']] == ['f']
    restore(tmp_path / 'b', target)
    assert (target / 'f').read_bytes() == b'AA' and (target / 'f').stat().st_mode & 0o7777 == 0o644
    assert restore(tmp_path / 'b', target, check_mode=True)['restored'] == []
    assert restore(tmp_path / 'b', target)['restored'] == []


# -- header values no file can have -----------------------------------------------------------------------------

@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case', sorted(OUT_OF_RANGE))
def test_header_values_no_file_can_have_are_refused_alike_in_check_mode(tmp_path, case, check_mode):
    crafted(tmp_path / 'b', tar_bytes(out_of_range(case)))
    target = tmp_path / 't'
    target.mkdir()
    with pytest.raises(IntegrityError) as failed:
        restore(tmp_path / 'b', target, check_mode=check_mode)
    message = str(failed.value)
    assert NAME in message and "'x'" in message and 'Nothing was written' in message, message
    assert listing(target) == []


@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case', sorted(NAMES))
def test_names_no_file_can_have_are_refused_alike_in_check_mode(tmp_path, case, check_mode):
    """Check mode listed each as to restore; the real run then failed with "embedded null byte" (a ValueError
    traceback), "File name too long" or "Is a directory" from the staging directory."""
    crafted(tmp_path / 'b', tar_bytes(badly_named(case)))
    target = tmp_path / 't'
    target.mkdir()
    with pytest.raises(IntegrityError) as failed:
        restore(tmp_path / 'b', target, check_mode=check_mode)
    message = str(failed.value)
    assert NAME in message and 'Nothing was written' in message, message
    assert listing(target) == []


# -- probe: a target directory swapped for a link before the directories are settled -----------------------------

def test_a_directory_swapped_for_a_link_before_it_is_settled_changes_nothing_outside(tmp_path, monkeypatch):
    outside = tmp_path / 'outside'
    outside.mkdir(mode=0o700)
    os.utime(outside, ns=(5, 5))
    before = os.lstat(outside)
    crafted(tmp_path / 'b', tar_bytes([(info('app', tarfile.DIRTYPE, mode=0o777), None),
                                       (info('app/conf', size=2), b'hi')]))
    target = tmp_path / 't'
    real = extract._staged_stat
    swapped = []

    def staged_stat(staging_fd, parts, member, archive):
        if parts == ['app'] and (target / 'app' / 'conf').exists() and not swapped:
            shutil.rmtree(target / 'app')
            os.symlink(str(outside), target / 'app')
            swapped.append(True)
        return real(staging_fd, parts, member, archive)

    monkeypatch.setattr(extract, '_staged_stat', staged_stat)
    with pytest.raises(OpsReadyError, match='outside the restore root'):
        restore(tmp_path / 'b', target)
    assert swapped
    after = os.lstat(outside)
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (before.st_mode, before.st_uid, before.st_mtime_ns)
    assert os.listdir(outside) == []


# -- a source root cannot read (an NFS export with root_squash, a FUSE mount without allow_root) --------------------

_SQUASHED = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import archive
src, dest, steps = sys.argv[2], sys.argv[3], sys.argv[4].split(',')
try:
    archive.check_sources([src])
    if 'fingerprint' in steps:
        archive.tree_fingerprint([src])
    archive.prepare_dest(dest, False)
    archive.create_archive([src], dest, 'set', compression='none')
    print(json.dumps({'ok': True}))
except OpsReadyError as exc:
    print(json.dumps({'error': 'OpsReadyError', 'msg': exc.message}))
except OSError as exc:
    # what file_backup's module says of a bare OSError
    print(json.dumps({'error': 'OSError', 'msg': 'File backup failed: %s (%s).' % (exc.strerror, exc.filename)}))
'''


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('setpriv'), reason='needs root and setpriv')
@pytest.mark.parametrize('unreadable, steps', [('directory', 'fingerprint'), ('directory', 'archive'),
                                               ('file', 'archive')])
def test_a_source_root_cannot_read_is_named_in_full(tmp_path, unreadable, steps):
    """Root without CAP_DAC_OVERRIDE/READ_SEARCH stands in for root on a root-squashed export: the walk's EACCES
    was reported as "Permission denied (sub)" (the last name only, in a tree of many ``sub``) or as "Writing
    <archive> failed" (the archive blamed for a source it could not read). ``archive`` alone: the file or directory
    became unreadable after file_backup's readability check."""
    import subprocess
    src = tmp_path / 'src'
    (src / 'one' / 'sub').mkdir(parents=True)
    (src / 'two' / 'sub').mkdir(parents=True)
    (src / 'two' / 'sub' / 'app.conf').write_text('x\n')
    bad = src / 'two' / 'sub' if unreadable == 'directory' else src / 'two' / 'sub' / 'app.conf'
    os.chmod(bad, 0)
    dest = tmp_path / 'backups'
    done = subprocess.run(['setpriv', '--bounding-set=-dac_override,-dac_read_search', sys.executable, '-c',
                           _SQUASHED, str(Path(__file__).resolve().parents[2] / 'build'), str(src), str(dest),
                           steps], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said.get('error') == 'OpsReadyError', said
    assert str(bad) in said['msg'] and 'Writing' not in said['msg'], said['msg']
    assert 'root' in said['msg'] and 'nothing was archived' in said['msg'], said['msg']
    assert not dest.exists() or os.listdir(dest) == []
