"""A gap in the log chain is named by the file that is missing (WAL segment, binary log), not only a position."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import CatalogError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import plan

T0 = datetime.datetime(2026, 11, 1, 0, 0, tzinfo=datetime.timezone.utc)
SEG = 16 * 1024 * 1024


def piece(directory, name, kind, minutes, position, engine, database):
    path = directory / name
    payload = name.encode()
    path.write_bytes(payload)
    when = T0 + datetime.timedelta(minutes=minutes)
    write_manifest(str(path), {
        'engine': engine, 'kind': kind, 'database': database, 'started': isoformat(when),
        'finished': isoformat(when), 'consistent_at': isoformat(when), 'size': len(payload),
        'sha256': hashlib.sha256(payload).hexdigest(), 'compression': 'none', 'position': position, 'parent': None})


def wal(directory, segno, minutes, timeline=1):
    name = '%08X%08X%08X' % (timeline, segno // 256, segno % 256)
    piece(directory, 'postgresql-cluster-wal-%02d.%s' % (minutes, name), 'wal', minutes,
          {'start': segno, 'end': segno + 1, 'wal_file': name, 'timeline': timeline, 'wal_segment_size': SEG},
          'postgresql', '@cluster')


def base(directory, log_start):
    piece(directory, 'postgresql-cluster-base-00', 'base', 0,
          {'log_start': log_start, 'log_end': log_start, 'timeline': 1, 'wal_segment_size': SEG},
          'postgresql', '@cluster')


@pytest.mark.parametrize('present, missing', [
    ([3, 4, 6, 7], '000000010000000000000005'),      # a segment missing in the middle
    ([4, 5], '000000010000000000000003'),            # the first segment the base backup needs
    ([3, 4, 0x100 + 1], '000000010000000000000005'),  # across a log id boundary (0x100 segments of 16 MB)
])
def test_wal_gap_names_the_missing_segment(tmp_path, present, missing):
    base(tmp_path, 3)
    for minute, segno in enumerate(present, start=1):
        wal(tmp_path, segno, minute)
    with pytest.raises(CatalogError) as exc:
        plan(RestoreRequest(engine='postgresql', src=str(tmp_path), datadir=str(tmp_path / 'data')))
    assert 'WAL segment %s is missing' % missing in exc.value.message
    assert exc.value.details['missing'] == missing


def test_binlog_gap_names_the_missing_binary_log(tmp_path):
    piece(tmp_path, 'mariadb-shop-full-00', 'full', 0,
          {'binlog_file': 'mysql-bin.000007', 'binlog_pos': 4, 'log_start': 7}, 'mariadb', 'shop')
    for minute, index in ((1, 7), (2, 9)):
        piece(tmp_path, 'mariadb-binlog-%02d' % minute, 'log', minute,
              {'start': index, 'end': index + 1, 'binlog_file': 'mysql-bin.%06d' % index}, 'mariadb', 'shop')
    with pytest.raises(CatalogError) as exc:
        plan(RestoreRequest(engine='mariadb', src=str(tmp_path), database='shop'))
    assert 'binary log mysql-bin.000008 is missing' in exc.value.message
