# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt/dpkg backend of OS patching (Debian, Ubuntu).

The plan comes from ``apt-get --simulate`` (its ``Inst`` lines carry the old version, the new version
and the archive each comes from, which is how security updates are told apart, as
unattended-upgrades does with origins). Held packages are protected with ``apt-mark hold`` for the
duration of the run and released afterwards (holds that existed before are left as they were).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Set

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.patching.packages import Planned, Snapshot

# Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64]) []
INST_RE = re.compile(r'^Inst (?P<name>\S+) (?:\[(?P<old>[^\]]+)\] )?'
                     r'\((?P<new>\S+) (?P<origin>.*?) ?\[(?P<arch>[^\]]+)\]\)')
REMV_RE = re.compile(r'^Remv (?P<name>\S+)')

ENV = {'DEBIAN_FRONTEND': 'noninteractive', 'APT_LISTCHANGES_FRONTEND': 'none', 'LC_ALL': 'C.UTF-8',
       'NEEDRESTART_MODE': 'l'}


def parse_simulation(text: str) -> Dict[str, List]:
    """``Inst`` and ``Remv`` lines of an ``apt-get -s`` run."""
    upgrades: List[Planned] = []
    removals: List[str] = []
    for line in text.splitlines():
        match = INST_RE.match(line)
        if match:
            upgrades.append(Planned(name=match['name'].split(':')[0], old=match['old'], new=match['new'],
                                    arch=match['arch'], origin=match['origin'].strip()))
            continue
        match = REMV_RE.match(line)
        if match:
            removals.append(match['name'])
    return {'upgrades': upgrades, 'removals': removals}


class AptBackend:
    """Runs apt-get, apt-mark and dpkg-query with fixed non-interactive options."""

    name = 'apt'
    persistent_holds = True     # dpkg selections outlive the run: see patching/holds.py

    def __init__(self, runner: ToolRunner, config: Optional[Dict[str, str]] = None,
                 lock_timeout: int = 120, timeout: Optional[float] = None) -> None:
        self.runner = runner
        self.timeout = timeout
        self.config = dict(config or {})
        self.options: List[str] = ['-o', 'DPkg::Lock::Timeout=%d' % lock_timeout,
                                   '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold']
        for key, value in (config or {}).items():
            self.options += ['-o', '%s=%s' % (key, value)]

    def _apt(self, args: Sequence[str], what: str) -> str:
        argv = [self.runner.which('apt-get', 'This host is not Debian-like; set patching_backend.')]
        argv += self.options + ['-q'] + list(args)
        dummy_rc, out, dummy_err = self.runner.run(argv, env=ENV, timeout=self.timeout, what=what)
        return out

    def update(self) -> None:
        self._apt(['update'], 'apt-get update (refreshing the package lists)')

    def _status(self) -> List[List[str]]:
        fmt = '${db:Status-Abbrev}\t${Package}:${Architecture}\t${Version}\n'
        dummy_rc, out, dummy_err = self.runner.run(['dpkg-query', '-W', '-f', fmt], env=ENV, what='dpkg-query')
        return [parts for parts in (line.split('\t') for line in out.splitlines()) if len(parts) == 3]

    def snapshot(self) -> Snapshot:
        """Installed packages (dpkg status ``?i``, held or not) and their versions."""
        return {key: version for status, key, version in self._status() if status[1:2] == 'i'}

    def held(self) -> Set[str]:
        """Packages whose dpkg selection is ``hold`` (what ``apt-mark showhold`` lists, without building a cache)."""
        return {key.split(':')[0] for status, key, dummy_version in self._status()
                if status[:1] == 'h' and status[1:2] == 'i'}

    def auto_installed(self) -> Set[str]:
        """Packages apt marked as automatically installed (``Auto-Installed: 1`` in extended_states)."""
        path = self.config.get('Dir::State::extended_states', '/var/lib/apt/extended_states')
        found: Set[str] = set()
        try:
            with open(path, encoding='utf-8') as handle:
                text = handle.read()
        except OSError:
            return found
        for stanza in text.split('\n\n'):
            fields = dict(line.split(': ', 1) for line in stanza.splitlines() if ': ' in line)
            if fields.get('Auto-Installed') == '1' and 'Package' in fields:
                found.add(fields['Package'])
        return found

    def mark(self, how: str, names: Sequence[str]) -> None:
        if not names:
            return
        if how in ('hold', 'unhold'):
            # dpkg selections are what apt-mark hold writes; set them directly (no apt cache needed).
            selection = ''.join('%s %s\n' % (n, 'hold' if how == 'hold' else 'install') for n in sorted(names))
            self.runner.run(['dpkg', '--set-selections'], data=selection.encode(), env=ENV,
                            what='dpkg --set-selections (%s)' % how)
        else:
            self.runner.run(['apt-mark'] + self.options + [how] + sorted(names), env=ENV, what='apt-mark %s' % how)

    def candidates(self, mode: str) -> Dict[str, List]:
        """Everything an upgrade would do, holds ignored (``mode``: safe or full)."""
        verb = ['dist-upgrade'] if mode == 'full' else ['upgrade', '--with-new-pkgs']
        # --ignore-hold: held packages are planned too, so the plan can list them as held back (partition)
        return parse_simulation(self._apt(['-s', '--ignore-hold'] + verb
                                          + ['-o', 'Debug::NoLocking=1'], 'apt-get --simulate'))

    def simulate_install(self, items: Sequence[Planned]) -> Dict[str, List]:
        return parse_simulation(self._apt(['-s', 'install', '--only-upgrade', '-o', 'Debug::NoLocking=1']
                                          + ['%s=%s' % (i.name, i.new) for i in items], 'apt-get --simulate'))

    def upgrade_all(self, mode: str) -> None:
        verb = ['dist-upgrade'] if mode == 'full' else ['upgrade', '--with-new-pkgs']
        self._apt(['-y'] + verb, 'apt-get %s' % verb[0])

    def install_versions(self, items: Sequence[Planned]) -> None:
        """Upgrade exactly these packages to these versions (security-only and ``only`` runs)."""
        self._apt(['-y', 'install', '--only-upgrade'] + ['%s=%s' % (i.name, i.new) for i in items],
                  'apt-get install (selected upgrades)')

    def autoremove(self, simulate: bool) -> List[str]:
        out = self._apt((['-s'] if simulate else ['-y']) + ['autoremove'] +
                        (['-o', 'Debug::NoLocking=1'] if simulate else []), 'apt-get autoremove')
        if simulate:
            return parse_simulation(out)['removals']
        return []


def reboot_required_packages(flag: str) -> List[str]:
    """Debian's /var/run/reboot-required.pkgs lists the packages that asked for the reboot."""
    try:
        with open(flag + '.pkgs', encoding='utf-8') as handle:
            return sorted({line.strip() for line in handle if line.strip()})
    except OSError:
        return []


def reboot_required(flag: str) -> bool:
    return os.path.exists(flag)


def broken_packages(runner: ToolRunner) -> List[str]:
    """Packages dpkg left unpacked, half-configured or half-installed (what ``dpkg --audit`` complains about)."""
    fmt = '${db:Status-Abbrev}\t${Package}\n'
    dummy_rc, out, dummy_err = runner.run(['dpkg-query', '-W', '-f', fmt], env=ENV, check=False, what='dpkg-query')
    broken = set()
    for line in out.splitlines():
        status, dummy_tab, name = line.partition('\t')
        # second letter: the package state (U unpacked, F half-configured, H half-installed, W/t triggers pending);
        # third: R when it needs a reinstall
        if status[1:2] in ('U', 'F', 'H') or status[2:3] == 'R':
            broken.add(name)
    return sorted(broken)


def ensure_dpkg_consistent(runner: ToolRunner) -> None:
    """An interrupted dpkg run must be finished by a human before patching proceeds."""
    dummy_rc, out, dummy_err = runner.run(['dpkg', '--audit'], env=ENV, check=False, what='dpkg --audit')
    if out.strip():
        raise OpsReadyError('dpkg reports half-installed or unconfigured packages; run "dpkg --configure -a" '
                            'and fix what it reports before patching this host.', dpkg_audit=out.strip())
