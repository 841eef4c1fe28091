# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RTO and RPO of one drilled database, measured from its steps, judged against its objectives.

* RPO = drill start minus ``recoverable_until`` of the chain restored (the data a disaster at drill
  start would have lost).
* RTO = wall time from the start of the first recovery step (``verify``, else ``restore``) to the end
  of the last proving step (``integrity``/``smoke``). It is only measured when every step from
  verification to the smoke queries succeeded: a restore that did not prove usable recovered nothing.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time

DEFAULT_RTO_SECONDS = 3600.0
DEFAULT_RPO_SECONDS = 300.0
# The steps a drill runs, in order. ``cleanup`` runs always (block/always) and is not part of the RTO.
# ``fetch_offsite`` (a drill from the offsite copy) is: in a real loss of the host, fetching the backup
# is part of the time to recover.
STEP_ORDER = ('fetch_offsite', 'find_backup', 'verify', 'restore', 'integrity', 'smoke', 'cleanup')
RECOVERY_STEPS = ('fetch_offsite', 'verify', 'restore', 'integrity', 'smoke')
PASS, FAIL, NOT_MEASURED = 'pass', 'fail', 'not_measured'


def _time(value: Any, what: str) -> Optional[datetime.datetime]:
    if value in (None, ''):
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise OpsReadyError('%s has no time zone.' % what)
        return value
    return parse_time(str(value), what)


def normalise_steps(steps: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Validate steps, add ``seconds``; sorted by start. Each: name, started, finished, ok."""
    result = []
    for step in steps:
        name = step.get('name')
        if not name:
            raise OpsReadyError('Every drill step needs a name (one of %s).' % ', '.join(STEP_ORDER))
        started = _time(step.get('started'), 'step %s started' % name)
        finished = _time(step.get('finished'), 'step %s finished' % name)
        if started is None:
            raise OpsReadyError('Step %s has no start time.' % name)
        if finished is not None and finished < started:
            raise OpsReadyError('Step %s finished (%s) before it started (%s).'
                                % (name, step.get('finished'), step.get('started')))
        entry = dict(step)
        entry['ok'] = bool(step.get('ok'))
        entry['seconds'] = round((finished - started).total_seconds(), 3) if finished else None
        result.append(entry)
    return sorted(result, key=lambda s: parse_time(str(s['started']), 'started'))


def _step(steps: List[Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    found = [s for s in steps if s['name'] == name]
    return found[-1] if found else None


def measure_observed(database: Dict[str, Any], steps: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A failover drill's figures, measured by the drill (writer acknowledgements), judged against objectives."""
    measured = dict(database.get('measured') or {})
    objectives = dict(database.get('objectives') or {})
    rto_objective = float(objectives.get('rto_seconds') or DEFAULT_RTO_SECONDS)
    rpo_objective = float(objectives.get('rpo_seconds') or DEFAULT_RPO_SECONDS)
    max_lost = objectives.get('lost_commits')
    reasons = ['step %s failed: %s' % (s['name'], s.get('error') or s.get('result') or 'no detail')
               for s in steps if not s['ok']]
    rto, rpo = measured.get('rto_seconds'), measured.get('rpo_seconds')
    rto_verdict = NOT_MEASURED if rto is None else PASS if float(rto) <= rto_objective else FAIL
    rpo_verdict = NOT_MEASURED if rpo is None else PASS if float(rpo) <= rpo_objective else FAIL
    if rto is None:
        reasons.append('no write was acknowledged after the event, so the RTO was not measured')
    elif rto_verdict == FAIL:
        reasons.append('RTO %s exceeds the objective %s' % (human(float(rto)), human(rto_objective)))
    if rpo_verdict == FAIL:
        reasons.append('RPO %s exceeds the objective %s (%s acknowledged commits lost)'
                       % (human(float(rpo or 0)), human(rpo_objective), measured.get('lost_commits')))
    lost = measured.get('lost_commits')
    if max_lost is not None and lost is not None and int(lost) > int(max_lost):
        rpo_verdict = FAIL
        reasons.append('%s acknowledged commits were lost, the objective allows %s' % (lost, max_lost))
    result = dict(database)
    result.update(steps=steps, objectives={'rto_seconds': rto_objective, 'rpo_seconds': rpo_objective,
                                           'lost_commits': max_lost},
                  rto_seconds=rto, rpo_seconds=rpo, rto_verdict=rto_verdict, rpo_verdict=rpo_verdict,
                  cleaned_up=True, passed=not reasons, reasons=reasons)
    return result


def measure(database: Dict[str, Any], drill_started: datetime.datetime) -> Dict[str, Any]:
    """Adds rto/rpo figures, verdicts and the reasons a database failed its drill."""
    steps = normalise_steps(database.get('steps') or [])
    if database.get('measured') is not None:
        return measure_observed(database, steps)
    objectives = dict(database.get('objectives') or {})
    rto_objective = float(objectives.get('rto_seconds') or DEFAULT_RTO_SECONDS)
    rpo_objective = float(objectives.get('rpo_seconds') or DEFAULT_RPO_SECONDS)
    reasons: List[str] = []
    for step in steps:
        if not step['ok']:
            detail = step.get('error') or step.get('result') or 'no detail'
            reasons.append('step %s failed: %s' % (step['name'], detail))

    backup = database.get('backup') or {}
    until = _time(backup.get('recoverable_until'), 'recoverable_until')
    rpo: Optional[float] = None
    if until is None:
        rpo_verdict = NOT_MEASURED
        reasons.append('no recoverable backup chain was found, so the RPO is unbounded')
    else:
        rpo = round(max(0.0, (drill_started - until).total_seconds()), 3)
        rpo_verdict = PASS if rpo <= rpo_objective else FAIL
        if rpo_verdict == FAIL:
            reasons.append('RPO %s exceeds the objective %s: the newest recoverable point is %s (%s before the '
                           'drill started); take backups (or ship logs) more often'
                           % (human(rpo), human(rpo_objective), backup.get('recoverable_until'), human(rpo)))

    first = _step(steps, 'fetch_offsite') or _step(steps, 'verify') or _step(steps, 'restore')
    proving = [s for s in (_step(steps, 'integrity'), _step(steps, 'smoke')) if s is not None]
    recovery = [_step(steps, n) for n in RECOVERY_STEPS]
    rto: Optional[float] = None
    rto_verdict = NOT_MEASURED
    if first is not None and proving and all(s is not None and s['ok'] for s in recovery if s is not None) \
            and _step(steps, 'restore') is not None and all(s.get('finished') for s in proving):
        end = max(parse_time(str(s['finished']), 'finished') for s in proving)
        rto = round((end - parse_time(str(first['started']), 'started')).total_seconds(), 3)
        rto_verdict = PASS if rto <= rto_objective else FAIL
        if rto_verdict == FAIL:
            reasons.append('RTO %s exceeds the objective %s' % (human(rto), human(rto_objective)))
    elif not any(not s['ok'] for s in steps):
        reasons.append('the drill did not reach the end of the integrity and smoke steps, so the RTO was not measured')

    cleanup = _step(steps, 'cleanup')
    result = dict(database)
    result.update(
        steps=steps,
        objectives={'rto_seconds': rto_objective, 'rpo_seconds': rpo_objective},
        rto_seconds=rto, rpo_seconds=rpo, rto_verdict=rto_verdict, rpo_verdict=rpo_verdict,
        cleaned_up=bool(cleanup and cleanup['ok']),
        passed=not reasons,
        reasons=reasons,
    )
    return result


def human(seconds: Optional[float]) -> str:
    """1.234 s, 12 min 5 s, 3 h 2 min: how an operator reads a duration."""
    if seconds is None:
        return 'n/a'
    if seconds < 60:
        return '%.1f s' % seconds if seconds >= 10 else '%.2f s' % seconds
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return '%d min %d s' % (minutes, secs)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return '%d h %d min' % (hours, minutes)
    return '%d d %d h' % divmod(hours, 24)
