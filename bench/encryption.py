"""Cost of encryption in the backup write path, and upload throughput to the local S3 server.

    .venv/bin/python bench/encryption.py [--mb 700] [--input dump.sql] [--s3]

1. The one-pass write path (ArtifactWriter: zstd + SHA-256 [+ age encryption]) over the same input,
   without and with encryption, side by side with the raw tools (``zstd -T0`` and ``zstd -T0 | age``).
   The input is ``--input`` (e.g. the output of ``pg_dump`` of the ~700 MB bench database) or generated
   SQL-like text of ``--mb`` MB. Target: encryption costs at most 15 % of wall time.
2. ``--s3``: backup_copy's upload of the encrypted artifact to a moto server on loopback (the test
   harness's), against boto3's plain ``upload_file`` of the same file.
No timed assertions: numbers are printed, ratios against the raw tools.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=700)
    parser.add_argument('--input')
    parser.add_argument('--s3', action='store_true')
    parser.add_argument('--tmp-root', default='/var/tmp')
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
        plain = timed(write_path(src, work / 'a.zst', None))
        enc = timed(write_path(src, work / 'a.zst.age', [recipient]))
        raw_zstd = timed(lambda: subprocess.run('zstd -q -3 -T0 -c %s > %s' % (src, work / 'raw.zst'), shell=True,
                                                check=True))
        raw_age = timed(lambda: subprocess.run('zstd -q -3 -T0 -c %s | age -r %s > %s' % (
            src, recipient, work / 'raw.zst.age'), shell=True, check=True))
        stored_mb = (work / 'a.zst.age').stat().st_size / 1e6
        print('input %.0f MB, compressed+encrypted %.0f MB, %d CPUs' % (size_mb, stored_mb, os.cpu_count() or 0))
        print('%-44s %8s %10s' % ('', 'seconds', 'MB/s in'))
        for label, seconds in (('ArtifactWriter zstd + sha256', plain), ('ArtifactWriter zstd + age + sha256', enc),
                               ('raw: zstd -T0', raw_zstd), ('raw: zstd -T0 | age', raw_age)):
            print('%-44s %8.2f %10.0f' % (label, seconds, size_mb / seconds))
        print('encryption overhead, ours: %+.1f %% (target <= 15 %%); raw tools: %+.1f %%'
              % ((enc / plain - 1) * 100, (raw_age / raw_zstd - 1) * 100))
        print('ratio ours/raw: plain %.2f, encrypted %.2f' % (plain / raw_zstd, enc / raw_age))
        if args.s3:
            from tests.harness.s3 import S3Server
            from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store
            with S3Server() as s3:
                s3.client().create_bucket(Bucket='bench')
                store = S3Store('bench', 'p', endpoint_url=s3.endpoint_url, access_key=s3.access_key,
                                secret_key=s3.secret_key, region=s3.region)
                artifact = str(work / 'a.zst.age')
                ours = timed(lambda: store.upload(artifact, 'a.zst.age'))
                readback = timed(lambda: store.sha256('a.zst.age'))
                raw = timed(lambda: s3.client().upload_file(artifact, 'bench', 'raw/a.zst.age'))
                print('S3 upload (moto on loopback) of %.0f MB: backup_copy %.2f s (%.0f MB/s), boto3 upload_file '
                      '%.2f s (%.0f MB/s), ratio %.2f; verify=full read-back %.2f s'
                      % (stored_mb, ours, stored_mb / ours, raw, stored_mb / raw, ours / raw, readback))
    finally:
        subprocess.run(['rm', '-rf', str(work)], check=False)


if __name__ == '__main__':
    main()
