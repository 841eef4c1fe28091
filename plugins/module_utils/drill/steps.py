# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One timed drill step on a scratch target (integrity, smoke), as ``drill_step`` runs it.

Every step returns the same shape whether it passed or failed (``name``, ``started``, ``finished``,
``seconds``, ``ok``, ``result``, ``error``, ``details``) so the report can place it on the timeline.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.backup import source as source_summary
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    MANIFEST_SUFFIX, manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.drill import expect as expectations
from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import DrillChecks


def _record(name: str) -> Dict[str, Any]:
    return {'name': name, 'started': isoformat(utcnow()), 'finished': None, 'seconds': None, 'ok': False,
            'result': None, 'error': None, 'details': {}, 'warnings': [], '_t0': time.monotonic()}


def _finish(step: Dict[str, Any]) -> Dict[str, Any]:
    step['finished'] = isoformat(utcnow())
    step['seconds'] = round(time.monotonic() - step.pop('_t0'), 3)
    return step


def integrity(client: DrillChecks, database: str, level: str = 'standard',
              backup: Optional[str] = None) -> Dict[str, Any]:
    """The engine's check, then (with ``backup``, the artifact or manifest restored) the restored tables and
    rows against what the source held when that backup was taken."""
    step = _record('integrity')
    try:
        details = client.integrity(database, level)
        result = '%s: %s' % (details['tool'], details['result'])
        if details.get('fallback_reason'):
            # The engine's own check did not run (PostgreSQL: pg_amcheck missing, or amcheck not installable by the
            # drill login): the fallback proves the rows readable, not the indexes a recovered application reads by.
            result += ' (%s: indexes not checked)' % details['fallback_reason']
            step['warnings'].append('%s, so only a full read of every table ran: indexes not checked'
                                    % details['fallback_reason'])
        if backup:
            details['source'] = compare_with_source(client, database, backup)
            checked = details['source']['source_check']
            result += '; against the source at backup time: %s' % checked
            if not checked.startswith('ok'):  # no summary in the manifest, or it failed when the backup was taken
                step['warnings'].append('restored tables and rows not compared with the source: %s' % checked)
            restored = details['source'].get('restored')
            if restored:
                result += ' (%s tables, %s with rows)' % (restored.get('tables'), restored.get('non_empty_tables'))
        step.update(ok=True, details=details, result=result)
    except OpsReadyError as exc:
        step.update(error=exc.message, details=dict(exc.details))
    return _finish(step)


def compare_with_source(client: DrillChecks, database: str, backup: str) -> Dict[str, Any]:
    manifest = read_manifest(backup if backup.endswith(MANIFEST_SUFFIX) else manifest_path_for(backup))
    held = manifest.data.get(source_summary.SOURCE_KEY)
    if not held:
        return {'source_check': 'not compared: the manifest of %s records no source summary' % manifest.id}
    try:
        found = client.summary(database)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise OpsReadyError('Cannot count the tables and rows of the restored target %s (unexpected answer: %s).'
                            % (database, exc))
    if found is None:
        return {'source_check': 'not compared: no summary for engine %s' % client.engine}
    checks = source_summary.compare(held, found, 'The restored scratch target %s' % database, manifest.path,
                                    exact=client.exact_summary)
    checks['restored'] = {k: found.get(k) for k in ('tables', 'non_empty_tables', 'rows_total')}
    return checks


def smoke(client: DrillChecks, database: str, queries: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Runs every query (even after one failed) so the report shows all of them."""
    for query in queries:
        if not query.get('sql'):
            raise OpsReadyError('Every smoke query needs sql (and usually an expect): %r' % (query,))
        expectations.check_expectation(query.get('expect') or {})
    step = _record('smoke')
    outcomes = []
    for i, query in enumerate(queries):
        name = query.get('name') or 'query %d' % (i + 1)
        expect = expectations.effective(query.get('expect') or {})  # none stated: at least one row
        outcome: Dict[str, Any] = {'name': name, 'sql': query['sql'], 'expect': expect, 'ok': False, 'reasons': []}
        started = time.monotonic()
        try:
            rows = client.query(database, query['sql'])
            ok, reasons = expectations.evaluate(rows, expect)
            outcome.update(ok=ok, reasons=reasons, row_count=len(rows), rows=rows[:5])
        except OpsReadyError as exc:
            outcome['reasons'] = [exc.message]
        outcome['seconds'] = round(time.monotonic() - started, 3)
        outcomes.append(outcome)
    failed = [o for o in outcomes if not o['ok']]
    step['details'] = {'queries': outcomes}
    for outcome in outcomes:
        if set(outcome['expect']) == {'rows_at_least'} and int(outcome['expect']['rows_at_least']) <= 0:
            # Holds for every answer, an empty restored table included: it ran, it proves nothing about the data.
            step['warnings'].append('smoke query %s: rows_at_least %s holds for any answer, an empty table included'
                                    % (outcome['name'], outcome['expect']['rows_at_least']))
    if failed:
        step['error'] = '; '.join('%s: %s' % (o['name'], ', '.join(o['reasons'])) for o in failed)
    else:
        step.update(ok=True, result='%d smoke quer%s passed' % (len(outcomes), 'y' if len(outcomes) == 1 else 'ies'))
    return _finish(step)
