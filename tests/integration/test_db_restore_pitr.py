"""db_restore, PostgreSQL point-in-time recovery: real base backup + real archived WAL, a real scratch server.

The WAL segments are archived by the test server's own archive_command; until the collection's WAL
archive helper lands, ``catalog_wal`` (tests/integration/pitr_helpers.py) files them into the catalog the way the
helper is specified to (compressed artifact + manifest with the segment's position), using the shared ArtifactWriter.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
import time
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat  # noqa: E402
from tests.integration.pitr_helpers import (  # noqa: E402  (catalog_wal, labels, switch_and_wait: imported from here too)
    app_with_base_backup, catalog_wal, conn, labels, play, switch_and_wait)


def test_pitr_base_backup_plus_wal(postgres_factory, tmp_path):
    app = app_with_base_backup(postgres_factory, tmp_path)
    server, dest, extravars, base = app.server, app.dest, app.extravars, app.base
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

    app = app_with_base_backup(postgres_factory, tmp_path)
    server, dest, extravars = app.server, app.dest, app.extravars
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
