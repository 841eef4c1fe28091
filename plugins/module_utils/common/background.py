# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One piece of work in a daemon thread while the caller goes on (a server's facts read while pg_basebackup
connects, a file list sealed while an archive is committed).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class Background:
    """``work()`` run in a daemon thread; ``result()`` waits for it and returns what it returned or raises what it
    raised (in the caller's thread, so the run's error handling sees it as if called there)."""

    def __init__(self, work: Callable[[], Any], name: str) -> None:
        self._work = work
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as exc:  # pylint: disable=broad-except  # handed to result()'s caller
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
