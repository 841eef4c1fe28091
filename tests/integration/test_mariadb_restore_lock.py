"""Two db_restore runs into the same MariaDB target at once: the first holds a server lock named after the target
for its whole run; the second fails at once saying another restore into that database is running, changes
nothing, and leaves no temporary database. Before, both loaded their copies and both swapped, one after the
other. The first run is held in its swap by a session with an open transaction on the target (as a busy
application would), so the overlap is certain, then completes once that session ends."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from tests.integration.test_mariadb_restore_classes import backup, restore  # noqa: E402


def test_second_concurrent_restore_into_the_same_target_fails_fast(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (x int); INSERT INTO t VALUES (1)')
    backup(server, maria_db.name, tmp_path / 'b')
    maria_db.sql('INSERT INTO t VALUES (2)')
    holder = threading.Thread(target=lambda: maria_db.sql(
        'BEGIN; SELECT count(*) FROM t; SELECT SLEEP(60); COMMIT', check=False, timeout=90))
    holder.start()
    first: dict = {}

    def run_first() -> None:
        try:
            first['result'] = restore(server, tmp_path / 'b', maria_db.name, maria_db.name, replace=True)
        except Exception as exc:  # reported by the assertions below
            first['error'] = exc

    runner = threading.Thread(target=run_first)
    try:
        time.sleep(0.5)
        runner.start()
        # the first run is in its swap, waiting for the holder's metadata lock
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not server.sql(
                "SELECT id FROM information_schema.processlist WHERE state LIKE 'Waiting for table metadata lock%'"):
            time.sleep(0.1)
        schemas = sorted(r[0] for r in server.sql('SELECT schema_name FROM information_schema.schemata'))
        started = time.monotonic()
        with pytest.raises(OpsReadyError, match='Another db_restore into database %s' % maria_db.name) as info:
            restore(server, tmp_path / 'b', maria_db.name, maria_db.name, replace=True)
        assert time.monotonic() - started < 10, 'the second run waited instead of failing fast'
        assert 'held by connection' in str(info.value)
        assert sorted(r[0] for r in server.sql('SELECT schema_name FROM information_schema.schemata')) == schemas
    finally:
        for row in server.sql("SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(60)%'"):
            server.sql('KILL %s' % row[0], check=False)
        holder.join()
        runner.join(120)
    assert 'error' not in first, first.get('error')
    assert sorted(r[0] for r in maria_db.sql('SELECT x FROM t')) == ['1']
    # the lock went with the first run: a third run goes through
    restore(server, tmp_path / 'b', maria_db.name, maria_db.name, replace=True)
    leftovers = server.sql("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '%opsready%'")
    assert not [r for r in leftovers if r[0].startswith(maria_db.name[:20])], leftovers
