"""What Ansible ships for the cheap, frequently run modules (issue 22, module start-up).

Ansible packs into a module's payload every module_utils file its import statements reach (function-level
imports too), the controller parses each of them on every `ansible` run, and the target compiles every
imported one from the zip (no .pyc cache). A catalog read that imported ``backup/jobs.py`` or the engine
registry carried all of the engines' folders (86 files, 1.2 MB). These tests build the real payload with
Ansible's own builder (``module_common.modify_module``) in a child process and hold the cheap modules to a
listed set, and check that importing them loads no cryptography.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PREFIX = 'ansible_collections/opsready/operations/plugins/module_utils/'

# The catalog modules' closure: the catalog, the manifest, their file helpers, the engine names; backup_info (run
# far more often) without retention and the prune code.
CATALOG_READ = {
    'backup/catalog.py', 'backup/catalog_index.py', 'backup/catalog_index_file.py', 'backup/catalog_jobs.py',
    'backup/catalog_rows.py',
    # catalog_index's run-wide switches, apart so a backup run enters them without it (~40 lines, standard library)
    'backup/catalog_session.py',
    'backup/manifest.py', 'common/atomic.py', 'common/errors.py', 'common/timeutil.py', 'files/safe_read.py',
    'engines/names.py',
    # imported first by every module: each file above compiles once on the target, not twice (~60 lines)
    'common/compile_once.py',
    # whose an unreadable manifest is (backup_info with engine and database): the set names' file-name parts, standard
    # library only (~170 lines together)
    'backup/set_files.py', 'backup/set_names.py',
}
# backup_prune also removes leftovers, checked (common/cleanup.py, ~100 lines, standard library only)
SHIPPED = {'backup_info': CATALOG_READ,
           'backup_prune': CATALOG_READ | {'backup/catalog_prune.py', 'backup/retention.py', 'common/cleanup.py',
                                           'files/safeio.py',
                                           # retention's option spec, apart for db_backup (~30 lines)
                                           'backup/retention_spec.py',
                                           # the artifact's stat signature, apart for verification (~40 lines)
                                           'backup/artifact_stat.py'}}   # safeio: the parent checks before deleting

_BUILD = r'''
import base64, io, json, re, sys, zipfile
from ansible.executor import module_common
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, module_loader
from ansible.template import Templar
init_plugin_loader()
out = {}
for name in sys.argv[1:]:
    path = module_loader.find_plugin_with_context('opsready.operations.' + name).plugin_resolved_path
    built = module_common.modify_module(module_name=name, module_path=path, module_args={},
                                        templar=Templar(loader=DataLoader()),
                                        task_vars={'ansible_python_interpreter': sys.executable})
    data = base64.b64decode(re.search(rb"zip_data='([^']+)'", built.b_module_data).group(1))
    out[name] = zipfile.ZipFile(io.BytesIO(data)).namelist()
print(json.dumps(out))
'''


def _env():
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'),
                ANSIBLE_LOCAL_TEMP=os.environ.get('TMPDIR', '/tmp'))


@pytest.fixture(scope='module')
def payloads():
    result = subprocess.run([sys.executable, '-c', _BUILD] + sorted(SHIPPED), cwd=str(REPO), env=_env(),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _module_utils(names):
    return {n[len(PREFIX):] for n in names if n.startswith(PREFIX) and not n.endswith('__init__.py')}


@pytest.mark.parametrize('module', sorted(SHIPPED))
def test_cheap_module_ships_only_what_it_needs(payloads, module):
    shipped = _module_utils(payloads[module])
    extra = sorted(shipped - SHIPPED[module])
    assert not extra, ('%s now ships %d more module_utils files (%s): an import reaches beyond the catalog '
                       '(backup/jobs.py or engines/registry.py pull in every engine). Import the light module '
                       '(backup/catalog_jobs.py, engines/names.py) or make the import local to code that '
                       'needs it.' % (module, len(extra), ', '.join(extra[:12])))
    assert not [f for f in shipped if f.startswith('engines/') and f != 'engines/names.py']


@pytest.mark.parametrize('module', sorted(SHIPPED))
def test_cheap_module_import_loads_no_cryptography_or_engine(module):
    code = ('import json, sys; import ansible_collections.opsready.operations.plugins.modules.%s; '
            'print(json.dumps(sorted(m for m in sys.modules if m.startswith(("cryptography", "zstandard")) '
            'or ".engines." in m or m.endswith((".backup.jobs", ".common.encryption", ".common.streaming")))))'
            % module)
    result = subprocess.run([sys.executable, '-c', code], cwd=str(REPO), env=dict(_env(), PYTHONPATH=str(
        REPO / 'build')), capture_output=True, text=True, timeout=120, check=True)
    loaded = [m for m in json.loads(result.stdout.strip()) if not m.endswith('.engines.names')
              and not m.endswith('.module_utils.engines')]
    assert loaded == [], '%s imports %s at start-up: import them where they are used' % (module, loaded)


def test_backup_info_on_a_small_catalog_compiles_no_retention_or_index_rows(tmp_path):
    """The target compiles every module it imports from the payload zip on every run: backup_info on a catalog
    without a sealed index (every small one) imports neither retention and the prune code (another module's) nor the
    column views of a sealed index (``catalog_rows.py``), nor the attribution of broken manifests to sets
    (``set_files.py``, only for a catalog that has some)."""
    (tmp_path / 'empty').mkdir()
    code = ('import json, sys\n'
            'from ansible_collections.opsready.operations.plugins.modules import backup_info\n'
            'from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe\n'
            'describe(sys.argv[1])\n'
            'print(json.dumps(sorted(m for m in sys.modules if m.endswith(('
            '".backup.retention", ".backup.catalog_prune", ".backup.catalog_rows", ".backup.set_files")))))\n')
    result = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'empty')], cwd=str(REPO),
                            env=dict(_env(), PYTHONPATH=str(REPO / 'build')), capture_output=True, text=True,
                            timeout=120, check=True)
    assert json.loads(result.stdout.strip()) == []


def test_backup_info_on_a_small_catalog_compiles_no_index_file_code(tmp_path):
    """backup_info over a catalog below ``index_min()`` manifests (every small one, the bench's empty one) never reads,
    writes, journals or seals an index file: that code (half of catalog_index.py, 45 KB of source that zipimport
    compiled on every run) lives in catalog_index_file.py, imported by the first scan of a large directory.
    The small path must neither import that module nor define its functions elsewhere; nor the sealed scan's
    (``_sealed``, the seal's listing checks), which run only once an index file is loaded. Nor does it import
    files/safeio.py (44 KB: SafeDir, backup directory checks, xattrs): a manifest read needs only safe_read.py."""
    from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import mixed_catalog
    small = tmp_path / 'small'
    small.mkdir()
    mixed_catalog(small)
    code = ('import json, os, sys\n'
            'from ansible_collections.opsready.operations.plugins.modules import backup_info\n'
            'from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index\n'
            'from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe\n'
            'described = describe(sys.argv[1])\n'
            'count = len([n for n in os.listdir(sys.argv[1]) if n.endswith(".json")])\n'
            'print(json.dumps([count, catalog_index.index_min(), sorted(m for m in sys.modules '
            'if m.endswith((".catalog_index_file", ".files.safeio"))), sorted(n for n in ("parse_index", '
            '"encode_index", "read_index", "journal_records", "_merge", "_decode", "_sealed", "seal_candidates", '
            '"listing_digest", "_same_names", "_listing_matches", "fine_stamps") if n in vars(catalog_index))]))\n')
    result = subprocess.run([sys.executable, '-c', code, str(small)], cwd=str(REPO),
                            env=dict(_env(), PYTHONPATH='%s:%s' % (REPO / 'build', REPO)), capture_output=True,
                            text=True, timeout=120, check=True)
    count, minimum, loaded, defined = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 < count < minimum   # the case under test: a real catalog below the index's threshold
    assert loaded == [] and defined == [], (loaded, defined)


def test_health_check_start_up_loads_no_http_or_tls_client():
    """health_check's host checks (CPU, memory, disk, load: the every-minute case) need no HTTP client: http.client
    (with the email parser it imports) and ssl were ~30 ms of each run's start-up, imported by net_check at the top.
    They are imported by the HTTP check that uses them."""
    code = ('import json, sys\n'
            'from ansible_collections.opsready.operations.plugins.modules import health_check\n'
            'print(json.dumps(sorted(m for m in ("http.client", "ssl", "email.parser") if m in sys.modules)))\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=str(REPO),
                            env=dict(_env(), PYTHONPATH=str(REPO / 'build')), capture_output=True, text=True,
                            timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize('module', ['db_backup', 'file_backup', 'backup_prune'])
def test_backup_module_start_up_loads_no_index_row_views(module):
    """The column views of a sealed index (catalog_rows.py) exist only once a scan of a large directory made one:
    retention and prune check for them without importing the module, so the backup modules' start-up does not
    compile it (issue 22, module start-up)."""
    code = ('import json, sys\n'
            'from ansible_collections.opsready.operations.plugins.modules import %s\n'
            'print(json.dumps(sorted(m for m in sys.modules if m.endswith((".backup.catalog_rows", '
            '".backup.catalog_index_file")))))\n' % module)
    result = subprocess.run([sys.executable, '-c', code], cwd=str(REPO),
                            env=dict(_env(), PYTHONPATH=str(REPO / 'build')), capture_output=True, text=True,
                            timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_backup_info_still_attributes_broken_manifests_from_its_payload(tmp_path):
    """Guard (passes on the old code too): set_files.py is now imported by backup_info only when a named set's
    catalog has broken manifests; through a real ``ansible`` run (the module from its AnsiballZ payload) such a
    manifest is still attributed to its set."""
    catalog = tmp_path / 'catalog'
    catalog.mkdir()
    (catalog / 'sqlite-app-full-20260101T000000Z.manifest.json').write_text('{"database": "app", "engine": "sql')
    env = dict(_env(), ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_CALLBACK_RESULT_FORMAT='json',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local'))
    result = subprocess.run([str(Path(sys.executable).parent / 'ansible'), 'localhost', '-i',
                             str(REPO / 'inventories' / 'local'), '-m', 'opsready.operations.backup_info', '-a',
                             'path=%s engine=sqlite database=app' % catalog], cwd=str(REPO), env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    task = json.loads(result.stdout.split('=>', 1)[1])
    broken = task['broken_manifests']
    assert len(broken) == 1 and broken[0]['set'] == 'this', broken


def test_file_backup_ships_no_engine_or_jobs():
    """file_backup takes no database backup: its retention goes through catalog_prune and prune_result, not
    backup/jobs.py, which imports the engine registry and with it every engine's folder. With jobs its payload was
    106 files (1.8 MB) and the controller's build ~1.0-1.1 s per run; without, 39 files (0.6 MB), ~0.35 s (issue 22)."""
    result = subprocess.run([sys.executable, '-c', _BUILD, 'file_backup'], cwd=str(REPO), env=_env(),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    shipped = _module_utils(json.loads(result.stdout.strip().splitlines()[-1])['file_backup'])
    assert 'backup/jobs.py' not in shipped
    engines = sorted(f for f in shipped if f.startswith('engines/'))
    # nor, since its set lock and leftovers come from leftovers.py, artifacts.py and the engine interface it imports
    assert engines == [] and 'backup/artifacts.py' not in shipped, engines
