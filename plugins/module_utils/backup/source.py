# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the source held at backup time, and the comparison of an artifact (or a restore) against it.

Every full backup records a ``source`` summary in its manifest (``engine.source_summary`` or, for SQLite,
measured inside the snapshot's own read transaction). Verification and DR drills measure the artifact
or the restored copy the same way and compare with ``compare``: a backup that lost the data (an empty
dump of a full database, an empty copy of a full file) must never verify.

Summary keys (all optional except ``tables``):

* ``tables``: user tables; ``non_empty_tables``: how many of them hold at least one row;
* ``rows`` (per table) and ``rows_total``: exact counts (SQLite); ``rows_estimate``: planner estimates;
* ``size_bytes``; ``exact``: the counts are exact and an artifact must match them one for one;
* ``has_rows``: (over ``EXISTS_TABLE_LIMIT`` tables) whether any table holds a row, asked exactly; planner
  estimates alone never fail a backup (they stay high after a DELETE until the next VACUUM/ANALYZE).

PostgreSQL and MariaDB measure right before and right after the dump and record the lesser of the two
(``combine``): a table emptied or dropped while the dump ran is not claimed as data the artifact lost.

An artifact summary may instead carry what a dump's own listing shows: ``data_tables`` (tables with
data in the artifact) or ``data_entries`` (TABLE DATA entries of a pg_dump archive, empty tables
included).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError

SOURCE_KEY = 'source'
# Exact per-table row counts are taken for SQLite databases up to this size; larger ones record which
# tables are non-empty (one row read each) and their page counts instead.
ROW_COUNT_LIMIT_BYTES = 1024 * 1024 * 1024
# PostgreSQL/MariaDB: "is this table empty" is asked exactly (one row read per table) up to this many tables.
EXISTS_TABLE_LIMIT = 500


def _data_in(artifact: Dict[str, Any]) -> Optional[int]:
    for key in ('non_empty_tables', 'data_tables', 'data_entries', 'insert_statements'):
        if artifact.get(key) is not None:
            return int(artifact[key])
    return None


def source_has_rows(source: Dict[str, Any]) -> Optional[bool]:
    if source.get('non_empty_tables') is not None:
        return int(source['non_empty_tables']) > 0
    if source.get('rows_total') is not None:
        return int(source['rows_total']) > 0
    if source.get('has_rows') is not None:
        return bool(source['has_rows'])
    if source.get('rows_estimate') is not None and int(source['rows_estimate']) > 0:
        return True
    return None


# Counts that can only shrink in ``combine`` (each is the least of the two measurements).
LESSER_KEYS = ('tables', 'non_empty_tables', 'rows_estimate', 'has_rows')


def combine(before: Optional[Dict[str, Any]], after: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """What the source held both right before and right after the dump: the dump's snapshot lies between
    the two instants, so only what both measurements saw can be required of the artifact. A count missing
    from either side is dropped (unknown); a failed second measurement keeps the first as it was."""
    if before is None or before.get('error') or after is None or after.get('error'):
        return before if before is not None and not before.get('error') else (before or after)
    merged = dict(before)
    for key in LESSER_KEYS:
        if key not in before and key not in after:
            continue
        a, b = before.get(key), after.get(key)
        merged[key] = None if a is None or b is None else min(a, b)
    if merged.get('has_rows') is None:
        merged.pop('has_rows', None)
    merged['measured_after'] = after.get('measured_at')
    return merged


def _describe(source: Dict[str, Any]) -> str:
    parts = ['%d table(s)' % int(source.get('tables') or 0)]
    if source.get('non_empty_tables') is not None:
        parts.append('%d of them with rows' % int(source['non_empty_tables']))
    if source.get('rows_total') is not None:
        parts.append('%d rows' % int(source['rows_total']))
    elif source.get('rows_estimate'):
        parts.append('about %d rows' % int(source['rows_estimate']))
    return ', '.join(parts)


def exact_differences(source: Dict[str, Any], copy: Dict[str, Any]) -> List[str]:
    """Differences between two exact summaries (SQLite: a snapshot and its copy must match one for one)."""
    diffs = []
    for key in ('tables', 'non_empty_tables', 'rows_total', 'page_count', 'page_size', 'user_version',
                'application_id'):
        if source.get(key) is not None and copy.get(key) is not None and source[key] != copy[key]:
            diffs.append('%s %s, expected %s' % (key, copy[key], source[key]))
    for key in ('objects',):
        if source.get(key) and copy.get(key) is not None and source[key] != copy[key]:
            diffs.append('%s %s, expected %s' % (key, copy[key], source[key]))
    rows_a, rows_b = source.get('rows'), copy.get('rows')
    if isinstance(rows_a, dict) and isinstance(rows_b, dict):
        for name in sorted(set(rows_a) | set(rows_b)):
            if rows_a.get(name) != rows_b.get(name):
                diffs.append('table %r: %s rows, expected %s' % (name, rows_b.get(name, 'missing'),
                                                                 rows_a.get(name, 'none (not in the source)')))
    return diffs


def compare(source: Optional[Dict[str, Any]], found: Dict[str, Any], what: str, path: str,
            exact: bool = False) -> Dict[str, Any]:
    """Compare ``found`` (an artifact's or a restored copy's summary) with the manifest's ``source``.

    Raises ``IntegrityError`` naming ``what`` when the data is gone: no tables where the source had
    some, no table data where the source had rows, or (``exact``) any difference at all. Returns the
    checks to report. A manifest written before summaries existed has none: nothing is compared.
    """
    if not source:
        return {'source_check': 'not recorded in the manifest (written by an older version)'}
    if source.get('error'):
        return {'source_check': 'not measured at backup time: %s' % source['error']}
    checks: Dict[str, Any] = {'source_check': 'ok', 'source_tables': source.get('tables'),
                              'found_tables': found.get('tables')}
    tables = int(source.get('tables') or 0)
    if tables > 0 and found.get('tables') is not None and int(found['tables']) == 0:
        raise IntegrityError('%s holds no tables, but the source held %s when it was backed up: the backup lost '
                             'the data. Do not restore from it; take a new backup and check its options.'
                             % (what, _describe(source)), path=path, source=source, found=found)
    data = _data_in(found)
    if source_has_rows(source) and data == 0:
        raise IntegrityError('%s holds no table data, but the source held %s when it was backed up: the backup '
                             'lost the data. Do not restore from it; take a new backup and check its options.'
                             % (what, _describe(source)), path=path, source=source, found=found)
    if exact and source.get('exact') and found.get('exact'):
        diffs = exact_differences(source, found)
        if diffs:
            raise IntegrityError('%s does not hold what the source held when it was backed up: %s%s.'
                                 % (what, '; '.join(diffs[:10]), ' (and %d more)' % (len(diffs) - 10)
                                    if len(diffs) > 10 else ''), path=path, differences=diffs[:100])
        checks['source_check'] = 'ok (tables and rows match exactly)'
    return checks


class NeedleCounter:
    """Count byte strings in a stream fed chunk by chunk (a match may straddle two chunks).

    Every needle starts with a newline; the stream is treated as if preceded by one, so a match on the
    first line counts too.
    """

    def __init__(self, needles: Sequence[bytes]) -> None:
        self.needles = list(needles)
        self.counts = [0] * len(self.needles)
        self._keep = max(len(n) for n in self.needles) - 1
        self._tail = b'\n'

    def feed(self, data: bytes) -> None:
        if not data:
            return
        window = self._tail + data
        for i, needle in enumerate(self.needles):
            # A match starting in the kept tail cannot lie wholly inside it (the tail is shorter than any
            # needle), so it was not counted with the previous chunk.
            start = max(0, len(self._tail) - (len(needle) - 1))
            self.counts[i] += window.count(needle, start)
        self._tail = window[-self._keep:]


def scan_stream(source: IO[bytes], needles: Sequence[bytes], size: int = 4096,
                chunk: int = 1024 * 1024) -> Tuple[bytes, bytes, List[int]]:
    """Read ``source`` to the end: its first and last ``size`` bytes and how often each needle occurs."""
    counter = NeedleCounter(needles)
    head, tail = b'', b''
    while True:
        data = source.read(chunk)
        if not data:
            break
        if len(head) < size:
            head += data[:size]
        tail = (tail + data)[-size:]
        counter.feed(data)
    return head[:size], tail, counter.counts
