"""db_restore, SQLite: real files backed up with db_backup and restored in place or elsewhere."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tests.harness.playbook import play


def rows(path) -> list:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute('SELECT id, body FROM notes ORDER BY id').fetchall()
    finally:
        conn.close()


def make_db(path: Path, count: int = 200) -> list:
    conn = sqlite3.connect(str(path))
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
    conn.executemany('INSERT INTO notes VALUES (?, ?)', [(i, 'note %d' % i * 3) for i in range(count)])
    conn.commit()
    conn.close()
    return rows(path)


def test_sqlite_restore_refuse_replace_corrupt(tmp_path):
    db = tmp_path / 'app.db'
    expected = make_db(db)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(dest)}}])
    assert result.rc == 0, result.stdout[-3000:]
    manifest = result.result('backup')['manifest']

    # damage the live file (and leave a -wal behind, as a running application would)
    conn = sqlite3.connect(str(db))
    conn.execute('PRAGMA wal_autocheckpoint=0')
    conn.execute('DELETE FROM notes WHERE id > 5')
    conn.commit()
    # the application stops (a target another process has open is refused), its -wal left behind as after a crash
    wal = Path(str(db) + '-wal')
    left_wal = wal.read_bytes()
    conn.close()
    wal.write_bytes(left_wal)
    os.chmod(db, 0o640)

    restore = {'engine': 'sqlite', 'src': str(dest), 'database': str(db)}
    other = tmp_path / 'elsewhere' / 'copy.db'
    other.parent.mkdir()
    result = play(tmp_path, [
        {'name': 'refused', 'opsready.operations.db_restore': restore, 'ignore_errors': True},
        {'name': 'elsewhere', 'opsready.operations.db_restore': dict(
            restore, database=str(other), source_database=str(db))},
        {'name': 'check', 'opsready.operations.db_restore': dict(restore, replace=True), 'check_mode': True},
    ])
    assert result.rc == 0, result.stdout[-3000:]
    refused = result.result('refused')
    assert refused['_event'] == 'runner_on_failed' and 'exists and is not empty' in refused['msg']
    assert len(rows(db)) == 6
    assert rows(other) == expected
    assert result.result('elsewhere')['integrity_check'] == 'ok'
    assert result.result('check')['changed'] is True and len(rows(db)) == 6
    wal.write_bytes(left_wal)     # reading the rows checkpointed it away: back, for the replace to deal with

    result = play(tmp_path, [{'name': 'replace', 'opsready.operations.db_restore': dict(restore, replace=True)}])
    assert result.rc == 0, result.stdout[-3000:]
    res = result.result('replace')
    assert res['replaced'] is True and res['chain_ids'] == [manifest['id']]
    assert rows(db) == expected
    assert not os.path.exists(str(db) + '-wal'), 'the old -wal would be replayed over the restored file'
    assert oct(os.stat(db).st_mode & 0o777) == oct(0o640)
    assert sorted(p.name for p in tmp_path.iterdir() if 'opsready' in p.name) == []

    # a corrupt backup stops before the target is touched
    artifact = Path(manifest['path'])
    data = bytearray(artifact.read_bytes())
    data[-10] ^= 0x55
    artifact.write_bytes(bytes(data))
    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO notes VALUES (9999, 'newer')")
    conn.commit()
    conn.close()
    result = play(tmp_path, [{'name': 'corrupt', 'opsready.operations.db_restore': dict(restore, replace=True)}])
    assert result.rc != 0
    assert manifest['id'] in result.result('corrupt')['msg']
    assert len(rows(db)) == len(expected) + 1

    # state=absent removes a scratch copy
    result = play(tmp_path, [{'name': 'drop', 'opsready.operations.db_restore': dict(
        restore, database=str(other), state='absent')}])
    assert result.rc == 0 and result.result('drop')['changed'] is True and not other.exists()


def test_sqlite_restore_while_another_holds_the_target_fails_fast(tmp_path):
    """A restore (or state=absent) into a file another restore is swapping: refused at once, the file and its
    sidecars untouched, no staging file; free again, it runs and leaves no lock file behind. The other run is stood
    in for by its lock, held in this process (ansible-playbook runs in another)."""
    import sys
    from tests.harness.playbook import REPO
    sys.path.insert(0, str(REPO / 'build'))
    from ansible_collections.opsready.operations.plugins.module_utils.common import locks

    db = tmp_path / 'app.db'
    expected = make_db(db)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(dest)}}])
    assert result.rc == 0, result.stdout[-3000:]
    conn = sqlite3.connect(str(db))
    conn.execute('DELETE FROM notes WHERE id > 5')
    conn.commit()
    conn.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    restore = {'engine': 'sqlite', 'src': str(dest), 'database': str(db), 'replace': True}
    with locks.exclusive(str(tmp_path / '.app.db.opsready-lock'), 'held by the test', remove=True):
        busy = play(tmp_path, [
            {'name': 'busy', 'opsready.operations.db_restore': restore, 'ignore_errors': True},
            {'name': 'drop', 'opsready.operations.db_restore': dict(restore, state='absent'), 'ignore_errors': True}])
        for name in ('busy', 'drop'):
            out = busy.result(name)
            assert out['_event'] == 'runner_on_failed' and 'Another db_restore' in out['msg'], out.get('msg')
        assert len(rows(db)) == 6
        assert [p for p in sorted(p.name for p in tmp_path.iterdir()) if p not in before and
                not p.startswith('play-')] == ['.app.db.opsready-lock']
    done = play(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': restore}])
    assert done.result('restore')['_event'] == 'runner_on_ok', done.result('restore').get('msg')
    assert rows(db) == expected
    assert not [p.name for p in tmp_path.iterdir() if 'opsready' in p.name]


def test_sqlite_restore_of_a_lost_file_gets_the_sources_mode_and_owner(tmp_path):
    """The disaster case: the database file is gone. The restored file must be the application's again (the
    mode and owner it had when it was backed up), not root's 0600 that the application cannot open."""
    db = tmp_path / 'app.db'
    expected = make_db(db)
    os.chmod(db, 0o640)
    owner = (54321, 54322) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(db, *owner)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(dest)}}])
    assert result.rc == 0, result.stdout[-3000:]
    for leftover in tmp_path.glob('app.db*'):
        leftover.unlink()
    result = play(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': {
        'engine': 'sqlite', 'src': str(dest), 'database': str(db)}}])
    assert result.rc == 0, result.stdout[-3000:]
    assert rows(db) == expected
    st = os.stat(db)
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == (oct(0o640), *owner)
