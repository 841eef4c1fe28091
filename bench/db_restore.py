"""Benchmark: db_restore (PostgreSQL logical, pg_restore -j 2) next to the raw tools on the same backup.

    .venv/bin/python bench/db_restore.py [--mb 700] [--format custom|directory] [--jobs 2] [--tmp-root /var/tmp]

A throw-away PostgreSQL 15 server (tests/harness/servers.py) gets a database of ~MB megabytes of poorly
compressible data (random bytea), which is backed up once with db_backup's code (pg_dump, zstd stream for
custom format, pg_dump -j directory format). Then, alternately, the same backup is restored:

* db_restore: ``run_restore`` (what the module executes, without Ansible's start-up): checksums of the
  chain, target inspection, a temporary database, pg_restore -j N, rename swap, ANALYZE;
* raw: what an operator would type for the same artifact: ``zstd -dc`` to a file + ``pg_restore -j N``
  into a fresh database (custom format), or ``pg_restore -j N`` on the directory; then ANALYZE (ours
  runs it, so the raw side does too; printed separately).

Prints wall times and the ratio db_restore / raw (target: within 1.05x). Asserts nothing.
"""

from __future__ import annotations

import argparse
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

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402
from tests.harness.servers import PostgresServer  # noqa: E402


def fill(server: PostgresServer, database: str, megabytes: int) -> None:
    server.sql('CREATE EXTENSION IF NOT EXISTS pgcrypto', database=database)
    server.sql('CREATE TABLE blobs (id bigint PRIMARY KEY, payload bytea NOT NULL) WITH (toast_tuple_target = 8160);'
               'ALTER TABLE blobs ALTER COLUMN payload SET STORAGE EXTERNAL;'
               'CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2));', database=database)
    rows = megabytes * 1024 // 4  # 4 KiB of random bytes per row
    step = 50000
    for start in range(1, rows + 1, step):
        server.sql('INSERT INTO blobs SELECT g, gen_random_bytes(1024) || gen_random_bytes(1024) || '
                   'gen_random_bytes(1024) || gen_random_bytes(1024) FROM generate_series(%d, %d) g'
                   % (start, min(rows, start + step - 1)), database=database, timeout=1800)
    server.sql('INSERT INTO items SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, %d) g;'
               'CREATE INDEX ON items (name)' % (megabytes * 500), database=database, timeout=1800)
    size = server.sql("SELECT pg_size_pretty(pg_database_size(current_database()))", database=database)[0][0]
    print('database %s: %s' % (database, size))


def raw_restore(server: PostgresServer, manifest: dict, target: str, jobs: int, tmp: str) -> tuple:
    server.create_database(target)
    env = server.dsn_env(database=target)
    start = time.perf_counter()
    path = manifest['path']
    copy = None
    if manifest.get('format') == 'custom' and manifest['compression'] == 'zstd':
        copy = os.path.join(tmp, 'raw.dump')
        subprocess.run(['zstd', '-q', '-d', '-f', '-o', copy, path], check=True)
        path = copy
        print('    raw zstd -d %.2fs' % (time.perf_counter() - start), flush=True)
    subprocess.run([server.bin('pg_restore'), '--exit-on-error', '-j', str(jobs), '-d', target, path], env=env,
                   check=True, capture_output=True)
    restored = time.perf_counter() - start
    subprocess.run([server.bin('psql'), '-X', '-q', '-c', 'ANALYZE'], env=env, check=True)
    total = time.perf_counter() - start
    if copy:
        os.unlink(copy)
    return restored, total


def ours(server: PostgresServer, dest: str, source: str, target: str, jobs: int, tmp: str) -> tuple:
    conn = ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)
    request = RestoreRequest(engine='postgresql', src=dest, database=target, source_database=source, jobs=jobs,
                             tmpdir=tmp)
    start = time.perf_counter()
    result = run_restore(request, conn)
    total = time.perf_counter() - start
    return total - result['phases'].get('analyze', 0.0), total, result['phases']


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=700)
    parser.add_argument('--format', choices=['custom', 'directory'], default='custom')
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--runs', type=int, default=2)
    parser.add_argument('--tmp-root', default='/var/tmp')
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix='opsready-bench-restore-', dir=args.tmp_root)
    try:
        with PostgresServer(tmp_root=args.tmp_root, fast=True) as server:
            server.create_database('bench')
            t0 = time.perf_counter()
            fill(server, 'bench', args.mb)
            print('filled in %.1fs' % (time.perf_counter() - t0))
            dest = os.path.join(scratch, 'backups')
            conn = ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)
            opts = BackupOptions(kind='full', dest=dest, database='bench', format=args.format,
                                 jobs=args.jobs if args.format == 'directory' else 1,
                                 compression='zstd' if args.format == 'custom' else 'gzip', level=1)
            t0 = time.perf_counter()
            manifest = run_backup(get_engine('postgresql', conn), opts, verify=False)['manifest']
            print('backup (%s, %s) %.1f MB in %.1fs' % (args.format, manifest['compression'],
                                                        manifest['size'] / 1e6, time.perf_counter() - t0))
            times = {'db_restore': [], 'raw': [], 'db_restore+analyze': [], 'raw+analyze': []}
            for run in range(args.runs):
                # alternate the order so caches favour neither side
                order = ('ours', 'raw') if run % 2 == 0 else ('raw', 'ours')
                for side in order:
                    target = 'r_%s_%d' % (side, run)
                    if side == 'ours':
                        restored, total, phases = ours(server, dest, 'bench', target, args.jobs, scratch)
                        times['db_restore'].append(restored)
                        times['db_restore+analyze'].append(total)
                        print('  run %d db_restore %.2fs load %.1f (phases %s)'
                              % (run, total, os.getloadavg()[0], phases))
                    else:
                        restored, total = raw_restore(server, manifest, target, args.jobs, scratch)
                        times['raw'].append(restored)
                        times['raw+analyze'].append(total)
                        print('  run %d raw        %.2fs load %.1f (restore %.2fs, ANALYZE %.2fs)'
                              % (run, total, os.getloadavg()[0], restored, total - restored))
                    server.drop_database(target)
            med = {k: statistics.median(v) for k, v in times.items()}
            print()
            print('%-34s %8s' % ('median of %d runs' % args.runs, 'seconds'))
            print('%-34s %8.2f' % ('raw (decompress + pg_restore -j %d)' % args.jobs, med['raw']))
            print('%-34s %8.2f' % ('db_restore (without ANALYZE)', med['db_restore']))
            print('%-34s %8.2f' % ('raw + ANALYZE', med['raw+analyze']))
            print('%-34s %8.2f' % ('db_restore (as run)', med['db_restore+analyze']))
            print('ratio db_restore / raw: %.2fx (restore only), %.2fx (both with ANALYZE); target <= 1.05x'
                  % (med['db_restore'] / med['raw'], med['db_restore+analyze'] / med['raw+analyze']))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
    main()
