# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backend-neutral pieces of OS patching: the planned upgrade, package snapshots and their difference.

The report of what changed is computed from the package database before and after (dpkg-query or
rpm), never from the package manager's chatter, so it is exactly what is installed now.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

Snapshot = Dict[str, str]   # "name:arch" (or "name" when arch-less) -> version


@dataclass
class Planned:
    """One package the package manager would upgrade (or newly install)."""

    name: str
    new: str
    old: Optional[str] = None
    arch: str = ''
    origin: str = ''
    security: bool = False

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


@dataclass
class Plan:
    """What an update run would do; ``upgrade`` excludes held packages, ``held`` lists them."""

    upgrade: List[Planned] = field(default_factory=list)
    held: List[Planned] = field(default_factory=list)
    not_security: List[Planned] = field(default_factory=list)
    remove: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, object]:
        return {'upgrade': [p.as_dict() for p in self.upgrade], 'held': [p.as_dict() for p in self.held],
                'not_security': [p.as_dict() for p in self.not_security], 'remove': list(self.remove)}


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Package name matching a list of glob patterns (``linux-image-*``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def partition(candidates: Sequence[Planned], hold: Sequence[str], security_only: bool,
              security_pattern: str, only: Sequence[str]) -> Plan:
    """Split what the package manager offers into what this run upgrades and what it leaves alone."""
    plan = Plan()
    security_re = re.compile(security_pattern)
    for item in candidates:
        item.security = bool(security_re.search(item.origin or ''))
        if matches(item.name, hold):
            plan.held.append(item)
        elif only and not matches(item.name, only):
            continue
        elif security_only and not item.security:
            plan.not_security.append(item)
        else:
            plan.upgrade.append(item)
    return plan


def _split_key(key: str) -> Dict[str, str]:
    name, dummy_sep, arch = key.partition(':')
    return {'name': name, 'arch': arch}


def difference(before: Snapshot, after: Snapshot) -> Dict[str, List[Dict[str, Optional[str]]]]:
    """Upgraded (or downgraded), newly installed and removed packages between two snapshots."""
    upgraded: List[Dict[str, Optional[str]]] = []
    installed: List[Dict[str, Optional[str]]] = []
    removed: List[Dict[str, Optional[str]]] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        entry: Dict[str, Optional[str]] = dict(_split_key(key), old=old, new=new)
        if old is None:
            installed.append(entry)
        elif new is None:
            removed.append(entry)
        else:
            upgraded.append(entry)
    return {'upgraded': upgraded, 'installed': installed, 'removed': removed}


def diff_text(snapshot: Snapshot, keys: Iterable[str]) -> str:
    """The lines of ``snapshot`` for ``keys`` (for Ansible's --diff before/after)."""
    lines = ['%s %s' % (key, snapshot[key]) for key in sorted(keys) if key in snapshot]
    return '\n'.join(lines) + ('\n' if lines else '')
