"""Catalog chains at the edges of timestamp resolution.

Binlog and WAL timestamps have one-second resolution: a log whose last event falls in the same second as
the dump can still hold transactions after the dump's position. It must be part of the chain, or a restore
silently loses them.
"""

from __future__ import annotations

import datetime
import hashlib
import json

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat

DUMP_AT = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def artifact(directory, name, kind, consistent_at, position, covers_from=None):
    body = name.encode()
    (directory / name).write_bytes(body)
    data = {'id': name, 'artifact': name, 'format': 1, 'engine': 'mariadb', 'database': 'shop', 'kind': kind,
            'started': isoformat(consistent_at), 'finished': isoformat(consistent_at),
            'consistent_at': isoformat(consistent_at), 'size': len(body), 'sha256': hashlib.sha256(body).hexdigest(),
            'compression': 'none', 'position': position, 'verification': {'ok': True}}
    if covers_from is not None:
        data['covers_from'] = isoformat(covers_from)
    (directory / (name + '.manifest.json')).write_text(json.dumps(data))


def test_binlog_ending_in_the_dump_second_is_replayed(tmp_path):
    artifact(tmp_path, 'full', 'full', DUMP_AT, {'binlog_file': 'mysql-bin.000005', 'binlog_pos': 1234, 'log_start': 5})
    # closed in the same second as the dump: its last events may be after position 1234
    artifact(tmp_path, 'binlog5', 'log', DUMP_AT, {'start': 5, 'end': 6, 'binlog_file': 'mysql-bin.000005'},
             covers_from=DUMP_AT - datetime.timedelta(minutes=10))
    artifact(tmp_path, 'binlog6', 'log', DUMP_AT + datetime.timedelta(minutes=1),
             {'start': 6, 'end': 7, 'binlog_file': 'mysql-bin.000006'}, covers_from=DUMP_AT)
    catalog = Catalog(str(tmp_path), engine='mariadb', database='shop')
    assert [m.id for m in catalog.chain_for(None)] == ['full', 'binlog5', 'binlog6']
    assert [m.id for m in catalog.chain_for(DUMP_AT + datetime.timedelta(seconds=30))] == \
        ['full', 'binlog5', 'binlog6']
    assert catalog.recoverable_until() == DUMP_AT + datetime.timedelta(minutes=1)


def test_last_binlog_in_the_dump_second_is_not_dropped(tmp_path):
    artifact(tmp_path, 'full', 'full', DUMP_AT, {'binlog_file': 'mysql-bin.000005', 'binlog_pos': 1234, 'log_start': 5})
    artifact(tmp_path, 'binlog5', 'log', DUMP_AT, {'start': 5, 'end': 6, 'binlog_file': 'mysql-bin.000005'})
    assert [m.id for m in Catalog(str(tmp_path), engine='mariadb', database='shop').chain_for(None)] == \
        ['full', 'binlog5']
