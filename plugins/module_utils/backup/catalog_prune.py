# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune (``backup_prune``, the backup modules' retention): apart from ``catalog_jobs.py`` (describe) so that
``backup_info`` ships neither this nor ``retention.py`` (Ansible ships, and the controller parses on every run,
every module_utils file a module's imports reach). ``jobs.prune`` still names ``prune``.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import itertools
import operator
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import (
    Catalog, _order, origin_groups, overlaps, row_view)
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import (
    R_ARTIFACT, R_ID, IndexStale, confirm, confirm_rows, drop_index, entries_agree, read_only, rows_agree)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.backup import retention_spec
from ansible_collections.opsready.operations.plugins.module_utils.common import cleanup
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


# -- retention (backup_prune, the backup modules) ----------------------------------------------------------

def prune(path: str, policy: retention.Policy, engine: Optional[str] = None, database: Optional[str] = None,
          check_mode: bool = False, now: Optional[datetime.datetime] = None,
          leftover_min_age: Optional[int] = 3600, succession: bool = False,
          max_listed: Optional[int] = None) -> Dict[str, Any]:
    """Apply ``policy``; remove leftovers older than ``leftover_min_age`` seconds (None: leave them).
    ``succession`` (or the policy's ``origin_succession``): a set's origins that do not overlap in time are one
    server's history (``retention.plan``). ``max_listed``: the result's lists are cut to that many entries each
    (``list_at_most``, -1: none cut; None: not cut and no counts added, as the backup modules' retention merges them),
    and check mode proves unchanged only the manifests of the deletions it lists (``_prune_per_set``)."""
    succession = succession or policy.origin_succession
    policy.proof_cache = {}   # this run's proofs of content (``retention.prove_content``), not an earlier run's
    # Before anything is planned: an account owning a directory above could link the catalog's name to another
    # catalog of root's, whose backups this policy would then delete.
    safeio.check_parents(os.path.abspath(path), 'delete old backups from', 'path')
    listed = -1 if max_listed is None else max_listed
    with (read_only() if check_mode else contextlib.nullcontext()):
        try:
            result = _prune(path, policy, engine, database, check_mode, now, leftover_min_age, succession, listed)
        except IndexStale:
            # a manifest it would delete disagreed with the index: plan again with every manifest stat'ed
            result = _prune(path, policy, engine, database, check_mode, now, leftover_min_age, succession, listed)
    # A manifest that cannot be read keeps its backup (neither counted nor aged out, never a leftover): said, never
    # silent, or the backup stays for ever with nobody told (backup_copy and backup_info name them alike).
    result['broken_manifests'] = [dict(broken) for broken in result.pop('broken_manifests', None) or []]   # last key
    result.setdefault('warnings', []).extend(broken_warning(broken) for broken in result['broken_manifests'])
    return result if max_listed is None else list_at_most(result, max_listed)


def broken_warning(broken: Dict[str, Any]) -> str:
    """What an operator reads for a manifest retention cannot read (``Catalog.broken``)."""
    return ('Manifest %s cannot be read (%s): its backup is kept, but no retention rule counts it and none will ever '
            'delete it. Repair or restore the manifest (backup_info lists it under broken_manifests), or remove the '
            'backup if it is not wanted.' % (broken['manifest'], broken.get('error')))


# backup_prune's max_listed default, the backup modules' too (retention_spec.py says why)
DEFAULT_MAX_LISTED = retention_spec.DEFAULT_MAX_LISTED


def list_at_most(result: Dict[str, Any], max_listed: int) -> Dict[str, Any]:
    """Cut ``result``'s lists (``deleted``, ``deleted_ids``, ``reasons``, ``kept``, ``leftovers_removed``) to
    ``max_listed`` entries each (-1: every entry), after adding their exact counts and ``lists_truncated``.

    What is listed depends on the plan alone, so check mode lists what the real run then lists: the oldest deletions
    (``deleted`` is in deletion order, ``deleted_ids`` alongside, ``reasons`` of those paths), the first kept paths
    and leftovers in path order (their order in ``result`` is the code path's: the per-set plan, the whole-catalog
    one or the directory listing). Warnings, broken manifests, ``content_checked`` and ``leftovers_left`` are never
    cut: each names something an operator must act on."""
    deleted, kept, leftovers = result['deleted'], result['kept'], result['leftovers_removed']
    result['deleted_count'] = len(deleted)
    result['kept_count'] = len(kept)
    result['leftovers_removed_count'] = len(leftovers)
    cut = max_listed >= 0 and max(len(deleted), len(kept), len(leftovers)) > max_listed
    result['lists_truncated'] = cut
    if not cut:
        result['kept'] = dict(sorted(kept.items()))
        result['leftovers_removed'] = sorted(leftovers)
        return result
    listed = deleted[:max_listed]
    reasons = result['reasons']
    result['deleted'] = listed
    result['deleted_ids'] = result['deleted_ids'][:max_listed]
    result['reasons'] = {path: reasons[path] for path in listed}
    # nsmallest: the first paths without sorting ~190,000 of them
    result['kept'] = {path: kept[path] for path in heapq.nsmallest(max_listed, kept)}
    result['leftovers_removed'] = heapq.nsmallest(max_listed, leftovers)
    result['lists_note'] = (
        'deleted, deleted_ids, reasons, kept and leftovers_removed list at most %d entries each (max_listed): the '
        'oldest deletions, the first kept paths and leftovers by path. deleted_count (%d), kept_count (%d) and '
        'leftovers_removed_count (%d) count every one; max_listed: -1 lists every entry.'
        % (max_listed, len(deleted), len(kept), len(leftovers)))
    return result


def _artifact_path(entry: Manifest) -> str:
    """``entry.path`` (``os.path.join``) without its generic cost: 200,000 joins were 0.4 s of a check-mode prune."""
    name, directory = entry.artifact_name, entry.directory
    if name and name[0] != '/' and directory and directory[-1] != '/':
        return directory + '/' + name
    return entry.path


def _origin_views(base: Catalog, groups: Dict[Any, List[Any]], succession: bool, notes: List[Any],
                  arriving: Optional[str] = None) -> Iterator[Tuple[Catalog, Optional[List[Any]], Optional[str]]]:
    """The view of each set's each origin (retention never counts two servers' backups together), one at a time,
    with None and that origin; with ``succession``, a set whose origins do not overlap in time is one view of all
    its objects, with its origins' spans, oldest first, and None (planned as one timeline: rare, so no columns).
    ``notes`` gets ``retention.origin_note`` of each set of several origins. ``arriving``: the origin of the backup a
    checked run is about to write into each set (``catalog.resolve_origins``): grouped as the real run will find it."""
    for key in list(groups):
        refs = groups.pop(key)
        split = base.split_origins(refs, arriving)
        origins = sorted(split)
        if len(origins) > 1:
            spans = base.split_spans(split)
            note = retention.origin_note(key, spans, succession)
            if note is not None:
                notes.append(note)
            if succession and not overlaps(spans):
                split.clear()
                yield base.set_view(refs), spans, None
                continue
        for origin in origins:
            yield (base.set_view(split.pop(origin), rows=catalog_jobs.ROWS, origin=origin, origins=origins), None,
                   origin)


def _ids_are_stems(base: Catalog) -> bool:
    """Whether every manifest of ``base``'s scan is a row of its index columns whose artifact and id are its stem (the
    index holds None for both): the stems are unique (``catalog_index_file._decode``, ``_merge``), so are the ids."""
    scan = base._scan
    columns = scan.columns
    if columns is None or scan.seen or scan.unsettled:
        return False
    return all(all(map(operator.is_, columns[1 + position], itertools.repeat(None))) for position in (R_ID, R_ARTIFACT))


def _prune_per_set(path: str, policy: retention.Policy, engine: Optional[str], database: Optional[str],
                   now: datetime.datetime, leftover_min_age: Optional[int], real: bool = False,
                   succession: bool = False, listed: int = -1) -> Optional[Dict[str, Any]]:
    """``_prune``'s plan holding one set's objects at a time: ``retention.plan``, the dependency check and the
    result built set by set and merged in the order the whole-catalog code gives. None when that order cannot be
    reproduced (an artifact id in two sets: the whole-catalog code lets one shadow the other).

    ``real``: for a run that deletes. Never on the index file's word: every manifest of a set that loses artifacts
    is parsed again, one at a time, and must say what its row says (``rows_agree``), so the plan is the one its
    parsed manifests give; otherwise None (the whole-catalog code plans from the parsed manifests and drops the
    index). The result then has ``targets``: what ``retention.delete_artifacts`` removes, in deletion order. (The
    whole-catalog code held every parsed manifest of those sets at once: 1.5 GB at 200,000 manifests.)

    ``listed``: how many deletions the caller lists (``list_at_most``; -1 every one): see ``_prove_listed``."""
    policy.proofs = {}   # what this plan proved (an earlier attempt's plan may have proved another full)
    base = Catalog(path, engine=engine, database=database, materialize=False)
    groups = base.set_refs()
    # the leftover candidates now, then the listing's other names (200,000 at a year of hourly backups) are let go
    # before the result's ~190,000 kept paths are built
    candidates = base.leftovers() if leftover_min_age is not None else []
    base._scan.others = []
    ids: set = set()
    # every id is its row's stem (no row names its artifact or id apart, nothing parsed outside the rows): unique
    # already, so the sets on rows need no set of 200,000 ids to prove no id is in two of them
    stem_ids = _ids_are_stems(base)
    # per set: (first entry's order, kept {path: reason}, and what it would delete as columns, oldest first: finished
    # times, ids, paths, reasons, and the rows check mode may list (``_listable``; None: a set planned on objects,
    # proved in the loop); ~140,000 rows at a year of hourly backups, a tuple each was a tenth of the run)
    planned: List[Tuple[Any, Dict[str, str], List[int], List[str], List[str], List[str], Optional[List[int]]]] = []
    parents: List[Tuple[Any, str, str]] = []   # kept entries with a parent: (order, id, parent)
    log_problems: List[Tuple[Any, List[str]]] = []
    targets: Dict[str, retention.Target] = {}   # real runs: deleted id -> its files
    notes: List[Any] = []
    arriving = policy.pending_origin   # check mode of a backup run: its backup regroups the set (resolve_origins)
    for view, spans, origin in _origin_views(base, groups, succession, notes, arriving):
        # check mode's pending full is this server's: another origin's backups are planned without it
        set_policy = policy.for_origin(origin)
        rows = row_view(view)
        if rows is not None:
            view = rows
            # on the index's columns: objects for the fulls and diffs, and for what it would delete
            set_ids = view.row_ids()
            if not stem_ids:
                before = len(ids)
                ids.update(set_ids)
                if len(ids) != before + len(set_ids):
                    return None
            keep, delete = retention.plan_view(view, set_policy, now)
            first = view.first_order()
            set_paths = view.paths()
            path_of = dict(zip(set_ids, set_paths))
            doomed_mask = list(map(delete.__contains__, set_ids))
            doomed = list(itertools.compress(view.rows(), doomed_mask))
            set_doomed = list(itertools.compress(set_ids, doomed_mask))
            planned.append((first, dict(zip(map(path_of.__getitem__, keep), keep.values())),
                            view.finished_of(doomed), set_doomed, list(itertools.compress(set_paths, doomed_mask)),
                            list(map(delete.__getitem__, set_doomed)), _listable(doomed, real, listed)))
            parents.extend(item for item in view.parents() if item[1] in keep)
            log_problems.append((first, retention.log_violations_view(view, delete)))
            # check mode proves the rows it lists once the deletions are in order (_prove_listed); a real run proves
            # every row of a set it deletes from by parsing its manifest (a stat of each before that proved nothing
            # more)
            if real and delete:
                if not rows_agree(base.directory, view.columns, view.rows()):
                    return None
                targets.update(zip(set_doomed, view.targets(doomed)))
            del view, path_of, set_paths
            continue
        entries = view.entries
        if not entries:
            continue
        before = len(ids)
        ids.update(m.id for m in entries)
        if len(ids) != before + len(entries):
            return None
        if spans:
            split = origin_groups(entries, arriving)
            keep, delete = retention.plan_origins({name[2]: members for name, members in split.items()}, spans, view,
                                                  policy, now, True)
        else:
            keep, delete = retention.plan_set(entries, view, set_policy, now)
        first = _order(entries[0])
        get = view.get
        planned.append((first, {_artifact_path(get(i)): reason for i, reason in keep.items()},
                        [get(i).finished_us for i in delete], list(delete), [_artifact_path(get(i)) for i in delete],
                        list(delete.values()), None))
        parents.extend((_order(m), m.id, m.parent) for m in entries if m.parent and m.id in keep)
        # the log half of retention.dependency_violations, for this set (ids are unique: its doomed are its own)
        log_problems.append((first, retention.dependency_violations(view, [], list(delete), parents=False,
                                                                    arriving=arriving)))
        confirm([view.get(i) for i in delete])
        if real and delete:
            if not entries_agree(entries):
                return None
            targets.update((i, (i, get(i).manifest_path, get(i).artifact_name, get(i).member_paths)) for i in delete)
        del view, entries   # this set's objects go before the next set's are built
    planned.sort(key=lambda item: item[0])
    notes.sort(key=lambda note: (note[0]['engine'], note[0]['database'] or ''))
    log_problems.sort(key=lambda item: item[0])
    # every set's deletions by finish time, sets in order of their first artifact (a stable sort: as the whole-catalog
    # code orders them)
    chained = itertools.chain.from_iterable
    finished = list(chained(item[2] for item in planned))
    order = sorted(range(len(finished)), key=finished.__getitem__)
    del finished
    if not real:
        _prove_listed(base, planned, order, listed)
    deleted_ids = list(map(list(chained(item[3] for item in planned)).__getitem__, order))
    # (nearly always no kept entry names a parent: no set of every deleted id then)
    doomed_ids = set(deleted_ids) if parents else set()
    violations = ['%s needs its parent %s' % (i, parent) for dummy, i, parent in sorted(parents)
                  if parent in doomed_ids]
    violations += [problem for dummy, problems in log_problems for problem in problems]
    if violations:
        raise OpsReadyError('Retention refused: the plan would delete pieces that kept backups need (%s). '
                            'Nothing was deleted; report this as a bug.' % '; '.join(violations))
    del doomed_ids
    all_paths = list(chained(item[4] for item in planned))
    paths = list(map(all_paths.__getitem__, order))
    reasons = dict(zip(all_paths, chained(item[5] for item in planned)))
    del all_paths, order
    leftovers: List[str] = []
    cutoff = time.time() - (leftover_min_age or 0)
    for leftover in candidates:
        try:
            if os.lstat(leftover).st_mtime < cutoff:
                leftovers.append(leftover)
        except FileNotFoundError:
            continue
    kept: Dict[str, str] = {}
    for item in planned:   # merged set by set, each set's own dict emptied as it goes (~190,000 paths)
        kept.update(item[1])
        item[1].clear()
    result = {'changed': bool(paths or leftovers), 'deleted': paths, 'deleted_ids': deleted_ids, 'kept': kept,
              'reasons': reasons, 'leftovers_removed': leftovers,
              'origin_sets': [note[0] for note in notes], 'warnings': [w for note in notes for w in note[1]],
              'broken_manifests': base.broken}
    if real:
        result['targets'] = [targets.pop(i) for i in deleted_ids]
    return result


def _listable(doomed: List[int], real: bool, listed: int) -> List[int]:
    """The rows of a set's deletions (oldest first) that check mode may list: its first ``listed`` at most, since the
    listed ones are the first ``listed`` of every set's merged by finish time (a stable sort keeps each set's
    order). A real run proves by parsing (``rows_agree``): none. (Each row kept is an int the set's view would free:
    ~5 MB at 140,000.)"""
    if real:
        return []
    return doomed if listed < 0 else doomed[:listed]


def _prove_listed(base: Catalog, planned: List[Any], order: List[int], listed: int) -> None:
    """Check mode: prove unchanged (``confirm_rows``: a ``stat`` each; parsed and compared when the file changed) the
    manifests of the deletions it lists, the first ``listed`` (-1: every one) in deletion order, of the sets planned
    on index rows (a set planned on objects proved its own in the loop). Raises IndexStale as ``confirm`` does.

    Why not every deletion it counts (a ``stat`` of ~140,000 manifests was a third of a check-mode prune at a year of
    hourly backups), and why that is safe:

    * Check mode deletes nothing. What it lists (paths, ids, reasons) is proved as before, so a listed deletion is
      never shown on a row its manifest no longer says; the counts rest on the rows like the kept manifests' (never
      ``stat``ed: a kept manifest edited in place could change the plan just as much) -- the seal's documented limit
      (docs/architecture.md, "The catalog index"): a manifest rewritten in place that no answer uses in detail is
      seen by the next run that changes the directory or uses it.
    * A real run ``stat``s none of them either (see ``_prune_per_set``): before it deletes anything from a set it
      parses every manifest of that set again and requires each to say exactly what its row says (``rows_agree``),
      else the set is planned from the parsed manifests (the whole-catalog code, which drops an index that planned
      otherwise). That parse is a stronger proof than the ``stat``, made later. So no row the index holds (stale
      after an edit in place, or a lie of the file's owner under a valid checksum) can make a run delete a backup
      its manifest keeps: the newest good fulls, and every log a kept backup replays, are kept by the plan of the
      parsed manifests, whose dependency check (``retention.log_violations_view``, the parents) then runs on that
      plan. A stale or tampered index costs a wrong count in check mode at worst, never a file."""
    if listed == 0:
        return
    chained = itertools.chain.from_iterable
    # each set's rows (a set's first ``listed`` at most), -1 for the rest of its deletions, aligned with ``order``'s
    rows_of = list(chained(itertools.chain(item[6] or (), itertools.repeat(-1, len(item[3]) - len(item[6] or ())))
                           for item in planned))
    picked = order if listed < 0 else order[:listed]
    rows = [row for row in map(rows_of.__getitem__, picked) if row >= 0]
    columns = base._scan.columns
    if rows and columns is not None:   # (rows come from a scan on columns)
        directory = base.directory
        scan = base._scan
        confirm_rows(directory, columns, rows, lambda changed: scan.build_set(directory, changed))


def _prune(path: str, policy: retention.Policy, engine: Optional[str], database: Optional[str], check_mode: bool,
           now: Optional[datetime.datetime], leftover_min_age: Optional[int], succession: bool = False,
           listed: int = -1) -> Dict[str, Any]:
    if catalog_jobs.PER_SET:  # the switches describe shares (the tests flip them)
        answer = _prune_per_set(path, policy, engine, database, now or utcnow(), leftover_min_age, real=not check_mode,
                                succession=succession, listed=listed)
        if answer is not None:
            answer['content_checked'] = retention.content_checked(policy)
            if not check_mode:
                retention.delete_artifacts(os.path.abspath(path), answer.pop('targets'))
                retention.record_content_checks(policy)
                _remove_leftovers(answer)
            return answer
    catalog = Catalog(path, engine=engine, database=database)
    policy.proofs = {}
    planned = retention.plan(catalog, policy, now=now, succession=succession)
    if planned['delete'] and not check_mode:
        # Deletions are decided on the manifests themselves, never on the index file's word: the sets that
        # lose artifacts are read again from their JSON and planned again (once a day or so per set).
        sets = {(catalog.get(i).engine, catalog.get(i).database) for i in planned['delete']}
        truth = Catalog(path, engine=engine, database=database, parse_sets=sets)
        policy.proofs = {}
        replanned = retention.plan(truth, policy, now=now, succession=succession)
        if replanned['delete'] != planned['delete']:
            drop_index(path)  # the index disagreed with the manifests: it is rebuilt by the next scan
        catalog, planned = truth, replanned
    doomed = sorted(planned['delete'], key=lambda i: catalog.get(i).finished)
    violations = retention.dependency_violations(catalog, list(planned['keep']), doomed, arriving=policy.pending_origin)
    if violations:
        raise OpsReadyError('Retention refused: the plan would delete pieces that kept backups need (%s). '
                            'Nothing was deleted; report this as a bug.' % '; '.join(violations))
    # what it deletes (planned again from the parsed manifests above) or lists as a deletion is proved unchanged
    confirm([catalog.get(i) for i in (doomed if listed < 0 or not check_mode else doomed[:listed])])
    paths = [catalog.get(i).path for i in doomed]
    leftovers: List[str] = []
    cutoff = time.time() - (leftover_min_age or 0)
    for leftover in (catalog.leftovers() if leftover_min_age is not None else []):
        try:
            if os.lstat(leftover).st_mtime < cutoff:
                leftovers.append(leftover)
        except FileNotFoundError:
            continue
    result = {'changed': bool(paths or leftovers), 'deleted': paths, 'deleted_ids': doomed,
              'kept': {catalog.get(i).path: reason for i, reason in planned['keep'].items()},
              'reasons': {catalog.get(i).path: reason for i, reason in planned['delete'].items()},
              'leftovers_removed': leftovers, 'origin_sets': planned['origin_sets'],
              'warnings': list(planned['warnings']), 'content_checked': retention.content_checked(policy),
              'broken_manifests': catalog.broken}
    if check_mode:
        return result
    retention.apply(catalog, doomed)
    retention.record_content_checks(policy)
    _remove_leftovers(result)
    return result


def _remove_leftovers(result: Dict[str, Any]) -> None:
    """Remove the result's ``leftovers_removed``; one that stays leaves that list for ``leftovers_left`` and a
    warning (it was reported as removed while it stayed)."""
    left = {}
    for leftover in result['leftovers_removed']:
        reason = cleanup.remove_path(leftover)
        if reason is not None:
            left[leftover] = reason
    if left:
        result['leftovers_removed'] = [p for p in result['leftovers_removed'] if p not in left]
        result['leftovers_left'] = sorted(left)
        result.setdefault('warnings', []).extend(cleanup.leftover_warning(k, v) for k, v in sorted(left.items()))
        result['changed'] = bool(result['deleted'] or result['leftovers_removed'])
