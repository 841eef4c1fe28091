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

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog, _order
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
             max_artifacts: int = MAX_ARTIFACTS) -> Dict[str, Any]:
    """The catalog's answers per set; ``artifacts`` holds the newest ``max_artifacts`` manifests (-1: all)
    and every artifact of the only set's chain, oldest first."""
    now = now or utcnow()
    try:
        return _describe(path, engine, database, point, now, max_artifacts)
    except IndexStale:
        # a manifest it used disagreed with the index: the directory is now read by stat (and the index
        # rewritten from the manifests when the directory is writable); answer again from that
        return _describe(path, engine, database, point, now, max_artifacts)


def _set_order(key: Tuple[str, Optional[str]]) -> Tuple[str, str]:
    return (key[0], key[1] or '')


# Answer set after set from the index's rows (False: build every manifest's object first, as before; the tests
# compare both).
PER_SET = True
# Per set, answer from a sealed index's columns where possible (catalog_rows.RowView: objects for fulls, diffs and
# what is returned only; False: an object per manifest of the set; the tests compare both).
ROWS = True


def _describe_per_set(path: str, engine: Optional[str], database: Optional[str], point: Optional[datetime.datetime],
                      now: datetime.datetime, max_artifacts: int) -> Optional[Dict[str, Any]]:
    """``_describe`` holding one set's objects at a time (and the newest ``max_artifacts`` of each); None when
    that cannot give the same answer (several sets and every artifact listed: all objects are needed anyway)."""
    base = Catalog(path, engine=engine, database=database, materialize=False)
    groups = base.set_refs()
    total = sum(len(refs) for refs in groups.values())
    if len(groups) > 1 and (max_artifacts < 0 or max_artifacts >= total):
        return None
    sets = []
    newest: List[Manifest] = []
    view: Optional[Catalog] = None
    for key in sorted(groups, key=_set_order):
        view = base.set_view(groups.pop(key), rows=ROWS)
        info = _set_info(view, point, now)
        info.update(engine=key[0], database=key[1])
        sets.append(info)
        if max_artifacts > 0:
            newest.extend(view.newest(max_artifacts))
        if len(sets) < 2 and not groups:
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
        'broken_manifests': base.broken,
        'leftovers': base.leftovers(),
        'now': isoformat(now),
    }
    for name in ('newest_full', 'newest_verified_full', 'chain', 'chain_error', 'recoverable_until', 'rpo_seconds',
                 'window'):
        result[name] = single[name] if single else None
    return result


def _describe(path: str, engine: Optional[str], database: Optional[str], point: Optional[datetime.datetime],
              now: datetime.datetime, max_artifacts: int) -> Dict[str, Any]:
    if PER_SET:
        answer = _describe_per_set(path, engine, database, point, now, max_artifacts)
        if answer is not None:
            return answer
    catalog = Catalog(path, engine=engine, database=database)
    groups: Dict[Any, List[Manifest]] = {}
    for entry in catalog.entries:
        groups.setdefault((entry.engine, entry.database), []).append(entry)
    sets = []
    for (eng, db) in sorted(groups, key=lambda k: (k[0], k[1] or '')):
        info = _set_info(catalog.view(eng, db), point, now)
        info.update(engine=eng, database=db)
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
        'broken_manifests': catalog.broken,
        'leftovers': catalog.leftovers(),
        'now': isoformat(now),
    }
    for key in ('newest_full', 'newest_verified_full', 'chain', 'chain_error', 'recoverable_until', 'rpo_seconds',
                'window'):
        result[key] = single[key] if single else None
    return result
