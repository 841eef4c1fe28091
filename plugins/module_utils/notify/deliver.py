# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which channels hear of an event, and sending it to them.

A delivery never raises: a channel that cannot be reached is a result with ``sent: false`` and the reason, so
the job being reported on is never failed by its own notification (unless the caller asks for that).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import alerts
from ansible_collections.opsready.operations.plugins.module_utils.notify import formats, smtp
from ansible_collections.opsready.operations.plugins.module_utils.notify.event import Event, control_characters

CHANNEL_TYPES = ('webhook', 'slack', 'teams', 'pagerduty', 'email')
DEFAULT_ON = ['failure', 'stale']


def label(channel: Dict[str, Any], index: int) -> str:
    """How results name a channel: its ``name``, else type and position (URLs hold tokens: never shown)."""
    return channel.get('name') or '%s#%d' % (channel['type'], index)


def validate(channels: List[Dict[str, Any]]) -> None:
    """Refuse a channel that could never deliver, before anything is recorded or sent."""
    for index, channel in enumerate(channels):
        kind = channel['type']
        where = label(channel, index)
        _refuse_control_characters(channel, where)
        if kind == 'email':
            missing = [k for k in ('smtp_host', 'sender', 'recipients') if not channel.get(k)]
            if missing:
                raise OpsReadyError('Channel %s (email) needs %s.' % (where, ', '.join(missing)))
            if channel.get('smtp_password') and not channel.get('smtp_username'):
                raise OpsReadyError('Channel %s (email) has smtp_password without smtp_username.' % where)
            if channel.get('smtp_security') == 'none' and channel.get('smtp_password'):
                raise OpsReadyError('Channel %s (email) would send smtp_password in clear text: use smtp_security '
                                    'starttls or tls.' % where)
            continue
        if kind == 'pagerduty' and not channel.get('routing_key'):
            raise OpsReadyError('Channel %s (pagerduty) needs routing_key (the integration key of an Events API '
                                'v2 integration).' % where)
        url = channel.get('url') or (formats.PAGERDUTY_URL if kind == 'pagerduty' else '')
        if not url:
            raise OpsReadyError('Channel %s (%s) needs url.' % (where, kind))
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            # the URL may carry a token (Slack, Teams): name the channel, never echo it
            raise OpsReadyError('Channel %s (%s): url is not an http:// or https:// URL.' % (where, kind))
        why = alerts.unsendable(url)
        if why:
            raise OpsReadyError('Channel %s (%s): url cannot be sent to: %s.' % (where, kind, why))
        if channel['timeout'] <= 0 or channel['retries'] < 0 or channel['backoff'] < 0:
            raise OpsReadyError('Channel %s: timeout must be > 0, retries and backoff >= 0.' % where)


# Settings that become a mail header, an HTTP header, a URL or a host name: a line break there would inject a
# header (or make EmailMessage / http.client raise). Refused, never folded: an address is not guessed at.
HEADER_BOUND = ('sender', 'recipients', 'subject_prefix', 'headers', 'url', 'smtp_host')


def _refuse_control_characters(channel: Dict[str, Any], where: str) -> None:
    for key in HEADER_BOUND:
        value = channel.get(key)
        if not value:
            continue
        items = list(value.items()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
        texts = [t for item in items for t in (item if isinstance(item, tuple) else (item,))]
        if any(control_characters(t) for t in texts):
            # the value is not echoed: headers and urls carry tokens
            raise OpsReadyError('Channel %s (%s): %s holds a control character (a line break, tab or NUL); '
                                'it would end up in a header. Remove it.' % (where, channel['type'], key))


def wants(channel: Dict[str, Any], event: Event) -> bool:
    return event.outcome in (channel.get('events') or DEFAULT_ON)


def payload(channel: Dict[str, Any], event: Event) -> Any:
    kind = channel['type']
    if kind == 'slack':
        return formats.slack(event)
    if kind == 'teams':
        return formats.teams(event)
    if kind == 'pagerduty':
        return formats.pagerduty(event, channel['routing_key'])
    if kind == 'email':
        return formats.email(event, channel['sender'], channel['recipients'], channel.get('subject_prefix', ''))
    return formats.webhook(event)


def send(channel: Dict[str, Any], event: Event,
         post: Callable[..., Dict[str, Any]] = alerts.post_json,
         mail: Callable[..., Dict[str, Any]] = smtp.send) -> Dict[str, Any]:
    try:
        body = payload(channel, event)
    except (ValueError, TypeError) as exc:
        # a delivery never raises (the module docstring's contract): what the format refused is the result
        return {'sent': False, 'attempts': 0, 'status': None,
                'error': 'the %s message could not be built: %s' % (channel['type'], exc)}
    common = dict(timeout=channel['timeout'], retries=channel['retries'], backoff=channel['backoff'])
    if channel['type'] == 'email':
        return mail(body, channel['smtp_host'], channel.get('smtp_port') or _default_port(channel),
                    security=channel.get('smtp_security') or 'starttls', username=channel.get('smtp_username'),
                    password=channel.get('smtp_password'), ca_file=channel.get('ca_file'), **common)
    url = channel.get('url') or formats.PAGERDUTY_URL
    return post(url, body, headers=channel.get('headers'), **common)


def _default_port(channel: Dict[str, Any]) -> int:
    return {'tls': 465, 'starttls': 587}.get(channel.get('smtp_security') or 'starttls', 25)


def notify(channels: List[Dict[str, Any]], event: Event, dry_run: bool = False,
           send_one: Optional[Callable[[Dict[str, Any], Event], Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """One result per channel: {channel, type, outcome, wanted, sent, attempts, status, error}."""
    results = []
    for index, channel in enumerate(channels):
        row: Dict[str, Any] = {'channel': label(channel, index), 'type': channel['type'], 'outcome': event.outcome,
                               'key': event.key, 'wanted': wants(channel, event)}
        if row['wanted'] and not dry_run:
            row.update((send_one or send)(channel, event))
        else:
            row.update(sent=False, attempts=0, status=None, error='')
        results.append(row)
    return results
