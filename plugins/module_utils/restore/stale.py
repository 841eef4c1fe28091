# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The databases a killed db_restore leaves on a server, shared by the engines that restore under a temporary
name and swap (PostgreSQL, MariaDB/MySQL).

A run gives each database it creates next to the target a COMMENT naming the target (``CopyMarkers.marker``): the
temporary copy while it loads (``restore``), the old contents renamed aside by the swap (``old``). The next run into
that target, under the target's lock (no run into it is live), finds the databases that bear the marker AND are
named as a run names them (``copy_shape``) and drops them, or only reports them (``drop_stale_copies``). A database
that only looks like one (the name without the marker, or the marker without the name) is never touched.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Pattern, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

RESTORE_MARKER = ('opsready db_restore: temporary copy of database %s while a restore into it runs; the next '
                  'db_restore into that database drops it if the run was killed')
OLD_MARKER = ('opsready db_restore: %s of database %%s, %s aside by a restore\'s swap; the next db_restore into '
              'that database drops it if the run was killed')


class CopyMarkers:
    """The marker texts of one engine: ``old_contents`` and ``old_verb`` say what its swap puts aside and how
    (``'the previous contents'``, ``'renamed'``); ``quote`` quotes the target's name as that server does."""

    def __init__(self, old_contents: str, old_verb: str, quote: Callable[[str], str]) -> None:
        self.texts: Dict[str, str] = {'restore': RESTORE_MARKER, 'old': OLD_MARKER % (old_contents, old_verb)}
        self._quote = quote

    def marker(self, target: str, what: str = 'restore') -> str:
        return self.texts[what] % self._quote(target)

    def of(self, target: str) -> Dict[str, str]:
        """Every marker naming ``target``, with what it marks."""
        return {self.marker(target, what): what for what in self.texts}


def copy_shape(stem: str, what: str) -> Pattern[str]:
    """The names a run gives its databases of ``what`` with ``stem`` (the target cut to fit, see
    ``plan.temporary_name``)."""
    return re.compile(r'%s__opsready_%s_[0-9a-f]{8}\Z' % (re.escape(stem), what))


def stem_of(temporary: str, what: str) -> str:
    """The stem of a ``plan.temporary_name`` (its 8 hex characters and suffix cut)."""
    return temporary[:-(len('__opsready_%s_' % what) + 8)]


@contextlib.contextmanager
def told_on_failure(stale: Dict[str, Any]) -> Iterator[None]:
    """A restore that fails after it dropped stale copies (``stale``: what ``drop_stale_copies`` returned, filled
    in by the run) still names them: ``dropped_stale``/``kept_stale`` in the error's details, which the module's
    failed result carries (the DR drill reports them from a failed restore step too)."""
    try:
        yield
    except OpsReadyError as exc:
        for key in ('dropped_stale', 'kept_stale'):
            if stale.get(key):
                exc.details.setdefault(key, list(stale[key]))
        raise


def drop_stale_copies(found: Iterable[Tuple[str, str]], target: str, drop: Callable[[str], Optional[str]],
                      drop_by_hand: Callable[[str], str],
                      keep: Optional[Callable[[str, str], Optional[str]]] = None) -> Dict[str, List[str]]:
    """For each ``(name, what)`` a killed run into ``target`` left: ``keep(name, what)`` (a warning) leaves it
    (``kept_stale``), else ``drop(name)`` (None, or why it failed) drops it (``dropped_stale``); one that could not
    be dropped is a warning naming it and the statement (``drop_by_hand(name)``) that drops it. The run goes on."""
    dropped: List[str] = []
    kept: List[str] = []
    warnings: List[str] = []
    for name, what in found:
        note = keep(name, what) if keep is not None else None
        if note:
            kept.append(name)
            warnings.append(note)
            continue
        error = drop(name)
        if error is None:
            dropped.append(name)
        else:
            warnings.append('database %s, left by a killed db_restore into %s, could not be dropped (%s): drop it by '
                            'hand, %s' % (name, target, error, drop_by_hand(name)))
    return {'dropped_stale': dropped, 'kept_stale': kept, 'warnings': warnings}
