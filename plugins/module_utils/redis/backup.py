# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis backups in the catalog: an RDB snapshot over the replication protocol, checked by redis-check-rdb.

``redis-cli --rdb FILE`` asks the server for a replica's initial sync (``REPLCONF rdb-only``): the server forks
and writes the snapshot of that instant (copy-on-write, so writers never block and never tear it), and the
client stores it. It goes to a 0600 staging file next to the artifact rather than to stdout because
redis-check-rdb needs a file to count the snapshot's keys (the count the restore is held to) and because
redis-cli 7.0 writes the 40-byte EOF marker of a diskless transfer after the RDB when it writes to stdout.
The staging file is then streamed through compression, SHA-256 and optional age encryption like every artifact
(``backup/artifacts.py``), and removed; a leftover of an interrupted run is a ``.partial`` the next run cleans.

``RedisEngine`` implements the backup ``Engine`` interface (``backup``, ``verify``) so ``backup_verify``,
``backup_info``, ``backup_prune`` and ``backup_metrics`` treat Redis artifacts like any other.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    disk_error, open_artifact, stream_file_to_artifact)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import (
    ALL_DATABASES, BackupOptions, Engine)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.redis.client import (
    DEFAULT_PORT, RedisClient, RedisConnection)

CHECK_HINT = 'redis-check-rdb comes with redis-server (Debian redis-server or redis-tools, RPM redis).'


def redis_connection(conn: ConnectionParams) -> RedisConnection:
    """The backup modules' connection options (login_host, login_port, login_user, login_password, ...)."""
    return RedisConnection(host=conn.host or '127.0.0.1', port=conn.port or DEFAULT_PORT,
                           unix_socket=conn.unix_socket, username=conn.user, password=conn.password,
                           connect_timeout=conn.connect_timeout)


def check_rdb(runner: ToolRunner, path: str, report_path: Optional[str] = None) -> Dict[str, Any]:
    """redis-check-rdb on ``path``: {'keys', 'expires', 'already_expired', 'redis_version'}; IntegrityError
    naming ``report_path`` when the file is not a complete, checksummed RDB."""
    tool = runner.which('redis-check-rdb', CHECK_HINT)
    rc, out, err = runner.run([tool, path], check=False, timeout=3600, what='redis-check-rdb')
    text = out + err
    found: Dict[str, Any] = {name: int(m.group(1)) for name, m in
             ((name, re.search(r'\[info\] (\d+) %s' % label, text)) for name, label in
              (('keys', 'keys read'), ('expires', 'expires'), ('already_expired', 'already expired'))) if m}
    version = re.search(r"AUX FIELD redis-ver = '([^']*)'", text)
    if rc != 0 or 'RDB looks OK' not in text or 'keys' not in found:
        error = re.search(r'--- RDB ERROR DETECTED ---\s*(.*?)(?:\n\[info\]|\Z)', text, re.S)
        detail = ' '.join((error.group(1) if error else text).split())[:400]
        raise IntegrityError('redis-check-rdb rejects %s: %s' % (report_path or path, detail or 'exit %d' % rc),
                             path=report_path or path)
    found['redis_version'] = version.group(1) if version else None
    return found


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

    def server_facts(self) -> Dict[str, Any]:
        info = self.client.info('server')
        return {'server_version': info.get('redis_version'), 'run_id': info.get('run_id')}

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        database = self.catalog_database(opts)
        facts = self.ping()
        started = utcnow()
        artifact = self.artifact_path(opts, database, 'full', '.rdb', when=started)
        staging = artifact + '.rdb.partial'
        try:
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            # Without a timeout: the transfer lasts as long as the data; redis-cli fails on a dropped link.
            try:
                self.runner.run(self.client.argv('--rdb', staging), env=self.client.env(), what='redis-cli --rdb')
            except ToolError as exc:
                raise OpsReadyError('The RDB transfer from Redis at %s failed: %s. The login needs the right to '
                                    'run SYNC/REPLCONF (ACL +sync +replconf, or +@admin).'
                                    % (self.server_label(), exc.message), server=self.server_label())
            held = check_rdb(self.runner, staging, report_path='the RDB received from %s' % self.server_label())
            with open(staging, 'rb') as handle:
                stored = stream_file_to_artifact(handle, artifact, opts)
        except OSError as exc:
            raise disk_error(exc, artifact)
        finally:
            try:
                os.unlink(staging)
            except FileNotFoundError:
                pass
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

    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        workdir = tempfile.mkdtemp(prefix='opsready-verify-redis-')
        copy = os.path.join(workdir, 'dump.rdb')
        try:
            with open_artifact(manifest, self.identities) as source, open(copy, 'wb') as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            held = check_rdb(self.runner, copy, report_path=manifest.path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        recorded = (manifest.data.get('details') or {}).get('keys')
        if recorded is not None and held['keys'] != recorded:
            raise IntegrityError('The artifact %s holds %d keys, its snapshot held %d.'
                                 % (manifest.path, held['keys'], recorded), path=manifest.path)
        return {'engine_check': 'redis-check-rdb', 'result': 'ok', 'keys': held['keys'],
                'source_check': 'keys %d == %s recorded at backup' % (held['keys'], recorded)}
