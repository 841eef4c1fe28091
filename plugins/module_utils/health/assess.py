# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One health run: validate everything, measure metrics and checks concurrently, decide the verdict.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.health import (
    checks as checks_mod, deadline, dirs, history, metrics as metrics_mod, prometheus, thresholds as th_mod)

FAIL_ON = ('critical', 'warning', 'never')


class Plan:
    """Validated inputs of a run; building it measures nothing."""

    def __init__(self, checks: Optional[List[Dict[str, Any]]] = None, thresholds: Optional[Dict[str, Any]] = None,
                 metrics: Sequence[str] = metrics_mod.METRIC_GROUPS, fail_on: str = 'critical',
                 interval: float = 0.5, filesystems_exclude: Sequence[str] = (), fs_timeout: float = 5.0,
                 parallel: bool = True, textfile_path: Optional[str] = None, history_path: Optional[str] = None,
                 history_max_entries: int = 10000, host_label: str = '') -> None:
        if fail_on not in FAIL_ON:
            raise OpsReadyError('fail_on must be one of %s, not %r.' % (', '.join(FAIL_ON), fail_on))
        unknown = sorted(set(metrics) - set(metrics_mod.METRIC_GROUPS))
        if unknown:
            raise OpsReadyError('Unknown metrics group(s) %s: use %s.'
                                % (', '.join(unknown), ', '.join(metrics_mod.METRIC_GROUPS)))
        if not 0.05 <= interval <= 60:
            raise OpsReadyError('interval must be between 0.05 and 60 seconds (got %s).' % interval)
        if fs_timeout <= 0:
            raise OpsReadyError('filesystem_timeout must be more than 0 seconds.')
        if history_max_entries < 2:
            raise OpsReadyError('history_max_entries must be 2 or more.')
        self.thresholds = th_mod.parse(thresholds)
        self.checks = checks_mod.normalise(checks or [])
        self.metrics = list(metrics)
        if self.metrics:
            metrics_mod.require_psutil()
        self.fail_on = fail_on
        self.interval = interval
        self.filesystems_exclude = list(filesystems_exclude)
        self.fs_timeout = fs_timeout
        self.parallel = parallel
        self.textfile_path = textfile_path
        self.history_path = history_path
        self.history_max_entries = history_max_entries
        self.host_label = host_label or os.uname()[1]
        self.directory_findings: List[Dict[str, Any]] = []
        if textfile_path:
            if not textfile_path.endswith('.prom'):
                raise OpsReadyError('textfile_path %s must end in .prom: node_exporter\'s textfile collector reads '
                                    'only *.prom files.' % textfile_path)
            self._need_dir('textfile_path', textfile_path)
        if history_path:
            self._need_dir('history_path', history_path)
        for spec in self.checks:
            # Check types that keep counters between runs (insights) read the previous sample from the history.
            if getattr(checks_mod.REGISTRY[spec['type']], 'reads_history', False):
                spec['_history_path'] = history_path

    def _need_dir(self, option: str, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise OpsReadyError('%s: directory %s does not exist; create it first.' % (option, directory))
        # Before anything is measured or written (check mode too): an account owning a directory above could link
        # the directory's name to a directory of root's, where root would then create and replace the file.
        safeio.check_parents(directory, 'write monitoring output into', 'The directory of %s' % option)
        found = dirs.risk(directory) if os.geteuid() == 0 else None
        if found and found[0] == 'critical':
            # refused before anything is measured or written: the writers are hardened against planted links,
            # but in a directory anyone can write, anyone can also remove or replace what root wrote
            raise OpsReadyError('%s: %s; nothing was written. Make the directory owned by root and not writable by '
                                'others (chmod o-w,g-w), or give it the sticky bit (chmod +t).' % (option, found[1]))
        if found:
            self.directory_findings.append(th_mod.finding(
                option, 'insecure_directory', None, None, found[0], '%s: %s.' % (option, found[1]),
                type='directory'))

    def secrets(self) -> List[str]:
        found: List[str] = []
        for spec in self.checks:
            found += checks_mod.connection_secrets(spec)
            found += [str(v) for v in (spec.get('headers') or {}).values() if v]
            found += checks_mod.REGISTRY[spec['type']].secrets(spec)
        return found


def _check_result(spec: Dict[str, Any], outcome: deadline.Outcome) -> Dict[str, Any]:
    check = checks_mod.REGISTRY[spec['type']]
    if outcome.timed_out:
        result = check.timeout_result(spec, outcome.elapsed)
    elif outcome.error is not None:
        result = {'ok': False, 'latency_ms': None, 'condition': 'check_error',
                  'message': '%s could not run: %s' % (spec['name'], outcome.error)}
    else:
        result = dict(outcome.value)
    result['name'] = spec['name']
    result['type'] = spec['type']
    result['duration_seconds'] = round(outcome.elapsed, 3)
    if spec.get('unit'):
        result['unit'] = spec['unit']
    return result


def run(plan: Plan) -> Dict[str, Any]:
    """Measure; returns verdict, metrics, checks, findings (worst first), summary."""
    started = time.monotonic()
    check_probes = [checks_mod.run_spec(spec) for spec in plan.checks]
    outcomes: Dict[str, deadline.Outcome] = {}

    def run_probes(fs_probes: List[Any], meanwhile: Any) -> Dict[str, deadline.Outcome]:
        found, _unfinished = deadline.run_all(fs_probes + check_probes, parallel=plan.parallel, meanwhile=meanwhile)
        outcomes.update(found)
        return found

    if plan.metrics:
        metrics = metrics_mod.collect(plan.metrics, plan.interval, plan.filesystems_exclude, plan.fs_timeout,
                                      run_probes)
    else:
        metrics = {}
        run_probes([], None)
    findings = metrics_mod.evaluate(metrics, plan.thresholds)
    results = []
    for spec in plan.checks:
        result = _check_result(spec, outcomes['check:' + spec['name']])
        results.append(result)
        check = checks_mod.REGISTRY[spec['type']]
        findings += check.evaluate(spec, result, checks_mod.check_thresholds(spec, plan.thresholds))
    findings = th_mod.sort_findings(findings + plan.directory_findings)
    verdict = th_mod.worst([f['severity'] for f in findings])
    out: Dict[str, Any] = {
        'verdict': verdict,
        'metrics': metrics,
        'checks': results,
        'findings': findings,
        'conditions': sorted({f['condition'] for f in findings}),
        'summary': {
            'critical': sum(1 for f in findings if f['severity'] == th_mod.CRITICAL),
            'warning': sum(1 for f in findings if f['severity'] == th_mod.WARNING),
            'checks_failed': sum(1 for r in results if not r.get('ok')),
            'checks_total': len(results),
        },
        'thresholds': {k: v.as_dict() for k, v in sorted(plan.thresholds.items())},
        'host': plan.host_label,
        'duration_seconds': round(time.monotonic() - started, 3),
    }
    secrets = plan.secrets()
    if secrets:
        out = checks_mod.redact_result(out, secrets)
    return out


def should_fail(plan: Plan, verdict: str) -> bool:
    if plan.fail_on == 'never':
        return False
    return th_mod.RANK[verdict] >= th_mod.RANK[plan.fail_on]


def record(plan: Plan, result: Dict[str, Any], timestamp: Optional[float] = None) -> Dict[str, Any]:
    """Write the textfile and append the history (both optional); returns what was written."""
    return record_changes(plan, result, timestamp)[0]


def record_changes(plan: Plan, result: Dict[str, Any], timestamp: Optional[float] = None,
                   check_mode: bool = False) -> Tuple[Dict[str, Any], bool, List[Dict[str, Any]]]:
    """(what was written, whether a file changed, diffs). A textfile holding exactly the new text is not
    rewritten (unchanged); a history sample appended is a change. In check mode nothing is written and the
    result says what a run would change."""
    now = time.time() if timestamp is None else timestamp
    written: Dict[str, Any] = {}
    diffs: List[Dict[str, Any]] = []
    changed = False
    if plan.textfile_path:
        text = prometheus.build(result, now)
        # Insights checks add their database's opsready_db_* samples (labelled with the check's name).
        snapshots = [dict(c['insights'], check=c['name']) for c in result.get('checks', []) if c.get('insights')]
        if snapshots:
            from ansible_collections.opsready.operations.plugins.module_utils.insights import exposition
            text += exposition.build_checks(snapshots)
        before = prometheus.current(plan.textfile_path)
        if before != text:
            diffs.append({'before_header': plan.textfile_path, 'after_header': plan.textfile_path,
                          'before': before or '', 'after': text})
        if check_mode:
            prometheus.check_target(plan.textfile_path)   # the refusal the real run meets
            changed = changed or before != text
        else:
            changed = prometheus.write(plan.textfile_path, text) or changed
            written['textfile'] = plan.textfile_path
            written['textfile_changed'] = before != text
    if plan.history_path:
        line = history.sample(result, now, plan.host_label)
        diffs.append({'before_header': plan.history_path, 'after_header': '%s (appended)' % plan.history_path,
                      'before': '', 'after': json.dumps(line, sort_keys=True) + '\n'})
        changed = True
        if not check_mode:
            written['history_entries'] = history.append(plan.history_path, line, plan.history_max_entries)
            written['history'] = plan.history_path
    return written, changed, diffs
