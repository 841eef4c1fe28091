"""Fidelity, SQLite, round 6: what the restore reads of its target, and what the backup proves of its source,
through the backup and restore jobs db_backup and db_restore call (in process, as test_sqlite_round5 does).

- the restore's look at the target (exists? empty? held open?) goes through the directory descriptor the rest of
  the restore uses: a symlink planted in place of a parent (in a directory another account owns) or of the target
  itself is refused before anything of root's behind it is opened (it used to be read by path: SQLite opened root's
  file behind the link, counted its tables into the message, and made its -shm beside it);
- a database whose index no longer matches its table (quick_check does not read index content) is refused at
  backup time with verify on or off (it used to be stored as a good backup);
- the class: every legal file name for the target and its backups, WAL leftovers, a read-only target directory,
  check mode foreseeing the real run's refusals.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.client import sqlite_uri  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402

NOBODY = 65534


def backup(db: Path, dest: Path, verify: bool = True):
    return run_backup(get_engine('sqlite', ConnectionParams()),
                      BackupOptions(kind='full', dest=str(dest), database=str(db)), verify=verify)


def restore(dest: Path, db: Path, source: Path, replace: bool = False, check_mode: bool = False):
    return run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(db), source_database=str(source),
                                      replace=replace, check_mode=check_mode), ConnectionParams())


def make_db(db: Path, rows: int = 50, journal: str = 'delete', tables: int = 1) -> None:
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute('PRAGMA journal_mode = %s' % journal)
    for n in range(tables):
        conn.execute('CREATE TABLE t%d (id INTEGER PRIMARY KEY, v TEXT)' % n)
        conn.executemany('INSERT INTO t%d (v) VALUES (?)' % n, [('row %d' % i,) for i in range(rows)])
    conn.close()


def count(db: Path, table: str = 't0') -> int:
    conn = sqlite3.connect(sqlite_uri(str(db), 'ro'), uri=True)
    try:
        return conn.execute('SELECT count(*) FROM %s' % table).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def artifact(tmp_path):
    """A backup of a 50-row database (source tmp_path/src/app.db), in tmp_path/backups."""
    (tmp_path / 'src').mkdir()
    source = tmp_path / 'src' / 'app.db'
    make_db(source)
    backup(source, tmp_path / 'backups')
    return tmp_path / 'backups', source


@pytest.fixture
def roots_wal_db(tmp_path):
    """A directory of root's (0700) holding a WAL database of 3 tables, closed (no -wal, no -shm left)."""
    secret = tmp_path / 'secret'
    secret.mkdir(mode=0o700)
    make_db(secret / 'app.db', rows=5, journal='wal', tables=3)
    assert sorted(os.listdir(secret)) == ['app.db']
    return secret


@pytest.mark.parametrize('check_mode', [False, True])
def test_a_parent_swapped_for_a_link_is_refused_before_roots_file_is_read(tmp_path, artifact, roots_wal_db, check_mode):
    """Failed first: the target was first looked at by path, through the link an account planted in its own
    directory: SQLite opened root's database behind it ("exists and is not empty (3 tables)": its table count in
    the message) and made its -shm in root's directory. Now the directory is walked as the rest of the restore walks
    it, and the link refused before anything behind it is opened, in check mode too."""
    dest, source = artifact
    app = tmp_path / 'app'
    app.mkdir()
    os.chown(str(app), NOBODY, NOBODY)
    (app / 'data').symlink_to(roots_wal_db)
    os.lchown(str(app / 'data'), NOBODY, NOBODY)
    with pytest.raises(OpsReadyError) as raised:
        restore(dest, app / 'data' / 'app.db', source, check_mode=check_mode)
    message = str(raised.value)
    assert 'symlink' in message and '3 tables' not in message, message
    assert sorted(os.listdir(roots_wal_db)) == ['app.db']
    assert count(roots_wal_db / 'app.db') == 5


@pytest.mark.parametrize('check_mode', [False, True])
def test_a_target_that_is_a_link_is_refused_and_left_as_it_is(tmp_path, artifact, roots_wal_db, check_mode):
    """Failed first: a target planted as a link to root's database was opened through the link (its 3 tables named
    in the message, its -shm made beside it); with replace=true the link was swapped for the restored file. Now a
    link is refused as what it is (restore to the file it points at, named as such), link and file untouched."""
    dest, source = artifact
    app = tmp_path / 'app'
    app.mkdir()
    os.chown(str(app), NOBODY, NOBODY)
    target = app / 'app.db'
    target.symlink_to(roots_wal_db / 'app.db')
    for replace in (False, True):
        with pytest.raises(OpsReadyError) as raised:
            restore(dest, target, source, replace=replace, check_mode=check_mode)
        message = str(raised.value)
        assert 'symlink' in message and '3 tables' not in message, message
    assert target.is_symlink() and os.readlink(str(target)) == str(roots_wal_db / 'app.db')
    assert sorted(os.listdir(roots_wal_db)) == ['app.db']
    assert sorted(os.listdir(app)) == ['app.db']


@pytest.mark.parametrize('kind', ['fifo', 'directory'])
def test_a_target_that_is_not_a_regular_file_is_refused(tmp_path, artifact, kind):
    """Regular-file guard for what the descriptor-based look at the target refuses: a FIFO (SQLite would block on
    it) or a directory at the target's name, named as what it is, in check mode and in the run."""
    dest, source = artifact
    target = tmp_path / 'target'
    if kind == 'fifo':
        os.mkfifo(str(target))
    else:
        target.mkdir()
    for check_mode in (True, False):
        with pytest.raises(OpsReadyError) as raised:
            restore(dest, target, source, replace=True, check_mode=check_mode)
        assert 'not a regular file' in str(raised.value), str(raised.value)
    assert target.exists()


def corrupt_index(db: Path, rows: int = 1000) -> None:
    """A table and its index whose entries no longer match it: the index is re-declared (writable_schema) on
    another column than the one its entries were built from. quick_check answers ok (it reads no index content);
    integrity_check finds every row missing from the index."""
    conn = sqlite3.connect(str(db))
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT)')
    conn.execute('CREATE INDEX ta ON t (a)')
    conn.executemany('INSERT INTO t (a, b) VALUES (?, ?)', [('a%d' % i, 'b%d' % (rows - i)) for i in range(rows)])
    conn.commit()
    conn.execute('PRAGMA writable_schema = ON')
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX ta ON t (b)' WHERE name = 'ta'")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(str(db))
    assert conn.execute('PRAGMA quick_check').fetchall() == [('ok',)]
    assert conn.execute('PRAGMA integrity_check').fetchone()[0] != 'ok'
    conn.close()


@pytest.mark.parametrize('verify', [False, True])
def test_a_database_whose_index_does_not_match_its_table_is_refused_at_backup(tmp_path, verify):
    """Failed first: quick_check (all the backup asked) does not read index content, so the copy was stored as a good
    backup (silently with verify=false or an encrypted artifact; with verify=true it failed verification afterwards,
    blaming the artifact). integrity_check on the snapshot copy refuses it before an artifact exists, naming the
    index."""
    db = tmp_path / 'app.db'
    corrupt_index(db)
    dest = tmp_path / 'backups'
    with pytest.raises(OpsReadyError) as raised:
        backup(db, dest, verify=verify)
    message = str(raised.value)
    assert 'integrity_check' in message and 'index ta' in message and 'no artifact' in message, message
    assert not dest.exists() or not [p for p in dest.rglob('*') if p.is_file() and not p.name.endswith('.lock')]


def test_an_artifact_holding_a_corrupt_index_is_not_restored(tmp_path, monkeypatch):
    """Guard (passed on the old code): an artifact stored by an older version from such a database (the backup's
    check switched off here to make one) is refused by the restore's integrity_check; the target is untouched."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import backup as sqlite_backup
    db = tmp_path / 'app.db'
    corrupt_index(db)
    dest = tmp_path / 'backups'
    monkeypatch.setattr(sqlite_backup, 'refuse_corrupt', lambda *a, **k: None)
    backup(db, dest, verify=False)
    monkeypatch.undo()
    target = tmp_path / 'target.db'
    make_db(target, rows=7)
    with pytest.raises(OpsReadyError) as raised:
        restore(dest, target, db, replace=True)
    assert 'integrity_check' in str(raised.value)
    assert count(target) == 7


NAMES = ['with space.db', 'new\nline.db', '-leading-dash.db', 'ünï€ødé.db', "q'uo\"te#?%.db", 'x' * 200 + '.db']


@pytest.mark.parametrize('name', NAMES, ids=['space', 'newline', 'dash', 'unicode', 'quotes', 'long'])
def test_every_legal_name_backs_up_and_restores(tmp_path, name):
    """Guard for the class: a source and a target of any legal name (a 204-byte one too, whose staging and lock
    names are longer still) back up, restore over an existing file (replace) and into a fresh one, exactly."""
    (tmp_path / 'src').mkdir()
    source = tmp_path / 'src' / name
    make_db(source, rows=33)
    dest = tmp_path / 'backups'
    backup(source, dest)
    (tmp_path / 'dst').mkdir()
    target = tmp_path / 'dst' / name
    make_db(target, rows=3)
    restore(dest, target, source, replace=True)
    assert count(target) == 33
    fresh = tmp_path / 'dst' / ('n-' + name[:200])
    restore(dest, fresh, source)
    assert count(fresh) == 33
    assert sorted(os.listdir(tmp_path / 'dst')) == sorted([name, 'n-' + name[:200]])


def test_wal_leftovers_of_the_old_file_are_not_replayed_over_the_restore(tmp_path, artifact):
    """Guard: the old file's -wal (commits not yet checkpointed, left by an application killed in WAL mode) goes
    aside with it; the restored file is exactly the backup, no -wal/-shm of the old one beside it."""
    dest, source = artifact
    target = tmp_path / 'target.db'
    make_db(target, rows=9, journal='wal')
    conn = sqlite3.connect(str(target), isolation_level=None)
    conn.execute('PRAGMA wal_autocheckpoint = 0')
    conn.execute("INSERT INTO t0 (v) VALUES ('only in the wal')")
    # leave the -wal as a killed application does: copy it aside before the clean close checkpoints it
    wal = (tmp_path / 'target.db-wal').read_bytes()
    shm = (tmp_path / 'target.db-shm').read_bytes()
    conn.close()
    (tmp_path / 'target.db-wal').write_bytes(wal)
    (tmp_path / 'target.db-shm').write_bytes(shm)
    restore(dest, target, source, replace=True)
    assert count(target) == 50
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('target.db')) == ['target.db']


def test_a_read_only_target_directory_is_foreseen_by_check_mode(tmp_path, artifact):
    """A target directory root may not write (read-only bind mount, here an immutable directory stands in as the
    closest thing a test can make): the real run refuses with nothing changed, and check mode says so too instead
    of promising a restore it cannot do."""
    dest, source = artifact
    ro = tmp_path / 'ro'
    ro.mkdir()
    make_db(ro / 'app.db', rows=4)
    if subprocess.run(['chattr', '+i', str(ro)], check=False, capture_output=True).returncode != 0:
        pytest.skip('chattr +i is not possible here')
    try:
        with pytest.raises(OpsReadyError) as real:
            restore(dest, ro / 'app.db', source, replace=True)
        with pytest.raises(OpsReadyError) as foreseen:
            restore(dest, ro / 'app.db', source, replace=True, check_mode=True)
        assert 'not writable' in str(real.value) and 'not writable' in str(foreseen.value), (real.value, foreseen.value)
    finally:
        subprocess.run(['chattr', '-i', str(ro)], check=False)
    assert count(ro / 'app.db') == 4
    assert sorted(os.listdir(ro)) == ['app.db']


def test_above_the_integrity_check_limit_the_backup_warns_that_indexes_were_not_checked(tmp_path, monkeypatch):
    """The cost bound of the decision above (written with it): above the size where integrity_check runs on every
    backup (lowered here to 4 KiB), the corrupt-index database is stored with a warning the task shows, and the
    manifest says which check ran; verification (integrity_check on the artifact) still refuses it."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import backup as sqlite_backup
    db = tmp_path / 'app.db'
    corrupt_index(db)
    monkeypatch.setattr(sqlite_backup, 'INTEGRITY_CHECK_LIMIT_BYTES', 4096)
    result = backup(db, tmp_path / 'backups', verify=False)
    warnings = ' '.join(result.get('warnings', []))
    assert 'index content not checked' in warnings and 'backup_verify' in warnings, result
    manifest = next((tmp_path / 'backups').rglob('*.manifest.json')).read_text()
    assert '"source_check": "PRAGMA quick_check"' in manifest
    with pytest.raises(OpsReadyError):
        backup(db, tmp_path / 'backups2', verify=True)


@pytest.mark.parametrize('length', [235, 245])
def test_a_target_name_near_the_file_name_limit_is_restored(tmp_path, artifact, length):
    """Failed first: a legal target name of 222 to 247 bytes (SQLite itself needs room for "-journal") made the
    staging name (<name>.opsready-restore-<id>) or the lock name longer than 255 bytes: the restore failed after
    the whole copy and check with a bare "[Errno 36] File name too long", check mode having promised it. Names too
    long for the restore's own files are shortened (a prefix and a digest of the name), the target keeps its name,
    and a killed run's staging file of that shape is still swept."""
    dest, source = artifact
    (tmp_path / 'dst').mkdir()
    target = tmp_path / 'dst' / ('d' * (length - 3) + '.db')
    restore(dest, target, source, check_mode=True)
    restore(dest, target, source)
    assert count(target) == 50
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.restore import stem
    killed = tmp_path / 'dst' / ('%s.opsready-restore-0123abcd' % stem(target.name))
    killed.write_bytes(b'a killed run\'s staging copy')
    restore(dest, target, source, replace=True)
    assert count(target) == 50
    assert os.listdir(tmp_path / 'dst') == [target.name]


def drop(db: Path, check_mode: bool):
    return run_restore(RestoreRequest(engine='sqlite', src='', database=str(db), state='absent',
                                      check_mode=check_mode), ConnectionParams())


def test_state_absent_check_mode_foresees_the_link_refusal(tmp_path, roots_wal_db):
    """Failed first: state=absent in check mode looked by path, through a parent link an account planted: it
    promised to remove root's database behind the link (changed, its path in target.removed) while the real run
    refuses the link. Both now refuse it; root's file stays."""
    app = tmp_path / 'app'
    app.mkdir()
    os.chown(str(app), NOBODY, NOBODY)
    (app / 'data').symlink_to(roots_wal_db)
    os.lchown(str(app / 'data'), NOBODY, NOBODY)
    for check_mode in (True, False):
        with pytest.raises(OpsReadyError) as raised:
            drop(app / 'data' / 'app.db', check_mode)
        assert 'symlink' in str(raised.value), (check_mode, raised.value)
    assert sorted(os.listdir(roots_wal_db)) == ['app.db']


def test_state_absent_removes_the_file_and_its_leftovers_and_check_mode_says_so(tmp_path):
    """Guard: state=absent names the file and its sidecars in check mode, removes exactly those, and a missing
    directory is nothing to remove."""
    db = tmp_path / 'scratch.db'
    make_db(db, journal='wal')
    (tmp_path / 'scratch.db-wal').write_bytes(b'')
    (tmp_path / 'keep.db').write_bytes(b'')
    foreseen = drop(db, True)
    assert foreseen['changed'] and sorted(foreseen['target']['removed']) == [str(db), str(db) + '-wal']
    done = drop(db, False)
    assert done['changed'] and sorted(done['target']['removed']) == sorted(foreseen['target']['removed'])
    assert sorted(os.listdir(tmp_path)) == ['keep.db']
    assert drop(tmp_path / 'nowhere' / 'x.db', True)['changed'] is False
    assert drop(tmp_path / 'nowhere' / 'x.db', False)['changed'] is False


def test_an_unusable_tmpdir_is_refused_by_check_mode_as_by_the_run(tmp_path, artifact):
    """Failed first: a tmpdir that does not exist, or that root may not write (immutable), was promised by check
    mode (changed); the run then failed with a bare OSError ("[Errno 2] No such file or directory: .../opsready-
    scratch-sqlite-restore-...") after nothing but that. Both now refuse it naming tmpdir; the target is untouched."""
    dest, source = artifact
    target = tmp_path / 'target.db'
    ro = tmp_path / 'ro'
    ro.mkdir()
    cases = [(tmp_path / 'nope', 'does not exist')]
    if subprocess.run(['chattr', '+i', str(ro)], check=False, capture_output=True).returncode == 0:
        cases.append((ro, 'not writable'))
    try:
        for tmpdir, said in cases:
            for check_mode in (True, False):
                with pytest.raises(OpsReadyError) as raised:
                    run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(target),
                                               source_database=str(source), tmpdir=str(tmpdir),
                                               check_mode=check_mode), ConnectionParams())
                message = str(raised.value)
                assert 'tmpdir' in message and str(tmpdir) in message and said in message, (check_mode, message)
    finally:
        subprocess.run(['chattr', '-i', str(ro)], check=False)
    assert not target.exists() and os.listdir(ro) == []
