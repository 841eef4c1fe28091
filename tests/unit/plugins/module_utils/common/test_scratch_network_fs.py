"""scratch.sweep proves a killed run gone by taking its owner file's flock. On a network filesystem that lock may
be local to one host (NFS mounted nolock, a tmpdir shared by hosts): a live run elsewhere would look dead and its
directory be removed under it. There the sweep removes nothing and warns; on a local filesystem it sweeps.

The directories are real (made by Scratch in a child that is SIGKILLed); what /proc/self/mountinfo says of their
filesystem is the one thing replaced (no NFS server here).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import scratch

REPO = Path(__file__).resolve().parents[5]

HOLDER = '''
import os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch
made = Scratch('redis', sys.argv[2], 'redis_restore')
print(made.path, flush=True)
time.sleep(600)
'''


def killed_scratch(root: Path) -> str:
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(REPO / 'build'), str(root)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    path = proc.stdout.readline().strip()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    return path


def mountinfo(tmp_path: Path, mount: str, fstype: str) -> Path:
    real = open('/proc/self/mountinfo', encoding='utf-8').read()
    escaped = mount.replace('\\', '\\134').replace(' ', '\\040')
    extra = '999 1 0:99 / %s rw,relatime shared:1 - %s server:/export rw,vers=4.2\n' % (escaped, fstype)
    path = tmp_path / 'mountinfo'
    path.write_text(real + extra)
    return path


@pytest.mark.parametrize('fstype', ['nfs', 'nfs4', 'cifs', 'fuse.sshfs'])
def test_on_a_network_filesystem_nothing_is_swept_and_a_warning_says_why(tmp_path, monkeypatch, fstype):
    root = tmp_path / 'tmp dir'    # a space: mountinfo escapes it
    root.mkdir()
    left = killed_scratch(root)
    monkeypatch.setattr(scratch, 'MOUNTINFO', str(mountinfo(tmp_path, str(root), fstype)))
    assert scratch.filesystem_type(str(root / 'x')) == fstype
    out = scratch.sweep(str(root), ['redis'])
    assert out['removed_scratch'] == [] and os.path.isdir(left)
    assert len(out['warnings']) == 1 and str(root) in out['warnings'][0] and fstype in out['warnings'][0]


def test_on_a_local_filesystem_the_killed_run_s_directory_is_swept(tmp_path, monkeypatch):
    root = tmp_path / 'tmp'
    root.mkdir()
    left = killed_scratch(root)
    # a network mount elsewhere (a sibling whose name starts the same) does not count
    monkeypatch.setattr(scratch, 'MOUNTINFO', str(mountinfo(tmp_path, str(tmp_path / 'tm'), 'nfs4')))
    assert scratch.filesystem_type(str(root)) not in scratch.NETWORK_FILESYSTEMS
    out = scratch.sweep(str(root), ['redis'])
    assert out == {'removed_scratch': [left], 'warnings': []} and not os.path.exists(left)


def test_nothing_to_sweep_on_a_network_filesystem_is_no_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch, 'MOUNTINFO', str(mountinfo(tmp_path, str(tmp_path), 'nfs')))
    assert scratch.sweep(str(tmp_path), ['redis']) == {'removed_scratch': [], 'warnings': []}


def test_unreadable_mountinfo_is_no_type(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch, 'MOUNTINFO', str(tmp_path / 'absent'))
    assert scratch.filesystem_type(str(tmp_path)) is None
