"""A throw-away PgBouncer (Debian package ``pgbouncer``) in front of a PostgreSQL test server.

``Bouncer(target, database='app')`` writes ``pgbouncer.ini`` (one ``[databases]`` entry, plain-text userlist
with the test login, ``server_login_retry`` short so a repointed entry is tried at once), starts pgbouncer in the
foreground as the server's OS user on a free 127.0.0.1 port and waits until it accepts connections.
``conninfo()`` is what a client uses; ``ini`` the file db_endpoint rewrites; ``stop()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from tests.harness.servers import HarnessUnavailable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


class Bouncer:
    def __init__(self, target: Any, database: str = 'app', dbname: str = 'postgres',
                 pool_mode: str = 'session') -> None:
        binary = shutil.which('pgbouncer') or ('/usr/sbin/pgbouncer' if os.path.exists('/usr/sbin/pgbouncer') else None)
        if not binary:
            raise HarnessUnavailable('pgbouncer is not installed (apt-get install pgbouncer; listed in bindep.txt)')
        self.binary = binary
        self.user = target.user
        self.password = target.password
        self.database = database
        # The service's directory inside one of root's, as /etc/pgbouncer is in /etc: a directory of the service
        # account's directly in /tmp could be renamed by it, and db_endpoint refuses that (safeio.check_parents).
        self.base = Path(tempfile.mkdtemp(prefix='opsready-pgbouncer-'))
        os.chmod(self.base, 0o755)
        self.dir = self.base / 'pgbouncer'
        self.dir.mkdir()
        self.port = _free_port()
        self.ini = self.dir / 'pgbouncer.ini'
        self.pid_file = self.dir / 'pgbouncer.pid'
        self.log_file = self.dir / 'pgbouncer.log'
        (self.dir / 'userlist.txt').write_text('"%s" "%s"\n' % (target.user, target.password))
        self.ini.write_text(
            '; written by tests/harness/pgbouncer.py\n'
            '[databases]\n'
            '%s = host=%s port=%d dbname=%s\n'
            '\n[pgbouncer]\n'
            'listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n'
            'auth_type = plain\nauth_file = %s\npidfile = %s\nlogfile = %s\n'
            'pool_mode = %s\nserver_login_retry = 0\nserver_connect_timeout = 2\n'
            'max_client_conn = 50\ndefault_pool_size = 5\n'
            % (database, target.host, target.port, dbname, self.port, self.dir / 'userlist.txt', self.pid_file,
               self.log_file, pool_mode))
        self.os_user = target.os_user
        if self.os_user:
            entry = pwd.getpwnam(self.os_user)
            for path in [self.dir, *self.dir.iterdir()]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(self.dir, 0o700)
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> 'Bouncer':
        argv = [self.binary, str(self.ini)]
        if self.os_user and os.geteuid() == 0:
            argv = ['setpriv', '--reuid=%s' % self.os_user, '--regid=%s' % self.os_user, '--init-groups', '--'] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.log_file.read_text() if self.log_file.exists() else ''
                    raise HarnessUnavailable('pgbouncer did not start: %s' % log[-2000:])
                time.sleep(0.05)

    def conninfo(self) -> str:
        return 'host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable' % (self.port, self.user, self.database)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)
