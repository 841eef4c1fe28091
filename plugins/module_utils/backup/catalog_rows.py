# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``RowView``: one backup set of a sealed catalog index answered from the index's columns (``catalog.Catalog.set_view``
with ``rows=True``). Apart from catalog.py because only a directory with a sealed index (1,000 manifests or more)
uses it: ``backup_info`` on a small catalog does not compile it (a module's imports are compiled from the payload
zip on every run).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import bisect
import collections
import datetime
import itertools
import operator
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog, log_timeline
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import (
    R_ARTIFACT, R_CONSISTENT, R_DATABASE, R_ENGINE, R_FINISHED, R_ID, R_KIND, R_MEMBERS, R_PARENT, R_PEND, R_PSTART,
    R_VERIFIED, confirm_rows)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    LOG_KINDS, MANIFEST_SUFFIX, Manifest, from_us)


_LOG_KINDS = frozenset(LOG_KINDS)


class RowView(Catalog):
    """One backup set of a sealed scan (``catalog_index``: the index's columns), answered from the columns: objects
    are built for its fulls and diffs (``entries``: few, one a day) and for the logs a question returns (the
    chain, the newest listed); every other log stays a row number, and the log questions (which log holds a
    position, how far a contiguous run of logs reaches, the gap after a sequence) are answered on the columns.
    At a year of hourly logs that is 23 objects of 24 not built (~0.45 s and the memory of 200,000 objects for
    ``backup_info`` of every set). Every answer is ``Catalog``'s (test_catalog_index_equivalence)."""

    row_view = True   # (catalog.row_view)

    _columns: Tuple[Any, ...]
    _rows: List[int]
    _kinds: List[str]
    _log_rows: List[int]
    _built: Dict[int, Manifest]
    _log_index_rows: Optional[Tuple[Dict[int, int], List[Tuple[int, int, int]], List[int]]]
    _reach_rows: Dict[int, int]
    _ids: Optional[List[str]]
    _log_ids_ends: Optional[Tuple[List[str], List[Optional[int]]]]

    @classmethod
    def of(cls, base: Catalog, refs: List[int]) -> Optional['RowView']:
        """The view of row numbers ``refs`` of ``base``'s sealed scan; None when a ``Catalog`` must answer (a log
        with a start and no end: the chain walk reads that manifest's JSON)."""
        columns = base._scan.columns
        if columns is None:
            return None
        column = columns.__getitem__
        finished = column(1 + R_FINISHED)
        rows = sorted(refs, key=finished.__getitem__)
        times = list(map(finished.__getitem__, rows))
        # no two equal (sorted: each less than the next, proved in C; a set of the times cost more)
        if not all(map(operator.lt, times, itertools.islice(times, 1, None))):
            # equal finish times: by (finished, id) as ``_order`` (two stable sorts)
            rows.sort(key=lambda row: cls._row_id(columns, row))
            rows.sort(key=finished.__getitem__)
        kinds = list(map(column(1 + R_KIND).__getitem__, rows))
        is_log = list(map(_LOG_KINDS.__contains__, kinds))
        log_rows = list(itertools.compress(rows, is_log))
        if None in map(column(1 + R_PEND).__getitem__, log_rows):
            return None
        view = base._derived(cls)
        view._columns = columns
        view._rows = rows
        view._kinds = kinds
        view._log_rows = log_rows
        view._built = {}
        view._ids = None
        view._log_ids_ends = None
        others = list(itertools.compress(rows, map(operator.not_, is_log)))
        view.entries = view._objects(others)
        view._filter = (columns[1 + R_ENGINE][rows[0]], columns[1 + R_DATABASE][rows[0]])
        view._by_id = {m.id: m for m in view.entries}
        view._log_index_rows = None
        view._reach_rows = {}
        return view

    def _rows_log_index(self) -> Tuple[Dict[int, int], List[Tuple[int, int, int]], List[int]]:
        """The log index of ``Catalog._log_index`` on rows: the first log (in order) per start, and (start, end, row)
        sorted by start (stable), which every log has here (``of`` returned None otherwise), and those starts. Built
        on the first chain question: retention (``retention.plan_view``) asks none, and at a year of hourly logs
        the index of 190,000 logs was a tenth of a check-mode prune."""
        index = self._log_index_rows
        if index is None:
            log_rows = self._log_rows
            starts = list(map(self._columns[1 + R_PSTART].__getitem__, log_rows))
            ends = list(map(self._columns[1 + R_PEND].__getitem__, log_rows))
            by_start = dict(zip(reversed(starts), reversed(log_rows)))
            by_start.pop(None, None)  # type: ignore[call-overload]
            triples: Iterable[Tuple[int, int, int]] = zip(starts, ends, log_rows)
            if None in starts:
                triples = [triple for triple in triples if triple[0] is not None]
            ranges = sorted(triples, key=operator.itemgetter(0))
            if len(by_start) < len(ranges):
                # Starts held twice (rare: WAL segments of one number on two timelines after a failover): the
                # newest timeline's, as Catalog._log_index answers; only those rows' objects are built.
                by_start, ranges = self._newest_timelines(by_start, ranges)
            index = self._log_index_rows = (by_start, ranges, list(map(operator.itemgetter(0), ranges)))
        return index

    def _newest_timelines(self, by_start: Dict[int, int], ranges: List[Tuple[int, int, int]]
                          ) -> Tuple[Dict[int, int], List[Tuple[int, int, int]]]:
        counts = collections.Counter(start for start, _end, _row in ranges)
        twice = [triple for triple in ranges if counts[triple[0]] > 1]
        timeline = {triple[2]: log_timeline(m) for triple, m in zip(twice, self._objects([t[2] for t in twice]))}
        for start, _end, row in twice:
            if timeline[row] > timeline[by_start[start]]:
                by_start[start] = row
        return by_start, sorted(ranges, key=lambda r: (r[0], -timeline.get(r[2], 1)))

    @property
    def _by_start(self) -> Dict[int, int]:
        return self._rows_log_index()[0]

    @property
    def _ranges(self) -> List[Tuple[int, int, int]]:
        return self._rows_log_index()[1]

    @property
    def _range_starts(self) -> List[int]:
        return self._rows_log_index()[2]

    @staticmethod
    def _row_id(columns: Tuple[Any, ...], row: int) -> str:
        ident = columns[1 + R_ID][row]
        if ident is None:
            ident = columns[1 + R_ARTIFACT][row]
        return columns[0][row] if ident is None else ident  # type: ignore[no-any-return]

    def _objects(self, rows: List[int]) -> List[Manifest]:
        """The objects of ``rows`` (built once per view)."""
        built = self._built
        missing = [row for row in rows if row not in built]
        if missing:
            built.update(zip(missing, self._scan.build_set(self.directory, missing)))
        return [built[row] for row in rows]

    # -- rows in bulk (retention: catalog_prune._prune_per_set) -----------------------------------------------
    def row_ids(self) -> List[str]:
        """Every artifact id of the set, oldest first (``[m.id for m in Catalog.entries]``)."""
        ids = self._ids
        if ids is None:
            column = self._columns.__getitem__
            picked = [list(map(column(i).__getitem__, self._rows)) for i in (1 + R_ID, 1 + R_ARTIFACT, 0)]
            if picked[0].count(None) == 0:
                ids = picked[0]
            elif picked[0].count(None) == len(picked[0]) and picked[1].count(None) == len(picked[1]):
                ids = picked[2]   # every id is its artifact's, every artifact its stem (nearly always): no step per row
            else:
                ids = [i if i is not None else (a if a is not None else s) for i, a, s in zip(*picked)]
            self._ids = ids
        return ids

    def rows(self) -> List[int]:
        """The set's row numbers, oldest first (aligned with ``row_ids`` and ``paths``)."""
        return self._rows

    def log_ids_ends(self) -> Tuple[List[str], List[Optional[int]]]:
        """The logs' ids and end positions, oldest first (the same lists on every call: not to be changed)."""
        found = self._log_ids_ends
        if found is None:
            ids = self.row_ids()
            is_log = map(_LOG_KINDS.__contains__, self._kinds)
            found = self._log_ids_ends = (list(itertools.compress(ids, is_log)),
                                          list(map(self._columns[1 + R_PEND].__getitem__, self._log_rows)))
        return found

    def paths(self) -> List[str]:
        """Every artifact's path, oldest first (``Manifest.path``)."""
        column = self._columns.__getitem__
        artifacts = list(map(column(1 + R_ARTIFACT).__getitem__, self._rows))
        names = list(map(column(0).__getitem__, self._rows))
        # a stem holds no '/' (catalog_index_file._decode): only artifacts named apart are looked at
        apart = artifacts.count(None) != len(artifacts)
        if apart:
            names = [a if a is not None else s for a, s in zip(artifacts, names)]
        directory = self.directory
        if directory and directory[-1] != '/' and not (
                apart and any(map(operator.methodcaller('startswith', '/'), names))):
            return list(map(operator.add, itertools.repeat(directory + '/'), names))
        return [os.path.join(directory, name) for name in names]

    def first_order(self) -> Tuple[int, str]:
        """``_order`` of the oldest artifact."""
        return (self._columns[1 + R_FINISHED][self._rows[0]], self.row_ids()[0])

    @property
    def columns(self) -> Tuple[Any, ...]:
        """The sealed index's columns the rows point into (``catalog_index.COLUMNS`` order)."""
        return self._columns

    def targets(self, rows: List[int]) -> List[Tuple[str, str, Any, List[str]]]:
        """``retention.Target`` of each row: (id, its manifest file, artifact name, member paths)."""
        columns, directory = self._columns, self.directory
        result = []
        for row in rows:
            stem, artifact = columns[0][row], columns[1 + R_ARTIFACT][row]
            result.append((self._row_id(columns, row), os.path.join(directory, stem + MANIFEST_SUFFIX),
                           stem if artifact is None else artifact, list(columns[1 + R_MEMBERS][row] or [])))
        return result

    def confirm_rows(self, rows: List[int]) -> None:
        """``catalog_index.confirm`` of these rows' manifests, building objects only for files that changed."""
        confirm_rows(self.directory, self._columns, rows, self._objects)

    def finished_of(self, rows: List[int]) -> List[int]:
        return list(map(self._columns[1 + R_FINISHED].__getitem__, rows))

    def parents(self) -> List[Tuple[Tuple[int, str], str, str]]:
        """(order, id, parent) of every artifact that names a parent, oldest first."""
        parent = self._columns[1 + R_PARENT]
        # the few rows that name one, picked in C (logs name none: a Python step per row was 0.03 s at 200,000)
        named = list(map(bool, map(parent.__getitem__, self._rows)))
        if not any(named):
            return []
        finished = self._columns[1 + R_FINISHED]
        return [((finished[row], ident), ident, parent[row]) for row, ident in
                zip(itertools.compress(self._rows, named), itertools.compress(self.row_ids(), named))]

    def set_counts(self) -> Tuple[int, Dict[str, int], Optional[str], Optional[str], List[str], List[str]]:
        rows, columns = self._rows, self._columns
        verified = list(map(columns[1 + R_VERIFIED].__getitem__, rows))
        never = itertools.compress(rows, map(operator.is_, verified, itertools.repeat(None)))
        failed = itertools.compress(rows, map(operator.is_, verified, itertools.repeat(False)))
        return (len(rows), dict(collections.Counter(self._kinds)), self._row_id(columns, rows[0]),
                self._row_id(columns, rows[-1]), [self._row_id(columns, row) for row in never],
                [self._row_id(columns, row) for row in failed])

    def newest(self, count: int) -> List[Manifest]:
        return self._objects(self._rows[-count:])

    def listing(self, max_artifacts: int, chain: Iterable[str]) -> List[Manifest]:
        rows = self._rows
        if max_artifacts < 0 or max_artifacts >= len(rows):
            return self._objects(rows)
        wanted = set(chain)
        head = len(rows) - max_artifacts
        return self._objects([row for row in rows[:head] if self._row_id(self._columns, row) in wanted]
                             + rows[head:])

    def logs(self) -> List[Manifest]:
        return self._objects(self._log_rows)

    def get(self, artifact_id: str) -> Manifest:
        if artifact_id not in self._by_id:
            for row in self._log_rows:
                if self._row_id(self._columns, row) == artifact_id:
                    return self._objects([row])[0]
        return super().get(artifact_id)

    def view(self, engine: Optional[str] = None, database: Optional[str] = None,
             origin: Optional[str] = None) -> 'Catalog':
        raise NotImplementedError('a RowView answers one set; build a Catalog for other views')

    def _log_index(self) -> Tuple[List[Manifest], Dict[int, Manifest], List[Tuple[int, int, Manifest]]]:
        # every log as an object: only for questions this view does not answer on rows (``dependents``)
        logs = self.logs()
        objects = dict(zip(self._log_rows, logs))
        return (logs, {start: objects[row] for start, row in self._by_start.items()},
                [(start, end, objects[row]) for start, end, row in self._ranges])

    def _containing_row(self, position: int) -> Optional[int]:
        """``Catalog._log_containing`` on rows."""
        index = self._rows_log_index()
        ranges = index[1]
        i = bisect.bisect_right(index[2], position)
        if i and ranges[i - 1][0] <= position < ranges[i - 1][1]:
            return ranges[i - 1][2]
        for start, end, row in ranges[:i]:
            if start <= position < end:
                return row
        return None

    def _log_containing(self, position: int) -> Optional[Manifest]:
        row = self._containing_row(position)
        return None if row is None else self._objects([row])[0]

    def _sequence_rows(self, base: Manifest) -> List[int]:
        log_start = base.log_start
        if log_start is None:
            return []
        current = self._containing_row(log_start)
        sequence: List[int] = []
        ends, by_start = self._columns[1 + R_PEND], self._by_start
        while current is not None:
            sequence.append(current)
            current = by_start.get(ends[current])
        return sequence

    def log_sequence_from(self, base: Manifest) -> List[Manifest]:
        return self._objects(self._sequence_rows(base))

    def _suffix_reach_row(self, row: int) -> int:
        """``Catalog._suffix_reach`` on rows, in integer microseconds."""
        reach_of = self._reach_rows
        ends, by_start, consistent = self._columns[1 + R_PEND], self._by_start, self._columns[1 + R_CONSISTENT]
        path: List[int] = []
        current: Optional[int] = row
        while current is not None and current not in reach_of:
            path.append(current)
            current = by_start.get(ends[current])
        reach = reach_of[current] if current is not None else None
        for item in reversed(path):
            moment = consistent[item]
            reach = moment if reach is None or moment > reach else reach
            reach_of[item] = reach
        return reach_of[row]

    def _reach_through_logs(self, base: List[Manifest]) -> datetime.datetime:
        reach = self.reaches(base)
        log_start = base[-1].log_start
        first = self._containing_row(log_start) if log_start is not None else None
        if first is not None:
            reach = max(reach, from_us(self._suffix_reach_row(first)))
        return reach

    def gap_from(self, base: Manifest) -> Optional[Dict[str, Any]]:
        sequence = self._sequence_rows(base)   # the walk on rows: only its last log is built
        return self.gap_after(self._objects(sequence[-1:])) if sequence else None

    def gap_after(self, sequence: List[Manifest]) -> Optional[Dict[str, Any]]:
        if not sequence:
            return None
        end = int(sequence[-1].position['end']) if sequence[-1].pos_end is None else sequence[-1].pos_end
        starts = self._columns[1 + R_PSTART]
        best: Optional[int] = None
        best_key = 0
        for row in self._log_rows:   # Catalog's min(later, key=pos_start or 0): the first smallest, in order
            start = starts[row]
            if (-1 if start is None else start) > end:
                key = start or 0
                if best is None or key < best_key:
                    best, best_key = row, key
        if best is None:
            return None
        return {'after': sequence[-1].id, 'expected_start': end, 'next_present': self._row_id(self._columns, best),
                'next_start': starts[best]}
