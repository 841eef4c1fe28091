# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counters between runs: the previous sample of a server from the host's health history, and rates.

Database counters (deadlocks, commits, buffer reads, slow queries, wait time) only grow; what an operator
needs is how much they grew since the last look. Each run records its counters in the health history
(``health/history.py``, one JSON line per run) under ``"db": {key: {counter: value}}``; the next run
finds the newest line with the same key and turns the difference into deltas and per-second rates.

A counter that went down was reset (server restart, ``pg_stat_reset()``, ``FLUSH STATUS``): its delta is
then its current value (what accumulated since the reset), the convention Prometheus' ``increase()`` uses,
and the result says ``reset``. The first run of a server has no previous sample: no deltas, a baseline.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

# The history is searched from its end: this much of its tail holds the newest lines of any server.
TAIL_BYTES = 1024 * 1024


def series_key(engine: str, server: str) -> str:
    """The history key of one server's counters (an engine and an endpoint)."""
    return '%s@%s' % (engine, server)


def _lines_newest_first(path: str) -> Tuple[List[bytes], bool]:
    """The lines of the history's tail, newest first; True when the tail is the whole file."""
    handle = safeio.open_regular_stream(path, what='History', missing_ok=True)
    if handle is None:
        return [], True
    with handle:
        size = os.fstat(handle.fileno()).st_size
        start = max(0, size - TAIL_BYTES)
        handle.seek(start)
        data = handle.read(TAIL_BYTES)
    lines = data.split(b'\n')
    if start > 0:
        lines = lines[1:]   # the first line of the tail is probably cut
    lines.reverse()
    return lines, start == 0


def _match(raw: bytes, key: str) -> Optional[Tuple[float, Dict[str, Any]]]:
    if key.encode('utf-8', 'replace') not in raw:   # cheap filter before parsing
        return None
    try:
        item = json.loads(raw)
        counters = item['db'][key]
        return float(item['t']), dict(counters)
    except (ValueError, KeyError, TypeError, RecursionError):   # RecursionError: nested too deep
        return None


def previous(path: Optional[str], key: str) -> Optional[Tuple[float, Dict[str, Any]]]:
    """(time, counters) of the newest history line recording ``key``; None without one."""
    if not path:
        return None
    lines, whole = _lines_newest_first(path)
    for raw in lines:
        found = _match(raw, key)
        if found:
            return found
    if whole:
        return None
    # Not in the tail (other samples crowded it out): stream the whole file once.
    handle = safeio.open_regular_stream(path, what='History', missing_ok=True)
    if handle is None:
        return None
    best = None
    with handle:
        for line in safeio.iter_lines(handle):
            if line is None:
                continue
            found = _match(line, key)
            if found and (best is None or found[0] >= best[0]):
                best = found
    return best


def compute(prev: Optional[Tuple[float, Dict[str, Any]]], now: float, counters: Dict[str, Any],
            restarted: bool = False) -> Dict[str, Any]:
    """Deltas and per-second rates of ``counters`` since ``prev``; ``{}`` without a usable previous sample.

    ``restarted``: the server says it restarted since ``prev`` (Redis' ``run_id`` changed). Every counter then
    counts from zero, also one that has grown past its old value again, which a comparison alone would take
    for a small increase."""
    if prev is None:
        return {}
    then, old = prev
    interval = now - then
    if interval <= 0:
        return {}
    deltas: Dict[str, float] = {}
    reset: List[str] = []
    for name, value in counters.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        before = old.get(name)
        if not isinstance(before, (int, float)) or isinstance(before, bool):
            continue
        if restarted or value < before:
            reset.append(name)
            delta = value
        else:
            delta = value - before
        deltas[name] = delta
    rates = {name: round(delta / interval, 6) for name, delta in deltas.items()}
    return {'interval_seconds': round(interval, 3), 'deltas': deltas, 'rates': rates, 'reset': sorted(reset)}
