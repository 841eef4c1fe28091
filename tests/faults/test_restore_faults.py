"""Fault matrix, restores: full disk, a live database without replace, stop_at outside the window, a tar
member escaping the target root, the wrong decryption key."""

from __future__ import annotations

import time

import pytest

from tests.harness.archives import write_escaping_file_backup
from tests.faults.helpers import conn, databases, pg_rows, play, small_disk, sqlite_db, sqlite_rows


@pytest.mark.fast
@pytest.mark.fault(fault='full disk during restore (1 MB tmpfs)', component='db_restore (SQLite)',
                   expected='fails with "No space left"; the existing target database keeps every row')
def test_full_disk_during_restore(tmp_path, fault):
    source = tmp_path / 'app.db'
    sqlite_db(source, 3000)
    dest = tmp_path / 'backups'
    assert play(tmp_path, [{'name': 'b', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(source), 'dest': str(dest)}}], fault=fault).rc == 0
    with small_disk(1) as disk:
        target = disk / 'app.db'
        sqlite_db(target, 100)
        before = sorted(p.name for p in disk.iterdir())
        result = play(tmp_path, [{'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': {
            'engine': 'sqlite', 'src': str(dest), 'database': str(target), 'source_database': str(source),
            'replace': True, 'tmpdir': str(disk)}}], fault=fault)
        res = result.result('restore')
        rows = sqlite_rows(target)
        after = sorted(p.name for p in disk.iterdir())
    assert res['_event'] == 'runner_on_failed', res
    assert 'space' in res['msg'].lower(), res['msg']
    assert rows == 100 and after == before, (rows, after)
    fault.lost(rows=100 - rows)
    fault.observed('failed: %s; target intact (100 rows)' % res['msg'][:90])


@pytest.mark.fast
@pytest.mark.fault(fault='restore over a live database without replace', component='db_restore (PostgreSQL)',
                   expected='refused before touching it; every row still there')
def test_restore_over_live_database_without_replace(pg_db, tmp_path, fault):
    server = pg_db.server
    fault.secret(server.password)
    pg_db.sql("CREATE TABLE items (id int PRIMARY KEY, v text); "
              "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
    dest = tmp_path / 'backups'
    extravars = {'pw': server.password}
    assert play(tmp_path, [{'name': 'b', 'opsready.operations.db_backup': dict(
        conn(server), engine='postgresql', database=pg_db.name, dest=str(dest))}], extravars, fault=fault).rc == 0
    pg_db.sql('INSERT INTO items SELECT g, md5(g::text) FROM generate_series(5001, 6000) g')  # newer than the backup
    result = play(tmp_path, [{'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
        conn(server), engine='postgresql', src=str(dest), database=pg_db.name)}], extravars, fault=fault)
    res = result.result('restore')
    rows = pg_rows(server, pg_db.name)
    assert res['_event'] == 'runner_on_failed' and 'replace' in res['msg'], res.get('msg')
    assert rows == 6000
    fault.lost(rows=6000 - rows)
    fault.observed('refused: %s' % res['msg'][:110])


@pytest.mark.fault(fault='stop_at outside the recoverable window', component='db_restore (MariaDB PITR)',
                   expected='refused naming the window; no database created')
def test_stop_at_outside_window(maria_db, tmp_path, fault):
    server = maria_db.server
    fault.secret(server.password)
    maria_db.sql("CREATE TABLE events (id INT PRIMARY KEY); INSERT INTO events VALUES (1)")
    dest = tmp_path / 'backups'
    extravars = {'pw': server.password}
    backup = dict(conn(server), engine='mariadb', database=maria_db.name, dest=str(dest))
    assert play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup},
                           {'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')}],
                extravars, fault=fault).rc == 0
    restore = dict(conn(server), engine='mariadb', src=str(dest), source_database=maria_db.name)
    result = play(tmp_path, [
        {'name': 'late', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, database=maria_db.name + '_late', stop_at='2099-01-01T00:00:00Z')},
        {'name': 'early', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, database=maria_db.name + '_early', stop_at='2001-01-01T00:00:00Z')},
    ], extravars, fault=fault)
    late, early = result.result('late'), result.result('early')
    assert late['_event'] == 'runner_on_failed' and 'outside the recoverable window' in late['msg'], late.get('msg')
    assert early['_event'] == 'runner_on_failed', early
    names = databases(server)
    assert maria_db.name + '_late' not in names and maria_db.name + '_early' not in names
    fault.lost(rows=0)
    fault.observed('both refused: %s' % late['msg'][:100])


@pytest.mark.fast
@pytest.mark.fault(fault='tar member escaping the target root (../../)', component='file_restore',
                   expected='refused before extracting; nothing written inside or outside the target')
def test_tar_member_escaping_root(tmp_path, fault):
    dest = tmp_path / 'backups'
    write_escaping_file_backup(dest)
    target = tmp_path / 'deep' / 'restored'
    result = play(tmp_path, [{'name': 'restore', 'ignore_errors': True, 'opsready.operations.file_restore': {
        'src': str(dest), 'dest': str(target), 'name': 'cfg'}}], fault=fault)
    res = result.result('restore')
    assert res['_event'] == 'runner_on_failed' and 'escape the target root' in res['msg'], res.get('msg')
    escaped = [p for p in (tmp_path / 'evil.conf', tmp_path.parent / 'evil.conf') if p.exists()]
    assert not escaped and not target.exists()
    fault.lost(files=0)
    fault.observed('refused: %s' % res['msg'][:110])


@pytest.mark.fast
@pytest.mark.fault(fault='wrong decryption key', component='file_restore (age)',
                   expected='fails saying the key does not match; nothing written; neither key in any output')
def test_wrong_decryption_key(tmp_path, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    right, wrong = encryption.generate_identity(), encryption.generate_identity()
    fault.secret(right)
    fault.secret(wrong)
    src = tmp_path / 'etc'
    src.mkdir()
    (src / 'app.conf').write_text('password = not-a-real-one\n')
    dest = tmp_path / 'backups'
    recipient = encryption.parse_identities(right)[0].recipient
    assert play(tmp_path, [{'name': 'b', 'opsready.operations.file_backup': {
        'paths': [str(src)], 'dest': str(dest), 'name': 'cfg', 'encrypt': True, 'recipients': [recipient]}}],
        fault=fault).rc == 0
    target = tmp_path / 'restored'
    started = time.monotonic()
    result = play(tmp_path, [{'name': 'restore', 'ignore_errors': True, 'opsready.operations.file_restore': {
        'src': str(dest), 'dest': str(target), 'name': 'cfg', 'identity': '{{ key }}'}}], {'key': wrong},
        fault=fault)
    res = result.result('restore')
    assert res['_event'] == 'runner_on_failed', res
    assert not target.exists()
    fault.lost(files=0)
    fault.observed('failed in %.1f s: %s' % (time.monotonic() - started, res['msg'][:100]))
