# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials in URLs: what a URL given as an option carries (userinfo, secret-named query parameters) and the
URL with them starred, for names, messages, results and Ansible's invocation (health_check's http check,
slo_report's prometheus_url).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import List

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import REDACTED


# A query (or fragment) parameter whose name says it carries a credential: an API key, an access token, a signed
# URL's signature (S3 X-Amz-Signature, Azure SAS sig), a password. Matching too much costs a starred value in a
# message; matching too little puts a live token in results, history, metrics labels and Ansible's invocation.
_SECRET_PARAM = re.compile(r'token|secret|passw|pwd|passphrase|key|sig|auth|credential|session|cookie', re.I)
_PARAM = re.compile(r'([?&;#])([^=&;#]*)=([^&;#]*)')
_USERINFO = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@')


def _secret_name(raw: str) -> bool:
    return bool(_SECRET_PARAM.search(urllib.parse.unquote_plus(raw)))


def url_secrets(url: str) -> List[str]:
    """The credentials a URL carries (the userinfo, secret-named query and fragment values), as written and
    percent-decoded: what must not appear in any output."""
    found: List[str] = []
    userinfo = _USERINFO.match(url)
    if userinfo:
        # user:password - the password; a user alone (https://<token>@host/, as GitHub takes a token) - the user
        user, _sep, password = userinfo.group(2).partition(':')
        found += [userinfo.group(2), password or user]
    for match in _PARAM.finditer(url):
        if _secret_name(match.group(2)):
            found += [match.group(3), urllib.parse.unquote_plus(match.group(3))]
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """The URL with its credentials starred: the userinfo, and the value of every query or fragment parameter
    whose name says it is a secret. Works on the text as written (no re-encoding), so it also redacts a URL that
    urlsplit refuses; the rest of the URL still names the endpoint."""
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + '@', url)
    return _PARAM.sub(lambda m: m.group(0) if not _secret_name(m.group(2))
                      else '%s%s=%s' % (m.group(1), m.group(2), REDACTED), text)


__all__ = ['redact_url', 'url_secrets']
