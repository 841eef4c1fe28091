"""Cloud storage emulators on 127.0.0.1 for the offsite tests: Azurite (Microsoft's Azure Storage emulator,
npm package ``azurite``, installed by ``scripts/setup.sh --test`` under build/azurite) and gcp-storage-emulator
(PyPI, in the test venv). Plain Python (no pytest import)::

    with Azurite() as az:            # az.account_url, az.account_name, az.account_key, az.connection_string
        ...
    with GcsEmulator(bucket='copies') as gcs:   # gcs.endpoint
        ...
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List

REPO = Path(__file__).resolve().parents[2]
AZURITE = REPO / 'build' / 'azurite' / 'node_modules' / '.bin' / 'azurite-blob'
# Azurite's documented development account (public, the same on every installation)
DEV_ACCOUNT = 'devstoreaccount1'
DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='


class EmulatorUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError('emulator exited with %s:\n%s' % (proc.returncode, log.read_text()[-3000:]))
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError('emulator did not listen on %d within %ss:\n%s' % (port, timeout, log.read_text()[-3000:]))


class _Process:
    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix='opsready-%s-' % type(self).__name__.lower()))
        self.log = self.dir / 'emulator.log'
        self.proc: Any = None

    def argv(self) -> List[str]:
        raise NotImplementedError

    def __enter__(self) -> '_Process':
        with open(self.log, 'wb') as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)
        try:
            _wait_port(self.port, self.proc, self.log)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Azurite(_Process):
    account_name = DEV_ACCOUNT
    account_key = DEV_KEY

    def __init__(self) -> None:
        if not AZURITE.exists():
            raise EmulatorUnavailable('Azurite is not installed at %s: run `make setup-test` (scripts/setup.sh --test '
                                      'installs it with npm).' % AZURITE)
        super().__init__()

    def argv(self) -> List[str]:
        return [str(AZURITE), '--blobHost', '127.0.0.1', '--blobPort', str(self.port), '--location',
                str(self.dir / 'data'), '--silent', '--skipApiVersionCheck', '--loose']

    @property
    def account_url(self) -> str:
        return 'http://127.0.0.1:%d/%s' % (self.port, DEV_ACCOUNT)

    @property
    def connection_string(self) -> str:
        return ('DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;'
                % (DEV_ACCOUNT, DEV_KEY, self.account_url))

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient
        BlobServiceClient.from_connection_string(self.connection_string).create_container(name)


class GcsEmulator(_Process):
    def __init__(self, bucket: str = 'opsready-copies') -> None:
        super().__init__()
        self.bucket = bucket

    def argv(self) -> List[str]:
        tool = Path(sys.executable).with_name('gcp-storage-emulator')
        return [str(tool), 'start', '--host', '127.0.0.1', '--port', str(self.port), '--in-memory',
                '--default-bucket', self.bucket, '--quiet']

    @property
    def endpoint(self) -> str:
        return 'http://127.0.0.1:%d' % self.port
