"""db_backup stages some backups in dest before the rename that makes the artifact (PostgreSQL: the base backup's
and the directory-format dump's ``<artifact>.partial`` directory; MariaDB/MySQL kind=log: the raw binary logs).
Its removal is checked on every path: a staging directory that stays (an append-only or immutable flag: root meets
EPERM) is named in the failed run's message and ``leftovers_left`` - never passed over as
``rmtree(ignore_errors=True)`` did, while the message said the partial file was removed. Once it can go, the next
backup of the set removes it (``leftovers_removed``).

Real ansible-playbook runs against a private PostgreSQL server; the flag is a real chattr +a.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from tests.harness.playbook import conn as login, play


def _chattr(flag: str, path) -> bool:
    return shutil.which('chattr') is not None and subprocess.run(
        ['chattr', flag, str(path)], capture_output=True, check=False).returncode == 0


def test_a_base_backup_staging_that_cannot_be_removed_is_named_then_removed(postgres_factory, tmp_path):
    probe = tmp_path / 'probe'
    probe.mkdir()
    if not _chattr('+a', probe):
        pytest.skip('chattr +a does not work on %s: a failed removal cannot be made real here' % tmp_path)
    _chattr('-a', probe)
    probe.rmdir()
    server = postgres_factory()
    server.sql('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g')
    dest = tmp_path / 'base'
    conn = login(server, 'pw')
    task = {'name': 'base', 'ignore_errors': True,
            'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='base', dest=str(dest))}
    sealed: list = []
    stop = threading.Event()

    def seal() -> None:
        # the run's staging directory made append-only while pg_basebackup writes into it: nothing can leave it
        while not stop.is_set():
            for path in dest.glob('*.partial') if dest.is_dir() else []:
                if path.is_dir() and _chattr('+a', path):
                    sealed.append(str(path))
                    return
            time.sleep(0.001)

    watcher = threading.Thread(target=seal, daemon=True)
    watcher.start()
    try:
        result = play(tmp_path, [task], {'pw': server.password})
    finally:
        stop.set()
        watcher.join(10)
        for path in sealed:
            _chattr('-a', path)
    assert sealed, 'the backup ended before its staging directory could be sealed'
    res = result.result('base')
    assert res['_event'] == 'runner_on_failed', res
    assert res['leftovers_left'] == sealed, res
    msg = ' '.join(res['msg'].split())
    assert sealed[0] in msg and 'could not be removed' in msg, msg
    assert os.path.isdir(sealed[0])
    # once it can go, the next backup of the set removes it, and succeeds
    again = play(tmp_path, [dict(task, ignore_errors=False)], {'pw': server.password})
    assert again.rc == 0, again.stdout[-3000:]
    out = again.result('base')
    assert sealed[0] in out['leftovers_removed'] and 'leftovers_left' not in out
    assert not list(dest.glob('*.partial'))
