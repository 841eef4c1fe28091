# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One outcome of a runbook job (a backup, a verification, a drill, a patch run, a certificate renewal), the
thing every notification channel renders.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict

# The jobs whose outcomes the collection reports; ``other`` covers a user's own playbooks.
JOBS = ('backup', 'verify', 'drill', 'restore', 'patching', 'certificate', 'maintenance', 'health', 'other')
# success and failure come from the job itself; stale is raised by the ledger when no success came in time.
OUTCOMES = ('success', 'failure', 'stale')
# PagerDuty Events v2 severities; Slack/Teams/e-mail show the same word.
SEVERITY = {'failure': 'critical', 'stale': 'warning', 'success': 'info'}
_SPACES = re.compile(r'\s+')


def one_line(text: Any) -> str:
    """``text`` folded to one line for a header-bound field (e-mail Subject, a dedup key, a card title).

    Every control character (C0, DEL, C1) and every line or paragraph separator becomes a space, and runs of
    white space shrink to one: EmailMessage refuses CR/LF in a header (ValueError), and a NUL or an escape
    sequence has no business in a subject line. Bodies keep the text as given.
    """
    chars = [' ' if unicodedata.category(c) in ('Cc', 'Zl', 'Zp') else c for c in str(text)]
    return _SPACES.sub(' ', ''.join(chars)).strip()


def control_characters(text: Any) -> bool:
    """Whether ``text`` holds a character that :func:`one_line` would fold (for refusing user settings)."""
    return any(unicodedata.category(c) in ('Cc', 'Zl', 'Zp') for c in str(text))


@dataclass
class Event:
    job: str
    name: str
    outcome: str
    host: str
    summary: str = ''
    details: Dict[str, Any] = field(default_factory=dict)
    at: str = ''

    def __post_init__(self) -> None:
        if not self.at:
            self.at = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')

    @property
    def key(self) -> str:
        """What the ledger tracks and PagerDuty deduplicates on: one job for one thing on one host."""
        return one_line('%s:%s@%s' % (self.job, self.name, self.host))

    @property
    def severity(self) -> str:
        return SEVERITY[self.outcome]

    @property
    def title(self) -> str:
        words = {'success': 'succeeded', 'failure': 'FAILED', 'stale': 'is STALE (no success in time)'}
        return one_line('%s %s on %s %s' % (self.job, self.name, self.host, words[self.outcome]))

    def text(self) -> str:
        """The plain-text body: title, summary, then one ``key: value`` line per detail."""
        lines = [self.title]
        if self.summary:
            lines.append(self.summary)
        lines.extend('%s: %s' % (k, self.details[k]) for k in sorted(self.details))
        lines.append('at %s' % self.at)
        return '\n'.join(lines)

    def as_dict(self) -> Dict[str, Any]:
        return {'job': self.job, 'name': self.name, 'outcome': self.outcome, 'host': self.host,
                'summary': self.summary, 'details': dict(self.details), 'at': self.at,
                'severity': self.severity, 'title': self.title, 'key': self.key}
