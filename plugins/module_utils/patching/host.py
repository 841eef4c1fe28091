# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about the host that decide what happens after an update: can it reboot, and which running
processes still use files the update replaced (needrestart's approach: ``(deleted)`` mappings in
/proc/PID/maps and /proc/PID/exe), mapped to their systemd units.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Sequence

# Mappings that are deleted by design, not by a package upgrade.
_TMP_PREFIXES = ('/tmp/', '/var/tmp/')  # nosec B108 # prefixes matched in /proc/*/maps, no file is made
IGNORED_PREFIXES = ('/memfd:', '/dev/', '/SYSV', '/run/', '/proc/', '/[', '/home/', '/root/') + _TMP_PREFIXES
UNIT_RE = re.compile(r'/([^/]+\.service)(?:/|$)')


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError:
        return None


def container_kind(root: str = '/') -> Optional[str]:
    """The container technology this host runs in, or None on a VM or bare metal."""
    if os.path.exists(os.path.join(root, '.dockerenv')):
        return 'docker'
    if os.path.exists(os.path.join(root, 'run/.containerenv')):
        return 'podman'
    env = _read(os.path.join(root, 'proc/1/environ')) or ''
    match = re.search(r'(?:^|\x00)container=([^\x00]+)', env)
    if match:
        return match.group(1)
    cgroup = _read(os.path.join(root, 'proc/1/cgroup')) or ''
    for marker in ('docker', 'kubepods', 'lxc', 'containerd'):
        if marker in cgroup:
            return marker
    return None


def machine_id() -> Optional[str]:
    value = (_read('/etc/machine-id') or '').strip()
    return value or None


def reboot_blockers(controller_machine_id: Optional[str], allow_container: bool = False) -> List[str]:
    """Reasons this host must not be rebooted by the playbook (empty when a reboot is possible)."""
    reasons = []
    kind = container_kind()
    if kind and not allow_container:
        reasons.append('the host is a %s container (restart the container from its orchestrator instead)' % kind)
    init = (_read('/proc/1/comm') or '').strip()
    if init and init not in ('systemd', 'init') and not kind:
        reasons.append('PID 1 is %s, not an init system' % init)
    mine = machine_id()
    if controller_machine_id and mine and controller_machine_id.strip() == mine:
        reasons.append('the host is the machine running Ansible (machine-id %s); rebooting it would kill the run'
                       % mine)
    return reasons


def _unit_of(pid: str) -> Optional[str]:
    cgroup = _read('/proc/%s/cgroup' % pid) or ''
    for line in cgroup.splitlines():
        path = line.split(':', 2)[-1]
        if '/user.slice/' in path or path.startswith('/user.slice'):
            return None
        match = UNIT_RE.search(path)
        if match:
            return match.group(1)
    return None


def stale_processes(prefixes: Sequence[str] = ('/usr/', '/lib', '/bin/', '/sbin/', '/opt/'),
                    ignore_pids: Sequence[int] = (), ignored: Sequence[str] = IGNORED_PREFIXES) -> List[Dict[str, Any]]:
    """Processes mapping or executing a file that has since been replaced or deleted."""
    own = {os.getpid(), os.getppid()} | set(ignore_pids)
    found = []
    for pid in sorted((p for p in os.listdir('/proc') if p.isdigit()), key=int):
        if int(pid) in own:
            continue
        files = set()
        maps = _read('/proc/%s/maps' % pid)
        if maps is None:
            continue
        for line in maps.splitlines():
            if not line.endswith(' (deleted)'):
                continue
            fields = line.split(None, 5)
            if len(fields) < 6:
                continue
            path = fields[5][:-len(' (deleted)')]
            if path.startswith(tuple(ignored)) or not path.startswith(tuple(prefixes)):
                continue
            files.add(path)
        try:
            exe = os.readlink('/proc/%s/exe' % pid)
        except OSError:
            exe = ''
        if exe.endswith(' (deleted)') and exe.startswith(tuple(prefixes)):
            files.add(exe[:-len(' (deleted)')])
        if files:
            comm = (_read('/proc/%s/comm' % pid) or '').strip()
            found.append({'pid': int(pid), 'name': comm, 'unit': _unit_of(pid), 'files': sorted(files)})
    return found
