"""db_restore, PostgreSQL point-in-time recovery: real base backup + real archived WAL, a real scratch server.

The WAL segments are archived by the test server's own archive_command; until the collection's WAL
archive helper lands, ``catalog_wal`` files them into the catalog the way the helper is specified to
(compressed artifact + manifest with the segment's position), using the shared ArtifactWriter.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import wal_file_segno
from tests.harness.playbook import run_playbook

SEGMENT = 16 * 1024 * 1024


def play(tmp_path: Path, tasks: list, extravars: dict | None = None, **kw):
    book = tmp_path / ('play-%d.yml' % len(list(tmp_path.glob('play-*.yml'))))
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    return run_playbook(str(book), extravars=extravars, **kw)


def conn(server) -> dict:
    return {'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
            'login_password': '{{ pg_password }}'}


def switch_and_wait(server) -> None:
    name = server.sql('SELECT pg_walfile_name(pg_switch_wal())')[0][0]
    deadline = time.monotonic() + 60
    while not (server.wal_archive_dir / name).exists():
        assert time.monotonic() < deadline, 'WAL %s was not archived' % name
        time.sleep(0.1)


def catalog_wal(server, dest: Path) -> list:
    written = []
    for path in sorted(server.wal_archive_dir.iterdir()):
        if not re.fullmatch(r'[0-9A-F]{24}', path.name):
            continue
        timeline, segno = wal_file_segno(path.name, SEGMENT)
        when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
        artifact = dest / ('postgresql-cluster-wal-%s.%s.zst' % (stamp(when), path.name))
        if artifact.exists():
            continue
        writer = ArtifactWriter(str(artifact), compression='zstd', hash_plain=True)
        with open(path, 'rb') as handle:
            writer.copy_from(handle)
        stored = writer.commit()
        write_manifest(str(artifact), {
            'engine': 'postgresql', 'kind': 'wal', 'database': '@cluster', 'server': 'test',
            'started': isoformat(when), 'finished': isoformat(when), 'consistent_at': isoformat(when),
            'size': stored['size'], 'sha256': stored['sha256'], 'plain_sha256': stored['plain_sha256'],
            'compression': 'zstd', 'parent': None,
            'position': {'start': segno, 'end': segno + 1, 'wal_file': path.name, 'timeline': timeline,
                         'wal_segment_size': SEGMENT}})
        written.append(path.name)
    return written


def labels(server, port: int, password: str, database: str) -> list:
    env = dict(os.environ, PGHOST='127.0.0.1', PGPORT=str(port), PGUSER=server.user, PGPASSWORD=password,
               PGDATABASE=database)
    out = subprocess.run([server.bin('psql'), '-X', '-A', '-t', '-c', 'SELECT label FROM events ORDER BY id'],
                         env=env, check=True, capture_output=True, text=True).stdout
    return out.split()


def test_pitr_base_backup_plus_wal(postgres_factory, tmp_path):
    server = postgres_factory()
    server.create_database('app')
    server.sql('CREATE TABLE events (id serial PRIMARY KEY, label text NOT NULL);'
               "INSERT INTO events (label) VALUES ('t1')", database='app')
    dest = tmp_path / 'backups'
    extravars = {'pg_password': server.password}
    result = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
        conn(server), engine='postgresql', kind='base', dest=str(dest), owner='postgres')}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    base = result.result('base')['manifest']
    server.sql("INSERT INTO events (label) VALUES ('t2')", database='app')
    time.sleep(1.0)
    point = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.0)
    server.sql("INSERT INTO events (label) VALUES ('t3'); DELETE FROM events WHERE label = 't1'", database='app')
    switch_and_wait(server)
    assert catalog_wal(server, dest)

    # the recovered server runs as postgres: its directory must be reachable (pytest's tmp is 0700)
    scratch = Path(tempfile.mkdtemp(prefix='opsready-pitr-test-'))
    os.chmod(scratch, 0o711)
    datadir = scratch / 'pitr' / 'data'
    datadir.parent.mkdir()
    refused = play(tmp_path, [{'name': 'unreachable', 'opsready.operations.db_restore': dict(
        conn(server), engine='postgresql', src=str(dest), datadir=str(tmp_path / 'data'), stop_at=point.isoformat())}],
        extravars)
    assert refused.rc != 0 and 'cannot enter' in refused.result('unreachable')['msg']
    restore = dict(conn(server), engine='postgresql', src=str(dest), datadir=str(datadir))
    result = play(tmp_path, [
        {'name': 'plan', 'opsready.operations.db_restore': dict(restore, stop_at=point.isoformat()),
         'check_mode': True},
        {'name': 'pitr', 'opsready.operations.db_restore': dict(restore, stop_at=point.isoformat())},
        {'name': 'again', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, stop_at=point.isoformat())},
        {'name': 'too early', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, datadir=str(scratch / 'pitr' / 'other'), stop_at='2001-01-01T00:00:00Z')},
    ], extravars)
    assert result.rc == 0, result.stdout[-4000:]
    assert result.result('plan')['changed'] is True
    res = result.result('pitr')
    target = res['target']
    try:
        assert res['method'] == 'physical' and res['chain_ids'][0] == base['id'] and len(res['chain_ids']) >= 2
        assert target['datadir'] == str(datadir) and target['pid'] and target['port'] != server.port
        assert labels(server, target['port'], server.password, 'app') == ['t1', 't2']
        assert res['point_reached'] <= isoformat(point)
        # the recovered server is promoted (writable) and never archives into the production archive
        env = dict(os.environ, PGHOST='127.0.0.1', PGPORT=str(target['port']), PGUSER=server.user,
                   PGPASSWORD=server.password, PGDATABASE='app')
        out = subprocess.run([server.bin('psql'), '-X', '-A', '-t', '-c',
                              'SELECT pg_is_in_recovery(), current_setting(\'archive_mode\')'],
                             env=env, check=True, capture_output=True, text=True).stdout.strip()
        assert out == 'f|off'
        again = result.result('again')
        assert again['_event'] == 'runner_on_failed' and 'runs on' in again['msg']
        early = result.result('too early')
        assert early['_event'] == 'runner_on_failed' and 'recoverable window' in early['msg']
        assert base['consistent_at'] in early['msg']
        assert not list((scratch / 'pitr').glob('*opsready*'))
    finally:
        result = play(tmp_path, [{'name': 'drop', 'opsready.operations.db_restore': dict(restore, state='absent')}],
                      extravars)
    assert result.rc == 0 and result.result('drop')['changed'] is True
    assert not datadir.exists()
    shutil.rmtree(scratch, ignore_errors=True)
    if target.get('pid'):
        deadline = time.monotonic() + 10
        while os.path.exists('/proc/%d' % target['pid']) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists('/proc/%d' % target['pid'])


def test_pitr_second_restore_into_the_same_datadir_fails_fast(postgres_factory, tmp_path):
    """A point-in-time restore (or its clean-up) while another run holds the same datadir: it fails at once and
    creates nothing. Before, both staged and recovered a whole cluster and the second then failed renaming onto
    the first's directory, its staging directory left behind (or, with replace, removed the first's cluster). The
    other run is stood in for by its lock, held in this process (ansible-playbook runs in another)."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import locks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr

    server = postgres_factory()
    server.create_database('app')
    server.sql('CREATE TABLE events (id serial PRIMARY KEY, label text NOT NULL);'
               "INSERT INTO events (label) VALUES ('t1')", database='app')
    dest = tmp_path / 'backups'
    extravars = {'pg_password': server.password}
    result = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
        conn(server), engine='postgresql', kind='base', dest=str(dest), owner='postgres')}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    server.sql("INSERT INTO events (label) VALUES ('t2')", database='app')
    switch_and_wait(server)
    assert catalog_wal(server, dest)
    scratch = Path(tempfile.mkdtemp(prefix='opsready-pitr-lock-'))
    os.chmod(scratch, 0o711)
    datadir = scratch / 'data'
    restore = dict(conn(server), engine='postgresql', src=str(dest), datadir=str(datadir))
    try:
        with locks.exclusive(pitr.lock_path(str(datadir)), 'held by the test'):
            busy = play(tmp_path, [
                {'name': 'busy', 'ignore_errors': True, 'opsready.operations.db_restore': dict(restore, replace=True)},
            ], extravars)
            out = busy.result('busy')
            assert out['_event'] == 'runner_on_failed' and 'Another db_restore' in out['msg'], out.get('msg')
            assert 'nothing was changed' in out['msg']
            assert sorted(p.name for p in scratch.iterdir()) == ['.data.opsready-lock']
        # The parent is often the postgres account's: a link it planted at <datadir>.run (the socket directory)
        # must not make root chmod/chown what it points to (it chowned all of /etc to postgres).
        victim = scratch.parent / ('victim-%s' % scratch.name)
        victim.mkdir(mode=0o755)
        (victim / 'secret').write_text('root only')
        os.chmod(victim / 'secret', 0o600)
        os.symlink(str(victim), str(scratch / 'data.run'))
        try:
            planted = play(tmp_path, [{'name': 'planted', 'ignore_errors': True,
                                       'opsready.operations.db_restore': restore}], extravars)
            out = planted.result('planted')
            assert out['_event'] == 'runner_on_failed' and 'not a directory of this run' in out['msg'], out.get('msg')
            for path in (victim, victim / 'secret'):
                st = os.stat(path)
                assert (st.st_uid, st.st_gid) == (0, 0), path
            assert oct(os.stat(victim).st_mode & 0o777) == '0o755'
            assert sorted(p.name for p in scratch.iterdir()) == ['data.run']      # staging cleaned up
        finally:
            os.unlink(scratch / 'data.run')
            shutil.rmtree(victim)
        done = play(tmp_path, [{'name': 'pitr', 'opsready.operations.db_restore': restore}], extravars)
        res = done.result('pitr')
        assert res['_event'] == 'runner_on_ok', res.get('msg')
        assert labels(server, res['target']['port'], server.password, 'app') == ['t1', 't2']
        with locks.exclusive(pitr.lock_path(str(datadir)), 'held by the test'):
            busy = play(tmp_path, [{'name': 'drop', 'ignore_errors': True,
                                    'opsready.operations.db_restore': dict(restore, state='absent')}], extravars)
            assert 'Another db_restore' in busy.result('drop')['msg']
            assert datadir.is_dir()
    finally:
        dropped = play(tmp_path, [{'name': 'drop', 'opsready.operations.db_restore': dict(restore, state='absent')}],
                       extravars)
    try:
        assert dropped.result('drop')['changed'] is True
        assert sorted(p.name for p in scratch.iterdir()) == []      # the lock file goes with the clean-up
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
