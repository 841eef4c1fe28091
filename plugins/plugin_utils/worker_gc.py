# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No cyclic garbage collection in an Ansible task worker while it builds and runs a module (issue 22).

Before a module runs, its worker (a fork of the controller: it runs one task, or one loop, and exits) builds the
AnsiballZ payload: Ansible's module_utils finder parses every file the module's imports reach into an AST.
backup_info reaches ~39,000 AST nodes of catalog code (ping: Ansible's own ~43,000), and allocating them ran the
cyclic collector ~180 times, two of them full collections walking the controller heap the worker inherited
(~90,000 objects): measured in the worker, 113 ms of backup_info's 243 ms payload build were collections, against
41 of ping's 120 ms. Nothing a task allocates needs the collector before the task is over; it is turned back on, as
it was, when the action returns. The controller's own process, which lives on, is never touched.

What the build leaves is not freed by reference counting: the finder links every import node to its parent
(``node.parent``), so each parsed file's AST is a cycle, and ~126,000 young objects (backup_info) were waiting when
the collector came back on. Its first collection walked them all: ~45 ms in the worker, on the way to the result.
So before turning it back on, the worker's first action freezes what is there (``gc.freeze()``: the inherited heap
and the build's leftovers are never walked again). That memory goes when the worker exits, after its task; the
payload is built once per controller run (later items of a loop reuse Ansible's payload cache), so later actions in
the same worker collect their garbage as before.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
from typing import Iterator

from ansible.plugins.action.normal import ActionModule as _NormalAction


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, in a forked task worker only; restored as it was after."""
    if multiprocessing.parent_process() is None or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _FROZEN_IN[0] != os.getpid():
            _FROZEN_IN[0] = os.getpid()
            gc.freeze()
        gc.enable()


# The process whose leftovers were frozen (once per worker: see the module's docstring)
_FROZEN_IN = [0]


class CollectorPausedAction(_NormalAction):
    """Ansible's ``normal`` action (check mode, async, module_defaults, diff as it does them) with the worker's
    collector paused. Every module of the collection runs through it: plugins/action/<module>.py is a subclass, one
    per module, because an action plugin is found by its module's name (and ansible-test wants a module per action
    plugin, so one shared plugin reached by routing is not an option)."""

    def run(self, tmp=None, task_vars=None):
        with collector_paused():
            return super().run(tmp, task_vars)
