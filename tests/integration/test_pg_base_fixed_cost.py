"""The fixed cost of ``db_backup kind=base`` before pg_basebackup starts (issue 22): the server's facts (one
psql, which also proves the server answers before anything is written) and pg_basebackup's version (which
decides the compression) are read at the same time, not one after the other; an unreadable version still fails
the run with its own message, and an unreachable server still leaves nothing behind."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from tests.integration.test_pg_base_server_compressed import base  # noqa: E402


@pytest.fixture
def runs(monkeypatch):
    """(program, argv[1:2], started, ended) of every program run to completion; they all really run."""
    seen: list = []
    run = ToolRunner.run

    def traced(self, argv, *args, **kwargs):
        started = time.monotonic()
        try:
            return run(self, argv, *args, **kwargs)
        finally:
            seen.append((os.path.basename(argv[0]), list(argv[1:2]), started, time.monotonic()))

    monkeypatch.setattr(ToolRunner, 'run', traced)
    return seen


def test_facts_and_version_are_read_side_by_side(postgres_server, tmp_path, runs):
    manifest = base(postgres_server, tmp_path / 'b', verify=False, threads=2)
    assert manifest['tool']['compression'] == 'server'
    psql = [r for r in runs if r[0] == 'psql']
    version = [r for r in runs if r[0] == 'pg_basebackup' and r[1] == ['--version']]
    assert len(psql) == 1 and len(version) == 1, runs
    (_n, _a, p_start, p_end), (_m, _b, v_start, v_end) = psql[0], version[0]
    assert v_start < p_end and p_start < v_end, 'one after the other: %s' % runs


def test_a_missing_pg_basebackup_fails_with_its_message_and_leaves_nothing(postgres_server, tmp_path, monkeypatch):
    # a PATH without pg_basebackup, and no packaged one either (find_client_tool's fallback looks there)
    monkeypatch.setattr('ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client.'
                        'newest_packaged_tool', lambda name, root='': None)
    tools = tmp_path / 'bin'
    tools.mkdir()
    for name in ('psql',):
        os.symlink(postgres_server.bin(name), tools / name)
    monkeypatch.setenv('PATH', str(tools))
    dest = tmp_path / 'b'
    with pytest.raises(OpsReadyError, match='pg_basebackup was not found'):
        base(postgres_server, dest, verify=False)
    # no artifact, no staging directory (the set's lock file stays, as after any run)
    assert not dest.exists() or [n for n in os.listdir(dest) if not n.startswith('.')] == []
