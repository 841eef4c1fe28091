# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore planning shared by every engine: which chain to restore, proving it intact, and the result.

A restore always runs in the same order:

1. ``select_chain``: the catalog picks the artifacts (the newest chain, a named artifact with what it
   depends on, or the chain reaching ``stop_at``); a point outside the recoverable window or a gap in
   the log chain is a ``CatalogError`` whose message carries the window.
2. ``verify_chain``: size + SHA-256 of every piece (and every member of a directory artifact) against
   its manifest, before the target is touched at all.
3. The engine restorer restores under a temporary name and swaps it in (see the engine files).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    CatalogError, IntegrityError, OpsReadyError)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import verify_checksums
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import verify_size

STATES = ('present', 'absent')
SERVER_STATES = ('started', 'stopped')


@dataclass
class RestoreRequest:
    """What the user asked for (the module's options, typed)."""

    engine: str
    src: str
    database: Optional[str] = None          # target database (SQLite: path of the target file)
    source_database: Optional[str] = None   # backup set in the catalog; default: database
    artifact: Optional[str] = None          # a named artifact instead of the newest chain
    origin: Optional[str] = None            # the source server whose backups to restore (a set with several)
    stop_at: Optional[datetime.datetime] = None
    replace: bool = False
    jobs: int = 1
    no_owner: bool = False
    tmpdir: Optional[str] = None
    datadir: Optional[str] = None           # PostgreSQL physical (PITR) target data directory
    port: Optional[int] = None              # PostgreSQL physical: port of the temporary server
    server_state: str = 'started'
    state: str = 'present'
    check_mode: bool = False
    events: str = 'source'                  # MariaDB/MySQL: 'source' (the recorded status) or 'disabled'
    foreign_servers: str = 'keep'           # PostgreSQL: 'keep' the restored foreign servers, or 'disable' them
    target_timeline: Optional[str] = None   # PostgreSQL physical: 'latest', 'current', a number (None: latest, checked)
    # age identities (private keys) for encrypted artifacts; their repr shows only the public key.
    identities: List[Any] = field(default_factory=list, repr=False)


class Timer:
    """Wall-clock phases of a restore (seconds, monotonic)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.phases: Dict[str, float] = {}
        self._mark = self.start

    def lap(self, name: str) -> float:
        now = time.monotonic()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self._mark, 3)
        self._mark = now
        return self.phases[name]

    def total(self) -> float:
        return round(time.monotonic() - self.start, 3)


def temporary_name(target: str, what: str = 'restore', limit: int = 63) -> str:
    """A name next to ``target`` for the restore in progress (fits PostgreSQL's 63-byte identifiers)."""
    suffix = '__opsready_%s_%s' % (what, uuid.uuid4().hex[:8])
    stem = target.encode('utf-8')[:max(1, limit - len(suffix))].decode('utf-8', 'ignore')
    return stem + suffix


def select_chain(catalog: Catalog, artifact: Optional[str] = None,
                 stop_at: Optional[datetime.datetime] = None) -> List[Manifest]:
    """The artifacts to restore, in order (full, diff, logs)."""
    if artifact and stop_at is not None:
        raise OpsReadyError('artifact and stop_at exclude each other: name one artifact, or a point in time.')
    if not catalog.entries:
        raise CatalogError('The catalog %s has no backup of this engine and database: check src, engine and '
                           'source_database (backup_info lists what is there).' % catalog.directory)
    if artifact:
        entry = catalog.get(os.path.basename(artifact))
        if entry.is_log:
            raise OpsReadyError('%s is a %s artifact: a log cannot be restored on its own. Name a full or '
                                'differential backup, or give stop_at to replay logs up to a point.'
                                % (entry.id, entry.kind))
        if not catalog.usable(entry):
            raise IntegrityError('%s failed its last verification (backup_verify): it is never restored.'
                                 % entry.id, path=entry.path)
        if entry.kind == 'diff':
            if not entry.parent:
                raise CatalogError('Differential %s names no parent full backup in its manifest.' % entry.id)
            try:
                parent = catalog.get(entry.parent)
            except CatalogError:
                raise CatalogError('Differential %s needs the full backup %s, which is not in the catalog %s: '
                                   'the chain is broken.' % (entry.id, entry.parent, catalog.directory),
                                   missing=entry.parent)
            return [parent, entry]
        return [entry]
    return catalog.chain_for(stop_at)


STREAMED = 'pending: checked while restoring'


def verify_chain(chain: List[Manifest], streamed: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Checksums of every piece, before anything is written; names the piece that fails.

    ``streamed``: ids of pieces the restorer hashes in the same read that loads them (``Restorer.streamed``)
    and holds apart until their checksum matched: only their presence and size are checked here (a second
    full read of the artifact was the largest cost of a restore next to the raw tools)."""
    results = []
    for entry in chain:
        try:
            if entry.id in streamed:
                verify_size(entry.path, entry.data.get('size'))
                check = {'checksum': STREAMED}
            else:
                check = verify_checksums(entry)
        except IntegrityError as exc:
            raise IntegrityError('Restore refused before touching the target: chain piece %s (%s) is not '
                                 'intact. %s' % (entry.id, entry.kind, exc.message), artifact=entry.id,
                                 path=entry.path)
        results.append(dict(check, id=entry.id))
    return results


def chain_summary(chain: List[Manifest]) -> List[Dict[str, Any]]:
    return [{'id': m.id, 'kind': m.kind, 'database': m.database, 'path': m.path,
             'started': m.data.get('started'), 'consistent_at': isoformat(m.consistent_at),
             'size': m.data.get('size'), 'sha256': m.data.get('sha256'), 'position': m.position}
            for m in chain]


def point_reached(chain: List[Manifest], stop_at: Optional[datetime.datetime]) -> datetime.datetime:
    reach = Catalog.reaches(chain)
    if stop_at is not None and stop_at < reach:
        return stop_at
    return reach


def base_result(request: RestoreRequest) -> Dict[str, Any]:
    return {'changed': False, 'engine': request.engine, 'src': request.src, 'state': request.state,
            'stop_at': isoformat(request.stop_at) if request.stop_at else None, 'chain': [], 'verification': [],
            'target': {}, 'point_reached': None, 'replaced': False, 'wall_seconds': 0.0, 'phases': {}}


class Restorer:
    """db_restore for one engine: what ``restore/run.py`` calls, through ``registry.get_restore``, without
    knowing the engine. One subclass per engine (at the end of ``restore/<engine>.py``) maps these three onto
    that engine's functions; the backup engine (its client, programs, facts) comes from the registry."""

    def __init__(self, name: str, conn: Any) -> None:
        self.name = name
        self.conn = conn

    def engine(self, request: RestoreRequest) -> Any:
        """The backup engine of ``name`` (its client, programs, server facts), able to read encrypted pieces."""
        from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
        engine = get_engine(self.name, self.conn)
        engine.identities = list(request.identities)
        return engine

    def catalog_database(self, source: str) -> str:
        """The manifests' ``database`` value for a source named ``source``."""
        return source

    def check(self, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
        """Check mode: the refusal a real run would hit, without writing; what the target holds."""
        raise NotImplementedError

    def narrow(self, request: RestoreRequest, catalog: Catalog) -> Catalog:
        """The catalog the chain is chosen from (a point-in-time recovery: the WAL of the chosen timeline only), or a
        refusal; check mode asks it too."""
        return catalog

    def streamed(self, request: RestoreRequest, chain: List[Manifest]) -> List[str]:
        """Ids of the pieces whose checksum this restorer compares in the read that loads them, keeping the
        result apart (temporary database, scratch file) until it matched and raising ``IntegrityError`` with
        ``artifact=<id>`` when it does not. None by default: every piece is verified up front."""
        return []

    # The engine's functions: restore_with(engine, request, chain, timer), drop_with(engine, request, check_mode).
    restore_with: Any = None
    drop_with: Any = None

    def restore(self, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
        return type(self).restore_with(self.engine(request), request, chain, timer)

    def drop(self, request: RestoreRequest) -> Dict[str, Any]:
        """state=absent: remove the (scratch) target; in check mode, say what would go."""
        return type(self).drop_with(self.engine(request), request, request.check_mode)


def drop_named(engine: Any, request: RestoreRequest, check_mode: bool, target_of: Any, exists: Any,
               remove: Any) -> Dict[str, Any]:
    """state=absent for a database named on a server: ``remove(engine, name)`` when ``exists(engine, name)``
    (not in check mode), ``name`` being ``target_of(request)`` (the engine's name check)."""
    target = target_of(request)
    found = bool(exists(engine, target))
    if found and not check_mode:
        remove(engine, target)
    return {'changed': found, 'target': {'database': target, 'server': engine.server_label(), 'removed': found}}
