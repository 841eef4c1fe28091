"""Security and conformance review, round 9 (integration layer): real ansible-playbook runs.

- json_log callback: the log's missing directories were made with ``os.makedirs`` (0777 minus the umask): under
  umask 000 (a service with UMask=0000, an operator's shell) every account could write there, rename the log away
  or plant a link at its name.
- recovery role: the rollback record was checked with ``stat`` (no follow) and then read with ``slurp`` (which
  follows links): the application's account could swap a link in between and root's file became the record.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook


@pytest.fixture
def umask_000():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_json_log_directories_are_not_world_writable_under_umask_000(tmp_path, umask_000):
    """The directories the callback makes for its log are never writable by other accounts, whatever the umask."""
    top = tmp_path / 'logs'
    log = top / 'ops' / 'run' / 'tasks.jsonl'
    tasks = [{'name': 'one step', 'ansible.builtin.debug': {'msg': 'x'}}]
    result = run_playbook(write_playbook(tmp_path, tasks), envvars={
        'ANSIBLE_CALLBACKS_ENABLED': 'opsready.operations.json_log', 'OPSREADY_JSON_LOG_PATH': str(log)})
    assert result.rc == 0, result.stdout[-2000:]
    assert json.loads(log.read_text().splitlines()[0])['context']['task'] == 'one step'
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.lstat().st_mode) for p in [top, top / 'ops', log.parent, log]}
    assert {name: '%o' % mode for name, mode in modes.items() if mode & 0o022} == {}

