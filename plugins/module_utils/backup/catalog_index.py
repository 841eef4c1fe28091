# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Derived indexes of parsed manifests: each manifest is parsed once, not once per catalog or per run.

Two layers, both derived from the manifests and never trusted over them:

* a per-process cache: one module run builds several ``Catalog`` objects over the same directory
  (``backup_info`` one per backup set plus one for the whole directory; ``db_backup`` one for the freshness
  check, one for the leftover scan, one per engine step, one per pruned set);
* a per-directory index file (``INDEX_NAME``, written once a directory holds ``index_min()`` manifests):
  the fields the catalog's questions use (kind, engine, database, finished and consistent times,
  positions, parent, verified, member paths) with each manifest's stat signature, so that a year of
  hourly backups (~200,000 manifests) is answered without parsing 200,000 JSON files. An indexed
  manifest loads its whole JSON only when something asks for it (``summary()``, a restore, a
  verification), and checks then that it still says what the index said.

What proves a manifest unchanged: every scan ``stat``s every manifest, and an entry is reused only when
the file is the very same one: device (of the directory), inode, size, mtime and ctime in nanoseconds.
ctime cannot be set by a user, and any write in place, rename over, chmod or ``touch -d`` changes it; a
file whose ctime is within ``SETTLE_NS`` of the scan is parsed every time and never indexed (the "racily
clean" case: a rewrite in the same clock tick would keep all the stamps). Broken manifests, and manifests
whose fields the index cannot hold exactly (a pending key rotation, odd positions, bad times), are never
indexed: they are parsed on every scan. A manifest added or removed is seen by the directory listing
itself, or, when the directory still has the signature an index was sealed for, by that signature (below).

The index file is a cache, never an authority: it is read only when it is a regular file (never through
a symlink), owned by the user reading it (or root), with one link and not writable by group or others;
its body must match the SHA-256 in its header, and every column must have the right length and types.
Anything else and it is ignored (and rewritten when the directory is writable). It is written atomically
(temporary file, fsync, rename: the final name is replaced, never written through), mode 0600 like the
manifests. A directory we cannot write gets no index: the scan falls back to parsing, cached for the
process. Retention never deletes on the index's word: the manifests of the sets it deletes from are parsed
again and must say what their rows say (``rows_agree``, ``entries_agree``), else it plans from the parsed
manifests (``scan(..., parse_sets=...)``).

The seal (index format 2): once written, and after a fresh listing and ``stat`` proved every manifest still the
file the index describes, the index header records the directory's own signature (device, inode, mtime and
ctime in nanoseconds; ``_seal_index``). A scan that finds the directory with that very signature, the index
current and the listing's manifest names exactly the index's, skips the per-manifest ``stat``: every add,
remove, rename and rename-over (all our writes) changes the directory's mtime and ctime, and ctime cannot be
set. What that cannot see is a manifest rewritten in place (same inode): so every manifest an operation
returns, acts on or reports in detail is ``stat``ed and, when changed, parsed and compared (``confirm``,
``IndexedManifest.data``); a disagreement withdraws the seal (``distrust``) and ``describe``/``prune``
answer again by ``stat``. Real deletions are planned again from the parsed manifests of their sets, as before.
The seal also records the listing's names no row vouches for (``seal_candidates``): a scan that finds the directory
with the sealed signature, on timestamps finer than the seal's tick (``fine_stamps``), takes its listing from the
seal instead of listing the directory.
The full argument, and its limit, is in docs/architecture.md ("The catalog index").

Within a ``session()`` (one module run), a directory whose inode, mtime and ctime have not changed since
the last scan (and had settled before it) is not listed and ``stat``ed again: adding, removing or renaming a
manifest (every write of ours is a rename) changes the directory. Outside a session every ``Catalog``
scans.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import itertools
import operator
import os
import stat
import time
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as _manifest
# session and read_only (and their counters) live in catalog_session.py: a backup run enters them before it loads this
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_session import (  # noqa: F401  # pylint: disable=unused-import
    _READ_ONLY, _SESSION, INDEX_NAME, read_only, session)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import CatalogError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time

# A file changed less than this long ago may change again within the same timestamp tick.
SETTLE_NS = 2 * 1000 ** 3
# Manifests remembered per process; past this the cache starts again (bounds memory in long-lived
# processes: tests, backup_copy walking several work directories).
MAX_ENTRIES = 1_000_000
# The index file, inside the backup directory: INDEX_NAME (catalog_session.py). A dot name: never a manifest
# (manifest_paths skips dot names), never a leftover (leftovers only consider artifact-stamped names), never copied
# offsite.
INDEX_FORMAT = 'opsready-catalog-index'
# 2: the header has a seal; 3: binary columns after the JSON header line; 4: a journal after them; 5: an origin column
INDEX_VERSION = 5
# A previous format whose rows are the same (read, never appended to nor sealed: rewritten as INDEX_VERSION); None: the
# previous one (4) lacks the origin column, so its index is ignored and rebuilt from the manifests (derived, never
# trusted over them)
PREVIOUS_VERSION: Optional[int] = None
READ_VERSIONS = (INDEX_VERSION,) if PREVIOUS_VERSION is None else (INDEX_VERSION, PREVIOUS_VERSION)
INDEX_LIMIT = 1024 ** 3
# From this many manifests on, a scan keeps the manifests it parsed but does not return as index rows, not as
# parsed JSON (~6 KB each: 1.5 GB for the first run on 200,000); below it, as parsed JSON, so that a small first
# run that then returns them does not parse them twice.
ROWS_MIN = 10_000
# Below this many manifests, parsing them all costs less than ~0.1 s: no index file is written (small
# directories keep exactly the files the backups wrote). OPSREADY_CATALOG_INDEX_MIN overrides it.
INDEX_MIN = 1000

Signature = Tuple[int, int, int, int]
# The index's columns, one value per manifest (decoded; the file's sections: ``SECTIONS``). ``stem`` is the
# manifest's file name without MANIFEST_SUFFIX; ``artifact`` and ``id`` are None when equal to it / to the
# artifact (they almost always are).
COLUMNS = ('stem', 'ino', 'size', 'mtime', 'ctime', 'artifact', 'id', 'kind', 'engine', 'database', 'parent',
           'finished', 'consistent', 'pstart', 'pend', 'log_start', 'verified', 'members', 'origin')


def index_min() -> int:
    try:
        return max(1, int(os.environ.get('OPSREADY_CATALOG_INDEX_MIN', INDEX_MIN)))
    except ValueError:
        return INDEX_MIN


# ----------------------------------------------------------------------------------------- entries
# (artifact, id, kind, engine, database, parent, finished_us, consistent_us, pstart, pend, log_start,
#  verified, member paths, origin)
Fields = Tuple[Any, ...]


def index_fields(entry: _manifest.Manifest) -> Optional[Fields]:
    """What the index keeps of a parsed manifest, or None when it cannot keep it exactly."""
    data = entry.data
    if data.get('rekey_pending') is not None:
        return None  # the truth depends on the artifact's inode (manifest._rolled_forward): parse every time
    try:
        artifact, ident = data['artifact'], data['id']
        engine, database, parent = data['engine'], data.get('database'), data.get('parent')
        position = data.get('position') or {}
        if not isinstance(position, dict):
            return None
        ints = []
        for key in ('start', 'end', 'log_start'):
            value = position.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                return None  # kept exact: only integers (what every engine writes) are indexed
            ints.append(value)
        finished, consistent = _manifest.to_us(entry.finished), _manifest.to_us(entry.consistent_at)
        entry.started, entry.covers_from  # noqa: B018 - a manifest whose times do not parse is not indexed
        members = data.get('members')
        paths = None
        if members:
            paths = [m['path'] for m in members]
            if not all(isinstance(p, str) for p in paths):
                return None
        verified = entry.verified
        origin = entry.origin
    except (OpsReadyError, KeyError, TypeError, ValueError, AttributeError):
        return None
    if not (isinstance(artifact, str) and isinstance(ident, str) and isinstance(engine, str)
            and isinstance(database, (str, type(None))) and isinstance(parent, (str, type(None)))):
        return None
    return (artifact, ident, entry.kind, engine, database, parent, finished, consistent, ints[0], ints[1], ints[2],
            verified, paths, origin)


class IndexStale(CatalogError):
    """A manifest an operation used disagrees with the index: the index is no longer trusted (``distrust``);
    ``describe`` and ``prune`` answer again from the manifests, other callers ask to run again."""


class IndexedManifest(_manifest.Manifest):
    """A manifest known from the index file: the catalog's fields without the JSON; ``data`` is read (and
    checked against these fields) on first use. Slots, not a dict: 200,000 of them are held at once."""

    __slots__ = ('directory', '_stem', '_sig', '_data', '_dt', '_artifact', '_id', '_kind', '_engine',
                 '_database', '_parent', '_finished', '_consistent', '_pstart', '_pend', '_log_start',
                 '_verified', '_members', '_origin')

    def __init__(self, directory: str, stem: str, signature: Signature,  # pylint: disable=super-init-not-called
                 fields: Fields) -> None:
        self.directory = directory
        self._stem = stem
        self._sig = signature
        self._data: Optional[Dict[str, Any]] = None
        self._dt: Optional[Dict[int, datetime.datetime]] = None
        (self._artifact, self._id, self._kind, self._engine, self._database, self._parent, self._finished,
         self._consistent, self._pstart, self._pend, self._log_start, self._verified, self._members,
         self._origin) = fields

    def fields(self) -> Fields:
        return (self._artifact, self._id, self._kind, self._engine, self._database, self._parent, self._finished,
                self._consistent, self._pstart, self._pend, self._log_start, self._verified, self._members,
                self._origin)

    @property  # type: ignore[override]
    def data(self) -> Dict[str, Any]:
        if self._data is None:
            path = os.path.join(self.directory, self._stem + _manifest.MANIFEST_SUFFIX)
            try:
                st: Optional[os.stat_result] = os.stat(path)
            except OSError:
                st = None
            entry = _manifest.read_manifest(path)
            if index_fields(entry) != self.fields():
                if st is not None and (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == self._sig:
                    index_lied(self.directory)   # the very file its row was made from says something else
                else:
                    _replace(self.directory, self._stem, entry, st)
                    distrust(self.directory)
                raise IndexStale('Manifest %s changed while this run was reading the catalog: run again.' % path,
                                 path=path)
            self._data = entry.data
        return self._data

    @data.setter
    def data(self, value: Dict[str, Any]) -> None:
        self._data = value

    def record_verification(self, ok: bool, checks: Dict[str, Any], when: datetime.datetime,
                            artifact_stat: Optional[List[List[int]]] = None) -> None:
        super().record_verification(ok, checks, when, artifact_stat)
        self._verified = bool(ok)

    def _time(self, key: str, fallback: str) -> datetime.datetime:
        """``started``/``covers_from``: from the JSON (rarely asked; the index keeps only the times the
        catalog's questions use)."""
        return parse_time(self.data.get(key) or self.data[fallback], key)

    def _when(self, value: int) -> datetime.datetime:
        if self._dt is None:
            self._dt = {}
        moment = self._dt.get(value)
        if moment is None:
            moment = self._dt[value] = _manifest.from_us(value)
        return moment

    # Everything the catalog asks in bulk comes from the fields; the rest (position details, members,
    # encryption, checksums, started) from ``data``.
    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def engine(self) -> str:
        return self._engine

    @property
    def database(self) -> Optional[str]:
        return self._database

    @property
    def parent(self) -> Optional[str]:
        return self._parent

    @property
    def origin(self) -> Optional[str]:
        return self._origin  # type: ignore[no-any-return]

    @property
    def artifact_name(self) -> str:
        return self._artifact

    @property
    def finished(self) -> datetime.datetime:
        return self._when(self._finished)

    @property
    def consistent_at(self) -> datetime.datetime:
        return self._when(self._consistent)

    @property
    def finished_us(self) -> int:
        return self._finished

    @property
    def consistent_us(self) -> int:
        return self._consistent

    @property
    def pos_start(self) -> Optional[int]:
        return self._pstart

    @property
    def pos_end(self) -> Optional[int]:
        return self._pend

    @property
    def log_start(self) -> Optional[int]:
        return self._log_start

    @property
    def verified(self) -> Optional[bool]:
        if self._data is not None:
            return super().verified
        return self._verified

    @property
    def member_paths(self) -> List[str]:
        return list(self._members or [])

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.directory, self._stem + _manifest.MANIFEST_SUFFIX)


# ----------------------------------------------------------------------------------------- the cache
# An index row (ROW_LEN values) or (signature, manifest).
Known = Tuple[Any, ...]
ROW_LEN = 18
# Positions in an index row.
R_ARTIFACT, R_ID, R_KIND, R_ENGINE, R_DATABASE, R_PARENT, R_MEMBERS = 4, 5, 6, 7, 8, 9, 16
R_FINISHED, R_CONSISTENT, R_PSTART, R_PEND, R_LOG_START, R_VERIFIED = 10, 11, 12, 13, 14, 15
R_ORIGIN = 17


def materialize(directory: str, stem: str, row: Known) -> IndexedManifest:
    """The ``IndexedManifest`` of an index row."""
    artifact = stem if row[R_ARTIFACT] is None else row[R_ARTIFACT]
    return IndexedManifest(directory, stem, row[:4], (artifact, artifact if row[R_ID] is None else row[R_ID])
                           + row[R_KIND:])


def vouched_name(stem: str, hit: Known) -> Tuple[str, Any]:
    """(artifact name, member paths) of a cache entry, without building a manifest object."""
    if len(hit) == ROW_LEN:
        return (stem if hit[R_ARTIFACT] is None else hit[R_ARTIFACT]), hit[R_MEMBERS] or ()
    entry = hit[1]
    if isinstance(entry, IndexedManifest):
        return entry._artifact, entry._members or ()
    return entry.artifact_name, entry.member_paths


# A scan filter that builds no entries (the leftover scan needs only the names the manifests vouch for).
NOTHING = ('\0', '\0')


class ScanResult:
    """One scan: ``entries`` (the manifests the filter asked for, in file-name order), ``broken`` (every
    unreadable manifest), ``seen`` (every valid settled manifest's cache entry, stem -> entry),
    ``unsettled`` (valid manifests too recent to cache), ``others`` (the listing's other names)."""

    __slots__ = ('entries', 'broken', 'seen', 'unsettled', 'others', 'complete', 'columns', 'preloaded', 'unlisted')

    def __init__(self, entries: List[_manifest.Manifest], broken: List[Dict[str, str]], seen: Dict[str, Known],
                 unsettled: List[_manifest.Manifest], others: List[str], complete: bool,
                 columns: Optional[Tuple[List[Any], ...]]) -> None:
        self.entries = entries
        self.broken = broken
        self.seen = seen
        self.unsettled = unsettled
        self.others = others
        self.complete = complete   # ``entries`` holds every valid manifest (no filter)
        self.columns = columns     # a sealed scan's: every manifest is a row of these (``seen`` is empty)
        # row -> JSON of the rows this scan parsed (``_incremental``): their objects do not read them again
        self.preloaded: Dict[int, Dict[str, Any]] = {}
        # ``others`` is not the listing's other names but the seal's leftover candidates (the directory was not
        # listed: ``scan``): already without the names the rows vouch for
        self.unlisted = False

    def copy(self) -> 'ScanResult':
        other = ScanResult(list(self.entries), list(self.broken), self.seen, self.unsettled, self.others,
                           self.complete, self.columns)
        other.preloaded = self.preloaded
        other.unlisted = self.unlisted
        return other

    def set_refs(self, engine: Optional[str] = None, database: Optional[str] = None
                 ) -> Dict[Tuple[str, Optional[str]], List[Any]]:
        """Every valid manifest of this scan (built with ``NOTHING``) by (engine, database), as references
        ``build_set`` turns into objects: a row number (sealed columns), (stem, row), or a manifest. Lets a
        caller answer set after set holding one set's objects at a time (200,000 at once were ~150 MB)."""
        groups: Dict[Tuple[str, Optional[str]], List[Any]] = {}
        if self.columns is not None and engine and database and not self.seen and not self.unsettled:
            # one set (the drill, db_backup): its rows picked in C, no Python step per row of the directory
            engines, databases = self.columns[1 + R_ENGINE], self.columns[1 + R_DATABASE]
            mask = map(operator.and_, map(operator.eq, engines, itertools.repeat(engine)),
                       map(operator.eq, databases, itertools.repeat(database)))
            rows = list(itertools.compress(range(len(engines)), mask))
            return {(engine, database): rows} if rows else {}
        if self.columns is not None:
            # by runs of equal (engine, database), found in C: rows are in manifest-name order, and the product's
            # names start with engine and database, so a set is a few runs (a Python step per row of 200,000 was
            # a tenth of a sealed scan)
            # (where a run starts: a row whose engine or database is not the previous row's; the values are the
            # index's shared string objects, so each comparison is mostly an identity test. A tuple per row and a
            # groupby step per row were a twentieth of a check-mode prune at 200,000.)
            engines, databases = self.columns[1 + R_ENGINE], self.columns[1 + R_DATABASE]
            count = len(engines)
            starts = [0] if count else []
            starts.extend(itertools.compress(range(1, count), map(
                operator.or_, map(operator.ne, itertools.islice(engines, 1, None), engines),
                map(operator.ne, itertools.islice(databases, 1, None), databases))))
            starts.append(count)
            for start, end in zip(starts, itertools.islice(starts, 1, None)):
                key = (engines[start], databases[start])
                refs = groups.get(key)
                if refs is None:
                    refs = groups[key] = []
                refs.extend(range(start, end))
            del starts
        for stem, hit in self.seen.items():
            if len(hit) == ROW_LEN:
                groups.setdefault((hit[R_ENGINE], hit[R_DATABASE]), []).append((stem, hit))
            else:
                groups.setdefault((hit[1].engine, hit[1].database), []).append(hit[1])
        for entry in self.unsettled:
            groups.setdefault((entry.engine, entry.database), []).append(entry)
        # the same filter as Catalog's (a false value matches any)
        return {key: refs for key, refs in groups.items()
                if (not engine or key[0] == engine) and (not database or key[1] == database)}

    def origins_of(self, refs: List[Any]) -> List[Optional[str]]:
        """The recorded ``origin`` of each ``set_refs`` reference (None: not recorded), without building objects: a
        sealed index's rows by lookups in C."""
        column = self.columns[1 + R_ORIGIN] if self.columns is not None else None
        if column is not None and all(map(isinstance, refs, itertools.repeat(int))):
            return list(map(column.__getitem__, refs))
        result: List[Optional[str]] = []
        for ref in refs:
            if isinstance(ref, int):
                result.append(column[ref] if column is not None else None)
            elif isinstance(ref, tuple):
                result.append(ref[1][R_ORIGIN])
            else:
                result.append(ref.origin)
        return result

    def consistent_of(self, refs: List[Any]) -> List[int]:
        """The ``consistent_at`` (microseconds) of each ``set_refs`` reference, without building objects (the times
        of a set's origins: ``catalog.origin_spans``)."""
        column = self.columns[1 + R_CONSISTENT] if self.columns is not None else None
        if column is not None and all(map(isinstance, refs, itertools.repeat(int))):
            return list(map(column.__getitem__, refs))   # a sealed index's rows: lookups in C
        result: List[int] = []
        for ref in refs:
            if isinstance(ref, int) and column is not None:
                result.append(column[ref])
            elif isinstance(ref, tuple):
                result.append(ref[1][R_CONSISTENT])
            else:
                result.append(ref.consistent_us)
        return result

    def build_set(self, directory: str, refs: List[Any]) -> List[_manifest.Manifest]:
        """The manifests of ``set_refs`` references (not kept by the cache: the caller drops them)."""
        entries: List[_manifest.Manifest] = []
        columns = self.columns
        numbers = [ref for ref in refs if isinstance(ref, int)]
        if numbers and columns is not None:
            # the set's rows by column, picked in C (a generator per row was most of a set's cost)
            picked = [list(map(column.__getitem__, numbers)) for column in columns]
            entries.extend(map(materialize, [directory] * len(numbers), picked[0], zip(*picked[1:])))
            if self.preloaded:
                for number, entry in zip(numbers, entries[-len(numbers):]):
                    data = self.preloaded.get(number)
                    if data is not None:
                        entry._data = data  # type: ignore[attr-defined]
        for ref in refs:
            if isinstance(ref, tuple):
                entries.append(materialize(directory, ref[0], ref[1]))
            elif not isinstance(ref, int):
                entries.append(ref)
        return entries

    def unvouched(self, directory: str) -> Tuple[Set[str], Set[str]]:
        """The listing's other names that no manifest vouches for as a name (the leftover candidates), and the
        paths (below the top of the directory) the manifests vouch for.

        Most artifacts are named as their manifest's stem (the index keeps None for those): the candidates are
        the other names minus the stems, a set difference in C, and only the few rows with another artifact
        name or with members are walked (a tuple per row of 200,000 was a fifth of a drill's catalog read)."""
        remaining = set(self.others)
        paths: Set[str] = set()

        def vouch(relative: str) -> None:
            if '/' in relative or relative in ('.', '..'):
                paths.add(os.path.normpath(os.path.join(directory, relative)))
            else:
                remaining.discard(relative)
        if self.columns is not None:
            stems, artifacts, members = (self.columns[0], self.columns[1 + R_ARTIFACT],
                                         self.columns[1 + R_MEMBERS])
            # rows with an artifact named apart or with members, picked in C
            odd = list(itertools.compress(range(len(stems)), map(operator.or_, map(operator.is_not, artifacts,
                                                                                   itertools.repeat(None)),
                                                                 map(bool, members))))
            # a stem whose manifest names another artifact vouches for nothing by itself: keep it a candidate
            named_apart = {stems[i] for i in odd if artifacts[i] is not None} & remaining
            if self.unlisted:
                # the seal's candidates, computed so when it was written; one whose manifest is there all the same
                # (a seal that disagrees with the directory) is dropped: never a leftover on the seal's word alone
                remaining = {name for name in remaining if name in named_apart
                             or not os.path.lexists(os.path.join(directory, name + SUFFIX))}
            else:
                remaining.difference_update(stems)
            remaining |= named_apart
            for i in odd:
                vouch(stems[i] if artifacts[i] is None else artifacts[i])
                for relative in members[i] or ():
                    vouch(relative)
        pairs = [vouched_name(stem, hit) for stem, hit in self.seen.items()]
        pairs += [(m.artifact_name, m.member_paths) for m in self.unsettled]
        for artifact, listed in pairs:
            vouch(artifact)
            for relative in listed:
                vouch(relative)
        return remaining, paths


class _Dir:
    """What the process knows of one directory: manifest stem -> either an index row (ROW_LEN values:
    the signature's four numbers then the index fields, as the index file's columns hold them: ``artifact``
    and ``id`` None when equal to the stem / artifact) or (signature, manifest) once parsed or built.

    Rows stay plain tuples (columns, not objects): a ``Catalog`` of one set builds ``IndexedManifest``
    objects for that set only, and 200,000 objects cost more to build than the rest of a scan."""

    def __init__(self) -> None:
        self._entries: Dict[str, Known] = {}
        # The index file's columns as loaded (stem first, then the row's values), until a scan needs rows by
        # stem: the sealed scan reads them by position and builds objects for the asked set only (``built``).
        self.columns: Optional[Tuple[List[Any], ...]] = None
        self.built: Dict[int, IndexedManifest] = {}
        self.dir_sig: Optional[Tuple[int, int, int, int]] = None
        # the session's scans of this directory while its signature is ``last_sig``: filter -> (when, result)
        self.last: Dict[Any, Tuple[int, 'ScanResult']] = {}
        self.last_sig: Optional[Tuple[int, int, int, int]] = None
        # the session's last listing: (directory signature, when, manifest names, other names, temporaries)
        self.listing: Optional[Tuple[Any, int, List[str], List[str], List[str]]] = None
        self.index_loaded = False
        self.index_current = False   # the index file holds what ``entries`` holds
        # The directory signature (dev, ino, mtime_ns, ctime_ns) the index file's seal vouches for, and the
        # stems it holds (manifest-name order); ``distrusted``: a used manifest disagreed, never the seal again.
        self.seal: Optional[Tuple[int, int, int, int]] = None
        self.seal_listing: Optional[str] = None   # the seal's digest of the listing it checked (``listing_digest``)
        # the seal's leftover candidates (``seal_candidates``): the listing's other names less the ones the rows
        # vouch for; None: the seal holds none, the directory is listed
        self.seal_others: Optional[List[str]] = None
        self.sealed_stems: List[str] = []   # the index's stems, in manifest-name order
        self.stem_set: Optional[Tuple[List[str], Set[str]]] = None   # (sealed_stems, their set): _same_names
        self.distrusted = False
        # The index file as this process read or wrote it, while it holds exactly what ``columns`` hold: (where its
        # body ends, journal length, last chain digest, journal records, the body's SHA-256); None: nothing to append
        # to (``_append``).
        self.journal: Optional[Tuple[int, int, bytes, int, str]] = None

    @property
    def entries(self) -> Dict[str, Known]:
        if self.columns is not None:
            self._rows()
        return self._entries

    @entries.setter
    def entries(self, value: Dict[str, Known]) -> None:
        self.columns, self.built = None, {}
        self._entries = value

    def _rows(self) -> None:
        """The loaded columns as rows by stem (one tuple per manifest, built by zip in C)."""
        columns, self.columns = self.columns, None
        if columns is None:
            return
        rows: Dict[str, Known] = dict(zip(columns[0], zip(*columns[1:])))
        for i, entry in self.built.items():
            rows[columns[0][i]] = (entry._sig, entry)
        self.built = {}
        rows.update(self._entries)   # what this process parsed already wins
        self._entries = rows


_DIRS: Dict[str, _Dir] = {}
_SIZE = [0]


def clear() -> None:
    """Forget everything (tests; a process that wants to re-read every file)."""
    _DIRS.clear()
    _SIZE[0] = 0


SUFFIX = _manifest.MANIFEST_SUFFIX
SUFFIX_LEN = len(SUFFIX)
_STEM = slice(None, -SUFFIX_LEN)


def read_manifest(path: str) -> _manifest.Manifest:
    """``manifest.read_manifest(path)``, parsed once per process while the file stays the same file."""
    absolute = path if os.path.isabs(path) else os.path.abspath(path)
    directory, name = os.path.split(absolute)
    try:
        st = os.lstat(absolute)
    except OSError:
        return _manifest.read_manifest(path)  # its own error message (missing, unreadable)
    signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    known = _DIRS.get(directory)
    stem = name[:-SUFFIX_LEN] if name.endswith(SUFFIX) else None
    if known is not None and known.columns is not None:
        return _manifest.read_manifest(absolute)   # columns not yet rows: a lookup by stem would build them all
    hit = known.entries.get(stem) if known is not None and stem is not None else None
    if hit is not None and len(hit) == 2 and not isinstance(hit[1], IndexedManifest) and hit[0] == signature:
        return hit[1]  # type: ignore[no-any-return]
    entry = _manifest.read_manifest(absolute)
    if stem is not None and st.st_ctime_ns <= time.time_ns() - SETTLE_NS:
        _remember(directory, stem, signature, entry)
    return entry


def _remember(directory: str, stem: str, signature: Signature, entry: _manifest.Manifest) -> None:
    if _SIZE[0] >= MAX_ENTRIES:
        clear()
    known = _DIRS.setdefault(directory, _Dir())
    if stem not in known.entries:
        _SIZE[0] += 1
    known.entries[stem] = (signature, entry)


def manifest_paths(directory: str) -> List[str]:
    """Sorted paths of the ``*.manifest.json`` names in ``directory``, as ``sorted(glob.glob(...))`` gives
    them (names starting with a dot are skipped, like glob does), without glob's pattern matching."""
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.name.endswith(SUFFIX) and not e.name.startswith('.')]
    except OSError:
        return []  # what glob gives for a directory it cannot list (unchanged behaviour)
    return [os.path.join(directory, name) for name in sorted(names)]


# What atomic_write_bytes names its temporary file for the index: '.' + INDEX_NAME + '.' + random + '.tmp'.
TMP_PREFIX = '.' + INDEX_NAME + '.'
TMP_SUFFIX = '.tmp'
_ENDS_SUFFIX = operator.methodcaller('endswith', SUFFIX)
_DOT = operator.methodcaller('startswith', '.')
_TMP = operator.methodcaller('startswith', TMP_PREFIX)
# A temporary index file older than this is a killed run's: no writer holds one open for that long.
TMP_STALE_S = 15 * 60


def _list_names(directory: str) -> Tuple[List[str], List[str], List[str], int]:
    """The manifest names (in listing order) of ``directory``, its other names (for the leftover scan, which then
    needs no second listing), our index temporaries, and a descriptor to ``stat`` by (-1: cannot list)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return [], [], [], -1
    try:
        # listdir and comprehensions: a DirEntry and a Python-level loop per name were 0.45 s of 400,000 names
        listing = os.listdir(fd)
    except OSError:
        os.close(fd)
        return [], [], [], -1
    # a dot name is never a manifest (as glob skips it), nor a leftover
    # split by masks computed in C (three Python comprehensions over 400,000 names were ~0.2 s)
    manifest = list(map(_ENDS_SUFFIX, listing))
    names = list(itertools.compress(listing, manifest))
    others = list(itertools.compress(listing, map(operator.not_, manifest)))
    del listing, manifest
    if any(map(_DOT, names)):
        names = [name for name in names if name[0] != '.']
    temporaries: List[str] = []
    if any(map(_TMP, others)):
        temporaries = [name for name in others if name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)]
        others = [name for name in others if not (name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX))]
    # not sorted here: a sealed scan compares them as a set; ``_scan`` sorts them when it walks them
    return names, others, temporaries, fd


def remove_stale_temporaries(directory: str, names: List[str], now: Optional[float] = None) -> List[str]:
    """Remove index temporaries a killed run left (regular files of ours, one link, older than TMP_STALE_S).

    Never follows a symlink (lstat, unlink removes the name), never removes another user's file or one a
    running writer may still be filling."""
    removed = []
    cutoff = (time.time() if now is None else now) - TMP_STALE_S
    for name in names:
        if not (name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)) or '/' in name:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_nlink == 1
                    and st.st_mtime < cutoff and st.st_ctime < cutoff):
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue
    return removed


def scan(directory: str, use_index: bool = True, parse_sets: Optional[Set[Tuple[str, Optional[str]]]] = None,
         only: Optional[Tuple[Optional[str], Optional[str]]] = None) -> ScanResult:
    """Every readable manifest of ``directory`` (in file-name order) and the broken ones.

    Entries known only from the index file are parsed from their JSON when ``use_index`` is false, or when
    their (engine, database) is in ``parse_sets`` (retention's deletions). ``only`` = (engine, database)
    (None: any) builds entries for that set alone: every manifest is still listed and ``stat``ed (that is
    what proves the index rows unchanged); ``NOTHING`` builds none.
    """
    directory = os.path.abspath(directory)
    known = _DIRS.setdefault(directory, _Dir())
    stat_ns = time.time_ns()   # before the directory's stat: the clock when its signature is taken is at least this
    try:
        dst = os.stat(directory)
        dir_sig: Optional[Tuple[int, int, int, int]] = (dst.st_dev, dst.st_ino, dst.st_mtime_ns, dst.st_ctime_ns)
    except OSError:
        dir_sig = None
    key = (only, use_index)
    if use_index and not parse_sets and _SESSION[0] and dir_sig is not None and known.last_sig == dir_sig:
        last = known.last.get(key)
        if last is not None and dst.st_ctime_ns <= last[0] - SETTLE_NS:
            return last[1].copy()
    early = False
    if use_index and not known.index_loaded and dir_sig is not None and not known._entries and known.columns is None:
        # The index is decoded before the directory is listed: decoding it is a run's peak of memory, and the
        # listing's names (400,000 at a year of hourly backups, ~70 MB) then reuse what it freed.
        known.index_loaded = early = True
        known.index_current = _load_index(directory, dir_sig[0], known)
    tick_ok = False
    if (use_index and not parse_sets and not _READ_ONLY[0] and not known.distrusted and dir_sig is not None
            and known.columns is not None and known.seal != dir_sig):
        # a scan that may seal the index for this signature (``_incremental``): the directory's last change must be
        # a clock tick older than the signature (a change in the same tick could keep its stamps)
        wait = dst.st_ctime_ns + SEAL_TICK_NS - stat_ns
        if wait > 0:
            time.sleep(wait / 1e9)
            stat_ns = time.time_ns()
            try:
                dst = os.stat(directory)
                dir_sig = (dst.st_dev, dst.st_ino, dst.st_mtime_ns, dst.st_ctime_ns)
            except OSError:
                dir_sig = None
        tick_ok = dir_sig is not None and stat_ns - dst.st_ctime_ns >= SEAL_TICK_NS
    started_ns = time.time_ns()
    listing = known.listing
    unlisted = (use_index and not parse_sets and not known.distrusted and known.index_current and dir_sig is not None
                and known.seal == dir_sig and known.seal_others is not None and known.columns is not None
                and _file().fine_stamps(dir_sig) and len(known.sealed_stems) >= index_min())
    if unlisted:
        # The directory has the very signature the seal vouches for: no name was added, removed or renamed since a
        # listing proved the index's names and recorded the others (the seal waited a tick past the directory's
        # ctime, on timestamps finer than that tick: any later change stamps another ctime, which cannot be set).
        # Its listing is the seal's: 400,000 names not listed again (a third of a sealed run).
        names, others, temporaries = _MATCHED, list(known.seal_others or ()), []
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            fd = -1
    elif (_SESSION[0] and listing is not None and dir_sig is not None and listing[0] == dir_sig
            and dst.st_ctime_ns <= listing[1] - SETTLE_NS):
        # one run (db_backup: the fresh check, the leftover scan, the log run, the prune) lists an unchanged
        # directory once, whatever each catalog's filter
        names, others, temporaries = listing[2], listing[3], listing[4]
        if names is known.sealed_stems:
            # the listing matched the seal and its names were dropped: they are the index's stems (the match
            # holds while the seal and the index are the ones it was checked against)
            if known.seal == dir_sig and known.index_current and not known.distrusted:
                names = _MATCHED
            else:
                names = sorted(stem + SUFFIX for stem in names)
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            fd = -1
    else:
        names, others, temporaries, fd = _list_names(directory)
        known.listing = (dir_sig, started_ns, names, others, temporaries) if _SESSION[0] else None
    if fd < 0:
        return ScanResult([], [], {}, [], [], True, None)
    try:
        if use_index and not known.index_loaded and dir_sig is not None:
            known.index_loaded = True
            if len(names) >= index_min():
                known.index_current = _load_index(directory, dir_sig[0], known)
        if early and known.index_current and names is not _MATCHED and len(names) < index_min():
            _unload_index(known)   # a directory that shrank below the minimum is scanned as before
        if (use_index and not parse_sets and not known.distrusted and known.index_current and dir_sig is not None
                and known.seal == dir_sig and (names is _MATCHED or _file()._listing_matches(names, known))):
            if names is not _MATCHED and _SESSION[0] and known.listing is not None and known.listing[2] is names \
                    and known.columns is not None:
                # the session's listing keeps the index's stems instead of 200,000 names (~25 MB less)
                known.listing = known.listing[:2] + (known.sealed_stems,) + known.listing[3:]
            if names is _MATCHED:
                names = [] if known.columns is not None else sorted(stem + SUFFIX for stem in known.sealed_stems)
            result = _file()._sealed(directory, known, names, only)
        else:
            if names is _MATCHED:
                names = sorted(stem + SUFFIX for stem in known.sealed_stems)
            incremental = None
            if (use_index and not parse_sets and not known.distrusted and known.columns is not None
                    and dir_sig is not None and len(names) >= index_min()):
                incremental = _incremental(directory, known, names, fd, dir_sig, started_ns, only, tick_ok,
                                           others, temporaries)
            result = incremental if incremental is not None else _scan(
                directory, known, names, fd, dir_sig, started_ns, use_index, parse_sets, only)
    finally:
        os.close(fd)
    result.others = others
    result.unlisted = unlisted
    if known.last_sig != dir_sig:
        known.last = {}
        known.last_sig = dir_sig
    if _SESSION[0]:
        known.last[key] = (started_ns, result)
    if temporaries and known.index_current and not _READ_ONLY[0]:
        remove_stale_temporaries(directory, temporaries)
    return result.copy()


# A session's listing whose names matched the seal (``scan``): they are the index's stems.
_MATCHED: List[str] = []


def _unload_index(known: _Dir) -> None:
    """Forget an index ``_load_index`` loaded into a ``_Dir`` that had parsed nothing yet."""
    if known.columns is not None:
        _SIZE[0] -= len(known.columns[0])
    known.entries = {}
    known.seal = None
    known.seal_others = None
    known.sealed_stems = []
    known.index_current = False
    known.journal = None


def _scan(directory: str, known: _Dir, names: List[str], fd: int, dir_sig: Optional[Tuple[int, int, int, int]],
          started_ns: int, use_index: bool, parse_sets: Optional[Set[Tuple[str, Optional[str]]]],
          only: Optional[Tuple[Optional[str], Optional[str]]]) -> ScanResult:
    settled = started_ns - SETTLE_NS
    entries: List[_manifest.Manifest] = []
    broken: List[Dict[str, str]] = []
    unsettled: List[_manifest.Manifest] = []
    cached = known.entries
    seen: Dict[str, Known] = {}
    stale = False
    stat_at = os.lstat   # the link itself: a symlinked manifest never matches a row (it is read, and refused)
    want_all = only is None or only == (None, None)
    nothing = only == NOTHING
    names.sort()   # file-name order (in place: the session's cached listing is the same list, sorted once)
    large = use_index and len(names) >= max(index_min(), ROWS_MIN)
    want_engine, want_database = (None, None) if want_all or nothing else only  # type: ignore[misc]
    for name in names:
        stem = name[:-SUFFIX_LEN]
        # stat one at a time, keeping four numbers: 200,000 stat results held at once were 140 MB
        try:
            st = stat_at(name, dir_fd=fd)
        except OSError:
            path = os.path.join(directory, name)
            _broken(broken, path, _error_of(path))
            continue
        hit = cached.get(stem)
        entry: _manifest.Manifest
        if hit is not None:
            if len(hit) == ROW_LEN:   # an index row: compared and filtered as numbers and strings, no object
                if (use_index and hit[3] == st.st_ctime_ns and hit[0] == st.st_ino and hit[1] == st.st_size
                        and hit[2] == st.st_mtime_ns
                        and not (parse_sets and (hit[R_ENGINE], hit[R_DATABASE]) in parse_sets)):
                    if not nothing and (want_all or (
                            (want_engine is None or hit[R_ENGINE] == want_engine)
                            and (want_database is None or hit[R_DATABASE] == want_database))):
                        entry = materialize(directory, stem, hit)
                        hit = cached[stem] = (hit[:4], entry)
                        entries.append(entry)
                    seen[stem] = hit
                    continue
            else:
                sig, entry = hit
                usable = not isinstance(entry, IndexedManifest) or (
                    use_index and not (parse_sets and (entry._engine, entry._database) in parse_sets))
                if (usable and sig[3] == st.st_ctime_ns and sig[0] == st.st_ino and sig[1] == st.st_size
                        and sig[2] == st.st_mtime_ns):
                    if not nothing and (want_all or (
                            (not want_engine or entry.engine == want_engine)
                            and (not want_database or entry.database == want_database))):
                        entries.append(entry)
                    seen[stem] = hit
                    continue
        path = os.path.join(directory, name)
        try:
            entry = _manifest.read_manifest(path)
        except OpsReadyError as exc:
            _broken(broken, path, exc.message)
            continue
        wanted = not nothing and (want_all or ((not want_engine or entry.engine == want_engine)
                                               and (not want_database or entry.database == want_database)))
        if wanted:
            entries.append(entry)
        if st.st_ctime_ns <= settled:
            signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            # A manifest this scan does not return is kept as its index row, not its parsed JSON: the first run
            # on a large directory parses every manifest, and 200,000 held dicts were 1.5 GB (a row is ~0.3 KB).
            fields = index_fields(entry) if not wanted and large else None
            if fields is not None:
                seen[stem] = signature + _row_fields(stem, fields)
            else:
                seen[stem] = (signature, entry)
            if parse_sets and hit is not None and _still_says(stem, hit, signature, entry):
                # the row stays in the cache (and the index file as it is); ``confirm`` checks this object
                # against the file it was parsed from
                entry.scan_signature = signature
            else:
                stale = True
        else:
            unsettled.append(entry)
    if stale or len(seen) != len(cached):
        # removed (or unsettled) files are forgotten: the index must not grow with deleted backups
        _SIZE[0] += len(seen) - len(cached)
        known.entries = seen
        stale = True
    if _SIZE[0] >= MAX_ENTRIES:
        _SIZE[0] -= len(known.entries)
        known.entries = {}
    known.dir_sig = dir_sig
    if use_index and (stale or not known.index_current) and not _READ_ONLY[0] and dir_sig is not None \
            and known.entries and len(names) >= index_min():
        known.index_current = _write_index(directory, dir_sig[0], known)
    elif stale:
        known.index_current = False
    elif (use_index and known.index_current and not known.distrusted and not _READ_ONLY[0] and dir_sig is not None
          and known.seal != dir_sig and len(names) >= index_min()):
        # the index is current but its seal is not (a directory change that left every manifest as it was:
        # a leftover removed, the index itself rewritten): seal it for this signature
        _seal_index(directory, known, dir_sig)
    return ScanResult(entries, broken, seen, unsettled, [], want_all, None)


def _row_fields(stem: str, fields: Fields) -> Tuple[Any, ...]:
    """``index_fields`` as an index row holds them after the signature (artifact None when it is the stem, id None
    when it is the artifact)."""
    return (None if fields[0] == stem else fields[0], None if fields[1] == fields[0] else fields[1]) + fields[2:]


def _still_says(stem: str, hit: Known, signature: Tuple[int, int, int, int], entry: _manifest.Manifest) -> bool:
    """Whether a manifest parsed again for ``parse_sets`` is the very file its cache entry was made from and says
    what that entry says: retention's re-reading of a set then leaves the index file as it was (rewriting 200,000
    identical rows was most of a real prune's catalog time)."""
    if len(hit) == ROW_LEN:
        if hit[:4] != signature:
            return False
        fields = index_fields(entry)
        return fields is not None and hit[4:] == _row_fields(stem, fields)
    held, cached = hit
    if held != signature or not isinstance(cached, IndexedManifest):
        return False
    return cached.fields() == index_fields(entry)


def _broken(broken: List[Dict[str, str]], path: str, message: str) -> None:
    """Note a manifest a scan could not use. A symlink is also a warning of the task, whatever the module: a restore,
    a prune or a copy that only skips broken manifests would otherwise be silent about a link someone planted."""
    broken.append({'manifest': path, 'error': message})
    if os.path.islink(path) and path not in _LINKS_WARNED:
        _LINKS_WARNED.add(path)
        try:   # this file also runs without Ansible (archive_command, a copy read by an unprivileged account)
            from ansible.module_utils.common.warnings import warn
        except ImportError:
            return
        warn('Skipped in this run: %s' % message)


_LINKS_WARNED: Set[str] = set()


def _error_of(path: str) -> str:
    try:
        _manifest.read_manifest(path)
    except OpsReadyError as exc:
        return exc.message
    return 'cannot stat %s' % path


# ----------------------------------------------------------------------------------------- the index file
# The index file's reader, writer, journal and seal, and the scan of a sealed directory (``_sealed``, the seal's
# listing checks), live in catalog_index_file (imported by the first scan of a directory of ``index_min()``
# manifests or more, and by ``distrust``): a module run over a small catalog does not compile them (the payload's
# zipimport keeps no .pyc: each run compiles every file it imports).
# Tuned by tests here (monkeypatch): catalog_index_file reads them from this module.
# Records (or bytes: a share of the body's) after which the next change rewrites the whole index instead.
JOURNAL_MAX_RECORDS = 64
# The directory's timestamps advance in ticks of the kernel's coarse clock (1-10 ms): a change in the same
# tick as the stamp the seal records could leave the stamp as it was. The seal is taken only once the
# clock is a whole SEAL_TICK_NS past the directory's ctime, so every later change stamps a later ctime.
SEAL_TICK_NS = 20 * 1000 ** 2


def _file() -> Any:
    """The catalog_index_file module (imported on first use)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index_file
    return catalog_index_file


def __getattr__(name: str) -> Any:
    """The index file's names (``catalog_index.parse_index``, ``SEAL_KEY``...) as they were before the split."""
    if name.startswith('__'):
        raise AttributeError(name)
    try:
        return getattr(_file(), name)
    except AttributeError:
        raise AttributeError('module %r has no attribute %r' % (__name__, name)) from None


def _incremental(directory: str, known: _Dir, names: List[str], fd: int, dir_sig: Tuple[int, int, int, int],
                 started_ns: int, only: Optional[Tuple[Optional[str], Optional[str]]], tick_ok: bool,
                 others: Optional[List[str]] = None, temporaries: Optional[List[str]] = None) -> Optional[ScanResult]:
    """catalog_index_file._incremental: the scan of a changed directory on its index's columns."""
    return _file()._incremental(directory, known, names, fd, dir_sig, started_ns, only, tick_ok,  # type: ignore[no-any-return]
                                others, temporaries)


def _load_index(directory: str, dev: int, known: _Dir) -> bool:
    """catalog_index_file._load_index: the index file into the process cache; False (nothing loaded) when missing.

    Every scan tries this first: a directory without an index file (every small catalog) answers False from one
    ``lstat``, without importing the reader."""
    try:
        os.lstat(index_path(directory))
    except OSError:
        return False
    return _file()._load_index(directory, dev, known)  # type: ignore[no-any-return]


def _write_index(directory: str, dev: int, known: _Dir) -> bool:
    """catalog_index_file._write_index: the index of every cached entry that holds exactly."""
    return _file()._write_index(directory, dev, known)  # type: ignore[no-any-return]


def _seal_index(directory: str, known: _Dir, expected: Optional[Tuple[int, int, int, int]]) -> bool:
    """catalog_index_file._seal_index: seal the index file with the directory's signature."""
    return _file()._seal_index(directory, known, expected)  # type: ignore[no-any-return]


def _write_seal(directory: str, value: str) -> bool:
    """catalog_index_file._write_seal: ``value`` into the header's seal field, in place."""
    return _file()._write_seal(directory, value)  # type: ignore[no-any-return]


def index_path(directory: str) -> str:
    return os.path.join(directory, INDEX_NAME)


def _replace(directory: str, stem: str, entry: _manifest.Manifest, st: Optional[os.stat_result]) -> None:
    """Cache what a changed manifest says now (the next scan reuses it), and mark the index file stale."""
    known = _DIRS.get(directory)
    if known is None:
        return
    known.index_current = False
    if st is not None and st.st_ctime_ns <= time.time_ns() - SETTLE_NS and stem in known.entries:
        known.entries[stem] = ((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), entry)
    else:
        known.entries.pop(stem, None)
        _SIZE[0] -= 1


def index_lied(directory: str) -> None:
    """A manifest unchanged since its index row was made (the same file: inode, size, mtime, ctime) says something
    else than the row: the index file is wrong (a writer bug, or its owner edited it under a valid checksum), not
    the manifest. This process forgets it and scans the directory from the manifests alone (the caller's retry
    answers from them), and the file is removed (outside check mode; there its seal is withdrawn) so that no later
    run trusts it: withdrawing only the seal left every later run stopping on the same row."""
    directory = os.path.abspath(directory)
    distrust(directory)
    if not _READ_ONLY[0]:
        drop_index(directory)
    known = _DIRS.pop(directory, None)
    if known is not None:   # (drop_index forgot it already outside check mode)
        _SIZE[0] -= len(known._entries) + (len(known.columns[0]) if known.columns is not None else 0)
    # never loads the file again in this process
    _DIRS[directory] = fresh = _Dir()
    fresh.index_loaded = True
    fresh.distrusted = True


def distrust(directory: str) -> None:
    """A manifest disagreed with the index: this process scans the directory by ``stat`` from now on, and the
    file's seal is withdrawn (even in check mode: a wrong seal must not vouch for the next run either)."""
    directory = os.path.abspath(directory)
    known = _DIRS.get(directory)
    if known is not None:
        known.distrusted = True
        known.seal = None
        known.seal_listing = None
        known.seal_others = None
        known.last = {}
    _write_seal(directory, '')


def confirm(entries: Iterable[_manifest.Manifest]) -> None:
    """Prove the manifests an operation returns or acts on unchanged since the scan that produced them:
    ``stat`` each; one that changed is parsed and compared. Raises IndexStale (after ``distrust``) when one
    says something else than the catalog was answering from."""
    for entry in entries:
        directory = entry.directory
        known = _DIRS.get(directory)
        if known is None:
            continue
        hit: Optional[Known]
        if isinstance(entry, IndexedManifest):
            stem: Optional[str] = entry._stem
            hit = (entry._sig, entry)   # the signature it was built with (no lookup: rows may be columns)
        else:
            stem = os.path.basename(entry.manifest_path)[:-SUFFIX_LEN]
            if entry.scan_signature is not None:
                # parsed again for retention while its index row stayed cached: the file it was parsed from (no
                # search of 200,000 cache entries for an object that is not among them)
                hit = (entry.scan_signature, entry)
            elif known.columns is not None:
                hit = None   # no parsed manifest is cached while the rows are columns: parsed by this run's scan
            else:
                hit = known.entries.get(stem)
                if hit is None or len(hit) != 2 or hit[1] is not entry:
                    stem = next((k for k, v in known.entries.items() if len(v) == 2 and v[1] is entry), None)
                hit = known.entries.get(stem) if stem is not None else None
        if stem is None or hit is None:
            continue   # parsed by this run's own scan and not cached (just written): nothing older to trust
        held = hit[:4] if len(hit) == ROW_LEN else hit[0]
        # a stem is a listed file name (no '/'); the directory is absolute: a join without os.path.join's cost
        path = (directory + '/' + stem + SUFFIX) if directory[-1:] != '/' else directory + stem + SUFFIX
        try:
            st = os.stat(path)
            if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == held:
                continue
            fresh: Optional[_manifest.Manifest] = _manifest.read_manifest(path)
        except (OSError, OpsReadyError):
            st, fresh = None, None
        if fresh is not None and (index_fields(fresh) == entry.fields() if isinstance(entry, IndexedManifest)
                                  else fresh.data == entry.data):
            continue
        if fresh is not None:
            _replace(directory, stem, fresh, st)
        distrust(directory)
        raise IndexStale('Manifest %s changed while this run was reading the catalog: run again.' % path, path=path)


def confirm_rows(directory: str, columns: Tuple[Any, ...], rows: List[int],
                 build: Any) -> None:
    """``confirm`` of rows of a sealed scan's ``columns`` without an object per row: each manifest is ``stat``ed and
    compared with its row's signature as ``confirm`` does; the rows whose file is not that file any more are
    built (``build(rows)``) and go through ``confirm`` itself (parsed, compared, distrusted when they differ).
    What prune would delete at a year of hourly backups is ~140,000 manifests: their objects were half its run."""
    stems, inodes, sizes, mtimes, ctimes = columns[:5]
    changed = []
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        fd = -1
        changed = list(rows)   # every one goes through ``confirm`` (which says what is wrong)
    if fd >= 0:
        # by name relative to the directory (a stem is a listed name, no '/'): the kernel walks one component
        # instead of the whole path per manifest (~10 % of 140,000 stats)
        stat_of = os.stat
        try:
            for row in rows:
                try:
                    st = stat_of(stems[row] + SUFFIX, dir_fd=fd)
                except OSError:
                    changed.append(row)
                    continue
                if (st.st_ctime_ns != ctimes[row] or st.st_ino != inodes[row] or st.st_size != sizes[row]
                        or st.st_mtime_ns != mtimes[row]):
                    changed.append(row)
        finally:
            os.close(fd)
    if changed:
        confirm(build(changed))


def rows_agree(directory: str, columns: Tuple[Any, ...], rows: Iterable[int]) -> bool:
    """Whether each row's manifest, parsed from its JSON now, says exactly what the row says (a broken or missing
    manifest does not). Retention deletes only on a plan such rows give: the same plan the parsed manifests give.
    One manifest in memory at a time (a set's manifests held at once were most of a real prune's memory)."""
    stems = columns[0]
    for row in rows:
        stem = stems[row]
        try:
            entry = _manifest.read_manifest(os.path.join(directory, stem + SUFFIX))
        except OpsReadyError:
            return False
        fields = index_fields(entry)
        if fields is None or tuple(column[row] for column in columns[5:]) != _row_fields(stem, fields):
            return False
    return True


def entries_agree(entries: Iterable[_manifest.Manifest]) -> bool:
    """``rows_agree`` for manifest objects: those built from index rows are parsed and compared."""
    for entry in entries:
        if not isinstance(entry, IndexedManifest):
            continue   # parsed from its JSON by this run's scan
        try:
            parsed = _manifest.read_manifest(os.path.join(entry.directory, entry._stem + SUFFIX))
        except OpsReadyError:
            return False
        if index_fields(parsed) != entry.fields():
            return False
    return True


def drop_index(directory: str) -> None:
    """Remove the index file (it disagreed with the manifests); the next scan rewrites it."""
    path = index_path(os.path.abspath(directory))
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
    known = _DIRS.pop(os.path.abspath(directory), None)
    if known is not None:
        _SIZE[0] -= len(known.entries)
