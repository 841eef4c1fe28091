# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The payload of each channel type for one :class:`Event`.

Slack incoming webhooks take ``text`` plus Block Kit ``blocks``; Microsoft Teams Workflows webhooks take a
``message`` with an Adaptive Card attachment (the Office 365 connector MessageCard is retired); PagerDuty takes
an Events API v2 ``trigger`` for a failure or a stale job and a ``resolve`` with the same ``dedup_key`` for the
success that follows; a generic webhook gets the event as JSON.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any, Dict, List

from ansible_collections.opsready.operations.plugins.module_utils.notify.event import Event, one_line

PAGERDUTY_URL = 'https://events.pagerduty.com/v2/enqueue'
# Limits of the receiving APIs: PagerDuty refuses a summary over 1024 characters, Slack a section over 3000.
PAGERDUTY_SUMMARY_MAX = 1024
SLACK_TEXT_MAX = 3000
ICON = {'success': ':white_check_mark:', 'failure': ':rotating_light:', 'stale': ':hourglass:'}
TEAMS_COLOR = {'success': 'Good', 'failure': 'Attention', 'stale': 'Warning'}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + '\u2026'


def _facts(event: Event) -> List[Dict[str, str]]:
    base = [('Job', event.job), ('Name', event.name), ('Host', event.host), ('Outcome', event.outcome),
            ('At', event.at)]
    base.extend((str(k), str(event.details[k])) for k in sorted(event.details))
    return [{'title': k, 'value': v} for k, v in base]


def webhook(event: Event) -> Dict[str, Any]:
    return {'event': event.as_dict()}


def slack(event: Event) -> Dict[str, Any]:
    head = '%s %s' % (ICON[event.outcome], event.title)
    fields = [{'type': 'mrkdwn', 'text': _cut('*%s*\n%s' % (f['title'], f['value']), 2000)}
              for f in _facts(event)][:10]   # Slack allows at most 10 fields in a section
    blocks: List[Dict[str, Any]] = [{'type': 'header', 'text': {'type': 'plain_text', 'text': _cut(head, 150)}}]
    if event.summary:
        blocks.append({'type': 'section', 'text': {'type': 'mrkdwn', 'text': _cut(event.summary, SLACK_TEXT_MAX)}})
    blocks.append({'type': 'section', 'fields': fields})
    # ``text`` is what notifications and clients without Block Kit show.
    return {'text': _cut(head + ('\n' + event.summary if event.summary else ''), SLACK_TEXT_MAX), 'blocks': blocks}


def teams(event: Event) -> Dict[str, Any]:
    card = {
        '$schema': 'http://adaptivecards.io/schemas/adaptive-card.json',
        'type': 'AdaptiveCard',
        'version': '1.4',
        'body': [
            {'type': 'TextBlock', 'size': 'Medium', 'weight': 'Bolder', 'wrap': True,
             'color': TEAMS_COLOR[event.outcome], 'text': event.title},
            {'type': 'TextBlock', 'wrap': True, 'text': event.summary or event.title},
            {'type': 'FactSet', 'facts': _facts(event)},
        ],
    }
    return {'type': 'message',
            'attachments': [{'contentType': 'application/vnd.microsoft.card.adaptive', 'content': card}]}


def pagerduty(event: Event, routing_key: str) -> Dict[str, Any]:
    body: Dict[str, Any] = {'routing_key': routing_key, 'dedup_key': 'opsready:' + event.key}
    if event.outcome == 'success':
        body['event_action'] = 'resolve'
        return body
    body['event_action'] = 'trigger'
    body['payload'] = {
        # PagerDuty shows summary as one line; custom_details keeps the summary as given
        'summary': _cut(one_line(event.title + (': ' + event.summary if event.summary else '')),
                        PAGERDUTY_SUMMARY_MAX),
        'source': event.host,
        'severity': event.severity,
        'timestamp': event.at,
        'component': event.name,
        'group': event.job,
        'class': event.outcome,
        'custom_details': dict(event.details, summary=event.summary),
    }
    return body


def email(event: Event, sender: str, recipients: List[str], subject_prefix: str = '[opsready]') -> EmailMessage:
    msg = EmailMessage()
    # title and key are one line (Event folds them); sender, recipients and prefix were refused by
    # deliver.validate if they held a control character.
    msg['Subject'] = '%s %s' % (subject_prefix, event.title) if subject_prefix else event.title
    msg['From'] = sender
    msg['To'] = ', '.join(recipients)
    msg['X-Opsready-Key'] = event.key
    msg.set_content(event.text() + '\n')
    return msg
