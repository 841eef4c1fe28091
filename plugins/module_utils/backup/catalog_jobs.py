# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog-only jobs: describe (``backup_info``); prune (``backup_prune``) is in ``catalog_prune.py``.

Apart from ``jobs.py`` (backup and verify, which need the engines) because Ansible ships every module_utils
file a module's imports reach: a module importing ``jobs.py`` carries the registry and every engine's folder
(~86 files, 1.2 MB), parsed by the controller and sent to the host on every run, for a catalog read that
touches only the manifests. Keep this file's imports to the catalog (a unit test lists what ``backup_info``
ships). Retention is apart for the same reason: ``backup_info`` runs far more often than ``backup_prune`` and
need not carry (nor the controller parse) ``retention.py`` and the prune code. ``jobs.describe`` and
``jobs.prune`` still name these functions.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import (
    NEWEST_ORIGIN, Catalog, OriginSpan, OverlappingOrigins, _order, origin_groups, origin_spans, overlap_message,
    relation, successor_for, succession_warning)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import to_us
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import IndexStale, confirm
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import CatalogError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow


# -- description ------------------------------------------------------------------------------------------

def _set_info(catalog: Catalog, point: Optional[datetime.datetime], now: datetime.datetime) -> Dict[str, Any]:
    newest = catalog.latest_full()
    verified = catalog.latest_full(verified_only=True)
    count, kinds, oldest, newest_id, never, failed = catalog.set_counts()
    info: Dict[str, Any] = {
        'artifacts': count,
        'kinds': kinds,
        'oldest': oldest,
        'newest': newest_id,
        'newest_full': newest.summary() if newest else None,
        'newest_verified_full': verified.summary() if verified else None,
        'unverified': never,
        'failed_verification': failed,
        'window': catalog.window(),
    }
    until = catalog.recoverable_until()
    info['recoverable_until'] = isoformat(until) if until else None
    info['rpo_seconds'] = catalog.rpo_seconds(now)
    # what the set reports in detail is proved unchanged (catalog_index.confirm): the newest fulls and the chain
    confirm([m for m in (newest, verified) if m is not None])
    try:
        chain = catalog.chain_for(point)
        confirm(chain)
        info['chain'] = [m.id for m in chain]
        info['chain_error'] = None
    except CatalogError as exc:
        info['chain'] = []
        info['chain_error'] = exc.message
    info['log_gap'] = catalog.gap_from(newest) if newest else None
    return info


# What backup_info lists by default: at a year of hourly backups every manifest is ~200 MB of JSON.
MAX_ARTIFACTS = 100


def describe(path: str, engine: Optional[str] = None, database: Optional[str] = None,
             point: Optional[datetime.datetime] = None, now: Optional[datetime.datetime] = None,
             max_artifacts: int = MAX_ARTIFACTS, origin: Optional[str] = None) -> Dict[str, Any]:
    """The catalog's answers per set and origin (``sets``: one item per origin of each set, with ``origin`` and the
    set's ``origins``); ``artifacts`` holds the newest ``max_artifacts`` manifests (-1: all) and every artifact of
    the only set's chain, oldest first. ``origin``: only that origin's backups. A ``database`` whose set has several
    origins and none chosen: ``MixedOrigins`` (which server's chain and RPO is meant is the caller's choice); without
    a database every origin is described, and ``mixed_origins`` names the sets with more than one."""
    now = now or utcnow()
    try:
        return _describe(path, engine, database, point, now, max_artifacts, origin)
    except IndexStale:
        # a manifest it used disagreed with the index: the directory is now read by stat (and the index
        # rewritten from the manifests when the directory is writable); answer again from that
        return _describe(path, engine, database, point, now, max_artifacts, origin)


def _set_order(key: Tuple[str, Optional[str]]) -> Tuple[str, str]:
    return (key[0], key[1] or '')


# Answer set after set from the index's rows (False: build every manifest's object first, as before; the tests
# compare both).
PER_SET = True
# Per set, answer from a sealed index's columns where possible (catalog_rows.RowView: objects for fulls, diffs and
# what is returned only; False: an object per manifest of the set; the tests compare both).
ROWS = True


# (set, origin, the set's origins, references, what the set's item reports of its origins)
Part = Tuple[Tuple[str, Optional[str]], str, List[str], List[Any], Dict[str, Any]]


def origin_facts(key: Tuple[str, Optional[str]], spans: List[OriginSpan], chosen: Optional[str] = None
                 ) -> Dict[str, Any]:
    """What a set's item says of its origins: ``origins_relation`` (single, successive, overlapping),
    ``origin_spans`` (each origin's first and last consistent_at, oldest first) and, when ``origin: newest`` chose
    ``chosen`` in a succession, ``origin_succession`` (the warning naming the predecessors)."""
    facts: Dict[str, Any] = {'origins_relation': relation(spans), 'origin_spans': [s.as_dict() for s in spans]}
    if chosen is not None and len(spans) > 1:
        facts['origin_succession'] = succession_warning(key, spans, chosen)
    return facts


def choose_origins(key: Tuple[str, Optional[str]], spans: List[OriginSpan], origin: Optional[str],
                   point: Optional[datetime.datetime], strict: bool, directory: str
                   ) -> Tuple[List[str], Dict[str, Any]]:
    """The origins of one set (``spans``) that are described, and the set's ``origin_facts``. ``origin`` NEWEST: the
    succession's origin for ``point`` (``successor_for``); overlapping origins: ``OverlappingOrigins`` when ``strict``
    (the only set was asked for), else every origin (as without ``origin``)."""
    names = sorted(s.origin for s in spans)
    if origin != NEWEST_ORIGIN:
        return [n for n in names if origin is None or n == origin], origin_facts(key, spans)
    if len(spans) < 2:
        return names, origin_facts(key, spans)
    if relation(spans) == 'overlapping':
        if strict:
            raise OverlappingOrigins(overlap_message(directory, key, spans), origins=names)
        return names, origin_facts(key, spans)
    chosen = successor_for(spans, None if point is None else to_us(point)).origin
    return [chosen], origin_facts(key, spans, chosen)


def _origin_parts(base: Catalog, origin: Optional[str], strict: bool,
                  point: Optional[datetime.datetime] = None) -> List[Part]:
    """(set, origin, the set's origins, references, facts) of each set's each origin (only ``origin``'s when given;
    NEWEST: ``choose_origins``), sets in order; ``MixedOrigins`` when ``strict`` (a database was asked for), there is
    one set, with several origins, and none was chosen."""
    groups = base.set_refs()
    parts: List[Part] = []
    for key in sorted(groups, key=_set_order):
        refs = groups.pop(key)
        split = base.split_origins(refs)
        origins = sorted(split)
        if strict and origin is None and len(origins) > 1 and not groups and not parts:
            base.set_view(refs).one_origin()   # the only set: names its origins and how to choose
        spans = base.split_spans(split)
        chosen, facts = choose_origins(key, spans, origin, point, strict and not groups and not parts,
                                       base.directory)
        for name in chosen:
            parts.append((key, name, origins, split.pop(name), facts))
    return parts


def mixed_sets(sets: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The sets described with more than one origin (backup_info warns of each), with their ``origins_relation``;
    not a succession that ``origin: newest`` chose from (it warns with ``origin_succession``)."""
    seen: Dict[Tuple[str, Optional[str]], Dict[str, Any]] = {}
    for info in sets:
        if len(info['origins']) > 1 and not info.get('origin_succession'):
            item = {'engine': info['engine'], 'database': info['database'], 'origins': info['origins'],
                    'origins_relation': info.get('origins_relation')}
            seen.setdefault((info['engine'], info['database']), item)
    return list(seen.values())


def _describe_per_set(path: str, engine: Optional[str], database: Optional[str], point: Optional[datetime.datetime],
                      now: datetime.datetime, max_artifacts: int, origin: Optional[str] = None
                      ) -> Optional[Dict[str, Any]]:
    """``_describe`` holding one set's objects at a time (and the newest ``max_artifacts`` of each); None when
    that cannot give the same answer (several sets and every artifact listed: all objects are needed anyway)."""
    base = Catalog(path, engine=engine, database=database, materialize=False)
    parts = _origin_parts(base, origin, bool(database), point)
    total = sum(len(part[3]) for part in parts)
    if len(parts) > 1 and (max_artifacts < 0 or max_artifacts >= total):
        return None
    sets = []
    newest: List[Manifest] = []
    view: Optional[Catalog] = None
    while parts:
        key, name, origins, refs, facts = parts.pop(0)
        view = base.set_view(refs, rows=ROWS, origin=name, origins=origins)
        info = _set_info(view, point, now)
        info.update(engine=key[0], database=key[1], origin=name, origins=origins, **facts)
        sets.append(info)
        if max_artifacts > 0:
            newest.extend(view.newest(max_artifacts))
        if len(sets) < 2 and not parts:
            break   # the only set: its view is what is listed from
        view = None   # this set's objects go before the next set's are built
    single = sets[0] if len(sets) == 1 else None
    if view is not None and single is not None:
        listed = view.listing(max_artifacts, single['chain'] or [])
    else:
        newest.sort(key=_order)
        listed = newest[len(newest) - max_artifacts:] if max_artifacts else []
    confirm(listed)
    result: Dict[str, Any] = {
        'directory': base.directory,
        'artifacts': base.as_dicts(listed),
        'artifacts_total': total,
        'artifacts_truncated': len(listed) < total,
        'sets': sets,
        'mixed_origins': mixed_sets(sets),
        'broken_manifests': base.broken,
        'leftovers': base.leftovers(),
        'now': isoformat(now),
    }
    for name in ('newest_full', 'newest_verified_full', 'chain', 'chain_error', 'recoverable_until', 'rpo_seconds',
                 'window'):
        result[name] = single[name] if single else None
    return result


def _describe(path: str, engine: Optional[str], database: Optional[str], point: Optional[datetime.datetime],
              now: datetime.datetime, max_artifacts: int, origin: Optional[str] = None) -> Dict[str, Any]:
    if PER_SET:
        answer = _describe_per_set(path, engine, database, point, now, max_artifacts, origin)
        if answer is not None:
            return answer
    catalog = Catalog(path, engine=engine, database=database,
                      origin=None if origin == NEWEST_ORIGIN else origin)
    if database and not origin and len(catalog.set_origins) == 1:
        catalog.one_origin()   # the only set holds several origins: which one is the caller's choice
    per_set: Dict[Tuple[str, Optional[str]], Dict[str, List[Manifest]]] = {}
    for (eng, db, name), members in origin_groups(catalog.entries).items():
        per_set.setdefault((eng, db), {})[name] = members
    described: List[Manifest] = []
    sets = []
    keys = sorted(per_set, key=_set_order)
    for set_key in keys:
        groups = per_set[set_key]
        spans = origin_spans({name: [m.consistent_us for m in members] for name, members in groups.items()})
        chosen, facts = choose_origins(set_key, spans, origin, point, bool(database) and len(keys) == 1,
                                       catalog.directory)
        origins = catalog.set_origins.get(set_key, sorted(groups))
        for name in sorted(chosen):
            info = _set_info(catalog.view(set_key[0], set_key[1], origin=name), point, now)
            info.update(engine=set_key[0], database=set_key[1], origin=name, origins=origins, **facts)
            sets.append(info)
            described.extend(groups[name])
    if origin == NEWEST_ORIGIN:
        catalog.entries = sorted(described, key=_order)   # listed from the chosen origins, as the per-set code does
    single = sets[0] if len(sets) == 1 else None
    if max_artifacts < 0 or max_artifacts >= len(catalog.entries):
        listed = catalog.entries
    else:
        chain = set(single['chain'] or []) if single else set()
        newest = catalog.entries[len(catalog.entries) - max_artifacts:] if max_artifacts else []
        listed = [m for m in catalog.entries[:len(catalog.entries) - len(newest)] if m.id in chain] + newest
    confirm(listed)
    result: Dict[str, Any] = {
        'directory': catalog.directory,
        'artifacts': catalog.as_dicts(listed),
        'artifacts_total': len(catalog.entries),
        'artifacts_truncated': len(listed) < len(catalog.entries),
        'sets': sets,
        'mixed_origins': mixed_sets(sets),
        'broken_manifests': catalog.broken,
        'leftovers': catalog.leftovers(),
        'now': isoformat(now),
    }
    for key in ('newest_full', 'newest_verified_full', 'chain', 'chain_error', 'recoverable_until', 'rpo_seconds',
                'window'):
        result[key] = single[key] if single else None
    return result
