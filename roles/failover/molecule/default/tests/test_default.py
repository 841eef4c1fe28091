"""Verify the failover role's repoint path: the entry moved, nothing else did, the hook ran, the record."""

import json

STATE = '/tmp/molecule-failover'


def test_entry_repointed_rest_unchanged(host):
    text = host.file(STATE + '/pgbouncer.ini').content_string
    assert text == ('; app database\n[databases]\napp = host=10.0.0.2 port=5433 dbname=app\n'
                    '[pgbouncer]\nlisten_port = 6432\n')
    assert host.file(STATE + '/pgbouncer.ini').mode == 0o640


def test_hook_ran_and_record(host):
    assert host.file(STATE + '/hook-ran').exists
    record = json.loads(host.file(STATE + '/record.json').content_string)
    assert record['action'] == 'repoint' and record['target'] == 'db2'
