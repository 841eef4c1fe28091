"""Fault matrix, backups: killed midway, full disk, server stopped, corrupted / truncated artifacts,
a missing piece of a binlog chain. Real ansible-playbook runs against real servers and files."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.faults.helpers import (artifacts, comm_argv, conn, databases, flip_byte, manifests,
                                  parent_of, pg_rows, play, small_disk, sqlite_db, sqlite_rows, truncate_half)


def _big_table(pg_db, rows: int = 700000) -> None:
    pg_db.sql("CREATE TABLE items AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v "
              "FROM generate_series(1, %d) g" % rows)


def _pg_backup_task(server, database: str, dest: Path, **extra) -> dict:
    args = dict(conn(server), engine='postgresql', database=database, dest=str(dest), compression='gzip',
                compression_level=9, connect_timeout=5)
    args.update(extra)
    return {'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': args}


def _streaming_pg_dump(dest: Path):
    """(pid of pg_dump, size of the .partial file) while a backup streams into dest, else (None, 0)."""
    partials = list(dest.glob('*.partial')) if dest.is_dir() else []
    if not partials:
        return None, 0
    for pid in filter(str.isdigit, os.listdir('/proc')):
        argv = comm_argv(int(pid))
        if argv and argv[0].endswith(b'pg_dump'):
            try:
                return int(pid), partials[0].stat().st_size
            except OSError:
                return None, 0
    return None, 0


def _resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def _paced_to(pid: int, dest: Path, target: float) -> int:
    """Lets pg_dump run in slices of a few milliseconds until the .partial holds ``target`` bytes, and leaves it
    stopped there: polling a free-running dump missed a 90 % mark on a fast idle machine (the dump had ended)."""
    size = 0
    while True:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return size
        time.sleep(0.02)   # the module drains the pipe and writes what pg_dump had sent
        try:
            size = next(dest.glob('*.partial')).stat().st_size
        except (StopIteration, OSError):
            return size
        if size >= target:
            return size
        _resume(pid)
        time.sleep(0.003)


@pytest.mark.parametrize('percent', [
    pytest.param(10, id='10pct'), pytest.param(50, id='50pct', marks=pytest.mark.fast), pytest.param(90, id='90pct')])
@pytest.mark.fault(fault='kill -9 of a backup at {percent} %', component='db_backup (PostgreSQL)',
                   expected='run fails; no manifest for the partial file; earlier backup still verifies; '
                            'next run removes the leftover')
def test_backup_killed(percent, pg_db, tmp_path, fault):
    server = pg_db.server
    fault.secret(server.password)
    _big_table(pg_db)
    dest = tmp_path / 'backups'
    extravars = {'pw': server.password}
    first = play(tmp_path, [_pg_backup_task(server, pg_db.name, dest)], extravars, fault=fault)
    assert first.rc == 0, first.stdout[-2000:]
    full_size = first.result('backup')['manifest']['size']
    before = manifests(dest)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault(
        'r', play(tmp_path, [_pg_backup_task(server, pg_db.name, dest)], extravars, fault=fault)))
    runner.start()
    killed = reached = None
    deadline = time.monotonic() + 300
    while runner.is_alive() and killed is None and time.monotonic() < deadline:
        pid, size = _streaming_pg_dump(dest)
        if pid:
            reached = _paced_to(pid, dest, full_size * percent / 100)
            module = parent_of(pid)
            os.kill(module, signal.SIGKILL)   # the module process: no chance to clean up
            killed = module
            _resume(pid)   # pg_dump then meets the closed pipe and exits
        time.sleep(0.01)
    runner.join(300)
    assert killed, 'never saw pg_dump streaming into a .partial file'
    second = outcome['r']
    res = second.result('backup')
    assert res['_event'] == 'runner_on_failed', res
    assert manifests(dest) == before, 'the killed run must not leave a manifest'
    leftovers = [p.name for p in dest.glob('*.partial')]
    third = play(tmp_path, [
        {'name': 'verify', 'opsready.operations.backup_verify': {'path': str(dest)}},
        _pg_backup_task(server, pg_db.name, dest),
        {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest)}},
    ], extravars, fault=fault)
    assert third.rc == 0, third.stdout[-2000:]
    assert third.result('verify')['_event'] == 'runner_on_ok'
    removed = [os.path.basename(p) for p in third.result('backup')['leftovers_removed']]
    assert set(leftovers) <= set(removed)
    info = third.result('info')
    assert info['leftovers'] == [] and len(info['artifacts']) == 2
    lost = len(set(before) - set(manifests(dest)))
    fault.lost(files=lost)
    assert lost == 0
    fault.observed('killed at %.0f %% of the stream (%d of %d bytes): failed, no manifest; leftover %s removed '
                   'by the next run; earlier backup verified' % (100.0 * reached / full_size, reached, full_size,
                                                                 'file' if leftovers else '(none)'))


@pytest.mark.fast
@pytest.mark.fault(fault='full disk during backup (1 MB tmpfs)', component='db_backup (SQLite)',
                   expected='clear "No space left" failure; no manifest, no partial file')
def test_full_disk_during_backup(tmp_path, fault):
    db = tmp_path / 'app.db'
    sqlite_db(db, 3000)
    with small_disk(1) as disk:
        result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(disk / 'b'), 'compression': 'none'}}], fault=fault)
        res = result.result('backup')
        left = sorted(p.name for p in (disk / 'b').iterdir() if not p.name.startswith('.')) \
            if (disk / 'b').exists() else []
    assert res['_event'] == 'runner_on_failed'
    assert 'No space left' in res['msg'], res['msg']
    assert left == [], left
    assert sqlite_rows(db) == 3000
    fault.lost(rows=0, files=0)
    fault.observed('failed: %s' % res['msg'][:110])


@pytest.mark.fault(fault='database stopped during backup', component='db_backup (PostgreSQL)',
                   expected='fails naming the server; no manifest, no partial file; next run after restart works')
def test_database_stopped_during_backup(postgres_factory, tmp_path, fault):
    server = postgres_factory()
    fault.secret(server.password)
    server.create_database('app')
    server.sql("CREATE TABLE items AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v "
               "FROM generate_series(1, 700000) g", database='app')
    dest = tmp_path / 'backups'
    extravars = {'pw': server.password}
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault(
        'r', play(tmp_path, [_pg_backup_task(server, 'app', dest)], extravars, fault=fault)))
    runner.start()
    stopped = False
    deadline = time.monotonic() + 300
    while runner.is_alive() and not stopped and time.monotonic() < deadline:
        pid, size = _streaming_pg_dump(dest)
        if pid and size > 100000:
            server.stop(mode='immediate')
            stopped = True
        time.sleep(0.01)
    runner.join(300)
    assert stopped, 'never saw the backup streaming'
    res = outcome['r'].result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert manifests(dest) == [] and not list(dest.glob('*.partial')), sorted(os.listdir(dest))
    server.start()
    again = play(tmp_path, [_pg_backup_task(server, 'app', dest, compression='zstd')], extravars, fault=fault)
    assert again.result('backup')['_event'] == 'runner_on_ok', again.stdout[-2000:]
    assert pg_rows(server, 'app') == 700000
    fault.lost(rows=0, files=0)
    fault.observed('failed: %s; next run ok' % res['msg'][:90])


# ------------------------------------------------------------------------------------------ corrupt artifacts
def _backup_of(kind: str, tmp_path: Path, request, fault):
    """(dest, restore task, check that the restore wrote nothing, extravars) for one artifact kind."""
    dest = tmp_path / 'backups'
    if kind in ('files', 'files+age'):
        src = tmp_path / 'etc'
        (src / 'conf.d').mkdir(parents=True)
        for i in range(50):
            (src / 'conf.d' / ('f%02d.conf' % i)).write_text('key%d = %s\n' % (i, os.urandom(400).hex()))
        args = {'paths': [str(src)], 'dest': str(dest), 'name': 'cfg'}
        restore = {'src': str(dest), 'dest': str(tmp_path / 'restored'), 'name': 'cfg'}
        extravars = {}
        if kind == 'files+age':
            from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
            identity = encryption.generate_identity()
            fault.secret(identity)
            args.update(encrypt=True, recipients=[encryption.parse_identities(identity)[0].recipient])
            restore['identity'] = '{{ key }}'
            extravars = {'key': identity}
        assert play(tmp_path, [{'name': 'b', 'opsready.operations.file_backup': args}], extravars,
                    fault=fault).rc == 0
        return dest, {'opsready.operations.file_restore': restore}, lambda: not (tmp_path / 'restored').exists(), \
            extravars
    if kind == 'sqlite':
        db = tmp_path / 'app.db'
        sqlite_db(db, 500)
        assert play(tmp_path, [{'name': 'b', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(dest)}}], fault=fault).rc == 0
        target = tmp_path / 'restored.db'
        return dest, {'opsready.operations.db_restore': {'engine': 'sqlite', 'src': str(dest), 'database': str(target),
                                                         'source_database': str(db)}}, \
            lambda: not target.exists(), {}
    fixture = 'pg_db' if kind == 'postgresql' else 'maria_db'
    db = request.getfixturevalue(fixture)
    server = db.server
    fault.secret(server.password)
    db.sql('CREATE TABLE items (id int PRIMARY KEY, v text)')
    db.sql("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g" if kind == 'postgresql'
           else "INSERT INTO items SELECT seq, md5(seq) FROM seq_1_to_20000")
    extravars = {'pw': server.password}
    assert play(tmp_path, [{'name': 'b', 'opsready.operations.db_backup': dict(
        conn(server), engine=kind, database=db.name, dest=str(dest))}], extravars, fault=fault).rc == 0
    target = db.name + '_r'
    return dest, {'opsready.operations.db_restore': dict(conn(server), engine=kind, src=str(dest), database=target,
                                                         source_database=db.name)}, \
        lambda: target not in databases(server), extravars


KINDS = [pytest.param('sqlite', marks=pytest.mark.fast), pytest.param('files', marks=pytest.mark.fast),
         pytest.param('files+age', marks=pytest.mark.fast), 'postgresql', 'mariadb']


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.fault(fault='one flipped byte in a {kind} artifact', component='backup_verify, restore',
                   expected='verify fails naming the artifact; restore refuses and writes nothing')
def test_flipped_byte(kind, tmp_path, request, fault):
    _corrupt_case(kind, tmp_path, request, fault, flip_byte, 'fails its checksum')


@pytest.mark.parametrize('kind', [pytest.param('sqlite', marks=pytest.mark.fast), 'files', 'postgresql'])
@pytest.mark.fault(fault='truncated {kind} artifact (half its size)', component='backup_verify, restore',
                   expected='verify fails naming the artifact; restore refuses and writes nothing')
def test_truncated(kind, tmp_path, request, fault):
    _corrupt_case(kind, tmp_path, request, fault, truncate_half, None)


def _corrupt_case(kind, tmp_path, request, fault, damage, phrase):
    dest, restore, untouched, extravars = _backup_of(kind, tmp_path, request, fault)
    artifact = artifacts(dest)[0]
    damage(artifact)
    result = play(tmp_path, [
        {'name': 'verify', 'ignore_errors': True, 'opsready.operations.backup_verify': {'path': str(dest)}},
        dict(restore, name='restore', ignore_errors=True),
    ], extravars, fault=fault)
    verify, res = result.result('verify'), result.result('restore')
    assert verify['_event'] == 'runner_on_failed' and artifact.name in verify['msg'], verify.get('msg')
    if phrase:
        assert phrase in verify['msg']
    assert res['_event'] == 'runner_on_failed', res
    assert untouched(), 'the restore wrote something from a damaged artifact'
    fault.lost(files=0)
    fault.observed('verify: %s / restore refused: %s' % (verify['msg'][:60], res['msg'][:60]))


@pytest.mark.fault(fault='missing binlog piece in a chain', component='db_restore (MariaDB PITR)',
                   expected='restore past the gap refuses naming the missing piece; nothing created')
def test_missing_binlog_piece(maria_db, tmp_path, fault):
    server = maria_db.server
    fault.secret(server.password)
    maria_db.sql('CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, label VARCHAR(20))')
    dest = tmp_path / 'backups'
    extravars = {'pw': server.password}
    backup = dict(conn(server), engine='mariadb', database=maria_db.name, dest=str(dest))
    assert play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup}], extravars,
                fault=fault).rc == 0
    for i in range(3):
        maria_db.sql("INSERT INTO events (label) VALUES ('e%d')" % i)
        server.sql('FLUSH BINARY LOGS', superuser=True)
    result = play(tmp_path, [{'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')}],
                  extravars, fault=fault)
    assert result.rc == 0, result.stdout[-2000:]
    logs = sorted(m['path'] for m in result.result('logs')['manifests'])
    assert len(logs) >= 3, logs
    gone = Path(logs[1])
    gone.unlink()
    Path(str(gone) + '.manifest.json').unlink()
    target = maria_db.name + '_r'
    result = play(tmp_path, [{'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
        conn(server), engine='mariadb', src=str(dest), database=target, source_database=maria_db.name)}],
        extravars, fault=fault)
    res = result.result('restore')
    if res['_event'] != 'runner_on_failed':
        restored = server.sql('SELECT count(*) FROM events', database=target)[0][0]
        server.drop_database(target)
        fault.lost(rows=3 - int(restored), of_rows=3)
        fault.observed('restore succeeded across the gap (%s removed): %s of 3 rows, no error' % (gone.name, restored))
        pytest.fail('db_restore restored across a missing binlog piece (%s) without an error: %s of 3 rows'
                    % (gone.name, restored))
    assert target not in databases(server)
    fault.lost(rows=0)
    fault.observed('refused: %s' % res['msg'][:110])
