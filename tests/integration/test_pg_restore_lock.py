"""Two db_restore runs into the same PostgreSQL target at once: the first holds a session-level advisory lock
keyed on the target's name for its whole run; the second fails at once saying another restore into that
database is running, and creates or changes nothing. A restore into another database goes through meanwhile.
Before, both loaded their copies and both swapped, one after the other.

The first run is held in its swap (the rename waits for a lock on the target database, as it would behind a
session altering it) by a session in another database holding ``COMMENT ON DATABASE`` in an open transaction,
so the overlap is certain; it completes once that session ends. A process killed while it holds the lock
leaves nothing behind: the lock lives in the session of its psql, which ends with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (  # noqa: E402
    PostgresClient)
from tests.integration.test_pg_restore_streamed_checksum import backup, leftovers, restore  # noqa: E402

HOLD = "BEGIN; COMMENT ON DATABASE %s IS 'held by the test'; SELECT 'lock-test-holder', pg_sleep(60); ROLLBACK"
HOLDER = "query LIKE 'SELECT ''lock-test-holder''%' AND pid <> pg_backend_pid()"


def qi(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def wait_for(probe, what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.1)


def advisory_locks(server, target: str) -> list:
    key = PostgresClient.lock_key('restore', target) & 0xffffffffffffffff
    return server.sql("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %d AND objid = %d "
                      "AND objsubid = 1" % (key >> 32, key & 0xffffffff), database='postgres')


def rows(server, database: str) -> list:
    return sorted(r[0] for r in server.sql('SELECT x FROM t', database=database))


def release_holder(server) -> None:
    server.sql('SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE ' + HOLDER, database='postgres')


def test_second_concurrent_restore_into_the_same_target_fails_fast(pg_db, tmp_path):
    server = pg_db.server
    pg_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1)')
    backup(server, pg_db.name, tmp_path / 'b')
    pg_db.sql('INSERT INTO t VALUES (2)')
    other = pg_db.name + '_other'
    holder = threading.Thread(target=lambda: server.sql(HOLD % qi(pg_db.name), database='postgres', check=False,
                                                        timeout=90))
    holder.start()
    first: dict = {}

    def run_first() -> None:
        try:
            first['result'] = restore(server, tmp_path / 'b', pg_db.name, pg_db.name, replace=True)
        except Exception as exc:  # reported by the assertions below
            first['error'] = exc

    runner = threading.Thread(target=run_first)
    try:
        wait_for(lambda: server.sql("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND " + HOLDER,
                                    database='postgres'), 'the holding session')
        runner.start()
        # the first run is in its swap, its rename waiting for the holder's lock on the target database
        wait_for(lambda: 'error' in first or server.sql(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER DATABASE%'",
            database='postgres'), 'the first restore to reach its swap')
        assert 'error' not in first, first.get('error')
        assert advisory_locks(server, pg_db.name), 'the first run does not hold the lock'
        databases = sorted(r[0] for r in server.sql('SELECT datname FROM pg_database', database='postgres'))
        started = time.monotonic()
        with pytest.raises(OpsReadyError, match='Another db_restore into database %s' % pg_db.name) as info:
            restore(server, tmp_path / 'b', pg_db.name, pg_db.name, replace=True)
        assert time.monotonic() - started < 10, 'the second run waited instead of failing fast'
        assert 'held by backend pid' in str(info.value) and 'nothing was changed' in str(info.value)
        assert sorted(r[0] for r in server.sql('SELECT datname FROM pg_database', database='postgres')) == databases
        # another target is not held up by it
        restore(server, tmp_path / 'b', pg_db.name, other)
        assert rows(server, other) == ['1']
    finally:
        release_holder(server)
        holder.join()
        if runner.ident is not None:
            runner.join(120)
        server.sql('DROP DATABASE IF EXISTS %s' % qi(other), database='postgres')
    assert 'error' not in first, first.get('error')
    assert rows(server, pg_db.name) == ['1']
    assert advisory_locks(server, pg_db.name) == []
    # the lock went with the first run: a third run goes through, and leaves nothing behind
    pg_db.sql('INSERT INTO t VALUES (3)')
    restore(server, tmp_path / 'b', pg_db.name, pg_db.name, replace=True)
    assert rows(server, pg_db.name) == ['1']
    assert not [d for d in leftovers(server) if d.startswith(pg_db.name[:20])]


HOLDER_SCRIPT = '''
import sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import target_lock
host, port, user, password, target = sys.argv[2:7]
engine = get_engine('postgresql', ConnectionParams(host=host, port=int(port), user=user, password=password))
with target_lock(engine, target):
    print('held', flush=True)
    time.sleep(120)
'''


def test_a_killed_restore_leaves_no_lock_behind(pg_db, tmp_path):
    """The run holding the lock dies (SIGKILL: no finally, no unlock): the lock ends with its session."""
    server = pg_db.server
    pg_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1)')
    backup(server, pg_db.name, tmp_path / 'b')
    pg_db.sql('INSERT INTO t VALUES (2)')
    script = tmp_path / 'hold.py'
    script.write_text(HOLDER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(REPO / 'build'), server.host, str(server.port),
                             server.user, server.password, pg_db.name], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == 'held'
        with pytest.raises(OpsReadyError, match='Another db_restore into database'):
            restore(server, tmp_path / 'b', pg_db.name, pg_db.name, replace=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        wait_for(lambda: not advisory_locks(server, pg_db.name), 'the lock of the killed run to go', limit=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    restore(server, tmp_path / 'b', pg_db.name, pg_db.name, replace=True)
    assert rows(server, pg_db.name) == ['1']


def test_lock_keys_are_per_target_and_purpose():
    names = ['db', 'Db', 'db ', 'd"b', "d'b", 'dé', 'x' * 63, 'db\n']
    keys = {PostgresClient.lock_key('restore', n) for n in names}
    assert len(keys) == len(names)
    assert PostgresClient.lock_key('restore', 'db') != PostgresClient.lock_key('drill', 'db')
    assert all(-2 ** 63 <= k < 2 ** 63 for k in keys)
