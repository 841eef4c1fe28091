"""Benchmark: redis_backup next to ``redis-cli --rdb - | zstd -T2 -3`` on the same data, ratio printed.

    .venv/bin/python bench/redis_backup.py          # REDIS_BENCH_MB=200 REDIS_BENCH_ROUNDS=3 by default

A throw-away redis-server (tests/harness/redis.py) is filled with ~REDIS_BENCH_MB megabytes of poorly
compressible values (random hex, ~2:1 with any compressor). Then, alternating, REDIS_BENCH_ROUNDS times:

* ours: ``run_backup`` with the Redis engine (what redis_backup executes, without Ansible's start-up):
  ``redis-cli --rdb`` to a 0600 staging file, ``redis-check-rdb`` counting the keys, zstd (threads=2) and
  SHA-256 in one pass into the atomic artifact, manifest; no verification (the raw pipeline has none);
* raw: ``redis-cli --rdb - | zstd -T2 -3 -q > file``.

Rounds alternate and are added until the paired ratio's spread is under 10 % (bench/common.compare); the
load average is printed with every run. Prints median wall time and size of each and the ratio (the issue's
target: within 1.1x), then the time redis-check-rdb alone takes on the RDB. Asserts nothing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.verify import RedisEngine  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

from common import Side, Target, clear, compare, format_table, load_average, path_size  # noqa: E402


def fill(server: RedisServer, megabytes: int) -> int:
    value_size = 1000
    count = megabytes * 1024 * 1024 // value_size
    batch = 2000
    for start in range(0, count, batch):
        stop = min(count, start + batch)
        lines = ['SET k:%d %s' % (i, secrets.token_hex(value_size // 2)) for i in range(start, stop)]
        server.cli('--pipe', data=('\r\n'.join(lines) + '\r\n').encode(), timeout=300)
    return count


def main() -> None:
    megabytes = int(os.environ.get('REDIS_BENCH_MB', '200'))
    rounds = int(os.environ.get('REDIS_BENCH_ROUNDS', '3'))
    base = tempfile.mkdtemp(prefix='opsready-bench-redis-', dir=os.environ.get('REDIS_BENCH_TMP'))
    server = RedisServer(base=base).start()
    try:
        keys = fill(server, megabytes)
        memory = [line for line in server.cli('INFO', 'memory').splitlines() if line.startswith('used_memory_human')]
        print('redis-server with %d keys, %s' % (keys, memory))
        ours_dest = os.path.join(base, 'ours')
        raw_out = os.path.join(base, 'raw.rdb.zst')
        conn = ConnectionParams(host=server.host, port=server.port, password=server.password)
        opts = BackupOptions(kind='full', dest=ours_dest, compression='zstd', threads=2)

        def backup() -> None:
            result = run_backup(RedisEngine(conn), opts, verify=False)
            assert result['manifest']['sha256'], result

        ours = Side('redis_backup (run_backup, no verify)', backup, before=lambda: clear(ours_dest),
                    output=lambda: sum(path_size(p) for p in Path(ours_dest).glob('*.rdb.zst')))
        raw = Side('redis-cli --rdb - | zstd -T2 -3', '%s --rdb - 2>/dev/null | zstd -T2 -3 -q > %s' % (
            ' '.join(server.cli_argv()), raw_out), env=server.env(), before=lambda: clear(raw_out),
            output=lambda: path_size(raw_out))
        rows = compare('Redis backup (%d MB)' % megabytes, ours, [raw], [Target(1.10, 1.0)], runs=rounds)
        print(format_table(rows))
        # where the time goes: the parts of ours that the raw pipeline does not have
        rdb = os.path.join(base, 'plain.rdb')
        subprocess.run(server.cli_argv() + ['--rdb', rdb], env=server.env(), check=True, capture_output=True)
        started = time.monotonic()
        subprocess.run(['redis-check-rdb', rdb], check=True, capture_output=True)
        print('  redis-check-rdb alone on the %.0f MB RDB: %.2f s (load %.2f)'
              % (os.path.getsize(rdb) / 1e6, time.monotonic() - started, load_average()))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
