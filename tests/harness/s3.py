"""A throw-away S3-compatible server on loopback for offsite-copy tests.

It is moto's server mode (``python -m moto.server``): an in-memory emulation of the S3 API from the
``moto`` package (moto[server] 5.2.5 here), not real object storage. It speaks the real S3 wire protocol
(SigV4, multipart uploads, ListObjectsV2, storage classes, SSE headers), so boto3 code is exercised
exactly as against AWS, MinIO or Ceph RGW; durability and consistency are of course not tested.

Usage::

    with S3Server() as s3:
        s3.client().create_bucket(Bucket='backups')
        ... s3.endpoint_url, s3.access_key, s3.secret_key ...
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / '.venv' / 'bin' / 'python')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class S3Server:
    access_key = 'opsready-test-access'
    secret_key = 'opsready-test-secret-Zx9'
    region = 'us-east-1'

    def __init__(self, env: Optional[dict] = None) -> None:
        # env: extra moto settings, e.g. {'S3_UPLOAD_PART_MIN_SIZE': '262144'} for multipart tests with small parts
        self.env = dict(env or {})
        self.port = _free_port()
        self.endpoint_url = 'http://127.0.0.1:%d' % self.port
        self.process: Optional[subprocess.Popen] = None
        self.log = tempfile.NamedTemporaryFile(prefix='opsready-moto-', suffix='.log', delete=False)

    def start(self) -> 'S3Server':
        env = dict(os.environ, MOTO_ALLOW_NONEXISTENT_REGION='true', **self.env)
        self.process = subprocess.Popen([PYTHON, '-m', 'moto.server', '-H', '127.0.0.1', '-p', str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('moto server exited: %s' % Path(self.log.name).read_text()[-2000:])
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError('moto server did not listen on %s within 30 s' % self.endpoint_url)

    def client(self) -> Any:
        import boto3
        return boto3.client('s3', endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def options(self, bucket: str, prefix: str = '') -> dict:
        """backup_copy options reaching this server."""
        return {'type': 's3', 'endpoint_url': self.endpoint_url, 'bucket': bucket, 'prefix': prefix,
                'access_key': self.access_key, 'secret_key': self.secret_key, 'region': self.region}

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def __enter__(self) -> 'S3Server':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
