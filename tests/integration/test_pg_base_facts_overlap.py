"""The server's facts of ``db_backup kind=base`` are read while pg_basebackup connects and checkpoints (issue 22),
not before it starts: the facts psql is off the run's critical path. When they are then refused, the run
still fails with the server's reason and leaves no artifact, staging directory or manifest behind."""

from __future__ import annotations

import os
import secrets
import sys
import time

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from tests.integration.test_pg_base_server_compressed import base  # noqa: E402


@pytest.fixture
def timeline(monkeypatch):
    """(program, argv[1:2], started, ended or None) of every program run or started; they all really run."""
    seen: list = []
    run, popen = ToolRunner.run, ToolRunner.popen

    def traced_run(self, argv, *args, **kwargs):
        started = time.monotonic()
        try:
            return run(self, argv, *args, **kwargs)
        finally:
            seen.append((os.path.basename(argv[0]), list(argv[1:2]), started, time.monotonic()))

    def traced_popen(self, argv, *args, **kwargs):
        seen.append((os.path.basename(argv[0]), list(argv[1:2]), time.monotonic(), None))
        return popen(self, argv, *args, **kwargs)

    monkeypatch.setattr(ToolRunner, 'run', traced_run)
    monkeypatch.setattr(ToolRunner, 'popen', traced_popen)
    return seen


def test_pg_basebackup_starts_before_the_facts_are_back(postgres_server, tmp_path, timeline):
    manifest = base(postgres_server, tmp_path / 'b', verify=True, threads=2)
    assert manifest['tool']['compression'] == 'server' and manifest['verification']['ok'] is True
    # the facts still reach the manifest
    assert manifest['server_version'] and manifest['position']['wal_segment_size'] > 0
    assert manifest['origin'].startswith('pg:')
    psql = [r for r in timeline if r[0] == 'psql']
    backup = [r for r in timeline if r[0] == 'pg_basebackup' and r[1] == ['-D']]
    assert psql and len(backup) == 1, timeline
    facts_end, backup_start = psql[0][3], backup[0][2]
    assert backup_start < facts_end, 'pg_basebackup waited for the facts: %s' % timeline


@pytest.fixture
def facts_refused(postgres_server):
    """A login pg_basebackup's replication connection accepts but whose ordinary sessions in the maintenance
    database (where the facts are asked) the server refuses: a library it must preload there is missing."""
    role = 'opsready_facts_%s' % secrets.token_hex(4)
    password = secrets.token_urlsafe(16)
    postgres_server.sql("CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'" % (role, password), superuser=True)
    postgres_server.sql("ALTER ROLE %s IN DATABASE postgres SET session_preload_libraries = "
                        "'opsready_no_such_library'" % role, superuser=True)
    try:
        yield ConnectionParams(host=postgres_server.host, port=postgres_server.port, user=role, password=password)
    finally:
        postgres_server.sql('DROP ROLE IF EXISTS %s' % role, superuser=True)


def test_facts_refused_while_pg_basebackup_runs_leave_nothing(postgres_server, tmp_path, facts_refused, timeline):
    """The refusal is the run's error, and nothing of the backup pg_basebackup had begun is left (the code before
    the overlap never started pg_basebackup here: it asked the facts first)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
    dest = tmp_path / 'b'
    dest.mkdir()   # a catalog directory that exists: the facts are read while pg_basebackup runs
    with pytest.raises(OpsReadyError, match='opsready_no_such_library'):
        run_backup(get_engine('postgresql', facts_refused), BackupOptions(kind='base', dest=str(dest), threads=2),
                   verify=True)
    # no artifact, manifest or staging directory (the set's lock file stays, as after any run)
    assert [n for n in os.listdir(dest) if not n.startswith('.')] == []
    # pg_basebackup had started before the facts were refused (the ordering this file is about)
    assert [r[1] for r in timeline if r[0] == 'pg_basebackup' and r[1] == ['-D']] == [['-D']], timeline
    # and the server holds no backup of ours still running (pg_basebackup was stopped, not left behind)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        running = postgres_server.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = '%s'"
                                      % facts_refused.user, superuser=True)
        if running[0][0] in (0, '0'):
            break
        time.sleep(0.1)
    assert running[0][0] in (0, '0'), running


def test_facts_refused_on_a_first_run_create_no_directory(postgres_server, tmp_path, facts_refused, timeline):
    """Regression guard (passes on the old code too, which asked the facts before creating anything): the backup
    directory a refused first run created for pg_basebackup is removed again, so it leaves nothing at all."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
    dest = tmp_path / 'new'
    with pytest.raises(OpsReadyError, match='opsready_no_such_library'):
        run_backup(get_engine('postgresql', facts_refused), BackupOptions(kind='base', dest=str(dest)), verify=False)
    assert not dest.exists()
    # and the ordering was the new one here too: pg_basebackup had started
    assert [r[1] for r in timeline if r[0] == 'pg_basebackup' and r[1] == ['-D']] == [['-D']], timeline


@pytest.mark.parametrize('older', ['server', 'client'])
def test_an_older_server_or_client_is_backed_up_the_streamed_way(postgres_server, tmp_path, monkeypatch,
                                                                 timeline, older):
    """pg_basebackup is started with server compression before the facts and its own version are back; a server
    or a pg_basebackup that then says it is older than 15 (which cannot compress on the server) gets that run
    stopped and its staging removed, and the backup taken the streamed way. Both here are 15: the facts or the
    version are made to say 14."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import PostgresEngine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
    if older == 'server':
        facts = PostgresEngine.server_facts
        monkeypatch.setattr(PostgresEngine, 'server_facts', lambda self: dict(facts(self), server_version='14.11'))
    else:
        version = PostgresClient.tool_version
        monkeypatch.setattr(PostgresClient, 'tool_version', lambda self, tool: (
            'pg_basebackup (PostgreSQL) 14.11' if tool == 'pg_basebackup' else version(self, tool)))
    dest = tmp_path / 'b'
    dest.mkdir()
    manifest = base(postgres_server, dest, verify=True, threads=2)
    assert manifest['tool'].get('compression') != 'server' and 'backup_manifest' not in manifest
    assert manifest['verification']['ok'] is True
    assert (manifest['server_version'] == '14.11') if older == 'server' else ('14.11' in manifest['tool']['version'])
    started = [r[1] for r in timeline if r[0] == 'pg_basebackup' and r[1] != ['--version']]
    assert started == [['-D'], ['-D']], timeline   # the server-compressed start, then the streamed one
    assert sorted(n for n in os.listdir(dest) if not n.startswith('.')) == sorted(
        [os.path.basename(manifest['path']), os.path.basename(manifest['path']) + '.manifest.json'])
