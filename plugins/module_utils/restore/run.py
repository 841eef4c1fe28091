# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``db_restore`` does, without Ansible: plan, verify, restore per engine, report.

The engine's part is a ``Restorer`` from ``registry.get_restore`` (check, restore, drop); nothing here names
an engine.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog, of_origin
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import scratch
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    CatalogError, IntegrityError, OpsReadyError)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import CLUSTER
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    check_decryptable, is_encrypted)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (
    PHYSICAL_RESTORE_ENGINES, check_engine, get_restore)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
    STREAMED, Restorer, RestoreRequest, Timer, base_result, chain_summary, point_reached, select_chain, verify_chain)


def _method(request: RestoreRequest) -> str:
    return 'physical' if request.datadir else 'logical'


def _restorer(request: RestoreRequest, conn: ConnectionParams) -> Restorer:
    return get_restore(request.engine, conn, physical=_method(request) == 'physical')


def check_request(request: RestoreRequest) -> None:
    check_engine(request.engine, area='db_restore')
    if request.datadir and request.engine not in PHYSICAL_RESTORE_ENGINES:
        raise OpsReadyError('datadir applies to physical recovery (%s) only, not engine %s.'
                            % (', '.join(PHYSICAL_RESTORE_ENGINES), request.engine))
    if _method(request) == 'logical' and not request.database:
        raise OpsReadyError('database (the target) is required for engine %s%s.'
                            % (request.engine, ' unless datadir is set (physical point-in-time recovery)'
                               if request.engine in PHYSICAL_RESTORE_ENGINES else ''))
    if request.target_timeline is not None and _method(request) != 'physical':
        raise OpsReadyError('target_timeline applies to point-in-time recovery (datadir set) only.')
    if request.jobs < 1:
        raise OpsReadyError('jobs must be 1 or more, not %d.' % request.jobs)
    # Removing a scratch target needs no catalog (a drill from an offsite copy may not have fetched one).
    if request.state != 'absent' and os.path.islink(request.src) and not os.path.isdir(request.src):
        # A link to a manifest or an artifact: "is a regular file" (what the link leads to) hid that it is a link,
        # and that a manifest is never read through one. Say both, and how to choose one backup of a catalog.
        raise OpsReadyError(
            'src %s is a symlink (to what %s), not a backup directory, and nothing is read through a link there: '
            'it was not read. Point src at the backup directory itself (the dest of db_backup) and choose one backup '
            'of it with artifact (its file name); if the link stands for a backup of that directory, replace the link '
            'with the manifest itself (copy the file over the link).'
            % (request.src, safeio.describe_path(request.src)),
            src=request.src)
    if request.state != 'absent' and not os.path.isdir(request.src):
        raise OpsReadyError('src %s %s, not a backup directory: point it at the dest of db_backup.'
                            % (request.src, safeio.describe_path(request.src)), src=request.src)


def catalog_database(request: RestoreRequest) -> Optional[str]:
    if _method(request) == 'physical':
        return CLUSTER
    source = request.source_database or request.database
    return _restorer(request, ConnectionParams()).catalog_database(source) if source else source


def log_gap(catalog: Catalog, chain: List[Manifest]) -> Optional[Dict[str, Any]]:
    """A log piece missing between the end of ``chain`` and newer logs in the catalog, if any."""
    bases = [m for m in chain if not m.is_log]
    if not bases:
        return None
    sequence = catalog.log_sequence_from(bases[-1])  # every contiguous log from the base on
    if sequence:
        return catalog.gap_after(sequence)
    start = bases[-1].position.get('log_start')
    if start is None:
        return None
    later = [m for m in catalog.logs() if int(m.position.get('start', -1)) > int(start)]
    if not later:
        return None
    nxt = min(later, key=lambda m: int(m.position['start']))
    return {'after': bases[-1].id, 'expected_start': int(start), 'next_present': nxt.id,
            'next_start': int(nxt.position['start'])}


def missing_piece(gap: Dict[str, Any], reference: Manifest) -> Optional[Tuple[str, str]]:
    """The file name of the log piece a gap lacks (``expected_start``), from the positions of ``reference`` (the
    piece before the gap, or the base): a PostgreSQL WAL segment name from its timeline and segment size, a
    binary log name from the numbered name of the one before, each with what it is. None when the positions do
    not say."""
    position = reference.position or {}
    expected = int(gap['expected_start'])
    size = position.get('wal_segment_size')
    timeline = position.get('timeline')
    if size and timeline is not None:
        per_log = 0x100000000 // int(size)
        return 'WAL segment', '%08X%08X%08X' % (int(timeline), expected // per_log, expected % per_log)
    binlog = position.get('binlog_file')
    if binlog:
        match = re.match(r'^(.*\.)(\d+)$', os.path.basename(str(binlog)))
        if match:
            return 'binary log', match.group(1) + str(expected).zfill(len(match.group(2)))
    return None


def plan(request: RestoreRequest, warnings: Optional[List[str]] = None) -> List[Manifest]:
    """The chain to restore; ``warnings`` gets what the caller is told (``origin: newest``: the succession)."""
    # a set with backups of several servers (a shared directory) restores only the chosen server's chain: without a
    # choice the chain questions refuse (catalog.MixedOrigins), never "the latest" of whichever server wrote last
    # origin NEWEST (declared successive: pg_upgrade, re-initdb, renamed host): the origin whose time holds the point or
    # the artifact, else the newest; refused (OverlappingOrigins) when their times overlap. One origin's chain only.
    catalog = of_origin(request.src, request.engine, catalog_database(request), request.origin,
                        point=request.stop_at, artifact=request.artifact, warnings=warnings)
    catalog = _restorer(request, ConnectionParams()).narrow(request, catalog)
    chain = select_chain(catalog, request.artifact, request.stop_at)
    if request.artifact is None and request.stop_at is None and chain:
        # "As late as possible" must not silently stop at a hole in the log chain: newer logs exist that
        # this restore could not reach, so what they hold would be lost without a word.
        gap = log_gap(catalog, chain)
        if gap is not None:
            piece = missing_piece(gap, chain[-1])
            raise CatalogError(
                'The log chain has a gap: %sno log starting at position %s after %s, yet newer logs exist (next '
                'present: %s at %s). A restore to the newest point would silently stop at %s and lose what is '
                'after the gap. Put the missing piece back in %s, or give stop_at at or before %s to restore up '
                'to the gap knowingly. Nothing was restored.'
                % ('%s %s is missing: ' % piece if piece else '', gap['expected_start'], gap['after'],
                   gap['next_present'], gap['next_start'], isoformat(Catalog.reaches(chain)), request.src,
                   isoformat(Catalog.reaches(chain))),
                missing_after=gap['after'], next_present=gap['next_present'], missing=piece[1] if piece else None)
    if _method(request) == 'physical' and chain[0].kind != 'base':
        raise OpsReadyError('Point-in-time recovery needs a base backup (kind=base) to start from; %s is a %s.'
                            % (chain[0].id, chain[0].kind))
    return chain


# The scratch directories db_restore makes (common/scratch.py): each may hold a decrypted, decompressed dump or log.
SCRATCH_KINDS = ('pg-restore', 'binlog-restore', 'sqlite-restore')


def sweep_scratch(request: RestoreRequest) -> Dict[str, Any]:
    """The scratch directories a killed db_restore left in ``tmpdir`` (its lock proves its run ended), removed;
    nothing in check mode."""
    if request.check_mode:
        return {'removed_scratch': [], 'warnings': []}
    return scratch.sweep(request.tmpdir, SCRATCH_KINDS)


def _with_swept(result: Dict[str, Any], swept: Dict[str, Any]) -> Dict[str, Any]:
    result['removed_scratch'] = swept['removed_scratch'] + list(result.get('removed_scratch') or [])
    if swept['warnings']:
        result['warnings'] = swept['warnings'] + list(result.get('warnings') or [])
    return result


def run_restore(request: RestoreRequest, conn: ConnectionParams) -> Dict[str, Any]:
    check_request(request)
    timer = Timer()
    result = base_result(request)
    result['method'] = _method(request)
    swept = sweep_scratch(request)
    try:
        return _run_restore(request, conn, timer, result, swept)
    except OpsReadyError as exc:
        # A failed run still says what it removed of a killed run's (the drill report lists it).
        if swept['removed_scratch']:
            exc.details.setdefault('removed_scratch', swept['removed_scratch'])
        raise


def _run_restore(request: RestoreRequest, conn: ConnectionParams, timer: Timer, result: Dict[str, Any],
                 swept: Dict[str, Any]) -> Dict[str, Any]:
    if request.state == 'absent':
        result.update(_drop(request, conn))
        result['changed'] = bool(result.get('changed')) or bool(swept['removed_scratch'])
        result['wall_seconds'] = timer.total()
        return _with_swept(result, swept)
    # When the catalog was read: a disaster at that instant would have left exactly the chain restored (a drill
    # measures its RPO from here to the point the restored data reaches).
    result['catalog_read_at'] = isoformat(utcnow())
    notes: List[str] = []
    chain = plan(request, notes)
    if notes:
        result['warnings'] = list(result.get('warnings') or []) + notes
    result['chain'] = chain_summary(chain)
    result['chain_ids'] = [m.id for m in chain]
    result['point_reached'] = isoformat(point_reached(chain, request.stop_at))
    timer.lap('plan')
    # Pieces the restorer hashes in the one read that loads them (held apart until the checksum matched);
    # check mode restores nothing, so it reads every piece here.
    streamed = [] if request.check_mode else _restorer(request, conn).streamed(request, chain)
    try:
        result['verification'] = verify_chain(chain, streamed)
        timer.lap('verify_checksums')
        # Encrypted pieces: prove the key opens every one before the target is created (check mode too).
        for entry in chain:
            check_decryptable(entry, request.identities)
    except OpsReadyError as exc:
        # phase=verify: refused before the target was touched (a DR drill reports it as its verify step).
        exc.details.setdefault('phase', 'verify')
        raise
    result['encrypted'] = [m.id for m in chain if is_encrypted(m)]
    if request.check_mode:
        result['target'] = _check_target(request, conn, chain)
        # A restore always changes the target; applying @globals changes nothing when every role exists.
        result['changed'] = result['target'].pop('changes', True)
        # what the real run would warn of (after the plan's, as there), and the point it would report
        foreseen = result['target'].pop('warnings', None)
        if foreseen:
            result['warnings'] = list(result.get('warnings') or []) + list(foreseen)
        if 'point_reached' in result['target']:
            result['point_reached'] = result['target'].pop('point_reached')
        existing = result['target'].get('existing')
        result['replaced'] = bool(existing and any(existing.values()))  # what the run would do
        result.update(wall_seconds=timer.total(), phases=timer.phases)
        return _with_swept(result, swept)
    try:
        outcome = _restore(request, conn, chain, timer)
    except IntegrityError as exc:
        if exc.details.get('artifact') in streamed:
            exc.details.setdefault('phase', 'verify')  # the checksum failed: a verify failure, as up front
        raise
    for entry in result['verification']:
        if entry.get('checksum') == STREAMED:
            entry.update(checksum='ok', checked='while restoring (one read of the artifact)')
    if 'point_reached' in outcome:
        result['point_reached'] = outcome.pop('point_reached')
    changed = outcome.pop('changed', True)
    if result.get('warnings') and outcome.get('warnings'):
        outcome['warnings'] = list(result['warnings']) + list(outcome['warnings'])   # the plan's stay (succession)
    result.update(outcome)
    result['changed'] = changed
    result['wall_seconds'] = timer.total()
    result['phases'] = timer.phases
    result['restore_seconds'] = round(sum(v for k, v in timer.phases.items()
                                          if k not in ('plan', 'verify_checksums')), 3)
    return _with_swept(result, swept)


def _check_target(request: RestoreRequest, conn: ConnectionParams, chain: List[Manifest]) -> Dict[str, Any]:
    """Check mode: the refusal a real run would hit, without writing."""
    return _restorer(request, conn).check(request, chain)


def _restore(request: RestoreRequest, conn: ConnectionParams, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    return _restorer(request, conn).restore(request, chain, timer)


def _drop(request: RestoreRequest, conn: ConnectionParams) -> Dict[str, Any]:
    return _restorer(request, conn).drop(request)
