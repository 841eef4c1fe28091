"""The point a replay recovered: the time stamp of the last binary log event replayed, or the dump's."""

from __future__ import annotations

import datetime

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    recovered_point)

LAST = datetime.datetime(2026, 11, 29, 10, 0, 5, tzinfo=datetime.timezone.utc).timestamp()


def dump(at):
    return Manifest({'id': 'mariadb-shop-full', 'artifact': 'mariadb-shop-full', 'engine': 'mariadb', 'kind': 'full',
                     'database': 'shop',
                     'consistent_at': at, 'started': at, 'finished': at, 'size': 1, 'sha256': '0' * 64,
                     'compression': 'none'}, '/x')


def test_recovered_point_is_the_last_event_or_the_dump():
    full = dump('2026-11-29T10:00:00.000000Z')
    point = recovered_point(full, LAST)
    assert point['at'] == '2026-11-29T10:00:05.000000Z'
    assert 'last binary log event' in point['source']
    assert recovered_point(full, None)['at'] == '2026-11-29T10:00:00.000000Z'
    assert recovered_point(full, 1000.0)['source'].startswith('consistent point of dump')
