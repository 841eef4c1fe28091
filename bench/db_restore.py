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

The sides alternate in bench/common.compare: at least --runs rounds, more until the paired ratio's spread is
under 10 % or --max-rounds, the load average printed with every run. The wall of both sides includes ANALYZE
(the target row); the restore without it is printed next to it. Creating the raw side's empty database and
dropping the restored ones is not timed. Prints wall times and the ratio db_restore / raw (target: within
1.05x). Asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
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

from common import Side, Target, compare, format_table  # noqa: E402

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
    """(seconds without ANALYZE, seconds with it); the empty target database exists already."""
    env = server.dsn_env(database=target)
    start = time.perf_counter()
    path = manifest['path']
    copy = None
    if manifest.get('format') == 'custom' and manifest['compression'] == 'zstd':
        copy = os.path.join(tmp, 'raw.dump')
        subprocess.run(['zstd', '-q', '-d', '-f', '-o', copy, path], check=True)
        path = copy
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
    parser.add_argument('--runs', type=int, default=2, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=6)
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
            times = {'db_restore': [], 'raw': []}
            names = ('r_%d' % n for n in itertools.count())
            current = {}

            def ours_run():
                restored, total, phases = ours(server, dest, 'bench', current['ours'], args.jobs, scratch)
                times['db_restore'].append(restored)
                print('    db_restore %.2fs (phases %s)' % (total, phases))

            def raw_run():
                restored, total = raw_restore(server, manifest, current['raw'], args.jobs, scratch)
                times['raw'].append(restored)
                print('    raw        %.2fs (restore %.2fs, ANALYZE %.2fs)' % (total, restored, total - restored))

            def name_for(side, create=False):
                def before():
                    current[side] = next(names)
                    if create:
                        server.create_database(current[side])
                return before

            mine = Side(label='db_restore (run_restore, pg_restore -j %d, ANALYZE)' % args.jobs, command=ours_run,
                        before=name_for('ours'), after=lambda: server.drop_database(current['ours']))
            theirs = Side(label='raw decompress + pg_restore -j %d + ANALYZE' % args.jobs, command=raw_run,
                          before=name_for('raw', create=True), after=lambda: server.drop_database(current['raw']))
            rows = compare('PostgreSQL restore (%s, %d MB)' % (args.format, args.mb), mine, [theirs], [Target(1.05)],
                           runs=args.runs, max_rounds=args.max_rounds)
            print()
            print(format_table(rows))
            row = rows[0]
            restore_only = statistics.median(times['db_restore']) / statistics.median(times['raw'])
            print('%-34s %8s' % ('median of %d rounds' % row.runs, 'seconds'))
            print('%-34s %8.2f' % ('raw (decompress + pg_restore -j %d)' % args.jobs, statistics.median(times['raw'])))
            print('%-34s %8.2f' % ('db_restore (without ANALYZE)', statistics.median(times['db_restore'])))
            print('%-34s %8.2f' % ('raw + ANALYZE', row.raw['wall_s']))
            print('%-34s %8.2f' % ('db_restore (as run)', row.ours['wall_s']))
            print('ratio db_restore / raw: %.2fx (restore only), %.2fx (both with ANALYZE); target <= 1.05x'
                  % (restore_only, row.ratio_wall))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
    main()
