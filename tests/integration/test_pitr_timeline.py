"""db_restore, PostgreSQL point-in-time recovery across a promotion (timeline 2).

A promoted server continues on timeline 2: its WAL segments are named ``00000002...`` and its history file
``00000002.history`` (kept by the WAL archive helper in ``<catalog>/pg_wal_extra/``) says where it forked. One real
server: a base backup on timeline 1, a transaction, then the server restarted as a standby and promoted, a
transaction on timeline 2, restored to the end and to a time after the switch.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import time
from pathlib import Path

from tests.integration.pitr_helpers import app_with_base_backup, catalog_wal, conn, labels, play, switch_and_wait


def _promote(server) -> None:
    """Restart the server as a standby of its own WAL and promote it: timeline 2, as after a failover."""
    server.stop()
    (server.datadir / 'standby.signal').write_text('')
    server.start()
    server.sql('SELECT pg_promote(true, 60)')
    deadline = time.monotonic() + 60
    while server.sql('SELECT pg_is_in_recovery()')[0][0] != 'f':
        assert time.monotonic() < deadline, 'the server was not promoted'
        time.sleep(0.1)


def test_restore_across_a_timeline_switch(postgres_factory, tmp_path):
    """Before, the history file was never staged for the recovery: PostgreSQL, not knowing timeline 2, replayed
    timeline 1 to its end and stopped there, and the restore failed calling the first segment of timeline 2
    "archived damaged" (a restore to any point after a failover was impossible, with a false diagnosis)."""
    app = app_with_base_backup(postgres_factory, tmp_path)
    server, dest, extravars = app.server, app.dest, app.extravars
    server.sql("INSERT INTO events (label) VALUES ('t2')", database='app')
    switch_and_wait(server)
    _promote(server)
    assert server.sql('SELECT timeline_id FROM pg_control_checkpoint()')[0][0] == '2'
    server.sql("INSERT INTO events (label) VALUES ('after-switch')", database='app')
    time.sleep(1.0)
    point = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.0)
    server.sql("INSERT INTO events (label) VALUES ('too-late')", database='app')
    switch_and_wait(server)
    deadline = time.monotonic() + 30
    while not (server.wal_archive_dir / '00000002.history').exists():
        assert time.monotonic() < deadline, '00000002.history was not archived'
        time.sleep(0.1)
    names = catalog_wal(server, dest)
    assert any(n.startswith('00000002') for n in names), names
    # what pg_wal_archive does with a history file (tests/unit: test_engine_helpers)
    (dest / 'pg_wal_extra').mkdir(mode=0o700)
    shutil.copy(server.wal_archive_dir / '00000002.history', dest / 'pg_wal_extra' / '00000002.history')

    scratch = Path(tempfile.mkdtemp(prefix='opsready-pitr-tl-'))
    os.chmod(scratch, 0o711)
    restore = dict(conn(server), engine='postgresql', src=str(dest))
    result = play(tmp_path, [
        {'name': 'latest', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, datadir=str(scratch / 'latest'))},
        {'name': 'point', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, datadir=str(scratch / 'point'), stop_at=point.isoformat())},
    ], extravars)
    try:
        latest, at_point = result.result('latest'), result.result('point')
        assert latest['_event'] == 'runner_on_ok', latest.get('msg')
        everything = ['t1', 't2', 'after-switch', 'too-late']
        assert labels(server, latest['target']['port'], server.password, 'app') == everything
        assert at_point['_event'] == 'runner_on_ok', at_point.get('msg')
        assert labels(server, at_point['target']['port'], server.password, 'app') == ['t1', 't2', 'after-switch']
    finally:
        play(tmp_path, [{'name': 'drop-%s' % name, 'ignore_errors': True,
                         'opsready.operations.db_restore': dict(restore, datadir=str(scratch / name), state='absent')}
                        for name in ('latest', 'point')], extravars)
        shutil.rmtree(scratch, ignore_errors=True)
