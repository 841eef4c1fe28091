#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: incident
short_description: Open, update, resolve and close incident records in a JSON-lines store
version_added: 0.1.0
description:
  - Keeps incident records (id, severity 1-4 with response and resolution targets, status
    V(new)/V(investigating)/V(resolved)/V(closed), title, description, affected components and a
    timeline of actions) as append-only events in a JSON-lines file; the timeline is the audit trail.
  - Idempotent by O(key). Opening an incident for a key that already has an active one (V(new) or
    V(investigating)) does not create a duplicate; it escalates the severity when a more urgent one is
    given, adds new components or a new note, or does nothing (C(changed=false)). Resolving a key
    with no active incident does nothing.
  - "Severity targets (response / resolution): 1 critical 15 min / 4 h, 2 high 1 h / 8 h, 3 medium
    4 h / 3 days, 4 low 1 day / 7 days. The response target is met when the incident moves to
    V(investigating) (or straight to V(resolved))."
  - Concurrent writers (many hosts of one play delegating to the control node) are serialised with a
    lock file next to the store.
  - Optionally notifies a webhook (JSON POST, retries with exponential back-off, timeout) whenever a
    record changes, so a problem pages once when it opens, again if it escalates, and when it resolves.
  - O(changes) applies many changes (one per host of a fleet) in one run, under one lock and one read of
    the store, in order; each change sees the ones before it. A 500-host fleet then costs one module run
    on the control node instead of 500.
author: opsready developers (@opsready)
options:
  store:
    description:
      - The JSON-lines incident store. Its directory must exist; the file is created C(0640).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
    required: true
  state:
    description:
      - V(open) opens (or escalates/annotates the active incident of O(key)); V(investigating) records
        that someone (or automation) is acting, with O(note) as the action; V(resolved) and V(closed)
        finish it.
    type: str
    choices: [open, investigating, resolved, closed]
    default: open
  id:
    description: Incident id. Defaults to the active incident of O(key); a new one gets C(INC-<UTC time>-<hex>).
    type: str
  key:
    description: Deduplication key of the ongoing problem (for example C(health:db1)).
    type: str
  title:
    description: One-line title. Required to open a new incident.
    type: str
  severity:
    description: 1 critical, 2 high, 3 medium, 4 low. Required to open a new incident.
    type: int
    choices: [1, 2, 3, 4]
  description:
    description: What is wrong.
    type: str
  components:
    description: Affected components (hosts, services, filesystems); added to the record, never removed.
    type: list
    elements: str
    default: []
  note:
    description: A timeline entry (an action taken, a finding). Repeating the last note adds nothing.
    type: str
  actor:
    description: Who or what acted (recorded on the timeline).
    type: str
  changes:
    description:
      - Several changes in one run, instead of O(id), O(key), O(state), O(title), O(severity),
        O(description), O(components) and O(note). Each item takes those options, with the same defaults;
        O(actor) and O(webhook) apply to all of them.
      - Every change is checked before anything is written; one invalid change fails the task and
        records none.
    type: list
    elements: dict
    suboptions:
      state:
        description: As O(state).
        type: str
        choices: [open, investigating, resolved, closed]
        default: open
      id:
        description: As O(id). One of O(changes[].id) and O(changes[].key) is required.
        type: str
      key:
        description: As O(key).
        type: str
      title:
        description: As O(title).
        type: str
      severity:
        description: As O(severity).
        type: int
        choices: [1, 2, 3, 4]
      description:
        description: As O(description).
        type: str
      components:
        description: As O(components).
        type: list
        elements: str
        default: []
      note:
        description: As O(note).
        type: str
  webhook:
    description: Notify this webhook of every change.
    type: dict
    suboptions:
      url:
        description:
          - http(s) URL receiving C({"event", "incident"}) as JSON.
          - Never logged, and messages name only its scheme, host and port (webhook URLs carry tokens in their path).
        type: str
        required: true
      timeout:
        description: Seconds per attempt.
        type: float
        default: 10
      retries:
        description: Attempts after the first, on connection errors, timeouts, 429 and 5xx.
        type: int
        default: 3
      backoff:
        description: First wait between attempts in seconds; doubled each time.
        type: float
        default: 1
      headers:
        description: Extra request headers (an authorization token); never logged.
        type: dict
      required:
        description: Fail the task when the notification cannot be delivered (the record is kept).
        type: bool
        default: false
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - In check mode nothing is written and no webhook is called; C(changed) and C(diff) say what would happen.
seealso:
  - module: opsready.operations.health_check
'''

EXAMPLES = r'''
- name: Open (once) an incident for a critical health verdict
  opsready.operations.incident:
    store: /var/lib/opsready/incidents.jsonl
    key: "health:{{ inventory_hostname }}"
    title: "{{ inventory_hostname }} is critical"
    severity: 2
    components: "{{ health.findings | map(attribute='check') | list }}"
    webhook:
      url: https://alerts.example.com/hooks/opsready
      headers:
        Authorization: "Bearer {{ vault_alert_token }}"
  delegate_to: localhost

- name: Record an automated action
  opsready.operations.incident:
    store: /var/lib/opsready/incidents.jsonl
    key: "health:{{ inventory_hostname }}"
    state: investigating
    note: restarted nginx; re-check ok
    actor: auto_recovery
  delegate_to: localhost

- name: Open one incident and resolve another in one run on the control node
  opsready.operations.incident:
    store: /var/lib/opsready/incidents.jsonl
    actor: health
    changes:
      - key: health:db1
        title: db1 is critical
        severity: 2
      - key: health:web1
        state: resolved
        note: health verdict ok
  delegate_to: localhost
  run_once: true

- name: Resolve when healthy again (does nothing if nothing is open)
  opsready.operations.incident:
    store: /var/lib/opsready/incidents.jsonl
    key: "health:{{ inventory_hostname }}"
    state: resolved
    note: health verdict ok
  delegate_to: localhost
'''

RETURN = r'''
incident:
  description: The record after the change (or as it would be in check mode); null when nothing matched.
  returned: always
  type: dict
  sample:
    id: INC-20261129T004512-3fa2
    key: health:db1
    title: db1 is critical
    severity: 2
    severity_name: high
    status: investigating
    components: [filesystem:/var]
    opened_at: "2026-11-29T00:45:12.123456Z"
    response_due: "2026-11-29T01:45:12.123456Z"
    resolution_due: "2026-11-29T08:45:12.123456Z"
    response_breached: false
    resolution_breached: false
    timeline: [{"at": "2026-11-29T00:45:12.123456Z", "event": "open", "status": "new"}]
event:
  description: The event appended (C(open), C(update), C(resolve), C(close)); null when nothing changed.
  returned: always
  type: dict
  sample: {"event": "open", "id": "INC-20261129T004512-3fa2"}
created:
  description: Whether a new incident was opened.
  returned: always
  type: bool
  sample: true
notification:
  description: Result of the webhook call (sent, attempts, status, error), when a webhook is set and something changed.
  returned: when a webhook was called
  type: dict
  sample: {"sent": true, "attempts": 1, "status": 200, "error": ""}
results:
  description:
    - With O(changes), one entry per change, in order, with its C(key), C(state), C(changed), C(created),
      C(event), C(incident) and C(notification) as above (C(incident), C(event) and C(created) at the top
      level are then null, null and whether any change opened an incident).
  returned: when O(changes) is given
  type: list
  elements: dict
  sample:
    - {"key": "health:db1", "state": "open", "changed": true, "created": true,
       "event": {"event": "open", "id": "INC-20261129T004512-3fa2"}, "incident": {"id": "INC-20261129T004512-3fa2"}}
'''

import concurrent.futures

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import alerts, incidents


NOTIFY_WORKERS = 16
CHANGE_OPTIONS = ('state', 'id', 'key', 'title', 'severity', 'description', 'components', 'note')


def _outcome(entry):
    """Module result fields of one applied change (apply_changes' entry)."""
    event, before, after = entry['event'], entry['before'], entry['after']
    out = dict(changed=event is not None, event=event, created=event is not None and event['event'] == 'open',
               incident=None if after is None else incidents.with_targets(after))
    if event is not None:
        out['diff'] = {
            'before': {k: before[k] for k in ('status', 'severity', 'components')} if before else {},
            'after': {k: after[k] for k in ('status', 'severity', 'components')},
        }
    return out


def _notify(hook, outcome):
    """POST one change to the webhook; returns a failure message or None."""
    sent = alerts.post_json(hook['url'], {'event': outcome['event']['event'], 'incident': outcome['incident']},
                            timeout=hook['timeout'], retries=hook['retries'], backoff=hook['backoff'],
                            headers=hook.get('headers'))
    outcome['notification'] = sent
    if sent['sent']:
        return None
    return ('Incident %s was recorded but the webhook %s was not notified after %d attempt(s): %s.'
            % (outcome['incident']['id'], alerts.shown(hook['url']), sent['attempts'], sent['error']))


def _notify_all(hook, changed):
    """POST every change ((key, outcome) pairs, in order); returns the failure messages in that order.

    A fleet can change hundreds of incidents at once (an outage) and the webhook may be the thing that is
    down: one key's changes are sent in order, different keys concurrently (at most NOTIFY_WORKERS at a
    time), as the per-host runs of one play did, so a dead webhook costs a few timeouts, not one per host."""
    by_key = {}
    for key, outcome in changed:
        by_key.setdefault(key, []).append(outcome)
    messages = {}

    def send(outcomes):
        for outcome in outcomes:
            messages[id(outcome)] = _notify(hook, outcome)

    groups = list(by_key.values())
    if len(groups) <= 1:
        for group in groups:
            send(group)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(NOTIFY_WORKERS, len(groups))) as pool:
            for future in [pool.submit(send, group) for group in groups]:
                future.result()
    return [messages[id(outcome)] for dummy, outcome in changed if messages[id(outcome)]]


def change_options():
    """The options of one change: the module's own (one change) and each item of ``changes``."""
    return dict(
        state=dict(type='str', choices=['open', 'investigating', 'resolved', 'closed'], default='open'),
        id=dict(type='str'),
        key=dict(type='str', no_log=False),
        title=dict(type='str'),
        severity=dict(type='int', choices=[1, 2, 3, 4]),
        description=dict(type='str'),
        components=dict(type='list', elements='str', default=[]),
        note=dict(type='str'),
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **change_options(),
            store=dict(type='path', required=True),
            actor=dict(type='str'),
            changes=dict(type='list', elements='dict', options=change_options()),
            webhook=dict(type='dict', options=dict(
                url=dict(type='str', required=True, no_log=True),
                timeout=dict(type='float', default=10),
                retries=dict(type='int', default=3),
                backoff=dict(type='float', default=1),
                headers=dict(type='dict', no_log=True),
                required=dict(type='bool', default=False),
            )),
        ),
        required_one_of=[['id', 'key', 'changes']],
        mutually_exclusive=[['changes', 'id'], ['changes', 'key'], ['changes', 'title'], ['changes', 'severity'],
                            ['changes', 'description'], ['changes', 'note']],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    batch = p['changes'] is not None
    if batch:
        changes = [dict(change, actor=p['actor']) for change in p['changes']]
        for index, change in enumerate(changes):
            if not change['id'] and not change['key']:
                module.fail_json(msg='changes[%d] has neither key nor id: give the incident key (for example '
                                     'health:db1) or its id. Nothing was recorded.' % index)
    else:
        changes = [{name: p[name] for name in CHANGE_OPTIONS + ('actor',)}]
    result = dict(changed=False, incident=None, event=None, created=False)
    try:
        hook = p['webhook']
        if hook:
            alerts.validate(hook['url'], hook['timeout'], hook['retries'], hook['backoff'])
        store = incidents.IncidentStore(p['store'])
        outcomes = [_outcome(entry) for entry in incidents.apply_changes(store, changes, write=not module.check_mode)]
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Incident store %s: %s. Nothing was recorded.' % (p['store'], exc.strerror or exc))
    failures = []
    if hook and not module.check_mode:
        failures = _notify_all(hook, [(change['key'] or change['id'], o) for change, o in zip(changes, outcomes)
                                      if o['changed']])
    if batch:
        result['results'] = [dict(outcome, key=change['key'], state=change['state'])
                             for change, outcome in zip(changes, outcomes)]
        for entry in result['results']:
            entry.pop('diff', None)
        result.update(changed=any(o['changed'] for o in outcomes), created=any(o['created'] for o in outcomes))
        diffs = [dict(o['diff'], before_header=change['key'] or change['id'],
                      after_header=change['key'] or change['id'])
                 for change, o in zip(changes, outcomes) if o['changed']]
        if diffs:
            result['diff'] = diffs
    else:
        result.update(outcomes[0])
    if failures:
        if hook['required']:
            module.fail_json(msg=' '.join(failures), **result)
        for message in failures:
            module.warn(message)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
