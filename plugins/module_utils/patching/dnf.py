# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dnf/yum backend of OS patching (RHEL, Rocky, Alma, Fedora), written to the apt backend's contract.

NOT exercised by the test suite: the test machine is Debian and has no rpm database. The plan comes
from ``dnf check-update`` (``--security`` needs updateinfo metadata, as on RHEL), holds are passed as
``--exclude``, snapshots come from ``rpm -qa``, and the reboot decision from ``needs-restarting -r``
(dnf-utils / yum-utils).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import shutil
from typing import Dict, List, Optional, Sequence, Set

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.patching.packages import Planned, Snapshot

ENV = {'LC_ALL': 'C.UTF-8'}


def parse_check_update(text: str, security: bool) -> List[Planned]:
    """Lines ``name.arch  version  repo`` after the metadata banner of ``dnf check-update``."""
    found: List[Planned] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or '.' not in parts[0] or line.startswith(('Last metadata', 'Obsoleting')):
            continue
        name, dummy_sep, arch = parts[0].rpartition('.')
        found.append(Planned(name=name, new=parts[1], arch=arch, origin=parts[2], security=security))
    return found


class DnfBackend:
    name = 'dnf'

    def __init__(self, runner: ToolRunner, timeout: Optional[float] = None) -> None:
        self.runner = runner
        self.timeout = timeout
        tool = shutil.which('dnf', path=runner.env.get('PATH')) or shutil.which('yum', path=runner.env.get('PATH'))
        if not tool:
            raise OpsReadyError('Neither dnf nor yum was found on this host; set patching_backend to match it.')
        self.tool: str = tool
        self.exclude: List[str] = []

    def update(self) -> None:
        self.runner.run([self.tool, '-q', 'makecache'], env=ENV, timeout=self.timeout, what='dnf makecache')

    def snapshot(self) -> Snapshot:
        fmt = '%{NAME}:%{ARCH}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n'
        dummy_rc, out, dummy_err = self.runner.run(['rpm', '-qa', '--qf', fmt], env=ENV, what='rpm -qa')
        result: Snapshot = {}
        for line in out.splitlines():
            key, dummy_sep, version = line.partition('\t')
            result[key] = version[2:] if version.startswith('0:') else version
        return result

    persistent_holds = False    # excludes are options of this run's dnf commands, never written anywhere

    def held(self) -> Set[str]:
        return set()   # versionlock is honoured by dnf itself

    def auto_installed(self) -> Set[str]:
        return set()

    def mark(self, how: str, names: Sequence[str]) -> None:
        if how == 'hold':
            self.exclude = sorted(names)
        elif how == 'unhold':
            self.exclude = []

    def _listing(self, security: bool) -> List[Planned]:
        argv = [str(self.tool), '-q', 'check-update'] + (['--security'] if security else [])
        rc, out, err = self.runner.run(argv, env=ENV, timeout=self.timeout, check=False, what='dnf check-update')
        if rc not in (0, 100):
            raise self.runner.failure(argv, rc, err, 'dnf check-update')
        return parse_check_update(out, security)

    def candidates(self, mode: str) -> Dict[str, List]:
        security = {p.name for p in self._listing(True)}
        items = self._listing(False)
        for item in items:
            item.origin = (item.origin + ' security') if item.name in security else item.origin
        snap = self.snapshot()
        for item in items:
            item.old = snap.get('%s:%s' % (item.name, item.arch))
        return {'upgrades': items, 'removals': []}

    def simulate_install(self, items: Sequence[Planned]) -> Dict[str, List]:
        return {'upgrades': list(items), 'removals': []}

    def _excludes(self) -> List[str]:
        return ['--exclude=%s' % name for name in self.exclude]

    def upgrade_all(self, mode: str) -> None:
        self.runner.run([str(self.tool), '-y', 'upgrade'] + self._excludes(), env=ENV, timeout=self.timeout,
                        what='dnf upgrade')

    def install_versions(self, items: Sequence[Planned]) -> None:
        wanted = ['%s-%s' % (i.name, i.new) for i in items]
        self.runner.run([str(self.tool), '-y', 'upgrade'] + self._excludes() + wanted, env=ENV,
                        timeout=self.timeout, what='dnf upgrade (selected)')

    def autoremove(self, simulate: bool) -> List[str]:
        if not simulate:
            self.runner.run([str(self.tool), '-y', 'autoremove'], env=ENV, timeout=self.timeout, what='dnf autoremove')
        return []


def needs_restarting(runner: ToolRunner) -> Optional[bool]:
    """``needs-restarting -r``: exit 1 means a reboot is required; None when the tool is missing."""
    tool = shutil.which('needs-restarting', path=runner.env.get('PATH'))
    if not tool:
        return None
    rc, dummy_out, dummy_err = runner.run([tool, '-r'], env=ENV, check=False, what='needs-restarting -r')
    return rc == 1
