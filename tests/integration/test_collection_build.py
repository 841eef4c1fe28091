"""`ansible-galaxy collection build` yields a tarball that installs and works on its own."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

from tests.harness.playbook import REPO

BIN = REPO / '.venv' / 'bin'


def test_built_collection_installs_and_runs(tmp_path):
    env = dict(os.environ, PATH='%s:%s' % (BIN, os.environ['PATH']), ANSIBLE_CONFIG=str(tmp_path / 'none.cfg'))
    subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(tmp_path), str(REPO)],
                   check=True, capture_output=True, env=env)
    tarball = next(tmp_path.glob('opsready-operations-*.tar.gz'))
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert 'galaxy.yml' not in names and 'MANIFEST.json' in names
    assert 'plugins/modules/file_backup.py' in names
    for excluded in ('tests/', 'bench/', '.venv/', 'build/', 'reports/'):
        assert not any(n.startswith(excluded) for n in names), excluded
    install = tmp_path / 'collections'
    subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'install', '--force', '-p', str(install), str(tarball)],
                   check=True, capture_output=True, env=env)
    env['ANSIBLE_COLLECTIONS_PATH'] = str(install)
    doc = subprocess.run([str(BIN / 'ansible-doc'), 'opsready.operations.file_backup'], capture_output=True,
                         text=True, env=env, check=True)
    assert 'Archives one or more files' in doc.stdout
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'a.conf').write_text('x = 1\n')
    run = subprocess.run([str(BIN / 'ansible'), 'localhost', '-c', 'local', '-i', 'localhost,',
                          '-e', 'ansible_python_interpreter=%s' % (BIN / 'python'),
                          '-m', 'opsready.operations.file_backup',
                          '-a', 'paths=%s dest=%s' % (src, tmp_path / 'out')],
                         capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(list(Path(tmp_path / 'out').glob('*.manifest.json'))) == 1
