# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog cache's run-wide switches (``session``, ``read_only``) and its file's name, apart from
catalog_index.py: a backup run enters them before its tool starts, when it may not read any catalog at all, and
catalog_index.py (compiled on every run of an AnsiballZ payload) is then loaded only once a catalog is read.
catalog_index.py reads the same counters (it imports these lists), so a block entered before it was loaded holds for
it too.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

# The index file's name (catalog_index.py: the index itself), here so that remove_leftovers' light check can look at it
# without loading the catalog code. A dot name: never a manifest, never a leftover, never copied offsite.
INDEX_NAME = '.opsready-catalog-index.json'

# depth of the open blocks (lists: catalog_index.py and catalog_index_file.py read the same objects)
_SESSION = [0]
_READ_ONLY = [0]


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Within this block, a directory unchanged since its last scan is not scanned again (one module run)."""
    _SESSION[0] += 1
    try:
        yield
    finally:
        _SESSION[0] -= 1


@contextlib.contextmanager
def read_only() -> Iterator[None]:
    """Within this block no index file is written (check mode changes nothing on disk, not even a cache)."""
    _READ_ONLY[0] += 1
    try:
        yield
    finally:
        _READ_ONLY[0] -= 1
