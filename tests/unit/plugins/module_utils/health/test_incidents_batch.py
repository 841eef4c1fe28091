"""Incidents of a whole fleet in one store transaction (incidents.apply_changes), and incident ids that stay
unique when hundreds are opened in the same second."""

from __future__ import annotations

import json

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import incidents


def opened(n: int, prefix: str = 'h') -> list:
    return [{'key': 'health:%s%04d' % (prefix, i), 'state': 'open', 'title': 'h%d is critical' % i, 'severity': 2,
             'components': ['h%d' % i, 'cpu'], 'note': 'health verdict critical', 'actor': 'health'}
            for i in range(n)]


def events(path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_ids_opened_in_one_burst_never_collide(tmp_path):
    # One second gives 65,536 possible ids; 2,000 opens in that second collided ~30 times before, and two
    # opens with one id fold into one record: incidents were silently lost.
    records: dict = {}
    for change in opened(2000):
        plan = incidents.plan_change(records, 'open', None, change['key'], 2, change['title'], None, [], None, None)
        incidents.apply_event(records, plan['event'])
    assert len(records) == 2000
    assert len({inc['key'] for inc in records.values()}) == 2000


def test_a_fleet_batch_opens_dedups_escalates_and_resolves(tmp_path):
    path = tmp_path / 'incidents.jsonl'
    store = incidents.IncidentStore(str(path))
    first = incidents.apply_changes(store, opened(500) + [{'key': 'health:ok1', 'state': 'resolved'}])
    assert [e['event']['event'] for e in first[:500]] == ['open'] * 500
    assert first[500] == {'event': None, 'before': None, 'after': None}   # nothing open: nothing to resolve
    written = events(path)
    assert len(written) == 500 and len({e['id'] for e in written}) == 500
    assert all(e['actor'] == 'health' and e['severity'] == 2 for e in written)

    # the same batch again: the ongoing problems are not opened twice; one host escalates, one recovers
    again = opened(500)
    again[7] = dict(again[7], severity=1)
    again[9] = {'key': again[9]['key'], 'state': 'resolved', 'note': 'health verdict ok', 'actor': 'health'}
    second = incidents.apply_changes(store, again)
    changed = {i: e['event']['event'] for i, e in enumerate(second) if e['event']}
    assert changed == {7: 'update', 9: 'resolve'}
    assert second[7]['before']['severity'] == 2 and second[7]['after']['severity'] == 1
    assert second[9]['after']['status'] == 'resolved' and second[9]['before']['status'] == 'new'
    assert second[0]['after']['id'] == first[0]['after']['id']          # the matched record, unchanged
    assert len(events(path)) == 502
    folded = store.load()
    assert len(folded) == 500
    assert folded[second[9]['after']['id']]['status'] == 'resolved'


def test_later_changes_of_a_batch_see_the_earlier_ones(tmp_path):
    store = incidents.IncidentStore(str(tmp_path / 'incidents.jsonl'))
    out = incidents.apply_changes(store, [
        {'key': 'health:db1', 'state': 'open', 'title': 'db1', 'severity': 3},
        {'key': 'health:db1', 'state': 'open', 'title': 'db1', 'severity': 3},     # duplicate: nothing
        {'key': 'health:db1', 'state': 'investigating', 'note': 'restarted'},
        {'key': 'health:db1', 'state': 'resolved', 'note': 'ok'},
    ])
    assert [e['event'] and e['event']['event'] for e in out] == ['open', None, 'update', 'resolve']
    assert out[3]['after']['acknowledged_at'] and out[3]['after']['status'] == 'resolved'


def test_check_mode_writes_nothing_and_an_invalid_change_writes_nothing(tmp_path):
    path = tmp_path / 'incidents.jsonl'
    store = incidents.IncidentStore(str(path))
    planned = incidents.apply_changes(store, opened(3), write=False)
    assert [e['event']['event'] for e in planned] == ['open'] * 3
    assert not path.exists()
    with pytest.raises(OpsReadyError, match='needs severity'):
        incidents.apply_changes(store, opened(3) + [{'key': 'health:x', 'state': 'open', 'title': 'x'}])
    assert events(path) == []
