# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One timed drill step on a scratch target (integrity, smoke), as ``drill_step`` runs it.

Every step returns the same shape whether it passed or failed (``name``, ``started``, ``finished``,
``seconds``, ``ok``, ``result``, ``error``, ``details``) so the report can place it on the timeline.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import math
import time
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.backup import source as source_summary
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    MANIFEST_SUFFIX, manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import (
    UTC, isoformat, utcnow)
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
    fewer_than_source(held, found, database, manifest.id)
    checks['restored'] = {k: found.get(k) for k in ('tables', 'non_empty_tables', 'rows_total')}
    return checks


def fewer_than_source(held: Dict[str, Any], found: Dict[str, Any], database: str, backup_id: str) -> None:
    """Fail when the restored copy holds fewer tables, or fewer tables with rows, than the source held when the
    backup was taken. ``compare`` alone fails only a copy with no table or no row at all; a restore that could not
    create some tables (a missing extension, type or tablespace: pg_restore's errors end as warnings) or load their
    rows passed as long as one table with one row came back. The source's counts are the lesser of those before and
    after the dump (``source.combine``), what the dump's snapshot held whatever ran meanwhile, so a copy with fewer
    lost them; the counts are the same query on both sides (``summary`` and ``source_summary``)."""
    if held.get('error'):
        return
    lost = []
    for key, what in (('tables', 'table(s)'), ('non_empty_tables', 'table(s) with rows')):
        if isinstance(held.get(key), int) and isinstance(found.get(key), int) and found[key] < held[key]:
            missing = held[key] - found[key]
            lost.append('%d %s (%d restored, the source held %d)' % (missing, what, found[key], held[key]))
    if lost:
        raise IntegrityError('The restored scratch target %s lacks %s of what the source held when %s was taken: a '
                             'recovery from it would lose them. The restore step\'s warnings name what could not be '
                             'created or loaded (a missing extension, role or tablespace on the drill server).'
                             % (database, ' and '.join(lost), backup_id), path=database, lost=lost)


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


def _zone(name: Optional[str]) -> datetime.tzinfo:
    if not name or name.upper() in ('UTC', 'Z', 'ETC/UTC'):
        return UTC
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(name)
    except Exception:
        raise OpsReadyError('Unknown time zone %r for the freshness query\'s times: give an IANA name such as '
                            'Europe/Berlin (or UTC).' % name)


def newest_point(value: Any, zone: Optional[str] = None) -> datetime.datetime:
    """The answer of a freshness query as a UTC instant: a datetime, ISO 8601 text (``T`` or a space between date
    and time, as SQLite's CURRENT_TIMESTAMP and psql print it), or Unix epoch seconds. A time without a zone is in
    ``zone`` (an IANA name; UTC when unset, as SQLite's CURRENT_TIMESTAMP is). Read as UTC, a local time east of UTC
    is late by the offset: only a newest row younger than the offset then lies in the future (refused as a clock
    ahead); an older one made the RPO smaller by the offset (2 h in Central European summer time) and a breach
    passed. ``freshness`` warns when it had to assume UTC. Of the two instants a local time names when the clocks go
    back (DST), the earlier is taken: the larger RPO, never the smaller."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise OpsReadyError('The freshness query returned %r, not a time.' % (value,))
        return datetime.datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        number = expectations.coerce(text)
        if isinstance(number, (int, float)):
            return newest_point(number)
        try:
            moment = datetime.datetime.fromisoformat(text[:-1] + '+00:00' if text[-1] in 'Zz' else text)
        except ValueError:
            raise OpsReadyError('The freshness query returned %r, not a time: return a timestamp (ISO 8601, with '
                                'its zone) or Unix epoch seconds, e.g. the max() of a created_at column.' % text)
    else:
        raise OpsReadyError('The freshness query returned %r: no newest time in the restored copy (an empty '
                            'table, or the query reads the wrong one); a recovery from this backup holds no row it '
                            'dates.' % (value,))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(zone), fold=0)
    return moment.astimezone(UTC)


def _zoned(value: Any) -> bool:
    """Whether a freshness answer says its own zone (an epoch, a zoned datetime or ISO text with an offset)."""
    if isinstance(value, datetime.datetime):
        return value.tzinfo is not None
    if isinstance(value, str):
        text = value.strip()
        if isinstance(expectations.coerce(text), (int, float)):
            return True
        try:
            return datetime.datetime.fromisoformat(text[:-1] + '+00:00' if text[-1:] in 'Zz' else text).tzinfo \
                is not None
        except ValueError:
            return False
    return True


def freshness(client: DrillChecks, database: str, sql: str, zone: Optional[str] = None) -> Dict[str, Any]:
    """The newest committed data the restored copy holds, read by the operator's query (the first column of the
    first row, e.g. ``SELECT max(created_at) FROM orders``): the RPO is measured from it, not from the catalog's
    claim (a backup host's clock ahead, an edited manifest, a log backup that holds nothing new). ``zone``: the
    zone of an answer without one (``newest_point``)."""
    step = _record('freshness')
    try:
        rows = client.freshness_rows(database, sql)
        value = next(iter(rows[0].values())) if rows and rows[0] else None
        point = isoformat(newest_point(value, zone))
        step.update(ok=True, details={'newest': point, 'sql': sql},
                    result='the restored data reaches %s (freshness query)' % point)
        if not zone and not _zoned(value):
            step['warnings'].append(
                'the freshness query returned %s, a time without a zone, read as UTC: if the application stores local '
                'time east of UTC the RPO is understated by the offset (west of UTC: overstated). Return a zoned time '
                '(timestamptz, UNIX_TIMESTAMP(...)) or say its zone (freshness_timezone, e.g. Europe/Berlin, or '
                'UTC)' % value)
    except OpsReadyError as exc:
        step.update(error=exc.message, details=dict(exc.details, sql=sql))
    return _finish(step)
