# -*- coding: utf-8 -*-
# Copyright: contributors to opsready.operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which timeline a point-in-time recovery follows (``target_timeline``, as pgBackRest's ``--target-timeline``).

A promotion or an earlier point-in-time recovery forks a new timeline from a point of the old one; the old one may
go on past that point (the transactions the earlier recovery threw away, a former primary's last writes), archived
as segments of the old timeline with the same numbers as the new one's. ``recovery_target_timeline = 'latest'``
(PostgreSQL's default) follows the newest timeline: a time on the old timeline after the fork is never reached, and
recovery stops at the fork, before those transactions. So:

* ``target_timeline`` ``latest`` (the newest timeline in the catalog), ``current`` (the base backup's) or a number:
  the chain holds only the segments on that timeline's path (its history file says where each ancestor ended), the
  history files staged are those of the path, and ``recovery_target_timeline`` is set to it;
* left unset: ``latest``, except that a ``stop_at`` lying on an older timeline after its fork, before the end of its
  archived WAL, is refused, naming both choices (which branch the user means cannot be told from the time alone).
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog, log_timeline
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import read_regular

HISTORY_FILE = re.compile(r'\A([0-9A-F]{8})\.history\Z')
HISTORY_LIMIT = 16 * 1024 * 1024   # a timeline history holds one line per earlier timeline
TIMELINE_CHOICE = re.compile(r'\A(latest|current|[1-9][0-9]{0,9})\Z')
# the reason PostgreSQL writes for a fork at a time target: "before 2026-12-06 10:18:39.869632+00"
TIME_REASON = re.compile(r'\b(?:before|after) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(?::?(\d\d))?')


def check_choice(value: Optional[str]) -> None:
    if value is not None and not TIMELINE_CHOICE.match(value):
        raise OpsReadyError('target_timeline must be latest, current or a timeline number (1, 2, ...), not %r.'
                            % value)


def history_dir(catalog: Catalog) -> str:
    return os.path.join(catalog.directory, 'pg_wal_extra')


def read_history(directory: str, timeline: int) -> Optional[List[Tuple[int, int, str]]]:
    """``(timeline, switch LSN, reason)`` of each ancestor in ``<timeline>.history`` (None: no such file). The
    archive is written by the server account: a link or a FIFO at the name is refused, not followed."""
    path = os.path.join(directory, '%08X.history' % timeline)
    if not os.path.lexists(path):
        return None
    text = read_regular(path, HISTORY_LIMIT, what='Timeline history file', follow=False).decode('utf-8', 'replace')
    rows = []
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2 or line.startswith('#') or not parts[0].isdigit() or '/' not in parts[1]:
            continue
        high, low = parts[1].split('/', 1)
        rows.append((int(parts[0]), (int(high, 16) << 32) | int(low, 16), parts[2].strip() if len(parts) > 2 else ''))
    return rows


def _segment_size(logs: List[Manifest]) -> int:
    for log in logs:
        size = (log.position or {}).get('wal_segment_size')
        if size:
            return int(size)
    return 16 * 1024 * 1024


def path_of(catalog: Catalog, timeline: int, base_timeline: int) -> Dict[int, Optional[int]]:
    """The timelines recovery on ``timeline`` reads, each with the number of its last segment on the path (None for
    ``timeline`` itself); refused when the history file of a timeline after the base's is missing."""
    if timeline <= base_timeline:
        return {timeline: None}
    rows = read_history(history_dir(catalog), timeline)
    if rows is None:
        raise OpsReadyError('target_timeline %d needs %08X.history (where timeline %d forked) in %s: copy it from the '
                            'archive or the server\'s pg_wal there, or choose another target_timeline. Nothing was '
                            'restored.' % (timeline, timeline, timeline, history_dir(catalog)),
                            missing_history=['%08X.history' % timeline])
    size = _segment_size(catalog.logs())
    path: Dict[int, Optional[int]] = {tli: max(lsn - 1, 0) // size for tli, lsn, _reason in rows}
    path[timeline] = None
    return path


def narrowed(catalog: Catalog, path: Dict[int, Optional[int]]) -> Catalog:
    """``catalog`` with only the WAL segments and base backups on ``path``: a base backup taken on another timeline
    (or on an ancestor after its fork) would start the chain somewhere the chosen timeline never was."""
    keep = []
    for entry in catalog.entries:
        position = entry.position or {}
        if entry.is_log:
            tli, start = log_timeline(entry), entry.pos_start
        else:
            tli, start = int(position.get('timeline') or 1), position.get('log_start')
        last = path.get(tli, -1)
        if tli not in path or (last is not None and start is not None and int(start) > last):
            continue
        keep.append(entry)
    return catalog if len(keep) == len(catalog.entries) else catalog.narrowed(keep)


def _fork_time(reason: str) -> Optional[datetime.datetime]:
    match = TIME_REASON.search(reason)
    if not match:
        return None
    offset = match.group(2) + ':' + (match.group(3) or '00')
    try:
        return datetime.datetime.fromisoformat(match.group(1) + offset)
    except ValueError:
        return None


def old_branch(catalog: Catalog, stop_at: datetime.datetime) -> Optional[Dict[str, Any]]:
    """The older timeline on the newest one's path whose archived WAL after its fork holds ``stop_at`` (after the
    fork point, at or before the end of that WAL), if any: what ``latest`` would not reach."""
    logs = catalog.logs()
    newest = max((log_timeline(m) for m in logs), default=1)
    if newest <= 1:
        return None
    rows = read_history(history_dir(catalog), newest) or []
    size = _segment_size(logs)
    for tli, lsn, reason in rows:
        fork_seg = max(lsn - 1, 0) // size
        mine = [(int(m.pos_start), m) for m in logs if log_timeline(m) == tli and m.pos_start is not None]
        fork = _fork_time(reason)
        after: Optional[datetime.datetime] = fork
        if fork is not None:
            branch = [m for seg, m in mine if seg >= fork_seg and m.consistent_at > fork]
        else:
            # a promotion without a time target: the fork is after the last segment wholly before it was archived
            branch = [m for seg, m in mine if seg > fork_seg]
            before = [m.consistent_at for seg, m in mine if seg < fork_seg] + [
                f.consistent_at for f in catalog.fulls() if int(f.position.get('timeline') or 1) <= tli]
            after = max(before) if before else None
        if not branch or after is None:
            continue
        end = max(m.consistent_at for m in branch)
        if after < stop_at <= end:
            return {'timeline': tli, 'fork': after, 'end': end, 'newest': newest, 'fork_known': fork is not None}
    return None


def select(catalog: Catalog, choice: Optional[str], stop_at: Optional[datetime.datetime],
           base_timeline: Any) -> Tuple[Catalog, Optional[str]]:
    """The catalog the chain is chosen from and the ``recovery_target_timeline`` to set (None: PostgreSQL's default,
    ``latest``). ``base_timeline``: a callable giving the timeline of the base the unnarrowed catalog would use."""
    check_choice(choice)
    if not catalog.logs():
        return catalog, None if choice in (None, 'latest') else choice
    if choice is None or choice == 'latest':
        if choice is None and stop_at is not None:
            branch = old_branch(catalog, stop_at)
            if branch is not None:
                raise OpsReadyError(
                    'stop_at %s lies on timeline %d after it forked (%s %s) and before the end of its archived WAL '
                    '(%s): timeline %d, the newest, does not hold the transactions timeline %d had then, and recovery '
                    'following it (recovery_target_timeline latest) would stop at the fork without them. Set '
                    'target_timeline: %d to recover timeline %d\'s state at stop_at, or target_timeline: latest to '
                    'follow timeline %d. Nothing was restored.'
                    % (isoformat(stop_at), branch['timeline'], 'at' if branch['fork_known'] else 'after',
                       isoformat(branch['fork']), isoformat(branch['end']), branch['newest'], branch['timeline'],
                       branch['timeline'], branch['timeline'], branch['newest']),
                    timeline=branch['timeline'], newest_timeline=branch['newest'])
        return catalog, None
    timeline = int(base_timeline()) if choice == 'current' else int(choice)
    path = path_of(catalog, timeline, int(base_timeline()))
    narrow = narrowed(catalog, path)
    if not [m for m in narrow.logs() if log_timeline(m) == timeline] and timeline > 1 and \
            not [m for m in narrow.fulls() if int(m.position.get('timeline') or 1) == timeline]:
        raise OpsReadyError('target_timeline %d: the catalog %s holds no WAL of timeline %d. Choose a timeline it '
                            'holds (backup_info lists the segments) or latest. Nothing was restored.'
                            % (timeline, catalog.directory, timeline))
    return narrow, str(timeline)
