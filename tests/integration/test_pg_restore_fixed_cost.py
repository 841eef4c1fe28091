"""The fixed cost of a PostgreSQL restore over ``zstd -d | pg_restore -j`` (issue 22): the decompressed copy that
``pg_restore -j`` needs starts before any server round trip, and the run's statements in the maintenance database
(the lock, the target's inspection, CREATE DATABASE, the database's properties, the rename) go through the one
psql session that holds the target's lock, instead of a psql program start and a login each.

And what must not change with it: a restore refused by a check, by the lock or by an unreachable server stops its
copy and leaves no scratch file and no database; a statement failing on the locked session (a locale the
server lacks) drops the temporary database and releases the lock; properties and ACL travel as before."""

from __future__ import annotations

import json
import os
import sys
import threading

import psutil
import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (  # noqa: E402
    manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    restore as pg_restore)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from tests.integration.test_pg_restore_streamed_checksum import (  # noqa: E402
    backup, fingerprint, leftovers, params, restore, seed)


@pytest.fixture
def programs(monkeypatch):
    """The programs the restore starts, in order (basename of argv[0]); they all really run."""
    started: list = []
    run, popen = ToolRunner.run, ToolRunner.popen

    def traced_run(self, argv, *args, **kwargs):
        started.append(os.path.basename(argv[0]))
        return run(self, argv, *args, **kwargs)

    def traced_popen(self, argv, *args, **kwargs):
        started.append(os.path.basename(argv[0]))
        return popen(self, argv, *args, **kwargs)

    monkeypatch.setattr(ToolRunner, 'run', traced_run)
    monkeypatch.setattr(ToolRunner, 'popen', traced_popen)
    return started


def no_children() -> list:
    """The restore's programs still running (the test server's own processes are children too)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.name() in ('zstd', 'psql', 'pg_restore') and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.name())
        except psutil.NoSuchProcess:
            pass
    return found


def test_copy_starts_first_and_the_locked_session_carries_the_statements(pg_db, tmp_path, programs):
    server = pg_db.server
    seed(pg_db)
    # properties applied and an ACL closed from creation on: both go through the locked session
    server.sql("COMMENT ON DATABASE %s IS 'kept: it''s here'; REVOKE CONNECT ON DATABASE %s FROM PUBLIC"
               % (pg_db.name, pg_db.name), database='postgres')
    expected = fingerprint(server, pg_db.name)
    dest = tmp_path / 'b'
    backup(server, pg_db.name, dest)
    target = pg_db.name + '_fast'
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    del programs[:]
    try:
        result = restore(server, dest, pg_db.name, target, jobs=2, tmpdir=str(scratch))
        assert result['method_detail'] == 'pg_restore -j 2 (decompressed copy)'
        # the copy's thread and the lock's session start together (before: four psql runs came first)
        assert 'zstd' in programs[:2], programs
        # the lock's session and ANALYZE in the restored copy; nothing else logs in with psql
        assert programs.count('psql') == 2, programs
        # the load, and its listing (no login, reads the archive's head: ~5 ms) to find ACL entries that -j would
        # run side by side (restore.restore_in_parallel); this dump has none, so one load
        assert programs.count('pg_restore') == 2, programs
        assert fingerprint(server, target) == expected
        comment = server.sql("SELECT shobj_description(oid, 'pg_database'), datacl::text FROM pg_database "
                             "WHERE datname = '%s'" % target, database='postgres')[0]
        assert comment[0] == "kept: it's here"
        public = [e for e in (comment[1] or '').strip('{}').split(',') if e.startswith('=')]
        assert comment[1] and not any('c' in e.split('/')[0] for e in public), comment[1]   # no CONNECT for PUBLIC
        assert os.listdir(scratch) == [] and leftovers(server) == []
    finally:
        server.drop_database(target)


def test_a_refused_restore_stops_its_copy_and_leaves_nothing(pg_db, tmp_path):
    server = pg_db.server
    seed(pg_db)
    dest = tmp_path / 'b'
    backup(server, pg_db.name, dest)
    before = fingerprint(server, pg_db.name)
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    # 1. the target exists and is not empty, replace not set
    with pytest.raises(OpsReadyError, match='exists and is not empty'):
        restore(server, dest, pg_db.name, pg_db.name, jobs=2, tmpdir=str(scratch))
    assert os.listdir(scratch) == [] and leftovers(server) == [] and no_children() == []
    # 2. another restore into the target holds its lock
    engine = get_engine('postgresql', params(server))
    with pg_restore.target_lock(engine, pg_db.name):
        with pytest.raises(OpsReadyError, match='Another db_restore into database'):
            restore(server, dest, pg_db.name, pg_db.name, replace=True, jobs=2, tmpdir=str(scratch))
    assert os.listdir(scratch) == [] and leftovers(server) == [] and no_children() == []
    # 3. the server does not answer: the classified reason, not a lock error
    closed = ConnectionParams(host=server.host, port=1, user=server.user, password=server.password,
                              connect_timeout=2)
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
    from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
    with pytest.raises(OpsReadyError, match='Cannot connect to PostgreSQL'):
        run_restore(RestoreRequest(engine='postgresql', src=str(dest), source_database=pg_db.name,
                                   database=pg_db.name + '_x', jobs=2, tmpdir=str(scratch)), closed)
    assert os.listdir(scratch) == [] and no_children() == []
    assert fingerprint(server, pg_db.name) == before


def test_a_statement_failing_on_the_locked_session_rolls_back_and_releases_the_lock(pg_db, tmp_path):
    """CREATE DATABASE with a locale the server lacks fails on the session (which ends with it)."""
    server = pg_db.server
    seed(pg_db)
    dest = tmp_path / 'b'
    manifest = backup(server, pg_db.name, dest)
    path = manifest_path_for(manifest['path'])
    data = json.loads(open(path).read())
    good = dict(data)
    data['database_properties'] = dict(data['database_properties'], collate='xx_NO.UTF-8', ctype='xx_NO.UTF-8')
    with open(path, 'w') as handle:
        json.dump(data, handle)
    target = pg_db.name + '_loc'
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    with pytest.raises(OpsReadyError, match='Install that locale'):
        restore(server, dest, pg_db.name, target, jobs=2, tmpdir=str(scratch))
    assert os.listdir(scratch) == [] and leftovers(server) == [] and no_children() == []
    assert server.sql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % target)[0][0] == '0'
    with open(path, 'w') as handle:
        json.dump(good, handle)
    try:
        restore(server, dest, pg_db.name, target, jobs=2, tmpdir=str(scratch))   # the lock went with the session
        assert fingerprint(server, target) == fingerprint(server, pg_db.name)
    finally:
        server.drop_database(target)


@pytest.mark.parametrize('compression,cli', [('zstd', True), ('zstd', False), ('gzip', False)])
def test_a_cancelled_copy_stops_and_is_removed(pg_db, tmp_path, compression, cli):
    server = pg_db.server
    seed(pg_db)
    manifest = read_manifest(manifest_path_for(backup(server, pg_db.name, tmp_path / 'b',
                                                      compression=compression)['path']))
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    cancel = threading.Event()
    cancel.set()
    runner = ToolRunner() if cli else None
    with pytest.raises(pg_restore._Cancelled):
        pg_restore._decompressed_copy(manifest, str(scratch), runner, verify=True, cancel=cancel)
    assert os.listdir(scratch) == [] and no_children() == []
    # and a copier discarded while it runs (or after it finished) leaves nothing either
    copier = pg_restore._Copier(manifest, str(scratch), runner, None, True)
    copier.discard()
    assert os.listdir(scratch) == [] and no_children() == []


def test_the_listings_come_from_the_checked_copy_while_the_database_is_created(pg_db, tmp_path, monkeypatch):
    """The load's ``pg_restore --list`` (and ``--list --verbose``, this dump has a foreign key) run in the copier's
    thread once the copy is complete and its checksum matched, beside the session's CREATE DATABASE, instead of
    before the load on the main thread; the load uses them (no listing of its own), and the runs stay as before."""
    server = pg_db.server
    seed(pg_db)
    pg_db.sql("CREATE TABLE kids (id int PRIMARY KEY, item int REFERENCES items (id));"
              "INSERT INTO kids SELECT g, g FROM generate_series(1, 50) g")
    dest = tmp_path / 'b'
    backup(server, pg_db.name, dest)
    listed: list = []
    run = ToolRunner.run
    verified: list = []
    finish = pg_restore._decompressed_copy

    def copy(*args, **kwargs):
        path = finish(*args, **kwargs)
        verified.append(threading.current_thread().name)
        return path

    def traced_run(self, argv, *args, **kwargs):
        if os.path.basename(argv[0]) == 'pg_restore' and '--list' in argv:
            listed.append((threading.current_thread().name, '--verbose' in argv, list(verified)))
        return run(self, argv, *args, **kwargs)

    monkeypatch.setattr(ToolRunner, 'run', traced_run)
    monkeypatch.setattr(pg_restore, '_decompressed_copy', copy)
    target = pg_db.name + '_listed'
    try:
        result = restore(server, dest, pg_db.name, target, jobs=2, tmpdir=str(tmp_path))
        assert result['method_detail'] == 'pg_restore -j 2 (decompressed copy)'
        # one --list and one --list --verbose, both in the copier's thread after the checked copy
        assert listed == [('opsready-restore-copy', False, ['opsready-restore-copy']),
                          ('opsready-restore-copy', True, ['opsready-restore-copy'])], listed
        assert server.sql('SELECT count(*) FROM kids', database=target)[0][0] == '50'
        assert server.sql("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'kids'::regclass",
                          database=target)[0][0] == '1'
    finally:
        server.drop_database(target)


def test_analyze_reads_what_the_load_made_each_once_and_not_the_catalogs(pg_db, tmp_path):
    """ANALYZE covers the restored tables, materialized views and partitioned tables (each partition once, the
    root's statistics over its partitions too), not the system catalogs (template0's statistics)."""
    server = pg_db.server
    seed(pg_db)
    pg_db.sql("CREATE SCHEMA \"Odd s\"; CREATE TABLE \"Odd s\".\"Ro ot\" (k int, v text) PARTITION BY RANGE (k);"
              "CREATE TABLE \"Odd s\".p1 PARTITION OF \"Odd s\".\"Ro ot\" FOR VALUES FROM (0) TO (100);"
              "CREATE TABLE \"Odd s\".p2 PARTITION OF \"Odd s\".\"Ro ot\" FOR VALUES FROM (100) TO (200);"
              "INSERT INTO \"Odd s\".\"Ro ot\" SELECT g, md5(g::text) FROM generate_series(0, 199) g;"
              "CREATE MATERIALIZED VIEW mv AS SELECT id, name FROM items")
    dest = tmp_path / 'b'
    backup(server, pg_db.name, dest)
    target = pg_db.name + '_an'
    try:
        restore(server, dest, pg_db.name, target, jobs=2, tmpdir=str(tmp_path))
        counts = dict(server.sql("SELECT relname, analyze_count FROM pg_stat_all_tables WHERE relname IN "
                                 "('items', 'p1', 'p2', 'mv', 'pg_class', 'pg_attribute', 'pg_depend')",
                                 database=target))
        assert counts == {'items': '1', 'p1': '1', 'p2': '1', 'mv': '1', 'pg_class': '0', 'pg_attribute': '0',
                          'pg_depend': '0'}, counts
        # the root's statistics over its partitions, and the view's own
        stats = server.sql("SELECT tablename, inherited::text FROM pg_stats WHERE attname = 'v' OR "
                           "(tablename = 'mv' AND attname = 'name') ORDER BY 1, 2", database=target)
        expected = [('Ro ot', 'true'), ('mv', 'false'), ('p1', 'false'), ('p2', 'false')]
        assert [tuple(r) for r in stats] == expected, stats
    finally:
        server.drop_database(target)
