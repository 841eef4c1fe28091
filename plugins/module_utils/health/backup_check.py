# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup health check: age of the newest verified backup and of the recoverable point against the RPO.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health.registry import CheckType, register
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import Threshold, finding


@register
class BackupCheck(CheckType):
    """Per database in ``backup_dir``: the newest verified full must be younger than ``full_max_age_hours``,
    and the newest recoverable point (full plus contiguous logs/WAL) younger than ``rpo_minutes``; when the
    newest archived WAL segment / binlog is as old as that point the finding is ``archive_stale`` (a stopped
    archiver, not a gap); ``warning_percent`` of each level is the warning level."""

    type_name = 'backup'
    options = {'backup_dir': {'type': 'path'}, 'backup_engine': {'type': 'str'},
               'rpo_minutes': {'type': 'float'}, 'full_max_age_hours': {'type': 'float', 'default': 26.0},
               'warning_percent': {'type': 'float', 'default': 80.0},
               'verified_only': {'type': 'bool', 'default': True},
               'origin_succession': {'type': 'bool', 'default': False}}
    one_of = (('backup_dir',),)
    down_condition = 'backup_missing'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'backup:%s' % (spec.get('database') or os.path.basename(str(spec.get('backup_dir', '')).rstrip('/')))

    def validate(self, spec: Dict[str, Any]) -> None:
        for key in ('rpo_minutes', 'full_max_age_hours'):
            if spec.get(key) is not None and spec[key] <= 0:
                raise OpsReadyError('%s must be more than 0.' % key)
        if not 0 < spec['warning_percent'] <= 100:
            raise OpsReadyError('warning_percent must be in (0, 100].')

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        from ansible_collections.opsready.operations.plugins.module_utils.health import backup_freshness
        try:
            records = backup_freshness.assess(spec['backup_dir'], spec.get('backup_engine'), spec.get('database'),
                                              verified_only=spec['verified_only'],
                                              origin_succession=spec['origin_succession'])
        except OpsReadyError as exc:
            return {'ok': False, 'condition': 'backup_missing', 'message': exc.message, 'latency_ms': None}
        if not records:
            return {'ok': False, 'condition': 'backup_missing', 'latency_ms': None,
                    'message': 'No backup with a manifest in %s%s: take one.'
                    % (spec['backup_dir'], ' for %s' % spec['database'] if spec.get('database') else '')}
        ages = [r['rpo_seconds'] for r in records if r['rpo_seconds'] is not None]
        return {'ok': True, 'latency_ms': None, 'databases': records,
                'value': round(max(ages), 1) if ages else None,
                'message': '%d database(s) in %s.' % (len(records), spec['backup_dir'])}

    def _level(self, name: str, what: str, age: Optional[float], limit_seconds: float, spec: Dict[str, Any],
               unit: str, **extra: Any) -> List[Dict[str, Any]]:
        scale = 3600.0 if unit == 'h' else 60.0
        warning = limit_seconds * spec['warning_percent'] / 100.0
        if age is None:
            return [finding(name, 'backup_missing', None, None, 'critical',
                            '%s: no %s backup in the catalog.' % (extra.get('database') or name, what),
                            type=self.type_name, **extra)]
        if age >= limit_seconds:
            severity, level = 'critical', limit_seconds
        elif age >= warning:
            severity, level = 'warning', warning
        else:
            return []
        message = '%s: the newest %s is %.1f %s old (%s at %.1f %s).' % (
            extra.get('database') or name, what, age / scale, unit, severity, level / scale, unit)
        item = finding(name, 'backup_stale', round(age, 1), None, severity, message, type=self.type_name, **extra)
        item['threshold'] = round(level, 1)
        return [item]

    def _insecure(self, spec: Dict[str, Any]) -> List[Dict[str, Any]]:
        """A backup directory anyone can write (without the sticky bit) is critical: whoever can write it can
        replace or remove the backups and manifests this check vouches for. Its owner and a writing group are
        not reported: backups are often written by the database's own user or group (a WAL archive is written
        by PostgreSQL's archive_command as postgres, into a 0770 directory of group postgres)."""
        from ansible_collections.opsready.operations.plugins.module_utils.health import dirs
        found = dirs.risk(spec['backup_dir'], group_ok=True)
        if not found or found[0] != 'critical':
            return []
        return [finding(spec['name'], 'insecure_directory', None, None, 'critical',
                        'backup_dir %s; the backups there cannot be trusted. Make it not writable by others '
                        '(chmod o-w) or give it the sticky bit (chmod +t).' % found[1], type=self.type_name)]

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        if not result.get('ok'):
            return super().evaluate(spec, result, th) + self._insecure(spec)
        found: List[Dict[str, Any]] = self._insecure(spec)
        for record in result['databases']:
            extra = {'engine': record['engine'], 'database': record['database']}
            what = 'verified full' if spec['verified_only'] else 'full'
            found += self._level(spec['name'], what, record['full_age_seconds'], spec['full_max_age_hours'] * 3600,
                                 spec, 'h', **extra)
            if spec.get('rpo_minutes') and record['full_age_seconds'] is not None:
                rpo = self._level(spec['name'], 'recoverable point (full + logs)', record['rpo_seconds'],
                                  spec['rpo_minutes'] * 60, spec, 'min', **extra)
                log_age = record.get('log_age_seconds')
                if rpo and log_age is not None and log_age >= rpo[0]['threshold']:
                    # Continuous archiving stopped (not a gap in the chain): the newest archived WAL segment /
                    # binlog is as old as the recoverable point. The database keeps running and the last full
                    # stays fresh, so this is the finding that tells.
                    rpo[0]['condition'] = 'archive_stale'
                    rpo[0]['message'] += (' The newest archived WAL segment / binlog is %.1f min old: is archiving '
                                          'stopped? PostgreSQL: pg_stat_archiver (last_failed_wal) and the server log '
                                          'say why archive_command fails; an idle cluster archives nothing '
                                          '(archive_timeout only closes segments holding writes).' % (log_age / 60))
                found += rpo
        return found
