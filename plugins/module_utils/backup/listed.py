# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``deleted`` list of the modules that prune after they back up (db_backup, file_backup, redis_backup), cut to
``max_listed`` entries as backup_prune cuts its lists (``catalog_prune.list_at_most``), the count staying exact.

Apart from catalog_prune.py so that a backup run without retention ships neither it nor retention.py (Ansible ships,
and the controller parses on every run, every module_utils file a module's imports reach).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

# the first clean-up of a big catalog (a year of hourly backups is ~200,000 manifests) listed every path, tens of MB of
# module result: backup_prune's default cut (re-exported for the modules)
from ansible_collections.opsready.operations.plugins.module_utils.backup.retention_spec import DEFAULT_MAX_LISTED

__all__ = ['DEFAULT_MAX_LISTED', 'list_deleted_at_most', 'max_listed_error']


def max_listed_error(max_listed: int) -> Optional[str]:
    """What to tell an operator of a ``max_listed`` no cut can mean (None: it is one), in backup_prune's words."""
    if max_listed < -1:
        return 'max_listed must be -1 (every entry), 0 or more, not %d.' % max_listed
    return None


def list_deleted_at_most(result: Dict[str, Any], max_listed: int) -> Dict[str, Any]:
    """Cut ``result['deleted']`` (in deletion order, set after set) to its first ``max_listed`` entries (-1: every
    entry), after adding ``deleted_count`` (every one) and ``lists_truncated``; a cut list gets ``lists_note`` saying
    what it holds and how to list every entry. Every artifact the plan deletes is deleted, listed or not."""
    deleted = result.get('deleted') or []
    result['deleted_count'] = len(deleted)
    cut = 0 <= max_listed < len(deleted)
    result['lists_truncated'] = cut
    if cut:
        result['deleted'] = deleted[:max_listed]
        result['lists_note'] = (
            'deleted lists the first %d of the %d artifacts retention deletes (max_listed), oldest first, set '
            'after set; deleted_count counts every one. max_listed: -1 lists every entry.' % (max_listed, len(deleted)))
    return result
