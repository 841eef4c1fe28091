"""Security red team, round 8: role values written into root-run configuration (logrotate policies, cron lines,
systemd units) that round 5 did not hold.

- log_rotation (logrotate backend): ``size``, ``minsize``, ``create_mode``/``create_owner``/``create_group``,
  ``su.user``/``su.group`` and ``pidfile`` were written into ``/etc/logrotate.d/<name>`` unchecked: a line break
  started a directive there (a ``postrotate`` script that logrotate runs as root), a space split one value into two.
- schedule: the role-level directories and user reach the cron line (a shell command: unquoted, ``%`` is a line
  break to cron) and the service unit (``ExecStart=``, ``User=``): a directory with a space broke every run, a line
  break wrote another cron entry or unit directive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.harness.playbook import REPO, run_playbook

PWNED = '/tmp/opsready-secconf8-pwned'
ESCAPE = '\n    postrotate\n        touch %s\n    endscript\n' % PWNED


def _failed_items(result) -> set:
    return {e['event_data']['res'].get('item', {}).get('name') for e in result.events
            if e.get('event') == 'runner_item_on_failed'}


def test_log_rotation_logrotate_policy_one_word_values_stay_one_word(tmp_path):
    """Every value the logrotate backend writes after a directive is one word on its line: a line break in it (here
    a whole ``postrotate`` script) or a space is refused, and nothing is installed."""
    logdir = tmp_path / 'log'
    logdir.mkdir()
    (logdir / 'app.log').write_text('x' * 4096)
    confdir = tmp_path / 'logrotate.d'
    confdir.mkdir()
    base = {'paths': [str(logdir / '*.log')], 'rotate': 2}
    hostile = {
        'size': {'size': '1k' + ESCAPE},
        'minsize': {'interval': 'daily', 'minsize': '1k' + ESCAPE},
        'create-mode': {'size': '1k', 'create_mode': '0640' + ESCAPE},
        'create-owner': {'size': '1k', 'create_mode': '0640', 'create_owner': 'root' + ESCAPE},
        'create-group': {'size': '1k', 'create_mode': '0640', 'create_owner': 'root', 'create_group': 'adm' + ESCAPE},
        'create-owner-space': {'size': '1k', 'create_mode': '0640', 'create_owner': 'root adm'},
        'su-user': {'size': '1k', 'su': {'user': 'nobody' + ESCAPE}},
        'su-group': {'size': '1k', 'su': {'user': 'nobody', 'group': 'nogroup' + ESCAPE}},
        'pidfile': {'size': '1k', 'pidfile': str(tmp_path / 'app.pid') + "\n    endscript\n    postrotate\n"
                                                                         "        touch %s\n" % PWNED},
    }
    policies = [dict(base, name=name, **values) for name, values in hostile.items()]
    bad = run_playbook('playbooks/log_rotation.yml', extravars={
        'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(confdir),
        'log_rotation_policies': policies})
    assert bad.rc != 0
    assert _failed_items(bad) == set(hostile), 'not refused: %s' % sorted(set(hostile) - _failed_items(bad))
    assert not list(confdir.iterdir())
    # the same values without the break are still written, and logrotate accepts them
    good = dict(base, name='app', size='1k', create_mode='0640', create_owner=str(os.getuid()),
                create_group=str(os.getgid()))
    ok = run_playbook('playbooks/log_rotation.yml', extravars={
        'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(confdir),
        'log_rotation_policies': [good]})
    assert ok.rc == 0, ok.stdout[-3000:]
    assert 'create 0640 %d %d' % (os.getuid(), os.getgid()) in (confdir / 'app').read_text()
    assert not os.path.exists(PWNED)


def _schedule(tmp_path: Path, dirs: dict, backend: str = 'cron', **extra):
    project = tmp_path / 'project'
    (project / 'playbooks').mkdir(parents=True, exist_ok=True)
    if not (project / 'ansible.cfg').exists():
        os.symlink(REPO / 'ansible.cfg', project / 'ansible.cfg')
        os.symlink(REPO / 'build', project / 'build')
    (project / 'playbooks' / 'marker.yml').write_text(yaml.safe_dump([{
        'name': 'marker', 'hosts': 'all', 'gather_facts': False, 'tasks': [
            {'name': 'leave a marker', 'ansible.builtin.copy': {'dest': '{{ marker }}', 'content': 'ran\n',
                                                                 'mode': '0644'}}]}]))
    job = {'name': 'marker', 'playbook': 'playbooks/marker.yml', 'cron': '*/5 * * * *', 'on_calendar': '*:0/5',
           'extra_vars': {'marker': str(tmp_path / 'marker.txt')}}
    return run_playbook('playbooks/schedule.yml', extravars=dict({
        'schedule_backend': backend, 'schedule_project_dir': str(project),
        'schedule_inventory': str(REPO / 'inventories' / 'local'),
        'schedule_cron_dir': str(dirs['cron']), 'schedule_unit_dir': str(dirs['units']),
        'schedule_config_dir': str(dirs['config']), 'schedule_log_dir': str(dirs['logs']),
        'schedule_lock_dir': str(dirs['locks']), 'schedule_jobs': [job]}, **extra))


def _dirs(tmp_path: Path, infix: str) -> dict:
    dirs = {k: tmp_path / ('%s%s' % (k, infix)) for k in ('cron', 'units', 'config', 'logs', 'locks')}
    dirs['cron'].mkdir(parents=True)
    dirs['units'].mkdir()
    return dirs


def test_schedule_directories_with_a_space_still_run(tmp_path):
    """/srv/ops tools/schedule is a legal directory: the cron line ran ``/srv/ops`` with an argument and appended
    its output to another file, so the job never ran; ExecStart= split the script path the same way."""
    dirs = _dirs(tmp_path, ' dir')
    result = _schedule(tmp_path, dirs)
    assert result.rc == 0, result.stdout[-3000:]
    entry = (dirs['cron'] / 'opsready-marker').read_text()
    line = [x for x in entry.splitlines() if x and not x.startswith('#') and '=' not in x.split()[0]][0]
    command = line.split(None, 6)[6]
    assert '%' not in command  # cron would turn it into a line break
    run = subprocess.run(['/bin/sh', '-c', command], env={'PATH': '/usr/bin:/bin'}, timeout=300, check=False)
    assert run.returncode == 0, (dirs['logs'] / 'marker.log').read_text()[-3000:]
    assert (tmp_path / 'marker.txt').read_text() == 'ran\n'
    assert (dirs['logs'] / 'marker.log').exists()

    systemd = _schedule(tmp_path, dirs, backend='systemd')
    assert systemd.rc == 0, systemd.stdout[-3000:]
    service = (dirs['units'] / 'opsready-marker.service').read_text()
    assert 'ExecStart="%s"' % (dirs['config'] / 'marker.sh') in service
    if shutil.which('systemd-analyze'):
        units = sorted(str(p) for p in dirs['units'].iterdir())
        verify = subprocess.run(['systemd-analyze', 'verify'] + units, capture_output=True, text=True, check=False)
        assert verify.returncode == 0, verify.stderr


def test_schedule_role_values_never_start_a_line(tmp_path):
    """The user and the directories are written into the cron line and the units: a line break there is another
    cron entry or directive, and ``%`` a line break to cron. Each refused before anything is written."""
    hostile = {
        'schedule_user': 'root\n* * * * * root touch %s' % PWNED,
        'schedule_log_dir': str(tmp_path / 'logs%touch'),
        'schedule_config_dir': str(tmp_path / 'config\nExecStartPre=/bin/touch') + PWNED,
        'schedule_lock_dir': str(tmp_path / 'locks\n'),
    }
    for option, value in hostile.items():
        dirs = _dirs(tmp_path / option, '')
        result = _schedule(tmp_path / option, dirs, **{option: value})
        assert result.rc != 0, option
        assert option in result.stdout, (option, result.stdout[-2000:])
        assert not list(dirs['cron'].iterdir()) and not dirs['config'].exists(), option
    assert not os.path.exists(PWNED)


def test_recovery_rollback_record_is_never_read_or_written_through_a_link(tmp_path):
    """The rollback record lives in the application's directory, which its deploy account usually owns; the role runs
    as root. A link planted at ``.opsready-rollback.json`` was followed by slurp: root read a file of its own (here a
    0600 JSON holding a secret), took its ``from`` as the previous release (so refused to roll back) and wrote it into
    the new 0644 record in the account's directory."""
    root = tmp_path / 'srv' / 'myapp'
    for release in ('v1', 'v2'):
        (root / 'releases' / release).mkdir(parents=True)
    (root / 'current').symlink_to('releases/v2')
    secret = tmp_path / 'root-only.json'
    secret.write_text('{"from": "S3cret-from-root-only-file", "to": "v2"}\n')
    secret.chmod(0o600)
    (root / '.opsready-rollback.json').symlink_to(secret)
    result = run_playbook('playbooks/recovery.yml', extravars={
        'recovery_app': {'path': str(root)}, 'recovery_databases': [], 'recovery_file_restores': [],
        'recovery_services': []})
    assert 'S3cret-from-root-only-file' not in result.stdout
    record = root / '.opsready-rollback.json'
    if result.rc == 0:
        # the link was not taken for a record: the rollback happened, and the record written is a file of its own
        assert os.readlink(root / 'current') == 'releases/v1', result.stdout[-3000:]
        assert not record.is_symlink() and 'S3cret' not in record.read_text()
    else:
        assert '.opsready-rollback.json' in result.stdout, result.stdout[-3000:]
        assert record.is_symlink()
    assert secret.read_text() == '{"from": "S3cret-from-root-only-file", "to": "v2"}\n'


LOOPBACK_SSH = r'''#!/bin/sh
# ssh to "localhost" for tests: drop the options and the destination, run the remote command with the shell, as sshd
# does (the words joined by spaces, then parsed by the remote user's shell).
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


def test_backup_copy_ssh_remote_path_is_one_word_for_every_rsync(tmp_path):
    """rsync before 3.2.4 (Debian 11, RHEL 8), and any rsync with RSYNC_OLD_ARGS set, hands the remote half of
    ``host:path`` to the remote shell: a remote_path with a space was split there (the copy went elsewhere or failed)
    and one with ``;`` ran a command on the backup host. The argument is protected (``--protect-args``) whatever the
    version or environment."""
    import json
    import sys

    from tests.unit.plugins.modules.test_conformance_round7 import _sqlite_source
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'ssh').write_text(LOOPBACK_SSH)
    (bin_dir / 'ssh').chmod(0o755)
    source = _sqlite_source(tmp_path)
    backups = tmp_path / 'backups'
    args = tmp_path / 'args.json'
    env = dict(os.environ, PYTHONPATH=str(REPO / 'build'), LC_ALL='C.UTF-8', RSYNC_OLD_ARGS='1',
               PATH='%s:%s' % (bin_dir, os.environ['PATH']))

    def module(name, params):
        args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
        proc = subprocess.run([sys.executable, str(REPO / 'plugins' / 'modules' / ('%s.py' % name)), str(args)],
                              capture_output=True, text=True, env=env, timeout=120, check=False,
                              stdin=subprocess.DEVNULL)
        text = proc.stdout
        return json.loads(text[text.index('{'):]), text + proc.stderr

    result, printed = module('db_backup', {'engine': 'sqlite', 'database': source, 'dest': str(backups)})
    assert result.get('changed'), printed[-2000:]
    pwned = tmp_path / 'pwned'
    remote = tmp_path / 'off site' / ('db01;touch %s' % pwned)
    result, printed = module('backup_copy', {'src': str(backups), 'backend': 'ssh', 'ssh_host': 'localhost',
                                             'remote_path': str(remote)})
    assert not pwned.exists()
    assert not result.get('failed'), printed[-3000:]
    copied = sorted(p.name for p in remote.iterdir())
    assert copied and sorted(p.name for p in backups.iterdir() if not p.name.startswith('.')) == \
        sorted(n for n in copied if not n.startswith('.')), copied
