"""A throw-away HAProxy (Debian package ``haproxy``, in bindep.txt) in TCP mode in front of test servers.

``Haproxy(target, backend='db', server='primary')`` writes ``haproxy.cfg`` in a temporary directory (master-worker
mode, one ``listen`` section on a free 127.0.0.1 port, one ``server`` line pointing at ``target``), starts
``haproxy -W -db`` (master in the foreground, pid file = the master's pid, the one a reload signals) and waits
until the port accepts connections. ``cfg`` is the file db_endpoint rewrites; ``pid_file``; ``stop()``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.harness.servers import HarnessUnavailable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


class Haproxy:
    def __init__(self, target: Any, backend: str = 'db', server: str = 'primary') -> None:
        binary = shutil.which('haproxy') or shutil.which('haproxy', path='/usr/sbin')
        if not binary:
            raise HarnessUnavailable('haproxy is not installed (apt-get install haproxy; listed in bindep.txt)')
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix='opsready-haproxy-'))
        self.port = _free_port()
        self.backend = backend
        self.cfg = self.dir / 'haproxy.cfg'
        self.pid_file = self.dir / 'haproxy.pid'
        self.log_file = self.dir / 'haproxy.log'
        self.cfg.write_text(
            '# written by tests/harness/haproxy.py\n'
            'global\n    master-worker\n'
            'defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n'
            'listen %s\n    bind 127.0.0.1:%d\n    server %s %s:%d\n'
            % (backend, self.port, server, target.host, target.port))
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> 'Haproxy':
        self._log = open(self.log_file, 'ab')
        self._proc = subprocess.Popen([self.binary, '-W', '-db', '-f', str(self.cfg), '-p', str(self.pid_file)],
                                      stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError('haproxy exited: %s' % self.log_file.read_text(errors='replace')[-2000:])
            if self.pid_file.exists() and self.pid_file.read_text().strip():
                try:
                    with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError('haproxy did not listen on %d in %ss' % (self.port, timeout))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()   # the master stops its workers
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if getattr(self, '_log', None):
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
