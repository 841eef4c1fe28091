# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded JSON-lines history of compact health samples (the input of capacity planning).

One line per run: ``{"t": epoch seconds, "host", "verdict", "cpu", "mem", "swap", "load",
"fs": {mountpoint: [used %, inode %, size bytes, used bytes]}, "probes": {check name: probe}}``, where a
probe is ``{"type", "ok": 0|1, "ms": latency, "n": requests, "err": failed requests, "lat": [per-request
ms], "timeout": 1}`` (keys without a value are left out; ``lat`` only when the check returned per-request
latencies). ``probes`` is what ``slo_report`` computes history-sourced SLOs from; readers ignore keys they
do not know, so lines from before it was recorded still load. Lines are appended with O_APPEND
"fs": {mountpoint: [used %, inode %, size bytes, used bytes]}, "db": {server key: {counter: value}}}``
(``db``: database insights counters, see ``insights/deltas.py``). Lines are appended with O_APPEND
(concurrent runs never interleave); when the file grows past ``max_entries`` plus 10 % it is
rewritten atomically with the newest ``max_entries`` lines, so it stays bounded without a rewrite on
every run. Unparsable lines (a crash mid-append on a filesystem without atomic appends) are skipped.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any, Deque, Dict, List, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import (
    append_line_durable, atomic_write_text)
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def sample(result: Dict[str, Any], timestamp: float, host: str) -> Dict[str, Any]:
    metrics = result.get('metrics', {})
    line: Dict[str, Any] = {'t': round(timestamp, 3), 'host': host, 'verdict': result['verdict']}
    if 'cpu' in metrics:
        line['cpu'] = metrics['cpu']['percent']
    if 'memory' in metrics:
        line['mem'] = metrics['memory']['percent']
        line['swap'] = metrics['memory']['swap_percent']
        line['mem_total'] = metrics['memory']['total_bytes']
    if 'load' in metrics:
        line['load'] = metrics['load']['per_core5']
    fs = {}
    for item in metrics.get('filesystems', []):
        if 'error' not in item:
            fs[item['mountpoint']] = [item['percent'], item.get('inode_percent'), item['total_bytes'],
                                      item['used_bytes']]
    if fs:
        line['fs'] = fs
    probes = {}
    for check in result.get('checks', []):
        probes[check['name']] = probe(check)
    if probes:
        line['probes'] = probes
    # Database insight checks: their servers' cumulative counters, which the next run turns into rates.
    db = {c['key']: c['counters'] for c in result.get('checks', []) if c.get('key') and c.get('counters')}
    if db:
        line['db'] = db
    return line


def probe(check: Dict[str, Any]) -> Dict[str, Any]:
    """The compact per-run record of one check: its outcome, latency and request counts."""
    entry: Dict[str, Any] = {'type': check.get('type'), 'ok': 1 if check.get('ok') else 0}
    if check.get('latency_ms') is not None:
        entry['ms'] = check['latency_ms']
    if check.get('requests') is not None:
        entry['n'] = int(check['requests'])
        entry['err'] = int(check.get('errors') or 0)
    latencies = check.get('latencies_ms')
    if isinstance(latencies, list) and latencies:
        entry['lat'] = [round(float(v), 2) for v in latencies]
    if check.get('timed_out'):
        entry['timeout'] = 1
    return entry


def append(path: str, line: Dict[str, Any], max_entries: int) -> int:
    """Append ``line``; trim to the newest ``max_entries`` when past the slack. Returns lines kept."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OpsReadyError('history_path directory %s does not exist: create it first.' % directory)
    with locks.waiting(path + '.lock', 'health history', mode=0o644):
        append_line_durable(path, json.dumps(line, sort_keys=True, separators=(',', ':')))
        # Streamed with a per-line cap: only the newest max_entries lines are ever held.
        handle = safeio.open_regular_stream(path, what='History')
        if handle is None:   # cannot happen without missing_ok; for the type checker
            raise OpsReadyError('History %s vanished while it was written.' % path)
        with handle:
            tail: Deque[bytes] = collections.deque(maxlen=max_entries)
            count = 0
            for raw in safeio.iter_lines(handle):
                if raw is None or not raw.strip():
                    continue
                tail.append(raw.rstrip(b'\n'))
                count += 1
        lines = list(tail)
        if count > max_entries + max(1, max_entries // 10):
            keep = lines
            atomic_write_text(path, b'\n'.join(keep).decode('utf-8', 'replace') + '\n', mode=0o644)
            return len(keep)
        return count


def load(path: str) -> Tuple[List[Dict[str, Any]], int]:
    """(samples sorted by time, number of unparsable lines skipped)."""
    handle = safeio.open_regular_stream(path, what='History', missing_ok=True)
    if handle is None:
        raise OpsReadyError('History %s does not exist: run health_check with history_path=%s first.'
                            % (path, path))
    samples = []
    bad = 0
    with handle:
        for raw in safeio.iter_lines(handle):
            if raw is None:   # a line over the cap: unparsable
                bad += 1
                continue
            raw = raw.strip()
            if not raw:
                continue
            try:
                item = json.loads(raw)
                float(item['t'])
            except (ValueError, KeyError, TypeError, RecursionError):   # RecursionError: nested too deep
                bad += 1
                continue
            samples.append(item)
    samples.sort(key=lambda s: s['t'])
    return samples, bad
