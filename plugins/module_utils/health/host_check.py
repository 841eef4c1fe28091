# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host health checks: process (by name or pidfile), service (systemd unit state) and command (exit code
and output of a program run with an argument list, never a shell).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from typing import Any, Dict, List

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.health.registry import CheckType, ms, register
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import Threshold


@register
class ProcessCheck(CheckType):
    type_name = 'process'
    options = {'process': {'type': 'str'}, 'pidfile': {'type': 'path'}, 'min_count': {'type': 'int', 'default': 1}}
    one_of = (('process', 'pidfile'),)
    down_condition = 'service_down'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'process:%s' % (spec.get('process') or spec['pidfile'])

    def validate(self, spec: Dict[str, Any]) -> None:
        if spec['min_count'] < 1:
            raise OpsReadyError('min_count must be 1 or more.')
        try:
            import psutil  # noqa: F401
        except ImportError:
            raise OpsReadyError('process checks need the Python package psutil on the managed host.')

    @staticmethod
    def _matches(proc: Any, name: str) -> bool:
        try:
            if proc.name() == name:
                return True
            cmdline = proc.cmdline()
            return bool(cmdline) and os.path.basename(cmdline[0]) == name
        except Exception:
            return False

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        import psutil
        if spec.get('pidfile'):
            try:
                # The service's own account writes its pid file: a FIFO or /dev/zero put there must not hang or
                # fill root's health check, so only a small regular file is read.
                pid = int(safeio.read_regular(spec['pidfile'], 4096, what='pid file').split()[0])
            except (OSError, OpsReadyError, ValueError, IndexError) as exc:
                return {'ok': False, 'condition': 'service_down', 'latency_ms': None,
                        'message': 'pid file %s is missing or unreadable (%s): the process is not running.'
                                   % (spec['pidfile'], getattr(exc, 'strerror', None) or exc)}
            try:
                proc = psutil.Process(pid)
                alive = proc.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                alive = False
            if not alive:
                return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'value': pid,
                        'message': 'pid file %s names pid %d, which is not running (stale pid file).'
                                   % (spec['pidfile'], pid)}
            if spec.get('process') and not self._matches(proc, spec['process']):
                return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'value': pid,
                        'message': 'pid %d from %s is %s, not %s (stale pid file reused by another process).'
                                   % (pid, spec['pidfile'], proc.name(), spec['process'])}
            return {'ok': True, 'latency_ms': None, 'value': 1, 'pid': pid,
                    'message': 'pid %d from %s is running.' % (pid, spec['pidfile'])}
        pids = [p.pid for p in psutil.process_iter() if self._matches(p, spec['process'])]
        if len(pids) < spec['min_count']:
            return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'value': len(pids),
                    'message': '%d process(es) named %s running, at least %d expected.'
                               % (len(pids), spec['process'], spec['min_count'])}
        return {'ok': True, 'latency_ms': None, 'value': len(pids), 'pids': sorted(pids)[:20],
                'message': '%d process(es) named %s running.' % (len(pids), spec['process'])}


# --------------------------------------------------------------------------------------------
# service (systemd)
# --------------------------------------------------------------------------------------------
def systemd_running() -> bool:
    return os.path.isdir('/run/systemd/system') and shutil.which('systemctl') is not None


@register
class ServiceCheck(CheckType):
    type_name = 'service'
    options: Dict[str, Dict[str, Any]] = {}
    one_of = (('unit',),)
    down_condition = 'service_down'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'service:%s' % spec['unit']

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        if not systemd_running():
            return {'ok': False, 'condition': 'check_error', 'latency_ms': None,
                    'message': 'Cannot check unit %s: systemd is not running on this host; use a process check '
                               '(process or pidfile) instead.' % spec['unit']}
        rc, out, _err = ToolRunner().run(['systemctl', 'is-active', spec['unit']], check=False,
                                         timeout=spec['timeout'])
        state = out.strip() or 'unknown'
        if rc == 0:
            return {'ok': True, 'latency_ms': None, 'state': state, 'message': 'Unit %s is %s.' % (spec['unit'], state)}
        return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'state': state,
                'message': 'Unit %s is %s, not active.' % (spec['unit'], state)}


# --------------------------------------------------------------------------------------------
# command
# --------------------------------------------------------------------------------------------
@register
class CommandCheck(CheckType):
    type_name = 'command'
    options = {'argv': {'type': 'list', 'elements': 'str'}, 'cmd': {'type': 'str'},
               'expect_rc': {'type': 'list', 'elements': 'int', 'default': [0]}}
    one_of = (('argv', 'cmd'),)
    exclusive = (('argv', 'cmd'),)
    down_condition = 'command_failed'

    def _argv(self, spec: Dict[str, Any]) -> List[str]:
        return list(spec['argv']) if spec.get('argv') else shlex.split(spec['cmd'])

    def default_name(self, spec: Dict[str, Any]) -> str:
        argv = self._argv(spec)
        return 'command:%s' % (os.path.basename(argv[0]) if argv else '')

    def validate(self, spec: Dict[str, Any]) -> None:
        argv = self._argv(spec)
        if not argv:
            raise OpsReadyError('the command is empty.')
        if not (os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK)) and not shutil.which(argv[0]):
            raise OpsReadyError('%s is not an executable on PATH of the managed host.' % argv[0])

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        argv = self._argv(spec)
        start = time.monotonic()
        try:
            rc, out, err = ToolRunner().run(argv, check=False, timeout=spec['timeout'])
        except OpsReadyError as exc:
            return {'ok': False, 'condition': 'command_failed', 'latency_ms': None, 'timed_out': True,
                    'message': exc.message}
        tail = (out.strip() or err.strip()).splitlines()[-1:] or ['']
        result = {'latency_ms': ms(time.monotonic() - start), 'value': rc, 'rc': rc, 'output': tail[0][:300]}
        if rc in spec['expect_rc']:
            result.update(ok=True, message='%s exited %d.' % (spec['name'], rc))
        else:
            result.update(ok=False, condition='command_failed',
                          message='%s exited %d (expected %s): %s' % (spec['name'], rc,
                                                                      ', '.join(str(c) for c in spec['expect_rc']),
                                                                      tail[0][:300]))
        return result

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        if not result.get('ok'):
            return super().evaluate(spec, result, th)
        return []
