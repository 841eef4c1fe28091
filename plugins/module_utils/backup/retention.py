# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: which artifacts a policy may delete without breaking any chain that is kept.

Rules select full-kind artifacts to keep (``keep_last``, ``keep_days``, ``keep_daily``/``weekly``/
``monthly``); diffs live and die with their full; logs are kept from the first position any kept full
or diff needs. The newest verified full and the newest usable full are always kept, whatever the rules. A full
whose artifact is damaged on disk (``artifact_damage``) or dated in the future counts for no rule.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import errno
import hashlib
import itertools
import operator
import os
import stat
from typing import Any, Callable, Collection, Dict, List, Optional, Set, Tuple, cast

# artifact_signature lives apart so that verification need not import retention and the catalog (artifact_stat.py)
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifact_stat import artifact_signature
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import (
    Catalog, OriginSpan, origin_groups, origin_spans, overlaps, row_view)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest, write_manifest
# the options' spec lives in retention_spec.py (what db_backup imports before its tool starts); re-exported here
from ansible_collections.opsready.operations.plugins.module_utils.backup.retention_spec import (  # noqa: F401  # pylint: disable=unused-import
    KEEP_OPTIONS, argument_spec, retention_options)
from ansible_collections.opsready.operations.plugins.module_utils.common.cleanup import remove_at
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.files.safe_read import UnsafeFileError
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import open_directory


# A full dated more than this after now is in the future (``_keep_backups``); hosts' clocks differ by less.
FUTURE_SLACK = datetime.timedelta(minutes=5)


class Policy:
    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> 'Policy':
        """The policy of a module's keep_* options (unset ones are ignored) and ``origin_succession``."""
        return cls(origin_succession=bool(params.get('origin_succession')),
                   **dict((name, params.get(name)) for name in KEEP_OPTIONS))

    def __init__(self, keep_last: Optional[int] = None, keep_days: Optional[float] = None,
                 keep_daily: Optional[int] = None, keep_weekly: Optional[int] = None,
                 keep_monthly: Optional[int] = None, origin_succession: bool = False) -> None:
        for name, value in (('keep_last', keep_last), ('keep_days', keep_days), ('keep_daily', keep_daily),
                            ('keep_weekly', keep_weekly), ('keep_monthly', keep_monthly)):
            if value is not None and value < 0:
                raise OpsReadyError('%s must be 0 or more, not %s.' % (name, value))
        self.keep_last = keep_last
        self.keep_days = keep_days
        self.keep_daily = keep_daily
        self.keep_weekly = keep_weekly
        self.keep_monthly = keep_monthly
        # a set's origins that do not overlap in time are one server's history (``plan_origins``)
        self.origin_succession = origin_succession
        # check mode of a run that writes a new (unverified) full before it prunes: plan as if it were there (the
        # newest usable full, one keep_last slot, the current day's, week's and month's bucket); never an option, set
        # by the module after the policy is made
        self.pending_full = False
        # ... and that new full is verified before the prune (a run that verifies: it fails before pruning
        # otherwise), so it, not the newest verified full of the catalog, is the one kept as such
        self.pending_verified = False
        # the age recipients backups are encrypted to now (set by the module: backup_prune's recipients, db_backup's);
        # a full encrypted only to other (retired) keys is then never the newest usable or verified full. None: not
        # known, every full counts
        self.recipients: Optional[List[str]] = None
        # backup_prune verify_content: the superseding full's bytes are hashed even when a passed verification or an
        # earlier hash recorded its artifact's stat and it is unchanged (bit rot keeps inode, size, mtime and ctime)
        self.verify_content = False
        # what ``prove_content`` found of each full the current plan looked at, by id ({'path', 'how', 'damage',
        # 'entry', 'hashed', 'signature'}; emptied before each plan: what the result's ``content_checked`` says), and
        # of every full this run looked at (a plan made twice, index then manifests, reads a full once)
        self.proofs: Dict[str, Dict[str, Any]] = {}
        self.proof_cache: Dict[str, Dict[str, Any]] = {}
        # the pending new full (check mode) is this server's (its ``Engine.origin``; None: every group of the set,
        # one origin's modules): in a dest two servers share, retention plans each origin apart and the new full
        # joins this server's group only; and the set is grouped by origin as the real run finds it after its backup
        # (``catalog.resolve_origins``: manifests that record no origin regroup when a new origin arrives). Whatever
        # the run's kind: a log backup brings its origin into the set too
        self.pending_origin: Optional[str] = None

    def for_origin(self, origin: Optional[str]) -> 'Policy':
        """The policy to plan the backups of ``origin`` with: without the pending full when it is another
        server's group (``pending_origin``)."""
        if not self.pending_full or self.pending_origin is None or origin == self.pending_origin:
            return self
        other = copy.copy(self)
        other.pending_full = other.pending_verified = False
        return other

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.keep_last, self.keep_days, self.keep_daily, self.keep_weekly,
                                       self.keep_monthly))


def _newest_per_bucket(fulls: List[Manifest], count: int, bucket: Callable[[datetime.datetime], Any],
                       taken: Optional[datetime.datetime] = None) -> List[Manifest]:
    """The newest full of each of the newest ``count`` buckets; ``taken``: the time of a full not among ``fulls``
    (a pending one) that holds its bucket."""
    chosen: List[Manifest] = []
    seen: Set[Any] = set() if taken is None else {bucket(taken)}
    if len(seen) >= count:
        return chosen
    for full in reversed(fulls):
        key = bucket(full.consistent_at)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(full)
        if len(seen) >= count:
            break
    return chosen


def plan(catalog: Catalog, policy: Policy, now: Optional[datetime.datetime] = None,
         succession: bool = False) -> Dict[str, Any]:
    """Returns {'keep': {id: reason}, 'delete': {id: reason}, 'origin_sets': [...], 'warnings': [...]} over every set
    in the catalog. ``succession``: a set's origins that do not overlap in time are one timeline (``plan_origins``)."""
    now = now or utcnow()
    keep: Dict[str, str] = {}
    delete: Dict[str, str] = {}
    per_set: Dict[Tuple[str, Optional[str]], Dict[str, List[Manifest]]] = {}
    # check mode of a backup run: grouped as the real run finds the set, with the run's own backup in it
    for (engine, database, origin), entries in origin_groups(catalog.entries, policy.pending_origin).items():
        per_set.setdefault((engine, database), {})[origin] = entries
    sets: List[Dict[str, Any]] = []
    notes: List[List[str]] = []
    for key, groups in per_set.items():   # the order of origin_groups: kept/delete as before origins were planned
        spans = origin_spans({name: [m.consistent_us for m in group] for name, group in groups.items()})
        k, d = plan_origins(groups, spans, catalog, policy, now, succession)
        keep.update(k)
        delete.update(d)
        note = origin_note(key, spans, succession)
        if note is not None:
            sets.append(note[0])
            notes.append(note[1])
    order = sorted(range(len(sets)), key=lambda i: (sets[i]['engine'], sets[i]['database'] or ''))
    return {'keep': keep, 'delete': delete, 'origin_sets': [sets[i] for i in order],
            'warnings': [w for i in order for w in notes[i]]}


def origin_note(key: Tuple[str, Optional[str]], spans: List[OriginSpan],
                succession: bool) -> Optional[Tuple[Dict[str, Any], List[str]]]:
    """What backup_prune reports of a set of several origins (``origin_sets``) and its warnings; None for one."""
    if len(spans) < 2:
        return None
    pairs = overlaps(spans)
    relation = 'overlapping' if pairs else 'successive'
    item = {'engine': key[0], 'database': key[1], 'origins_relation': relation,
            'origin_spans': [span.as_dict() for span in spans],
            'planned': 'one timeline' if succession and not pairs else 'per origin'}
    warnings = []
    if succession and pairs:
        # a shared directory of two live servers: the per-origin plan (each server keeps its newest good backup)
        # keeps more, never less; a failure here would stop retention of every other set of a scheduled job
        warnings.append('Backup set %s/%s: origin_succession is set but its origins overlap in time (%s): two '
                        'servers write it at once, so each origin kept its own retention (nothing of one counted '
                        'as an older backup of the other).'
                        % (key[0], key[1], '; '.join('%s and %s' % (a.text(), b.text()) for a, b in pairs)))
    return item, warnings


def plan_origins(groups: Dict[str, List[Manifest]], spans: List[OriginSpan], catalog: Catalog, policy: Policy,
                 now: datetime.datetime, succession: bool) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(keep, delete) of one set whose entries per origin are ``groups`` (``spans``: their times, oldest first).
    Per origin, unless ``succession`` and the origins do not overlap: then one timeline (``plan_succession``)."""
    if succession and len(spans) > 1 and not overlaps(spans):
        # one timeline: the pending full (check mode) is its newest when this server is its newest origin or new
        newest = spans[-1].origin
        timeline = policy.for_origin(newest if policy.pending_origin in groups else policy.pending_origin)
        return plan_succession([groups[span.origin] for span in spans], catalog, timeline, now, newest)
    keep: Dict[str, str] = {}
    delete: Dict[str, str] = {}
    # per origin: the newest good backup of every server is kept, whatever another server wrote
    for origin, entries in groups.items():
        k, d = _plan_group(entries, catalog, policy.for_origin(origin), now)
        keep.update(k)
        delete.update(d)
    return keep, delete


def plan_succession(timeline: List[List[Manifest]], catalog: Catalog, policy: Policy, now: datetime.datetime,
                    newest_origin: str = '') -> Tuple[Dict[str, str], Dict[str, str]]:
    """(keep, delete) of one set whose origins succeeded each other (``timeline``: each origin's entries, oldest
    origin first; their times do not overlap). The rules see one history: an older origin's fulls are older fulls
    (``keep_last`` counts across origins, ``keep_days`` ages them), and the newest usable (verified) full is the
    newest origin's, or its predecessor's while the newest has none. Chains stay per origin: a kept full or diff
    keeps its own origin's logs from its position; an older origin with no kept full loses its logs (they replay
    onto nothing); the newest origin's logs are kept while it has no full."""
    entries = [entry for group in timeline for entry in group]
    if policy.empty:
        return {e.id: 'no retention rule given' for e in entries}, {}
    damaged: Dict[str, str] = {}
    keep = _keep_backups(entries, catalog, policy, now, damaged)
    for position, group in enumerate(timeline):
        logs = [e for e in group if e.is_log]
        newest = position == len(timeline) - 1
        kept_fulls = any(e.is_full and e.id in keep for e in group)
        if not kept_fulls and not newest:
            continue   # an older server none of whose fulls is kept: its logs go with them
        starts = [e.log_start for e in group if e.id in keep and not e.is_log and e.log_start is not None]
        oldest_start = min(starts) if starts else None
        for log in logs:
            end = log.pos_end
            if oldest_start is None or end is None or end > oldest_start:
                keep[log.id] = 'log needed by a kept backup (or position unknown)'
        if oldest_start is None and kept_fulls:
            for log in logs:
                keep.setdefault(log.id, 'kept: no kept backup records its log position')
    delete = {}
    older = 'not selected by any rule (an older origin, succeeded by %s)' % (newest_origin or 'a newer one')
    for position, group in enumerate(timeline):
        reason = 'not selected by any rule' if position == len(timeline) - 1 else older
        for e in group:
            if e.id not in keep:
                delete[e.id] = reason
    _damaged_reasons(delete, damaged)
    return keep, delete


def plan_set(entries: List[Manifest], catalog: Catalog, policy: Policy,
             now: datetime.datetime) -> Tuple[Dict[str, str], Dict[str, str]]:
    """``plan`` for the entries of one set (sorted, as ``catalog.entries``): (keep, delete)."""
    return _plan_group(entries, catalog, policy, now)


def plan_view(view: Catalog, policy: Policy, now: datetime.datetime) -> Tuple[Dict[str, str], Dict[str, str]]:
    """``plan_set`` of one set's view; a ``RowView`` (a sealed index's columns) is planned with objects for its
    fulls and diffs only, its logs kept or deleted on their rows (the same plan, in the same order)."""
    rows = row_view(view)
    if rows is None:
        return _plan_group(view.entries, view, policy, now)
    view = rows
    ids = view.row_ids()
    if policy.empty:
        return dict.fromkeys(ids, 'no retention rule given'), {}
    entries = view.entries   # the fulls and diffs
    damaged: Dict[str, str] = {}
    keep = _keep_backups(entries, view, policy, now, damaged)
    starts = [e.log_start for e in entries if e.id in keep and not e.is_log and e.log_start is not None]
    oldest_start = min(starts) if starts else None
    log_ids, ends = view.log_ids_ends()
    reason = 'log needed by a kept backup (or position unknown)'
    if oldest_start is None or None in ends:
        for ident, end in zip(log_ids, ends):
            if oldest_start is None or end is None or end > oldest_start:
                keep[ident] = reason
    else:
        # every log has an end (as a RowView's always do): picked in C, in the same order (a Python step per log was
        # a twentieth of a check-mode prune at 200,000)
        known_ends = cast(List[int], ends)
        keep.update(dict.fromkeys(itertools.compress(log_ids, map(operator.gt, known_ends,
                                                                  itertools.repeat(oldest_start))), reason))
    if oldest_start is None and any(e.is_full and e.id in keep for e in entries):
        for ident in log_ids:
            keep.setdefault(ident, 'kept: no kept backup records its log position')
    delete = dict.fromkeys(itertools.compress(ids, map(operator.not_, map(keep.__contains__, ids))),
                           'not selected by any rule')
    _damaged_reasons(delete, damaged)
    return keep, delete


def log_violations_view(view: Catalog, delete: Collection[str]) -> List[str]:
    """``dependency_violations(view, [], delete, parents=False)`` of one set's view (a ``RowView``: on rows).
    ``delete``: the ids (a dict or set is used as it is)."""
    rows = row_view(view)
    if rows is None:
        return dependency_violations(view, [], list(delete), parents=False)
    view = rows
    doomed = delete if isinstance(delete, (dict, set, frozenset)) else set(delete)
    starts = [e.log_start for e in view.entries if e.id not in doomed and not e.is_log and e.log_start is not None]
    if not starts:
        return []
    oldest = min(starts)
    log_ids, ends = view.log_ids_ends()
    mask = list(map(doomed.__contains__, log_ids))
    doomed_ends = cast(List[int], list(itertools.compress(ends, mask)))
    if None not in doomed_ends:
        # (a RowView's logs all have an end) compared in C: nearly always none
        return ['%s is a log a kept backup replays (from position %d)' % (ident, oldest) for ident in
                itertools.compress(itertools.compress(log_ids, mask),
                                   map(operator.gt, doomed_ends, itertools.repeat(oldest)))]
    return ['%s is a log a kept backup replays (from position %d)' % (ident, oldest)
            for ident, end in itertools.compress(zip(log_ids, ends), mask)
            if end is None or end > oldest]


def _plan_group(entries: List[Manifest], catalog: Catalog, policy: Policy,
                now: datetime.datetime) -> Tuple[Dict[str, str], Dict[str, str]]:
    if policy.empty:
        return {e.id: 'no retention rule given' for e in entries}, {}
    damaged: Dict[str, str] = {}
    keep = _keep_backups(entries, catalog, policy, now, damaged)
    fulls = [e for e in entries if e.is_full]
    kept_fulls = [f for f in fulls if f.id in keep]
    # Logs: everything from the earliest position a kept full or diff still needs.
    starts = [e.log_start for e in entries if e.id in keep and not e.is_log and e.log_start is not None]
    oldest_start = min(starts) if starts else None
    for log in (e for e in entries if e.is_log):
        end = log.pos_end
        if oldest_start is None or end is None or end > oldest_start:
            keep[log.id] = 'log needed by a kept backup (or position unknown)'
    if oldest_start is None and kept_fulls:
        for log in (e for e in entries if e.is_log):
            keep.setdefault(log.id, 'kept: no kept backup records its log position')
    delete = {e.id: 'not selected by any rule' for e in entries if e.id not in keep}
    _damaged_reasons(delete, damaged)
    return keep, delete


def artifact_damage(entry: Manifest) -> Optional[str]:
    """Why the artifact on disk is not the one ``entry`` describes, on a stat (missing, not a file, another size; a
    multi-file artifact: its directory or a member); None when it looks whole. Retention counts no such full as a
    kept good backup: the newest good one would otherwise go for a backup that cannot be restored."""
    files = [(entry.path, entry.data.get('size'))]
    if entry.members:
        try:
            if not os.path.isdir(entry.path):
                return 'the artifact directory %s is missing' % entry.path
        except OSError as exc:   # (isdir swallows most errors; kept for a path it cannot take)
            return 'the artifact directory %s cannot be read (%s)' % (entry.path, exc)
        files = [(os.path.join(entry.directory, member['path']), member.get('size')) for member in entry.members]
    for path, size in files:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return '%s is missing' % path
        except OSError as exc:
            return '%s cannot be read (%s)' % (path, exc.strerror or exc)
        if not stat.S_ISREG(info.st_mode):
            return '%s is not a regular file' % path
        if isinstance(size, int) and info.st_size != size:
            return '%s has %d bytes, its manifest says %d' % (path, info.st_size, size)
    return None


def _damaged_reasons(delete: Dict[str, str], damaged: Dict[str, str]) -> None:
    """Say why a damaged full goes (``artifact_damage``) instead of 'not selected by any rule'."""
    for ident, why in damaged.items():
        if ident in delete:
            delete[ident] = ('artifact is not the one its manifest describes (%s): not restorable, not counted as a '
                             'kept backup' % why)


def _keep_backups(entries: List[Manifest], catalog: Catalog, policy: Policy,
                  now: datetime.datetime, damaged: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The fulls the rules keep and the diffs of kept fulls (``entries``: one set, oldest first; logs ignored).
    A full whose artifact is damaged on disk (``artifact_damage``) is counted by no rule; ``damaged`` gets them."""
    fulls = [e for e in entries if e.is_full]
    usable = [f for f in fulls if catalog.usable(f)]
    # A full dated after now (a clock that was ahead, then jumped back) is not "the newest": counted, it would keep
    # pushing out every real newer backup until the calendar caught up. It is kept (it may be good), counted by no
    # rule; a few minutes of skew between hosts is not the future.
    ahead = now + FUTURE_SLACK
    future = {f.id: 'dated in the future (%s, now %s: a clock ahead or set back?): kept, counted by no rule'
              % (isoformat(f.consistent_at), isoformat(now)) for f in usable if f.consistent_at > ahead}
    usable = [f for f in usable if f.id not in future]
    # Only a full a rule keeps is looked at on disk (a stat; few a set): a damaged one is taken out and the rules
    # run again, so the next older full is counted in its place.
    found: Dict[str, str] = {} if damaged is None else damaged
    sound: Set[str] = set()
    # a catalog of manifests whose artifacts are elsewhere (a destination's, read into a work directory) says how
    # its artifacts are looked at (offsite.copy: the destination's listing)
    check = getattr(catalog, 'damage_check', None) or artifact_damage
    # the bytes are proved only where they are (a destination's listing has sizes, not bytes: its own checks)
    deep = getattr(catalog, 'damage_check', None) is None
    retired = _retired(usable, policy.recipients)
    while True:
        keep = _rules_keep(entries, usable, policy, now, future, retired)
        for full in usable:
            if full.id in keep and full.id not in sound:
                why = check(full)
                if why is None:
                    sound.add(full.id)
                else:
                    found[full.id] = why
        if not any(f.id in found for f in usable):
            # The newest full that supersedes others must be sound by its bytes, not just its size: a full of the
            # right size with damaged bytes would otherwise let every older good full go.
            target = _superseding(fulls, usable, keep, found, retired) if deep else None
            why = None if target is None else prove_content(target, policy)
            if why is None:
                for ident, reason in retired.items():
                    if ident in keep:
                        keep[ident] += '; %s' % reason
                return keep
            found[target.id] = why   # type: ignore[union-attr]
        usable = [f for f in usable if f.id not in found]


def _retired(usable: List[Manifest], recipients: Optional[List[str]]) -> Dict[str, str]:
    """The newest encrypted fulls none of whose recipients is among ``recipients`` (keys retired since), down to the
    newest full a current key reads (older ones do not change which is the newest): id -> why. Empty when the
    current recipients are not known."""
    if recipients is None:
        return {}
    current = set(recipients)
    found = {}
    for full in reversed(usable):
        encryption = full.data.get('encryption')
        if not isinstance(encryption, dict) or not encryption:
            break
        keys = encryption.get('recipients') or []
        if not current.intersection(keys):
            found[full.id] = ('encrypted only to keys that are not current recipients (%s): not counted as the newest '
                              'usable or verified full' % (', '.join(sorted(keys)) or 'none recorded'))
        else:
            break
    return found


def _superseding(fulls: List[Manifest], usable: List[Manifest], keep: Dict[str, str], found: Dict[str, str],
                 retired: Dict[str, str]) -> Optional[Manifest]:
    """The newest kept usable full (readable with a current key) when the plan lets some other full go (it is then
    the one that supersedes them); None when no full goes, or none is kept."""
    if all(f.id in keep or f.id in found for f in fulls):
        return None
    kept = [f for f in usable if f.id in keep and f.id not in retired]
    return kept[-1] if kept else None


HASH_CHUNK = 1024 * 1024


def _hash_damage(entry: Manifest) -> Optional[str]:
    """Why the artifact's bytes are not the manifest's (SHA-256, streamed; each member of a multi-file one); None
    when they are."""
    if entry.members:
        files = [(os.path.join(entry.directory, m['path']), m.get('sha256')) for m in entry.members]
    else:
        files = [(entry.path, entry.data.get('sha256'))]
    for path, expected in files:
        if not isinstance(expected, str):
            continue   # nothing to check against (``prove_content`` says so); never written by this collection
        digest = hashlib.sha256()
        try:
            with safeio.open_stored(path) as handle:
                for block in iter(lambda: handle.read(HASH_CHUNK), b''):  # pylint: disable=cell-var-from-loop
                    digest.update(block)
        except safeio.UnsafeFileError as exc:
            return '%s cannot be read safely (%s)' % (path, exc.message)
        except OSError as exc:
            return '%s cannot be read (%s)' % (path, exc.strerror or exc)
        if digest.hexdigest() != expected.lower():
            return '%s has the size its manifest says but not its SHA-256 (the bytes are damaged)' % path
    return None


def prove_content(entry: Manifest, policy: Policy) -> Optional[str]:
    """Why ``entry``'s bytes are not to be trusted (None: proved). Proved without reading when a passed verification
    (``verification.artifact_stat``) or an earlier prune's hash (``content_check``) recorded the artifact's
    ``artifact_signature`` and it is unchanged (unless ``policy.verify_content``); otherwise hashed, streamed. The
    trade-off: bytes that rot on the disk under an unchanged stat are found by backup_verify or verify_content,
    not by a prune that trusts the stat. The outcome is kept in ``policy.proofs``
    (what the result's ``content_checked`` says; a real run records a good hash in the manifest)."""
    known = policy.proof_cache.get(entry.id)
    if known is not None and known['path'] == entry.path:
        policy.proofs[entry.id] = known
        return known['damage']   # type: ignore[no-any-return]
    signature = artifact_signature(entry)
    verification = entry.data.get('verification') or {}
    earlier = entry.data.get('content_check') or {}
    proof: Dict[str, Any] = {'path': entry.path, 'entry': entry, 'damage': None, 'hashed': False,
                             'signature': signature}
    trust = not policy.verify_content   # verify_content: read it whatever its stat says
    if trust and signature is not None and verification.get('ok') is True \
            and verification.get('artifact_stat') == signature:
        proof['how'] = ('not read: verified at %s, artifact unchanged since (inode, size, mtime, ctime)'
                        % verification.get('verified_at'))
    elif trust and signature is not None and earlier.get('artifact_stat') == signature:
        proof['how'] = ('not read: its SHA-256 matched at %s, artifact unchanged since (inode, size, mtime, ctime)'
                        % earlier.get('checked_at'))
    elif not isinstance(entry.data.get('sha256') if not entry.members else '', str) \
            or not all(isinstance(m.get('sha256'), str) for m in entry.members):
        proof['how'] = 'not proved: its manifest records no SHA-256 to check the bytes against (trusted on its size)'
    else:
        proof['damage'] = _hash_damage(entry)
        proof['hashed'] = True
        verdict = 'matches its manifest' if proof['damage'] is None else 'DAMAGED, ' + proof['damage']
        proof['how'] = 'hashed (SHA-256): %s' % verdict
    policy.proofs[entry.id] = policy.proof_cache[entry.id] = proof
    return proof['damage']   # type: ignore[no-any-return]


def content_checked(policy: Policy) -> Dict[str, str]:
    """The result's ``content_checked``: artifact path -> how the superseding full's bytes were proved."""
    return dict(sorted((proof['path'], proof['how']) for proof in policy.proofs.values()))


def record_content_checks(policy: Policy) -> None:
    """After a real run: record each full hashed good (and unchanged while it was read) in its manifest, so the
    next run trusts it on a stat instead of reading it again. A failure to record costs the next run a read."""
    for proof in policy.proofs.values():
        if not proof['hashed'] or proof['damage'] is not None or proof['signature'] is None:
            continue
        entry = proof['entry']
        if artifact_signature(entry) != proof['signature']:
            continue
        check = {'artifact_stat': proof['signature'], 'checked_at': isoformat(utcnow())}
        data = dict(entry.data, content_check=check)
        try:
            write_manifest(entry.path, data, manifest_path=entry.manifest_path)
        except (OSError, OpsReadyError):
            continue


def _rules_keep(entries: List[Manifest], usable: List[Manifest], policy: Policy,
                now: datetime.datetime, also: Dict[str, str], retired: Optional[Dict[str, str]] = None
                ) -> Dict[str, str]:
    """The fulls the rules keep among ``usable``, the fulls ``also`` keeps, and the diffs of kept fulls; a full of
    ``retired`` (readable only with a retired key) is never the newest verified or usable one."""
    keep: Dict[str, str] = dict(also)
    readable = [f for f in usable if f.id not in retired] if retired else usable
    verified = [f for f in readable if f.verified is True]
    pending = policy.pending_full   # the new full (check mode) is the newest usable one and holds a keep_last slot
    if verified and not (pending and policy.pending_verified):
        keep[verified[-1].id] = 'newest verified full'
    if readable and not pending:
        keep.setdefault(readable[-1].id, 'newest usable full')
    last = (policy.keep_last or 0) - (1 if pending else 0)
    if policy.keep_last and last > 0:
        for full in usable[-last:]:
            keep.setdefault(full.id, 'keep_last=%d' % policy.keep_last)
    if policy.keep_days is not None:
        horizon = now - datetime.timedelta(days=policy.keep_days)
        for full in usable:
            if full.consistent_at >= horizon:
                keep.setdefault(full.id, 'younger than keep_days=%s' % policy.keep_days)
    buckets = (
        ('keep_daily', policy.keep_daily, lambda t: t.date()),
        ('keep_weekly', policy.keep_weekly, lambda t: tuple(t.isocalendar()[:2])),
        ('keep_monthly', policy.keep_monthly, lambda t: (t.year, t.month)),
    )
    for name, count, bucket in buckets:
        if count:
            for full in _newest_per_bucket(usable, count, bucket, now if pending else None):
                keep.setdefault(full.id, '%s=%d' % (name, count))
    for diff in (e for e in entries if e.kind == 'diff'):
        if diff.parent in keep:
            keep[diff.id] = 'differential of kept %s' % diff.parent
    return keep


def unlink_inside(directory: str, relative: str, dir_fd: Optional[int] = None) -> None:
    """Remove ``directory/relative`` without following a symlink on the way: a planted link in place of a
    subdirectory must not make root delete a file elsewhere. ``dir_fd``: a held descriptor of ``directory``."""
    parts = relative.split('/')
    if not all(part not in ('', '.', '..') for part in parts):
        raise OSError(errno.EINVAL, 'not a plain relative path', relative)
    fd = os.dup(dir_fd) if dir_fd is not None else os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = below
        os.unlink(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


def apply(catalog: Catalog, deletions: List[str]) -> List[str]:
    """Delete the planned artifacts: manifest first (the artifact is then an untrusted leftover), then data."""
    targets = []
    for artifact_id in deletions:
        entry = catalog.get(artifact_id)
        targets.append((artifact_id, entry.manifest_path, entry.artifact_name, entry.member_paths))
    return delete_artifacts(catalog.directory, targets)


# (artifact id, manifest path, artifact name, member paths relative to the directory)
Target = Tuple[str, str, Any, List[str]]


def delete_artifacts(directory: str, targets: List[Target]) -> List[str]:
    """``apply`` of targets named by their files (a set-by-set plan keeps no manifest objects): the paths deleted."""
    removed = []
    # The catalog directory is opened once, component by component without following a link another account could
    # have planted, and every removal goes relative to it: an account owning a directory above the catalog could
    # otherwise swap it for a link to a directory of root's, and root would delete files and whole trees of the
    # doomed artifacts' names there.
    try:
        dir_fd = open_directory(directory)
    except UnsafeFileError:
        raise
    except OSError as exc:
        raise OpsReadyError('Cannot open the backup directory %s: %s. Nothing was deleted.'
                            % (directory, exc.strerror or exc), path=directory)
    try:
        for artifact_id, manifest_path, name, members in targets:
            if not isinstance(name, str) or name in ('', '.', '..') or '/' in name or '\0' in name:
                # never reached through a checked manifest (manifest.check_names); an index row is not one
                raise OpsReadyError('Backup %s names %r, which is not a file in %s: nothing of it was deleted.'
                                    % (artifact_id, name, directory))
            path = os.path.join(directory, name)
            if os.path.dirname(os.path.abspath(manifest_path)) == os.path.abspath(directory):
                _remove_entry(dir_fd, os.path.basename(manifest_path))
            else:   # named elsewhere (another spelling of the directory): the name itself, never followed
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(manifest_path)
            _remove_entry(dir_fd, name)   # a tree (a base backup directory) too; a link as a link
            for member in members:
                try:
                    unlink_inside(directory, member, dir_fd)
                except OSError:
                    pass
            removed.append(path)
        if removed:
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return removed


def _remove_entry(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        remove_at(dir_fd, name)


def dependency_violations(catalog: Catalog, keep: List[str], delete: List[str], parents: bool = True,
                          arriving: Optional[str] = None) -> List[str]:
    """Reasons the plan would break a kept chain (empty when it is safe).

    A kept diff needs its full; a kept full or diff that records ``log_start`` needs every log of its
    set from the one holding ``log_start`` onwards; a kept log needs the logs between it and the base
    that reaches it.
    """
    doomed = set(delete)
    kept = set(keep)   # a list here made this O(kept x entries): minutes at 200,000 manifests
    problems: List[str] = []
    # a log sequence is one server's: per set and origin (``arriving``: the plan's grouping, see ``plan``)
    by_set = origin_groups(catalog.entries, arriving)
    for entry in (catalog.entries if parents else ()):   # parents=False: the log half alone (catalog_jobs, per set)
        if entry.id in doomed:
            continue
        if entry.id not in kept:
            continue
        if entry.parent and entry.parent in doomed:
            problems.append('%s needs its parent %s' % (entry.id, entry.parent))
    for entries in by_set.values():
        starts = [e.log_start for e in entries if e.id not in doomed and not e.is_log and e.log_start is not None]
        if not starts:
            continue
        oldest = min(starts)
        for log in (e for e in entries if e.is_log and e.id in doomed):
            end = log.pos_end
            if end is None or end > oldest:
                problems.append('%s is a log a kept backup replays (from position %d)' % (log.id, oldest))
    return problems
