# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB / MySQL restore: the dump, then the binary logs replayed up to ``stop_at``.

1. The target is inspected; a database holding tables is refused unless ``replace`` is set.
2. ``CREATE DATABASE <target>__opsready_restore_<id>``; the dump is streamed into the ``mariadb`` client
   connected to it (a single-database dump carries no ``USE``, so it lands there).
3. The binary logs of the chain are decompressed into ``tmpdir`` and piped through
   ``mariadb-binlog --database=<source> --rewrite-db='<source>-><temporary>'`` (events of other databases
   are skipped, the rest land in the temporary database), starting at the dump's binlog position and
   stopping at ``--stop-datetime``. Binary log timestamps are UTC seconds since the epoch and
   ``mariadb-binlog`` turns ``--stop-datetime`` into one with the client's time zone, so it runs with
   ``TZ=UTC`` and gets ``stop_at`` in UTC, whatever the server's ``time_zone``. Events carry whole
   seconds: everything before the second of ``stop_at`` is replayed, nothing of that second.
4. Swap: one ``RENAME TABLE`` moves the old target's tables into an aside database and the restored
   tables into the target (atomic: all or none); the aside and temporary databases are dropped after.
   Any failure before drops the temporary database, leaving the target as it was.

Views, routines, triggers and events cannot be moved by ``RENAME TABLE``; a restored database holding
them is refused at step 4 with a message saying so (documented gap), the target untouched.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import CHUNK
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import (
    kill_and_reap, open_artifact, pipe_artifact_into)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
    RestoreRequest, Timer, quote_ident, quote_literal, temporary_name)


def _q(name: str) -> str:
    return quote_ident(name, '`')


def schema_exists(engine: Any, name: str) -> bool:
    return bool([r for r in engine.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s'
                                         % quote_literal(name)) if r and r[0]])


def tables_of(engine: Any, name: str, kind: str = 'BASE TABLE') -> List[str]:
    rows = engine.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                        "TABLE_TYPE = %s ORDER BY TABLE_NAME" % (quote_literal(name), quote_literal(kind)))
    return [r[0] for r in rows if r and r[0]]


def other_objects(engine: Any, name: str) -> Dict[str, int]:
    lit = quote_literal(name)
    row = engine.query(
        "SELECT (SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'VIEW'), "
        "(SELECT count(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s), "
        "(SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s), "
        "(SELECT count(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s)" % (lit, lit, lit, lit))[0]
    counts = dict(zip(('views', 'routines', 'triggers', 'events'), (int(v) for v in row)))
    return {k: v for k, v in counts.items() if v}


def _target(request: RestoreRequest) -> str:
    if not request.database:
        raise OpsReadyError('database (the target schema) is required.')
    return request.database


def check_target(engine: Any, request: RestoreRequest) -> Dict[str, Any]:
    target_db = _target(request)
    exists = schema_exists(engine, target_db)
    tables = tables_of(engine, target_db) if exists else []
    if tables and not request.replace:
        raise OpsReadyError('Target database %s on %s exists and is not empty (%d tables): set replace=true to '
                            'swap the restored tables in, or restore to another database name.'
                            % (target_db, engine.conn.where(3306), len(tables)), target=target_db)
    return {'exists': exists, 'tables': tables}


def drop_schema(engine: Any, name: str) -> None:
    engine.query('DROP DATABASE IF EXISTS %s' % _q(name))


def stop_datetime(stop_at: datetime.datetime) -> str:
    """``--stop-datetime`` value in UTC (the tool runs with TZ=UTC)."""
    return stop_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')


def _decompress(manifest: Manifest, directory: str, identities: Optional[List[Any]] = None) -> str:
    name = manifest.position.get('binlog_file') or manifest.id
    path = os.path.join(directory, os.path.basename(name))
    try:
        with open_artifact(manifest, identities) as source, open(path, 'wb') as out:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                out.write(data)
    except OSError as exc:
        raise OpsReadyError('Cannot decompress binary log %s into %s: %s. Point tmpdir at a file system with room.'
                            % (manifest.id, directory, exc.strerror or exc), path=manifest.path)
    return path


def _replay(engine: Any, request: RestoreRequest, full: Manifest, logs: List[Manifest], temp: str) -> Dict[str, Any]:
    source = full.database or ''
    workdir = tempfile.mkdtemp(prefix='opsready-binlog-restore-', dir=request.tmpdir)
    try:
        files = [_decompress(m, workdir, engine.identities) for m in logs]
        argv = [engine.tool('binlog'), '--no-defaults', '--database=%s' % source,
                '--rewrite-db=%s->%s' % (source, temp)]
        start: Optional[int] = None
        if full.position.get('binlog_pos') and logs[0].position.get('binlog_file') == full.position.get('binlog_file'):
            start = int(full.position['binlog_pos'])
            argv.append('--start-position=%d' % start)
        if request.stop_at is not None:
            argv.append('--stop-datetime=%s' % stop_datetime(request.stop_at))
        argv += files
        binlog = engine.runner.popen(argv, env={'TZ': 'UTC'})
        try:
            with engine.defaults_file() as head:
                client = [engine.tool('client')] + head + ['--binary-mode', '--database=%s' % temp]
                loader = engine.runner.popen(client, stdin=binlog.stdout, stdout=subprocess.DEVNULL)
                if binlog.stdout is not None:
                    binlog.stdout.close()  # the loader holds the read end now
                try:
                    engine.runner.finish(loader, client, what='%s (binlog replay)' % engine.flavor)
                except BaseException:
                    kill_and_reap(binlog)
                    raise
            engine.runner.finish(binlog, argv, what='%s-binlog' % engine.flavor)
        except BaseException:
            kill_and_reap(binlog)
            raise
        return {'binlogs': [os.path.basename(f) for f in files],
                'start_position': start}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _swap(engine: Any, target: str, temp: str, tables: List[str], before: Dict[str, Any]) -> Optional[str]:
    aside = None
    created = False
    if not before['exists']:
        engine.query('CREATE DATABASE %s' % _q(target))
        created = True
    try:
        pairs = []
        if before['tables']:
            aside = temporary_name(target, 'old', limit=64)
            engine.query('CREATE DATABASE %s' % _q(aside))
            pairs += ['%s.%s TO %s.%s' % (_q(target), _q(t), _q(aside), _q(t)) for t in before['tables']]
        pairs += ['%s.%s TO %s.%s' % (_q(temp), _q(t), _q(target), _q(t)) for t in tables]
        if pairs:
            engine.query('RENAME TABLE ' + ', '.join(pairs))
    except BaseException:
        if aside:
            drop_schema(engine, aside)
        if created:
            drop_schema(engine, target)
        raise
    return aside


def restore(engine: Any, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    target_db = _target(request)
    full, logs = chain[0], chain[1:]
    if full.kind != 'full':
        raise OpsReadyError('A %s restore starts from a dump (kind=full); %s is a %s.'
                            % (engine.flavor, full.id, full.kind))
    if logs and not full.position.get('binlog_file'):
        raise OpsReadyError('Dump %s records no binary log position, so logs cannot be replayed after it.' % full.id)
    engine.ping()
    before = check_target(engine, request)
    timer.lap('inspect_target')
    temp = temporary_name(target_db, limit=64)
    engine.query('CREATE DATABASE %s' % _q(temp))
    replay: Dict[str, Any] = {'binlogs': [], 'start_position': None}
    try:
        with engine.defaults_file() as head:
            client = [engine.tool('client')] + head + ['--binary-mode', '--database=%s' % temp]
            pipe_artifact_into(engine.runner, full, client, '%s (load dump)' % engine.flavor,
                               identities=engine.identities)
        timer.lap('load_dump')
        if logs:
            replay = _replay(engine, request, full, logs, temp)
            timer.lap('replay')
        others = other_objects(engine, temp)
        if others:
            raise OpsReadyError('The restored copy holds %s, which this version cannot move from the temporary '
                                'database into %s (RENAME TABLE moves tables only). The target was not touched. '
                                'See docs/runbooks/recovery.md, "Gaps".'
                                % (', '.join('%d %s' % (v, k) for k, v in others.items()), target_db))
        tables = tables_of(engine, temp)
        aside = _swap(engine, target_db, temp, tables, before)
    except ToolError as exc:
        drop_schema(engine, temp)
        raise OpsReadyError('Restore of %s into %s failed and was rolled back (temporary database %s dropped; %s is '
                            'as it was): %s' % (full.id, target_db, temp, target_db, exc.message),
                            target=target_db, stderr=exc.stderr)
    except BaseException:
        drop_schema(engine, temp)
        raise
    drop_schema(engine, temp)
    if aside:
        drop_schema(engine, aside)
    timer.lap('swap')
    result: Dict[str, Any] = {
        'target': {'database': target_db, 'server': engine.server_label(), 'host': engine.conn.host,
                   'port': engine.conn.port or 3306, 'tables': len(tables)},
        'binlogs_replayed': replay['binlogs'], 'start_position': replay['start_position'],
        'replaced': bool(before['tables'])}
    if request.stop_at is not None and logs:
        floor = request.stop_at.astimezone(UTC).replace(microsecond=0)
        result['point_reached'] = isoformat(min(floor, max(m.consistent_at for m in chain)))
    return result


def drop(engine: Any, request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    target_db = _target(request)
    exists = schema_exists(engine, target_db)
    if exists and not check_mode:
        drop_schema(engine, target_db)
    return {'changed': exists, 'target': {'database': target_db, 'server': engine.server_label(),
                                          'removed': exists}}
