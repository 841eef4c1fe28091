"""Cost of encryption in the backup write path, and upload throughput to the local S3 server.

    .venv/bin/python bench/encryption.py [--mb 700] [--input dump.sql] [--s3]

1. The one-pass write path (ArtifactWriter: zstd + SHA-256 [+ age encryption]) over the same input,
   without and with encryption, side by side with the raw tools (``zstd -T0`` and ``zstd -T0 | age``).
   The input is ``--input`` (e.g. the output of ``pg_dump`` of the ~700 MB bench database) or generated
   SQL-like text of ``--mb`` MB. Target: encryption costs at most 15 % of wall time.
2. ``--s3``: backup_copy's upload of the encrypted artifact to a moto server on loopback (the test
   harness's), against boto3's plain ``upload_file`` of the same file.
The sides alternate in bench/common.compare (at least --runs rounds, more until each paired ratio's spread
is under 10 % or --max-rounds; the load average printed with every run). No timed assertions: numbers are
printed, ratios against the raw tools.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Side, Target, compare, format_table, path_size  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter  # noqa: E402


def make_input(path: Path, mb: int) -> None:
    rng = random.Random(7)
    words = ['alpha', 'order', 'customer', 'shipped', 'pending', 'EUR', 'USD', 'street', 'invoice', 'NULL']
    with open(path, 'w') as handle:
        written = 0
        while written < mb * 1024 * 1024:
            line = '%d\t%s\t%s\t%.2f\t2026-%02d-%02d\t%s\n' % (
                rng.randrange(10 ** 9), rng.choice(words), ''.join(rng.choice('abcdefghij') for dummy in range(12)),
                rng.random() * 1000, rng.randrange(1, 13), rng.randrange(1, 29), os.urandom(6).hex())
            handle.write(line)
            written += len(line)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def write_path(src: Path, out: Path, recipients):
    def run():
        with open(src, 'rb') as handle, ArtifactWriter(str(out), compression='zstd', recipients=recipients) as w:
            w.copy_from(handle)
            w.commit()
    return run


def side(label: str, command, out: Path) -> Side:
    return Side(label=label, command=command, output=lambda: path_size(out), after=lambda: out.unlink(missing_ok=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=700)
    parser.add_argument('--input')
    parser.add_argument('--s3', action='store_true')
    parser.add_argument('--tmp-root', default='/var/tmp')
    parser.add_argument('--runs', type=int, default=3, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-enc-', dir=args.tmp_root))
    try:
        src = Path(args.input) if args.input else work / 'input.sql'
        if not args.input:
            make_input(src, args.mb)
        size_mb = src.stat().st_size / 1e6
        secret = encryption.generate_identity()
        recipient = encryption.parse_identities(secret)[0].recipient
        subprocess.run(['cat', str(src)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        print('input %.0f MB, %d CPUs' % (size_mb, os.cpu_count() or 0))
        plain = side('ArtifactWriter zstd + sha256', write_path(src, work / 'a.zst', None), work / 'a.zst')
        enc = side('ArtifactWriter zstd + age + sha256', write_path(src, work / 'a.zst.age', [recipient]),
                   work / 'a.zst.age')
        raw_zstd = side('raw: zstd -T0', 'zstd -q -3 -T0 -c %s > %s' % (src, work / 'raw.zst'), work / 'raw.zst')
        raw_age = side('raw: zstd -T0 | age', 'zstd -q -3 -T0 -c %s | age -r %s > %s' % (
            src, recipient, work / 'raw.zst.age'), work / 'raw.zst.age')
        rows = compare('encrypted write path', enc, [plain, raw_age], [Target(1.15), Target(1.05)], runs=args.runs,
                       max_rounds=args.max_rounds, notes=['encryption overhead, ours (target <= 15 %)',
                                                          'ours encrypted vs the raw encrypted pipeline'])
        rows += compare('unencrypted write path', plain, [raw_zstd], [Target(1.05)], runs=args.runs,
                        max_rounds=args.max_rounds)
        print(format_table(rows))
        by_raw = {row.raw_label: row for row in rows}
        raw_overhead = by_raw['raw: zstd -T0 | age'].raw['wall_s'] / by_raw['raw: zstd -T0'].raw['wall_s']
        print('encryption overhead, ours: %+.1f %% (target <= 15 %%); raw tools: %+.1f %%'
              % ((rows[0].ratio_wall - 1) * 100, (raw_overhead - 1) * 100))
        print('ratio ours/raw: plain %.2f, encrypted %.2f' % (rows[2].ratio_wall, rows[1].ratio_wall))
        if args.s3:
            from tests.harness.s3 import S3Server
            from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store
            write_path(src, work / 'a.zst.age', [recipient])()
            stored_mb = (work / 'a.zst.age').stat().st_size / 1e6
            with S3Server() as s3:
                s3.client().create_bucket(Bucket='bench')
                store = S3Store('bench', 'p', endpoint_url=s3.endpoint_url, access_key=s3.access_key,
                                secret_key=s3.secret_key, region=s3.region)
                artifact = str(work / 'a.zst.age')
                ours = Side(label='backup_copy upload', command=lambda: store.upload(artifact, 'a.zst.age'))
                raw = Side(label='boto3 upload_file',
                           command=lambda: s3.client().upload_file(artifact, 'bench', 'raw/a.zst.age'))
                s3_rows = compare('S3 upload of %.0f MB (moto on loopback)' % stored_mb, ours, [raw], [Target(1.10)],
                                  runs=args.runs, max_rounds=args.max_rounds)
                print(format_table(s3_rows))
                readback = timed(lambda: store.sha256('a.zst.age'))
                row = s3_rows[0]
                print('S3 upload of %.0f MB: backup_copy %.2f s (%.0f MB/s), boto3 upload_file %.2f s (%.0f MB/s), '
                      'ratio %.2f; verify=full read-back %.2f s'
                      % (stored_mb, row.ours['wall_s'], stored_mb / row.ours['wall_s'], row.raw['wall_s'],
                         stored_mb / row.raw['wall_s'], row.ratio_wall, readback))
    finally:
        subprocess.run(['rm', '-rf', str(work)], check=False)


if __name__ == '__main__':
    main()
