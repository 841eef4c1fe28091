"""Benchmark: file_backup (tar stream -> zstd with threads -> SHA-256, atomic, manifest) next to `tar -czf`.

    .venv/bin/python bench/file_backup.py [--mb 500] [--runs 3] [--threads 2] [--tmp-root /var/tmp]

Generates a tree of ~MB megabytes of mixed files (make_tree: ~55 % log/config-like text, ~30 % random
binary that no compressor shrinks, ~15 % low-entropy binary), then alternates file_backup's code
(bench/ours.py file_backup: what the module runs, without Ansible's start-up) with the raw
``tar -czf`` on the same tree, at least 3 runs each. Prints median wall time, peak RSS of the process
tree and archive size for both, the ratio, and the target: at least 3x faster (wall ratio <= 0.33) with
an archive no larger than tar's. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, REPO, Side, Target, clear, compare, format_table, path_size  # noqa: E402

WORDS = ('GET POST PUT DELETE /api/v1/items /api/v1/users /health status=200 status=404 status=500 latency_ms '
         'user_id request_id session upstream timeout retry backend=pg01 backend=pg02 cache=hit cache=miss '
         'INFO WARN ERROR DEBUG listen_address max_connections shared_buffers work_mem ssl_cert_file').split()


def _text_pool(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = '2026-%02d-%02dT%02d:%02d:%02d.%03dZ %s\n' % (
            rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
            rng.randint(0, 999), ' '.join(rng.choice(WORDS) if rng.random() < 0.7 else '%x' % rng.getrandbits(32)
                                          for dummy in range(rng.randint(6, 14))))
        lines.append(line)
        total += len(line)
    return ''.join(lines).encode()


def make_tree(root: Path, megabytes: int, seed: int = 11) -> dict:
    """A tree of ~megabytes MB under root (created); returns counts and bytes per kind."""
    rng = random.Random(seed)
    pool = _text_pool(rng, 8 * 1024 * 1024)
    target = megabytes * 1024 * 1024
    written = {'text': 0, 'random': 0, 'lowentropy': 0, 'files': 0}
    index = 0
    while sum(written[k] for k in ('text', 'random', 'lowentropy')) < target:
        kind = rng.choices(['text', 'random', 'lowentropy'], weights=[55, 30, 15])[0]
        size = int(min(rng.lognormvariate(11.5, 1.3), 8 * 1024 * 1024)) + 64   # median ~100 KB, tail to 8 MB
        directory = root / ('svc%02d' % (index % 23)) / ('d%02d' % (index % 7))
        directory.mkdir(parents=True, exist_ok=True)
        if kind == 'text':
            start = rng.randrange(0, len(pool) - min(size, len(pool) - 1))
            data = pool[start:start + size]
            name = 'f%05d.%s' % (index, rng.choice(['log', 'conf', 'txt', 'json']))
        elif kind == 'random':
            data = os.urandom(size)
            name = 'f%05d.%s' % (index, rng.choice(['bin', 'gz', 'jpg', 'key']))
        else:
            data = bytes(rng.choice(b'\x00\x00\x00\x01\x02\xff') for dummy in range(min(size, 65536))) \
                * (size // 65536 + 1)
            data = data[:size]
            name = 'f%05d.db' % index
        (directory / name).write_bytes(data)
        written[kind] += len(data)
        written['files'] += 1
        index += 1
    return written


def sides(tree: Path, work: Path, threads: int, env: dict, recipients=None, label='file_backup (zstd'):
    """(ours, raw tar -czf) Side objects archiving ``tree`` into ``work``."""
    ours_dest = work / ('ours-enc' if recipients else 'ours')
    opts = {'paths': [str(tree)], 'dest': str(ours_dest), 'threads': threads}
    if recipients:
        opts['recipients'] = recipients
    ours = Side(label='%s T%d%s)' % (label, threads, ' + age' if recipients else ''),
                command=[PYTHON, str(REPO / 'bench' / 'ours.py'), 'file_backup', json.dumps(opts)], env=env,
                before=lambda: clear(ours_dest), output=lambda: path_size(ours_dest) - _manifests(ours_dest),
                after=lambda: clear(ours_dest))
    raw_out = work / 'raw.tar.gz'
    raw = Side(label='tar -czf', command=['tar', '-czf', str(raw_out), '-C', str(tree.parent), tree.name],
               before=lambda: clear(raw_out), output=lambda: path_size(raw_out), after=lambda: clear(raw_out))
    return ours, raw


def _manifests(dest: Path) -> float:
    return float(sum(p.stat().st_size for p in dest.glob('*.manifest.json'))) if dest.is_dir() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=500)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--tmp-root', default='/var/tmp')
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-files-', dir=args.tmp_root))
    try:
        tree = work / 'tree'
        stats = make_tree(tree, args.mb)
        print('tree: %d files, %.0f MB (text %.0f, random %.0f, low-entropy %.0f MB)' % (
            stats['files'], path_size(tree) / 1e6, stats['text'] / 1e6, stats['random'] / 1e6,
            stats['lowentropy'] / 1e6))
        ours, raw = sides(tree, work, args.threads, dict(os.environ))
        rows = compare('file backup', ours, [raw], [Target(0.33, 1.0)], runs=args.runs)
        print(format_table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
