"""Benchmark: rotate + compress N files of S MB with log_rotate next to `logrotate -f` (same policy).

    .venv/bin/python bench/log_rotate.py [--files 1000] [--mb 1] [--compression zstd|gzip]

Both sides rotate the same freshly written files (create mode, rotate 5, compress) in a scratch
directory (rewritten before every run, not timed); logrotate compresses with the same tool (zstd -3 or
gzip -6) through its compresscmd. log_rotate runs through its module_utils (what the module executes,
without Ansible's start-up cost, printed separately). The sides alternate in bench/common.compare: at
least --rounds rounds, more until the paired ratio's spread is under 10 % or --max-rounds, the load
average printed with every run. Prints the medians and the ratio log_rotate / logrotate (target <= 1.0).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Side, Target, compare, format_table  # noqa: E402

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


def logrotate_conf(directory: Path, compression: str) -> Path:
    conf = directory.parent / 'logrotate.conf'
    comp = ('compresscmd /usr/bin/zstd\n    compressoptions -3 -q\n    compressext .zst\n'
            if compression == 'zstd' else 'compressoptions -6\n')
    conf.write_text('%s/*.log {\n    rotate 5\n    create\n    compress\n    %s    missingok\n}\n'
                    % (directory, comp))
    return conf


def side(label: str, work: Path, files: int, size: int, command) -> Side:
    """A side rotating ``files`` fresh files under ``work``/log each run (written before, checked after)."""

    def before() -> None:
        shutil.rmtree(work, ignore_errors=True)
        make_files(work / 'log', files, size)

    def after() -> None:
        produced = sorted(os.listdir(work / 'log'))
        assert len(produced) == 2 * files, produced[:4]
        shutil.rmtree(work)

    return Side(label=label, command=command, before=before, after=after)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--files', type=int, default=1000)
    parser.add_argument('--mb', type=float, default=1.0)
    parser.add_argument('--compression', choices=['zstd', 'gzip'], default='zstd')
    parser.add_argument('--rounds', type=int, default=3, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=8)
    args = parser.parse_args()
    size = int(args.mb * 1024 * 1024)
    root = Path(tempfile.mkdtemp(prefix='opsready-bench-logrotate-'))
    try:
        ours_dir, raw_dir = root / 'log_rotate', root / 'logrotate'
        ours = side('log_rotate (module_utils)', ours_dir, args.files, size,
                    lambda: run_opsready(ours_dir / 'log', ours_dir / 'state', args.compression))
        raw_dir.mkdir()
        conf = logrotate_conf(raw_dir / 'log', args.compression)
        # logrotate.conf sits next to the log directory, which every run rewrites: keep it outside
        conf = conf.rename(root / 'logrotate.conf')
        raw = side('logrotate -f', raw_dir, args.files, size,
                   ['/usr/sbin/logrotate', '-f', '-s', str(raw_dir / 'state'), str(conf)])
        print('%d files x %.1f MB, compression %s' % (args.files, args.mb, args.compression))
        rows = compare('log rotation (%d files x %.1f MB, %s)' % (args.files, args.mb, args.compression), ours,
                       [raw], [Target(1.0)], runs=args.rounds, max_rounds=args.max_rounds)
        print(format_table(rows))
        print('ratio log_rotate / logrotate (medians): %.2f  (target <= 1.0)' % rows[0].ratio_wall)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
