"""Security review, round 5: secrets and option injection the earlier rounds did not reach.

Each case runs the module the way Ansible runs it on a host (``python -m ...modules.X args.json``) and reads
everything it printed (stdout and stderr: a traceback is what Ansible shows as ``module_stderr``).

- Webhook URLs carry their token in the path (Slack ``/services/T/B/<token>``, Teams): a URL the HTTP client
  cannot send (a space pasted at its end, a non-ASCII character) must be a failed delivery that names the
  channel, never a traceback quoting the path; a webhook that answers an error must not have its URL in the
  warning or the result (incident's webhook).
- ``ssh_host``/``ssh_user`` of backup_copy become ssh's and rsync's destination argument: one starting with
  ``-`` is an option there (``-oProxyCommand=...`` runs a local command on OpenSSH before 9.6, which does not
  check host names). Refused before any ssh runs; a PATH-first ``ssh`` records whether one did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.notify_sinks import WebhookSink

REPO = Path(__file__).resolve().parents[2]
TOKEN = 'XOXB-t0ken-5ecret-9f3'


def run_module(module: str, args: dict, workdir: Path, path_first: str = '') -> tuple:
    """(result, everything printed) of one direct module run."""
    argfile = workdir / ('args-%s.json' % module)
    argfile.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=False)}))
    env = dict(os.environ, PYTHONPATH=str(REPO / 'build'), LC_ALL='C.UTF-8')
    if path_first:
        env['PATH'] = path_first + os.pathsep + env.get('PATH', '')
    proc = subprocess.run([sys.executable, '-m', 'ansible_collections.opsready.operations.plugins.modules.%s' % module,
                           str(argfile)], capture_output=True, text=True, cwd=str(workdir), env=env, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    text = proc.stdout.strip()
    try:
        result = json.loads(text[text.index('{'):]) if '{' in text else {}
    except ValueError:
        result = {'unparsed': text[-2000:]}
    return result, proc.stdout + proc.stderr


# A space inside the path (a value pasted from a chat), a non-ASCII letter: http.client raises InvalidURL quoting the
# path, or UnicodeEncodeError. (At the ends, spaces are stripped by urlsplit and the URL is sent.)
INNER_SPACE = '/services/T0/B0/%s x' % TOKEN
NON_ASCII = '/services/T0/B0/%s\u00e9' % TOKEN


@pytest.mark.parametrize('kind,path', [('slack', INNER_SPACE), ('teams', NON_ASCII), ('webhook', INNER_SPACE)],
                         ids=['slack-inner-space', 'teams-non-ascii', 'webhook-inner-space'])
def test_notify_unsendable_webhook_url_is_refused_without_its_token(tmp_path, kind, path):
    channel = {'type': kind, 'url': 'http://127.0.0.1:9%s' % path, 'retries': 0, 'timeout': 2}
    result, printed = run_module('notify', {'job': 'backup', 'name': 'app', 'outcome': 'failure', 'host': 'db1',
                                            'required': True, 'channels': [channel]}, tmp_path)
    assert 'Traceback' not in printed and 'unparsed' not in result, printed[-2000:]
    assert TOKEN not in printed, 'the token leaked: %s' % printed[-2000:]
    assert result.get('failed'), result
    assert '%s#0' % kind in result['msg'] and 'url' in result['msg'], result['msg']


def test_incident_webhook_url_stays_out_of_warnings_and_results(tmp_path):
    with WebhookSink() as hooks:
        hooks.script('/hooks/%s' % TOKEN, [404])
        hook = {'url': hooks.url('/hooks/%s' % TOKEN), 'retries': 0, 'timeout': 5}
        result, printed = run_module('incident', {'store': str(tmp_path / 'incidents'), 'key': 'db1:disk',
                                                  'title': 'disk full', 'state': 'open', 'severity': 2,
                                                  'webhook': hook}, tmp_path)
        assert len(hooks.requests('/hooks/%s' % TOKEN)) == 1   # it was really sent, and refused
    assert 'Traceback' not in printed and not result.get('failed'), printed[-2000:]
    assert TOKEN not in printed, 'the token leaked: %s' % printed[-2000:]
    warned = json.dumps(result.get('warnings'))   # strings, or WarningSummary objects (ansible-core 2.19+)
    assert '127.0.0.1' in warned and 'HTTP 404' in warned, result


def test_incident_unsendable_webhook_url_is_refused_without_its_token(tmp_path):
    hook = {'url': 'http://127.0.0.1:9/hooks/%s x' % TOKEN, 'retries': 0, 'timeout': 2, 'required': True}
    result, printed = run_module('incident', {'store': str(tmp_path / 'incidents'), 'key': 'db1:disk',
                                              'title': 'disk full', 'state': 'open', 'severity': 2,
                                              'webhook': hook}, tmp_path)
    assert 'Traceback' not in printed and 'unparsed' not in result, printed[-2000:]
    assert TOKEN not in printed, 'the token leaked: %s' % printed[-2000:]
    assert result.get('failed'), result


@pytest.fixture()
def recording_ssh(tmp_path):
    """A directory with an ``ssh`` and an ``rsync`` that record their argv and fail: put first on PATH."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'ran.log'
    for tool in ('ssh', 'rsync'):
        script = bin_dir / tool
        script.write_text('#!/bin/sh\necho "%s $*" >> %s\nexit 255\n' % (tool, log))
        script.chmod(0o755)
    return str(bin_dir), log


@pytest.mark.parametrize('option,value,mode', [
    ('ssh_host', '-oProxyCommand=touch /tmp/opsready-pwned', 'push'),
    ('ssh_host', '-oProxyCommand=touch /tmp/opsready-pwned', 'pull'),
    ('ssh_host', '-F/tmp/planted_config', 'push'),
    ('ssh_user', '-oProxyCommand=touch /tmp/opsready-pwned', 'pull'),
    ('ssh_host', 'dr1.example.com -oProxyCommand=x', 'push'),
    ('ssh_user', 'backup\nHost *', 'push'),
])
def test_backup_copy_ssh_destination_is_never_an_option(tmp_path, recording_ssh, option, value, mode):
    bin_dir, log = recording_ssh
    src = tmp_path / 'backups'
    src.mkdir()
    args = {'src': str(src), 'mode': mode, 'backend': 'ssh', 'ssh_host': 'dr1.example.com', 'ssh_user': 'backup',
            'remote_path': '/srv/offsite/db01', option: value}
    result, printed = run_module('backup_copy', args, tmp_path, path_first=bin_dir)
    assert 'Traceback' not in printed, printed[-2000:]
    assert not log.exists(), 'ssh/rsync ran with %s=%r: %s' % (option, value, log.read_text())
    assert result.get('failed') and option in result['msg'], result


# The schedule role writes each job into a shell script (job.sh.j2), a cron line and systemd units. Values other than
# the job's name land there unquoted in places: ``lock`` and ``playbook`` in the script's comment lines (a newline
# there starts a shell line) and the cron file's, ``playbook`` in the service's Description=, ``on_calendar`` in the
# timer, ``cron`` as the cron line. (timeout, lock_wait and randomized_delay are ints in the argument spec: held.)
HOSTILE_JOBS = {
    'lock-newline': {'lock': 'shared\ntouch /tmp/opsready-pwned'},
    'lock-slash': {'lock': '../../etc/cron.d/x'},
    'playbook-newline': {'playbook': 'playbooks/marker.yml\ntouch /tmp/opsready-pwned'},
    'calendar-newline': {'on_calendar': 'daily\n[Service]\nExecStartPre=/bin/touch /tmp/opsready-pwned'},
    'cron-newline': {'cron': '*/5 * * *\n*'},
}


def test_schedule_job_values_never_reach_a_script_or_unit_unchecked(tmp_path):
    from tests.harness.playbook import run_playbook

    project = tmp_path / 'project'
    (project / 'playbooks').mkdir(parents=True)
    (project / 'playbooks' / 'marker.yml').write_text('- hosts: all\n  gather_facts: false\n  tasks: []\n')
    dirs = {k: tmp_path / k for k in ('cron', 'units', 'config', 'logs', 'locks')}
    dirs['cron'].mkdir()
    jobs = [dict({'name': name, 'playbook': 'playbooks/marker.yml', 'cron': '*/5 * * * *', 'on_calendar': 'daily'},
                 **values) for name, values in HOSTILE_JOBS.items()]
    result = run_playbook('playbooks/schedule.yml', extravars={
        'schedule_backend': 'cron', 'schedule_project_dir': str(project),
        'schedule_inventory': str(REPO / 'inventories' / 'local'),
        'schedule_cron_dir': str(dirs['cron']), 'schedule_unit_dir': str(dirs['units']),
        'schedule_config_dir': str(dirs['config']), 'schedule_log_dir': str(dirs['logs']),
        'schedule_lock_dir': str(dirs['locks']), 'schedule_jobs': jobs})
    refused = {e['event_data']['res'].get('item', {}).get('name') for e in result.events
               if e.get('event') == 'runner_item_on_failed'}
    assert refused == set(HOSTILE_JOBS), 'not refused: %s' % sorted(set(HOSTILE_JOBS) - refused)
    assert result.rc != 0 and not list(dirs['cron'].iterdir()) and not dirs['config'].exists()


def test_log_rotation_logrotate_policy_paths_and_names_stay_what_they_are(tmp_path):
    """The logrotate backend writes ``<dir>/<name>`` with the paths on the first line. A path with a space was two
    paths there (``/srv/my`` and ``app/*.log``: logrotate -d refused the policy, or rotated a file ``/srv/my``); a
    name with ``..`` wrote outside the directory; a line break in a path, signal or dateformat started a directive."""
    from tests.harness.playbook import run_playbook

    logdir = tmp_path / 'my app'
    logdir.mkdir()
    (logdir / 'app.log').write_text('x' * 4096)
    (tmp_path / 'my').write_text('y' * 4096)     # what the unquoted first word named
    confdir = tmp_path / 'logrotate.d'
    confdir.mkdir()
    good = {'name': 'app', 'paths': [str(logdir / '*.log')], 'size': '1k', 'rotate': 2}
    hostile = [{'name': '../escaped', 'paths': [str(logdir / '*.log')], 'size': '1k'},
               {'name': 'newline', 'paths': [str(logdir / '*.log') + '\n{\n}\n/etc/passwd'], 'size': '1k'},
               {'name': 'quote', 'paths': [str(logdir / 'a"b.log')], 'size': '1k'},
               {'name': 'relative', 'paths': ['app/*.log'], 'size': '1k'},
               {'name': 'signal', 'paths': [str(logdir / '*.log')], 'size': '1k', 'pidfile': str(tmp_path / 'pid'),
                'signal': 'HUP"; touch /tmp/opsready-pwned; echo "'}]
    bad = run_playbook('playbooks/log_rotation.yml', extravars={
        'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(confdir),
        'log_rotation_policies': [good] + hostile})
    refused = {e['event_data']['res'].get('item', {}).get('name') for e in bad.events
               if e.get('event') == 'runner_item_on_failed'}
    assert refused == {p['name'] for p in hostile}, bad.stdout[-3000:]
    assert bad.rc != 0 and not list(confdir.iterdir()) and not (tmp_path / 'escaped').exists()
    ok = run_playbook('playbooks/log_rotation.yml', extravars={
        'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(confdir),
        'log_rotation_policies': [good]})
    assert ok.rc == 0, ok.stdout[-3000:]
    subprocess.run(['/usr/sbin/logrotate', '-s', str(tmp_path / 'lr.state'), str(confdir / 'app')], check=True)
    assert sorted(p.name for p in logdir.iterdir()) == ['app.log', 'app.log.1.zst']
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('my')) == ['my', 'my app']


def test_health_check_http_url_with_a_password_is_refused_unshown(tmp_path):
    """health_check's http check names itself by its URL (results, history, textfile labels) and never sent a
    ``user:password@`` of it: the password was only ever shown. Refused, without echoing it; headers carry it."""
    url = 'http://monitor:%s@127.0.0.1:9/health' % TOKEN
    result, printed = run_module('health_check', {'checks': [{'type': 'http', 'url': url, 'timeout': 2}],
                                                  'fail_on': 'never', 'history_path': str(tmp_path / 'h.jsonl'),
                                                  'textfile_path': str(tmp_path / 'h.prom')}, tmp_path)
    # (``invocation`` is Ansible's echo of the task's own arguments: url is not no_log, nor can it be)
    shown = json.dumps(dict(result, invocation=None))
    assert 'Traceback' not in printed and TOKEN not in shown, 'the password leaked: %s' % shown[-2000:]
    assert result.get('failed') and 'headers' in result['msg'], result
    assert not (tmp_path / 'h.jsonl').exists() and not (tmp_path / 'h.prom').exists()


# pg_wal_archive (the archive_command helper) reads an earlier manifest of the segment it archives (a re-archive after
# a crash). What it finds there is not always one: whoever can write the archive can plant anything, and an exit
# other than 0 makes PostgreSQL retry the segment forever while pg_wal fills up. Valid JSON that is not an object,
# and JSON nested deeper than the decoder recurses, are not manifests either: ignored, said in the log, archived.
WAL_ARCHIVE = REPO / 'plugins' / 'module_utils' / 'engines' / 'postgresql' / 'wal_archive.py'
SEGMENT = '000000010000000000000003'
NOT_MANIFESTS = {'array': '[1, 2]', 'string': '"x"', 'null': 'null', 'deep': '[' * 100000 + ']' * 100000}


def test_wal_archive_ignores_json_that_is_not_a_manifest(tmp_path):
    for case, text in NOT_MANIFESTS.items():
        dest = tmp_path / case / 'archive'
        dest.mkdir(parents=True, mode=0o700)
        source = tmp_path / case / SEGMENT
        source.write_bytes(b'W' * 8192)
        planted = dest / ('postgresql-cluster-wal-20261205T000000000000Z-%s.manifest.json' % SEGMENT)
        planted.write_text(text)
        proc = subprocess.run([sys.executable, str(WAL_ARCHIVE), '--compression', 'none', str(dest), str(source),
                               SEGMENT], capture_output=True, text=True, timeout=60, check=False)
        assert 'Traceback' not in proc.stderr and proc.returncode == 0, (case, proc.stderr[-1500:])
        assert 'ignoring' in proc.stderr and SEGMENT in proc.stderr, (case, proc.stderr)
        stored = [p for p in dest.iterdir() if p.name.endswith('.manifest.json') and p != planted]
        assert len(stored) == 1, (case, sorted(p.name for p in dest.iterdir()))
