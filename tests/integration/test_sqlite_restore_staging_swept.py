"""A SQLite db_restore decompresses (and decrypts) the backup into ``<target>.opsready-restore-<id>`` beside the
target, 0600. A run killed with SIGKILL while it writes that copy leaves it: the next db_restore into (or
state=absent of) that target, under the target's lock, removes it and names it in ``removed_scratch``. What a
swap had moved aside (``.opsready-old-<id>``, the target's own previous file) is kept with a warning; links and
other names are never touched.

Real processes, real files; the next run through ansible-playbook.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

from tests.harness.playbook import REPO, run_playbook, write_playbook

RUNNER = '''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
src, source, target = sys.argv[2:5]
run_restore(RestoreRequest(engine='sqlite', src=src, source_database=source, database=target, replace=True),
            ConnectionParams())
'''


def test_a_killed_sqlite_restore_s_copy_is_removed_by_the_next_run(tmp_path):
    db = tmp_path / 'app.sqlite'
    with sqlite3.connect(str(db)) as conn:
        conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
        conn.execute("WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 400000) "
                     "INSERT INTO t SELECT i, hex(randomblob(48)) FROM g")
    result = run_playbook(write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(tmp_path / 'b')}}]))
    assert result.rc == 0, result.stdout[-3000:]
    restored = tmp_path / 'restored' / 'app.sqlite'
    restored.parent.mkdir()
    script = tmp_path / 'run.py'
    script.write_text(RUNNER)
    proc = subprocess.Popen([sys.executable, str(script), str(REPO / 'build'), str(tmp_path / 'b'), str(db),
                             str(restored)], start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, 'the restore ended before it could be killed: %s' % proc.stderr.read()
            assert time.monotonic() < deadline
            copies = [n for n in os.listdir(restored.parent) if '.opsready-restore-' in n]
            if copies and os.path.getsize(restored.parent / copies[0]) > 0:
                break
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        proc.stderr.close()
    left = restored.parent / copies[0]
    assert left.exists() and stat.S_IMODE(os.lstat(left).st_mode) == 0o600
    aside = restored.parent / 'app.sqlite.opsready-old-0badc0de'
    aside.write_text('the previous file')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.write_text('kept')
    link = restored.parent / 'app.sqlite.opsready-restore-deadbeef'
    link.symlink_to(elsewhere)
    other = restored.parent / 'other.sqlite.opsready-restore-12345678'
    other.write_text('another target')

    result = run_playbook(write_playbook(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': {
        'engine': 'sqlite', 'src': str(tmp_path / 'b'), 'source_database': str(db), 'database': str(restored),
        'replace': True}}]))
    assert result.rc == 0, result.stdout[-3000:]
    out = result.result('restore')
    # the killed run's copy in the target's directory, and (since the check runs on a private copy) its scratch
    # directory, when it had made one: nothing else
    assert str(left) in out['removed_scratch'] and not left.exists(), out['removed_scratch']
    scratch = [p for p in out['removed_scratch'] if p != str(left)]
    assert all('sqlite-restore' in os.path.basename(p) and not os.path.exists(p) for p in scratch), scratch
    assert len(scratch) <= 1, scratch
    assert [w for w in out['restore_warnings'] if str(aside) in w], out['restore_warnings']
    assert aside.exists() and link.is_symlink() and elsewhere.read_text() == 'kept' and other.exists()
    with sqlite3.connect(str(restored)) as conn:
        assert conn.execute('SELECT count(*) FROM t').fetchone()[0] == 400000
