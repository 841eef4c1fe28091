"""A writer that commits numbered rows through a client endpoint and keeps its own count of what was acknowledged.

Used by the failover tests, the failover drill and bench/failover.py. One persistent ``psql`` session (SQL on
stdin, autocommit): each ``INSERT`` is followed by ``\\echo ack N``, and psql runs statements in order, so an
``ack N`` line means row N was committed and acknowledged. When the session dies (primary killed or stopped)
the row in flight is "in doubt" (never counted as acknowledged) and the writer reconnects, polling, to the same
connection string (libpq multi-host + ``target_session_attrs=read-write``, or a PgBouncer endpoint).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Dict, List, Optional


class PgWriter:
    def __init__(self, psql: str, conninfo: str, password: str, table: str = 'fo_writer',
                 interval: float = 0.002) -> None:
        self.psql = psql
        self.conninfo = conninfo
        self.env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
        self.env.update(PGPASSWORD=password, PGCONNECT_TIMEOUT='2', LC_ALL='C.UTF-8')
        self.table = table
        self.interval = interval
        self.acked: Dict[int, float] = {}      # row number -> monotonic time of its acknowledgement
        self.sent: Dict[int, float] = {}       # row number -> monotonic time it was sent
        self.in_doubt: List[int] = []
        self.reconnects = 0
        self._next = 1
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def create_table(self) -> None:
        subprocess.run([self.psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', self.conninfo, '-c',
                        'CREATE TABLE IF NOT EXISTS %s (n int NOT NULL, at timestamptz DEFAULT clock_timestamp())'
                        % self.table], env=self.env, check=True, capture_output=True, timeout=30)

    def start(self) -> 'PgWriter':
        self._thread = threading.Thread(target=self._run, name='pg-writer', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wait_acks(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        target = len(self.acked) + count
        while len(self.acked) < target:
            if time.monotonic() > deadline:
                raise AssertionError('writer: %d acknowledgements in %ss (have %d)' % (count, timeout, len(self.acked)))
            time.sleep(0.01)

    def first_ack_after(self, moment: float) -> Optional[float]:
        """The acknowledgement of the first row sent after ``moment`` (not a late-read ack of an earlier row)."""
        later = [t for n, t in list(self.acked.items()) if self.sent.get(n, 0.0) > moment]
        return min(later) if later else None

    def _session(self) -> None:
        proc = subprocess.Popen([self.psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', self.conninfo],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=self.env, text=True, bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            while not self._stop.is_set():
                n = self._next
                self._next += 1
                self.sent[n] = time.monotonic()
                try:
                    proc.stdin.write('INSERT INTO %s (n) VALUES (%d);\n\\echo ack %d\n' % (self.table, n, n))
                    proc.stdin.flush()
                except (BrokenPipeError, OSError):
                    self.in_doubt.append(n)
                    return
                line = proc.stdout.readline()
                if line.strip() != 'ack %d' % n:
                    self.in_doubt.append(n)
                    return
                self.acked[n] = time.monotonic()
                if self.interval:
                    time.sleep(self.interval)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.kill()
            proc.wait()

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
                time.sleep(0.02)
            first = False
            self._session()
