"""Benchmark: failover RTO of db_failover's code next to the raw commands an operator would type.

    .venv/bin/python bench/failover.py [--runs 3] [--max-rounds 8] [--json out.json]

Per run, a fresh PostgreSQL 15 primary + 1 streaming standby (tests/harness/replication.py) behind a real
PgBouncer, and a writer committing numbered rows through PgBouncer (tests/harness/pg_writer.py). The primary is
SIGKILLed (with its children, as a crash does; not timed), then the timed side runs:

* ours: ``pg_promote.failover`` (observe every node: who is primary, the WAL position of every candidate; fence the
  old primary: standby.signal + read only + record; pg_promote(); repoint the clients; then the other standbys,
  pg_waldump for rpo_bytes) with ``endpoint.repoint`` (atomic rewrite of pgbouncer.ini, SIGHUP) as its
  on_promoted hook - the module code, without Ansible's start-up;
* raw: ``pg_ctl promote -D <standby>`` (waits for the promotion) + ``sed -i`` of the entry + ``kill -HUP``;

and the side ends at the first write acknowledged through PgBouncer that was sent after the kill: the timed wall
IS the RTO the application sees. Sides alternate, rounds are added until the paired ratio's spread is under
10 % (bench/common.compare); the load average is printed with every run. Target (issue 17): ours within 1.5x
of the raw steps, fencing and checks included.

Per run it also prints where the time went (ours: each step of the failover; raw: each command; both: the
writer's reconnection after the repointing) and the RPO twice: the drill's figure (``replication/drill.measure``,
what failover_drill reports) and the writer's own count (its acknowledged rows missing on the new primary),
with ``rpo_bytes`` (the WAL the old primary had that the new one did not). The cluster's primary has
``synchronous_commit=on`` (durable local commits, asynchronous replication): with the harness's fast default a
kill loses acknowledged commits on the primary itself, which says nothing about the failover. Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from common import Side, Target, compare, format_table, write_json, machine  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    promote as pg_promote)
from ansible_collections.opsready.operations.plugins.module_utils.replication import drill, endpoint  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import NodeSpec  # noqa: E402
from tests.harness.pg_writer import PgWriter  # noqa: E402
from tests.harness.pgbouncer import Bouncer  # noqa: E402
from tests.harness.reaper import start_reaper  # noqa: E402
from tests.harness.replication import PgCluster  # noqa: E402


def spec(node) -> NodeSpec:
    return NodeSpec(name=node.name, conn=ConnectionParams(host=node.host, port=node.port, user=node.user,
                                                          password=node.password, connect_timeout=2),
                    data_dir=str(node.datadir),
                    start_options='-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s'
                    % (node.port, node.socket_dir))


def load() -> str:
    return '%.1f %.1f %.1f' % os.getloadavg()


class Run:
    """One run of one side: a fresh cluster, the writer, the kill (``before``, not timed), the failover until the
    first acknowledged write after the kill (``command``, timed), the counts and the clean-up (``after``)."""

    def __init__(self, variant: str, log: List[Dict[str, Any]]) -> None:
        self.variant = variant
        self.log = log
        self.stack: Optional[contextlib.ExitStack] = None
        self.marks: List[tuple] = []
        self.result: Dict[str, Any] = {}

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic()))

    def before(self) -> None:
        self.stack = contextlib.ExitStack()
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.stack is not None:
            self.stack.close()
            self.stack = None

    def _prepare(self) -> None:
        assert self.stack is not None
        self.cluster = self.stack.enter_context(PgCluster(standbys=1, primary_conf={'synchronous_commit': 'on'}))
        self.bouncer = Bouncer(self.cluster.primary).start()
        self.stack.callback(self.bouncer.stop)
        self.writer = PgWriter(self.cluster.primary.bin('psql'), self.bouncer.conninfo(), self.bouncer.password)
        self.writer.create_table()
        self.writer.start()
        self.stack.callback(self.writer.stop)
        self.writer.wait_acks(200)
        self.cluster.wait_replayed()
        self.marks = []
        self.result = {}
        self.cluster.primary.kill()          # SIGKILL to the postmaster and its children, returns once they are gone
        self.t_kill = time.monotonic()

    def command(self) -> None:
        # The failover runs in a thread: the side ends at the first acknowledged write, not when the failover
        # returns (ours goes on after the repointing: the other standbys, pg_waldump for rpo_bytes, a last look).
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._failover)
        self.thread.start()
        deadline = time.monotonic() + 60
        while self.writer.first_ack_after(self.t_kill) is None:
            if time.monotonic() > deadline or (self.error is not None):
                self.thread.join()
                raise RuntimeError('no write acknowledged after the kill: %r' % self.error)
            time.sleep(0.001)
        self.first = self.writer.first_ack_after(self.t_kill)

    def _failover(self) -> None:
        try:
            (self.ours if self.variant == 'ours' else self.raw)()
            self.mark('failover returned')
        except BaseException as exc:  # noqa: BLE001 - reported by command/after
            self.error = exc

    def ours(self) -> None:
        group = pg_promote.Group([spec(n) for n in self.cluster.nodes], ToolRunner(), 30)
        self.group = group
        real_observe = group.observe

        def observe():
            out = real_observe()
            self.mark('observe')
            return out
        group.observe = observe

        def repoint(node) -> None:
            self.mark('promoted')
            endpoint.repoint('pgbouncer', str(self.bouncer.ini), ['app'], node.spec.conn.host, node.spec.conn.port,
                             'signal', None, [], None, [], False, ToolRunner())
            self.mark('clients repointed')
        try:
            self.result = pg_promote.failover(group, 'primary', None, False, False, on_promoted=repoint)
        finally:
            group.close()

    def raw(self) -> None:
        standby = self.cluster.standbys[0]
        subprocess.run(['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--',
                        standby.bin('pg_ctl'), 'promote', '-D', str(standby.datadir)], check=True,
                       capture_output=True)
        self.mark('pg_ctl promote')
        subprocess.run(['sed', '-i', 's/port=%d/port=%d/' % (self.cluster.primary.port, standby.port),
                        str(self.bouncer.ini)], check=True)
        self.mark('sed')
        pid = int(self.bouncer.pid_file.read_text().split()[0])
        subprocess.run(['kill', '-HUP', str(pid)], check=True)
        self.mark('kill -HUP')

    def after(self) -> None:
        try:
            self.thread.join()
            if self.error is not None:
                raise self.error
            self.writer.stop()
            t_end = time.monotonic()
            new = self.cluster.standbys[0]
            present = [int(r[0]) for r in new.sql('SELECT n FROM fo_writer')]
            own = len(set(self.writer.acked) - set(present))            # the writer's own count
            measured = drill.measure('failover', dict(self.writer.acked), present, self.t_kill, t_end,
                                     first_after=self.first)          # what failover_drill reports
            steps = []
            last = self.t_kill
            for what, t in sorted(self.marks + [('first write acknowledged', self.first)], key=lambda m: m[1]):
                steps.append('%s +%.3f' % (what, t - last))
                last = t
            detail = ''
            if self.variant == 'ours':
                detail = ' | steps: ' + ', '.join('%s %.3f' % (s['step'].split(' (')[0], s['seconds'])
                                                  for s in self.group.steps[:3])
            entry = {'variant': self.variant, 'rto': round(self.first - self.t_kill, 3),
                     'drill_rto': measured['rto_seconds'], 'drill_lost': measured['lost_commits'],
                     'writer_lost': own, 'acknowledged': len(self.writer.acked),
                     'rpo_bytes': self.result.get('rpo_bytes'), 'steps': steps, 'load': load()}
            self.log.append(entry)
            print('      %-4s RTO %.3f s (drill %.3f s): %s%s'
                  % (self.variant, entry['rto'], entry['drill_rto'], ', '.join(steps), detail), flush=True)
            print('      %-4s RPO: drill %d lost, writer %d lost of %d acknowledged%s (%s); load %s'
                  % (self.variant, entry['drill_lost'], own, entry['acknowledged'],
                     '' if self.variant != 'ours' else ', rpo_bytes %s' % entry['rpo_bytes'],
                     'equal' if entry['drill_lost'] == own else 'DIFFERENT', entry['load']), flush=True)
        finally:
            self.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--runs', type=int, default=3, help='rounds before the spread decides (default 3)')
    parser.add_argument('--max-rounds', type=int, default=8)
    parser.add_argument('--json', help='write the row and every run here')
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit('run as root (the servers run as postgres)')
    start_reaper()
    log: List[Dict[str, Any]] = []
    ours_run, raw_run = Run('ours', log), Run('raw', log)
    ours = Side('db_failover code (observe, fence, pg_promote, repoint)', ours_run.command,
                before=ours_run.before, after=ours_run.after)
    raw = Side('pg_ctl promote + sed + kill -HUP', raw_run.command, before=raw_run.before, after=raw_run.after)
    print('failover RTO, ours vs raw; load %s' % load(), flush=True)
    try:
        rows = compare('PostgreSQL failover RTO (kill -9 to first write)', ours, [raw], [Target(1.5)],
                       runs=args.runs, max_rounds=args.max_rounds, log=lambda text: print(text, flush=True),
                       notes=['RTO = SIGKILL of the primary to the first write acknowledged through PgBouncer'])
    finally:
        ours_run.close()
        raw_run.close()
    print(format_table(rows))
    mismatched = [e for e in log if e['drill_lost'] != e['writer_lost']]
    print('RPO: drill figure equal to the writer\'s own count in %d of %d runs; lost commits per run: %s'
          % (len(log) - len(mismatched), len(log), ', '.join('%s %d' % (e['variant'], e['writer_lost']) for e in log)))
    print('load at end %s' % load())
    if args.json:
        write_json(args.json, rows, dict(machine(), runs=log))


if __name__ == '__main__':
    main()
