"""Benchmark: db_backup (PostgreSQL) next to the raw tools, ratios printed side by side.

    .venv/bin/python bench/db_backup.py [--mb 700] [--rounds 1] [--tmp-root /var/tmp] [--skip-base]

A throw-away PostgreSQL 15 server (tests/harness/servers.py) gets a database of ~MB megabytes of
realistic, poorly compressible text (``make_md5_table``: random md5 hex strings, ~2:1 with any
compressor; pgbench's filler compresses to nothing and proves little). Then, for a logical dump:

* db_backup: ``run_backup`` (what the module executes, without Ansible's start-up): pg_dump -Fc -Z0
  streamed through zstd (threads=2) and SHA-256 in one pass into an atomic artifact, manifest written;
* raw ``pg_dump -Fc`` (its built-in gzip) to a file;
* raw ``pg_dump -Fc -Z0 | zstd -T2 -3`` and raw ``pg_dump | zstd -T2 -3`` (plain format) to a file.

and for a base backup: db_backup kind=base (pg_basebackup -Ft -X fetch --compress=server-zstd:workers=2 into
a staging directory, hashed while written, backup_manifest appended as a zstd skippable frame) next to
``pg_basebackup -Ft -X fetch --compress=server-zstd:workers=2``.

The sides alternate in bench/common.compare (at least --rounds rounds, more until every paired ratio's spread
is under 10 % or --max-rounds; the load average printed with every run). db_backup's figure is the time
``run_backup`` took in its process (bench/reported.py; Python's start-up excluded, as before); the raw sides
are timed start to exit. Prints wall time, artifact size and peak RSS (of the module's own Python process,
and of each raw pipeline's process tree) with ratios. Asserts nothing. ``make_md5_table`` is importable so other
benchmarks can build the same data set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Side, Target, clear, compare, format_table, path_size  # noqa: E402
from reported import reported  # noqa: E402

from tests.harness.servers import PostgresServer  # noqa: E402

MODULE_RUN = r'''
import json, sys, time
sys.path.insert(0, %(build)r)
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
conn = ConnectionParams(host=%(host)r, port=%(port)d, user=%(user)r, password=sys.stdin.readline().strip())
opts = BackupOptions(kind=%(kind)r, dest=%(dest)r, database=%(database)r, compression='zstd', threads=2)
t0 = time.monotonic()
result = run_backup(get_engine('postgresql', conn), opts, verify=False)
elapsed = time.monotonic() - t0
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(json.dumps({'seconds': elapsed, 'size': result['manifest']['size'], 'self_rss_kb': int(hwm)}))
'''


def make_md5_table(server: PostgresServer, database: str, megabytes: int) -> int:
    """Fill ``database`` with ~``megabytes`` MB of md5 text; returns the table size in bytes."""
    server.sql('CREATE TABLE IF NOT EXISTS events (id bigint PRIMARY KEY, a text, b text, c text)',
               database=database)
    rows = megabytes * 1024 * 1024 // 140
    step = 500000
    for start in range(0, rows, step):
        server.sql("INSERT INTO events SELECT g, md5(random()::text), md5(random()::text), md5(g::text || random()) "
                   "FROM generate_series(%d, %d) g" % (start + 1, min(rows, start + step)), database=database)
    server.sql('VACUUM ANALYZE events', database=database)
    return int(server.sql("SELECT pg_total_relation_size('events')", database=database)[0][0])


def module_run(server, database, dest, kind):
    script = MODULE_RUN % dict(build=str(REPO / 'build'), host=server.host, port=server.port, user=server.user,
                               kind=kind, dest=dest, database=database)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, '-c', script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, dummy = proc.communicate(server.password + '\n')
    data = json.loads(out)
    data['wall'] = time.monotonic() - t0
    return data


def module_side(label: str, server, database, dest: str, kind: str, own_rss: list) -> Side:
    """db_backup's code in its own process; its wall is run_backup's own time, its artifact the output."""
    sizes: list = []
    side = Side(label=label, command=lambda: None, output=lambda: float(sizes[-1]), after=lambda: clear(dest))
    times = reported(side)

    def run() -> None:
        data = module_run(server, database, dest, kind)
        times.append(data['seconds'])
        sizes.append(data['size'])
        own_rss.append(data['self_rss_kb'] / 1024.0)

    side.command = run
    return side


def raw_side(label: str, command, env, out: str) -> Side:
    return Side(label=label, command=command, env=env, output=lambda: path_size(out), after=lambda: clear(out))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=700)
    parser.add_argument('--tmp-root', default=None)
    parser.add_argument('--skip-base', action='store_true')
    parser.add_argument('--rounds', type=int, default=1, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=5)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='opsready-bench-', dir=args.tmp_root)
    with PostgresServer(tmp_root=args.tmp_root) as server:
        server.create_database('bench')
        t0 = time.monotonic()
        table = make_md5_table(server, 'bench', args.mb)
        print('data: %.0f MB table of md5 text, generated in %.0f s' % (table / 1e6, time.monotonic() - t0))
        env = server.dsn_env(database='bench')
        pg_dump = server.bin('pg_dump')
        dest = os.path.join(work, 'catalog')
        own_rss: list = []
        ours = module_side('db_backup (pg_dump -Fc -Z0 -> zstd T2 + sha256)', server, 'bench', dest, 'full', own_rss)
        raws = [raw_side('raw pg_dump -Fc (gzip)', [pg_dump, '-Fc', '-f', os.path.join(work, 'raw.dump')], env,
                         os.path.join(work, 'raw.dump')),
                raw_side('raw pg_dump -Fc -Z0 | zstd -T2', '%s -Fc -Z0 | zstd -q -T2 -3 > %s' % (
                    pg_dump, os.path.join(work, 'raw.dump.zst')), env, os.path.join(work, 'raw.dump.zst')),
                raw_side('raw pg_dump | zstd -T2 (plain)', '%s | zstd -q -T2 -3 > %s' % (
                    pg_dump, os.path.join(work, 'raw.sql.zst')), env, os.path.join(work, 'raw.sql.zst'))]
        rows = compare('PostgreSQL logical backup (%.0f MB table)' % (table / 1e6), ours, raws,
                       [Target(1.15), Target(1.05), Target(1.05)], runs=args.rounds,
                       max_rounds=args.max_rounds)
        print('\nlogical dump of %.0f MB' % (table / 1e6))
        print(format_table(rows))
        print('db_backup own peak RSS (its Python process, VmHWM): median %.1f MB; raw RSS is the pipeline\'s '
              'process tree; db_backup wall is run_backup inside its process, incl. manifest, without verify'
              % statistics.median(own_rss))
        if not args.skip_base:
            own_rss = []
            base = module_side('db_backup kind=base (server-zstd + sha256)', server, None, dest, 'base', own_rss)
            out = os.path.join(work, 'rawbase')
            raw = raw_side('raw pg_basebackup --compress=server-zstd:workers=2',
                           [server.bin('pg_basebackup'), '-D', out, '-Ft', '-X', 'fetch', '--checkpoint=fast',
                            '--compress=server-zstd:workers=2'], server.dsn_env(), out)
            rows = compare('PostgreSQL base backup', base, [raw], [Target(1.05)], runs=args.rounds,
                           max_rounds=args.max_rounds)
            print('\nbase backup')
            print(format_table(rows))
            print('db_backup kind=base own peak RSS: median %.1f MB' % statistics.median(own_rss))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
