# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACME challenge responders: HTTP-01 by webroot or by a short-lived built-in listener, DNS-01 by
RFC 2136 dynamic update (TSIG-signed, dnspython) with a propagation wait.

Every responder records what it put in place and ``cleanup()`` removes exactly that (the token files
and the directories it created, the TXT values it added - not other values of the same name, so two
runs for the same zone do not remove each other's records). The caller runs ``cleanup()`` in a
``finally``: challenge files and records never outlive the run, also when the order fails.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import http.server
import os
import re
import stat
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

try:
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype
    import dns.tsig
    import dns.tsigkeyring
    import dns.update
    HAS_DNSPYTHON = True
except ImportError:  # only DNS-01 needs it; the module reports it then
    HAS_DNSPYTHON = False

CHALLENGE_DIR = ('.well-known', 'acme-challenge')
# RFC 8555 8.1: a token is base64url; anything else must never become a file name.
TOKEN_RE = re.compile(r'^[A-Za-z0-9_-]{16,256}$')
TSIG_ALGORITHMS = ('hmac-sha256', 'hmac-sha384', 'hmac-sha512', 'hmac-sha224', 'hmac-sha1')


class ChallengeError(OpsReadyError):
    """A challenge could not be put in place (or removed); the message says where and what to do."""


def _check_token(token: str) -> str:
    # fullmatch: '$' also matches before a final newline, and a token 'AAA...\n' made a file with a line break
    if not TOKEN_RE.fullmatch(token):
        raise ChallengeError('The CA sent an HTTP-01 token that is not base64url (%r): refusing to use it as a '
                             'file name.' % token[:80])
    return token


class Webroot:
    """Token files under ``<webroot>/.well-known/acme-challenge/``, created through directory
    descriptors (never through a symlink), 0644; the directories it had to create are removed after."""

    def __init__(self, webroot: str) -> None:
        self.webroot = os.path.abspath(webroot)
        self.files: List[Tuple[int, str]] = []  # (directory fd, token)
        self.created_dirs: List[Tuple[int, str]] = []  # (parent fd, name), innermost last
        self.fds: List[int] = []
        self.challenge_fd: Optional[int] = None

    def _open_dir(self, parent_fd: Optional[int], name: str, create: bool) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
        try:
            fd = os.open(name, flags, dir_fd=parent_fd) if parent_fd is not None else os.open(name, flags)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if parent_fd is None:
                raise
            # ELOOP / ENOTDIR: a symlink or a file where the challenge directory goes - never followed.
            raise ChallengeError('%s/%s is a symlink or not a directory (%s): the token is never written through '
                                 'a link; make it a real directory.' % (self.webroot, name, exc.strerror))
        else:
            self.fds.append(fd)
            return fd
        if parent_fd is None:  # the webroot itself is never created (create=False)
            raise ChallengeError('webroot %s does not exist.' % self.webroot)
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            pass  # made by another run since the open above
        else:
            self.created_dirs.append((parent_fd, name))
        try:
            fd = os.open(name, flags, dir_fd=parent_fd)
        except OSError as exc:
            # The web server's account owns the webroot: it can rename the directory just made and put a link (or
            # a file) at its name. Never followed; said like a link found before (not a bare errno).
            raise ChallengeError('%s/%s was replaced by a symlink or a file right after it was created (%s): the '
                                 'token is never written through a link. Someone else writes into the webroot; '
                                 'make the directory a real one and run again.' % (self.webroot, name, exc.strerror))
        os.fchmod(fd, 0o755)  # nosec B103 # the web server user must read the token; the umask must not hide it
        self.fds.append(fd)
        return fd

    def _challenge_dir(self) -> int:
        if self.challenge_fd is None:
            try:
                fd = self._open_dir(None, self.webroot, create=False)
            except FileNotFoundError:
                raise ChallengeError('webroot %s does not exist: give the directory your web server serves for '
                                     'http://<name>/ (its document root).' % self.webroot)
            except OSError as exc:
                raise ChallengeError('webroot %s cannot be opened as a directory (%s): give the document root, '
                                     'not a symlink or file.' % (self.webroot, exc.strerror))
            for name in CHALLENGE_DIR:
                fd = self._open_dir(fd, name, create=True)
            self.challenge_fd = fd
        return self.challenge_fd

    def deploy(self, token: str, validation: str) -> str:
        _check_token(token)
        fd = self._challenge_dir()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
        try:
            out = os.open(token, flags, 0o644, dir_fd=fd)
        except FileExistsError:
            os.unlink(token, dir_fd=fd)  # a leftover of a killed run: the CA makes a new token per order
            out = os.open(token, flags, 0o644, dir_fd=fd)
        self.files.append((fd, token))
        try:
            os.fchmod(out, 0o644)
            os.write(out, validation.encode('ascii'))
        finally:
            os.close(out)
        return os.path.join(self.webroot, *CHALLENGE_DIR) + '/' + token

    def paths(self) -> List[str]:
        return [os.path.join(self.webroot, *CHALLENGE_DIR, token) for _fd, token in self.files]

    def cleanup(self) -> List[str]:
        errors = []
        for fd, token in self.files:
            try:
                st = os.lstat(token, dir_fd=fd)
                if stat.S_ISREG(st.st_mode):
                    os.unlink(token, dir_fd=fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append('%s: %s' % (token, exc.strerror))
        for parent_fd, name in reversed(self.created_dirs):
            try:
                os.rmdir(name, dir_fd=parent_fd)
            except OSError:
                pass  # not empty: something else put files there since; leave it
        for fd in reversed(self.fds):
            os.close(fd)
        self.files, self.created_dirs, self.fds, self.challenge_fd = [], [], [], None
        return errors


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    server_version = 'opsready-acme'
    tokens: Dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        prefix = '/' + '/'.join(CHALLENGE_DIR) + '/'
        body = self.tokens.get(self.path[len(prefix):]) if self.path.startswith(prefix) else None
        if body is None:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Listener:
    """A built-in HTTP server for HTTP-01 on ``address:port`` (80 by default) for the run only."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        handler = type('Handler', (_TokenHandler,), {'tokens': {}})
        self.tokens: Dict[str, bytes] = handler.tokens  # type: ignore[attr-defined]
        try:
            self.server = http.server.ThreadingHTTPServer((address, port), handler)
        except OSError as exc:
            raise ChallengeError('The built-in HTTP-01 listener cannot bind %s:%d (%s): something already serves '
                                 'that port - use challenge=http-01 with webroot set to its document root, or stop '
                                 'it for the renewal.' % (address, port, exc.strerror))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True)
        self.thread.start()

    def deploy(self, token: str, validation: str) -> str:
        self.tokens[_check_token(token)] = validation.encode('ascii')
        return 'http://%s:%d/%s/%s' % (self.address, self.port, '/'.join(CHALLENGE_DIR), token)

    def cleanup(self) -> List[str]:
        self.tokens.clear()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        return []


class RFC2136:
    """TXT records ``_acme-challenge.<name>`` added and removed by TSIG-signed dynamic updates sent to the
    primary ``server``; propagation is awaited on that server and on every ``check_servers`` entry."""

    def __init__(self, server: str, port: int, key_name: str, key_secret: str, key_algorithm: str = 'hmac-sha256',
                 zone: Optional[str] = None, ttl: int = 60, timeout: float = 10.0,
                 propagation_timeout: float = 120.0, check_servers: Optional[List[str]] = None) -> None:
        if not HAS_DNSPYTHON:
            raise ChallengeError('challenge dns-01 needs the Python package dnspython on the managed host '
                                 '(pip install dnspython, or python3-dnspython).')
        if key_algorithm not in TSIG_ALGORITHMS:
            raise ChallengeError('tsig_algorithm %s is not supported: use one of %s.'
                                 % (key_algorithm, ', '.join(TSIG_ALGORITHMS)))
        self.server, self.port, self.zone, self.ttl, self.timeout = server, port, zone, ttl, timeout
        self.propagation_timeout = propagation_timeout
        self.check_servers = [self._server_port(s) for s in (check_servers or [])]
        self.key_name = dns.name.from_text(key_name)
        self.key_algorithm = dns.name.from_text(key_algorithm)
        try:
            self.keyring = dns.tsigkeyring.from_text({key_name: (key_algorithm, key_secret)})
        except Exception:  # noqa: BLE001 - never echo the secret; its form is what is wrong
            raise ChallengeError('tsig_secret is not valid base64: give the secret of the TSIG key as named.conf or '
                                 'tsig-keygen prints it.')
        self.records: List[Tuple[Any, Any, str]] = []  # (zone, relative name, value)

    def _server_port(self, text: str) -> Tuple[str, int]:
        host, _sep, port = text.rpartition(':') if text.count(':') == 1 else (text, '', '')
        return (host or text), int(port or 53)

    def _find_zone(self, fqdn: Any) -> Any:
        """The zone holding ``fqdn``: the SOA the primary names in its answer or authority section."""
        query = dns.message.make_query(fqdn, dns.rdatatype.SOA)
        try:
            answer = dns.query.udp(query, self.server, port=self.port, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - dnspython raises many kinds
            raise ChallengeError('The DNS server %s:%d does not answer (%s): check dns_server/dns_port.'
                                 % (self.server, self.port, exc))
        for section in (answer.answer, answer.authority):
            for rrset in section:
                if rrset.rdtype == dns.rdatatype.SOA:
                    return rrset.name
        raise ChallengeError('The DNS server %s:%d is not authoritative for %s (no SOA in its answer): set dns_zone, '
                             'and point dns_server at the primary of that zone.' % (self.server, self.port, fqdn))

    def _send(self, update: Any, what: str) -> None:
        try:
            response = dns.query.tcp(update, self.server, port=self.port, timeout=self.timeout)
        except dns.tsig.PeerError as exc:
            raise ChallengeError('The DNS server %s:%d refused the TSIG signature of key %s (%s): check tsig_key_name, '
                                 'tsig_algorithm and tsig_secret.' % (self.server, self.port, self.key_name, exc))
        except Exception as exc:  # noqa: BLE001
            raise ChallengeError('The dynamic update (%s) to %s:%d failed: %s.' % (what, self.server, self.port, exc))
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise ChallengeError('The DNS server %s:%d answered %s to the dynamic update (%s): allow key %s to update '
                                 'that zone (allow-update / update-policy).'
                                 % (self.server, self.port, dns.rcode.to_text(rcode), what, self.key_name))

    def deploy(self, record_name: str, validation: str) -> str:
        fqdn = dns.name.from_text(record_name)
        zone = dns.name.from_text(self.zone) if self.zone else self._find_zone(fqdn)
        if not fqdn.is_subdomain(zone):
            raise ChallengeError('%s is not inside dns_zone %s: set dns_zone to the zone that holds it.'
                                 % (record_name, zone))
        relative = fqdn.relativize(zone)
        update = dns.update.UpdateMessage(zone, keyring=self.keyring, keyname=self.key_name,
                                          keyalgorithm=self.key_algorithm)
        update.add(relative, self.ttl, 'TXT', '"%s"' % validation)
        self._send(update, 'add TXT %s' % fqdn)
        self.records.append((zone, relative, validation))
        return str(fqdn)

    def _visible(self, server: Tuple[str, int], fqdn: Any, value: str) -> bool:
        query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
        try:
            answer = dns.query.udp(query, server[0], port=server[1], timeout=min(self.timeout, 3.0))
        except Exception:  # noqa: BLE001 - not answering yet is "not visible yet"
            return False
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rdata in rrset:
                    if b''.join(rdata.strings).decode('ascii', 'replace') == value:
                        return True
        return False

    def wait_propagation(self) -> float:
        """Poll until every added value is answered by the primary and every check server; returns seconds."""
        started = time.monotonic()
        deadline = started + self.propagation_timeout
        servers = [(self.server, self.port)] + self.check_servers
        pending = [(server, zone.concatenate(dns.name.root) if not zone.is_absolute() else zone, relative, value)
                   for server in servers for zone, relative, value in self.records]
        delay = 0.2
        while pending:
            pending = [p for p in pending if not self._visible(p[0], p[2].derelativize(p[1]), p[3])]
            if not pending:
                break
            if time.monotonic() >= deadline:
                server, zone, relative, _value = pending[0]
                raise ChallengeError('The TXT record %s is not visible on %s:%d after %.0f s (propagation_timeout): '
                                     'check that server gets the zone from the primary, or raise the timeout.'
                                     % (relative.derelativize(zone), server[0], server[1], self.propagation_timeout))
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        return time.monotonic() - started

    def names(self) -> List[str]:
        return [str(relative.derelativize(zone)) for zone, relative, _v in self.records]

    def cleanup(self) -> List[str]:
        errors = []
        for zone, relative, value in self.records:
            update = dns.update.UpdateMessage(zone, keyring=self.keyring, keyname=self.key_name,
                                              keyalgorithm=self.key_algorithm)
            update.delete(relative, 'TXT', '"%s"' % value)
            try:
                self._send(update, 'delete TXT %s' % relative.derelativize(zone))
            except ChallengeError as exc:
                errors.append(str(exc))
        self.records = []
        return errors
