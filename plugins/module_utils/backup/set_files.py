# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whose is an unreadable manifest of a shared backup directory: the set a drill (or backup_info) asks about, another
set, or unknown.

A readable manifest says its set (``engine`` and ``database``), and the catalog attributes by nothing else. A broken
one (torn, edited) may still say it: the text before the tear holds its top-level ``engine`` and ``database`` when the
writer got that far (keys are written sorted, two spaces in). Otherwise only its file name is left, and a name is proof
only where names are injective (``set_names.set_name``; not in earlier builds): a name part that is also another set's
part in the directory - an old catalog's ``app_x`` of both ``app x`` and ``app_x`` - is ``unknown``, never this set's,
never another's.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
import re
import stat
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import MANIFEST_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.backup.set_names import legacy_set_name, set_name

THIS, OTHER, UNKNOWN = 'this', 'other', 'unknown'
FILES = 'files'
# <engine>-<set name part>-<kind>-<UTC stamp><extension>; a file set's archive <set name>-<UTC stamp>.tar<suffixes>
STAMP = r'\d{8}T\d{6}(?:\d{6})?Z'
DB_NAME = re.compile(r'^(?P<prefix>.+)-(?P<kind>[a-z_]+)-(?P<stamp>%s)' % STAMP)
ARCHIVE_NAME = re.compile(r'^(?P<prefix>.+)-(?P<stamp>%s)\.tar(?:\.|$)' % STAMP)
SALVAGE_LIMIT = 64 * 1024
_FIELD = re.compile(r'^  "(engine|database)": ("(?:[^"\\\n]|\\.)*")', re.M)


def salvage(path: str) -> Dict[str, str]:
    """The top-level ``engine`` and ``database`` a torn manifest still holds ({} when none: a regular file only, never
    through a link, its first 64 KiB)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        text = os.read(fd, SALVAGE_LIMIT).decode('utf-8', 'replace')
    except OSError:
        return {}
    finally:
        os.close(fd)
    found: Dict[str, str] = {}
    for key, literal in _FIELD.findall(text):
        try:
            value = json.loads(literal)
        except ValueError:
            continue
        if isinstance(value, str) and key not in found:
            found[key] = value
    return found


def name_part(path: str, engine: str) -> Optional[str]:
    """The set's part of a manifest's file name for ``engine`` (the file set's name for ``files``); None when the
    name is not one ``engine`` writes."""
    name = os.path.basename(path)
    if name.endswith(MANIFEST_SUFFIX):
        name = name[:-len(MANIFEST_SUFFIX)]
    if engine == FILES:
        match = ARCHIVE_NAME.match(name)
        return match.group('prefix') if match else None
    match = DB_NAME.match(name)
    if match is None or not match.group('prefix').startswith(engine + '-'):
        return None
    return match.group('prefix')[len(engine) + 1:]


def parts_of(engine: str, database: Optional[str]) -> Set[str]:
    """Every file-name part the set's artifacts have had (a file set's name is its part)."""
    if engine == FILES:
        return {database or ''}
    return {set_name(database), legacy_set_name(database)}


def attribute(broken: Iterable[Dict[str, Any]], engine: str, database: Optional[str],
              sets: Callable[[], Iterable[Tuple[str, Optional[str]]]]) -> List[Dict[str, Any]]:
    """Each broken manifest (``Catalog.broken``: manifest, error) with ``set``: ``this`` (of ``engine``/``database``),
    ``other`` or ``unknown``, and the ``engine``/``database`` its text still held. ``sets``: the (engine, database)
    of the directory's readable manifests, asked only when a name alone is left to go by."""
    mine = parts_of(engine, database)
    known: Optional[List[Tuple[str, Optional[str]]]] = None
    result = []
    for entry in broken:
        item = dict(entry)
        path = str(item.get('manifest') or '')
        held = salvage(path) if path else {}
        item.update(held)
        if 'database' in held and held.get('engine', engine) == engine:
            # torn between the two keys (written sorted: database, then engine): the name says the engine
            ours = 'engine' in held or name_part(path, engine) is not None
            item['set'] = THIS if ours and held['database'] == database else OTHER
        elif held.get('engine') not in (None, engine):
            item['set'] = OTHER
        else:
            part = name_part(path, held.get('engine', engine))
            if part is None or part not in mine:
                item['set'] = OTHER
            else:
                if known is None:
                    known = list(sets())
                shared = [k for k in known if k[0] == engine and k[1] != database and part in parts_of(*k)]
                item['set'] = UNKNOWN if shared else THIS
                if shared:
                    item['may_be_of'] = sorted({str(k[1]) for k in shared} | {str(database)})
        result.append(item)
    return result


def directory_sets(directory: str) -> Callable[[], List[Tuple[str, Optional[str]]]]:
    """``attribute``'s ``sets`` for a backup directory: its readable manifests' sets, read when first asked."""
    def read() -> List[Tuple[str, Optional[str]]]:
        from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
        return list(Catalog(directory, materialize=False).set_refs())
    return read
