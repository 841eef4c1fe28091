# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File-tree backups: a tar stream through ``ArtifactWriter`` (compression + SHA-256, one pass).

Members are stored relative to ``/`` (``etc/myapp/app.conf``) so a restore to ``/`` puts them back
where they were and a restore to another root reproduces the tree under it.

The tree is walked with ``os.fwalk`` (each directory opened once, never through a symlink) and every
file is opened relative to its directory's descriptor with ``O_NOFOLLOW``; the member is described
from ``fstat`` of the descriptor actually read. A user who swaps a file of the tree for a symlink to
``/etc/shadow`` while root backs it up gets a symlink member (or the file they own), never the
shadow file's content. FIFOs and device nodes are archived as entries, as tar does (never opened: reading a FIFO
blocks, a device never ends); sockets cannot be archived (their server makes them again): they are listed in
``not_archived``.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import tarfile
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.background import Background
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    CHUNK, ArtifactWriter, compression_suffix)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

# The catalog (~110 KB of source, for latest_archive: skip_unchanged) and the manifest code (the last step) are
# imported where they are used: a payload compiles every file it imports on every run, and what is imported before
# the archive's first byte is serial start-up the raw tar | zstd | age pipeline does not have (issue 22).
if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest

ENGINE = 'files'
KIND = 'files'
# File names that mark a tree as holding private keys (archives are always 0600; these also
# tighten the backup directory to 0700).
SECRET_HINTS = ('.key', '.pem', '.p12', '.pfx', 'id_rsa', 'id_ed25519', 'private')


def _arcname(path: str) -> str:
    return os.path.abspath(path).lstrip('/') or '.'


# What a source named in paths may be; inside a tree FIFOs and device nodes are archived as entries too.
SOURCE_TYPES = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)
NODE_TYPES = (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK)
ARCHIVED_TYPES = SOURCE_TYPES + NODE_TYPES
# the member record's type (manifest ``files``) and the tar type of each node
NODE_KINDS = {stat.S_IFIFO: ('fifo', tarfile.FIFOTYPE), stat.S_IFCHR: ('chardev', tarfile.CHRTYPE),
              stat.S_IFBLK: ('blockdev', tarfile.BLKTYPE)}
SPARSE_KEYWORD = 'OPSREADY.sparse'
# The archive is written back every 16 MB, not at the shared 64 MB (streaming.SYNC_EVERY, backup_rekey's): the
# fsync after the last byte, serial work on the way to the manifest, went from 25-30 ms to 1-13 ms for a 525 MB
# tree (docs/bench.md, issue 22); a few more fdatasync calls run in the background meanwhile.
FILE_SYNC_EVERY = 16 * 1024 * 1024
XATTR_PREFIX = 'SCHILY.xattr.'
FFLAGS_KEYWORD = 'SCHILY.fflags'


def distinct_paths(paths: List[str]) -> List[str]:
    """``paths`` made absolute, in their order, without those a directory listed too already holds (or repeats):
    ``/etc/nginx`` with ``/etc/nginx/sites-enabled`` archived the latter twice, and the restore of such an archive
    failed on the second copy."""
    tops = [os.path.abspath(p) for p in paths]
    trees = {t for t in tops if os.path.isdir(t) and not os.path.islink(t)}
    kept: List[str] = []
    for top in tops:
        if top in kept or any(top.startswith(tree.rstrip('/') + '/') for tree in trees if tree != top):
            continue
        kept.append(top)
    return kept


REMOVED = 'removed while the backup ran'
_ENTER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


_NOATIME = getattr(os, 'O_NOATIME', 0)


def _open_quietly(name: str, flags: int, dir_fd: int) -> int:
    """``os.open`` with O_NOATIME where this user may (root, or the file's owner): reading every file and listing
    every directory of the set updated their access times, so each backup made the whole source look just used
    (tmpwatch-style cleanups, "last accessed" audits). GNU tar --atime-preserve=system does the same."""
    if _NOATIME:
        try:
            return os.open(name, flags | _NOATIME, dir_fd=dir_fd)
        except PermissionError:
            pass   # EPERM: another user's file (EACCES comes again below)
    return os.open(name, flags, dir_fd=dir_fd)


def unreadable(path: str, exc: Optional[OSError] = None) -> OpsReadyError:
    """The refusal of a source this user cannot read, named in full: the walk's EACCES said only the last name
    ("Permission denied (sub)", in a tree of many ``sub``), or blamed the archive being written. Root is refused
    by a root-squashed NFS export or a FUSE mount without allow_root: become does not help there."""
    why = ' (%s)' % (exc.strerror or exc) if exc is not None else ''
    if os.geteuid() == 0:
        what = ('root cannot read it either (an NFS export with root_squash, a FUSE mount without allow_root, a '
                'security module): back it up on the host that exports it, or name the paths around it in paths')
    else:
        what = 'run with become, or fix its permissions'
    return OpsReadyError('%s is not readable by this user%s: %s (nothing was archived).' % (path, why, what),
                         path=path)


def _enter(name: str, dir_fd: int, listed: os.stat_result, path: str,
           gone: Optional[List[Dict[str, str]]]) -> Optional[int]:
    """A descriptor of the directory ``name`` (in ``dir_fd``) that the walk archived as ``listed``; None, recorded in
    ``gone``, when it was removed or replaced since. Opened with O_DIRECTORY, O_NOFOLLOW and O_NONBLOCK: os.fwalk
    opened it plainly, so a FIFO swapped in blocked the backup, and a regular file swapped in opened and failed the
    whole walk in its listing ("Not a directory")."""
    lost = ' while the backup ran (what it held is not in the archive)'
    try:
        fd = _open_quietly(name, _ENTER_FLAGS, dir_fd)
    except FileNotFoundError:
        if gone is not None:
            gone.append({'path': path, 'reason': 'directory %s (what it held is not in the archive)' % REMOVED})
        return None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise unreadable(path, exc) from None
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        try:
            now = safeio.kind_of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            now = 'nothing'
        if gone is not None:
            gone.append({'path': path, 'reason': 'directory replaced by %s%s' % (now, lost)})
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino):
        os.close(fd)
        if gone is not None:
            gone.append({'path': path, 'reason': 'directory replaced by another directory%s' % lost})
        return None
    return fd


def _walk_dir(fd: int, path: str, gone: Optional[List[Dict[str, str]]]
              ) -> Iterator[Tuple[str, os.stat_result, int, str]]:
    """The entries of the open directory ``fd`` (``path``), then those of each subdirectory, depth first: the
    order os.fwalk gave (subdirectories, symlinks to directories among them, then the rest, each sorted)."""
    dirs: List[str] = []
    others: List[str] = []
    with os.scandir(fd) as listing:
        for item in listing:
            try:
                (dirs if item.is_dir() else others).append(item.name)
            except OSError:
                others.append(item.name)
    entered: List[Tuple[str, os.stat_result]] = []
    for entry in sorted(dirs) + sorted(others):
        child_path = os.path.join(path, entry)
        try:
            entry_st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            if gone is not None:
                gone.append({'path': child_path, 'reason': REMOVED})
            continue  # removed while we walked: it is not in the backup
        yield child_path, entry_st, fd, entry
        if stat.S_ISDIR(entry_st.st_mode):
            entered.append((entry, entry_st))
    for entry, entry_st in entered:
        child = _enter(entry, fd, entry_st, os.path.join(path, entry), gone)
        if child is None:
            continue
        try:
            yield from _walk_dir(child, os.path.join(path, entry), gone)
        finally:
            os.close(child)


def walk_entries(paths: List[str], gone: Optional[List[Dict[str, str]]] = None
                 ) -> Iterator[Tuple[str, os.stat_result, int, str]]:
    """(path, lstat, parent directory descriptor, name) of everything to archive, sorted for stable
    output. Directories are entered through descriptors, symlinks never followed; the descriptor is valid until
    the next item is asked for.

    What is removed or replaced between being listed and being read (a mail queue, a cache, a directory swapped
    for a file) is skipped, as GNU tar does, and recorded in ``gone``: with os.fwalk a directory removed after its
    parent was listed, or replaced by a regular file, failed the whole walk, and one replaced by a FIFO blocked it."""
    for top in distinct_paths(paths):
        parent = os.open(os.path.dirname(top) or '/', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            name = os.path.basename(top) or '.'
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            yield top, st, parent, name
            if not stat.S_ISDIR(st.st_mode):
                continue
            fd = _enter(name, parent, st, top, gone)
            if fd is None:
                continue
            try:
                yield from _walk_dir(fd, top, gone)
            finally:
                os.close(fd)
        finally:
            os.close(parent)


def walk_sources(paths: List[str]) -> Iterator[Tuple[str, os.stat_result]]:
    """Every path to archive (directories included, symlinks not followed), sorted for stable output."""
    for path, st, _fd, _name in walk_entries(paths):
        yield path, st


def _raise(exc: OSError) -> None:
    raise exc


def is_special(st: os.stat_result) -> bool:
    """Sockets (and anything else but files, directories, symlinks, FIFOs and devices): never archived."""
    return stat.S_IFMT(st.st_mode) not in ARCHIVED_TYPES


# Why an entry that cannot be archived is not, for the warning and not_archived.
NOT_ARCHIVED_WHY = {stat.S_IFSOCK: 'a socket'}


def _tarinfo(st: os.stat_result, arcname: str, linkname: str = '') -> tarfile.TarInfo:
    """A member described from a stat result (what ``TarFile.gettarinfo`` does, without a path)."""
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    # Whole seconds in the ustar field, the exact nanoseconds in the pax header (as GNU tar --format=posix does):
    # a float mtime would keep ~0.2 us at best, and tarfile would write int(st_mtime) alone otherwise.
    info.mtime = st.st_mtime_ns // 1000000000
    if st.st_mtime_ns % 1000000000:
        whole, nanos = divmod(abs(st.st_mtime_ns), 1000000000)
        info.pax_headers = {'mtime': '%s%d.%09d' % ('-' if st.st_mtime_ns < 0 else '', whole, nanos)}
    info.size = 0
    if stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, linkname
    elif stat.S_IFMT(st.st_mode) in NODE_KINDS:
        info.type = NODE_KINDS[stat.S_IFMT(st.st_mode)][1]
        if info.type != tarfile.FIFOTYPE:
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    info.uname = _owner_name(st.st_uid)
    info.gname = _group_name(st.st_gid)
    return info


# uid/gid -> name, looked up once per archive (create_archive clears them): each getpwuid/getgrgid reads
# /etc/passwd or /etc/group again (~40 us a pair here), which was ~0.1 s of a 2,400-entry tree on the thread
# that feeds zstd. GNU tar caches the same way.
_OWNERS: Dict[int, str] = {}
_GROUPS: Dict[int, str] = {}


def _owner_name(uid: int) -> str:
    name = _OWNERS.get(uid)
    if name is None:
        try:
            import pwd
            name = pwd.getpwuid(uid).pw_name
        except (ImportError, KeyError):
            name = ''
        _OWNERS[uid] = name
    return name


def _group_name(gid: int) -> str:
    name = _GROUPS.get(gid)
    if name is None:
        try:
            import grp
            name = grp.getgrgid(gid).gr_name
        except (ImportError, KeyError):
            name = ''
        _GROUPS[gid] = name
    return name


# Per-member records (path, type, mode, owner, SHA-256) go into the manifest so a drill can prove every restored
# file; a set larger than this records none (the manifest stays far below manifest.MANIFEST_LIMIT).
FILE_LIST_LIMIT = 20000


def _add_xattrs(info: tarfile.TarInfo, fd: int) -> None:
    """The extended attributes worth restoring (user.*, trusted.*, POSIX ACLs, file capabilities) as pax
    ``SCHILY.xattr.<name>`` records, as GNU tar --xattrs and bsdtar write and read them; values are bytes, carried
    through tarfile as surrogate-escaped text. security.selinux is left to the restoring host's policy."""
    for key, value in safeio.read_xattrs(fd).items():
        info.pax_headers = dict(info.pax_headers, **{XATTR_PREFIX + key: value.decode('utf-8', 'surrogateescape')})
    flags = safeio.read_flags(fd)
    if flags:   # chattr +d, +A...: libarchive's record (bsdtar restores it; GNU tar ignores it with a warning)
        info.pax_headers = dict(info.pax_headers, **{FFLAGS_KEYWORD: ','.join(flags)})


def _add_xattrs_at(info: tarfile.TarInfo, dir_fd: int, name: str) -> None:
    """``_add_xattrs`` for an entry that is not opened (a symlink, FIFO or device node), by name in ``dir_fd``."""
    for key, value in safeio.read_xattrs_at(dir_fd, name).items():
        info.pax_headers = dict(info.pax_headers, **{XATTR_PREFIX + key: value.decode('utf-8', 'surrogateescape')})


_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_NO_DEVICE = bytes(16)          # devmajor and devminor of a member that is not a device
_NO_PREFIX = bytes(155 + 12)    # prefix (pax members never split their name) and the header's padding
_PAX_NAME = b'././@PaxHeader'
# The checksum counts its own field as eight spaces; the magic is the same in every block.
_FIXED_SUM = 8 * 0x20 + sum(tarfile.POSIX_MAGIC)


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, kind: bytes, linkname: bytes,
           uname: bytes, gname: bytes) -> bytes:
    """One 512-byte ustar header block as tarfile's ``_create_header`` builds it for the pax format (fields within
    their limits: the caller checked). The checksum is summed over the fields that are not zeros, not the block."""
    name, linkname = name[:100], linkname[:100]
    numbers = b'%07o\0%07o\0%07o\0%011o\0%011o\0' % (mode, uid, gid, size, mtime)
    checksum = _FIXED_SUM + sum(name) + sum(numbers) + kind[0] + sum(linkname) + sum(uname) + sum(gname)
    return b''.join((name.ljust(100, b'\0'), numbers, b'%06o\0 ' % checksum, kind, linkname.ljust(100, b'\0'),
                     tarfile.POSIX_MAGIC, uname.ljust(32, b'\0'), gname.ljust(32, b'\0'), _NO_DEVICE, _NO_PREFIX))


def _pax_record(keyword: str, value: str) -> bytes:
    length = len(keyword) + len(value) + 3   # ' ', '=', '\n'
    total = previous = 0
    while True:   # the record's length counts its own digits (tarfile's loop)
        total = length + len(str(previous))
        if total == previous:
            break
        previous = total
    return b'%d %s=%s\n' % (total, keyword.encode('ascii'), value.encode('ascii'))


def fast_header(info: tarfile.TarInfo) -> Optional[bytes]:
    """The header blocks ``info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')`` returns (a pax extended
    header when one is needed, then the ustar block), built in one pass; None when the member needs what only
    tarfile's general code does (text that is not ASCII, numbers beyond the ustar fields, devices): the caller then
    asks tarfile. tarfile's own path took ~30-45 us per member here, 2/3 of file_backup's Python time on a tree of
    small files (5,000 files: ~0.3 s of ~0.6 s); this one ~5 us. tests/unit/plugins/module_utils/files/
    test_tar_headers.py holds the two byte for byte equal over every kind of member file_backup writes."""
    kind = info.type
    if kind not in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE):
        return None
    name, linkname, uname, gname = info.name, info.linkname, info.uname, info.gname
    if kind == tarfile.DIRTYPE and not name.endswith('/'):
        name += '/'
    if not (name.isascii() and linkname.isascii() and uname.isascii() and gname.isascii()):
        return None
    uid, gid, size, mtime, mode = info.uid, info.gid, info.size, info.mtime, info.mode & 0o7777
    if not (isinstance(uid, int) and isinstance(gid, int) and isinstance(size, int) and isinstance(mtime, int)
            and 0 <= uid < 0o10000000 and 0 <= gid < 0o10000000 and 0 <= size < 0o100000000000
            and 0 <= mtime < 0o100000000000):
        return None   # floats and overflows: tarfile's pax records for numbers
    pax = info.pax_headers
    for keyword, value in pax.items():
        if not (keyword.isascii() and value.isascii()):
            return None
    extra = []
    for keyword, text, limit in (('path', name, 100), ('linkpath', linkname, 100), ('uname', uname, 32),
                                 ('gname', gname, 32)):
        if keyword not in pax and len(text) > limit:
            extra.append((keyword, text))
    block = _ustar(name.encode('ascii'), mode, uid, gid, size, mtime, kind, linkname.encode('ascii'),
                   uname[:32].encode('ascii'), gname[:32].encode('ascii'))
    if not pax and not extra:
        return block
    records = b''.join([_pax_record(k, v) for k, v in pax.items()] + [_pax_record(k, v) for k, v in extra])
    head = _ustar(_PAX_NAME, 0, 0, 0, len(records), 0, tarfile.XHDTYPE, b'', b'', b'')
    padding = -len(records) % _BLOCK
    return head + records + bytes(padding) + block


class TarWriter:
    """The tar stream of an archive, written to ``fileobj`` (the artifact writer) in the pax format: what
    ``tarfile.open(fileobj=..., mode='w', format=PAX_FORMAT)`` writes, byte for byte, without its per-member
    costs (the header built by ``fast_header``, no copy of each TarInfo, and no list of every member kept until
    the end: 2,000,000 TarInfo objects for a tree of two million files). ``addfile`` and ``close`` as tarfile's."""

    def __init__(self, fileobj: Any, copybufsize: int = CHUNK) -> None:
        self.fileobj = fileobj
        self.offset = 0
        self.copybufsize = copybufsize

    def addfile(self, info: tarfile.TarInfo, fileobj: Any = None) -> None:
        buf: Optional[bytes] = None
        if info.size > _SPARSE_STORED_LIMIT and 'GNU.sparse.major' in info.pax_headers:
            buf = _wide_sparse_header(info)
        else:
            buf = fast_header(info)
        if buf is None:
            buf = info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')
        write = self.fileobj.write
        write(buf)
        self.offset += len(buf)
        if fileobj is not None and info.size:
            left = info.size
            while left:   # tarfile.copyfileobj's loop: whole pieces, a short read is an error
                data = fileobj.read(min(self.copybufsize, left))
                if not data or len(data) > left:
                    raise OSError('unexpected end of data')
                write(data)
                left -= len(data)
            blocks, remainder = divmod(info.size, _BLOCK)
            if remainder:
                write(bytes(_BLOCK - remainder))
                blocks += 1
            self.offset += blocks * _BLOCK

    def close(self) -> None:
        """The end-of-archive marker (two zero blocks), then zeros to a whole record, as tarfile writes them."""
        end = bytes(_BLOCK * 2)
        self.fileobj.write(end)
        self.offset += len(end)
        remainder = self.offset % _RECORD
        if remainder:
            self.fileobj.write(bytes(_RECORD - remainder))

    def __enter__(self) -> 'TarWriter':
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()


def _record(info: tarfile.TarInfo, kind: str, **extra: Any) -> Dict[str, Any]:
    record = {'path': info.name, 'type': kind, 'mode': '%04o' % info.mode, 'uid': info.uid, 'gid': info.gid,
              'owner': info.uname or None, 'group': info.gname or None}
    record.update(extra)
    return record


def _touched(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether the file read changed meanwhile: its size, mtime or ctime. The ctime too: a file rewritten in place
    and given its old mtime back (cp -p, rsync -t --inplace) kept size and mtime, and its torn copy was reported
    nowhere; nobody can set the ctime (GNU tar compares it for "file changed as we read it")."""
    return (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (before.st_size, before.st_mtime_ns,
                                                                     before.st_ctime_ns)


def add_entry(tar: 'TarWriter', path: str, st: os.stat_result, dir_fd: int, name: str,
              links: Dict[Tuple[int, int], str], files: Optional[List[Dict[str, Any]]] = None,
              buffer: Optional[bytearray] = None, changed: Optional[List[Dict[str, str]]] = None) -> bool:
    """Add one entry, read relative to ``dir_fd`` and never through a symlink. Returns False when it is
    not archived (a special file, or gone). ``files`` collects one record per member (``_record``);
    ``buffer`` is the read buffer shared by the members of one archive (see ``_Padded``); ``changed`` collects
    the files written to while they were read (their archived copy may mix old and new bytes)."""
    arcname = _arcname(path)
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return False
        info = _tarinfo(st, arcname, target)
        _add_xattrs_at(info, dir_fd, name)   # root can set trusted.* on a symlink (user.* Linux refuses there)
        tar.addfile(info)
        if files is not None:
            files.append(_record(info, 'symlink', target=target))
        return True
    if stat.S_ISDIR(st.st_mode):
        info = _tarinfo(st, arcname)
        try:
            dir_fd_own = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            dir_fd_own = -1   # swapped or gone: archived without its extended attributes
        if dir_fd_own >= 0:
            try:
                _add_xattrs(info, dir_fd_own)
            finally:
                os.close(dir_fd_own)
        tar.addfile(info)
        if files is not None:
            files.append(_record(info, 'dir'))
        return True
    if stat.S_IFMT(st.st_mode) in NODE_TYPES:
        # described from the walk's lstat, never opened (a FIFO without a writer blocks, a tape rewinds)
        info = _tarinfo(st, arcname)
        _add_xattrs_at(info, dir_fd, name)
        tar.addfile(info)
        if files is not None:
            kind = NODE_KINDS[stat.S_IFMT(st.st_mode)][0]
            device = {} if kind == 'fifo' else {'device': [info.devmajor, info.devminor]}
            files.append(_record(info, kind, **device))
        return True
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        fd = _open_quietly(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            return False  # swapped for a symlink or removed since the walk saw it: not read
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise unreadable(path, exc) from None   # not "Writing <archive> failed"
        raise
    # Unbuffered: _Padded reads straight into its buffer (a BufferedReader would add a copy and its own 8 KiB one).
    with os.fdopen(fd, 'rb', buffering=0) as handle:
        real = os.fstat(fd)
        if not stat.S_ISREG(real.st_mode):
            return False  # swapped for a FIFO or a device: never read
        key = (real.st_dev, real.st_ino)
        if real.st_nlink > 1 and key in links:
            info = _tarinfo(real, arcname)
            info.type, info.size, info.linkname = tarfile.LNKTYPE, 0, links[key]
            tar.addfile(info)
            if files is not None:
                files.append(_record(info, 'hardlink', target=links[key]))
            return True
        if real.st_nlink > 1:
            links[key] = arcname
        info = _tarinfo(real, arcname)
        _add_xattrs(info, fd)
        segments = safeio.data_segments(fd, real.st_size) if real.st_blocks * 512 < real.st_size else None
        if segments is not None:
            sparse = _SparseReader(fd, _to_sparse(info, segments), segments, buffer)
            tar.addfile(info, sparse)  # type: ignore[arg-type]
            after = os.fstat(fd)
            if changed is not None and (sparse.shrank or _touched(real, after)):
                changed.append({'path': path, 'reason': 'changed while it was read (%s): the archived copy may mix '
                                'old and new content' % ('it shrank, the rest padded with zeros' if sparse.shrank
                                                         else 'written to')})
            if files is not None:
                # the content digest that skips zeros (safeio.ChunkDigest): a SHA-256 of the whole file would hash
                # every byte of its holes, the cost this member format exists to avoid
                files.append(_record(info, 'file', path=arcname, size=real.st_size,
                                     chunk_digest=sparse.digest.hexdigest(real.st_size)))
            return True
        if real.st_blocks * 512 < real.st_size:
            # Fewer blocks than bytes, but the file system cannot tell where the holes are (no SEEK_DATA): the
            # archive holds its zeros, and this vendor keyword tells file_restore to write them back as holes, so a
            # 100 GiB image with 1 MiB of data does not come back as 100 GiB on disk. GNU tar ignores it (with a
            # warning). Archives written before GNU sparse members hold it too.
            info.pax_headers = dict(info.pax_headers, **{SPARSE_KEYWORD: '1'})
        padded = _Padded(handle, buffer)
        tar.addfile(info, padded)  # type: ignore[arg-type]
        after = os.fstat(fd)
        if changed is not None and (padded.shrank or _touched(real, after)):
            # archived anyway (as GNU tar does with "file changed as we read it"), but never silently
            if padded.shrank:
                how = 'it shrank, the rest padded with zeros'
            elif after.st_size != real.st_size:
                how = 'size %d -> %d bytes, the first %d archived' % (real.st_size, after.st_size, real.st_size)
            else:
                how = 'written to'
            changed.append({'path': path, 'reason': 'changed while it was read (%s): the archived copy may mix old '
                                                    'and new content' % how})
        if files is not None:
            # The hash of the bytes archived (zero padding included when the file shrank while read).
            files.append(_record(info, 'file', size=info.size, sha256=padded.sha256.hexdigest()))
    return True


# GNU tar's sparse format 1.0 (pax): the member's data is its map (the number of extents, then offset and length
# of each, one decimal number a line, padded to a block) followed by the extents' bytes; the real name and size are
# pax records, the header's name a placeholder that a tar without sparse support extracts as a plain file.
_SPARSE_STORED_LIMIT = 0o77777777777   # the largest size the ustar field holds in octal


def _wide_sparse_header(info: tarfile.TarInfo) -> bytes:
    """The header blocks of a GNU sparse member whose stored size (map and data) exceeds the ustar size field: that
    size in the field's base-256 form (GNU tar's, which tarfile and GNU tar read in any format). tarfile would write
    a pax "size" record instead, and then reads the member's data from the wrong offset (it takes that record for
    the data after the map): a sparse file with 8 GiB of data or more was archived with every byte of its holes
    under the old keyword instead (100 GiB read and stored for a 100 GiB image holding 9 GiB)."""
    stored = info.size
    info.size = 0
    try:
        buf = fast_header(info) or info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')
    finally:
        info.size = stored
    block = bytearray(buf[-_BLOCK:])
    block[124:136] = b'\x80' + stored.to_bytes(11, 'big')
    block[148:156] = b' ' * 8
    block[148:156] = b'%06o\0 ' % sum(block)
    return bytes(buf[:-_BLOCK]) + bytes(block)


def _to_sparse(info: tarfile.TarInfo, segments: List[Tuple[int, int]]) -> bytes:
    """Make ``info`` (a regular file's member) a GNU sparse 1.0 member of ``segments``; returns the map block(s)
    that start its data. The map ends at the real size (an empty extent there when the file ends in a hole), as GNU
    tar writes it."""
    real_size = info.size
    extents = list(segments)
    if not extents or extents[-1][0] + extents[-1][1] < real_size:
        extents.append((real_size, 0))
    text = b'%d\n' % len(extents) + b''.join(b'%d\n%d\n' % extent for extent in extents)
    block = text + bytes(-len(text) % _BLOCK)
    directory, base = os.path.split(info.name)
    placeholder = '%s/GNUSparseFile.0/%s' % (directory, base) if directory else 'GNUSparseFile.0/%s' % base
    if not placeholder.isascii() or len(placeholder) > 100:
        placeholder = 'GNUSparseFile.0/file'   # a longer or non-ASCII one would get a pax "path" that wins over
    info.pax_headers = dict(info.pax_headers, **{'GNU.sparse.major': '1', 'GNU.sparse.minor': '0',
                                                 'GNU.sparse.name': info.name, 'GNU.sparse.realsize': str(real_size)})
    info.name = placeholder
    info.size = len(block) + sum(length for _start, length in segments)
    return block


class _SparseReader:
    """The data of a GNU sparse member: its map, then each extent read with pread (holes never read). An extent
    that the file no longer holds (it shrank) is padded with zeros, as ``_Padded`` does. ``digest`` is the
    ``safeio.ChunkDigest`` of the bytes archived."""

    def __init__(self, fd: int, block: bytes, segments: List[Tuple[int, int]], buffer: Optional[bytearray]) -> None:
        self.fd = fd
        self.shrank = False
        self.digest = safeio.ChunkDigest()
        self._head = memoryview(block)
        self._segments = list(segments)
        self._done = 0    # bytes of the current segment archived
        self._buffer = buffer if buffer is not None else bytearray(CHUNK)

    def read(self, size: int) -> Any:
        if size > len(self._buffer):
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)[:size]
        got = 0
        if len(self._head):
            count = min(size, len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            got = count
        while got < size and self._segments:
            start, length = self._segments[0]
            want = min(size - got, length - self._done)
            count = os.preadv(self.fd, [view[got:got + want]], start + self._done) if not self.shrank else 0
            if not count:
                self.shrank = True
                view[got:got + want] = bytes(want)
                count = want
            self.digest.update(start + self._done, view[got:got + count])
            got += count
            self._done += count
            if self._done == length:
                self._segments.pop(0)
                self._done = 0
        return view[:got]


class _Padded:
    """A file that shrinks while it is archived is padded with zeros to the size its header announced
    (as GNU tar does) instead of failing the whole backup: its owner could otherwise stop root's
    backups by truncating a file of theirs at the right moment.

    ``read`` fills one buffer per archive (``buffer``) with ``readinto`` and returns a view of it: tarfile
    hands it to the writer at once, and every stage behind the writer (zstd, gzip, the file) copies what it
    is given before ``write`` returns (the age thread copies views too), so the next read may reuse it. A
    new 1 MiB bytes object per read was malloc'd, faulted in and freed 500 times for 500 MB."""

    def __init__(self, handle: Any, buffer: Optional[bytearray] = None) -> None:
        self.handle = handle
        self.shrank = False
        self.sha256 = hashlib.sha256()
        self._buffer = buffer if buffer is not None else bytearray(CHUNK)

    def read(self, size: int = -1) -> Any:
        if size < 0:  # not what tarfile asks (it always gives the member's size); kept for completeness
            data = self.handle.read()
            self.sha256.update(data)
            return data
        if size > len(self._buffer):
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)[:size]
        got = 0
        while got < size:  # a regular file returns less only at its end; loop anyway
            count = self.handle.readinto(view[got:])
            if not count:
                break
            got += count
        if got < size:
            self.shrank = True
            view[got:] = bytes(size - got)
        self.sha256.update(view)
        return view


def _still_there(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def link_sources(paths: List[str]) -> List[Tuple[str, str]]:
    """(source, what it resolves to) for each source that is itself a symlink to an existing file or directory that
    no source holds: only the link is archived, and an operator listing /var/lib/app (linked to /data/app) would
    otherwise believe the data is in the backup."""
    tops = [os.path.abspath(p) for p in paths]
    held = [os.path.realpath(t) for t in tops if not os.path.islink(t)]
    found = []
    for top in tops:
        if not os.path.islink(top) or not os.path.exists(top):
            continue
        real = os.path.realpath(top)
        if not any(real == h or real.startswith(h.rstrip('/') + '/') for h in held):
            found.append((top, real))
    return found


def hardlinks_outside(names: Dict[Tuple[int, int], List[Any]]) -> List[Dict[str, Any]]:
    """The archived files with more hard links than names in the set (``{path, links, archived}``, ``path`` the
    first name archived): a restore cannot link to a name the archive does not hold, so each comes back as a file of
    its own, its other names no longer sharing its content. GNU tar archives them the same way, silently."""
    return [{'path': path, 'links': links, 'archived': archived}
            for path, links, archived in sorted(names.values()) if archived < links]


def check_sources(paths: List[str]) -> None:
    """Clear errors before anything is written: a missing or unreadable source stops the run."""
    if not paths:
        raise OpsReadyError('paths is empty: name at least one file or directory to back up.')
    for path in paths:
        if not os.path.lexists(path):
            raise OpsReadyError('Source %s does not exist: fix paths (nothing was archived).' % path, path=path)
        st = os.lstat(path)
        if stat.S_IFMT(st.st_mode) not in SOURCE_TYPES:
            raise OpsReadyError('Source %s is %s: only files, directories and symlinks are backed up (nothing was '
                                'archived). Remove it from paths.' % (path, safeio.kind_of(st.st_mode)), path=path)
        if not os.access(path, os.R_OK):
            raise OpsReadyError('Source %s is not readable by this user: run with become or fix its '
                                'permissions (nothing was archived).' % path, path=path)


def tree_fingerprint(paths: List[str]) -> Tuple[str, int, bool]:
    """A digest of names, sizes, modes, owners, mtimes and ctimes: equal digests mean nothing changed.

    Returns (digest, regular file count, whether a private key seems to be included).
    """
    digest = hashlib.sha256()
    count = 0
    secret = False
    for path, st, dir_fd, entry in walk_entries(paths):
        if is_special(st):
            continue
        # ctime too: an edit that puts the mtime back (cp -p, rsync -t, touch -r) keeps size and mtime, and nobody
        # can set the ctime; without it skip_unchanged kept the old content as the newest archive
        record = '%s\0%o\0%d\0%d\0%d\0%d\0%d\n' % (
            path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_uid, st.st_gid)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            record += '%d\n' % st.st_rdev   # a node made again for another device
        digest.update(record.encode('utf-8', 'surrogateescape'))
        if stat.S_ISREG(st.st_mode):
            count += 1
            name = os.path.basename(path).lower()
            if any(h in name for h in SECRET_HINTS) or '/private/' in path or not st.st_mode & 0o044:
                secret = True
        # relative to its directory: the whole path may be longer than PATH_MAX (access() then fails, and the
        # file was reported unreadable)
        if stat.S_ISREG(st.st_mode) and not os.access(entry, os.R_OK, dir_fd=dir_fd):
            raise unreadable(path)
    return digest.hexdigest(), count, secret


def prepare_dest(dest: str, secret: bool) -> bool:
    """Create the backup directory 0700; returns True if it was created or tightened. Another user's directory,
    one everybody can write (/tmp) or one below a directory another user controls is refused: that user could
    swap archives and manifests or plant links where root writes (``safeio.prepare_backup_dir``)."""
    return safeio.prepare_backup_dir(dest, secret, what='archives')


def local_origin() -> str:
    """The ``origin`` of this host's archives (every manifest records it; retention and the catalog group by it)."""
    return socket.gethostname()


def latest_archive(dest: str, set_name: str) -> Optional['Manifest']:
    if not os.path.isdir(dest):
        return None
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
    # this machine's archives only: another host's archive of a set of the same name (a shared dest) is not this one's
    catalog = Catalog(dest, engine=ENGINE, database=set_name, origin=local_origin(), own=True)
    entries = [m for m in catalog.fulls() if m.verified is not False]
    return entries[-1] if entries else None


def create_archive(paths: List[str], dest: str, set_name: str, compression: str = 'zstd',
                   level: Optional[int] = None, threads: int = 0, fingerprint: Optional[str] = None,
                   file_count: Optional[int] = None, recipients: Optional[List[str]] = None) -> Dict[str, Any]:
    """Archive ``paths`` into ``dest``; returns the manifest (written after the artifact is durable).

    With ``recipients`` the archive is age-encrypted in the same pass (``<name>.tar.zst.age``).
    """
    started = utcnow()
    name = '%s-%s.tar%s%s' % (set_name, stamp(started), compression_suffix(compression),
                              encryption.SUFFIX if recipients else '')
    artifact = os.path.join(dest, name)
    members = 0
    skipped: List[Dict[str, str]] = []
    changed: List[Dict[str, str]] = []
    links: Dict[Tuple[int, int], str] = {}
    names: Dict[Tuple[int, int], List[Any]] = {}   # a multiply linked file: [first path, links, names archived]
    files: List[Dict[str, Any]] = []
    buffer = bytearray(CHUNK)
    sealing: Optional[Background] = None
    _OWNERS.clear()  # names as they are now (a long-lived process may archive again after a user was renamed)
    _GROUPS.clear()
    try:
        with ArtifactWriter(artifact, compression=compression, level=level, threads=threads,
                            recipients=recipients, sync_every=FILE_SYNC_EVERY) as writer:
            # Headers and 1 MiB pieces of each file straight to the writer (tarfile's stream mode 'w|' re-buffered
            # 16 KiB reads into 10 KiB writes); the archive's bytes are tarfile's mode 'w' pax output.
            with TarWriter(writer, copybufsize=CHUNK) as tar:
                for path, st, dir_fd, entry in walk_entries(paths, gone=skipped):
                    if add_entry(tar, path, st, dir_fd, entry, links, files, buffer, changed):
                        members += 1
                        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                            names.setdefault((st.st_dev, st.st_ino), [path, st.st_nlink, 0])[2] += 1
                    elif is_special(st):
                        skipped.append({'path': path, 'reason': NOT_ARCHIVED_WHY.get(stat.S_IFMT(st.st_mode),
                                                                                     safeio.kind_of(st.st_mode))})
                    elif not _still_there(entry, dir_fd):
                        skipped.append({'path': path, 'reason': REMOVED})
                    else:
                        skipped.append({'path': path, 'reason': 'changed while it was read (not followed)'})
            if recipients and len(files) <= FILE_LIST_LIMIT:
                # The manifest's sealed file list, made while the commit waits (zstd's last job in its workers, the
                # encryption thread draining its queue, the fsyncs: the GIL released); the list is final once the tar
                # stream is closed, and the manifest is still written after the commit.
                sealing = Background(lambda: encryption.seal_text(json.dumps(files, sort_keys=True), recipients),
                                     'opsready-seal-list')
            stored = writer.commit()
    except OSError as exc:
        raise OpsReadyError('Writing %s failed: %s. The partial archive was removed and no manifest written.'
                            % (artifact, exc.strerror or exc), path=artifact)
    finally:
        if sealing is not None:
            sealing.wait()   # a failed commit leaves no thread behind (a few ms of work)
    finished = utcnow()
    manifest = {
        'engine': ENGINE,
        'kind': KIND,
        'server': socket.gethostname(),
        'origin': local_origin(),
        'database': set_name,
        'started': isoformat(started),
        'finished': isoformat(finished),
        # a file changed while the archive was written may or may not be in it: only what was there at the
        # start is certainly captured, so the RPO is measured from the start
        'consistent_at': isoformat(started),
        'size': stored['size'],
        'sha256': stored['sha256'],
        'raw_size': stored['raw_size'],
        'compression': stored['compression'],
        'compression_level': stored['compression_level'],
        'tool': {'name': 'python-tarfile', 'format': 'pax'},
        'parent': None,
        'sources': [os.path.abspath(p) for p in paths],
        'file_count': file_count,
        'member_count': members,
        'fingerprint': fingerprint,
    }
    if 'encryption' in stored:
        manifest['encryption'] = stored['encryption']
    # What every member was (type, mode, owner, SHA-256): a drill checks the restored tree against it. For an
    # encrypted set the list is sealed to the recipients like the archive: a file's SHA-256 in the clear would let
    # anyone holding the catalog test guesses of a config file holding a weak password.
    listed = files if len(files) <= FILE_LIST_LIMIT else None
    if sealing is not None:   # recipients and the list within FILE_LIST_LIMIT: started before the commit
        manifest['files_sealed'] = sealing.result()
    else:
        manifest['files'] = listed
    if skipped:
        manifest['not_archived'] = skipped
    if changed:
        manifest['changed_while_read'] = changed
    outside = hardlinks_outside(names)
    if outside:
        manifest['hardlinks_outside'] = outside
    from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest
    write_manifest(artifact, manifest)
    manifest['path'] = artifact
    return manifest
