"""What an encrypted file backup compiles before its first byte (issue 22: the serial start of file_backup).

A module payload is zipimported: every module_utils file it imports is compiled from source on every run, and
everything imported before the archive's ``.partial`` is created delays the first byte (the raw ``tar | zstd | age``
pipeline writes its first byte ~10 ms after it starts). The catalog (~110 KB of source: only ``skip_unchanged`` and
retention read it), retention and the prune code (after the archive), the manifest code (after the commit), the
database backup side of artifacts.py and the engines (a file backup never uses them) stay out of that start. Each
probe runs in a process of its own and records ``sys.modules`` when the ``.partial`` file is opened (an audit hook),
then checks that the run still did everything after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.age_key import Key

REPO = Path(__file__).resolve().parents[5]
MU = 'ansible_collections.opsready.operations.plugins.module_utils.'

# Not compiled before the first byte of any encrypted file backup.
# (catalog_session, ~40 lines of the catalog index's switches and its file's name, is what the light leftovers check
# needs of the catalog.)
NEVER_BEFORE_FIRST_BYTE = ('backup.catalog', 'backup.catalog_index', 'backup.catalog_jobs', 'backup.catalog_prune',
                           'backup.retention', 'backup.prune_result', 'backup.artifacts', 'backup.jobs',
                           'common.runner', 'files.extract', 'files.tarsafe', 'backup.rekey')

_HOOK = r'''
import json, sys
seen = {}


def hook(event, args):
    if event == 'open' and 'modules' not in seen and isinstance(args[0], str) and args[0].endswith('.partial'):
        seen['modules'] = sorted(m for m in sys.modules if m.startswith(%(mu)r))


sys.addaudithook(hook)
''' % {'mu': MU}

LIBRARY = _HOOK + r'''
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.files import archive
options = json.loads(sys.argv[2])
archive.check_sources(options['paths'])
fingerprint, count, secret = archive.tree_fingerprint(options['paths'])
archive.prepare_dest(options['dest'], secret)
manifest = archive.create_archive(options['paths'], options['dest'], 'files', threads=2, fingerprint=fingerprint,
                                  file_count=count, recipients=options['recipients'])
print(json.dumps({'before': seen['modules'], 'manifest': manifest}))
'''

MODULE = _HOOK + r'''
import atexit
sys.path.insert(0, sys.argv[1])
from ansible.module_utils import basic
basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': json.loads(sys.argv[2])}).encode('utf-8')
basic._ANSIBLE_PROFILE = 'legacy'
atexit.register(lambda: sys.stderr.write('\nBEFORE ' + json.dumps(seen.get('modules')) + '\n'))
from ansible_collections.opsready.operations.plugins.modules import file_backup
file_backup.main()
'''


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / 'tree'
    (tree / 'conf.d').mkdir(parents=True)
    for index in range(20):
        folder = tree / ('conf.d' if index % 2 else '.')
        (folder / ('f%02d.conf' % index)).write_text('key%d = %s\n' % (index, 'v' * index))
    return tree


@pytest.fixture
def age_key(tmp_path):
    return Key(tmp_path, 'key')


def _forbidden(modules) -> list:
    return sorted(m for m in modules if m[len(MU):] in NEVER_BEFORE_FIRST_BYTE or m.startswith(MU + 'engines.'))


def _run(code: str, options: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    env.pop('PYTHONPATH', None)
    return subprocess.run([sys.executable, '-c', code, str(REPO / 'build'), json.dumps(options)], cwd=str(REPO),
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_archive_code_compiles_no_catalog_or_manifest_code_before_the_first_byte(tmp_path, age_key):
    """What bench/ours.py file_backup runs (docs/bench.md's file backup rows): archive.py imported the catalog at
    its top for ``latest_archive`` (which that path never calls) and the manifest code for the last step."""
    result = _run(LIBRARY, {'paths': [str(_tree(tmp_path))], 'dest': str(tmp_path / 'dest'),
                            'recipients': [age_key.recipient]})
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert _forbidden(answer['before']) == []
    assert MU + 'backup.manifest' not in answer['before']
    assert MU + 'common.encryption' in answer['before']   # (the probe saw the start of an encrypted archive)
    manifest = answer['manifest']
    assert manifest['file_count'] == 20 and manifest['encryption']['format'] == 'age'
    assert os.path.exists(manifest['path'] + '.manifest.json')


@pytest.mark.parametrize('earlier', [False, True])
def test_the_module_compiles_no_catalog_retention_or_engine_before_the_first_byte(tmp_path, age_key, earlier):
    """file_backup (skip_unchanged=false, the default) read the catalog for the newest archive it never used, and
    imported retention, the prune code and artifacts.py (which brings the engine interface, the tool runner and the
    database streaming) at its top. Retention still runs after the archive (keep_count=1, keep_days=0 delete the
    earlier one),
    and still finds and lists this run's archive."""
    tree = _tree(tmp_path)
    dest = tmp_path / 'dest'
    options = {'paths': [str(tree)], 'dest': str(dest), 'encrypt': True, 'recipients': [age_key.recipient],
               'keep_count': 1, 'keep_days': 0, 'threads': 2}
    first = None
    if earlier:
        done = _run(MODULE, options)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        first = json.loads(done.stdout)['archive']
    result = _run(MODULE, options)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    answer = json.loads(result.stdout)
    before = json.loads(result.stderr.rsplit('BEFORE ', 1)[1])
    assert before, 'the probe did not see the .partial archive opened'
    assert _forbidden(before) == []
    assert answer['changed'] is True and answer['archive'].endswith('.tar.zst.age')
    assert answer['deleted'] == ([first] if earlier else []) and answer['deleted_count'] == (1 if earlier else 0)
    assert os.path.exists(answer['archive'] + '.manifest.json')
    assert sorted(n for n in os.listdir(dest) if not n.startswith('.')) == sorted(
        [os.path.basename(answer['archive']), os.path.basename(answer['archive']) + '.manifest.json'])
