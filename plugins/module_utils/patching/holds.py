# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of the package holds a patching run sets for its own duration.

A run holds the packages the operator asked to keep back (``hold``) and releases them when it ends. A run killed in
between (a job timeout, the OOM killer, a lost controller) never reaches that release: without a record, the next
run cannot tell those holds from the operator's own, keeps them, and the packages are never patched again. So the
holds are written here before they are set and the record is removed only after they are released; the next run
releases what a record names (and only what is still held), and says so.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
from typing import Iterator, List

from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_json, fsync_dir
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

DEFAULT_PATH = '/var/lib/opsready/patching/temporary-holds.json'
LIMIT = 1024 * 1024


def _directory(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def check(path: str) -> None:
    """Refuse a record another account could write, swap or link: the record tells root which holds to release, so
    whoever can write it can make root release the operator's own holds (and a link at its name would be read, or
    replaced, as root). Creates and changes nothing: called before the lock file is made, and by check mode.

    The directories on the way must pass ``check_parents``; the record's own directory, when it exists, must be
    root's (or this user's) and writable by nobody else; a link at the record's name is refused, whoever made it."""
    directory = _directory(path)
    safeio.check_parents(directory, 'record package holds in', 'The directory of hold_state_file')
    if os.path.islink(path):
        raise safeio.UnsafeFileError(
            'hold_state_file %s is a symlink (to %s): the record of the holds a run sets is never read or written '
            'through a link (whoever made it could point root at another file). Nothing was written. Remove the link, '
            'or set hold_state_file to the real file.' % (path, os.readlink(path)), path=path)
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return   # made 0700 by ``exclusive``, below directories check_parents accepted
    risk = safeio.directory_risk(st)
    if risk:
        raise safeio.UnsafeFileError(
            'The directory %s of hold_state_file %s is not safe for the patching holds record: %s, so that account '
            'could write the record (and make root release holds the operator set) or plant links in it. Nothing was '
            'written. Set hold_state_file to a path in a directory only root can write (the default, '
            '/var/lib/opsready/patching, is made 0700).' % (directory, path, risk), path=directory)


def recorded(path: str) -> List[str]:
    """The packages a killed run held and never released (empty when the last run ended normally)."""
    check(path)
    if not os.path.lexists(path):
        return []
    raw = safeio.read_regular(path, LIMIT, what='The patching holds record', follow=False)
    try:
        data = json.loads(raw.decode('utf-8'))
        names = data['holds']
        if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
            raise ValueError('holds is not a list of package names')
    except (ValueError, KeyError, TypeError) as exc:
        raise OpsReadyError('The patching holds record %s cannot be read (%s). It names the packages an interrupted '
                            'run held: check `apt-mark showhold` (or `dnf versionlock list`), release the ones you did '
                            'not hold yourself, then remove the file.' % (path, exc), path=path)
    return sorted(set(names))


@contextlib.contextmanager
def exclusive(path: str, timeout: float) -> Iterator[None]:
    """One patching run at a time on this host: a second run would take the first one's holds for a killed run's.
    Creates the record's directory (0700) first, refusing one another account could swap."""
    directory = _directory(path)
    check(path)
    try:
        safeio.makedirs(directory, 0o700)
    except OSError as exc:
        raise OpsReadyError('Cannot create %s for the patching holds record: %s. Set hold_state_file to a path in a '
                            'writable directory.' % (directory, exc.strerror or exc), path=directory)
    check(path)   # a directory on the way swapped while it was made
    with locks.waiting(path + '.lock', 'patching run', timeout=timeout):
        yield


def record(path: str, names: List[str]) -> None:
    """Write the record before the holds are set (0600; the directory was checked by ``exclusive``)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    atomic_write_json(path, {'holds': sorted(names), 'pid': os.getpid(), 'since': now}, mode=0o600)


def forget(path: str) -> None:
    """Remove the record once every hold it names is released."""
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise OpsReadyError('Cannot remove the patching holds record %s: %s. Remove it by hand: its holds are '
                                'already released.' % (path, exc.strerror or exc), path=path)
        return
    fsync_dir(_directory(path))
