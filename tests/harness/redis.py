"""Throw-away redis-server instances for the tests.

Each instance listens on 127.0.0.1 on a free port, with ``requirepass`` set (a random password, given to
redis-server in a 0600 config file in the instance's own temp dir, never on its command line), no
persistence unless a test asks (``save ""``, ``appendonly no``) and its ``dir`` in that temp dir, so no
two instances ever share a dump file. Debian's ``redis-server`` package (bindep.txt [test]).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence

HINT = 'redis-server is missing: install Debian\'s redis-server package (bindep.txt [test], `make setup-test`)'


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server; ``start()`` waits until it answers PING, ``stop()`` shuts it down and removes its dir."""

    def __init__(self, config: Optional[Dict[str, str]] = None, password: Optional[str] = None,
                 base: Optional[str] = None) -> None:
        if shutil.which('redis-server') is None:
            raise RuntimeError(HINT)
        self.dir = tempfile.mkdtemp(prefix='opsready-redis-', dir=base)
        self.port = _free_port()
        self.host = '127.0.0.1'
        self.password = password if password is not None else 'pw-' + secrets.token_hex(8)
        self.config = {'save': '""', 'appendonly': 'no', 'protected-mode': 'yes'}
        self.config.update(config or {})
        self.proc: Optional[subprocess.Popen] = None

    @property
    def conf_path(self) -> str:
        return os.path.join(self.dir, 'redis.conf')

    def _write_conf(self) -> None:
        lines = ['bind 127.0.0.1', 'port %d' % self.port, 'dir %s' % self.dir, 'daemonize no',
                 'logfile %s' % os.path.join(self.dir, 'redis.log')]
        if self.password:
            lines.append('requirepass %s' % self.password)
        lines += ['%s %s' % (k, v) for k, v in self.config.items()]
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write('\n'.join(lines) + '\n')

    def start(self, timeout: float = 20) -> 'RedisServer':
        self._write_conf()
        self.proc = subprocess.Popen(['redis-server', self.conf_path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('redis-server exited with %s:\n%s' % (self.proc.returncode, self.log()))
            try:
                if self.cli('PING', timeout=2).strip() == 'PONG':
                    return self
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError('redis-server on port %d did not answer PING:\n%s' % (self.port, self.log()))

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, 'redis.log'), encoding='utf-8', errors='replace') as handle:
                return handle.read()[-4000:]
        except OSError:
            return ''

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env['REDISCLI_AUTH'] = self.password
        return env

    def cli_argv(self, *args: str) -> List[str]:
        return ['redis-cli', '-h', self.host, '-p', str(self.port), '--no-auth-warning'] + list(args)

    def cli(self, *args: str, timeout: float = 30, data: Optional[bytes] = None) -> str:
        run = subprocess.run(self.cli_argv(*args), env=self.env(), capture_output=True, timeout=timeout,
                             input=data, check=False)
        out = run.stdout.decode('utf-8', 'replace')
        if run.returncode != 0:
            raise subprocess.CalledProcessError(run.returncode, args, out, run.stderr)
        return out

    def fill(self, count: int, prefix: str = 'k', value_size: int = 100, batch: int = 5000) -> None:
        """``count`` string keys via redis-cli --pipe (one connection, fast)."""
        value = 'v' * value_size
        for start in range(0, count, batch):
            stop = min(count, start + batch)
            lines: Sequence[str] = ['SET %s:%d %s' % (prefix, i, value) for i in range(start, stop)]
            self.cli('--pipe', data=('\r\n'.join(lines) + '\r\n').encode())

    def dbsize(self) -> int:
        return int(self.cli('DBSIZE').strip())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> 'RedisServer':
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
