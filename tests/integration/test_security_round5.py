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
