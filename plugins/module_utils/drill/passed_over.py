# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The newer backups of a drilled set that the drill could not restore and passed over.

The catalog never offers an artifact whose verification failed, nor one whose manifest cannot be read: the newest
chain it gives is then an older one, and a drill restoring that older chain PASSED, naming only it. A real recovery
from the same catalog loses everything after that older chain: the drill must say the newest backup is unusable.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.backup import set_files
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import MANIFEST_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, parse_time

# <engine>-<set name>-<kind>-<UTC stamp><extension> (engines/base.py): the set's prefix and the stamp. The set name
# may hold '-' (app-2), the kind never does: the prefix is everything before the last '-<kind>-<stamp>'.
_NAME = re.compile(r'^(?P<prefix>.+)-[a-z_]+-(?P<stamp>\d{8}T\d{6}(?:\d{6})?Z)')
# a file set's archive, <set name>-<UTC stamp>.tar<suffixes> (files/archive.py): no engine, no kind
_ARCHIVE = re.compile(r'^(?P<prefix>.+)-(?P<stamp>\d{8}T\d{6}(?:\d{6})?Z)\.tar(?:\.|$)')


def _stamp(name: str, files: bool = False) -> Optional[re.Match]:  # type: ignore[type-arg]
    return (_ARCHIVE if files else _NAME).match(os.path.basename(name))


def _stamp_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text.rstrip('Z').ljust(21, '0'), '%Y%m%dT%H%M%S%f').replace(
        tzinfo=datetime.timezone.utc)


def damage_of(catalog: Any, engine: str, database: Optional[str]) -> Dict[str, Any]:
    """What a drill that picked its backup from ``catalog`` (the Catalog of ``engine``/``database``) records of the
    set for ``passed_over``: the summaries of the artifacts whose last verification failed and the directory's
    unreadable manifests, each with whose it is (``set_files.attribute``: ``passed_over`` counts this set's only,
    the drill report warns of the others)."""
    return {'failed_verification': [m.summary() for m in catalog.entries if m.verified is False],
            'broken_manifests': set_files.attribute(catalog.broken, engine, database,
                                                    set_files.directory_sets(catalog.directory))}


def passed_over(backup: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The backups of the drilled set newer than the chain the drill restored that no restore will use, newest
    first: each ``id``, ``at`` (its consistent point, or the stamp in its name) and ``why``.

    ``backup`` is the drill's record of the chain (``chain``: its artifact ids, ``recoverable_until``) with what the
    catalog read said of the set: ``failed_verification`` (manifest summaries of the artifacts whose last
    verification failed, or only their ids: a listing cut to the newest artifacts may not hold every summary, and an
    id alone is judged by the stamp in its name against the restored chain's newest) and ``broken_manifests`` (the
    directory's unreadable manifests; only those named as artifacts of this set, with a stamp after the restored
    chain's newest artifact, count)."""
    chain = [str(c) for c in backup.get('chain') or ([backup['id']] if backup.get('id') else [])]
    until_text = backup.get('recoverable_until')
    if not chain or not until_text:
        return []
    until = parse_time(str(until_text), 'recoverable_until')
    files = backup.get('kind') == 'files'   # a file set's archives are named without engine and kind
    newest = _stamp(chain[-1], files)
    last = _stamp_time(newest.group('stamp')) if newest is not None else None
    found: List[Dict[str, Any]] = []
    for entry in backup.get('failed_verification') or []:
        if isinstance(entry, str):
            entry = {'id': entry}
        if not isinstance(entry, dict) or not entry.get('id') or str(entry['id']) in chain:
            continue
        checks = (entry.get('verification') or {}).get('checks') or {}
        why = 'its verification failed: %s' % (checks.get('error') or 'no detail recorded')
        if entry.get('consistent_at') or entry.get('finished'):
            try:
                at = parse_time(str(entry.get('consistent_at') or entry.get('finished')), 'consistent_at')
            except OpsReadyError:
                continue
            if at > until:
                found.append({'id': entry.get('id'), 'at': isoformat(at), 'why': why})
            continue
        # only the id: the listing the drill read (backup_info's newest max_artifacts) no longer held its summary,
        # e.g. after more than 100 newer hourly logs; its name's stamp (its start) against the chain's newest
        name = _stamp(str(entry['id']), files)
        if name is not None and newest is not None and last is not None \
                and name.group('prefix') == newest.group('prefix'):
            at = _stamp_time(name.group('stamp'))
            if at > last:
                found.append({'id': entry['id'], 'at': isoformat(at), 'why': why})
    if newest is not None and last is not None:
        for broken in backup.get('broken_manifests') or []:
            path = str((broken or {}).get('manifest') or '')
            whose = (broken or {}).get('set')
            if not path.endswith(MANIFEST_SUFFIX) or whose in (set_files.OTHER, set_files.UNKNOWN):
                continue   # another set's, or a name that may be another's: the report warns (broken_warnings)
            name = _stamp(path[:-len(MANIFEST_SUFFIX)], files)
            # attributed (``set_files.attribute``: by its own fields, or a name no other set has): this set's, under
            # an old or a new name; a record without (written by hand, an older release): by the chain's prefix
            if name is None or (whose is None and name.group('prefix') != newest.group('prefix')):
                continue
            at = _stamp_time(name.group('stamp'))
            if at > last:
                found.append({'id': os.path.basename(path[:-len(MANIFEST_SUFFIX)]), 'at': isoformat(at),
                              'why': 'its manifest cannot be read (%s)' % (broken.get('error') or 'no detail')})
    return sorted(found, key=lambda f: f['at'], reverse=True)


def broken_warnings(backup: Dict[str, Any], skipped: List[Dict[str, Any]]) -> List[str]:
    """The drill report's warnings for the directory's unreadable manifests that did not fail the drill (``skipped``:
    ``passed_over``'s answer): another set's (its drill, backup_info and retention cannot read it either), one that
    may be this set's or another's (an old catalog's shared name), this set's older than the chain restored."""
    named = {str(s.get('id')) for s in skipped}
    found = []
    for broken in backup.get('broken_manifests') or []:
        path = str((broken or {}).get('manifest') or '')
        base = os.path.basename(path[:-len(MANIFEST_SUFFIX)] if path.endswith(MANIFEST_SUFFIX) else path)
        if not path or base in named:
            continue
        whose = broken.get('set')
        error = broken.get('error') or 'no detail'
        if whose == set_files.OTHER:
            of = (' (of %s/%s)' % (broken.get('engine', '?'), broken['database'])) if broken.get('database') else ''
            found.append('find_backup: the manifest %s of another backup set%s in this directory cannot be read (%s): '
                         'not this set\'s, so this drill does not fail on it, but that set\'s drill and retention '
                         'cannot use it; repair or remove it' % (path, of, error))
        elif whose == set_files.UNKNOWN:
            found.append('find_backup: the manifest %s cannot be read (%s) and its name is shared by the sets %s '
                         '(names written before 0.10): if it is this set\'s newest backup, this drill did not prove '
                         'it; repair or remove it' % (path, error, ', '.join(broken.get('may_be_of') or [])))
        else:
            found.append('find_backup: the manifest %s cannot be read (%s): %s; retention keeps its backup for ever, '
                         'repair or remove it' % (path, error, 'a backup of this set that the drill did not restore'
                                                  if whose else 'not named as a newer backup of this set'))
    return found
