# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifact I/O and set locking for the backup side: write a tool's output or a file into an artifact
(``<name>.partial``, compression, encryption and SHA-256 in one pass, fsync, rename), read an artifact back
(decrypted and decompressed) or pipe it into a tool, check its checksums, lock a backup set and remove the
leftovers of interrupted runs. Moved out of engines/base.py, which keeps the engine interface.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import os
import re
import subprocess  # nosec B404 # argument lists, never a shell
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_session import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    MANIFEST_SUFFIX, Manifest, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common import cleanup, locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    CHUNK, ArtifactWriter, ChecksummedFile, drain, open_decompressed, verify_file)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions, kill_and_reap

F_SETPIPE_SZ = 1031


# timeutil.stamp(): 20261129T004512123456Z, right after a set's prefix in every artifact name
SET_STAMP = re.compile(r'\d{8}T\d{6}\d*Z')


@contextlib.contextmanager
def set_lock(dest: str, prefix: str) -> Iterator[None]:
    """One run per backup set at a time (a second one fails at once instead of racing)."""
    with locks.exclusive(set_lock_path(dest, prefix),
                         'Another backup of %s is running in %s: wait for it to finish' % (prefix, dest)):
        yield


def set_lock_path(dest: str, prefix: str) -> str:
    return os.path.join(dest, '.%s.lock' % prefix)


def discard_new_dir(dest: str, prefixes: Sequence[str]) -> None:
    """A run that created ``dest`` and failed before writing anything takes its set locks (held by the caller,
    so no other run holds or waits on those files) and the directory away again: it leaves what it found,
    nothing. Anything else in ``dest`` (another run's lock or files) keeps the directory."""
    for prefix in prefixes:
        try:
            os.unlink(set_lock_path(dest, prefix))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(dest)
    except OSError:
        pass


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


def remove_leftovers(dest: str, prefix: Union[None, str, Sequence[str]] = None,
                     check_mode: bool = False, left: Optional[Dict[str, str]] = None,
                     keep: Sequence[str] = ()) -> List[str]:
    """Remove files of interrupted runs (no manifest), only those of the ``prefix`` set(s) when given: the ones
    removed (in check mode, that would be). One that could not be removed goes into ``left`` (path: why), never
    into the list, and does not fail the run (the backup itself is sound). ``keep``: names in ``dest`` that are
    no leftovers whatever they look like (the staging a tool of this very run is writing, under the set's lock:
    ``run_backup`` tidies while the tool runs).

    A name belongs to a set when the set's prefix is followed by the whole timestamp: ``postgresql-app-full-``
    must not take ``postgresql-app-full-full-...`` (database ``app-full``, another set, another lock), nor
    file set ``app-`` take ``app-2-20261204T...`` (set ``app-2``).
    """
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix or [])
    removed: List[str] = []
    if prefixes and _none_left(dest, prefixes, keep):
        return removed
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
    for path in Catalog(dest, materialize=False).leftovers():   # no entries: names only
        name = os.path.basename(path)
        if not _of_sets(name, prefixes) or name in keep:
            continue
        reason = None if check_mode else cleanup.remove_path(path)
        if reason is None:
            removed.append(path)
        elif left is not None:
            left[path] = reason
    return removed


def _of_sets(name: str, prefixes: Sequence[str]) -> bool:
    """Whether ``name`` is of one of the ``prefixes`` sets (all names when there are none): see remove_leftovers."""
    return not prefixes or any(name.startswith(p) and SET_STAMP.match(name, len(p)) for p in prefixes)


# The most names of a run's sets whose own manifests _none_left reads; past it the catalog (and its index) answers.
LIGHT_LEFTOVERS_MAX = 64
# A catalog index file larger than this (~160 bytes a manifest: ~6,500 manifests) sends _none_left to the catalog at
# once: see there.
LIGHT_INDEX_MAX = 1024 ** 2


def _none_left(dest: str, prefixes: Sequence[str], keep: Sequence[str] = ()) -> bool:
    """True when no file of the ``prefixes`` sets in ``dest`` can be a leftover, proved without the catalog code (a
    backup run calls this before its tool starts, and every module_utils file an AnsiballZ payload imports is
    compiled on every run): every name of those sets beside the manifests has a readable manifest of its own stem
    that names it as its artifact, so a manifest vouches for each. Anything else (a name without its manifest, a
    manifest that cannot be read or names another file, an unlistable directory, more names than
    LIGHT_LEFTOVERS_MAX): False, and ``Catalog.leftovers`` decides, as it always did. Names in ``keep`` (the staging
    the run's own tool is writing) are not looked at.

    A directory with a catalog index file past LIGHT_INDEX_MAX bytes is handed over without listing it: it holds
    thousands of manifests, so the run's sets nearly always have more than LIGHT_LEFTOVERS_MAX names, and the listing
    (0.22 s and ~40 MB at 200,000 manifests, more than the rest of db_backup's catalog work) was thrown away for the
    catalog, which answers from its index's seal without listing. Only the path is chosen on the file's size; what
    is a leftover is still the catalog's answer (a wrong guess costs time, never a file)."""
    try:
        if os.lstat(os.path.join(dest, INDEX_NAME)).st_size > LIGHT_INDEX_MAX:
            return False
    except OSError:
        pass   # (no index: a small catalog, the light path's case)
    try:
        names = os.listdir(dest)
    except OSError:
        return False
    # the sets' names found by one regular expression in C (``_of_sets`` called per name, and a set of every name,
    # were ~0.3 s and ~70 MB of db_backup's catalog work at 200,000 manifests, before the catalog did it again)
    of_sets = re.compile('(?:%s)%s' % ('|'.join(map(re.escape, prefixes)), SET_STAMP.pattern)).match
    mine = [name for name in filter(of_sets, names) if not name.endswith(MANIFEST_SUFFIX) and name not in keep]
    del names
    if len(mine) > LIGHT_LEFTOVERS_MAX:
        return False
    for name in mine:
        try:
            entry = read_manifest(os.path.join(dest, name + MANIFEST_SUFFIX))
        except (OpsReadyError, OSError, ValueError):
            return False   # (a missing manifest too)
        if entry.artifact_name != name:
            return False
    return True
