# -*- coding: utf-8 -*-
"""What a PostgreSQL backup or restore imports before its first server round trip (issue 22: the fixed cost of
``db_backup kind=base`` and ``db_restore`` over the raw tools is mostly start-up). ``ansible.module_utils.basic``
(~0.1 s of imports on an idle machine, several times that under load) is what an ``AnsibleModule`` loads
anyway; the module_utils themselves must not pull it in (crypto_guard wants ``missing_required_lib`` only to
word a missing-library message). Nor the files only some runs need: Ansible ships module_utils in a zip and the
target compiles every imported file on every run (no .pyc cache), ~6 ms per 1,000 lines here: the age code
(encryption only), the tar extraction (base backup verification), the database properties reader (logical
dumps), the globals script parser (``@globals`` restores)."""

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
print(','.join(sorted(m for m in sys.modules)))
'''
ALWAYS = {'ansible.module_utils.basic'}
OPTIONAL = {MU + '.' + name for name in ('common.encryption', 'common.crypto_guard', 'files.tarsafe',
                                         'engines.postgresql.dbprops', 'engines.postgresql.globals')}


def loaded(names) -> set:
    out = subprocess.run([sys.executable, '-c', PROBE % {'build': BUILD, 'mu': MU}] + names, check=True,
                         capture_output=True, text=True).stdout.strip()
    return set(out.split(','))


@pytest.mark.parametrize('names,forbidden', [
    # db_backup kind=base (bench/ours.py db_backup)
    (['backup.jobs', 'engines.postgresql.backup', 'engines.postgresql.areas'], ALWAYS | OPTIONAL),
    # db_restore of a logical dump (bench/ours.py db_restore): the properties reader is needed there
    (['restore.run', 'restore.plan', 'engines.postgresql.restore', 'engines.postgresql.areas'],
     ALWAYS | (OPTIONAL - {MU + '.engines.postgresql.dbprops'})),
    (['common.crypto_guard', 'common.encryption', 'common.streaming'], ALWAYS),
])
def test_backup_and_restore_paths_load_only_what_every_run_needs(names, forbidden):
    found = loaded(names)
    assert not found & forbidden, 'imported on the hot path: %s' % sorted(found & forbidden)
    assert not [m for m in found if m.startswith('cryptography.hazmat')]


def test_the_missing_library_message_still_comes_from_ansible():
    from ansible.module_utils.basic import missing_required_lib
    from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
    saved = crypto_guard.HAS_CRYPTOGRAPHY
    crypto_guard.HAS_CRYPTOGRAPHY = False
    try:
        assert crypto_guard.missing('1.0') == missing_required_lib('cryptography')
    finally:
        crypto_guard.HAS_CRYPTOGRAPHY = saved


CHECK_PROBE = '''
import sys
sys.path.insert(0, %(build)r)
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
encryption.check_available()
print(','.join(sorted(m for m in sys.modules)))
'''


def test_an_encrypting_run_checks_cryptography_without_loading_ansibles_module_code():
    """Every encrypting backup calls ``encryption.check_available()`` before its first byte: with cryptography present
    and new enough, that is a version comparison, not ``ansible.module_utils.basic`` (~40 ms) and ``compat.version``
    (~15 ms) in the serial start of the run (which a module has loaded already, but a library caller has not)."""
    out = subprocess.run([sys.executable, '-c', CHECK_PROBE % {'build': BUILD}], check=True, capture_output=True,
                         text=True).stdout.strip()
    found = set(out.split(','))
    assert not found & {'ansible.module_utils.basic', 'ansible.module_utils.compat.version'}, sorted(found)


@pytest.mark.parametrize('installed,minimum,too_old', [
    ('50.0.2', '2.5', False), ('2.5', '2.5', False), ('2.4.9', '2.5', True), ('42.0.0rc1', '42.0', False),
    ('41.0.7', '42.0', True), ('3.4.8', '42.0', True), ('100.0', '42.0', False)])
def test_the_version_comparison_says_what_looseversion_said(monkeypatch, installed, minimum, too_old):
    from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
    monkeypatch.setattr(crypto_guard, 'CRYPTOGRAPHY_VERSION', installed)
    message = crypto_guard.missing(minimum, 'encrypt')
    assert (message is not None) == too_old, message
    if too_old:
        assert 'needs the Python package cryptography %s or newer' % minimum in message and installed in message


VERIFY_PROBE = '''
import json, sqlite3, sys
sys.path.insert(0, %(build)r)
db = sys.argv[1] + '/app.db'
conn = sqlite3.connect(db)
conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
conn.execute("INSERT INTO t (v) VALUES ('x')")
conn.commit()
conn.close()
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
result = run_backup(get_engine('sqlite', ConnectionParams()), BackupOptions(kind='full', dest=sys.argv[1] + '/b',
                    database=db), verify=True)
print(json.dumps([result['manifest']['verification'], sorted(m for m in sys.modules if m.startswith(%(mu)r))]))
'''


def test_a_verified_backup_without_retention_compiles_no_retention_or_catalog(tmp_path):
    """``verify: true`` (the default) verifies the new artifact right after the dump: verification needed only
    retention's ``artifact_signature``, but importing retention compiled it and the whole catalog (catalog, its index)
    on that critical path. The signature is still recorded."""
    import json
    out = subprocess.run([sys.executable, '-c', VERIFY_PROBE % {'build': BUILD, 'mu': MU}, str(tmp_path)], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    verification, found = json.loads(out)
    assert verification['ok'] is True and verification['artifact_stat'], verification
    heavy = [m for m in found if m.endswith(('.backup.retention', '.backup.catalog', '.backup.catalog_index'))]
    assert heavy == [], heavy


@pytest.mark.parametrize('module', ['redis_backup', 'db_backup'])
def test_backup_module_start_up_compiles_no_retention(module):
    """A backup module builds its ``retention`` option from retention_spec.py; retention.py (and the catalog it
    imports) only when a policy is applied. redis_backup imported all of retention for its argument spec (db_backup:
    guard, it already did this)."""
    found = loaded_module(module)
    assert not [m for m in found if m.endswith(('.backup.retention', '.backup.catalog'))], sorted(found)


MODULE_PROBE = '''
import sys
sys.path.insert(0, %(build)r)
import importlib
importlib.import_module('ansible_collections.opsready.operations.plugins.modules.' + sys.argv[1])
print(','.join(sorted(m for m in sys.modules)))
'''


def loaded_module(module: str) -> set:
    out = subprocess.run([sys.executable, '-c', MODULE_PROBE % {'build': BUILD}, module], check=True,
                         capture_output=True, text=True).stdout.strip()
    return set(out.split(','))
