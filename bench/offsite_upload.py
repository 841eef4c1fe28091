"""Offsite upload throughput and key rotation, each next to the tool users would otherwise run.

    .venv/bin/python bench/offsite_upload.py            # OPSREADY_BENCH_MB=64 (default), OPSREADY_BENCH_RUNS=3
    OPSREADY_BENCH_ONLY=gcs,rekey .venv/bin/python bench/offsite_upload.py   # some of s3, azure, gcs, rekey
    OPSREADY_BENCH_ONLY=rekey OPSREADY_BENCH_MB=1024 .venv/bin/python bench/offsite_upload.py   # issue 21's 1 GB

1. Upload of the same incompressible file to the S3 test server (moto), Azurite and the GCS emulator
   (gcp-storage-emulator), all on loopback: backup_copy's store upload (streamed, hashed as sent: S3
   multipart, Azure blocks with Content-MD5, GCS resumable with CRC32C) against the provider SDK's own
   plain upload (boto3 ``upload_file``, azure ``BlobClient.upload_blob``, google ``blob.upload_from_filename``).
   Both sides use 8 MiB parts/blocks/chunks and the SDK defaults otherwise.
2. Key rotation of an age-encrypted artifact of the same size: backup.rekey (decrypt + encrypt +
   verification + atomic swap; run as a child process, ``bench/ours.py rekey``, so Python's start-up is
   counted as ``age``'s is) against ``age -d -i old | age -r new > out`` piped, and against the same
   pipe doing the same work (sha256 of the plaintext and of the new file, with tee).
Alternated rounds (at least OPSREADY_BENCH_RUNS, more until the paired ratio's spread is under 10 %, load printed);
medians; ratio = ours / theirs (below 1 is faster); for the uploads also the CPU seconds of each side (this
process, the emulator's), which the load moves less than the wall clock. Emulators are not
real object storage: the figures compare client code paths, not providers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.azure import AzureBlobStore  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.gcs import GcsStore  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store  # noqa: E402
from tests.harness.cloud import Azurite, EmulatorUnavailable, GcsEmulator  # noqa: E402
from tests.harness.s3 import S3Server  # noqa: E402

from common import PYTHON, Command, Row, Side, Target, clear, compare, format_table  # noqa: E402

MB = int(os.environ.get('OPSREADY_BENCH_MB', '64'))
RUNS = int(os.environ.get('OPSREADY_BENCH_RUNS', '3'))
PART_MB = 8
ROWS: List[Row] = []


class Cpu:
    """CPU seconds (user + system) of each run of an in-process side: this process (the client: every thread, the
    SDK's and ours) and the emulator's process tree. Under load the wall clock of a run mostly says how long it
    waited for a core; the CPU it used is steadier."""

    def __init__(self, server_pid: int) -> None:
        import psutil
        self.server = psutil.Process(server_pid)
        self.runs: Dict[str, List[Tuple[float, float]]] = {}

    def _server_cpu(self) -> float:
        total = sum(self.server.cpu_times()[:2])
        return total + sum(sum(child.cpu_times()[:2]) for child in self.server.children(recursive=True))

    def wrap(self, label: str, command: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            client, server = time.process_time(), self._server_cpu()
            command()
            self.runs.setdefault(label, []).append((time.process_time() - client, self._server_cpu() - server))
        return run

    def report(self, what: str) -> None:
        if not self.runs:
            return
        for label, runs in self.runs.items():
            print('%-22s %-34s CPU: client %.2f s, emulator %.2f s (medians of %d runs)' % (
                what, label, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), len(runs)),
                flush=True)


class ChildCpu:
    """CPU seconds (user + system) of each run of a command side: the child processes it started and waited for
    (bench/common.measure reaps them with wait4, so their times, and their waited-for children's, land in
    os.times()'s children fields)."""

    def __init__(self) -> None:
        self.runs: Dict[str, List[float]] = {}
        self._start = 0.0

    @staticmethod
    def _now() -> float:
        times = os.times()
        return times.children_user + times.children_system

    def hooks(self, label: str, before: Optional[Callable[[], None]]) -> Tuple[Callable[[], None], Callable[[], None]]:
        def start() -> None:
            if before is not None:
                before()
            self._start = self._now()

        def stop() -> None:
            self.runs.setdefault(label, []).append(self._now() - self._start)
        return start, stop

    def report(self, what: str) -> None:
        for label, runs in self.runs.items():
            print('%-22s %-34s CPU: %.2f s (median of %d runs: %s)' % (
                what, label, statistics.median(runs), len(runs), ' '.join('%.2f' % r for r in runs)), flush=True)


def row(what: str, ours: Command, theirs: Command, other: str, target: float = 1.0,
        before: Optional[Callable[[], None]] = None, cpu: Optional[Cpu] = None) -> None:
    """ours and theirs alternated (bench/common.compare: load printed, rounds added until the spread of the paired
    ratio is under 10 % or the round limit), then the row with its throughput, the paired ratio of every round
    and the CPU seconds of each side (in-process sides: this process and the emulator's; command sides: the
    child processes')."""
    if cpu is not None:
        ours, theirs = cpu.wrap('ours', ours), cpu.wrap(other, theirs)   # type: ignore[arg-type]
        mine, raw = Side('ours', ours, before=before), Side(other, theirs, before=before)
        children = None
    else:
        children = ChildCpu()
        start, stop = children.hooks('ours', before)
        mine = Side('ours', ours, before=start, after=stop)
        start, stop = children.hooks(other, before)
        raw = Side(other, theirs, before=start, after=stop)
    rows = compare(what, mine, [raw], [Target(target)], runs=RUNS)
    ROWS.extend(rows)
    r = rows[0]
    print('%-22s ours %6.2f s (%6.1f MB/s)   %-34s %6.2f s (%6.1f MB/s)   ratio %.2f  spread %s over %d rounds, '
          'load %.1f-%.1f' % (what, r.ours['wall_s'], MB / r.ours['wall_s'], other, r.raw['wall_s'],
                              MB / r.raw['wall_s'], r.ratio_wall,
                              '-' if r.spread is None else '%.0f %%' % (r.spread * 100),
                              r.runs, min(r.load or [0]), max(r.load or [0])), flush=True)
    print('%-22s paired ratios per round (ours / %s): %s' % (
        what, other, ' '.join('%.2f' % (a / b) for a, b in zip(r.ours_walls, r.raw_walls))), flush=True)
    if cpu is not None:
        cpu.report(what)
    if children is not None:
        children.report(what)


def sha256_file(path: Path) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def bench_s3(path: Path) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig
    with S3Server() as server:
        server.client().create_bucket(Bucket='bench')
        store = S3Store('bench', 'ours', endpoint_url=server.endpoint_url, access_key=server.access_key,
                        secret_key=server.secret_key, region=server.region, part_size_mb=PART_MB)
        client = boto3.client('s3', endpoint_url=server.endpoint_url, aws_access_key_id=server.access_key,
                              aws_secret_access_key=server.secret_key, region_name=server.region)
        config = TransferConfig(multipart_threshold=PART_MB << 20, multipart_chunksize=PART_MB << 20)
        row('S3 (moto)', lambda: store.upload(str(path), 'a'),
            lambda: client.upload_file(str(path), 'bench', 'theirs/a', Config=config), 'boto3 upload_file',
            cpu=Cpu(server.process.pid))
        # backup_copy's upload is also its check that the local file still matches the manifest (it hashes what it
        # sends): the SDK side with that check (a sha256 pass first), as a user without our module would run it
        row('S3 (moto)', lambda: store.upload(str(path), 'a'),
            lambda: (sha256_file(path), client.upload_file(str(path), 'bench', 'theirs/a', Config=config)),
            'sha256 + boto3 upload_file', cpu=Cpu(server.process.pid))


def bench_azure(path: Path) -> None:
    from azure.storage.blob import BlobClient
    with Azurite() as server:
        server.create_container('bench')
        store = AzureBlobStore('bench', 'ours', account_url=server.account_url, account_key=server.account_key,
                               part_size_mb=PART_MB)
        blob = BlobClient(server.account_url, 'bench', 'theirs/a', credential={
            'account_name': server.account_name, 'account_key': server.account_key},
            max_block_size=PART_MB << 20, max_single_put_size=PART_MB << 20)

        def sdk() -> None:
            with open(path, 'rb') as handle:
                blob.upload_blob(handle, overwrite=True, max_concurrency=4)
        row('Azure Blob (Azurite)', lambda: store.upload(str(path), 'a'), sdk, 'BlobClient.upload_blob',
            cpu=Cpu(server.proc.pid))


def bench_gcs(path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    with GcsEmulator(bucket='bench') as server:
        store = GcsStore('bench', 'ours', endpoint_url=server.endpoint, part_size_mb=PART_MB)
        client = storage.Client(project='bench', credentials=AnonymousCredentials(),
                                client_options={'api_endpoint': server.endpoint})

        def sdk() -> None:
            blob = client.bucket('bench').blob('theirs/a', chunk_size=PART_MB << 20)
            blob.upload_from_filename(str(path))
        row('GCS (emulator)', lambda: store.upload(str(path), 'a'), sdk, 'blob.upload_from_filename',
            cpu=Cpu(server.proc.pid))
        row('GCS (emulator)', lambda: store.upload(str(path), 'a'), lambda: (sha256_file(path), sdk()),
            'sha256 + blob.upload_from_filename', cpu=Cpu(server.proc.pid))


def bench_rekey(work: Path, source: Path) -> None:
    keys = {}
    for name in ('old', 'new'):
        key_file = work / ('%s.txt' % name)
        subprocess.run(['age-keygen', '-o', str(key_file)], check=True, capture_output=True)
        public = subprocess.run(['age-keygen', '-y', str(key_file)], check=True, capture_output=True,
                                text=True).stdout.strip()
        keys[name] = (key_file, public)
    catalog = work / 'catalog'
    catalog.mkdir()
    artifact = catalog / ('bench-files-%s.bin.age' % utcnow().strftime('%Y%m%dT%H%M%S%fZ'))
    with open(source, 'rb') as handle, ArtifactWriter(str(artifact), compression='none',
                                                      recipients=[keys['old'][1]]) as writer:
        writer.copy_from(handle)
        stored = writer.commit()
    now = isoformat(utcnow())
    write_manifest(str(artifact), {'engine': 'files', 'kind': 'files', 'database': 'bench', 'started': now,
                                   'finished': now, 'size': stored['size'], 'sha256': stored['sha256'],
                                   'compression': 'none', 'encryption': stored['encryption']})
    pristine = work / 'pristine'
    shutil.copyfile(artifact, pristine)
    shutil.copyfile(str(artifact) + '.manifest.json', str(pristine) + '.manifest.json')
    out = work / 'piped.age'

    def fresh() -> None:
        shutil.copyfile(pristine, artifact)
        shutil.copyfile(str(pristine) + '.manifest.json', str(artifact) + '.manifest.json')
        clear(out)

    # what the module runs, in its own process (the key from its file, as identity_file)
    ours = [PYTHON, str(REPO / 'bench' / 'ours.py'), 'rekey', json.dumps({
        'src': str(catalog), 'recipients': [keys['new'][1]], 'identity_file': str(keys['old'][0])})]

    # rekey fsyncs its file: the pipes pay the same (sync FILE)
    piped = 'age -d -i %s %s | age -r %s > %s && sync %s' % (keys['old'][0], pristine, keys['new'][1], out, out)
    # the same work as ours: also the plaintext checksum (compared with the manifest's) and the new file's
    hashed = ('age -d -i %s %s | tee >(sha256sum >/dev/null) | age -r %s | tee >(sha256sum >/dev/null) > %s && sync %s'
              % (keys['old'][0], pristine, keys['new'][1], out, out))
    row('key rotation', ours, piped, 'age -d | age -r (piped)', before=fresh)
    row('key rotation', ours, hashed, 'same + 2x sha256sum (tee)', before=fresh)


def main() -> None:
    print('%d MB, at least %d alternated rounds, 8 MiB parts, loopback emulators, load %.1f'
          % (MB, RUNS, os.getloadavg()[0]))
    with tempfile.TemporaryDirectory(prefix='opsready-bench-offsite-') as tmp:
        work = Path(tmp)
        source = work / 'payload.bin'
        with open(source, 'wb') as handle:
            for dummy in range(MB):
                handle.write(os.urandom(1 << 20))
        only = set(filter(None, os.environ.get('OPSREADY_BENCH_ONLY', 's3,azure,gcs,rekey').split(',')))
        if 's3' in only:
            bench_s3(source)
        try:
            if 'azure' in only:
                bench_azure(source)
        except EmulatorUnavailable as exc:
            print('Azure Blob: skipped (%s)' % exc)
        if 'gcs' in only:
            bench_gcs(source)
        if 'rekey' in only:
            bench_rekey(work, source)
    print(format_table(ROWS))


if __name__ == '__main__':
    main()
