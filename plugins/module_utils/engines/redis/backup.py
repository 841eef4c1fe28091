# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis backups in the catalog: an RDB snapshot over the replication protocol, checked by redis-check-rdb.

``redis-cli --rdb FILE`` asks the server for a replica's initial sync (``REPLCONF rdb-only``): the server forks
and writes the snapshot of that instant (copy-on-write, so writers never block and never tear it), and the
client stores it. It goes to a 0600 staging file next to the artifact rather than to stdout because
redis-check-rdb needs a file to count the snapshot's keys (the count the restore is held to) and because
redis-cli 7.0 writes the 40-byte EOF marker of a diskless transfer after the RDB when it writes to stdout.
While redis-cli writes the staging file, its bytes are streamed through compression, SHA-256 and optional age
encryption into the artifact like every artifact's (``common/streaming.ArtifactWriter``); the staging file is
removed after redis-check-rdb counted it; a leftover of an interrupted run is a ``.partial`` the next run cleans.

``engines/redis/verify.py`` (``RedisEngine``, the backup ``Engine`` interface: ``backup``, ``verify``) uses these
helpers, so ``backup_verify``, ``backup_info``, ``backup_prune`` and ``backup_metrics``
treat Redis artifacts like any other.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    DEFAULT_PORT, RedisConnection)

# A diskless transfer ends with a 40-byte random marker that is not part of the RDB.
EOF_MARK = 40
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
    found: Dict[str, Any] = {}
    for name, label in (('keys', 'keys read'), ('expires', 'expires'), ('already_expired', 'already expired')):
        match = re.search(r'\[info\] (\d+) %s' % label, text)
        if match:
            found[name] = int(match.group(1))
    version = re.search(r"AUX FIELD redis-ver = '([^']*)'", text)
    if rc != 0 or 'RDB looks OK' not in text or 'keys' not in found:
        error = re.search(r'--- RDB ERROR DETECTED ---\s*(.*?)(?:\n\[info\]|\Z)', text, re.S)
        detail = ' '.join((error.group(1) if error else text).split())[:400]
        raise IntegrityError('redis-check-rdb rejects %s: %s' % (report_path or path, detail or 'exit %d' % rc),
                             path=report_path or path)
    found['redis_version'] = version.group(1) if version else None
    return found
