# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offsite stores for backup copies: S3-compatible object storage (boto3) and a directory over SSH (rsync).

A store holds objects named like the local catalog (``<artifact>``, ``<artifact>.manifest.json``,
``<dir>/<member>``) under a prefix. Uploads stream from the local file and hash what they send, so the
bytes sent are the bytes whose checksum is compared with the manifest; ``stat``/``sha256`` read back
what the destination holds.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import tempfile
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError
    from boto3.s3.transfer import TransferConfig
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only where boto3 is missing
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

    class BotoCoreError(Exception):  # type: ignore[no-redef]
        pass

    class ClientError(Exception):  # type: ignore[no-redef]
        pass

CHUNK = 1024 * 1024


class HashingReader:
    """Non-seekable reader over a local file that hashes what it hands out (uploads read it once, in order).

    ``fail_after`` (tests) raises after that many bytes, as a dropped connection would.
    """

    def __init__(self, path: str, fail_after: Optional[int] = None) -> None:
        self._handle = open(path, 'rb')
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size if size and size > 0 else CHUNK)
        if self._fail_after is not None and self.size + len(data) > self._fail_after:
            raise OSError('simulated connection loss after %d bytes' % self._fail_after)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def tell(self) -> int:
        # resumable uploads (GCS) ask where the stream stands before they start
        return self.size

    def close(self) -> None:
        self._handle.close()


class Store:
    """What backup_copy needs from a destination."""

    url = ''

    def list_files(self) -> Dict[str, int]:
        """Every object under the prefix: relative name -> size."""
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def upload(self, local_path: str, name: str, fail_after: Optional[int] = None) -> Dict[str, Any]:
        """Upload; returns {'sha256', 'size'} of the bytes sent."""
        raise NotImplementedError

    def put_bytes(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def sha256(self, name: str) -> str:
        raise NotImplementedError

    def download(self, name: str, local_path: str) -> Dict[str, Any]:
        """Download into ``local_path`` (caller renames); returns {'sha256', 'size'} of the bytes received."""
        raise NotImplementedError

    def delete(self, names: List[str]) -> None:
        raise NotImplementedError

    def abort_incomplete(self) -> List[str]:
        """Remove traces of interrupted uploads (S3 multipart uploads); returns what was aborted."""
        return []


# -- S3 --------------------------------------------------------------------------------------------------
class S3Store(Store):
    def __init__(self, bucket: str, prefix: str = '', endpoint_url: Optional[str] = None,
                 region: Optional[str] = None, access_key: Optional[str] = None, secret_key: Optional[str] = None,
                 session_token: Optional[str] = None, storage_class: Optional[str] = None,
                 server_side_encryption: Optional[str] = None, sse_kms_key_id: Optional[str] = None,
                 part_size_mb: int = 64, concurrency: int = 4, validate_certs: bool = True) -> None:
        if not HAS_BOTO3:
            raise OpsReadyError('backend=s3 needs boto3 on the managed host (pip install boto3): %s'
                                % BOTO3_IMPORT_ERROR)
        self.bucket = bucket
        self.prefix = prefix.strip('/')
        self.url = 's3://%s/%s' % (bucket, self.prefix) + (' at %s' % endpoint_url if endpoint_url else '')
        self.client = boto3.client(
            's3', endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, aws_session_token=session_token, verify=validate_certs,
            config=BotoConfig(retries={'max_attempts': 5, 'mode': 'standard'}))
        self.extra: Dict[str, str] = {}
        if storage_class:
            self.extra['StorageClass'] = storage_class
        if server_side_encryption:
            self.extra['ServerSideEncryption'] = server_side_encryption
        if sse_kms_key_id:
            self.extra['SSEKMSKeyId'] = sse_kms_key_id
        self.transfer = TransferConfig(multipart_threshold=part_size_mb * 1024 * 1024,
                                       multipart_chunksize=part_size_mb * 1024 * 1024,
                                       max_concurrency=max(1, concurrency), use_threads=concurrency > 1)

    def key(self, name: str) -> str:
        return '%s/%s' % (self.prefix, name) if self.prefix else name

    def _error(self, what: str, exc: Exception) -> OpsReadyError:
        code = ''
        if isinstance(exc, ClientError):
            code = exc.response.get('Error', {}).get('Code', '')  # type: ignore[attr-defined]
        hint = {
            'NoSuchBucket': 'create the bucket or fix bucket',
            'AccessDenied': 'the credentials lack permission on this bucket/prefix',
            'InvalidAccessKeyId': 'fix access_key/secret_key',
            'SignatureDoesNotMatch': 'fix secret_key',
        }.get(code, 'check endpoint_url, bucket and credentials')
        return OpsReadyError('S3 %s on %s failed: %s (%s).' % (what, self.url, code or type(exc).__name__, hint),
                             error_code=code)

    def list_files(self) -> Dict[str, int]:
        result: Dict[str, int] = {}
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            paginator = self.client.get_paginator('list_objects_v2')
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + '/' if self.prefix else ''):
                for item in page.get('Contents', []):
                    result[item['Key'][strip:]] = int(item['Size'])
        except (BotoCoreError, ClientError) as exc:
            raise self._error('listing', exc)
        return result

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))['Body'].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._error('read of %s' % name, exc)

    def upload(self, local_path: str, name: str, fail_after: Optional[int] = None) -> Dict[str, Any]:
        reader = HashingReader(local_path, fail_after)
        try:
            # A non-seekable reader is read once, in order; s3transfer aborts the multipart upload on error.
            self.client.upload_fileobj(reader, self.bucket, self.key(name), ExtraArgs=dict(self.extra),
                                       Config=self.transfer)
        except (BotoCoreError, ClientError) as exc:
            raise self._error('upload of %s' % name, exc)
        finally:
            reader.close()
        return {'sha256': reader.sha256.hexdigest(), 'size': reader.size}

    def put_bytes(self, name: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, **self.extra)
        except (BotoCoreError, ClientError) as exc:
            raise self._error('upload of %s' % name, exc)

    def _stream(self, name: str, sink: Any) -> Dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name))['Body']
            for data in body.iter_chunks(CHUNK):
                digest.update(data)
                size += len(data)
                if sink is not None:
                    sink.write(data)
        except (BotoCoreError, ClientError) as exc:
            raise self._error('download of %s' % name, exc)
        return {'sha256': digest.hexdigest(), 'size': size}

    def sha256(self, name: str) -> str:
        return self._stream(name, None)['sha256']

    def download(self, name: str, local_path: str) -> Dict[str, Any]:
        with open(local_path, 'wb') as handle:
            result = self._stream(name, handle)
            handle.flush()
            os.fsync(handle.fileno())
        return result

    def delete(self, names: List[str]) -> None:
        for start in range(0, len(names), 1000):
            batch = [{'Key': self.key(n)} for n in names[start:start + 1000]]
            try:
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={'Objects': batch, 'Quiet': True})
            except (BotoCoreError, ClientError) as exc:
                raise self._error('delete', exc)
            if answer.get('Errors'):
                first = answer['Errors'][0]
                raise OpsReadyError('S3 delete of %s on %s failed: %s.'
                                    % (first.get('Key'), self.url, first.get('Code')))

    def abort_incomplete(self) -> List[str]:
        aborted = []
        try:
            answer = self.client.list_multipart_uploads(Bucket=self.bucket,
                                                        Prefix=self.prefix + '/' if self.prefix else '')
            for upload in answer.get('Uploads', []):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload['Key'], UploadId=upload['UploadId'])
                aborted.append(upload['Key'])
        except (BotoCoreError, ClientError) as exc:
            raise self._error('multipart clean-up', exc)
        return aborted


# -- SSH / rsync -------------------------------------------------------------------------------------------------
class SshStore(Store):
    """A directory on another host, reached with ssh (commands) and rsync (data)."""

    def __init__(self, host: str, path: str, user: Optional[str] = None, port: int = 22,
                 key_file: Optional[str] = None, known_hosts: Optional[str] = None,
                 strict_host_key_checking: bool = True) -> None:
        if not path.startswith('/'):
            raise OpsReadyError('remote_path %r must be absolute.' % path)
        self.host = host
        self.path = path.rstrip('/') or '/'
        self.target = '%s@%s' % (user, host) if user else host
        self.url = 'ssh://%s:%d%s' % (self.target, port, self.path)
        self.runner = ToolRunner()
        opts = ['-p', str(port), '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15',
                '-o', 'StrictHostKeyChecking=%s' % ('yes' if strict_host_key_checking else 'accept-new')]
        if key_file:
            opts += ['-i', key_file, '-o', 'IdentitiesOnly=yes']
        if known_hosts:
            opts += ['-o', 'UserKnownHostsFile=%s' % known_hosts]
        self.ssh_opts = opts
        self._ready = False

    def _ssh(self, command: str, what: str) -> str:
        argv = [self.runner.which('ssh', 'Install openssh-client.')] + self.ssh_opts + [self.target, command]
        try:
            return self.runner.run(argv, what='ssh %s (%s)' % (self.target, what), timeout=3600)[1]
        except ToolError as exc:
            raise OpsReadyError('%s on %s failed: %s' % (what, self.url, exc.message), rc=exc.rc)

    def _rsync(self, args: List[str], what: str) -> None:
        rsync = self.runner.which('rsync', 'Install rsync on both hosts.')
        ssh = ' '.join(shlex.quote(a) for a in ['ssh'] + self.ssh_opts)
        try:
            self.runner.run([rsync, '-e', ssh] + args, what='rsync (%s)' % what, timeout=24 * 3600)
        except ToolError as exc:
            raise OpsReadyError('%s to/from %s failed: %s' % (what, self.url, exc.message), rc=exc.rc)

    def _remote(self, name: str = '') -> str:
        return posixpath.join(self.path, name) if name else self.path

    def _ensure(self, sub: str = '') -> None:
        if not self._ready or sub:
            self._ssh('mkdir -p -m 700 -- %s' % shlex.quote(self._remote(sub)), 'creating the remote directory')
            self._ready = True

    def list_files(self) -> Dict[str, int]:
        out = self._ssh('if [ -d %s ]; then cd %s && find . -type f -printf "%%s %%P\\n"; fi'
                        % (shlex.quote(self.path), shlex.quote(self.path)), 'listing')
        result = {}
        for line in out.splitlines():
            size, dummy, name = line.partition(' ')
            if name:
                result[name] = int(size)
        return result

    def read_bytes(self, name: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix='opsready-offsite-') as tmp:
            local = os.path.join(tmp, 'x')
            self._rsync(['-q', '%s:%s' % (self.target, self._remote(name)), local], 'reading %s' % name)
            with open(local, 'rb') as handle:
                return handle.read()

    def upload(self, local_path: str, name: str, fail_after: Optional[int] = None) -> Dict[str, Any]:
        self._ensure(posixpath.dirname(name))
        # Hash what is sent: rsync re-reads the file, so hash first (same bytes unless the file changes,
        # which the remote checksum comparison then catches).
        reader = HashingReader(local_path)
        try:
            while reader.read(CHUNK):
                pass
        finally:
            reader.close()
        # rsync writes a hidden temp file and renames it into place when complete.
        self._rsync(['-q', '--chmod=F600', local_path, '%s:%s' % (self.target, self._remote(name))],
                    'upload of %s' % name)
        return {'sha256': reader.sha256.hexdigest(), 'size': reader.size}

    def put_bytes(self, name: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix='opsready-offsite-') as tmp:
            local = os.path.join(tmp, posixpath.basename(name))
            with open(local, 'wb') as handle:
                handle.write(data)
            self.upload(local, name)

    def sha256(self, name: str) -> str:
        out = self._ssh('sha256sum -- %s' % shlex.quote(self._remote(name)), 'checksum of %s' % name)
        return out.split()[0] if out.strip() else ''

    def download(self, name: str, local_path: str) -> Dict[str, Any]:
        self._rsync(['-q', '%s:%s' % (self.target, self._remote(name)), local_path], 'download of %s' % name)
        reader = HashingReader(local_path)
        try:
            while reader.read(CHUNK):
                pass
        finally:
            reader.close()
        with open(local_path, 'rb') as handle:
            os.fsync(handle.fileno())
        return {'sha256': reader.sha256.hexdigest(), 'size': reader.size}

    def delete(self, names: List[str]) -> None:
        if names:
            self._ssh('rm -f -- %s' % ' '.join(shlex.quote(self._remote(n)) for n in names), 'delete')
