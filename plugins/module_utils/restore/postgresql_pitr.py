# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL point-in-time recovery: base backup + archived WAL into a scratch cluster.

1. ``datadir`` must be absent or empty (or ``replace`` with no server running on it).
2. The base backup (a ``pg_basebackup -Ft -X fetch`` tar stream) is extracted into
   ``<datadir>.opsready-restore-<id>``; the WAL segments of the chain are decompressed into
   ``<datadir>.opsready-wal-<id>`` for ``restore_command = 'cp <dir>/%f "%p"'``.
3. ``postgresql.auto.conf`` gets ``restore_command``, ``recovery_target_time = stop_at`` (when given),
   ``recovery_target_action = promote``, and ``archive_mode = off`` (a scratch copy must never archive
   into the production WAL archive); ``recovery.signal`` is created. When the backup holds no
   ``postgresql.conf``/``pg_hba.conf`` (Debian keeps them in /etc), minimal ones are written
   (local socket only, ``peer``).
4. A temporary server (``pg_ctl``, as the data directory's owner: ``postgres`` when run as root) is
   started on ``port`` (a free one when unset) with its socket in ``<datadir>.run``; it replays WAL up
   to the target and promotes itself. ``pg_last_xact_replay_timestamp()`` is the point reached.
5. It is stopped, the staging directory renamed to ``datadir`` (the old one, with ``replace``, removed),
   and started again when ``server_state=started``. Any failure before the rename stops the temporary
   server and removes the staging directories: ``datadir`` stays as it was.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import tarfile
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import open_artifact
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, parse_time
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import PostgresEngine
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest, Timer
from ansible_collections.opsready.operations.plugins.module_utils.files.tarsafe import extract_all

START_TIMEOUT = 600


def _owner() -> Tuple[Optional[str], int, int]:
    """The OS account the scratch server runs as (postgres when we are root)."""
    if os.geteuid() != 0:
        return None, os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam('postgres')
    except KeyError:
        raise OpsReadyError('Running as root, but there is no "postgres" OS account to run the recovered server '
                            'as (PostgreSQL refuses to run as root). Install the server package or run as the '
                            'PostgreSQL owner.')
    return 'postgres', pw.pw_uid, pw.pw_gid


def _server_running(datadir: str) -> Optional[int]:
    try:
        with open(os.path.join(datadir, 'postmaster.pid')) as handle:
            pid = int(handle.readline().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _datadir(request: RestoreRequest) -> str:
    if not request.datadir:
        raise OpsReadyError('datadir is required for a physical PostgreSQL restore.')
    return os.path.abspath(request.datadir)


def check_target(request: RestoreRequest) -> Dict[str, Any]:
    datadir = _datadir(request)
    parent = os.path.dirname(datadir)
    if not os.path.isdir(parent):
        raise OpsReadyError('The parent directory %s of datadir does not exist: create it first.' % parent)
    owner, uid, gid = _owner()
    if owner:
        _check_reachable(parent, owner, uid, gid)
    exists = os.path.exists(datadir)
    if exists:
        if not os.path.isdir(datadir):
            raise OpsReadyError('datadir %s exists and is not a directory.' % datadir)
        pid = _server_running(datadir)
        if pid:
            raise OpsReadyError('A PostgreSQL server (pid %d) runs on %s: stop it (or use state=absent) before '
                                'restoring into it.' % (pid, datadir), datadir=datadir)
        if os.listdir(datadir) and not request.replace:
            raise OpsReadyError('datadir %s exists and is not empty: set replace=true to replace it, or choose an '
                                'empty or new directory.' % datadir, datadir=datadir)
    return {'datadir': datadir, 'exists': exists}


def _check_reachable(directory: str, owner: str, uid: int, gid: int) -> None:
    """The server runs as ``owner``: every directory above datadir must let it through."""
    path = directory
    while True:
        st = os.stat(path)
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            raise OpsReadyError('The recovered server runs as %s, which cannot enter %s (mode %o): choose a datadir '
                                'under a directory it can reach, or chmod o+x %s.'
                                % (owner, path, st.st_mode & 0o7777, path), datadir=directory)
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _chown_tree(top: str, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    os.chown(top, uid, gid)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _extract_base(manifest: Manifest, staging: str, identities: Optional[List[Any]] = None) -> None:
    os.mkdir(staging, 0o700)
    try:
        with open_artifact(manifest, identities) as source:
            with tarfile.open(fileobj=source, mode='r|') as tar:
                extract_all(tar, staging, archive=manifest.path)
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError('Base backup %s is not a complete tar archive: %s' % (manifest.id, exc),
                             path=manifest.path)
    if not os.path.exists(os.path.join(staging, 'PG_VERSION')):
        raise IntegrityError('Base backup %s holds no PG_VERSION: it is not a data directory.' % manifest.id,
                             path=manifest.path)


def _stage_wal(logs: List[Manifest], waldir: str, identities: Optional[List[Any]] = None) -> List[str]:
    os.mkdir(waldir, 0o700)
    names = []
    for manifest in logs:
        name = manifest.position.get('wal_file') or manifest.data.get('wal_file')
        if not name:
            raise OpsReadyError('WAL artifact %s names no WAL segment (position.wal_file) in its manifest.'
                                % manifest.id)
        path = os.path.join(waldir, os.path.basename(name))
        with open_artifact(manifest, identities) as source, open(path, 'wb') as out:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                out.write(data)
        names.append(os.path.basename(name))
    return names


def _configure(staging: str, waldir: str, request: RestoreRequest, owner: Optional[str]) -> None:
    conf = os.path.join(staging, 'postgresql.conf')
    if not os.path.exists(conf):
        with open(conf, 'w') as handle:
            handle.write('# written by opsready db_restore: the backup held no postgresql.conf\n')
    hba = os.path.join(staging, 'pg_hba.conf')
    if not os.path.exists(hba):
        with open(hba, 'w') as handle:
            handle.write('# written by opsready db_restore: the backup held no pg_hba.conf\n'
                         'local all all peer\n')
    lines = ['', '# --- opsready db_restore: point-in-time recovery ---',
             "restore_command = %s" % _conf_quote('cp %s/%%f "%%p"' % shlex.quote(waldir)),
             "recovery_target_action = 'promote'",
             "archive_mode = 'off'",
             "hba_file = %s" % _conf_quote(hba),
             "ident_file = %s" % _conf_quote(os.path.join(staging, 'pg_ident.conf'))]
    if not os.path.exists(os.path.join(staging, 'pg_ident.conf')):
        open(os.path.join(staging, 'pg_ident.conf'), 'w').close()
    if request.stop_at is not None:
        lines.append("recovery_target_time = %s" % _conf_quote(request.stop_at.isoformat()))
    with open(os.path.join(staging, 'postgresql.auto.conf'), 'a') as handle:
        handle.write('\n'.join(lines) + '\n')
    open(os.path.join(staging, 'recovery.signal'), 'w').close()
    for stale in ('postmaster.pid', 'postmaster.opts', 'standby.signal'):
        try:
            os.unlink(os.path.join(staging, stale))
        except FileNotFoundError:
            pass


def _conf_quote(value: str) -> str:
    return "'" + value.replace('\\', '\\\\').replace("'", "''") + "'"


class ScratchServer:
    """pg_ctl for the recovered cluster, run as its owner."""

    def __init__(self, engine: PostgresEngine, datadir: str, rundir: str, port: int, owner: Optional[str]) -> None:
        self.engine = engine
        self.datadir = datadir
        self.rundir = rundir
        self.port = port
        self.owner = owner
        self.log = os.path.join(rundir, 'postgresql.log')

    def _as_owner(self, argv: List[str]) -> List[str]:
        if self.owner:
            return [shutil.which('runuser') or '/usr/sbin/runuser', '-u', self.owner, '--'] + argv
        return argv

    def pg_ctl(self, *args: str, timeout: int = START_TIMEOUT) -> str:
        argv = self._as_owner([self.engine.tool('pg_ctl'), '-D', self.datadir] + list(args))
        _rc, out, _err = self.engine.runner.run(argv, timeout=timeout + 30, cwd=self.rundir,
                                                what='pg_ctl %s' % args[-1])
        return out

    def start(self) -> None:
        options = "-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s" % (
            self.port, shlex.quote(self.rundir))
        try:
            self.pg_ctl('-w', '-t', str(START_TIMEOUT), '-l', self.log, '-o', options, 'start')
        except ToolError as exc:
            raise OpsReadyError('The recovered server did not start: %s. Server log (%s): %s'
                                % (exc.message, self.log, self.log_tail()), log=self.log)

    def stop(self) -> None:
        if _server_running(self.datadir):
            self.pg_ctl('-w', '-t', '120', '-m', 'fast', 'stop', timeout=120)

    def psql(self, sql: str) -> str:
        argv = self._as_owner([self.engine.tool('psql'), '-X', '-A', '-t', '-q', '-h', self.rundir, '-p',
                               str(self.port), '-d', 'postgres', '-c', sql])
        env = {'PGUSER': self.owner or pwd.getpwuid(os.getuid()).pw_name}
        _rc, out, _err = self.engine.runner.run(argv, env=env, timeout=60, what='psql (recovered server)')
        return out.strip()

    def wait_promoted(self, timeout: int = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not _server_running(self.datadir):
                raise OpsReadyError('The recovered server stopped during recovery: %s' % self.log_tail(),
                                    log=self.log)
            try:
                if self.psql('SELECT pg_is_in_recovery()') == 'f':
                    return
            except ToolError:
                pass
            if time.monotonic() > deadline:
                raise OpsReadyError('Recovery did not finish within %ds. Server log: %s' % (timeout, self.log_tail()))
            time.sleep(0.2)

    def log_tail(self, lines: int = 8) -> str:
        try:
            with open(self.log, 'rb') as handle:
                text = handle.read()[-8192:].decode('utf-8', 'replace')
        except OSError:
            return '(no log)'
        return ' | '.join(text.strip().splitlines()[-lines:])


def restore(engine: PostgresEngine, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    base, logs = chain[0], chain[1:]
    before = check_target(request)
    datadir = before['datadir']
    owner, uid, gid = _owner()
    token = uuid.uuid4().hex[:8]
    staging = '%s.opsready-restore-%s' % (datadir, token)
    waldir = '%s.opsready-wal-%s' % (datadir, token)
    rundir = datadir + '.run'
    port = request.port or _free_port()
    server = ScratchServer(engine, staging, rundir, port, owner)
    try:
        _extract_base(base, staging, engine.identities)
        timer.lap('extract_base')
        wal = _stage_wal(logs, waldir, engine.identities)
        timer.lap('stage_wal')
        _configure(staging, waldir, request, owner)
        os.makedirs(rundir, mode=0o700, exist_ok=True)
        for path in (staging, waldir, rundir):
            os.chmod(path, 0o700)
            _chown_tree(path, uid, gid)
        server.start()
        server.wait_promoted()
        replayed = server.psql("SELECT coalesce(pg_last_xact_replay_timestamp()::text, '')")
        timer.lap('recovery')
        server.stop()
    except BaseException as exc:
        try:
            server.stop()
        except Exception:
            pass
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(waldir, ignore_errors=True)
        if isinstance(exc, OpsReadyError) and not isinstance(exc, IntegrityError):
            raise OpsReadyError('Point-in-time recovery into %s failed and was cleaned up (%s untouched): %s'
                                % (datadir, datadir, exc.message), datadir=datadir)
        raise
    shutil.rmtree(waldir, ignore_errors=True)
    replaced = False
    if before['exists']:
        aside = '%s.opsready-old-%s' % (datadir, token)
        os.rename(datadir, aside)
        os.rename(staging, datadir)
        shutil.rmtree(aside, ignore_errors=True)
        replaced = True
    else:
        os.rename(staging, datadir)
    # Settings that pointed at the staging directory now point at datadir.
    auto = os.path.join(datadir, 'postgresql.auto.conf')
    with open(auto) as handle:
        text = handle.read()
    with open(auto, 'w') as handle:
        handle.write(text.replace(staging, datadir))
    server.datadir = datadir
    timer.lap('swap')
    pid = None
    if request.server_state == 'started':
        server.start()
        pid = _server_running(datadir)
        timer.lap('start')
    point = isoformat(parse_time(replayed, 'pg_last_xact_replay_timestamp')) if replayed else None
    result: Dict[str, Any] = {
        'target': {'datadir': datadir, 'port': port, 'host': '127.0.0.1', 'socket_dir': rundir, 'log': server.log,
                   'pid': pid, 'state': request.server_state, 'os_user': owner},
        'wal_segments': wal, 'replaced': replaced}
    if point:
        result['point_reached'] = point
        result['last_transaction_replayed'] = point
    return result


def drop(request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    """state=absent: stop the scratch server of ``datadir`` and delete it (DR drill clean-up)."""
    datadir = _datadir(request)
    rundir = datadir + '.run'
    exists = os.path.exists(datadir) or os.path.exists(rundir)
    if exists and not check_mode:
        from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
        owner, _uid, _gid = _owner()
        server = ScratchServer(PostgresEngine(ConnectionParams()), datadir, rundir, 0, owner)
        if os.path.isdir(datadir):
            server.stop()
        shutil.rmtree(datadir, ignore_errors=True)
        shutil.rmtree(rundir, ignore_errors=True)
    return {'changed': exists, 'target': {'datadir': datadir, 'removed': exists}}
