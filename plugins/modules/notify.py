#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: notify
short_description: Report job outcomes and stale jobs to Slack, Teams, PagerDuty, webhooks and e-mail
version_added: 0.3.0
description:
  - The one notification path of the collection. Reports the outcome of a job (O(outcome=failure) always when a
    channel asks for failures, O(outcome=success) when it asks for successes) to webhooks with ready-made
    payloads for Slack, Microsoft Teams (Workflows, Adaptive Card) and PagerDuty Events API v2, to a generic JSON
    webhook, and by e-mail over SMTP.
  - With O(state_file) the module keeps a ledger of the last outcome and the last success of every job
    (job, name and host). O(check_stale=true) reports every job of the ledger whose last success is older than
    O(stale_after_hours) as V(stale), once per episode (the next success ends it), so a backup whose cron entry
    was removed is noticed before the restore that needs it.
  - A delivery that fails (an unreachable webhook, a refused login) never fails the task unless O(required=true),
    because the job being reported on must not fail for its own notification. Failed deliveries are returned and
    shown as warnings. Each attempt has a timeout; connection errors, timeouts, HTTP 429/5xx and SMTP 4xx are
    retried with exponential back-off.
  - "PagerDuty: a failure or a stale job triggers an alert with the dedup key C(opsready:<job>:<name>@<host>);
    a later success of the same job sends C(resolve) with that key (put V(success) in the channel's
    O(channels[].events))."
author: opsready developers (@opsready)
options:
  job:
    description: The kind of job whose outcome this is. Required unless O(check_stale=true).
    type: str
    choices: [backup, verify, drill, restore, patching, certificate, maintenance, health, other]
  name:
    description: What the job worked on (a backup set, a database, a certificate). Required with O(job).
    type: str
  outcome:
    description: How the job ended. Required with O(job).
    type: str
    choices: [success, failure]
  summary:
    description: One or two sentences for the reader (the error message of a failed task, the size of a backup).
    type: str
    default: ''
  details:
    description: Extra facts shown as fields (Slack, Teams), custom details (PagerDuty) or lines (e-mail).
    type: dict
    default: {}
  at:
    description:
      - When the job ended, as C(YYYY-MM-DDTHH:MM:SSZ) (UTC). Defaults to now. Recording the same outcome of the
        same job at the same instant twice changes nothing.
    type: str
  host:
    description: The host the job ran for. Defaults to this host's FQDN; set it when delegating to the control node.
    type: str
  state_file:
    description:
      - The ledger (JSON, written atomically, C(0640), locked against concurrent runs). Its directory must exist.
      - Required by O(check_stale=true). Without it outcomes are sent but not remembered.
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
  check_stale:
    description: Report (as V(stale)) every job in O(state_file) with no success within O(stale_after_hours).
    type: bool
    default: false
  stale_after_hours:
    description: How old the last success may be before a job is stale.
    type: float
    default: 26
  required:
    description: Fail the task when a wanted notification could not be delivered to every channel.
    type: bool
    default: false
  channels:
    description: Where notifications go. Each channel filters on O(channels[].events).
    type: list
    elements: dict
    required: true
    suboptions:
      type:
        description: The channel's payload and transport.
        type: str
        required: true
        choices: [webhook, slack, teams, pagerduty, email]
      name:
        description: How results and warnings name this channel (URLs hold tokens and are never shown).
        type: str
      events:
        description: The outcomes this channel hears of.
        type: list
        elements: str
        choices: [failure, success, stale]
        default: [failure, stale]
      url:
        description:
          - The webhook URL (Slack and Teams URLs carry their token, so this is treated as a secret).
          - For V(pagerduty) it defaults to C(https://events.pagerduty.com/v2/enqueue).
        type: str
      headers:
        description: Extra request headers (an authorization token); never logged.
        type: dict
      routing_key:
        description: The integration key of a PagerDuty Events API v2 integration. Required for V(pagerduty).
        type: str
      smtp_host:
        description: SMTP server. Required for V(email).
        type: str
      smtp_port:
        description: SMTP port. Defaults to 587 with V(starttls), 465 with V(tls), 25 with V(none).
        type: int
      smtp_security:
        description: V(starttls) upgrades a plain connection, V(tls) connects over TLS; both verify the certificate.
        type: str
        choices: [starttls, tls, none]
        default: starttls
      smtp_username:
        description: SMTP login.
        type: str
      smtp_password:
        description: SMTP password; refused with O(channels[].smtp_security=none).
        type: str
      ca_file:
        description: CA bundle to verify the SMTP server with (default the system's).
        type: path
      sender:
        description: The From address. Required for V(email).
        type: str
      recipients:
        description: The To addresses. Required for V(email).
        type: list
        elements: str
      subject_prefix:
        description: Put before the e-mail subject.
        type: str
        default: '[opsready]'
      timeout:
        description: Seconds per attempt.
        type: float
        default: 10
      retries:
        description: Attempts after the first, on connection errors, timeouts, HTTP 429/5xx and SMTP 4xx.
        type: int
        default: 3
      backoff:
        description: First wait between attempts in seconds; doubled each time.
        type: float
        default: 1
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - In check mode nothing is sent and the ledger is not written; RV(notifications) says what would be sent.
  - C(changed) is true when a notification was sent or the ledger changed.
seealso:
  - module: opsready.operations.incident
'''

EXAMPLES = r'''
- name: Report a failed backup to Slack and PagerDuty, remember the outcome
  opsready.operations.notify:
    job: backup
    name: app
    outcome: failure
    summary: "{{ ansible_failed_result.msg | default('backup failed') }}"
    host: "{{ inventory_hostname }}"
    state_file: /var/lib/opsready/notify.json
    channels:
      - type: slack
        url: "{{ vault_slack_webhook }}"
      - type: pagerduty
        routing_key: "{{ vault_pagerduty_key }}"
        events: [failure, stale, success]
  delegate_to: localhost

- name: Page for backups that have not succeeded in 26 hours (run hourly)
  opsready.operations.notify:
    check_stale: true
    stale_after_hours: 26
    state_file: /var/lib/opsready/notify.json
    channels:
      - type: email
        smtp_host: smtp.example.com
        smtp_username: opsready
        smtp_password: "{{ vault_smtp_password }}"
        sender: opsready@example.com
        recipients: [dba@example.com]
'''

RETURN = r'''
notifications:
  description: One entry per channel and event; RV(notifications[].wanted) is false when the channel's
    O(channels[].events) does not include the outcome.
  returned: always
  type: list
  elements: dict
  contains:
    channel:
      description: The channel's name, or its type and position.
      type: str
    outcome:
      description: V(success), V(failure) or V(stale).
      type: str
    key:
      description: The job key C(<job>:<name>@<host>).
      type: str
    wanted:
      description: Whether this channel hears of this outcome.
      type: bool
    sent:
      description: Whether it was delivered.
      type: bool
    attempts:
      description: Attempts made.
      type: int
    error:
      description: Why it was not delivered.
      type: str
  sample:
    - {channel: slack#0, outcome: failure, key: "backup:app@db1", wanted: true, sent: true, attempts: 1, error: ''}
event:
  description: The outcome reported (without O(check_stale)).
  returned: when O(job) is given
  type: dict
stale:
  description: The jobs found stale by O(check_stale) in this run (already reported ones are not repeated).
  returned: when O(check_stale=true)
  type: list
  elements: dict
undelivered:
  description: How many wanted notifications could not be delivered.
  returned: always
  type: int
'''

import datetime  # noqa: E402
import socket  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.notify import deliver  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.notify.event import JOBS, Event  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.notify.ledger import Ledger, parse_time  # noqa: E402

CHANNEL_SPEC = dict(
    type=dict(type='str', required=True, choices=list(deliver.CHANNEL_TYPES)),
    name=dict(type='str'),
    events=dict(type='list', elements='str', choices=['failure', 'success', 'stale'], default=list(deliver.DEFAULT_ON)),
    url=dict(type='str', no_log=True),
    headers=dict(type='dict', no_log=True),
    routing_key=dict(type='str', no_log=True),
    smtp_host=dict(type='str'),
    smtp_port=dict(type='int'),
    smtp_security=dict(type='str', choices=['starttls', 'tls', 'none'], default='starttls'),
    smtp_username=dict(type='str'),
    smtp_password=dict(type='str', no_log=True),
    ca_file=dict(type='path'),
    sender=dict(type='str'),
    recipients=dict(type='list', elements='str'),
    subject_prefix=dict(type='str', default='[opsready]'),
    timeout=dict(type='float', default=10),
    retries=dict(type='int', default=3),
    backoff=dict(type='float', default=1),
)


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            job=dict(type='str', choices=list(JOBS)),
            name=dict(type='str'),
            outcome=dict(type='str', choices=['success', 'failure']),
            summary=dict(type='str', default=''),
            details=dict(type='dict', default={}),
            host=dict(type='str'),
            at=dict(type='str'),
            state_file=dict(type='path'),
            check_stale=dict(type='bool', default=False),
            stale_after_hours=dict(type='float', default=26),
            required=dict(type='bool', default=False),
            channels=dict(type='list', elements='dict', required=True, options=CHANNEL_SPEC),
        ),
        required_one_of=[['job', 'check_stale']],
        required_if=[('check_stale', True, ['state_file'])],
        required_by={'job': ('name', 'outcome'), 'name': 'job', 'outcome': 'job'},
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    dry = module.check_mode
    result: Dict[str, Any] = dict(changed=False, notifications=[], undelivered=0)
    sent: List[Dict[str, Any]] = result['notifications']
    try:
        if p['stale_after_hours'] <= 0:
            raise OpsReadyError('stale_after_hours must be > 0.')
        deliver.validate(p['channels'])
        ledger = Ledger(p['state_file']) if p['state_file'] else None
        if p['at']:
            try:
                parse_time(p['at'])
            except ValueError:
                raise OpsReadyError('at %r is not a UTC time like 2026-12-04T16:55:00Z.' % p['at'])
        if p['job']:
            event = Event(job=p['job'], name=p['name'], outcome=p['outcome'], host=p['host'] or socket.getfqdn(),
                          summary=p['summary'], details=p['details'], at=p['at'] or '')
            result['event'] = event.as_dict()
            if ledger:
                with ledger.locked():
                    before = dict(ledger.entries.get(event.key) or {})
                    after = ledger.record(event)
                    if not dry:
                        ledger.save()
                result['diff'] = {'before': before, 'after': after}
                result['changed'] = before != after
            sent.extend(deliver.notify(p['channels'], event, dry_run=dry))
        if p['check_stale']:
            stale_rows = []
            with Ledger(p['state_file']).locked() as book:
                for entry in book.due_stale(p['stale_after_hours'], now_utc()):
                    summary = 'No success since %s (allowed: %g h).' % (entry['since'], p['stale_after_hours'])
                    event = Event(job=entry['job'], name=entry['name'], outcome='stale', host=entry['host'],
                                  summary=summary,
                                  details={'last_outcome': entry.get('last_outcome', ''),
                                           'last_success_at': entry.get('last_success_at', 'never')})
                    stale_rows.append(dict(entry))
                    sent.extend(deliver.notify(p['channels'], event, dry_run=dry))
                    book.mark_stale_reported(entry['key'], event.at)
                if stale_rows and not dry:
                    book.save()
            result['stale'] = stale_rows
            result['changed'] = result['changed'] or bool(stale_rows)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='state_file %s: %s. Nothing was sent.' % (p['state_file'], exc.strerror or exc))
    failed = [row for row in sent if row['wanted'] and not dry and not row['sent']]
    result['undelivered'] = len(failed)
    result['changed'] = result['changed'] or any(row['sent'] for row in sent)
    for row in failed:
        message = 'Notification of %s (%s) to channel %s was not delivered after %d attempt(s): %s' % (
            row['key'], row['outcome'], row['channel'], row['attempts'], row['error'])
        if p['required']:
            module.fail_json(msg=message, **result)
        module.warn(message)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
