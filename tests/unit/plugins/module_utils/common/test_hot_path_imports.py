# -*- coding: utf-8 -*-
"""What a PostgreSQL backup or restore imports before its first server round trip (issue 22: the fixed cost of
``db_backup kind=base`` and ``db_restore`` over the raw tools is mostly start-up). ``ansible.module_utils.basic``
(~0.1 s of imports on an idle machine, several times that under load) is what an ``AnsibleModule`` loads
anyway; the module_utils themselves must not pull it in (crypto_guard wants ``missing_required_lib`` only to
word a missing-library message)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BUILD = os.path.abspath(os.path.join(os.path.dirname(__file__), *(['..'] * 5), 'build'))
MU = 'ansible_collections.opsready.operations.plugins.module_utils'

PROBE = '''
import sys
sys.path.insert(0, %(build)r)
import importlib
for name in sys.argv[1:]:
    importlib.import_module(%(mu)r + '.' + name)
print(','.join(sorted(m for m in sys.modules
                      if m == 'ansible.module_utils.basic' or m.startswith('cryptography.hazmat'))))
'''


@pytest.mark.parametrize('names', [
    ['backup.jobs', 'engines.postgresql.backup'],                          # db_backup (bench/ours.py db_backup)
    ['restore.run', 'restore.plan', 'engines.postgresql.restore'],         # db_restore (bench/ours.py db_restore)
    ['common.crypto_guard', 'common.encryption', 'common.streaming'],
])
def test_backup_and_restore_paths_load_neither_ansible_basic_nor_cryptography_internals(names):
    out = subprocess.run([sys.executable, '-c', PROBE % {'build': BUILD, 'mu': MU}] + names, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == '', 'imported on the hot path: %s' % out


def test_the_missing_library_message_still_comes_from_ansible():
    from ansible.module_utils.basic import missing_required_lib
    from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
    saved = crypto_guard.HAS_CRYPTOGRAPHY
    crypto_guard.HAS_CRYPTOGRAPHY = False
    try:
        assert crypto_guard.missing('1.0') == missing_required_lib('cryptography')
    finally:
        crypto_guard.HAS_CRYPTOGRAPHY = saved
