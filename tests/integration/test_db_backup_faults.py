"""Faults: a backup killed mid-stream, a full disk, a flipped byte, a stopped server, and the password
never visible in any process's argv while a backup runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.harness.playbook import conn, play


def task_seconds(result, task: str) -> float:
    """How long the module task itself ran (ansible-runner's per-task duration: play start-up excluded)."""
    for event in reversed(result.events):
        data = event.get('event_data', {})
        if data.get('task') == task and event.get('event') in ('runner_on_ok', 'runner_on_failed'):
            return float(data['duration'])
    raise AssertionError('task %r has no timed result; output:\n%s' % (task, result.stdout[-3000:]))


# connect_timeout given to db_backup in the connection-fault tests, and what may come on top of it: the
# module's own start (AnsiballZ, client tool start) for the task, ansible-playbook start-up for the play.
CONNECT_TIMEOUT = 3
TASK_MARGIN = 4
PLAY_MARGIN = 30


def procs():
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    yield int(pid), handle.read().split(b'\0')
            except OSError:
                continue


def test_killed_mid_stream_leaves_no_manifest_and_next_run_cleans_up(pg_db, tmp_path):
    server = pg_db.server
    pg_db.sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v "
              "FROM generate_series(1, 1200000) g")
    dest = tmp_path / 'backups'
    task = {'name': 'backup', 'opsready.operations.db_backup': dict(
        conn(server, 'pw'), engine='postgresql', database=pg_db.name, dest=str(dest), compression='gzip',
        compression_level=9)}
    first = play(tmp_path, [task], {'pw': server.password})
    assert first.rc == 0, first.stdout[-3000:]
    before = sorted(os.listdir(dest))

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault('r', play(tmp_path, [task], {'pw': server.password})))
    runner.start()
    seen_argv = 0
    leaked = []
    killed = None
    deadline = time.time() + 120
    password = server.password.encode()
    while time.time() < deadline and killed is None:
        for pid, argv in procs():
            seen_argv += 1
            if any(password in a for a in argv):
                leaked.append(argv[0])
            if any(b'pg_dump' in a for a in argv[:1]) and any((dest / n).name.endswith('.partial')
                                                              for n in os.listdir(dest)):
                parent = int(open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[1])
                time.sleep(0.5)  # well inside the stream
                os.kill(parent, signal.SIGKILL)  # the module process itself: no chance to clean up
                killed = parent
                break
        time.sleep(0.05)
    runner.join(300)
    assert killed, 'never saw pg_dump streaming into a .partial file'
    assert not leaked, 'password seen in argv of %s' % leaked
    assert outcome['r'].rc != 0
    after = sorted(os.listdir(dest))
    partials = [n for n in after if n.endswith('.partial')]
    assert partials, 'the kill should leave the partial file of the interrupted run'
    assert [n for n in after if n.endswith('.manifest.json')] == [n for n in before if n.endswith('.manifest.json')]
    third = play(tmp_path, [task, {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest)}}],
                 {'pw': server.password})
    assert third.rc == 0, third.stdout[-3000:]
    removed = [os.path.basename(p) for p in third.result('backup')['leftovers_removed']]
    assert set(partials) <= set(removed)
    assert not [n for n in os.listdir(dest) if n.endswith('.partial')]
    info = third.result('info')
    assert info['leftovers'] == [] and len(info['artifacts']) == 2


def test_dump_tool_killed_mid_stream_fails_the_task_and_leaves_nothing(pg_db, tmp_path):
    """kill -9 of pg_dump itself (not the module): the module sees the stream end early, names the tool and the
    signal, removes its partial file and writes no manifest; the catalog is as before."""
    server = pg_db.server
    pg_db.sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v "
              "FROM generate_series(1, 1200000) g")
    dest = tmp_path / 'backups'
    task = {'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
        conn(server, 'pw'), engine='postgresql', database=pg_db.name, dest=str(dest), compression='gzip',
        compression_level=9)}
    first = play(tmp_path, [task], {'pw': server.password})
    assert first.result('backup')['_event'] == 'runner_on_ok', first.stdout[-3000:]
    before = sorted(os.listdir(dest))

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault('r', play(tmp_path, [task], {'pw': server.password})))
    runner.start()
    killed = None
    deadline = time.time() + 120
    while time.time() < deadline and killed is None:
        for pid, argv in procs():
            if any(b'pg_dump' in a for a in argv[:1]) and any(n.endswith('.partial') for n in os.listdir(dest)):
                time.sleep(0.5)  # well inside the stream
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.05)
    runner.join(300)
    assert killed, 'never saw pg_dump streaming into a .partial file'
    res = outcome['r'].result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'pg_dump' in res['msg'] and ('signal 9' in res['msg'] or 'SIGKILL' in res['msg']), res['msg']
    assert server.password not in json.dumps(res)
    assert sorted(os.listdir(dest)) == before  # no .partial, no manifest, nothing else


@pytest.fixture
def small_disk():
    mount = tempfile.mkdtemp(prefix='opsready-full-')
    rc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount], capture_output=True, check=False)
    if rc.returncode != 0:
        os.rmdir(mount)
        pytest.skip('cannot mount a small tmpfs here (needs root/CAP_SYS_ADMIN): %s' % rc.stderr.decode().strip())
    yield Path(mount)
    subprocess.run(['umount', mount], check=False)
    os.rmdir(mount)


def _sqlite_db(path: Path, megabytes: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)')
    conn.executemany('INSERT INTO blobs (b) VALUES (?)', [(os.urandom(65536),) for _row in range(megabytes * 16)])
    conn.commit()
    conn.close()


def test_full_disk_fails_clearly_and_writes_no_manifest(small_disk, tmp_path):
    db = tmp_path / 'app.db'
    _sqlite_db(db, 3)
    result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(small_disk / 'b'), 'compression': 'zstd'}}])
    res = result.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'No space left on the device' in res['msg'] and 'no manifest written' in res['msg']
    assert os.listdir(small_disk / 'b') == [n for n in os.listdir(small_disk / 'b') if n.startswith('.')]


def test_flipped_byte_is_caught_and_never_chosen(tmp_path):
    db = tmp_path / 'app.db'
    _sqlite_db(db, 1)
    dest = tmp_path / 'b'
    first = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(dest)}}])
    assert first.rc == 0
    artifact = first.result('backup')['manifest']['path']
    with open(artifact, 'r+b') as handle:
        handle.seek(os.path.getsize(artifact) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    second = play(tmp_path, [
        {'name': 'verify', 'ignore_errors': True, 'opsready.operations.backup_verify': {'path': str(dest)}},
        {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest)}},
    ])
    verify = second.result('verify')
    assert verify['_event'] == 'runner_on_failed' and os.path.basename(artifact) in verify['msg']
    assert 'fails its checksum' in verify['msg']
    info = second.result('info')
    assert info['newest_full'] is None and info['sets'][0]['failed_verification'] == [os.path.basename(artifact)]


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_stopped_server_fails_fast_naming_host_and_port(engine, postgres_factory, mariadb_factory, tmp_path):
    server = postgres_factory() if engine == 'postgresql' else mariadb_factory()
    server.stop()
    started = time.monotonic()
    result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
        conn(server, 'pw'), engine=engine, database='x', dest=str(tmp_path / 'b'),
        connect_timeout=CONNECT_TIMEOUT)}], {'pw': server.password})
    elapsed = time.monotonic() - started
    res = result.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'host %s port %d' % (server.host, server.port) in res['msg']
    assert 'connect_timeout=%ds' % CONNECT_TIMEOUT in res['msg']
    # the client's reason, not only its hint (libpq prints the hint on the last line)
    assert ('Connection refused' if engine == 'postgresql' else "Can't connect") in res['msg'], res['msg']
    assert server.password not in json.dumps(res) and server.password not in result.stdout
    assert not (tmp_path / 'b').exists()
    took = task_seconds(result, 'backup')
    print('stopped %s: task failed after %.1fs, play took %.1fs' % (engine, took, elapsed))
    assert took < CONNECT_TIMEOUT + TASK_MARGIN, 'db_backup took %.1fs to report a stopped server' % took
    assert elapsed < CONNECT_TIMEOUT + PLAY_MARGIN, 'the play took %.1fs for a stopped server' % elapsed


@pytest.fixture
def silent_listener():
    """A TCP port that completes the TCP handshake (backlog) but never accept()s nor sends a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(('127.0.0.1', 0))
        sock.listen(16)
        yield sock.getsockname()
    finally:
        sock.close()


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_unanswering_server_fails_within_connect_timeout(engine, silent_listener, tmp_path):
    host, port = silent_listener
    dest = tmp_path / 'b'
    dest.mkdir()  # an existing backup directory: a failed connection must leave it untouched
    password = 'never-sent-%d' % port
    started = time.monotonic()
    result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': {
        'login_host': host, 'login_port': port, 'login_user': 'backup', 'login_password': '{{ pw }}',
        'engine': engine, 'database': 'app', 'dest': str(dest), 'connect_timeout': CONNECT_TIMEOUT}}],
        {'pw': password})
    elapsed = time.monotonic() - started
    res = result.result('backup')
    took = task_seconds(result, 'backup')
    print('unanswering %s: task failed after %.1fs, play took %.1fs' % (engine, took, elapsed))
    assert res['_event'] == 'runner_on_failed'
    assert 'host %s port %d' % (host, port) in res['msg'], res['msg']
    assert 'connect_timeout=%ds' % CONNECT_TIMEOUT in res['msg'], res['msg']
    assert took >= CONNECT_TIMEOUT - 0.5, 'failed after %.1fs: the client never waited in the handshake' % took
    assert took < CONNECT_TIMEOUT + TASK_MARGIN, 'db_backup hung %.1fs on a server that never answers' % took
    assert elapsed < CONNECT_TIMEOUT + PLAY_MARGIN, 'the play took %.1fs on a server that never answers' % elapsed
    assert password not in json.dumps(res) and password not in result.stdout
    assert os.listdir(dest) == [], 'no manifest, .partial or lock file may be created: %s' % os.listdir(dest)


def test_full_disk_while_streaming_pg_dump_fails_clearly_and_recovers(pg_db, small_disk, tmp_path):
    """The streaming ArtifactWriter (not a staging copy) hits ENOSPC in the middle of a pg_dump."""
    server = pg_db.server
    pg_db.sql('CREATE TABLE settings AS SELECT 1 AS id, \'small\'::text AS v')
    dest = small_disk / 'b'
    backup = {'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
        conn(server, 'pw'), engine='postgresql', database=pg_db.name, dest=str(dest), format='custom',
        compression='zstd')}
    info = {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest)}}
    first = play(tmp_path, [backup, info], {'pw': server.password})
    assert first.result('backup')['_event'] == 'runner_on_ok', first.stdout[-3000:]
    catalog = first.result('info')['artifacts']
    listing = sorted(os.listdir(dest))
    assert len(catalog) == 1

    # ~6.4 MB of random hex: zstd keeps about half of it, several times the 1 MB the tmpfs holds.
    pg_db.sql("CREATE TABLE noise AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v "
              "FROM generate_series(1, 100000) g")
    full = play(tmp_path, [backup, info], {'pw': server.password})
    res = full.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'No space left on the device holding %s' % dest in res['msg'], res['msg']
    assert 'partial file removed and no manifest written' in res['msg'], res['msg']
    after = sorted(os.listdir(dest))
    assert not [n for n in after if n.endswith('.partial')], after
    assert after == listing, 'the failed run left files behind: %s' % sorted(set(after) - set(listing))
    failed_info = full.result('info')
    assert failed_info['artifacts'] == catalog and failed_info['leftovers'] == []

    # The space problem fixed (the volume grown): the same task now succeeds into the same directory.
    grown = subprocess.run(['mount', '-o', 'remount,size=64m', str(small_disk)], capture_output=True, text=True,
                           check=False)
    assert grown.returncode == 0, grown.stderr
    backup['ignore_errors'] = False
    fixed = play(tmp_path, [backup, info], {'pw': server.password})
    assert fixed.rc == 0, fixed.stdout[-3000:]
    manifest = fixed.result('backup')['manifest']
    assert manifest['raw_size'] > 6 * 1024 * 1024 and manifest['size'] > 1024 * 1024
    assert os.path.exists(manifest['path']) and manifest['verification']['ok'] is True
    fixed_info = fixed.result('info')
    assert len(fixed_info['artifacts']) == 2 and fixed_info['artifacts'][0] == catalog[0]
    assert fixed_info['leftovers'] == [] and not [n for n in os.listdir(dest) if n.endswith('.partial')]
