"""Fault matrix, hostile filesystems round 9 (harness: test_hostile_round3/5/6/7/8, an unprivileged account made and
removed by test_hostile_files playing the application's or the server's account, its moves run as that account with
setpriv).

- SQLite db_restore (the embedded default's restore) made its staging copy, ran SQLite's own checks and swapped the
  files by path in the database's directory, often the application account's. That account could swap the staging
  name for a link to a SQLite file of root's just before SQLite opened it read-write (to give the copy the source's
  WAL journal mode): root rewrote that file's header. An account owning a directory above could swap the database's
  directory for a link to a directory of root's: root then staged, swapped in and deleted files there (root's own
  database replaced by the backup).
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402,E501
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import restore as sqlite_restore  # noqa: E402,E501
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402

racer_user = hostile.racer_user
arena = hostile.arena
snapshot = hostile.snapshot
touched = hostile.touched
as_user = round3.as_user
user_dir = round3.user_dir


def _changed(before: dict, after: dict) -> list:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _sqlite(path: Path, rows: int, wal: bool = False, owner=None) -> None:
    conn = sqlite3.connect(str(path))
    if wal:
        conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE t (x INTEGER)')
    conn.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(rows)])
    conn.commit()
    conn.close()
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _rows(path: Path) -> int:
    conn = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
    try:
        return conn.execute('SELECT count(*) FROM t').fetchone()[0]
    finally:
        conn.close()


def _backup(db: Path, dest: Path) -> None:
    run_backup(get_engine('sqlite', ConnectionParams()), BackupOptions(kind='full', dest=str(dest), database=str(db)),
               verify=False)


def _restore(db: Path, dest: Path):
    try:
        run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(db), replace=True), ConnectionParams())
    except OpsReadyError as exc:
        return exc
    return None


# --- SQLite restore -------------------------------------------------------------------------------------------------
@pytest.mark.fast
@pytest.mark.fault(fault='the application account swaps the SQLite staging copy for a link to a SQLite file of root\'s '
                         'just before db_restore opens it read-write to give it the source\'s WAL journal mode',
                   component='db_restore SQLite (engines/sqlite/restore.set_journal_mode)',
                   expected='SQLite never opens a name in the account\'s directory (checks run on a copy in a private '
                            'scratch directory); root\'s file unchanged; the database restored')
def test_sqlite_staging_swapped_before_journal_mode(racer_user, arena, monkeypatch, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)                   # /var/lib/app: the application account's
    db = app / 'app.db'
    _sqlite(db, 40, wal=True, owner=user)
    dest = base / 'backups'
    _backup(db, dest)
    as_user(user, 'sqlite3 %s "DELETE FROM t" 2>/dev/null || true' % db)
    victim = outside / 'root.db'                         # a SQLite file of root's, rollback journal
    _sqlite(victim, 3)
    real = sqlite_restore.set_journal_mode
    raced = []

    def swap_then_set(path, mode):
        raced.append(path)
        as_user(user, 'for f in %s.opsready-restore-*; do [ -f "$f" ] || continue; mv "$f" "$f.away"; '
                      'ln -s %s "$f"; done' % (db, victim))
        return real(path, mode)

    monkeypatch.setattr(sqlite_restore, 'set_journal_mode', swap_then_set)
    before = snapshot(outside)
    error = _restore(db, dest)
    monkeypatch.undo()
    after = snapshot(outside)
    fault.observed('%s; files in root\'s directory touched: %d'
                   % ('refused: %s' % str(error)[:160] if error else 'restored', touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert raced, 'the race was not run'
    assert touched(before, after) == 0, _changed(before, after)
    assert error is None, error
    assert _rows(db) == 40 and not db.is_symlink()
    assert os.stat(db).st_uid == user.pw_uid
    assert not [p.name for p in app.iterdir() if 'opsready' in p.name and not p.name.endswith('.away')]


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning the directory above the SQLite database swaps the database\'s directory '
                         'for a link to a directory of root\'s holding a database of the same name while db_restore '
                         'runs',
                   component='db_restore SQLite (engines/sqlite/restore._restore_locked)',
                   expected='staging, swap and removal go to the directory opened at the start (held by its '
                            'descriptor); root\'s database and directory unchanged')
def test_sqlite_directory_swapped_during_restore(racer_user, arena, monkeypatch, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    srv = user_dir(base / 'srv', user)                   # /srv/app: the application account's
    data = user_dir(srv / 'data', user)
    db = data / 'app.db'
    _sqlite(db, 40, owner=user)
    dest = base / 'backups'
    _backup(db, dest)
    rootdb = outside / 'app.db'                          # root's own database of the same name
    _sqlite(rootdb, 7)
    real = sqlite_restore.sweep_staging
    raced = []

    def swap_then_sweep(*args, **kwargs):
        raced.append(1)
        as_user(user, 'mv %s %s.away && ln -s %s %s' % (data, data, outside, data))
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite_restore, 'sweep_staging', swap_then_sweep)
    before = snapshot(outside)
    error = _restore(db, dest)
    monkeypatch.undo()
    after = snapshot(outside)
    moved = Path(str(data) + '.away') / 'app.db'
    fault.observed('%s; files in root\'s directory touched: %d; root\'s database rows: %d'
                   % ('refused: %s' % str(error)[:160] if error else 'restored', touched(before, after),
                      _rows(rootdb)))
    fault.lost(outside_touched=touched(before, after))
    assert raced, 'the race was not run'
    assert touched(before, after) == 0, _changed(before, after)
    assert _rows(rootdb) == 7
    assert error is None, error
    assert _rows(moved) == 40


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning the directory above the SQLite database has already swapped the '
                         'database\'s directory for a link to a directory of root\'s when db_restore starts',
                   component='db_restore SQLite (engines/sqlite/restore.restore)',
                   expected='refused naming the link; nothing made, changed or removed in root\'s directory (not even '
                            'the lock file)')
def test_sqlite_directory_is_a_link_at_start(racer_user, arena, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    srv = user_dir(base / 'srv', user)
    data = user_dir(srv / 'data', user)
    db = data / 'app.db'
    _sqlite(db, 40, owner=user)
    dest = base / 'backups'
    _backup(db, dest)
    rootdb = outside / 'app.db'
    _sqlite(rootdb, 7)
    as_user(user, 'mv %s %s.away && ln -s %s %s' % (data, data, outside, data))
    before = snapshot(outside)
    error = _restore(db, dest)
    after = snapshot(outside)
    fault.observed('%s; files in root\'s directory touched: %d'
                   % ('refused: %s' % str(error)[:200] if error else 'restored', touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert error is not None and 'symlink' in str(error) and str(data) in str(error), error


# --- Redis restore to a file ----------------------------------------------------------------------------------------
class _Manifest:
    def __init__(self, name: str) -> None:
        self.id = name
        self.path = '/var/backups/redis/' + name
        self.position: dict = {}
        self.data: dict = {}


def _redis_artifact(monkeypatch, data: bytes, swap=None) -> list:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import restore as redis_restore
    opened: list = []

    @contextlib.contextmanager
    def racing_open(manifest, identities=None):
        opened.append(manifest)
        if swap is not None:
            swap()                  # the account wins the race once the partial file exists
        yield io.BytesIO(data)

    monkeypatch.setattr(redis_restore, 'open_artifact', racing_open)
    return opened


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning the directory above the Redis dir swaps it for a link to a directory of '
                         'root\'s (holding a file of dest\'s name) before db_restore writes the RDB',
                   component='redis_restore target=file (engines/redis/restore.restore_file)',
                   expected='refused naming the link; root\'s file and directory unchanged')
def test_redis_dest_directory_is_a_link(racer_user, arena, monkeypatch, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import restore as redis_restore
    user, outside, base = racer_user, arena['outside'], arena['base']
    parent = user_dir(base / 'lib', user)                # /var/lib: here the redis account's
    rdir = user_dir(parent / 'redis', user)
    (outside / 'dump.rdb').write_bytes(b'root data\n')  # root's file of the same name
    as_user(user, 'mv %s %s.away && ln -s %s %s' % (rdir, rdir, outside, rdir))
    _redis_artifact(monkeypatch, b'REDIS0011' + b'x' * 5000)
    before = snapshot(outside)
    error = None
    try:
        redis_restore.restore_file(_Manifest('redis-1'), str(rdir / 'dump.rdb'))
    except OpsReadyError as exc:
        error = exc
    monkeypatch.undo()
    after = snapshot(outside)
    fault.observed('%s; files in root\'s directory touched: %d'
                   % ('refused: %s' % str(error)[:200] if error else 'written', touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert error is not None and 'symlink' in str(error) and str(rdir) in str(error), error


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning the directory above the Redis dir swaps it for a link to a directory of '
                         'root\'s while the RDB is written',
                   component='redis_restore target=file (engines/redis/restore.restore_file)',
                   expected='the RDB renamed into place in the directory opened at the start (held by its '
                            'descriptor); root\'s directory unchanged')
def test_redis_dest_directory_swapped_while_written(racer_user, arena, monkeypatch, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import restore as redis_restore
    user, outside, base = racer_user, arena['outside'], arena['base']
    parent = user_dir(base / 'lib', user)
    rdir = user_dir(parent / 'redis', user)
    (outside / 'dump.rdb').write_bytes(b'root data\n')
    data = b'REDIS0011' + b'x' * 5000
    opened = _redis_artifact(monkeypatch, data, lambda: as_user(
        user, 'mv %s %s.away && ln -s %s %s' % (rdir, rdir, outside, rdir)))
    before = snapshot(outside)
    error = None
    try:
        redis_restore.restore_file(_Manifest('redis-1'), str(rdir / 'dump.rdb'))
    except (OpsReadyError, OSError) as exc:
        error = exc
    monkeypatch.undo()
    after = snapshot(outside)
    moved = Path(str(rdir) + '.away')
    fault.observed('%s; files in root\'s directory touched: %d'
                   % ('failed: %s' % str(error)[:200] if error else 'written', touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert opened, 'the race was not run'
    assert touched(before, after) == 0, _changed(before, after)
    assert error is None, error
    assert (moved / 'dump.rdb').read_bytes() == data and not (moved / 'dump.rdb.partial').exists()


# --- Retention ------------------------------------------------------------------------------------------------------
@pytest.mark.fast
@pytest.mark.fault(fault='the account owning the directory above a backup catalog swaps the catalog for a link to a '
                         'directory of root\'s holding a directory of a doomed artifact\'s name before retention '
                         'deletes it',
                   component='backup_prune / catalog_prune (backup/retention.delete_artifacts)',
                   expected='refused naming the link; nothing removed from root\'s directory')
def test_retention_catalog_swapped_for_a_link(racer_user, arena, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
    user, outside, base = racer_user, arena['outside'], arena['base']
    parent = user_dir(base / 'backups', user)            # /srv/backups: another account's
    catalog = parent / 'pg'
    catalog.mkdir()
    (catalog / 'pg-base-1').mkdir()
    (catalog / 'pg-base-1' / 'base.tar').write_bytes(b'b' * 100)
    (catalog / 'pg-base-1.manifest.json').write_text('{}')
    (catalog / 'pg-dump-1').write_bytes(b'd' * 100)
    (catalog / 'pg-dump-1.manifest.json').write_text('{}')
    mine = outside / 'pg-base-1'                         # root's directories and files of the same names
    mine.mkdir()
    (mine / 'keep').write_text('root\n')
    (outside / 'pg-dump-1').write_bytes(b'root dump\n')
    (outside / 'pg-dump-1.manifest.json').write_text('{"root": true}')
    as_user(user, 'mv %s %s.away && ln -s %s %s' % (catalog, catalog, outside, catalog))
    before = snapshot(outside)
    error = None
    try:
        retention.delete_artifacts(str(catalog), [
            ('pg-base-1', str(catalog / 'pg-base-1.manifest.json'), 'pg-base-1', []),
            ('pg-dump-1', str(catalog / 'pg-dump-1.manifest.json'), 'pg-dump-1', [])])
    except OpsReadyError as exc:
        error = exc
    after = snapshot(outside)
    fault.observed('%s; files in root\'s directory touched: %d'
                   % ('refused: %s' % str(error)[:200] if error else 'deleted', touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert error is not None and 'symlink' in str(error) and str(catalog) in str(error), error


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning a backup catalog swaps the directory of a doomed artifact for a link to '
                         'a directory of root\'s between two deletions',
                   component='backup_prune / catalog_prune (backup/retention.delete_artifacts)',
                   expected='the link removed, never followed; root\'s directory intact')
def test_retention_artifact_directory_swapped_for_a_link(racer_user, arena, monkeypatch, fault):
    """Regression guard (passed on the old code too: the link is unlinked by name, never walked): kept so that the
    descriptor-relative removal keeps removing a link as a link."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
    user, outside, base = racer_user, arena['outside'], arena['base']
    catalog = user_dir(base / 'pg', user)                # the catalog itself another account's
    for name in ('pg-dump-1', 'pg-base-2'):
        (catalog / name).mkdir()
        (catalog / name / 'base.tar').write_bytes(b'b' * 100)
        (catalog / (name + '.manifest.json')).write_text('{}')
    mine = outside / 'etc'
    raced = []
    real_unlink = retention.os.unlink

    def racing_unlink(path, *args, **kwargs):
        if not raced and 'pg-base-2' in str(path):
            raced.append(path)
            doomed = catalog / 'pg-base-2'
            as_user(user, 'mv %s %s.away && ln -s %s %s' % (doomed, doomed, mine, doomed))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(retention.os, 'unlink', racing_unlink)
    before = snapshot(outside)
    error = None
    try:
        retention.delete_artifacts(str(catalog), [
            ('pg-dump-1', str(catalog / 'pg-dump-1.manifest.json'), 'pg-dump-1', []),
            ('pg-base-2', str(catalog / 'pg-base-2.manifest.json'), 'pg-base-2', [])])
    except (OpsReadyError, OSError) as exc:
        error = exc
    monkeypatch.undo()
    after = snapshot(outside)
    fault.observed('%s; files in root\'s directory touched: %d'
                   % ('failed: %s' % str(error)[:200] if error else 'deleted', touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert raced, 'the race was not run'
    assert touched(before, after) == 0, _changed(before, after)
    assert not (catalog / 'pg-base-2').exists() and not (catalog / 'pg-dump-1').exists()


# --- PITR: run directory and staging removal ------------------------------------------------------------------------
def _pg_tree(user, base: Path, outside: Path):
    """/var/lib/postgresql (the postgres account's) / 16 / main; the account has swapped 16 for a link to a directory
    of root's (``outside``)."""
    top = user_dir(base / 'postgresql', user)
    parent = user_dir(top / '16', user)
    user_dir(parent / 'main', user)
    as_user(user, 'mv %s %s.away && ln -s %s %s' % (parent, parent, outside, parent))
    return parent


@pytest.mark.fast
@pytest.mark.fault(fault='the postgres account swaps the directory above the PITR datadir for a link to a directory '
                         'of root\'s before db_restore makes the scratch server\'s run directory',
                   component='db_restore PostgreSQL PITR (engines/postgresql/pitr._make_rundir)',
                   expected='refused naming the link; nothing made in root\'s directory')
def test_pitr_rundir_made_through_a_swapped_parent(racer_user, arena, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr
    user, outside, base = racer_user, arena['outside'], arena['base']
    parent = _pg_tree(user, base, outside)
    before = snapshot(outside)
    error = None
    try:
        pitr._make_rundir(str(parent / 'main.run'))
    except OpsReadyError as exc:
        error = exc
    after = snapshot(outside)
    fault.observed('%s; files in root\'s directory touched: %d'
                   % ('refused: %s' % str(error)[:200] if error else 'made', touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert error is not None and 'symlink' in str(error) and str(parent) in str(error), error


@pytest.mark.fast
@pytest.mark.fault(fault='the postgres account swaps the directory above the PITR datadir for a link to a directory '
                         'of root\'s holding directories of the staging names before db_restore removes its failed '
                         'staging and a killed run\'s',
                   component='db_restore PostgreSQL PITR (engines/postgresql/pitr._remove_staging, sweep_staging)',
                   expected='nothing removed from root\'s directory; the staging left is named in a warning that says '
                            'why')
def test_pitr_staging_removed_through_a_swapped_parent(racer_user, arena, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr
    user, outside, base = racer_user, arena['outside'], arena['base']
    for name in ('main.opsready-restore-0badc0de', 'main.opsready-old-0badf00d'):
        (outside / name).mkdir()
        (outside / name / 'keep').write_text('root\n')
    parent = _pg_tree(user, base, outside)
    before = snapshot(outside)
    left = pitr._remove_staging([str(parent / 'main.opsready-restore-0badc0de')], 'of this run, which failed')
    swept = pitr.sweep_staging(str(parent / 'main'))
    after = snapshot(outside)
    fault.observed('left: %s; swept: %s; files in root\'s directory touched: %d'
                   % ([o.get('warning', '')[:120] for o in left], swept, touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert not swept['removed_scratch']
    assert left and 'symlink' in left[0]['warning'] and 'main.opsready-restore-0badc0de' in left[0]['warning'], left
