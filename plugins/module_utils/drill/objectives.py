# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RTO and RPO of one drilled database, measured from its steps, judged against its objectives.

* RPO = drill start (with a point read from the restored data: when the restore read the catalog; for a drill
  of a chosen past instant: ``stop_at``) minus the instant the restored
  copy provably holds: the ``recovered`` point read from the restored data when the restore measured one
  (PostgreSQL point-in-time: the last transaction replayed; MariaDB/MySQL binary logs: the last event
  replayed), else ``recoverable_until`` of the chain in the catalog (a dump is its own point). The catalog's
  figure is reported next to it (``rpo_claimed_seconds``); a difference over ``RPO_TOLERANCE_SECONDS`` is
  flagged (``rpo_flag``), not failed: an idle stretch after the last transaction is no loss, but a drill
  cannot tell it from WAL or binary logs that were never replayed.
* A drill with ``stop_at`` fails when the copy holds data from after ``stop_at``.
* A drill of the newest point fails when the catalog passed over a newer backup of the set (its verification failed,
  its manifest unreadable: ``passed_over``) and restored an older chain: the RPO is measured from what was restored,
  and the report names the backup that does not restore.
* A newest point later than the restore can have read the catalog (``catalog_read_at``, else the end of the
  restore step, else the drill start) by more than ``CLOCK_SKEW_TOLERANCE_SECONDS`` is a clock ahead (or a time
  written by hand): the RPO is unknown (``not_measured``) and the drill fails, never an RPO of 0 s.
* RTO = wall time from the start of the first recovery step (``fetch_offsite``, else ``verify``, else ``restore``;
  its first attempt when a step was retried) to the end
  of the last proving step (``integrity``/``smoke``). It is only measured when every step from
  verification to the smoke queries succeeded: a restore that did not prove usable recovered nothing.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, parse_time
from ansible_collections.opsready.operations.plugins.module_utils.drill.passed_over import (
    broken_warnings, passed_over)
from ansible_collections.opsready.operations.plugins.module_utils.engines.names import ENGINES

DEFAULT_RTO_SECONDS = 3600.0
DEFAULT_RPO_SECONDS = 300.0
# The steps a drill runs, in order. ``cleanup`` runs always (block/always) and is not part of the RTO.
# ``fetch_offsite`` (a drill from the offsite copy) is: in a real loss of the host, fetching the backup
# is part of the time to recover.
STEP_ORDER = ('fetch_offsite', 'find_backup', 'verify', 'restore', 'integrity', 'smoke', 'freshness', 'cleanup')
RECOVERY_STEPS = ('fetch_offsite', 'verify', 'restore', 'integrity', 'smoke')
PASS, FAIL, NOT_MEASURED = 'pass', 'fail', 'not_measured'
# Catalog claim and recovered point may differ by the archiving latency (and MariaDB's whole seconds).
RPO_TOLERANCE_SECONDS = 1.0
# A point later than the instant it is measured from by more than this is not jitter between the clocks of the
# controller, the backup host and the database server: the manifest's (or server's) clock is ahead, or a time was
# written by hand. The age of the newest point is then unknown; max(0, ...) made it an RPO of 0 s that passed.
CLOCK_SKEW_TOLERANCE_SECONDS = 5.0
# find_backup is outside the RTO; longer than this share of the RTO objective, it is a warning (a catalog that
# takes minutes to read delays a real recovery by as much)
FIND_BACKUP_SHARE = 0.1


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


def objective(objectives: Dict[str, Any], key: str, default: float, name: Any) -> Tuple[float, bool]:
    """(seconds, defaulted): an unset (absent or null) objective is the default, said so in the report. 0 is an
    objective (no loss, no downtime allowed), never "unset" (``or default`` judged rpo_seconds 0 against 5 min).
    Anything that is no finite, non-negative number of seconds is refused: '5m' crashed the report, nan made every
    comparison false (a breach never failed) and a negative objective can never be met."""
    value = objectives.get(key)
    if value is None or value == '':
        return float(default), True
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        seconds = float(value)
    except ValueError:
        seconds = float('nan')
    if not math.isfinite(seconds) or seconds < 0:
        raise OpsReadyError('The %s objective of %s is %r: give a number of seconds, 0 or more (e.g. %s: 300).'
                            % (key, name, value, key), objective=key)
    return seconds, False


def _objectives(database: Dict[str, Any]) -> Tuple[float, float, List[str]]:
    objectives = dict(database.get('objectives') or {})
    rto, rto_default = objective(objectives, 'rto_seconds', DEFAULT_RTO_SECONDS, database.get('name'))
    rpo, rpo_default = objective(objectives, 'rpo_seconds', DEFAULT_RPO_SECONDS, database.get('name'))
    return rto, rpo, [k for k, d in (('rpo_seconds', rpo_default), ('rto_seconds', rto_default)) if d]


def _step(steps: List[Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    found = [s for s in steps if s['name'] == name]
    return found[-1] if found else None


def measure_observed(database: Dict[str, Any], steps: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A failover drill's figures, measured by the drill (writer acknowledgements), judged against objectives."""
    measured = dict(database.get('measured') or {})
    objectives = dict(database.get('objectives') or {})
    rto_objective, rpo_objective, defaulted = _objectives(database)
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
                  objectives_defaulted=defaulted,
                  rto_seconds=rto, rpo_seconds=rpo, rto_verdict=rto_verdict, rpo_verdict=rpo_verdict,
                  cleaned_up=True, passed=not reasons, reasons=reasons)
    return result


def measure(database: Dict[str, Any], drill_started: datetime.datetime, warnings_fail: bool = False) -> Dict[str, Any]:
    """Adds rto/rpo figures, verdicts and the reasons a database failed its drill (``warnings_fail``: each warning
    is one)."""
    steps = normalise_steps(database.get('steps') or [])
    if database.get('measured') is not None:
        return measure_observed(database, steps)
    rto_objective, rpo_objective, defaulted = _objectives(database)
    reasons: List[str] = []
    for step in steps:
        if not step['ok']:
            detail = step.get('error') or step.get('result') or 'no detail'
            reasons.append('step %s failed: %s' % (step['name'], detail))

    backup = database.get('backup') or {}
    until = _time(backup.get('recoverable_until'), 'recoverable_until')
    stop_at = _time(database.get('stop_at'), 'stop_at')
    recovered = dict(database.get('recovered') or {})
    recovered_at = _time(recovered.get('at'), 'recovered point')
    # A disaster at the moment the restore read the catalog would have left exactly what it restored: a point read
    # from the restored data is measured from then (``recovered.catalog_read_at``, else the start of the restore
    # step: logs shipped after the drill started may be in the copy), or from stop_at. Without one, from the drill
    # start as before.
    restore = _step(steps, 'restore')
    read_at = _time(recovered.get('catalog_read_at'), 'catalog_read_at') if recovered_at else None
    reference = stop_at or read_at or (_time(restore['started'], 'restore started') if restore and recovered_at
                                       else None) or drill_started
    # What the catalog says the chain reaches: recoverable_until, or stop_at when the drill asked for an instant.
    claimed = until if stop_at is None or until is None else min(stop_at, until)
    claimed_rpo = None if claimed is None else round(max(0.0, (reference - claimed).total_seconds()), 3)
    rpo: Optional[float] = None
    rpo_flag: Optional[str] = None
    difference: Optional[float] = None
    skew = datetime.timedelta(seconds=CLOCK_SKEW_TOLERANCE_SECONDS)
    ahead: Optional[str] = None
    early = 0.0
    # The latest instant the restore can have read the catalog: a backup that finished after the drill started
    # (a schedule overlapping a long drill) may be in the chain it restored; a point after that instant cannot be.
    latest = reference
    if read_at is None and restore is not None and restore.get('finished'):
        latest = max(reference, parse_time(str(restore['finished']), 'restore finished'))
    if stop_at is None:
        # (with stop_at the reference is stop_at itself, and data after it fails the drill below)
        if recovered_at is not None and recovered_at > latest + skew:
            ahead = 'the restored data reaches %s' % recovered.get('at')
            early = (recovered_at - latest).total_seconds()
        elif claimed is not None and claimed > latest + skew:
            ahead = 'the catalog claims the chain reaches %s' % isoformat(claimed)
            early = (claimed - latest).total_seconds()
    if ahead:
        claimed_rpo = None
        reasons.append('%s, %s after the %s (%s): a clock (the backup host\'s, the database server\'s or the '
                       'controller\'s) is ahead, so the RPO is unknown; synchronise the clocks (NTP) and drill again'
                       % (ahead, human(early),
                          'drill started' if latest is drill_started else 'restore read the catalog (at the latest)',
                          isoformat(latest)))
    elif recovered_at is not None:
        rpo = round(max(0.0, (reference - recovered_at).total_seconds()), 3)
        if claimed is not None:
            difference = round((claimed - recovered_at).total_seconds(), 3)
            if abs(difference) > RPO_TOLERANCE_SECONDS:
                rpo_flag = ('the restored data reaches %s (%s), %s %s the %s %s: %s' % (
                    recovered.get('at'), recovered.get('source') or 'measured', human(abs(difference)),
                    'before' if difference > 0 else 'after', 'stop_at' if stop_at else 'catalog\'s recoverable_until',
                    isoformat(claimed),
                    'no transaction ended in between, or logs were not replayed' if difference > 0
                    else 'the copy holds data the catalog does not claim (clock skew, or a manifest behind its log)'))
        if stop_at is not None and recovered_at > stop_at:
            reasons.append('the copy holds data up to %s, after the stop_at %s it was asked for'
                           % (recovered.get('at'), isoformat(stop_at)))
    elif claimed is not None:
        rpo = claimed_rpo
    if rpo is None:
        rpo_verdict = NOT_MEASURED
        if not ahead:
            reasons.append('no recoverable backup chain was found, so the RPO is unbounded')
    else:
        rpo_verdict = PASS if rpo <= rpo_objective else FAIL
        if rpo_verdict == FAIL:
            reasons.append('RPO %s exceeds the objective %s: the newest point %s is %s (%s before %s); take '
                           'backups (or ship logs) more often'
                           % (human(rpo), human(rpo_objective),
                              'the restored data holds' if recovered_at else 'recoverable',
                              recovered.get('at') or backup.get('recoverable_until'), human(rpo),
                              'stop_at' if stop_at else 'the restore started' if recovered_at else 'the drill started'))

    # A newer backup of the set the catalog passed over (its verification failed, its manifest unreadable): the drill
    # restored an older chain, and a recovery now would too. Its RPO above is honest, but the newest backup does not
    # restore: that is what a drill is for, never a PASSED that names only the older chain.
    skipped = [] if stop_at is not None else passed_over(backup)
    if skipped:
        newest = skipped[0]
        lost = '' if until is None else ' (the damaged backup reached %s further)' % human(
            (parse_time(newest['at'], 'at') - until).total_seconds())
        reasons.append('the newest backup %s (%s) cannot be restored: %s; the drill restored the older chain reaching '
                       '%s, so a recovery now loses everything after that%s%s; take a new backup (and find why '
                       'this one is damaged)'
                       % (newest['id'], newest['at'], newest['why'], backup.get('recoverable_until'), lost,
                          '' if len(skipped) == 1 else '; %d newer backups are unusable: %s'
                          % (len(skipped), ', '.join(s['id'] for s in skipped))))

    # From the first attempt of the first recovery step (steps are sorted by start): a step retried after a failed
    # or timed-out attempt cost a real recovery that attempt too (``_step`` gives the last attempt).
    first = next((s for s in steps if s['name'] in ('fetch_offsite', 'verify', 'restore')), None)
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

    # What a step did but could not do completely (a restore that skipped a property or an object): the drill may
    # pass, but the report lists them next to its verdict, so PASSED never hides them.
    warnings = ['%s: %s' % (s['name'], w) for s in steps for w in (s.get('warnings') or [])]
    warnings += _unproved(database, steps)
    # the directory's unreadable manifests that did not fail this drill (another set's, maybe another's, older): said
    warnings += broken_warnings(backup, skipped)
    find = _step(steps, 'find_backup')
    find_seconds = find.get('seconds') if find else None
    if find_seconds is not None and find_seconds > FIND_BACKUP_SHARE * rto_objective:
        # outside the RTO by design (a real recovery reads its catalog once); a slow catalog must not hide there
        warnings.append('find_backup: took %s, %d%% of the RTO objective %s, and is not counted in the RTO (measured '
                        'from the first recovery step): a real recovery spends that time too'
                        % (human(find_seconds), round(100 * find_seconds / rto_objective) if rto_objective else 100,
                           human(rto_objective)))
    if warnings_fail:
        reasons += ['%s (a warning; warnings_fail is set)' % w for w in warnings]
    cleanup = _step(steps, 'cleanup')
    result = dict(database)
    if 'failed_verification' in backup or 'broken_manifests' in backup:
        # what the catalog said of the set is summed up as the backups passed over; the report keeps those only
        result['backup'] = dict((k, v) for k, v in backup.items()
                                if k not in ('failed_verification', 'broken_manifests'))
        result['backup']['passed_over'] = skipped
    result.update(
        steps=steps,
        objectives={'rto_seconds': rto_objective, 'rpo_seconds': rpo_objective},
        objectives_defaulted=defaulted,
        rto_seconds=rto, rpo_seconds=rpo, rto_verdict=rto_verdict, rpo_verdict=rpo_verdict,
        rpo_claimed_seconds=claimed_rpo, rpo_basis='recovered' if recovered_at is not None else 'catalog',
        rpo_difference_seconds=difference, rpo_flag=rpo_flag,
        rto_from=first['name'] if first is not None else None, find_backup_seconds=find_seconds,
        cleaned_up=bool(cleanup and cleanup['ok']),
        passed=not reasons,
        reasons=reasons,
        warnings=warnings,
    )
    return result


# The integrity step's result when it compared the restored tables and rows with the source's summary
# (``drill_step`` integrity with ``backup``: the database engines' drills; not Redis, not file sets)
SOURCE_COMPARED_MARK = 'against the source at backup time'


def _unproved(database: Dict[str, Any], steps: List[Dict[str, Any]]) -> List[str]:
    """What a drill that went through did not prove, as warnings: no smoke query ran (it passed on the integrity
    check alone), or the restored tables and rows were not compared with the source (a chain with logs replayed,
    a point in time: what the source held at the chain's end is recorded nowhere)."""
    if any(not s['ok'] for s in steps) or _step(steps, 'restore') is None:
        return []
    found = []
    if _step(steps, 'smoke') is None:
        found.append('smoke: no smoke query ran (none given: smoke_queries, or a file set\'s check command), so the '
                     'drill passed on the integrity check alone - the data is readable, but no query of the '
                     'application was answered; add smoke queries')
    integrity = _step(steps, 'integrity')
    chain = (database.get('backup') or {}).get('chain') or []
    # (a single full is compared by the integrity step itself, which warns when it could not compare)
    replayed = bool(database.get('stop_at')) or len(chain) > 1
    if database.get('engine') in ENGINES and integrity is not None and replayed \
            and SOURCE_COMPARED_MARK not in str(integrity.get('result') or ''):
        why = ('a point in time (stop_at %s) was restored' % database['stop_at'] if database.get('stop_at')
               else 'the restore replayed %d log artifact(s) after the full' % (len(chain) - 1))
        found.append('integrity: restored tables and rows not compared with the source: %s, so the copy holds what '
                     'the source held at the end of the chain, which no manifest records (the table and row counts '
                     'are compared for a single full only); only the engine\'s integrity check ran' % why)
    return found


def rto_line(db: Dict[str, Any]) -> str:
    """What the RTO counts, and the time find_backup took outside it (empty for a drill without those figures)."""
    if db.get('measured') or not db.get('rto_from'):
        return ''
    line = 'RTO measured from the start of %s to the end of the integrity and smoke steps' % db['rto_from']
    if db.get('find_backup_seconds') is not None:
        line += '; find_backup (reading the catalog) took %s and is not in the RTO' % human(db['find_backup_seconds'])
    return line


def defaulted_line(db: Dict[str, Any]) -> str:
    """The objectives a database was judged by without the operator setting them (empty when none)."""
    names = {'rpo_seconds': 'RPO', 'rto_seconds': 'RTO'}
    defaulted = [k for k in db.get('objectives_defaulted') or [] if k in names]
    if not defaulted:
        return ''
    return 'objectives not set, defaults used: %s (set %s for this database)' % (
        ', '.join('%s %s' % (names[k], human(db['objectives'][k])) for k in defaulted), ' and '.join(defaulted))


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
