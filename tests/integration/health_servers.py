"""Real local endpoints for the health tests: a TCP listener, an HTTP(S) server with 200/500/slow/JSON
routes, a self-signed certificate. Private to the health tests."""

from __future__ import annotations

import datetime
import http.server
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Tuple


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class TcpListener:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = 'text/plain') -> None:
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == '/ok':
            self._send(200, b'all good\n')
        elif self.path == '/err':
            self._send(500, b'boom\n')
        elif self.path == '/json':
            self._send(200, json.dumps({'status': 'ok', 'db': {'up': True}}).encode(), 'application/json')
        elif self.path == '/degraded':
            self._send(200, json.dumps({'status': 'degraded'}).encode(), 'application/json')
        elif self.path == '/slow':
            time.sleep(30)
            self._send(200, b'late\n')
        elif self.path == '/auth':
            ok = self.headers.get('Authorization') == 'Bearer s3cret-token'
            self._send(200 if ok else 401, b'auth\n')
        else:
            self._send(404, b'no\n')


class HttpServer:
    def __init__(self, tls: Tuple[str, str] | None = None) -> None:
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self.httpd.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = 'https' if tls else 'http'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return '%s://127.0.0.1:%d%s' % (self.scheme, self.port, path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed(directory: Path, days: int) -> Tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'localhost')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName('localhost'),
                                                        x509.IPAddress(__import__('ipaddress').ip_address('127.0.0.1'))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = directory / 'cert.pem'
    key_path = directory / 'key.pem'
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)
