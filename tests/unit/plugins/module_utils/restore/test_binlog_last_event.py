"""The binary log replay notes the time stamp of the last event it passed on (the recovered point)."""

from __future__ import annotations

import datetime

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.restore.mysql import GtidStripper, recovered_point

STREAM = (b'# at 4\n#261129 10:00:00 server id 1  end_log_pos 256 CRC32 0x1\n'
          b'SET TIMESTAMP=1796032800/*!*/;\nBEGIN\n/*!*/;\n'
          b'# at 300\nSET TIMESTAMP=1796032805.250000/*!*/;\nINSERT INTO t VALUES (\'SET TIMESTAMP=1\')\n/*!*/;\n'
          b'COMMIT/*!*/;\n')


def feed(chunks):
    stripper = GtidStripper()
    out = b''.join(stripper.feed(c) for c in chunks) + stripper.flush()
    return stripper, out


def test_last_timestamp_whole_and_split_anywhere():
    for cut in range(1, len(STREAM)):
        stripper, out = feed([STREAM[:cut], STREAM[cut:]])
        assert out == STREAM
        assert stripper.last_timestamp == 1796032805.25, cut


def test_no_event_no_timestamp():
    stripper, _out = feed([b'# at 4\n/*!*/;\n'])
    assert stripper.last_timestamp is None


def dump(at):
    return Manifest({'id': 'mariadb-shop-full', 'artifact': 'mariadb-shop-full', 'engine': 'mariadb', 'kind': 'full', 'database': 'shop',
                     'consistent_at': at, 'started': at, 'finished': at, 'size': 1, 'sha256': '0' * 64,
                     'compression': 'none'}, '/x')


def test_recovered_point_is_the_last_event_or_the_dump():
    full = dump('2026-11-29T10:00:00.000000Z')
    point = recovered_point(full, 1796032805.25)
    assert point['at'] == datetime.datetime.fromtimestamp(1796032805.25, datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%S.%fZ')
    assert 'last binary log event' in point['source']
    assert recovered_point(full, None)['at'] == '2026-11-29T10:00:00.000000Z'
    assert recovered_point(full, 1000.0)['source'].startswith('consistent point of dump')
