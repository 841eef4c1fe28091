# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run probes concurrently, each bounded by its own deadline.

A probe that hangs (an NFS statvfs, a firewall that drops SYNs, a database that accepts but never
answers) costs its timeout and nothing more: it runs in a daemon thread that is abandoned when its
deadline passes, so it can neither block the others nor keep the process alive at exit.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple


class Outcome:
    """What a probe produced: ``value``, or ``error`` (an exception), or ``timed_out``."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.timed_out = False
        self.elapsed = 0.0
        self.done = threading.Event()


class Probe:
    def __init__(self, key: str, func: Callable[[], Any], timeout: float) -> None:
        self.key = key
        self.func = func
        self.timeout = timeout
        self.outcome = Outcome()
        self._started = 0.0

    def _target(self) -> None:
        try:
            self.outcome.value = self.func()
        except BaseException as exc:  # the probe's failure is data, reported by the caller
            self.outcome.error = exc
        finally:
            self.outcome.elapsed = time.monotonic() - self._started
            self.outcome.done.set()

    def start(self) -> None:
        self._started = time.monotonic()
        thread = threading.Thread(target=self._target, name='probe-' + self.key, daemon=True)
        thread.start()

    def wait(self) -> Outcome:
        remaining = self._started + self.timeout - time.monotonic()
        if not self.outcome.done.wait(max(0.0, remaining)):
            self.outcome.timed_out = True
            self.outcome.elapsed = time.monotonic() - self._started
        return self.outcome


def run_all(probes: List[Tuple[str, Callable[[], Any], float]], parallel: bool = True,
            meanwhile: Optional[Callable[[], Any]] = None) -> Tuple[Dict[str, Outcome], Any]:
    """Start every probe (key, func, timeout), run ``meanwhile`` in this thread, then collect.

    With ``parallel`` false the probes run one after another, each still bounded by its timeout.
    """
    items = [Probe(key, func, timeout) for key, func, timeout in probes]
    results: Dict[str, Outcome] = {}
    side = None
    if parallel:
        for probe in items:
            probe.start()
        if meanwhile is not None:
            side = meanwhile()
        for probe in items:
            results[probe.key] = probe.wait()
    else:
        if meanwhile is not None:
            side = meanwhile()
        for probe in items:
            probe.start()
            results[probe.key] = probe.wait()
    return results, side
