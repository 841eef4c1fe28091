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

Prints wall time, artifact size and peak RSS (of the module's own Python process, and of the largest
process in each raw pipeline) with ratios. Asserts nothing. ``make_md5_table`` is importable so other
benchmarks can build the same data set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))

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


def run_timed(argv, env, shell=False):
    """(seconds, peak RSS in KiB of the largest process) for a command (a shell pipeline when shell)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, shell=shell, executable='/bin/bash' if shell else None)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    if status != 0:
        raise SystemExit('command failed: %s' % argv)
    return elapsed, usage.ru_maxrss


def module_run(server, database, dest, kind):
    script = MODULE_RUN % dict(build=str(REPO / 'build'), host=server.host, port=server.port, user=server.user,
                               kind=kind, dest=dest, database=database)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, '-c', script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, dummy = proc.communicate(server.password + '\n')
    data = json.loads(out)
    data['wall'] = time.monotonic() - t0
    return data


def fmt(seconds, size, rss_kb):
    return '%7.1f s %9.1f MB %8.1f MB' % (seconds, size / 1e6, rss_kb / 1024.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=700)
    parser.add_argument('--tmp-root', default=None)
    parser.add_argument('--skip-base', action='store_true')
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='opsready-bench-', dir=args.tmp_root)
    with PostgresServer(tmp_root=args.tmp_root) as server:
        server.create_database('bench')
        t0 = time.monotonic()
        table = make_md5_table(server, 'bench', args.mb)
        print('data: %.0f MB table of md5 text, generated in %.0f s' % (table / 1e6, time.monotonic() - t0))
        env = server.dsn_env(database='bench')
        pg_dump = server.bin('pg_dump')
        results = []
        dest = os.path.join(work, 'catalog')
        mod = module_run(server, 'bench', dest, 'full')
        results.append(('db_backup (pg_dump -Fc -Z0 -> zstd T2 + sha256)', mod['seconds'], mod['size'],
                        mod['self_rss_kb']))
        out = os.path.join(work, 'raw.dump')
        sec, rss = run_timed([pg_dump, '-Fc', '-f', out], env)
        results.append(('raw pg_dump -Fc (gzip)', sec, os.path.getsize(out), rss))
        os.unlink(out)
        out = os.path.join(work, 'raw.dump.zst')
        sec, rss = run_timed('set -o pipefail; %s -Fc -Z0 | zstd -q -T2 -3 > %s' % (pg_dump, out), env, shell=True)
        results.append(('raw pg_dump -Fc -Z0 | zstd -T2', sec, os.path.getsize(out), rss))
        os.unlink(out)
        out = os.path.join(work, 'raw.sql.zst')
        sec, rss = run_timed('set -o pipefail; %s | zstd -q -T2 -3 > %s' % (pg_dump, out), env, shell=True)
        results.append(('raw pg_dump | zstd -T2 (plain)', sec, os.path.getsize(out), rss))
        os.unlink(out)
        print('\nlogical dump of %.0f MB%s' % (table / 1e6, ''))
        print('%-50s %9s %12s %11s   %s' % ('', 'wall', 'size', 'peak RSS', 'ratio wall / size vs fastest raw'))
        fastest = min(results[1:], key=lambda r: r[1])
        for name, sec, size, rss in results:
            print('%-50s %s   %.2fx / %.2fx' % (name, fmt(sec, size, rss), sec / fastest[1], size / fastest[2]))
        print('(db_backup RSS is its own Python process; raw RSS is the largest process of the pipeline; '
              'db_backup wall incl. manifest, without verify)')
        shutil.rmtree(dest, ignore_errors=True)
        if not args.skip_base:
            base = []
            mod = module_run(server, None, dest, 'base')
            base.append(('db_backup kind=base (server-zstd + sha256)', mod['seconds'], mod['size'],
                         mod['self_rss_kb']))
            out = os.path.join(work, 'rawbase')
            sec, rss = run_timed([server.bin('pg_basebackup'), '-D', out, '-Ft', '-X', 'fetch', '--checkpoint=fast',
                                  '--compress=server-zstd:workers=2'], server.dsn_env())
            size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
            base.append(('raw pg_basebackup --compress=server-zstd:workers=2', sec, size, rss))
            print('\nbase backup')
            for name, sec, size, rss in base:
                print('%-50s %s   %.2fx / %.2fx' % (name, fmt(sec, size, rss), sec / base[1][1], size / base[1][2]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
