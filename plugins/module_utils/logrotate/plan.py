# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotation plan of one log: names of its rotated copies, what shifts, what is deleted, what is
compressed. Pure computation over a directory listing, so check mode and diff show exactly what a
real run does.

Naming (the same as logrotate, so existing archives keep working):
- numbered: ``app.log.1`` (newest) ... ``app.log.N``, compressed ``app.log.2.zst`` / ``.gz``;
- ``dateext``: ``app.log`` + ``strftime(dateformat)`` in local time, e.g. ``app.log-20261129.zst``.

Dated copies are ordered by the instant their name stands for, never by the name's naive wall-clock time: when the
clock goes back (a DST fall-back) an hour of names repeats, and a copy made in the second pass (``...0210`` at
02:10 CET) would sort before one made an hour earlier (``...0230`` at 02:30 CEST) - retention would delete the newer.
The name is read in the local zone (as it was written; names stay logrotate's); a name in the repeated hour is the
second pass's when the copy's own mtime (its log's last write, kept by every rotation and compression) is later
than the first pass's period could give. Names in UTC would need no such rule but would rename every archive.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Pattern, Set, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

COMPRESSED_SUFFIXES = ('.zst', '.gz')
MODES = ('create', 'copytruncate', 'copy')
# The length of the period a directive names: a sub-hourly dateformat names two periods in a repeated hour.
_FORMAT_PERIOD = {'S': 1, 's': 1, 'M': 60, 'H': 3600}
# How much later than its name's period a copy's mtime may be and still belong to it (a copy or compression that
# set the time it finished): more than this, and a name in a repeated hour is the second pass's.
DST_SLACK_S = 300
_FORMAT_RE = {'Y': r'\d{4}', 'm': r'\d{2}', 'd': r'\d{2}', 'H': r'\d{2}', 'M': r'\d{2}', 'S': r'\d{2}',
              'j': r'\d{3}', 'y': r'\d{2}', 's': r'\d+', 'V': r'\d{2}', 'u': r'\d'}


@dataclass
class Policy:
    """One rotation policy, shared by every log it targets."""

    mode: str = 'create'
    rotate: int = 7
    size: Optional[int] = None
    minsize: Optional[int] = None
    interval: Optional[str] = None
    force: bool = False
    maxage: Optional[int] = None
    missingok: bool = False
    notifempty: bool = True
    dateext: bool = False
    dateformat: str = '-%Y%m%d'
    compress: bool = True
    compression: str = 'zstd'
    compression_level: Optional[int] = None
    delaycompress: bool = False
    create_mode: Optional[int] = None
    create_uid: Optional[int] = None
    create_gid: Optional[int] = None
    reopen_timeout: float = 10.0

    def validate(self) -> None:
        if self.mode not in MODES:
            raise OpsReadyError('mode %r is not one of %s.' % (self.mode, ', '.join(MODES)))
        if self.rotate < 0:
            raise OpsReadyError('rotate must be 0 or more (0 deletes the rotated copy once the writer reopened).')
        if self.maxage is not None and self.maxage < 0:
            raise OpsReadyError('maxage must be 0 or more days.')
        if self.compression not in ('zstd', 'gzip'):
            raise OpsReadyError('compression must be zstd or gzip (or set compress=false).')
        if not (self.force or self.size is not None or self.interval):
            raise OpsReadyError('No rotation trigger: set size, interval (daily/weekly/monthly/yearly) or force.')
        if self.dateext:
            if '/' in self.dateformat or not self.dateformat:
                raise OpsReadyError('dateformat %r must be a non-empty suffix without "/".' % self.dateformat)
            dated_pattern(self.dateformat)  # raises on unsupported directives
        if self.reopen_timeout < 0:
            raise OpsReadyError('reopen_timeout must be 0 or more seconds.')

    @property
    def suffix(self) -> str:
        return '.zst' if self.compression == 'zstd' else '.gz'


@dataclass
class Rotated:
    """An existing rotated copy of a log."""

    path: str
    stem: str          # the name without its compression suffix
    suffix: str        # '', '.zst' or '.gz'
    index: Optional[int] = None                  # numbered naming
    moment: Optional[datetime.datetime] = None   # dateext naming: the name's time (naive local, or UTC for %s)
    instant: float = 0.0                          # dateext naming: the POSIX time the name stands for (sorting)
    mtime: float = 0.0
    is_dir: bool = False   # a directory under a rotated copy's name: never a copy (it cannot be moved as one)


@dataclass
class LogPlan:
    log: str
    reason: str
    size: int
    rotated_to: str
    shifts: List[Tuple[str, str]] = field(default_factory=list)   # (from, to), highest index first
    delete: List[str] = field(default_factory=list)               # before rotating
    leftovers: List[str] = field(default_factory=list)            # .partial files of interrupted runs
    compress: List[str] = field(default_factory=list)             # after the writer reopened
    delete_after: List[str] = field(default_factory=list)         # rotate=0: the copy just made
    kept_plain: List[str] = field(default_factory=list)           # not compressed: the name is taken

    def as_dict(self) -> dict:
        return {'log': self.log, 'reason': self.reason, 'size': self.size, 'rotated_to': self.rotated_to,
                'shifts': [list(s) for s in self.shifts], 'delete': self.delete + self.delete_after,
                'compress': self.compress, 'leftovers': self.leftovers, 'kept_plain': self.kept_plain}


def dated_pattern(dateformat: str) -> Pattern[str]:
    """A regex matching what ``strftime(dateformat)`` produces (supported: %Y %m %d %H %M %S %j %y %s %V %u %%)."""
    out = ''
    i = 0
    while i < len(dateformat):
        char = dateformat[i]
        if char == '%':
            if i + 1 >= len(dateformat):
                raise OpsReadyError('dateformat %r ends with a lone %%.' % dateformat)
            directive = dateformat[i + 1]
            if directive == '%':
                out += '%'
            elif directive in _FORMAT_RE:
                out += _FORMAT_RE[directive]
            else:
                raise OpsReadyError('dateformat %r uses %%%s: only %%Y %%m %%d %%H %%M %%S %%j %%y %%s %%V %%u are '
                                    'supported (names must sort by date).' % (dateformat, directive))
            i += 2
            continue
        out += re.escape(char)
        i += 1
    return re.compile(out)


def _parse_dated(text: str, dateformat: str) -> Optional[datetime.datetime]:
    try:
        if dateformat.count('%s') == 1 and dateformat.replace('%s', '').count('%') == 0:
            prefix, _sep, rest = dateformat.partition('%s')
            digits = text[len(prefix):len(text) - len(rest) if rest else None]
            # an epoch names one instant: aware, so no zone rule reads it
            return datetime.datetime.fromtimestamp(int(digits), datetime.timezone.utc)
        return datetime.datetime.strptime(text, dateformat)
    except (ValueError, OverflowError, OSError):
        return None


def _period(dateformat: str) -> int:
    """The length in seconds of the period the finest directive of ``dateformat`` names (a day and more: 86400)."""
    finest = 86400
    for directive in re.findall(r'%(.)', dateformat.replace('%%', '')):
        finest = min(finest, _FORMAT_PERIOD.get(directive, 86400))
    return finest


def _instant(moment: datetime.datetime, mtime: float, period: int) -> float:
    """The POSIX time a dated name stands for (see the module's docstring): a local wall-clock time the clock showed
    twice (a DST fall-back) is the later one when the copy's mtime is past what the earlier period allows."""
    if moment.tzinfo is not None:
        return moment.timestamp()
    try:
        first = moment.replace(fold=0).timestamp()
        second = moment.replace(fold=1).timestamp()
    except (OverflowError, OSError, ValueError):
        return 0.0
    if second > first and period < second - first and mtime > first + period + DST_SLACK_S:
        return second
    return first


StatFn = Callable[[str], os.stat_result]


def list_rotated(log: str, policy: Policy, names: Optional[List[str]] = None,
                 lstat: Optional[StatFn] = None) -> Tuple[List[Rotated], List[str]]:
    """Existing rotated copies of ``log`` (newest first) and leftovers of interrupted runs.

    Leftovers are ``.partial`` files and the hidden temporary names a rotation makes (``.app.log.<hex>.new``,
    ``.copy``, ``.doomed``): each is redundant by construction (see rotate.py) and removed by the next run.
    ``lstat`` stats a name of the directory (relative to its descriptor); by path when not given.
    """
    directory, base = os.path.split(log)
    if names is None:
        names = os.listdir(directory)
    stat_of: StatFn = lstat if lstat is not None else (lambda name: os.lstat(os.path.join(directory, name)))
    if policy.dateext:
        body = dated_pattern(policy.dateformat).pattern
        regex = re.compile('^' + re.escape(base) + '(' + body + r')(\.zst|\.gz)?$')
    else:
        # Only the numbers a rotation writes: ``.01`` or ``.0`` (by hand, another tool) would be renamed onto a
        # name the rotation needs (``.2``, ``.1``) and every run would fail from then on; they are left alone.
        regex = re.compile('^' + re.escape(base) + r'\.([1-9]\d*)(\.zst|\.gz)?$')
    partial = re.compile('^' + re.escape(base) + r'[.-].*\.partial$|^\.' + re.escape(base)
                         + r'\.[0-9a-f]{12}\.(new|copy|doomed)$')
    found: List[Rotated] = []
    leftovers: List[str] = []
    period = _period(policy.dateformat) if policy.dateext else 0
    for name in names:
        if partial.match(name):
            leftovers.append(os.path.join(directory, name))
            continue
        match = regex.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        suffix = match.group(2) or ''
        item = Rotated(path=path, stem=path[:len(path) - len(suffix)] if suffix else path, suffix=suffix)
        try:
            st = stat_of(name)
        except OSError:
            continue
        item.mtime, item.is_dir = st.st_mtime, stat.S_ISDIR(st.st_mode)
        if policy.dateext:
            item.moment = _parse_dated(match.group(1), policy.dateformat)
            if item.moment is None:
                continue
            item.instant = _instant(item.moment, item.mtime, period)
        else:
            item.index = int(match.group(1))
        found.append(item)
    if policy.dateext:
        # by instant, never the naive time (a DST fall-back repeats an hour of names); the mtime and the name break a
        # tie (two names for one instant: an edited dateformat)
        found.sort(key=lambda r: (r.instant, r.mtime, r.path), reverse=True)
    else:
        found.sort(key=lambda r: (r.index or 0, r.path))
    return found, sorted(leftovers)


def plan_log(log: str, size: int, reason: str, policy: Policy, now: datetime.datetime,
             names: Optional[List[str]] = None,
             lstat: Optional[StatFn] = None) -> Tuple[Optional[LogPlan], Optional[str]]:
    """The plan for rotating ``log`` now, or (None, why not)."""
    existing, leftovers = list_rotated(log, policy, names, lstat)
    # A rotation moves (hard-links) or deletes each copy: a directory under such a name made the real run fail midway
    # and undo itself every time, after check mode had planned it. Not rotated, check mode alike, naming it.
    in_the_way = sorted(item.path for item in existing if item.is_dir)
    if in_the_way:
        return None, ('%s %s a directory under the name of a rotated copy: a rotation would have to move or delete '
                      'it. Nothing of %s was changed; move it out of the log directory (or rename it) and run again'
                      % (', '.join(in_the_way), 'is' if len(in_the_way) == 1 else 'are', log))
    too_old = now.timestamp() - policy.maxage * 86400 if policy.maxage is not None else None
    keep_n = policy.rotate
    if policy.dateext:
        rotated_to = log + now.astimezone().strftime(policy.dateformat)
        for item in existing:
            if item.stem == rotated_to:
                return None, ('%s already exists: dateformat %r cannot name two rotations in the same period; add '
                              '%%H%%M%%S to it to rotate more often' % (item.path, policy.dateformat))
        plan = LogPlan(log=log, reason=reason, size=size, rotated_to=rotated_to, leftovers=leftovers)
        kept: List[Any] = []
        for position, item in enumerate(existing):   # newest first; the new copy takes one slot
            if position + 1 >= keep_n or (too_old is not None and item.mtime < too_old):
                plan.delete.append(item.path)
            else:
                kept.append(item)
        survivors = [(item.stem, item.suffix) for item in kept]
    else:
        rotated_to = log + '.1'
        plan = LogPlan(log=log, reason=reason, size=size, rotated_to=rotated_to, leftovers=leftovers)
        survivors = []
        for item in reversed(existing):               # highest index first so renames never collide
            index = item.index or 0
            if index + 1 > keep_n or (too_old is not None and item.mtime < too_old):
                plan.delete.append(item.path)
                continue
            new_stem = '%s.%d' % (log, index + 1)
            plan.shifts.append((item.path, new_stem + item.suffix))
            survivors.append((new_stem, item.suffix))
    if keep_n == 0:
        plan.delete_after.append(rotated_to)
    elif policy.compress:
        wanted = [stem for stem, suffix in survivors if not suffix]
        if not policy.delaycompress:
            wanted.append(rotated_to)
        # A compressed copy may already hold the name (app.log.1 and app.log.1.zst both existed: an
        # operator's ``zstd -d``, a delaycompress switch): compressing would replace another generation.
        taken = _names_after_shifts(existing, plan)
        for stem in wanted:
            if stem + policy.suffix in taken:
                plan.kept_plain.append(stem)
            else:
                plan.compress.append(stem)
    return plan, None


def _names_after_shifts(existing: List[Rotated], plan: LogPlan) -> Set[str]:
    names = {item.path for item in existing}.difference(plan.delete)
    names.difference_update(old for old, _new in plan.shifts)
    names.update(new for _old, new in plan.shifts)
    return names
