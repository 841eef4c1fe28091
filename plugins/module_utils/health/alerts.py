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


def validate(url: str, timeout: float, retries: int, backoff: float) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ('http', 'https') or not parsed.hostname:
        raise OpsReadyError('webhook url %r is not an http:// or https:// URL.' % url)
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
    return {'sent': False, 'attempts': attempt + 1, 'status': status, 'error': error}
