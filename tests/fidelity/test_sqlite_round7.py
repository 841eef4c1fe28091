"""Fidelity, SQLite, round 7: the restore's look at its target never makes a file beside it.

To say whether the target holds anything (refused without replace=true), the restore counted its tables with a
read-only SQLite connection. On a WAL database SQLite then creates the target's ``-shm`` (O_CREAT, as root), by a
path it resolves itself from ``/proc/self/fd/N``: a parent swapped for a link in that instant put root's new file in
a directory the account chose. Now the table count reads the main file only (``immutable=1``: no sidecar opened or
made) and the sidecars are judged from the held directory: a ``-wal`` holding frames or a hot ``-journal`` means
writes the main file does not show yet, so the target is not empty whatever its main file counts.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.client import sqlite_uri  # noqa: E402

import test_sqlite_round6 as round6  # noqa: E402
from test_sqlite_round6 import make_db, restore  # noqa: E402

artifact = round6.artifact   # the fixture: a backup of a 50-row database


def sidecars(db: Path):
    return sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name + '-'))


def killed_writer(db: Path, statements) -> None:
    """Run ``statements`` in WAL mode in a process that dies without closing: its writes stay in the -wal."""
    code = ('import os, sqlite3, sys\n'
            'c = sqlite3.connect(sys.argv[1], isolation_level=None)\n'
            'c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA wal_autocheckpoint=0")\n'
            'for s in sys.argv[2:]: c.execute(s)\n'
            'os._exit(0)\n')
    subprocess.run([sys.executable, '-c', code, str(db)] + list(statements), check=True)


@pytest.mark.parametrize('check_mode', [True, False])
@pytest.mark.parametrize('replace', [False, True])
def test_looking_at_a_wal_target_makes_no_sidecar(tmp_path, artifact, check_mode, replace):
    """Failed first: a closed WAL target (no -wal, no -shm) got a -shm from the look at it (check mode included),
    made by SQLite as root at a path it resolved itself. Now nothing is created beside the target by the look; the
    refusal without replace still counts its 3 tables."""
    dest, source = artifact
    target = tmp_path / 'app' / 'target.db'
    target.parent.mkdir()
    make_db(target, rows=4, journal='wal', tables=3)
    assert sidecars(target) == []
    if not replace:
        with pytest.raises(OpsReadyError) as raised:
            restore(dest, target, source, replace=False, check_mode=check_mode)
        assert '3 tables' in str(raised.value), str(raised.value)
        assert sidecars(target) == []
    elif check_mode:
        restore(dest, target, source, replace=True, check_mode=True)
        assert sidecars(target) == []
    else:
        restore(dest, target, source, replace=True)
        assert sidecars(target) == []
        conn = sqlite3.connect(sqlite_uri(str(target), 'ro'), uri=True)
        try:
            assert conn.execute('SELECT count(*) FROM t0').fetchone()[0] == 50
        finally:
            conn.close()


@pytest.mark.parametrize('check_mode', [True, False])
def test_a_target_whose_tables_are_only_in_its_wal_is_not_empty(tmp_path, artifact, check_mode):
    """A database an application created and wrote in WAL mode, then died: its main file shows no table yet, its
    -wal holds them. Refused without replace=true (never taken for an empty file and overwritten), in check mode too,
    the message naming the -wal (failed first on that: the refusal itself was there, SQLite read the -wal and made
    a -shm beside it); nothing of the target touched, no -shm made."""
    dest, source = artifact
    target = tmp_path / 'target.db'
    killed_writer(target, ['CREATE TABLE orders (id INTEGER PRIMARY KEY, v TEXT)',
                           "INSERT INTO orders (v) VALUES ('paid')"])
    wal = (tmp_path / 'target.db-wal').read_bytes()
    main = target.read_bytes()
    os.remove(str(tmp_path / 'target.db-shm'))
    with pytest.raises(OpsReadyError) as raised:
        restore(dest, target, source, replace=False, check_mode=check_mode)
    message = str(raised.value)
    assert 'not empty' in message and '-wal' in message and 'replace=true' in message, message
    assert target.read_bytes() == main and (tmp_path / 'target.db-wal').read_bytes() == wal
    assert sidecars(target) == ['target.db-wal']


def test_a_hot_journal_makes_the_target_not_empty(tmp_path, artifact):
    """Guard (refused before too, as "unreadable": SQLite would not read past a hot journal read-only; reading the
    main file alone would take it for empty): a rollback journal left by a writer killed mid-transaction means the
    main file may hold half of a transaction, so a target of no table is not taken for empty; a journal whose header
    is zeroed (PERSIST mode, committed) is no reason to refuse."""
    dest, source = artifact
    target = tmp_path / 'target.db'
    conn = sqlite3.connect(str(target))
    conn.execute('PRAGMA user_version = 7')   # a database file of no table
    conn.close()
    hot = tmp_path / 'target.db-journal'
    hot.write_bytes(bytes.fromhex('d9d505f920a163d7') + b'\0' * 504)
    for check_mode in (True, False):
        with pytest.raises(OpsReadyError) as raised:
            restore(dest, target, source, replace=False, check_mode=check_mode)
        assert 'not empty' in str(raised.value), str(raised.value)
    hot.write_bytes(b'\0' * 512)
    restore(dest, target, source, replace=False, check_mode=True)
