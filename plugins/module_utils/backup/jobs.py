# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the database backup modules do, without Ansible: back up, verify, describe, prune.

``db_backup``, ``backup_verify``, ``backup_info`` and ``backup_prune`` are thin wrappers over
``run_backup``, ``verify_path``, ``describe`` and ``prune``.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup import source as source_summary
# Not the catalog index code, retention, the prune code or tarfile: a run that takes a backup reads no catalog before
# its tool starts (remove_leftovers has a light path), and every module_utils file an AnsiballZ payload imports is
# compiled on every run. Each is imported where it is first needed; Ansible ships files imported in functions too.
# So are artifact_stat (not retention's: verification then compiles neither retention nor the catalog) and scratch:
# only verification uses them, never before the backup's tool has started, and a run without verify not at all.
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_session import read_only, session
from ansible_collections.opsready.operations.plugins.module_utils.backup.prune_result import (  # noqa: F401  # pylint: disable=unused-import
    merge_pruned, take_retention)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    FULL_KINDS, MANIFEST_SUFFIX, Manifest, manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError)
from ansible_collections.opsready.operations.plugins.module_utils.common import cleanup
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions, Engine, set_name
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    check_decryptable, discard_new_dir, is_encrypted, is_key_error, open_artifact, remove_leftovers, set_lock,
    verify_checksums)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.opsready.operations.plugins.module_utils.backup import retention


def __getattr__(name: str) -> Any:
    """``jobs.describe`` and ``jobs.prune``: they live in catalog_jobs.py and catalog_prune.py (what backup_info and
    backup_prune import, without the engines), loaded when first asked for, not by every backup run."""
    if name == 'describe':
        from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
        return describe
    if name == 'prune':
        from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
        return prune
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


def set_prefix(engine: Engine, opts: BackupOptions, database: Optional[str] = None) -> str:
    """The file-name prefix of one backup set (``database`` defaults to the run's catalog database)."""
    return '%s-%s-%s-' % (engine.name, set_name(database or engine.catalog_database(opts)), opts.kind)


def fresh_backup(engine: Engine, opts: BackupOptions, min_interval: int,
                 database: Optional[str] = None) -> Optional[Manifest]:
    """The newest usable backup of this set and kind younger than ``min_interval`` seconds, if any."""
    if min_interval <= 0 or not os.path.isdir(opts.dest) or opts.kind == 'wal':
        return None
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import IndexStale
    horizon = utcnow() - datetime.timedelta(seconds=min_interval)
    wanted = sorted(opts.recipients)
    try:
        return _fresh(engine, opts, database, horizon, wanted)
    except IndexStale:   # the manifest it found disagreed with the catalog index: ask again, by stat
        return _fresh(engine, opts, database, horizon, wanted)


def _fresh(engine: Engine, opts: BackupOptions, database: Optional[str], horizon: datetime.datetime,
           wanted: List[str]) -> Optional[Manifest]:
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import UNKNOWN_ORIGIN, Catalog
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import confirm
    catalog = Catalog(opts.dest, engine=engine.name, database=database or engine.catalog_database(opts))
    # A backup written with other encryption settings (or none) is not the backup asked for.
    recent = [m for m in catalog.entries if m.kind == opts.kind and m.finished >= horizon and m.verified is not False
              and sorted((m.data.get('encryption') or {}).get('recipients') or []) == wanted]
    if recent and catalog.origins not in ([], [UNKNOWN_ORIGIN]):
        # only this server's backup is its fresh one: another host's in a shared directory is not. Asked of the
        # server only when a skip is possible; a server that does not answer skips nothing (the run then fails on
        # it in preflight, as it would without a recent backup)
        try:
            mine = engine.origin()
        except OpsReadyError:
            return None
        ids = {m.id for m in recent}
        recent = [m for m in Catalog(opts.dest, engine=engine.name, database=catalog.entries[0].database,
                                     origin=mine, own=True).entries if m.id in ids]
    confirm(recent[-1:])   # the run is skipped on its word: proved unchanged (catalog_index.confirm)
    return recent[-1] if recent else None


def run_backup(engine: Engine, opts: BackupOptions, verify: bool = True, policy: Optional[retention.Policy] = None,
               min_interval: int = 0, check_mode: bool = False,
               owner: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    # One run: a catalog unchanged since this run last listed it is not listed and stat'ed again.
    with session(), (read_only() if check_mode else contextlib.nullcontext()):
        return _run_backup(engine, opts, verify, policy, min_interval, check_mode, owner)


def _run_backup(engine: Engine, opts: BackupOptions, verify: bool, policy: Optional[retention.Policy],
                min_interval: int, check_mode: bool, owner: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    engine.check_options(opts)
    result: Dict[str, Any] = {'changed': False, 'manifest': {}, 'manifests': [], 'verification': [],
                              'deleted': [], 'leftovers_removed': [], 'skipped_fresh': False}
    # A run may write several sets (PostgreSQL all_databases: one dump per database, plus @globals):
    # each is locked, cleaned of leftovers, and pruned as its own set.
    sets = engine.backup_sets(opts)
    fresh = [fresh_backup(engine, opts, min_interval, database) for database in sets]
    if sets and all(f is not None for f in fresh):
        summaries = [f.summary() for f in fresh if f is not None]
        result.update(skipped_fresh=True, manifest=summaries[0], manifests=summaries)
        return result
    prefixes = [set_prefix(engine, opts, database) for database in sets]
    if check_mode:
        engine.preflight(opts)  # nothing is created unless the source answers
        safeio.check_backup_dir(opts.dest, owner=owner)   # the refusal a real run would meet
        result['changed'] = True
        if os.path.isdir(opts.dest):
            result['leftovers_removed'] = remove_leftovers(opts.dest, prefixes, check_mode=True)
            take_retention(result, _retain(engine, opts, sets, policy, pending=True, verified=verify))
        return result
    # Nothing is backed up unless the source answers; an engine may take that answer after its tool has started
    # (PostgreSQL kind=base: the facts are read while pg_basebackup connects), then removing what it began, and a
    # backup directory this run created for it is removed again (``discard_new_dir``).
    made_dest = not os.path.isdir(opts.dest)
    deferred = engine.start_preflight(opts)
    # the engines' tools write through staging names in dest: refused when another account controls it
    safeio.prepare_backup_dir(opts.dest, owner=owner)
    with contextlib.ExitStack() as locks:
        for prefix in sorted(set(prefixes)):
            locks.enter_context(set_lock(opts.dest, prefix.rstrip('-')))
        left: Dict[str, str] = {}

        def tidy(writing: Sequence[str] = ()) -> None:
            # The sets' leftovers of killed runs, removed under their locks. It decides nothing about the run, so an
            # engine that deferred its preflight runs it once its tool has started (Engine.tool_started, ``writing``
            # its staging), off the critical path: on a large catalog it is the catalog code's import and listing.
            result['leftovers_removed'] = remove_leftovers(opts.dest, prefixes, left=left, keep=writing)
            if left:
                result.setdefault('warnings', []).extend(cleanup.leftover_warning(k, v)
                                                         for k, v in sorted(left.items()))
        if deferred:
            engine.while_tool_runs = tidy
        else:
            tidy()
        # What each source holds, measured right before its backup starts, recorded with the artifact.
        held = {database: engine.source_summary(opts, database) for database in sets}

        def held_both(database: str) -> Optional[Dict[str, Any]]:
            # And right after its dump, before its manifest is written (once, Engine.commit_manifest): the dump's
            # snapshot lies in between, so only what both saw is required of it.
            if database not in held:
                return None
            return source_summary.combine(held[database], engine.source_summary(opts, database))
        engine.source_at_commit = held_both
        try:
            manifests = engine.backup(opts)
            engine.tool_started()   # (an engine that did not call it: the tidying is done, late but done)
        except BaseException:
            if made_dest and deferred:
                discard_new_dir(opts.dest, [prefix.rstrip('-') for prefix in set(prefixes)])
            raise
        finally:
            engine.source_at_commit = None
            engine.while_tool_runs = None
        # the run's own staging it could not remove (the backup itself is sound): reported with the leftovers
        staged: Dict[str, str] = getattr(engine, 'staging_left', None) or {}
        if staged:
            result.setdefault('warnings', []).extend(cleanup.staging_warning(k, v) for k, v in sorted(staged.items()))
            left.update(staged)
        if left:
            result['leftovers_left'] = sorted(left)
        result['changed'] = True
        failures = []
        if verify:
            for data in manifests:
                entry = read_manifest(manifest_path_for(data['path']))
                outcome = verify_one(entry, engine)
                result['verification'].append(outcome)
                if not outcome['ok']:
                    failures.append('%s: %s' % (entry.id, outcome['error']))
            manifests = [read_manifest(manifest_path_for(d['path'])).summary() for d in manifests]
        result['manifests'] = manifests
        result['manifest'] = manifests[0] if manifests else {}
        # what an engine found wrong with what it backed up (the manifest's ``warning``) is the task's warning too
        told = ['backup %s: %s' % (m.get('id'), m['warning']) for m in manifests if m.get('warning')]
        if told:
            result.setdefault('warnings', []).extend(told)
        if failures:
            raise IntegrityError('The backup was written but failed verification (manifest marked '
                                 'verified=false, so it is never used for a restore): %s' % '; '.join(failures),
                                 manifests=manifests, verification=result['verification'])
    take_retention(result, _retain(engine, opts, sets, policy))
    return result


def _retain(engine: Engine, opts: BackupOptions, sets: Sequence[Optional[str]], policy: Optional[retention.Policy],
            pending: bool = False, verified: bool = False) -> Dict[str, Any]:
    """The artifacts ``policy`` deletes from each set of the run, after its backup. ``pending`` (check mode): the
    run's new backup is not there yet, so each set is planned as if it were (a full kind holds the newest-usable
    place, a keep_last slot and today's buckets; the newest verified place too when the run ``verified`` it) and
    nothing is deleted: the list is the one the real run deletes.

    No leftovers here (leftover_min_age=None): the run's own set's were removed under its lock, and another set's
    unvouched files may be a long run's staging being written right now (its lock is its own)."""
    answer: Dict[str, Any] = {'deleted': [], 'broken_manifests': [], 'origin_sets': [], 'warnings': [], 'ran': False}
    if policy is None or policy.empty:
        return answer
    answer['ran'] = True
    if pending:
        policy = copy.copy(policy)
        policy.pending_full = opts.kind in FULL_KINDS
        policy.pending_verified = verified
        # the new full is this server's: in a dest another server writes too, its backups are planned without it
        policy.pending_origin = engine.origin()
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
    for database in sets:
        pruned = prune(opts.dest, policy, engine=engine.name, database=database, check_mode=pending,
                       leftover_min_age=None)
        merge_pruned(answer, pruned)
    return answer


# -- verification -----------------------------------------------------------------------------------------

def _verify_files_artifact(entry: Manifest, identities: Optional[Sequence[Any]] = None) -> Dict[str, Any]:
    """file_backup archives: read every tar member through decryption and decompression, then refuse what
    file_restore refuses of the member list (``tarsafe.refuse_unrestorable``, its own check and words): an archive
    it would not restore is no backup, and its operator hears it now, not at restore time."""
    from ansible_collections.opsready.operations.plugins.module_utils.files import tarsafe
    members: List[Any] = []
    try:
        with open_artifact(entry, identities) as source:
            # read_stream: one that stops parsing midway was counted to there and verified ok (without a member_count);
            # header values no file can have are left to refuse_unrestorable (values=False), as file_restore leaves
            # them: every such member named at once, in its words. The framing error in file_restore's words too (what
            # 'Archive'), without its "Nothing was written." (no outcome): a verify writes nothing in any case
            with tarsafe.read_stream(source, entry.path, values=False) as tar:
                for member in tar:
                    members.append(member)   # (tarfile keeps each member too: file_restore holds the list as well)
                    if member.isfile():
                        handle = tar.extractfile(member)
                        if handle is not None:
                            while handle.read(1024 * 1024):
                                pass
    except (OpsReadyError, OSError):
        raise
    except Exception as exc:
        raise IntegrityError('%s is not a complete archive: %s' % (entry.path, exc), path=entry.path)
    tarsafe.refuse_unrestorable(members, entry.path)   # no outcome: see read_stream above
    expected = entry.data.get('member_count')
    if expected is not None and expected != len(members):
        raise IntegrityError('%s holds %d members, its manifest says %d.' % (entry.path, len(members), expected),
                             path=entry.path)
    return {'engine_check': 'tar stream read to the end, member list as file_restore checks it',
            'members': len(members)}


SHALLOW = ('not run: the artifact is encrypted; backup_verify deep=true with its identity decrypts it and runs '
           'the engine check')


def verify_one(entry: Manifest, engine: Optional[Engine] = None, conn: Optional[ConnectionParams] = None,
               record: bool = True, identities: Optional[Sequence[Any]] = None,
               deep: bool = False, checksum_only: bool = False) -> Dict[str, Any]:
    """Checksums then the engine's own check; records the outcome in the manifest when ``record``.

    ``checksum_only`` stops after the checksums (a copy in a second place, where the engine's tools may
    be missing): a mismatch is recorded, a match never is, since the engine check did not run.

    An encrypted artifact gets the engine check only with ``deep`` (decrypting with ``identities``);
    otherwise its stored checksum alone is checked, which needs no key. A missing or wrong key fails
    the outcome but is never recorded: the artifact is not damaged, the key is wrong.
    """
    from ansible_collections.opsready.operations.plugins.module_utils.backup.artifact_stat import artifact_signature
    started = time.monotonic()
    before = artifact_signature(entry)   # recorded with a pass only if unchanged while read
    encrypted = is_encrypted(entry)
    outcome: Dict[str, Any] = {'id': entry.id, 'path': entry.path, 'engine': entry.engine, 'kind': entry.kind,
                               'ok': False, 'checks': {}, 'error': None, 'previous': entry.verified,
                               'encrypted': encrypted}
    key_error = False
    try:
        outcome['checks'].update(verify_checksums(entry))
        if checksum_only:
            outcome['checks'].update(engine_check='not run: checksum_only=true')
        elif encrypted and not deep:
            outcome['checks'].update(engine_check=SHALLOW, deep=False)
        else:
            if encrypted:
                check_decryptable(entry, identities or [])
            if entry.engine == 'files':
                outcome['checks'].update(_verify_files_artifact(entry, identities))
            else:
                if engine is None or engine.name != entry.engine:
                    engine = get_engine(entry.engine, conn or ConnectionParams())
                engine.identities = list(identities or [])
                outcome['checks'].update(engine.verify(entry))
                found = outcome['checks'].get('artifact')
                if isinstance(found, dict) and 'source_check' not in outcome['checks']:
                    # The artifact against what the source held: an empty dump of a full database fails here.
                    outcome['checks'].update(source_summary.compare(
                        entry.data.get(source_summary.SOURCE_KEY), found, 'The artifact %s' % entry.path, entry.path))
            if encrypted:
                outcome['checks'].update(deep=True, decrypted='ok (age, authenticated to the last chunk, '
                                                              'plaintext checksum matches)')
        outcome['ok'] = True
    except OpsReadyError as exc:
        outcome['error'] = exc.message
        key_error = is_key_error(exc)
    except OSError as exc:
        outcome['error'] = 'cannot read %s: %s' % (getattr(exc, 'filename', None) or entry.path, exc.strerror or exc)
    outcome['seconds'] = round(time.monotonic() - started, 3)
    # The manifest is rewritten only when the verdict changes (or an encrypted artifact is checked deeply
    # for the first time): re-verifying intact backups leaves every file untouched (idempotent runs, copies
    # that stay in sync). verified_at is when the verdict was reached.
    previous_checks = (entry.data.get('verification') or {}).get('checks') or {}
    deeper = encrypted and outcome['ok'] and deep and previous_checks.get('deep') is not True
    # A pass records the artifact's inode/size/mtime/ctime, so retention trusts it without reading the artifact
    # again while it is unchanged; an older pass without them (or of a file changed since) is recorded once more.
    signature = before if outcome['ok'] and before is not None and artifact_signature(entry) == before \
        else None
    restat = (signature is not None and entry.verified is True
              and (entry.data.get('verification') or {}).get('artifact_stat') != signature)
    outcome['recorded'] = bool(record and not key_error and (entry.verified is not outcome['ok'] or deeper or restat)
                               and not (checksum_only and outcome['ok']))
    if outcome['recorded']:
        entry.record_verification(outcome['ok'], dict(outcome['checks'], error=outcome['error']), utcnow(),
                                  signature)
    return outcome


def manifests_at(path: str, engine: Optional[str] = None, database: Optional[str] = None) -> Dict[str, Any]:
    """The manifests named by ``path``: a backup directory, an artifact or a manifest file."""
    if os.path.isdir(path) and not os.path.exists(manifest_path_for(path.rstrip('/'))):
        from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
        catalog = Catalog(path, engine=engine, database=database)
        return {'entries': catalog.entries, 'broken': catalog.broken, 'leftovers': catalog.leftovers()}
    manifest = path if path.endswith(MANIFEST_SUFFIX) else manifest_path_for(path.rstrip('/'))
    if not os.path.exists(manifest):
        if not os.path.exists(path):
            raise OpsReadyError('%s does not exist: give a backup directory, an artifact or its manifest.' % path)
        raise IntegrityError('%s has no manifest (%s): it is the leftover of an interrupted run or not a backup '
                             'written by opsready, and is never trusted.' % (path, manifest), path=path)
    try:
        entry = read_manifest(manifest)
    except OpsReadyError as exc:
        return {'entries': [], 'broken': [{'manifest': manifest, 'error': exc.message}], 'leftovers': []}
    return {'entries': [entry], 'broken': [], 'leftovers': []}


def verify_path(path: str, conn: Optional[ConnectionParams] = None, engine: Optional[str] = None,
                database: Optional[str] = None, record: bool = True, newest_only: bool = False,
                identities: Optional[Sequence[Any]] = None, deep: bool = False,
                checksum_only: bool = False, sweep: bool = False) -> Dict[str, Any]:
    """Verify every artifact at ``path``. ``sweep``: first remove the verification scratch directories a killed
    run left (``removed_scratch``; common/scratch.py proves them dead). A scratch directory of this run that
    could not be removed is named in ``scratch_left`` and ``warnings``."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import scratch
    swept = scratch.sweep(None, scratch.VERIFY_KINDS) if sweep else {'removed_scratch': [], 'warnings': []}
    found = manifests_at(path, engine, database)
    entries: List[Manifest] = found['entries']
    if newest_only and entries:
        entries = [entries[-1]]
    engines: Dict[str, Engine] = {}
    results = []
    for entry in entries:
        eng = None
        if entry.engine != 'files' and not checksum_only:
            if entry.engine not in engines:
                engines[entry.engine] = get_engine(entry.engine, conn or ConnectionParams())
            eng = engines[entry.engine]
        results.append(verify_one(entry, eng, conn, record=record, identities=identities, deep=deep,
                                  checksum_only=checksum_only))
    bad = [r for r in results if not r['ok']]
    bad += [{'id': os.path.basename(b['manifest']), 'path': b['manifest'], 'ok': False, 'error': b['error']}
            for b in found['broken']]
    changed = any(r['recorded'] for r in results) or bool(swept['removed_scratch'])
    left = [r['checks'] for r in results if (r.get('checks') or {}).get('scratch_left')]
    return {'results': results, 'failed': bad, 'leftovers': found['leftovers'], 'changed': changed,
            'checked': len(results), 'removed_scratch': swept['removed_scratch'],
            'scratch_left': [path for checks in left for path in checks['scratch_left']],
            'warnings': swept['warnings'] + [checks['scratch_warning'] for checks in left]}
