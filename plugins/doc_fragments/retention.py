# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The keep_* rules of backup/retention.py; a full backup is kept when any rule selects it, and
    # whatever the rules, the newest verified full and every piece a kept backup depends on survive.
    DOCUMENTATION = r'''
options:
  keep_last:
    description:
      - Keep the newest N full backups of each set.
      - Only sound fulls count (not a failed verification, not an artifact missing or of another size than its
        manifest records); a full dated in the future (a clock that was ahead) is kept and counts for no rule.
    type: int
  keep_days:
    description: Keep full backups younger than N days (fractions allowed).
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
'''
