"""Python 3.11.4+ and 3.12+ have tarfile extraction filters; the ``tar`` filter clears setuid/setgid/sticky and
group/other-write bits. file_restore must give back the archived modes on every interpreter, so the same archive
is run through file_restore under an interpreter that has the filter (when this machine has one)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

BUILD = str(Path(__file__).resolve().parents[5] / 'build')

SCRIPT = r'''
import os, sys
sys.path.insert(0, sys.argv[2])
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
base = sys.argv[1]
src = os.path.join(base, 'src')
os.makedirs(src)
modes = {'suid': 0o4755, 'sgid': 0o2750, 'group-writable': 0o664, 'world-writable': 0o666}
for name, mode in modes.items():
    with open(os.path.join(src, name), 'w') as handle:
        handle.write(name)
    os.chmod(os.path.join(src, name), mode)
os.mkdir(os.path.join(src, 'sticky'))
os.chmod(os.path.join(src, 'sticky'), 0o1777)
def deep(top, create):
    fd = os.open(top, os.O_RDONLY)
    for _level in range(22):   # deeper than PATH_MAX: the filter's realpath() cannot resolve it
        if create:
            os.mkdir('d' * 200, dir_fd=fd)
        child = os.open('d' * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd
fd = deep(src, True)
os.close(os.open('deep-suid', os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
os.chmod('deep-suid', 0o4750, dir_fd=fd)
os.close(fd)
dest = os.path.join(base, 'b')
archive.prepare_dest(dest, False)
made = archive.create_archive([src], dest, 's', compression='none')
extract.restore_archive(read_manifest(made['path'] + '.manifest.json'), os.path.join(base, 'r'))
restored = os.path.join(base, 'r', src.lstrip('/'))
for name in sorted(list(modes) + ['sticky']):
    print(name, oct(os.stat(os.path.join(restored, name)).st_mode & 0o7777))
fd = deep(restored, False)
print('deep-suid', oct(os.stat('deep-suid', dir_fd=fd).st_mode & 0o7777))
'''


def _with_filter():
    """An interpreter whose tarfile has extraction filters: this one, or a pyenv-installed 3.12+."""
    if hasattr(tarfile, 'tar_filter'):
        return sys.executable
    for candidate in sorted(glob.glob(os.path.expanduser('~/.pyenv/versions/3.1[2-9]*/bin/python3'))):
        probe = subprocess.run([candidate, '-c', 'import tarfile; tarfile.tar_filter'], capture_output=True,
                               check=False)
        if probe.returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(_with_filter() is None, reason='no Python with tarfile extraction filters here')
def test_restore_keeps_setuid_sticky_and_group_write_under_the_tar_filter(tmp_path):
    out = subprocess.run([_with_filter(), '-c', SCRIPT, str(tmp_path), BUILD], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    found = dict(line.split() for line in out.stdout.splitlines())
    assert found == {'suid': '0o4755', 'sgid': '0o2750', 'group-writable': '0o664', 'world-writable': '0o666',
                     'sticky': '0o1777', 'deep-suid': '0o4750'}
