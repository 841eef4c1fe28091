# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Webhook notifications: a JSON POST with a timeout and retries with exponential back-off.

Retried: connection errors, timeouts, HTTP 429 and 5xx. Not retried: other 4xx (a wrong URL or token
does not get better by asking again). Header values are secrets and never appear in results.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
from typing import Any, Callable, Dict, Optional

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


def shown(url: str) -> str:
    """How a message names a webhook: scheme, host and port only. Webhook URLs carry their token in the path
    (Slack ``/services/T/B/<token>``, Teams) or the query, and sometimes a user:password."""
    try:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname or '?'
        port = ':%d' % parsed.port if parsed.port else ''
    except ValueError:  # a port that is not a number
        return 'of this task'
    return '%s://%s%s/...' % (parsed.scheme or '?', '[%s]' % host if ':' in host else host, port)


def unsendable(url: str) -> Optional[str]:
    """Why the HTTP client would refuse ``url`` (it raises, quoting the path and so the token), or None. Spaces
    and control characters (http.client) and non-ASCII characters (the request line is ASCII) inside the URL;
    at its ends they are stripped (urlsplit) and harmless."""
    text = url.strip()
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in text):
        return 'it holds a space or a control character (percent-encode it as %20, or remove it)'
    if not text.isascii():
        return 'it holds a non-ASCII character (percent-encode it)'
    try:
        urllib.parse.urlsplit(text).port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return 'its port is not a number from 0 to 65535'
    return None


def validate(url: str, timeout: float, retries: int, backoff: float) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ('http', 'https') or not parsed.hostname:
        # never echoed: the URL may carry a token
        raise OpsReadyError('webhook url is not an http:// or https:// URL.')
    why = unsendable(url)
    if why:
        raise OpsReadyError('webhook url %s cannot be sent to: %s.' % (shown(url), why))
    if timeout <= 0 or retries < 0 or backoff < 0:
        raise OpsReadyError('webhook timeout must be > 0, retries and backoff >= 0.')


def post_json(url: str, payload: Dict[str, Any], timeout: float = 10.0, retries: int = 3, backoff: float = 1.0,
              headers: Optional[Dict[str, str]] = None,
              sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """POST ``payload``; returns {sent, attempts, status, error}. Waits backoff * 2**n between tries."""
    body = json.dumps(payload, sort_keys=True, default=str).encode('utf-8')
    all_headers = {'Content-Type': 'application/json'}
    all_headers.update({str(k): str(v) for k, v in (headers or {}).items()})
    error = ''
    status = None
    why = unsendable(url)
    if why:
        # http.client would raise InvalidURL quoting the path, i.e. the token: a failed delivery instead
        return {'sent': False, 'attempts': 0, 'status': None, 'error': 'the url cannot be sent: %s' % why}
    attempt = 0
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * (2 ** (attempt - 1)))
        try:
            # Certificates are verified; no ~/.netrc credentials are added (only the given headers).
            with open_url(url, data=body, headers=all_headers, method='POST', timeout=timeout,
                          http_agent='opsready-alert', use_netrc=False) as response:
                status = response.status
                return {'sent': True, 'attempts': attempt + 1, 'status': status, 'error': ''}
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = 'HTTP %d' % exc.code
            if exc.code != 429 and exc.code < 500:
                break
        except (urllib.error.URLError, socket.timeout, OSError, UrlConnectionError) as exc:
            reason = getattr(exc, 'reason', exc)
            error = 'timed out after %ss' % timeout if isinstance(reason, socket.timeout) else str(reason)
        except ValueError as exc:
            # what unsendable() does not foresee (http.client.InvalidURL, a header value that is not Latin-1):
            # the message may quote the URL or a header, so only its type is said; not retried
            error = 'the request could not be built (%s): check url and headers' % type(exc).__name__
            break
    return {'sent': False, 'attempts': attempt + 1, 'status': status, 'error': error}
