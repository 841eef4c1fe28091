"""The recoverable window is exactly what restores: a missing log piece followed by a newer full leaves a
hole, reported as separate spans; an instant in the hole is refused naming the spans and the missing piece."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import CatalogError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat

T0 = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def at(minutes: float) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes)


def artifact(directory, name, kind, minutes, position, parent=None):
    body = name.encode()
    (directory / name).write_bytes(body)
    data = {'id': name, 'artifact': name, 'format': 1, 'engine': 'mariadb', 'database': 'shop', 'kind': kind,
            'started': isoformat(at(minutes)), 'finished': isoformat(at(minutes)),
            'consistent_at': isoformat(at(minutes)), 'size': len(body), 'sha256': hashlib.sha256(body).hexdigest(),
            'compression': 'none', 'position': position, 'parent': parent, 'verification': {'ok': True}}
    (directory / (name + '.manifest.json')).write_text(json.dumps(data))


def log(directory, index, minutes):
    artifact(directory, 'binlog%d' % index, 'log', minutes, {'start': index, 'end': index + 1})


def test_missing_log_between_two_fulls_is_a_hole(tmp_path):
    artifact(tmp_path, 'full1', 'full', 0, {'log_start': 5})
    log(tmp_path, 5, 1)
    log(tmp_path, 6, 2)
    log(tmp_path, 8, 4)  # binlog7 is missing
    artifact(tmp_path, 'full2', 'full', 5, {'log_start': 9})
    log(tmp_path, 9, 6)
    catalog = Catalog(str(tmp_path))
    assert catalog.spans() == [(at(0), at(2)), (at(5), at(6))]
    window = catalog.window()
    assert window['from'] == isoformat(at(0)) and window['until'] == isoformat(at(6))
    assert window['spans'] == [{'from': isoformat(at(0)), 'until': isoformat(at(2))},
                               {'from': isoformat(at(5)), 'until': isoformat(at(6))}]
    for minutes in (0, 1, 2, 5, 5.5, 6):  # every instant of every span has a chain
        assert catalog.reaches(catalog.chain_for(at(minutes))) >= at(minutes)
    with pytest.raises(CatalogError) as hole:
        catalog.chain_for(at(3))
    message = hole.value.message
    assert 'falls in a hole of the recoverable window' in message
    assert '%s .. %s and %s .. %s' % tuple(isoformat(at(m)) for m in (0, 2, 5, 6)) in message
    assert 'piece starting at position 7 is missing' in message
    with pytest.raises(CatalogError) as late:
        catalog.chain_for(at(6) + datetime.timedelta(microseconds=1))
    assert 'is outside the recoverable window' in late.value.message
    info = describe(str(tmp_path))
    assert info['window'] == window and info['sets'][0]['window'] == window


def test_differential_bridges_a_log_gap(tmp_path):
    artifact(tmp_path, 'full', 'full', 0, {'log_start': 1})
    log(tmp_path, 1, 1)  # log 2 is missing
    artifact(tmp_path, 'diff', 'diff', 3, {'log_start': 5}, parent='full')
    log(tmp_path, 5, 4)
    catalog = Catalog(str(tmp_path))
    assert catalog.spans() == [(at(0), at(1)), (at(3), at(4))]
    assert [m.id for m in catalog.chain_for(at(3.5))] == ['full', 'diff', 'binlog5']
    with pytest.raises(CatalogError):
        catalog.chain_for(at(2))


def test_contiguous_chain_is_one_span(tmp_path):
    artifact(tmp_path, 'full1', 'full', 0, {'log_start': 5})
    log(tmp_path, 5, 1)
    artifact(tmp_path, 'full2', 'full', 1.5, {'log_start': 6})
    log(tmp_path, 6, 2)
    catalog = Catalog(str(tmp_path))
    assert catalog.spans() == [(at(0), at(2))]
    assert catalog.window_text() == '%s .. %s' % (isoformat(at(0)), isoformat(at(2)))
