# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout report: one JSON document per run, updated host by host as each finishes.

Each host's entry is merged under an exclusive lock and the file is rewritten atomically, so the
report is complete and readable at every moment, including after a rollout that stopped halfway
(hosts the rollout never reached stay ``not_reached``). A Markdown rendering is written beside it.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import (
    atomic_write_json,
    atomic_write_text,
)
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

STATUSES = ('not_reached', 'patched', 'unchanged', 'skipped', 'failed', 'planned')


@contextlib.contextmanager
def _locked(path: str, check_mode: bool = False) -> Iterator[None]:
    """Under the report's lock; in check mode nothing is made (neither the directory nor the lock file)."""
    directory = os.path.dirname(os.path.abspath(path))
    # Before anything is made: an account owning a directory above could link the report's directory to /etc.
    safeio.check_parents(directory, 'write the patching report into', 'The directory of path')
    if check_mode and not os.path.isdir(directory):
        yield
        return
    safeio.makedirs(directory, 0o750)
    with locks.waiting(path + '.lock', 'patching report', mode=0o640, create=not check_mode):
        yield


def load(path: str) -> Optional[Dict[str, Any]]:
    try:
        if not os.path.lexists(path):
            return None
        # Never through a link or a second hard link: the report's directory may be another account's, which could
        # link a JSON file of root's at its name (read, merged and written back, and returned in the result).
        data = safeio.read_regular(path, 16 * 1024 * 1024, what='Patching report', follow=False, single_link=True)
        return json.loads(data)
    except (ValueError, RecursionError) as exc:   # RecursionError: nested deeper than json recurses
        raise OpsReadyError('Patching report %s is not valid JSON (%s); move it aside and rerun.' % (path, exc))


def _save(path: str, report: Dict[str, Any], check_mode: bool = False) -> None:
    """Stamp and summarize ``report`` (check mode too: it returns the report the real run writes), then write it
    and its Markdown rendering (not in check mode)."""
    report['updated'] = isoformat(utcnow())
    report['summary'] = summarize(report)
    if check_mode:
        return
    atomic_write_json(path, report, mode=0o640)
    atomic_write_text(os.path.splitext(path)[0] + '.md', render_markdown(report), mode=0o640)


def summarize(report: Dict[str, Any]) -> Dict[str, Any]:
    counts = {status: 0 for status in STATUSES}
    packages = 0
    reboots = 0
    for entry in report.get('hosts', {}).values():
        counts[entry.get('status', 'not_reached')] = counts.get(entry.get('status', 'not_reached'), 0) + 1
        packages += len(_list(entry.get('upgraded')))
        reboots += 1 if _dict(entry.get('reboot')).get('performed') else 0
    return {'hosts': counts, 'packages_upgraded': packages, 'reboots': reboots}


def start(path: str, run_id: str, hosts: Sequence[str], settings: Optional[Dict[str, Any]] = None,
          check_mode: bool = False) -> Dict[str, Any]:
    """Create the run's report listing every host as not reached; a second call for the same run is a no-op."""
    with _locked(path, check_mode):
        report = load(path)
        if report and report.get('run_id') == run_id:
            return {'changed': False, 'report': report}
        report = {'run_id': run_id, 'started': isoformat(utcnow()), 'settings': settings or {},
                  'hosts': {h: {'status': 'not_reached'} for h in hosts}}
        _save(path, report, check_mode)
        return {'changed': True, 'report': report}


def record(path: str, run_id: str, host: str, entry: Dict[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """Merge one host's outcome into the report of ``run_id``."""
    if entry.get('status') not in STATUSES:
        raise OpsReadyError('status must be one of %s.' % ', '.join(STATUSES))
    with _locked(path, check_mode):
        report = load(path)
        if not report or report.get('run_id') != run_id:
            report = {'run_id': run_id, 'started': isoformat(utcnow()), 'settings': {}, 'hosts': {}}
        merged = dict(entry, finished=isoformat(utcnow()))
        report['hosts'][host] = merged
        _save(path, report, check_mode)
        return {'changed': True, 'report': report}


def _list(value: Any) -> List[Any]:
    """A list field of an entry (``upgraded``, ``held``) a playbook may have passed in another shape."""
    return value if isinstance(value, list) else [] if value is None or value == '' else [value]


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _versions(items: List[Any]) -> str:
    """os_patch's ``upgraded`` (name, old, new); an item of another shape (a package name a playbook passed) is
    shown as it is: the report of a rollout is never lost to a traceback over one cell."""
    return ', '.join('%s %s -> %s' % (i.get('name'), i.get('old') or '-', i.get('new') or '-')
                     if isinstance(i, dict) else str(i) for i in items) or '-'


# Raw HTML, autolinks, links, images and code spans (and the escape itself), backslash-escaped: CommonMark renders
# each as itself ('<' opens the first two, '>' alone is text). A '|' would end the table cell: '/'. A reason quotes
# the package manager, which quotes what a repository serves.
_MARKUP = str.maketrans(dict({c: '\\' + c for c in '\\`<[]!'}, **{'|': '/'}))


def _md(value: Any) -> str:
    """One table cell or heading word of text: one line (a line break would start a row or a heading of its own),
    no markup."""
    return ' '.join(str(value).splitlines()).translate(_MARKUP)


def render_markdown(report: Dict[str, Any]) -> str:
    lines = ['# Patching run %s' % _md(report.get('run_id')), '',
             'Started %s, updated %s.' % (_md(report.get('started')), _md(report.get('updated'))), '']
    summary = report.get('summary') or summarize(report)
    lines.append('Hosts: ' + ', '.join('%d %s' % (n, s) for s, n in summary['hosts'].items() if n) +
                 '. Packages upgraded: %d. Reboots: %d.' % (summary['packages_upgraded'], summary['reboots']))
    lines += ['', '| host | status | reason | upgraded (old -> new) | held | reboot |', '|---|---|---|---|---|---|']
    for host in sorted(report.get('hosts', {})):
        entry = report['hosts'][host]
        reboot = _dict(entry.get('reboot'))
        if reboot.get('performed'):
            reboot_text = 'rebooted'
        elif reboot.get('required'):
            reboot_text = 'required, skipped: %s' % (reboot.get('skipped_reason') or 'not allowed')
        else:
            reboot_text = '-'
        held = ', '.join('%s (%s available)' % (h.get('name'), h.get('new')) if isinstance(h, dict) else str(h)
                         for h in _list(entry.get('held'))) or '-'
        reason = entry.get('reason') or '-'
        lines.append('| %s | %s | %s | %s | %s | %s |' % tuple(_md(v) for v in (
            host, entry.get('status'), reason, _versions(_list(entry.get('upgraded'))), held, reboot_text)))
    return '\n'.join(lines) + '\n'
