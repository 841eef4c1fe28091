# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore of file-tree archives: verify first, refuse escaping members, stage, then swap in.

Extraction goes into a staging directory next to the target root; only when the whole archive has
been read without error are the files moved into place (one rename each), so a corrupt or hostile
archive leaves the target as it was.

The staging directory (``.opsready-restore-<12 hex>`` in dest, this uid's, 0700) holds the archive's files in
plaintext. The run holds an exclusive ``flock`` on it (on the directory itself: any name inside could be an
archive member's) from before it takes its name until it is removed; the kernel drops the lock however the run
ends. Its removal is checked (``scratch_left`` and a warning naming it), and the next restore into the same dest
removes a staging directory a killed run left (``sweep_staging``: ``removed_scratch``) when the name, the owner
(this uid, 0700, not a link) and a free lock prove it a dead run's. It is made under a provisional name
(``.opsready-restore-new-*``) and renamed once locked, so that no sweep ever sees it unlocked.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import hashlib
import os
import posixpath
import re
import secrets
import stat
import struct
import tarfile
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Type

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import of_origin
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    MANIFEST_SUFFIX, Manifest, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common.encryption import Identity
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common import scratch
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import (
    NETWORK_FILESYSTEMS, filesystem_type, told_left)
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    HAS_ZSTD, drain, open_decompressed, verify_file)
from ansible_collections.opsready.operations.plugins.module_utils.drill.passed_over import damage_of
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio, tarsafe
from ansible_collections.opsready.operations.plugins.module_utils.files.archive import ENGINE
from ansible_collections.opsready.operations.plugins.module_utils.files.tarsafe import (  # noqa: F401 (re-exported)
    _open_parents, apply_flags, apply_xattrs, archived_flags, device_problem, extract_member, foreign_setid,
    member_xattrs, mtime_ns, owner_entry, path_key, read_stream)


def find_archive(src: str, set_name: Optional[str] = None, artifact: Optional[str] = None,
                 origin: Optional[str] = None, warnings: Optional[List[str]] = None,
                 damage: Optional[Dict[str, Any]] = None) -> Manifest:
    """``src`` is one archive (its manifest must exist) or a backup directory (newest of the set; of ``origin``'s
    archives when several hosts write the set). ``damage`` (a dict) receives, for a directory, what the set's catalog
    holds of backups passed over (drill/passed_over.damage_of): a drill names them."""
    if os.path.isfile(src):
        manifest_path = src if src.endswith(MANIFEST_SUFFIX) else src + MANIFEST_SUFFIX
        if not os.path.isfile(manifest_path):
            raise IntegrityError('%s has no manifest (%s): it is not a complete backup and will not be '
                                 'restored.' % (src, os.path.basename(manifest_path)), path=src)
        return read_manifest(manifest_path)
    if not os.path.isdir(src):
        raise OpsReadyError('src %s %s: neither a backup directory nor an archive.'
                            % (src, safeio.describe_path(src)), path=src)
    catalog = of_origin(src, ENGINE, set_name, origin, artifact=artifact, warnings=warnings)
    if damage is not None:
        damage.update(damage_of(catalog, ENGINE, set_name))
    if artifact:
        return catalog.get(os.path.basename(artifact))
    candidates = [m for m in catalog.fulls() if catalog.usable(m)]
    if not candidates:
        raise OpsReadyError('No file backup%s with a manifest in %s.'
                            % (' of set %r' % set_name if set_name else '', src), path=src)
    return candidates[-1]


def _open(manifest: Manifest, identities: Optional[Sequence[Identity]]) -> Any:
    """The archive's tar stream, decrypted on the fly when the manifest says it is encrypted."""
    try:
        return open_decompressed(manifest.path, manifest.data['compression'], manifest.data.get('encryption'),
                                 identities)
    except IntegrityError:
        raise
    except OpsReadyError as exc:
        # a wrong key: say whether it was retired by a key rotation and what it still opens
        from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import retired_key_hint
        raise OpsReadyError(exc.message + retired_key_hint(manifest, identities or []), **exc.details)


# What a damaged stream raises below the decryption: zstd (a frame that fails its content checksum or does not
# parse), gzip (CRC-32, a cut member) and tarfile. Named, so a bug of ours (TypeError...) still shows as one.
_CORRUPT: Tuple[Type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error)
if HAS_ZSTD:
    import zstandard
    _CORRUPT += (zstandard.ZstdError,)


# read_stream's outcome: a stream refused while a real run extracts it leaves only staging, which is removed; header
# values no file can have are left to refuse_ambiguous, which names every such member at once
_NOTHING = 'Nothing was written.'


@contextlib.contextmanager
def _corrupt_is_integrity_error(manifest: Manifest) -> Iterator[None]:
    try:
        yield
    except _CORRUPT as exc:
        raise IntegrityError('Archive %s cannot be read (%s: %s): it is corrupt; do not restore from it. Nothing was '
                             'written.' % (manifest.path, type(exc).__name__, exc), path=manifest.path)


def list_members(manifest: Manifest, identities: Optional[Sequence[Identity]] = None) -> List[tarfile.TarInfo]:
    """Read the archive's member list (used by check mode and to refuse hostile archives early).

    Reads to the end, so an encrypted archive is fully authenticated before anything is extracted.
    """
    members = []
    with _corrupt_is_integrity_error(manifest), _open(manifest, identities) as stream:
        with read_stream(stream, manifest.path, outcome=_NOTHING, values=False) as tar:
            for member in tar:
                members.append(member)
        drain(stream)
    return members


def _open_dest(dest: str, create: bool) -> int:
    """A descriptor of ``dest`` (made 0755 where missing when ``create``; without it, -1 when dest does not exist as
    a directory, the deepest directory that does being walked to all the same, for its refusal). Walked one
    component at a time: opening dest by path followed every link on the way, and an account owning a directory
    above dest (a user's home) could link dest's name to a directory of root's (/etc) - root restored the archive
    there. A link is followed only where no account but root could have made it (``safeio.open_directory``).

    Check mode works on the descriptor returned, as the real run does: it opened dest a second time by its path,
    and compared the archive with whatever the name led to by then."""
    if create:
        return safeio.make_directories(dest, 0o755)
    try:
        return safeio.open_directory(dest)
    except (FileNotFoundError, NotADirectoryError):
        pass   # not there (yet): the run makes it; nothing in it to compare
    existing = os.path.abspath(dest)
    while existing != '/' and not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if os.path.isdir(existing):
        os.close(safeio.open_directory(existing))
    return -1


def restore_archive(manifest: Manifest, dest: str, only: Optional[List[str]] = None,
                    check_mode: bool = False, identities: Optional[Sequence[Identity]] = None) -> Dict[str, Any]:
    """Verify, extract into staging, then move each changed file into place under ``dest``."""
    verify_file(manifest.path, manifest.data['sha256'], manifest.data.get('size'))
    members = list_members(manifest, identities)
    # a member escaping the root, a path archived as two different things, a hard link to a directory, a header no
    # file can have: refused here, in check mode too, before anything is written (the real run used to fail midway
    # through the moves). The one check backup_verify runs too (through the module: a test replaces it in both)
    tarsafe.refuse_unrestorable(members, manifest.path, outcome=_NOTHING)
    wanted = _selected(members, only, manifest.path)
    # once per path, the first: archives written before file_backup dropped overlapping paths hold some members
    # twice (the staged file is moved in once; the second move found nothing); extraction skips the repeats too, so
    # the entry put in place is the one check mode and the move compare
    unique: Dict[str, tarfile.TarInfo] = {}
    for member in wanted:
        unique.setdefault(path_key(member.name), member)
    wanted = list(unique.values())
    # files that had hard links outside the backed-up set (file_backup recorded them): each comes back as a file of
    # its own, which the operator hears at restore time too
    names = {m.name for m in wanted}
    outside = [e for e in manifest.data.get('hardlinks_outside') or [] if str(e.get('path', '')).lstrip('/') in names]
    if check_mode:
        # the refusal of a dest through another account's link, as the run gives it; then dest only through this
        # descriptor, never by its name again (-1: no dest yet)
        opened = _open_dest(dest, create=False)
        foreseen: List[Dict[str, str]] = []
        unowned: List[Dict[str, Any]] = []
        try:
            changed = _would_restore(manifest, identities, wanted, dest, foreseen, unowned,
                                     archived=_first_of_each(members), dest_fd=None if opened < 0 else opened)
            dirs = {m.name for m in wanted if m.isdir()}
            listed = set(changed)
            if opened >= 0:
                _refuse_as_the_restore_would(opened, dest, [m for m in wanted if m.name in listed])
        finally:
            if opened >= 0:
                os.close(opened)
        # as the real run counts: the device nodes another user than root cannot make are neither
        made = [m for m in wanted if not m.isdir() and not (m.isdev() and os.geteuid() != 0)]
        left_names = partial_link_groups(members, wanted, set(changed))
        return {'restored': [n for n in changed if n not in dirs], 'directories': [n for n in changed if n in dirs],
                'unchanged': len(made) - len([n for n in changed if n not in dirs]),
                'staged': None, 'not_restored': foreseen, 'owners_not_restored': owners_summary(unowned),
                'hardlinks_outside': outside, 'hardlinks_left': left_names,
                'warnings': [hardlinks_left_warning(left_names)] if left_names else []}
    dest_fd = _open_dest(dest, create=True)
    # dest is opened once and the staging directory made in it and used only through descriptors: dest may be a
    # user's (a restore into /home/alice), who can rename root's staging directory and put a link to /etc at its
    # name while root extracts into it or moves files out of it.
    problems: List[Dict[str, str]] = []
    owners: List[Dict[str, Any]] = []
    directories: List[str] = []
    try:
        swept = sweep_staging(dest_fd, dest)
        name, staging_fd = _make_staging(dest_fd, dest)
        staging = '/proc/self/fd/%d' % staging_fd   # the directory itself, whatever its name leads to now
        left: Optional[str] = None
        try:
            with _corrupt_is_integrity_error(manifest), _open(manifest, identities) as stream:
                with read_stream(stream, manifest.path, outcome=_NOTHING, values=False) as tar:
                    names = {m.name for m in wanted}
                    # a hard link selected by ``only`` without its first name: that file is extracted into staging
                    # as well (the link's content is there), but not put in place; what its extraction reports (a
                    # setuid bit cleared, an owner not given) is said of the names put in place, the links
                    sources = _unselected_sources(wanted)
                    selected = set(names)
                    names |= set(sources)
                    not_made: Set[str] = set()
                    extracted: Set[str] = set()
                    for member in tar:
                        key = path_key(member.name)
                        if key in extracted:
                            continue   # a repeat of an entry extracted already (refuse_ambiguous): the first is kept
                        if member.name in names:
                            extracted.add(key)
                            told: List[Dict[str, str]] = problems if member.name in selected else []
                            gave: List[Dict[str, Any]] = owners if member.name in selected else []
                            if not extract_member(tar, member, staging, numeric_owner=os.geteuid() == 0,
                                                  archive=manifest.path, dest_fd=staging_fd, problems=told):
                                not_made.add(member.name)
                            elif os.geteuid() != 0 and not member.islnk() and not _owned_as_archived(
                                    staging_fd, member):
                                gave.append(owner_entry(member))
                            for link in (sources.get(member.name, []) if member.name not in selected else []):
                                problems.extend(dict(entry, path=link) for entry in told)
                                owners.extend(dict(entry, path=link) for entry in gave)
                drain(stream)
            wanted = [m for m in wanted if m.name not in not_made]   # reported in problems
            restored = _swap_in(staging_fd, dest, wanted, dest_fd, manifest.path, problems, directories)
        except BaseException as exc:
            left = _remove_staging(dest_fd, name, staging_fd)
            if left is None:
                raise
            raise told_left(exc, {'cleaned_up': False, 'path': os.path.join(dest, name),
                                  'warning': staging_warning(os.path.join(dest, name), left)})
        left = _remove_staging(dest_fd, name, staging_fd)
    finally:
        os.close(dest_fd)
    warnings = list(swept['warnings'])
    if left is not None:
        warnings.append(staging_warning(os.path.join(dest, name), left))
    put = set(restored)
    left_names = partial_link_groups(members, wanted, {m.name for m in wanted if os.path.join(dest, m.name) in put})
    if left_names:
        warnings.append(hardlinks_left_warning(left_names))
    return {'restored': restored, 'directories': directories, 'hardlinks_left': left_names,
            'unchanged': len([m for m in wanted if not m.isdir()]) - len(restored),
            'staged': None, 'not_restored': problems, 'owners_not_restored': owners_summary(owners),
            'hardlinks_outside': outside,
            'removed_scratch': swept['removed_scratch'],
            'scratch_left': [os.path.join(dest, name)] if left is not None else [], 'warnings': warnings}


def _first_of_each(members: List[tarfile.TarInfo]) -> Dict[str, tarfile.TarInfo]:
    """Each member name's first member (a repeat later in the archive is not the one restored)."""
    first: Dict[str, tarfile.TarInfo] = {}
    for member in members:
        first.setdefault(member.name, member)
    return first


def partial_link_groups(members: List[tarfile.TarInfo], wanted: List[tarfile.TarInfo],
                        restored: Set[str]) -> List[Dict[str, List[str]]]:
    """The result's ``hardlinks_left``: each archived hard link group (a file and the links to it) of which ``only``
    selected some names and the restore put at least one of them in place (``restored``: member names), with the
    names it did not select - paths as backed up. Those keep what they hold in the target (as with tar): an old copy
    of the file, or, when they were one file with a restored name, no longer linked to it."""
    groups: Dict[str, List[str]] = {}
    for member in members:
        if member.islnk():
            groups.setdefault(member.linkname, [member.linkname]).append(member.name)
    selected = {m.name for m in wanted}
    found = []
    for names in groups.values():
        put = [n for n in names if n in restored]
        others = [n for n in names if n not in selected]
        if put and others:
            found.append({'restored': ['/' + n for n in put], 'left': ['/' + n for n in others]})
    return found


def hardlinks_left_warning(groups: List[Dict[str, List[str]]]) -> str:
    """The warning of ``hardlinks_left`` (the first five groups)."""
    shown = '; '.join('%s restored, not %s' % (', '.join(g['restored']), ', '.join(g['left'])) for g in groups[:5])
    more = ' ...' if len(groups) > 5 else ''
    return ('%d hard link group%s restored in part (hardlinks_left): %s%s. The names only did not select keep what '
            'they hold in the target (an older copy, or a file no longer linked to the names restored); add them to '
            'only to restore the group whole.' % (len(groups), '' if len(groups) == 1 else 's', shown, more))


def _unselected_sources(wanted: List[tarfile.TarInfo]) -> Dict[str, List[str]]:
    """The first names of hard links among ``wanted`` that ``wanted`` does not hold (``only`` chose the links
    without them), each with those links' names: the restore puts at each link's name a file holding the first
    name's bytes, mode and owner."""
    selected = {m.name for m in wanted}
    found: Dict[str, List[str]] = {}
    for member in wanted:
        if member.islnk() and member.linkname not in selected:
            found.setdefault(member.linkname, []).append(member.name)
    return found


def _selected(members: List[tarfile.TarInfo], only: Optional[List[str]], archive: str) -> List[tarfile.TarInfo]:
    """The members ``only`` names (each path as backed up, and what is below it; ``/`` is everything; a trailing or
    doubled slash changes nothing). A path of ``only`` that names nothing archived is refused: a typo, or a path of
    another set, ended "ok" with nothing restored."""
    if not only:
        return members
    prefixes = [posixpath.normpath('/' + o).strip('/') for o in only]
    named: Set[int] = set()
    found = []
    for member in members:
        hits = {i for i, prefix in enumerate(prefixes)
                if not prefix or member.name == prefix or member.name.startswith(prefix + '/')}
        if hits:
            named |= hits
            found.append(member)
    missing = [o for i, o in enumerate(only) if i not in named]
    if missing:
        example = next((m.name for m in members if not m.isdir()), members[0].name if members else '')
        raise OpsReadyError('only: %s name%s nothing archived in %s. Nothing was restored; give each path as it was '
                            'backed up (e.g. /%s), or leave it out.'
                            % (', '.join(missing), 's' if len(missing) == 1 else '', archive, example),
                            path=archive, missing=missing)
    return found


OWNERS_LISTED = 20


def owners_summary(owners: List[Dict[str, Any]]) -> Dict[str, Any]:
    """``owners_not_restored``: how many entries a restore by another user than root could not give their archived
    owner or group (tarfile leaves them the restoring user's, in silence), and the first ``OWNERS_LISTED`` of them
    with what they were archived with: a tree of 100,000 files would otherwise make a result of 100,000 entries."""
    return {'count': len(owners), 'entries': owners[:OWNERS_LISTED]}


def _owned_as_archived(staging_fd: int, member: tarfile.TarInfo) -> bool:
    """Whether the staged copy of ``member`` has its archived owner and group (a restore by another user than root:
    only the restoring user's own files, in one of its groups, do). The copy put in place keeps them."""
    st = _staged_stat(staging_fd, [p for p in member.name.split('/') if p not in ('', '.')], member, archive='')
    return st is None or (st.st_uid, st.st_gid) == (member.uid, member.gid)


def _staged_stat(staging_fd: int, parts: List[str], member: tarfile.TarInfo,
                 archive: str) -> Optional[os.stat_result]:
    """The lstat of ``member``'s staged copy (``parts`` below the staging directory ``staging_fd``; the staging
    directory itself when ``parts`` is empty, the archive's root member), entered through its staged parents without
    following a link; None when it or a directory on its way was not made."""
    holder = _open_parents(staging_fd, parts, member, archive) if parts else os.dup(staging_fd)
    if holder is None:
        return None
    try:
        return os.stat(parts[-1] if parts else '.', dir_fd=holder, follow_symlinks=False)
    except FileNotFoundError:
        return None
    finally:
        os.close(holder)


STAGING_PREFIX = '.opsready-restore-'
STAGING_NAME = re.compile(r'\A\.opsready-restore-[0-9a-f]{12}\Z')


def staging_warning(path: str, reason: str) -> str:
    return ('staging directory %s (files extracted from the archive, in plaintext) was not removed (%s): remove it '
            'by hand (lsattr shows an immutable or append-only flag; chattr -i / -a clears it)' % (path, reason))


def sweep_staging(dest_fd: int, dest: str) -> Dict[str, List[str]]:
    """Remove the staging directories in dest that killed restores left: ``{'removed_scratch': [paths],
    'warnings': [...]}``. Only a directory (not a link) with the staging name, this uid's, 0700, whose lock can be
    taken (its run ended) is removed, through descriptors (dest may be a user's). On a network filesystem (the
    lock may not be seen across hosts) nothing is removed and a warning says so."""
    removed: List[str] = []
    warnings: List[str] = []
    names = [n for n in sorted(os.listdir(dest_fd)) if STAGING_NAME.match(n)]
    fstype = filesystem_type(dest) if names else None
    if fstype in NETWORK_FILESYSTEMS:
        return {'removed_scratch': removed, 'warnings': [
            'staging directories that killed restores left in %s (%s) were not removed: it is on a %s filesystem, '
            'where the lock that proves a restore gone may not be seen by another host. Remove them by hand once no '
            'restore into %s runs' % (dest, ', '.join(names), fstype, dest)]}
    for name in names:
        try:
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dest_fd)
        except OSError:
            continue   # gone, a link, not a directory: not provably a killed run's
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
            os.close(fd)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue   # held: a restore into dest runs
        reason = _remove_staging(dest_fd, name, fd)
        if reason is None:
            removed.append(os.path.join(dest, name))
        else:
            warnings.append('left by a killed restore: ' + staging_warning(os.path.join(dest, name), reason))
    return {'removed_scratch': removed, 'warnings': warnings}


def _make_staging(dest_fd: int, dest: str) -> Tuple[str, int]:
    """A new 0700 directory of root's in ``dest`` (its name and descriptor), opened without following a link and
    checked to be the one made (its owner could have swapped another one in between)."""
    if not os.path.isdir('/proc/self/fd'):
        raise OpsReadyError('/proc is not mounted: file_restore extracts through /proc/self/fd so that the owner of '
                            '%s cannot redirect it. Mount /proc and run again.' % dest, path=dest)
    for _attempt in range(100):
        token = secrets.token_hex(6)
        provisional, name = STAGING_PREFIX + 'new-' + token, STAGING_PREFIX + token
        try:
            os.mkdir(provisional, 0o700, dir_fd=dest_fd)
            break
        except FileExistsError:
            continue
    else:
        raise OpsReadyError('Cannot create a staging directory in %s.' % dest, path=dest)
    try:
        fd = os.open(provisional, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dest_fd)
    except OSError as exc:
        raise OpsReadyError('The staging directory %s was replaced right after it was created (%s): someone else '
                            'writes into %s. Nothing was restored.'
                            % (os.path.join(dest, provisional), exc.strerror, dest), path=dest)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        os.close(fd)
        raise OpsReadyError('The staging directory %s was replaced right after it was created: someone else writes '
                            'into %s. Nothing was restored.' % (os.path.join(dest, provisional), dest), path=dest)
    try:
        # locked before it takes the name a sweep looks for: a sweep never finds it unlocked
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(provisional, name, src_dir_fd=dest_fd, dst_dir_fd=dest_fd)
        now = os.stat(name, dir_fd=dest_fd, follow_symlinks=False)
    except OSError as exc:
        _remove_staging(dest_fd, provisional, fd)
        raise OpsReadyError('The staging directory %s could not be named %s (%s): someone else writes into %s. '
                            'Nothing was restored.' % (os.path.join(dest, provisional), name, exc.strerror, dest),
                            path=dest)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        _remove_staging(dest_fd, name, fd)
        raise OpsReadyError('The staging directory %s was replaced right after it was created: someone else writes '
                            'into %s. Nothing was restored.' % (os.path.join(dest, name), dest), path=dest)
    return name, fd


def _remove_staging(dest_fd: int, name: str, fd: int) -> Optional[str]:
    """Empty the staging directory through its descriptor, then remove its name only while the name is still it;
    closes ``fd``. None once it is gone, else why not (the first failures): every entry is tried, so what can go
    goes. The lock on ``fd`` is kept until the end: a concurrent sweep sees the directory in use."""
    errors: List[str] = []

    def failed(exc: OSError) -> None:
        if len(errors) < 5:
            errors.append('%s: %s' % (exc.filename or name, exc.strerror or exc))

    try:
        for top, dirs, files, top_fd in os.fwalk('.', topdown=False, dir_fd=fd):
            for entry in files:
                try:
                    os.unlink(entry, dir_fd=top_fd)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    exc.filename = os.path.normpath(os.path.join(top, entry))
                    failed(exc)
            for entry in dirs:
                try:
                    try:
                        os.rmdir(entry, dir_fd=top_fd)
                    except NotADirectoryError:
                        os.unlink(entry, dir_fd=top_fd)   # a symlink to a directory, listed among dirs
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    exc.filename = os.path.normpath(os.path.join(top, entry))
                    failed(exc)
        mine = os.fstat(fd)
        now = os.stat(name, dir_fd=dest_fd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            return '; '.join(errors) or 'its name now leads elsewhere (renamed by another account)'
        os.rmdir(name, dir_fd=dest_fd)
    except OSError as exc:
        failed(exc)
    finally:
        os.close(fd)
    return '; '.join(errors) or None


def _same_node(member: tarfile.TarInfo, st: os.stat_result) -> bool:
    """Whether ``st`` is the FIFO or device node ``member`` describes (its kind and device numbers)."""
    if member.isfifo():
        return stat.S_ISFIFO(st.st_mode)
    kind = stat.S_ISCHR if member.ischr() else stat.S_ISBLK
    return kind(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (member.devmajor, member.devminor)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0)


def _open_under(dest_fd: int, dest: str, parts: List[str], create: bool) -> int:
    """A descriptor of ``dest/<parts>``, entered one directory at a time without following a symlink
    that someone other than root could have planted (a user who owns a directory of the tree could
    otherwise swap a directory for a link to /etc while root restores into it)."""
    fd = os.dup(dest_fd)
    walked = dest
    try:
        for part in parts:
            walked = os.path.join(walked, part)
            try:
                child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # created meanwhile: opened below with the same rules
                child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if not (stat.S_ISLNK(st.st_mode) and st.st_uid in (0, os.geteuid())
                        and safeio.directory_risk(os.fstat(fd)) is None):
                    raise OpsReadyError(
                        'Refusing to restore under %s: it is %s%s, in a directory others can write, and it is not '
                        'followed (it could have been planted to redirect the restore). Files listed before it were '
                        'restored; remove it and run again.' % (walked, safeio.kind_of(st.st_mode),
                                                                ' owned by uid %d' % st.st_uid
                                                                if stat.S_ISLNK(st.st_mode) else ''), path=walked)
                # root's own link in a directory only root can write (e.g. /var/run -> /run): followed, as long as
                # it stays under dest - a restore into another root (an inspection directory holding etc -> /etc)
                # wrote into the live tree through it
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                root = _fd_path(dest_fd)
                try:
                    leads_to = _fd_path(child) if root != '/' else root
                except OSError as exc:   # a path the kernel cannot give back (longer than a page)
                    leads_to = '(unresolved: %s)' % (exc.strerror or exc)
                if root != '/' and not _under(leads_to, root):
                    os.close(child)
                    raise OpsReadyError(
                        'Refusing to restore under %s: it is a symlink to %s, outside the restore root %s, and it is '
                        'not followed (a restore never writes outside its dest). Nothing below it was restored; '
                        'remove the link, or restore into another root, and run again.' % (walked, leads_to, dest),
                        path=walked)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fd_path(fd: int) -> str:
    """The path the open directory ``fd`` has now (what the kernel resolves it to)."""
    return os.readlink('/proc/self/fd/%d' % fd)


def _known_path(fd: int) -> str:
    """``_fd_path``, or '' where the kernel cannot give it back (a path longer than a page)."""
    try:
        return _fd_path(fd)
    except OSError:
        return ''


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip('/') + '/')


class Wanted:
    """What an archived member is once restored, for ``settled``: the real restore describes it by the staged copy
    (``staged_wanted``: what extraction made of it on this host), check mode by the archive's header (``archived_
    wanted``) and the member's bytes read afterwards. ``owner`` None: not compared (a restore that is not root's
    gives every file its own user). ``xattrs``, ``flags`` and ``content`` are called only once the cheaper signals
    agree; ``content(target_fd, st)`` says whether the open regular file holds the member's bytes."""

    def __init__(self, mode: int, owner: Optional[Tuple[int, int]], mtime: int, size: int,
                 xattrs: Callable[[], Dict[str, bytes]], flags: Callable[[], Set[str]],
                 content: Callable[[int, os.stat_result], bool]) -> None:
        self.mode, self.owner, self.mtime, self.size = mode, owner, mtime, size
        self.xattrs, self.flags, self.content = xattrs, flags, content


def settled(member: tarfile.TarInfo, st: Optional[os.stat_result], parent_fd: int, name: str,
            wanted: Wanted) -> bool:
    """Whether the existing entry ``name`` in ``parent_fd`` (lstat ``st``, None when absent) already is ``member``
    as ``wanted`` describes it, so a restore leaves it alone: kind, mode, owner, mtime to the nanosecond, size or
    link target or device numbers, kept extended attributes (on symlinks and nodes too), file flags, and content
    last (sparse files by their data extents). The one comparison of the real restore and of check mode: check mode
    said "nothing would change" where the restore then replaced a file (same size and mtime, other bytes, xattrs or
    flags). Directories are not members it decides."""
    if st is None or stat.S_IMODE(st.st_mode) != wanted.mode or st.st_mtime_ns != wanted.mtime \
            or (wanted.owner is not None and (st.st_uid, st.st_gid) != wanted.owner):
        return False
    if member.issym():
        return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=parent_fd) == member.linkname \
            and safeio.read_xattrs_at(parent_fd, name) == wanted.xattrs()
    if member.isdev():
        return _same_node(member, st) and safeio.read_xattrs_at(parent_fd, name) == wanted.xattrs()
    if not (stat.S_ISREG(st.st_mode) and st.st_size == wanted.size):
        return False   # a hard link member is compared as the file its staged copy is
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0),
                     dir_fd=parent_fd)
    except OSError:
        return False
    try:
        now = os.fstat(fd)
        return (stat.S_ISREG(now.st_mode) and now.st_size == wanted.size and safeio.read_xattrs(fd) == wanted.xattrs()
                and set(safeio.kept_flags(fd)) == wanted.flags() and wanted.content(fd, now))
    finally:
        os.close(fd)


def staged_wanted(member: tarfile.TarInfo, staged_fd: int, name: str) -> Wanted:
    """``Wanted`` from the staged copy of ``member`` (``name`` in ``staged_fd``): its mode, owner and mtime as
    extraction set them on this host, its attributes and flags, its bytes."""
    want = os.stat(name, dir_fd=staged_fd, follow_symlinks=False)
    regular = stat.S_ISREG(want.st_mode)

    def opened() -> int:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0),
                       dir_fd=staged_fd)

    def xattrs() -> Dict[str, bytes]:
        if not regular:
            return safeio.read_xattrs_at(staged_fd, name)
        fd = opened()
        try:
            return safeio.read_xattrs(fd)
        finally:
            os.close(fd)

    def flags() -> Set[str]:
        fd = opened()
        try:
            return set(safeio.kept_flags(fd))
        finally:
            os.close(fd)

    def content(target_fd: int, st: os.stat_result) -> bool:
        fd = opened()
        try:
            return os.fstat(fd).st_size == st.st_size and _same_data(fd, target_fd, st)
        finally:
            os.close(fd)

    return Wanted(stat.S_IMODE(want.st_mode), (want.st_uid, want.st_gid), want.st_mtime_ns, want.st_size, xattrs,
                  flags, content)


def archived_wanted(member: tarfile.TarInfo, content: Callable[[int, os.stat_result], bool],
                    mode: Optional[int] = None) -> Wanted:
    """``Wanted`` from the archive's header of ``member`` (check mode: nothing is extracted); ``content`` compares
    the bytes; ``mode`` the mode the restore gives it when not the archived one (a setuid bit it clears)."""
    owner = (member.uid, member.gid) if os.geteuid() == 0 else None
    xattrs = member_xattrs(member)
    flags = set(archived_flags(member))
    return Wanted(member.mode & 0o7777 if mode is None else mode, owner, mtime_ns(member), member.size,
                  lambda: xattrs, lambda: flags, content)


def _given_owner(parent_fd: Optional[int]) -> Tuple[int, int]:
    """The owner and group a restore by another user than root gives a new entry (check mode's forecast): that
    user, and its group - or the directory's, when the directory in place is setgid (an approximation: the real run
    reports what its staged copies actually got)."""
    gid = os.getegid()
    if parent_fd is not None:
        st = os.fstat(parent_fd)
        if st.st_mode & stat.S_ISGID:
            gid = st.st_gid
    return os.geteuid(), gid


def _would_restore(manifest: Manifest, identities: Optional[Sequence[Identity]], members: List[tarfile.TarInfo],
                   dest: str, problems: Optional[List[Dict[str, str]]] = None,
                   owners: Optional[List[Dict[str, Any]]] = None,
                   archived: Optional[Dict[str, tarfile.TarInfo]] = None,
                   dest_fd: Optional[int] = None) -> List[str]:
    """Check mode: the names of the non-directory ``members`` a restore into ``dest`` (the directory ``dest_fd``,
    None when it does not exist yet; ``dest`` names it in messages) would put in place, by
    ``settled`` as the restore decides. Nothing is extracted: the headers give mode, owner, mtime, attributes and
    flags; a regular file that agrees in all of those (the common case, an unchanged tree) has its data extents
    digested (``safeio.ChunkDigest``) and its member's bytes are read from the archive in a second pass, only
    for such files, and compared by digest.

    A restore by another user than root is foreseen as that run does it: what it reports in ``problems`` (device
    nodes it cannot make, setuid/setgid bits it clears - the file in place then has the cleared mode, which is no
    change) and in ``owners`` (entries whose archived owner or group it cannot give)."""
    changed: Set[str] = set()
    root = os.geteuid() == 0

    def foresee(member: tarfile.TarInfo, parent: Optional[int]) -> Optional[int]:
        """The mode the restore gives ``member`` when not the archived one; its not_restored and owner entries."""
        if root or member.islnk():
            return None
        if member.isdev():
            if problems is not None:
                problems.append(device_problem(member))
            return None
        uid, gid = _given_owner(parent)
        if owners is not None and (uid, gid) != (member.uid, member.gid):
            owners.append(owner_entry(member))
        cleared = foreign_setid(member, uid, gid) if member.isfile() else None
        if cleared is None:
            return None
        if problems is not None:
            problems.append(cleared['problem'])
        return int(cleared['mode'])
    pending: Dict[str, str] = {}   # member name -> digest of the file in place, to compare with the member's
    sources: Dict[str, str] = {}   # a hard link's name -> the member holding its bytes (its first name)
    selected = {m.name for m in members}

    def digest_later(member: tarfile.TarInfo, source: Optional[tarfile.TarInfo] = None
                     ) -> Callable[[int, os.stat_result], bool]:
        def content(target_fd: int, st: os.stat_result) -> bool:
            pending[member.name] = _digest_fd(target_fd, st.st_size, _sparse(source or member))
            if source is not None:
                sources[member.name] = source.name
            return True   # provisionally: the second pass decides
        return content

    for member in members:
        parts = [p for p in member.name.split('/') if p]
        if member.isdir():
            if not root:
                holder = None if dest_fd is None else _parent_or_none(dest_fd, dest, parts)
                try:
                    foresee(member, holder)
                finally:
                    if holder is not None:
                        os.close(holder)
            if dest_fd is None or not _dir_in_place(dest_fd, dest, parts, member):
                changed.add(member.name)
            continue
        try:
            parent: Optional[int] = None if dest_fd is None else _open_under(dest_fd, dest, parts[:-1],
                                                                             create=False)
        except (OSError, OpsReadyError):
            parent = None
        first = (archived or {}).get(member.linkname) if member.islnk() else None
        if first is not None and member.linkname not in selected:
            # put in place as a file holding its first name's bytes, mode and owner: foreseen as that file,
            # under the link's name (as the real run reports it)
            as_file = copy.copy(first)
            as_file.name = member.name
            mode = foresee(as_file, parent)
        else:
            mode = foresee(member, parent)
        if member.isdev() and not root:
            if parent is not None:
                os.close(parent)
            continue   # not made by this user (reported by foresee), as the real run leaves it out
        if parent is None:
            changed.add(member.name)
            continue
        try:
            try:
                st: Optional[os.stat_result] = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if member.islnk() and (member.linkname in selected or first is None):
                if dest_fd is None or not _hard_linked(dest_fd, dest, member, st):
                    changed.add(member.name)
                continue
            # (a hard link restored without its first name: compared as a file holding that name's bytes, as
            # the restore does - see _swap_in)
            if not settled(member, st, parent, parts[-1],
                           archived_wanted(first or member, digest_later(member, first), mode)):
                changed.add(member.name)
                pending.pop(member.name, None)
        finally:
            os.close(parent)
    if pending:
        changed |= _content_differs(manifest, identities, pending, sources)
    # a hard link already in place is still put back when its first name is (a new inode)
    changed |= {m.name for m in members if m.islnk() and m.linkname in changed}
    return [m.name for m in members if m.name in changed]


def _parent_or_none(dest_fd: int, dest: str, parts: List[str]) -> Optional[int]:
    """``_given_owner``'s directory: the parent of ``parts`` in dest, or None where there is none (yet)."""
    try:
        fd = _open_under(dest_fd, dest, parts[:-1], create=False)
    except (OSError, OpsReadyError):
        return None
    return fd


def _dir_in_place(dest_fd: int, dest: str, parts: List[str], member: tarfile.TarInfo) -> bool:
    """Check mode: whether the directory ``member`` is in place under dest with its archived mode, owner (as
    root), mtime, kept extended attributes and file flags, as the restore's ``_dir_settled`` decides."""
    try:
        fd = _open_under(dest_fd, dest, parts, create=False)
    except (OSError, OpsReadyError):
        return False
    try:
        return _dir_settled(fd, member, member.uid, member.gid)
    finally:
        os.close(fd)


def _hard_linked(dest_fd: int, dest: str, member: tarfile.TarInfo, st: Optional[os.stat_result]) -> bool:
    """Whether ``st`` (a hard link member's name in place) is the inode its first name has in ``dest``."""
    if st is None:
        return False
    parts = [p for p in member.linkname.split('/') if p]
    try:
        holder = _open_under(dest_fd, dest, parts[:-1], create=False)
    except (OSError, OpsReadyError):
        return False
    try:
        first = os.stat(parts[-1], dir_fd=holder, follow_symlinks=False)
    except OSError:
        return False
    finally:
        os.close(holder)
    return stat.S_ISREG(first.st_mode) and (st.st_dev, st.st_ino) == (first.st_dev, first.st_ino)


def _sparse(member: tarfile.TarInfo) -> bool:
    """Whether ``member`` is a GNU sparse member: its content is compared by ``safeio.ChunkDigest`` (holes cost
    nothing), every other file's by SHA-256 (a ChunkDigest hashes a whole 1 MiB chunk even for an 8 KiB file: a
    check run over 2,000 such files took 34 s instead of 1 s)."""
    return getattr(member, 'sparse', None) is not None


def _digest_fd(fd: int, size: int, sparse: bool) -> str:
    """The digest of the open file's content: ``safeio.ChunkDigest`` of its data extents when ``sparse``, else the
    SHA-256 of its bytes."""
    segments = safeio.data_segments(fd, size) if sparse and os.fstat(fd).st_blocks * 512 < size else None
    digest: Any = safeio.ChunkDigest() if sparse else hashlib.sha256()
    for start, length in segments if segments is not None else [(0, size)]:
        done = 0
        while done < length:
            piece = os.pread(fd, min(safeio.ChunkDigest.SIZE * 4, length - done), start + done)
            if not piece:
                break
            if sparse:
                digest.update(start + done, piece)
            else:
                digest.update(piece)
            done += len(piece)
    return digest.hexdigest(size) if sparse else digest.hexdigest()


def _content_differs(manifest: Manifest, identities: Optional[Sequence[Identity]],
                     pending: Dict[str, str], sources: Optional[Dict[str, str]] = None) -> Set[str]:
    """The names in ``pending`` whose member's bytes (read from the archive once more) do not give the digest of
    the file in place. ``sources`` names, for a hard link's name, the member holding its bytes."""
    differ: Set[str] = set()
    by_source: Dict[str, List[str]] = {}
    for name in pending:
        by_source.setdefault((sources or {}).get(name, name), []).append(name)
    with _corrupt_is_integrity_error(manifest), _open(manifest, identities) as stream:
        with read_stream(stream, manifest.path, outcome=_NOTHING, values=False) as tar:
            for member in tar:
                if member.name not in by_source or not member.isfile():
                    continue
                sparse = _sparse(member)
                digest: Any = safeio.ChunkDigest() if sparse else hashlib.sha256()
                if sparse:
                    _digest_sparse_member(tar, member, digest)
                else:
                    handle = tar.extractfile(member)
                    while handle is not None:
                        piece = handle.read(safeio.ChunkDigest.SIZE * 4)
                        if not piece:
                            break
                        digest.update(piece)
                found = digest.hexdigest(member.size) if sparse else digest.hexdigest()
                differ.update(name for name in by_source.pop(member.name) if found != pending[name])
        drain(stream)
    return differ


def _digest_sparse_member(tar: tarfile.TarFile, member: tarfile.TarInfo, digest: Any) -> None:
    """Give ``digest`` (a ``safeio.ChunkDigest``) the data extents of the GNU sparse ``member`` of the streamed
    ``tar``, read where the archive stores them one after the other (from ``offset_data``, the map already read):
    ``extractfile`` hands out every byte of the holes as zeros, 64 GiB of them read and digested for a disk image
    holding 2 MiB of data, and the digest counts holes as nothing. The stream only seeks forward, as ``next`` then
    does too."""
    stream: Any = tar.fileobj
    position = member.offset_data
    extents: List[Tuple[int, int]] = getattr(member, 'sparse', None) or []
    for start, length in extents:
        stream.seek(position)
        done = 0
        while done < length:
            piece = stream.read(min(safeio.ChunkDigest.SIZE * 4, length - done))
            if not piece:
                raise tarfile.ReadError('unexpected end of data in %s' % member.name)
            digest.update(start + done, piece)
            done += len(piece)
        position += length


def _same_data(source_fd: int, target_fd: int, st: os.stat_result) -> bool:
    """Whether two files of ``st.st_size`` bytes hold the same bytes. Where either has holes only the data extents
    of either are read (SEEK_DATA/SEEK_HOLE): where both have a hole both read zeros. Reading both copies of an
    identical 9 GiB sparse image byte by byte took 96 s for 12 KiB of data."""
    size = st.st_size
    ranges: List[Tuple[int, int]] = [(0, size)]
    if st.st_blocks * 512 < size or os.fstat(source_fd).st_blocks * 512 < size:
        ours, theirs = safeio.data_segments(source_fd, size), safeio.data_segments(target_fd, size)
        if ours is not None and theirs is not None:
            ranges = []
            for start, length in sorted(ours + theirs):   # their union, merged
                if ranges and start <= ranges[-1][0] + ranges[-1][1]:
                    last_start, last_length = ranges[-1]
                    ranges[-1] = (last_start, max(last_length, start + length - last_start))
                else:
                    ranges.append((start, length))
    for start, length in ranges:
        done = 0
        while done < length:
            want = min(1024 * 1024, length - done)
            a, b = os.pread(source_fd, want, start + done), os.pread(target_fd, want, start + done)
            if a != b:
                return False
            if not a:
                break
            done += len(a)
    return True


def _link_in_place(dest_fd: int, dest: str, member: tarfile.TarInfo, st: Optional[os.stat_result], parent_fd: int,
                   name: str) -> Optional[bool]:
    """Make ``name`` a hard link to the restored ``member.linkname``: None when it already is one, True when it was
    linked now, False when that file is not a regular file in place (the staged copy is moved in instead)."""
    parts = [p for p in member.linkname.split('/') if p]
    with _in_place(dest_fd, dest, parts) as (holder, first):
        if holder is None or first is None or not stat.S_ISREG(first.st_mode):
            return False
        if st is not None and (st.st_dev, st.st_ino) == (first.st_dev, first.st_ino):
            return None
        temp = '.opsready-link-' + secrets.token_hex(6)
        os.link(parts[-1], temp, src_dir_fd=holder, dst_dir_fd=parent_fd, follow_symlinks=False)
        try:
            os.replace(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except BaseException:
            os.unlink(temp, dir_fd=parent_fd)
            raise
        return True


@contextlib.contextmanager
def _in_place(dest_fd: int, dest: str, parts: List[str]) -> Iterator[Tuple[Optional[int], Optional[os.stat_result]]]:
    """The directory holding ``parts[-1]`` under dest, entered as ``_open_under`` does (None when it is missing or
    its way refused), and the lstat of ``parts[-1]`` in it (None when nothing is there); closed on leaving."""
    try:
        parent: Optional[int] = _open_under(dest_fd, dest, parts[:-1], create=False)
    except (OSError, OpsReadyError):
        parent = None
    if parent is None:
        yield None, None
        return
    try:
        try:
            st: Optional[os.stat_result] = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        yield parent, st
    finally:
        os.close(parent)


def _refuse_type_conflicts(dest_fd: int, dest: str, members: List[tarfile.TarInfo]) -> None:
    """Refuse, before anything is moved, a restore that would stop halfway: an archived file whose name is a
    directory in the target, or an archived directory whose name (or a parent's) is something else."""
    conflicts = []
    blocked: List[str] = []   # archived directories found to be something else: what is below them is theirs
    for member in members:
        parts = [p for p in member.name.split('/') if p]
        if not parts or any(member.name.startswith(prefix + '/') for prefix in blocked):
            continue
        try:
            parent = _open_under(dest_fd, dest, parts[:-1], create=False)
        except FileNotFoundError:
            continue   # created by the restore: nothing in the way below it
        try:
            try:
                st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if member.isdir() and not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                blocked.append(member.name.rstrip('/'))
                conflicts.append('%s (a directory in the archive, %s in the target)'
                                 % (os.path.join(dest, member.name), safeio.kind_of(st.st_mode)))
            elif not member.isdir() and stat.S_ISDIR(st.st_mode):
                conflicts.append('%s (a %s in the archive, a directory in the target)'
                                 % (os.path.join(dest, member.name), 'symlink' if member.issym() else 'file'))
        finally:
            os.close(parent)
    if conflicts:
        raise OpsReadyError('Cannot restore %s: %s. Nothing was changed; move those aside (or restore to another '
                            'root) and run again.' % ('; '.join(conflicts[:5]), '%d names are of another type'
                                                      % len(conflicts) if len(conflicts) > 1 else 'its type differs'),
                            path=dest)


def _other_filesystem(dest_fd: int, dest: str, parts: List[str], below: List[str]) -> Optional[str]:
    """The deepest directory in place on the way to ``parts[-1]`` under dest when it is on another mount than dest
    (the staging directory is in dest): on another device, or at or under one of the mount points ``below`` dest (a
    bind mount of dest's own file system has its device, and a rename across it fails all the same). None when it is
    on dest's, or the way is refused elsewhere (a planted link)."""
    device = os.fstat(dest_fd).st_dev
    held = parts[:-1]
    while True:
        try:
            fd = _open_under(dest_fd, dest, held, create=False)
            break
        except (FileNotFoundError, NotADirectoryError):
            if not held:
                return None
            held = held[:-1]   # made by the restore, on the file system of the directory holding it
        except (OSError, OpsReadyError):
            return None
    try:
        if os.fstat(fd).st_dev == device and not (below and any(_under(_known_path(fd), m) for m in below)):
            return None
    finally:
        os.close(fd)
    return os.path.join(dest, *held)


def _would_move(staging_fd: int, dest_fd: int, dest: str, member: tarfile.TarInfo) -> bool:
    """Whether ``_swap_in`` may rename ``member``'s staged copy into place: a file, link or node not already as
    archived (directories are made in place, never moved)."""
    parts = [p for p in member.name.split('/') if p]
    if member.isdir() or not parts:
        return False
    with _in_place(dest_fd, dest, parts) as (parent, st):
        return parent is None or st is None or stat.S_ISDIR(st.st_mode) \
            or _would_change(member, st, staging_fd, parent, parts)


def _refuse_as_the_restore_would(dest_fd: int, dest: str, listed: List[tarfile.TarInfo]) -> None:
    """Check mode: fail as the restore would before moving anything, over the members check mode ``listed`` (file
    flags in the way, files behind a mount point): a dry run listed what the real run then refused to do. ``dest_fd``:
    the directory ``_open_dest`` opened (a dest that does not exist yet has nothing in the way)."""
    _refuse_fixed_files(dest_fd, dest, listed, lambda member, st, parent, parts: True)
    _refuse_other_filesystems(dest_fd, dest, [m for m in listed if not m.isdir()])


def _refuse_other_filesystems(dest_fd: int, dest: str, members: List[tarfile.TarInfo],
                              moves: Optional[Callable[[tarfile.TarInfo], bool]] = None) -> None:
    """Refuse, before anything is moved, a restore that would have to move a file onto another file system than
    dest's (a mount point inside dest: a separate /var under a restore to /, a tmpfs): each file is moved in from the
    staging directory in dest with one rename, which fails there (EXDEV), and the restore stopped halfway with the
    files before it already replaced. ``members`` are those the restore may put in place (check mode: those it
    lists), ``moves`` says of one behind a mount point whether it would be moved (not when in place as archived:
    asked only there, as it compares content)."""
    found = []
    mounts: Set[str] = set()
    seen: Dict[str, Optional[str]] = {}   # a directory's answer, once (most files share theirs)
    root = _known_path(dest_fd)
    below = [m for m, _type in scratch.mounts() if root and m != root and _under(m, root)]
    for member in members:
        parts = [p for p in member.name.split('/') if p]
        holder = '/'.join(parts[:-1])
        if holder not in seen:
            seen[holder] = _other_filesystem(dest_fd, dest, parts, below)
        mount = seen[holder]
        if mount is not None and (moves is None or moves(member)):
            found.append(os.path.join(dest, member.name))
            mounts.add(mount)
    if found:
        them = 'them' if len(found) > 1 else 'it'
        raise OpsReadyError('Cannot restore %s: %s behind a mount point inside %s (%s), and a restore moves each file '
                            'in from its staging directory in %s with one rename, which cannot cross mount points. '
                            'Nothing was changed; restore %s into a directory on that file system (another dest) and '
                            'move %s into place, or leave %s out with only.'
                            % ('; '.join(found[:5]) + (' and %d more' % (len(found) - 5) if len(found) > 5 else ''),
                               'they are' if len(found) > 1 else 'it is', dest, 'under ' + ', '.join(sorted(mounts)),
                               dest, them, them, them), path=dest, other_filesystem=found)


FS_IOC_GETFLAGS = 0x80086601
FS_IMMUTABLE_FL = 0x00000010
FS_APPEND_FL = 0x00000020


def _fixed_flags(parent_fd: int, name: str, st: os.stat_result) -> str:
    """'immutable' or 'append-only' when ``name`` (a regular file or directory in ``parent_fd``) carries that
    file flag (chattr +i / +a): neither root nor a rename replaces it, nor changes its mode, owner or times."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return ''   # only these are opened: a device's open may act (a tape rewinds)
    try:
        import fcntl
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0),
                     dir_fd=parent_fd)
    except (ImportError, OSError):
        return ''
    try:
        flags = struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    except OSError:
        return ''   # a file system without flags (tmpfs before 6.0, NFS...)
    finally:
        os.close(fd)
    return 'immutable' if flags & FS_IMMUTABLE_FL else 'append-only' if flags & FS_APPEND_FL else ''


def _dir_settled(fd: int, member: tarfile.TarInfo, uid: int, gid: int) -> bool:
    """Whether the directory ``fd`` already has the member's owner, mode, kept extended attributes, file flags and
    mtime."""
    st = os.fstat(fd)
    return (stat.S_IMODE(st.st_mode) == member.mode & 0o7777 and st.st_mtime_ns == mtime_ns(member)
            and (os.geteuid() != 0 or (st.st_uid, st.st_gid) == (uid, gid))
            and safeio.read_xattrs(fd) == member_xattrs(member)
            and set(safeio.kept_flags(fd)) == set(archived_flags(member)))


Changes = Callable[[tarfile.TarInfo, os.stat_result, int, List[str]], bool]


def _staged_changes(staging_fd: int) -> Changes:
    """The restore's answer for ``_refuse_fixed_files``: whether the entry in place (``st``, ``parts[-1]`` in the
    directory ``parent``) differs from the member's staged copy (a directory in mode, owner, times, attributes)."""
    def changes(member: tarfile.TarInfo, st: os.stat_result, parent: int, parts: List[str]) -> bool:
        if not member.isdir():
            return _would_change(member, st, staging_fd, parent, parts)
        want = _staged_stat(staging_fd, parts, member, archive='')
        if want is None:
            return False
        fd = os.open(parts[-1], _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        try:
            return not _dir_settled(fd, member, want.st_uid, want.st_gid)
        finally:
            os.close(fd)
    return changes


def _refuse_fixed_files(dest_fd: int, dest: str, members: List[tarfile.TarInfo], changes: Changes) -> None:
    """Refuse, before anything is moved, a restore that would have to change an immutable or append-only file or
    directory (or put a file into such a directory): the rename or chmod fails with EPERM, and the restore stopped
    halfway with the members before it already replaced. One that already holds what the archive has is fine:
    ``changes`` says which do not (the restore: ``_staged_changes``; check mode: those it lists)."""
    found = []
    fixed_dirs: Dict[str, str] = {}
    for member in members:
        parts = [p for p in member.name.split('/') if p]
        if not parts:
            continue
        try:
            parent = _open_under(dest_fd, dest, parts[:-1], create=False)
        except (OSError, OpsReadyError):
            continue   # created by the restore (or refused by it later): nothing fixed in the way
        try:
            try:
                st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            where = os.path.join(dest, member.name.rstrip('/'))
            flag = _fixed_flags(parent, parts[-1], st) if st is not None else ''
            if member.isdir():
                fixed_dirs['/'.join(parts)] = flag
                if flag and st is not None and changes(member, st, parent, parts):
                    found.append('%s (%s, its mode, owner, times or attributes differ)' % (where, flag))
                continue
            holder = '/'.join(parts[:-1])
            parent_flag = fixed_dirs.get(holder)
            if parent_flag is None:   # a parent outside the archive's directories (or the target root)
                parent_flag = fixed_dirs[holder] = _fixed_flags(parent, '.', os.fstat(parent))
            # an immutable directory takes no new name; an append-only one no rename over an existing one
            blocked = parent_flag == 'immutable' or (parent_flag and st is not None)
            if not (flag or blocked):
                continue
            # only now compared (the content read once more): the common case, no flag anywhere, costs an ioctl
            if st is not None and not changes(member, st, parent, parts):
                continue
            found.append('%s (%s)' % (where, flag) if flag else '%s (its directory is %s)' % (where, parent_flag))
        finally:
            os.close(parent)
    if found:
        raise OpsReadyError('Cannot restore %s: file flags stop any change to %s, even by root. Nothing was changed; '
                            'clear the flag (chattr -i or -a), run again and set it back, or restore to another root.'
                            % ('; '.join(found[:5]) + (' and %d more' % (len(found) - 5) if len(found) > 5 else ''),
                               'them' if len(found) > 1 else 'it'), path=dest, fixed=found)


def _would_change(member: tarfile.TarInfo, st: os.stat_result, staging_fd: int, parent_fd: int,
                  parts: List[str]) -> bool:
    """Whether _swap_in would replace the existing ``st`` (``parts[-1]`` in ``parent_fd``) with the member."""
    staged_fd = _open_parents(staging_fd, parts, member, archive='')
    if staged_fd is None:
        return True
    try:
        name = parts[-1]
        if member.isfile() or member.issym() or member.isdev():
            return not settled(member, st, parent_fd, name, staged_wanted(member, staged_fd, name))
        staged = os.stat(name, dir_fd=staged_fd, follow_symlinks=False)
        return (st.st_dev, st.st_ino) != (staged.st_dev, staged.st_ino) and not settled(
            member, st, parent_fd, name, staged_wanted(member, staged_fd, name))
    finally:
        os.close(staged_fd)


def _dirs_to_settle(staging_fd: int, dest_fd: int, dest: str, dirs: List[tarfile.TarInfo], archive: str) -> List[str]:
    """The paths of the archived directories that are missing under ``dest`` or differ from their staged copy in
    mode, owner, mtime, kept extended attributes or file flags: a re-restore put such a directory's mode back and
    reported ``changed=false``."""
    found = []
    for member in dirs:
        parts = [p for p in member.name.split('/') if p]
        staged = _staged_stat(staging_fd, parts, member, archive)
        if staged is None:
            continue
        try:
            fd = _open_under(dest_fd, dest, parts, create=False)
        except FileNotFoundError:
            found.append(os.path.join(dest, member.name.rstrip('/')))
            continue
        try:
            if not _dir_settled(fd, member, staged.st_uid, staged.st_gid):
                found.append(os.path.join(dest, member.name.rstrip('/')))
        finally:
            os.close(fd)
    return found


def _swap_in(staging_fd: int, dest: str, members: List[tarfile.TarInfo], dest_fd: int, archive: str,
             problems: Optional[List[Dict[str, str]]] = None, directories: Optional[List[str]] = None) -> List[str]:
    """Move each staged member into place, relative to directory descriptors (see ``_open_under``) on both sides -
    a path may be longer than PATH_MAX. ``staging_fd`` is the staging directory's descriptor, ``dest_fd`` the target
    root's (the caller closes both). Returns the files put in place; ``directories`` collects the directories made
    or given back their mode, owner, mtime, attributes or flags."""
    restored = []
    placed = {m.name for m in members}
    _refuse_type_conflicts(dest_fd, dest, members)
    _refuse_fixed_files(dest_fd, dest, members, _staged_changes(staging_fd))
    _refuse_other_filesystems(dest_fd, dest, [m for m in members if not m.isdir()],
                              lambda member: _would_move(staging_fd, dest_fd, dest, member))
    # Directories first (parents before children), files after; directory modes re-applied last
    # so a read-only directory does not block its own files.
    dirs = [m for m in members if m.isdir()]
    # the directories this restore makes or gives back their mode, owner, mtime, attributes or flags, decided
    # before any file moves (moving a file in changes its directory's mtime, which is no drift of the target's)
    settled_dirs = _dirs_to_settle(staging_fd, dest_fd, dest, dirs, archive)
    if directories is not None:
        directories.extend(settled_dirs)
    for member in dirs:
        os.close(_open_under(dest_fd, dest, [p for p in member.name.split('/') if p], create=True))
    for member in members:
        if member.isdir():
            continue
        parts = [p for p in member.name.split('/') if p]
        target = os.path.join(dest, member.name)
        staged_fd = _open_parents(staging_fd, parts, member, archive)
        if staged_fd is None:
            raise OpsReadyError('%s was not extracted from %s (its directory is missing from staging).'
                                % (member.name, archive), path=archive)
        try:
            parent_fd = _open_under(dest_fd, dest, parts[:-1], create=True)
        except BaseException:
            os.close(staged_fd)
            raise
        try:
            name = parts[-1]
            try:
                st: Optional[os.stat_result] = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            # left alone only when nothing rsync -a would see differs: same bytes (or link target), mode, owner
            # and mtime; the same content with another owner or mtime is put back from staging
            # (a hard link whose first name this restore does not put in place is such a file: its staged copy)
            alone = member.isfile() or member.issym() or member.isdev() or (
                member.islnk() and member.linkname not in placed)
            if alone and settled(member, st, parent_fd, name, staged_wanted(member, staged_fd, name)):
                continue
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise OpsReadyError('Cannot restore file %s: a directory is in the way.' % target, path=target)
            if member.islnk():
                # A hard link is made to the file its first name put in place (or left alone, being identical):
                # moving the staged inode in would split the pair whenever that first name was left alone, and
                # report the link as restored on every run.
                linked = _link_in_place(dest_fd, dest, member, st, parent_fd, name) if member.linkname in placed \
                    else False
                if linked is None:
                    continue
                if linked:
                    os.fsync(parent_fd)
                    restored.append(target)
                    continue
            # rename replaces whatever is at the name (a planted symlink included), never writes through it
            os.replace(name, name, src_dir_fd=staged_fd, dst_dir_fd=parent_fd)
            os.fsync(parent_fd)
        finally:
            os.close(parent_fd)
            os.close(staged_fd)
        restored.append(target)
    for member in sorted(dirs, key=lambda m: m.name.count('/'), reverse=True):
        parts = [p for p in member.name.split('/') if p]
        st = _staged_stat(staging_fd, parts, member, archive)
        if st is None or not stat.S_ISDIR(st.st_mode):
            continue
        # The archived mode and mtime, not the staged directory's: extracting its files changed its mtime, and
        # on Python 3.12+ the tar filter cleared its sticky/setgid and group/other-write bits.
        fd = _open_under(dest_fd, dest, parts, create=False)
        try:
            if _dir_settled(fd, member, st.st_uid, st.st_gid):
                continue   # nothing to set (an immutable directory refuses even a chmod to its own mode)
            if os.geteuid() == 0:
                os.chown(fd, st.st_uid, st.st_gid)
            os.chmod(fd, member.mode & 0o7777)
            apply_xattrs(fd, member_xattrs(member), member.name, problems)
            apply_flags(fd, member, problems)
            ns = mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
    return restored
