# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup manifests: the JSON record written next to every artifact, after the artifact is durable.

A file without a manifest is never trusted (see ``catalog.Catalog.leftovers``).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_text
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, parse_time
from ansible_collections.opsready.operations.plugins.module_utils.files import safe_read as safeio

MANIFEST_SUFFIX = '.manifest.json'
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
ONE_US = datetime.timedelta(microseconds=1)
FORMAT_VERSION = 1
# Kinds that restore on their own (a chain starts with one of these).
FULL_KINDS = ('full', 'base', 'dump', 'files')
LOG_KINDS = ('log', 'wal')
KINDS = FULL_KINDS + ('diff',) + LOG_KINDS
REQUIRED = ('id', 'artifact', 'engine', 'kind', 'started', 'finished', 'size', 'sha256', 'compression')


# Host names that mean "this machine" in a connection label: the same on every machine, so never an identity.
LOOPBACK = frozenset(('', 'localhost', 'localhost.localdomain', '127.0.0.1', '::1', '[::1]'))


def local_origin(host: Optional[str] = None, rest: Optional[str] = None) -> str:
    """The ``origin`` of a source reached as ``host`` (``rest``: its port or socket): the host as given unless it is
    loopback or empty, which becomes this machine's name (``socket.gethostname()``): 'localhost:5432' is the same label
    on every machine of a shared backup directory."""
    name = host or ''
    if name.lower() in LOOPBACK or name.startswith('127.'):
        name = socket.gethostname()
    return name if rest in (None, '') else '%s:%s' % (name, rest)


def to_us(moment: datetime.datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact: datetimes hold microseconds)."""
    return (moment - EPOCH) // ONE_US


def from_us(value: int) -> datetime.datetime:
    return EPOCH + datetime.timedelta(microseconds=value)


def _rolled_forward(data: Dict[str, Any], directory: str) -> Dict[str, Any]:
    """A key rotation (backup.rekey) interrupted between swapping the artifact and rewriting the manifest
    leaves ``rekey_pending`` naming the new file by inode: when that file is in place, it is the truth."""
    pending = data.get('rekey_pending')
    if not isinstance(pending, dict) or not isinstance(data.get('artifact'), str):
        return data
    try:
        info = os.stat(os.path.join(directory, data['artifact']))
    except OSError:
        return data
    if info.st_ino == pending.get('inode') and info.st_size == pending.get('size'):
        return dict(data, sha256=pending['sha256'], size=pending['size'], encryption=pending['encryption'],
                    rekey_pending=pending)
    return data


def manifest_path_for(artifact_path: str) -> str:
    return artifact_path + MANIFEST_SUFFIX


def _plain_name(value: Any) -> bool:
    return isinstance(value, str) and value not in ('', '.', '..') and '/' not in value and '\0' not in value


def check_names(data: Dict[str, Any]) -> None:
    """The names a manifest gives must stay inside its backup directory: ``id`` and ``artifact`` are file names
    there, each member's ``path`` a relative path of plain names below it. Whoever can write the directory can
    plant a manifest, and prune (as root) deletes, verify writes next to, restore reads and offsite copies what a
    manifest names: an absolute path, ``..`` or a ``/`` would reach outside (``os.path.join`` drops the directory
    before an absolute name)."""
    for key in ('id', 'artifact'):
        if not _plain_name(data[key]):
            raise OpsReadyError('Manifest %s names its %s %r, which is not a file name in its backup directory (a '
                                'path, "." or ".."): it is ignored, and nothing it names is read, verified, copied or '
                                'deleted. Remove the manifest if it is not one of ours.'
                                % (data['id'] if _plain_name(data['id']) else '?', key, data[key]))
    members = data.get('members')
    if members is None:
        return
    problem = '' if isinstance(members, list) else 'members is not a list'
    for member in members if not problem else []:
        path = member.get('path') if isinstance(member, dict) else None
        parts = path.split('/') if isinstance(path, str) else []
        if not parts or not all(_plain_name(part) for part in parts):
            problem = 'member %r is not a relative path inside its backup directory' % (path,)
            break
    if problem:
        raise OpsReadyError('Manifest %s: %s: it is ignored, and nothing it names is read, verified, copied or '
                            'deleted. Remove the manifest if it is not one of ours.' % (data['id'], problem))


class Manifest:
    """Read access to one manifest with typed helpers; ``data`` is the JSON object itself."""

    # (inode, size, mtime_ns, ctime_ns) of the file it was parsed from, when catalog_index.confirm cannot find it in
    # the cache (retention parsed it again while the index row stayed)
    scan_signature: Optional[Tuple[int, int, int, int]] = None
    # The file it was read from (read_manifest): usually ``<artifact>.manifest.json``, but a manifest renamed or
    # copied by hand is listed under its own name, and rewriting or deleting "its manifest" must act on that file.
    source_path: Optional[str] = None

    def __init__(self, data: Dict[str, Any], directory: str) -> None:
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise OpsReadyError('Manifest %s lacks %s.' % (data.get('id', '?'), ', '.join(missing)))
        check_names(data)
        if data['kind'] not in KINDS:
            raise OpsReadyError('Manifest %s has unknown kind %r.' % (data['id'], data['kind']))
        self.data = _rolled_forward(data, directory)
        self.directory = directory
        self._times: Dict[str, Tuple[str, datetime.datetime]] = {}

    def _time(self, key: str, fallback: str) -> datetime.datetime:
        """Parsed once per value: chain walks read these times many times."""
        value = self.data.get(key) or self.data[fallback]
        cached = self._times.get(key)
        if cached is None or cached[0] != value:
            cached = (value, parse_time(value, key))
            self._times[key] = cached
        return cached[1]

    @property
    def id(self) -> str:
        return self.data['id']

    @property
    def kind(self) -> str:
        return self.data['kind']

    @property
    def engine(self) -> str:
        return self.data['engine']

    @property
    def database(self) -> Optional[str]:
        return self.data.get('database')

    @property
    def origin(self) -> Optional[str]:
        """The source server's identity (``Engine.origin``); None in manifests written before it was recorded."""
        value = self.data.get('origin')
        return value if isinstance(value, str) and value else None

    @property
    def parent(self) -> Optional[str]:
        return self.data.get('parent')

    @property
    def artifact_name(self) -> str:
        """The artifact's name relative to the backup directory."""
        return self.data['artifact']

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.artifact_name)

    @property
    def manifest_path(self) -> str:
        return self.source_path or manifest_path_for(self.path)

    @property
    def started(self) -> datetime.datetime:
        return self._time('started', 'started')

    @property
    def finished(self) -> datetime.datetime:
        return self._time('finished', 'finished')

    @property
    def consistent_at(self) -> datetime.datetime:
        """The point in time a restore of this artifact (after its parents) reaches."""
        return self._time('consistent_at', 'finished')

    @property
    def covers_from(self) -> datetime.datetime:
        return self._time('covers_from', 'started')

    @property
    def is_full(self) -> bool:
        return self.kind in FULL_KINDS

    @property
    def is_log(self) -> bool:
        return self.kind in LOG_KINDS

    @property
    def position(self) -> Dict[str, Any]:
        return self.data.get('position') or {}

    # Integer views of the positions the catalog's chain logic reads (None when absent); an indexed
    # manifest (catalog_index) answers these without loading its JSON.
    def _position_int(self, key: str) -> Optional[int]:
        value = self.position.get(key)
        return None if value is None else int(value)

    @property
    def pos_start(self) -> Optional[int]:
        return self._position_int('start')

    @property
    def pos_end(self) -> Optional[int]:
        return self._position_int('end')

    @property
    def log_start(self) -> Optional[int]:
        return self._position_int('log_start')

    @property
    def consistent_us(self) -> int:
        """``consistent_at`` as integer microseconds (chain reach without a datetime per log)."""
        return to_us(self.consistent_at)

    @property
    def finished_us(self) -> int:
        """``finished`` as integer microseconds since the epoch (sort keys, index files)."""
        return to_us(self.finished)

    @property
    def member_paths(self) -> List[str]:
        return [member['path'] for member in self.members]

    @property
    def verified(self) -> Optional[bool]:
        """True/False once backup_verify (or db_backup verify) has run; None if never checked."""
        verification = self.data.get('verification') or {}
        if 'ok' not in verification:
            return None
        return bool(verification['ok'])

    @property
    def members(self) -> List[Dict[str, Any]]:
        """Extra files of a multi-file artifact (directory format), each with path/size/sha256."""
        return list(self.data.get('members') or [])

    def record_verification(self, ok: bool, checks: Dict[str, Any], when: datetime.datetime,
                            artifact_stat: Optional[List[List[int]]] = None) -> None:
        """``artifact_stat``: the artifact's ``retention.artifact_signature`` while it was checked (retention trusts
        a passed verification without reading the artifact again only while it is unchanged)."""
        self.data['verification'] = {'ok': ok, 'checks': checks, 'verified_at': isoformat(when)}
        if artifact_stat is not None:
            self.data['verification']['artifact_stat'] = artifact_stat
        write_manifest(self.path, self.data, manifest_path=self.manifest_path)

    def summary(self) -> Dict[str, Any]:
        return dict(self.data, path=self.path)


def write_manifest(artifact_path: str, data: Dict[str, Any], manifest_path: Optional[str] = None) -> str:
    """Write the manifest atomically; call only after the artifact itself was committed. ``manifest_path``: an
    existing manifest's own file (``Manifest.manifest_path``), when it is rewritten."""
    record = dict(data)
    record.setdefault('format', FORMAT_VERSION)
    record.setdefault('id', os.path.basename(artifact_path))
    record.setdefault('artifact', os.path.basename(artifact_path))
    path = manifest_path or manifest_path_for(artifact_path)
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and read_manifest refuses them.
        text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + '\n'
    except ValueError as exc:
        raise OpsReadyError('Manifest %s not written: %s (NaN and Infinity are not JSON values).' % (path, exc))
    atomic_write_text(path, text, mode=0o600)
    return path


MANIFEST_LIMIT = 16 * 1024 * 1024


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set = set()
        twice = sorted({key for key, dummy in pairs if key in seen or seen.add(key)})  # type: ignore[func-returns-value]
        raise ValueError('member %s appears twice in one object (which one holds?)' % ', '.join(map(repr, twice)))
    return data


def _no_constant(name: str) -> Any:
    raise ValueError('%s is not a JSON value' % name)


def loads_strict(raw: bytes) -> Any:
    """JSON as RFC 8259 defines it: UTF-8 text, no NaN/Infinity, no member named twice in one object, nothing after
    the value, and not nested deeper than the decoder recurses. ValueError (with why) for anything else: Python's
    json takes NaN, keeps the last of two equal names and overflows 1e999 to inf without a word."""
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ValueError('not UTF-8 text (byte %d)' % exc.start)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError('arrays or objects nested too deep')


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_shape(data: Dict[str, Any]) -> Optional[str]:
    """What is wrong with the types of a manifest's members the collection reads, or None. A manifest is read by
    the catalog, retention, verify, restore and offsite copies: a value of the wrong type there is a traceback in
    each of them (or, for a time that does not parse, a catalog that fails as a whole) instead of one manifest
    listed as broken."""
    for key in ('id', 'artifact', 'engine', 'kind', 'started', 'finished', 'sha256', 'compression'):
        if not _text(data[key]):
            return '%s is %s, not text' % (key, type(data[key]).__name__)
    for key in ('database', 'parent', 'origin', 'consistent_at', 'covers_from'):
        if data.get(key) is not None and not _text(data[key]):
            return '%s is %s, not text' % (key, type(data[key]).__name__)
    for key in ('started', 'finished', 'consistent_at', 'covers_from'):
        if data.get(key) is not None:
            try:
                parse_time(data[key], key)
            except OpsReadyError as exc:
                return exc.message.rstrip('.')
    if not _count(data['size']):
        return 'size %r is not a byte count' % (data['size'],)
    position = data.get('position')
    if position is not None:
        if not isinstance(position, dict):
            return 'position is %s, not an object' % type(position).__name__
        for key in ('start', 'end', 'log_start'):
            value = position.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                return 'position %s %r is not an integer' % (key, value)
    for key in ('encryption', 'verification', 'rekey_pending'):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return '%s is %s, not an object' % (key, type(data[key]).__name__)
    return None


def symlink_refusal(path: str) -> str:
    """Why the manifest ``path``, a symlink, is not read, and what to do."""
    return ('Manifest %s is a symlink, and a manifest is never read through one: an account that can write %s could '
            'have linked a manifest of another catalog (or a root-only file) to make root list, verify, copy or '
            'restore what it describes. It was not read. Replace the link with the manifest itself (copy the file over '
            'the link) or remove it.' % (path, os.path.dirname(os.path.abspath(path))))


def read_manifest(path: str) -> Manifest:
    try:
        # A regular file of at most 16 MiB: a FIFO, a device or a huge file planted as a manifest is
        # refused with what it is, never read (a catalog scan must not hang or fill memory). Never through a
        # symlink: the catalog's writers rename regular files into place and never make links.
        data = loads_strict(safeio.read_regular(path, MANIFEST_LIMIT, what='Manifest', follow=False))
    except safeio.UnsafeFileError as exc:
        if os.path.islink(path):
            raise safeio.UnsafeFileError(symlink_refusal(path), path=path)
        raise exc
    except (OSError, ValueError) as exc:
        raise OpsReadyError('Cannot read manifest %s: %s' % (path, exc))
    if not isinstance(data, dict):
        raise OpsReadyError('Manifest %s is not a JSON object.' % path)
    missing = [key for key in REQUIRED if key not in data]
    problem = None if missing else check_shape(data)
    if problem:
        raise OpsReadyError('Manifest %s: %s: it is ignored, and nothing it names is read, verified, copied or '
                            'deleted. Remove it if it is not one of ours, or restore it from a copy.' % (path, problem))
    entry = Manifest(data, os.path.dirname(os.path.abspath(path)))
    entry.source_path = os.path.abspath(path)
    return entry
