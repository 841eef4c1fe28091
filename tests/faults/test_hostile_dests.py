"""Fault matrix, hostile destinations: root writes backups into, or restores into, a directory an unprivileged
user (created and removed here, see test_hostile_files) owns or can write.

- db_backup / redis_backup: the tools running as root (pg_dump -Fd, pg_basebackup, mariadb-binlog, SQLite, redis-cli)
  write through staging names in dest that the dest's owner can swap for links: such a dest (or a directory above
  it the user can rename things in) is refused with a message saying what to do. A dest under a sticky /tmp in a
  directory of root's is fine.
- redis-cli --rdb never writes through the staging name (it writes into root's O_EXCL|O_NOFOLLOW descriptor), even
  when the engine is reached with a hostile dest: the user swaps the name for a link to a root file right before
  redis-cli starts (a wrapper on PATH makes the swap certain, not a timing race).
- file_restore into the user's own directory (a restore into /home/alice as root): the user renames root's staging
  directory and links its name to a root directory, during extraction or right before the files are moved into
  place (hooks make the swap certain). Nothing outside the user's tree may change, and the restore still lands.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.faults.helpers import play
from tests.faults import test_hostile_files as hostile

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (  # noqa: E402
    RedisClient, RedisConnection)
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.verify import RedisEngine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

# test_hostile_files' throw-away user and its arena (a root dir with outside/ and the user's tree/).
racer_user = hostile.racer_user
arena = hostile.arena
snapshot = hostile.snapshot
touched = hostile.touched


@pytest.fixture(scope='module')
def redis():
    if shutil.which('redis-server') is None:
        pytest.skip('redis-server is not installed')
    server = RedisServer().start()
    try:
        server.fill(500)
        yield server
    finally:
        server.stop()


def as_user(user, script: str) -> None:
    subprocess.run(['setpriv', '--reuid=%d' % user.pw_uid, '--regid=%d' % user.pw_gid, '--clear-groups',
                    'sh', '-c', script], check=True, capture_output=True)


def sqlite_source(base: Path) -> Path:
    import sqlite3
    path = base / 'app.db'
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE t (a)')
    conn.execute("INSERT INTO t VALUES ('x')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.fast
@pytest.mark.fault(fault='db_backup/redis_backup dest writable by another account', component='db_backup, redis_backup',
                   expected='refused before anything is written, with a message saying what to do; check mode too; '
                            'a root dir under sticky /tmp is accepted')
def test_backup_modules_refuse_a_dest_another_account_controls(racer_user, arena, redis, tmp_path, fault):
    base = arena['base']
    user = racer_user
    db = sqlite_source(base)
    owned = base / 'owned'                 # the user's directory
    owned.mkdir(mode=0o755)
    os.chown(owned, user.pw_uid, user.pw_gid)
    below = owned / 'backups'              # root's 0700 directory, but the user can rename it away
    below.mkdir(mode=0o700)
    group = base / 'group'                 # root's, writable by a group
    group.mkdir()
    os.chmod(group, 0o770)
    os.chown(group, 0, user.pw_gid)
    fine = Path(tempfile.mkdtemp(prefix='opsready-dest-'))   # root 0700 in the sticky /tmp: accepted
    try:
        tasks = []
        for label, dest in (('owned', owned), ('below', below), ('group', group), ('fresh', owned / 'new' / 'b')):
            for check in (False, True):
                tasks.append({'name': '%s %s' % (label, check), 'opsready.operations.db_backup': {
                    'engine': 'sqlite', 'database': str(db), 'dest': str(dest)},
                    'check_mode': check, 'ignore_errors': True, 'register': 'r_%s_%s' % (label, str(check).lower())})
        tasks.append({'name': 'redis owned', 'opsready.operations.redis_backup': {
            'host': redis.host, 'port': redis.port, 'password': redis.password, 'dest': str(owned)},
            'ignore_errors': True, 'register': 'r_redis'})
        tasks.append({'name': 'fine', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(fine / 'b')}, 'register': 'r_fine'})
        # owner: the account named as trusted is accepted, for its own dir or root's that its group can write
        # (the WAL catalog set-up); a dir below another account's is still refused for the named one's dest.
        for label, dest in (('owner owned', owned), ('owner group', group)):
            tasks.append({'name': label, 'opsready.operations.db_backup': {
                'engine': 'sqlite', 'database': str(db), 'dest': str(dest), 'owner': user.pw_name}})
        result = play(tmp_path, tasks, fault=fault)
        results = {r['_task']: r for r in result.task_results()}
        assert len(results) == len(tasks), result.stdout[-3000:]
        refused = 0
        for name, res in results.items():
            if name == 'fine' or name.startswith('owner '):
                assert res['_event'] == 'runner_on_ok', res.get('msg')
                continue
            assert res['_event'] == 'runner_on_failed', '%s was not refused: %s' % (name, res)
            msg = res['msg']
            assert 'not safe' in msg and 'become_user' in msg and 'owner' in msg, msg
            refused += 1
        assert refused == 9
        # nothing was written into the hostile places by the refused runs, not even the missing directory
        assert not (owned / 'new').exists() and os.listdir(below) == []
        for accepted in (fine / 'b', owned, group):
            assert any(n.endswith('.manifest.json') for n in os.listdir(accepted)), accepted
        fault.observed('%d runs refused (4 dests x run/check mode + redis_backup); root dir under /tmp accepted; '
                       'owner=<the account> accepted for its dir and for root\'s dir its group writes' % refused)
    finally:
        shutil.rmtree(fine, ignore_errors=True)


@pytest.mark.fast
@pytest.mark.fault(fault='user swaps redis-cli --rdb staging name for a link to a root file', component='redis_backup',
                   expected='redis-cli writes into root\'s descriptor, never through the name: the root file is '
                            'unchanged and the backup holds every key')
def test_redis_cli_never_writes_through_the_staging_name(racer_user, arena, redis, tmp_path, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    dest = base / 'owned'
    dest.mkdir(mode=0o755)
    os.chown(dest, user.pw_uid, user.pw_gid)
    victim = outside / 'victim'
    before = snapshot(outside)
    # redis-cli on PATH: the user swaps the staging file for a link to the victim, then the real redis-cli runs.
    shim = tmp_path / 'bin'
    shim.mkdir()
    swap = ('cd %s && for f in *.rdb.partial; do [ -e "$f" ] || continue; mv "$f" "$f.stolen"; ln -s %s "$f"; done'
            % (dest, victim))
    (shim / 'redis-cli').write_text('#!/bin/sh\ncase "$*" in *--rdb*) setpriv --reuid=%d --regid=%d --clear-groups '
                                    'sh -c \'%s\' ;; esac\nexec %s "$@"\n'
                                    % (user.pw_uid, user.pw_gid, swap, shutil.which('redis-cli')))
    os.chmod(shim / 'redis-cli', 0o755)
    runner = ToolRunner(secrets=[redis.password], env={'PATH': '%s:%s' % (shim, os.environ['PATH'])})
    engine = RedisEngine(ConnectionParams(host=redis.host, port=redis.port, password=redis.password), runner)
    engine.client = RedisClient(RedisConnection(host=redis.host, port=redis.port, password=redis.password),
                                runner)
    # zstd: the artifact's own .partial (<x>.rdb.zst.partial) is not matched by the wrapper, only the staging file.
    opts = BackupOptions(kind='full', dest=str(dest), database='hostile', compression='zstd')
    error = None
    try:
        manifests = engine.backup(opts)   # the engine itself, below the module's dest check
    except Exception as exc:   # noqa: BLE001 - reported below; the victim is what is asserted
        error = exc
        manifests = []
    outside_touched = touched(before, snapshot(outside))
    stolen = sorted(n for n in os.listdir(dest) if n.endswith('.stolen'))
    fault.observed('swaps made: %d; files outside touched: %d; backup: %s'
                   % (len(stolen), outside_touched, error or manifests[0]['details']['keys']))
    fault.lost(outside_touched=outside_touched)
    assert len(stolen) == 1, 'the wrapper made no swap (the test did not test anything): %s' % stolen
    assert outside_touched == 0 and victim.read_bytes() == b'root file that must not change\n'
    assert error is None and manifests[0]['details']['keys'] == redis.dbsize()


def user_files_archive(base: Path, source: Path, user) -> object:
    """A backup of the user's files as root takes it: passwd (a user file named like a root one), profile.d/x.sh.
    Members are named by their full path (tmp/opsready-hostile-X/outside/src/passwd), as file_backup names them."""
    (source / 'profile.d').mkdir(parents=True)
    (source / 'passwd').write_bytes(b'user data\n')
    (source / 'profile.d' / 'x.sh').write_bytes(b'echo owned\n')
    for path in (source / 'passwd', source / 'profile.d', source / 'profile.d' / 'x.sh'):
        os.chown(path, user.pw_uid, user.pw_gid)
    dest = base / 'backups'
    archive.prepare_dest(str(dest), True)
    data = archive.create_archive([str(source)], str(dest), 'home', compression='none')
    return read_manifest(data['path'] + '.manifest.json')


@pytest.mark.fast
@pytest.mark.parametrize('phase', ['extract', 'swap_in'])
@pytest.mark.fault(fault='user renames root\'s staging dir and links its name to a root dir ({phase})',
                   component='file_restore',
                   expected='nothing outside the user\'s tree changes; the restore lands in the user\'s directory')
def test_file_restore_into_a_user_dir_with_staging_swapped(racer_user, arena, monkeypatch, phase, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    # The archived tree still exists where it was backed up (outside the user's directory).
    manifest = user_files_archive(base, outside / 'src', user)
    target = arena['tree']            # the user's directory, restored into by root
    victim_dir = outside / 'etc'      # holds passwd (root's)
    # While extracting, the staging name leads to a root directory (root would write the archive there); before
    # the move into place it leads to / (root would move the live files named by the members into the user's dir).
    link_to = victim_dir if phase == 'extract' else Path('/')
    before = snapshot(outside)
    swaps = []

    def steal() -> None:
        if swaps:
            return
        names = [n for n in os.listdir(target) if n.startswith('.opsready-restore-')]
        assert len(names) == 1, names
        as_user(user, 'cd %s && mv %s stolen && ln -s %s %s' % (target, names[0], link_to, names[0]))
        swaps.append(names[0])

    if phase == 'extract':
        original = tarfile.TarFile.extract

        def extract_hook(self, *args, **kwargs):
            steal()
            return original(self, *args, **kwargs)
        monkeypatch.setattr(tarfile.TarFile, 'extract', extract_hook)
    else:
        original_swap = extract._swap_in

        def swap_hook(*args, **kwargs):
            steal()
            return original_swap(*args, **kwargs)
        monkeypatch.setattr(extract, '_swap_in', swap_hook)
    member_prefix = [m for m in extract.list_members(manifest) if m.name.endswith('passwd')][0].name[:-len('passwd')]
    error = None
    try:
        extract.restore_archive(manifest, str(target))
    except Exception as exc:   # noqa: BLE001 - a refusal is acceptable, a write outside is not
        error = exc
    outside_touched = touched(before, snapshot(outside))
    fault.observed('swaps: %d; files outside touched: %d; restore: %s' % (len(swaps), outside_touched,
                                                                          error or 'completed'))
    fault.lost(outside_touched=outside_touched)
    assert swaps and outside_touched == 0
    assert (victim_dir / 'passwd').read_bytes() == b'root:x:0:0\n'
    assert not (victim_dir / 'profile.d').exists()
    # Closing the race, not refusing: the user's files are restored into the user's directory.
    assert error is None, error
    restored = target / member_prefix
    assert (restored / 'passwd').read_bytes() == b'user data\n'
    assert (restored / 'profile.d' / 'x.sh').read_bytes() == b'echo owned\n'
    assert os.stat(restored / 'passwd').st_uid == user.pw_uid
    assert stat.S_ISLNK(os.lstat(target / swaps[0]).st_mode)   # the user's link left alone, never followed
