"""A module's module_utils are compiled once on the target, not twice (issue 22): zipimport (CPython 3.11) compiles
a file from the payload zip in ``find_spec`` (``get_filename``) and again in ``exec_module``; importing
``common/compile_once`` first hands the first compile's code object to the second. Run in a child process: the
hook changes the process's zipimport."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[5]

CHILD = r'''
import builtins, json, sys, zipfile
compiled = []
real = builtins.compile
def counting(source, filename, *args, **kwargs):
    compiled.append(str(filename))
    return real(source, filename, *args, **kwargs)
builtins.compile = counting
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == 'hook':
    from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once
    assert compile_once.install() is True   # a second call finds the wrapper in place
from ansible_collections.opsready.operations.plugins.module_utils.demo import mod
print(json.dumps({'compiled': [f for f in compiled if f.endswith(('demo/mod.py', 'demo/__init__.py'))],
                  'value': mod.VALUE(), 'again': mod.AGAIN}))
'''


def payload(tmp_path: Path) -> Path:
    """A zip laid out as an AnsiballZ payload: the collection's packages, compile_once and a module to import."""
    path = tmp_path / 'payload.zip'
    base = 'ansible_collections/opsready/operations/plugins/module_utils/'
    with zipfile.ZipFile(path, 'w') as archive:
        top = 'ansible_collections/opsready/operations'
        for package in ('ansible_collections', 'ansible_collections/opsready', top, top + '/plugins', base[:-1],
                        base + 'common', base + 'demo'):
            archive.writestr(package + '/__init__.py', '')
        archive.write(REPO / 'plugins' / 'module_utils' / 'common' / 'compile_once.py', base + 'common/compile_once.py')
        archive.writestr(base + 'demo/mod.py', 'def VALUE():\n    return 42\n\n\nAGAIN = [n for n in range(3)]\n')
    return path


def run(zip_path: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, '-c', CHILD, str(zip_path), mode], capture_output=True, text=True, check=True,
                         cwd='/')
    return json.loads(out.stdout)


def test_a_module_from_the_payload_zip_is_compiled_once(tmp_path):
    zip_path = payload(tmp_path)
    plain = run(zip_path, 'plain')
    hooked = run(zip_path, 'hook')
    # what zipimport does by itself: twice (the reason for the hook; if a Python stops doing so, the hook is moot)
    assert [f.rsplit('/', 1)[-1] for f in plain['compiled']].count('mod.py') in (1, 2), plain
    assert [f.rsplit('/', 1)[-1] for f in hooked['compiled']].count('mod.py') == 1, hooked
    assert hooked['value'] == plain['value'] == 42 and hooked['again'] == [0, 1, 2]


def test_a_file_changed_between_the_two_compiles_is_compiled_again(tmp_path):
    """The kept code object is handed over only for the very same bytes."""
    code = r'''
import sys, zipimport
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once
first = zipimport._compile_source('/x/ansible_collections/a.py', b'A = 1\n')
other = zipimport._compile_source('/x/ansible_collections/a.py', b'A = 2\n')
again = zipimport._compile_source('/x/ansible_collections/a.py', b'A = 2\n')
third = zipimport._compile_source('/x/ansible_collections/a.py', b'A = 2\n')
ns1, ns2 = {}, {}
exec(other, ns1)
exec(third, ns2)
print(first is not other, other is again, third is not again, ns1['A'], ns2['A'])
'''
    out = subprocess.run([sys.executable, '-c', code, str(payload(tmp_path))], capture_output=True, text=True,
                         check=True, cwd='/')
    assert out.stdout.split() == ['True', 'True', 'True', '2', '2']


def test_every_module_imports_it_before_the_rest_of_the_collection():
    """Only the files imported after it are compiled once: it comes first among each module's collection imports."""
    import ast
    late = []
    for path in sorted((REPO / 'plugins' / 'modules').glob('*.py')):
        if path.name == '__init__.py':
            continue
        tree = ast.parse(path.read_text(encoding='utf-8'))
        first = next((node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (getattr(node, 'module', None) or alias.name).startswith('ansible_collections') for alias in node.names)),
            None)
        if not (isinstance(first, ast.ImportFrom) and first.module and first.module.endswith('module_utils.common')
                and [alias.name for alias in first.names] == ['compile_once']):
            late.append(path.name)
    assert late == []
