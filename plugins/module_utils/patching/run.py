# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's update run: plan, protect holds, upgrade, and report exactly what changed.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.patching import apt, dnf, holds, host
from ansible_collections.opsready.operations.plugins.module_utils.patching.packages import (
    diff_text,
    difference,
    matches,
    partition,
)


@dataclass
class Options:
    backend: str = 'auto'                 # auto, apt, dnf
    mode: str = 'safe'                    # safe (never removes), full (dist-upgrade)
    security_only: bool = False
    security_pattern: str = r'(?i)security'
    hold: List[str] = field(default_factory=list)
    only: List[str] = field(default_factory=list)
    autoremove: bool = False
    update_cache: bool = True
    apt_config: Dict[str, str] = field(default_factory=dict)
    reboot_required_file: str = '/var/run/reboot-required'
    lock_timeout: int = 120
    timeout: Optional[float] = None
    controller_machine_id: Optional[str] = None
    allow_container_reboot: bool = False
    restart_exclude: List[str] = field(default_factory=list)
    hold_state_file: str = holds.DEFAULT_PATH


def detect_backend(name: str) -> str:
    if name != 'auto':
        return name
    path = os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')
    for candidate, tool in (('apt', 'apt-get'), ('dnf', 'dnf'), ('dnf', 'yum')):
        if any(os.access(os.path.join(d, tool), os.X_OK) for d in path.split(os.pathsep)):
            return candidate
    raise OpsReadyError('No supported package manager (apt-get, dnf, yum) on this host; patching supports the '
                        'Debian and RHEL families.')


def make_backend(opts: Options, runner: ToolRunner) -> Any:
    kind = detect_backend(opts.backend)
    if kind == 'apt':
        return apt.AptBackend(runner, opts.apt_config, opts.lock_timeout, opts.timeout)
    if opts.apt_config:
        raise OpsReadyError('apt_config was given but this host uses %s; remove it for RHEL-family hosts.' % kind)
    return dnf.DnfBackend(runner, opts.timeout)


def _reboot_required(backend: Any, opts: Options, runner: ToolRunner) -> Dict[str, Any]:
    if backend.name == 'apt':
        return {'reboot_required': apt.reboot_required(opts.reboot_required_file),
                'reboot_required_by': apt.reboot_required_packages(opts.reboot_required_file)}
    answer = dnf.needs_restarting(runner)
    return {'reboot_required': bool(answer), 'reboot_required_by': [],
            'reboot_check': 'needs-restarting -r' if answer is not None else 'needs-restarting not installed'}


def _after_update(result: Dict[str, Any], opts: Options) -> None:
    stale = host.stale_processes()
    result['processes_using_old_files'] = stale
    result['services_needing_restart'] = sorted({p['unit'] for p in stale if p['unit']})
    result['services_to_restart'] = [unit for unit in result['services_needing_restart']
                                     if not matches(unit, opts.restart_exclude)]
    result['reboot_blockers'] = host.reboot_blockers(opts.controller_machine_id, opts.allow_container_reboot)
    result['reboot_possible'] = not result['reboot_blockers']


def patch(opts: Options, check_mode: bool, runner: Optional[ToolRunner] = None) -> Dict[str, Any]:
    """Plan (check mode) or apply the update; returns the module result."""
    runner = runner or ToolRunner()
    backend = make_backend(opts, runner)
    if check_mode or not backend.persistent_holds:
        return _patch(opts, check_mode, runner, backend)
    with holds.exclusive(opts.hold_state_file, opts.lock_timeout):
        return _patch(opts, check_mode, runner, backend)


def _patch(opts: Options, check_mode: bool, runner: ToolRunner, backend: Any) -> Dict[str, Any]:
    started = time.monotonic()
    if backend.name == 'apt':
        apt.ensure_dpkg_consistent(runner)
    persistent = backend.persistent_holds
    already_held = backend.held()
    # Holds an interrupted run set and never released: not the operator's, so they go (only those still held).
    leftover = sorted(set(holds.recorded(opts.hold_state_file)) & already_held) if persistent else []
    if not check_mode and persistent:
        backend.mark('unhold', leftover)
        holds.forget(opts.hold_state_file)
    already_held -= set(leftover)
    if opts.update_cache and not check_mode:
        backend.update()
    before = backend.snapshot()
    offered = backend.candidates(opts.mode)
    plan = partition(offered['upgrades'], list(opts.hold) + sorted(already_held), opts.security_only,
                     opts.security_pattern, opts.only)
    selective = bool(opts.security_only or opts.only)
    would_remove = [] if selective else list(offered['removals'])
    result: Dict[str, Any] = {'backend': backend.name, 'plan': plan.as_dict(),
                              'held': [p.as_dict() for p in plan.held],
                              'released_holds': leftover}
    if opts.autoremove:
        would_remove += [name for name in backend.autoremove(simulate=True) if name not in would_remove]
    result['plan']['remove'] = would_remove

    if check_mode:
        result.update(changed=bool(plan.upgrade or would_remove or leftover),
                      upgraded=[{'name': p.name, 'arch': p.arch, 'old': p.old, 'new': p.new} for p in plan.upgrade],
                      installed=[], removed=[{'name': n} for n in would_remove])
        result['diff'] = {'before': ''.join('%s %s\n' % (p.name, p.old) for p in plan.upgrade)
                          + ''.join('%s installed\n' % n for n in would_remove),
                          'after': ''.join('%s %s\n' % (p.name, p.new) for p in plan.upgrade),
                          'before_header': 'packages now', 'after_header': 'packages after the update (planned)'}
        result.update(_reboot_required(backend, opts, runner))
        _after_update(result, opts)
        result['duration_seconds'] = round(time.monotonic() - started, 3)
        return result

    temporary_holds = sorted({p.name for p in plan.held} - already_held)
    auto_before = backend.auto_installed() if selective else set()
    try:
        if persistent and temporary_holds:
            holds.record(opts.hold_state_file, temporary_holds)
        try:
            backend.mark('hold', temporary_holds)
            if plan.upgrade:
                if selective:
                    backend.install_versions(plan.upgrade)
                else:
                    backend.upgrade_all(opts.mode)
            if opts.autoremove:
                backend.autoremove(simulate=False)
        finally:
            backend.mark('unhold', temporary_holds)
            # An explicit install marks packages manual; put back what apt installed as a dependency.
            if selective and backend.name == 'apt':
                backend.mark('auto', sorted(auto_before & {p.name for p in plan.upgrade}))
        if persistent and temporary_holds:
            holds.forget(opts.hold_state_file)
    except OpsReadyError as exc:
        raise _failed_midway(exc, backend, runner, before)
    after = backend.snapshot()
    changes = difference(before, after)
    touched = {'%s:%s' % (e['name'], e['arch']) if e['arch'] else str(e['name'])
               for kind in changes.values() for e in kind}
    result.update(changes)
    result['changed'] = bool(changes['upgraded'] or changes['installed'] or changes['removed'] or leftover)
    result['diff'] = {'before': diff_text(before, touched), 'after': diff_text(after, touched),
                      'before_header': 'packages before', 'after_header': 'packages after'}
    result.update(_reboot_required(backend, opts, runner))
    _after_update(result, opts)
    result['duration_seconds'] = round(time.monotonic() - started, 3)
    return result


def _failed_midway(exc: OpsReadyError, backend: Any, runner: ToolRunner, before: Dict[str, str]) -> OpsReadyError:
    """The package manager failed after it may have changed packages: the failure says which it changed and which
    it left broken, so the report and the operator see the host as it is, not the plan."""
    try:
        changes = difference(before, backend.snapshot())
        broken = apt.broken_packages(runner) if backend.name == 'apt' else []
    except OpsReadyError:
        return exc      # cannot even read the package database: the original failure is what to show
    details = dict(exc.details)
    details.update(changes)
    details['broken_packages'] = broken
    message = exc.message
    changed = sum(len(entries) for entries in changes.values())
    if changed:
        message += ' Before it failed, %d package(s) changed (upgraded/installed/removed in this result).' % changed
    if broken:
        message += (' dpkg left %s unconfigured: fix the cause (the output above), then run "dpkg --configure -a" '
                    'before the next patching run.' % ', '.join(broken))
    return OpsReadyError(message, **details)
