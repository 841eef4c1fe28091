# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy a backup catalog offsite and back, and apply retention at the destination.

Rules (the same as the local catalog's):
- only artifacts with a manifest, whose bytes hash to the manifest's checksum as they are sent, are
  copied; their manifest is uploaded last, after the destination's copy was read back and matched, so
  a reader of the destination never sees an artifact without its manifest, nor a manifest whose
  artifact is incomplete;
- an object at the destination without a manifest is the leftover of an interrupted run: it is
  re-sent or removed, never trusted; interrupted S3 multipart uploads are aborted;
- retention at the destination uses ``backup.retention`` on the destination's own manifests, so the
  chain-safe rules of backup_prune hold there too (the manifest is deleted first, then its data);
- immutable copies (S3 Object Lock): every object is uploaded with a retain-until date; retention reads
  the locks before it deletes anything of an artifact, keeps locked artifacts whole (and what they need)
  and reports them with their retain-until date instead of failing;
- a pull writes ``<name>.partial``, checks size and checksum, fsyncs, renames, and writes the manifest last.

One writer per destination prefix (the host that owns the backups) is assumed.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import (
    ARTIFACT_NAME, Catalog, origin_groups)
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    MANIFEST_LIMIT, MANIFEST_SUFFIX, Manifest, check_names, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_bytes, fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch, sweep, told_left
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import PARTIAL_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import Store


def pieces(entry: Manifest) -> List[Tuple[str, Optional[int], str]]:
    """(relative name, size, sha256) of the data objects of one artifact (members of a directory artifact)."""
    if entry.members:
        return [(m['path'], m.get('size'), m['sha256']) for m in entry.members]
    return [(entry.data['artifact'], entry.data.get('size'), entry.data['sha256'])]


def _plain_relative(name: Any, flat: bool = False) -> bool:
    """Whether a name read from a manifest at the destination stays inside the directory it is joined to:
    relative, no empty, ``.`` or ``..`` segment, no NUL (``flat``: no directory part at all)."""
    if not isinstance(name, str) or not name or '\x00' in name or name.startswith('/'):
        return False
    parts = name.split('/')
    return not (flat and len(parts) > 1) and not any(part in ('', '.', '..') for part in parts)


def _check_pull_names(entries: List[Manifest], store: Store) -> None:
    """Refuse, before anything is written, a destination manifest naming a file outside the pull directory
    (someone who can write to the bucket must not be able to write anywhere on this host)."""
    for entry in entries:
        names = [entry.data.get('id')] + [name for name, dummy, dummy2 in _pieces_raw(entry)]
        for index, name in enumerate(names):
            if not _plain_relative(name, flat=index == 0):
                raise IntegrityError('A manifest at %s names %r, which is not a plain relative name inside the '
                                     'download directory: the offsite copy may have been tampered with; nothing '
                                     'was downloaded.' % (store.url, name))


def _private(path: str) -> None:
    """0600 on the downloaded file itself, never through a link: every store already creates it 0600 (S3: O_EXCL
    0600; ssh: rsync --chmod=F600); kept for a store that does not."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _refuse_escaping_manifests(remote: Catalog, store: Store) -> None:
    """The catalog sets aside (as broken) a manifest whose names leave its directory; for a pull that is a sign
    of tampering at the destination, so the whole pull stops before anything is written, as for names that
    ``_check_pull_names`` refuses. Other broken manifests (damaged JSON) only drop their own backup."""
    for broken in remote.broken:
        try:
            raw = safeio.read_regular(broken['manifest'], MANIFEST_LIMIT, what='Manifest', follow=False)
            # Every way a JSON reader could take it: a member named twice is the first of the two for some
            # readers and the last for Python's; a name that escapes under either is tampering.
            readings = [json.loads(raw, object_pairs_hook=hook) for hook in (dict, _first_wins)]
        except (OpsReadyError, ValueError, RecursionError):   # damaged, or nested deeper than json recurses
            continue
        for data in readings:
            if not isinstance(data, dict) or not all(key in data for key in ('id', 'artifact')):
                continue
            try:
                check_names(data)
            except OpsReadyError as exc:
                raise IntegrityError('A manifest at %s names a file outside the download directory (%s): the '
                                     'offsite copy may have been tampered with; nothing was downloaded.'
                                     % (store.url, exc.message))


def _first_wins(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    data: Dict[str, Any] = {}
    for key, value in pairs:
        data.setdefault(key, value)
    return data


def manifest_sha256(path: str) -> Any:
    """The ``sha256`` a manifest file records, read as the catalog reads it (strict JSON, the shape check, never
    through a link). A quick plain-JSON read took the last of two
    equal members where the catalog refuses the manifest: a local copy counted as present that the catalog
    ignores. ValueError when the catalog would not list it; a link (never read through) stays UnsafeFileError."""
    try:
        return read_manifest(path).data['sha256']
    except safeio.UnsafeFileError:
        raise
    except OpsReadyError as exc:
        raise ValueError(exc.message)


def _pieces_raw(entry: Manifest) -> List[Tuple[Any, Any, Any]]:
    if entry.members:
        return [(m.get('path') if isinstance(m, dict) else m, None, None) for m in entry.members]
    return [(entry.data.get('artifact'), None, None)]


def _inside(directory: str, name: str) -> str:
    """``directory``/``name``, refused if a symbolic link below ``directory`` would take it elsewhere."""
    target = os.path.join(directory, name)
    real_dir = os.path.realpath(directory)
    if not os.path.realpath(target).startswith(real_dir + os.sep):
        raise IntegrityError('%s would be written outside %s (a symbolic link in the way?): nothing more was '
                             'downloaded.' % (name, directory))
    return target


def _selected(entries: List[Manifest], engine: Optional[str], database: Optional[str],
              verified_only: bool) -> List[Manifest]:
    result = []
    for entry in entries:
        if engine and entry.engine != engine:
            continue
        if database and entry.database != database:
            continue
        if entry.verified is False:
            continue  # a failed verification is never shipped
        if verified_only and entry.verified is not True:
            continue
        result.append(entry)
    return result


def remote_catalog(store: Store, workdir: str,
                   files: Optional[Dict[str, int]] = None) -> Tuple[Catalog, Dict[str, int]]:
    """The destination's manifests as a Catalog (read into ``workdir``); plus the object listing."""
    files = store.list_files() if files is None else files
    for name in files:
        if name.endswith(MANIFEST_SUFFIX) and '/' not in name:
            with open(os.path.join(workdir, name), 'wb') as handle:
                handle.write(store.read_bytes(name))
    return destination_catalog(workdir, files), files


def destination_catalog(workdir: str, files: Dict[str, int]) -> Catalog:
    """The Catalog of a destination's manifests read into ``workdir``, its artifacts looked at in ``files`` (the
    destination's listing, name -> size): retention counts no full whose data objects are not all there, at their
    manifest's size, as a kept good copy (a partial upload, a deleted object)."""
    catalog = Catalog(workdir)
    catalog.damage_check = lambda entry: remote_damage(entry, files)
    return catalog


def remote_damage(entry: Manifest, files: Dict[str, int]) -> Optional[str]:
    """Why ``entry``'s data objects at the destination are not the ones its manifest describes; None if they are."""
    for name, size, dummy in pieces(entry):
        if name not in files:
            return '%s is missing at the destination' % name
        if isinstance(size, int) and files[name] != size:
            return '%s has %d bytes at the destination, its manifest says %d' % (name, files[name], size)
    return None


def _manifest_bytes(entry: Manifest) -> bytes:
    return safeio.read_regular(entry.manifest_path, MANIFEST_LIMIT, what='Manifest', follow=False)


WORK_KIND = 'offsite'


def _workdir(result: Dict[str, Any], check_mode: bool) -> Scratch:
    """The run's work directory (the destination's manifests, read to build its catalog): a common/scratch.py
    directory in the system temp dir, after the sweep of those killed runs left (``removed_scratch``; not in check
    mode)."""
    swept = sweep(None, [WORK_KIND]) if not check_mode else {'removed_scratch': [], 'warnings': []}
    result.update(removed_scratch=swept['removed_scratch'], scratch_left=[])
    if swept['warnings']:
        result.setdefault('warnings', []).extend(swept['warnings'])
    return Scratch(WORK_KIND, None, 'backup_copy')


def _workdir_done(work: Scratch, result: Dict[str, Any]) -> None:
    """Remove the work directory, checked: one that stays is ``scratch_left`` and ``scratch_warning``."""
    outcome = work.remove()
    if not outcome['cleaned_up']:
        result.update(scratch_left=[outcome['path']], scratch_warning=outcome['warning'])


def broken_warning(broken: Dict[str, Any]) -> str:
    """What an operator reads for a local manifest that cannot be read (``Catalog.broken``)."""
    return ('Manifest %s cannot be read (%s): its backup was not copied to the destination (nor counted by its '
            'retention). Repair or restore the manifest (backup_info lists it under broken_manifests), or remove the '
            'backup if it is not wanted.' % (broken['manifest'], broken.get('error')))


def push(store: Store, src: str, engine: Optional[str] = None, database: Optional[str] = None,
         verified_only: bool = False, verify: str = 'full', check_mode: bool = False,
         policy: Optional[retention.Policy] = None, fail_after: Optional[int] = None) -> Dict[str, Any]:
    """Copy new artifacts of ``src`` to ``store``; then retention at the destination if ``policy``."""
    result: Dict[str, Any] = {'uploaded': [], 'manifests_updated': [], 'already_present': 0, 'deleted': [],
                              'leftovers_removed': [], 'locked': [], 'aborted_uploads': [], 'bytes': 0, 'seconds': 0.0,
                              'destination': store.url, 'removed_scratch': [], 'scratch_left': [],
                              'broken_manifests': [], 'warnings': []}
    if not os.path.isdir(src):
        if check_mode:
            return result  # a backup task earlier in the same check-mode run would have created it
        raise OpsReadyError('Backup directory %s does not exist: nothing to copy. Run the backup first or fix src.'
                            % src, path=src)
    local = Catalog(src)
    # A manifest the catalog cannot read leaves its backup out of the copy: said, never silent (the task listed the
    # other uploads, the damaged full's own logs among them, and the newest backup seemed to be offsite).
    result['broken_manifests'] = [dict(broken) for broken in local.broken]
    result['warnings'] = [broken_warning(broken) for broken in local.broken]
    selected = _selected(local.entries, engine, database, verified_only)
    for entry in selected:
        # every object name the store could not keep is refused before the first upload (check mode too)
        for name in [entry.id + MANIFEST_SUFFIX] + [n for n, dummy, dummy2 in pieces(entry)]:
            store.key(name)
    started = time.monotonic()
    work = _workdir(result, check_mode)
    workdir = work.path
    try:
        check_lock = getattr(store, 'check_object_lock', None)
        if check_lock is not None:
            check_lock()  # before any change: refuse object_lock_mode on a bucket that cannot honour it
        if not check_mode:
            result['aborted_uploads'] = store.abort_incomplete()
        remote, files = remote_catalog(store, workdir)
        remote_ids = {m.id: m for m in remote.entries}
        for entry in selected:
            present = remote_ids.get(entry.id)
            if present is not None and all(present.data.get(k) == entry.data.get(k) for k in ('sha256', 'size')) \
                    and all(files.get(name) == size for name, size, dummy in pieces(entry)):
                if json.loads(_manifest_bytes(entry)) != present.data:
                    # e.g. a verification recorded after the copy: refresh the manifest only
                    result['manifests_updated'].append(entry.id)
                    if not check_mode:
                        store.put_bytes(entry.id + MANIFEST_SUFFIX, _manifest_bytes(entry))
                else:
                    result['already_present'] += 1
                continue
            result['uploaded'].append(entry.id)
            if check_mode:
                continue
            _upload_one(store, local, entry, verify, fail_after)
            result['bytes'] += sum(size or 0 for dummy, size, dummy2 in pieces(entry))
        # The destination as it is now (or would be, in check mode): what was there plus what was sent.
        by_id = {m.id: m for m in selected}
        for artifact_id in result['uploaded'] + result['manifests_updated']:
            entry = by_id[artifact_id]
            with open(os.path.join(workdir, entry.id + MANIFEST_SUFFIX), 'wb') as handle:
                handle.write(_manifest_bytes(entry))
            for name, size, dummy in pieces(entry):
                files[name] = size or 0
            files[entry.id + MANIFEST_SUFFIX] = 0
        remote = destination_catalog(workdir, files)
        leftovers = _remote_leftovers(remote, files)
        # A leftover under Object Lock (data sent, then the run died before its manifest) cannot go yet.
        held = store.locks(leftovers)
        result['leftovers_removed'] = [n for n in leftovers if n not in held]
        result['locked'] = [_lock_record(n, held[n], 'leftover of an interrupted upload') for n in sorted(held)]
        if result['leftovers_removed'] and not check_mode:
            store.delete(result['leftovers_removed'])
        if policy is not None and not policy.empty:
            # this host's keep rules apply to what this host pushes: the sets and origins src holds, never another
            # host's backups under a shared prefix (their own push retains them by their own rules)
            result['not_retained'] = []
            result['deleted'] = prune(store, remote, policy, check_mode, engine, database, locked=result['locked'],
                                      scope=set(origin_groups(local.entries)), not_retained=result['not_retained'])
    except BaseException as exc:
        raise told_left(exc, work.remove())
    _workdir_done(work, result)
    result['seconds'] = round(time.monotonic() - started, 3)
    if result['seconds'] and result['bytes']:
        result['throughput_mb_s'] = round(result['bytes'] / result['seconds'] / 1e6, 1)
    return result


def _upload_one(store: Store, local: Catalog, entry: Manifest, verify: str, fail_after: Optional[int]) -> None:
    for name, size, sha in pieces(entry):
        path = os.path.join(local.directory, name)
        if not os.path.isfile(path):
            raise IntegrityError('Artifact %s is missing locally: its manifest names it but the file is gone. '
                                 'Nothing of it was copied.' % path, path=path)
        sent = store.upload(path, name, fail_after=fail_after)
        if sent['sha256'] != sha or (size is not None and sent['size'] != size):
            store.delete([name])
            raise IntegrityError('Local artifact %s does not match its manifest (sha256 %s, manifest %s): it is '
                                 'corrupt and was not copied; run backup_verify and take a new backup.'
                                 % (path, sent['sha256'], sha), path=path)
        if verify == 'full':
            remote_sha = store.sha256(name)
            if remote_sha != sha:
                raise IntegrityError('The copy of %s at %s reads back with sha256 %s, not %s: the manifest was not '
                                     'uploaded; retry.' % (name, store.url, remote_sha, sha), path=path)
        elif verify == 'size':
            listed = store.list_files().get(name)
            if size is not None and listed != size:
                raise IntegrityError('The copy of %s at %s has %s bytes, not %d: the manifest was not uploaded; '
                                     'retry.' % (name, store.url, listed, size), path=path)
    # Last: the manifest, so the artifact is visible as complete only now.
    store.put_bytes(entry.id + MANIFEST_SUFFIX, _manifest_bytes(entry))


def _remote_leftovers(remote: Catalog, files: Dict[str, int]) -> List[str]:
    known = set()
    for entry in remote.all_entries:
        known.add(entry.id + MANIFEST_SUFFIX)
        known.update(piece[0] for piece in pieces(entry))
    leftovers = []
    for name in sorted(files):
        # an artifact whose manifest is there (one the catalog refuses: damaged JSON) is no leftover of an upload
        if name in known or name.endswith(MANIFEST_SUFFIX) or name + MANIFEST_SUFFIX in files:
            continue
        if ARTIFACT_NAME.search(name) or name.endswith(PARTIAL_SUFFIX):
            leftovers.append(name)
    return leftovers


def _lock_record(artifact_id: str, held: Dict[str, Any], reason: str) -> Dict[str, Any]:
    until = held.get('retain_until')
    return {'id': artifact_id, 'mode': held.get('mode'), 'reason': reason,
            'retain_until': until.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ') if until else None}


def _latest(a: Dict[str, Any], b: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if b is None:
        return a
    if a.get('retain_until') is None or b.get('retain_until') is None:  # a legal hold has no end
        return a if a.get('retain_until') is None else b
    return a if a['retain_until'] >= b['retain_until'] else b


def prune(store: Store, remote: Catalog, policy: retention.Policy, check_mode: bool,
          engine: Optional[str] = None, database: Optional[str] = None,
          locked: Optional[List[Dict[str, Any]]] = None, scope: Optional[Set[Tuple[str, Any, str]]] = None,
          not_retained: Optional[List[Dict[str, Any]]] = None) -> List[str]:
    """Retention on the destination's catalog (chain-safe, as backup_prune); manifest first, then data.

    ``scope``: the (engine, database, origin group) of the pushed catalog (``catalog.origin_groups``); nothing of
    another set or origin of the destination is deleted (another host's backups under a shared prefix), and each
    such one is appended to ``not_retained`` ({engine, database, origin}). None: every set (``engine``/``database``
    still narrow it).

    Immutable copies (S3 Object Lock): the locks of an artifact's data objects and manifest are read
    BEFORE anything of it is deleted; a locked artifact is kept whole (manifest included, so it stays a
    usable, catalogued copy) and recorded in ``locked`` with its retain-until date, as is any artifact a
    locked one still needs (its full, the logs it replays). Never an error: the next run deletes it.
    """
    # origin_succession: a set's successive origins (one server whose identity changed) are one timeline
    planned = retention.plan(remote, policy, succession=policy.origin_succession)
    outside: Set[str] = set()
    if scope is not None:
        for key, members in origin_groups(remote.entries).items():
            if key not in scope:
                outside.update(m.id for m in members)
                if not_retained is not None:
                    not_retained.append({'engine': key[0], 'database': key[1], 'origin': key[2]})
        if not_retained is not None:
            not_retained.sort(key=lambda k: (k['engine'], str(k['database']), k['origin']))
    doomed = []
    for artifact_id in sorted(planned['delete']):
        entry = remote.get(artifact_id)
        if (engine and entry.engine != engine) or (database and entry.database != database) or artifact_id in outside:
            continue
        doomed.append(entry)
    problems = retention.dependency_violations(remote, sorted(planned['keep']), [e.id for e in doomed])
    if problems:
        raise OpsReadyError('Retention at the destination would break a kept chain: %s. Nothing was deleted.'
                            % '; '.join(problems[:3]))
    records: List[Dict[str, Any]] = []
    if doomed:
        held_by: Dict[str, Dict[str, Any]] = {}
        names = {e.id: [e.id + MANIFEST_SUFFIX] + [n for n, dummy, dummy2 in pieces(e)] for e in doomed}
        found = store.locks([n for group in names.values() for n in group])
        for entry in doomed:
            for name in names[entry.id]:
                if name in found:
                    held_by[entry.id] = _latest(found[name], held_by.get(entry.id))
        for artifact_id in sorted(held_by):
            records.append(_lock_record(artifact_id, held_by[artifact_id], 'locked'))
        # What a locked artifact needs stays too (it is kept, after all): a fix point over the chain rules.
        keep = set(planned['keep']) | set(held_by)
        while True:
            remaining = [e.id for e in doomed if e.id not in keep]
            needed: Set[str] = set()
            for problem in retention.dependency_violations(remote, sorted(keep), remaining):
                needed.update(i for i in remaining
                              if problem.startswith(i + ' is a log') or problem.endswith('parent ' + i))
            if not needed:
                break
            for artifact_id in sorted(needed):
                records.append({'id': artifact_id, 'mode': None, 'retain_until': None,
                                'reason': 'needed by a locked copy'})
            keep |= needed
        doomed = [e for e in doomed if e.id not in keep]
    if locked is not None:
        locked.extend(records)
    if not check_mode:
        for entry in doomed:
            store.delete([entry.id + MANIFEST_SUFFIX])
            store.delete([name for name, dummy, dummy2 in pieces(entry)])
    return [e.id for e in doomed]


def pull(store: Store, dest: str, engine: Optional[str] = None, database: Optional[str] = None,
         scope: str = 'all', check_mode: bool = False) -> Dict[str, Any]:
    """Fetch the destination's artifacts (``scope=latest_chain``: only what restores the newest point)
    into the local directory ``dest``, each checked against its manifest before the manifest is written."""
    result: Dict[str, Any] = {'downloaded': [], 'already_present': 0, 'bytes': 0, 'seconds': 0.0,
                              'destination': store.url, 'removed_scratch': [], 'scratch_left': []}
    started = time.monotonic()
    work = _workdir(result, check_mode)
    workdir = work.path
    try:
        remote, files = remote_catalog(store, workdir)
        _refuse_escaping_manifests(remote, store)
        wanted = _selected(remote.entries, engine, database, False)
        if scope == 'latest_chain':
            chosen = []
            for key in sorted({(m.engine, m.database or '') for m in wanted}):
                sub = Catalog(workdir, engine=key[0], database=key[1] or None)
                # the newest chain of each server whose backups the set holds (a chain never mixes two)
                for origin in sub.origins:
                    chosen += sub.view(key[0], key[1] or None, origin=origin).chain_for(None)
            ids = {m.id for m in chosen}
            wanted = [m for m in wanted if m.id in ids]
        if not wanted:
            raise OpsReadyError('No backup%s with a manifest at %s.' % (
                ' of %s' % '/'.join(x for x in (engine, database) if x) if engine or database else '', store.url))
        _check_pull_names(wanted, store)
        # Root verifies each download, then renames it into dest by name: in a dest another account can write (or
        # rename things above), that account swapped the verified file for its own in between, and its bytes were
        # kept as a checked artifact of root's catalog (restored as root later). The db_backup dest rule applies.
        if check_mode:
            safeio.check_backup_dir(dest, secret=True, what='pulled backups')
        else:
            safeio.prepare_backup_dir(dest, secret=True, what='pulled backups')
        for entry in wanted:
            local_manifest = _inside(dest, entry.id + MANIFEST_SUFFIX) if os.path.isdir(dest) else ''
            if local_manifest and os.path.isfile(local_manifest):
                try:
                    same = manifest_sha256(local_manifest) == entry.data['sha256']
                except (ValueError, OpsReadyError):   # damaged, or a link (never read through): fetched again
                    same = False
                if same:
                    result['already_present'] += 1
                    continue
            result['downloaded'].append(entry.id)
            if check_mode:
                continue
            for name, size, sha in pieces(entry):
                if files.get(name) is None:
                    raise IntegrityError('%s at %s has a manifest but its data object %s is missing: do not rely on '
                                         'this copy.' % (entry.id, store.url, name))
                target = os.path.join(dest, name)
                safeio.makedirs(os.path.dirname(target), 0o700, 0o700)
                target = _inside(dest, name)
                partial = target + PARTIAL_SUFFIX
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)      # a leftover, or a link planted there: removed, never written through
                got = store.download(name, partial)
                if got['sha256'] != sha or (size is not None and got['size'] != size):
                    os.unlink(partial)
                    raise IntegrityError('%s from %s does not match its manifest (sha256 %s, manifest %s): the '
                                         'offsite copy is corrupt; nothing was kept.'
                                         % (name, store.url, got['sha256'], sha))
                _private(partial)
                os.replace(partial, target)
                fsync_dir(os.path.dirname(target))
                result['bytes'] += got['size']
            with open(os.path.join(workdir, entry.id + MANIFEST_SUFFIX), 'rb') as handle:
                atomic_write_bytes(_inside(dest, entry.id + MANIFEST_SUFFIX), handle.read(), mode=0o600)
    except BaseException as exc:
        raise told_left(exc, work.remove())
    _workdir_done(work, result)
    result['seconds'] = round(time.monotonic() - started, 3)
    return result


__all__ = ['push', 'pull', 'prune', 'pieces', 'remote_catalog']
