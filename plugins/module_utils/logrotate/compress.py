# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compression of rotated copies: streamed through ``ArtifactWriter`` (zstd or gzip) into
``<name>.zst.partial``, fsynced and renamed; only then is the plain copy removed. An interrupted run
leaves the plain copy and a ``.partial`` that the next run removes: never a lost or half file.

Everything happens relative to the log directory's descriptor (``safefs.LogDir``): the plain copy is
opened only if it is still the regular file that was rotated, and removed only if its name still
names that file. Messages say what is on disk, not what was meant to be.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, Iterator, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import PARTIAL_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK, ArtifactWriter
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.safefs import LogDir, ident

SUFFIX = {'zstd': '.zst', 'gzip': '.gz'}
# A copy whose apparent size exceeds what it occupies by more than this is mostly holes: a writer
# without O_APPEND after a truncate, or a file made to look huge (``truncate -s 1T``) by whoever can
# write the directory. Compressing it would read terabytes of zeros for hours; it is left as it is.
SPARSE_SLACK = 1024 * 1024 * 1024


def compress_file(path: str, compression: str = 'zstd', level: Optional[int] = None,
                  threads: int = 1, logdir: Optional[LogDir] = None) -> Dict[str, Any]:
    """Compress ``path`` to ``path + suffix`` atomically and remove ``path``.

    ``logdir``: the already opened directory of ``path`` (opened here when not given). The
    compressed file keeps the plain file's owner, group, mode and mtime (``maxage`` counts from the
    rotation, not from the compression). If the plain file grew while it was being read (a writer
    still appending), the compressed file is discarded and the plain one kept. The result's ``note``
    says when the plain copy had already disappeared (deleted by something else meanwhile).
    """
    own = logdir is None
    d = logdir if logdir is not None else LogDir.open(os.path.dirname(os.path.abspath(path)))
    try:
        return _compress(d, os.path.basename(path), compression, level, threads)
    finally:
        if own:
            d.close()


@contextlib.contextmanager
def _writing(d: LogDir, name: str) -> Iterator[None]:
    """An ``OSError`` of the block names the file by its path: the one it carries (``ArtifactWriter`` works on
    /proc/self/fd/<dir>/... paths, ``LogDir.shown``), else ``name`` (a write or an fsync carries none: ENOSPC, EIO
    while the compressed copy is written)."""
    try:
        yield
    except OSError as exc:
        exc.filename = d.shown(exc.filename) if exc.filename else d.full(name)
        exc.filename2 = d.shown(exc.filename2)
        raise


def _copy(d: LogDir, name: str, partial: str, source: Any, writer: ArtifactWriter) -> int:
    """``writer.copy_from(source)``, an error naming the file it met: the plain copy ``name`` read, or the ``partial``
    written."""
    total = 0
    while True:
        with _writing(d, name):
            data = source.read(CHUNK)
        if not data:
            return total
        with _writing(d, partial):
            writer.write(data)
        total += len(data)


def _compress(d: LogDir, name: str, compression: str, level: Optional[int], threads: int) -> Dict[str, Any]:
    target = name + SUFFIX[compression]
    if d.lstat_or_none(target) is not None:
        # committing would rename over it: another generation (or something planted) would be lost
        raise OpsReadyError('%s was left uncompressed: %s already exists and would have been replaced; look at both '
                            'and remove the one not needed.' % (d.full(name), d.full(target)), path=d.full(name))
    src = d.open_regular(name, os.O_RDONLY, what='rotated copy')
    try:
        st = os.fstat(src)
        allocated = st.st_blocks * 512
        if st.st_size - allocated > SPARSE_SLACK:
            raise OpsReadyError('%s is sparse (%d bytes long, %d allocated): it was left uncompressed, since '
                                'compressing would read %d bytes of holes; find the writer that does not append '
                                '(O_APPEND) or who made it.'
                                % (d.full(name), st.st_size, allocated, st.st_size - allocated), path=d.full(name))
        # The writer gets a /proc/self/fd/<dir>/<name> path: it resolves through the directory
        # descriptor, and the partial file is made with O_EXCL (never through a planted symlink).
        with _writing(d, target + PARTIAL_SUFFIX):
            writer = ArtifactWriter(d.proc(target), compression=compression, level=level, threads=threads,
                                    mode=st.st_mode & 0o7777)
        with writer, os.fdopen(os.dup(src), 'rb') as source:
            copied = _copy(d, name, target + PARTIAL_SUFFIX, source, writer)
            if os.fstat(src).st_size != copied:
                writer.abort()
                raise OpsReadyError('%s grew while it was compressed: a process still writes to it. It was left '
                                    'uncompressed; make the writer reopen its log (signal, postrotate).'
                                    % d.full(name), path=d.full(name))
            try:
                # lchown: if the partial name were swapped for a symlink, the link itself changes, not its target
                os.chown(writer.partial_path, st.st_uid, st.st_gid, follow_symlinks=False)
            except PermissionError:
                pass
            with _writing(d, target + PARTIAL_SUFFIX):
                info = writer.commit()
        target_st = d.lstat(target)
        with d.naming(target):
            os.utime(d.proc(target), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        # Last look before the plain copy goes: anything appended after the read must not be lost.
        if os.fstat(src).st_size != copied:
            d.unlink_if(target, ident(target_st))
            raise OpsReadyError('%s grew while it was compressed: a process still writes to it. It was left '
                                'uncompressed; make the writer reopen its log (signal, postrotate).' % d.full(name),
                                path=d.full(name))
    finally:
        os.close(src)
    result = {'path': d.full(name), 'compressed': d.full(target), 'size': copied, 'compressed_size': info['size']}
    if not d.unlink_if(name, ident(st)):
        now = d.lstat_or_none(name)
        if now is None:
            result['note'] = ('%s is complete (%d bytes read); the plain copy %s had already been removed by something '
                              'else while it was compressed' % (d.full(target), copied, d.full(name)))
        else:
            result['note'] = ('%s is complete; %s was replaced by another file while it was compressed and was left '
                              'as it is' % (d.full(target), d.full(name)))
    d.fsync()
    return result
