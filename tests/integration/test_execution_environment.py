"""execution-environment.yml builds a valid ansible-builder (schema 3) context holding this collection.

No container engine here, so no image is built: ``ansible-builder create`` writes the build context,
and the test checks what the image would get - the Containerfile stages, the pinned ansible-core and
ansible-runner, the Python requirements and bindep entries after the builder's own introspection,
and the collection tarball, installed with ansible-galaxy to prove it carries the patching role and
modules.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / '.venv' / 'bin'
BUILDER = shutil.which('ansible-builder', path=str(VENV)) or shutil.which('ansible-builder')


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    if not BUILDER:
        pytest.skip('ansible-builder is not installed: .venv/bin/pip install ansible-builder==3.2.0')
    root = tmp_path_factory.mktemp('ee')
    definition = yaml.safe_load((REPO / 'execution-environment.yml').read_text())
    # Build the collection tarball where the definition expects it, in a copy of the EE's inputs.
    for name in ('execution-environment.yml', 'requirements.txt', 'bindep.txt'):
        shutil.copy(REPO / name, root / name)
    dist = root / 'build' / 'dist'
    dist.mkdir(parents=True)
    subprocess.run([str(VENV / 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path', str(dist),
                    str(REPO)], check=True, capture_output=True)
    version = yaml.safe_load((REPO / 'galaxy.yml').read_text())['version']
    tarball = dist / ('opsready-operations-%s.tar.gz' % version)
    assert tarball.exists()
    assert definition['additional_build_files'][0]['src'] == 'build/dist/' + tarball.name, \
        'execution-environment.yml names another collection version than galaxy.yml'
    proc = subprocess.run([BUILDER, 'create', '-f', 'execution-environment.yml', '-c', 'context', '-v', '3'],
                          cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {'root': root, 'dir': root / 'context', 'definition': definition, 'tarball': tarball.name}


def test_definition_is_schema_3(context):
    assert context['definition']['version'] == 3


def test_containerfile_stages_and_pins(context):
    files = list(context['dir'].glob('*file'))
    assert len(files) == 1, files
    text = files[0].read_text()
    for stage in ('AS base', 'AS galaxy', 'AS builder', 'AS final'):
        assert stage in text
    assert 'ansible-core==2.19.14' in text and 'ansible-runner==2.4.3' in text
    assert 'quay.io/centos/centos:stream9' in text
    assert 'ansible-galaxy collection install' in text
    assert 'introspect.py introspect' in text


def test_context_carries_requirements_bindep_and_collection(context):
    build = context['dir'] / '_build'
    assert (build / 'requirements.txt').read_text() == (REPO / 'requirements.txt').read_text()
    assert (build / 'bindep.txt').read_text() == (REPO / 'bindep.txt').read_text()
    galaxy = yaml.safe_load((build / 'requirements.yml').read_text())
    assert galaxy['collections'][0] == {'name': '/build/collections/' + context['tarball'], 'type': 'file'}
    assert (build / 'collections' / context['tarball']).stat().st_size > 10000


def test_builder_introspection_resolves_our_requirements(context, tmp_path):
    # The builder stage runs this script on the image; its output is what pip and dnf will install.
    build = context['dir'] / '_build'
    out_pip, out_bindep = tmp_path / 'pip.txt', tmp_path / 'bindep.txt'
    subprocess.run([str(VENV / 'python'), str(build / 'scripts' / 'introspect.py'), 'introspect',
                    '--user-pip', str(build / 'requirements.txt'), '--user-bindep', str(build / 'bindep.txt'),
                    '--write-pip', str(out_pip), '--write-bindep', str(out_bindep), str(tmp_path / 'none')],
                   check=True, capture_output=True, text=True)
    pip = out_pip.read_text()
    for pin in ('psutil==7.2.2', 'cryptography==50.0.2', 'zstandard==0.25.0', 'jmespath==1.1.0'):
        assert pin in pip, pip
    assert 'ansible-core' not in pip.replace('# from collection user', '') or 'ansible-core==2.19.14' in pip
    bindep = out_bindep.read_text()
    assert 'openssh-clients [platform:rpm]' in bindep, bindep


def test_collection_in_the_image_has_patching(context, tmp_path):
    # What the galaxy stage does in the image, done here into a temporary collections path.
    # (outside the repository, whose ansible.cfg would find the collection already installed in build/)
    subprocess.run([str(VENV / 'ansible-galaxy'), 'collection', 'install', '--force', '-p', str(tmp_path),
                    str(context['dir'] / '_build' / 'collections' / context['tarball'])],
                   check=True, capture_output=True, cwd=tmp_path)
    installed = tmp_path / 'ansible_collections' / 'opsready' / 'operations'
    for path in ('roles/patching/tasks/main.yml', 'roles/patching/meta/argument_specs.yml',
                 'plugins/modules/os_patch.py', 'plugins/modules/patch_gate.py', 'plugins/modules/patch_report.py',
                 'plugins/module_utils/patching/apt.py', 'playbooks/patching.yml'):
        assert (installed / path).exists(), path
    assert not (installed / 'tests').exists() and not (installed / '.venv').exists()
