"""Module results that hold a ``path`` or ``dest`` are reported as the module made them, in real ansible-playbook runs
(pathinfo15; the every-module check is tests/unit/test_path_info_pathinfo15.py).

ansible-core's ``exit_json``/``fail_json`` pass every result through ``AnsibleModule.add_path_info``: when it holds
``path`` (else ``dest``) and that name exists, it adds ``uid``/``gid``/``owner``/``group`` (an ``lstat`` of the name
with ``$NAME`` and ``~`` expanded), ``mode``/``size`` (an ``lstat`` of the name as given) and ``state`` - a lookup by
name, as root, through every link on the way. Almost every refusal of ours carries ``path=`` or ``dest=`` (the file or
directory refused), so:

- a refusal of a file whose name holds ``$HOME`` (a name from an archive or a tree, which no option expanded) ended
  in ``FileNotFoundError`` from the ``lstat`` of ``.../f/root``: a MODULE FAILURE traceback instead of our message;
- a refusal of a directory reached through a link another account planted reported the owner, mode and kind of the
  directory of root's the link leads to (``owner: root``, ``mode: '0700'``, ``state: directory``): the very lookup
  the refusal was there to avoid, its result in the task's output.

Failed on the old code: both tests (the traceback; the target's ``owner``/``mode``/``state``)."""

from __future__ import annotations

import os
import pwd

from tests.harness.playbook import run_playbook, write_playbook

ADDED = ('uid', 'gid', 'owner', 'group', 'mode', 'state', 'size', 'secontext')


def _failed(run, task: str) -> dict:
    res = run.result(task)
    assert res['_event'] == 'runner_on_failed', res
    assert 'MODULE FAILURE' not in res['msg'] and 'Traceback' not in run.stdout, res
    return res


def test_file_restore_refusing_a_dollar_name_says_why_not_a_traceback(tmp_path):
    # directories named d$HOME (one with a newline, one with a non-UTF-8 byte too) archived; at restore each name is a
    # link another account put in a directory of its own: refused (never followed), path= that name
    nobody = pwd.getpwnam('nobody')
    names = ['d$HOME', 'n\nl$HOME', os.fsdecode(b'caf\xe9$HOME')]
    src = tmp_path / 'src'
    for name in names:
        (src / name).mkdir(parents=True)
        (src / name / 'x').write_bytes(b'archived\n')
    run = run_playbook(write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.file_backup': {
        'paths': [str(src)], 'dest': str(tmp_path / 'b'), 'name': 'app'}}]))
    assert run.rc == 0, run.stdout[-3000:]
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir(mode=0o700)
    for number, name in enumerate(names):
        dest = tmp_path / ('dst-%d' % number)
        parent = dest / str(src).lstrip('/')   # archived under its absolute path
        parent.mkdir(parents=True)
        os.chown(str(parent), nobody.pw_uid, nobody.pw_gid)
        os.symlink(str(elsewhere), str(parent / name))
        os.lchown(str(parent / name), nobody.pw_uid, nobody.pw_gid)
        run = run_playbook(write_playbook(tmp_path, [{'name': 'restore', 'ignore_errors': True,
                                                      'opsready.operations.file_restore': {
                                                          'src': str(tmp_path / 'b'), 'name': 'app',
                                                          'dest': str(dest)}}]))
        res = _failed(run, 'restore')
        assert 'Refusing to restore under' in res['msg'] and 'is not followed' in res['msg'], res
        assert not [k for k in ADDED if k in res], res
        assert os.listdir(elsewhere) == []


def test_refusal_through_a_planted_link_reports_nothing_of_its_target(tmp_path):
    nobody = pwd.getpwnam('nobody')
    # root's own directory, 0700, reached through a link an unprivileged account put in its own directory
    private = tmp_path / 'private'
    (private / 'inner').mkdir(parents=True)
    os.chmod(private, 0o700)
    os.chmod(private / 'inner', 0o700)
    (private / 'inner' / 'rules.yml').write_text('groups: []\n')
    home = tmp_path / 'alice'
    home.mkdir()
    os.symlink(str(private), str(home / 'l'))
    os.lchown(str(home / 'l'), nobody.pw_uid, nobody.pw_gid)
    os.chown(str(home), nobody.pw_uid, nobody.pw_gid)
    os.chmod(str(tmp_path), 0o755)
    dest = home / 'l' / 'inner' / 'rules.yml'
    run = run_playbook(write_playbook(tmp_path, [{'name': 'rules', 'ignore_errors': True,
                                                  'opsready.operations.prometheus_rules': {
                                                      'dest': str(dest), 'validate': 'never'}}]))
    res = _failed(run, 'rules')
    assert 'not safe to write the rules file into' in res['msg'], res
    # nothing of root's directory (nor of the link) described: no owner, mode, size or kind
    assert not [k for k in ADDED if k in res], res
    assert (private / 'inner' / 'rules.yml').read_text() == 'groups: []\n'
