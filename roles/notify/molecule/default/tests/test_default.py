"""Verify the notify role: both outcomes are in the ledger with their instants, the success is the last
success of its job, the ledger is 0640 (the idempotence step proved recording the same outcome twice
changes nothing)."""

import json

LEDGER = '/tmp/molecule-notify/notify.json'


def test_ledger_holds_both_outcomes(host):
    ledger = host.file(LEDGER)
    assert ledger.is_file
    assert ledger.mode == 0o640
    jobs = json.loads(ledger.content_string)['jobs']
    backup = jobs['backup:app@localhost']
    assert backup['last_outcome'] == 'success'
    assert backup['last_success_at'] == '2026-12-01T02:00:00Z'
    drill = jobs['drill:nightly@localhost']
    assert drill['last_outcome'] == 'failure'
    assert drill['last_failure_at'] == '2026-12-01T03:00:00Z'
    assert 'last_success_at' not in drill
