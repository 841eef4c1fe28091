# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis backups in the catalog: an RDB snapshot over the replication protocol, checked by redis-check-rdb.

``redis-cli --rdb FILE`` asks the server for a replica's initial sync (``REPLCONF rdb-only``): the server forks
and writes the snapshot of that instant (copy-on-write, so writers never block and never tear it), and the
client stores it. It goes to a 0600 staging file next to the artifact rather than to stdout because
redis-cli 7.0 writes the 40-byte EOF marker of a diskless transfer after the RDB when it writes to stdout (the
file's final length says where the RDB ends). While redis-cli writes the staging file, its bytes are streamed
through compression, SHA-256 and optional age encryption into the artifact like every artifact's
(``common/streaming.ArtifactWriter``) and, in the same pass, into redis-check-rdb (``StreamCheck``), which checks
the RDB's own checksum and counts the snapshot's keys (the count the restore is held to); the staging file is
removed at the end; a leftover of an interrupted run is a ``.partial`` the next run cleans.

``engines/redis/verify.py`` (``RedisEngine``, the backup ``Engine`` interface: ``backup``, ``verify``) uses these
helpers, so ``backup_verify``, ``backup_info``, ``backup_prune`` and ``backup_metrics``
treat Redis artifacts like any other.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import queue
import re
import subprocess  # nosec B404 # argv lists only
import tempfile
import threading
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
    return parse_check(rc, out + err, report_path or path)


def parse_check(rc: int, text: str, report_path: str) -> Dict[str, Any]:
    """What redis-check-rdb printed: the counts, or IntegrityError naming ``report_path``."""
    found: Dict[str, Any] = {}
    for name, label in (('keys', 'keys read'), ('expires', 'expires'), ('already_expired', 'already expired')):
        match = re.search(r'\[info\] (\d+) %s' % label, text)
        if match:
            found[name] = int(match.group(1))
    version = re.search(r"AUX FIELD redis-ver = '([^']*)'", text)
    if rc != 0 or 'RDB looks OK' not in text or 'keys' not in found:
        error = re.search(r'--- RDB ERROR DETECTED ---\s*(.*?)(?:\n\[info\]|\Z)', text, re.S)
        detail = ' '.join((error.group(1) if error else text).split())[:400]
        raise IntegrityError('redis-check-rdb rejects %s: %s' % (report_path, detail or 'exit %d' % rc),
                             path=report_path)
    found['redis_version'] = version.group(1) if version else None
    return found


class StreamCheck:
    """redis-check-rdb reading the RDB from a pipe while the backup streams it (``feed``), so the key count and
    the RDB's own checksum come with the transfer instead of a second read of the staged file after it.

    It reads its input once, in order (``/dev/stdin``). A thread writes to its pipe (at most ``QUEUED`` blocks
    wait), so the backup's loop never waits for the check while it compresses; the check's output goes to a
    temporary file, so a chatty check never blocks on a full pipe. A check that stops early (a corrupt RDB)
    closes its end: the remaining bytes are dropped and ``result()`` raises the IntegrityError from what it
    printed."""

    QUEUED = 8

    def __init__(self, runner: ToolRunner, report_path: str) -> None:
        self.runner = runner
        self.report_path = report_path
        self.argv = [runner.which('redis-check-rdb', CHECK_HINT), '/dev/stdin']
        self._out = tempfile.TemporaryFile()
        try:
            self.proc = runner.popen(self.argv, stdin=subprocess.PIPE, stdout=self._out.fileno())
        except BaseException:
            self._out.close()
            raise
        self._queue: 'queue.Queue[Optional[bytes]]' = queue.Queue(maxsize=self.QUEUED)
        self._thread = threading.Thread(target=self._pump, name='opsready-redis-check', daemon=True)
        self._thread.start()
        self._closed = False

    def _pump(self) -> None:
        stdin = self.proc.stdin
        open_ = True
        while True:
            data = self._queue.get()
            if data is None:
                break
            if open_:
                try:
                    stdin.write(data)  # type: ignore[union-attr]
                except (BrokenPipeError, ValueError):
                    open_ = False  # it stopped reading (or was killed): result() says why
        try:
            stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            pass

    def feed(self, data: bytes) -> None:
        if data and not self._closed:
            self._queue.put(bytes(data))

    def _close_input(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    def result(self, timeout: float = 3600) -> Dict[str, Any]:
        """Close the input, wait, parse; IntegrityError when the RDB is not complete and checksummed."""
        self._close_input()
        self._thread.join()
        rc = self.proc.wait(timeout=timeout)
        err_file = self.proc.stderr_file  # type: ignore[attr-defined]
        text = []
        for handle in (self._out, err_file):
            handle.seek(0)
            text.append(self.runner.redact(handle.read().decode('utf-8', 'replace')))
            handle.close()
        return parse_check(rc, ''.join(text), self.report_path)

    def abort(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self._close_input()  # the pump drops what is queued (the pipe is broken) and ends
        self._thread.join()
        self.proc.wait()
        self._out.close()
        self.proc.stderr_file.close()  # type: ignore[attr-defined]
