"""opsready.operations.notify through real ansible-playbook runs, delivering to a real HTTP receiver and a real
SMTP server (aiosmtpd, STARTTLS + AUTH) on 127.0.0.1: the payload of every channel type, retries, a dead channel
that does not fail the job, stale detection once per episode, check mode, secrets kept out of the output, and
the collection's playbooks reporting their own failure."""

from __future__ import annotations

import datetime
import json
import unicodedata

import pytest

from tests.harness.notify_sinks import SmtpSink, WebhookSink
from tests.harness.playbook import run_playbook, write_playbook
from tests.integration.health_servers import free_port, self_signed

SECRETS = ('T0KEN-slack-9f3', 'R0UTING-key-77a', 'smtp-Pa55-word', 'Bearer hook-s3cret')


@pytest.fixture(scope='module')
def sinks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('smtp-tls')
    cert, key = self_signed(tmp, days=5)
    with WebhookSink() as hooks, SmtpSink(tls=(cert, key), auth=('opsready', SECRETS[2])) as mail:
        yield {'hooks': hooks, 'mail': mail, 'ca': cert}


def channels(sinks, prefix, events=('failure', 'stale')):
    hooks = sinks['hooks']
    return [
        {'type': 'slack', 'url': hooks.url('/%s/slack/%s' % (prefix, SECRETS[0])), 'events': list(events)},
        {'type': 'teams', 'name': 'teams-ops', 'url': hooks.url('/%s/teams' % prefix), 'events': list(events)},
        {'type': 'pagerduty', 'url': hooks.url('/%s/pd' % prefix), 'routing_key': SECRETS[1],
         'events': list(events) + ['success']},
        {'type': 'webhook', 'url': hooks.url('/%s/hook' % prefix), 'headers': {'Authorization': SECRETS[3]},
         'events': list(events)},
        {'type': 'email', 'smtp_host': '127.0.0.1', 'smtp_port': sinks['mail'].port, 'smtp_security': 'starttls',
         'smtp_username': 'opsready', 'smtp_password': SECRETS[2], 'ca_file': sinks['ca'],
         'sender': 'opsready@example.test', 'recipients': ['dba@example.test'], 'events': list(events),
         'backoff': 0.05},
    ]


def notify_task(task_name='notify', **args):
    return {'name': task_name, 'opsready.operations.notify': args, 'register': 'out'}


def run(tmp_path, *tasks, check=False):
    return run_playbook(write_playbook(tmp_path, list(tasks)), check=check)


def assert_no_secret(result):
    text = result.stdout + json.dumps([e.get('event_data', {}).get('res') for e in result.events], default=str)
    for secret in SECRETS:
        assert secret not in text, 'secret %r leaked into the output' % secret


def test_failure_reaches_every_channel_type_and_success_resolves_pagerduty(sinks, tmp_path):
    hooks, mail = sinks['hooks'], sinks['mail']
    ledger = tmp_path / 'notify.json'
    result = run(tmp_path, notify_task(
        job='backup', name='app', outcome='failure', host='db1', summary='pg_dump exited with 1',
        details={'set': 'postgresql-app-full', 'bytes': 0}, state_file=str(ledger),
        channels=channels(sinks, 'f1')))
    assert not result.failed, result.stdout[-3000:]
    out = result.result('notify')
    assert out['changed'] is True and out['undelivered'] == 0
    assert [(n['channel'], n['sent']) for n in out['notifications']] == [
        ('slack#0', True), ('teams-ops', True), ('pagerduty#2', True), ('webhook#3', True), ('email#4', True)]

    slack = hooks.requests('/f1/slack/' + SECRETS[0])[0]['json']
    assert 'backup app on db1 FAILED' in slack['text'] and 'pg_dump exited with 1' in slack['text']
    assert slack['blocks'][0]['type'] == 'header'
    assert {'type': 'mrkdwn', 'text': '*set*\npostgresql-app-full'} in slack['blocks'][-1]['fields']
    card = hooks.requests('/f1/teams')[0]['json']['attachments'][0]
    assert card['contentType'] == 'application/vnd.microsoft.card.adaptive'
    assert card['content']['body'][0]['color'] == 'Attention'
    pd = hooks.requests('/f1/pd')[0]['json']
    assert pd['routing_key'] == SECRETS[1] and pd['event_action'] == 'trigger'
    assert pd['dedup_key'] == 'opsready:backup:app@db1'
    assert pd['payload']['severity'] == 'critical' and pd['payload']['source'] == 'db1'
    hook = hooks.requests('/f1/hook')[0]
    assert hook['headers']['Authorization'] == SECRETS[3]
    assert hook['json']['event']['outcome'] == 'failure' and hook['json']['event']['details']['bytes'] == 0
    message = mail.messages[-1]
    assert message['Subject'] == '[opsready] backup app on db1 FAILED'
    assert 'pg_dump exited with 1' in message.get_content()
    assert mail.envelopes[-1] == ('opsready@example.test', ['dba@example.test'])
    assert_no_secret(result)

    # The next success: only PagerDuty asked for successes, and it gets a resolve with the same dedup key.
    before = len(hooks.requests())
    result = run(tmp_path, notify_task(job='backup', name='app', outcome='success', host='db1',
                                       state_file=str(ledger), channels=channels(sinks, 'f1')))
    out = result.result('notify')
    assert [n['wanted'] for n in out['notifications']] == [False, False, True, False, False]
    assert len(hooks.requests()) == before + 1
    resolve = hooks.requests('/f1/pd')[-1]['json']
    assert resolve == {'routing_key': SECRETS[1], 'dedup_key': 'opsready:backup:app@db1', 'event_action': 'resolve'}
    entry = json.loads(ledger.read_text())['jobs']['backup:app@db1']
    assert entry['last_outcome'] == 'success' and entry['last_failure_at'] <= entry['last_success_at']
    assert oct(ledger.stat().st_mode & 0o777) == '0o640'


def test_dead_channel_warns_without_failing_the_job_and_retries_recover(sinks, tmp_path):
    hooks = sinks['hooks']
    hooks.script('/flaky', [503, 502, 200])
    dead = 'http://127.0.0.1:%d/nothing-listens' % free_port()
    tasks = [notify_task(job='drill', name='nightly', outcome='failure', host='db2', channels=[
        {'type': 'webhook', 'name': 'dead', 'url': dead, 'retries': 1, 'backoff': 0.05, 'timeout': 2},
        {'type': 'webhook', 'name': 'flaky', 'url': hooks.url('/flaky'), 'retries': 3, 'backoff': 0.05},
        {'type': 'webhook', 'name': 'refused', 'url': hooks.url('/gone'), 'retries': 3, 'backoff': 0.05},
    ])]
    hooks.script('/gone', [404])
    result = run(tmp_path, *tasks)
    assert not result.failed, result.stdout[-3000:]
    rows = {n['channel']: n for n in result.result('notify')['notifications']}
    assert rows['dead']['sent'] is False and rows['dead']['attempts'] == 2
    assert rows['flaky']['sent'] is True and rows['flaky']['attempts'] == 3
    assert rows['refused']['sent'] is False and rows['refused']['attempts'] == 1    # a 404 is not retried
    assert result.result('notify')['undelivered'] == 2
    assert 'was not delivered after 2 attempt(s)' in result.stdout

    # required: true turns an undelivered notification into a failed task
    tasks[0]['opsready.operations.notify']['required'] = True
    hooks.script('/flaky', [200])
    result = run(tmp_path, *tasks)
    assert result.failed
    assert 'to channel dead was not delivered' in result.result('notify')['msg']


def test_stale_jobs_reported_once_per_episode(sinks, tmp_path):
    hooks = sinks['hooks']
    ledger = tmp_path / 'notify.json'
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=30)).strftime('%Y-%m-%dT%H:%M:%SZ')
    recent = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%SZ')
    chan = [{'type': 'webhook', 'url': hooks.url('/stale'), 'events': ['stale']}]
    # two jobs that succeeded 30 h ago and 2 h ago, and one that has only ever failed (first seen 30 h ago)
    run(tmp_path, notify_task('a', job='backup', name='old', outcome='success', host='h', at=old,
                              state_file=str(ledger), channels=chan),
        notify_task('b', job='backup', name='fresh', outcome='success', host='h', at=recent,
                    state_file=str(ledger), channels=chan),
        notify_task('c', job='drill', name='never', outcome='failure', host='h', at=old,
                    state_file=str(ledger), channels=chan))
    assert hooks.requests('/stale') == []

    check = notify_task('stale', check_stale=True, stale_after_hours=26, state_file=str(ledger), channels=chan)
    # check mode: says what it would report, sends and writes nothing
    result = run(tmp_path, check, check=True)
    assert sorted(s['key'] for s in result.result('stale')['stale']) == ['backup:old@h', 'drill:never@h']
    assert hooks.requests('/stale') == []
    assert 'stale_reported_at' not in ledger.read_text()

    result = run(tmp_path, check)
    assert result.result('stale')['changed'] is True
    sent = sorted(r['json']['event']['key'] for r in hooks.requests('/stale'))
    assert sent == ['backup:old@h', 'drill:never@h']
    assert all(r['json']['event']['outcome'] == 'stale' for r in hooks.requests('/stale'))

    # the same episode is not reported again
    result = run(tmp_path, check)
    assert result.result('stale')['changed'] is False and result.result('stale')['stale'] == []
    assert len(hooks.requests('/stale')) == 2

    # a success ends the episode: not stale now, and stale again (once) when it ages
    run(tmp_path, notify_task(job='backup', name='old', outcome='success', host='h', state_file=str(ledger),
                              channels=chan))
    result = run(tmp_path, check)
    assert result.result('stale')['stale'] == []
    entry = json.loads(ledger.read_text())['jobs']['backup:old@h']
    assert 'stale_reported_at' not in entry


def test_check_mode_sends_and_writes_nothing(sinks, tmp_path):
    hooks, mail = sinks['hooks'], sinks['mail']
    ledger = tmp_path / 'notify.json'
    mails = len(mail.messages)
    result = run(tmp_path, notify_task(job='certificate', name='www', outcome='failure', host='web1',
                                       state_file=str(ledger), channels=channels(sinks, 'chk')), check=True)
    out = result.result('notify')
    assert out['changed'] is True and all(n['wanted'] and not n['sent'] for n in out['notifications'])
    assert out['undelivered'] == 0
    assert not ledger.exists() and hooks.requests('/chk/teams') == [] and len(mail.messages) == mails


@pytest.mark.parametrize('channel, expect', [
    ({'type': 'email', 'smtp_host': 'localhost', 'sender': 'a@b'}, 'needs recipients'),
    ({'type': 'email', 'smtp_host': 'h', 'sender': 'a@b', 'recipients': ['c@d'], 'smtp_username': 'u',
      'smtp_password': SECRETS[2], 'smtp_security': 'none'}, 'in clear text'),
    ({'type': 'pagerduty'}, 'needs routing_key'),
    ({'type': 'slack', 'url': 'ftp://hooks.example/' + SECRETS[0]}, 'is not an http:// or https:// URL'),
    ({'type': 'slack'}, 'needs url'),
])
def test_bad_channels_fail_before_anything_is_recorded(tmp_path, channel, expect):
    ledger = tmp_path / 'notify.json'
    result = run(tmp_path, notify_task(job='backup', name='x', outcome='failure', state_file=str(ledger),
                                       channels=[channel]))
    assert result.failed
    assert expect in result.result('notify')['msg']
    assert not ledger.exists()
    assert_no_secret(result)


def test_smtp_login_refused_is_reported_not_retried(sinks, tmp_path):
    chan = channels(sinks, 'auth')[-1]
    chan.update(smtp_password='wrong-password', retries=3)
    result = run(tmp_path, notify_task(job='patching', name='os', outcome='failure', host='web2', channels=[chan]))
    assert not result.failed
    row = result.result('notify')['notifications'][0]
    assert row['sent'] is False and row['attempts'] == 1 and row['status'] == 535
    assert 'check smtp_username and smtp_password' in row['error']


def test_playbook_failure_is_reported_then_the_host_still_fails(sinks, tmp_path):
    """playbooks/file_backup.yml with a source that does not exist: the failure reaches the webhook with the
    failing task's message, the ledger records it, and the play still fails."""
    hooks = sinks['hooks']
    ledger = tmp_path / 'notify.json'
    result = run_playbook('playbooks/file_backup.yml', extravars={
        'target_hosts': 'localhost',
        'file_backup_sets': [{'name': 'etc', 'paths': [str(tmp_path / 'missing-dir')],
                              'dest': str(tmp_path / 'dest')}],
        'notify_state_file': str(ledger),
        'notify_channels': [{'type': 'webhook', 'url': hooks.url('/pb'), 'events': ['failure', 'success']}],
    })
    assert result.failed
    sent = hooks.requests('/pb')
    assert len(sent) == 1, result.stdout[-4000:]
    event = sent[0]['json']['event']
    assert event['outcome'] == 'failure' and event['job'] == 'backup' and event['name'] == 'file sets'
    assert 'missing-dir' in event['summary']
    assert json.loads(ledger.read_text())['jobs']['backup:file sets@localhost']['last_outcome'] == 'failure'


# Control characters (C0, DEL, C1, Unicode line/paragraph separators) in any field that ends up in a header.
HOSTILE_TEXT = ['line\nbreak cr\r\nlf tab\there esc\x1b[31mred nul\x00 ls\u2028ps\u2029 nel\x85 del\x7f end',
                'ünïcødé ✓ 名前 ' + 'x' * 300 + '\n' + 'y' * 300]


def test_control_characters_in_event_fields_are_folded_in_headers_and_kept_in_the_body(sinks, tmp_path):
    """A newline in the job name, the host or the summary used to make EmailMessage raise ValueError (a
    traceback after the ledger was written). Every channel now gets the event: e-mail headers carry the fields
    folded to one line, the body and the JSON payloads keep the text as given."""
    hooks, mail = sinks['hooks'], sinks['mail']
    ledger = tmp_path / 'notify.json'
    tasks = [notify_task('hostile %d' % i, job='backup', name=text, outcome='failure', host='h' + text,
                         summary='summary ' + text, details={'set': text}, state_file=str(ledger),
                         channels=channels(sinks, 'ctl%d' % i))
             for i, text in enumerate(HOSTILE_TEXT)]
    before = len(mail.messages)
    result = run(tmp_path, *tasks)
    assert not result.failed, result.stdout[-3000:]
    got = mail.messages[before:]
    assert len(got) == len(HOSTILE_TEXT)
    for i, text in enumerate(HOSTILE_TEXT):
        out = result.result('hostile %d' % i)
        assert out['undelivered'] == 0 and all(n['sent'] for n in out['notifications']), out['notifications']
        msg = got[i]
        for header in ('Subject', 'X-Opsready-Key'):
            value = str(msg[header])
            assert not any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 or c in '\u2028\u2029' for c in value), \
                (header, value)
        folded = ' '.join(''.join(' ' if unicodedata.category(c) in ('Cc', 'Zl', 'Zp') else c
                                  for c in text).split())
        assert folded[:40] in ' '.join(str(msg['Subject']).split())
        # the body keeps the summary as given (line breaks included)
        body = msg.get_content()
        assert ('summary ' + text.split(' tab')[0]).replace('\r\n', '\n') in body.replace('\r\n', '\n')
        hook = hooks.requests('/ctl%d/hook' % i)[0]['json']['event']
        assert hook['name'] == text and hook['summary'] == 'summary ' + text
        pd = hooks.requests('/ctl%d/pd' % i)[0]['json']
        assert '\n' not in pd['payload']['summary'] and pd['payload']['custom_details']['summary'] == 'summary ' + text
        slack = hooks.requests('/ctl%d/slack/%s' % (i, SECRETS[0]))[0]['json']
        assert '\n' not in slack['blocks'][0]['text']['text']
    entries = json.loads(ledger.read_text())['jobs']
    assert len(entries) == len(HOSTILE_TEXT)


@pytest.mark.parametrize('field, value', [
    ('sender', 'opsready@example.test\nBcc: victim@example.test'),
    ('recipients', ['dba@example.test\r\nBcc: victim@example.test']),
    ('subject_prefix', '[ops]\nX-Injected: 1'),
    ('headers', {'Authorization': 'Bearer x\r\nX-Injected: 1'}),
])
def test_control_characters_in_channel_header_fields_are_refused_first(sinks, tmp_path, field, value):
    ledger = tmp_path / 'notify.json'
    chan = channels(sinks, 'inj')[3 if field == 'headers' else 4]
    chan[field] = value
    result = run(tmp_path, notify_task(job='backup', name='x', outcome='failure', state_file=str(ledger),
                                       channels=[chan]))
    assert result.failed
    msg = result.result('notify')['msg']
    assert 'control character' in msg and field in msg, msg
    assert 'Traceback' not in result.stdout
    assert not ledger.exists()
    assert_no_secret(result)
