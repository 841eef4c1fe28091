"""cert_info and cert_renew on a host whose Python has no ``cryptography``: a real playbook run with
the interpreter of a fresh virtualenv (stdlib only). Both modules must fail with Ansible's
missing-library message and the import traceback, and cert_renew must write nothing.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.harness.playbook import VENV_PYTHON, run_playbook, write_playbook


@pytest.fixture(scope='module')
def bare_python(tmp_path_factory):
    venv = tmp_path_factory.mktemp('bare') / 'venv'
    subprocess.run([VENV_PYTHON, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    probe = subprocess.run([python, '-c', 'import cryptography'], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip('a fresh virtualenv still imports cryptography here; cannot simulate a host without it')
    return python


def test_both_modules_name_the_missing_library_and_write_nothing(tmp_path, bare_python):
    cert, key = tmp_path / 'svc.pem', tmp_path / 'svc.key'
    book = write_playbook(tmp_path, [
        {'name': 'info', 'ignore_errors': True,
         'opsready.operations.cert_info': {'paths': [str(cert)]}},
        {'name': 'renew', 'ignore_errors': True,
         'opsready.operations.cert_renew': {'path': str(cert), 'privatekey_path': str(key),
                                            'self_signed': True, 'common_name': 'svc.example'}},
    ])
    # ansible-core 2.19 keeps module tracebacks out of results unless asked to show them.
    run = run_playbook(book, extravars={'ansible_python_interpreter': bare_python},
                       envvars={'ANSIBLE_DISPLAY_TRACEBACK': 'error'})
    for task in ('info', 'renew'):
        res = run.result(task)
        assert res['_event'] == 'runner_on_failed', res
        assert 'Failed to import the required Python library (cryptography)' in res['msg'], res['msg']
        assert bare_python in res['msg']
        assert "No module named 'cryptography'" in res.get('exception', ''), res
    assert sorted(p.name for p in tmp_path.iterdir()) == ['playbook.yml']
