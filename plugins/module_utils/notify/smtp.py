# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""E-mail over SMTP with a timeout and retries, the same contract as the webhooks (health/alerts.post_json):
never raises, returns what happened.

Retried: connection errors, timeouts, a dropped connection and 4xx replies (the server says "try later").
Not retried: 5xx replies, refused logins and untrusted certificates (a wrong address, password or CA does not
improve by asking again).
The certificate of the server is verified (STARTTLS and implicit TLS).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from typing import Any, Callable, Dict, Optional

SECURITY = ('starttls', 'tls', 'none')


def _open(host: str, port: int, security: str, timeout: float, context: ssl.SSLContext) -> smtplib.SMTP:
    if security == 'tls':
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    client = smtplib.SMTP(host, port, timeout=timeout)
    if security == 'starttls':
        client.starttls(context=context)
    return client


def send(msg: EmailMessage, host: str, port: int, security: str = 'starttls', username: Optional[str] = None,
         password: Optional[str] = None, timeout: float = 10.0, retries: int = 3, backoff: float = 1.0,
         ca_file: Optional[str] = None, sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Send ``msg``; returns {sent, attempts, status, error} like post_json (status: the SMTP reply code)."""
    context = ssl.create_default_context(cafile=ca_file)
    error = ''
    status = None
    attempt = 0
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * (2 ** (attempt - 1)))
        try:
            client = _open(host, port, security, timeout, context)
            try:
                if username:
                    client.login(username, password or '')
                refused = client.send_message(msg)
            finally:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
            if refused:
                # some recipients were refused (the others got it): report, don't resend to everyone
                return {'sent': True, 'attempts': attempt + 1, 'status': 250,
                        'error': 'refused recipients: %s' % ', '.join(sorted(refused))}
            return {'sent': True, 'attempts': attempt + 1, 'status': 250, 'error': ''}
        except smtplib.SMTPAuthenticationError as exc:
            return {'sent': False, 'attempts': attempt + 1, 'status': exc.smtp_code,
                    'error': 'login refused by %s:%d (%d): check smtp_username and smtp_password'
                             % (host, port, exc.smtp_code)}
        except smtplib.SMTPResponseException as exc:
            status = exc.smtp_code
            reply = exc.smtp_error
            if isinstance(reply, bytes):
                reply = reply.decode('utf-8', 'replace')
            error = 'SMTP %d %s' % (exc.smtp_code, reply)
            if not 400 <= exc.smtp_code < 500:
                break
        except smtplib.SMTPRecipientsRefused as exc:
            return {'sent': False, 'attempts': attempt + 1, 'status': None,
                    'error': 'every recipient was refused: %s' % ', '.join(sorted(exc.recipients))}
        except ssl.SSLCertVerificationError as exc:
            return {'sent': False, 'attempts': attempt + 1, 'status': None,
                    'error': 'the certificate of %s:%d is not trusted (%s): give ca_file'
                             % (host, port, exc.verify_message)}
        except (smtplib.SMTPException, ssl.SSLError, socket.timeout, OSError) as exc:
            timed_out = isinstance(exc, socket.timeout)
            error = 'timed out after %ss' % timeout if timed_out else str(exc) or type(exc).__name__
    return {'sent': False, 'attempts': attempt + 1, 'status': status, 'error': error}
