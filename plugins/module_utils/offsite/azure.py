# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure Blob Storage as an offsite store (azure-storage-blob, the provider's maintained SDK).

Uploads are block uploads streamed from the local file (``max_block_size`` per block, blocks sent in parallel),
each block carrying its Content-MD5 (``validate_content``), so Azure refuses a block damaged in transit; the
bytes are hashed (SHA-256) as they are read, and the copy is read back by backup_copy before its manifest goes
up. Blocks of an interrupted upload stay uncommitted and invisible; Azure discards them after a week.

Credentials, in this order: a connection string, a SAS token, an account key, else DefaultAzureCredential
(managed or workload identity; needs azure-identity).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import (
    HashingReader, Store, checked_key, checked_prefix)

try:
    from azure.core.exceptions import AzureError, HttpResponseError
    from azure.storage.blob import BlobServiceClient
    HAS_AZURE = True
    AZURE_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only where the SDK is missing
    HAS_AZURE = False
    AZURE_IMPORT_ERROR = exc

    class AzureError(Exception):  # type: ignore[no-redef]
        pass

    class HttpResponseError(AzureError):  # type: ignore[no-redef]
        pass

HINTS = {
    'ContainerNotFound': 'create the container or fix container',
    'AuthenticationFailed': 'fix account_key / sas_token (or the SAS has expired)',
    'AuthorizationPermissionMismatch': 'the credential lacks permission on this container',
    'AuthorizationFailure': 'the credential was refused or lacks permission: check account_key / sas_token and '
                            'its permissions (read, write, list, delete)',
    'BlobImmutableDueToPolicy': 'the blob is under an immutability policy: it can be deleted once the policy expires',
}


def account_name_of(account_url: str) -> str:
    """The storage account of a blob endpoint: the first label of <account>.blob.core.windows.net, or the first
    path segment of an emulator's or private endpoint's URL (http://127.0.0.1:10000/devstoreaccount1)."""
    parsed = urllib.parse.urlsplit(account_url)
    segment = parsed.path.strip('/').split('/', 1)[0]
    return segment or (parsed.hostname or '').split('.', 1)[0]


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise OpsReadyError('backend=azure without account_key, sas_token or connection_string uses a managed or '
                            'workload identity, which needs azure-identity on the managed host (pip install '
                            'azure-identity); or give one of those options.')
    return DefaultAzureCredential()


class AzureBlobStore(Store):
    def __init__(self, container: str, prefix: str = '', account_url: Optional[str] = None,
                 account_name: Optional[str] = None, account_key: Optional[str] = None,
                 sas_token: Optional[str] = None, connection_string: Optional[str] = None,
                 part_size_mb: int = 64, concurrency: int = 4, timeout: int = 300) -> None:
        if not HAS_AZURE:
            raise OpsReadyError('backend=azure needs azure-storage-blob on the managed host (pip install '
                                'azure-storage-blob): %s' % AZURE_IMPORT_ERROR)
        self.container_name = container
        self.prefix = checked_prefix(prefix, 'azure', azure=True)
        self.concurrency = max(1, concurrency)
        block = part_size_mb * 1024 * 1024
        options: Dict[str, Any] = dict(max_block_size=block, max_single_put_size=block, connection_timeout=30,
                                       read_timeout=timeout)
        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string, **options)
        else:
            if not account_url:
                if not account_name:
                    raise OpsReadyError('backend=azure needs account_url (https://<account>.blob.core.windows.net), '
                                        'account_name or connection_string.')
                account_url = 'https://%s.blob.core.windows.net' % account_name
            if sas_token:
                credential: Any = sas_token
            elif account_key:
                credential = {'account_name': account_name or account_name_of(account_url), 'account_key': account_key}
            else:
                credential = _default_credential()
            service = BlobServiceClient(account_url, credential=credential, **options)
        self.url = 'azure://%s/%s at %s' % (container, self.prefix, service.url.split('?', 1)[0])
        self.container = service.get_container_client(container)

    def key(self, name: str) -> str:
        return checked_key(self.prefix, name, 'azure', azure=True)

    def _error(self, what: str, exc: Exception) -> OpsReadyError:
        code = getattr(exc, 'error_code', None) or ''
        code = str(getattr(code, 'value', code))   # the SDK gives a StorageErrorCode enum for known codes
        if not code and isinstance(exc, HttpResponseError) and exc.status_code == 404:
            code = 'ContainerNotFound' if 'container' in str(exc).lower() else 'BlobNotFound'
        hint = HINTS.get(code, 'check account_url, container and credentials')
        return OpsReadyError('Azure %s on %s failed: %s (%s).' % (what, self.url, code or type(exc).__name__, hint),
                             error_code=code)

    def list_files(self) -> Dict[str, int]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            return {b.name[strip:]: int(b.size) for b in
                    self.container.list_blobs(name_starts_with=self.prefix + '/' if self.prefix else None)}
        except AzureError as exc:
            raise self._error('listing', exc)

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.container.download_blob(self.key(name)).readall()
        except AzureError as exc:
            raise self._error('read of %s' % name, exc)

    def upload(self, local_path: str, name: str, fail_after: Optional[int] = None) -> Dict[str, Any]:
        reader = HashingReader(local_path, fail_after, background=True)
        try:
            # the SDK reads any object with read(); its stubs only name IO[str]
            self.container.upload_blob(self.key(name), reader, length=os.path.getsize(local_path),  # type: ignore[arg-type]
                                       overwrite=True, max_concurrency=self.concurrency, validate_content=True)
        except AzureError as exc:
            raise self._error('upload of %s' % name, exc)
        finally:
            reader.close()
        return {'sha256': reader.sha256.hexdigest(), 'size': reader.size}

    def put_bytes(self, name: str, data: bytes) -> None:
        try:
            self.container.upload_blob(self.key(name), data, overwrite=True, validate_content=True)
        except AzureError as exc:
            raise self._error('upload of %s' % name, exc)

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            yield from self.container.download_blob(self.key(name), max_concurrency=self.concurrency).chunks()
        except AzureError as exc:
            raise self._error('download of %s' % name, exc)

    def delete(self, names: List[str]) -> None:
        for name in names:
            try:
                self.container.delete_blob(self.key(name), delete_snapshots='include')
            except AzureError as exc:
                raise self._error('delete of %s' % name, exc)
