# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: logical dumps (pg_dump custom/directory/plain, pg_dumpall --globals-only), physical base
backups (pg_basebackup, tar to stdout with the WAL it needs) and WAL segments archived by
``pg_wal_archive.py`` (the ``archive_command`` helper).

Secrets: the password reaches libpq through ``PGPASSWORD`` (or the user's ``PGPASSFILE``), never argv.
pg_dump 15 has no zstd, so custom/plain dumps are written uncompressed to stdout and compressed in the
stream here; the directory format is written by ``pg_dump -j`` itself (its own gzip per member, so
``pg_restore -j`` can read it) and its members are hashed into the manifest.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import struct
import subprocess  # nosec B404 # argv lists via the runner only
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.background import Background
from ansible_collections.opsready.operations.plugins.module_utils.common.cleanup import remove_staging, told_staging
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    CHUNK, DEFAULT_LEVELS, default_threads, sha256_file)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import (
    CLUSTER, GLOBALS, BackupOptions, Engine, kill_and_reap)
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    disk_error, open_artifact, pipe_artifact_into, stream_to_artifact)
# The client's helpers, imported by name from here by older code (and other branches): one definition.
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (  # noqa: F401  # pylint: disable=unused-import
    CONNECT_HINTS, LOGIN_REFUSED, PostgresClient, csv_rows, find_client_tool, newest_packaged_tool)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import CATALOG_SEARCH_PATH

FORMATS = ('custom', 'directory', 'plain')
LSN = re.compile(r'^([0-9A-Fa-f]+)/([0-9A-Fa-f]+)$')
WAL_FILE = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$')


def basebackup_compress_args(opts: BackupOptions, client_major: int) -> List[str]:
    """pg_basebackup compresses its own tar stream (in C, zstd with workers): measured 1.0-1.04x of
    ``--compress=server-zstd`` against 1.3x when the module compressed the plain stream itself.
    Server-side compression cannot be used with ``-D -``: the client must parse the tar to add
    backup_manifest. ``--compress=client-...`` arrived in pg_basebackup 15; older clients get no
    option and the module compresses (empty list)."""
    if opts.compression == 'none' or client_major < 15:
        return []
    level = DEFAULT_LEVELS[opts.compression] if opts.level is None else opts.level
    detail = 'level=%d' % level
    threads = opts.threads if opts.threads > 0 else default_threads()
    if opts.compression == 'zstd' and threads > 1:
        detail += ',workers=%d' % threads
    return ['--compress=client-%s:%s' % (opts.compression, detail)]


SKIPPABLE_MAGIC = 0x184D2A5E   # one of the 16 zstd skippable-frame magics (0x184D2A50-5F): decoders skip it
SKIPPABLE_MAX = 0xFFFFFFFF     # its size field is 32 bits


def server_compression(opts: BackupOptions, client_major: int, server_version: str) -> bool:
    """Whether the server compresses the base backup (zstd with workers, as ``pg_basebackup
    --compress=server-zstd`` does; the client only writes): client and server 15 or later, zstd, not
    encrypted (age encrypts the stream, which server compression does not give)."""
    match = re.match(r'\s*(\d+)', server_version or '')
    return (opts.compression == 'zstd' and not opts.recipients and client_major >= 15
            and match is not None and int(match.group(1)) >= 15)


def skippable_frame(content: bytes) -> bytes:
    return struct.pack('<II', SKIPPABLE_MAGIC, len(content)) + content


def read_backup_manifest(manifest: Manifest) -> Optional[bytes]:
    """The ``backup_manifest`` a server-compressed base backup carries in its skippable frame (checked
    against its own SHA-256), or None for a backup that has it inside the tar."""
    info = manifest.data.get('backup_manifest')
    if not info:
        return None
    offset, size = info.get('offset'), info.get('size')
    with safeio.open_stored(manifest.path) as handle:
        # read only a frame that lies inside the file: a damaged manifest's size must not become the size of a read
        # (a read of 2**50 bytes fails allocating, after the whole file)
        inside = (isinstance(offset, int) and isinstance(size, int) and not isinstance(offset, bool)
                  and not isinstance(size, bool) and 0 <= offset and 0 <= size <= SKIPPABLE_MAX
                  and offset + 8 + size <= os.fstat(handle.fileno()).st_size)
        if inside:
            handle.seek(offset)
            header = handle.read(8)
            content = handle.read(size)
    if not inside or len(header) != 8 or struct.unpack('<II', header) != (SKIPPABLE_MAGIC, size) or \
            hashlib.sha256(content).hexdigest() != info.get('sha256'):
        raise IntegrityError('%s: the backup_manifest frame at byte %s is not the one recorded at backup time.'
                             % (manifest.path, info['offset']), path=manifest.path)
    return content


def _exit_waiter(proc: Any) -> Optional[int]:
    """A descriptor that becomes readable when ``proc`` exits (Linux pidfd), or None where there is none."""
    try:
        return os.pidfd_open(proc.pid)   # type: ignore[attr-defined,unused-ignore]  # Python 3.9+, Linux 5.3+
    except (AttributeError, OSError):
        return None


def _pause(waiter: Optional[int], seconds: float = 0.02) -> None:
    """Wait ``seconds`` for more output, but not past the writer's exit (``waiter``): the end of a backup is
    seen when it happens, not at the next poll tick (10 ms later on average)."""
    if waiter is None:
        time.sleep(seconds)
    else:
        select.select([waiter], [], [], seconds)


class _NoServerCompression(Exception):
    """The server turned out older than 15 after pg_basebackup was started with server-side compression."""


WRITEBACK_STEP = 8 * 1024 * 1024   # bytes hashed between two writeback hints (``_start_writeback``)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes at ``offset`` to disk now, without waiting (a hint; errors ignored).

    pg_basebackup runs with ``--no-sync`` and the artifact gets one fsync at the end (``_base_server_compressed``).
    Left alone, the kernel keeps the whole tar dirty in the page cache (the dirty thresholds are far above a
    backup's size on most hosts) and that fsync writes all of it while the backup waits: ~65 ms per 130 MB here,
    the very wait ``pg_basebackup`` (without ``--no-sync``) has at its end. Linux's POSIX_FADV_DONTNEED starts
    writeback of the range (WB_SYNC_NONE, as ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` does, which PostgreSQL
    itself uses for the same purpose) and drops only pages that are already clean: the bytes just written are
    still dirty, so the cache a verification reads next is kept (on a host whose background writeback already
    cleaned them, they are dropped and the verification reads them from disk). The disk then writes while the
    server still compresses, and the final fsync only waits for the last few megabytes."""
    if length <= 0 or not hasattr(os, 'posix_fadvise'):
        return
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def _hash_behind(path: str, proc: Any, digest: Any) -> int:
    """Hash ``path`` while ``proc`` appends to it (pg_basebackup writes its tar once, front to back, never
    seeking back); returns the bytes hashed when the process has exited. The rest: ``_hash_rest``. What was
    hashed is handed to the disk as it goes (``_start_writeback``)."""
    handle = None
    size = 0
    flushed = 0
    waiter = _exit_waiter(proc)
    try:
        while proc.poll() is None:
            if handle is None:
                try:
                    handle = open(path, 'rb')
                except FileNotFoundError:
                    _pause(waiter)
                    continue
            data = handle.read(CHUNK)
            if data:
                digest.update(data)
                size += len(data)
                if size - flushed >= WRITEBACK_STEP:
                    _start_writeback(handle.fileno(), flushed, size - flushed)
                    flushed = size
            else:
                _pause(waiter)
    finally:
        if handle is not None:
            handle.close()
        if waiter is not None:
            os.close(waiter)
    return size


def _hash_rest(path: str, offset: int, digest: Any) -> int:
    size = 0
    with open(path, 'rb') as handle:
        handle.seek(offset)
        while True:
            data = handle.read(CHUNK)
            if not data:
                return size
            digest.update(data)
            size += len(data)


def tool_major(version_text: str) -> int:
    """15 from "pg_basebackup (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"; 0 when it cannot be read."""
    match = re.search(r'\(PostgreSQL\)\s+(\d+)', version_text) or re.search(r'(\d+)', version_text)
    return int(match.group(1)) if match else 0


def lsn_to_int(text: str) -> int:
    match = LSN.match(text.strip())
    if not match:
        raise OpsReadyError('%r is not a PostgreSQL LSN.' % text)
    return (int(match.group(1), 16) << 32) + int(match.group(2), 16)


def wal_segno(lsn: int, segment_size: int) -> int:
    return lsn // segment_size


def wal_file_segno(name: str, segment_size: int) -> Tuple[int, int]:
    """(timeline, global segment number) of a WAL file name."""
    match = WAL_FILE.match(name)
    if not match:
        raise OpsReadyError('%r is not a WAL segment file name.' % name)
    per_log = 0x100000000 // segment_size
    return int(match.group(1), 16), int(match.group(2), 16) * per_log + int(match.group(3), 16)


class PostgresEngine(Engine):
    name = 'postgresql'
    kinds = ('full', 'base', 'wal')
    default_port = 5432
    kind_help = {'full': 'pg_dump of one database (or all_databases)',
                 'base': 'pg_basebackup of the whole cluster',
                 'wal': 'switch to a new WAL segment and wait until the archive_command helper stored it'}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Programs, libpq environment, queries and error classes: the engine's client (shared with restore,
        # maintenance and drill checks); the methods below stay for code written against the engine.
        self.client = PostgresClient(self.conn, self.runner, app='opsready-backup')
        self._all_databases: Optional[List[str]] = None
        self._facts_reader: Optional[Background] = None   # the facts being read (start_preflight)
        self._version_reader: Optional[Background] = None   # and pg_basebackup's version

    # -- the client, as the engine offers it ---------------------------------------------------------
    def tool(self, name: str) -> str:
        return self.client.tool(name)

    def tool_version(self, tool: str) -> str:
        return self.client.tool_version(tool)

    def psql_argv(self, *args: str, rows: bool = False) -> List[str]:
        return self.client.psql_argv(*args, rows=rows)

    def env(self, database: Optional[str] = None) -> Dict[str, str]:
        return self.client.env(database)

    def _connect_error(self, exc: ToolError) -> OpsReadyError:
        return self.client.classify(exc)

    def query(self, sql: str, database: Optional[str] = None) -> List[List[str]]:
        return self.client.query(sql, database)

    def server_facts(self) -> Dict[str, Any]:
        # the cluster's system identifier (pg_control_system(): executable by any login on PostgreSQL 15, guarded
        # for installations that revoked it) is the origin: the same through any address, a replica's is its
        # primary's (their WAL is one history); asked in the same query as the other facts
        rows = self.query("SELECT current_setting('server_version'), pg_is_in_recovery()::text, "
                          "current_setting('wal_segment_size'), "
                          "CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') "
                          "THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END")
        version, recovery, segsize, system_id = rows[0]
        size = segsize.strip()
        units = {'MB': 1024 * 1024, 'GB': 1024 * 1024 * 1024, 'kB': 1024}
        seg_bytes = int(size[:-2]) * units[size[-2:]] if size[-2:] in units else int(size)
        facts = {'server_version': version, 'in_recovery': recovery == 'true', 'wal_segment_size': seg_bytes}
        if system_id and system_id.strip().isdigit():
            facts['origin'] = 'pg:' + system_id.strip()
        return facts

    def preflight(self, opts: BackupOptions) -> Dict[str, Any]:
        """The server's facts (which prove it answers), and for a base backup pg_basebackup's version at the same
        time (``start_preflight``). A version that cannot be read fails where it is used (``_base``), as before."""
        if opts.kind != 'base' or self._server_facts is not None:
            return super().preflight(opts)
        self._start_readers()
        try:
            return self.ping()
        finally:
            self._client_version()

    def start_preflight(self, opts: BackupOptions) -> bool:
        """A real base backup's preflight is deferred: the server's facts (one psql) and pg_basebackup's version
        are read in the background once pg_basebackup has started (``_start_readers``). Both decide whether the
        server can compress, which nearly always it can: ``_base`` starts pg_basebackup that way at once (its own
        connection and checkpoint take longer than both reads), then waits for them, stopping it and removing its
        staging when the facts are refused (``ping`` raises their error) or say it cannot (a client or server older
        than 15: taken again the streamed way). The two programs start after pg_basebackup, not before it: their
        forks and the threads' start were ~3 ms of the critical path. Other kinds: ``preflight``."""
        if opts.kind != 'base' or self._server_facts is not None or self._facts_reader is not None:
            self.preflight(opts)
            return False
        return True

    def _start_readers(self) -> None:
        """The facts and pg_basebackup's version, read in the background (``ping`` and ``_client_version`` wait)."""
        if self._server_facts is None and self._facts_reader is None:
            self._facts_reader = Background(self.server_facts, 'opsready-pg-facts')
        if self._version_reader is None:
            self._version_reader = Background(lambda: self.tool_version('pg_basebackup'),
                                              'opsready-pg_basebackup-version')

    def _client_version(self) -> int:
        """pg_basebackup's major version, once the background read (``start_preflight``) is done: read again here
        when that failed, so a missing or broken pg_basebackup fails with its own message."""
        reader, self._version_reader = self._version_reader, None
        if reader is not None:
            reader.wait()
        return tool_major(self.tool_version('pg_basebackup'))

    def ping(self) -> Dict[str, Any]:
        reader, self._facts_reader = self._facts_reader, None
        if reader is not None and self._server_facts is None:
            self._server_facts = reader.result()   # raises what the facts' psql raised
        return super().ping()

    def check_options(self, opts: BackupOptions) -> None:
        super().check_options(opts)
        fmt = opts.format or 'custom'
        if fmt not in FORMATS:
            raise OpsReadyError('format=%s is not a pg_dump format here: use custom, directory or plain.' % fmt)
        if opts.jobs > 1 and fmt != 'directory' and opts.kind == 'full':
            raise OpsReadyError('jobs=%d needs format=directory (pg_dump -j only works with it).' % opts.jobs)
        if opts.kind == 'base' and opts.compression == 'gzip' and opts.level is not None and not 1 <= opts.level <= 9:
            raise OpsReadyError('compression_level=%d: pg_basebackup takes gzip levels 1-9.' % opts.level)
        if opts.kind in ('base', 'wal') and (opts.database or opts.all_databases):
            raise OpsReadyError('kind=%s covers the whole cluster: leave database and all_databases unset.'
                                % opts.kind)
        if opts.recipients and opts.kind == 'full' and fmt == 'directory':
            raise OpsReadyError('encrypt=true cannot be combined with format=directory: pg_dump writes the '
                                'directory members itself, so they never pass through the encrypting stream. Use '
                                'format=custom (restores in parallel with db_restore jobs > 1 too) or plain.')

    # -- backups --------------------------------------------------------------------------------------
    def backup_sets(self, opts: BackupOptions) -> List[str]:
        """One set per database dumped (pg_dump writes one artifact each), plus @globals when asked."""
        if opts.kind != 'full':
            return [self.catalog_database(opts)]
        if opts.database:
            databases = [opts.database]
        else:
            if self._all_databases is None:  # listed once: the sets locked are the sets dumped
                self._all_databases = [r[0] for r in self.query(
                    'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname')
                    if r and r[0]]
            databases = list(self._all_databases)
        return databases + ([GLOBALS] if opts.include_globals or opts.all_databases else [])

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        if opts.kind == 'base':   # the facts are waited for once pg_basebackup has started (start_preflight)
            return [self._base(opts)]
        info = self.ping()
        if opts.kind == 'full':
            sets = self.backup_sets(opts)
            results = [self._dump(opts, db, info) for db in sets if db != GLOBALS]
            if GLOBALS in sets:
                results.append(self._globals(opts, info))
            return results
        return self._wal(opts, info)

    def _position(self, info: Dict[str, Any]) -> Dict[str, Any]:
        if info['in_recovery']:
            rows = self.query('SELECT pg_last_wal_replay_lsn()::text')
        else:
            rows = self.query('SELECT pg_current_wal_lsn()::text, '
                              'pg_walfile_name(pg_current_wal_lsn())')
        return {'lsn': rows[0][0], 'wal_file': rows[0][1] if len(rows[0]) > 1 else None}

    def _dump(self, opts: BackupOptions, database: str, info: Dict[str, Any]) -> Dict[str, Any]:
        fmt = opts.format or 'custom'
        # The WAL position, the database's properties and pg_dump's version: three programs, read side by side
        # (each its own session or process) instead of one after the other before pg_dump starts; all are read
        # before it starts, as before. A failure is raised in that order: the position's first. The position's
        # psql is started before the properties reader is imported (compiled, in a module payload) meanwhile.
        locator = Background(lambda: self._position(info), 'opsready-pg-position')
        # Owner, ACL, comment, settings of the database itself: pg_dump keeps them only for --create.
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.dbprops import (
            DUMP_SETTINGS, read_properties)
        reader = Background(lambda: read_properties(self, database), 'opsready-pg-properties')
        prober = Background(lambda: self.tool_version('pg_dump'), 'opsready-pg_dump-version')
        for work in (locator, reader, prober):
            work.wait()
        position = locator.result()
        properties = reader.result()
        unqualified = properties.pop('unqualified_functions', None) or []
        started = utcnow()
        version = prober.result()
        # The dump's text in the database's own encoding, whatever client_encoding our sessions or the database's
        # settings give (ALTER DATABASE ... SET client_encoding): nothing converted, nothing unrepresentable.
        encoding = ['--encoding=%s' % properties['encoding']] if properties.get('encoding') else []
        if fmt == 'directory':
            stored, members = self._dump_directory(opts, database, started, encoding)
            artifact = stored['path']
        else:
            members = []
            artifact = self.artifact_path(opts, database, 'full', '.dump' if fmt == 'custom' else '.sql', when=started)
            argv = [self.tool('pg_dump'), '-F', 'c' if fmt == 'custom' else 'p', '-w'] + encoding
            if fmt == 'custom':
                argv += ['-Z', '0']
            header = bytearray()

            def observe(data: bytes) -> None:
                if len(header) < 8:
                    header.extend(data[:8 - len(header)])

            try:
                stored, _stderr = stream_to_artifact(self.runner, argv, artifact, opts, env=self._dump_env(database),
                                                     what='pg_dump of %s' % database, observe=observe)
            except ToolError as exc:
                raise self._connect_error(exc)
            if fmt == 'custom' and not bytes(header).startswith(b'PGDMP'):
                raise OpsReadyError('pg_dump produced no custom-format header for %s.' % database)
        data = self.base_manifest(opts, database, 'full', started, stored)
        data.update(
            consistent_at=isoformat(started),  # pg_dump's snapshot is taken when it starts
            format=fmt,
            tool={'name': 'pg_dump', 'version': version, 'jobs': opts.jobs if fmt == 'directory' else 1},
            server_version=info['server_version'],
            position={'lsn': position['lsn'], 'wal_file': position['wal_file']},
            database_properties=properties,
            dumped_with=dict(DUMP_SETTINGS),
        )
        if unqualified:
            data['warning'] = unqualified_warning(database, unqualified)
        if members:
            data['members'] = members
            data['member_compression'] = 'pg_dump gzip level %d' % stored['compression_level']
        return self.commit_manifest(artifact, data)

    def _dump_env(self, database: str) -> Dict[str, str]:
        """pg_dump's environment: the session settings the dump's text depends on and pg_dump leaves to the
        database (``DUMP_SETTINGS``), pinned through PGOPTIONS, which wins over ALTER DATABASE/ROLE ... SET."""
        # imported here: a base backup never loads the properties reader (module start-up, test_hot_path_imports)
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.dbprops import (
            DUMP_SETTINGS)
        env = self.env(database)
        pinned = ' '.join('-c %s=%s' % item for item in sorted(DUMP_SETTINGS.items()))
        env['PGOPTIONS'] = (env.get('PGOPTIONS', '') + ' ' + pinned).strip()
        return env

    def _dump_directory(self, opts: BackupOptions, database: str, started: Any,
                        encoding: Optional[List[str]] = None) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
        artifact = self.artifact_path(opts, database, 'full', '.dir', compressed=False, when=started)
        staging = artifact + '.partial'
        level = 0 if opts.compression == 'none' else (opts.level if opts.level is not None and
                                                      opts.compression == 'gzip' else 6 if opts.compression ==
                                                      'gzip' else 1)
        level = max(0, min(9, level))
        argv = [self.tool('pg_dump'), '-F', 'd', '-j', str(max(1, opts.jobs)), '-Z', str(level), '-w',
                '-f', staging] + list(encoding or [])
        try:
            self.runner.run(argv, env=self._dump_env(database), what='pg_dump of %s' % database)
            members = []
            total = 0
            digest = hashlib.sha256()
            for name in sorted(os.listdir(staging)):
                path = os.path.join(staging, name)
                with open(path, 'rb') as handle:
                    os.fsync(handle.fileno())
                sha = sha256_file(path)
                size = os.path.getsize(path)
                total += size
                members.append({'path': os.path.join(os.path.basename(artifact), name), 'size': size, 'sha256': sha})
                digest.update(('%s %s %d\n' % (name, sha, size)).encode())
            fsync_dir(staging)
            os.rename(staging, artifact)
            fsync_dir(opts.dest)
        except BaseException as exc:
            # <artifact>.partial: a leftover of this set (catalog.leftovers) should this removal fail or a SIGKILL
            # skip it; the next backup of the set removes it under the set's lock.
            left: Dict[str, str] = {}
            remove_staging(staging, left)
            if isinstance(exc, ToolError):
                raise told_staging(self._connect_error(exc), left)
            if isinstance(exc, OSError):
                raise told_staging(disk_error(exc, artifact), left)
            raise told_staging(exc, left)
        stored = {'path': artifact, 'size': total, 'sha256': digest.hexdigest(), 'raw_size': None,
                  'compression': 'none', 'compression_level': level}
        return stored, members

    def _globals(self, opts: BackupOptions, info: Dict[str, Any]) -> Dict[str, Any]:
        started = utcnow()
        artifact = self.artifact_path(opts, GLOBALS, 'full', '.sql', when=started)
        argv = [self.tool('pg_dumpall'), '--globals-only', '-w']
        try:
            stored, _err = stream_to_artifact(self.runner, argv, artifact, opts, env=self.env(None),
                                              what='pg_dumpall --globals-only')
        except ToolError as exc:
            raise self._connect_error(exc)
        data = self.base_manifest(opts, GLOBALS, 'full', started, stored)
        data.update(consistent_at=isoformat(started), format='plain',
                    tool={'name': 'pg_dumpall', 'version': self.tool_version('pg_dumpall')},
                    server_version=info['server_version'])
        return self.commit_manifest(artifact, data)

    def _base(self, opts: BackupOptions) -> Dict[str, Any]:
        started = utcnow()
        artifact = self.artifact_path(opts, CLUSTER, 'base', '.tar', when=started)
        label = 'opsready %s' % os.path.basename(artifact)
        embedded: Optional[Dict[str, Any]] = None
        try:
            stored: Optional[Dict[str, Any]] = None
            # Server compression needs a client and a server of 15 or later, which pg_basebackup's version and the
            # facts tell: pg_basebackup is started on the assumption (the versions this collection supports) while
            # they are read, and an older one's run is stopped and taken again the client-compressed way.
            if server_compression(opts, 15, '15'):
                try:
                    stored, stderr, embedded = self._base_server_compressed(opts, artifact, label)
                except _NoServerCompression:
                    stored = None
            client_major = self._client_version()
            info = self.ping()
            if stored is None:
                self.tool_started()   # (the run's tidying, when the server-compressed start did not take it)
                # -D - -Ft: one tar stream (base.tar with backup_manifest injected), WAL fetched into it so
                # the backup restores on its own; --checkpoint=fast avoids waiting for a spread checkpoint.
                argv = [self.tool('pg_basebackup'), '-D', '-', '-F', 't', '-X', 'fetch', '--checkpoint=fast',
                        '-v', '-w', '--label', label]
                compress = basebackup_compress_args(opts, client_major)
                stored, stderr = stream_to_artifact(self.runner, argv + compress, artifact, opts,
                                                    env=self.env(None), what='pg_basebackup',
                                                    compressed_by_tool=bool(compress))
        except ToolError as exc:
            raise self._connect_error(exc)
        start = re.search(r'write-ahead log start point: ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)', stderr)
        end = re.search(r'write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)', stderr)
        if not start or not end:
            os.unlink(artifact)
            raise OpsReadyError('pg_basebackup did not report its WAL start/end points; the artifact was '
                                'removed. stderr: %s' % stderr[-500:])
        seg = info['wal_segment_size']
        start_lsn, end_lsn = lsn_to_int(start.group(1)), lsn_to_int(end.group(1))
        data = self.base_manifest(opts, CLUSTER, 'base', started, stored)
        data.update(
            format='tar',
            tool={'name': 'pg_basebackup', 'version': self.tool_version('pg_basebackup'), 'wal_method': 'fetch'},
            server_version=info['server_version'],
            position={'start_lsn': start.group(1), 'end_lsn': end.group(1), 'timeline': int(start.group(2)),
                      'log_start': wal_segno(start_lsn, seg), 'log_end': wal_segno(end_lsn, seg),
                      'wal_segment_size': seg},
            label=label,
        )
        if embedded is not None:
            data['tool']['compression'] = 'server'
            data['backup_manifest'] = embedded
        return self.commit_manifest(artifact, data)

    def _base_server_compressed(self, opts: BackupOptions, artifact: str,
                                label: str) -> Tuple[Dict[str, Any], str, Dict[str, Any]]:
        """``pg_basebackup --compress=server-zstd`` into a staging directory: the server compresses (as the
        raw command does), which cannot stream to stdout with a backup manifest. ``base.tar.zst`` is hashed
        while pg_basebackup writes it (read behind the writer: the data is read once, from the page cache),
        ``backup_manifest`` is appended to it as a zstd skippable frame (``zstd -d`` and every decoder skip
        it, so the artifact decompresses to the very tar pg_basebackup wrote; ``read_backup_manifest`` gets
        it back for pg_verifybackup), and the file takes the artifact's name. One file, one checksum."""
        staging = artifact + '.partial'
        level = DEFAULT_LEVELS['zstd'] if opts.level is None else opts.level
        threads = opts.threads if opts.threads > 0 else default_threads()
        detail = 'level=%d' % level + (',workers=%d' % threads if threads > 1 else '')
        # --no-sync: the staging directory is scratch (backup_manifest is read into memory, base.tar.zst renamed
        # away); what must be durable is the artifact, and it gets one fsync after its last byte (the frame)
        # below, then the rename and the fsync of its directory. pg_basebackup's own sync would write the same
        # data a step earlier and add fsyncs of files and a directory that are thrown away (each a journal commit).
        argv = [self.tool('pg_basebackup'), '-D', staging, '-F', 't', '-X', 'fetch', '--checkpoint=fast', '-v',
                '-w', '--no-sync', '--label', label, '--compress=server-zstd:%s' % detail]
        tar = os.path.join(staging, 'base.tar.zst')
        proc = None
        try:
            proc = self.runner.popen(argv, env=self.env(None), stdout=subprocess.DEVNULL)
            # The facts and the version, read while pg_basebackup connects and checkpoints, and so is the run's
            # tidying (leftovers of killed runs, ``Engine.tool_started``; the staging being written is not one):
            # refused facts, or tidying that fails, stop it here and its staging is removed below; a client or
            # server older than 15 cannot compress (``_base`` starts over the streamed way).
            self._start_readers()
            self.tool_started([os.path.basename(staging)])
            if not server_compression(opts, self._client_version(), self.ping()['server_version']):
                raise _NoServerCompression()
            digest = hashlib.sha256()
            size = _hash_behind(tar, proc, digest)
            stderr = self.runner.finish(proc, argv, what='pg_basebackup')
            size += _hash_rest(tar, size, digest)
            others = sorted(set(os.listdir(staging)) - {'base.tar.zst', 'backup_manifest'})
            if others:
                raise OpsReadyError('pg_basebackup wrote %s besides base.tar.zst: the cluster has tablespaces '
                                    'outside the data directory, which a one-file base backup cannot hold. '
                                    'Nothing was stored.' % ', '.join(others))
            with open(os.path.join(staging, 'backup_manifest'), 'rb') as handle:
                content = handle.read()
            frame = skippable_frame(content)
            with open(tar, 'ab') as handle:
                handle.write(frame)
                handle.flush()
                # The one fsync of the artifact (pg_basebackup ran with --no-sync): after its last byte, before
                # the rename; most of the data is already on disk (``_start_writeback``), so it waits for the tail.
                os.fsync(handle.fileno())
            digest.update(frame)
            embedded = {'format': 'zstd skippable frame', 'offset': size, 'size': len(content),
                        'sha256': hashlib.sha256(content).hexdigest()}
            size += len(frame)
            os.rename(tar, artifact)
            fsync_dir(opts.dest)
        except BaseException as exc:
            if proc is not None:
                kill_and_reap(proc)
            left: Dict[str, str] = {}
            remove_staging(staging, left)
            raise told_staging(disk_error(exc, artifact) if isinstance(exc, OSError) else exc, left)
        # the staging directory (pg_basebackup's backup_manifest and what is left of it): checked, reported
        left = {}
        remove_staging(staging, left)
        self.staging_left.update(left)
        stored = {'path': artifact, 'size': size, 'sha256': digest.hexdigest(), 'raw_size': None,
                  'compression': 'zstd', 'compression_level': level}
        return stored, stderr, embedded

    def _wal(self, opts: BackupOptions, info: Dict[str, Any]) -> List[Dict[str, Any]]:
        if info['in_recovery']:
            raise OpsReadyError('kind=wal needs the primary: this server is in recovery (a standby).')
        rows = self.query('SELECT pg_walfile_name(pg_switch_wal())')
        wal_file = rows[0][0]
        # the catalog code only when a catalog is read (every import of an AnsiballZ payload is compiled on each run)
        from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
        deadline = time.monotonic() + opts.wait_timeout
        while True:
            found = [m for m in Catalog(opts.dest, engine=self.name, database=CLUSTER, origin=self.origin(),
                                        own=True).logs()
                     if m.position.get('wal_file') == wal_file]
            if found:
                self._check_wal_encryption(found[-1], opts)
                return [found[-1].summary()]
            if time.monotonic() > deadline:
                status = self.query('SELECT coalesce(last_archived_wal, \'-\'), coalesce(last_failed_wal, \'-\'), '
                                    'failed_count FROM pg_stat_archiver')[0]
                raise OpsReadyError(
                    'WAL segment %s was not archived into %s within %ss (pg_stat_archiver: last archived %s, '
                    'last failed %s, %s failures). Check that archive_mode=on and archive_command runs the '
                    'opsready WAL helper with this directory (role opsready.operations.backup installs it); the '
                    'helper\'s own message is in the PostgreSQL server log.'
                    % (wal_file, opts.dest, opts.wait_timeout, status[0], status[1], status[2]))
            time.sleep(0.2)

    @staticmethod
    def _check_wal_encryption(manifest: Manifest, opts: BackupOptions) -> None:
        """kind=wal with encrypt=true: the archive_command helper encrypts, so prove it encrypted to every recipient.

        The segment is stored by PostgreSQL's archive_command, not by this run: a helper configured without
        ``--recipient`` would keep archiving in the clear while the play says encrypt=true.
        """
        if not opts.recipients:
            return
        have = set((manifest.data.get('encryption') or {}).get('recipients') or [])
        missing = [r for r in opts.recipients if r not in have]
        if missing:
            raise OpsReadyError(
                'WAL segment %s was archived %s, but encrypt=true asks for %s: add %s to archive_command '
                '(pg_wal_archive.py) and reload PostgreSQL. Segments archived before stay as they are.'
                % (manifest.position.get('wal_file'), 'to %s' % ', '.join(sorted(have)) if have else 'unencrypted',
                   ', '.join(opts.recipients), ' '.join('--recipient %s' % r for r in missing)),
                artifact=manifest.path)

    # -- verification -------------------------------------------------------------------------------
    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        kind, fmt = manifest.kind, manifest.data.get('format')
        if kind == 'wal':
            return self._verify_wal(manifest)
        if kind == 'base':
            return self._verify_base(manifest)
        if fmt == 'directory':
            out = self._list(manifest.path, None)
            self.runner.run([self.tool('pg_restore'), '-f', os.devnull, manifest.path],
                            what='pg_restore (read every member)')
            return {'engine_check': 'pg_restore --list + full read', 'toc_entries': out,
                    'artifact': self._toc_summary(manifest.path)}
        if fmt == 'plain':
            return self._verify_plain(manifest)
        # custom: the TOC, then every data block read through pg_restore (to /dev/null).
        listing = tempfile.TemporaryFile()
        try:
            pipe_artifact_into(self.runner, manifest, [self.tool('pg_restore'), '--list'], 'pg_restore --list',
                               stdout=listing, early_exit_ok=True, identities=self.identities)
            listing.seek(0)
            text = listing.read().decode('utf-8', 'replace')
            entries = sum(1 for line in toc_lines(text) if line and not line.startswith(';'))
        finally:
            listing.close()
        try:
            pipe_artifact_into(self.runner, manifest, [self.tool('pg_restore'), '-f', os.devnull],
                               'pg_restore (read every block)', identities=self.identities)
        except ToolError as exc:
            raise IntegrityError('pg_restore cannot read all of %s: %s' % (manifest.path, exc.message),
                                 path=manifest.path)
        return {'engine_check': 'pg_restore --list + full read', 'toc_entries': entries,
                'artifact': pg_toc_summary(text)}

    def _toc_summary(self, path: str) -> Dict[str, int]:
        try:
            _rc, out, _err = self.runner.run([self.tool('pg_restore'), '--list', path], what='pg_restore --list')
        except ToolError as exc:
            raise IntegrityError('pg_restore --list rejects %s: %s' % (path, exc.message), path=path)
        return pg_toc_summary(out)

    def _list(self, path: str, stdin: Optional[bytes]) -> int:
        try:
            _rc, out, _err = self.runner.run([self.tool('pg_restore'), '--list', path], what='pg_restore --list')
        except ToolError as exc:
            raise IntegrityError('pg_restore --list rejects %s: %s' % (path, exc.message), path=path)
        return sum(1 for line in toc_lines(out) if line and not line.startswith(';'))

    def _verify_plain(self, manifest: Manifest) -> Dict[str, Any]:
        from ansible_collections.opsready.operations.plugins.module_utils.backup.source import scan_stream
        with open_artifact(manifest, self.identities) as source:
            # Tables and COPY blocks counted on the way (an empty table's block ends at once with "\.").
            head, tail, counts = scan_stream(source, PLAIN_NEEDLES)
        if b'PostgreSQL database dump' not in head and b'PostgreSQL database cluster dump' not in head:
            raise IntegrityError('%s does not start like a pg_dump script.' % manifest.path, path=manifest.path)
        if manifest.database != GLOBALS and b'PostgreSQL database dump complete' not in tail:
            raise IntegrityError('%s has no "dump complete" trailer: the dump is truncated.' % manifest.path,
                                 path=manifest.path)
        return {'engine_check': 'pg_dump script header/trailer', 'result': 'ok',
                'artifact': {'tables': counts[0] + counts[1], 'data_tables': counts[2] - counts[3]}}

    def _verify_base(self, manifest: Manifest) -> Dict[str, Any]:
        from ansible_collections.opsready.operations.plugins.module_utils.files.tarsafe import extract_all, read_stream
        left: Dict[str, Any] = {}
        # The base backup decrypted and extracted: plaintext, in a private scratch directory (common/scratch.py).
        # (imported here: only verification extracts; a backup run compiles it only when it verifies)
        from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import scratch
        with scratch('pg-verify', left, module='backup_verify') as held:
            # a directory of its own: pg_verifybackup flags every file the backup_manifest does not list
            workdir = held.file('base')
            os.mkdir(workdir, 0o700)
            # read_stream: a base backup that stops parsing midway is refused here (pg_verifybackup ran on the members
            # before the bad block, and a backup_manifest listing only them passed it)
            with open_artifact(manifest, self.identities) as source:
                with read_stream(source, manifest.path, what='Base backup',
                                 outcome='pg_verifybackup was not run.') as tar:
                    extract_all(tar, workdir, archive=manifest.path)
            embedded = read_backup_manifest(manifest)
            if embedded is not None and not os.path.exists(os.path.join(workdir, 'backup_manifest')):
                with open(os.path.join(workdir, 'backup_manifest'), 'wb') as handle:
                    handle.write(embedded)
            if not os.path.exists(os.path.join(workdir, 'backup_manifest')):
                raise IntegrityError('%s holds no backup_manifest: pg_verifybackup cannot check it.' % manifest.path,
                                     path=manifest.path)
            try:
                _rc, out, _err = self.runner.run([self.tool('pg_verifybackup'), workdir], what='pg_verifybackup')
            except ToolError as exc:
                raise IntegrityError('pg_verifybackup rejects %s: %s' % (manifest.path, exc.message),
                                     path=manifest.path)
        return dict({'engine_check': 'pg_verifybackup', 'result': out.strip()}, **left)

    def _verify_wal(self, manifest: Manifest) -> Dict[str, Any]:
        expected = manifest.data.get('plain_sha256')
        digest = hashlib.sha256()
        size = 0
        with open_artifact(manifest, self.identities) as source:
            while True:
                data = source.read(1024 * 1024)
                if not data:
                    break
                digest.update(data)
                size += len(data)
        seg = manifest.position.get('wal_segment_size')
        if seg and size != seg:
            raise IntegrityError('WAL segment %s is %d bytes, not %d.' % (manifest.path, size, seg),
                                 path=manifest.path)
        if expected and digest.hexdigest() != expected:
            raise IntegrityError('WAL segment %s decompresses to different bytes than were archived.'
                                 % manifest.path, path=manifest.path)
        return {'engine_check': 'WAL segment size and content digest', 'result': 'ok'}

    # -- what the source held (compared by backup_verify and DR drills) ------------------------------
    def source_summary(self, opts: BackupOptions, database: str) -> Optional[Dict[str, Any]]:
        """Tables, tables holding rows (asked exactly, one row read each, up to a limit), row estimates and
        size of ``database``, taken just before pg_dump starts. ``None`` for server-wide kinds."""
        if opts.kind != 'full' or database in (GLOBALS, CLUSTER) or database.startswith('@'):
            return None
        from ansible_collections.opsready.operations.plugins.module_utils.backup.source import EXISTS_TABLE_LIMIT
        try:
            # One psql (one login) asks both: the estimates, then, chosen by psql's \if on the table count, the
            # tables with rows (up to the limit) or whether any table has one; its one row carries all of it.
            row = self.client.query_script(
                CATALOG_SEARCH_PATH + PG_SUMMARY_SQL + ' \\gset opsready_\n'
                "SELECT :opsready_tables <= %d AS opsready_few \\gset\n" % EXISTS_TABLE_LIMIT
                + "\\if :opsready_few\n" + SUMMARY_ROW + "'non_empty', (" + PG_NON_EMPTY_SQL + ");\n"
                + "\\else\n" + SUMMARY_ROW + "'has_rows', (" + PG_HAS_ROWS_SQL + ");\n\\endif\n", database)[0]
            summary: Dict[str, Any] = {
                'engine': 'postgresql', 'tables': int(row[0]), 'rows_estimate': max(int(row[1]), int(row[2])),
                'size_bytes': int(row[3]), 'non_empty_tables': None, 'measured_at': isoformat(utcnow()),
                'method': 'pg_class/pg_stat_user_tables estimates; tables with rows asked exactly'}
            if row[4] == 'non_empty':
                summary['non_empty_tables'] = int(row[5])
            else:  # estimates alone stay high after a DELETE: whether any table holds a row, asked exactly
                summary['has_rows'] = int(row[5]) > 0
        except (OpsReadyError, ValueError, IndexError) as exc:  # never fails the backup itself
            return {'engine': 'postgresql', 'error': getattr(exc, 'message', None) or 'unexpected answer: %s' % exc}
        return summary


# User tables as pg_dump sees them: no system schemas, no extension members, partitioned parents included.
PG_USER_TABLES = ("FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                  "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
                  "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
                  "AND d.objid = c.oid AND d.deptype = 'e')")
PG_SUMMARY_SQL = ("SELECT count(*) AS tables, coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint AS reltuples, "
                  "coalesce(sum(s.n_live_tup), 0)::bigint AS live, pg_database_size(current_database()) AS size "
                  + PG_USER_TABLES)
# One row read per table, server side (query_to_xml runs the quoted name): no name ever parsed here. The tables are
# chosen in a subquery the planner may not pull up (OFFSET 0): query_to_xml refers to pg_class alone, so as a qual
# of the join it could be pushed down to pg_class's scan and run before the schema filter, on a catalog the login
# may not read (pg_statistic: "permission denied", a drill's integrity step failed on a plan change).
_PG_READ_ONE_ROW = ("query_to_xml(format('SELECT 1 AS x FROM ONLY %s LIMIT 1', u.t), false, true, '')::text <> ''")
PG_NON_EMPTY_SQL = ("SELECT count(*) AS non_empty FROM (SELECT c.oid::regclass AS t "  # nosec B608 # constants only
                    + PG_USER_TABLES + " AND c.relkind = 'r' OFFSET 0) AS u WHERE " + _PG_READ_ONE_ROW)

# Whether any table holds a row, likeliest first, stopping at the first that does (bounded on big catalogs): the
# sorted tables come out of the fenced subquery one at a time, so LIMIT 1 stops the reads at the first hit.
PG_HAS_ROWS_SQL = ("SELECT count(*) FROM (SELECT 1 FROM (SELECT c.oid::regclass AS t "  # nosec B608 # constants only
                   + PG_USER_TABLES + " AND c.relkind = 'r' "
                   "ORDER BY greatest(c.reltuples, coalesce(s.n_live_tup, 0)) DESC OFFSET 0) AS u WHERE "
                   + _PG_READ_ONE_ROW + " LIMIT 1) AS any_table")

# The estimates kept by ``\gset opsready_`` (PG_SUMMARY_SQL's column names), then which exact answer follows.
SUMMARY_ROW = "SELECT :'opsready_tables', :'opsready_reltuples', :'opsready_live', :'opsready_size', "


def toc_lines(listing: str) -> List[str]:
    """The lines of a ``pg_restore --list``. pg_restore replaces only '\\n' and '\\r' in the names it prints
    (``sanitize_line``), so a table may be named with a form feed, a vertical tab, U+0085 or U+2028, which
    ``str.splitlines`` takes for line ends: a name could then write an entry of its own into the lists of ids
    (a table's data loaded twice, moved after its triggers)."""
    return listing.split('\n')


def pg_toc_summary(listing: str) -> Dict[str, int]:
    """Tables and TABLE DATA entries in a ``pg_restore --list`` listing (``id; tableoid oid DESC ...``)."""
    tables = data = 0
    for line in toc_lines(listing):
        match = re.match(r'^\d+; \d+ \d+ (TABLE DATA|TABLE) ', line)
        if not match:
            continue
        if match.group(1) == 'TABLE DATA':
            data += 1
        elif not line.split('; ', 1)[1].split(' ', 3)[3].startswith('ATTACH '):
            tables += 1
    return {'tables': tables, 'data_entries': data}


PLAIN_NEEDLES = (b'\nCREATE TABLE ', b'\nCREATE UNLOGGED TABLE ', b'\nCOPY ', b' FROM stdin;\n\\.\n')


def unqualified_warning(database: str, functions: List[str]) -> str:
    """What db_backup says of the functions ``dbprops.UNQUALIFIED_SQL`` found: the restore of this backup will fail
    when it calls them (pg_dump's output runs with an empty search_path, CVE-2018-1058), and what to change."""
    return ('function(s) %s of database %s are called by a CHECK constraint, a default, an index expression or a '
            'materialized view and name objects of the database without their schema: pg_dump\'s output is loaded '
            'with an empty search_path, so restoring this backup will fail where the load calls them. In the source, '
            'give each its search_path (ALTER FUNCTION ... SET search_path = <its schemas>) or schema-qualify the '
            'names in its body, then take a new backup' % (', '.join(functions), database))
