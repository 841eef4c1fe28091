# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe tar extraction on every Python the modules run on.

``tarfile``'s extraction filters (PEP 706) exist from Python 3.12 and in 3.8-3.11 point releases
that backported them (3.11.4+); Debian 12's stock python3.11 (3.11.2) does not have them, and a
managed host may run anything from 3.9 on. Every member is therefore checked here first: by name
(no absolute paths, no ``..``, no links or devices escaping the root) and against what is already on
disk (its parent directory must resolve inside the root, so no member is written through a symlink an
earlier member planted; an existing symlink at its own path is replaced, never written through). The
``tar`` filter is added on top where the interpreter has it, with the archived mode kept (the filter would
clear setuid/setgid/sticky and group/other-write bits, which the older interpreters restore as archived: the
same archive must give the same files everywhere).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import copy
import decimal
import errno
import os
import stat
import tarfile
from typing import Any, Dict, Iterator, List, NoReturn, Optional, Set, Tuple, Type, cast

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import XATTR_NAMES, XATTR_NAMESPACES

HAS_EXTRACTION_FILTER = hasattr(tarfile, 'tar_filter')


def _unsafe_reason(member: tarfile.TarInfo) -> Optional[str]:
    name = member.name
    if name.startswith('/') or os.path.isabs(name):
        return 'absolute path'
    if '..' in name.split('/'):
        return 'parent directory reference (..)'
    if member.issym() or member.islnk():
        target = member.linkname
        if member.islnk() and (target.startswith('/') or '..' in target.split('/')):
            return 'hard link outside the archive root'
        if member.issym():
            resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
            if target.startswith('/') or resolved == '..' or resolved.startswith('../'):
                # Absolute symlinks are legitimate in /etc trees; they are restored as links, never
                # followed while extracting, so they cannot write outside the root.
                return None if target.startswith('/') else 'symlink pointing outside the target root'
    # FIFOs and device nodes are made under the root like any member (file_backup archives them, as tar does);
    # only root can make a device node, and extract_member reports one it could not make
    return None


# what a refusal while extracting says was done: what was extracted so far is in staging (file_restore) or a directory
# the caller removes (PITR), never in place
NOTHING_PUT_IN_PLACE = 'Nothing from it was put in place.'


def _told(outcome: str) -> str:
    return ' ' + outcome if outcome else ''


def check_members(members: List[tarfile.TarInfo], archive: str = '', outcome: str = NOTHING_PUT_IN_PLACE) -> None:
    """Refuse a member that would escape the target root. ``outcome``: what the caller did not do, said last."""
    bad = [(m.name, reason) for m in members for reason in [_unsafe_reason(m)] if reason]
    if bad:
        _refuse(bad, archive, outcome)


def _refuse(bad: List[Any], archive: str, outcome: str = NOTHING_PUT_IN_PLACE) -> NoReturn:
    shown = '; '.join('%s (%s)' % item for item in bad[:5])
    raise IntegrityError('Archive %sholds members that would escape the target root: %s. It is not trusted; do not '
                         'restore from it.%s' % (archive + ' ' if archive else '', shown, _told(outcome)),
                         unsafe_members=[b[0] for b in bad], **({'path': archive} if archive else {}))


_TAR_ERRORS: Dict[str, Any] = {
    'header': (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError),  # type: ignore[attr-defined]
    'read': tarfile.ReadError}


class FramedTarInfo(tarfile.TarInfo):
    """A TarInfo whose parsing refuses a stream that stops being a tar stream midway.

    ``tarfile`` takes a block that is not a valid header, found after the first member, for the end of the archive
    and ends its member list there in silence: an archive with bytes inserted between members, or a pax ``size``
    smaller than the data that follows it, restored its first members, dropped the rest, and the run ended ok. A
    malformed pax or GNU sparse record raised a bare ValueError. Both are ReadError here (a TarError: the readers
    turn it into an IntegrityError naming the archive). The end of the archive (zero blocks, or the end of the
    data) is still the end. Read every archive through ``read_stream``, which uses it."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> 'FramedTarInfo':   # pylint: disable=redefined-outer-name
        # the parameter keeps tarfile's name (an override); the module's names are reached through _TAR_ERRORS
        try:
            return super().fromtarfile(tarfile)
        except _TAR_ERRORS['header'] as exc:
            if not tarfile.offset:
                raise   # the first block: tarfile says "not a tar archive" itself
            raise _TAR_ERRORS['read']('no valid tar header at byte %d (%s): the archive does not parse to its end'
                                      % (tarfile.offset, exc)) from None
        except ValueError as exc:
            raise _TAR_ERRORS['read']('malformed header at byte %d (%s)' % (tarfile.offset, exc)) from None


class _FramedTarFile(tarfile.TarFile):
    """A TarFile reading with ``FramedTarInfo`` that also refuses, as each member is read (before it can be
    extracted), a header no file can have (``_impossible_values``): a uid beyond 32 bits ended an extraction with an
    OverflowError traceback, an mtime of nan with a ValueError, midway through. ``_ValuesLeftTarFile`` leaves
    those to the caller (file_restore lists every such member at once in ``refuse_ambiguous``)."""

    tarinfo = FramedTarInfo
    values_checked = True

    def next(self) -> Optional[tarfile.TarInfo]:
        member = super().next()
        if member is not None and self.values_checked:
            values = _impossible_values(member)
            if values:
                raise _TAR_ERRORS['read']('member %r has header values no file can have: %s'
                                          % (member.name, ', '.join(values)))
        return member


class _ValuesLeftTarFile(_FramedTarFile):
    """``_FramedTarFile`` leaving header values to the caller from the first member on (``TarFile`` reads its first
    header while it opens: a flag set on the object after ``open`` came too late for it)."""

    values_checked = False


# tarfile's extraction filter refusals (PEP 706; none before Python 3.12 and the 3.8-3.11 backports)
_FILTER_ERRORS: Tuple[Type[BaseException], ...] = tuple(
    [tarfile.FilterError] if hasattr(tarfile, 'FilterError') else [])   # type: ignore[attr-defined]

# what each filter refusal means, in a few words (its own message holds the path extracted to: /proc/self/fd/N/...)
_FILTER_REASONS = {'AbsolutePathError': 'absolute path', 'OutsideDestinationError': 'it would be written outside the '
                   'target root', 'AbsoluteLinkError': 'a link to an absolute path',
                   'LinkOutsideDestinationError': 'a link leading outside the target root',
                   'SpecialFileError': 'a device node or FIFO', 'LinkFallbackError': 'a link to a file that cannot be '
                   'linked to (not extracted before it, or outside the target root)'}


def _filter_reason(exc: BaseException) -> str:
    for kind in type(exc).__mro__:
        if kind.__name__ in _FILTER_REASONS:
            return '%s: %s' % (type(exc).__name__, _FILTER_REASONS[kind.__name__])
    said = str(exc)
    return '%s: %s' % (type(exc).__name__, said if len(said) <= 200 else said[:200] + '...')


@contextlib.contextmanager
def read_stream(source: Any, archive: str, what: str = 'Archive', outcome: str = '',
                values: bool = True) -> Iterator[tarfile.TarFile]:
    """The one way the collection reads a tar stream (file_restore, the PITR base backup, backup_verify): ``source``
    read once, front to back (``r|``), parsed with ``FramedTarInfo`` (a stream that stops being a tar stream midway
    is an error, not its end) and every header checked for values no file can have (``values``).

    An archive whose checksum matches its manifest is not therefore well formed: the manifest may have been rewritten
    with it, or the archive made on a compromised host. What cannot be read is raised as an IntegrityError naming
    ``what`` and ``archive`` (its path), with ``outcome`` (what was or was not written) after it; errors the body
    raises of its own pass through (a tarfile error from reading a member's data included: it is the archive's)."""
    try:
        with (_FramedTarFile if values else _ValuesLeftTarFile).open(fileobj=source, mode='r|') as tar:
            yield tar
    except _FILTER_ERRORS as exc:
        # the stream reads fine: the interpreter's extraction filter refused one member (a TarError too, which read
        # "cannot be read as a tar archive"); said of that member, without the descriptor path it was written under
        member = getattr(exc, 'tarinfo', None)
        name = member.name if member is not None else '?'
        raise IntegrityError('%s %s holds a member the tar extraction filter refuses: %r (%s). It was not written as '
                             'it is by the backup tool (damaged, or made by hand); do not restore from it.%s'
                             % (what, archive, name, _filter_reason(exc), _told(outcome)),
                             path=archive, unsafe_members=[name]) from None
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError('%s %s cannot be read as a tar archive (%s: %s): it is corrupt or was made by hand; do '
                             'not restore from it.%s' % (what, archive, type(exc).__name__, exc, _told(outcome)),
                             path=archive) from None


def path_key(name: str) -> str:
    """The path a member name stands for (``./e/x``, ``e//x`` and ``e/x/`` are one path)."""
    return '/'.join(p for p in name.split('/') if p not in ('', '.')) or '.'


def _kind(member: tarfile.TarInfo) -> str:
    return ('directory' if member.isdir() else 'symlink' if member.issym() else 'hard link' if member.islnk()
            else 'file' if member.isreg() else 'FIFO' if member.isfifo() else 'device node' if member.isdev()
            else 'entry of type %r' % member.type)


def _described(member: tarfile.TarInfo) -> str:
    return _kind(member) + (' to %s' % member.linkname if member.issym() or member.islnk() else '')


# what a header may hold for the restore to be able to give it: uid/gid as chown takes them (2**32 - 1 is "no
# change"), an mtime as utime takes it (a time_t; a float nan or 1e30 fails it)
_MAX_ID = 2 ** 32 - 2
_MAX_SECONDS = 2 ** 62
_NAME_MAX = 255    # every Linux file system's limit on one name, in bytes
_PATH_MAX = 4096   # a symlink's target, its terminating NUL included


def _impossible_values(member: tarfile.TarInfo) -> List[str]:
    bad = ['%s %r' % (field, value) for field, value in (('uid', member.uid), ('gid', member.gid))
           if not isinstance(value, int) or not 0 <= value <= _MAX_ID]
    try:
        seconds = mtime_ns(member) // 1000000000
    except (ValueError, OverflowError, ArithmeticError):
        seconds = None
    if seconds is None or not -_MAX_SECONDS <= seconds <= _MAX_SECONDS:
        bad.append('mtime %s' % member.pax_headers.get('mtime', member.mtime))
    # names the system calls refuse (a ValueError or ENAMETOOLONG in the middle of the real run, where check mode
    # had listed them as to restore)
    if '\0' in member.name:
        bad.append('a NUL byte in its name')
    if '\0' in member.linkname:
        bad.append('a NUL byte in its link target')
    longest = max((len(p.encode('utf-8', 'surrogateescape')) for p in member.name.split('/')), default=0)
    if longest > _NAME_MAX:
        bad.append('a name of %d bytes (a file name holds at most %d)' % (longest, _NAME_MAX))
    if member.issym() and len(member.linkname.encode('utf-8', 'surrogateescape')) >= _PATH_MAX:
        bad.append('a symlink target of %d bytes (at most %d)' % (len(member.linkname.encode(
            'utf-8', 'surrogateescape')), _PATH_MAX - 1))
    if path_key(member.name) == '.' and not member.isdir():
        bad.append('the restore root itself as a %s' % _kind(member))
    return bad


def refuse_ambiguous(members: List[tarfile.TarInfo], archive: str, outcome: str = '') -> None:
    """Refuse, before anything is written, an archive that names one path twice as different things (a symlink then
    a directory of that name, ``e/x`` and ``./e/x`` as a file and a symlink), holds a hard link to a directory, a
    symlink, itself or a file not archived before it, or header values no file can have. file_backup writes none
    of these; an archive holding them was made or altered by hand, and restoring it put part of it in place before
    failing (staging keeps the last of two entries, the move used the first), or passed check mode and failed the
    run.

    A member below one that is not a directory (``e`` a file, symlink or node, then ``e/x``; or ``e/x`` then ``e``
    as a file) is refused too, with the words extraction into staging used (check mode, extracting nothing, listed
    it as to restore).

    Repeats of one entry (the same kind, link target included: archives written before file_backup dropped
    overlapping paths hold some entries twice) are allowed: the first is the one restored (the caller skips the
    others when extracting).

    ``outcome``: what the caller did not do, said last (file_restore: that it wrote nothing; backup_verify, which
    writes nothing in any case, says nothing of it)."""
    first: Dict[str, tarfile.TarInfo] = {}
    twice: List[Any] = []
    impossible: List[Any] = []
    under: List[Any] = []
    parents: Set[str] = set()   # the directories members lie in (each path's ancestors), as extraction makes them
    for member in members:
        key = path_key(member.name)
        values = _impossible_values(member)
        if values:
            impossible.append((member.name, ', '.join(values)))
        _refuse_under(member, key, first, parents, under)
        earlier = first.get(key)
        if earlier is None:
            if member.islnk():
                # extraction links to what is already there: a target archived later, nowhere, or the link itself
                # ended the real run with a bare "No such file or directory" where check mode saw nothing wrong
                target = first.get(path_key(member.linkname))
                if target is None:
                    twice.append((member.name, 'a hard link to %s, which the archive does not hold before it'
                                  % member.linkname))
                elif target.isdir() or target.issym():
                    twice.append((member.name, 'a hard link to the %s %s' % (_kind(target), member.linkname)))
            first[key] = member
            continue
        linked_alike = not (member.issym() or member.islnk()) or path_key(member.linkname) == path_key(earlier.linkname)
        same = _kind(earlier) == _kind(member) and linked_alike
        # a file archived twice as a multiply linked file: the second time as a hard link to its own name
        if not same and not (member.islnk() and path_key(member.linkname) == key and not earlier.isdir()):
            twice.append((member.name, 'archived as a %s and as a %s' % (_described(earlier), _described(member))))
    where = archive + ' ' if archive else ''
    if impossible:
        shown = '; '.join('%r (%s)' % item for item in impossible[:5])
        raise IntegrityError('Archive %sholds headers with values no file can have: %s. It was not written by '
                             'file_backup as it is (damaged, or made by hand); do not restore from it.%s'
                             % (where, shown, _told(outcome)), unsafe_members=[i[0] for i in impossible],
                             **({'path': archive} if archive else {}))
    if twice:
        shown = '; '.join('%r (%s)' % item for item in twice[:5])
        raise IntegrityError('Archive %sis ambiguous or inconsistent: %s. file_backup writes each path once, as one '
                             'thing, and a hard link after the file it links to; what is meant cannot be told. Do '
                             'not restore from it; extract what you need by hand if you trust it.%s'
                             % (where, shown, _told(outcome)),
                             unsafe_members=[i[0] for i in twice], **({'path': archive} if archive else {}))
    if under:
        _refuse(under, archive, outcome)


def refuse_unrestorable(members: List[tarfile.TarInfo], archive: str, outcome: str = '') -> None:
    """file_restore's refusals of an archive's member list (with every member selected, as without ``only``): a
    member escaping the root (``check_members``), a path archived as two things, a hard link it cannot make, a member
    under a non-directory, a header or name no file can have (``refuse_ambiguous``). The one check file_restore runs
    before writing anything and backup_verify runs on every file archive it reads: an archive verified ok is one
    file_restore does not refuse for what it holds, and a refused one fails verification with file_restore's own
    words. An IntegrityError naming ``archive``, ``outcome`` last: file_restore's "Nothing was written."; none from
    backup_verify (writing nothing in any case, it would read as if it might have)."""
    check_members(members, archive, outcome)
    refuse_ambiguous(members, archive, outcome)


# what extraction into staging says of a member below one that is not a directory (_open_parents, _guard_in_dir)
UNDER_A_NON_DIRECTORY = 'a directory on its path is a symlink or not a directory (not followed)'
REPLACES_A_DIRECTORY = 'would replace a directory extracted before it'


def _refuse_under(member: tarfile.TarInfo, key: str, first: Dict[str, tarfile.TarInfo], parents: Set[str],
                  under: List[Any]) -> None:
    """Note in ``under`` a member below one archived before it as a file, symlink, link or node (``e``, then
    ``e/x``), or one archived as such at a path that is the directory of a member before it (``e/x``, then ``e``):
    the real run refused either in staging, with these words, while check mode, which extracts nothing, listed both
    as to restore. Found on the member list, both modes refuse alike, before anything is written."""
    parts = key.split('/')
    # deepest first; an ancestor already among ``parents`` was checked with the member that put it there
    for depth in range(len(parts) - 1, 0, -1):
        above = '/'.join(parts[:depth])
        if above in parents:
            break
        earlier = first.get(above)
        if earlier is not None and not earlier.isdir():
            under.append((member.name, UNDER_A_NON_DIRECTORY))
            break
    if not member.isdir() and key in parents:
        under.append((member.name, REPLACES_A_DIRECTORY))
    for depth in range(len(parts) - 1, 0, -1):
        above = '/'.join(parts[:depth])
        if above in parents:
            break
        parents.add(above)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _guard_on_disk(member: tarfile.TarInfo, dest: str, archive: str) -> None:
    """Refuse a member that would be written through a symlink already extracted under ``dest``."""
    root = os.path.realpath(dest)
    parent = os.path.realpath(os.path.join(root, os.path.dirname(member.name)))
    if not _inside(parent, root):
        _refuse([(member.name, 'its directory is a symlink leading outside the target root')], archive)
    if member.islnk() and not _inside(os.path.realpath(os.path.join(root, member.linkname)), root):
        _refuse([(member.name, 'hard link to a file outside the target root')], archive)
    target = os.path.join(parent, os.path.basename(member.name.rstrip('/')))
    if os.path.islink(target):
        # tar replaces what is there; writing through the link (open, chmod, utime) would reach its target
        os.unlink(target)
    elif os.path.isdir(target) and not member.isdir():
        _refuse([(member.name, REPLACES_A_DIRECTORY)], archive)


def _tar_filter_keeping_mode(member: tarfile.TarInfo, path: str) -> Optional[tarfile.TarInfo]:
    """The ``tar`` filter's refusals with the archived mode kept: it also clears setuid/setgid/sticky and
    group/other-write bits, so the same archive gave other files depending on the interpreter (a setuid helper lost
    its bit on 3.12, kept it on 3.11.2). A backup tool gives back the modes it archived."""
    try:
        filtered = tarfile.tar_filter(member, path)  # type: ignore[attr-defined]
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        # its realpath() of a directory deeper than PATH_MAX cannot be had; the member was checked already (by
        # name in check_members, on disk through descriptors in _guard_in_dir) and is written by its last name
        return member
    if filtered is None or member.mode is None or filtered.mode == member.mode:
        return filtered
    return filtered.replace(mode=member.mode, deep=False)  # type: ignore[no-any-return]


def _filter_kwargs() -> Dict[str, Any]:
    return {'filter': _tar_filter_keeping_mode} if HAS_EXTRACTION_FILTER else {}


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)


def _open_parents(root_fd: int, parts: List[str], member: tarfile.TarInfo, archive: str,
                  create: bool = False) -> Optional[int]:
    """The directory holding ``parts[-1]`` under ``root_fd``, entered without following a symlink; None when a
    directory on the way does not exist yet (tar creates it: nothing can be below it). ``create``: a missing one is
    made (0700, as tar's missing parents get their mode from their own member later) instead."""
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:   # made only when missing: most members' directories exist already
                    if not create:
                        os.close(fd)
                        return None
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                _refuse([(member.name, UNDER_A_NON_DIRECTORY)],
                        archive)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _guard_in_dir(member: tarfile.TarInfo, root_fd: int, archive: str) -> None:
    """``_guard_on_disk`` relative to the root's descriptor: never by a path name that someone who can rename the
    root (its parent's owner) could redirect, so no check resolves, and no unlink happens, outside it."""
    parts = [p for p in member.name.split('/') if p not in ('', '.')]
    if not parts:
        return
    parent = _open_parents(root_fd, parts, member, archive)
    if parent is not None:
        try:
            try:
                st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                os.unlink(parts[-1], dir_fd=parent)   # replaced, never written through
            elif st is not None and stat.S_ISDIR(st.st_mode) and not member.isdir():
                _refuse([(member.name, REPLACES_A_DIRECTORY)], archive)
        finally:
            os.close(parent)
    if member.islnk():
        # tarfile links to the target by name, following a symlink there: the target must be a file of the root
        # (a target not extracted - an ``only`` selection - makes the link fail as before: nothing to follow)
        link_parts = [p for p in member.linkname.split('/') if p not in ('', '.')]
        holder = _open_parents(root_fd, link_parts, member, archive) if link_parts else None
        if holder is not None:
            try:
                st = os.stat(link_parts[-1], dir_fd=holder, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            finally:
                os.close(holder)
            if st is not None and stat.S_ISLNK(st.st_mode):
                _refuse([(member.name, 'hard link to a symlink (it would link the file the symlink names)')], archive)


def mtime_ns(member: tarfile.TarInfo) -> int:
    """The member's mtime in nanoseconds, exact from the pax header when there is one (tarfile parses it into a
    float, which keeps ~0.2 us of a current time)."""
    text = member.pax_headers.get('mtime')
    if text:
        try:
            return int(decimal.Decimal(text).scaleb(9).to_integral_value(decimal.ROUND_FLOOR))
        except (decimal.InvalidOperation, ValueError):
            pass
    return int(member.mtime * 1000000000)


XATTR_PREFIX = 'SCHILY.xattr.'


def member_xattrs(member: tarfile.TarInfo) -> Dict[str, bytes]:
    """The extended attributes archived with ``member`` (pax ``SCHILY.xattr.<name>``, values as bytes)."""
    return {key[len(XATTR_PREFIX):]: value.encode('utf-8', 'surrogateescape')
            for key, value in sorted(member.pax_headers.items()) if key.startswith(XATTR_PREFIX)}


def apply_xattrs(fd: Any, xattrs: Dict[str, bytes], name: str, problems: Optional[List[Dict[str, str]]]) -> None:
    """Make the kept extended attributes of ``fd`` exactly ``xattrs`` (after its owner and mode: a chown clears
    security.capability). One that this file system or user cannot take is reported in ``problems`` (raised
    without a list), never dropped silently.

    Kept ones the member was not archived with are removed: a file or directory created under a directory with a
    default ACL inherits its entries (the staging directory is made in the target, and a restore target such as a
    shared /srv/restore often has one), and a directory restored over keeps what was added since; either way the
    restored tree carried ACL entries - access for another user - that its source never had.

    ``fd`` may be a path instead (``/proc/self/fd/<dir>/<name>``), never followed: a symlink, FIFO or device node,
    which is not opened."""
    nofollow: Dict[str, Any] = {'follow_symlinks': False} if isinstance(fd, str) else {}
    try:
        present = [key for key in os.listxattr(fd, **nofollow)
                   if key.startswith(XATTR_NAMESPACES) or key in XATTR_NAMES]
    except OSError:
        present = []   # ENOTSUP and the like: nothing inherited either
    for key in present:
        if key not in xattrs:
            try:
                os.removexattr(fd, key, **nofollow)
            except OSError as exc:
                if problems is None:
                    raise
                problems.append({'path': name, 'reason': 'extended attribute %s (not archived) not removed: %s'
                                 % (key, exc.strerror or exc)})
    for key, value in xattrs.items():
        try:
            os.setxattr(fd, key, value, **nofollow)
        except OSError as exc:
            if problems is None:
                raise
            problems.append({'path': name, 'reason': 'extended attribute %s not restored: %s'
                             % (key, exc.strerror or exc)})


FFLAGS_KEYWORD = 'SCHILY.fflags'


def archived_flags(member: tarfile.TarInfo) -> List[str]:
    """The file flags archived with ``member`` (pax ``SCHILY.fflags``) that a restore sets."""
    return [n for n in member.pax_headers.get(FFLAGS_KEYWORD, '').split(',')
            if n in safeio.FILE_FLAGS and n not in safeio.FLAGS_NOT_RESTORED]


def apply_flags(fd: int, member: tarfile.TarInfo, problems: Optional[List[Dict[str, str]]]) -> None:
    """Make the file flags of ``fd`` the ones archived with ``member`` (chattr +d, +A...): others it carries are
    cleared (inherited from a directory with chattr +d, or added to a directory restored over since), as
    ``apply_xattrs`` does with extended attributes. Immutable and append-only are not set (a restored immutable
    file refuses the next restore and the removal of a drill's scratch tree): they are reported in ``problems``, as
    is a flag this file system refuses - a restore says what it dropped."""
    if problems is None:
        return
    names = [n for n in member.pax_headers.get(FFLAGS_KEYWORD, '').split(',') if n]
    for name in names:
        known = safeio.FILE_FLAGS.get(name)
        if known is None:
            problems.append({'path': member.name, 'reason': 'file flag %s (not a Linux one) not restored' % name})
        elif name in safeio.FLAGS_NOT_RESTORED:
            problems.append({'path': member.name, 'reason': 'file flag %s (chattr +%s) not restored: set it again '
                             'with chattr +%s once the restored file is checked' % (name, known[1], known[1])})
    wanted = archived_flags(member)
    try:
        safeio.set_flags(fd, wanted)
    except OSError as exc:
        if wanted:
            problems.append({'path': member.name, 'reason': 'file flag%s %s (chattr +%s) not restored: %s' % (
                's' if len(wanted) > 1 else '', ','.join(wanted), ''.join(safeio.FILE_FLAGS[n][1] for n in wanted),
                exc.strerror or exc)})
        else:
            problems.append({'path': member.name, 'reason': 'file flags %s (not archived) not cleared: %s'
                             % (','.join(safeio.kept_flags(fd)), exc.strerror or exc)})


def foreign_setid(member: tarfile.TarInfo, uid: int, gid: int) -> Optional[Dict[str, Any]]:
    """What a restore that is not root's does to the setuid (setgid) bit of ``member`` once the file has ``uid``
    and ``gid``: None when it keeps its archived mode, else ``{'mode': the mode it gets, 'problem': the
    not_restored entry}``. Shared by the restore (``clear_foreign_setid``) and check mode, which foresees it."""
    if os.geteuid() == 0 or not member.mode & (stat.S_ISUID | stat.S_ISGID):
        return None
    dropped = []
    keep = member.mode & 0o7777
    if member.mode & stat.S_ISUID and uid != member.uid:
        dropped.append('setuid bit (owner %s)' % (member.uname or 'uid %d' % member.uid))
        keep &= ~stat.S_ISUID
    if member.mode & stat.S_ISGID and gid != member.gid:
        dropped.append('setgid bit (group %s)' % (member.gname or 'gid %d' % member.gid))
        keep &= ~stat.S_ISGID
    if not dropped:
        return None
    reason = ('%s not restored: only root gives a file its archived owner, and the bit would make it run as uid '
              '%d instead; restore as root' % (' and '.join(dropped), uid))
    return {'mode': keep, 'problem': {'path': member.name, 'reason': reason}}


def clear_foreign_setid(fd: int, member: tarfile.TarInfo, problems: Optional[List[Dict[str, str]]]) -> None:
    """Clear the setuid (setgid) bit of the extracted file ``fd`` when it does not have the archived owner (group):
    only root sets those, and tarfile gave the file to the restoring user in silence while setting its mode - a
    setuid-root binary came back setuid to that user. Reported in ``problems``, as GNU tar clears them too."""
    st = os.fstat(fd)
    cleared = foreign_setid(member, st.st_uid, st.st_gid)
    if cleared is None:
        return
    os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~((stat.S_ISUID | stat.S_ISGID) & ~cleared['mode']))
    if problems is None:
        raise OSError(errno.EPERM, '%s: %s' % (member.name, cleared['problem']['reason']))
    problems.append(cleared['problem'])


def owner_entry(member: tarfile.TarInfo) -> Dict[str, Any]:
    """An ``owners_not_restored`` entry: the member and the owner and group it was archived with."""
    return {'path': member.name, 'uid': member.uid, 'gid': member.gid, 'owner': member.uname or None,
            'group': member.gname or None}


def device_problem(member: tarfile.TarInfo) -> Dict[str, str]:
    """The not_restored entry of a device node that a restore by another user than root cannot make."""
    return {'path': member.name, 'reason': '%s device %d,%d not made: only root can make device nodes (restore as '
            'root, or mknod it)' % ('character' if member.ischr() else 'block', member.devmajor, member.devminor)}


def extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str, numeric_owner: bool = False,
                   archive: str = '', dest_fd: Optional[int] = None,
                   problems: Optional[List[Dict[str, str]]] = None) -> bool:
    """Extract one member under ``dest`` after refusing it if it would escape. Returns False when it was not made:
    a device node when not running as root (reported in ``problems``).

    With ``dest_fd`` (a descriptor of the root, ``dest`` then being ``/proc/self/fd/<dest_fd>``), what is on disk
    is checked relative to the descriptor, and tar writes through the descriptor's path: renaming the root or
    linking its name elsewhere while members are extracted changes nothing (file_restore's staging directory in a
    target directory a user owns)."""
    check_members([member], archive)
    if dest_fd is None:
        _guard_on_disk(member, dest, archive)
        tar.extract(member, dest, set_attrs=True, numeric_owner=numeric_owner, **_filter_kwargs())
        if not member.isdir():
            ns = mtime_ns(member)
            os.utime(os.path.join(dest, member.name), ns=(ns, ns), follow_symlinks=False)
        return True
    if (member.ischr() or member.isblk()) and os.geteuid() != 0:
        if problems is None:
            raise OSError(errno.EPERM, 'only root can make device node %s' % member.name)
        problems.append(device_problem(member))
        return False
    _guard_in_dir(member, dest_fd, archive)
    parts = [p for p in member.name.split('/') if p not in ('', '.')]
    if not parts:
        tar.extract(member, dest, set_attrs=True, numeric_owner=numeric_owner, **_filter_kwargs())
        return True
    # Extracted by its last name into its directory's descriptor: the whole path may be longer than PATH_MAX
    # (a deep tree), and every call with it would fail with ENAMETOOLONG.
    parent = cast(int, _open_parents(dest_fd, parts, member, archive, create=True))   # create: never None
    try:
        if member.islnk():
            link_parts = [p for p in member.linkname.split('/') if p not in ('', '.')]
            holder = _open_parents(dest_fd, link_parts, member, archive) if link_parts else None
            if holder is None:
                _refuse([(member.name, 'hard link to a file that is not in the archive before it')], archive)
            try:
                with _suppress_missing():
                    os.unlink(parts[-1], dir_fd=parent)
                os.link(link_parts[-1], parts[-1], src_dir_fd=holder, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(holder)
        elif member.isreg() and member.pax_headers.get(SPARSE_KEYWORD) == '1':
            _write_sparse(tar, member, parts[-1], parent, numeric_owner)
        else:
            short = copy.copy(member)
            short.name = parts[-1]
            tar.extract(short, '/proc/self/fd/%d' % parent, set_attrs=True, numeric_owner=numeric_owner,
                        **_filter_kwargs())
        xattrs = member_xattrs(member)
        if member.isreg():   # a directory's are set by the caller on the directory put in place
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0),
                         dir_fd=parent)
            try:
                apply_xattrs(fd, xattrs, member.name, problems)
                apply_flags(fd, member, problems)
                clear_foreign_setid(fd, member, problems)
            finally:
                os.close(fd)
        elif (member.issym() or member.isdev()) and xattrs:
            # by name, never opened nor followed: a symlink's trusted.* (user.* cannot be set on one: reported)
            apply_xattrs('/proc/self/fd/%d/%s' % (parent, parts[-1]), xattrs, member.name, problems)
        if not member.isdir():
            # tarfile sets a float mtime and none on a symlink: the exact one on both (a directory's is set by the
            # caller after its content is in place - writing a file into it changes it again).
            ns = mtime_ns(member)
            os.utime(parts[-1], ns=(ns, ns), dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)
    return True


# Written by file_backup on files with holes (fewer blocks than bytes): their zero runs are written back as holes.
SPARSE_KEYWORD = 'OPSREADY.sparse'
_HOLE = 64 * 1024


def _write_sparse(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, parent: int, numeric_owner: bool) -> None:
    """A regular file whose all-zero 64 KiB blocks are skipped (holes), then its owner and mode, as tarfile would
    set them (names resolved unless ``numeric_owner``; only root changes owners)."""
    with _suppress_missing():
        os.unlink(name, dir_fd=parent)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o600,
                 dir_fd=parent)
    try:
        source = tar.extractfile(member)
        if source is None:
            raise tarfile.ReadError('no data for %s' % member.name)
        while True:
            block = source.read(_HOLE)
            if not block:
                break
            if block.count(0) == len(block):
                os.lseek(fd, len(block), os.SEEK_CUR)
                continue
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view):]
        os.ftruncate(fd, member.size)
        if os.geteuid() == 0:
            uid, gid = member.uid, member.gid
            if not numeric_owner:
                uid, gid = _named_ids(member)
            os.fchown(fd, uid, gid)
        os.fchmod(fd, member.mode & 0o7777)
    finally:
        os.close(fd)


def _named_ids(member: tarfile.TarInfo) -> Any:
    """uid/gid by the archived names when they exist here, else the archived numbers (what tarfile does)."""
    uid, gid = member.uid, member.gid
    try:
        import grp
        gid = grp.getgrnam(member.gname).gr_gid if member.gname else gid
    except (ImportError, KeyError):
        pass
    try:
        import pwd
        uid = pwd.getpwnam(member.uname).pw_uid if member.uname else uid
    except (ImportError, KeyError):
        pass
    return uid, gid


@contextlib.contextmanager
def _suppress_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


def extract_all(tar: tarfile.TarFile, dest: str, numeric_owner: bool = False, archive: str = '',
                dest_fd: Optional[int] = None) -> None:
    """Extract a whole (possibly streamed) archive, checking each member as it is read.

    ``extractall`` is kept (rather than a loop of ``extract``) because it sets directory modes and
    times last, after their contents are written: a 0700 PostgreSQL data directory stays 0700.
    ``dest_fd``: a descriptor of ``dest``; every member is then written relative to it (``_extract_all_at``).
    """
    if dest_fd is not None:
        _extract_all_at(tar, dest_fd, numeric_owner, archive)
        return

    def checked() -> Iterator[tarfile.TarInfo]:
        for member in tar:
            check_members([member], archive)
            if member.ischr() or member.isblk():
                # a PostgreSQL base backup or WAL archive never holds one: a device node there is not ours
                _refuse([(member.name, 'device file')], archive)
            _guard_on_disk(member, dest, archive)
            yield member
    tar.extractall(  # nosec B202 # members checked one by one
        dest, members=checked(), numeric_owner=numeric_owner, **_filter_kwargs())


def _extract_all_at(tar: tarfile.TarFile, dest_fd: int, numeric_owner: bool, archive: str) -> None:
    """``extract_all`` relative to the descriptor of the root, never by its name: the root may sit in a directory
    another account owns (a PITR staging directory beside a data directory, in the postgres account's
    /var/lib/postgresql/16), which could rename it away and link its name to a directory of root's while members are
    written. Directories are made 0700 (root's own access while they fill) and given their archived mode and time
    after every member, as ``extractall`` does."""
    directories: List[tarfile.TarInfo] = []
    for member in tar:
        if member.ischr() or member.isblk():
            # a PostgreSQL base backup or WAL archive never holds one: a device node there is not ours
            _refuse([(member.name, 'device file')], archive)
        if member.isdir():
            directories.append(member)
            member = copy.copy(member)
            member.mode = 0o700
        extract_member(tar, member, '/proc/self/fd/%d' % dest_fd, numeric_owner=numeric_owner, archive=archive,
                       dest_fd=dest_fd)
    for member in reversed(directories):
        parts = [p for p in member.name.split('/') if p not in ('', '.')]
        holder = _open_parents(dest_fd, parts, member, archive) if parts else None
        if holder is None:
            continue   # the root itself: its mode is its maker's
        try:
            fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=holder)
        finally:
            os.close(holder)
        try:
            os.fchmod(fd, member.mode & 0o7777)
            ns = mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
