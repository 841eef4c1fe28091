"""Notification payloads at the receiving APIs' limits, the ledger's stale edges, channel validation."""

from __future__ import annotations

import datetime
import json
from email import policy as email_policy

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.notify import deliver, formats
from ansible_collections.opsready.operations.plugins.module_utils.notify.event import Event
from ansible_collections.opsready.operations.plugins.module_utils.notify.ledger import Ledger

UTC = datetime.timezone.utc


def event(outcome='failure', **kw):
    return Event(job='backup', name='app', outcome=outcome, host='db1', at='2026-12-04T10:00:00Z', **kw)


def test_pagerduty_summary_is_cut_to_the_api_limit_and_success_resolves():
    body = formats.pagerduty(event(summary='x' * 5000), 'key')
    assert len(body['payload']['summary']) == formats.PAGERDUTY_SUMMARY_MAX
    assert body['payload']['summary'].endswith('\u2026')
    assert body['payload']['custom_details']['summary'] == 'x' * 5000
    stale = formats.pagerduty(event('stale'), 'key')
    assert stale['event_action'] == 'trigger' and stale['payload']['severity'] == 'warning'
    assert formats.pagerduty(event('success'), 'key') == {
        'routing_key': 'key', 'dedup_key': 'opsready:backup:app@db1', 'event_action': 'resolve'}


def test_slack_keeps_at_most_ten_fields_and_a_header_under_150():
    details = {'k%02d' % i: i for i in range(20)}
    body = formats.slack(Event(job='backup', name='n' * 300, outcome='failure', host='h', details=details))
    assert len(body['blocks'][-1]['fields']) == 10
    assert len(body['blocks'][0]['text']['text']) == 150
    json.dumps(body)   # serialisable as sent


def test_email_subject_and_body():
    msg = formats.email(event(summary='disk full', details={'free': '0 B'}), 'a@x', ['b@y', 'c@z'])
    assert msg['Subject'] == '[opsready] backup app on db1 FAILED' and msg['To'] == 'b@y, c@z'
    assert 'disk full\nfree: 0 B\nat 2026-12-04T10:00:00Z' in msg.get_content()


def test_ledger_stale_edges(tmp_path):
    path = str(tmp_path / 'ledger.json')
    now = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    with Ledger(path).locked() as book:
        book.record(Event('backup', 'exact', 'success', 'h', at='2026-12-03T12:00:00Z'))   # exactly 24 h
        book.record(Event('backup', 'older', 'success', 'h', at='2026-12-03T11:59:59Z'))   # 24 h + 1 s
        book.record(Event('backup', 'failing', 'success', 'h', at='2026-12-01T00:00:00Z'))
        book.record(Event('backup', 'failing', 'failure', 'h', at='2026-12-04T11:00:00Z'))  # recent failures
        book.save()
    with Ledger(path).locked() as book:
        due = [e['key'] for e in book.due_stale(24, now)]
        # exactly at the limit is not stale; one second older is; failures do not refresh the last success
        assert due == ['backup:failing@h', 'backup:older@h']
        book.mark_stale_reported('backup:older@h', '2026-12-04T12:00:00Z')
        assert [e['key'] for e in book.due_stale(24, now)] == ['backup:failing@h']
        book.record(Event('backup', 'older', 'success', 'h', at='2026-12-04T12:00:00Z'))
        assert 'stale_reported_at' not in book.entries['backup:older@h']


@pytest.mark.parametrize('text', ['[]', '{"version": 1}', 'not json', '\xff'])
def test_ledger_refuses_files_it_did_not_write(tmp_path, text):
    path = tmp_path / 'ledger.json'
    path.write_bytes(text.encode('latin-1'))
    with pytest.raises(OpsReadyError, match='Move it aside|move it aside'):
        with Ledger(str(path)).locked():
            pass


def test_channel_url_with_token_is_never_echoed_in_errors():
    channel = {'type': 'slack', 'url': 'gopher://hooks.slack.test/T0KEN', 'timeout': 5, 'retries': 1, 'backoff': 1}
    with pytest.raises(OpsReadyError) as err:
        deliver.validate([channel])
    assert 'T0KEN' not in str(err.value) and 'slack#0' in str(err.value)


def test_notify_filters_channels_by_events_and_sends_nothing_in_dry_run():
    sent = []
    channels = [{'type': 'webhook', 'events': ['failure']},
                {'type': 'webhook', 'name': 'all', 'events': ['failure', 'success', 'stale']}]
    rows = deliver.notify(channels, event('success'), send_one=lambda c, e: sent.append(c) or {
        'sent': True, 'attempts': 1, 'status': 200, 'error': ''})
    assert [r['wanted'] for r in rows] == [False, True] and [c.get('name') for c in sent] == ['all']
    rows = deliver.notify(channels, event('failure'), dry_run=True, send_one=lambda c, e: pytest.fail('sent'))
    assert [r['sent'] for r in rows] == [False, False]


def test_every_control_character_in_header_bound_fields_builds_a_real_message():
    """Each C0/C1 control character and line/paragraph separator in the name, host or summary: the e-mail is
    built and serialised (EmailMessage raised ValueError for CR/LF), headers are one line, the body keeps it."""
    for code in list(range(0, 32)) + list(range(0x7f, 0xa0)) + [0x2028, 0x2029]:
        ch = chr(code)
        event = Event(job='backup', name='a%sb' % ch, outcome='failure', host='h%s1' % ch, summary='s%st' % ch)
        msg = formats.email(event, 'o@example.test', ['d@example.test'])
        wire = msg.as_bytes(policy=email_policy.SMTP)
        for header in ('Subject', 'X-Opsready-Key'):
            assert ch not in str(msg[header]) or ch == ' ', (hex(code), header)
        assert msg['X-Opsready-Key'] == 'backup:a b@h 1'
        assert wire
        for payload in (formats.webhook(event), formats.slack(event), formats.teams(event)):
            assert payload
        assert ch not in formats.pagerduty(event, 'k')['payload']['summary']
        if code not in (10, 13):
            assert 's%st' % ch in event.text()
