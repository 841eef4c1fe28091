"""Fidelity, SQLite, round 4: database paths that are not UTF-8 (a Latin-1 file name, a 0xff byte), through the
real modules (db_backup -> backup_verify -> db_restore elsewhere and in place). The ``?``, ``#`` and ``%`` path
classes are covered by ``test_sqlite.PATH_CLASSES`` (the playbook round trip); here they are combined with the
bytes.

A path that is not UTF-8 is a str with lone surrogates in Python (``os.fsdecode``: ``\\udcff`` for the byte
0xff); ``quote`` of such a string raised UnicodeEncodeError in sqlite_uri, so no database at such a path could be
backed up or restored. ansible-core itself refuses such a string as a module argument (AnsibleModule's invocation
log encodes every parameter as UTF-8), so these run the engines as the modules do, in process: the backup job
(with its verification) and the restore job, as db_backup and db_restore call them.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore

NAMES = {
    'latin1': (b'caf\xe9', b'donn\xe9es.db'),
    'ff-byte': (b'raw\xff', b'app-\xff\xfe.db'),
    'ff-with-uri-bytes': (b'q?x#y%41', b'\xff?mode=memory#%25.db'),
}


def connect(path: Path, mode: str = 'ro') -> sqlite3.Connection:
    return sqlite3.connect('file:%s?mode=%s' % (quote(os.fsencode(str(path)), safe='/'), mode), uri=True)


def content(path: Path):
    conn = connect(path)
    try:
        return (conn.execute('SELECT id, body, blob FROM notes ORDER BY id').fetchall(),
                conn.execute('PRAGMA integrity_check').fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize('label', sorted(NAMES))
def test_a_database_path_that_is_not_utf8_round_trips(tmp_path, label):
    folder, name = NAMES[label]
    root = tmp_path / 'srv'
    db = root / os.fsdecode(folder) / os.fsdecode(name)
    db.parent.mkdir(parents=True)
    conn = connect(db, 'rwc')
    conn.executescript('PRAGMA journal_mode = WAL; CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, blob BLOB);')
    conn.executemany('INSERT INTO notes (body, blob) VALUES (?, ?)', [('row %d' % i, bytes([i % 256]) * i)
                                                                      for i in range(500)])
    conn.commit()
    conn.close()
    before = content(db)
    assert before[1] == 'ok' and len(before[0]) == 500
    other = db.parent / os.fsdecode(b'restored-' + name)
    dest = root / 'backups'
    made = run_backup(get_engine('sqlite', ConnectionParams()),
                      BackupOptions(kind='full', dest=str(dest), database=str(db)), verify=True)
    assert made, made
    run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(other), source_database=str(db)),
                ConnectionParams())
    run_restore(RestoreRequest(engine='sqlite', src=str(dest), database=str(db), replace=True), ConnectionParams())
    assert content(other) == before
    assert content(db) == before
    # nothing stray next to the source: SQLite opening a mis-quoted name creates another file
    left = sorted(os.listdir(os.fsencode(str(db.parent))))
    assert [n for n in left if not n.endswith((b'-wal', b'-shm'))] == sorted([name, b'restored-' + name]), left
