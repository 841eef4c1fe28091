# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus recording and alerting rules as code: SLO burn-rate rules, host, backup and insight rules.

SLO rules follow the SRE workbook: one recording rule per SLO and window for the error ratio
(``opsready_slo:sli_error:ratio_rate<window>{slo="..."}``), and alerts comparing two windows with
``>`` factor x budget (the same edges as ``slo_report``), plus the budget alert at a share of the
budget over the SLO window. The error ratio of a source:

* ``prometheus``: ``sum(rate(bad[W])) / sum(rate(total[W]))`` (or ``1 - good/total``; for latency,
  ``1 - bucket{le=threshold} / bucket{le="+Inf"}``);
* ``history`` (the health_check textfile metrics of check ``C``): availability
  ``1 - avg_over_time(opsready_health_check_up{check="C"}[W])``, error rate
  ``avg_over_time(opsready_health_check_error_ratio{check="C"}[W])``, latency the average of a recorded
  ``latency > threshold`` 0/1 series.

Host and backup rules are built from the metrics docs/metrics.md lists. Insight rules come from
``INSIGHT_RULES`` below, a table to extend as db_insights/Redis metrics are exported.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from fractions import Fraction
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.slo.budget import BURN_ALERTS, windows_needed
from ansible_collections.opsready.operations.plugins.module_utils.slo.definitions import Slo, format_duration

RATIO = 'opsready_slo:sli_error:ratio_rate%s'
LATENCY_OVER = 'opsready_slo:check_latency_over_threshold:bool'
_SELECTOR_RE = re.compile(r'^\s*[A-Za-z_:][A-Za-z0-9_:]*\s*(\{.*\})?\s*$', re.S)

# Levels of the host and backup rules; the module's ``thresholds`` overrides them.
THRESHOLDS: Dict[str, Optional[float]] = {
    'health_stale_minutes': 15,          # the health job runs every 5 minutes: three missed runs
    'health_critical_minutes': 10,
    'check_down_minutes': 10,
    'filesystem_used_ratio': 0.9,
    'filesystem_fill_hours': 4,          # alert when the free space trend reaches 0 within this many hours
    'tls_expiry_days': 14,
    'full_backup_max_age_hours': 26,     # a nightly full plus slack
    'rpo_minutes': None,                 # set to alert on the recoverable point (WAL/binlog shipping)
}

# Insight rules (db_insights and Redis metrics): one row per rule, rendered into the group
# "opsready-insights" with the same shape as the host rules. Add a row when a metric is exported and
# listed in docs/metrics.md; keep exprs on exported names only (promtool checks syntax, not names).
#   {'alert': 'OpsreadyDbConnectionsNearMax', 'expr': '<metric> > 0.9', 'for': '5m',
#    'severity': 'warning', 'summary': '...', 'description': '...'}
#   {'record': 'opsready:<level>:<metric>:<op>', 'expr': '...'}
INSIGHT_RULES: List[Dict[str, Any]] = []


def _string(value: str) -> str:
    """A PromQL string literal (Go escapes; json.dumps gives a subset of them)."""
    return json.dumps(value)


def _selector(query: str, what: str) -> str:
    if not _SELECTOR_RE.match(query or ''):
        raise OpsReadyError('%s %r is not a metric selector (name{label="value",...}); rules need the counter '
                            'itself, without functions.' % (what, query))
    return query.strip()


def with_matcher(selector: str, label: str, value: str) -> str:
    selector = selector.strip()
    matcher = '%s=%s' % (label, _string(value))
    if selector.endswith('}'):
        body = selector[selector.index('{') + 1:-1].strip()
        return '%s{%s}' % (selector[:selector.index('{')].strip(), (body + ',' if body else '') + matcher)
    return '%s{%s}' % (selector, matcher)


def _number(value: Fraction) -> str:
    return repr(float(value))


def _le_text(slo: Slo) -> str:
    if slo.bucket_le:
        return slo.bucket_le
    seconds = float(slo.threshold_ms or 0) / 1000.0
    return ('%.9f' % seconds).rstrip('0').rstrip('.') if seconds != int(seconds) else '%d' % seconds


def error_ratio_expr(slo: Slo, window: str) -> str:
    if slo.source == 'prometheus':
        if slo.sli == 'latency':
            buckets = _selector(slo.bucket_query or '', 'bucket_query')
            return '1 - (sum(rate(%s[%s])) / sum(rate(%s[%s])))' % (
                with_matcher(buckets, 'le', _le_text(slo)), window, with_matcher(buckets, 'le', '+Inf'), window)
        total = 'sum(rate(%s[%s]))' % (_selector(slo.total_query or '', 'total_query'), window)
        if slo.good_query:
            return '1 - (sum(rate(%s[%s])) / %s)' % (_selector(slo.good_query, 'good_query'), window, total)
        return 'sum(rate(%s[%s])) / %s' % (_selector(slo.bad_query or '', 'bad_query'), window, total)
    check = _string(slo.check or '')
    if slo.sli == 'availability':
        return '1 - avg_over_time(opsready_health_check_up{check=%s}[%s])' % (check, window)
    if slo.sli == 'error_rate':
        return 'avg_over_time(opsready_health_check_error_ratio{check=%s}[%s])' % (check, window)
    return 'avg_over_time(%s{slo=%s}[%s])' % (LATENCY_OVER, _string(slo.name), window)


def slo_group(slo: Slo, budget_alert_percent: float) -> Dict[str, Any]:
    labels = {'slo': slo.name, 'service': slo.service}
    rules: List[Dict[str, Any]] = []
    if slo.source == 'history' and slo.sli == 'latency':
        rules.append({'record': LATENCY_OVER,
                      'expr': 'opsready_health_check_latency_seconds{check=%s} > bool %s'
                              % (_string(slo.check or ''), _le_text(slo)),
                      'labels': dict(labels)})
    for seconds in windows_needed(slo):
        window = format_duration(seconds)
        rules.append({'record': RATIO % window, 'expr': error_ratio_expr(slo, window), 'labels': dict(labels)})
    budget = _number(slo.allowed)
    sel = '{slo=%s}' % _string(slo.name)
    for severity, long_s, short_s, factor in BURN_ALERTS:
        long_w, short_w = format_duration(long_s), format_duration(short_s)
        level = '(%s * %s)' % (repr(float(factor)), budget)
        rules.append({
            'alert': 'OpsreadySloBurnRate',
            'expr': '%s%s > %s and %s%s > %s' % (RATIO % long_w, sel, level, RATIO % short_w, sel, level),
            'labels': dict(labels, severity=severity, long_window=long_w, short_window=short_w),
            'annotations': {
                'summary': 'SLO %s burns its error budget over %gx too fast (%s and %s)'
                           % (slo.name, float(factor), long_w, short_w),
                'description': 'The error ratio of %s (%s, objective %g %% over %s) is above %gx its budget of %s '
                               'in both the %s and the %s window.'
                               % (slo.name, slo.sli, slo.objective, format_duration(slo.window), float(factor),
                                  budget, long_w, short_w)}})
    share = Fraction(repr(float(budget_alert_percent))) / 100
    rules.append({
        'alert': 'OpsreadySloErrorBudgetSpent',
        'expr': '%s%s >= (%s * %s)' % (RATIO % format_duration(slo.window), sel, _number(share), budget),
        'labels': dict(labels, severity='warning'),
        'annotations': {'summary': 'SLO %s has spent %g %% of its error budget' % (slo.name, budget_alert_percent),
                        'description': '%s (objective %g %% over %s) has spent at least %g %% of its error budget.'
                                       % (slo.name, slo.objective, format_duration(slo.window),
                                          budget_alert_percent)}})
    return {'name': 'opsready-slo-%s' % slo.name, 'rules': rules}


def _alert(name: str, expr: str, severity: str, summary: str, description: str,
           for_: Optional[str] = None) -> Dict[str, Any]:
    rule: Dict[str, Any] = {'alert': name, 'expr': expr}
    if for_:
        rule['for'] = for_
    rule['labels'] = {'severity': severity}
    rule['annotations'] = {'summary': summary, 'description': description}
    return rule


def _minutes(value: Optional[float]) -> str:
    return format_duration(int(round(float(value or 0) * 60)))


def host_group(th: Dict[str, Optional[float]]) -> Dict[str, Any]:
    stale = int(round(float(th['health_stale_minutes'] or 15) * 60))
    fill = float(th['filesystem_fill_hours'] or 4) * 3600
    within = format_duration(int(fill))
    used = th['filesystem_used_ratio']
    return {'name': 'opsready-host', 'rules': [
        {'record': 'opsready:health_last_run_age_seconds',
         'expr': 'time() - opsready_health_last_run_timestamp_seconds'},
        {'record': 'opsready:filesystem_free_bytes:predict_linear%s' % format_duration(int(fill)),
         'expr': 'predict_linear(opsready_health_filesystem_free_bytes[6h], %d)' % fill},
        _alert('OpsreadyHealthCritical', 'opsready_health_verdict == 2', 'critical',
               'Health of {{ $labels.instance }} is critical',
               'The opsready health check reports a critical finding on {{ $labels.instance }}.',
               _minutes(th['health_critical_minutes'])),
        _alert('OpsreadyHealthStale', 'opsready:health_last_run_age_seconds > %d' % stale, 'warning',
               'The health check of {{ $labels.instance }} stopped running',
               'No opsready health check has run on {{ $labels.instance }} for %s.' % format_duration(stale)),
        _alert('OpsreadyCheckDown', 'opsready_health_check_up == 0', 'critical',
               'Check {{ $labels.check }} fails on {{ $labels.instance }}',
               'The %s check {{ $labels.check }} has failed for %s.' % ('{{ $labels.type }}',
                                                                        _minutes(th['check_down_minutes'])),
               _minutes(th['check_down_minutes'])),
        _alert('OpsreadyFilesystemAlmostFull', 'opsready_health_filesystem_used_ratio > %s' % used,
               'warning', 'Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} is almost full',
               'More than %g %% of {{ $labels.mountpoint }} is used.' % (100 * float(th['filesystem_used_ratio'] or 0)),
               '15m'),
        _alert('OpsreadyFilesystemFillsSoon',
               'opsready:filesystem_free_bytes:predict_linear%s < 0' % format_duration(int(fill)), 'warning',
               'Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} fills within %s' % within,
               'At the trend of the last 6 hours {{ $labels.mountpoint }} has no free space left within %s.'
               % format_duration(int(fill)), '30m'),
        _alert('OpsreadyFilesystemUnresponsive', 'opsready_health_filesystem_up == 0', 'critical',
               'Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} does not answer',
               'statvfs on {{ $labels.mountpoint }} timed out or failed (a hung network mount?).', '5m'),
        _alert('OpsreadyCertificateExpiresSoon',
               'opsready_health_check_tls_expiry_timestamp_seconds - time() < %d' % (float(th['tls_expiry_days'] or 14)
                                                                                     * 86400),
               'warning', 'The certificate served to {{ $labels.check }} expires soon',
               'The certificate of {{ $labels.check }} expires within %g days.' % float(th['tls_expiry_days'] or 14)),
    ]}


def backup_group(th: Dict[str, Optional[float]]) -> Dict[str, Any]:
    max_age = int(round(float(th['full_backup_max_age_hours'] or 26) * 3600))
    rules: List[Dict[str, Any]] = [
        {'record': 'opsready:backup_full_age_seconds',
         'expr': 'time() - opsready_backup_last_full_success_timestamp_seconds'},
        {'record': 'opsready:backup_recovery_point_age_seconds',
         'expr': 'time() - opsready_backup_recoverable_until_timestamp_seconds'},
        _alert('OpsreadyFullBackupTooOld', 'opsready:backup_full_age_seconds > %d' % max_age, 'critical',
               'The newest full backup of {{ $labels.database }} is older than %s' % format_duration(max_age),
               'No full backup of {{ $labels.engine }} {{ $labels.database }} in {{ $labels.directory }} finished in '
               'the last %s.' % format_duration(max_age)),
        _alert('OpsreadyBackupVerificationFailed', 'opsready_backup_last_full_verified == 0', 'critical',
               'The newest full backup of {{ $labels.database }} failed verification',
               'backup_verify found the newest full backup of {{ $labels.database }} in {{ $labels.directory }} '
               'damaged: take a new one and find out why.'),
        _alert('OpsreadyBackupNotVerified', 'opsready_backup_last_full_verified == -1', 'warning',
               'The newest full backup of {{ $labels.database }} was never verified',
               'Run backup_verify on {{ $labels.directory }}: an unverified backup is not proven restorable.',
               format_duration(max_age)),
    ]
    if th.get('rpo_minutes'):
        rpo = int(round(float(th['rpo_minutes'] or 0) * 60))
        rules.append(_alert('OpsreadyRpoBreached', 'opsready:backup_recovery_point_age_seconds > %d' % rpo, 'critical',
                            'The recovery point of {{ $labels.database }} is older than %s' % format_duration(rpo),
                            'A restore of {{ $labels.database }} now would lose more than the RPO of %s.'
                            % format_duration(rpo)))
    return {'name': 'opsready-backup', 'rules': rules}


def insight_group() -> Dict[str, Any]:
    rules = []
    for row in INSIGHT_RULES:
        if 'record' in row:
            rules.append({'record': row['record'], 'expr': row['expr']})
        else:
            rules.append(_alert(row['alert'], row['expr'], row.get('severity', 'warning'), row['summary'],
                                row.get('description', row['summary']), row.get('for')))
    return {'name': 'opsready-insights', 'rules': rules}


EXTRA_KEYS = ('alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations')


def extra_group(extra: List[Dict[str, Any]]) -> Dict[str, Any]:
    rules = []
    for index, raw in enumerate(extra):
        unknown = sorted(set(raw) - set(EXTRA_KEYS))
        if unknown:
            raise OpsReadyError('extra_rules[%d]: unknown key(s) %s; a rule takes %s.'
                                % (index, ', '.join(unknown), ', '.join(EXTRA_KEYS)))
        if bool(raw.get('alert')) == bool(raw.get('record')) or not raw.get('expr'):
            raise OpsReadyError('extra_rules[%d]: give expr and exactly one of alert or record.' % index)
        rules.append({k: raw[k] for k in EXTRA_KEYS if raw.get(k) not in (None, '', {})})
    return {'name': 'opsready-extra', 'rules': rules}


def thresholds(overrides: Optional[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    result = dict(THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key not in THRESHOLDS:
            raise OpsReadyError('thresholds: unknown key %s; use %s.' % (key, ', '.join(sorted(THRESHOLDS))))
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise OpsReadyError('thresholds.%s must be a number, not %r.' % (key, value))
            if value <= 0:
                raise OpsReadyError('thresholds.%s must be more than 0.' % key)
        result[key] = value
    return result


def build(slos: List[Slo], host: bool = True, backup: bool = True, insights: bool = True,
          levels: Optional[Dict[str, Optional[float]]] = None, extra: Optional[List[Dict[str, Any]]] = None,
          budget_alert_percent: float = 50.0) -> Dict[str, Any]:
    if not 0 < budget_alert_percent <= 100:
        raise OpsReadyError('budget_alert_percent must be in (0, 100], not %s.' % budget_alert_percent)
    th = levels or dict(THRESHOLDS)
    groups = [slo_group(slo, budget_alert_percent) for slo in slos]
    if host:
        groups.append(host_group(th))
    if backup:
        groups.append(backup_group(th))
    if insights and INSIGHT_RULES:
        groups.append(insight_group())
    if extra:
        groups.append(extra_group(extra))
    return {'groups': groups}


HEADER = ('# Prometheus rules written by opsready.operations.prometheus_rules; do not edit (the next run replaces\n'
          '# this file). Validate: promtool check rules FILE.\n')


def render(doc: Dict[str, Any]) -> str:
    """YAML when PyYAML is importable (block style, keys in rule order), else JSON (also valid YAML)."""
    try:
        import yaml
    except ImportError:
        return HEADER + json.dumps(doc, indent=2) + '\n'
    return HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=10000, allow_unicode=True)


def count(doc: Dict[str, Any]) -> Dict[str, int]:
    rules = [r for g in doc['groups'] for r in g['rules']]
    return {'groups': len(doc['groups']), 'recording': sum(1 for r in rules if 'record' in r),
            'alerting': sum(1 for r in rules if 'alert' in r)}


def promtool_check(text: str, promtool: str, directory: Optional[str] = None) -> str:
    """Run ``promtool check rules`` on ``text``; returns its output, raises with it on failure."""
    fd, path = tempfile.mkstemp(prefix='.opsready-rules-', suffix='.yml', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
        rc, out, err = ToolRunner().run([promtool, 'check', 'rules', path], check=False, timeout=120)
    finally:
        os.unlink(path)
    output = (out + err).replace(path, '<rules>').strip()
    if rc != 0:
        raise OpsReadyError('promtool check rules refused the generated rules: %s' % output, promtool_output=output)
    return output
