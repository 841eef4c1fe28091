"""Real receivers for notification tests, on 127.0.0.1: an HTTP server that records every POST (and answers
with a scripted status per path), and an SMTP server (aiosmtpd) with STARTTLS and AUTH that records every
message (and can answer 451 "try later" a given number of times first).

Plain Python (no pytest import)::

    with WebhookSink() as hooks, SmtpSink(tls=(cert, key), auth=('ops', 'pw')) as mail:
        hooks.script('/flaky', [503, 200])   # first POST gets 503, then 200
        ...
        hooks.requests('/slack')   # [{'path', 'headers', 'json'}]
        mail.messages               # [email.message.EmailMessage]
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socket
import ssl
import threading
from typing import Any, Dict, List, Optional, Tuple


class WebhookSink:
    def __init__(self) -> None:
        self.received: List[Dict[str, Any]] = []
        self._scripts: Dict[str, List[int]] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                with sink._lock:
                    sink.received.append({'path': self.path, 'headers': dict(self.headers),
                                          'json': json.loads(body or b'null')})
                    script = sink._scripts.get(self.path)
                    status = script.pop(0) if script and len(script) > 1 else (script[0] if script else 202)
                self.send_response(status)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> 'WebhookSink':
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def script(self, path: str, statuses: List[int]) -> None:
        """Answer POSTs to ``path`` with these statuses in turn; the last one repeats."""
        self._scripts[path] = list(statuses)

    def requests(self, path: Optional[str] = None) -> List[Dict[str, Any]]:
        with self._lock:
            return [r for r in self.received if path is None or r['path'] == path]


class SmtpSink:
    """aiosmtpd on a free loopback port. ``tls`` (cert, key) offers STARTTLS and requires it before AUTH."""

    def __init__(self, tls: Optional[Tuple[str, str]] = None, auth: Optional[Tuple[str, str]] = None,
                 tempfail: int = 0) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: List[email.message.EmailMessage] = []
        self.envelopes: List[Tuple[str, List[str]]] = []
        self.tempfail = tempfail
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                if sink.tempfail > 0:
                    sink.tempfail -= 1
                    return '451 4.3.0 try again later'
                sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                sink.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return '250 OK'

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = auth is not None and (data.login.decode(), data.password.decode()) == auth
            return AuthResult(success=ok, handled=False)

        kwargs: Dict[str, Any] = {}
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            kwargs.update(tls_context=context, require_starttls=True)
        if auth:
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=bool(tls))
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname='127.0.0.1', port=self.port, **kwargs)

    def __enter__(self) -> 'SmtpSink':
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()
