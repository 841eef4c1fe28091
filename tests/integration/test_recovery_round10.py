"""Recovery role, round 10: the rollback record is written into the application's directory (its deploy account's)
by root. ansible.builtin.copy (follow: false) met a link planted at the record's name by removing it and then
creating the file by name (open 'w': no O_NOFOLLOW, no O_EXCL): a link put back in between was followed, root's file
it named truncated, and the new record given that file's owner and group. The account owning the application's
directory wins that race with a loop of symlink() calls.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.harness.playbook import run_playbook

# When the role starts the task that writes the record, the application's account (here the test) puts a link at
# the record's name. Callbacks run in the controller before the task reaches the host: the window is hit every time.
PLANTER = '''
import os
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'plant_record'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task.get_name().endswith('Record the rollback (a second run does not roll back further)'):
            record = os.environ['PLANT_RECORD']
            if os.path.lexists(record):
                os.unlink(record)
            if os.environ.get('PLANT_HARD'):
                os.link(os.environ['PLANT_TARGET'], record)
            else:
                os.symlink(os.environ['PLANT_TARGET'], record)
            open(os.environ['PLANT_DONE'], 'w').close()
'''

# While the role writes the record, the application's account puts a link back at the record's name as soon as the
# name is free: a tight loop of symlink() in a process of its own (the module runs in another), started when the role
# starts that task and stopped at the next.
RACER = '''
import os
import subprocess
import sys
from ansible.plugins.callback import CallbackBase

LOOP = (
    "import os, sys, time\\n"
    "record, target = sys.argv[1], sys.argv[2]\\n"
    "deadline = time.monotonic() + 20\\n"
    "while time.monotonic() < deadline:\\n"
    "    for _ in range(1000):\\n"
    "        try:\\n"
    "            os.symlink(target, record)\\n"
    "        except FileExistsError:\\n"
    "            pass\\n")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'race_record'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._racer = None

    def _stop(self):
        if self._racer is not None:
            self._racer.kill()
            self._racer.wait()
            self._racer = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._stop()
        if task.get_name().endswith('Record the rollback (a second run does not roll back further)'):
            self._racer = subprocess.Popen([sys.executable, '-c', LOOP, os.environ['RACE_RECORD'],
                                            os.environ['RACE_TARGET']], stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True)
            open(os.environ['RACE_DONE'], 'w').close()

    def v2_runner_on_ok(self, result):
        self._stop()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._stop()

    def v2_playbook_on_stats(self, stats):
        self._stop()
'''


def _app(tmp_path):
    root = tmp_path / 'srv' / 'myapp'
    for release in ('v1', 'v2'):
        (root / 'releases' / release).mkdir(parents=True)
    (root / 'current').symlink_to('releases/v2')
    return root


def _run(tmp_path, root, target, extra_env=None):  # pylint: disable=too-many-arguments
    play = tmp_path / 'play'
    (play / 'callback_plugins').mkdir(parents=True, exist_ok=True)
    (play / 'callback_plugins' / 'plant_record.py').write_text(PLANTER)
    (play / 'recovery.yml').write_text(json.dumps([{'name': 'recovery', 'hosts': 'localhost', 'gather_facts': False,
                                                    'roles': [{'role': 'opsready.operations.recovery'}]}]))
    planted = tmp_path / 'planted'
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'plant_record', 'PLANT_RECORD': str(root / '.opsready-rollback.json'),
           'PLANT_TARGET': str(target), 'PLANT_DONE': str(planted)}
    env.update(extra_env or {})
    result = run_playbook(str(play / 'recovery.yml'), extravars={
        'recovery_app': {'path': str(root)}, 'recovery_databases': [], 'recovery_file_restores': [],
        'recovery_services': []}, envvars=env)
    assert planted.exists(), 'the callback did not run: the test proves nothing'
    return result


@pytest.mark.parametrize('link', ['hardlink', 'symlink'])
def test_record_written_over_a_planted_link_is_roots_own_file(tmp_path, link):
    """The name leads to a file of another account when the role writes the record. A hard link (the account may
    link its own files): copy gave the new record that file's owner and group (atomic_move copies the owner of what
    is at the name). The symlink case is a guard (passed on the old code: copy removed a symlink first)."""
    root = _app(tmp_path)
    target = tmp_path / 'someone-elses.json'
    target.write_text('{"other": true}\n')
    os.chown(target, 65534, 65534)
    result = _run(tmp_path, root, target, {'PLANT_HARD': '1'} if link == 'hardlink' else None)
    assert result.rc == 0, result.stdout[-3000:]
    record = root / '.opsready-rollback.json'
    st = os.lstat(record)
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1, 'the record is still the planted %s' % link
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), os.getegid(), 0o644), \
        'the record took the owner of the file at its name: %d:%d %04o' % (st.st_uid, st.st_gid, st.st_mode)
    assert json.loads(record.read_text()) == {'from': 'v2', 'to': 'v1'}
    assert target.read_text() == '{"other": true}\n' and os.stat(target).st_uid == 65534
    assert os.readlink(root / 'current') == 'releases/v1'


def test_record_not_left_as_a_link_to_a_file_with_the_same_content(tmp_path):
    """Guard (passed on the old code: copy rewrote a symlink whatever the checksum said): a link to a root-only file
    holding exactly the record's content is replaced by the record, the file it names untouched."""
    root = _app(tmp_path)
    target = tmp_path / 'root-only.json'
    target.write_text(json.dumps({'from': 'v2', 'to': 'v1'}, indent=4) + '\n')
    target.chmod(0o600)
    before = target.read_bytes()
    result = _run(tmp_path, root, target)
    assert result.rc == 0, result.stdout[-3000:]
    record = root / '.opsready-rollback.json'
    assert not record.is_symlink(), 'the planted link was left as the record'
    assert json.loads(record.read_text()) == {'from': 'v2', 'to': 'v1'}
    assert stat.S_IMODE(os.lstat(record).st_mode) == 0o644
    assert target.read_bytes() == before and stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_link_put_back_while_the_record_is_written_is_never_followed(tmp_path):
    """The racing account's link to a root-only file, put back at the record's name whenever it is free: root's file
    is never truncated or re-owned, and the record is a regular file of root's each run. A race: on the old code the
    link won about one write in five (root's file truncated), so this test failed only sometimes there; the
    hard-link case above is the deterministic proof."""
    root = _app(tmp_path)
    target = tmp_path / 'root-only.conf'
    target.write_text('root-only content\n')
    target.chmod(0o600)
    play = tmp_path / 'play'
    (play / 'callback_plugins').mkdir(parents=True)
    (play / 'callback_plugins' / 'race_record.py').write_text(RACER)
    (play / 'recovery.yml').write_text(json.dumps([{'name': 'recovery', 'hosts': 'localhost', 'gather_facts': False,
                                                    'roles': [{'role': 'opsready.operations.recovery'}]}]))
    record = root / '.opsready-rollback.json'
    raced = tmp_path / 'raced'
    for attempt in range(3):
        if record.is_symlink():
            record.unlink()   # what the racer left after the task: the operator's clean-up between runs
        result = run_playbook(str(play / 'recovery.yml'), extravars={
            'recovery_app': {'path': str(root), 'release': 'v1' if attempt % 2 == 0 else 'v2'},
            'recovery_databases': [], 'recovery_file_restores': [], 'recovery_services': []}, envvars={
            'ANSIBLE_CALLBACKS_ENABLED': 'race_record', 'RACE_RECORD': str(record), 'RACE_TARGET': str(target),
            'RACE_DONE': str(raced)})
        assert raced.exists(), 'the callback did not run: the test proves nothing'
        assert target.read_text() == 'root-only content\n', 'root truncated the file the link named (run %d)' % attempt
        assert (os.stat(target).st_uid, stat.S_IMODE(os.stat(target).st_mode)) == (0, 0o600)
        if result.rc == 0:
            st = os.lstat(record)
            assert stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid(), 'run %d' % attempt
        else:
            assert '.opsready-rollback.json' in result.stdout, result.stdout[-3000:]
