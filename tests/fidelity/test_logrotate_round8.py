"""Fidelity of log_rotate, round 8: every error names the file an operator knows, never a descriptor's
``/proc/self/fd/N`` path nor a bare name relative to a directory descriptor.

log_rotate works relative to the log directory's descriptor (``safefs.LogDir``) and hands ``ArtifactWriter`` a
``/proc/self/fd/<dir>/<name>`` path; an ``OSError`` raised there carried that path (or the bare name), and the
messages showed it, or named no file at all (ENOSPC while the compressed copy was written named the plain copy
only). Each error path is provoked for real: a full file system (a small tmpfs), a ``.partial`` name taken by a
directory, a rotated copy this user may not read, a directory it may not write (``su`` to another user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation  # noqa: E402

ROOT = os.geteuid() == 0
SUFFIX = {'zstd': '.zst', 'gzip': '.gz'}
NOBODY = 65534


def rotate(log: Path, state: Path, compression: str, **policy) -> dict:
    rotation = Rotation([str(log)], Policy(size=1, compress=True, compression=compression, rotate=3, **policy),
                        str(state), check_dirs=False)
    return rotation.run()


def failure(log: Path, state: Path, compression: str, **kw) -> str:
    with pytest.raises(OpsReadyError) as caught:
        rotate(log, state, compression, **kw)
    message = caught.value.message
    assert '/proc/self/fd' not in message, message
    return message


@pytest.fixture
def open_base():
    """A directory another user can reach (tmp_path's parents are 0700); removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix='opsready-lr8-', dir='/tmp'))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KiB tmpfs (unmounted afterwards); skips where mounting is not allowed."""
    point = tmp_path / 'small'
    point.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', str(point)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip('cannot mount a tmpfs here (%s)' % done.stderr.decode(errors='replace').strip())
    yield point
    subprocess.run(['umount', '-l', str(point)], check=False)


@pytest.mark.parametrize('compression', ['zstd', 'gzip'])
def test_a_full_file_system_names_the_compressed_copy_being_written(tmp_path, tmpfs, compression):
    """150 KB of incompressible log on a 256 KiB file system: rotated (a rename needs no space), then its compressed
    copy does not fit. The error named the plain copy and "No space left on device", not the file that could not
    be written; it now names the ``.partial`` by its path, the plain copy is kept and no partial is left."""
    log = tmpfs / 'app.log'
    log.write_bytes(os.urandom(150_000))
    message = failure(log, tmp_path / 'state.json', compression)
    partial = '%s.1%s.partial' % (log, SUFFIX[compression])
    assert 'No space left on device' in message and partial in message, message
    assert sorted(os.listdir(tmpfs)) == ['app.log', 'app.log.1'], os.listdir(tmpfs)
    assert (tmpfs / 'app.log.1').stat().st_size == 150_000


@pytest.mark.parametrize('compression', ['zstd', 'gzip'])
def test_a_partial_name_taken_by_a_directory_is_named_by_its_path(tmp_path, compression):
    """A directory at ``app.log.1.zst.partial`` (the next rotation's leftover name): the rotation is refused
    naming it; the message said "Is a directory (app.log.1.zst.partial)", a bare name with no directory."""
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    log.write_text('line\n')
    partial = logs / ('app.log.1%s.partial' % SUFFIX[compression])
    partial.mkdir()
    (partial / 'inside').write_text('x')
    message = failure(log, tmp_path / 'state.json', compression)
    assert str(partial) in message, message
    assert log.read_text() == 'line\n' and (partial / 'inside').exists()


@pytest.mark.skipif(not ROOT, reason='acting as another user needs root')
@pytest.mark.parametrize('compression', ['zstd', 'gzip'])
def test_a_rotated_copy_the_user_may_not_read_is_named(open_base, compression):
    """``su`` to another user (nobody) in a directory it may write, whose log is write-only (0200: a writer that
    appends, never reads): rotated, then its compression is refused naming the rotated copy by its path (the open
    goes through /proc/self/fd/N, which the error carried), the copy kept as it is."""
    logs = open_base / 'logs'
    logs.mkdir()
    os.chown(logs, NOBODY, NOBODY)
    log = logs / 'app.log'
    log.write_text('line\n')
    os.chown(log, NOBODY, NOBODY)
    os.chmod(log, 0o200)
    rotation = Rotation([str(log)], Policy(size=1, compress=True, compression=compression, rotate=3),
                        str(open_base / 'state.json'), check_dirs=False, su_uid=NOBODY, su_gid=NOBODY)
    with pytest.raises(OpsReadyError) as caught:
        rotation.run()
    message = caught.value.message
    assert '/proc/self/fd' not in message, message
    assert 'Permission denied' in message and '(%s)' % (logs / 'app.log.1') in message, message
    assert (logs / 'app.log.1').read_text() == 'line\n'


@pytest.mark.skipif(not ROOT, reason='acting as another user needs root')
@pytest.mark.parametrize('mode', ['create', 'copytruncate'])
def test_a_directory_the_user_may_not_write_is_named(open_base, mode):
    """``su`` to nobody in root's 0755 directory: refused before anything is done, naming the directory. A guard
    (passed before)."""
    tmp_path = open_base
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    log.write_text('line\n')
    os.chown(log, NOBODY, NOBODY)
    rotation = Rotation([str(log)], Policy(size=1, compress=True, compression='gzip', rotate=3, mode=mode),
                        str(tmp_path / 'state.json'), check_dirs=False, su_uid=NOBODY, su_gid=NOBODY)
    with pytest.raises(OpsReadyError) as caught:
        rotation.run()
    message = caught.value.message
    assert '/proc/self/fd' not in message, message
    assert 'not writable' in message and str(logs) in message, message
    assert os.listdir(logs) == ['app.log'] and log.read_text() == 'line\n'


LEGAL = ['with space.log', 'new\nline.log', '-leading-dash.log', 'unicod\u00e9-\u2603.log', 'l' * 200]
TOO_LONG = ['x' * 255, 'y' * 240, 'z' * (255 - len('.1.zst.partial') + 1)]


@pytest.mark.parametrize('name', LEGAL + TOO_LONG, ids=['space', 'newline', 'dash', 'unicode', '200-bytes',
                                                        '255-bytes', '240-bytes', 'partial-256'])
def test_every_legal_log_name_rotates_or_is_refused_up_front_in_check_mode_too(tmp_path, name):
    """A log whose rotated names fit the file system's 255 bytes rotates and compresses, check mode planning the
    same (a guard). A longer one (a 255-byte log name; a 242-byte one whose ``.1.zst.partial`` is 256 bytes) failed
    midway - "File name too long" naming a temporary ``.<name>.<random>.new`` the operator never heard of, or
    rotated and then left uncompressed: now refused before anything is done, naming the log and the name that does
    not fit, check mode with the same message."""
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / name
    log.write_text('line\n')

    def run(check_mode):
        return Rotation([str(log)], Policy(size=1, compress=True, compression='zstd', rotate=3),
                        str(tmp_path / 'state.json'), check_dirs=False).run(check_mode=check_mode)
    if name in TOO_LONG:
        messages = []
        for check_mode in (True, False):
            with pytest.raises(OpsReadyError) as caught:
                run(check_mode)
            messages.append(caught.value.message)
        assert messages[0] == messages[1], messages
        assert str(log) in messages[0] and 'longer than the 255 bytes' in messages[0], messages[0]
        assert os.listdir(logs) == [name] and log.read_text() == 'line\n'
        return
    checked = run(True)
    real = run(False)
    assert checked['plan'] == real['plan'] and checked['diff'] == real['diff']
    assert [c['compressed'] for c in real['compressed']] == [str(log) + '.1.zst'], real
    assert sorted(os.listdir(logs)) == sorted([name, name + '.1.zst'])
