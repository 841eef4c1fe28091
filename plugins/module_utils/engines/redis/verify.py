# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Redis backup engine: RDB snapshots over the replication protocol into the catalog (see engines/redis/backup.py).

Redis is a catalog engine only (``registry.CATALOG_ENGINES``, ``get_engine('redis')``): ``redis_backup`` takes
its backups, ``backup_verify`` verifies them; db_backup, db_restore and db_maintenance do not serve it.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404 # argv lists only
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import disk_error, open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest, local_origin
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import scratch
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK, ArtifactWriter
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import (
    ALL_DATABASES, BackupOptions, Engine, kill_and_reap)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.backup import (
    EOF_MARK, StreamCheck, check_rdb, redis_connection)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import DEFAULT_PORT, RedisClient


def _remove_own(path: str, fd: int) -> None:
    """Close ``fd`` and unlink ``path`` only while it still names that file (not what someone put there since)."""
    try:
        mine = os.fstat(fd)
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            os.unlink(path)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


class RedisEngine(Engine):
    name = 'redis'
    kinds = ('full',)
    default_port = DEFAULT_PORT
    kind_help = {'full': 'an RDB snapshot of every database, over the replication protocol'}

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        super().__init__(conn, runner)
        self.client = RedisClient(redis_connection(conn), self.runner)

    def check_options(self, opts: BackupOptions) -> None:
        # No database is needed: one RDB holds every Redis database (``database`` only names the set).
        self.check_kind(opts.kind)
        if opts.recipients:
            encryption.check_available()
            for recipient in opts.recipients:
                encryption.parse_recipient(recipient)

    def catalog_database(self, opts: BackupOptions) -> str:
        return opts.database or ALL_DATABASES

    def server_label(self) -> str:
        return self.client.conn.label()

    def origin(self) -> str:
        # run_id changes on every restart: the address, a loopback host or socket qualified by this machine's name
        conn = self.client.conn
        if conn.unix_socket:
            return local_origin(None, conn.unix_socket)
        return local_origin(conn.host, str(conn.port))

    def server_facts(self) -> Dict[str, Any]:
        info = self.client.info('server')
        return {'server_version': info.get('redis_version'), 'run_id': info.get('run_id')}

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        database = self.catalog_database(opts)
        facts = self.ping()
        started = utcnow()
        artifact = self.artifact_path(opts, database, 'full', '.rdb', when=started)
        staging = artifact + '.rdb.partial'
        # redis-cli is given this descriptor (/dev/fd/N), never the name: whoever can write dest could otherwise swap
        # the name for a symlink between its creation and redis-cli's open, and redis-cli (root) would truncate and
        # overwrite the link's target. Created exclusively, never through a link.
        try:
            fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise disk_error(exc, artifact)
        try:
            stored, held = self._transfer(opts, fd, staging, artifact)
        except OSError as exc:
            raise disk_error(exc, artifact)
        finally:
            _remove_own(staging, fd)
        data = self.base_manifest(opts, database, 'full', started, stored)
        data.update(
            # The server forks for the snapshot after the SYNC arrives, so ``started`` is never later than
            # the instant the RDB holds: RPO is measured from it (conservative).
            consistent_at=isoformat(started),
            tool={'name': 'redis-cli --rdb'},
            server_version=facts.get('server_version'),
            format='rdb',
            details={'keys': held['keys'], 'expires': held.get('expires', 0),
                     'already_expired': held.get('already_expired', 0), 'rdb_redis_version': held['redis_version'],
                     'method': 'replication protocol snapshot (redis-cli --rdb), keys counted by redis-check-rdb'},
        )
        return [self.commit_manifest(artifact, data)]

    def _transfer(self, opts: BackupOptions, fd: int, staging: str,
                  artifact: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """redis-cli --rdb into ``staging`` (through its open descriptor ``fd``) while the bytes it wrote are
        compressed, hashed (and encrypted) into ``artifact`` and fed to redis-check-rdb: the transfer, the
        compression and the check overlap, as in ``redis-cli --rdb - | zstd``. Returns (what the artifact writer
        stored, what redis-check-rdb counted).

        redis-cli writes a diskless transfer's 40-byte EOF marker after the RDB and then truncates the file to
        the RDB's length: the last 40 bytes read are held back until it exited and the file's final size says
        how much of them is RDB. The artifact and the check get exactly the staged file's bytes."""
        argv = self.client.argv('--rdb', '/dev/fd/%d' % fd)
        check = StreamCheck(self.runner, 'the RDB received from %s' % self.server_label())
        try:
            writer = ArtifactWriter(artifact, compression=opts.compression, level=opts.level, threads=opts.threads,
                                    recipients=opts.recipients or None)
        except BaseException:
            check.abort()
            raise
        try:
            proc = self.runner.popen(argv, env=self.client.env(), stdout=subprocess.DEVNULL, pass_fds=(fd,))
        except BaseException:
            check.abort()
            writer.abort()
            raise
        committed = False
        try:
            pending = b''
            written = 0
            with open(os.dup(fd), 'rb') as follow:   # the staged file itself, whatever its name now leads to
                while True:
                    done = proc.poll() is not None
                    data = follow.read(CHUNK)
                    if data:
                        pending += data
                        if len(pending) > EOF_MARK:
                            writer.write(pending[:-EOF_MARK])
                            check.feed(pending[:-EOF_MARK])
                            written += len(pending) - EOF_MARK
                            pending = pending[-EOF_MARK:]
                        continue
                    if done:
                        break
                    time.sleep(0.01)
            try:
                self.runner.finish(proc, argv, what='redis-cli --rdb')
            except ToolError as exc:
                raise OpsReadyError('The RDB transfer from Redis at %s failed: %s. The login needs the right to '
                                    'run SYNC/REPLCONF (ACL +sync +replconf, or +@admin).'
                                    % (self.server_label(), exc.message), server=self.server_label())
            final = os.fstat(fd).st_size
            rest = final - written
            if not 0 <= rest <= len(pending):
                raise IntegrityError('redis-cli left %d bytes in %s, %d were read: the transfer was not the RDB.'
                                     % (final, staging, written + len(pending)), path=staging)
            writer.write(pending[:rest])
            check.feed(pending[:rest])
            stored = writer.commit()
            committed = True
            held = check.result()
            return stored, held
        except BaseException:
            kill_and_reap(proc)
            if committed:
                os.unlink(artifact)  # committed without a manifest: never left looking like a backup
                check.abort()
            else:
                writer.abort()
                check.abort()
            raise

    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        left: Dict[str, Any] = {}
        # The RDB decrypted and decompressed: plaintext, in a private scratch directory (common/scratch.py).
        with scratch('redis-verify', left, module='backup_verify') as workdir:
            copy = workdir.file('dump.rdb')
            with open_artifact(manifest, self.identities) as source, os.fdopen(workdir.create('dump.rdb'), 'wb') as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            held = check_rdb(self.runner, copy, report_path=manifest.path)
        recorded = (manifest.data.get('details') or {}).get('keys')
        if recorded is not None and held['keys'] != recorded:
            raise IntegrityError('The artifact %s holds %d keys, its snapshot held %d.'
                                 % (manifest.path, held['keys'], recorded), path=manifest.path)
        return dict({'engine_check': 'redis-check-rdb', 'result': 'ok', 'keys': held['keys'],
                     'source_check': 'keys %d == %s recorded at backup' % (held['keys'], recorded)}, **left)
