"""Benchmark: rotate + compress N files of S MB with log_rotate next to `logrotate -f` (same policy).

    .venv/bin/python bench/log_rotate.py [--files 1000] [--mb 1] [--compression zstd|gzip]

Both sides rotate the same freshly written files (create mode, rotate 5, compress) in a scratch
directory; logrotate compresses with the same tool (zstd -3 or gzip -6) through its compresscmd.
Prints wall times and the ratio log_rotate / logrotate (below 1.0 is faster). log_rotate runs through
its module_utils (what the module executes, without Ansible's start-up cost, printed separately).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation  # noqa: E402


def make_files(directory: Path, count: int, size: int) -> None:
    directory.mkdir(parents=True)
    # log-like, compressible content (not random bytes, not a single repeated byte)
    line = b'2026-11-29T00:00:00.000Z INFO service=api request_id=%08d path=/v1/items status=200 ms=%03d\n'
    block = b''.join(line % (i, i % 997) for i in range(size // len(line) + 1))[:size]
    for i in range(count):
        (directory / ('app%04d.log' % i)).write_bytes(block)
    os.sync()


def run_opsready(directory: Path, state: Path, compression: str) -> float:
    policy = Policy(force=True, rotate=5, compression=compression)
    start = time.perf_counter()
    result = Rotation([str(directory / '*.log')], policy, str(state)).run()
    elapsed = time.perf_counter() - start
    assert len(result['compressed']) == len(result['rotated']), result['warnings'][:3]
    return elapsed


def run_logrotate(directory: Path, state: Path, compression: str) -> float:
    conf = directory.parent / 'logrotate.conf'
    comp = ('compresscmd /usr/bin/zstd\n    compressoptions -3 -q\n    compressext .zst\n'
            if compression == 'zstd' else 'compressoptions -6\n')
    conf.write_text('%s/*.log {\n    rotate 5\n    create\n    compress\n    %s    missingok\n}\n'
                    % (directory, comp))
    start = time.perf_counter()
    subprocess.run(['/usr/sbin/logrotate', '-f', '-s', str(state), str(conf)], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--files', type=int, default=1000)
    parser.add_argument('--mb', type=float, default=1.0)
    parser.add_argument('--compression', choices=['zstd', 'gzip'], default='zstd')
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    size = int(args.mb * 1024 * 1024)
    root = Path(tempfile.mkdtemp(prefix='opsready-bench-logrotate-'))
    try:
        ours, theirs = [], []
        for round_ in range(args.rounds):
            for name, runner, bucket in (('log_rotate', run_opsready, ours), ('logrotate', run_logrotate, theirs)):
                work = root / ('%s-%d' % (name, round_))
                make_files(work / 'log', args.files, size)
                bucket.append(runner(work / 'log', work / 'state', args.compression))
                produced = sorted(os.listdir(work / 'log'))
                assert len(produced) == 2 * args.files, produced[:4]
                shutil.rmtree(work)
        best_ours, best_theirs = min(ours), min(theirs)
        print('%d files x %.1f MB, compression %s, best of %d rounds' % (args.files, args.mb, args.compression,
                                                                         args.rounds))
        print('  %-28s %8.2f s   (rounds: %s)' % ('log_rotate (module_utils)', best_ours,
                                                  ', '.join('%.2f' % t for t in ours)))
        print('  %-28s %8.2f s   (rounds: %s)' % ('logrotate -f', best_theirs, ', '.join('%.2f' % t for t in theirs)))
        print('  ratio log_rotate / logrotate: %.2f  (target <= 1.0)' % (best_ours / best_theirs))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
