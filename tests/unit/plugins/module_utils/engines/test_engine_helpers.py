"""Pure helpers of the engines: WAL archive helper (run as PostgreSQL would), LSN/segment maths, binlog walk."""

from __future__ import annotations

import os
import struct
import zlib
import subprocess
import sys

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import verify_path
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (
    wal_archive as pg_wal_archive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import binlog_index, scan_binlog
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
    lsn_to_int, wal_file_segno, wal_segno)

SEG = 16 * 1024 * 1024
HELPER = pg_wal_archive.__file__


def test_lsn_and_segment_numbers():
    assert lsn_to_int('0/3000060') == 0x3000060
    assert lsn_to_int('1/0') == 1 << 32
    assert wal_segno(lsn_to_int('0/3000060'), SEG) == 3
    assert wal_file_segno('000000010000000100000002', SEG) == (1, 256 + 2)
    assert binlog_index('mariadb-bin.000017') == 17


def _segment(tmp_path, name, fill=b'x'):
    path = tmp_path / name
    path.write_bytes(fill * 1024 + os.urandom(1024) + b'\0' * (SEG - 2048))
    return path


@pytest.mark.parametrize('compression', ['gzip', 'zstd', 'none'])
def test_wal_helper_archives_atomically_and_idempotently(tmp_path, compression):
    dest = tmp_path / 'catalog'
    dest.mkdir()
    seg = _segment(tmp_path, '000000010000000000000005')
    run = [sys.executable, HELPER, str(dest), str(seg), seg.name, '--compression', compression]
    assert subprocess.run(run, check=False).returncode == 0
    catalog = Catalog(str(dest), 'postgresql', '@cluster')
    (wal,) = catalog.logs()
    assert wal.kind == 'wal' and wal.position['start'] == 5 and wal.position['end'] == 6
    assert verify_path(str(dest))['failed'] == []
    # PostgreSQL may archive the same segment again after a crash: same bytes succeed, nothing new written.
    assert subprocess.run(run, check=False).returncode == 0
    assert len(Catalog(str(dest)).entries) == 1
    # Different bytes under the same name must fail (exit non-zero) and leave the catalog alone.
    seg.write_bytes(b'y' * SEG)
    failed = subprocess.run(run, capture_output=True, text=True, check=False)
    assert failed.returncode != 0 and 'different content' in failed.stderr
    assert len(Catalog(str(dest)).entries) == 1 and Catalog(str(dest)).leftovers() == []


def test_wal_helper_fails_when_dest_is_missing_and_copies_history_files(tmp_path):
    seg = _segment(tmp_path, '000000010000000000000001')
    assert subprocess.run([sys.executable, HELPER, str(tmp_path / 'nope'), str(seg), seg.name],
                          capture_output=True, check=False).returncode != 0
    dest = tmp_path / 'c'
    dest.mkdir()
    hist = tmp_path / '00000002.history'
    hist.write_text('1\t0/3000000\tno recovery target specified\n')
    assert subprocess.run([sys.executable, HELPER, str(dest), str(hist), hist.name], check=False).returncode == 0
    assert (dest / 'pg_wal_extra' / '00000002.history').read_text() == hist.read_text()


def _binlog(path, events):
    data = b'\xfebin'
    for ts in events:
        body = b'z' * 10
        data += struct.pack('<IBIIIH', ts, 2, 1, 19 + len(body), len(data) + 19 + len(body), 0) + body
    path.write_bytes(data)


def test_binlog_walk_counts_events_and_catches_truncation(tmp_path):
    path = tmp_path / 'b.000001'
    _binlog(path, [1700000000, 0, 1700000100])
    scan = scan_binlog(str(path))
    assert scan == {'events': 3, 'first_event': 1700000000, 'last_event': 1700000100}
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(IntegrityError, match='damaged event|truncated'):
        scan_binlog(str(path))
    path.write_bytes(b'nope' + path.read_bytes()[4:])
    with pytest.raises(IntegrityError, match='magic'):
        scan_binlog(str(path))


def _crc_event(kind, body, ts=1700000000, at=4):
    """One event with its CRC32 in the last 4 bytes (binlog_checksum=CRC32)."""
    head = struct.pack('<IBIIIH', ts, kind, 1, 19 + len(body) + 4, at + 19 + len(body) + 4, 0)
    return head + body + struct.pack('<I', zlib.crc32(head + body))


def test_binlog_walk_checks_each_event_crc32(tmp_path):
    """Covered end to end by tests/fidelity/test_mariadb_binlog_crc.py (which failed first); here the branches: a
    log with checksums, one byte changed in an event; a log without (alg 0, no CRC on events); a pre-checksum format
    event whose last bytes only look like an algorithm byte."""
    version = b'10.11.6-MariaDB'.ljust(50, b'\0')
    fde = _crc_event(15, b'\x04\x00' + version + b'\0' * 4 + b'\x13' + b'\x08' * 8 + b'\x01')
    row = _crc_event(30, b'GOOD-VALUE', at=4 + len(fde))
    path = tmp_path / 'b.000001'
    path.write_bytes(b'\xfebin' + fde + row)
    assert scan_binlog(str(path))['events'] == 2
    path.write_bytes(b'\xfebin' + fde + row.replace(b'GOOD', b'BOOD'))
    with pytest.raises(IntegrityError, match='byte %d .*CRC32' % (4 + len(fde))):
        scan_binlog(str(path))
    # binlog_checksum=NONE: the format event still ends with the algorithm byte (0) and 4 bytes; events have none
    none = bytearray(fde)
    none[-5] = 0
    path.write_bytes(b'\xfebin' + bytes(none) + struct.pack('<IBIIIH', 1, 30, 1, 29, 0, 0) + b'BOOD-VALUE')
    assert scan_binlog(str(path))['events'] == 2
    # a format event whose own checksum does not hold: not a log with checksums (an old server's length table)
    old = bytearray(fde)
    old[-1] ^= 0xFF
    path.write_bytes(b'\xfebin' + bytes(old) + row.replace(b'GOOD', b'BOOD'))
    assert scan_binlog(str(path))['events'] == 2


def test_set_name_stays_a_short_safe_file_name_part_for_hostile_names():
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import SET_NAME_MAX, set_name
    long_a, long_b = 'l' * 300 + 'a', 'l' * 300 + 'b'
    for name in (long_a, '../../x', '/abs/set', 'a b ü 名', 'line\nbreak', '..', '', 'ü' * 400):
        part = set_name(name)
        assert part and len(part) <= SET_NAME_MAX and '/' not in part and part not in ('.', '..'), name
    assert set_name(long_a) != set_name(long_b)
    assert set_name('shop') == 'shop' and set_name('x' * SET_NAME_MAX) == 'x' * SET_NAME_MAX
