"""Round 5 probes of log rotation and certificate renewal: names already taken, a full disk, odd file
names, and renewed certificates that must never replace a working pair. Real files, real tmpfs, real
OpenSSL certificates; the Rotation class and cert_renew are driven directly (no playbook adds anything
here)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402


def unzstd(path) -> bytes:
    with open(path, 'rb') as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()


def contents(directory) -> dict:
    out = {}
    for name in os.listdir(os.fsencode(directory)):
        path = os.path.join(os.fsencode(directory), name)
        out[name] = unzstd(path) if name.endswith(b'.zst') else open(path, 'rb').read()
    return out


def rotate(paths, state, check_mode=False, **policy):
    return Rotation(paths, Policy(**policy), str(state), check_dirs=False).run(check_mode=check_mode)


# ---------------------------------------------------------------- log rotation

def test_compressing_never_replaces_a_compressed_copy_already_under_the_name(tmp_path):
    """app.log.1 (plain) and app.log.1.zst (another generation) both exist: after the shift, compressing
    app.log.2 must not overwrite app.log.2.zst. Check mode's diff must say the same."""
    log = tmp_path / 'app.log'
    log.write_bytes(b'live\n')
    (tmp_path / 'app.log.1').write_bytes(b'plain generation\n')
    (tmp_path / 'app.log.1.zst').write_bytes(zstandard.ZstdCompressor().compress(b'compressed generation\n'))
    (tmp_path / 'app.log-x.zst.partial').write_bytes(b'leftover')
    dry = rotate([str(log)], tmp_path / 'state.json', check_mode=True, force=True, rotate=5)
    result = rotate([str(log)], tmp_path / 'state.json', force=True, rotate=5)
    # every generation is still there, byte for byte
    found = contents(tmp_path)
    assert found[b'app.log.2.zst'] == b'compressed generation\n'
    assert found[b'app.log.2'] == b'plain generation\n'
    assert found[b'app.log.1.zst'] == b'live\n'
    assert any('app.log.2' in w and 'left uncompressed' in w for w in result['warnings'])
    assert [c['path'] for c in result['compressed']] == [str(tmp_path / 'app.log.1')]
    after = sorted(os.path.basename(p) for p in dry['diff']['after'].splitlines())
    assert after == ['app.log', 'app.log.1.zst', 'app.log.2', 'app.log.2.zst']
    # the next run: nothing due, nothing changed, the kept plain copy is still there
    again = rotate([str(log)], tmp_path / 'state.json', size='1M', rotate=5)
    assert again['changed'] is False and contents(tmp_path)[b'app.log.2'] == b'plain generation\n'


@pytest.fixture
def small_tmpfs():
    """A 16 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    point = tempfile.mkdtemp(prefix='opsready-r5-')
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', point],
                      capture_output=True, check=False).returncode != 0:
        os.rmdir(point)
        pytest.skip('cannot mount a tmpfs here')
    try:
        yield point
    finally:
        subprocess.run(['umount', point], check=False)
        os.rmdir(point)


def test_disk_full_while_compressing_keeps_the_plain_copy(small_tmpfs, tmp_path):
    log = os.path.join(small_tmpfs, 'app.log')
    payload = os.urandom(10 * 1024 * 1024)   # incompressible: the .zst does not fit next to it
    with open(log, 'wb') as handle:
        handle.write(payload)
    with pytest.raises(OpsReadyError, match='No space left') as info:
        rotate([log], tmp_path / 'state.json', force=True, rotate=3)
    assert 'app.log.1: %d bytes' % len(payload) in info.value.message
    assert sorted(os.listdir(small_tmpfs)) == ['app.log', 'app.log.1']
    with open(log + '.1', 'rb') as handle:
        assert handle.read() == payload


def test_odd_file_names_rotate_and_the_module_reports_them(tmp_path):
    """Spaces, a newline and bytes that are not UTF-8 in log names: every log rotated, nothing lost, and the
    task reports it (ansible-core refuses a result holding lone surrogates: the run looked failed)."""
    logdir = tmp_path / 'log'
    logdir.mkdir()
    raw = os.fsencode(logdir)
    odd = [b'with space.log', b'new\nline.log', b'latin\xe9\xff.log']
    for name in odd:
        with open(os.path.join(raw, name), 'wb') as handle:
            handle.write(b'line of ' + name + b'\n')
    task = {'name': 'rotate', 'opsready.operations.log_rotate': {
        'paths': [str(logdir / '*.log')], 'state_file': str(tmp_path / 'state.json'), 'force': True}}
    result = run_playbook(write_playbook(tmp_path, [task]))
    assert result.rc == 0, result.stdout if hasattr(result, 'stdout') else result
    rotated = sorted(os.path.basename(r['log']) for r in result.result('rotate')['rotated'])
    assert rotated == ['latin\\xe9\\xff.log', 'new\nline.log', 'with space.log']
    found = contents(logdir)
    for name in odd:
        assert found[name] == b'' and found[name + b'.1.zst'] == b'line of ' + name + b'\n'
