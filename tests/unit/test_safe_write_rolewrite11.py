"""safe_write owner / group / validate / diff (rolewrite11): what the roles' root writes into operator-chosen
directories (systemd units, cron files, logrotate policies) need from ansible.builtin.copy/template - the owner and
group set on the staged file's descriptor (never by name, never taken from a hard link at the name), a validate
command run on a private copy before the rename, a diff of the old and new content (never of what a planted link
leads to), changed only when content, mode, owner or group differ. All fail on the old module (unsupported
parameters)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from tests.unit.plugins.modules.test_conformance_round7 import run_module

NOBODY = pwd.getpwnam('nobody')
NOGROUP = grp.getgrgid(NOBODY.pw_gid)
TEXT = 'rotate 7\n'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='giving a file to another user needs root')


def _write(tmp_path: Path, dest: Path, check: bool = False, diff: bool = False, **options) -> dict:
    options.setdefault('content', TEXT)
    result, _out = run_module(tmp_path, 'safe_write', dict(options, dest=str(dest)), check=check, diff=diff)
    return result


def _owner(path: Path) -> tuple:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink


def test_owner_and_group_set_and_changed_only_when_they_differ(tmp_path):
    dest = tmp_path / 'app' / 'policy'
    dest.parent.mkdir()
    dry = _write(tmp_path, dest, check=True, owner='nobody', group=NOGROUP.gr_name)
    assert (dry.get('failed'), dry['changed'], dest.exists()) == (None, True, False), dry
    first = _write(tmp_path, dest, owner='nobody', group=NOGROUP.gr_name, mode='0640')
    assert first['changed'] and first['changes'] == ['content'], first
    assert _owner(dest) == (NOBODY.pw_uid, NOGROUP.gr_gid, 0o640, 1) and dest.read_text() == TEXT
    again = _write(tmp_path, dest, owner=str(NOBODY.pw_uid), group=str(NOGROUP.gr_gid), mode='0640')
    assert again['changed'] is False and again['changes'] == [], again
    # root's own file given to nobody: only the owner and group change (no warning, nothing replaced)
    dest.unlink()
    assert _write(tmp_path, dest, owner='root', group='root', mode='0640')['changed']
    moved = _write(tmp_path, dest, owner='nobody', group=NOGROUP.gr_name, mode='0640')
    assert moved['changes'] == ['owner', 'group'] and moved['replaced'] is None and not moved.get('warnings'), moved
    assert _owner(dest)[:2] == (NOBODY.pw_uid, NOGROUP.gr_gid)
    dry_back = _write(tmp_path, dest, check=True, owner='root', group='root', mode='0640')
    assert dry_back['changed'] and _owner(dest)[:2] == (NOBODY.pw_uid, NOGROUP.gr_gid), dry_back
    assert sorted(p.name for p in dest.parent.iterdir()) == ['policy']


def test_a_hard_link_at_the_name_gives_neither_its_owner_nor_its_content(tmp_path):
    """ansible.builtin.copy gives the new file the owner of a hard link at the name; here the wanted owner is set on
    the staged file, the other name's file is untouched and its content never reaches the diff."""
    theirs = tmp_path / 'app' / 'theirs'
    theirs.parent.mkdir()
    theirs.write_text('their-secret\n')
    os.chown(theirs, NOBODY.pw_uid, NOBODY.pw_gid)
    dest = tmp_path / 'app' / 'policy'
    os.link(theirs, dest)
    result = _write(tmp_path, dest, diff=True, owner='root', group='root', mode='0644')
    assert result['changed'] and 'hard links' in result['replaced'], result
    assert _owner(dest) == (0, 0, 0o644, 1) and dest.read_text() == TEXT
    assert theirs.read_text() == 'their-secret\n' and _owner(theirs)[0] == NOBODY.pw_uid
    assert 'their-secret' not in json.dumps(result) and result['diff']['before'] == '', result


def test_diff_shows_before_and_after_only_when_the_content_changes(tmp_path):
    dest = tmp_path / 'policy'
    dest.write_text('rotate 3\n')
    dest.chmod(0o644)
    # the module's own output never holds the content (no_log): the action plugin adds it on the controller
    # (test_safe_write_diff_through_ansible_playbook)
    dry = _write(tmp_path, dest, check=True, diff=True)
    assert dry['diff']['before'] == 'rotate 3\n' and dry['diff']['after_is_content'] is True, dry
    assert 'after' not in dry['diff'] and TEXT not in json.dumps(dry), dry
    assert dest.read_text() == 'rotate 3\n'
    done = _write(tmp_path, dest, diff=True)
    assert done['changed'] and (done['diff']['before'], done['diff']['after_is_content']) == ('rotate 3\n', True)
    assert 'diff' not in _write(tmp_path, dest, diff=True), 'an unchanged file shows a diff'
    mode_only = _write(tmp_path, dest, diff=True, mode='0600')
    assert mode_only['changes'] == ['mode'] and mode_only['diff']['before'] == mode_only['diff']['after'] == ''


def test_validate_runs_on_a_private_copy_before_the_rename(tmp_path):
    dest = tmp_path / 'app dir' / 'my policy'
    dest.parent.mkdir()
    dest.write_text('old\n')
    dest.chmod(0o644)
    seen = tmp_path / 'seen'
    check = "/bin/sh -c 'echo \"$0\" >> %s; grep -q rotate \"$0\"' %%s" % seen
    refused = _write(tmp_path, dest, content='garbage\n', validate=check)
    assert refused.get('failed') and 'validate' in refused['msg'] and str(dest) in refused['msg'], refused
    assert dest.read_text() == 'old\n' and sorted(p.name for p in dest.parent.iterdir()) == ['my policy']
    paths = seen.read_text().splitlines()
    assert len(paths) == 1 and paths[0].endswith('/my policy') and not paths[0].startswith(str(dest.parent))
    assert not os.path.exists(paths[0]), 'the validated copy was left behind'
    assert _write(tmp_path, dest, validate=check)['changed'] and dest.read_text() == TEXT
    assert _write(tmp_path, dest, validate=check)['changed'] is False
    assert _write(tmp_path, dest, check=True, content='rotate 1\n', validate=check)['changed']
    assert len(seen.read_text().splitlines()) == 2, 'validate ran although nothing was written'


def test_option_refusals(tmp_path):
    dest = tmp_path / 'x'
    for options, word in (({'owner': 'no-such-user-rw11'}, 'no-such-user-rw11'),
                          ({'group': 'no-such-group-rw11'}, 'no-such-group-rw11'),
                          ({'validate': '/bin/true'}, '%s')):
        result = _write(tmp_path, dest, **options)
        assert result.get('failed') and word in result['msg'] and not dest.exists(), result


# --- safe_dir: the check the backup role's second copy (backup_copy_to) now runs before writing as root -------------
def _dir(tmp_path: Path, path, check: bool = False) -> dict:
    result, _out = run_module(tmp_path, 'safe_dir', {'path': str(path)}, check=check)
    return result


def test_safe_dir_creates_0700_and_refuses_a_directory_another_account_controls(tmp_path):
    tmp_path.chmod(0o755)
    new = tmp_path / 'copies' / 'second'
    dry = _dir(tmp_path, new, check=True)
    assert (dry.get('failed'), dry['changed'], new.exists()) == (None, True, False), dry
    made = _dir(tmp_path, new)
    assert made['changed'] and stat.S_IMODE(new.stat().st_mode) == 0o700, made
    assert _dir(tmp_path, new)['changed'] is False
    theirs = tmp_path / 'theirs'
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY.pw_uid, NOBODY.pw_gid)
    for path in (theirs, theirs / 'below'):
        for check in (True, False):
            refused = _dir(tmp_path, path, check=check)
            assert refused.get('failed') and str(theirs) in refused['msg'], refused
    assert os.listdir(theirs) == [] and stat.S_IMODE(theirs.stat().st_mode) == 0o755
    assert _dir(tmp_path, 'relative/dir').get('failed')


def test_safe_write_diff_through_ansible_playbook(tmp_path):
    """Through a real ansible-playbook run: --diff shows the old and the new content (the new one added by the action
    plugin on the controller), and a verbose run without --diff never prints the content (no_log, as
    ansible.builtin.copy's content)."""
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]
    dest = tmp_path / 'policy'
    dest.write_text('rotate 3\n')
    dest.chmod(0o644)
    book = tmp_path / 'play.yml'
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'opsready.operations.safe_write': {'dest': str(dest), 'content': '{{ new_text }}'}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(repo / 'ansible.cfg'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local'),
               ANSIBLE_NOCOLOR='1')
    playbook = str(Path(sys.executable).parent / 'ansible-playbook')

    def play(text, *args):
        result = subprocess.run([playbook, '-i', str(repo / 'inventories' / 'local'), str(book), '-e',
                                 json.dumps({'new_text': text})] + list(args), cwd=str(repo), env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        return result.stdout
    shown = play('rotate 9 secret-free\n', '--diff', '--check')
    assert '-rotate 3' in shown and '+rotate 9 secret-free' in shown, shown[-3000:]
    assert dest.read_text() == 'rotate 3\n'
    quiet = play('rotate 5 s3cr3t-v4lue\n', '-vvv')
    assert 's3cr3t-v4lue' not in quiet and dest.read_text() == 'rotate 5 s3cr3t-v4lue\n', quiet[-3000:]
