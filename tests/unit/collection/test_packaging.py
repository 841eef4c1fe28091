"""What `ansible-galaxy collection build` ships: what Galaxy and Automation Hub need, no development files.

galaxy-importer (run on the tarball by ``scripts/test.sh package``) refuses a role without README.md;
the license text must travel with the code; linters' and tests' configuration must not.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = REPO / '.venv' / 'bin'
ROLES = sorted(p.parent for p in (REPO / 'roles').glob('*/tasks'))


@pytest.fixture(scope='module')
def names(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    env = dict(os.environ, PATH='%s:%s' % (BIN, os.environ['PATH']), ANSIBLE_CONFIG=str(out / 'none.cfg'))
    subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(out), str(REPO)],
                   check=True, capture_output=True, env=env)
    with tarfile.open(next(out.glob('opsready-operations-*.tar.gz'))) as tar:
        return set(tar.getnames())


def test_tarball_carries_the_license_and_role_readmes(names):
    assert 'COPYING' in names
    assert 'GNU GENERAL PUBLIC LICENSE' in (REPO / 'COPYING').read_text()[:200]
    missing = [r.name for r in ROLES if 'roles/%s/README.md' % r.name not in names]
    assert not missing, 'roles without README.md (galaxy-importer refuses the upload): %s' % missing


@pytest.mark.parametrize('dev_file', ['ansible.cfg', '.ansible-lint', 'ruff.toml', 'mypy.ini', 'requirements-dev.txt',
                                      'Makefile', 'scripts/', 'tests/', 'bench/', 'inventories/local/',
                                      'roles/backup/molecule/', 'build/', 'reports/', '.venv/'])
def test_tarball_leaves_development_files_out(names, dev_file):
    if dev_file.endswith('/'):
        assert not [n for n in names if n.startswith(dev_file)], dev_file
    else:
        assert dev_file not in names
    assert not [n for n in names if '/molecule/' in n or n.startswith('.molecule')]


def test_tarball_keeps_what_users_need(names):
    for needed in ('README.md', 'meta/runtime.yml', 'requirements.txt', 'bindep.txt', 'execution-environment.yml',
                   'inventories/example/hosts.yml', 'docs/runbooks/backup.md', 'changelogs/changelog.yaml',
                   'playbooks/backup.yml', 'roles/backup/meta/argument_specs.yml'):
        assert needed in names, needed


@pytest.mark.parametrize('role', ROLES, ids=[r.name for r in ROLES])
def test_role_readme_points_at_existing_runbooks(role):
    readme = role / 'README.md'
    assert readme.exists(), 'roles/%s/README.md is missing' % role.name
    text = readme.read_text()
    assert text.startswith('# opsready.operations.%s\n' % role.name)
    links = re.findall(r'\]\((\.\./\.\./[^)#]+)\)', text)
    assert any('docs/' in link for link in links), 'roles/%s/README.md links no runbook' % role.name
    for link in links:
        assert (role / link).resolve().exists(), 'roles/%s/README.md links a missing file: %s' % (role.name, link)
