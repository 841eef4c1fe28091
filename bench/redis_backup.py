"""Benchmark: redis_backup next to ``redis-cli --rdb - | zstd -T2 -3`` on the same data, ratio printed.

    .venv/bin/python bench/redis_backup.py          # REDIS_BENCH_MB=200 REDIS_BENCH_ROUNDS=3 by default

A throw-away redis-server (tests/harness/redis.py) is filled with ~REDIS_BENCH_MB megabytes of poorly
compressible values (random hex, ~2:1 with any compressor). Then, alternating, REDIS_BENCH_ROUNDS times:

* ours: ``run_backup`` with the Redis engine (what redis_backup executes, without Ansible's start-up):
  ``redis-cli --rdb`` to a 0600 staging file, ``redis-check-rdb`` counting the keys, zstd (threads=2) and
  SHA-256 in one pass into the atomic artifact, manifest; no verification (the raw pipeline has none);
* raw: ``redis-cli --rdb - | zstd -T2 -3 -q > file``.

Prints median wall time and size of each and the ratio (the issue's target: within 1.1x). Asserts nothing.
"""

from __future__ import annotations

import os
import secrets
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
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.verify import RedisEngine  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402


def fill(server: RedisServer, megabytes: int) -> int:
    value_size = 1000
    count = megabytes * 1024 * 1024 // value_size
    batch = 2000
    for start in range(0, count, batch):
        stop = min(count, start + batch)
        lines = ['SET k:%d %s' % (i, secrets.token_hex(value_size // 2)) for i in range(start, stop)]
        server.cli('--pipe', data=('\r\n'.join(lines) + '\r\n').encode(), timeout=300)
    return count


def ours(server: RedisServer, dest: str) -> tuple:
    conn = ConnectionParams(host=server.host, port=server.port, password=server.password)
    opts = BackupOptions(kind='full', dest=dest, compression='zstd', threads=2)
    t0 = time.monotonic()
    result = run_backup(RedisEngine(conn), opts, verify=False)
    return time.monotonic() - t0, result['manifest']['size']


def raw(server: RedisServer, dest: str) -> tuple:
    out = os.path.join(dest, 'raw.rdb.zst')
    pipeline = '%s --rdb - 2>/dev/null | zstd -T2 -3 -q > %s' % (
        ' '.join(server.cli_argv()), out)
    t0 = time.monotonic()
    subprocess.run(['bash', '-o', 'pipefail', '-c', pipeline], env=server.env(), check=True)
    return time.monotonic() - t0, os.path.getsize(out)


def main() -> None:
    megabytes = int(os.environ.get('REDIS_BENCH_MB', '200'))
    rounds = int(os.environ.get('REDIS_BENCH_ROUNDS', '3'))
    base = tempfile.mkdtemp(prefix='opsready-bench-redis-', dir=os.environ.get('REDIS_BENCH_TMP'))
    server = RedisServer(base=base).start()
    try:
        keys = fill(server, megabytes)
        memory = [line for line in server.cli('INFO', 'memory').splitlines() if line.startswith('used_memory_human')]
        print('redis-server with %d keys, %s' % (keys, memory))
        times = {'ours': [], 'raw': []}
        sizes = {}
        for _round in range(rounds):
            for name, func in (('raw', raw), ('ours', ours)):
                dest = tempfile.mkdtemp(dir=base)
                seconds, size = func(server, dest)
                times[name].append(seconds)
                sizes[name] = size
                shutil.rmtree(dest)
        med = {name: statistics.median(values) for name, values in times.items()}
        for name in ('raw', 'ours'):
            runs = ', '.join('%.2f' % t for t in times[name])
            print('%-5s median %.2f s  (runs %s)  size %.1f MB' % (name, med[name], runs, sizes[name] / 1e6))
        print('ratio ours/raw: %.2fx time, %.2fx size (target: within 1.10x time)'
              % (med['ours'] / med['raw'], sizes['ours'] / sizes['raw']))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
