# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The options of common/streaming.ArtifactWriter: compression and SHA-256 in one pass.
    DOCUMENTATION = r'''
options:
  compression:
    description:
      - Compression of the stream, applied while it is hashed (one pass, no second read). For PostgreSQL
        base backups C(pg_basebackup) compresses (client side, C(threads) workers) and the module hashes
        what it writes.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  compression_level:
    description: Compression level (zstd 1-19, gzip 1-9). Defaults to 3 for zstd and 6 for gzip.
    type: int
  threads:
    description: Compression threads for zstd; V(0) uses every CPU this process may run on.
    type: int
    default: 0
'''
