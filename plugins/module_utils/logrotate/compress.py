# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compression of rotated copies: streamed through ``ArtifactWriter`` (zstd or gzip) into
``<name>.zst.partial``, fsynced and renamed; only then is the plain copy removed. An interrupted run
leaves the plain copy and a ``.partial`` that the next run removes: never a lost or half file.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter

SUFFIX = {'zstd': '.zst', 'gzip': '.gz'}


def compress_file(path: str, compression: str = 'zstd', level: Optional[int] = None,
                  threads: int = 1) -> Dict[str, Any]:
    """Compress ``path`` to ``path + suffix`` atomically and remove ``path``.

    The compressed file keeps the plain file's owner, group, mode and mtime (``maxage`` counts from
    the rotation, not from the compression). If the plain file grew while it was being read (a
    writer still appending), the compressed file is discarded and the plain one kept.
    """
    target = path + SUFFIX[compression]
    with open(path, 'rb') as source:
        st = os.fstat(source.fileno())
        writer = ArtifactWriter(target, compression=compression, level=level, threads=threads,
                                mode=st.st_mode & 0o7777)
        with writer:
            copied = writer.copy_from(source)
            if os.fstat(source.fileno()).st_size != copied:
                writer.abort()
                raise OpsReadyError('%s grew while it was compressed: a process still writes to it. It was left '
                                    'uncompressed; make the writer reopen its log (signal, postrotate).' % path,
                                    path=path)
            try:
                os.chown(writer.partial_path, st.st_uid, st.st_gid)
            except PermissionError:
                pass
            info = writer.commit()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        # Last look before the plain copy goes: anything appended after the read must not be lost.
        if os.fstat(source.fileno()).st_size != copied:
            os.unlink(target)
            raise OpsReadyError('%s grew while it was compressed: a process still writes to it. It was left '
                                'uncompressed; make the writer reopen its log (signal, postrotate).' % path, path=path)
    os.unlink(path)
    return {'path': path, 'compressed': target, 'size': copied, 'compressed_size': info['size']}
