# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation triggers (size, minsize, daily/weekly/monthly/yearly, force) and the state file that
remembers when each log was last rotated.

Semantics follow logrotate so that policies translate one to one:
- ``size``: rotate when the log is at least this big, whatever the interval.
- ``interval``: rotate when the calendar day / ISO week / month / year (local time) changed since
  the last rotation recorded in the state file. A log seen for the first time is recorded, not
  rotated (as logrotate does), unless another trigger fires.
- ``minsize``: with ``interval``, rotate only when the log is also at least this big.
- ``force``: rotate whatever the triggers say.
- ``notifempty``: never rotate an empty log.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from typing import Any, Dict, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_json
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, parse_time
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

INTERVALS = ('daily', 'weekly', 'monthly', 'yearly')
# A last rotation further ahead than this is not clock skew (DST, a host moved zones): logrotate's 25 hours.
FUTURE_SLACK = datetime.timedelta(hours=25)
_UNITS = {'': 1, 'b': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4}
_SIZE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$', re.IGNORECASE)


def parse_size(value: Any, what: str = 'size') -> Optional[int]:
    """'100M', '1.5G', '10k', '512' or an int -> bytes (powers of 1024, as logrotate)."""
    if value is None or value == '':
        return None
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise OpsReadyError('%s %r is not a size: use bytes or a number with k, M or G (e.g. 100M).'
                                % (what, value))
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < 0:
        raise OpsReadyError('%s must not be negative.' % what)
    return size


def interval_due(interval: str, last: datetime.datetime, now: datetime.datetime) -> bool:
    """Whether the calendar period of ``interval`` changed between ``last`` and ``now`` (local time)."""
    if interval not in INTERVALS:
        raise OpsReadyError('interval %r is not one of %s.' % (interval, ', '.join(INTERVALS)))
    last_l = last.astimezone()
    now_l = now.astimezone()
    if now_l <= last_l:
        return False
    if interval == 'daily':
        return now_l.date() != last_l.date()
    if interval == 'weekly':
        return now_l.isocalendar()[:2] != last_l.isocalendar()[:2] or (now_l - last_l).days >= 7
    if interval == 'monthly':
        return (now_l.year, now_l.month) != (last_l.year, last_l.month)
    return now_l.year != last_l.year


STATE_LIMIT = 64 * safeio.MiB   # one line per rotated log: far below this


def _checked_logs(data: Any, path: str) -> Dict[str, Dict[str, str]]:
    """The ``logs`` mapping of a parsed state file, every entry the shape ``save`` writes.

    Valid JSON of another shape (edited by hand, written by another tool) used to surface as a Python
    TypeError/AttributeError from deep inside planning; the message names the entry to fix instead.
    """
    def bad(what: str) -> OpsReadyError:
        return OpsReadyError('State file %s is unreadable (%s): fix or remove it (rotations by interval will '
                             'restart from now).' % (path, what))
    if not isinstance(data, dict):
        raise bad('it holds a JSON %s, not an object' % type(data).__name__)
    logs = data.get('logs', {})
    if not isinstance(logs, dict):
        raise bad('"logs" is a JSON %s, not an object of log paths' % type(logs).__name__)
    for log, entry in logs.items():
        if not isinstance(entry, dict):
            raise bad('the entry of %s is a JSON %s, not an object' % (log, type(entry).__name__))
        moment = entry.get('last_rotated')
        if moment is not None and not isinstance(moment, str):
            raise bad('last_rotated of %s is a JSON %s, not an ISO 8601 time' % (log, type(moment).__name__))
    return dict(logs)


class StateFile:
    """JSON ``{"version": 1, "logs": {"/abs/path": {"last_rotated": ISO-8601 UTC}}}`` written atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.logs: Dict[str, Dict[str, str]] = {}
        self._original = '{}'
        if os.path.lexists(path):
            # A FIFO at the name hung the run (root's), /dev/zero filled its memory: a regular file within the cap.
            # Never through a link or a second hard link: state_file may be in a directory the application's
            # account owns, which could link it to a JSON file of root's that would be written back here 0644.
            raw = safeio.read_regular(path, STATE_LIMIT, what='State file', follow=False, single_link=True)
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError) as exc:   # RecursionError: nested too deep
                raise OpsReadyError('State file %s is unreadable (%s): fix or remove it (rotations by interval '
                                    'will restart from now).' % (path, exc))
            self.logs = _checked_logs(data, path)
        self._original = json.dumps(self.logs, sort_keys=True)

    def last_rotated(self, log: str) -> Optional[datetime.datetime]:
        entry = self.logs.get(log)
        if not entry or not entry.get('last_rotated'):
            return None
        return parse_time(entry['last_rotated'], 'last_rotated of %s in %s' % (log, self.path))

    def record(self, log: str, moment: datetime.datetime) -> None:
        self.logs[log] = {'last_rotated': isoformat(moment)}

    @property
    def dirty(self) -> bool:
        return json.dumps(self.logs, sort_keys=True) != self._original

    def save(self) -> bool:
        """Write only when something changed; returns whether it wrote."""
        if not self.dirty:
            return False
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            safeio.makedirs(directory, 0o755)
            atomic_write_json(self.path, {'version': 1, 'logs': self.logs}, mode=0o644)
        except OSError as exc:
            raise OpsReadyError('Cannot write state file %s (%s): make its directory writable or set state_file.'
                                % (self.path, exc.strerror or exc))
        self._original = json.dumps(self.logs, sort_keys=True)
        return True


def decide(size: int, last: Optional[datetime.datetime], now: datetime.datetime, *, size_limit: Optional[int],
           minsize: Optional[int], interval: Optional[str], force: bool, notifempty: bool) -> Tuple[bool, str, bool]:
    """(due, reason, record_first_seen) for one log of ``size`` bytes last rotated at ``last``."""
    if notifempty and size == 0:
        return False, 'empty (notifempty)', False
    if force:
        return True, 'force', False
    if size_limit is not None and size >= size_limit:
        return True, 'size %d >= %d' % (size, size_limit), False
    if interval:
        if last is None:
            return False, 'first seen: %s rotation counts from now' % interval, True
        if last - now > FUTURE_SLACK:
            # Not due "until the clock catches up" would stop rotation for years while the log grows
            # (a clock set ahead when the state was written, a state file from another host); as logrotate.
            if minsize is not None and size < minsize:
                return False, 'last rotated %s is in the future but size %d < minsize %d' % (
                    isoformat(last), size, minsize), False
            return True, 'last rotated %s is in the future (clock or state file wrong): rotated now' % (
                isoformat(last)), False
        if interval_due(interval, last, now):
            if minsize is not None and size < minsize:
                return False, '%s due but size %d < minsize %d' % (interval, size, minsize), False
            return True, '%s (last rotated %s)' % (interval, isoformat(last)), False
        return False, '%s not due (last rotated %s)' % (interval, isoformat(last)), False
    return False, 'size %d < %d' % (size, size_limit or 0) if size_limit is not None else 'no trigger', False
