# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident records in an append-only JSON-lines store.

Every change is one event line (open, update, resolve, close); an incident's state is the fold of its
events, so the store is its own audit timeline and a crash can at worst lose the last event, never
corrupt an earlier one. Writers hold an exclusive ``flock`` on ``<store>.lock`` across
read-decide-append, so concurrent hosts of one play never open two incidents for one problem.

Severity targets (response = until someone investigates, resolution = until resolved):
1 critical 15 min / 4 h, 2 high 1 h / 8 h, 3 medium 4 h / 3 days, 4 low 1 day / 7 days.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import secrets
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import append_line_durable
from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import (
    isoformat, parse_time, stamp, utcnow)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

SEVERITY_TARGETS: Dict[int, Dict[str, Any]] = {
    1: {'name': 'critical', 'response_minutes': 15, 'resolution_minutes': 4 * 60},
    2: {'name': 'high', 'response_minutes': 60, 'resolution_minutes': 8 * 60},
    3: {'name': 'medium', 'response_minutes': 4 * 60, 'resolution_minutes': 3 * 24 * 60},
    4: {'name': 'low', 'response_minutes': 24 * 60, 'resolution_minutes': 7 * 24 * 60},
}
STATUSES = ('new', 'investigating', 'resolved', 'closed')
ACTIVE = ('new', 'investigating')


def _apply(incidents: Dict[str, Dict[str, Any]], event: Dict[str, Any]) -> None:
    kind = event['event']
    iid = event['id']
    entry = {'at': event['at'], 'event': kind}
    for key in ('status', 'severity', 'note', 'actor'):
        if event.get(key) is not None:
            entry[key] = event[key]
    if kind == 'open':
        incidents[iid] = {
            'id': iid, 'key': event.get('key'), 'title': event.get('title'), 'severity': event['severity'],
            'status': 'new', 'description': event.get('description') or '',
            'components': list(event.get('components') or []), 'opened_at': event['at'],
            'updated_at': event['at'], 'acknowledged_at': None, 'resolved_at': None, 'closed_at': None,
            'timeline': [entry],
        }
        return
    inc = incidents.get(iid)
    if inc is None:
        return  # an event for an unknown id (hand-edited store): ignored, never fatal
    inc['updated_at'] = event['at']
    inc['timeline'].append(entry)
    if event.get('severity') is not None:
        inc['severity'] = event['severity']
    if event.get('description'):
        inc['description'] = event['description']
    for component in event.get('components') or []:
        if component not in inc['components']:
            inc['components'].append(component)
    status = event.get('status')
    if status:
        inc['status'] = status
        if status in ('investigating', 'resolved') and not inc['acknowledged_at']:
            inc['acknowledged_at'] = event['at']
        if status == 'resolved':
            inc['resolved_at'] = event['at']
        if status == 'closed':
            inc['closed_at'] = event['at']
            inc['resolved_at'] = inc['resolved_at'] or event['at']
        if status in ACTIVE:
            inc['resolved_at'] = None
            inc['closed_at'] = None


def with_targets(inc: Dict[str, Any], now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """The incident with its response/resolution deadlines and whether they were missed."""
    out = dict(inc)
    target = SEVERITY_TARGETS[inc['severity']]
    opened = parse_time(inc['opened_at'])
    now = now or utcnow()
    response_due = opened + datetime.timedelta(minutes=target['response_minutes'])
    resolution_due = opened + datetime.timedelta(minutes=target['resolution_minutes'])
    acknowledged = parse_time(inc['acknowledged_at']) if inc.get('acknowledged_at') else None
    resolved = parse_time(inc['resolved_at']) if inc.get('resolved_at') else None
    out['severity_name'] = target['name']
    out['response_due'] = isoformat(response_due)
    out['resolution_due'] = isoformat(resolution_due)
    out['response_breached'] = (acknowledged or now) > response_due
    out['resolution_breached'] = (resolved or now) > resolution_due
    if resolved:
        out['time_to_resolve_minutes'] = round((resolved - opened).total_seconds() / 60.0, 1)
    return out


class IncidentStore:
    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise OpsReadyError('Incident store directory %s does not exist: create it first.' % directory)
        # Before the lock file or the store is made (check mode too): an account owning a directory above could
        # link the directory's name to a directory of root's, where root would create and append to them.
        safeio.check_parents(directory, 'keep the incident store in', 'The directory of store')

    @contextlib.contextmanager
    def locked(self, write: bool = True) -> Iterator['IncidentStore']:
        """Under the store's lock; ``write=False`` (check mode): a lock file that does not exist yet is not made."""
        with locks.waiting(self.path + '.lock', 'incident store', mode=0o640, create=write):
            yield self

    def load(self) -> Dict[str, Dict[str, Any]]:
        incidents: Dict[str, Dict[str, Any]] = {}
        # Never through a link: the store's directory may be another account's, which could link a file of root's.
        handle = safeio.open_regular_stream(self.path, what='Incident store', missing_ok=True, follow=False)
        if handle is None:
            return incidents
        with handle:
            for raw in safeio.iter_lines(handle):
                if raw is None:
                    continue   # a line over the cap: skipped like a torn one
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    event = json.loads(raw)
                    _apply(incidents, event)
                except (ValueError, KeyError, TypeError, RecursionError):   # RecursionError: nested too deep
                    continue  # a torn last line after a crash: skipped
        return incidents

    def append(self, event: Dict[str, Any]) -> None:
        append_line_durable(self.path, json.dumps(event, sort_keys=True, separators=(',', ':')), mode=0o640)

    def append_many(self, events: List[Dict[str, Any]]) -> None:
        """Append several events in one write and one fsync (a torn tail after a crash is skipped by load)."""
        if events:
            append_line_durable(self.path, '\n'.join(json.dumps(e, sort_keys=True, separators=(',', ':'))
                                                     for e in events), mode=0o640)


def find_active(incidents: Dict[str, Dict[str, Any]], key: str) -> Optional[Dict[str, Any]]:
    matches = [i for i in incidents.values() if i.get('key') == key and i['status'] in ACTIVE]
    return max(matches, key=lambda i: i['opened_at']) if matches else None


def find_latest(incidents: Dict[str, Dict[str, Any]], key: str, statuses: tuple) -> Optional[Dict[str, Any]]:
    matches = [i for i in incidents.values() if i.get('key') == key and i['status'] in statuses]
    return max(matches, key=lambda i: i['opened_at']) if matches else None


def new_id(taken: Any = ()) -> str:
    """A new incident id not in ``taken``: 4 random hex digits per second give 65,536 ids, and a fleet run
    opens hundreds in one second (500 draws collide with a probability near 85 %), so the store's ids are
    checked rather than trusted to luck."""
    while True:
        candidate = 'INC-%s-%s' % (stamp()[:15], secrets.token_hex(2))
        if candidate not in taken:
            return candidate


def plan_change(incidents: Dict[str, Dict[str, Any]], state: str, iid: Optional[str], key: Optional[str],
                severity: Optional[int], title: Optional[str], description: Optional[str],
                components: List[str], note: Optional[str], actor: Optional[str]) -> Dict[str, Any]:
    """Decide the event to append (or none). Returns {'event': dict|None, 'target': incident|None}."""
    now = isoformat(utcnow())
    target: Optional[Dict[str, Any]] = None
    if iid:
        target = incidents.get(iid)
        if target is None and state != 'open':
            raise OpsReadyError('No incident %s in the store.' % iid)
    elif key:
        if state == 'closed':
            target = find_latest(incidents, key, ('resolved',)) or find_active(incidents, key)
        else:
            target = find_active(incidents, key)
    base = {'at': now, 'actor': actor} if actor else {'at': now}

    if state == 'open':
        if target is None or target['status'] not in ACTIVE:
            if severity is None:
                raise OpsReadyError('Opening an incident needs severity (1 critical .. 4 low).')
            if not title:
                raise OpsReadyError('Opening an incident needs a title.')
            event = dict(base, event='open', id=iid or new_id(incidents), key=key, severity=severity, title=title,
                         description=description or '', components=components, note=note, status='new')
            return {'event': event, 'target': None}
        changes: Dict[str, Any] = {}
        if severity is not None and severity < target['severity']:
            changes['severity'] = severity
            changes['note'] = note or 'Escalated from severity %d to %d.' % (target['severity'], severity)
        new_components = [c for c in components if c not in target['components']]
        if new_components:
            changes['components'] = new_components
        repeated = bool(target['timeline']) and target['timeline'][-1].get('note') == note
        if note and changes.get('note') is None and not repeated:
            changes['note'] = note
        if not changes:
            return {'event': None, 'target': target}
        return {'event': dict(base, event='update', id=target['id'], **changes), 'target': target}

    if target is None:
        if state in ('resolved', 'closed'):
            return {'event': None, 'target': None}  # nothing open: already healthy
        raise OpsReadyError('No open incident%s to update: open one first (state=open).'
                            % (' with key %s' % key if key else ''))
    if state == 'investigating':
        if target['status'] not in ACTIVE:
            raise OpsReadyError('Incident %s is %s; reopen it with state=open or open a new one.'
                                % (target['id'], target['status']))
        changes = {}
        if target['status'] != 'investigating':
            changes['status'] = 'investigating'
        if note:
            changes['note'] = note
        if severity is not None and severity != target['severity']:
            changes['severity'] = severity
        new_components = [c for c in components if c not in target['components']]
        if new_components:
            changes['components'] = new_components
        if description and description != target['description']:
            changes['description'] = description
        if not changes:
            return {'event': None, 'target': target}
        return {'event': dict(base, event='update', id=target['id'], **changes), 'target': target}
    if state == 'resolved':
        if target['status'] in ('resolved', 'closed'):
            return {'event': None, 'target': target}
        return {'event': dict(base, event='resolve', id=target['id'], status='resolved', note=note),
                'target': target}
    if state == 'closed':
        if target['status'] == 'closed':
            return {'event': None, 'target': target}
        return {'event': dict(base, event='close', id=target['id'], status='closed', note=note), 'target': target}
    raise OpsReadyError('Unknown state %r.' % state)


def apply_event(incidents: Dict[str, Dict[str, Any]], event: Dict[str, Any]) -> Dict[str, Any]:
    _apply(incidents, {k: v for k, v in event.items() if v is not None})
    return incidents[event['id']]


def apply_changes(store: IncidentStore, changes: List[Dict[str, Any]], write: bool = True) -> List[Dict[str, Any]]:
    """Plan and apply a list of changes (the options of one change each: state, id, key, severity, title,
    description, components, note, actor) under one lock and one read of the store, in order, each seeing
    the ones before it. A fleet's incidents then cost one store read, not one per host.

    Returns one entry per change: {'event': dict|None, 'before': incident|None, 'after': incident|None}
    (``after`` is the record after the change, or the matched record when nothing changed). With
    ``write=False`` (check mode) nothing is appended; the later changes still see the earlier ones.
    An invalid change raises before anything is written."""
    with store.locked(write):
        records = store.load()
        # per-key views, so that each change scans its own key's incidents and not the whole store
        by_key: Dict[Any, Dict[str, Dict[str, Any]]] = {}
        for inc in records.values():
            by_key.setdefault(inc.get('key'), {})[inc['id']] = inc
        planned: List[Dict[str, Any]] = []
        events: List[Dict[str, Any]] = []
        for change in changes:
            iid = change.get('id')
            key = change.get('key')
            view = records if iid else by_key.get(key, {})
            plan = plan_change(view, change.get('state') or 'open', iid, key,
                               change.get('severity'), change.get('title'), change.get('description'),
                               list(change.get('components') or []), change.get('note'), change.get('actor'))
            event = plan['event']
            before = copy.deepcopy(plan['target'])
            after = plan['target']
            if event is not None:
                if event['event'] == 'open' and not iid and event['id'] in records:
                    event['id'] = new_id(records)   # planned against one key's view: unique in the store
                after = apply_event(records, event)
                by_key.setdefault(after.get('key'), {})[after['id']] = after
                events.append({k: v for k, v in event.items() if v is not None})
            planned.append({'event': event, 'before': before, 'after': copy.deepcopy(after)})
        if write:
            store.append_many(events)
    return planned
