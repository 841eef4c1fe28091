"""Benchmark: failover RTO of db_failover's code next to the raw commands an operator would type.

    .venv/bin/python bench/failover.py [--rounds 3] [--steps]

Per round, a fresh PostgreSQL 15 primary + 1 streaming standby (tests/harness/replication.py) behind a real
PgBouncer, and a writer committing numbered rows through PgBouncer (tests/harness/pg_writer.py). The primary is
SIGKILLed, then, alternately:

* ours: ``pg_promote.failover`` (observe every node, fence the old primary: standby.signal + read only + record,
  pg_promote(), repoint the other standbys, pg_waldump for rpo_bytes) + ``endpoint.repoint`` (atomic rewrite of
  pgbouncer.ini, SIGHUP) - the module code, without Ansible's start-up;
* raw: ``pg_ctl promote -D <standby>`` (waits for the promotion) + ``sed -i`` of the entry + ``kill -HUP``;

``--steps`` prints where ours spent the time. The cluster's primary has ``synchronous_commit=on`` (durable local
commits, asynchronous replication): with the harness's fast default a kill loses acknowledged commits on the
primary itself, which says nothing about the failover.

RTO = kill -> first write acknowledged through PgBouncer after it (what the application sees). Prints the
medians and the ratio ours / raw (the issue's target: within 1.5x with fencing and checks included), and the
acknowledged commits each run lost. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    promote as pg_promote)
from ansible_collections.opsready.operations.plugins.module_utils.replication import endpoint  # noqa: E402
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


STEPS: list = []


def ours(cluster, bouncer) -> None:
    group = pg_promote.Group([spec(n) for n in cluster.nodes], ToolRunner(), 30)
    STEPS[:] = [('start', time.monotonic())]
    real_observe = group.observe

    def observe():
        t = time.monotonic()
        out = real_observe()
        STEPS.append(('observe %.3f' % (time.monotonic() - t), time.monotonic()))
        return out
    group.observe = observe

    def repoint(node) -> None:
        endpoint.repoint('pgbouncer', str(bouncer.ini), ['app'], node.spec.conn.host, node.spec.conn.port, 'signal',
                         None, [], None, [], False, ToolRunner())
        STEPS.append(('repointed', time.monotonic()))
    pg_promote.failover(group, 'primary', None, False, False, on_promoted=repoint)
    STEPS.append(('done', time.monotonic()))
    STEPS.extend(('step %s %s' % (st['step'], st['seconds']), 0.0) for st in group.steps)


def raw(cluster, bouncer) -> None:
    standby = cluster.standbys[0]
    subprocess.run(['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--', standby.bin('pg_ctl'),
                    'promote', '-D', str(standby.datadir)], check=True, capture_output=True)
    subprocess.run(['sed', '-i', 's/port=%d/port=%d/' % (cluster.primary.port, standby.port), str(bouncer.ini)],
                   check=True)
    pid = int(bouncer.pid_file.read_text().split()[0])
    subprocess.run(['kill', '-HUP', str(pid)], check=True)


def one_round(variant: str) -> tuple:
    with PgCluster(standbys=1, primary_conf={"synchronous_commit": "on"}) as cluster:
        bouncer = Bouncer(cluster.primary).start()
        try:
            writer = PgWriter(cluster.primary.bin('psql'), bouncer.conninfo(), bouncer.password)
            writer.create_table()
            writer.start()
            writer.wait_acks(200)
            cluster.wait_replayed()
            cluster.primary.kill()          # SIGKILL to the postmaster and its children, returns once they are gone
            t_kill = time.monotonic()
            (ours if variant == 'ours' else raw)(cluster, bouncer)
            t_done = time.monotonic()
            deadline = time.monotonic() + 60
            while writer.first_ack_after(t_kill) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            first = writer.first_ack_after(t_kill)
            writer.stop()
            new = cluster.standbys[0]
            present = {int(r[0]) for r in new.sql('SELECT n FROM fo_writer')}
            lost = len(set(writer.acked) - present)
            return (first - t_kill if first else float('nan')), t_done - t_kill, lost, len(writer.acked)
        finally:
            bouncer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--steps', action='store_true', help='print where ours spent the time')
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit('run as root (the servers run as postgres)')
    start_reaper()
    variants = ['ours', 'raw']
    times = {v: [] for v in variants}
    for i in range(args.rounds):
        for variant in variants[i % len(variants):] + variants[:i % len(variants)]:
            rto, steps, lost, acked = one_round(variant)
            times[variant].append(rto)
            print('round %d %-4s RTO %.3f s (failover steps %.3f s), lost %d of %d acknowledged, load %s'
                  % (i + 1, variant, rto, steps, lost, acked, '%.1f %.1f %.1f' % os.getloadavg()), flush=True)
            if variant != 'raw' and args.steps:
                t0 = STEPS[0][1]
                print('   ' + '; '.join('%s @%.3f' % (n, t - t0) if t else n for n, t in STEPS[1:]), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print('median RTO: ours %.3f s, raw pg_ctl promote + sed + HUP %.3f s, ratio %.2fx (load %s)'
          % (med['ours'], med['raw'], med['ours'] / med['raw'], '%.1f %.1f %.1f' % os.getloadavg()))
    ratios = [o / r for o, r in zip(times['ours'], times['raw'])]
    print('per-round ratios (same round, alternated): %s' % ', '.join('%.2f' % x for x in ratios))


if __name__ == '__main__':
    main()
