"""A real ACME CA on loopback for tests and benchmarks: Debian's ``pebble`` (RFC 8555 test CA),
an authoritative ``named`` (bind9) for the test zone that takes RFC 2136 updates signed with a TSIG
key, and ``nginx`` serving a webroot over HTTP and a certificate over TLS.

Every name under the test zone (``acme.test`` by default) resolves to 127.0.0.1 through that named,
and pebble is started with ``-dnsserver`` pointing at it, so HTTP-01 and DNS-01 are really validated
(pebble connects back to 127.0.0.1:<http_port> or looks up the TXT record in named).

Plain Python (no pytest dependency)::

    with DNSServer(tmp) as dns, Pebble(tmp, dns=dns) as ca:
        ca.directory_url, ca.tls_ca_path, ca.roots_pem(), ca.http_port
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ZONE = 'acme.test'
TSIG_NAME = 'opsready-acme.'
TSIG_ALGORITHM = 'hmac-sha256'


class AcmeHarnessError(RuntimeError):
    """A test server did not start; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])
    except OSError as exc:
        return '<no log: %s>' % exc


def _require(binary: str) -> str:
    found = shutil.which(binary, path=os.environ.get('PATH', '') + ':/usr/sbin:/sbin')
    if not found:
        raise AcmeHarnessError('%s is not installed: apt-get install the packages of bindep.txt '
                               '(pebble, bind9, nginx)' % binary)
    return found


def _wait(pred, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AcmeHarnessError('%s did not become ready in %.0f s:\n%s' % (what, timeout, _tail(log)))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


def make_tls_identity(directory: Path, names: List[str]) -> Dict[str, str]:
    """A throw-away CA and a server certificate for ``names`` (the ACME server's HTTPS listener)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'opsready test TLS CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: List[x509.GeneralName] = []
    for name in names:
        try:
            import ipaddress
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {'ca': str(directory / 'tls-ca.pem'), 'cert': str(directory / 'tls-cert.pem'),
             'key': str(directory / 'tls-key.pem')}
    Path(paths['ca']).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths['cert']).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths['key']).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    os.chmod(paths['key'], 0o600)
    return paths


class _Process:
    name = 'server'

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / ('%s.log' % self.name)
        self.proc: Optional[subprocess.Popen] = None

    def _spawn(self, argv: List[str], env: Optional[Dict[str, str]] = None) -> None:
        log = open(self.log_path, 'ab')
        try:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=str(self.dir), start_new_session=True)
        finally:
            log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DNSServer(_Process):
    """named, authoritative for ZONE: every name has A 127.0.0.1; updates need the TSIG key."""

    name = 'named'

    def __init__(self, directory: Path, zone: str = ZONE) -> None:
        super().__init__(directory)
        self.zone = zone
        self.port = free_port()
        self.tsig_name = TSIG_NAME
        self.tsig_algorithm = TSIG_ALGORITHM
        self.tsig_secret = base64.b64encode(os.urandom(32)).decode('ascii')
        zone_file = self.dir / ('%s.zone' % zone)
        zone_file.write_text(
            '$TTL 1\n@ IN SOA ns.%(z)s. hostmaster.%(z)s. 1 60 60 600 1\n@ IN NS ns.%(z)s.\n'
            '@ IN A 127.0.0.1\nns IN A 127.0.0.1\n* IN A 127.0.0.1\n' % {'z': zone})
        conf = self.dir / 'named.conf'
        conf.write_text(
            'options { directory "%(d)s"; pid-file "%(d)s/named.pid"; listen-on port %(p)d { 127.0.0.1; };\n'
            '  listen-on-v6 { none; }; recursion no; dnssec-validation no; notify no; };\n'
            'controls { };\n'
            'key "%(k)s" { algorithm %(a)s; secret "%(s)s"; };\n'
            'zone "%(z)s" { type primary; file "%(f)s"; allow-update { key "%(k)s"; }; };\n'
            % {'d': self.dir, 'p': self.port, 'k': self.tsig_name, 'a': self.tsig_algorithm,
               's': self.tsig_secret, 'z': zone, 'f': zone_file})
        self.conf = conf

    def start(self) -> 'DNSServer':
        self._spawn([_require('named'), '-g', '-c', str(self.conf), '-n', '1'])
        _wait(lambda: 'running' in _tail(self.log_path, 200) or self.proc.poll() is not None, 20, 'named',
              self.log_path)
        if self.proc.poll() is not None:
            raise AcmeHarnessError('named exited:\n%s' % _tail(self.log_path))
        return self

    def __enter__(self) -> 'DNSServer':
        return self.start()

    @property
    def address(self) -> str:
        return '127.0.0.1:%d' % self.port


class Pebble(_Process):
    """pebble with its own TLS identity; ``eab`` maps key ids to base64url HMAC keys (EAB required)."""

    name = 'pebble'

    def __init__(self, directory: Path, dns: Optional[DNSServer] = None, http_port: Optional[int] = None,
                 eab: Optional[Dict[str, str]] = None, always_valid: bool = False, alternate_roots: int = 0,
                 extra_env: Optional[Dict[str, str]] = None) -> None:
        super().__init__(directory)
        self.port = free_port()
        self.management_port = free_port()
        self.http_port = http_port or free_port()
        self.tls_port = free_port()
        self.dns = dns
        self.tls = make_tls_identity(self.dir, ['127.0.0.1', 'localhost'])
        config: Dict[str, object] = {
            'listenAddress': '127.0.0.1:%d' % self.port,
            'managementListenAddress': '127.0.0.1:%d' % self.management_port,
            'certificate': self.tls['cert'], 'privateKey': self.tls['key'],
            'httpPort': self.http_port, 'tlsPort': self.tls_port, 'ocspResponderURL': '',
            'externalAccountBindingRequired': bool(eab),
        }
        if eab:
            config['externalAccountMACKeys'] = eab
        self.config_path = self.dir / 'pebble-config.json'
        self.config_path.write_text(json.dumps({'pebble': config}, indent=2))
        self.env = dict(os.environ, PEBBLE_VA_NOSLEEP='1', PEBBLE_WFE_NONCEREJECT='0', PEBBLE_AUTHZREUSE='0')
        if always_valid:
            self.env['PEBBLE_VA_ALWAYS_VALID'] = '1'
        if alternate_roots:
            self.env['PEBBLE_ALTERNATE_ROOTS'] = str(alternate_roots)
        self.env.update(extra_env or {})

    def start(self) -> 'Pebble':
        argv = [_require('pebble'), '-config', str(self.config_path)]
        if self.dns is not None:
            argv += ['-dnsserver', self.dns.address]
        self._spawn(argv, env=self.env)
        _wait(lambda: _port_open(self.port) or self.proc.poll() is not None, 20, 'pebble', self.log_path)
        if self.proc.poll() is not None:
            raise AcmeHarnessError('pebble exited:\n%s' % _tail(self.log_path))
        return self

    def __enter__(self) -> 'Pebble':
        return self.start()

    @property
    def directory_url(self) -> str:
        return 'https://127.0.0.1:%d/dir' % self.port

    @property
    def tls_ca_path(self) -> str:
        """The CA of pebble's HTTPS listener (what the ACME client must trust to talk to it)."""
        return self.tls['ca']

    def _management(self, path: str) -> bytes:
        ctx = ssl.create_default_context(cafile=self.tls['ca'])
        with urllib.request.urlopen('https://127.0.0.1:%d%s' % (self.management_port, path),  # nosec B310
                                    context=ctx, timeout=10) as resp:
            return resp.read()

    def roots_pem(self, index: int = 0) -> bytes:
        """The root that signs what this pebble issues (generated at each start)."""
        return self._management('/roots/%d' % index)

    def intermediate_pem(self, index: int = 0) -> bytes:
        return self._management('/intermediates/%d' % index)

    def write_roots(self, path: Path, count: int = 1) -> str:
        Path(path).write_bytes(b''.join(self.roots_pem(i) for i in range(count)))
        return str(path)

    def requests_logged(self) -> int:
        """How many ACME requests pebble has answered (its log has one line per request)."""
        return sum(1 for line in _tail(self.log_path, 100000).splitlines() if ' GET ' in line or ' POST ' in line
                   or ' HEAD ' in line)


class Nginx(_Process):
    """nginx serving ``webroot`` on 127.0.0.1:http_port and a certificate on 127.0.0.1:tls_port."""

    name = 'nginx'

    def __init__(self, directory: Path, http_port: int, webroot: Path, cert: str, key: str,
                 tls_port: Optional[int] = None) -> None:
        super().__init__(directory)
        self.http_port = http_port
        self.tls_port = tls_port or free_port()
        self.webroot = Path(webroot)
        self.conf = self.dir / 'nginx.conf'
        self.pidfile = self.dir / 'nginx.pid'
        (self.dir / 'tmp').mkdir(exist_ok=True)
        self.conf.write_text(
            # Workers as root: the test's tmp directories are 0700 root (a real webroot is readable by www-data).
            'user root; daemon off; master_process on; worker_processes 1; pid %(d)s/nginx.pid;\n'
            'error_log %(d)s/nginx.log info;\n'
            'events { worker_connections 64; }\n'
            'http { access_log %(d)s/access.log; client_body_temp_path %(d)s/tmp; proxy_temp_path %(d)s/tmp;\n'
            '  fastcgi_temp_path %(d)s/tmp; uwsgi_temp_path %(d)s/tmp; scgi_temp_path %(d)s/tmp;\n'
            '  default_type text/plain;\n'
            '  server { listen 127.0.0.1:%(h)d; root %(w)s; }\n'
            '  server { listen 127.0.0.1:%(t)d ssl; ssl_certificate %(c)s; ssl_certificate_key %(k)s;\n'
            '           location / { return 200 "ok\\n"; } }\n}\n'
            % {'d': self.dir, 'h': self.http_port, 'w': self.webroot, 't': self.tls_port, 'c': cert, 'k': key})

    def start(self) -> 'Nginx':
        nginx = _require('nginx')
        self._spawn([nginx, '-c', str(self.conf), '-p', str(self.dir), '-e', str(self.dir / 'nginx.log')])
        _wait(lambda: (_port_open(self.tls_port) and _port_open(self.http_port)) or self.proc.poll() is not None,
              20, 'nginx', self.dir / 'nginx.log')
        if self.proc.poll() is not None:
            raise AcmeHarnessError('nginx exited:\n%s' % _tail(self.dir / 'nginx.log'))
        return self

    def __enter__(self) -> 'Nginx':
        return self.start()

    @property
    def reload_command(self) -> List[str]:
        """argv that reloads this nginx (a new config/certificate check, then SIGHUP to the master)."""
        return [_require('nginx'), '-c', str(self.conf), '-p', str(self.dir), '-e', str(self.dir / 'nginx.log'),
                '-s', 'reload']

    def served(self, server_name: str) -> x509.Certificate:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(('127.0.0.1', self.tls_port), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname=server_name) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
