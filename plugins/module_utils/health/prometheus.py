# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus text exposition of a health run, for node_exporter's textfile collector.

node_exporter reads ``*.prom`` files in its ``--collector.textfile.directory``; the file must be
replaced atomically or the collector may read half of it, hence ``common.atomic``.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import math
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_text
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import RANK
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

PREFIX = 'opsready_health_'
Labels = Dict[str, str]
# Extra series of a check type (type name -> function(exposition, check result)); a check type that lives in
# its own file registers its function here when imported (replication_check).
EXPOSERS: Dict[str, Callable[[Any, Dict[str, Any]], None]] = {}


def _ratio(percent: Any) -> Optional[float]:
    """A 0-100 percent as the 0-1 ratio Prometheus names ``*_ratio`` carry by convention."""
    return None if percent is None else float(percent) / 100.0


def _timestamp(iso: Optional[str]) -> Optional[float]:
    """``2026-12-04T10:00:00Z`` as Unix seconds (how Prometheus exposes points in time)."""
    if not iso:
        return None
    parsed = datetime.datetime.strptime(iso, '%Y-%m-%dT%H:%M:%SZ')
    return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()


def escape(value: Any) -> str:
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return '1' if value else '0'
    value = float(value)
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class Exposition:
    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._families: Dict[str, Tuple[str, str, List[Tuple[Labels, Any]]]] = {}

    def add(self, name: str, help_text: str, value: Any, labels: Optional[Labels] = None,
            kind: str = 'gauge') -> None:
        if value is None:
            return
        family = self._families.setdefault(self.prefix + name, (help_text, kind, []))
        family[2].append((labels or {}, value))

    def add_as(self, full_name: str, help_text: str, value: Any, labels: Optional[Labels] = None,
               kind: str = 'gauge') -> None:
        """A sample of a family outside this exposition's prefix (a check type's own, ``opsready_redis_*``)."""
        if value is None:
            return
        self._families.setdefault(full_name, (help_text, kind, []))[2].append((labels or {}, value))

    def render(self) -> str:
        lines = []
        for name in sorted(self._families):
            help_text, kind, samples = self._families[name]
            lines.append('# HELP %s %s' % (name, help_text.replace('\\', '\\\\').replace('\n', ' ')))
            lines.append('# TYPE %s %s' % (name, kind))
            for labels, value in samples:
                label_text = ','.join('%s="%s"' % (k, escape(v)) for k, v in sorted(labels.items()))
                lines.append('%s%s %s' % (name, '{%s}' % label_text if label_text else '', _number(value)))
        return '\n'.join(lines) + '\n'


def build(result: Dict[str, Any], timestamp: float) -> str:
    """The exposition text of a ``health_check`` result (metrics, checks, findings, verdict).

    Names follow Prometheus' conventions (``promtool check metrics``): base units (seconds, bytes),
    fractions as 0-1 ``*_ratio``, points in time as ``*_timestamp_seconds``. docs/metrics.md lists them.
    """
    exp = Exposition()
    metrics = result.get('metrics', {})
    exp.add('verdict', 'Overall verdict: 0 ok, 1 warning, 2 critical.', RANK[result['verdict']])
    exp.add('last_run_timestamp_seconds', 'Unix time of the last health check run.', timestamp)
    exp.add('duration_seconds', 'Wall time of the last health check run.', result.get('duration_seconds'))
    if 'cpu' in metrics:
        exp.add('cpu_usage_ratio', 'CPU use over the sampling interval (0-1).', _ratio(metrics['cpu']['percent']))
    if 'load' in metrics:
        for window in ('1', '5', '15'):
            exp.add('load_per_core', 'Load average divided by the number of CPUs.',
                    metrics['load']['per_core' + window], {'window': window + 'm'})
    if 'memory' in metrics:
        exp.add('memory_usage_ratio', 'Memory in use, of total (0-1).', _ratio(metrics['memory']['percent']))
        exp.add('swap_usage_ratio', 'Swap in use, of total (0-1).', _ratio(metrics['memory']['swap_percent']))
    for fs in metrics.get('filesystems', []):
        labels = {'mountpoint': fs['mountpoint'], 'device': fs.get('device', ''), 'fstype': fs.get('fstype', '')}
        exp.add('filesystem_up', '1 when the filesystem could be measured.', 'error' not in fs, labels)
        if 'error' in fs:
            continue
        exp.add('filesystem_used_ratio', 'Filesystem space in use, as df computes it (0-1).', _ratio(fs['percent']),
                labels)
        exp.add('filesystem_size_bytes', 'Filesystem size.', fs['total_bytes'], labels)
        exp.add('filesystem_free_bytes', 'Filesystem space available to unprivileged users.', fs['free_bytes'],
                labels)
        exp.add('filesystem_inodes_used_ratio', 'Inodes in use (0-1).', _ratio(fs.get('inode_percent')), labels)
    for nic in metrics.get('network', []):
        labels = {'interface': nic['interface']}
        exp.add('network_receive_bytes_per_second', 'Receive rate over the sampling interval.',
                nic['rx_bytes_per_second'], labels)
        exp.add('network_transmit_bytes_per_second', 'Transmit rate over the sampling interval.',
                nic['tx_bytes_per_second'], labels)
        exp.add('network_link_usage_ratio', 'Busier direction as a fraction of link speed (0-1).',
                _ratio(nic.get('percent')), labels)
    exp.add('tcp_established', 'Established TCP connections.', metrics.get('tcp_established'))
    for check in result.get('checks', []):
        labels = {'check': check['name'], 'type': check['type']}
        exp.add('check_up', '1 when the check passed.', bool(check.get('ok')), labels)
        if check.get('latency_ms') is not None:
            exp.add('check_latency_seconds', 'Latency of the check (p95 when several requests).',
                    check['latency_ms'] / 1000.0, labels)
        exp.add('check_error_ratio', 'Failed requests, of requests sent (0-1).',
                _ratio(check.get('error_rate_percent')), labels)
        # The expiry itself, not the days left: a point in time stays right between runs and
        # `... - time()` gives the seconds left in any query.
        exp.add('check_tls_expiry_timestamp_seconds', 'Unix time the served certificate expires (notAfter).',
                _timestamp(check.get('tls_not_after')), labels)
        expose_type = EXPOSERS.get(check.get('type', ''))
        if expose_type is not None:
            expose_type(exp, check)
    per_check: Dict[str, int] = {}
    for item in result.get('findings', []):
        per_check[item['check']] = max(per_check.get(item['check'], 0), RANK[item['severity']])
    for check_name, rank in sorted(per_check.items()):
        exp.add('finding_severity', 'Worst finding per check: 1 warning, 2 critical.', rank, {'check': check_name})
    return exp.render()


def current(path: str) -> Optional[str]:
    """What the textfile holds now (None when there is none); anything but a regular file is refused by name."""
    data = safeio.read_regular_or_none(path, 16 * 1024 * 1024, what='textfile_path')
    return None if data is None else data.decode('utf-8', 'replace')


def write(path: str, text: str) -> bool:
    """Replace the textfile with ``text`` atomically; False (nothing written) when it already holds exactly that."""
    check_target(path)
    # What is at the final name now must be a regular file or nothing: a directory, a FIFO, a device or
    # a broken link there is refused by name before anything is written (the rename replaces a link).
    if current(path) == text:
        return False
    atomic_write_text(path, text, mode=0o644)
    return True


def check_target(path: str) -> None:
    """The refusals ``write`` makes before it writes (the name, the directory): check mode meets them too, so that it
    does not report a change the real run then refuses."""
    if not path.endswith('.prom'):
        raise OpsReadyError('textfile_path %s must end in .prom: node_exporter\'s textfile collector reads '
                            'only *.prom files.' % path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OpsReadyError('textfile_path directory %s does not exist: create it (node_exporter '
                            '--collector.textfile.directory) first.' % directory)
