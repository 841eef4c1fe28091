# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup catalog: the set of manifests in a backup directory, and the questions it answers.

Chains: a restore starts from a full-kind artifact (full, base, dump, files), optionally a ``diff``
whose ``parent`` is that full, then log artifacts (``log``/``wal``). Logs form one sequence per
database: each log's ``position`` has integer ``start`` and ``end``, and the next log starts where the
previous ended (WAL segment numbers, binlog file indexes, SQL Server LSNs). A full or diff records
``position.log_start``: the first log it needs is the one with ``start <= log_start < end``.
Logs carry ``covers_from``/``consistent_at`` (first/last transaction time) for point-in-time choice.

Origins: a set (engine, database) of a shared backup directory can hold backups of several servers (two hosts
backing up a database of the same name onto one NFS mount). Every manifest records its source's ``origin``
(``Engine.origin``); the catalog answers every question within one origin: a chain, a log sequence, a parent, a
retention plan never crosses two. A manifest without one (written before origins were recorded) belongs to its set's
only origin when there is exactly one, else to the group ``UNKNOWN_ORIGIN`` (``resolve_origins``). A catalog of a
set with several origins and none chosen (``origin``) refuses the chain questions (``MixedOrigins``): which server's
data is "the latest" is the user's choice, never ours.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import bisect
import datetime
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    MANIFEST_SUFFIX, Manifest, from_us, to_us)
# Parses each manifest once per process while the file stays the same (see catalog_index): a module run
# builds several catalogs of one directory.
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import NOTHING, ScanResult, scan
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import CatalogError
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import PARTIAL_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow

# Artifact names carry a timeutil.stamp(); only such names (and *.partial) can be leftovers.
ARTIFACT_NAME = re.compile(r'\d{8}T\d{6,12}Z')


# The group of manifests without an origin when their set has several origins (see the module's docstring).
UNKNOWN_ORIGIN = 'unknown'


# The reserved value of ``origin`` (db_restore, backup_info, the dr_drill role) that declares a set's origins
# successive (one server whose identity changed: pg_upgrade, a re-initdb, a renamed host): use the newest, and an
# older one for a point or an artifact of its time (``successive``). Accepted only when their times do not overlap.
NEWEST_ORIGIN = 'newest'


if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_rows import RowView


def row_view(view: Any) -> Optional['RowView']:
    """``view`` when it is a ``RowView`` (one set of a sealed index, answered on its columns); None otherwise.

    catalog_rows is imported by the scan that makes one (``Catalog``); retention and prune ask this instead of
    importing it for an ``isinstance``, so a run over a small catalog never compiles it. The class says what it is
    (``Catalog.row_view``): a test of the module's name would miss a view of a module imported under another one."""
    return view if getattr(view, 'row_view', False) is True else None


class OriginSpan(NamedTuple):
    """One origin of a set on the data time axis: the ``consistent_at`` (microseconds) of its oldest and newest
    artifact. Data time, not ``finished``: a restore point is a ``consistent_at``, and the old server's last WAL or
    binlog can be archived (finished) after the new server's first backup while it holds older transactions."""
    origin: str
    first_us: int
    last_us: int
    artifacts: int

    def as_dict(self) -> Dict[str, Any]:
        return {'origin': self.origin, 'from': isoformat(from_us(self.first_us)),
                'until': isoformat(from_us(self.last_us)), 'artifacts': self.artifacts}

    def text(self) -> str:
        return '%s (%s .. %s, %d artifact%s)' % (self.origin, isoformat(from_us(self.first_us)),
                                                 isoformat(from_us(self.last_us)), self.artifacts,
                                                 '' if self.artifacts == 1 else 's')


def origin_spans(times: Dict[str, Sequence[int]]) -> List[OriginSpan]:
    """The span of each origin group given its artifacts' ``consistent_us``, oldest first."""
    spans = [OriginSpan(name, min(values), max(values), len(values)) for name, values in times.items() if values]
    return sorted(spans, key=lambda s: (s.first_us, s.last_us, s.origin))


def overlaps(spans: Sequence[OriginSpan]) -> List[Tuple[OriginSpan, OriginSpan]]:
    """The pairs of origins whose times overlap: an older one with an artifact at or after the first of a newer one
    (empty: they succeeded each other). Equal instants overlap: a succession is strictly after."""
    return [(older, newer) for i, older in enumerate(spans) for newer in spans[i + 1:]
            if newer.first_us <= older.last_us]


def successor_for(spans: Sequence[OriginSpan], point_us: Optional[int] = None) -> OriginSpan:
    """The origin of a succession (``spans`` oldest first, not overlapping) that a restore to ``point_us`` (None: the
    newest point) uses: the newest whose first artifact is at or before the point, else the oldest (whose chain then
    says the point is before its window)."""
    if point_us is None:
        return spans[-1]
    chosen = spans[0]
    for span in spans:
        if span.first_us <= point_us:
            chosen = span
    return chosen


def relation(spans: Sequence[OriginSpan]) -> str:
    """``single`` (one origin), ``successive`` (their times do not overlap) or ``overlapping``."""
    if len(spans) < 2:
        return 'single'
    return 'overlapping' if overlaps(spans) else 'successive'


def overlap_message(directory: str, key: Tuple[str, Optional[str]], spans: Sequence[OriginSpan]) -> str:
    pairs = '; '.join('%s and %s' % (older.text(), newer.text()) for older, newer in overlaps(spans))
    return ('Backup set %s/%s in %s: origin "%s" declares that its servers succeeded each other (one server whose '
            'identity changed), but their backups overlap in time (by consistent_at): %s. Two servers write this set '
            'at once (or the old one came back), so "the newest" is not one history. Set origin to the one you mean '
            '(its origins: %s).' % (key[0], key[1], directory, NEWEST_ORIGIN, pairs,
                                    ', '.join(sorted(s.origin for s in spans))))


def succession_warning(key: Tuple[str, Optional[str]], spans: Sequence[OriginSpan], chosen: str) -> str:
    """What a caller that chose ``origin: newest`` is told: the predecessors and when the identity changed."""
    names = [s.origin for s in spans]
    at = names.index(chosen)
    changes = ', '.join('%s -> %s between %s and %s'
                        % (old.origin, new.origin, isoformat(from_us(old.last_us)), isoformat(from_us(new.first_us)))
                        for old, new in zip(spans, spans[1:]))
    text = ('Backup set %s/%s: origin %s declared its servers successive; the identity changed (%s).'
            % (key[0], key[1], NEWEST_ORIGIN, changes))
    if at + 1 < len(names):
        return text + (' This answer is of the older origin %s (the point or artifact asked for is of its time), '
                       'not of the newest, %s.' % (chosen, names[-1]))
    return text + ' This answer is of the newest origin, %s; predecessor%s: %s.' % (
        chosen, '' if at == 1 else 's', ', '.join(names[:at]))


def log_timeline(log: Manifest) -> int:
    """A PostgreSQL WAL segment's timeline (1 for a log without one: binary logs, old manifests)."""
    value = log.position.get('timeline')
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _order(entry: Manifest) -> Tuple[int, str]:
    return (entry.finished_us, entry.id)


def resolve_origins(values: Sequence[Optional[str]], arriving: Optional[str] = None) -> List[str]:
    """The origin group of each manifest of one set, given their recorded ``origin`` (None: not recorded): a
    manifest without one joins the set's only origin, else ``UNKNOWN_ORIGIN``. ``arriving``: the origin of a backup
    about to be written into the set (check mode of a backup run plans the set as the real run will find it, after
    that backup: a first backup of a second server makes the manifests without an origin a group of their own, and a
    set's first backup with an origin takes them into its group)."""
    known: Set[str] = {value for value in set(values) if value is not None}
    if arriving is not None:
        known.add(arriving)
    fallback = next(iter(known)) if len(known) == 1 else UNKNOWN_ORIGIN
    return [fallback if value is None else value for value in values]


def origin_groups(entries: Iterable[Manifest], arriving: Optional[str] = None
                  ) -> Dict[Tuple[str, Optional[str], str], List[Manifest]]:
    """``entries`` by (engine, database, origin group), each in the given order: what retention plans apart.
    ``arriving``: see ``resolve_origins``."""
    per_set: Dict[Tuple[str, Optional[str]], List[Manifest]] = {}
    for entry in entries:
        per_set.setdefault((entry.engine, entry.database), []).append(entry)
    result: Dict[Tuple[str, Optional[str], str], List[Manifest]] = {}
    for key, members in per_set.items():
        for entry, group in zip(members, resolve_origins([m.origin for m in members], arriving)):
            result.setdefault((key[0], key[1], group), []).append(entry)
    return result


class MixedOrigins(CatalogError):
    """A set holds backups of several servers and the caller chose none: no chain, restore or retention mixes
    them."""


class OverlappingOrigins(MixedOrigins):
    """``origin: newest`` on a set whose origins' times overlap: two live servers, not one server's succession."""


def mixed_message(directory: str, key: Tuple[str, Optional[str]], groups: Dict[str, List[Manifest]]) -> str:
    parts = []
    for name in sorted(groups):
        members = groups[name]
        newest = max(members, key=_order)
        plural = '' if len(members) == 1 else 's'
        parts.append('%s (%d artifact%s, newest %s)' % (name, len(members), plural, newest.id))
    return ('Backup set %s/%s in %s holds backups of %d servers (origins: %s): a chain, a restore or retention never '
            'mixes two servers, and which one is meant is your choice. Set origin to one of them (db_restore, '
            'file_restore, redis_restore, backup_info; the dr_drill role: dr_drill_origin; the recovery role: '
            'origin of each restore). "%s" groups the backups written before origins were '
            'recorded. If they are ONE server whose identity changed (a PostgreSQL cluster upgraded with pg_upgrade '
            'or re-created with initdb gets a new system identifier; a renamed MariaDB, SQLite or file host), set '
            'origin: %s (dr_drill: dr_drill_origin: %s) to restore the newest server\'s backups (and the older '
            'server\'s for a point of its time), and backup_prune origin_succession: true so that the old server\'s '
            'backups age out; both are refused while the servers\' backups overlap in time.'
            % (key[0], key[1], directory, len(groups), ', '.join(parts), UNKNOWN_ORIGIN, NEWEST_ORIGIN,
               NEWEST_ORIGIN))


def of_origin(directory: str, engine: str, database: Optional[str], origin: Optional[str],
              point: Optional[datetime.datetime] = None, artifact: Optional[str] = None,
              warnings: Optional[List[str]] = None) -> 'Catalog':
    """The catalog of one set a restore takes its candidates from: ``origin``'s backups when one is given; with
    ``NEWEST_ORIGIN`` the origin of a declared succession that holds ``point``/``artifact``, else the newest
    (``Catalog.successive``; its warnings naming the succession go to ``warnings``). An ``origin`` the set does not
    hold fails naming the ones it does (a typo must not read as "no backups")."""
    catalog = Catalog(directory, engine=engine, database=database, origin=origin or None)
    if origin == NEWEST_ORIGIN:
        catalog, notes = catalog.successive(point=point, artifact=artifact)
        if warnings is not None:
            warnings.extend(notes)
    elif origin and not catalog.entries:
        raise CatalogError('No backup of origin %r in set %s of %s; its origins are: %s. Set origin to one of them.'
                           % (origin, database, directory, ', '.join(catalog.origins) or '(none: the set is empty)'),
                           origins=catalog.origins)
    return catalog


class Catalog:
    """All manifests under ``directory`` (optionally only one engine/database)."""

    row_view = False   # True in catalog_rows.RowView (``row_view()``)
    # How retention looks at an artifact (``retention.artifact_damage``: a stat in the directory) unless set: a
    # destination's catalog, whose artifacts are not in its directory, looks at the destination's listing
    damage_check: Optional[Callable[[Manifest], Optional[str]]] = None

    def __init__(self, directory: str, engine: Optional[str] = None, database: Optional[str] = None,
                 use_index: bool = True, parse_sets: Optional[Set[Tuple[str, Optional[str]]]] = None,
                 materialize: bool = True, origin: Optional[str] = None, own: bool = False) -> None:
        if not os.path.isdir(directory):
            raise CatalogError('Backup directory %s does not exist.' % directory)
        self.directory = os.path.abspath(directory)
        # One listing and stat of every manifest; parsed only when new or changed (catalog_index). Entries
        # (objects) are built for the asked set only; ``all_entries`` scans again when something wants them
        # all. ``materialize=False``: none at all (the leftover scan).
        self._scan_args = (use_index, parse_sets)
        only = (engine or None, database or None) if materialize else NOTHING
        self._scan: ScanResult = scan(self.directory, use_index=use_index, parse_sets=parse_sets, only=only)
        self._all: Optional[List[Manifest]] = self._scan.entries if self._scan.complete else None
        self.broken = self._scan.broken
        self._groups: Optional[Dict[Tuple[str, Optional[str]], List[Manifest]]] = None
        self._filter = (engine, database)
        entries = [e for e in self._scan.entries
                   if (not engine or e.engine == engine) and (not database or e.database == database)]
        self.entries: List[Manifest] = sorted(entries, key=_order)
        self._settle_origins(origin, own)
        self._by_id = {m.id: m for m in self.entries}

    # -- origins ---------------------------------------------------------------------------------
    origin: Optional[str] = None
    set_origins: Dict[Tuple[str, Optional[str]], List[str]] = {}
    _mixed: Optional[str] = None
    _mixed_error: Any = MixedOrigins
    # origin NEWEST: per set of several successive origins, their spans (oldest first) and entries per origin
    succession: Dict[Tuple[str, Optional[str]], List[OriginSpan]] = {}
    _successors: Dict[Tuple[str, Optional[str]], Dict[str, List[Manifest]]] = {}
    # appended to "no usable full backup" (the newest origin of a succession without a full yet)
    _no_full_hint = ''

    def _settle_origins(self, origin: Optional[str], own: bool = False) -> None:
        """Group ``entries`` per set by origin: keep only ``origin``'s when one is chosen, else note a set with several
        (``_mixed``: the chain questions refuse to answer). ``own``: ``origin`` is the caller's own server (db_backup
        continuing its chain, file_backup comparing with its last archive): a set whose manifests record no other
        origin is entirely its own, so the manifests written before origins were recorded (a set of those only, right
        after an upgrade) stay its chain, as they would by the only-origin rule once it writes one manifest."""
        self.origin = origin or None
        self._mixed = None
        self._mixed_error = MixedOrigins
        self.succession, self._successors = {}, {}
        per_set: Dict[Tuple[str, Optional[str]], List[Manifest]] = {}
        for entry in self.entries:
            per_set.setdefault((entry.engine, entry.database), []).append(entry)
        self.set_origins = {}
        keep: List[Manifest] = []
        for key, members in per_set.items():
            groups: Dict[str, List[Manifest]] = {}
            for entry, group in zip(members, resolve_origins([m.origin for m in members])):
                groups.setdefault(group, []).append(entry)
            self.set_origins[key] = sorted(groups)
            if self.origin and own and set(groups) <= {self.origin, UNKNOWN_ORIGIN} \
                    and not any(m.origin for m in groups.get(UNKNOWN_ORIGIN, [])):
                keep.extend(members)
            elif self.origin == NEWEST_ORIGIN and len(groups) > 1:
                spans = origin_spans({name: [m.consistent_us for m in group] for name, group in groups.items()})
                if overlaps(spans):
                    keep.extend(members)   # refused: the chain questions raise
                    if self._mixed is None:
                        self._mixed = overlap_message(self.directory, key, spans)
                        self._mixed_error = OverlappingOrigins
                else:
                    self.succession[key] = spans
                    self._successors[key] = groups
                    keep.extend(groups[spans[-1].origin])
            elif self.origin == NEWEST_ORIGIN:
                keep.extend(members)
            elif self.origin:
                keep.extend(groups.get(self.origin, []))
            elif len(groups) > 1 and self._mixed is None:
                self._mixed = mixed_message(self.directory, key, groups)
        if self.origin:
            self.entries = sorted(keep, key=_order)

    @property
    def origins(self) -> List[str]:
        """The origins of this catalog's set(s) (every origin, whatever ``origin`` chose)."""
        return sorted({name for names in self.set_origins.values() for name in names})

    def one_origin(self) -> None:
        """Raise ``MixedOrigins`` when a set of this catalog holds several origins and none was chosen."""
        if self._mixed is not None:
            raise self._mixed_error(self._mixed, origins=self.origins)

    def successive(self, point: Optional[datetime.datetime] = None,
                   artifact: Optional[str] = None) -> Tuple['Catalog', List[str]]:
        """For ``origin`` NEWEST: the catalog of the origin a restore uses (of ``artifact``'s origin, of the origin
        whose time holds ``point``, else the newest) and the warnings naming the succession; this catalog itself when
        its set has one origin. ``OverlappingOrigins`` when the origins overlap. A chain never crosses origins: the
        answer is one origin's catalog."""
        self.one_origin()
        if len(self.succession) != 1:
            return self, []
        key, spans = next(iter(self.succession.items()))
        groups = self._successors[key]
        chosen = spans[-1]
        if artifact:
            name = os.path.basename(artifact)
            chosen = next((s for s in spans if any(m.id == name for m in groups[s.origin])), chosen)
        else:
            chosen = successor_for(spans, None if point is None else to_us(point))
        other = self._derived(Catalog, self._all, self._groups)
        other.entries = list(groups[chosen.origin])
        other._filter = self._filter
        other.origin = chosen.origin
        other.set_origins = {key: [s.origin for s in spans]}
        other._by_id = {m.id: m for m in other.entries}
        if chosen is spans[-1] and len(spans) > 1:
            before = spans[-2]
            other._no_full_hint = (
                ' With origin %s this is the newest server, %s, whose backups start at %s; its predecessor %s has '
                'backups up to %s. Take a full backup of %s (its logs restore nothing without one), or set origin: '
                '%s to restore the predecessor\'s data knowingly.'
                % (NEWEST_ORIGIN, chosen.origin, isoformat(from_us(chosen.first_us)), before.origin,
                   isoformat(from_us(before.last_us)), chosen.origin, before.origin))
        return other, [succession_warning(key, spans, chosen.origin)]

    @property
    def all_entries(self) -> List[Manifest]:
        """Every valid manifest of the directory, whatever this catalog's filter."""
        if self._all is None:
            self._all = scan(self.directory, use_index=self._scan_args[0], parse_sets=self._scan_args[1]).entries
        return self._all

    @all_entries.setter
    def all_entries(self, value: List[Manifest]) -> None:
        self._all = value

    def narrowed(self, keep: List[Manifest]) -> 'Catalog':
        """This catalog answering the chain questions from ``keep`` (some of its entries) only: a point-in-time
        recovery along one timeline (engines/postgresql/timelines.py)."""
        other = self._derived(Catalog, self._all, self._groups)
        other.entries = list(keep)
        other._filter = self._filter
        other.origin, other.set_origins = self.origin, dict(self.set_origins)
        other._mixed, other._mixed_error = self._mixed, self._mixed_error
        other._no_full_hint = self._no_full_hint
        other._by_id = {m.id: m for m in other.entries}
        return other

    def _derived(self, cls: Any, all_entries: Optional[List[Manifest]] = None,
                 groups: Optional[Dict[Tuple[str, Optional[str]], List[Manifest]]] = None) -> Any:
        """A new ``cls`` (Catalog or RowView) on this catalog's scan (directory, broken manifests, scan and its
        arguments), without a scan of its own: ``view``, ``set_view`` and ``RowView.of`` fill in the rest."""
        other = cls.__new__(cls)
        other.directory = self.directory
        other.broken = self.broken
        other._scan = self._scan
        other._scan_args = self._scan_args
        other._all = all_entries
        other._groups = groups
        other.origin, other.set_origins, other._mixed = None, {}, None
        other._mixed_error, other.succession, other._successors = MixedOrigins, {}, {}
        return other

    def view(self, engine: Optional[str] = None, database: Optional[str] = None,
             origin: Optional[str] = None) -> 'Catalog':
        """This scan filtered to one engine/database (and origin), without listing the directory again."""
        other = self._derived(Catalog, self._all, self._groups)
        other._filter = (engine, database)
        if engine and database:
            # describe() asks for every set in turn: group the scan once instead of filtering it per set
            groups = self._groups
            if groups is None:
                groups = {}
                mine = self._filter
                # when self's filter includes (engine, database), all of that set is in self.entries, sorted
                within = (mine[0] in (None, '', engine)) and (mine[1] in (None, '', database))
                for entry in (self.entries if within else sorted(self.all_entries, key=_order)):
                    groups.setdefault((entry.engine, entry.database), []).append(entry)
                if not within or not (mine[0] or mine[1]):
                    self._groups = other._groups = groups   # a grouping of the whole scan: shared
            other.entries = list(groups.get((engine, database), []))
        else:
            other.entries = sorted((e for e in self.all_entries if (not engine or e.engine == engine)
                                    and (not database or e.database == database)), key=_order)
        other._settle_origins(origin)
        other._by_id = {m.id: m for m in other.entries}
        return other

    def set_refs(self) -> Dict[Tuple[str, Optional[str]], List[Any]]:
        """The sets of this catalog's filter, each as references ``set_view`` builds: for a catalog made with
        ``materialize=False``, so that a caller walking every set holds one set's objects at a time."""
        return self._scan.set_refs(*self._filter)

    def split_origins(self, refs: List[Any], arriving: Optional[str] = None) -> Dict[str, List[Any]]:
        """One set's ``set_refs`` references by origin group (``resolve_origins``, with ``arriving``), read from the
        index's origin column where there is one (no manifest parsed, no object built)."""
        values = self._scan.origins_of(refs)
        if len(set(values)) == 1:
            return {resolve_origins(values[:1], arriving)[0]: refs}
        groups: Dict[str, List[Any]] = {}
        for ref, group in zip(refs, resolve_origins(values, arriving)):
            groups.setdefault(group, []).append(ref)
        return groups

    def split_spans(self, split: Dict[str, List[Any]]) -> List[OriginSpan]:
        """``origin_spans`` of ``split_origins``'s groups, from the index's columns where there are some."""
        return origin_spans({name: self._scan.consistent_of(refs) for name, refs in split.items()})

    def set_view(self, refs: List[Any], rows: bool = False, origin: Optional[str] = None,
                 origins: Optional[List[str]] = None) -> 'Catalog':
        """The catalog of one set of ``set_refs``, its objects built now and owned by the view alone. ``rows``: a
        ``RowView`` where the scan is a sealed index's columns (its logs stay rows: see ``RowView``). ``origin``: the
        refs are that origin's group of a set whose groups are ``origins`` (``split_origins``); without it the view
        groups its entries itself."""
        if origin is None:
            groups = self.split_origins(refs) if refs else {}
            if len(groups) > 1:
                # several servers and none chosen (rare): a plain catalog, which names them and refuses to chain
                view = self._set_view(refs, False)
                view._settle_origins(None)
                return view
            origin, origins = next(iter(groups), None), list(groups)
        view = self._set_view(refs, rows)
        view.origin = origin
        view.set_origins = {view._filter: list(origins or ([origin] if origin else []))}  # type: ignore[dict-item]
        return view

    def _set_view(self, refs: List[Any], rows: bool = False) -> 'Catalog':
        if rows and self._scan.columns is not None and not self._scan.seen and not self._scan.unsettled and refs:
            # only a sealed index's scan has columns: a small catalog (no index) never compiles catalog_rows.py
            # (a module's imports are compiled from the payload zip on every run)
            from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_rows import RowView
            view = RowView.of(self, refs)
            if view is not None:
                return view
        other = self._derived(Catalog)
        other.entries = sorted(self._scan.build_set(self.directory, refs), key=_order)
        first = other.entries[0] if other.entries else None
        other._filter = (first.engine, first.database) if first is not None else self._filter
        other._by_id = {m.id: m for m in other.entries}
        return other

    # -- what describe() reports of a set (RowView answers these from the index's columns) -------------------
    def set_counts(self) -> Tuple[int, Dict[str, int], Optional[str], Optional[str], List[str], List[str]]:
        """(artifacts, count per kind, oldest id, newest id, never verified ids, failed verification ids)."""
        entries = self.entries
        kinds: Dict[str, int] = {}
        for entry in entries:
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        return (len(entries), kinds, entries[0].id if entries else None, entries[-1].id if entries else None,
                [m.id for m in entries if m.verified is None], [m.id for m in entries if m.verified is False])

    def newest(self, count: int) -> List[Manifest]:
        """The newest ``count`` artifacts (> 0), oldest first."""
        return self.entries[-count:]

    def listing(self, max_artifacts: int, chain: Iterable[str]) -> List[Manifest]:
        """What backup_info lists for this one set: everything (``max_artifacts`` < 0 or at least the set), else the
        chain's artifacts older than the newest ``max_artifacts`` and those newest, oldest first."""
        entries = self.entries
        if max_artifacts < 0 or max_artifacts >= len(entries):
            return entries
        wanted = set(chain)
        tail = entries[len(entries) - max_artifacts:] if max_artifacts else []
        return [m for m in entries[:len(entries) - len(tail)] if m.id in wanted] + tail

    # -- lookups -------------------------------------------------------------------------------
    def get(self, artifact_id: str) -> Manifest:
        try:
            return self._by_id[artifact_id]
        except KeyError:
            raise CatalogError('No artifact %r in catalog %s.' % (artifact_id, self.directory))

    def _memo(self, name: str, build: Any) -> Any:
        """``build()`` once per state of ``entries`` (the catalog questions ask for these per full)."""
        key = (id(self.entries), len(self.entries))
        memo = self.__dict__.setdefault('_memos', {})
        hit = memo.get(name)
        if hit is None or hit[0] != key:
            hit = memo[name] = (key, build())
        return hit[1]

    def fulls(self) -> List[Manifest]:
        self.one_origin()
        return list(self._memo('fulls', lambda: [m for m in self.entries if m.is_full]))

    def logs(self) -> List[Manifest]:
        return list(self._log_index()[0])

    def _log_index(self) -> Tuple[List[Manifest], Dict[int, Manifest], List[Tuple[int, int, Manifest]]]:
        """Logs, logs by start, and (start, end, log) sorted by start; rebuilt when ``entries`` changes.

        Keeps chain walks linear: a 90-day catalog of hourly logs has thousands of them.
        """
        self.one_origin()
        key = (id(self.entries), len(self.entries))
        if getattr(self, '_index_key', None) != key:
            logs = [m for m in self.entries if m.is_log]
            by_start: Dict[int, Manifest] = {}
            twice: Set[int] = set()
            ranges = []
            for log in logs:
                start = log.pos_start
                if start is not None:
                    # Two WAL segments with one number (the old primary's and the promoted server's, which forked
                    # inside it): the newest timeline's, as PostgreSQL's recovery_target_timeline = 'latest' reads.
                    # The old one's records after the fork point are not what the later segments continue.
                    held = by_start.get(start)
                    if held is None:
                        by_start[start] = log
                    else:
                        twice.add(start)
                        if log_timeline(log) > log_timeline(held):
                            by_start[start] = log
                    end = log.pos_end
                    if end is not None:
                        ranges.append((start, end, log))
            # The timeline is read only where a start is held twice: it is in the manifest's JSON, which an
            # indexed manifest would otherwise load for every log of the set.
            ranges.sort(key=lambda r: (r[0], -log_timeline(r[2]) if r[0] in twice else 0))
            self._index = (logs, by_start, ranges)
            self._index_key = key
        return self._index

    def usable(self, entry: Manifest) -> bool:
        """An artifact whose last verification failed is never a restore candidate."""
        return entry.verified is not False

    def latest_full(self, verified_only: bool = False) -> Optional[Manifest]:
        for entry in reversed(self.fulls()):
            if not self.usable(entry):
                continue
            if verified_only and entry.verified is not True:
                continue
            return entry
        return None

    def diffs_of(self, full: Manifest) -> List[Manifest]:
        self.one_origin()

        def by_parent() -> Dict[Optional[str], List[Manifest]]:
            result: Dict[Optional[str], List[Manifest]] = {}
            for m in self.entries:
                if m.kind == 'diff' and self.usable(m):
                    result.setdefault(m.parent, []).append(m)
            return result
        return list(self._memo('diffs', by_parent).get(full.id, []))

    # -- log sequences ---------------------------------------------------------------------------
    def _log_containing(self, position: int) -> Optional[Manifest]:
        ranges = self._log_index()[2]
        if getattr(self, '_starts_key', None) is not ranges:
            self._starts = [r[0] for r in ranges]
            self._starts_key = ranges
        i = bisect.bisect_right(self._starts, position)
        if i and ranges[i - 1][0] <= position < ranges[i - 1][1]:
            return ranges[i - 1][2]
        for start, end, log in ranges[:i]:  # overlapping ranges (rare): the first that holds it
            if start <= position < end:
                return log
        return None

    def _log_starting_at(self, position: int) -> Optional[Manifest]:
        return self._log_index()[1].get(position)

    def log_sequence_from(self, base: Manifest) -> List[Manifest]:
        """The contiguous logs a full or diff can replay, in order, up to the first gap."""
        log_start = base.log_start
        if log_start is None:
            return []
        first = self._log_containing(log_start)
        sequence: List[Manifest] = []
        current = first
        by_start = self._log_index()[1]   # once, not per log: the walk is thousands of logs long
        while current is not None:
            sequence.append(current)
            current = by_start.get(int(current.position['end']) if current.pos_end is None else current.pos_end)
        return sequence

    def gap_from(self, base: Manifest) -> Optional[Dict[str, Any]]:
        """``gap_after(log_sequence_from(base))``."""
        return self.gap_after(self.log_sequence_from(base))

    def gap_after(self, sequence: List[Manifest]) -> Optional[Dict[str, Any]]:
        """If a newer log exists beyond the end of ``sequence``, the missing piece between them."""
        if not sequence:
            return None
        end = int(sequence[-1].position['end']) if sequence[-1].pos_end is None else sequence[-1].pos_end
        later = [m for m in self.logs() if (-1 if m.pos_start is None else m.pos_start) > end]
        if not later:
            return None
        nxt = min(later, key=lambda m: m.pos_start or 0)  # every later log has a start
        return {'after': sequence[-1].id, 'expected_start': end, 'next_present': nxt.id,
                'next_start': nxt.pos_start}

    # -- chains ----------------------------------------------------------------------------------
    def _base_for(self, full: Manifest, point: Optional[datetime.datetime]) -> List[Manifest]:
        chain = [full]
        diffs = [d for d in self.diffs_of(full) if point is None or d.consistent_at <= point]
        if diffs:
            chain.append(diffs[-1])
        return chain

    def _extend_with_logs(self, chain: List[Manifest], point: Optional[datetime.datetime]) -> List[Manifest]:
        base = chain[-1]
        result = list(chain)
        # Every log from the one holding the base's position is needed, whatever its timestamps say: a
        # binlog whose last event is in the same second as the dump (timestamps have one-second
        # resolution) can still hold transactions after the dump's position. The restore replays the
        # first log from that position, so including a log with nothing new costs nothing.
        for log in self.log_sequence_from(base):
            result.append(log)
            if point is not None and log.consistent_at >= point:
                break
        return result

    def _suffix_reach(self, log: Manifest) -> datetime.datetime:
        """max(consistent_at) over the contiguous logs from ``log`` on: memoised, so every full's reach
        costs O(1) after one pass (was a walk of the whole sequence per full). Kept as integer microseconds:
        a datetime per log was a fifth of ``backup_info`` at 200,000 manifests."""
        key = (id(self.entries), len(self.entries))
        if getattr(self, '_reach_key', None) != key:
            self._reach: Dict[int, int] = {}
            self._reach_key = key
        path: List[Manifest] = []
        current: Optional[Manifest] = log
        by_start = self._log_index()[1]   # once, not per log
        reach_of = self._reach
        while current is not None and id(current) not in reach_of:
            path.append(current)
            end = current.pos_end
            current = by_start.get(int(current.position['end']) if end is None else end)
        reach = self._reach[id(current)] if current is not None else None
        for item in reversed(path):
            moment = item.consistent_us
            reach = moment if reach is None or moment > reach else reach
            self._reach[id(item)] = reach
        return from_us(self._reach[id(log)])

    def _latest_reach(self, base: List[Manifest]) -> datetime.datetime:
        """``reaches(_extend_with_logs(base, None))``, once per base: ``chain_for(None)`` and ``spans`` both ask it
        of every full (two answers per full were a fifth of ``backup_info`` at 200,000 manifests)."""
        key = (id(self.entries), len(self.entries))
        memo: Optional[Tuple[Tuple[int, int], Dict[Tuple[str, ...], datetime.datetime]]]
        memo = getattr(self, '_latest_reach_memo', None)
        if memo is None or memo[0] != key:
            memo = (key, {})
            self._latest_reach_memo = memo
        ids = tuple(m.id for m in base)   # artifact ids, not object ids: a view may build a manifest twice
        reach = memo[1].get(ids)
        if reach is None:
            reach = memo[1][ids] = self._reach_through_logs(base)
        return reach

    def _reach_through_logs(self, base: List[Manifest]) -> datetime.datetime:
        """``reaches(_extend_with_logs(base, None))`` without building the chain: O(1) per base once the
        suffix reaches are known (a walk of every later log per full was quadratic in the catalog)."""
        reach = self.reaches(base)
        log_start = base[-1].log_start
        first = self._log_containing(log_start) if log_start is not None else None
        if first is not None:
            reach = max(reach, self._suffix_reach(first))
        return reach

    @staticmethod
    def reaches(chain: List[Manifest]) -> datetime.datetime:
        return max(m.consistent_at for m in chain)

    def chain_for(self, point: Optional[datetime.datetime] = None) -> List[Manifest]:
        """The artifacts to restore, in order, to reach ``point`` (None: as late as possible)."""
        fulls = [f for f in self.fulls() if self.usable(f)]
        if not fulls:
            raise CatalogError('No usable full backup in %s: take one before restoring.%s'
                               % (self.directory, self._no_full_hint))
        if point is None:
            key = (id(self.entries), len(self.entries))
            cached = getattr(self, '_latest_chain', None)
            if cached is not None and cached[0] == key:
                return list(cached[1])
            best_base: Optional[List[Manifest]] = None
            best_reach: Optional[datetime.datetime] = None
            for full in fulls:
                base = self._base_for(full, None)
                reach = self._latest_reach(base)
                if best_reach is None or reach >= best_reach:
                    best_base, best_reach = base, reach
            chain = self._extend_with_logs(best_base, None) if best_base else []
            self._latest_chain = (key, chain)
            return list(chain)
        candidates = [f for f in fulls if f.consistent_at <= point]
        if not candidates:
            raise CatalogError('%s is before the oldest restorable point; the recoverable window is %s.'
                               % (isoformat(point), self.window_text()), window=self.window())
        for full in reversed(candidates):
            chain = self._extend_with_logs(self._base_for(full, point), point)
            if self.reaches(chain) >= point:
                return chain
        newest = self._extend_with_logs(self._base_for(candidates[-1], point), point)
        gap = self.gap_after(newest[1:] if len(newest) > 1 else [])
        until = self.recoverable_until()
        if until is not None and point <= until:
            message = ('%s falls in a hole of the recoverable window: no chain reaches it. The instants that restore '
                       'are %s.' % (isoformat(point), self.window_text()))
        else:
            message = ('%s is outside the recoverable window %s.' % (isoformat(point), self.window_text()))
        if gap:
            message += (' The log chain breaks after %s: the piece starting at position %s is missing '
                        '(next present: %s).' % (gap['after'], gap['expected_start'], gap['next_present']))
        raise CatalogError(message, window=self.window(), gap=gap)

    def spans(self) -> List[Tuple[datetime.datetime, datetime.datetime]]:
        """The instants ``chain_for`` reaches, as disjoint ``(from, until)`` spans, oldest first.

        A full (or a differential, for the instants from it to the next one) reaches from its consistent
        point to the end of its contiguous logs; a missing log piece followed by a newer full leaves a hole
        between them, which a single from..until would hide.
        """
        raw = []
        for full in (f for f in self.fulls() if self.usable(f)):
            bases = [full] + self.diffs_of(full)
            for i, base in enumerate(bases):
                chain = [full] if base is full else [full, base]
                end = self._latest_reach(chain)
                if i + 1 < len(bases):
                    end = min(end, bases[i + 1].consistent_at)
                if end >= base.consistent_at:
                    raw.append((base.consistent_at, end))
        merged: List[Tuple[datetime.datetime, datetime.datetime]] = []
        for start, end in sorted(raw):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def recoverable_until(self) -> Optional[datetime.datetime]:
        """The latest point any usable chain reaches; drill start minus this is the RPO."""
        try:
            return self.reaches(self.chain_for(None))
        except MixedOrigins:
            raise
        except CatalogError:
            return None

    def recoverable_from(self) -> Optional[datetime.datetime]:
        fulls = [f for f in self.fulls() if self.usable(f)]
        return fulls[0].consistent_at if fulls else None

    def window(self) -> Dict[str, Any]:
        """``from``/``until``: the first and last restorable instants; ``spans``: where restores reach between
        them (one span unless the log chain has holes)."""
        start, end = self.recoverable_from(), self.recoverable_until()
        return {'from': isoformat(start) if start else None, 'until': isoformat(end) if end else None,
                'spans': [{'from': isoformat(a), 'until': isoformat(b)} for a, b in self.spans()]}

    def window_text(self) -> str:
        spans = self.spans()
        if not spans:
            return '(empty: no usable full backup)'
        return ' and '.join('%s .. %s' % (isoformat(a), isoformat(b)) for a, b in spans)

    def rpo_seconds(self, now: Optional[datetime.datetime] = None) -> Optional[float]:
        until = self.recoverable_until()
        if until is None:
            return None
        return max(0.0, ((now or utcnow()) - until).total_seconds())

    def dependents(self, artifact_id: str) -> List[Manifest]:
        """Artifacts that need ``artifact_id`` to restore (diffs of a full; logs after a log)."""
        target = self.get(artifact_id)
        result = [m for m in self.entries if m.parent == artifact_id]
        if target.is_log:
            end = target.pos_end
            result += [m for m in self.logs() if end is not None and m.pos_start == end]
        return result

    # -- leftovers ------------------------------------------------------------------------------
    def leftovers(self) -> List[str]:
        """Files no manifest vouches for: partial writes and artifacts of interrupted runs."""
        # Names at the top of the directory, compared as names: building 400,000 paths cost more than the
        # rest of a 200,000-manifest catalog. Artifacts or members in subdirectories keep their paths. The
        # names come from the scan's own listing (one listing per scan, not two) and its cache entries (every
        # valid manifest's, whatever this catalog's filter; no object per manifest).
        candidates, known_paths = self._scan.unvouched(self.directory)
        result = []
        # Manifests (broken ones included) are never leftovers (they are not among the other names); every
        # other name a manifest vouches for is known; of the rest only our own artifact-stamped or partial
        # names are candidates.
        names = [n for n in candidates if n.endswith(PARTIAL_SUFFIX) or ARTIFACT_NAME.search(n)]
        # an artifact whose manifest is there but unreadable (truncated, edited, of a shape this version refuses) is
        # not a leftover: removed, it could be the newest backup, its manifest left behind (broken_manifests says so)
        vouched = {os.path.basename(b['manifest'])[:-len(MANIFEST_SUFFIX)] for b in self.broken
                   if b['manifest'].endswith(MANIFEST_SUFFIX)}   # (the scan's: this directory's manifests)
        for name in sorted(names):
            path = os.path.join(self.directory, name)
            if path in known_paths or name in vouched:
                continue
            if os.path.isdir(path) and any(k.startswith(path + os.sep) for k in known_paths):
                continue
            result.append(path)
        return result

    def as_dicts(self, entries: Optional[Iterable[Manifest]] = None) -> List[Dict[str, Any]]:
        return [m.summary() for m in (self.entries if entries is None else entries)]
