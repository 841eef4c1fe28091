"""Fault matrix, hostile filesystems round 10b (harness: test_hostile_files / test_hostile_round3, an unprivileged
account made and removed by the test playing the account that owns a directory on the operator's path).

- schedule role: each job's extra vars (0600: they may hold a password) and its runner script were written as root
  with ansible.builtin.copy/template into schedule_config_dir, the operator's choice. An account that can write that
  directory (it is the deploy account's) could put a hard link to a file of its own at the name: copy's atomic_move
  gives the new file the owner of what is at the name, so the extra vars became that account's file (password and
  all). A symlink put back at the name between copy's unlink and its create was followed. The role now writes them
  with safe_write (an exclusive staged file renamed over the name, root's own; what was there replaced, never
  followed). The certificates report, failover record and health fleet report were switched the same way.
  Since rolewrite12 the role refuses such a directory outright (safe_dir: a directory another account owns or
  controls the way to), before anything is written; the test checks that refusal and that nothing was followed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3
from tests.faults.helpers import play

racer_user = hostile.racer_user
arena = hostile.arena
as_user = round3.as_user
user_dir = round3.user_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning schedule_config_dir puts a hard link to its own file at a job\'s '
                   'extra-vars name and a symlink to a root file at its runner script\'s name',
                   component='schedule role',
                   expected='refused before anything is written (the directory above is that account\'s: it could '
                   'swap the whole directory for a link); the linked files untouched')
def test_schedule_files_over_links_planted_by_the_directory_owner(racer_user, arena, fault):
    """Fails on the old code: ansible.builtin.copy gave the new extra-vars file (holding the password) the owner of
    the hard-linked file at its name, the directory owner's account. The symlink at the script is a guard (passed on
    the old code: a link there before the run was replaced, the race window is test_recovery_round10's)."""
    password = 'Sched-pw-%s' % os.urandom(4).hex()
    fault.secret(password)
    conf = user_dir(arena['tree'] / 'conf', racer_user)
    as_user(racer_user, 'echo mine > %s/mine && ln %s/mine %s/nightly.json && ln -s %s %s/nightly.sh'
            % (conf, conf, conf, arena['outside'] / 'victim', conf))
    (arena['base'] / 'cron').mkdir()
    victim = (arena['outside'] / 'victim').read_bytes()
    result = play(arena['base'], [{'name': 'schedule', 'ansible.builtin.include_role': {
        'name': 'opsready.operations.schedule'}}], fault=fault, timeout=300, extravars={
        'schedule_backend': 'cron', 'schedule_project_dir': str(REPO), 'schedule_cron_dir': str(arena['base'] / 'cron'),
        'schedule_config_dir': str(conf), 'schedule_log_dir': str(arena['base'] / 'log'),
        'schedule_lock_dir': str(arena['base'] / 'lock'),
        'schedule_jobs': [{'name': 'nightly', 'playbook': 'playbooks/health.yml', 'cron': '0 2 * * *',
                           'on_calendar': '*-*-* 02:00:00', 'extra_vars': {'db_password': password}}]})
    vars_st, script_st = os.lstat(conf / 'nightly.json'), os.lstat(conf / 'nightly.sh')
    fault.observed('play rc %d; extra vars %s uid %d nlink %d mode %04o; script %s'
                   % (result.rc, 'a file' if stat.S_ISREG(vars_st.st_mode) else 'not a file', vars_st.st_uid,
                      vars_st.st_nlink, stat.S_IMODE(vars_st.st_mode),
                      'a file' if stat.S_ISREG(script_st.st_mode) else 'a link'))
    fault.lost(files=int((arena['outside'] / 'victim').read_bytes() != victim))
    # Since rolewrite12 the role makes its directories with safe_dir, which refuses a directory whose parent another
    # account controls (that account could swap the whole directory for a link to one of root's) before anything
    # is written: the password never reaches a file that account can read, and nothing is followed.
    told = ' '.join(result.stdout.split())
    assert result.rc != 0 and 'not safe for root' in told and racer_user.pw_name in told, result.stdout[-3000:]
    assert password not in result.stdout
    assert vars_st.st_uid == racer_user.pw_uid and vars_st.st_nlink == 2, 'the planted hard link was written'
    assert (conf / 'mine').read_text() == 'mine\n'
    assert stat.S_ISLNK(script_st.st_mode), 'the planted link was replaced: the role wrote into the directory'
    assert not (arena['base'] / 'cron').exists() or not any((arena['base'] / 'cron').iterdir())
    assert (arena['outside'] / 'victim').read_bytes() == victim
