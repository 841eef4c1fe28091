#!/usr/bin/env python
"""What each module costs before it does anything: the AnsiballZ payload Ansible builds for it, and its imports.

    .venv/bin/python bench/module_payload.py [module ...] [--imports N]

For every module (default: all of the collection's, and ansible.builtin.ping as the floor) this builds the
payload with Ansible's own builder (``ansible.executor.module_common.modify_module``, the code `ansible` runs:
its module_utils finder reads every import statement, function-level ones too) and prints:

* payload size and the number and bytes of the collection's module_utils files it ships;
* the controller's build time (paid on every `ansible` run: the payload cache lives in the per-process
  local temp directory; the finder parses every shipped file) and the garbage collections during it (in a real
  run the build happens in the task worker, whose collections also walk the controller heap it inherited: more
  expensive there than in this small process; backup_info's action plugin pauses them, see
  plugins/plugin_utils/worker_gc.py). Ansible's own routing table is loaded once before the first build, so the
  first module listed does not pay it;
* the import time on the target: ``python -X importtime`` importing the module from the payload zip, the way
  AnsiballZ does (zipimport: no .pyc cache, every imported file is compiled on every run), minus the floor
  of ``ansible.module_utils.basic``; with ``--imports N`` the N slowest imports of each module.

The machine's load average is printed with the figures (the VM is shared: compare rows of the same run).
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import os
import re
import subprocess  # nosec B404 # argv lists
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault('ANSIBLE_CONFIG', str(REPO / 'ansible.cfg'))
COLLECTION = 'ansible_collections/opsready/operations/'


def build_payload(fqcn: str) -> Tuple[bytes, float]:
    """The module's AnsiballZ zip (module_utils and module) and the seconds Ansible took to build it."""
    zip_data, elapsed, dummy = build_payload_gc(fqcn)
    return zip_data, elapsed


def build_payload_gc(fqcn: str) -> Tuple[bytes, float, int]:
    """``build_payload`` and the number of garbage collections during the build."""
    from ansible.executor import module_common
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader, module_loader
    from ansible.template import Templar
    init_plugin_loader()
    path = module_loader.find_plugin_with_context(fqcn).plugin_resolved_path
    collections: List[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == 'start':
            collections.append(info['generation'])
    gc.callbacks.append(count)
    started = time.monotonic()
    try:
        built = module_common.modify_module(module_name=fqcn.rsplit('.', 1)[-1], module_path=path, module_args={},
                                            templar=Templar(loader=DataLoader()),
                                            task_vars={'ansible_python_interpreter': sys.executable})
    finally:
        elapsed = time.monotonic() - started
        gc.callbacks.remove(count)
    match = re.search(rb"zip_data='([^']+)'", built.b_module_data)
    if not match:
        raise RuntimeError('%s: no AnsiballZ zip in the payload (not a new-style Python module?)' % fqcn)
    return base64.b64decode(match.group(1)), elapsed, len(collections)


def shipped(zip_data: bytes) -> Dict[str, int]:
    """The collection files in the payload (path under the collection -> bytes)."""
    with zipfile.ZipFile(io.BytesIO(zip_data)) as archive:
        return {i.filename[len(COLLECTION):]: i.file_size for i in archive.infolist()
                if i.filename.startswith(COLLECTION)}


def import_times(zip_path: str, module: str) -> List[Tuple[int, str]]:
    """(cumulative microseconds, name) of every import when ``module`` is imported from the payload zip."""
    code = 'import sys; sys.path.insert(0, %r); import ansible.module_utils.basic; import %s' % (zip_path, module)
    result = subprocess.run([sys.executable, '-X', 'importtime', '-c', code], capture_output=True, text=True,
                            check=True)  # nosec B603
    rows = []
    for line in result.stderr.splitlines():
        parts = line.split('|')
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('modules', nargs='*')
    parser.add_argument('--imports', type=int, default=0, help='print the N slowest imports of each module')
    args = parser.parse_args()
    names = args.modules or ['ansible.builtin.ping'] + sorted(
        'opsready.operations.' + p.stem for p in (REPO / 'plugins' / 'modules').glob('*.py') if p.stem != '__init__')
    print('load average %s' % ', '.join('%.2f' % x for x in os.getloadavg()))
    print('%-36s %9s %6s %9s %8s %6s %9s' % ('module', 'payload', 'files', 'our KB', 'build s', 'gc', 'import ms'))
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader._collection_finder import _get_collection_metadata
    init_plugin_loader()
    _get_collection_metadata('ansible.builtin')   # Ansible's routing table: once per `ansible` run, not per module
    with tempfile.TemporaryDirectory() as tmp:
        for fqcn in names:
            zip_data, build, collections = build_payload_gc(fqcn)
            files = shipped(zip_data)
            zip_path = os.path.join(tmp, fqcn + '.zip')
            with open(zip_path, 'wb') as handle:
                handle.write(zip_data)
            if fqcn.startswith('ansible.builtin.'):
                module = 'ansible.modules.' + fqcn.rsplit('.', 1)[-1]
            else:
                module = 'ansible_collections.opsready.operations.plugins.modules.' + fqcn.rsplit('.', 1)[-1]
            rows = import_times(zip_path, module)
            own = dict((name, us) for us, name in rows)
            print('%-36s %9d %6d %9.0f %8.3f %6d %9.0f   (load %.2f)' % (
                fqcn, len(zip_data), len(files), sum(files.values()) / 1024, build, collections,
                own.get(module, 0) / 1000, os.getloadavg()[0]))
            if args.imports:
                for us, name in sorted(((us, n) for us, n in rows if n != module), reverse=True)[:args.imports]:
                    if not name.startswith('ansible.module_utils') and name not in ('ansible', 'site'):
                        print('    %7.1f ms  %s' % (us / 1000, name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
