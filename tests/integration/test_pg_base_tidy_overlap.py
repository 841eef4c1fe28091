"""``db_backup kind=base`` tidies its set (leftovers of killed runs) while pg_basebackup connects and checkpoints
(issue 22), not before starting it: that work decides nothing about the run and, on a large catalog, is the catalog
code's import and listing. The staging pg_basebackup writes is not taken for a leftover, and tidying that fails
after the start stops pg_basebackup and leaves no staging directory, artifact or manifest."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup import jobs  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from tests.integration.test_pg_base_facts_overlap import timeline  # noqa: E402,F401  # pylint: disable=unused-import
from tests.integration.test_pg_base_server_compressed import params  # noqa: E402

STAMP = '20260101T000000000000Z'


def killed_runs(dest):
    """What two killed base backups of the cluster set left: pg_basebackup's staging and an unvouched artifact."""
    staging = dest / ('postgresql-cluster-base-%s.tar.zst.partial' % STAMP)
    staging.mkdir(parents=True)
    (staging / 'base.tar.zst').write_bytes(b'half')
    artifact = dest / ('postgresql-cluster-base-%s.tar.zst' % STAMP.replace('T00', 'T01'))
    artifact.write_bytes(b'no manifest')
    return [str(artifact), str(staging)]


@pytest.fixture
def tidied(monkeypatch):
    """When remove_leftovers ran (monotonic) and with which ``keep``."""
    seen: list = []
    real = jobs.remove_leftovers

    def traced(*args, **kwargs):
        seen.append((time.monotonic(), list(kwargs.get('keep') or ())))
        return real(*args, **kwargs)
    monkeypatch.setattr(jobs, 'remove_leftovers', traced)
    return seen


def test_leftovers_are_removed_while_pg_basebackup_runs(postgres_server, tmp_path, timeline, tidied):  # noqa: F811
    dest = tmp_path / 'b'
    left = killed_runs(dest)
    result = jobs.run_backup(get_engine('postgresql', params(postgres_server)),
                             BackupOptions(kind='base', dest=str(dest), threads=2), verify=True)
    assert sorted(result['leftovers_removed']) == sorted(left)
    assert not any(os.path.lexists(p) for p in left)
    manifest = result['manifest']
    assert manifest['tool']['compression'] == 'server' and manifest['verification']['ok'] is True
    assert sorted(n for n in os.listdir(dest) if not n.startswith('.')) == sorted(
        [os.path.basename(manifest['path']), os.path.basename(manifest['path']) + '.manifest.json'])
    backup = [r for r in timeline if r[0] == 'pg_basebackup' and r[1] == ['-D']]
    assert len(tidied) == 1 and len(backup) == 1, (tidied, timeline)
    assert tidied[0][0] > backup[0][2], 'the set was tidied before pg_basebackup started'
    # the staging pg_basebackup was writing is what it kept
    assert tidied[0][1] == [os.path.basename(manifest['path']) + '.partial']


@pytest.mark.parametrize('first_run', [False, True], ids=['existing-dest', 'first-run'])
def test_tidying_that_fails_after_the_start_leaves_nothing(postgres_server, tmp_path, monkeypatch, timeline,  # noqa: F811
                                                           first_run):
    def refused(*args, **kwargs):
        raise OpsReadyError('cannot tidy the set (test)')
    monkeypatch.setattr(jobs, 'remove_leftovers', refused)
    dest = tmp_path / 'b'
    if not first_run:
        dest.mkdir()
    with pytest.raises(OpsReadyError, match='cannot tidy the set'):
        jobs.run_backup(get_engine('postgresql', params(postgres_server)),
                        BackupOptions(kind='base', dest=str(dest), threads=2), verify=True)
    if first_run:
        assert not dest.exists()   # the directory the run created for pg_basebackup is removed again
    else:   # no artifact, manifest or staging directory (the set's lock file stays, as after any run)
        assert [n for n in os.listdir(dest) if not n.startswith('.')] == []
    # pg_basebackup had started (the ordering this file is about) and was stopped, not left running
    assert [r[1] for r in timeline if r[0] == 'pg_basebackup' and r[1] == ['-D']] == [['-D']], timeline
    deadline = time.monotonic() + 10
    while True:
        running = postgres_server.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'",
                                      superuser=True)
        if running[0][0] in (0, '0') or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert running[0][0] in (0, '0'), running
