"""SQLite db_restore hands the old file's mode and owner to the checked copy. The target's directory is often the
application account's: while the copy is checked it can swap the staging name for a link to /etc/shadow; a
chmod/chown by name would then give the account that file. Real backup, real restore, the swap injected at the
check."""

from __future__ import annotations

import os
import sqlite3

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import restore as sqlite_restore
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore


def make_db(path):
    conn = sqlite3.connect(str(path))
    conn.execute('CREATE TABLE t (x INTEGER)')
    conn.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(50)])
    conn.commit()
    conn.close()


def test_a_staging_name_swapped_for_a_link_during_the_check_is_never_chowned_through(tmp_path, monkeypatch):
    app = tmp_path / 'app'
    app.mkdir()
    db = app / 'app.db'
    make_db(db)
    os.chmod(db, 0o666)
    dest = tmp_path / 'backups'
    run_backup(get_engine('sqlite', ConnectionParams()), BackupOptions(kind='full', dest=str(dest), database=str(db)),
               verify=False)
    victim = tmp_path / 'shadow'
    victim.write_text('root:$6$hash\n')
    os.chmod(victim, 0o600)
    real_integrity = sqlite_restore._integrity

    def swap_during_check(staging, manifest):
        checked = real_integrity(staging, manifest)
        os.rename(staging, staging + '.moved')             # the account moves the copy away ...
        os.symlink(str(victim), staging)                   # ... and leaves a link at its name
        return checked

    monkeypatch.setattr(sqlite_restore, '_integrity', swap_during_check)
    with pytest.raises(OpsReadyError, match='replaced by another file'):
        run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(db), replace=True),
                    ConnectionParams())
    assert oct(os.stat(victim).st_mode & 0o777) == '0o600' and victim.read_text() == 'root:$6$hash\n'
    assert oct(os.stat(db).st_mode & 0o777) == '0o666'      # the target was not swapped


def test_mode_and_owner_are_handed_over_when_nothing_interferes(tmp_path):
    db = tmp_path / 'app.db'
    make_db(db)
    os.chmod(db, 0o640)
    dest = tmp_path / 'backups'
    run_backup(get_engine('sqlite', ConnectionParams()), BackupOptions(kind='full', dest=str(dest), database=str(db)),
               verify=False)
    run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(db), replace=True), ConnectionParams())
    assert oct(os.stat(db).st_mode & 0o777) == '0o640'
