"""Profile: where db_backup kind=base spends its time at size, next to the raw ``pg_basebackup``.

    .venv/bin/python bench/pg_base_profile.py [--mb 250] [--rounds 6] [--baseline /tmp/old-checkout]

A fresh PostgreSQL 15 cluster (tests/harness/servers.py) with run_all.py's md5 table of --mb MB; each round runs
the raw command (``pg_basebackup -D DIR -Ft -X fetch --checkpoint=fast --compress=server-zstd:workers=2``), ours
(bench/ours.py db_backup kind=base, traced) and optionally a baseline checkout's ours, alternately in rotated
order. Per run it prints what a shared 2-core machine does not blur as much as the wall time:

* own CPU: user + system seconds of the process tree (``os.wait4``), pg_basebackup and psql included;
* server CPU: user + system seconds the postmaster's reaped children (the walsender and its zstd workers) used
  during the run, from /proc/<postmaster>/stat (cutime + cstime; the checkpointer is not in it);
* for ours, the timeline: ``pre`` (process start to pg_basebackup's start: Python, imports, the facts psql,
  the lock), ``pgbb`` (pg_basebackup's run, with the hashing behind it) and ``post`` (its exit to ours' exit:
  the rest of the hash, the manifest frame, the fsync, renames, the JSON manifest);
* the load average. Medians at the end, and the paired wall ratio ours / raw.

Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON  # noqa: E402

from tests.harness.servers import PostgresServer  # noqa: E402


def postmaster_children_cpu(data_dir: str) -> float:
    with open(os.path.join(data_dir, 'postmaster.pid')) as handle:
        pid = int(handle.readline())
    with open('/proc/%d/stat' % pid) as handle:
        fields = handle.read().rsplit(')', 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf('SC_CLK_TCK')


def run(argv, env, server_cpu):
    before, started = server_cpu(), time.time()
    proc = subprocess.Popen(argv, env=dict(env, OPSREADY_BENCH_T0=repr(started)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    dummy, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    if status != 0:
        raise RuntimeError('%s failed: %s' % (argv[:3], stderr[-2000:]))
    marks = {}
    for line in stderr.splitlines():
        found = re.match(r'\s*([\d.]+)\s+(start|exit)\s+pg_basebackup -D', line)
        if found:
            marks[found.group(2)] = float(found.group(1))
    row = {'wall': wall, 'own_cpu': usage.ru_utime + usage.ru_stime, 'server_cpu': server_cpu() - before}
    if marks:
        row.update(pre=marks['start'], pgbb=marks['exit'] - marks['start'], post=wall - marks['exit'])
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=250)
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--baseline', default=None, help='another checkout whose bench/ours.py is a third side')
    parser.add_argument('--tmp-root', default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-pgbase-', dir=args.tmp_root))
    try:
        with PostgresServer(tmp_root=args.tmp_root) as server:
            from db_backup import make_md5_table
            server.create_database('bench')
            started = time.monotonic()
            size = make_md5_table(server, 'bench', args.mb)
            print('data: %.0f MB table of md5 text in %.0f s' % (size / 1e6, time.monotonic() - started))
            data_dir = str(server.datadir)
            conn = {'host': server.host, 'port': server.port, 'user': server.user}
            dest = work / 'dest'
            ours_env = dict(os.environ, OPSREADY_BENCH_PASSWORD=server.password, OPSREADY_BENCH_TRACE='1')
            options = json.dumps(dict(conn, engine='postgresql', kind='base', dest=str(dest)))
            sides = {'raw': ([server.bin('pg_basebackup'), '-D', str(dest), '-Ft', '-X', 'fetch', '--checkpoint=fast',
                              '--compress=server-zstd:workers=2'], server.dsn_env()),
                     'ours': ([PYTHON, str(REPO / 'bench' / 'ours.py'), 'db_backup', options], ours_env)}
            if args.baseline:
                sides['baseline'] = ([PYTHON, os.path.join(args.baseline, 'bench', 'ours.py'), 'db_backup', options],
                                     ours_env)
            names = list(sides)
            results = {name: [] for name in names}
            for n in range(args.rounds):
                order = names[n % len(names):] + names[:n % len(names)]
                parts = []
                for name in order:
                    shutil.rmtree(dest, ignore_errors=True)
                    subprocess.run(['sync'], check=True)   # no side pays for the previous one's dirty pages
                    row = run(sides[name][0], sides[name][1], lambda: postmaster_children_cpu(data_dir))
                    results[name].append(row)
                    parts.append('%s %s' % (name, ' '.join('%s %.3f' % item for item in row.items())))
                print('round %d load %.2f | %s' % (n + 1, os.getloadavg()[0], ' | '.join(parts)), flush=True)
            print()
            for name in names:
                medians = [(key, statistics.median(r[key] for r in results[name])) for key in results[name][0]]
                print('%-8s medians: %s' % (name, ', '.join('%s %.3f s' % item for item in medians)))
                if name != 'raw':
                    ratios = [a['wall'] / b['wall'] for a, b in zip(results[name], results['raw'])]
                    extra = [a['own_cpu'] - b['own_cpu'] for a, b in zip(results[name], results['raw'])]
                    print('%-8s paired wall ratio / raw: median %.3fx (%s); own CPU over raw: median %+.3f s'
                          % (name, statistics.median(ratios), ' '.join('%.2f' % r for r in ratios),
                             statistics.median(extra)))
            print('load now %.2f' % os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
