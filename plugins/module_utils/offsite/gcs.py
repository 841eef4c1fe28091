# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Google Cloud Storage as an offsite store (google-cloud-storage, the provider's maintained SDK).

Uploads are resumable uploads streamed from the local file in ``chunk_size`` pieces (never the whole artifact in
memory), with the CRC32C of the whole object checked against what GCS computed (``checksum='crc32c'``; a
mismatch deletes the object and fails); the bytes are hashed (SHA-256) as they are read, and backup_copy reads
the copy back before its manifest goes up. An interrupted resumable session expires by itself after a week.

Credentials: a service-account key file, else Application Default Credentials (workload identity, the metadata
server, ``gcloud auth application-default``). ``endpoint_url`` points the client at another endpoint (an emulator
or a private endpoint); with it and no key file, anonymous credentials are used (emulators want no token).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import (
    CHUNK, HashingReader, Store, checked_key, checked_prefix)

try:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import storage as gcs_storage
    HAS_GCS = True
    GCS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only where the SDK is missing
    HAS_GCS = False
    GCS_IMPORT_ERROR = exc

    class GoogleAPIError(Exception):  # type: ignore[no-redef]
        pass

    class GoogleAuthError(Exception):  # type: ignore[no-redef]
        pass

# resumable upload chunks must be multiples of 256 KiB
CHUNK_UNIT = 256 * 1024
HINTS = {404: 'create the bucket or fix bucket', 401: 'fix credentials_file', 403: 'the credentials lack permission'}


class GcsStore(Store):
    def __init__(self, bucket: str, prefix: str = '', project: Optional[str] = None,
                 credentials_file: Optional[str] = None, endpoint_url: Optional[str] = None,
                 part_size_mb: int = 64, timeout: int = 300) -> None:
        if not HAS_GCS:
            raise OpsReadyError('backend=gcs needs google-cloud-storage on the managed host (pip install '
                                'google-cloud-storage): %s' % GCS_IMPORT_ERROR)
        self.prefix = checked_prefix(prefix, 'gcs')
        self.timeout = timeout
        self.chunk_size = max(CHUNK_UNIT, (part_size_mb * 1024 * 1024) // CHUNK_UNIT * CHUNK_UNIT)
        options = {'api_endpoint': endpoint_url} if endpoint_url else None
        try:
            if credentials_file:
                client = gcs_storage.Client.from_service_account_json(credentials_file, project=project,
                                                                      client_options=options)
            elif endpoint_url:
                from google.auth.credentials import AnonymousCredentials
                client = gcs_storage.Client(project=project or 'opsready', credentials=AnonymousCredentials(),
                                            client_options=options)
            else:
                client = gcs_storage.Client(project=project, client_options=options)
        except (GoogleAuthError, OSError, ValueError) as exc:
            raise OpsReadyError('GCS credentials could not be loaded (%s): give credentials_file (a service-account '
                                'key) or run where Application Default Credentials exist.' % exc)
        self.client = client
        self.bucket = client.bucket(bucket)
        self.url = 'gs://%s/%s' % (bucket, self.prefix) + (' at %s' % endpoint_url if endpoint_url else '')

    def key(self, name: str) -> str:
        return checked_key(self.prefix, name, 'gcs')

    def _error(self, what: str, exc: Exception) -> OpsReadyError:
        code = getattr(exc, 'code', None)
        hint = HINTS.get(code, 'check bucket, endpoint_url and credentials') if isinstance(code, int) else \
            'check bucket, endpoint_url and credentials'
        detail = getattr(exc, 'message', None) or str(exc) or type(exc).__name__
        return OpsReadyError('GCS %s on %s failed: %s (%s).' % (what, self.url, detail.splitlines()[0][:300], hint),
                             error_code=code)

    def list_files(self) -> Dict[str, int]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            return {b.name[strip:]: int(b.size or 0) for b in
                    self.client.list_blobs(self.bucket, prefix=self.prefix + '/' if self.prefix else None,
                                           timeout=self.timeout)}
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise self._error('listing', exc)

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.bucket.blob(self.key(name)).download_as_bytes(timeout=self.timeout)
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise self._error('read of %s' % name, exc)

    def upload(self, local_path: str, name: str, fail_after: Optional[int] = None) -> Dict[str, Any]:
        reader = HashingReader(local_path, fail_after, background=True)
        blob = self.bucket.blob(self.key(name), chunk_size=self.chunk_size)
        try:
            # size given and a chunk_size set: a resumable upload read in order, one chunk in memory at a time
            blob.upload_from_file(reader, size=os.path.getsize(local_path), checksum='crc32c', timeout=self.timeout)
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise self._error('upload of %s' % name, exc)
        except ValueError as exc:   # google-resumable-media: DataCorruption (checksum mismatch) is a ValueError
            raise OpsReadyError('GCS upload of %s to %s failed its CRC32C check (%s): nothing was kept; run again.'
                                % (name, self.url, exc))
        finally:
            reader.close()
        return {'sha256': reader.sha256.hexdigest(), 'size': reader.size}

    def put_bytes(self, name: str, data: bytes) -> None:
        try:
            self.bucket.blob(self.key(name)).upload_from_string(data, checksum='crc32c', timeout=self.timeout)
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise self._error('upload of %s' % name, exc)

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            with self.bucket.blob(self.key(name), chunk_size=max(CHUNK_UNIT, CHUNK)).open('rb') as handle:
                yield from iter(lambda: handle.read(CHUNK), b'')
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise self._error('download of %s' % name, exc)

    def delete(self, names: List[str]) -> None:
        for name in names:
            try:
                self.bucket.blob(self.key(name)).delete(timeout=self.timeout)
            except (GoogleAPIError, GoogleAuthError) as exc:
                raise self._error('delete of %s' % name, exc)
