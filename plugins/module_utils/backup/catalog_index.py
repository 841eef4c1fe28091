# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A derived, per-process index of parsed manifests: each manifest file is parsed once per process.

One module run builds several ``Catalog`` objects over the same directory (``backup_info`` one per backup
set plus one for the whole directory; ``db_backup`` one for the freshness check, one for the leftover scan,
one per engine step, one per pruned set): with thousands of manifests, parsing every JSON file again for
each was most of the run (issue 22: 21 parses of every manifest for a 20-database directory).

The index is never trusted over a manifest: every lookup ``stat``s the file, and the parsed data is reused
only when the file is the very same one (device, inode, size, mtime and ctime in nanoseconds). ctime cannot
be set by a user, and any write, rename over, chmod or ``touch -d`` changes it; a file whose ctime is
within ``SETTLE_NS`` of now is parsed every time (the "racily clean" case: a rewrite in the same clock
tick would keep all the stamps). Broken manifests are never cached.

The same ``Manifest`` object is handed to every catalog of the process that reads the unchanged file:
it stands for the file, and its only writer, ``record_verification``, rewrites the file with the data it
holds, so the object and the file stay equal (the rewrite gives the file a new ctime: the next read of
that path parses it again).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as _manifest

# A file changed less than this long ago may change again within the same timestamp tick.
SETTLE_NS = 2 * 1000 ** 3
# Manifests remembered per process; past this the index starts again (bounds memory in long-lived
# processes: tests, backup_copy walking several work directories).
MAX_ENTRIES = 1_000_000

Signature = Tuple[int, int, int, int, int]
_CACHE: Dict[str, Tuple[Signature, _manifest.Manifest]] = {}


def read_manifest(path: str) -> _manifest.Manifest:
    """``manifest.read_manifest(path)``, parsed once per process while the file stays the same file."""
    absolute = path if os.path.isabs(path) else os.path.abspath(path)
    try:
        stat = os.stat(absolute)
    except OSError:
        return _manifest.read_manifest(path)  # its own error message (missing, unreadable)
    signature = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    hit = _CACHE.get(absolute)
    if hit is not None and hit[0] == signature:
        return hit[1]
    entry = _manifest.read_manifest(absolute)
    if stat.st_ctime_ns <= time.time_ns() - SETTLE_NS:
        if len(_CACHE) >= MAX_ENTRIES:
            _CACHE.clear()
        _CACHE[absolute] = (signature, entry)
    else:
        _CACHE.pop(absolute, None)
    return entry


def manifest_paths(directory: str) -> List[str]:
    """Sorted paths of the ``*.manifest.json`` names in ``directory``, as ``sorted(glob.glob(...))`` gives
    them (names starting with a dot are skipped, like glob does), without glob's pattern matching: a
    backup directory holds an artifact next to every manifest, and glob ran per catalog."""
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries
                     if e.name.endswith(_manifest.MANIFEST_SUFFIX) and not e.name.startswith('.')]
    except OSError:
        return []  # what glob gives for a directory it cannot list (unchanged behaviour)
    return [os.path.join(directory, name) for name in sorted(names)]


def clear() -> None:
    """Forget everything (tests; a process that wants to re-read every file)."""
    _CACHE.clear()
