# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The notification ledger: the last outcome and the last success of every job, so that a job that stopped
running (a disabled cron entry, a dead AWX schedule) is reported as stale instead of staying silent.

A JSON file written atomically under an exclusive lock (many hosts of one play delegate to one control node).
A stale episode is reported once: the entry remembers when, and the next success ends the episode.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from typing import Any, Dict, Iterator, List

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_json
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.notify.event import Event

VERSION = 1


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)


LEDGER_LIMIT = 64 * safeio.MiB   # thousands of jobs take well under 1 MiB


class Ledger:
    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: Dict[str, Dict[str, Any]] = {}
        # Before the lock file or the ledger is made (check mode too): an account owning a directory above could
        # link the directory's name to a directory of root's, where root would create and replace them.
        safeio.check_parents(os.path.dirname(os.path.abspath(path)), 'keep the notification ledger in',
                             'The directory of state_file')

    @contextlib.contextmanager
    def locked(self) -> Iterator['Ledger']:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise OpsReadyError('The directory of state_file %s does not exist: create it (the role does) or '
                                'point state_file elsewhere.' % self.path)
        with locks.waiting(self.path + '.lock', 'notification ledger'):
            self.entries = self._load()
            yield self

    def _load(self) -> Dict[str, Dict[str, Any]]:
        # Read as root, often from a directory the play names: a FIFO there hung the module, /dev/zero filled its
        # memory. Only a regular file within the cap is read (a symlink to nothing is an error, not an empty ledger).
        # Never through a link or a second hard link (an account owning the directory could link a file of root's).
        if not os.path.lexists(self.path):
            return {}
        raw = safeio.read_regular(self.path, LEDGER_LIMIT, what='state_file', follow=False, single_link=True)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: nested too deep
            raise OpsReadyError('state_file %s is not the JSON this module writes (%s): move it aside; the '
                                'next runs rebuild it.' % (self.path, exc))
        if not isinstance(data, dict) or not isinstance(data.get('jobs'), dict):
            raise OpsReadyError('state_file %s has no "jobs" map: it is not a notification ledger. Move it aside.'
                                % self.path)
        return data['jobs']

    def save(self) -> None:
        atomic_write_json(self.path, {'version': VERSION, 'jobs': self.entries}, mode=0o640)

    def record(self, event: Event) -> Dict[str, Any]:
        """The entry after ``event`` (a success or a failure); a success ends a stale episode."""
        entry = dict(self.entries.get(event.key) or {'job': event.job, 'name': event.name, 'host': event.host,
                                                     'first_at': event.at})
        entry['last_outcome'] = event.outcome
        entry['last_at'] = event.at
        if event.outcome == 'success':
            entry['last_success_at'] = event.at
            entry.pop('stale_reported_at', None)
        else:
            entry['last_failure_at'] = event.at
        self.entries[event.key] = entry
        return entry

    def due_stale(self, max_age_hours: float, now: datetime.datetime) -> List[Dict[str, Any]]:
        """Entries with no success within ``max_age_hours`` whose stale episode was not reported yet."""
        limit = now - datetime.timedelta(hours=max_age_hours)
        due = []
        for key in sorted(self.entries):
            entry = self.entries[key]
            if entry.get('stale_reported_at'):
                continue
            # a job that never succeeded is measured from its first recorded run
            since = entry.get('last_success_at') or entry.get('first_at') or entry.get('last_at')
            if since and parse_time(since) < limit:
                due.append(dict(entry, key=key, since=since))
        return due

    def mark_stale_reported(self, key: str, at: str) -> None:
        self.entries[key]['stale_reported_at'] = at
