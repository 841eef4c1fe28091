# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and writing files where the filesystem may be hostile.

Two tools:

* ``read_regular`` reads a named file only when it is a regular file no larger than a cap. A FIFO
  would block the reader forever, ``/dev/zero`` never ends, a directory has no content: each is
  refused with a message saying what the path is. The file is opened non-blocking and re-checked with
  ``fstat`` on the descriptor actually read, so a file swapped after the first check is still refused.
* ``SafeDir`` is a directory opened once. Everything inside it is done relative to that descriptor
  (``dir_fd``), the final name is never followed when it is a symlink (``O_NOFOLLOW``), new files are
  created exclusively (``O_EXCL``) with their mode and owner set on the descriptor (``fchmod``,
  ``fchown``), and replaced with one ``rename``. A user who can write to the directory can therefore
  not redirect root's writes through a symlink or a renamed parent. A directory that a user other
  than root (or the module's own user) can write to is refused unless the caller names that user
  (``owner``); files written there then belong to that user.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shlex
import stat
import tempfile
import time
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import temp_prefix
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

# read_regular and its helpers live in safe_read (what catalog readers import alone); the same objects here.
from ansible_collections.opsready.operations.plugins.module_utils.files.safe_read import (  # noqa: F401  # pylint: disable=unused-import
    MiB, UnsafeFileError, _check_stat, explain_missing, human_size, kind_of, open_checked, read_fd, read_regular)


def uid_name(uid: int) -> str:
    """The user name of ``uid`` (its number when it has none), for messages."""
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def resolve_user(user: Optional[str]) -> Optional[Tuple[int, int]]:
    """(uid, primary gid) of a user name or numeric id; None for None."""
    if user is None or user == '':
        return None
    import pwd
    try:
        entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(str(user))
    except (KeyError, ValueError, OverflowError):   # ValueError: a NUL in the name; OverflowError: a huge id
        raise UnsafeFileError('User %r does not exist on this host: give an existing user name.' % (user,))
    return entry.pw_uid, entry.pw_gid


def path_option(value: str) -> str:
    """A path option of a root-safe module, taken as written: a ``~`` at its start is the home directory (as Ansible's
    ``type: path``), but a ``$NAME`` is part of the name. ``type: path`` also expands environment variables, so a file
    named ``$HOME`` found in an application's directory was written or deleted as ``.../root``: another file."""
    return os.path.expanduser(value) if value.startswith('~') else value


def validate_argv(command: str, candidate: str) -> List[str]:
    """The argv of a ``validate`` command (as copy's: ``%s`` is the file to check) for ``candidate``: split first (a
    space in the path stays one argument), the command's own words expanded (``$VAR``, ``~``), the copy's path put in
    after that expansion. Run it with nothing expanded again: expanding the whole line turned a dest named
    ``$HOME`` into ``.../root``, a file that is not the copy."""
    return [os.path.expanduser(os.path.expandvars(arg)).replace('%s', candidate) for arg in shlex.split(command)]


def literal_path(path: str, what: str, directory: bool = False) -> None:
    """Refuse ``path`` when a lexical clean-up (``os.path.abspath``, which every walker here starts with) would make it
    name another file than the kernel would: a ``..`` component (``dir/link/..`` is the parent of the link's target
    to the kernel, ``dir`` once cleaned up; ``dir/missing/../x`` is an error to the kernel, ``dir/x`` once cleaned up)
    and, for a file (``directory`` False), a trailing ``/`` or ``/.`` (a directory to the kernel, the file without it
    once cleaned up). A NUL, which no name can hold, is refused here too rather than as a ``ValueError``. Every
    other byte is a legal name and is taken as it is. ``what``: the option, for the message."""
    if '\0' in path:
        raise UnsafeFileError('%s %r holds a NUL byte, which no file name can hold. Nothing was done.' % (what, path),
                              path=path)
    parts = path.split('/')
    if '..' in parts:
        raise UnsafeFileError('%s %s has a ".." component: it is refused rather than cleaned up, since through a '
                              'symlink on the way (or a missing directory) the kernel would name another file than '
                              'the cleaned-up path. Give the path without "..". Nothing was done.' % (what, path),
                              path=path)
    if not directory and (parts[-1] in ('', '.')):
        raise UnsafeFileError('%s %s ends in "/" or "/.", which names a directory, not a file: give the file\'s own '
                              'path. Nothing was done.' % (what, path), path=path)


def directory_risk(st: os.stat_result, owner_uid: Optional[int] = None) -> Optional[str]:
    """Why a directory is unsafe for root to write into (None when it is safe).

    Safe: owned by root, by this process's user, or by ``owner_uid``, and not writable by group or
    others (a sticky world-writable directory such as /tmp still lets every user plant names).
    """
    trusted = {0, os.geteuid()}
    if owner_uid is not None:
        trusted.add(owner_uid)
    if st.st_uid not in trusted:
        return 'it belongs to %s' % uid_name(st.st_uid)
    if st.st_mode & 0o022:
        return 'it is writable by %s (mode %04o)' % ('others' if st.st_mode & 0o002 else 'its group',
                                                     stat.S_IMODE(st.st_mode))
    return None


def path_risk(path: str, owner_uid: Optional[int] = None) -> Optional[str]:
    """Why a directory above ``path`` lets another account swap what ``path`` names (None when none does).

    Every directory on the way, symlinks resolved one at a time as the kernel does, must pass ``directory_risk``
    - or be sticky (/tmp) with the next entry root's or this user's, which nobody else may then rename. A symlink
    on the way counts as an entry of the directory holding it. The first component that does not exist yet ends
    the walk: root creates it (its own entry) in the last directory checked. The mode and owner of ``path``
    itself are not judged here (see ``directory_risk``; a backup directory may be tightened by its caller).
    ``owner_uid``: an account trusted as much as root (``directory_risk``).
    """
    trusted = (0, os.geteuid(), owner_uid)
    pending = [p for p in os.path.abspath(path).split('/') if p]
    current = '/'
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == '.':
            continue
        if name == '..':
            current = os.path.dirname(current)
            continue
        here = os.stat(current)
        child = os.path.join(current, name)
        owner: Optional[int] = None   # a missing entry: root creates it, its own
        kind = 0
        try:
            st = os.lstat(child)
            owner, kind = st.st_uid, stat.S_IFMT(st.st_mode)
        except (FileNotFoundError, NotADirectoryError):
            pass
        risk = directory_risk(here, owner_uid)
        if risk and not (here.st_mode & stat.S_ISVTX and (owner is None or owner in trusted)):
            return '%s is in %s, and %s' % (child, current, risk)
        if owner is None:
            return None
        if kind == stat.S_IFLNK:
            link_risk = _link_risk(child, current, here, owner)
            if link_risk:
                return link_risk
            hops += 1
            if hops > 40:
                return '%s: too many levels of symbolic links' % path
            target = os.readlink(child)
            if target.startswith('/'):
                current = '/'
            pending = [p for p in target.split('/') if p] + pending
            continue
        current = child
    return None


class LinkRisk(str):
    """A ``path_risk`` answer about a symlink on the way (a complete sentence: callers do not add the rename story)."""


def _link_risk(child: str, current: str, here: os.stat_result, link_owner: int) -> Optional[str]:
    """Why root must not follow the symlink ``child`` found in the directory ``current`` (None when it may).

    A link is followed only where no account but root (or this user) could have made it or could change it: in a
    directory ``directory_risk`` accepts without trusting anyone else, or a sticky one (/tmp) when the link is root's.
    The account named in ``owner`` is trusted with its own files, not with where root writes: a link it makes in its
    own directory (its certificate directory linked to /etc/ssl/private) would send root's writes, chmods and chowns
    into a directory of root's."""
    if directory_risk(here) is None:
        return None
    if here.st_mode & stat.S_ISVTX and link_owner in (0, os.geteuid()):
        return None
    who = uid_name(here.st_uid) if here.st_uid not in (0, os.geteuid()) else 'the accounts that can write it'
    return LinkRisk('%s is a symlink in %s, which %s controls (an account trusted with its own files, not with '
                    'where root writes: it could point the link at a directory of root\'s such as /etc/ssl/private). '
                    'Root does not follow it: point the path at a real directory (not through the link)'
                    % (child, current, who))


def open_directory(path: str, created: bool = False, path_only: bool = False) -> int:
    """A descriptor of the directory ``path``, walked one component at a time from /, following a symlink only where
    ``_link_risk`` allows it (a directory only root can write).

    ``path_risk`` judges the path first, but an account that owns a directory on the way can swap an entry of it for
    a link (to /etc/ssl/private) between that check and an open by name. Each component here is opened with
    O_NOFOLLOW relative to the one before, so such a link is seen where it is and refused. ``created``: the last
    component was just made by root, and is never followed even in a directory of root's.

    The directories on the way are opened O_PATH where the system has it (search permission is enough, as for a
    lookup by name: a user the task becomes reads below a 0711 home); the last one O_RDONLY, or O_PATH too with
    ``path_only`` (a descriptor only to open, stat or read links relative to)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    on_the_way = (flags & ~os.O_RDONLY) | getattr(os, 'O_PATH', os.O_RDONLY)
    last = on_the_way if path_only else flags
    pending = [p for p in os.path.abspath(path).split('/') if p]
    fd = os.open('/', on_the_way if pending else last)
    current = '/'
    hops = 0
    try:
        while pending:
            name = pending.pop(0)
            if name == '.':
                continue
            try:
                child_fd = os.open(name, on_the_way if pending else last, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise
                child = os.path.join(current, name)
                if created and not pending:
                    raise UnsafeFileError('Directory %s was replaced by a symlink right after it was created: '
                                          'refusing it. Someone else writes into %s.' % (child, current), path=child)
                risk = _link_risk(child, current, os.fstat(fd), st.st_uid)
                if risk:
                    raise UnsafeFileError('Refusing to open %s as %s: %s.' % (path, uid_name(os.geteuid()), risk),
                                          path=path)
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=fd)
                pending = [p for p in target.split('/') if p] + pending
                if target.startswith('/'):
                    os.close(fd)
                    fd = os.open('/', on_the_way if pending else last)
                    current = '/'
                continue
            os.close(fd)
            fd = child_fd
            current = os.path.dirname(current) if name == '..' else os.path.join(current, name)
        if last != on_the_way and fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, 'O_PATH', 0):
            # the walk ended on a directory opened on the way (a trailing "." of a link's target): opened for real
            child_fd = os.open('.', last, dir_fd=fd)
            os.close(fd)
            fd = child_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_directories(path: str, mode: int, parents_mode: Optional[int] = None) -> int:
    """A descriptor of the directory ``path``, made with ``mode`` where missing, component by component.

    The deepest directory that exists is opened as ``open_directory`` does; each missing component is then made
    relative to the descriptor of the one above (``mkdir`` with ``dir_fd``) and opened with O_NOFOLLOW, so a name
    swapped for a link between its creation and its use is refused where it is, never followed. ``parents_mode``:
    the mode of the missing directories above ``path`` (default ``mode``). Never ``os.makedirs``: it makes those
    0777 minus the umask, world-writable under umask 000."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    existing = os.path.abspath(path)
    missing: List[str] = []
    while existing != '/' and not os.path.isdir(existing):
        missing.insert(0, os.path.basename(existing))
        existing = os.path.dirname(existing)
    fd = open_directory(existing)
    current = existing
    try:
        for index, name in enumerate(missing):
            try:
                os.mkdir(name, mode if parents_mode is None or index == len(missing) - 1 else parents_mode, dir_fd=fd)
            except FileExistsError:
                pass   # made meanwhile (another run): opened below like any other, never through a link
            child = os.path.join(current, name)
            try:
                child_fd = os.open(name, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(child):
                    # O_NOFOLLOW | O_DIRECTORY on a link fails with ENOTDIR on some kernels, ELOOP on others
                    raise UnsafeFileError('Directory %s was replaced by a symlink right after it was created: '
                                          'refusing it. Someone else writes into %s.' % (child, current), path=child)
                if exc.errno == errno.ENOTDIR:
                    raise UnsafeFileError('%s %s, not a directory: it cannot be created.'
                                          % (child, describe_path(child)), path=child)
                raise
            os.close(fd)
            fd, current = child_fd, child
    except BaseException:
        os.close(fd)
        raise
    return fd


def makedirs(path: str, mode: int, parents_mode: int = 0o755) -> None:
    """``os.makedirs(path, mode, exist_ok=True)`` whatever the umask: ``path`` made with ``mode`` and the directories
    above it with ``parents_mode`` (both only narrowed by the umask, never widened), none followed through a link."""
    os.close(make_directories(path, mode, parents_mode))


def _backup_dir_risk(dest: str, secret: bool, owner: Optional[Tuple[int, int]]) -> Optional[str]:
    owner_uid = owner[0] if owner else None
    risk = path_risk(dest, owner_uid)
    if risk is None and os.path.isdir(dest):
        st = os.stat(dest)
        risk = directory_risk(st, owner_uid)
        if risk and not st.st_mode & 0o002 and st.st_uid in (0, os.geteuid(), owner_uid):
            if secret and owner is None:
                risk = None   # root's own, writable by its group: prepare_backup_dir tightens it to 0700
            elif owner is not None and st.st_gid == owner[1]:
                risk = None   # writable through the group of the account named as trusted (a WAL catalog)
    return risk


def check_backup_dir(dest: str, secret: bool = False, what: str = 'backups',
                     owner: Optional[Tuple[int, int]] = None) -> None:
    """Refuse a backup directory that another account could use against root (see ``prepare_backup_dir``);
    creates and changes nothing, so check mode reports the refusal too."""
    risk = _backup_dir_risk(dest, secret, owner)
    if risk:
        # Never chmod such a shared directory either: its owner would only loosen it again.
        raise UnsafeFileError(
            'Backup directory %s is not safe to write %s into as %s: %s, so that account could swap names for '
            'symlinks where root writes. Use a directory owned by root (or this user) that others cannot write, '
            'under directories others cannot write either (a directory of root\'s inside the sticky /tmp is fine), '
            'e.g. /var/backups/opsready/<set>; or run the task as the account that owns it (become_user) so '
            'nothing there is written as root%s.' % (
                dest, what, uid_name(os.geteuid()), risk,
                '' if what in ('archives', 'pulled backups', 'backup copies')
                else '; or, if you trust that account as much as root '
                '(postgres writing WAL into the catalog), name it in owner'), path=dest)


def not_a_directory_on_the_way(path: str) -> Optional[str]:
    """Why ``path`` cannot be a directory (None when it is one, or can be made): the deepest name of it that exists is
    not a directory (a file, a FIFO, a symlink to nothing). Looked at without opening anything (a FIFO never blocks),
    so check mode refuses what the real run would fail on rather than report a directory it would make."""
    existing = os.path.abspath(path)
    while existing != '/' and not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if os.path.isdir(existing):
        return None
    where = 'it' if existing == os.path.abspath(path) else existing
    return '%s %s, not a directory' % (where, describe_path(existing))


def prepare_backup_dir(dest: str, secret: bool = False, what: str = 'backups',
                       owner: Optional[Tuple[int, int]] = None, check_mode: bool = False) -> bool:
    """Create a backup directory 0700 and refuse one that another account could use against root.

    Tools and staging files write by name into it (pg_dump -Fd, pg_basebackup, mariadb-binlog, redis-cli, SQLite's
    journal), so its owner - or whoever can rename it away from a directory above - could swap a name for a symlink
    and have root write or truncate any file. Safe: the directory and every one above it pass ``path_risk`` /
    ``directory_risk`` for this process's user (a directory of root's inside the sticky /tmp is fine). Running the
    task as the account that owns the directory (become_user) makes it safe too: then nothing is written as root.
    With ``secret``, a directory of root's that only its group can write is tightened to 0700 rather than refused.
    ``owner`` (uid, gid) names an account trusted as much as root: a directory it owns, or root's that its group
    can write (PostgreSQL's archive_command writing WAL into the catalog), is accepted. Returns True if the
    directory was created or tightened. ``check_mode``: refuses the same, changes nothing, and returns whether a real
    run would create or tighten it.
    """
    changed = False
    check_backup_dir(dest, secret, what, owner)   # before creating anything below a directory someone else controls
    in_the_way = not_a_directory_on_the_way(dest)
    if in_the_way:
        raise OpsReadyError('Cannot create backup directory %s: %s. Remove what is in the way or choose another '
                            'directory (it is created when missing). Nothing was changed.' % (dest, in_the_way),
                            path=dest)
    if check_mode:
        if not os.path.isdir(dest):
            return True
        _writable_backup_dir(dest)   # refused by the real run below
        return bool(secret and stat.S_IMODE(os.stat(dest).st_mode) & 0o077)
    if not os.path.isdir(dest):
        try:
            makedirs(dest, 0o700)
        except UnsafeFileError as exc:
            # which path is in the way, said as the backup directory it stopped
            raise UnsafeFileError('Cannot create backup directory %s: %s' % (dest, exc.message),
                                  **dict(exc.details, path=dest)) from None
        except OSError as exc:
            if exc.errno == errno.EEXIST:   # something that is not a directory is in the way: say what
                raise OpsReadyError('dest %s %s, not a directory: point dest at a directory (it is created when '
                                    'missing).' % (dest, describe_path(dest)), path=dest)
            raise OpsReadyError('Cannot create backup directory %s: %s.' % (dest, exc.strerror), path=dest)
        changed = True
        check_backup_dir(dest, secret, what, owner)   # a directory on the way planted meanwhile
    if secret and stat.S_IMODE(os.stat(dest).st_mode) & 0o077:
        os.chmod(dest, 0o700)
        changed = True
    _writable_backup_dir(dest)
    return changed


def _writable_backup_dir(dest: str) -> None:
    if not os.access(dest, os.W_OK | os.X_OK):
        raise OpsReadyError('Backup directory %s is not writable by this user: fix its permissions or choose '
                            'another dest.' % dest, path=dest)


def prepare_directory(path: str, mode: int, what: str, check_mode: bool = False) -> bool:
    """Make ``path`` a directory of this user's with ``mode`` (missing parents 0755), refusing one another account
    could use against root: ansible.builtin.file (state=directory) follows a symlink at the name (or above it) and
    chmods the directory it leads to (/etc made 0711), and root then writes into it.

    Refused, before anything is made: a directory above that another account can rename entries in (``path_risk``),
    ``path`` itself another account's, or a mode that lets group or others plant names. The last component is made
    relative to the one above and opened with O_NOFOLLOW (``make_directories``), then set to ``mode`` on its
    descriptor whatever the umask. ``what``: what root keeps there, for the message. Returns True when the
    directory was (or in check mode would be) made or its mode changed."""
    literal_path(path, 'Directory', directory=True)
    me = uid_name(os.geteuid())
    if mode & 0o022:
        raise UnsafeFileError('Mode %04o for %s lets its group or others plant symlinks where %s writes %s: use a mode '
                              'without group or other write (0755, 0750, 0711, 0700).' % (mode, path, me, what),
                              path=path)
    risk = path_risk(path)
    if risk:
        raise UnsafeFileError('Directory %s is not safe for %s to keep %s in: %s, so that account could put a link '
                              'to a directory of root\'s at its name, and %s would chmod and write there. Nothing was '
                              'changed. Choose a path below directories only %s can write (or the sticky /tmp).'
                              % (path, me, what, risk, me, me), path=path)
    created = False
    in_the_way = not_a_directory_on_the_way(path)
    if in_the_way:
        raise UnsafeFileError('Cannot make directory %s for %s: %s. Remove what is in the way or choose another path. '
                              'Nothing was changed.' % (path, what, in_the_way), path=path)
    if not os.path.lexists(path):
        if check_mode:
            return True
        fd = make_directories(path, mode, 0o755)
        created = True   # changed even when the umask left the mode as asked
    else:
        try:
            fd = open_directory(path)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise UnsafeFileError('%s %s, not a directory: remove it or choose another path for %s.'
                                      % (path, describe_path(path), what), path=path)
            raise
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()):
            raise UnsafeFileError('Directory %s belongs to %s, who could plant symlinks where %s writes %s: nothing '
                                  'was changed. Make it root\'s or choose another path.'
                                  % (path, uid_name(st.st_uid), me, what), path=path)
        if stat.S_IMODE(st.st_mode) == mode:
            return created
        if not check_mode:
            os.fchmod(fd, mode)
        return True
    finally:
        os.close(fd)


def read_below_nofollow(path: str, limit: int, missing_ok: bool = False, what: str = 'File') -> Optional[bytes]:
    """The content of the regular file ``path`` (at most ``limit`` bytes, one name), read as root from a directory
    another account may write, never through a symlink that account could have made - at the final name or above it.

    ``read_nofollow`` only refused a link at the final name: the directories above were opened by path, so the owner
    of the application's directory could link a component of it (``current`` -> /root) and root read and printed
    root's own file of that name. Here the directory is opened as ``open_directory`` does (one component at a time,
    a link followed only where no account but root could have made it), and the name is then looked at (lstat: a
    FIFO or a device is refused before it is opened), opened O_NOFOLLOW | O_NONBLOCK relative to that descriptor and
    checked again on the descriptor read (``fstat``: a name swapped after the lstat is refused, never blocks).
    ``path`` must be absolute, taken as written (``literal_path``). None when nothing is at ``path`` (nor at its
    directory) and ``missing_ok``; a symlink, dangling or not, is always refused."""
    if not path.startswith('/'):
        raise UnsafeFileError('%s %r must be an absolute path: a relative one names a file in whatever directory the '
                              'module runs in. Give the full path.' % (what, path), path=path)
    literal_path(path, what)
    directory, name = os.path.split(path)
    missing = '%s %s does not exist: fix the path (or set missing_ok to read it only when it is there).' % (what, path)
    try:
        dir_fd = open_directory(directory or '/', path_only=True)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            if missing_ok:
                return None
            raise UnsafeFileError(missing, path=path, errno=exc.errno)
        if exc.errno == errno.ENOTDIR:
            raise UnsafeFileError('%s %s cannot be read: a component of %s is not a directory (%s %s). Fix the '
                                  'path.' % (what, path, directory, directory, describe_path(directory)), path=path)
        raise UnsafeFileError('Cannot read %s %s: %s.' % (what.lower(), path, exc.strerror), path=path,
                              errno=exc.errno)
    symlink = ('%s %s is a symlink, and root does not read through a link at this name (an account that can write '
               '%s could have planted it to make root read another file): it was not read. Replace the link with the '
               'file itself, or point the path at the file it leads to.' % (what, path, directory or '/'))
    try:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise UnsafeFileError(missing, path=path, errno=errno.ENOENT) from None
        except OSError as exc:   # a name longer than NAME_MAX, an I/O error
            raise UnsafeFileError('Cannot read %s %s: %s.' % (what.lower(), path, exc.strerror), path=path,
                                  errno=exc.errno) from None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeFileError(symlink, path=path)
        _check_stat(path, st, limit, what)   # a FIFO or a device is never opened (a FIFO blocks, a tape rewinds)
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:   # swapped for a link since the lstat
                raise UnsafeFileError(symlink, path=path) from None
            if exc.errno == errno.ENOENT:
                if missing_ok:
                    return None
                raise UnsafeFileError(missing, path=path, errno=exc.errno) from None
            raise UnsafeFileError('Cannot read %s %s: %s.' % (what.lower(), path, exc.strerror), path=path,
                                  errno=exc.errno) from None
        try:
            opened = os.fstat(fd)
            _check_stat(path, opened, limit, what)   # the file actually opened, whatever the name held at the lstat
            if opened.st_nlink > 1:
                raise UnsafeFileError('%s %s has %d hard links (names elsewhere for the same file): it was not read, '
                                      'as someone who can write its directory could have linked another file there. '
                                      'Replace it with a copy of its own (cp, then mv over the name).'
                                      % (what, path, opened.st_nlink), path=path)
            return read_fd(fd, path, limit, what)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def unlink_below(root: str, path: str, check_mode: bool = False) -> Optional[str]:
    """Remove the name ``path`` found below the directory ``root``, never through a link: what was removed ('a
    regular file', 'a symlink', ...), None when nothing was there.

    For root deleting files another account's directory holds (old logs in an application's log directory): a name
    found by a listing can be swapped before the delete - a directory on the way renamed away and a link to /etc put
    at its name - and an unlink by path follows it. Here ``root`` is opened once (``open_directory``: a link is
    followed only in a directory only root can write), every directory below it is opened relative to the one above
    with O_NOFOLLOW (a link there is refused, never followed), and the last name is unlinked relative to its
    directory's descriptor: a link there is removed itself, a directory is refused."""
    literal_path(root, 'within', directory=True)
    literal_path(path, 'path')
    root = os.path.abspath(root)
    full = os.path.abspath(path)
    rel = os.path.relpath(full, root)
    if rel == '.' or rel == '..' or rel.startswith('../') or not full.startswith(root.rstrip('/') + '/'):
        raise UnsafeFileError('%s is not below %s: refusing to delete it. Nothing was deleted. Give a path below '
                              'within (the directory the clean-up is confined to), or widen within.' % (path, root),
                              path=path)
    parts = rel.split('/')
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    fd = open_directory(root)
    current = root
    try:
        for name in parts[:-1]:
            try:
                child = os.open(name, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return None
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    kind = kind_of(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
                    raise UnsafeFileError('Refusing to delete %s: %s is %s now, not a directory (swapped since it was '
                                          'listed?), and %s never follows it. Nothing was deleted there.'
                                          % (path, os.path.join(current, name), kind, uid_name(os.geteuid())),
                                          path=path)
                raise
            os.close(fd)
            fd, current = child, os.path.join(current, name)
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeFileError('Refusing to delete %s: it is a directory now, not a file, and only files are '
                                  'deleted here. Nothing was deleted. Point path at a file, or remove the directory '
                                  'with a task meant for directories.' % path, path=path)
        if not check_mode:
            try:
                os.unlink(parts[-1], dir_fd=fd)
            except FileNotFoundError:
                return None
        return kind_of(st.st_mode)
    finally:
        os.close(fd)


def check_parents(directory: str, action: str, option: str) -> None:
    """Refuse a directory root creates, replaces or deletes files in by name (reports, histories, lock files, a
    catalog being pruned) when an account other than root could swap it, or a directory above it, for a link
    (``path_risk``): root would act on the directory the link names (/etc, another catalog). Creates and changes
    nothing, so check mode refuses the same way. ``action``: what root does there ("write drill reports into").
    The directory itself may be another account's: files are then replaced by rename and never written through a
    link at their name (``common/atomic``)."""
    risk = path_risk(directory)
    if not risk:
        return
    me = uid_name(os.geteuid())
    if isinstance(risk, LinkRisk):
        raise UnsafeFileError('%s %s is not safe to %s as %s: %s. Nothing was changed.'
                              % (option, directory, action, me, risk), path=directory)
    # option is an option's name ("report_dir") or "The directory of <option>" for a file option
    named = option[len('The directory of '):] if option.startswith('The directory of ') else None
    remedy = ('Point %s at a file in a directory' % named) if named else ('Point %s at a directory' % option)
    raise UnsafeFileError('%s %s is not safe to %s as %s: %s, so that account could rename it (or a directory above '
                          'it) away and put a link to a directory of root\'s at its name, and %s would create, replace '
                          'or delete files there. Nothing was changed. %s below directories only %s can write (a '
                          'directory of root\'s inside the sticky /tmp is fine), or run the task as that account.'
                          % (option, directory, action, me, risk, me, remedy, me), path=directory)


def private_tempdir(parent: Optional[str], prefix: str, option: str) -> str:
    """A new 0700 directory of this user's in ``parent`` (the system temp directory when None), for scratch files
    (decrypted dumps, a scratch server's data), refusing a ``parent`` another account could rename entries in.

    ``mkdtemp`` makes the directory exclusively, but in a directory that another account owns or can write (and
    that is not sticky), that account can rename root's new directory away and put a link to /etc at its name:
    root then writes the scratch files (decrypted data among them), a config and a server's files there by name.
    The check is ``path_risk`` of the entry to be made: a sticky /tmp is fine (nobody else may rename root's entry
    there). ``option`` names the setting that chose ``parent``, for the message.
    """
    base = check_tempdir(parent, prefix, option)
    try:
        return tempfile.mkdtemp(prefix=prefix, dir=base)
    except OSError as exc:
        raise OpsReadyError('%s %s: cannot make a scratch directory in it (%s). Nothing was created.'
                            % (option, base, exc.strerror or exc), path=base)


def may_write(path: str) -> bool:
    """Whether this process (its effective ids) may create and rename entries in the directory ``path``: a read-only
    mount or an immutable directory answer no, for root too."""
    return os.access(path, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids)


def check_tempdir(parent: Optional[str], prefix: str, option: str) -> str:
    """What ``private_tempdir`` refuses about ``parent``, without making anything (check mode foresees it): a
    directory another account could rename entries in, one that does not exist, one this user may not write.
    Returns the absolute path of the directory."""
    base = os.path.abspath(parent or tempfile.gettempdir())
    risk = path_risk(os.path.join(base, prefix + 'XXXXXXXX'))
    if risk:
        me = uid_name(os.geteuid())
        raise UnsafeFileError('%s %s is not safe for scratch files of %s: %s, so that account could rename the scratch '
                              'directory and put a link at its name, and root would write there (decrypted data '
                              'included). Nothing was created. Point %s at a directory only %s can write (or a '
                              'sticky one such as /tmp).' % (option, base, me, risk, option, me), path=base)
    if not os.path.isdir(base):
        raise OpsReadyError('%s %s does not exist (or is not a directory): create it, or point %s at a directory for '
                            'scratch files. Nothing was created.' % (option, base, option), path=base)
    if not may_write(base):
        raise OpsReadyError('%s %s is not writable by %s (a read-only mount or an immutable directory?): point %s at a '
                            'directory with room for scratch files. Nothing was created.'
                            % (option, base, uid_name(os.geteuid()), option), path=base)
    return base


# A file :meth:`SafeDir.stage` made that is older than this was left by a killed run: a run writes and renames its
# staged files within seconds, so a younger one may belong to a run still going and is never taken.
STAGED_STALE_S = 15 * 60
STAGED_RE = r'\.(?:%s)\.[0-9a-f]{12}\.tmp\Z'


def stale_own_file(st: os.stat_result, cutoff: float, owner_uid: Optional[int] = None) -> bool:
    """Whether ``st`` (an lstat) is a leftover this user may remove: a regular file (never a link) of this user (or of
    ``owner_uid``, the account files were chowned to), with no second name (removing one would not remove what
    another name still shows), neither written nor changed since ``cutoff``. (catalog_index.remove_stale_temporaries
    applies the same rule on its own: importing safeio there would ship it with every cheap catalog module.)"""
    return (stat.S_ISREG(st.st_mode) and st.st_uid in (os.geteuid(), owner_uid) and st.st_nlink == 1
            and st.st_mtime < cutoff and st.st_ctime < cutoff)


class SafeDir:
    """A directory opened once; reads, writes, renames and unlinks relative to its descriptor."""

    def __init__(self, path: str, owner: Optional[Tuple[int, int]] = None, purpose: str = 'write into',
                 create_mode: Optional[int] = None) -> None:
        self.path = os.path.abspath(path)
        self.owner = owner
        created = False
        # The directory itself may be root's, but an account that can rename entries in a directory above could
        # move it away and put a link to another directory of root's (/etc/ssl/private) at its name before it is
        # opened: root would then read and replace files there. Checked before anything is created or opened.
        above = path_risk(self.path, owner[0] if owner else None)
        if isinstance(above, LinkRisk):
            raise UnsafeFileError('Refusing to %s %s as %s: %s. Nothing was written.'
                                  % (purpose, self.path, uid_name(os.geteuid()), above), path=self.path)
        if above:
            raise UnsafeFileError(
                'Refusing to %s %s as %s: %s, so that account could rename it away and put a link to another '
                'directory at its name, and root would write there. Nothing was written. Keep it below directories '
                'only root can write, or run the task as the account that owns them (become_user).'
                % (purpose, self.path, uid_name(os.geteuid()), above), path=self.path)
        try:
            if create_mode is not None and not os.path.isdir(self.path):
                # Made one component at a time relative to the one above (mkdirat), each opened without following
                # a link: the owner of a directory on the way could swap a just-made name for a link (to /etc),
                # and makedirs by path would make the rest, and root write, below the link's target.
                self.fd = make_directories(self.path, create_mode)
                created = True
            else:
                # Component by component, never through a link the owner (or anyone but root) could have swapped
                # in since path_risk looked.
                self.fd = open_directory(self.path, created)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise UnsafeFileError('Directory %s does not exist: create it first.' % self.path, path=self.path)
            if exc.errno == errno.ENOTDIR:
                raise UnsafeFileError('%s is not a directory.' % self.path, path=self.path)
            raise UnsafeFileError('Cannot open directory %s: %s.' % (self.path, exc.strerror), path=self.path)
        if created and owner is not None and os.geteuid() == 0:
            os.fchown(self.fd, owner[0], owner[1])
        st = os.fstat(self.fd)
        self.uid = st.st_uid
        # Symlinks in a directory only root (or this user) can write were put there by them: followed.
        self.trusted = st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022
        risk = directory_risk(st, owner[0] if owner else None)
        if risk:
            os.close(self.fd)
            raise UnsafeFileError(
                'Refusing to %s %s as root: %s, so that user could plant symlinks or swap files while root '
                'writes there. Fix the directory (owned by root, not group/other-writable) or name the user who '
                'owns it (owner) so the files are written for that user.' % (purpose, self.path, risk),
                path=self.path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> 'SafeDir':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)

    def lstat(self, name: str) -> Optional[os.stat_result]:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        return self.lstat(name) is not None

    def read(self, name: str, limit: int, what: str = 'File') -> Optional[bytes]:
        """The regular file ``name``; None when there is nothing there. A symlink is followed only in a
        trusted directory (see ``trusted``); elsewhere it is refused, and so is a file with another hard link."""
        if self.lstat(name) is None:
            return None
        # Elsewhere than a trusted directory, a second name is refused too: what is read here (an old key) is
        # copied (a backup) and handed to the directory's owner.
        return read_regular(name, limit, what=what, follow=self.trusted, dir_fd=self.fd,
                            single_link=not self.trusted)

    def listdir(self) -> List[str]:
        return os.listdir(self.fd)

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def write_atomic(self, name: str, data: bytes, mode: int, uid: Optional[int] = None,
                     gid: Optional[int] = None) -> None:
        """Replace ``name`` with ``data``: a new file (created 0600, exclusive, never through a link),
        mode and owner set on its descriptor, fsynced, renamed over ``name``, directory fsynced."""
        tmp = self.stage(name, data, mode, uid, gid)
        self.commit(tmp, name)

    def commit(self, tmp: str, name: str, sync: bool = True) -> None:
        """Rename a file made by :meth:`stage` over ``name`` and fsync the directory (``sync=False``: the caller
        does, with :meth:`sync`, after a second rename); the staged file is removed when the rename fails."""
        try:
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.discard(tmp)
            raise
        if sync:
            self.sync()

    def sync(self) -> None:
        """fsync the directory (its entries, after renames)."""
        os.fsync(self.fd)

    def discard(self, tmp: str) -> None:
        """Remove a staged file that is not to be committed (nothing if it is gone)."""
        try:
            os.unlink(tmp, dir_fd=self.fd)
        except OSError:
            pass

    def stale_staged(self, name_re: str, remove: bool, now: Optional[float] = None) -> List[str]:
        """Files :meth:`stage` made for a name matching the regular expression ``name_re`` that a killed run left
        (``stale_own_file``, older than STAGED_STALE_S); removed when ``remove``. Returns their paths, sorted.

        A run killed between staging and its rename leaves one behind, and for a key it holds a private key nothing
        else would ever remove. Looked at with lstat and unlinked relative to the directory: a link is never
        followed, only its name could be removed, and it is not (not a regular file). With ``owner``, files of that
        account are taken too: :meth:`stage` chowned them to it."""
        pattern = re.compile(STAGED_RE % name_re)
        cutoff = (time.time() if now is None else now) - STAGED_STALE_S
        found = []
        for entry in sorted(self.listdir()):
            if not pattern.match(entry):
                continue
            try:
                st = self.lstat(entry)
                if st is None or not stale_own_file(st, cutoff, self.owner[0] if self.owner else None):
                    continue
                if remove:
                    self.unlink(entry)
            except OSError:
                continue
            found.append(self.join(entry))
        return found

    def stage(self, name: str, data: bytes, mode: int, uid: Optional[int] = None,
              gid: Optional[int] = None) -> str:
        """Write ``data`` to a new hidden file beside ``name`` (created 0600, exclusive, never through a link), mode
        and owner set on its descriptor, fsynced; returns its name for :meth:`commit` (or :meth:`discard`). Two
        files staged first are then renamed one right after the other: nothing is written between the two."""
        if self.owner is not None and uid is None:
            uid, gid = self.owner
        return _stage(self.fd, name, data, mode, uid, gid)


def staged_name_re(name: str, tail: Sequence[str] = ()) -> str:
    """The regular expression of the ``<name>`` part of the files ``staged_name`` makes for a name that is ``name``
    followed by ``tail`` (regular expressions of one ASCII character each: a stamp's digits), as ``stale_staged``
    takes it. Where the whole would not fit (``temp_prefix``), the staged name holds its first characters only: the
    expression is then of those (a sweep that looked for the whole name never found the staged private key of a
    key name longer than ~237 bytes)."""
    budget = 255 - 12 - len('.tmp') - 2   # the bytes ``temp_prefix`` leaves the name between its two dots
    kept: List[str] = []
    for char in name:
        budget -= len(os.fsencode(char))
        if budget < 0:
            return ''.join(kept)
        kept.append(re.escape(char))
    return ''.join(kept) + ''.join(tail[:max(budget, 0)])


def staged_name(name: str) -> str:
    """A new ``.<name>.<12 hex>.tmp`` for ``name``; for a name longer than 237 bytes, its first characters only, so
    that the staged name stays within the 255 bytes of a component (a legal name of 255 bytes failed with
    ENAMETOOLONG)."""
    return '%s%s.tmp' % (temp_prefix(name, 12 + len('.tmp')), secrets.token_hex(6))


def _stage(dir_fd: int, name: str, data: bytes, mode: int, uid: Optional[int] = None,
           gid: Optional[int] = None, strict_owner: bool = False) -> str:
    """``SafeDir.stage`` on a directory descriptor: a new ``.<name>.<12 hex>.tmp`` beside ``name``."""
    tmp = staged_name(name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0),
                 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            # strict_owner: the caller asked for this owner (safe_write owner/group), so a refusal is an error
            if (uid is not None or gid is not None) and (strict_owner or os.geteuid() == 0):
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return tmp


def resolve_group(group: Optional[str]) -> Optional[int]:
    """The gid of a group name or numeric id; None for None."""
    if group is None or group == '':
        return None
    import grp
    try:
        return grp.getgrgid(int(group)).gr_gid if str(group).isdigit() else grp.getgrnam(str(group)).gr_gid
    except (KeyError, ValueError, OverflowError):
        raise UnsafeFileError('Group %r does not exist on this host: give an existing group name.' % (group,))


class Written(NamedTuple):
    """What :func:`write_nofollow` did: ``changed``; ``replaced`` (what was at the name and was replaced rather than
    written through, else None); ``before`` (the old content for a diff, None when there was no file of the wanted
    owner with one name to read, or it was larger than ``before_limit``); ``changes`` (content, mode, owner, group:
    what differed)."""
    changed: bool
    replaced: Optional[str]
    before: Optional[bytes]
    changes: List[str]


def write_nofollow(path: str, data: bytes, mode: int, check_mode: bool = False, uid: Optional[int] = None,
                   gid: Optional[int] = None, validate: Optional[Callable[[bytes, str], None]] = None,
                   before_limit: int = 0) -> Written:
    """Make ``path`` a regular file of ``uid``:``gid`` (default: this user, its group left as created) holding
    ``data`` with ``mode``, never writing through what is at its name.

    For root writing into a directory another account owns (an application's, its deploy account's): that account
    can put a link (or a hard link to a root-only file) at the name at any moment. ansible.builtin.copy removed a
    link there and then created the file by name, so a link put back in between was followed (root's file truncated)
    and the new file took the owner of whatever the name then led to. Here the directory is opened once
    (``open_directory``: no link another account could have made on the way), the name is looked at with lstat and
    read only with O_NOFOLLOW and one name, and the new content is written to an exclusive staged file (0600, owner
    and mode set on its descriptor, fsynced) renamed over the name: whatever was planted there is replaced, never
    followed. Unchanged (nothing written) when the name already is such a file with that content, mode and owner.

    ``validate(data, name)`` is called before anything is written (not in check mode) and raises to refuse: it is
    given the bytes, not the staged file, since a staged file in another account's directory can be swapped by it.
    ``before_limit`` > 0 returns the old content (at most that many bytes) for a diff - only from a regular file of
    the wanted owner with one name, never from what a planted link or hard link leads to."""
    literal_path(path, 'dest')
    directory, name = os.path.split(os.path.abspath(path))
    if not name:
        raise UnsafeFileError('%s names a directory, not a file to write.' % path, path=path)
    euid = os.geteuid()
    want_uid = euid if uid is None else uid
    if euid != 0 and (want_uid != euid or (gid is not None and gid not in os.getgroups() + [os.getegid()])):
        raise UnsafeFileError('Only root can give %s to another owner or to a group it is not in: run the task with '
                              'become, or leave owner and group unset.' % path, path=path)
    try:
        fd = open_directory(directory)
    except OSError as exc:
        # the bare "No such file or directory" said neither which part was missing nor what to do
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            in_the_way = not_a_directory_on_the_way(directory)
            raise UnsafeFileError('Cannot write %s: its directory %s %s. Make the directory first (e.g. with '
                                  'opsready.operations.safe_dir), or fix the path. Nothing was written.'
                                  % (path, directory, 'cannot be used: ' + in_the_way if in_the_way
                                     else 'does not exist'), path=path, errno=exc.errno) from None
        raise
    try:
        try:
            st: Optional[os.stat_result] = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        replaced = None
        before = None
        changes = ['content']
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeFileError('%s is a directory: remove it or choose another path to write.' % path,
                                      path=path)
            if not stat.S_ISREG(st.st_mode):
                replaced = kind_of(st.st_mode)
            elif st.st_nlink != 1:
                replaced = 'a file with %d hard links' % st.st_nlink
            elif st.st_uid not in (want_uid, euid):
                # another account's file: its content is that account's, never read for a diff
                replaced = 'a file of %s' % uid_name(st.st_uid)
            else:
                old = None
                if st.st_size == len(data) or 0 <= st.st_size <= before_limit:
                    try:
                        old = read_regular(name, max(len(data), st.st_size), follow=False, dir_fd=fd,
                                           single_link=True)
                    except UnsafeFileError:
                        old = None   # swapped since the lstat: replaced below like anything else
                changes = [what for what, differs in (
                    ('content', old != data),
                    ('mode', stat.S_IMODE(st.st_mode) != mode),
                    ('owner', st.st_uid != want_uid),
                    ('group', gid is not None and st.st_gid != gid)) if differs]
                if not changes:
                    return Written(False, None, None, [])
                before = old if before_limit else None
        if validate is not None and not check_mode:
            validate(data, name)
        if check_mode:
            return Written(True, replaced, before, changes)
        tmp = _stage(fd, name, data, mode, uid, gid, strict_owner=uid is not None or gid is not None)
        try:
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
        os.fsync(fd)
        return Written(True, replaced, before, changes)
    finally:
        os.close(fd)


def replace_nofollow(path: str, data: bytes, mode: int, check_mode: bool = False) -> Tuple[bool, Optional[str]]:
    """:func:`write_nofollow` for a file of this user: (changed, what was replaced when it was not a regular file of
    its own with one name, else None)."""
    written = write_nofollow(path, data, mode, check_mode)
    return written.changed, written.replaced


class ClusterDir(SafeDir):
    """A database server's data directory (PostgreSQL, MariaDB), opened once for root to write the server's own files
    into (postgresql.auto.conf, standby.signal, recovery.signal, the fence record).

    ``check_parents`` would refuse the standard layout: /var/lib/postgresql/16 belongs to postgres. That account is
    trusted with its data directory, not with where root writes: it could rename the data directory away and put a
    link to /etc at its name between a check and a write by path, and root would create files it owns there. So the
    directory is opened once, its last name never followed (O_NOFOLLOW; the directories above may be links), and
    judged by what was opened: it must belong to the cluster's account (``owner``) - or, with ``made_here``, be one
    this run made (a PITR staging directory, still root's) - and be writable by nobody else; a directory of root's
    that is not ``made_here`` is accepted only where no other account controls the way to it (``path_risk``).
    ``marker``: a name the directory must hold as a regular file (PG_VERSION). Everything is then done relative to
    the descriptor: reads never through a link or a second hard link, writes to an exclusive temp name, owned by
    ``owner``, fsynced and renamed over the name (a link planted there is replaced, never written through)."""

    def __init__(self, path: str, owner: Optional[Tuple[int, int]], what: str = 'data directory',
                 marker: Optional[str] = None, made_here: bool = False) -> None:  # pylint: disable=super-init-not-called
        self.path = os.path.abspath(path)
        self.owner = owner
        self.trusted = False   # never follow a link in here: the server's account may have made it
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
        try:
            self.fd = os.open(self.path, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(self.path):
                raise UnsafeFileError('%s %s is a symlink: root does not write into a data directory through a link '
                                      '(the account that can change it could point it at a directory of root\'s). '
                                      'Nothing was written. Point it at the real directory (%s).'
                                      % (what, self.path, os.path.realpath(self.path)), path=self.path)
            if exc.errno == errno.ENOENT:
                raise UnsafeFileError('%s %s does not exist: nothing was written.' % (what, self.path), path=self.path)
            raise UnsafeFileError('Cannot open %s %s: %s.' % (what, self.path, exc.strerror), path=self.path)
        try:
            st = os.fstat(self.fd)
            self.uid = st.st_uid
            self._judge(st, what, marker, made_here)
        except BaseException:
            self.close()
            raise

    def _judge(self, st: os.stat_result, what: str, marker: Optional[str], made_here: bool) -> None:
        mine = (0, os.geteuid())
        allowed = {self.owner[0]} if self.owner else set()
        if made_here:
            allowed.update(mine)
        if st.st_uid not in allowed and not (self.owner is None and st.st_uid in mine):
            raise UnsafeFileError('%s %s belongs to %s, not to %s (the account of the cluster): it is not this '
                                  'cluster\'s directory, or it was swapped. Nothing was written. Point it at the '
                                  'cluster\'s data directory (or name its account: os_user).'
                                  % (what, self.path, uid_name(st.st_uid),
                                     uid_name(self.owner[0]) if self.owner else 'root'), path=self.path)
        if st.st_mode & 0o022:
            raise UnsafeFileError('%s %s is writable by %s (mode %04o): another account could plant names in it. '
                                  'Nothing was written. chmod go-w it (PostgreSQL wants 0700 or 0750).'
                                  % (what, self.path, 'others' if st.st_mode & 0o002 else 'its group',
                                     stat.S_IMODE(st.st_mode)), path=self.path)
        if st.st_uid in mine and not made_here:
            risk = path_risk(self.path)
            if risk:
                raise UnsafeFileError('%s %s belongs to root, and %s: another account could have put this directory '
                                      'of root\'s at its name. Nothing was written. Keep a data directory of root\'s '
                                      'below directories only root can write.' % (what, self.path, risk),
                                      path=self.path)
        if marker:
            found = self.lstat(marker)
            if found is None or not stat.S_ISREG(found.st_mode):
                raise UnsafeFileError('%s %s holds no %s (a regular file): it is not a data directory, or it was '
                                      'swapped. Nothing was written.' % (what, self.path, marker), path=self.path)

    def __enter__(self) -> 'ClusterDir':
        return self

    def read(self, name: str, limit: int, what: str = 'File') -> Optional[bytes]:
        """``SafeDir.read`` with the whole path in its messages."""
        try:
            return super().read(name, limit, what)
        except UnsafeFileError as exc:
            exc.message = exc.message.replace(' %s ' % name, ' %s ' % self.join(name), 1)
            exc.args = (exc.message,)
            raise

    def remove(self, name: str) -> bool:
        """Unlink ``name`` when it is there (a link is removed, never followed); True when it was."""
        try:
            self.unlink(name)
        except FileNotFoundError:
            return False
        return True


def open_regular_stream(path: str, what: str = 'File', missing_ok: bool = False,
                        limit: int = 1024 * MiB, follow: bool = True) -> Optional[BinaryIO]:
    """``path`` opened for streaming reads when it is a regular file of at most ``limit`` bytes (1 GiB:
    far more than any trimmed history, far less than a planted sparse file); None when it does not
    exist and ``missing_ok``. For append-only histories that may be big: read them with ``iter_lines``.
    ``follow=False``: a symlink at the final name is refused (a history in a directory another account can write,
    which could link it to a file of root's that root would then read and chart)."""
    try:
        fd = open_checked(path, limit, what, follow)   # a FIFO or a device refused before it is opened (a FIFO blocks)
    except OSError as exc:
        if exc.errno == errno.ENOENT and missing_ok and not os.path.islink(path):
            return None
        raise UnsafeFileError(explain_missing(path, what) or 'Cannot read %s %s: %s.'
                              % (what.lower(), path, exc.strerror), path=path, errno=exc.errno)
    try:
        _check_stat(path, os.fstat(fd), limit, what)   # the file actually opened
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, 'rb')


def open_stored(path: str, what: str = 'Artifact') -> BinaryIO:
    """A file a backup catalog holds (an artifact), opened for streaming reads: never through a symlink at its name,
    never a FIFO or a device. No size cap: the caller compares what it reads with the manifest.

    An account that can write the catalog (postgres, named as its owner for WAL; the owner of a catalog a task reads
    as root) could put a link to /etc/shadow at an artifact's name with a manifest saying "compression none": a
    restore (WAL staged into the server's directory), a drill or a verify would then copy or print root's file. A
    FIFO there would hang the run. The catalog's own writers never make links (they rename regular files in place).
    A missing file raises the ``OSError`` of ``open`` (callers say "missing" in their words)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError('%s %s is a symlink, and a stored file is never read through one (an account that '
                                  'can write %s could have planted it to make root read another file): it was not '
                                  'read. Replace the link with the file itself.'
                                  % (what, path, os.path.dirname(path) or '.'), path=path)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError('%s %s is %s, not a regular file: it was not read.'
                                  % (what, path, kind_of(st.st_mode)), path=path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


def lstat_stored(path: str, what: str = 'Artifact') -> Optional[os.stat_result]:
    """The ``lstat`` of a stored file when it is a regular file; None when nothing is there; ``UnsafeFileError``
    for a symlink, a FIFO, a device or a directory (see ``open_stored``)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError('%s %s is a symlink, and a stored file is never read through one (an account that can '
                              'write %s could have planted it to make root read another file): it was not read. '
                              'Replace the link with the file itself.' % (what, path, os.path.dirname(path) or '.'),
                              path=path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError('%s %s is %s, not a regular file: it was not read.' % (what, path, kind_of(st.st_mode)),
                              path=path)
    return st


def iter_lines(handle: BinaryIO, line_limit: int = MiB) -> Iterator[Optional[bytes]]:
    """The lines of a JSON-lines file, each at most ``line_limit`` bytes; a longer line is skipped
    without being held in memory and yields None (callers count it as unparsable)."""
    while True:
        line = handle.readline(line_limit + 1)
        if not line:
            return
        if len(line) > line_limit and not line.endswith(b'\n'):
            while True:   # drop the rest of the over-long line, a chunk at a time
                rest = handle.readline(MiB)
                if not rest or rest.endswith(b'\n'):
                    break
            yield None
            continue
        yield line


def read_regular_or_none(path: str, limit: int, what: str = 'File') -> Optional[bytes]:
    """``read_regular``, but None when nothing is at ``path`` (a symlink to nothing is still an error)."""
    if not os.path.lexists(path):
        return None
    return read_regular(path, limit, what=what)


def describe_path(path: str) -> str:
    """What is at ``path`` as a clause ("is a FIFO (named pipe)", "does not exist", "is a symlink loop
    (...)"), for a message about a path that is not what was expected."""
    try:
        st = os.stat(path)
    except OSError:
        return explain_missing(path, 'path').split(': ')[0].replace('path %s ' % path, '') or 'cannot be read'
    if stat.S_ISREG(st.st_mode):
        return 'is a regular file (%s)' % human_size(st.st_size)
    return 'is ' + kind_of(st.st_mode)


def displayable(value: Any) -> Any:
    """``value`` with every string made valid UTF-8 for a module result: a file name that is not UTF-8 (``os``
    gives its bytes as lone surrogates) becomes ``\\xe9``-style escapes. ansible-core refuses a result holding a
    lone surrogate, which failed a whole backup or restore of a tree holding one Latin-1 file name."""
    if isinstance(value, str):
        try:
            value.encode('utf-8')
            return value
        except UnicodeEncodeError:
            return value.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
    if isinstance(value, dict):
        return {displayable(k): displayable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [displayable(v) for v in value]
    return value


# Extended attributes file_backup keeps: the user's, trusted ones (root), POSIX ACLs and file capabilities.
# security.selinux (and IMA/EVM) labels belong to the host restoring the file.
XATTR_NAMESPACES = ('user.', 'trusted.')
XATTR_NAMES = ('system.posix_acl_access', 'system.posix_acl_default', 'security.capability')


def read_xattrs(fd: int) -> Dict[str, bytes]:
    """The kept extended attributes of an open file or directory; {} where the file system has none."""
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}   # ENOTSUP and the like: nothing to keep
    found = {}
    for name in sorted(names):
        if name.startswith(XATTR_NAMESPACES) or name in XATTR_NAMES:
            try:
                found[name] = os.getxattr(fd, name)
            except OSError:
                continue   # removed meanwhile, or not readable by this user
    return found


def read_xattrs_at(dir_fd: int, name: str) -> Dict[str, bytes]:
    """The kept extended attributes of ``name`` in the directory ``dir_fd``, without opening it or following it:
    for symlinks (``trusted.*`` can be set on one by root), FIFOs and device nodes (an open may block or act).
    Through ``/proc/self/fd``: the directory is entered by its descriptor, the last name is not followed."""
    path = '/proc/self/fd/%d/%s' % (dir_fd, name)
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}   # ENOTSUP, no /proc: nothing to keep
    found = {}
    for key in sorted(names):
        if key.startswith(XATTR_NAMESPACES) or key in XATTR_NAMES:
            try:
                found[key] = os.getxattr(path, key, follow_symlinks=False)
            except OSError:
                continue
    return found


class ChunkDigest:
    """A digest of a file's content that holes and runs of zeros do not change the cost of: SHA-256 over
    ``<index>:<SHA-256 of the 1 MiB chunk>`` for each aligned 1 MiB chunk that is not all zeros, then the size.
    Pieces are given in increasing offsets; what lies between them is zeros. A file and its copy give the same digest
    whatever holes each has (an all-zero chunk counts the same as a hole), so file_backup records it for sparse files
    (hashing the 9 GiB of zeros of a sparse image took longer than reading its data) and the drill checks the
    restored file with it, reading only its data (``digest_of``)."""

    SIZE = 1024 * 1024

    def __init__(self) -> None:
        self._outer = hashlib.sha256()
        self._index = -1
        self._chunk = bytearray(self.SIZE)
        self._dirty = False

    def update(self, offset: int, data: Any) -> None:
        view = memoryview(data)
        while len(view):
            index, within = divmod(offset, self.SIZE)
            if index != self._index:
                self._flush()
                self._index = index
            count = min(len(view), self.SIZE - within)
            self._chunk[within:within + count] = view[:count]
            self._dirty = True
            offset += count
            view = view[count:]

    def _flush(self) -> None:
        if self._dirty:
            if self._chunk.count(0) != self.SIZE:
                self._outer.update(b'%d:' % self._index + hashlib.sha256(self._chunk).digest())
            self._chunk[:] = bytes(self.SIZE)
            self._dirty = False

    def hexdigest(self, size: int) -> str:
        self._flush()
        self._outer.update(b'size:%d' % size)
        return self._outer.hexdigest()


def data_segments(fd: int, size: int) -> Optional[List[Tuple[int, int]]]:
    """(offset, length) of each data extent of the open file ``fd`` of ``size`` bytes (SEEK_DATA/SEEK_HOLE); None
    where the file system or platform cannot tell (every byte is then data)."""
    seek_data, seek_hole = getattr(os, 'SEEK_DATA', None), getattr(os, 'SEEK_HOLE', None)
    if seek_data is None or seek_hole is None:
        return None
    found: List[Tuple[int, int]] = []
    position = 0
    try:
        while position < size:
            try:
                start = os.lseek(fd, position, seek_data)
            except OSError as exc:
                if exc.errno == errno.ENXIO:   # only a hole after ``position``
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, seek_hole), size)
            found.append((start, end - start))
            position = end
    except OSError:
        return None   # EINVAL: SEEK_DATA not supported here
    finally:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            pass
    return found


def digest_of(path: str) -> str:
    """``ChunkDigest`` of the file at ``path``, reading its data extents only."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    try:
        size = os.fstat(fd).st_size
        segments = data_segments(fd, size)
        digest = ChunkDigest()
        for start, length in segments if segments is not None else [(0, size)]:
            done = 0
            while done < length:
                piece = os.pread(fd, min(ChunkDigest.SIZE * 4, length - done), start + done)
                if not piece:
                    break
                digest.update(start + done, piece)
                done += len(piece)
        return digest.hexdigest(size)
    finally:
        os.close(fd)


# File flags (chattr/lsattr) kept by file_backup, by the names libarchive and chflags use (pax SCHILY.fflags), with
# the chattr letter for messages. Internal ones (extents, indexed directory, inline data...) are the file system's.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FILE_FLAGS = {'nodump': (0x40, 'd'), 'noatime': (0x80, 'A'), 'sync': (0x8, 'S'), 'dirsync': (0x10000, 'D'),
              'compress': (0x4, 'c'), 'nocow': (0x800000, 'C'), 'schg': (0x10, 'i'), 'sappnd': (0x20, 'a')}
# Not put back by a restore (reported instead): an immutable or append-only restored file refuses the next restore
# and the removal of a drill's scratch tree, and the operator sets them again knowingly.
FLAGS_NOT_RESTORED = ('schg', 'sappnd')


def read_flags(fd: int) -> List[str]:
    """The kept file flags of an open regular file or directory; [] where the file system has none."""
    try:
        import fcntl
        import struct
        value = struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    except (ImportError, OSError):
        return []
    return [name for name, (bit, _letter) in FILE_FLAGS.items() if value & bit]


def kept_flags(fd: int) -> List[str]:
    """``read_flags`` without the ones a restore never sets (immutable, append-only): what a restored file is
    compared by."""
    return [name for name in read_flags(fd) if name not in FLAGS_NOT_RESTORED]


def set_flags(fd: int, names: List[str]) -> None:
    """Make the kept file flags of the open file ``fd`` exactly ``names``: those it has and was not archived with
    are cleared (a file made in a directory with chattr +d or +A inherits them, and a directory restored over keeps
    what was added since), the others (the file system's own, immutable, append-only) stay. Raises OSError when
    refused; a file system without flags is no error when none is wanted."""
    import fcntl
    import struct
    try:
        value = struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    except OSError:
        if names:
            raise
        return
    kept = 0
    for name, (bit, _letter) in FILE_FLAGS.items():
        if name not in FLAGS_NOT_RESTORED:
            kept |= bit
    wanted = value & ~kept
    for name in names:
        wanted |= FILE_FLAGS[name][0]
    if wanted != value:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack('I', wanted) + bytes(4))
