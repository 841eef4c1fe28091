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

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog, _order, origin_groups
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


Part = Tuple[Tuple[str, Optional[str]], str, List[str], List[Any]]


def _origin_parts(base: Catalog, origin: Optional[str], strict: bool) -> List[Part]:
    """(set, origin, the set's origins, references) of each set's each origin (only ``origin``'s when given), sets
    in order; ``MixedOrigins`` when ``strict`` (a database was asked for), there is one set, with several origins,
    and none was chosen."""
    groups = base.set_refs()
    parts: List[Part] = []
    for key in sorted(groups, key=_set_order):
        refs = groups.pop(key)
        split = base.split_origins(refs)
        origins = sorted(split)
        if strict and origin is None and len(origins) > 1 and not groups and not parts:
            base.set_view(refs).one_origin()   # the only set: names its origins and how to choose
        for name in origins:
            if origin is None or name == origin:
                parts.append((key, name, origins, split.pop(name)))
    return parts


def mixed_sets(sets: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The sets described with more than one origin (backup_info warns of each)."""
    seen: Dict[Tuple[str, Optional[str]], Dict[str, Any]] = {}
    for info in sets:
        if len(info['origins']) > 1:
            item = {'engine': info['engine'], 'database': info['database'], 'origins': info['origins']}
            seen.setdefault((info['engine'], info['database']), item)
    return list(seen.values())


def _describe_per_set(path: str, engine: Optional[str], database: Optional[str], point: Optional[datetime.datetime],
                      now: datetime.datetime, max_artifacts: int, origin: Optional[str] = None
                      ) -> Optional[Dict[str, Any]]:
    """``_describe`` holding one set's objects at a time (and the newest ``max_artifacts`` of each); None when
    that cannot give the same answer (several sets and every artifact listed: all objects are needed anyway)."""
    base = Catalog(path, engine=engine, database=database, materialize=False)
    parts = _origin_parts(base, origin, bool(database))
    total = sum(len(part[3]) for part in parts)
    if len(parts) > 1 and (max_artifacts < 0 or max_artifacts >= total):
        return None
    sets = []
    newest: List[Manifest] = []
    view: Optional[Catalog] = None
    while parts:
        key, name, origins, refs = parts.pop(0)
        view = base.set_view(refs, rows=ROWS, origin=name, origins=origins)
        info = _set_info(view, point, now)
        info.update(engine=key[0], database=key[1], origin=name, origins=origins)
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
    catalog = Catalog(path, engine=engine, database=database, origin=origin)
    if database and not origin and len(catalog.set_origins) == 1:
        catalog.one_origin()   # the only set holds several origins: which one is the caller's choice
    groups: Dict[Any, List[Manifest]] = {}
    for (eng, db, name), members in origin_groups(catalog.entries).items():
        groups[(eng, db, name)] = members
    sets = []
    for (eng, db, name) in sorted(groups, key=lambda k: (k[0], k[1] or '', k[2])):
        origins = catalog.set_origins.get((eng, db), [name])
        info = _set_info(catalog.view(eng, db, origin=name), point, now)
        info.update(engine=eng, database=db, origin=name, origins=origins)
        sets.append(info)
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
