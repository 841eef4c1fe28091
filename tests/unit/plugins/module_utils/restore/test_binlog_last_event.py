"""The binary log replay notes the time stamp of the last event it passed on (the recovered point)."""

from __future__ import annotations

import datetime

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    GtidStripper, recovered_point)

STREAM = (b'# at 4\n#261129 10:00:00 server id 1  end_log_pos 256 CRC32 0x1 \tStart: binlog v 4\n'
          b'# at 256\n#261129  9:59:58 server id 1  end_log_pos 300 CRC32 0x2 \tGTID 0-1-5 trans\n'
          b'START TRANSACTION\n/*!*/;\n'
          b'# at 300\n#261129  9:59:58 server id 1  end_log_pos 330 CRC32 0x3 \tXid = 12\nCOMMIT/*!*/;\n'
          b'# at 330\n#261129 10:00:05 server id 1  end_log_pos 400 CRC32 0x4 \tQuery\tthread_id=5\texec_time=0\n'
          b'SET TIMESTAMP=1796032805/*!*/;\nCREATE TABLE t (a INT)\n/*!*/;\n'
          b'# at 400\n#261129 10:00:09 server id 1  end_log_pos 450 CRC32 0x5 \tRotate to mariadb-bin.000002  pos: 4\n')
LAST = datetime.datetime(2026, 11, 29, 10, 0, 5, tzinfo=datetime.timezone.utc).timestamp()


def feed(chunks):
    stripper = GtidStripper()
    out = b''.join(stripper.feed(c) for c in chunks) + stripper.flush()
    return stripper, out


def test_last_timestamp_whole_and_split_anywhere():
    for cut in range(1, len(STREAM)):
        stripper, out = feed([STREAM[:cut], STREAM[cut:]])
        assert out == STREAM
        assert stripper.last_timestamp == LAST, cut


def test_no_event_no_timestamp():
    stripper, _out = feed([b'# at 4\n#261129 10:00:09 server id 1  end_log_pos 450 CRC32 0x5 \tRotate to x\n'])
    assert stripper.last_timestamp is None


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
