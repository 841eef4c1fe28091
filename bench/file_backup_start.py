"""The encrypted file backup's serial start and tail (issue 22): what it imports and compiles before its first
byte, and what it does from the last tar byte to the durable manifest.

    .venv/bin/python bench/file_backup_start.py [--mb 2] [--rounds 20] [--code DIR ...] [--side payload|ours]
        [--table] [--priority]

Every run is a process of its own with PYTHONDONTWRITEBYTECODE=1, as a module payload runs. Two sides:

* ``payload``: the real module, ``AnsiballZ_file_backup.py`` built by Ansible's own builder (module_common
  .modify_module, the code `ansible` runs) with the options embedded; the target zipimports every module_utils
  file, Ansible's and ours, from source;
* ``ours``: bench/ours.py file_backup (what docs/bench.md's file backup rows run: the module_utils' work without
  AnsibleModule), from a checkout's source files (none has cached bytecode).

A small harness runs first in the process: it records every compile of source (zipimport's ``_compile_source``
and ``SourceFileLoader.source_to_code``: file, bytes, seconds) and, through an audit hook, the marks of the run
in seconds since the parent spawned it: the ``.partial`` archive created (the first byte follows at once), the
tar stream closed (``ArtifactWriter.commit`` called), the archive renamed into place, the manifest renamed into
place and its directory opened for the last fsync ("manifest durable": that fsync, ~1 ms, is not in the tail), the
process end. CPU is the process's own (user + system, all threads).

``--table`` prints, for one run of each checkout, the compile table (ms and source KB per module) and the
``-X importtime`` cumulative times of the top-level imports. ``--code`` names checkouts (default: this one;
e.g. ``git archive`` of an older commit with build/ansible_collections/opsready/operations linked to it);
rounds alternate them. The VM is shared: read medians, and CPU rather than wall.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess  # nosec B404 # argv lists
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'bench'))
PRIORITY = ['setsid', 'sh', '-c', 'echo -20 > /proc/self/autogroup && exec "$@"', 'sh']

HARNESS = r'''
import json, os, sys, time
T0 = float(os.environ['FBS_T0'])
marks = {'python': time.time() - T0}
compiles = []


def mark(name):
    marks.setdefault(name, time.time() - T0)


import zipimport
from importlib import _bootstrap_external
_zip_compile = zipimport._compile_source


def _compile_source(pathname, source):
    start = time.thread_time()
    code = _zip_compile(pathname, source)
    compiles.append((pathname, len(source), time.thread_time() - start, time.time() - T0))
    return code


zipimport._compile_source = _compile_source
_file_compile = _bootstrap_external.SourceFileLoader.source_to_code


def source_to_code(self, data, path, *, _optimize=-1):
    start = time.thread_time()
    code = _file_compile(self, data, path, _optimize=_optimize)
    compiles.append((path, len(data), time.thread_time() - start, time.time() - T0))
    return code


_bootstrap_external.SourceFileLoader.source_to_code = source_to_code


def _patch():
    streaming = [m for n, m in sys.modules.items() if n.endswith('.common.streaming')][0]
    commit = streaming.ArtifactWriter.commit

    def timed_commit(self):
        mark('tar closed')
        return commit(self)
    streaming.ArtifactWriter.commit = timed_commit


def hook(event, args):
    if event == 'open' and isinstance(args[0], str):
        if args[0].endswith('.partial') and 'partial' not in marks:
            mark('partial')
            _patch()
        elif 'manifest renamed' in marks and args[2] is not None and args[2] & os.O_DIRECTORY:
            mark('manifest durable')   # atomic_write_bytes' fsync_dir opens the directory after the rename
    elif event == 'os.rename' and isinstance(args[0], str):
        if args[0].endswith('.partial'):
            mark('archive renamed')
        elif str(args[1]).endswith('.manifest.json'):
            mark('manifest renamed')


sys.addaudithook(hook)
script = sys.argv[1]
sys.argv = sys.argv[1:]
import runpy
try:
    runpy.run_path(script, run_name='__main__')
except SystemExit:
    pass
finally:
    mark('end')
    usage = __import__('resource').getrusage(__import__('resource').RUSAGE_SELF)
    with open(os.environ['FBS_OUT'], 'w') as handle:
        json.dump({'marks': marks, 'compiles': compiles, 'cpu': usage.ru_utime + usage.ru_stime}, handle)
'''


def build_payload(checkout: Path, args: Dict[str, Any], out: Path) -> None:
    """AnsiballZ_file_backup.py of ``checkout`` with ``args`` embedded, built as `ansible` builds it."""
    code = r'''
import json, sys
from ansible.executor import module_common
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, module_loader
from ansible.template import Templar
init_plugin_loader()
path = module_loader.find_plugin_with_context('opsready.operations.file_backup').plugin_resolved_path
built = module_common.modify_module(module_name='file_backup', module_path=path, module_args=json.loads(sys.argv[1]),
                                    templar=Templar(loader=DataLoader()),
                                    task_vars={'ansible_python_interpreter': sys.executable})
open(sys.argv[2], 'wb').write(built.b_module_data)
'''
    env = dict(os.environ, ANSIBLE_CONFIG=str(checkout / 'ansible.cfg'))
    subprocess.run([sys.executable, '-c', code, json.dumps(args), str(out)], cwd=str(checkout), env=env,
                   check=True)  # nosec B603


def run_once(python: str, script: List[str], work: Path, priority: bool, extra: List[str] = ()) -> Dict[str, Any]:
    out = work / 'marks.json'
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1', FBS_OUT=str(out))
    env.pop('PYTHONPATH', None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env['FBS_T0'] = repr(time.time())
    start = time.perf_counter()
    result = subprocess.run((PRIORITY if priority else []) + [python] + list(extra) + ['-c', HARNESS] + script,
                            env=env, capture_output=True, check=False,
                            cwd=str(work))  # nosec B603
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0 or not out.exists():
        raise SystemExit('run failed: %s %s' % (result.stdout[-2000:], result.stderr[-2000:]))
    data = json.loads(out.read_text())
    out.unlink()
    if script[0].endswith('AnsiballZ_file_backup.py'):
        answer = json.loads(result.stdout.decode())
        if answer.get('failed'):
            raise SystemExit('module failed: %s' % answer.get('msg'))
    data.update(wall=wall, tree_cpu=after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
                stderr=result.stderr.decode())
    return data


def short(path: str) -> str:
    path = re.sub(r'^.*?/ansible_collections/opsready/operations/plugins/', 'ours:', path)
    path = re.sub(r'^.*?/site-packages/', '', path)
    path = re.sub(r'^.*?_payload\.zip/', 'zip:', path)
    return path


def importtime(stderr: str) -> List[tuple]:
    rows = []
    for line in stderr.splitlines():
        match = re.match(r'import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)', line)
        if match:
            rows.append((int(match.group(2)), len(match.group(3)), match.group(4), int(match.group(1))))
    return rows


def before_first_byte(data: Dict[str, Any], ours: bool) -> List[list]:
    return [r for r in data['compiles'] if r[3] < data['marks']['partial'] and ('opsready' in r[0]) == ours]


def print_table(name: str, data: Dict[str, Any]) -> None:
    """Compiles of source (CPU ms of the compiling thread, source KB), those before the first byte marked *."""
    rows = sorted(data['compiles'], key=lambda r: -r[2])
    print('%s: %d compiles of source, %.1f CPU ms, %.1f KB; partial at %.3f s' % (
        name, len(rows), sum(r[2] for r in rows) * 1000, sum(r[1] for r in rows) / 1024,
        data['marks'].get('partial', -1)))
    for label, ours in (('ours', True), ('ansible/other', False)):
        early = before_first_byte(data, ours)
        print('  before the first byte, %s: %d compiles, %.1f CPU ms, %.1f KB' % (
            label, len(early), sum(r[2] for r in early) * 1000, sum(r[1] for r in early) / 1024))
    for path, size, seconds, at in rows:
        early = '*' if at < data['marks']['partial'] else ' '
        print('    %6.2f ms %6.1f KB %s %s' % (seconds * 1000, size / 1024, early, short(path)))
    tops = importtime(data['stderr'])
    if tops:
        print('  -X importtime, imports taking >= 1 ms cumulative (us cumulative, self):')
        for cumulative, depth, module, own in tops:
            if cumulative >= 1000 and depth <= 8:
                print('    %8d %8d %s%s' % (cumulative, own, ' ' * depth, module))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=2, help='tree size (bench/file_backup.make_tree; 2 MB: ~20 files)')
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--code', action='append')
    parser.add_argument('--side', choices=('payload', 'ours'), default='payload')
    parser.add_argument('--table', action='store_true')
    parser.add_argument('--priority', action='store_true')
    parser.add_argument('--tmp-root', default='/var/tmp')
    parser.add_argument('--keep', help='keep archives here (one per checkout, for cmp)')
    args = parser.parse_args()
    from file_backup import make_tree
    sys.path.insert(0, str(REPO / 'build'))
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-fbstart-', dir=args.tmp_root))
    try:
        tree = work / 'tree'
        make_tree(tree, args.mb)
        files = sum(len(f) for _d, _s, f in os.walk(tree))
        recipient = encryption.parse_identities(encryption.generate_identity())[0].recipient
        dest = work / 'dest'
        sides = {}
        for code in args.code or [str(REPO)]:
            checkout = Path(code).resolve()
            python = str(checkout / '.venv' / 'bin' / 'python')
            if args.side == 'payload':
                (work / checkout.name).mkdir()
                script = work / checkout.name / 'AnsiballZ_file_backup.py'
                build_payload(checkout, {'paths': [str(tree)], 'dest': str(dest), 'threads': 2,
                                         'encrypt': True, 'recipients': [recipient], 'keep_days': 0}, script)
                sides[checkout.name] = (python, [str(script)])
            else:
                opts = json.dumps({'paths': [str(tree)], 'dest': str(dest), 'threads': 2, 'recipients': [recipient]})
                sides[checkout.name] = (python, [str(checkout / 'bench' / 'ours.py'), 'file_backup', opts])
        print('tree: %d files, %.1f MB; side %s; load %s' % (files, sum(
            f.stat().st_size for f in tree.rglob('*') if f.is_file()) / 1e6, args.side,
            ' '.join('%.2f' % v for v in os.getloadavg())))
        if args.table:
            for name, (python, script) in sides.items():
                shutil.rmtree(dest, ignore_errors=True)
                print_table(name, run_once(python, script, work, args.priority, ['-X', 'importtime']))
                shutil.rmtree(dest, ignore_errors=True)
                data = run_once(python, script, work, args.priority)
                data['stderr'] = ''
                print_table(name + ' (no importtime)', data)
        results: Dict[str, List[Dict[str, Any]]] = {name: [] for name in sides}
        for index in range(args.rounds):
            order = list(sides) if index % 2 == 0 else list(reversed(list(sides)))
            for name in order:
                shutil.rmtree(dest, ignore_errors=True)
                data = run_once(*sides[name], work, args.priority)
                if args.keep:
                    keep = Path(args.keep) / name
                    shutil.rmtree(keep, ignore_errors=True)
                    shutil.copytree(dest, keep)
                results[name].append(data)
        print('medians of %d rounds (load now %s):' % (args.rounds, ' '.join('%.2f' % v for v in os.getloadavg())))
        for name, runs in results.items():
            def med(key: str, start: str = '', runs: List[Dict[str, Any]] = runs) -> float:
                return statistics.median(r['marks'][key] - (r['marks'][start] if start else 0.0) for r in runs)
            compiled = statistics.median(sum(c[2] for c in r['compiles'] if c[3] < r['marks']['partial']) for r in runs)
            ours = statistics.median(sum(c[2] for c in before_first_byte(r, True)) for r in runs)
            print('  %-14s first byte (partial) %.3f s [python up %.3f], compiled before it %.1f CPU ms (ours %.1f); '
                  'tail: tar closed -> archive renamed %.1f ms -> manifest durable %.1f ms (tail %.1f ms); '
                  'manifest -> end %.1f ms; wall %.3f s, CPU %.3f s (tree %.3f)' % (
                      name, med('partial'), med('python'), compiled * 1000, ours * 1000,
                      med('archive renamed', 'tar closed') * 1000, med('manifest durable', 'archive renamed') * 1000,
                      med('manifest durable', 'tar closed') * 1000, med('end', 'manifest durable') * 1000,
                      statistics.median(r['wall'] for r in runs), statistics.median(r['cpu'] for r in runs),
                      statistics.median(r['tree_cpu'] for r in runs)))
        names = list(results)
        for name in names[1:]:
            pairs = list(zip(results[name], results[names[0]]))
            print('  %s - %s paired medians: first byte %+.1f ms, tail %+.1f ms, wall %+.1f ms, CPU %+.1f ms' % (
                name, names[0],
                statistics.median(a['marks']['partial'] - b['marks']['partial'] for a, b in pairs) * 1000,
                statistics.median((a['marks']['manifest durable'] - a['marks']['tar closed'])
                                  - (b['marks']['manifest durable'] - b['marks']['tar closed']) for a, b in pairs)
                * 1000,
                statistics.median(a['wall'] - b['wall'] for a, b in pairs) * 1000,
                statistics.median(a['cpu'] - b['cpu'] for a, b in pairs) * 1000))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
