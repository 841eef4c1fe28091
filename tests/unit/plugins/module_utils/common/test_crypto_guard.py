"""One guard for the optional cryptography package: missing (a Python that cannot import it) and too old."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import cryptography
import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard, encryption

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..'))
MU = 'ansible_collections.opsready.operations.plugins.module_utils'
CERTS = os.path.join(ROOT, 'plugins', 'module_utils', 'certs')
CERT_FILES = sorted(p for p in glob.glob(os.path.join(CERTS, '*.py')) if not p.endswith('__init__.py'))
USERS = ['common.encryption'] + ['certs.%s' % os.path.basename(p)[:-3] for p in CERT_FILES]


def test_installed_cryptography_passes_every_minimum():
    assert crypto_guard.HAS_CRYPTOGRAPHY and crypto_guard.CRYPTOGRAPHY_VERSION == cryptography.__version__
    assert crypto_guard.missing(crypto_guard.CERTS_MINIMUM) is None
    assert crypto_guard.missing(crypto_guard.ENCRYPTION_MINIMUM) is None
    encryption.check_available()


def test_too_old_names_both_versions_and_the_fix():
    message = crypto_guard.missing('999.1', 'cert_renew')
    assert message is not None
    assert 'cert_renew' in message and '999.1' in message and cryptography.__version__ in message
    assert "pip install 'cryptography>=999.1'" in message


def test_a_python_without_cryptography_imports_every_user_and_gets_the_missing_lib_message():
    """sys.modules['cryptography'] = None makes every import of it raise ImportError, as on a bare host."""
    script = '''
import sys
sys.modules['cryptography'] = None
import importlib
from ansible.module_utils.basic import missing_required_lib
from %(mu)s.common import crypto_guard
for name in %(users)r:
    importlib.import_module('%(mu)s.' + name)
assert crypto_guard.HAS_CRYPTOGRAPHY is False and crypto_guard.CRYPTOGRAPHY_VERSION is None
assert 'import of cryptography halted' in crypto_guard.CRYPTOGRAPHY_IMPORT_ERROR, crypto_guard.CRYPTOGRAPHY_IMPORT_ERROR
assert crypto_guard.missing('1.0') == missing_required_lib('cryptography')
from %(mu)s.common import encryption
from %(mu)s.common.errors import OpsReadyError
try:
    encryption.check_available()
except OpsReadyError as exc:
    assert 'Failed to import the required Python library (cryptography)' in str(exc), str(exc)
else:
    raise AssertionError('check_available passed without cryptography')
print('ok')
''' % {'mu': MU, 'users': USERS}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # the collection as the tests see it
    run = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=False, env=env)
    assert run.returncode == 0 and run.stdout.strip() == 'ok', run.stderr


def test_the_guard_is_not_copied():
    """Only crypto_guard decides whether cryptography is usable."""
    offenders = []
    for path in glob.glob(os.path.join(ROOT, 'plugins', '**', '*.py'), recursive=True):
        if path.endswith(os.path.join('common', 'crypto_guard.py')):
            continue
        with open(path) as handle:
            text = handle.read()
        if re.search(r'HAS_CRYPTOGRAPHY|CRYPTOGRAPHY_IMPORT_ERROR|missing_required_lib\([\'"]cryptography', text):
            offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


class _Module:
    """Records fail_json like AnsibleModule (which exits); enough to see what require() reports."""

    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


def test_require_fails_the_module_with_the_message():
    module = _Module()
    with pytest.raises(SystemExit):
        crypto_guard.require(module, '999.1', 'cert_info')
    assert 'cert_info needs the Python package cryptography 999.1' in module.failed['msg']
    module = _Module()
    crypto_guard.require(module, crypto_guard.CERTS_MINIMUM)
    assert module.failed is None
