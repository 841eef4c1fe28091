# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifact I/O and set locking for the backup side: write a tool's output or a file into an artifact
(``<name>.partial``, compression, encryption and SHA-256 in one pass, fsync, rename), read an artifact back
(decrypted and decompressed) or pipe it into a tool, check its checksums. Moved out of engines/base.py, which keeps the
engine interface. A set's lock and the removal of its interrupted runs' leftovers live in leftovers.py (re-exported
here).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import os
import subprocess  # nosec B404 # argument lists, never a shell
from typing import IO, Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

# the set's lock and its leftovers: their own file (a file backup needs them without the rest of this one)
from ansible_collections.opsready.operations.plugins.module_utils.backup.leftovers import (  # noqa: F401  # pylint: disable=unused-import
    LIGHT_INDEX_MAX, LIGHT_LEFTOVERS_MAX, SET_STAMP, discard_new_dir, remove_leftovers, set_lock, set_lock_path)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    CHUNK, ArtifactWriter, ChecksummedFile, drain, open_decompressed, verify_file)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions, kill_and_reap

F_SETPIPE_SZ = 1031


def disk_error(exc: OSError, path: str) -> OpsReadyError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OpsReadyError('No space left on the device holding %s: the backup was abandoned, its partial '
                             'file removed and no manifest written. Free space or point dest elsewhere.'
                             % os.path.dirname(path), path=path)
    return OpsReadyError('Writing %s failed: %s. The partial file was removed and no manifest written.'
                         % (path, exc.strerror or exc), path=path)


def _grow_pipe(handle: Any) -> None:
    try:
        fcntl.fcntl(handle.fileno(), F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass  # not permitted above /proc/sys/fs/pipe-max-size: the default works, a bit slower


grow_pipe = _grow_pipe  # a 1 MiB pipe buffer where the kernel allows it (for pipes other modules feed)


def stream_to_artifact(runner: ToolRunner, argv: Sequence[str], artifact: str, opts: BackupOptions,
                       env: Optional[Dict[str, str]] = None, what: Optional[str] = None,
                       observe: Optional[Callable[[bytes], None]] = None,
                       compressed_by_tool: bool = False) -> Tuple[Dict[str, Any], str]:
    """Run ``argv`` and stream its stdout through compression + SHA-256 into ``artifact``.

    ``compressed_by_tool``: the tool compresses (as ``opts`` asks) and the stream is only hashed,
    encrypted when asked, and stored.

    Returns (the writer's commit result, the tool's redacted stderr). On any failure (tool exit code,
    signal, disk full) the partial file is removed, the tool is killed, and an error is raised.
    """
    proc = runner.popen(argv, env=env)
    if proc.stdout is None:
        raise OpsReadyError('Internal error: %s was started without a stdout pipe.' % (what or argv[0]))
    _grow_pipe(proc.stdout)
    fd = proc.stdout.fileno()
    writer: Optional[ArtifactWriter] = None
    try:
        writer = ArtifactWriter(artifact, compression=opts.compression, level=opts.level, threads=opts.threads,
                                recipients=opts.recipients or None, compressed_by_tool=compressed_by_tool)
        while True:
            data = os.read(fd, CHUNK)
            if not data:
                break
            if observe is not None:
                observe(data)
            writer.write(data)
        proc.stdout.close()
        stderr = runner.finish(proc, argv, what=what)
        result = writer.commit()
        return result, stderr
    except OSError as exc:
        kill_and_reap(proc)
        if writer is not None:
            writer.abort()
        raise disk_error(exc, artifact)
    except BaseException:
        kill_and_reap(proc)
        if writer is not None:
            writer.abort()
        raise


def stream_file_to_artifact(source: IO[bytes], artifact: str, opts: BackupOptions) -> Dict[str, Any]:
    writer = ArtifactWriter(artifact, compression=opts.compression, level=opts.level, threads=opts.threads,
                            recipients=opts.recipients or None)
    try:
        writer.copy_from(source)
        return writer.commit()
    except OSError as exc:
        writer.abort()
        raise disk_error(exc, artifact)
    except BaseException:
        writer.abort()
        raise


def is_encrypted(manifest: Manifest) -> bool:
    return bool(manifest.data.get('encryption'))


def check_decryptable(manifest: Manifest, identities: Sequence[Any]) -> None:
    """Prove the key opens ``manifest``'s artifact (the age header only, no payload read).

    Raises ``OpsReadyError`` naming the artifact when it is encrypted and no identity or the wrong one is
    given; does nothing for an artifact that is not encrypted. Callers run it before creating a target.
    """
    if not is_encrypted(manifest):
        return
    try:
        with open_decompressed(manifest.path, manifest.data['compression'], manifest.data.get('encryption'),
                               list(identities)):
            pass
    except IntegrityError:
        raise
    except OpsReadyError as exc:
        raise KeyMismatchError(exc.message + retired_key_hint(manifest, identities), **exc.details)


def retired_key_hint(manifest: Manifest, identities: Sequence[Any]) -> str:
    """After a key rotation (backup_rekey): say that the key given was retired from this artifact, and which
    artifacts of the catalog it still opens (not re-encrypted yet), so the operator knows what it is good for."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey  # import cycle
    info = manifest.data.get('encryption') or {}
    given = [getattr(i, 'recipient', None) for i in identities]
    parts = []
    retired = [g for g in given if g and g in (info.get('retired') or [])]
    if retired:
        parts.append(' The key %s was retired from this artifact by backup_rekey on %s; it is now encrypted to %s '
                     'only.' % (', '.join(retired), info.get('rekeyed_at', '?'),
                                ', '.join(info.get('recipients') or [])))
    for key, ids in sorted(rekey.still_opened_by(manifest.directory, identities).items()):
        shown = ', '.join(sorted(ids)[:10]) + (' and %d more' % (len(ids) - 10) if len(ids) > 10 else '')
        parts.append(' The key %s still opens %d artifact(s) of %s not re-encrypted yet: %s.'
                     % (key, len(ids), manifest.directory, shown))
    return ''.join(parts)


class KeyMismatchError(OpsReadyError):
    """No identity, or not one the artifact was encrypted to: the artifact itself may well be intact."""


def is_key_error(exc: BaseException) -> bool:
    """A missing or wrong identity (not a damaged artifact): never recorded as a failed verification."""
    return isinstance(exc, KeyMismatchError)


@contextlib.contextmanager
def open_artifact(manifest: Manifest, identities: Optional[Sequence[Any]] = None,
                  verify: bool = False) -> Iterator[Any]:
    """The original bytes of an artifact: decrypted (with ``identities``) and decompressed on the fly.

    On a clean exit the rest of the stream is drained, so an encrypted artifact is authenticated to its
    last chunk and its plaintext checksum compared even when the consumer stopped reading early.
    Decompression errors become ``IntegrityError`` naming the artifact; decryption errors (wrong key,
    tampering) keep their own message, which names it too. ``verify``: the stored bytes are hashed as they
    are read and compared with the manifest's size and SHA-256 at the end (``IntegrityError`` on the clean
    exit, after the consumer had every byte: it must keep what it made of them apart until then).
    """
    checked = ChecksummedFile(manifest.path, manifest.data['sha256'], manifest.data.get('size')) if verify else None
    try:
        stream = open_decompressed(manifest.path, manifest.data['compression'], manifest.data.get('encryption'),
                                   list(identities or []), handle=checked)
    except OpsReadyError:
        raise
    except OSError:
        raise
    except Exception as exc:  # zstandard/gzip raise their own types on corrupt frames
        raise IntegrityError('Artifact %s cannot be decompressed (%s): it is corrupt.' % (manifest.path, exc),
                             path=manifest.path)
    with stream:
        guarded = _Guarded(stream, manifest.path)
        yield guarded
        guarded.drain()
        if checked is not None:
            checked.finish()  # the decompressor may stop before the file's end: hash what is left


def read_head_and_tail(manifest: Manifest, identities: Optional[Sequence[Any]] = None,
                       size: int = 4096) -> Tuple[bytes, bytes]:
    """The first and last ``size`` bytes of an artifact's original content, read in one streaming pass.

    Script dumps (pg_dump plain, mariadb-dump) are checked by their header and their completion
    trailer; reading the whole stream also proves every compressed frame decodes.
    """
    head, tail = b'', b''
    with open_artifact(manifest, identities) as source:
        while True:
            data = source.read(1024 * 1024)
            if not data:
                break
            if len(head) < size:
                head += data[:size]
            tail = (tail + data)[-size:]
    return head[:size], tail


class _Guarded:
    """A read-only stream whose decompression errors name the artifact."""

    def __init__(self, stream: IO[bytes], path: str) -> None:
        self._stream = stream
        self._path = path

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except OpsReadyError:
            raise
        except OSError as exc:
            if not isinstance(exc, gzip.BadGzipFile):
                raise
            raise IntegrityError('Artifact %s cannot be decompressed (%s): it is corrupt.' % (self._path, exc),
                                 path=self._path)
        except Exception as exc:  # zstandard/gzip raise their own types on corrupt frames
            raise IntegrityError('Artifact %s cannot be decompressed (%s): it is corrupt.' % (self._path, exc),
                                 path=self._path)

    def readable(self) -> bool:
        return True

    def drain(self) -> int:
        """Read to the end: an encrypted artifact is then authenticated and its plaintext checksum compared."""
        return drain(self)  # type: ignore[arg-type]


def pipe_artifact_into(runner: ToolRunner, manifest: Manifest, argv: Sequence[str], what: str,
                       env: Optional[Dict[str, str]] = None, stdout: Any = subprocess.DEVNULL,
                       early_exit_ok: bool = False, identities: Optional[Sequence[Any]] = None,
                       verify: bool = False) -> str:
    """Decrypt/decompress the artifact into the stdin of ``argv``; returns the tool's stderr.

    With ``early_exit_ok`` the tool may stop reading (``pg_restore --list``): the rest of the artifact is
    still read and, when encrypted, authenticated to its end. ``verify``: the stored bytes are checked
    against the manifest's SHA-256 on the way; a mismatch kills the tool before its stdin is closed (it
    never sees a clean end of input) and raises ``IntegrityError``.
    """
    check_decryptable(manifest, identities or [])  # a wrong key fails before the tool is started
    proc = runner.popen(argv, env=env, stdin=subprocess.PIPE, stdout=stdout)
    if proc.stdin is None:
        raise OpsReadyError('Internal error: %s was started without a stdin pipe.' % what)
    try:
        with open_artifact(manifest, identities, verify=verify) as source:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                try:
                    proc.stdin.write(data)
                except BrokenPipeError:
                    if early_exit_ok:
                        break
                    raise
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        return runner.finish(proc, argv, what=what)
    except BrokenPipeError:
        # The tool closed its stdin. If it exited with an error (psql ON_ERROR_STOP, pg_restore
        # --exit-on-error hitting an SQL error), that error is the cause, not the artifact.
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        if rc:
            return runner.finish(proc, argv, what=what)
        kill_and_reap(proc)
        raise IntegrityError('%s stopped reading %s early: the artifact is not a complete %s.'
                             % (what, manifest.path, what), path=manifest.path)
    except BaseException:
        kill_and_reap(proc)
        raise


def verify_checksums(manifest: Manifest) -> Dict[str, Any]:
    """Size + SHA-256 of the artifact and of every member of a multi-file artifact."""
    if manifest.members:
        if not os.path.isdir(manifest.path):
            raise IntegrityError('Artifact directory %s is missing.' % manifest.path, path=manifest.path)
        for member in manifest.members:
            verify_file(os.path.join(manifest.directory, member['path']), member['sha256'], member.get('size'))
        return {'checksum': 'ok', 'members': len(manifest.members)}
    verify_file(manifest.path, manifest.data['sha256'], manifest.data.get('size'))
    return {'checksum': 'ok'}
