# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failover drill: a writer commits numbered rows through the client endpoint while the primary is killed
(``kill -9``) and the failover runs (or a switchover, which must lose nothing); RTO and RPO are measured from
what the writer saw acknowledged and what the new primary holds.

* RTO (failover) = kill -> the first write acknowledged after it (the old primary is dead, so that write was
  made on the new primary through the repointed endpoint). RTO (switchover) = the longest time between two
  acknowledged writes during the switchover: how long the application could not write.
* RPO = acknowledged commits missing on the new primary: their count, and in seconds the time from the first
  lost commit's acknowledgement to the kill (the span of acknowledged work the failover lost).

The writer is one psql session (the registry's psql argv and environment) fed on stdin: each INSERT is followed
by ``\\echo ack N`` and psql runs them in order, so ``ack N`` on stdout means row N is committed. A row sent when
the session died is "in doubt", never counted as acknowledged.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import signal
import subprocess  # nosec B404 # argv lists only
import threading
import time
from typing import Any, Dict, List, Optional, cast

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    quote_ident, quote_literal)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import PostgresEngine
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.postmaster import postmaster_pid
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine


class Writer:
    """Commits numbered rows through ``conn`` (the client endpoint) until stopped; reconnects after a failure."""

    def __init__(self, conn: ConnectionParams, database: str, table: str, runner: ToolRunner) -> None:
        self.engine = cast(PostgresEngine, get_engine('postgresql', conn, runner))
        # The writer stands in for the application: its login, its endpoint (PgBouncer refuses the options startup
        # parameter that pins search_path) and its database's search_path, where the unqualified table is created
        # and written. Not pinned (engines/postgresql/client.py); ``qualified`` is what others read.
        self.engine.client.catalog_only = False
        self.database = database
        self.table = quote_ident(table)
        self.qualified = self.table
        self.runner = runner
        self.acked: Dict[int, float] = {}
        self.sent: Dict[int, float] = {}       # row number -> monotonic time it was sent
        self.in_doubt: List[int] = []
        self.reconnects = 0
        self._next = 1
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def prepare(self) -> None:
        self.engine.query('CREATE TABLE IF NOT EXISTS %s (n bigint NOT NULL, at timestamptz NOT NULL DEFAULT '
                          'clock_timestamp())' % self.table, self.database)
        rows = self.engine.query('SELECT coalesce(max(n), 0) FROM %s' % self.table, self.database)  # nosec B608 # identifier through quote_ident, n an int
        self._next = int(rows[0][0]) + 1
        # The table the application's path found, schema-qualified, for the reading back on the new primary with the
        # nodes' login (pinned to pg_catalog there): only a plain table, never a view or a foreign table, whose
        # functions would run as that login.
        found = self.engine.query(
            "SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname), c.relkind FROM pg_catalog.pg_class c "  # nosec B608 # quote_literal
            'JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace '
            'WHERE c.oid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass' % quote_literal(self.table), self.database)
        kind = found[0][1] if found else 'none'
        if kind not in ('r', 'p'):
            raise OpsReadyError('Failover drill: %s in database %s is not a table (relkind %s): name a table of the '
                                "writer's own in writer.table." % (self.table, self.database, kind))
        self.qualified = found[0][0]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name='drill-writer', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def wait(self, pred: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise OpsReadyError('Failover drill: %s within %ss (writer: %d acknowledged, %d reconnects). Check '
                                    'the endpoint the writer uses.' % (what, timeout, len(self.acked), self.reconnects))
            time.sleep(0.01)

    def first_after(self, moment: float) -> Optional[float]:
        """When the first row sent after ``moment`` was acknowledged (an ack read late from the pipe for a row
        sent before the event says nothing about the new primary)."""
        later = [t for n, t in list(self.acked.items()) if self.sent.get(n, 0.0) > moment]
        return min(later) if later else None

    def _session(self) -> None:
        proc = self.runner.popen(self.engine.psql_argv(), env=self.engine.env(self.database), stdin=subprocess.PIPE)
        if proc.stdin is None or proc.stdout is None:   # popen() was asked for both pipes
            raise OpsReadyError('Failover drill: the writer has no pipe to psql.')
        try:
            while not self._stop.is_set():
                n = self._next
                self._next += 1
                self.sent[n] = time.monotonic()
                try:
                    line = 'INSERT INTO %s (n) VALUES (%d);\n\\echo ack %d\n' % (self.table, n, n)  # nosec B608 # quoted
                    proc.stdin.write(line.encode('ascii'))
                    proc.stdin.flush()
                except OSError:
                    self.in_doubt.append(n)
                    return
                line = proc.stdout.readline().decode('ascii', 'replace').strip()
                if line != 'ack %d' % n:
                    self.in_doubt.append(n)
                    return
                self.acked[n] = time.monotonic()
                time.sleep(0.002)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.kill()
            proc.wait()
            proc.stderr_file.close()  # type: ignore[attr-defined]

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
                time.sleep(0.02)
            first = False
            self._session()


def _children(pid: int) -> List[int]:
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b')') + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def kill_postmaster(data_dir: str) -> int:
    """SIGKILL the server of ``data_dir``: the postmaster and its children at once (a backend of a dead postmaster
    would otherwise go on committing for its session until it notices, and a late acknowledgement would be
    counted as the new primary's)."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        raise OpsReadyError('Failover drill: %s has no readable postmaster.pid (a regular file naming the server): the '
                            'primary must run on this host.' % data_dir)
    try:
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
    except (OSError, ValueError) as exc:
        raise OpsReadyError('Failover drill: cannot kill the primary of %s (%s): it must run on this host.'
                            % (data_dir, exc))
    return pid


class Clock:
    """Monotonic times (measurements) with their wall-clock ISO stamps (the report)."""

    def __init__(self) -> None:
        self.mono0 = time.monotonic()
        self.wall0 = utcnow()

    def iso(self, mono: float) -> str:
        import datetime
        return isoformat(self.wall0 + datetime.timedelta(seconds=mono - self.mono0))


def measure(mode: str, acked: Dict[int, float], present: List[int], t_event: float, t_end: float,
            first_after: Optional[float] = None) -> Dict[str, Any]:
    """RTO/RPO from the writer's acknowledgements and the rows the new primary holds (see the module docstring)."""
    have = set(present)
    lost = sorted(n for n in acked if n not in have)
    times = sorted(t for t in acked.values())
    if mode == 'failover':
        after = [t for t in times if t > t_event]
        first = first_after if first_after is not None else (after[0] if after else None)
        rto = round(first - t_event, 3) if first is not None else None
    else:
        window = [t_event] + [t for t in times if t_event <= t <= t_end]
        gaps = [b - a for a, b in zip(window, window[1:])]
        rto = round(max(gaps), 3) if gaps else None
    rpo_seconds = round(max(0.0, t_event - min(acked[n] for n in lost)), 3) if lost else 0.0
    return {'rto_seconds': rto, 'rpo_seconds': rpo_seconds, 'lost_commits': len(lost), 'lost': lost[:1000],
            'acknowledged': len(acked), 'max_acknowledged': max(acked) if acked else 0}
