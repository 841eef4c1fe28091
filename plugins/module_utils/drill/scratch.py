# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whose is the scratch target: a drill replaces and drops only what a drill created.

A drill restores into its scratch target with ``replace`` and drops it in the clean-up. On a database server the
scratch name can be another live database (the default ``<db>_drill`` that an application uses, a scratch name set
to another database), and a PITR scratch directory can be an existing cluster's data directory: the drill would
replace it and then delete it. So a drill marks what it creates, the way a DBA labels a scratch copy:

* PostgreSQL: ``COMMENT ON DATABASE <scratch> IS 'opsready dr_drill scratch copy of <source> ...'``;
* MariaDB 10.5+: ``ALTER DATABASE <scratch> COMMENT '...'`` (the same text; MySQL and older MariaDB keep no
  database comment: there an existing scratch database is never taken for the drill's);
* PITR: a file ``opsready_drill_scratch`` in the recovered data directory (PostgreSQL ignores unknown files).

The restore replaces the scratch target with the backup's copy (whose comment is the source's), so the role marks
it again right after the restore (``drill_step step=mark``), before any check: a drill interrupted after that
leaves a marked leftover, which the next drill replaces and drops.

Before anything is restored, ``drill_step step=guard`` lets through only a scratch target that is absent, empty (a
directory) or carries the mark, and never the source database (compared as the server compares names: MariaDB
with ``lower_case_table_names`` 1 or 2 folds case) nor a name of the restore's own temporary databases
(``<target>__opsready_restore_<id>``, ``<target>__opsready_old_<id>``). What it refuses is left exactly as it was:
the role then skips the clean-up too.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any, Dict, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

MARK_PREFIX = 'opsready dr_drill scratch copy of '
MARKER_FILE = 'opsready_drill_scratch'
# db_restore's temporary databases next to a target (restore/plan.py temporary_name): a scratch named so could be
# taken for one of them.
RESERVED = '__opsready_'

_WHAT_TO_DO = ('Choose another scratch name (scratch: in dr_drill_databases), or, if it is a leftover you no longer '
               'need, drop it yourself; the drill then creates and marks its own.')


def mark_text(source: str) -> str:
    """The comment a drill puts on the scratch database it restored (MariaDB holds at most 1024 characters)."""
    return ('%s%s, restored by a DR drill at %s: the next drill replaces it, the drill drops it'
            % (MARK_PREFIX, source[:200], isoformat(utcnow())))


def is_marked(comment: Optional[str]) -> bool:
    return bool(comment) and str(comment).startswith(MARK_PREFIX)


def same_name(a: str, b: str, fold_case: bool) -> bool:
    return a.lower() == b.lower() if fold_case else a == b


def guard_database(state: Dict[str, Any], scratch: str, source: Optional[str]) -> Dict[str, Any]:
    """``state`` is what the server says of the scratch name (the engine's ``DrillChecks.scratch_state``):
    ``exists``, ``name`` (as the server spells it), ``comment``, ``fold_case`` (names compared without case),
    ``marks`` (whether the server keeps a database comment). Raises when the drill must not restore into it."""
    fold = bool(state.get('fold_case'))
    if RESERVED in (scratch.lower() if fold else scratch):
        raise OpsReadyError('The scratch name %r contains %r, which db_restore uses for its temporary databases '
                            '(<target>__opsready_restore_<id>): a database so named is not created by a DR drill '
                            'and is never taken for its scratch. %s' % (scratch, RESERVED, _WHAT_TO_DO),
                            scratch=scratch)
    if source and same_name(scratch, source, fold):
        raise OpsReadyError('The scratch database %r is the source database %r%s: a drill restores into a separate '
                            'scratch database and drops it afterwards. Choose another scratch name.'
                            % (scratch, source, ' (this server compares database names without case: '
                               'lower_case_table_names=%s)' % state.get('lower_case_table_names') if fold else ''),
                            scratch=scratch)
    if not state.get('exists'):
        return {'exists': False, 'marked': False}
    if is_marked(state.get('comment')):
        return {'exists': True, 'marked': True, 'comment': state.get('comment')}
    why = ('its comment is %r' % state['comment'] if state.get('comment')
           else 'it has no comment' if state.get('marks', True)
           else 'this server keeps no database comment, so no database here can carry the mark')
    raise OpsReadyError('The scratch database %s exists on the server and was not created by a DR drill (%s; a '
                        "drill's scratch carries the comment '%s...'): a drill replaces its scratch database and "
                        'drops it afterwards, so it is refused and left as it is. %s'
                        % (state.get('name') or scratch, why, MARK_PREFIX, _WHAT_TO_DO), scratch=scratch)


def _running_pid(datadir: str) -> Optional[int]:
    try:
        # the datadir is the server account's: a FIFO, a device or a link at the name is no pid file (never opened
        # in a way that blocks, never followed)
        text = safeio.read_regular(os.path.join(datadir, 'postmaster.pid'), 64 * 1024, what='postmaster.pid',
                                   follow=False)
        pid = int(text.split(b'\n', 1)[0].strip() or b'0')
    except (OSError, OpsReadyError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's (postgres)
        pass
    return pid


def guard_datadir(path: str) -> Dict[str, Any]:
    """A PITR scratch data directory: absent, empty, or marked by a drill (links resolved first: a link to a
    cluster's data directory is that directory)."""
    real = os.path.realpath(path)
    shown = path if real == os.path.abspath(path) else '%s (%s)' % (path, real)
    if not os.path.lexists(path) and not os.path.exists(real):
        return {'datadir': real, 'exists': False, 'marked': False}
    if not os.path.isdir(real):
        raise OpsReadyError('The PITR scratch data directory %s exists and is not a directory: it was not created by '
                            'a DR drill. Choose another scratch directory.' % shown, datadir=real)
    try:
        entries = os.listdir(real)
    except OSError as exc:
        raise OpsReadyError('Cannot read the PITR scratch data directory %s (%s): a drill replaces and removes it only '
                            'when it can tell it is its own.' % (shown, exc.strerror), datadir=real)
    marker = os.path.join(real, MARKER_FILE)
    if MARKER_FILE in entries and os.path.isfile(marker) and not os.path.islink(marker):
        return {'datadir': real, 'exists': True, 'marked': True}
    if not entries:
        return {'datadir': real, 'exists': True, 'marked': False}
    pid = _running_pid(real)
    if pid:
        what = 'a running PostgreSQL server (pid %d) uses it (postmaster.pid)' % pid
    elif 'PG_VERSION' in entries or os.path.exists(os.path.join(real, 'global', 'pg_control')):
        what = 'it holds a PostgreSQL cluster (PG_VERSION, global/pg_control)'
    else:
        what = 'it is not empty (%d entries) and has no %s marker' % (len(entries), MARKER_FILE)
    raise OpsReadyError('The PITR scratch data directory %s was not created by a DR drill: %s. A drill replaces its '
                        'scratch data directory and removes it afterwards, so it is refused and left as it is. '
                        'Choose another scratch directory (scratch: in dr_drill_databases, or a new '
                        'dr_drill_scratch_dir), or, if it is a leftover you no longer need, stop its server and '
                        'remove it yourself.' % (shown, what), datadir=real)


def _write_mark(marker: str, body: str, what: str) -> None:
    """The mark file written as root writes into a directory another account may control (safeio.write_nofollow):
    its directory opened one component at a time, a symlink on the way followed only where only root could have
    made it, the file staged exclusively, fsynced and renamed relative to the directory's descriptor. The scratch
    path is the operator's choice, maybe below an application's directory, and the data directory is the cluster
    account's: a link planted on the way once had root write its mark into the directory it led to (/etc); a link
    at the mark's own name is replaced, never followed."""
    try:
        safeio.write_nofollow(marker, (body + '\n').encode('utf-8'), 0o600)
    except OpsReadyError as exc:
        raise OpsReadyError('Cannot mark %s: %s Nothing was marked.' % (what, exc.message), **exc.details) from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise OpsReadyError('Cannot mark %s: %s %s. Nothing was marked.'
                                % (what, os.path.dirname(marker), 'does not exist' if exc.errno == errno.ENOENT
                                   else 'is not a directory'), path=marker) from None
        raise OpsReadyError('Cannot mark %s: %s (%s). Nothing was marked.' % (what, marker, exc.strerror),
                            path=marker) from None


def mark_datadir(path: str, source: str) -> Dict[str, Any]:
    """The marker file in the data directory the restore just recovered."""
    body = json.dumps({'marker': MARK_PREFIX.strip(), 'source': source, 'restored_at': isoformat(utcnow()),
                       'note': 'the next DR drill replaces this data directory, the drill removes it'}, indent=1)
    _write_mark(os.path.join(os.path.abspath(path), MARKER_FILE), body, 'the PITR scratch data directory %s' % path)
    real = os.path.realpath(path)   # reported only: the write above never went through a link another account made
    return {'datadir': real, 'marker': os.path.join(real, MARKER_FILE)}


# A SQLite scratch copy is a file: its mark is a file beside it, ``<scratch>.opsready_drill_scratch`` (the copy itself
# stays byte for byte what the backup holds, which the integrity step compares with the source).
SQLITE_MARK_SUFFIX = '.' + MARKER_FILE


def sqlite_marker(path: str) -> str:
    return os.path.abspath(path) + SQLITE_MARK_SUFFIX


def guard_sqlite(path: str) -> Dict[str, Any]:
    """A SQLite scratch path: absent, or a copy a drill left (its marker beside it). Anything else at the path -
    another application's database, any file, a link - was refused only when it was the source, so the restore
    (``replace``) overwrote it and the clean-up deleted it."""
    marker = sqlite_marker(path)
    marked = os.path.isfile(marker) and not os.path.islink(marker)
    if not os.path.lexists(path):
        return {'exists': False, 'marked': marked, 'marker': marker}
    if marked and os.path.isfile(path) and not os.path.islink(path):
        return {'exists': True, 'marked': True, 'marker': marker}
    what = ('a symbolic link (to %s)' % os.path.realpath(path) if os.path.islink(path)
            else 'not a regular file' if not os.path.isfile(path)
            else 'a file without the marker %s a drill puts beside its copy' % marker)
    raise OpsReadyError('The SQLite scratch path %s exists and was not created by a DR drill: it is %s. A drill '
                        'replaces its scratch copy with the restored backup and deletes it afterwards, so it is '
                        'refused and left as it is. %s' % (path, what, _WHAT_TO_DO), scratch=path)


def mark_sqlite(path: str, source: str) -> Dict[str, Any]:
    """The marker beside a SQLite scratch path, written before the restore creates the copy: a drill interrupted at
    any point leaves a copy the next drill recognises as its own."""
    marker = sqlite_marker(path)
    if os.path.lexists(path) and not guard_sqlite(path)['marked']:
        raise OpsReadyError('Cannot mark the SQLite scratch path %s: something not created by a DR drill is there.'
                            % path, scratch=path)
    body = json.dumps({'marker': MARK_PREFIX.strip(), 'source': source, 'marked_at': isoformat(utcnow()),
                       'note': 'the next DR drill replaces %s, the drill removes it and this file' % path}, indent=1)
    _write_mark(marker, body, 'the SQLite scratch path %s' % path)
    return {'scratch': os.path.abspath(path), 'marker': marker}
