"""Per-segment time of the archive_command helper (pg_wal_archive.py) without and with age encryption.

    .venv/bin/python bench/wal_archive.py [--segments 8] [--rounds 5] [--wal-dir DIR] [--helper PATH]

Real WAL: a throw-away PostgreSQL 15 (tests/harness) under a writer (inserts of mixed text and numbers,
updates, an index) archives its segments raw with ``cp``; ``--wal-dir`` uses segments you have instead.
Each segment is then archived by the helper exactly as PostgreSQL runs it (a new interpreter per segment,
``python3 pg_wal_archive.py <dest> %p %f``, fsync included), into a fresh catalog per run. A round archives every
segment encrypted (one recipient) and every segment plain; rounds alternate and are added until the paired
ratio's spread is under 10 % or the round limit (bench/common.compare, load printed per run). Printed per
interpreter and compression: the row (wall of all segments, ratio encrypted / plain), then the median CPU time
(user + system) per segment of each side, which the shared test machine's load disturbs far less, and the CPU
that loading cryptography's primitives costs by each path. ``--profile``: a cProfile of one encrypted segment.
Target (issue 18): encryption adds less than 10 % per segment. No timed assertions.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))
HELPER = REPO / 'plugins' / 'module_utils' / 'engines' / 'postgresql' / 'wal_archive.py'
HELPERS = [HELPER]   # --helper: another version of it (an older checkout, to compare)
from common import Side, Target, compare, format_table  # noqa: E402

RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'  # the age spec's example key


def make_wal(directory: Path, segments: int) -> list:
    from tests.harness.servers import PostgresServer
    with PostgresServer(extra_conf={'max_wal_size': '1GB'}) as server:
        server.sql('CREATE TABLE t (id bigserial PRIMARY KEY, customer text, amount numeric, note text)')
        server.sql('CREATE INDEX ON t (customer)')
        wanted = segments + 2
        while len(list(server.wal_archive_dir.glob('0*'))) < wanted:
            server.sql("INSERT INTO t (customer, amount, note) SELECT 'customer-' || (random() * 100000)::int, "
                       "(random() * 1000)::numeric(10, 2), md5(random()::text) || ' order shipped ' || g "
                       "FROM generate_series(1, 20000) g")
            server.sql('UPDATE t SET amount = amount + 1 WHERE id % 7 = 0 AND id > (SELECT max(id) - 20000 FROM t)')
        names = sorted(p.name for p in server.wal_archive_dir.glob('0*') if len(p.name) == 24)[1:segments + 1]
        for name in names:
            shutil.copy(server.wal_archive_dir / name, directory / name)
    return [directory / n for n in names]


def one(python: str, segment: Path, compression: str, encrypt: bool, work: Path) -> tuple:
    """(wall seconds, CPU seconds user+system) of one helper run, as PostgreSQL runs it."""
    dest = Path(tempfile.mkdtemp(dir=work))
    argv = [python, str(HELPERS[0]), str(dest), str(segment), segment.name, '--compression', compression]
    if encrypt:
        argv += ['--recipient', RECIPIENT]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(argv, check=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(dest)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


HELPER_IMPORTS = 'import json, re, hashlib, hmac, gzip, glob, tempfile, datetime, socket'
IMPORT_PATHS = {
    'public modules (before)': 'from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey; '
                               'from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305',
    'compiled binding (>= 42)': 'from cryptography.hazmat.bindings._rust import openssl as b; '
                                'b.aead.ChaCha20Poly1305; b.x25519.generate_key',
    'OpenSSL cffi module (< 42)': 'from cryptography.hazmat.bindings._openssl import ffi, lib; '
                                  'lib.EVP_PKEY_new_raw_private_key',
}


def import_cost(python: str, rounds: int = 15) -> None:
    """Where the encrypted segment's extra time goes: the CPU a new interpreter spends loading cryptography's
    primitives by each path, over the helper's own imports (alternated, medians)."""
    cases = dict({'helper imports alone': HELPER_IMPORTS},
                 **{k: HELPER_IMPORTS + '; ' + v for k, v in IMPORT_PATHS.items()})
    cpu: dict = {k: [] for k in cases}
    for dummy in range(rounds):
        for name, code in cases.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            if subprocess.run([python, '-c', code], capture_output=True, check=False).returncode != 0:
                cpu[name].append(float('nan'))
                continue
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    base = statistics.median(cpu['helper imports alone'])
    for name, values in list(cpu.items())[1:]:
        cost = statistics.median(values) - base
        print('  %s: loading cryptography by the %-26s %s (load %.1f)' % (
            python, name, 'not in this release' if math.isnan(cost)
            else '+%5.1f ms CPU per segment' % (cost * 1000), os.getloadavg()[0]))


def profile(python: str, segment: Path, compression: str, work: Path, top: int = 18) -> None:
    """cProfile of one encrypted segment, as PostgreSQL runs the helper (imports included), by own time."""
    dest = Path(tempfile.mkdtemp(dir=work))
    argv = [python, '-m', 'cProfile', '-s', 'tottime', str(HELPERS[0]), str(dest), str(segment), segment.name,
            '--compression', compression, '--recipient', RECIPIENT]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    shutil.rmtree(dest)
    start = next((i for i, line in enumerate(out) if 'ncalls' in line), 0)
    print('cProfile, %s, %s + age, one segment (load %.1f):' % (python, compression, os.getloadavg()[0]))
    print('\n'.join(out[max(0, start - 3):start + 1 + top]))


def has(python: str, module: str) -> bool:
    return subprocess.run([python, '-c', 'import %s' % module], capture_output=True, check=False).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--segments', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--wal-dir', help='archive these segments instead of generating WAL')
    parser.add_argument('--python', action='append', help='interpreter(s) to run the helper with (default: both)')
    parser.add_argument('--compression', action='append', choices=('gzip', 'zstd'), help='default: both')
    parser.add_argument('--helper', default=str(HELPER), help='the pg_wal_archive.py to time (default: this checkout)')
    parser.add_argument('--work', default='/var/tmp', help='where the catalogs are written (a real disk: fsync)')
    parser.add_argument('--profile', action='store_true', help='print a cProfile of one encrypted segment per '
                        'interpreter and compression first')
    args = parser.parse_args()
    HELPERS[0] = Path(args.helper)
    work = Path(tempfile.mkdtemp(prefix='opsready-walbench-', dir=args.work))
    try:
        if args.wal_dir:
            segments = sorted(p for p in Path(args.wal_dir).iterdir() if len(p.name) == 24)[:args.segments]
        else:
            (work / 'wal').mkdir()
            segments = make_wal(work / 'wal', args.segments)
        print('%d WAL segments of %d MB; %d rounds; load %.1f' % (
            len(segments), segments[0].stat().st_size >> 20, args.rounds, os.getloadavg()[0]))
        if args.profile:
            for python in args.python or ('/usr/bin/python3', str(REPO / '.venv' / 'bin' / 'python')):
                for compression in args.compression or ('gzip', 'zstd'):
                    if has(python, 'cryptography') and (compression == 'gzip' or has(python, 'zstandard')):
                        profile(python, segments[0], compression, work)
        rows = []
        cpu: dict = {}
        for python in args.python or ('/usr/bin/python3', str(REPO / '.venv' / 'bin' / 'python')):
            if not os.path.exists(python) or not has(python, 'cryptography'):
                continue
            for compression in args.compression or ('gzip', 'zstd'):
                if compression == 'zstd' and not has(python, 'zstandard'):
                    continue

                def side(encrypt: bool, python: str = python, compression: str = compression) -> Side:
                    def run_all() -> None:
                        times = [one(python, segment, compression, encrypt, work) for segment in segments]
                        cpu.setdefault((python, compression, encrypt), []).append(sum(t[1] for t in times))
                    return Side('%s %s%s' % (os.path.basename(python), compression, ' + age' if encrypt else ''),
                                run_all)
                label = '%s, %s, %d segments' % ('Debian python3' if python.startswith('/usr') else 'venv python',
                                                 compression, len(segments))
                rows += compare('WAL archive + age (%s)' % label, side(True), [side(False)], [Target(1.10)],
                                runs=args.rounds)
        print(format_table(rows))
        print('%-40s %12s %12s %8s' % ('CPU (user + system) per segment, median', 'plain ms', 'age ms', 'cpu +%'))
        for (python, compression, encrypt), values in sorted(cpu.items()):
            if encrypt:
                plain = statistics.median(cpu[(python, compression, False)]) / len(segments)
                age = statistics.median(values) / len(segments)
                print('%-40s %12.1f %12.1f %7.1f%%' % ('%s %s' % (python[-25:], compression), plain * 1000,
                                                       age * 1000, (age / plain - 1) * 100))
        for python in args.python or ('/usr/bin/python3', str(REPO / '.venv' / 'bin' / 'python')):
            if os.path.exists(python) and has(python, 'cryptography'):
                import_cost(python)
        print('load at end %.1f' % os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
