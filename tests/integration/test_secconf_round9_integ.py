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



# A callback of the test's own: when the role starts the task that reads the rollback record, the application's account
# (here the test) swaps the record it had checked for a link to a root-only file. Callbacks run in the controller
# before the task is sent to the host, so the window between the role's check and its read is hit every time.
SWAPPER = '''
import os
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'swap_record'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task.get_name().endswith('Read the record of an earlier rollback'):
            record = os.environ['SWAP_RECORD']
            os.unlink(record)
            os.symlink(os.environ['SWAP_TARGET'], record)
            open(os.environ['SWAP_DONE'], 'w').close()
'''


def test_recovery_rollback_record_swapped_for_a_link_after_the_check_is_not_read(tmp_path):
    """The record was checked with ``stat`` (no follow) and then read with ``slurp``, which follows links: a link
    swapped in between made root read its own 0600 file as the record (the rollback was skipped, and the secret
    was written into the new 0644 record). The read is now one no-follow open, checked on its descriptor."""
    root = tmp_path / 'srv' / 'myapp'
    for release in ('v1', 'v2'):
        (root / 'releases' / release).mkdir(parents=True)
    (root / 'current').symlink_to('releases/v2')
    record = root / '.opsready-rollback.json'
    record.write_text('{"from": "v3", "to": "v1"}\n')
    secret = tmp_path / 'root-only.json'
    secret.write_text('{"from": "S3cret-from-root-only-file", "to": "v2"}\n')
    secret.chmod(0o600)
    play = tmp_path / 'play'
    (play / 'callback_plugins').mkdir(parents=True)   # ansible-runner sets ANSIBLE_CALLBACK_PLUGINS: use the play's
    (play / 'callback_plugins' / 'swap_record.py').write_text(SWAPPER)
    (play / 'recovery.yml').write_text(json.dumps([{'name': 'recovery', 'hosts': 'localhost', 'gather_facts': False,
                                                    'roles': [{'role': 'opsready.operations.recovery'}]}]))
    swapped = tmp_path / 'swapped'
    result = run_playbook(str(play / 'recovery.yml'), extravars={
        'recovery_app': {'path': str(root)}, 'recovery_databases': [], 'recovery_file_restores': [],
        'recovery_services': []}, envvars={
        'ANSIBLE_CALLBACKS_ENABLED': 'swap_record', 'SWAP_RECORD': str(record), 'SWAP_TARGET': str(secret),
        'SWAP_DONE': str(swapped)})
    assert swapped.exists(), 'the callback did not run: the test proves nothing'
    assert 'S3cret-from-root-only-file' not in result.stdout
    written = '' if record.is_symlink() else record.read_text()
    assert 'S3cret' not in written, 'root-only content copied into the 0644 record: ' + written
    assert result.rc != 0 and 'symlink' in result.stdout and '.opsready-rollback.json' in result.stdout, \
        result.stdout[-3000:]
    assert os.readlink(root / 'current') == 'releases/v2'   # nothing done on a record it would not read
    assert secret.read_text() == '{"from": "S3cret-from-root-only-file", "to": "v2"}\n'
