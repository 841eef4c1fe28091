# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention options of the modules (``keep_*``, ``origin_succession``), apart from retention.py: db_backup
builds its argument spec from them before its tool starts, and retention.py (with the catalog it imports) is
compiled on every run of an AnsiballZ payload, so it is loaded only when a run applies a policy.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict

KEEP_OPTIONS = ('keep_last', 'keep_days', 'keep_daily', 'keep_weekly', 'keep_monthly')

# How many artifacts backup_prune (max_listed) and the backup modules (retention.max_listed, file_backup's max_listed;
# backup/listed.py cuts) list by default: a result of a few hundred KB whatever the catalog (a year of hourly backups
# is ~200,000 manifests: every path listed was ~46 MB of JSON, which exit_json copied to scrub no_log values and
# encoded). Here, not in listed.py, so that backup_prune, which ships this file, ships no more.
DEFAULT_MAX_LISTED = 1000


def argument_spec() -> Dict[str, Dict[str, Any]]:
    """The keep_* options (documented by the ``opsready.operations.retention`` doc fragment)."""
    return dict((name, dict(type='float' if name == 'keep_days' else 'int')) for name in KEEP_OPTIONS)


def retention_options() -> Dict[str, Dict[str, Any]]:
    """The suboptions of db_backup's and redis_backup's ``retention``: the keep_* rules, ``origin_succession`` and
    ``max_listed`` (backup_prune's options of those names; ``Policy.from_params`` reads the first two)."""
    options = argument_spec()
    options['origin_succession'] = dict(type='bool', default=False)
    options['max_listed'] = dict(type='int', default=DEFAULT_MAX_LISTED)
    return options
