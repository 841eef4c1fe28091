# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The ``retention`` option of the modules that prune after they back up (db_backup, redis_backup): the same
    # keep_* rules as backup_prune (the retention fragment) plus origin_succession and max_listed, one spec in
    # backup/retention_spec.py retention_options().
    DOCUMENTATION = r'''
options:
  retention:
    description:
      - Prune the backups of every set this run wrote after a successful run, as M(opsready.operations.backup_prune)
        does (for M(opsready.operations.db_backup) with
        O(opsready.operations.db_backup#module:all_databases) or
        O(opsready.operations.db_backup#module:include_globals), each database and C(@globals)). Unset keeps
        everything. The newest verified full and every piece a kept backup depends on survive.
      - Encrypted backups (O(opsready.operations.db_backup#module:recipients) of M(opsready.operations.db_backup),
        M(opsready.operations.redis_backup)'s) - a full encrypted only to keys no longer among the recipients is
        not counted as the newest usable full (as M(opsready.operations.backup_prune)
        O(opsready.operations.backup_prune#module:recipients) does).
    type: dict
    suboptions:
      keep_last:
        description: Keep the newest N full backups.
        type: int
      keep_days:
        description: Keep full backups younger than N days.
        type: float
      keep_daily:
        description: Keep the newest full of each of the last N days that have one.
        type: int
      keep_weekly:
        description: Keep the newest full of each of the last N ISO weeks that have one.
        type: int
      keep_monthly:
        description: Keep the newest full of each of the last N months that have one.
        type: int
      origin_succession:
        description:
          - Successive origins of a set (one server whose identity changed - pg_upgrade, a re-initdb, a renamed
            host) are one timeline for these rules, so the old origin's backups age out, as
            M(opsready.operations.backup_prune) O(opsready.operations.backup_prune#module:origin_succession) does.
        type: bool
        default: false
      max_listed:
        description:
          - How many entries RV(deleted) lists - the first ones in deletion order (oldest first, set after set).
            RV(deleted_count) always counts every one and RV(lists_truncated) says whether the list was cut (with
            RV(lists_note)), as M(opsready.operations.backup_prune)
            O(opsready.operations.backup_prune#module:max_listed) does. Every artifact the plan deletes is deleted,
            listed or not; check mode lists what the real run then lists.
          - V(-1) lists every entry (the first clean-up of a large catalog, ~200,000 manifests at a year of hourly
            backups, then returns tens of MB, which Ansible copies and encodes, and AWX stores with the job's events).
        type: int
        default: 1000
'''
