# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Database maintenance: the plan (what is due and why), the run, and the result.

Tasks always run in this order, each planned against the state left by the previous one:

1. ``cleanup``: delete rows older than N days from named tables, in batches (one short transaction
   per batch, a lock timeout on each), with a cut-off computed once by the server at the start.
2. ``vacuum``: PostgreSQL ``VACUUM (ANALYZE)`` where dead tuples exceed ``vacuum_threshold`` percent;
   SQLite ``VACUUM`` where free pages exceed it.
3. ``analyze``: statistics where they are stale (PostgreSQL ``ANALYZE``, MariaDB ``ANALYZE TABLE``,
   SQLite ``ANALYZE``, SQL Server ``UPDATE STATISTICS ... WITH FULLSCAN``).
4. ``reindex``: PostgreSQL ``REINDEX INDEX CONCURRENTLY`` above ``bloat_threshold``; SQL Server
   ``ALTER INDEX ... REORGANIZE``/``REBUILD`` by fragmentation.
5. ``optimize``: MariaDB/MySQL ``OPTIMIZE TABLE`` above ``fragmentation_threshold``; SQLite
   ``PRAGMA optimize``.

A backend (one per engine) lists candidates with the measurement that makes each one due or not; the
run executes the due ones (or only lists them in check mode) and measures again afterwards.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import SessionLimits
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.identifiers import (
    TableRef, check_ident)

TASK_ORDER = ('cleanup', 'vacuum', 'analyze', 'reindex', 'optimize')
COLUMN_FORMATS = ('timestamp', 'epoch', 'epoch_ms')


@dataclass
class CleanupSpec:
    table: TableRef
    column: str
    older_than_days: int
    column_format: str = 'timestamp'
    batch_size: int = 1000
    max_batches: int = 0          # 0: until nothing older than the cut-off is left
    pause: float = 0.0            # seconds between batches (let replicas and other writers breathe)

    @classmethod
    def from_dict(cls, item: Dict[str, Any], default_schema: Optional[str] = None) -> 'CleanupSpec':
        if not isinstance(item, dict):
            raise OpsReadyError('Each cleanup entry must be a dictionary with table, column and older_than_days.')
        for key in ('table', 'column', 'older_than_days'):
            if item.get(key) in (None, ''):
                raise OpsReadyError('cleanup entry %r has no %s: every entry needs table, column and '
                                    'older_than_days.' % (item, key))
        days = int(item['older_than_days'])
        if days < 1:
            raise OpsReadyError('cleanup older_than_days must be 1 or more (got %d for table %s): 0 would '
                                'delete everything up to now.' % (days, item['table']))
        fmt = item.get('column_format') or 'timestamp'
        if fmt not in COLUMN_FORMATS:
            raise OpsReadyError('cleanup column_format must be one of %s, not %r.' % (', '.join(COLUMN_FORMATS), fmt))
        batch = int(1000 if item.get('batch_size') is None else item['batch_size'])
        if batch < 1 or batch > 100000:
            raise OpsReadyError('cleanup batch_size must be between 1 and 100000 (got %d).' % batch)
        max_batches = int(0 if item.get('max_batches') is None else item['max_batches'])
        pause = float(0.0 if item.get('pause') is None else item['pause'])
        if max_batches < 0 or pause < 0:
            raise OpsReadyError('cleanup max_batches and pause must be 0 or more.')
        return cls(TableRef.parse(item['table'], default_schema), check_ident(item['column'], 'column name'),
                   days, fmt, batch, max_batches, pause)


@dataclass
class MaintenanceOptions:
    tasks: Sequence[str] = ('analyze',)
    tables: Sequence[str] = ()
    exclude_tables: Sequence[str] = ()
    force: bool = False
    vacuum_threshold: float = 10.0        # percent dead tuples (PostgreSQL) / free pages (SQLite)
    analyze_threshold: float = 0.0        # percent of rows modified since the last analyze
    bloat_threshold: float = 30.0         # percent (PostgreSQL indexes)
    bloat_method: str = 'auto'            # auto | pgstattuple | estimate
    min_size_mb: float = 8.0              # smaller indexes/tables are never rebuilt
    fragmentation_threshold: float = 20.0  # percent (MariaDB OPTIMIZE)
    reorganize_threshold: float = 5.0     # percent (SQL Server)
    rebuild_threshold: float = 30.0       # percent (SQL Server)
    online_rebuild: bool = False          # SQL Server REBUILD WITH (ONLINE = ON)
    lock_timeout: int = 10                # seconds to wait for a lock before giving up on an object
    statement_timeout: int = 0            # seconds per statement, 0: no limit
    cleanup: List[CleanupSpec] = field(default_factory=list)

    def limits(self) -> SessionLimits:
        """The session limits every statement of this run gets (the engine's client sets them)."""
        return SessionLimits(lock_timeout=self.lock_timeout, statement_timeout=self.statement_timeout)


@dataclass
class Candidate:
    """One object a task looked at: due (with the statement to run) or not (with the reason)."""

    task: str
    object: str
    due: bool
    reason: str
    statement: Optional[str] = None
    before: Dict[str, Any] = field(default_factory=dict)
    key: Any = None                      # backend-private handle (table, index name, ...)


class Backend:
    """Engine-specific listing, measuring and executing; see postgresql.py, mysql.py, sqlite.py, sqlserver.py."""

    name = 'base'
    dialect = 'base'
    supported: Tuple[str, ...] = ()
    default_schema: Optional[str] = None

    def __init__(self, database: str, opts: MaintenanceOptions) -> None:
        self.database = database
        self.opts = opts

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> Dict[str, Any]:
        """Connect and return {'server_version': ...}; raise OpsReadyError naming the endpoint on failure."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- catalog -----------------------------------------------------------------------------------
    def list_tables(self) -> List[TableRef]:
        raise NotImplementedError

    # -- tasks: plan_<task>(tables) -> candidates; execute(candidate) -> metrics after -------------
    def plan(self, task: str, tables: List[TableRef]) -> List[Candidate]:
        return getattr(self, 'plan_' + task)(tables)

    def execute(self, cand: Candidate) -> Dict[str, Any]:
        raise NotImplementedError

    # -- cleanup -----------------------------------------------------------------------------------
    def check_cleanup(self, spec: CleanupSpec) -> None:
        """Raise when the column does not exist (before anything is deleted)."""
        raise NotImplementedError

    def cleanup_cutoff(self, spec: CleanupSpec) -> Any:
        raise NotImplementedError

    def cleanup_count(self, spec: CleanupSpec, cutoff: Any) -> int:
        raise NotImplementedError

    def cleanup_batch(self, spec: CleanupSpec, cutoff: Any) -> int:
        raise NotImplementedError


def resolve_tables(backend: Backend, opts: MaintenanceOptions) -> List[TableRef]:
    """The tables the non-cleanup tasks work on: all user tables, or ``tables``, minus ``exclude_tables``."""
    existing = backend.list_tables()
    by_label = {t.label: t for t in existing}
    if opts.tables:
        wanted = [TableRef.parse(t, backend.default_schema) for t in opts.tables]
        missing = [t.label for t in wanted if t.label not in by_label]
        if missing:
            raise OpsReadyError('Table(s) %s not found in database %s: check the names in tables (existing: %s).'
                                % (', '.join(missing), backend.database,
                                   ', '.join(sorted(by_label)[:20]) or 'none'), missing=missing)
        selected = wanted
    else:
        selected = list(existing)
    excluded = {TableRef.parse(t, backend.default_schema).label for t in opts.exclude_tables}
    return [t for t in selected if t.label not in excluded]


def _run_cleanup(backend: Backend, spec: CleanupSpec, check_mode: bool) -> Dict[str, Any]:
    cutoff = backend.cleanup_cutoff(spec)
    entry: Dict[str, Any] = {'table': spec.table.label, 'column': spec.column, 'older_than_days': spec.older_than_days,
                             'cutoff': str(cutoff), 'batch_size': spec.batch_size}
    if check_mode:
        entry.update(rows_removed=0, rows_to_remove=backend.cleanup_count(spec, cutoff), batches=0)
        return entry
    removed = 0
    batches = 0
    started = time.monotonic()
    try:
        while True:
            count = backend.cleanup_batch(spec, cutoff)
            batches += 1
            removed += count
            if count < spec.batch_size:
                break
            if spec.max_batches and batches >= spec.max_batches:
                entry['stopped'] = 'max_batches=%d reached; the rest is left for the next run' % spec.max_batches
                break
            if spec.pause:
                time.sleep(spec.pause)
    except OpsReadyError as exc:
        entry.update(rows_removed=removed, batches=batches, error=exc.message)
        raise _Partial(entry, exc)
    entry.update(rows_removed=removed, batches=batches, duration_seconds=round(time.monotonic() - started, 3))
    if entry.get('stopped'):
        entry['rows_left'] = backend.cleanup_count(spec, cutoff)
    return entry


class _Partial(Exception):
    def __init__(self, entry: Dict[str, Any], exc: OpsReadyError) -> None:
        super().__init__(exc.message)
        self.entry = entry
        self.exc = exc


def check_tasks(backend: Backend, tasks: Sequence[str]) -> List[str]:
    unknown = [t for t in tasks if t not in TASK_ORDER]
    if unknown:
        raise OpsReadyError('Unknown task(s) %s: use %s.' % (', '.join(unknown), ', '.join(TASK_ORDER)))
    unsupported = [t for t in tasks if t not in backend.supported]
    if unsupported:
        raise OpsReadyError('Task(s) %s do not apply to engine %s, which supports: %s.'
                            % (', '.join(unsupported), backend.name, ', '.join(backend.supported)))
    return [t for t in TASK_ORDER if t in tasks]


def run_maintenance(backend: Backend, opts: MaintenanceOptions, check_mode: bool = False) -> Dict[str, Any]:
    """Plan and run ``opts.tasks``; returns the module result (``failed`` set when an object failed)."""
    tasks = check_tasks(backend, opts.tasks)
    if 'cleanup' in tasks and not opts.cleanup:
        raise OpsReadyError('task cleanup needs at least one entry in cleanup (table, column, older_than_days).')
    if opts.cleanup and 'cleanup' not in tasks:
        raise OpsReadyError('cleanup entries are given but cleanup is not in tasks: add it to tasks or remove them.')
    info = backend.open()
    result: Dict[str, Any] = {'engine': backend.name, 'database': backend.database,
                              'server_version': info.get('server_version'), 'tasks': tasks,
                              'actions': [], 'not_due': [], 'cleanup': [], 'rows_removed': {}, 'failures': []}
    try:
        for spec in opts.cleanup:
            # Resolve every entry before the first delete: a typo in the third entry must not leave the
            # first two done and the run failed half-way.
            backend.check_cleanup(spec)
        tables = resolve_tables(backend, opts) if any(t != 'cleanup' for t in tasks) else []
        for task in tasks:
            if task == 'cleanup':
                for spec in opts.cleanup:
                    try:
                        entry = _run_cleanup(backend, spec, check_mode)
                    except _Partial as partial:
                        entry = partial.entry
                        result['failures'].append({'task': 'cleanup', 'object': spec.table.label,
                                                   'msg': partial.exc.message})
                    result['cleanup'].append(entry)
                    key = spec.table.label
                    result['rows_removed'][key] = result['rows_removed'].get(key, 0) + entry.get('rows_removed', 0)
                continue
            for cand in backend.plan(task, tables):
                if not cand.due:
                    result['not_due'].append({'task': task, 'object': cand.object, 'reason': cand.reason,
                                              'measured': cand.before})
                    continue
                action: Dict[str, Any] = {'task': task, 'object': cand.object, 'reason': cand.reason,
                                          'statement': cand.statement, 'before': cand.before}
                if check_mode:
                    action['status'] = 'planned'
                    result['actions'].append(action)
                    continue
                started = time.monotonic()
                try:
                    after = backend.execute(cand)
                    action['status'] = 'done' if after.pop('changed', True) else 'unchanged'
                    action['after'] = after
                except OpsReadyError as exc:
                    action['status'] = 'failed'
                    action['error'] = exc.message
                    result['failures'].append({'task': task, 'object': cand.object, 'msg': exc.message})
                action['duration_seconds'] = round(time.monotonic() - started, 3)
                result['actions'].append(action)
    finally:
        backend.close()
    done = [a for a in result['actions'] if a.get('status') == 'done']
    removed = sum(result['rows_removed'].values())
    result['rows_to_remove'] = {e['table']: e['rows_to_remove'] for e in result['cleanup'] if 'rows_to_remove' in e}
    result['changed'] = bool(done or removed or (check_mode and (result['actions'] or
                                                                 any(result['rows_to_remove'].values()))))
    if result['failures']:
        first = result['failures'][0]
        result['msg'] = ('%d maintenance step(s) failed; first: %s on %s: %s. Steps before it were done and are '
                         'listed in actions/cleanup.' % (len(result['failures']), first['task'], first['object'],
                                                         first['msg']))
    return result


def diff_for(result: Dict[str, Any]) -> Dict[str, str]:
    """Ansible diff: the planned/done statements and cleanup counts, one per line."""
    lines = []
    for entry in result['cleanup']:
        count = entry.get('rows_to_remove', entry.get('rows_removed', 0))
        lines.append('cleanup %s: %d row(s) with %s < %s' % (entry['table'], count, entry['column'], entry['cutoff']))
    for action in result['actions']:
        lines.append('%s %s: %s  -- %s' % (action['task'], action['object'], action['statement'], action['reason']))
    return {'before': '', 'after': '\n'.join(lines) + ('\n' if lines else ''),
            'before_header': '%s %s' % (result['engine'], result['database']),
            'after_header': 'maintenance plan'}
