# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a backup run's retention reports, merged into the module's result (``jobs`` re-exports both).

Apart from ``jobs.py`` so that file_backup, which prunes through ``catalog_prune`` and takes no database backup,
imports neither the engine registry nor the engines (every module_utils file a module imports is compiled from the
AnsiballZ zip on every run: issue 22, module start-up and the encrypted file backup).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict


def take_retention(result: Dict[str, Any], pruned: Dict[str, Any]) -> None:
    """Put what the run's retention said into the backup module's ``result``: ``deleted``, and, when it ran,
    ``broken_manifests`` (the backups it can neither count nor ever delete) and ``origin_sets``, its warnings
    (those, a set of several servers) joining the run's. Kept as ``deleted`` alone, an operator whose retention runs
    in the backup job was never told of a manifest kept for ever (backup_prune told it)."""
    result['deleted'] = pruned['deleted']
    if not pruned.get('ran'):
        return
    result['broken_manifests'] = pruned['broken_manifests']
    result['origin_sets'] = pruned['origin_sets']
    told = result.setdefault('warnings', [])
    told.extend(w for w in pruned['warnings'] if w not in told)


def merge_pruned(answer: Dict[str, Any], pruned: Dict[str, Any]) -> None:
    """One set's ``prune`` result added to ``answer`` (deleted, broken_manifests, origin_sets, warnings): a
    directory's broken manifest, or a warning, said once however many sets of the run were pruned."""
    answer['deleted'] += pruned['deleted']
    seen = {b['manifest'] for b in answer['broken_manifests']}
    answer['broken_manifests'] += [b for b in pruned.get('broken_manifests') or [] if b['manifest'] not in seen]
    answer['origin_sets'] += [o for o in pruned.get('origin_sets') or [] if o not in answer['origin_sets']]
    answer['warnings'] += [w for w in pruned.get('warnings') or [] if w not in answer['warnings']]
