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

import base64
import collections
import datetime
import hashlib
import os
import posixpath
import shlex
import tempfile
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError
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
# S3 multipart limits: at most 10,000 parts, each at most 5 GiB.
S3_MAX_PARTS = 10000
S3_MAX_PART = 5 * 1024 ** 3
# Azure Blob Storage allows 1024 characters per blob name, GCS and S3 1024 bytes of UTF-8: the strictest.
OBJECT_NAME_MAX = 1024


def object_name_problem(name: str, azure: bool = False) -> str:
    """Why ``name`` (prefix/object) would not come back from an object store as it was sent; '' if it would.

    An empty, ``.`` or ``..`` path segment is collapsed by the service or by HTTP URL normalisation (the upload
    lands elsewhere, or fails as an authorisation error or a timeout); control characters are refused (GCS) or
    mangled in listings; Azure turns ``\\`` into ``/`` and drops the trailing dot of a path segment. Spaces,
    ``%``, ``#``, ``?`` and non-ASCII are fine: the SDKs percent-encode them.
    """
    try:
        size = len(name.encode('utf-8'))
    except UnicodeEncodeError:
        return 'it is not valid Unicode text'
    if size > OBJECT_NAME_MAX:
        return 'it is %d bytes long in UTF-8; the store allows at most %d' % (size, OBJECT_NAME_MAX)
    if any(unicodedata.category(c) == 'Cc' for c in name):
        return 'it holds a control character (a line break, tab or NUL)'
    segments = name.split('/')
    if any(part in ('', '.', '..') for part in segments):
        return "it has an empty, '.' or '..' path segment, which the store or HTTP would collapse"
    if azure and '\\' in name:
        return 'Azure turns a backslash into /'
    if azure and any(part.endswith('.') for part in segments):
        return 'Azure drops the trailing dot of a path segment'
    return ''


def checked_prefix(prefix: str, backend: str, azure: bool = False) -> str:
    """``prefix`` without its leading/trailing slashes, refused when the store would not keep it as given."""
    clean = prefix.strip('/')
    problem = object_name_problem(clean, azure) if clean else ''
    if problem:
        raise OpsReadyError('prefix %r cannot be used with backend=%s: %s. Choose another prefix (letters, digits, '
                            'spaces, - _ / and non-ASCII letters are fine).' % (_short(prefix), backend, problem))
    return clean


def checked_key(prefix: str, name: str, backend: str, azure: bool = False) -> str:
    """The object name of backup file ``name`` under ``prefix``, refused the same way."""
    key = '%s/%s' % (prefix, name) if prefix else name
    problem = object_name_problem(key, azure)
    if problem:
        raise OpsReadyError('Backup file %r cannot be stored under prefix %r at backend=%s: %s. Use a shorter '
                            'prefix or backup set name; nothing was uploaded.'
                            % (_short(name), _short(prefix), backend, problem))
    return key


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else '%s...(%d characters)' % (text[:limit], len(text))


class BackgroundSha256:
    """SHA-256 of the blocks given to ``update``, computed in a thread beside the caller, in the order given.

    hashlib releases the GIL on blocks over 2 KiB (uploads hand over whole chunks, MiBs), so an upload hashes on
    one core while its SDK sends (and computes its own CRC32C/MD5) on the other, instead of one after the other.
    When the thread falls more than ``behind`` blocks back (no free core: on a busy machine a thread that was
    woken can wait long for one), ``update`` hashes the oldest blocks itself instead of sleeping until the thread
    has run: the caller is on a core already, and sleeping would cost it a second wait for one. One lock orders
    the hashing (the thread and the caller never hash at once, and always the oldest block first), so at most
    ``behind`` + 1 blocks are held here. ``hexdigest`` hashes what is left and answers; ``close`` ends the thread
    without waiting for the blocks (an upload that failed)."""

    def __init__(self, behind: int = 2) -> None:
        self._hash = hashlib.sha256()
        self._behind = behind
        self._pending: 'collections.deque[bytes]' = collections.deque()
        self._turn = threading.Lock()        # held while blocks are taken and hashed: one hasher, oldest first
        self._wake = threading.Semaphore(0)  # one release per block (and one to stop)
        self._thread: Optional[threading.Thread] = None
        self._failure: List[BaseException] = []
        self._closed = False

    def _hash_until(self, left: int) -> None:
        with self._turn:
            while len(self._pending) > left:
                data = self._pending.popleft()
                if self._failure:
                    continue   # the digest is lost already; hexdigest() raises
                try:
                    self._hash.update(data)
                except BaseException as exc:  # re-raised by hexdigest()
                    self._failure.append(exc)

    def _run(self) -> None:
        while True:
            self._wake.acquire()
            if self._closed:
                return
            self._hash_until(0)

    def update(self, data: bytes) -> None:
        if self._closed:
            raise ValueError('update() after close()')
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name='opsready-upload-sha256', daemon=True)
            self._thread.start()
        self._pending.append(data)
        if len(self._pending) > self._behind:
            self._hash_until(self._behind)   # the thread did not get a core in time: do its work here
        self._wake.release()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._thread is not None:
                self._wake.release()   # the thread ends at its next wake-up, hashing nothing more

    def hexdigest(self) -> str:
        if self._thread is not None:
            self.close()
            self._thread.join()
            self._thread = None
        self._hash_until(0)
        if self._failure:
            raise self._failure[0]
        return self._hash.hexdigest()


class HashingReader:
    """Non-seekable reader over a local file that hashes what it hands out (uploads read it once, in order).

    ``fail_after`` (tests) raises after that many bytes, as a dropped connection would. ``background``: hash
    in a thread beside the upload (``BackgroundSha256``), for SDKs that hand their sending to other threads or
    release the GIL while they send.
    """

    def __init__(self, path: str, fail_after: Optional[int] = None, background: bool = False) -> None:
        # an artifact of a catalog another account may write: never through a link planted at its name (root would
        # upload the file it names), never a FIFO (hangs) or a device (/dev/zero never ends)
        self._handle = safeio.open_stored(path)
        self.sha256: Any = BackgroundSha256() if background else hashlib.sha256()
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
        if isinstance(self.sha256, BackgroundSha256):
            self.sha256.close()


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

    def chunks(self, name: str) -> Iterator[bytes]:
        """The object's bytes in order (object stores read them here; errors become OpsReadyError)."""
        raise NotImplementedError

    def _stream(self, name: str, sink: Any) -> Dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        for data in self.chunks(name):
            digest.update(data)
            size += len(data)
            if sink is not None:
                sink.write(data)
        return {'sha256': digest.hexdigest(), 'size': size}

    def sha256(self, name: str) -> str:
        """The SHA-256 of what the destination holds (read back, never taken from the store's metadata)."""
        return self._stream(name, None)['sha256']

    def download(self, name: str, local_path: str) -> Dict[str, Any]:
        """Download into ``local_path`` (caller renames); returns {'sha256', 'size'} of the bytes received.

        The file is created here, exclusively and never through a symbolic link: the download directory may be
        writable by an account that plants a link at a name it can predict (the catalog's artifact names)."""
        fd = os.open(local_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            result = self._stream(name, handle)
            handle.flush()
            os.fsync(handle.fileno())
        return result

    def delete(self, names: List[str]) -> None:
        raise NotImplementedError

    def key(self, name: str) -> str:
        """The store's name for backup file ``name``; raises OpsReadyError for one it could not keep."""
        return name

    def abort_incomplete(self) -> List[str]:
        """Remove traces of interrupted uploads (S3 multipart uploads); returns what was aborted."""
        return []

    def locks(self, names: List[str]) -> Dict[str, Dict[str, Any]]:
        """The objects among ``names`` that the store refuses to delete now (retention lock, legal hold):
        name -> {'mode', 'retain_until' (aware datetime or None for a legal hold)}. Stores without
        immutability answer {}."""
        return {}


def s3_part_size(part_size: int, size: int) -> int:
    """``part_size``, doubled until ``size`` bytes fit in S3's 10,000 parts (a 1 TB file with 64 MiB parts needs
    128 MiB ones), never past S3's 5 GiB part limit (S3's 5 TiB object limit needs 512 MiB parts)."""
    while part_size * S3_MAX_PARTS < size and part_size * 2 <= S3_MAX_PART:
        part_size *= 2
    return part_size


# -- S3 --------------------------------------------------------------------------------------------------
class S3Store(Store):
    def __init__(self, bucket: str, prefix: str = '', endpoint_url: Optional[str] = None,
                 region: Optional[str] = None, access_key: Optional[str] = None, secret_key: Optional[str] = None,
                 session_token: Optional[str] = None, storage_class: Optional[str] = None,
                 server_side_encryption: Optional[str] = None, sse_kms_key_id: Optional[str] = None,
                 part_size_mb: int = 64, concurrency: int = 4, validate_certs: bool = True,
                 object_lock_mode: Optional[str] = None, lock_days: Optional[float] = None) -> None:
        if not HAS_BOTO3:
            raise OpsReadyError('backend=s3 needs boto3 on the managed host (pip install boto3): %s'
                                % BOTO3_IMPORT_ERROR)
        self.bucket = bucket
        # Refused before any request: S3 answers an over-long key with KeyTooLongError only after the upload
        # started, keeps '.'/'..'/empty segments that a later HTTP path normalisation or a pull would collapse,
        # and its XML listings cannot carry every control character.
        self.prefix = checked_prefix(prefix, 's3')
        self.url = 's3://%s/%s' % (bucket, self.prefix) + (' at %s' % endpoint_url if endpoint_url else '')
        self.client = boto3.client(
            's3', endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, aws_session_token=session_token, verify=validate_certs,
            # one pooled connection per part in flight: urllib3 keeps 10 by default, and a part sent over a connection
            # the full pool then drops pays a new TCP (and TLS) handshake every time
            config=BotoConfig(retries={'max_attempts': 5, 'mode': 'standard'},
                              max_pool_connections=max(10, concurrency)))
        self.extra: Dict[str, str] = {}
        if storage_class:
            self.extra['StorageClass'] = storage_class
        if server_side_encryption:
            self.extra['ServerSideEncryption'] = server_side_encryption
        if sse_kms_key_id:
            self.extra['SSEKMSKeyId'] = sse_kms_key_id
        if object_lock_mode and not (lock_days and lock_days > 0):
            raise OpsReadyError('object_lock_mode=%s needs lock_days (or keep_days) greater than 0.' % object_lock_mode)
        self.object_lock_mode = object_lock_mode
        self.lock_days = lock_days
        self._lock_enabled: Optional[bool] = None
        # Files of part_size bytes and more go multipart. Tests lower part_size (bytes) below the 5 MiB S3 minimum
        # against a moto started with a lower S3_UPLOAD_PART_MIN_SIZE.
        self.part_size = part_size_mb * 1024 * 1024
        self.concurrency = max(1, concurrency)

    def key(self, name: str) -> str:
        return checked_key(self.prefix, name, 's3')

    def _put_args(self) -> Dict[str, Any]:
        args: Dict[str, Any] = dict(self.extra)
        if self.object_lock_mode and self.lock_days:
            # Counted from the upload, so an object stays locked at least as long as a keep_days retention
            # (counted from the older backup time) keeps it. Whole seconds, rounded up: S3 stores seconds.
            until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=self.lock_days)
            until = until.replace(microsecond=0) + datetime.timedelta(seconds=1)
            args.update(ObjectLockMode=self.object_lock_mode, ObjectLockRetainUntilDate=until)
        return args

    def lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (then it is versioned, and deletes remove versions)."""
        if self._lock_enabled is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
                self._lock_enabled = answer.get('ObjectLockConfiguration', {}).get('ObjectLockEnabled') == 'Enabled'
            except ClientError as exc:
                code = exc.response.get('Error', {}).get('Code', '')  # type: ignore[attr-defined]
                if code != 'ObjectLockConfigurationNotFoundError' and self.object_lock_mode:
                    raise self._error('reading the Object Lock configuration', exc)
                # Without object_lock_mode, a policy lacking s3:GetBucketObjectLockConfiguration or a store that
                # does not implement it must not break copies that worked before: treat it as no Object Lock.
                self._lock_enabled = False
            except BotoCoreError as exc:
                raise self._error('reading the Object Lock configuration', exc)
        return self._lock_enabled

    def check_object_lock(self) -> None:
        """Refuse object_lock_mode on a bucket without Object Lock (S3 would reject every upload, or worse,
        an S3-compatible store could ignore the headers and leave the copies deletable)."""
        if self.object_lock_mode and not self.lock_enabled():
            raise OpsReadyError(
                'object_lock_mode=%s but bucket %s has no Object Lock enabled, so the copies could not be made '
                'immutable and nothing was uploaded. Use a bucket created with Object Lock '
                '(aws s3api create-bucket --object-lock-enabled-for-bucket), enable it on this versioned bucket '
                '(put-object-lock-configuration), or remove object_lock_mode.' % (self.object_lock_mode, self.bucket))

    def _versions(self, name: str) -> List[Dict[str, Any]]:
        key = self.key(name)
        found: List[Dict[str, Any]] = []
        paginator = self.client.get_paginator('list_object_versions')
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            for item in page.get('Versions', []) + page.get('DeleteMarkers', []):
                if item['Key'] == key:
                    found.append(item)
        return found

    def locks(self, names: List[str]) -> Dict[str, Dict[str, Any]]:
        if not names or not self.lock_enabled():
            return {}
        now = datetime.datetime.now(datetime.timezone.utc)
        result: Dict[str, Dict[str, Any]] = {}
        for name in names:
            try:
                # Every version counts: a delete removes all of them, and an older one may be locked longer.
                for version in self._versions(name):
                    if 'Size' not in version:
                        continue  # a delete marker holds no lock
                    head = self.client.head_object(Bucket=self.bucket, Key=self.key(name),
                                                   VersionId=version['VersionId'])
                    until = head.get('ObjectLockRetainUntilDate')
                    if head.get('ObjectLockLegalHoldStatus') == 'ON':
                        result[name] = {'mode': 'LEGAL_HOLD', 'retain_until': None}
                        break
                    if head.get('ObjectLockMode') and until is not None and until > now:
                        held = result.get(name)
                        if held is None or (held['retain_until'] is not None and until > held['retain_until']):
                            result[name] = {'mode': head['ObjectLockMode'], 'retain_until': until}
            except (BotoCoreError, ClientError) as exc:
                raise self._error('reading the lock of %s' % name, exc)
        return result

    def _error(self, what: str, exc: BaseException, then: str = '') -> OpsReadyError:
        code = ''
        if isinstance(exc, ClientError):
            code = exc.response.get('Error', {}).get('Code', '')  # type: ignore[attr-defined]
        hint = {
            'NoSuchBucket': 'create the bucket or fix bucket',
            'AccessDenied': 'the credentials lack permission on this bucket/prefix',
            'InvalidAccessKeyId': 'fix access_key/secret_key',
            'SignatureDoesNotMatch': 'fix secret_key',
        }.get(code, 'check endpoint_url, bucket and credentials')
        reason = code or type(exc).__name__
        return OpsReadyError('S3 %s on %s failed: %s (%s).%s' % (what, self.url, reason, hint, then), error_code=code)

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

    def _checksum_algorithm(self) -> Optional[str]:
        """CRC32 per part, as boto3's transfer manager sends it, unless the client was configured to send
        checksums only where required (AWS_REQUEST_CHECKSUM_CALCULATION=when_required, for S3-compatible stores
        without flexible checksums): then each part carries its Content-MD5 instead."""
        calculation = getattr(self.client.meta.config, 'request_checksum_calculation', 'when_supported')
        return 'CRC32' if calculation == 'when_supported' else None

    def upload(self, local_path: str, name: str, fail_after: Optional[int] = None) -> Dict[str, Any]:
        key = self.key(name)
        size = os.path.getsize(local_path)
        part_size = s3_part_size(self.part_size, size)
        # Read and hashed here, in order, on this thread: the SHA-256 is that of the bytes handed to the parts, in
        # the order they make up the object, whatever order the parts finish in.
        reader = HashingReader(local_path, fail_after)
        try:
            first = reader.read(part_size)
            if len(first) < part_size:
                try:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=first, **self._put_args())
                except (BotoCoreError, ClientError) as exc:
                    raise self._error('upload of %s' % name, exc)
            else:
                read = [first]
                del first   # _multipart lets go of each part once sent: memory stays concurrency x part_size
                self._multipart(reader, key, name, read, part_size, size)
        finally:
            reader.close()
        return {'sha256': reader.sha256.hexdigest(), 'size': reader.size}

    def _multipart(self, reader: HashingReader, key: str, name: str, read: List[bytes], part_size: int,
                   size: int) -> None:
        """Parts sent by up to ``concurrency`` threads while this one reads and hashes the next (``read`` holds
        the first part, read already); at most ``concurrency`` parts in memory (a part is read only when a slot
        is free). Any failure, of a part or of the read, stops reading, waits for the parts in flight and aborts
        the multipart upload, so no part stays behind (S3 keeps, and bills, parts that land after an abort)."""
        algorithm = self._checksum_algorithm()
        create_args = self._put_args()
        if algorithm:
            create_args['ChecksumAlgorithm'] = algorithm
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **create_args)['UploadId']
        except (BotoCoreError, ClientError) as exc:
            raise self._error('upload of %s' % name, exc)
        slots = threading.Semaphore(self.concurrency)
        stop = threading.Event()
        lock = threading.Lock()
        done: Dict[int, Dict[str, Any]] = {}
        failed: List[Tuple[int, int, int, BaseException]] = []   # part number, offset, length, why

        def send(number: int, offset: int, data: bytes) -> None:
            try:
                if stop.is_set():
                    return   # another part failed: send nothing more
                args: Dict[str, Any] = {'Bucket': self.bucket, 'Key': key, 'UploadId': upload_id,
                                        'PartNumber': number, 'Body': data}
                if algorithm:
                    args['ChecksumAlgorithm'] = algorithm
                else:
                    # S3's own integrity header (what s3transfer sends without flexible checksums), not security
                    digest = hashlib.md5(data, usedforsecurity=False).digest()
                    args['ContentMD5'] = base64.b64encode(digest).decode('ascii')
                answer = self.client.upload_part(**args)
                record = {'PartNumber': number, 'ETag': answer['ETag']}
                if algorithm and answer.get('Checksum' + algorithm):
                    record['Checksum' + algorithm] = answer['Checksum' + algorithm]
                with lock:
                    done[number] = record
            except BaseException as exc:  # reported (with the part) by the reading thread, which aborts
                stop.set()
                with lock:
                    failed.append((number, offset, len(data), exc))
            finally:
                slots.release()

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix='opsready-s3-part')
        futures = []
        number = 0
        offset = 0
        try:
            data = read.pop()
            slots.acquire()   # the slot of the part read before
            while True:
                number += 1
                futures.append(pool.submit(send, number, offset, data))
                offset += len(data)
                if len(data) < part_size:
                    break
                del data   # the part belongs to its sending thread now; memory is slots x part size
                slots.acquire()
                if stop.is_set():
                    slots.release()
                    break
                data = reader.read(part_size)
                if not data:
                    slots.release()
                    break
        except BaseException:
            stop.set()
            wait_futures(futures)
            pool.shutdown(wait=True)
            self._abort(key, upload_id)
            raise
        wait_futures(futures)
        pool.shutdown(wait=True)
        if failed:
            failed.sort(key=lambda item: item[0])
            part, start, length, why = failed[0]
            aborted = self._abort(key, upload_id)
            parts = max(number, -(-size // part_size))
            what = 'upload of %s (part %d of %d, bytes %d-%d)' % (name, part, parts, start, start + length - 1)
            if isinstance(why, (BotoCoreError, ClientError)):
                raise self._error(what, why, aborted)
            raise OpsReadyError('S3 %s on %s failed: %s: %s.%s' % (what, self.url, type(why).__name__, why, aborted))
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={'Parts': [done[n] for n in sorted(done)]})
        except (BotoCoreError, ClientError) as exc:
            raise self._error('completion of the upload of %s (%d parts)' % (name, len(done)), exc,
                              self._abort(key, upload_id))

    def _abort(self, key: str, upload_id: str) -> str:
        """Abort a multipart upload whose parts are all settled; returns what to add to the error message."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            return (' Aborting the multipart upload failed too (%s): the next backup_copy push aborts it '
                    '(aborted_uploads).' % (type(exc).__name__,))
        return ' The multipart upload was aborted: no part of it stays behind.'

    def put_bytes(self, name: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, **self._put_args())
        except (BotoCoreError, ClientError) as exc:
            raise self._error('upload of %s' % name, exc)

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name))['Body']
            yield from body.iter_chunks(CHUNK)
        except (BotoCoreError, ClientError) as exc:
            raise self._error('download of %s' % name, exc)

    def delete(self, names: List[str]) -> None:
        targets: List[Dict[str, str]] = []
        if names and self.lock_enabled():
            # Object Lock buckets are versioned: a plain delete only adds a delete marker and the (locked or
            # not) data stays, billed and invisible. Retention means really gone, so delete every version.
            try:
                for name in names:
                    targets += [{'Key': v['Key'], 'VersionId': v['VersionId']} for v in self._versions(name)]
            except (BotoCoreError, ClientError) as exc:
                raise self._error('listing versions', exc)
        else:
            targets = [{'Key': self.key(n)} for n in names]
        for start in range(0, len(targets), 1000):
            batch = targets[start:start + 1000]
            try:
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={'Objects': batch, 'Quiet': True})
            except (BotoCoreError, ClientError) as exc:
                raise self._error('delete', exc)
            if answer.get('Errors'):
                first = answer['Errors'][0]
                raise OpsReadyError('S3 delete of %s on %s failed: %s (%s).'
                                    % (first.get('Key'), self.url, first.get('Code'), first.get('Message', '')),
                                    error_code=first.get('Code'))

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
def _destination_problem(value: Optional[str]) -> Optional[str]:
    """Why ``value`` cannot be ssh's destination argument (host or user), or None.

    It is an argument of ssh and, in ``host:path``, of rsync: one starting with ``-`` is an option there
    (``-oProxyCommand=...`` runs a local command, ``-F`` reads another config; OpenSSH only refuses such host
    names since 9.6), whitespace splits it in rsync's remote command and ssh's config matching, a control
    character ends a line of the ssh config ssh writes for known hosts."""
    if value is None:
        return None
    if not value:
        return 'is empty'
    if value.startswith('-'):
        return "starts with '-' (ssh and rsync would read it as an option)"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in value):
        return 'holds a space or a control character'
    return None


def _ssh_file_problem(value: Optional[str]) -> Optional[str]:
    """Why ``value`` cannot be given to ssh as a file (``-i``, ``-o UserKnownHostsFile=``), or None: ssh reads
    such values as config words - whitespace separates several files, quotes and backslashes are syntax, ``%``
    starts a token (``%h``, ``%u``) and a leading ``~`` a home directory."""
    if value is None:
        return None
    if value.startswith('~'):
        return "starts with '~' (ssh would expand it to a home directory)"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f or c in '"\'\\%' for c in value):
        return "holds whitespace, a control character, a quote, a backslash or '%' (ssh would read them as syntax)"
    return None


class SshStore(Store):
    """A directory on another host, reached with ssh (commands) and rsync (data)."""

    def __init__(self, host: str, path: str, user: Optional[str] = None, port: int = 22,
                 key_file: Optional[str] = None, known_hosts: Optional[str] = None,
                 strict_host_key_checking: bool = True) -> None:
        if not path.startswith('/'):
            raise OpsReadyError('remote_path %r must be absolute.' % path)
        for option, value in (('ssh_host', host), ('ssh_user', user)):
            why = _destination_problem(value)
            if why:
                raise OpsReadyError('%s %r %s: give a host name or address (and the user in ssh_user). Nothing was '
                                    'run.' % (option, value, why))
        for option, value in (('ssh_key', key_file), ('ssh_known_hosts', known_hosts)):
            why = _ssh_file_problem(value)
            if why:
                raise OpsReadyError('%s %r %s: give the file under a plain absolute path (a link to it will do). '
                                    'Nothing was run.' % (option, value, why))
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
            # --protect-args (-s, rsync >= 3.0): the remote half of host:path reaches the remote rsync as one word.
            # Without it rsync before 3.2.4 (and any rsync with RSYNC_OLD_ARGS set) hands it to the remote shell,
            # which splits remote_path at a space and runs what follows a ';' on the backup host.
            self.runner.run([rsync, '--protect-args', '-e', ssh] + args, what='rsync (%s)' % what, timeout=24 * 3600)
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
            self._rsync(['-q', '--chmod=F600', '%s:%s' % (self.target, self._remote(name)), local],
                        'reading %s' % name)
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
        # --chmod=F600: rsync gives a new file the sender's mode (0644 on most backup hosts); the key material of a
        # pulled backup must be 0600 from the moment its name appears, not after the caller's chmod.
        self._rsync(['-q', '--chmod=F600', '%s:%s' % (self.target, self._remote(name)), local_path],
                    'download of %s' % name)
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
