# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog index file: its reader, writer, journal and seal, and the scan on its columns (``_incremental``).

Split from catalog_index (whose docstring has the design and the trust argument) so that only runs over a
directory of ``index_min()`` manifests or more compile it: catalog_index imports this module inside the functions
that need it. Constants tests tune (``SETTLE_NS``, ``JOURNAL_MAX_RECORDS``, ``SEAL_TICK_NS``), the process cache
and ``materialize`` are read from catalog_index at each use.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import array
import base64
import binascii
import bisect
import fcntl
import functools
import hashlib
import itertools
import json
import operator
import os
import stat
import sys
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index as _ci
from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as _manifest
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import (
    COLUMNS, INDEX_FORMAT, INDEX_LIMIT, INDEX_VERSION, NOTHING, PREVIOUS_VERSION, READ_VERSIONS, R_DATABASE, R_ENGINE,
    ROW_LEN, SUFFIX, SUFFIX_LEN, _STEM, IndexedManifest, ScanResult, _Dir, _broken, _error_of, _list_names, _row_fields,
    index_fields, index_path)
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_bytes
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safe_read


# ----------------------------------------------------------------------------------------- the sealed scan
# Moved from catalog_index (it calls them only once an index file is loaded, which imports this module): a run
# over a small catalog does not compile them. catalog_index still answers these names (its __getattr__).

def seal_candidates(directory: str, known: '_Dir', others: List[str], temporaries: List[str],
                    signature: Tuple[int, int, int, int]) -> Optional[List[str]]:
    """The leftover candidates a seal for directory ``signature`` records (the listing's ``others`` less the names
    the index's rows vouch for, sorted), or None when the listing must be made again each time: our temporaries in
    it (a later run may remove them), or a directory whose timestamps are coarse (``fine_stamps``)."""
    if temporaries or not fine_stamps(signature):
        return None
    result = ScanResult([], [], {} if known.columns is not None else known.entries, [], others, True, known.columns)
    return sorted(result.unvouched(directory)[0])


# A directory whose mtime or ctime is a whole multiple of this is on a filesystem whose timestamps may be that coarse
# (whole seconds: ext3, ext4 with small inodes, FAT, some NFS servers; 10 ms: exFAT): a change within that tick after
# the seal could keep the directory's stamps. The seal's listing is used only where the stamps are finer (SEAL_TICK_NS,
# twice this, covers the kernel's clock tick there); elsewhere the directory is listed every time.
COARSE_NS = 10 * 1000 ** 2


def fine_stamps(signature: Tuple[int, int, int, int]) -> bool:
    """Whether a directory signature's mtime and ctime prove timestamps finer than ``COARSE_NS``."""
    return bool(signature[2] % COARSE_NS and signature[3] % COARSE_NS)


def listing_digest(names: List[str]) -> str:
    """SHA-256 of the listing's manifest names in listing order (an unchanged directory lists in the same order)."""
    return hashlib.sha256('\0'.join(names).encode('utf-8', 'surrogateescape')).hexdigest()


def _listing_matches(names: List[str], known: _Dir) -> bool:
    """Whether the listing's manifest names are the index's. The seal records the digest of the listing it checked
    (exactly the index's names, ``_seal_index``): the same digest is the same names, one hash instead of a set of
    200,000 names (a fifth of a sealed run); a listing in another order is compared as a set."""
    if known.seal_listing is not None and len(names) == len(known.sealed_stems) \
            and listing_digest(names) == known.seal_listing:
        return True
    return _same_names(names, known.sealed_stems, known)


def _same_names(names: List[str], stems: List[str], known: Optional[_Dir] = None) -> bool:
    """Whether the listing's manifest ``names`` (any order) are exactly ``stem + SUFFIX`` for ``stems`` (unique).

    Compared as a set: sorting the listing's 200,000 names was a tenth of a sealed run, and an equal count of
    unique names all found is equality. The set of stems is kept on ``known`` while its stems are the same."""
    if len(names) != len(stems):
        return False
    held = known.stem_set if known is not None else None
    if held is None or held[0] is not stems:
        held = (stems, set(stems))
        if known is not None:
            known.stem_set = held
    # the stems of the names, cut and looked up in C
    return all(map(held[1].__contains__, map(operator.getitem, names, itertools.repeat(_STEM))))


def _sealed(directory: str, known: _Dir, names: List[str], only: Optional[Tuple[Optional[str], Optional[str]]]
            ) -> ScanResult:
    """The scan of a directory the index's seal vouches for: no ``stat`` per manifest (see ``seal_index``).

    What an operation returns, acts on or reports in detail is checked by ``confirm`` (or by
    ``IndexedManifest.data`` when read)."""
    entries: List[_manifest.Manifest] = []
    want_all = only is None or only == (None, None)
    columns = known.columns
    if columns is not None:
        # rows by position: the listing's names are the index's stems in the same order
        if only != NOTHING:
            want_engine, want_database = (None, None) if want_all else only  # type: ignore[misc]
            stems, built = columns[0], known.built
            numbers: Iterable[int] = range(len(stems))
            # the asked set's rows picked in C (a Python step per row of the directory was ~0.1 s at 200,000)
            masks = [map(operator.eq, columns[1 + position], itertools.repeat(wanted))
                     for position, wanted in ((R_ENGINE, want_engine), (R_DATABASE, want_database))
                     if wanted is not None]
            if masks:
                numbers = list(itertools.compress(numbers, masks[0] if len(masks) == 1 else map(operator.and_, *masks)))
            missing = [i for i in numbers if i not in built]
            if missing:
                picked = [list(map(column.__getitem__, missing)) for column in columns]
                built.update(zip(missing, map(_ci.materialize, itertools.repeat(directory), picked[0],
                                              zip(*picked[1:]))))
            entries = [built[i] for i in numbers]
        return ScanResult(entries, [], {}, [], [], want_all, columns)
    cached = known.entries
    if only != NOTHING:
        want_engine, want_database = (None, None) if want_all else only  # type: ignore[misc]
        names.sort()   # entries in file-name order
        for name in names:
            stem = name[:-SUFFIX_LEN]
            hit = cached[stem]
            if len(hit) == ROW_LEN:
                if want_all or ((want_engine is None or hit[R_ENGINE] == want_engine)
                                and (want_database is None or hit[R_DATABASE] == want_database)):
                    entry = _ci.materialize(directory, stem, hit)
                    cached[stem] = (hit[:4], entry)
                    entries.append(entry)
            else:
                entry = hit[1]
                if want_all or ((not want_engine or entry.engine == want_engine)
                                and (not want_database or entry.database == want_database)):
                    entries.append(entry)
    return ScanResult(entries, [], cached, [], [], want_all, None)


def _incremental(directory: str, known: _Dir, names: List[str], fd: int, dir_sig: Tuple[int, int, int, int],
                 started_ns: int, only: Optional[Tuple[Optional[str], Optional[str]]], tick_ok: bool,
                 others: Optional[List[str]] = None, temporaries: Optional[List[str]] = None) -> Optional[ScanResult]:
    """The scan of a directory that changed since its index was sealed, on the index's columns: every listed
    manifest is ``stat``ed (as ``_scan`` does: an index row is used only while its manifest is the very same file),
    only the added and changed ones are parsed, their rows (and the removed stems) appended to the index file's
    journal, and the file sealed again for this directory when the listing is exactly its rows (no broken,
    unindexable or just-written manifest) and the directory did not change during the scan. None: answer with
    ``_scan`` (many changes, a journal to fold into a new base, a manifest gone between the listing and its stat)."""
    columns = known.columns
    if columns is None:
        return None
    stems = columns[0]
    rows = len(stems)
    # the listed names no row holds, and how many rows' names are not listed, by set operations in C (each pass
    # over 200,000 names made for the purpose costs ~20 ms: one more only when manifests were removed)
    listed = set(names)
    listed.difference_update(map(operator.add, stems, itertools.repeat(SUFFIX)))
    added = list(listed)
    kept = len(names) - len(added)
    if len(added) + rows - kept > max(INCREMENTAL_MAX, rows // INCREMENTAL_MAX_SHARE):
        return None
    if kept == rows:
        present: List[bool] = []
        numbers: Any = range(rows)
    else:
        listed = set(names)
        present = list(map(listed.__contains__, map(operator.add, stems, itertools.repeat(SUFFIX))))
        numbers = list(itertools.compress(range(rows), present))
    del listed
    stat_at = functools.partial(os.stat, dir_fd=fd)
    signature = operator.attrgetter('st_ino', 'st_size', 'st_mtime_ns', 'st_ctime_ns')
    try:
        # one stat per manifest, compared in C, keeping nothing of it (200,000 stat results held were 140 MB)
        if kept == rows:
            listed_names: Iterable[str] = map(operator.add, stems, itertools.repeat(SUFFIX))
            held: Iterable[Tuple[int, ...]] = zip(*columns[1:5])
        else:
            listed_names = map(operator.add, map(stems.__getitem__, numbers), itertools.repeat(SUFFIX))
            held = zip(*(list(map(column.__getitem__, numbers)) for column in columns[1:5]))
        same = list(map(operator.eq, map(signature, map(stat_at, listed_names)), held))
    except OSError:
        return None   # removed since the listing: the full scan says what is there
    changes: Dict[str, Optional[Tuple[Any, ...]]] = {}
    if present:
        for row in itertools.compress(range(rows), map(operator.not_, present)):
            changes[stems[row]] = None
    changed = [numbers[i] for i in itertools.compress(range(len(same)), map(operator.not_, same))]
    del same, present
    settled = started_ns - _ci.SETTLE_NS
    broken: List[Dict[str, str]] = []
    extras: List[_manifest.Manifest] = []
    parsed: Dict[str, _manifest.Manifest] = {}
    indexed = {stems[row] for row in changed}
    for name in sorted([stems[row] + SUFFIX for row in changed] + added):
        stem = name[:-SUFFIX_LEN]
        path = os.path.join(directory, name)
        values: Optional[Tuple[Any, ...]] = None
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            entry = _manifest.read_manifest(path)
        except OSError:
            _broken(broken, path, _error_of(path))
        except OpsReadyError as exc:
            _broken(broken, path, exc.message)
        else:
            fields = index_fields(entry) if st.st_ctime_ns <= settled else None
            if fields is not None:
                values = (stem, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) + _row_fields(stem, fields)
                if not _fits(values):
                    values = None
            if values is None:
                extras.append(entry)   # parsed on every scan, never a row (as ``_scan`` keeps them)
            else:
                parsed[stem] = entry
        if values is not None or stem in indexed:
            changes[stem] = values
    write = not _ci._READ_ONLY[0]
    journal = known.journal
    # a long journal is folded into a new base by a run with rows to add; a file that cannot be appended to (the
    # previous format, or one that no longer holds these rows) is replaced by any run that can write the directory
    if journal is None:
        fold = write and os.access(directory, os.W_OK)
    else:
        fold = write and bool(changes) and (journal[3] >= _ci.JOURNAL_MAX_RECORDS
                                            or journal[1] > journal[0] // JOURNAL_MAX_SHARE)
    if changes:
        # into copies: a catalog this run made before (its scan result, its row numbers) keeps the columns it was made
        # on; nobody else holds them outside a session, and each old column is freed as its copy replaces it
        merged = list(columns)
        known.columns, known.sealed_stems, known.stem_set, known.built = None, [], None, {}
        del columns, stems
        if not _merge(merged, changes, copy=True):
            known.columns, known.sealed_stems = tuple(merged), merged[0]
            return None
        known.columns = tuple(merged)
        # the rows just parsed keep their JSON (a run that returns them does not parse them twice)
        order = _NameOrder(merged[0])
        known.built = {}
        preloaded = {}
        for stem, entry in parsed.items():
            row = bisect.bisect_left(order, stem + SUFFIX)
            built = _ci.materialize(directory, stem, tuple(column[row] for column in merged[1:]))
            built._data = preloaded[row] = entry.data
            known.built[row] = built
        known.sealed_stems = merged[0]
        known.stem_set = None
        _ci._SIZE[0] += len(merged[0]) - rows
        del merged
        if fold:
            # every row was proved by this scan's stat (the changed ones parsed): the index _write_index would
            # write; the rename changes the directory, so the next run seals it
            known.seal = None
            known.journal = _write_columns(directory, dir_sig[0], known.columns)
            known.index_current = known.journal is not None
        else:
            upserts = [values for values in changes.values() if values is not None]
            payload = encode_record(dir_sig[0], {name: [values[i] for values in upserts]
                                                 for i, name in enumerate(COLUMNS)},
                                    [stem for stem, values in changes.items() if values is None])
            if not write or not _append(directory, known, payload):
                known.journal = None   # the file no longer holds what this process does: never appended or sealed
                known.index_current = False
                known.seal = None
    elif fold:
        known.seal = None
        known.journal = _write_columns(directory, dir_sig[0], columns)
        known.index_current = known.journal is not None
    known.dir_sig = dir_sig
    if (write and known.journal is not None and not broken and not extras and tick_ok and not known.distrusted
            and len(known.sealed_stems) == len(names)):
        # the listing is exactly the rows, each row's manifest was stat'ed after the directory's signature was
        # taken (a tick past its ctime): if the directory is still that, the seal holds for it (``_seal_index``'s
        # argument, with this scan's listing and stat as the check)
        try:
            after = os.stat(directory)
            now = (after.st_dev, after.st_ino, after.st_mtime_ns, after.st_ctime_ns)
        except OSError:
            now = None
        if now == dir_sig:
            # the listing's other names too (``others``, from the same listing): the next run need not list
            candidates = seal_candidates(directory, known, others, temporaries or [], dir_sig) \
                if others is not None else None
            if _put_seal(directory, known, dir_sig, listing_digest(names), candidates):
                known.index_current = True
    result = _sealed(directory, known, [], only)
    result.broken = broken
    if changes:
        result.preloaded = preloaded
    if extras:
        nothing = only == NOTHING
        want_engine, want_database = (None, None) if result.complete or nothing else only  # type: ignore[misc]
        result.entries.extend(entry for entry in extras if not nothing
                              and (not want_engine or entry.engine == want_engine)
                              and (not want_database or entry.database == want_database))
        result.unsettled = extras
    return result


def _append(directory: str, known: _Dir, payload: bytes) -> bool:
    """Append a journal record of ``payload`` to the index file this process read (``known.journal``), under an
    exclusive ``flock`` of the file taken without waiting. Refused (False, nothing written) when another writer
    holds the lock, or the file is not the one read (another base, or records appended after the ones read: the
    other writer's rows win, this run's are found again by the next scan). A torn record after the ones read (a
    writer killed mid-append) is cut."""
    journal = known.journal
    if journal is None:
        return False
    end, length, chain, records, sha = journal
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(index_path(directory), flags)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st = os.fstat(fd)
        if not _ours(st) or st.st_size < end + length:
            return False
        head = os.pread(fd, 4096, 0)
        newline = head.find(b'\n')
        header = json.loads(head[:newline]) if newline > 0 else None
        if (not isinstance(header, dict) or header.get('sha256') != sha or not isinstance(header.get('sections'), list)
                or newline + 1 + sum(header['sections']) != end):
            return False   # another base
        if length and os.pread(fd, 32, end + length - 32) != chain:
            return False
        if st.st_size > end + length:
            after = os.pread(fd, st.st_size - end - length, end + length)
            if _walk(after, chain)[0]:
                return False   # another writer's record follows the ones read
        record = journal_record(chain, payload)
        if end + length + len(record) > INDEX_LIMIT:
            return False
        if st.st_size > end + length:
            os.ftruncate(fd, end + length)
        os.pwrite(fd, record, end + length)
        os.fsync(fd)
    except (OSError, ValueError, TypeError, RecursionError):
        return False
    finally:
        os.close(fd)   # (releases the lock)
    known.journal = (end, length + len(record), journal_chain(chain, payload), records + 1, sha)
    return True


def _load_index(directory: str, dev: int, known: _Dir) -> bool:
    """Put the index file's entries into the process cache; False (and nothing loaded) when it is missing,
    foreign, corrupt or for another device."""
    seal: List[Any] = []
    journal: List[Any] = []
    # the bytes are held by the list only: freed once copied and split (tens of MB at 200,000)
    loaded = _parse([_read_raw(directory) or b''], dev, seal, journal)
    if loaded is None:
        return False
    known.journal = journal[0]
    columns, dummy = loaded
    known.seal, known.seal_listing, known.seal_others = seal[0] if seal and seal[0] else (None, None, None)
    # written in manifest-name order: compared with the listing by the seal's digest or as a set
    known.sealed_stems = columns['stem']
    # kept as columns (no tuple, no object per manifest until a scan needs them: ``_Dir.entries``, ``_sealed``)
    before = len(known.entries)
    known.columns = tuple(columns[name] for name in COLUMNS)
    known.built = {}
    _ci._SIZE[0] += len(columns['stem'])
    if before:
        known._rows()   # this process parsed some already: merged at once (theirs win)
    return True


PACKED = ('ino', 'size', 'mtime', 'ctime', 'finished', 'consistent')


def _packed(column: List[int]) -> Any:
    """``column`` as an ``array`` of 64-bit integers (signed, else unsigned: inode numbers may use all 64 bits);
    the list itself when its values do not fit. Reads give the same ints."""
    for typecode in ('q', 'Q'):
        try:
            return array.array(typecode, column)
        except OverflowError:
            continue
    return column


def _read_raw(directory: str) -> Optional[bytes]:
    """The index file's bytes when it is a regular file of ours (never through a link); None otherwise."""
    path = index_path(directory)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None  # missing, a symlink (ELOOP), unreadable: no index
    try:
        st = os.fstat(fd)
        if not _ours(st):
            return None  # not a file we wrote: another user's (or a planted link) is never read
        return safe_read.read_fd(fd, path, INDEX_LIMIT, 'Catalog index')
    except OSError:
        return None
    finally:
        os.close(fd)


def _ours(st: os.stat_result) -> bool:
    return (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid in (os.geteuid(), 0)
            and not st.st_mode & 0o022 and st.st_size <= INDEX_LIMIT)


def read_index(directory: str, dev: int) -> Optional[Tuple[Dict[str, Any], List[str]]]:
    """The index file's columns and strings when it is ours, intact and of this format; None otherwise."""
    raw = _read_raw(directory)
    return None if raw is None else parse_index(raw, dev)


def seal_of(raw: bytes) -> Optional[Tuple[int, int, int, int]]:
    """The directory signature the index's seal vouches for (None: unsealed or unreadable)."""
    newline = raw.find(b'\n')
    try:
        header = json.loads(raw[:newline])
    except (ValueError, RecursionError):
        return None
    sealed = _seal_value(header) if isinstance(header, dict) else None
    return sealed[0] if sealed else None


def _hex(text: str, length: int = 64) -> bool:
    return len(text) == length and not text.strip('0123456789abcdef')


SealValue = Tuple[Tuple[int, int, int, int], str, int, str, Optional[List[str]]]


def _seal_value(header: Dict[str, Any]) -> Optional[SealValue]:
    """(directory signature, listing digest, journal length, journal chain, leftover candidates) of the index's seal
    (``_seal_index``, ``_incremental``); None: unsealed or unreadable. It vouches for the body and exactly ``length``
    bytes of journal after it, whose last record's chain digest is ``chain`` (the body's SHA-256 when there is none).
    The candidates (``seal_candidates``) are None when the seal holds none (the directory is listed)."""
    value = header.get('seal')
    parts = value.strip().split(':') if isinstance(value, str) else []
    if len(parts) not in (7, 8) or not _hex(parts[4]) or not _hex(parts[6]):
        return None
    try:
        numbers = [int(p) for p in parts[:4]]
        length = int(parts[5])
    except ValueError:
        return None
    if length < 0:
        return None
    others = _decode_names(parts[7]) if len(parts) == 8 else None
    if len(parts) == 8 and others is None:
        return None
    return (numbers[0], numbers[1], numbers[2], numbers[3]), parts[4], length, parts[6], others


def _encode_names(names: List[str]) -> str:
    """Names (no NUL in a file name) as the seal holds them: base64 (no ':', no '"') of their NUL-joined bytes."""
    return base64.urlsafe_b64encode('\0'.join(names).encode('utf-8', 'surrogateescape')).decode('ascii')


def _decode_names(text: str) -> Optional[List[str]]:
    """``_encode_names``'s names, or None unless they are sorted, unique file names of one component."""
    if not text:
        return []
    try:
        names = base64.urlsafe_b64decode(text.encode('ascii')).decode('utf-8', 'surrogateescape').split('\0')
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not all(name and '/' not in name and name not in ('.', '..') for name in names) \
            or not all(map(operator.lt, names, itertools.islice(names, 1, None))):
        return None
    return names


# The index body (format 3): binary sections in this fixed order, their byte lengths in the header's
# ``sections``. Text sections are UTF-8, values separated by NUL (a file name cannot hold one; a manifest
# string that does is never indexed: ``index_fields``); number sections are ``array`` bytes of the writer's
# machine (``machine`` in the header: byte order and item sizes; another machine's index is rebuilt).
# Nothing in the file is ever evaluated: numbers are copied into arrays, text is split, and ``members``
# (rare) is JSON of lists and strings, checked item by item. No pickle, no marshal: whoever can write the
# file can only make it refused.
#   stem            the manifest names without MANIFEST_SUFFIX, in name order
#   strings         the table the code sections point into (kind, engine, database, artifact, id, parent, origin)
#   members         JSON [[row, [path, ...]], ...] for the rows whose manifest lists member files
#   ino             'Q' (inode numbers may use all 64 bits)
#   size ... log_start  'q'; pstart, pend and log_start hold ABSENT for None
#   kind ... origin 'i' codes into ``strings``; -1 (database, artifact, id, parent, origin) for None (artifact:
#                   the stem; id: the artifact; origin: a manifest written before origins were recorded)
#   verified        'b': 0 None (never verified), 1 False, 2 True
INT_SECTIONS = ('size', 'mtime', 'ctime', 'finished', 'consistent', 'pstart', 'pend', 'log_start')
CODE_SECTIONS = ('kind', 'engine', 'database', 'artifact', 'id', 'parent', 'origin')
SECTIONS = ('stem', 'strings', 'members', 'ino') + INT_SECTIONS + CODE_SECTIONS + ('verified',)
TYPECODES = dict([('ino', 'Q')] + [(name, 'q') for name in INT_SECTIONS] + [(name, 'i') for name in CODE_SECTIONS]
                 + [('verified', 'b')])
OPTIONAL_INTS = ('pstart', 'pend', 'log_start')
OPTIONAL_CODES = ('database', 'artifact', 'id', 'parent', 'origin')
# An absent optional integer; a manifest whose position holds this very value is not indexed (``index_fields``).
ABSENT = -2 ** 63
INT_MIN, INT_MAX = -2 ** 63 + 1, 2 ** 63 - 1
VERIFIED = (None, False, True)


def _machine() -> str:
    return '%s:%s' % (sys.byteorder, ','.join('%s%d' % (code, array.array(code).itemsize) for code in 'Qqib'))


def _fits(values: Tuple[Any, ...]) -> bool:
    """Whether an index row (``COLUMNS`` order) can be written exactly (the writer skips the rare one that
    cannot: its manifest is then parsed on every scan, as an unindexable one is)."""
    stem, ino = values[0], values[1]
    if not stem or '\0' in stem or not 0 <= ino < 2 ** 64:
        return False
    for value in values[2:5] + values[11:16]:
        if value is not None and not INT_MIN <= value <= INT_MAX:
            return False
    for value in values[5:11] + values[18:19]:
        if isinstance(value, str) and ('\0' in value or not value.isascii() and not _encodes(value, 'strict')):
            return False
    return stem.isascii() or _encodes(stem, 'surrogateescape')


def _encodes(text: str, errors: str) -> bool:
    try:
        text.encode('utf-8', errors)
    except UnicodeEncodeError:
        return False   # a lone surrogate (JSON can hold one): not indexed
    return True


def encode_index(dev: int, columns: Dict[str, Any]) -> bytes:
    """The index file of ``columns`` (``COLUMNS``: the decoded form ``parse_index`` returns), unsealed."""
    return b''.join(_encode_chunks(dev, columns, {'seal': ' ' * SEAL_WIDTH})[0])


def encode_record(dev: int, columns: Dict[str, Any], drops: Iterable[str]) -> bytes:
    """A journal record's payload: the rows of ``columns`` (added or replaced) and the stems in ``drops`` (removed),
    in the index's own format (the same checks when read), ``drop`` in its header."""
    return b''.join(_encode_chunks(dev, columns, {'drop': sorted(drops)})[0])


def _encode_chunks(dev: int, columns: Dict[str, Any], extra: Dict[str, Any]) -> Tuple[List[bytes], str]:
    """The file's bytes as chunks (header line, then each section: never joined into one copy of tens of
    megabytes), and the body's SHA-256."""
    rows = len(columns['stem'])
    strings: List[str] = []
    codes: Dict[str, int] = {}

    def code(text: Optional[str]) -> int:
        if text is None:
            return -1
        number = codes.get(text)
        if number is None:
            number = codes[text] = len(strings)
            strings.append(text)
        return number
    parts: Dict[str, bytes] = {
        'stem': '\0'.join(columns['stem']).encode('utf-8', 'surrogateescape'),   # names as listdir gives them
        'members': json.dumps([[row, list(paths)] for row, paths in enumerate(columns['members']) if paths],
                              separators=(',', ':')).encode('utf-8'),
        'ino': array.array('Q', columns['ino']).tobytes(),
        'verified': array.array('b', [VERIFIED.index(v) for v in columns['verified']]).tobytes(),
    }
    for name in INT_SECTIONS:
        values = columns[name]
        if name in OPTIONAL_INTS:
            values = [ABSENT if v is None else v for v in values]
        parts[name] = array.array('q', values).tobytes()
    for name in CODE_SECTIONS:
        parts[name] = array.array('i', [code(v) for v in columns[name]]).tobytes()
    parts['strings'] = '\0'.join(strings).encode('utf-8')
    digest = hashlib.sha256()
    for name in SECTIONS:
        digest.update(parts[name])
    sha = digest.hexdigest()
    fields = {'format': INDEX_FORMAT, 'version': INDEX_VERSION, 'dev': dev, 'rows': rows,
              'strings': len(strings), 'machine': _machine(),
              'sections': [len(parts[name]) for name in SECTIONS], 'sha256': sha}
    fields.update(extra)
    header = json.dumps(fields, sort_keys=True).encode('utf-8')
    return [header + b'\n'] + [parts[name] for name in SECTIONS], sha


def _split(blob: bytes, count: int) -> Optional[List[str]]:
    """``count`` NUL-separated UTF-8 strings (None: not exactly that). Strict UTF-8 (a ValueError otherwise): the
    writer encodes the table strictly, so anything else was not written by it."""
    return _split_text(blob.decode('utf-8'), count)


def _split_text(text: str, count: int) -> Optional[List[str]]:
    if count == 0:
        return [] if not text else None
    values = text.split('\0')
    return values if len(values) == count else None


def sum_lengths(header: Dict[str, Any]) -> int:
    """The body's length a header's ``sections`` give (-1 when they are not a list of integers)."""
    lengths = header.get('sections')
    if not isinstance(lengths, list) or not all(map(_is_int, lengths)):
        return -1
    return sum(lengths)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_index(raw: bytes, dev: int, seal: Optional[List[Any]] = None) -> Optional[Tuple[Dict[str, Any], List[str]]]:
    """Columns and strings of an index file's bytes: see ``_parse``."""
    return _parse([raw], dev, seal)


def _parse(held: List[bytes], dev: int, seal: Optional[List[Any]] = None,
           journal: Optional[List[Any]] = None) -> Optional[Tuple[Dict[str, Any], List[str]]]:
    """Columns (``COLUMNS``, decoded: strings, None for absent values, 64-bit arrays for the always-integer
    ones) and the string table of an index file's bytes, with its journal's valid records applied; None when they
    are not a valid index of device ``dev`` (truncated, damaged, another format, version or machine, any count or
    code out of range). Its seal is appended to ``seal`` when given (None unless it vouches for exactly the body and
    the journal read), and (body end, journal length, chain, records, body SHA-256) to ``journal``. The bytes are
    taken out of ``held`` and freed once copied into arrays and split (the file is tens of megabytes at 200,000
    manifests: not held while the columns are decoded)."""
    got = _decode(held, dev, exact=False)
    if got is None:
        return None
    decoded, strings, header, tail, end = got
    if PREVIOUS_VERSION is not None and header['version'] == PREVIOUS_VERSION:
        # the previous release's index (the same body, no journal, a seal of another form): its rows are used like
        # any unsealed index's (every manifest stat'ed); nothing is appended to it, the next run writes format 4
        if seal is not None:
            seal.append(None)
        if journal is not None:
            journal.append(None)
        return decoded, strings
    root = bytes.fromhex(header['sha256'])
    changes, length, chain, count = _replay(tail, root, dev)
    del tail
    if changes:
        ordered = [decoded[name] for name in COLUMNS]
        if not _merge(ordered, changes):
            return None
        decoded.update(zip(COLUMNS, ordered))
    if seal is not None:
        value = _seal_value(header)
        seal.append((value[0], value[1], value[4]) if value is not None and value[2] == length
                    and value[3] == chain.hex() else None)
    if journal is not None:
        journal.append((end, length, chain, count, header['sha256']))
    return decoded, strings


def _decode(held: List[bytes], dev: int, exact: bool) -> Optional[Tuple[Dict[str, Any], List[str], Dict[str, Any],
                                                                        bytes, int]]:
    """(decoded columns, strings, header, the bytes after the body, where the body ends) of an index file or, with
    ``exact``, of a journal record (nothing after its body)."""
    raw = held.pop()
    newline = raw.find(b'\n')
    if newline < 0:
        return None
    try:
        header = json.loads(raw[:newline])
        if (not isinstance(header, dict) or header.get('format') != INDEX_FORMAT
                or header.get('version') not in (READ_VERSIONS if not exact else (INDEX_VERSION,))
                or (header['version'] != INDEX_VERSION and sum_lengths(header) != len(raw) - newline - 1)
                or header.get('dev') != dev
                or header.get('machine') != _machine()):
            return None
        rows_value, count_value, lengths = header.get('rows'), header.get('strings'), header.get('sections')
        if not isinstance(rows_value, int) or not isinstance(count_value, int) or isinstance(rows_value, bool) \
                or isinstance(count_value, bool):
            return None
        rows, count = rows_value, count_value
        if (rows < 0 or count < 0 or not isinstance(lengths, list)
                or len(lengths) != len(SECTIONS) or not all(_is_int(n) and n >= 0 for n in lengths)
                or sum(lengths) > len(raw) - newline - 1 or (exact and sum(lengths) != len(raw) - newline - 1)):
            return None   # every length is checked against the bytes there are: no count is believed alone
        end = newline + 1 + sum(lengths)
        tail = bytes(raw[end:])   # the journal (small): the body's bytes are freed below
        body = memoryview(raw)[newline + 1:end]
        if not isinstance(header.get('sha256'), str) or not _hex(header['sha256']) \
                or hashlib.sha256(body).hexdigest() != header['sha256']:
            return None
        blobs: Dict[str, Any] = {}
        at = 0
        for name, length in zip(SECTIONS, lengths):
            blobs[name] = body[at:at + length]
            at += length
        columns: Dict[str, Any] = {}
        for name, typecode in TYPECODES.items():
            values = array.array(typecode)
            if len(blobs[name]) != rows * values.itemsize:
                return None
            values.frombytes(blobs[name])
            columns[name] = values
        # decoded from the file's buffer (no copy of the bytes); each name non-empty, no '/', not a dot name
        # (never a manifest), checked on the text at once
        text = str(blobs['stem'], 'utf-8', 'surrogateescape')
        if rows and ('/' in text or '\0\0' in text or '\0.' in text or text[:1] in ('', '.') or text[-1:] == '\0'):
            return None
        stems = _split_text(text, rows)
        del text
        strings = _split(bytes(blobs['strings']), count)
        members_doc = json.loads(bytes(blobs['members']).decode('utf-8'))
    except (ValueError, RecursionError):   # RecursionError: JSON nested deeper than the parser goes
        return None
    for view in blobs.values():
        view.release()
    body.release()
    del raw, blobs, body
    if stems is None or strings is None:
        return None
    # unique: written in name order, so (nearly always) strictly increasing, which a comparison in C proves;
    # otherwise as a set
    if not all(map(operator.lt, stems, itertools.islice(stems, 1, None))) and len(set(stems)) != rows:
        return None
    highest: Dict[str, int] = {}
    for name in CODE_SECTIONS:
        codes = columns[name]
        if rows:
            highest[name] = max(codes)
            if min(codes) < (-1 if name in OPTIONAL_CODES else 0) or highest[name] >= len(strings):
                return None
    if rows and not {strings[i] for i in set(columns['kind'])}.issubset(_manifest.KINDS):
        return None
    if rows and (min(columns['verified']) < 0 or max(columns['verified']) > 2):
        return None
    members: List[Any] = [None] * rows
    if not isinstance(members_doc, list):
        return None
    for item in members_doc:
        if (not isinstance(item, list) or len(item) != 2 or not _is_int(item[0]) or not 0 <= item[0] < rows
                or members[item[0]] is not None or not isinstance(item[1], list) or not item[1]
                or not all(isinstance(p, str) for p in item[1])):
            return None
        members[item[0]] = item[1]
    # decoded by lookups in C (``map``): a table of the strings plus None at -1, a dict that turns ABSENT into None
    table: List[Optional[str]] = list(strings) + [None]
    decoded: Dict[str, Any] = {'stem': stems, 'members': members}
    for name in CODE_SECTIONS:
        if highest.get(name) == -1:
            # every value absent (-1 is the least allowed: all are -1): artifact, id, parent and origin nearly always
            decoded[name] = [None] * rows
        else:
            decoded[name] = list(map(table.__getitem__, columns[name]))
    absent = {ABSENT: None}
    for name in OPTIONAL_INTS:
        decoded[name] = list(map(absent.get, columns[name], columns[name]))
    decoded['verified'] = list(map(VERIFIED.__getitem__, columns['verified']))
    for name in PACKED:
        decoded[name] = columns[name]
    return decoded, strings, header, tail, end


# ----------------------------------------------------------------------------------------- the journal
# After the body, the index file holds a journal: records appended by runs that found manifests added, removed or
# replaced since the index was written (``_incremental``), so that such a run writes its few rows instead of every
# row. A record is MAGIC, the payload's length (8 bytes, little-endian), the payload (``encode_record``: the rows
# added or replaced, and the stems removed, in the index's own format and checks) and its chain digest:
# SHA-256(previous digest + length + payload), the first one chained from the body's SHA-256. Reading stops at the
# first record that is torn (a writer killed mid-append), out of chain or invalid: the records before it are
# applied; the seal vouches for the body and an exact journal length and chain (``_seal_value``), so a record
# appended or cut after the seal was written leaves the file unsealed. The next append cuts a torn tail
# (``_append``, under an exclusive ``flock`` of the file). A long journal is folded into a new base by the next
# run that has rows to add (``JOURNAL_MAX_RECORDS``).
JOURNAL_MAGIC = b'OPSJ'
JOURNAL_MAX_SHARE = 8
# A run that finds more changed manifests than this (or a share of the rows) rewrites the whole index.
INCREMENTAL_MAX = 2000
INCREMENTAL_MAX_SHARE = 8
# Up to this many rows inserted or removed, ``_merge`` moves them in place; past it, it rebuilds each column once.
MERGE_IN_PLACE = 16


def journal_chain(previous: bytes, payload: bytes) -> bytes:
    return hashlib.sha256(previous + len(payload).to_bytes(8, 'little') + payload).digest()


def journal_record(previous: bytes, payload: bytes) -> bytes:
    """The bytes of one record chained after ``previous``."""
    return JOURNAL_MAGIC + len(payload).to_bytes(8, 'little') + payload + journal_chain(previous, payload)


def _walk(tail: bytes, chain: bytes) -> Tuple[List[Tuple[int, bytes, bytes]], int, bytes]:
    """The records of ``tail`` in chain from ``chain``: [(offset, payload, previous digest)], the length they
    take and the last digest."""
    records = []
    at = 0
    while at + 12 <= len(tail) and tail[at:at + 4] == JOURNAL_MAGIC:
        length = int.from_bytes(tail[at + 4:at + 12], 'little')
        if length > len(tail) - at - 44:
            break
        payload = tail[at + 12:at + 12 + length]
        digest = journal_chain(chain, payload)
        if tail[at + 12 + length:at + 44 + length] != digest:
            break
        records.append((at, payload, chain))
        chain = digest
        at += 44 + length
    return records, at, chain


def journal_records(raw: bytes) -> List[Tuple[int, bytes, bytes]]:
    """The chained records of an index file's bytes: [(offset in the file, payload, previous digest)] (tests)."""
    newline = raw.find(b'\n')
    header = json.loads(raw[:newline])
    end = newline + 1 + sum(header['sections'])
    records, dummy, dummy2 = _walk(raw[end:], bytes.fromhex(header['sha256']))
    return [(end + at, payload, previous) for at, payload, previous in records]


def _replay(tail: bytes, root: bytes, dev: int) -> Tuple[Dict[str, Optional[Tuple[Any, ...]]], int, bytes, int]:
    """The changes of the journal's valid records (stem -> row in ``COLUMNS`` order, None: removed; later records
    win), the length and chain digest of those records, and their count."""
    records, length, chain = _walk(tail, root)
    changes: Dict[str, Optional[Tuple[Any, ...]]] = {}
    for number, (at, payload, previous) in enumerate(records):
        got = _decode([payload], dev, exact=True)
        drops = got[2].get('drop') if got is not None else None
        if got is None or not isinstance(drops, list) or not all(map(_valid_stem, drops)) \
                or len(set(drops)) != len(drops):
            return changes, at, previous, number
        for stem in drops:
            changes[stem] = None
        decoded = got[0]
        changes.update((values[0], values) for values in zip(*(decoded[name] for name in COLUMNS)))
    return changes, length, chain, len(records)


def _valid_stem(stem: Any) -> bool:
    return isinstance(stem, str) and bool(stem) and '/' not in stem and '\0' not in stem and stem[0] != '.'


class _NameOrder:
    """The manifest names of a stems column (rows are in manifest-name order), for ``bisect``."""

    __slots__ = ('stems',)

    def __init__(self, stems: List[str]) -> None:
        self.stems = stems

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, row: int) -> str:
        return self.stems[row] + SUFFIX  # type: ignore[no-any-return]


def _name_ordered(stems: List[str]) -> bool:
    """Whether ``stems`` are unique and in manifest-name order. Strictly increasing stems none of which starts with
    the one before are (a stem that is a prefix of a later one is one of the pair ``s`` < ``u`` when any is)."""
    if all(map(operator.lt, stems, itertools.islice(stems, 1, None))) \
            and not any(map(str.startswith, itertools.islice(stems, 1, None), stems)):
        return True
    names = [stem + SUFFIX for stem in stems]
    return all(map(operator.lt, names, itertools.islice(names, 1, None)))


def _merge(columns: List[Any], changes: Dict[str, Optional[Tuple[Any, ...]]], copy: bool = False) -> bool:
    """Apply ``changes`` (stem -> row in ``COLUMNS`` order, None: removed) to ``columns`` (``COLUMNS`` order, rows in
    manifest-name order), replacing each column of the list in turn (``copy``: by a new one, the old one left as it
    was for whoever else holds it, and freed here otherwise). False (columns untouched) when the rows are not in
    name order (not written by us)."""
    stems = columns[0]
    if not _name_ordered(stems):
        return False
    order = _NameOrder(stems)
    count = len(stems)
    removed: Set[int] = set()
    inserts: List[Tuple[int, str, Tuple[Any, ...]]] = []
    assign: Dict[int, Tuple[Any, ...]] = {}
    for stem, values in changes.items():
        name = stem + SUFFIX
        at = bisect.bisect_left(order, name)
        if at < count and stems[at] == stem:
            if values is None:
                removed.add(at)
            else:
                assign[at] = values
        elif values is not None:
            inserts.append((at, name, values))
    del stems, order
    inserts.sort(key=operator.itemgetter(0, 1))
    # a few rows inserted or removed (a run's new backups): moved in each column in C, from the last position down so
    # that the positions before it hold; more: each column rebuilt once from slices
    in_place = len(removed) + len(inserts) <= MERGE_IN_PLACE
    steps = sorted([(at, 1, '') for at in removed] + [(at, 0, name) for at, name, dummy in inserts], reverse=True)
    values_of = {name: values for dummy, name, values in inserts}
    cuts = sorted(removed.union(at for at, dummy, dummy2 in inserts))
    for position in range(len(columns)):
        column = columns[position]
        if copy and (assign or in_place):
            column = column[:]
        for at, values in assign.items():
            column[at] = values[position]
        if in_place:
            for at, kind, name in steps:
                if kind:
                    del column[at]
                else:
                    column.insert(at, values_of[name][position])
        else:
            out = column[:0]
            start = 0
            pending = 0
            for cut in cuts:
                out.extend(column[start:cut])
                while pending < len(inserts) and inserts[pending][0] == cut:
                    out.append(inserts[pending][2][position])
                    pending += 1
                start = cut + 1 if cut in removed else cut
            out.extend(column[start:])
            column = out
        columns[position] = column
    return True


def _write_index(directory: str, dev: int, known: _Dir) -> bool:
    """Write the index of every cached entry that holds exactly (best effort: a directory we cannot
    write keeps working without it)."""
    columns: Dict[str, List[Any]] = {name: [] for name in COLUMNS}
    appends = [columns[name].append for name in COLUMNS]
    entries = known.entries
    for name in sorted([stem + SUFFIX for stem in entries]):   # the listing's order (sorted names)
        stem = name[:-SUFFIX_LEN]
        hit = entries[stem]
        if len(hit) == ROW_LEN:
            values: Tuple[Any, ...] = (stem,) + hit
        else:
            signature, entry = hit
            fields = entry.fields() if isinstance(entry, IndexedManifest) else index_fields(entry)
            if fields is None:
                continue
            artifact = fields[0]
            values = (stem,) + signature + (None if artifact == stem else artifact,
                                            None if fields[1] == artifact else fields[1]) + fields[2:]
        if not _fits(values):
            continue
        for append, value in zip(appends, values):
            append(value)
    known.seal = None
    known.journal = _write_columns(directory, dev, tuple(columns[name] for name in COLUMNS))
    if known.journal is None:
        return False  # read-only backup directory (an offsite mount, another user's): the scan works without
    # written in manifest-name order
    known.sealed_stems = columns['stem']
    del columns
    if not known.distrusted:
        _seal_index(directory, known, None)
    return True


def _write_columns(directory: str, dev: int, columns: Tuple[Any, ...]) -> Optional[Tuple[int, int, bytes, int, str]]:
    """Write the index of ``columns`` (every row proved by the scan that holds them); its journal state, or None
    when it cannot be written."""
    chunks, sha = _encode_chunks(dev, dict(zip(COLUMNS, columns)), {'seal': ' ' * SEAL_WIDTH})
    try:
        atomic_write_bytes(index_path(directory), chunks, mode=0o600)
    except (OSError, OpsReadyError):
        return None
    return (sum(map(len, chunks)), 0, bytes.fromhex(sha), 0, sha)


# ----------------------------------------------------------------------------------------- the seal
# Width of the header's "seal" string, written in place (the directory does not change) once sealed.
SEAL_WIDTH = 2048   # dev:ino:mtime_ns:ctime_ns:listing SHA-256:journal length:journal chain SHA-256[:candidates]
# (format 5 files written before the candidates have 256: sealed without them, the directory listed, until rewritten)
SEAL_KEY = b'"seal": "'


def _seal_index(directory: str, known: _Dir, expected: Optional[Tuple[int, int, int, int]]) -> bool:
    """Seal the index file just written (or found current) with the directory's signature.

    Trust argument (docs/architecture.md, "The catalog index"): every name added to, removed from or renamed
    in the directory, and every manifest replaced by rename (all our writes), changes the directory's
    mtime and ctime; ctime cannot be set by a user. The seal is written only after (1) the clock has moved a
    tick past the directory's ctime, (2) a fresh listing has exactly the index's manifest names and a fresh
    ``stat`` of each is the signature the index holds (a change between the scan and the seal would hide in
    the directory stamp of our own rename), (3) the directory's signature is the same after that check.
    """
    try:
        before = os.stat(directory)
        wait = before.st_ctime_ns + _ci.SEAL_TICK_NS - _ci.time.time_ns()
        if wait > 0:
            _ci.time.sleep(wait / 1e9)
        first = os.stat(directory)
        sig = (first.st_dev, first.st_ino, first.st_mtime_ns, first.st_ctime_ns)
        if (expected is not None and sig != expected) or _ci.time.time_ns() - first.st_ctime_ns < _ci.SEAL_TICK_NS:
            return False
        names, others, temporaries, fd = _list_names(directory)
        if fd < 0 or not _same_names(names, known.sealed_stems):
            if fd >= 0:
                os.close(fd)
            return False
        try:
            entries = known.entries
            for name in names:
                hit = entries[name[:-SUFFIX_LEN]]
                held = hit[:4] if len(hit) == ROW_LEN else hit[0]
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != held:
                    return False
        finally:
            os.close(fd)
        after = os.stat(directory)
        if (after.st_dev, after.st_ino, after.st_mtime_ns, after.st_ctime_ns) != sig:
            return False
        # the listing's other names, less the ones the rows vouch for (one listing: the same the names came from)
        candidates = seal_candidates(directory, known, others, temporaries, sig)
        return _put_seal(directory, known, sig, listing_digest(names), candidates)
    except (OSError, KeyError):
        return False


def _seal_text(sig: Tuple[int, int, int, int], digest: str, journal: Tuple[int, int, bytes, int, str],
               others: Optional[List[str]] = None) -> str:
    text = '%d:%d:%d:%d:%s:%d:%s' % (sig + (digest, journal[1], journal[2].hex()))
    return text if others is None else text + ':' + _encode_names(others)


def _put_seal(directory: str, known: _Dir, sig: Tuple[int, int, int, int], digest: str,
              others: Optional[List[str]]) -> bool:
    """Seal the index file for ``sig`` with the listing's digest and, when they fit the seal's field, its leftover
    candidates (else without them: the next runs list the directory); the process's view follows what was written."""
    if known.journal is None:
        return False
    if others is not None and _write_seal(directory, _seal_text(sig, digest, known.journal, others)):
        written: Optional[List[str]] = others
    elif _write_seal(directory, _seal_text(sig, digest, known.journal)):
        written = None
    else:
        return False
    known.seal, known.seal_listing, known.seal_others = sig, digest, written
    return True


def _write_seal(directory: str, value: str) -> bool:
    """Write ``value`` (blank: unseal) into the header's seal field, in place."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(index_path(directory), flags)
    except OSError:
        return False
    try:
        if not _ours(os.fstat(fd)):
            return False
        head = os.pread(fd, 4 * SEAL_WIDTH, 0)
        newline = head.find(b'\n')
        at = head.find(SEAL_KEY, 0, newline)
        # the field's width as written (SEAL_WIDTH, or 256 in a file of an earlier release): a value never holds '"'
        width = head.find(b'"', at + len(SEAL_KEY), newline) - at - len(SEAL_KEY) if at >= 0 else -1
        if newline < 0 or at < 0 or width < 256 or len(value) > width:
            return False
        os.pwrite(fd, value.ljust(width).encode('ascii'), at + len(SEAL_KEY))
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
