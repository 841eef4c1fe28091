"""safe_dir mode/purpose and safe_unlink (rolewrite12): the directory and delete steps the roles' root tasks now go
through instead of ansible.builtin.file (the WAL helper's directory, drill scratch, schedule and health report
directories; auto_recovery's clean-up). All fail on the old code (safe_dir had no mode option; safe_unlink did not
exist)."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from tests.unit.plugins.modules.test_conformance_round7 import run_module

NOBODY = pwd.getpwnam('nobody')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='another account\'s directory needs root to make')


def _dir(tmp_path: Path, path, mode='0711', check: bool = False) -> dict:
    result, _out = run_module(tmp_path, 'safe_dir', {'path': str(path), 'mode': mode, 'purpose': 'scratch copies'},
                              check=check)
    return result


def _theirs(path: Path) -> Path:
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    return path


def test_safe_dir_mode_made_set_whatever_the_umask_and_changed_only_when_it_differs(tmp_path):
    tmp_path.chmod(0o755)
    new = tmp_path / 'a' / 'b'
    dry = _dir(tmp_path, new, check=True)
    assert (dry.get('failed'), dry['changed'], new.exists()) == (None, True, False), dry
    old = os.umask(0o077)
    try:
        made = _dir(tmp_path, new)
    finally:
        os.umask(old)
    assert made['changed'] and stat.S_IMODE(new.stat().st_mode) == 0o711, made
    assert stat.S_IMODE(new.parent.stat().st_mode) in (0o755, 0o700)   # missing parents 0755 narrowed by the umask
    assert _dir(tmp_path, new)['changed'] is False
    assert _dir(tmp_path, new, mode='0750', check=True)['changed'] is True
    assert stat.S_IMODE(new.stat().st_mode) == 0o711
    assert _dir(tmp_path, new, mode='0750')['changed'] and stat.S_IMODE(new.stat().st_mode) == 0o750


def test_safe_dir_mode_refuses_links_other_accounts_and_writable_modes(tmp_path):
    tmp_path.chmod(0o755)
    victim = tmp_path / 'etc'
    victim.mkdir(mode=0o755)
    theirs = _theirs(tmp_path / 'theirs')
    os.symlink(victim, theirs / 'link')
    mine = tmp_path / 'mine'
    mine.mkdir(mode=0o755)
    os.symlink(victim, mine / 'rootlink')   # a link root made in root's own directory: followed
    file_there = tmp_path / 'file'
    file_there.write_text('x')
    for path, word in ((theirs, 'belongs to'), (theirs / 'below', str(theirs)), (theirs / 'link', str(theirs)),
                       (theirs / 'link' / 'below', str(theirs)), (file_there, 'not a directory')):
        for check in (True, False):
            refused = _dir(tmp_path, path, check=check)
            assert refused.get('failed') and word in refused['msg'], (path, refused)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755 and os.listdir(victim) == []
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o755 and sorted(os.listdir(theirs)) == ['link']
    for mode in ('0775', '0757', 'rwx', '99999'):
        refused = _dir(tmp_path, tmp_path / 'new', mode=mode)
        assert refused.get('failed') and not (tmp_path / 'new').exists(), refused
    assert _dir(tmp_path, mine / 'rootlink', mode='0755')['changed'] is False


def _unlink(tmp_path: Path, path, within, check: bool = False) -> dict:
    result, _out = run_module(tmp_path, 'safe_unlink', {'path': str(path), 'within': str(within)}, check=check)
    return result


def test_safe_unlink_removes_below_within_never_through_a_link(tmp_path):
    tmp_path.chmod(0o755)
    logs = _theirs(tmp_path / 'logs')
    (logs / 'sub').mkdir()
    (logs / 'sub' / 'a.gz').write_text('a')
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'a.gz').write_text('keep')
    (outside / 'dir').mkdir()
    os.symlink(outside, logs / 'swapped')
    os.symlink(outside / 'a.gz', logs / 'link.gz')
    (logs / 'adir').mkdir()
    dry = _unlink(tmp_path, logs / 'sub' / 'a.gz', logs, check=True)
    assert (dry['changed'], dry['removed'], (logs / 'sub' / 'a.gz').exists()) == (True, 'a regular file', True), dry
    done = _unlink(tmp_path, logs / 'sub' / 'a.gz', logs)
    assert done['changed'] and not (logs / 'sub' / 'a.gz').exists(), done
    assert _unlink(tmp_path, logs / 'sub' / 'a.gz', logs)['changed'] is False
    assert _unlink(tmp_path, logs / 'gone' / 'a.gz', logs)['changed'] is False
    refused = _unlink(tmp_path, logs / 'swapped' / 'a.gz', logs)
    assert refused.get('failed') and str(logs / 'swapped') in refused['msg'] and 'symlink' in refused['msg'], refused
    link = _unlink(tmp_path, logs / 'link.gz', logs)
    assert link['removed'] == 'a symlink' and not os.path.lexists(logs / 'link.gz'), link
    escapes = (logs / 'adir', outside / 'a.gz', logs, logs / '..' / 'outside' / 'a.gz')
    for path in escapes:
        refused = _unlink(tmp_path, path, logs)
        assert refused.get('failed'), (path, refused)
    assert (outside / 'a.gz').read_text() == 'keep' and (logs / 'adir').is_dir()
    assert _unlink(tmp_path, logs / 'x', 'relative').get('failed')
