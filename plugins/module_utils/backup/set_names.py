# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file-name part of a backup set: ``<engine>-<part>-<kind>-<stamp>`` (engines/base.py ``artifact_path``).

Injective (earlier builds were not): distinct sets never share artifact names, set locks or leftovers. Earlier builds
gave ``app x`` and ``app_x``, SQLite ``/a/app.db`` and ``/b/app.db``, ``cluster`` and ``@cluster`` one part
(``legacy_set_name``): whose an artifact of such a catalog is, only its manifest's ``engine`` and ``database`` say
(backup/set_files.py).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Optional

# Longest file-name part a set name gives: with the engine, kind, time stamp, suffixes and a temporary file's
# decoration the file name stays well under the 255 bytes of ext4/xfs.
SET_NAME_MAX = 120
# The server-wide sets (engines/base.py CLUSTER, GLOBALS, ALL_DATABASES) and their fixed parts: scripts read
# postgresql-cluster-wal-* (docs/runbooks/backup.md). A database whose own name gives one of them is hashed.
RESERVED_PARTS = {'@cluster': 'cluster', '@globals': 'globals', '@all': 'all'}
_HASHED = re.compile(r'_[0-9a-f]{12}\Z')
_UNSAFE = re.compile(r'[^A-Za-z0-9_.-]+')


def _digest(database: str) -> str:
    return hashlib.sha256(database.encode('utf-8', 'surrogateescape')).hexdigest()[:12]


def legacy_set_name(database: Optional[str]) -> str:
    """The part earlier builds gave a set (not injective): only to tell whose a file of an old catalog may be."""
    safe = _UNSAFE.sub('_', os.path.basename(database or 'all')).strip('._') or 'db'
    if len(safe) > SET_NAME_MAX:
        safe = '%s_%s' % (safe[:SET_NAME_MAX - 13], _digest(database or ''))
    return safe


def set_name(database: Optional[str]) -> str:
    """The catalog's database value turned into a safe file-name part (the manifest keeps the exact value).

    A name the file-name rules keep as it is (``shop``, ``app-2``) is its own part. Any other - characters replaced,
    a directory dropped (a SQLite path), longer than ``SET_NAME_MAX``, a server-wide set's reserved part, a name that
    ends as a hashed part does - is cut and gets ``_`` and 12 hex digits of the exact name's SHA-256, so it never
    meets a kept name nor another changed one. The server-wide sets keep their fixed parts.
    """
    if database is None:
        database = '@all'
    if database in RESERVED_PARTS:
        return RESERVED_PARTS[database]
    safe = _UNSAFE.sub('_', os.path.basename(database)).strip('._') or 'db'
    if safe == database and len(safe) <= SET_NAME_MAX and safe not in RESERVED_PARTS.values() \
            and not _HASHED.search(safe):
        return safe
    return '%s_%s' % (safe[:SET_NAME_MAX - 13], _digest(database))
