"""Fault matrix, hostile filesystems round 3: the paths a root task touches in a directory another account can
write, attacked one class at a time (a symlink planted before the run or swapped in between check and use, a hard
link to a root-only file, a FIFO, a directory where a file is expected, a name pre-created by the other account).

An unprivileged user (test_hostile_files' throw-away account, created with useradd and removed after) owns the
hostile directory; its swaps run as that user (setpriv), made certain by a hook at the moment root works there
(not a timing race). Afterwards every file outside the user's tree is compared with its state before (content,
mode, owner, mtime): "files outside touched" must be 0.

- drill_step step=fileset: the scratch root (a predictable name such as /var/tmp/opsready-drill/<set>) under a
  directory the user made beforehand; the user swaps the fresh scratch root for a link to a root directory right
  after root creates it. Root must neither chmod that directory nor restore (decrypted keys included) into it.
- scratch directories made with mkdtemp in a directory an option names (redis_restore/drill scratch_dir, db_restore
  tmpdir): the user renames root's fresh 0700 directory away and links its name to a root directory; root must
  neither chmod that directory nor write the decrypted RDB, redis.conf or a decompressed dump into it.
- SQLite sources and targets (db_backup, drill/maintenance opens): the database's sidecars (-wal, -shm, -journal)
  are created and written by SQLite next to the file, by name, as root: a hard link planted there to a root-only
  file must not be truncated or written; a symlink or FIFO there is refused naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.faults.helpers import play
from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_inputs_sweep as sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.drill import fileset  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import restore as redis_restore  # noqa: E402,E501
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (  # noqa: E402
    RedisClient, RedisConnection)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.verify import RedisEngine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, safeio  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite_copy  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import Store  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

racer_user = hostile.racer_user
arena = hostile.arena
snapshot = hostile.snapshot
touched = hostile.touched


def as_user(user, script: str) -> None:
    subprocess.run(['setpriv', '--reuid=%d' % user.pw_uid, '--regid=%d' % user.pw_gid, '--clear-groups',
                    'sh', '-c', script], check=True, capture_output=True, timeout=30)


def user_dir(path: Path, user) -> Path:
    path.mkdir(mode=0o755)
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


def root_secret(path: Path, content: bytes = b'root:$6$hash:19000:0:99999:7:::\n') -> tuple:
    """A /etc/shadow-like file of root's (0600) and its state (content, mode, owner, size, mtime, inode)."""
    path.write_bytes(content)
    os.chmod(path, 0o600)
    return state_of(path)


def state_of(path: Path) -> tuple:
    st = os.lstat(path)
    return (path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
            st.st_ino)


# --- drill_step step=fileset: the scratch root -----------------------------------------------------------------
def fileset_backup(base: Path) -> Path:
    """A file-set backup of a small tree of root's (a config and a key), in a catalog of root's."""
    source = base / 'src'
    (source / 'etc').mkdir(parents=True)
    (source / 'etc' / 'app.conf').write_bytes(b'listen 80\n')
    (source / 'etc' / 'app.key').write_bytes(b'-----BEGIN PRIVATE KEY-----\nnot a real key\n')
    os.chmod(source / 'etc' / 'app.key', 0o600)
    catalog = base / 'catalog'
    archive.prepare_dest(str(catalog), True)
    archive.create_archive([str(source)], str(catalog), 'app', compression='none')
    return catalog


@pytest.mark.fast
@pytest.mark.parametrize('when', ['planted', 'after_mkdir', 'after_check'])
@pytest.mark.fault(fault='scratch_root under a dir another account made; swapped for a link to a root dir ({when})',
                   component='drill_step (fileset)',
                   expected='the root dir keeps its mode, nothing is restored into it; the drill step is refused '
                            'naming the directory the other account controls')
def test_drill_scratch_root_in_a_directory_another_account_made(racer_user, arena, monkeypatch, when, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    catalog = fileset_backup(base)
    # The predictable parent (/var/tmp/opsready-drill) pre-created by the other account.
    parent = user_dir(base / 'opsready-drill', user)
    scratch = parent / 'app'
    victim_dir = outside / 'etc'            # root's 0755 directory
    before = snapshot(outside)
    swaps = []

    def swap() -> None:
        if swaps or not os.path.isdir(scratch) or os.path.islink(scratch):
            return
        as_user(user, 'cd %s && mv app stolen && ln -s %s app' % (parent, victim_dir))
        swaps.append(when)

    if when == 'planted':
        as_user(user, 'ln -s %s %s' % (victim_dir, scratch))
        swaps.append(when)
    elif when == 'after_mkdir':
        real_makedirs = os.makedirs

        def makedirs_hook(name, *args, **kwargs):
            real_makedirs(name, *args, **kwargs)
            if os.path.abspath(name) == str(scratch):
                swap()
        monkeypatch.setattr(fileset.os, 'makedirs', makedirs_hook)
    else:
        # The user made an empty directory at the name; root checks it is empty, then the user swaps it.
        as_user(user, 'mkdir %s' % scratch)
        real_listdir = os.listdir

        def listdir_hook(path='.'):
            found = real_listdir(path)
            if isinstance(path, str) and os.path.abspath(path) == str(scratch):
                swap()
            return found
        monkeypatch.setattr(fileset.os, 'listdir', listdir_hook)
    error = None
    try:
        result = fileset.drill_fileset(str(catalog), 'app', str(scratch))
    except Exception as exc:   # noqa: BLE001 - a crash is reported below, after what it did outside
        error, result = exc, {'steps': []}
    monkeypatch.undo()
    after = snapshot(outside)
    outside_touched = touched(before, after)
    restore = ([s for s in result['steps'] if s['name'] == 'restore'] or [{'ok': None, 'error': None}])[0]
    fault.observed('swaps: %d; root dir mode %04o; files outside touched: %d; restore step: %s'
                   % (len(swaps), stat.S_IMODE(os.stat(victim_dir).st_mode), outside_touched,
                      error or restore['error'] or restore.get('result')))
    fault.lost(outside_touched=outside_touched)
    # On the old code every hook made its swap (root then chmodded the root dir 0700 and restored 7 entries into
    # it); refused before root creates or checks anything, the hook has no moment to swap in.
    assert swaps or 'Nothing was created' in str(restore['error']), 'no swap and no refusal: %s' % restore
    assert stat.S_IMODE(os.stat(victim_dir).st_mode) == 0o755
    assert outside_touched == 0, sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert error is None, error
    assert not restore['ok'] and str(parent) in restore['error'], restore
    # whatever is at the name is the user's (a link, or its own directory) or nothing: root made nothing there
    assert not os.path.lexists(scratch) or os.lstat(scratch).st_uid == user.pw_uid


@pytest.mark.fast
@pytest.mark.fault(fault='scratch_root under the sticky /tmp in a directory of root\'s',
                   component='drill_step (fileset)',
                   expected='accepted: the drill restores, checks and removes the scratch root')
def test_drill_scratch_root_under_a_root_dir_still_works(arena, fault):
    base = arena['base']
    catalog = fileset_backup(base)
    scratch = base / 'drill' / 'app'
    result = fileset.drill_fileset(str(catalog), 'app', str(scratch))
    fault.observed('steps: %s' % [(s['name'], s['ok']) for s in result['steps']])
    fault.lost(files=0)
    assert result['ok'], result['error']
    assert not scratch.exists()


# --- SQLite sidecars next to a database in a directory another account can write --------------------------------
def wal_database(path: Path, user) -> None:
    conn = sqlite3.connect(path)
    conn.execute('PRAGMA journal_mode=wal')
    conn.execute('CREATE TABLE t (a)')
    conn.execute("INSERT INTO t VALUES ('x')")
    conn.commit()
    conn.close()
    for suffix in ('-wal', '-shm'):
        if os.path.exists(str(path) + suffix):
            os.unlink(str(path) + suffix)
    os.chown(path, user.pw_uid, user.pw_gid)


@pytest.mark.fast
@pytest.mark.parametrize('module', ['db_backup', 'db_maintenance'])
@pytest.mark.parametrize('sidecar', ['-shm', '-wal'])
@pytest.mark.parametrize('kind', ['hardlink', 'symlink', 'fifo'])
@pytest.mark.fault(fault='{kind} planted at the SQLite database\'s {sidecar} in the app account\'s directory',
                   component='{module} (sqlite)',
                   expected='the root-only file keeps content, mode, owner; the backup is refused naming the '
                            'sidecar and what it is; no hang')
def test_sqlite_sidecar_planted_next_to_a_database(racer_user, arena, tmp_path, module, sidecar, kind, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    appdir = user_dir(base / 'app', user)
    db = appdir / 'app.db'
    wal_database(db, user)
    shadow = outside / 'shadow'
    before = root_secret(shadow)
    planted = Path(str(db) + sidecar)
    if kind == 'hardlink':
        # fs.protected_hardlinks keeps a user from linking a file of root's; where it is off (or for a file the
        # user may write) the link is the user's to make: made here as root for the user.
        os.link(shadow, planted)
    elif kind == 'symlink':
        as_user(user, 'ln -s %s %s' % (shadow, planted))
    else:
        as_user(user, 'mkfifo %s' % planted)
    dest = base / 'backups'
    args = {'engine': 'sqlite', 'database': str(db)}
    args.update({'dest': str(dest)} if module == 'db_backup' else {'tasks': ['vacuum', 'analyze', 'optimize']})
    result = play(tmp_path, [{'name': 'run', 'ignore_errors': True, 'opsready.operations.%s' % module: args}],
                  fault=fault, timeout=120)
    res = result.result('run')
    refused = res.get('_event') == 'runner_on_failed'
    after = state_of(shadow)
    fault.observed('%s: %s; root file unchanged: %s'
                   % ('refused' if refused else 'done', str(res.get('msg', ''))[:160], after[:6] == before[:6]))
    fault.lost(files=int(after[:6] != before[:6]))
    assert after[:6] == before[:6], 'root wrote %s through the %s at %s' % (shadow, kind, planted)
    assert refused, res
    assert str(planted) in res['msg'], res['msg']


# --- scratch directories made with mkdtemp in a directory an option names ----------------------------------------
@pytest.fixture(scope='module')
def redis_backup(tmp_path_factory):
    """A Redis backup (the engine itself, as test_hostile_dests), in a catalog of root's."""
    if shutil.which('redis-server') is None:
        pytest.skip('redis-server is not installed')
    dest = tmp_path_factory.mktemp('redis-catalog')
    with RedisServer() as server:
        server.fill(50)
        runner = ToolRunner(secrets=[server.password])
        engine = RedisEngine(ConnectionParams(host=server.host, port=server.port, password=server.password), runner)
        engine.client = RedisClient(RedisConnection(host=server.host, port=server.port, password=server.password),
                                    runner)
        manifests = engine.backup(BackupOptions(kind='full', dest=str(dest), database='cache', compression='zstd'))
    return read_manifest(os.path.join(str(dest), manifests[0]['artifact'] + '.manifest.json'))


@pytest.mark.fast
@pytest.mark.fault(fault='user renames root\'s fresh scratch dir in scratch_dir and links its name to a root dir',
                   component='redis_restore, dr_drill (redis scratch_dir)',
                   expected='the root dir keeps its mode and gets no dump.rdb/redis.conf; refused naming scratch_dir')
def test_redis_scratch_dir_another_account_controls(racer_user, arena, redis_backup, monkeypatch, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    workdir = user_dir(base / 'scratch', user)
    victim_dir = outside / 'etc'
    before = snapshot(outside)
    swaps = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp_hook(*args, **kwargs):
        made = real_mkdtemp(*args, **kwargs)
        if os.path.dirname(made) == str(workdir) and not swaps:
            name = os.path.basename(made)
            as_user(user, 'cd %s && mv %s stolen && ln -s %s %s' % (workdir, name, victim_dir, name))
            swaps.append(name)
        return made
    monkeypatch.setattr(tempfile, 'mkdtemp', mkdtemp_hook)
    error = None
    try:
        with redis_restore.scratch_instance(redis_backup, workdir=str(workdir), timeout=30, cleanup={}) as scratch:
            scratch.keys()
    except (OpsReadyError, OSError) as exc:
        error = exc
    monkeypatch.undo()
    after = snapshot(outside)
    outside_touched = touched(before, after)
    fault.observed('swaps: %d; root dir mode %04o; files outside touched: %d; run: %s'
                   % (len(swaps), stat.S_IMODE(os.stat(victim_dir).st_mode), outside_touched, error or 'completed'))
    fault.lost(outside_touched=outside_touched)
    # On the old code the hook swapped: root chmodded the root dir 0700 and wrote dump.rdb and redis.conf into it.
    assert swaps or 'Nothing was created' in str(error), 'no swap and no refusal: %s' % error
    assert stat.S_IMODE(os.stat(victim_dir).st_mode) == 0o755
    assert outside_touched == 0, sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert isinstance(error, safeio.UnsafeFileError) and 'scratch_dir %s' % workdir in str(error), error


@pytest.mark.fast
@pytest.mark.fault(fault='parent of root\'s scratch dirs: {kind}', component='files/safeio.private_tempdir '
                   '(db_restore tmpdir, redis scratch_dir)',
                   expected='another account\'s or a group/other-writable non-sticky parent refused, nothing made; '
                            'the sticky /tmp and root\'s own dirs accepted (0700)')
@pytest.mark.parametrize('kind', ['user-owned', 'group-writable', 'below-user-dir', 'sticky-tmp', 'root-dir',
                                  'default'])
def test_private_tempdir_parents(racer_user, arena, kind, fault):
    user, base = racer_user, arena['base']
    if kind == 'user-owned':
        parent = user_dir(base / 'p', user)
    elif kind == 'group-writable':
        parent = base / 'p'
        parent.mkdir()
        os.chmod(parent, 0o770)
        os.chown(parent, 0, user.pw_gid)
    elif kind == 'below-user-dir':
        parent = user_dir(base / 'u', user) / 'p'
        parent.mkdir(mode=0o700)   # root's, but the user can rename it away
    elif kind == 'sticky-tmp':
        parent = Path(tempfile.gettempdir())
    else:
        parent = base / 'p'
        parent.mkdir(mode=0o755)
    listing = sorted(os.listdir(parent)) if kind != 'sticky-tmp' else None
    error = ''
    try:
        made = safeio.private_tempdir(None if kind == 'default' else str(parent), 'opsready-probe-', 'tmpdir')
    except safeio.UnsafeFileError as exc:
        made, error = None, str(exc)
    fault.observed('%s: %s' % (kind, 'made %s' % made if made else error[:120]))
    fault.lost(files=0)
    if kind in ('sticky-tmp', 'root-dir', 'default'):
        assert made and stat.S_IMODE(os.stat(made).st_mode) == 0o700
        os.rmdir(made)
    else:
        assert made is None and 'tmpdir %s' % parent in error and 'Nothing was created' in error, error
        assert sorted(os.listdir(parent)) == listing


# --- backup_copy mode=pull into a directory another account can write -------------------------------------------
class DirStore(Store):
    """A destination that is a local directory (the store API backup_copy drives; the real backends are tested in
    tests/integration/test_backup_copy*.py)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = 'dir://%s' % root

    def list_files(self):
        return {str(p.relative_to(self.root)): p.stat().st_size for p in self.root.rglob('*') if p.is_file()}

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def chunks(self, name: str):
        yield (self.root / name).read_bytes()


@pytest.mark.fast
@pytest.mark.fault(fault='backup_copy pull into a dest another account owns; it swaps the verified download',
                   component='backup_copy (pull)',
                   expected='refused before anything is fetched, naming dest; nothing the account wrote becomes an '
                            'artifact of root\'s catalog')
def test_offsite_pull_into_a_dest_another_account_controls(racer_user, arena, monkeypatch, fault):
    user, base = racer_user, arena['base']
    remote = fileset_backup(base)             # the destination's copy of a catalog
    dest = user_dir(base / 'pulled', user)     # the local directory pulled into, the user's
    swaps = []
    real_private = offsite_copy._private

    def private_hook(path: str) -> None:
        if not swaps:
            name = os.path.basename(path)
            as_user(user, 'cd %s && printf forged > .f && mv -f .f %s' % (os.path.dirname(path), name))
            swaps.append(name)
        real_private(path)
    monkeypatch.setattr(offsite_copy, '_private', private_hook)
    error = None
    try:
        offsite_copy.pull(DirStore(remote), str(dest))
    except OpsReadyError as exc:
        error = exc
    monkeypatch.undo()
    forged = [p.name for p in dest.rglob('*') if p.is_file() and p.read_bytes() == b'forged']
    fault.observed('swaps: %d; forged files kept as artifacts: %s; pull: %s'
                   % (len(swaps), forged, error or 'completed'))
    fault.lost(files=len(forged))
    assert forged == []
    assert swaps or (error is not None and 'not safe' in str(error) and str(dest) in str(error)), error


# --- lock files at predictable names in a directory another account can write ------------------------------------
@pytest.mark.fast
@pytest.mark.parametrize('kind', ['hardlink', 'symlink', 'fifo', 'directory'])
@pytest.mark.fault(fault='{kind} pre-created at db_restore\'s lock name (.app.db.opsready-lock) in the app\'s dir',
                   component='db_restore (sqlite), common/locks.py',
                   expected='no hang; the root-only file keeps content, mode, owner; a refusal names the lock file')
def test_sqlite_restore_lock_name_pre_created(racer_user, arena, tmp_path, kind, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    source = base / 'src.db'
    conn = sqlite3.connect(source)
    conn.execute('CREATE TABLE t (a)')
    conn.execute("INSERT INTO t VALUES ('x')")
    conn.commit()
    conn.close()
    appdir = user_dir(base / 'app', user)
    shadow = outside / 'shadow'
    before = root_secret(shadow)
    lock = appdir / '.app.db.opsready-lock'
    if kind == 'hardlink':
        os.link(shadow, lock)      # see the SQLite sidecar case: made as root for the user
    elif kind == 'symlink':
        as_user(user, 'ln -s %s %s' % (shadow, lock))
    elif kind == 'fifo':
        as_user(user, 'mkfifo %s' % lock)
    else:
        as_user(user, 'mkdir %s' % lock)
    catalog = base / 'catalog'
    result = play(tmp_path, [
        {'name': 'backup', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(source),
                                                             'dest': str(catalog)}},
        {'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': {
            'engine': 'sqlite', 'src': str(catalog), 'source_database': str(source),
            'database': str(appdir / 'app.db')}}], fault=fault, timeout=120)
    res = result.result('restore')
    refused = res.get('_event') == 'runner_on_failed'
    after = state_of(shadow)
    fault.observed('%s: %s; root file unchanged: %s'
                   % ('refused' if refused else 'restored', str(res.get('msg', ''))[:140], after[:6] == before[:6]))
    fault.lost(files=int(after[:6] != before[:6]))
    assert after[:6] == before[:6]
    if refused:
        assert str(lock) in res['msg'], res['msg']


# --- notify's ledger (state_file): read as root from a directory the play names ----------------------------------
@pytest.mark.fast
@pytest.mark.parametrize('kind', sweep.KINDS)
@pytest.mark.fault(fault='{kind} as notify.state_file', component='notify',
                   expected='refused naming the path and what it is; no hang, no memory growth, nothing written')
def test_special_file_as_the_notify_ledger(tmp_path, kind, fault):
    work = tmp_path / 'work'
    work.mkdir()
    path = sweep.direct(kind, work / 'hostile-notify.json')
    sweep.check(fault, 'notify', {'check_stale': True, 'channels': [], 'state_file': path}, work, path, kind,
                ignore=('hostile-',))


@pytest.mark.fast
@pytest.mark.parametrize('kind', ['fifo', 'dev-zero', 'sparse-64GiB'])
@pytest.mark.parametrize('option', ['log_rotate.state_file', 'health_check.pidfile'])
@pytest.mark.fault(fault='{kind} as {option}', component='{option}',
                   expected='named as what it is, within seconds; no hang, no memory growth, nothing written')
def test_special_file_as_a_state_or_pid_file(tmp_path, option, kind, fault):
    work = tmp_path / 'work'
    work.mkdir()
    path = sweep.direct(kind, work / 'hostile-file')
    if option == 'log_rotate.state_file':
        (work / 'app.log').write_text('x\n')
        sweep.check(fault, 'log_rotate', {'paths': [str(work / 'app.log')], 'state_file': path, 'interval': 'daily'},
                    work, path, kind, ignore=('hostile-', 'app.log'))
    else:
        # A failed check, not a failed module: the result names the pid file and what it is.
        result = sweep.check(fault, 'health_check', {'checks': [{'type': 'process', 'name': 'app', 'pidfile': path}],
                                                     'fail_on': 'never'}, work, None, None, must_fail=False)
        assert any(word in json.dumps(result) for word in sweep.SAYS[kind]), json.dumps(result)[:800]
