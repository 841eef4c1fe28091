"""Fault matrix, hostile filesystems round 10 (harness: test_hostile_round3/9, an unprivileged account made and removed
by test_hostile_files playing the account that owns a directory on the operator's path).

- json_log callback: the log was opened by its full path for every line, only its last name unfollowed. An account
  owning a directory above the log (its own directory, where the operator keeps the play's logs) could put a link
  to a directory of root's at the log's directory: root created and appended JSON lines to a file there (/etc/cron.d
  reads every file). The directory is now opened once, never through a link such an account could have made, and
  every line is appended relative to that descriptor.
- file_restore: the restore target (dest) was opened by its path, following every link on it: an account owning a
  directory on the way to dest (a user's home holding the application's configuration) could link dest's name to a
  directory of root's and root restored the archive into it.
- backup_copy (ssh backend) pull: rsync created each downloaded file with the remote's mode (0644): the key material
  of a pulled backup was readable by every account until the module set 0600 after the download.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3
from tests.faults.helpers import play

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import SshStore  # noqa: E402

racer_user = hostile.racer_user
arena = hostile.arena
as_user = round3.as_user
user_dir = round3.user_dir

JSON_LOG = {'ANSIBLE_CALLBACKS_ENABLED': 'opsready.operations.json_log'}


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning the directory above the json_log file links the log\'s directory to a '
                   'directory of root\'s before the play', component='json_log callback',
                   expected='the play runs; nothing is written in root\'s directory; a warning names the path')
def test_json_log_directory_is_a_link_planted_by_another_account(racer_user, arena, fault):
    logs = user_dir(arena['tree'] / 'logs', racer_user)
    target = arena['outside'] / 'etc'
    as_user(racer_user, 'ln -s %s %s/run' % (target, logs))
    log = logs / 'run' / 'tasks.jsonl'
    start = time.monotonic()
    result = play(arena['base'], [{'name': 'one task', 'ansible.builtin.debug': {'msg': 'hi'}}], timeout=120,
                  envvars=dict(JSON_LOG, OPSREADY_JSON_LOG_PATH=str(log)))
    written = sorted(p.name for p in target.iterdir())
    seconds = time.monotonic() - start
    fault.observed('play rc %d in %.1f s; files in root\'s directory: %s' % (result.rc, seconds, written))
    fault.lost(files=int(written != ['passwd']))
    assert result.rc == 0, result.stdout[-2000:]
    assert written == ['passwd'], 'root wrote the log into its own directory through the link: %s' % written
    assert str(log) in result.stdout and 'nothing more is logged' in result.stdout, result.stdout[-2000:]


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning the directory above the json_log file swaps the log\'s directory for a '
                   'link to a directory of root\'s during the play', component='json_log callback',
                   expected='every line lands in the directory opened at the start; nothing in root\'s directory')
def test_json_log_directory_swapped_for_a_link_during_the_play(racer_user, arena, fault):
    logs = user_dir(arena['tree'] / 'logs', racer_user)
    user_dir(logs / 'run', racer_user)
    target = arena['outside'] / 'etc'
    log = logs / 'run' / 'tasks.jsonl'
    swap = 'mv %s/run %s/moved && ln -s %s %s/run' % (logs, logs, target, logs)
    tasks = [{'name': 'before the swap', 'ansible.builtin.debug': {'msg': 'hi'}},
             {'name': 'the swap', 'ansible.builtin.command': {'argv': [
                 'setpriv', '--reuid=%d' % racer_user.pw_uid, '--regid=%d' % racer_user.pw_gid, '--clear-groups',
                 'sh', '-c', swap]}},
             {'name': 'after the swap', 'ansible.builtin.debug': {'msg': 'hi'}}]
    result = play(arena['base'], tasks, timeout=120, envvars=dict(JSON_LOG, OPSREADY_JSON_LOG_PATH=str(log)))
    written = sorted(p.name for p in target.iterdir())
    fault.observed('play rc %d; files in root\'s directory: %s' % (result.rc, written))
    fault.lost(files=int(written != ['passwd']))
    assert result.rc == 0, result.stdout[-2000:]
    assert written == ['passwd'], 'root wrote the log into its own directory through the link: %s' % written
    lines = (logs / 'moved' / 'tasks.jsonl').read_text().splitlines()
    assert [line for line in lines if 'after the swap' in line], lines


@pytest.mark.fast
@pytest.mark.fault(fault='json_log path through a link of root\'s (a directory only root can write)',
                   component='json_log callback', expected='logged as before (regression guard)')
def test_json_log_through_a_link_of_roots_is_still_followed(tmp_path, fault):
    """Guard (passed on the old code): a link root made in a directory only root can write (/var/log -> /data/log)
    is the operator's and is followed."""
    real = tmp_path / 'data' / 'log'
    real.mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    (tmp_path / 'log').symlink_to(real)
    log = tmp_path / 'log' / 'ops' / 'tasks.jsonl'
    result = play(tmp_path, [{'name': 'one task', 'ansible.builtin.debug': {'msg': 'hi'}}], timeout=120,
                  envvars=dict(JSON_LOG, OPSREADY_JSON_LOG_PATH=str(log)))
    fault.observed('play rc %d' % result.rc)
    assert result.rc == 0, result.stdout[-2000:]
    assert 'one task' in (real / 'ops' / 'tasks.jsonl').read_text()
    assert 'nothing more is logged' not in result.stdout


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning a directory above file_restore\'s dest links dest to a directory of '
                   'root\'s', component='file_restore', expected='refused, naming the link; nothing written there')
def test_file_restore_dest_through_a_link_planted_by_another_account(racer_user, arena, fault):
    base, outside = arena['base'], arena['outside']
    source = base / 'source'
    source.mkdir()
    (source / 'app.conf').write_text('listen 80\n')
    backups = base / 'backups'
    archive.prepare_dest(str(backups), True)
    manifest = read_manifest(archive.create_archive([str(source)], str(backups), 'conf', compression='none')['path']
                             + '.manifest.json')
    home = user_dir(arena['tree'] / 'home', racer_user)
    as_user(racer_user, 'ln -s %s %s/restore' % (outside / 'etc', home))
    before = sorted(p.name for p in (outside / 'etc').iterdir())
    try:
        extract.restore_archive(manifest, str(home / 'restore'))
        outcome = 'restored'
    except OpsReadyError as exc:
        outcome = exc.message
    after = sorted(p.name for p in (outside / 'etc').iterdir())
    fault.observed(outcome[:160])
    fault.lost(files=int(after != before))
    assert after == before, 'root restored into its own directory through the link: %s' % after
    assert str(home / 'restore') in outcome and 'symlink' in outcome, outcome


@pytest.mark.fast
@pytest.mark.fault(fault='file_restore dest through a link of root\'s', component='file_restore',
                   expected='restored through it as before (regression guard)')
def test_file_restore_dest_through_a_link_of_roots(tmp_path, fault):
    """Guard (passed on the old code): a link root made where only root writes (/srv/conf -> /data/conf) is followed,
    and a missing dest is still made."""
    source = tmp_path / 'source'
    source.mkdir()
    (source / 'app.conf').write_text('listen 80\n')
    backups = tmp_path / 'backups'
    archive.prepare_dest(str(backups), True)
    manifest = read_manifest(archive.create_archive([str(source)], str(backups), 'conf', compression='none')['path']
                             + '.manifest.json')
    real = tmp_path / 'data'
    real.mkdir()
    (tmp_path / 'link').symlink_to(real)
    result = extract.restore_archive(manifest, str(tmp_path / 'link' / 'new' / 'dest'))
    fault.observed('%d restored' % len(result['restored']))
    restored = real / 'new' / 'dest' / str(source / 'app.conf').lstrip('/')
    assert restored.read_text() == 'listen 80\n'
    assert stat.S_IMODE((real / 'new').stat().st_mode) == 0o755


# ssh to "localhost" for tests: drop the options and the destination, run the remote command with the shell.
LOOPBACK_SSH = r'''#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -p|-o|-i|-l|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
shift
exec /bin/sh -c "$*"
'''


@pytest.mark.fast
@pytest.mark.fault(fault='a pulled backup file is 0644 at the backup host', component='backup_copy ssh download',
                   expected='the local file is 0600 from its creation (never the remote mode)')
def test_ssh_download_is_private_from_creation(tmp_path, monkeypatch, fault):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'ssh').write_text(LOOPBACK_SSH)
    (bin_dir / 'ssh').chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (bin_dir, os.environ['PATH']))
    remote = tmp_path / 'remote'
    remote.mkdir()
    (remote / 'db.key.age').write_bytes(b'key material\n' * 100)
    os.chmod(remote / 'db.key.age', 0o644)
    local = tmp_path / 'pulled'
    local.mkdir(mode=0o700)
    got = SshStore('localhost', str(remote)).download('db.key.age', str(local / 'db.key.age.partial'))
    mode = stat.S_IMODE(os.lstat(local / 'db.key.age.partial').st_mode)
    fault.observed('downloaded %d bytes, mode %04o' % (got['size'], mode))
    fault.lost(files=int(bool(mode & 0o077)))
    assert mode == 0o600, 'the download kept the remote mode %04o' % mode
