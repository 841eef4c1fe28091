# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup set's run in its directory: the set's lock (one run of a set at a time) and the removal of the leftovers
of its interrupted runs, both before the run writes anything.

Apart from artifacts.py (which re-exports every name here) so that a file backup takes its lock and tidies its set
without compiling the database side of artifacts.py (the tool runner, the engine interface, the artifact readers): a
payload compiles every file it imports on every run, before the archive's first byte (issue 22). The catalog is
imported only when the light check (``_none_left``) cannot prove there is nothing to remove.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Dict, Iterator, List, Optional, Sequence, Union

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_session import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import MANIFEST_SUFFIX, read_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import cleanup, locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

# timeutil.stamp(): 20261129T004512123456Z, right after a set's prefix in every artifact name
SET_STAMP = re.compile(r'\d{8}T\d{6}\d*Z')


@contextlib.contextmanager
def set_lock(dest: str, prefix: str) -> Iterator[None]:
    """One run per backup set at a time (a second one fails at once instead of racing)."""
    with locks.exclusive(set_lock_path(dest, prefix),
                         'Another backup of %s is running in %s: wait for it to finish' % (prefix, dest)):
        yield


def set_lock_path(dest: str, prefix: str) -> str:
    return os.path.join(dest, '.%s.lock' % prefix)


def discard_new_dir(dest: str, prefixes: Sequence[str]) -> None:
    """A run that created ``dest`` and failed before writing anything takes its set locks (held by the caller,
    so no other run holds or waits on those files) and the directory away again: it leaves what it found,
    nothing. Anything else in ``dest`` (another run's lock or files) keeps the directory."""
    for prefix in prefixes:
        try:
            os.unlink(set_lock_path(dest, prefix))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(dest)
    except OSError:
        pass


def remove_leftovers(dest: str, prefix: Union[None, str, Sequence[str]] = None,
                     check_mode: bool = False, left: Optional[Dict[str, str]] = None,
                     keep: Sequence[str] = ()) -> List[str]:
    """Remove files of interrupted runs (no manifest), only those of the ``prefix`` set(s) when given: the ones
    removed (in check mode, that would be). One that could not be removed goes into ``left`` (path: why), never
    into the list, and does not fail the run (the backup itself is sound). ``keep``: names in ``dest`` that are
    no leftovers whatever they look like (the staging a tool of this very run is writing, under the set's lock:
    ``run_backup`` tidies while the tool runs).

    A name belongs to a set when the set's prefix is followed by the whole timestamp: ``postgresql-app-full-``
    must not take ``postgresql-app-full-full-...`` (database ``app-full``, another set, another lock), nor
    file set ``app-`` take ``app-2-20261204T...`` (set ``app-2``).
    """
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix or [])
    removed: List[str] = []
    if prefixes and _none_left(dest, prefixes, keep):
        return removed
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
    for path in Catalog(dest, materialize=False).leftovers():   # no entries: names only
        name = os.path.basename(path)
        if not _of_sets(name, prefixes) or name in keep:
            continue
        reason = None if check_mode else cleanup.remove_path(path)
        if reason is None:
            removed.append(path)
        elif left is not None:
            left[path] = reason
    return removed


def _of_sets(name: str, prefixes: Sequence[str]) -> bool:
    """Whether ``name`` is of one of the ``prefixes`` sets (all names when there are none): see remove_leftovers."""
    return not prefixes or any(name.startswith(p) and SET_STAMP.match(name, len(p)) for p in prefixes)


# The most names of a run's sets whose own manifests _none_left reads; past it the catalog (and its index) answers.
LIGHT_LEFTOVERS_MAX = 64
# A catalog index file larger than this (~160 bytes a manifest: ~6,500 manifests) sends _none_left to the catalog at
# once: see there.
LIGHT_INDEX_MAX = 1024 ** 2


def _none_left(dest: str, prefixes: Sequence[str], keep: Sequence[str] = ()) -> bool:
    """True when no file of the ``prefixes`` sets in ``dest`` can be a leftover, proved without the catalog code (a
    backup run calls this before its tool starts, and every module_utils file an AnsiballZ payload imports is
    compiled on every run): every name of those sets beside the manifests has a readable manifest of its own stem
    that names it as its artifact, so a manifest vouches for each. Anything else (a name without its manifest, a
    manifest that cannot be read or names another file, an unlistable directory, more names than
    LIGHT_LEFTOVERS_MAX): False, and ``Catalog.leftovers`` decides, as it always did. Names in ``keep`` (the staging
    the run's own tool is writing) are not looked at.

    A directory with a catalog index file past LIGHT_INDEX_MAX bytes is handed over without listing it: it holds
    thousands of manifests, so the run's sets nearly always have more than LIGHT_LEFTOVERS_MAX names, and the listing
    (0.22 s and ~40 MB at 200,000 manifests, more than the rest of db_backup's catalog work) was thrown away for the
    catalog, which answers from its index's seal without listing. Only the path is chosen on the file's size; what
    is a leftover is still the catalog's answer (a wrong guess costs time, never a file)."""
    try:
        if os.lstat(os.path.join(dest, INDEX_NAME)).st_size > LIGHT_INDEX_MAX:
            return False
    except OSError:
        pass   # (no index: a small catalog, the light path's case)
    try:
        names = os.listdir(dest)
    except OSError:
        return False
    # the sets' names found by one regular expression in C (``_of_sets`` called per name, and a set of every name,
    # were ~0.3 s and ~70 MB of db_backup's catalog work at 200,000 manifests, before the catalog did it again)
    of_sets = re.compile('(?:%s)%s' % ('|'.join(map(re.escape, prefixes)), SET_STAMP.pattern)).match
    mine = [name for name in filter(of_sets, names) if not name.endswith(MANIFEST_SUFFIX) and name not in keep]
    del names
    if len(mine) > LIGHT_LEFTOVERS_MAX:
        return False
    for name in mine:
        try:
            entry = read_manifest(os.path.join(dest, name + MANIFEST_SUFFIX))
        except (OpsReadyError, OSError, ValueError):
            return False   # (a missing manifest too)
        if entry.artifact_name != name:
            return False
    return True
