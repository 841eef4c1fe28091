"""Faults: a backup killed mid-stream, a full disk, a flipped byte, a stopped server, and the password
never visible in any process's argv while a backup runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook


def play(tmp_path: Path, tasks: list, extravars: dict | None = None, **kw):
    book = tmp_path / ('play-%d.yml' % len(list(tmp_path.glob('play-*.yml'))))
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    return run_playbook(str(book), extravars=extravars, **kw)


def procs():
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    yield int(pid), handle.read().split(b'\0')
            except OSError:
                continue


def pg_conn(server) -> dict:
    return {'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
            'login_password': '{{ pw }}'}


def test_killed_mid_stream_leaves_no_manifest_and_next_run_cleans_up(pg_db, tmp_path):
    server = pg_db.server
    pg_db.sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v "
              "FROM generate_series(1, 1200000) g")
    dest = tmp_path / 'backups'
    task = {'name': 'backup', 'opsready.operations.db_backup': dict(
        pg_conn(server), engine='postgresql', database=pg_db.name, dest=str(dest), compression='gzip',
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
        pg_conn(server), engine=engine, database='x', dest=str(tmp_path / 'b'), connect_timeout=3)}],
        {'pw': server.password})
    elapsed = time.monotonic() - started
    res = result.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'host %s port %d' % (server.host, server.port) in res['msg'] and 'connect_timeout=3s' in res['msg']
    assert server.password not in json.dumps(res) and server.password not in result.stdout
    assert not (tmp_path / 'b').exists()
    print('stopped %s: failed after %.1fs (playbook included)' % (engine, elapsed))
