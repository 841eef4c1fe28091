# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL ``archive_command`` helper: store one WAL segment as a compressed artifact + manifest.

Installed by the role ``opsready.operations.backup`` and run by PostgreSQL (as its service user) as::

    archive_command = '/usr/bin/python3 /usr/local/lib/opsready/pg_wal_archive.py <dest> %p %f'

It is deliberately standalone (standard library plus the optional ``zstandard`` package, no imports from
the collection) because it runs outside Ansible. It writes the same artifact/manifest format as
``db_backup``: ``<artifact>.partial`` streamed through compression + SHA-256, fsync, rename, then the
manifest written atomically. Exit status 0 only when both are durable; any failure exits non-zero so
PostgreSQL keeps the segment and retries. A segment archived before with identical content succeeds
again (PostgreSQL may re-archive after a crash); different content for the same name fails.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import glob
import gzip
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
from typing import Any, Dict, List, Optional

WAL_FILE = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$')
CHUNK = 1024 * 1024
SUFFIX = {'zstd': '.zst', 'gzip': '.gz', 'none': ''}


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing(dest: str, wal_name: str) -> List[Dict[str, Any]]:
    found = []
    for path in glob.glob(os.path.join(glob.escape(dest), 'postgresql-cluster-wal-*-%s*.manifest.json' % wal_name)):
        try:
            with open(path, encoding='utf-8') as handle:
                found.append(json.load(handle))
        except (OSError, ValueError):
            continue
    return found


def _extra_file(dest: str, source: str, name: str) -> int:
    """History, backup-label and partial files: copied verbatim (atomically) into <dest>/pg_wal_extra/."""
    extra = os.path.join(dest, 'pg_wal_extra')
    os.makedirs(extra, mode=0o700, exist_ok=True)
    target = os.path.join(extra, name)
    with open(source, 'rb') as handle:
        data = handle.read()
    if os.path.exists(target):
        with open(target, 'rb') as handle:
            return 0 if handle.read() == data else _fail('%s already archived with different content' % name)
    fd, tmp = tempfile.mkstemp(dir=extra, prefix='.' + name)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    _fsync_dir(extra)
    return 0


def _fail(message: str) -> int:
    sys.stderr.write('opsready pg_wal_archive: %s\n' % message)
    return 1


def archive(dest: str, source: str, wal_name: str, compression: str = 'zstd', level: Optional[int] = None,
            server: Optional[str] = None, segment_size: Optional[int] = None) -> int:
    if not os.path.isdir(dest):
        return _fail('backup directory %s does not exist' % dest)
    match = WAL_FILE.match(wal_name)
    if not match:
        return _extra_file(dest, source, wal_name)
    started = datetime.datetime.now(datetime.timezone.utc)
    st = os.stat(source)
    size = segment_size or st.st_size
    plain = hashlib.sha256()
    with open(source, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            plain.update(block)
    for previous in _existing(dest, wal_name):
        if previous.get('plain_sha256') == plain.hexdigest():
            return 0  # already archived, same bytes
        return _fail('%s was archived before with different content; refusing to overwrite' % wal_name)
    name = 'postgresql-cluster-wal-%s-%s%s' % (_stamp(started), wal_name, SUFFIX[compression])
    artifact = os.path.join(dest, name)
    partial = artifact + '.partial'
    for stale in glob.glob(os.path.join(glob.escape(dest), 'postgresql-cluster-wal-*-%s*.partial' % wal_name)):
        os.unlink(stale)  # an earlier attempt for this segment was interrupted
    digest = hashlib.sha256()
    stored = 0
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, 'wb') as out:
            class Sink:
                def write(self, data: bytes) -> int:
                    nonlocal stored
                    digest.update(data)
                    stored += len(data)
                    return out.write(data)

                def flush(self) -> None:
                    out.flush()

            sink = Sink()
            with open(source, 'rb') as handle:
                if compression == 'zstd':
                    import zstandard
                    level = 3 if level is None else level
                    cctx = zstandard.ZstdCompressor(level=level)
                    writer = cctx.stream_writer(sink, closefd=False)  # type: ignore[arg-type]
                    for block in iter(lambda: handle.read(CHUNK), b''):
                        writer.write(block)
                    writer.flush(zstandard.FLUSH_FRAME)
                elif compression == 'gzip':
                    level = 6 if level is None else level
                    with gzip.GzipFile(fileobj=sink, mode='wb', compresslevel=level, mtime=0) as gz:  # type: ignore
                        for block in iter(lambda: handle.read(CHUNK), b''):
                            gz.write(block)
                else:
                    level = 0
                    for block in iter(lambda: handle.read(CHUNK), b''):
                        sink.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, artifact)
        _fsync_dir(dest)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    timeline = int(match.group(1), 16)
    per_log = 0x100000000 // size
    segno = int(match.group(2), 16) * per_log + int(match.group(3), 16)
    finished = datetime.datetime.now(datetime.timezone.utc)
    last_write = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
    manifest = {
        'format': 1, 'id': name, 'artifact': name, 'engine': 'postgresql', 'kind': 'wal', 'database': '@cluster',
        'server': server or socket.gethostname(), 'started': _iso(started), 'finished': _iso(finished),
        'consistent_at': _iso(min(last_write, finished)), 'size': stored, 'sha256': digest.hexdigest(),
        'plain_sha256': plain.hexdigest(), 'raw_size': st.st_size, 'compression': compression,
        'compression_level': level, 'parent': None,
        'position': {'start': segno, 'end': segno + 1, 'timeline': timeline, 'wal_file': wal_name,
                     'wal_segment_size': size},
        'tool': {'name': 'opsready pg_wal_archive'},
    }
    target = artifact + '.manifest.json'
    fd, tmp = tempfile.mkstemp(dir=dest, prefix='.' + name + '.', suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as text:
        text.write(json.dumps(manifest, indent=2, sort_keys=True) + '\n')
        text.flush()
        os.fsync(text.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    _fsync_dir(dest)
    return 0


def main(argv: List[str]) -> int:
    import argparse
    parser = argparse.ArgumentParser(description='Archive one PostgreSQL WAL file into an opsready catalog.')
    parser.add_argument('dest')
    parser.add_argument('path', help='%%p: the WAL file to archive (relative to the data directory)')
    parser.add_argument('name', help='%%f: its file name')
    parser.add_argument('--compression', choices=sorted(SUFFIX), default='zstd')
    parser.add_argument('--level', type=int)
    parser.add_argument('--server')
    args = parser.parse_args(argv)
    try:
        return archive(args.dest, args.path, args.name, args.compression, args.level, args.server)
    except Exception as exc:  # PostgreSQL only needs a non-zero exit; the message goes to its log
        return _fail('archiving %s failed: %s' % (args.name, exc))


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
