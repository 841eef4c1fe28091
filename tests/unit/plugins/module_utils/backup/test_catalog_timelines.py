"""PostgreSQL WAL chains across a promotion (no server): generated manifests.

After a failover the archive can hold the same segment number twice: ``000000010000000000000005`` (the old
primary's, archived when it completed the segment, or by a split-brain old primary) and
``000000020000000000000005`` (the promoted server's, which forked inside it). The chain must take the newest
timeline's, as PostgreSQL does with ``recovery_target_timeline = 'latest'``: the old one's records after the fork
point are not the history the later segments continue.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr

BASE_AT = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
SEGMENT = 16 * 1024 * 1024


def artifact(directory, name, kind, minutes, position):
    body = name.encode()
    (directory / name).write_bytes(body)
    at = BASE_AT + datetime.timedelta(minutes=minutes)
    data = {'id': name, 'artifact': name, 'format': 1, 'engine': 'postgresql', 'database': '@cluster', 'kind': kind,
            'started': isoformat(at), 'finished': isoformat(at), 'consistent_at': isoformat(at), 'size': len(body),
            'sha256': hashlib.sha256(body).hexdigest(), 'compression': 'none', 'position': position,
            'verification': {'ok': True}}
    (directory / (name + '.manifest.json')).write_text(json.dumps(data))


def wal(directory, timeline, segno, minutes):
    name = '%08X%08X%08X' % (timeline, 0, segno)
    position = {'start': segno, 'end': segno + 1, 'timeline': timeline, 'wal_file': name, 'wal_segment_size': SEGMENT}
    artifact(directory, 'wal-' + name, 'wal', minutes, position)


def base(directory, timeline=1):
    artifact(directory, 'base', 'base', 0, {'log_start': 3, 'timeline': timeline, 'wal_segment_size': SEGMENT,
                                            'start_lsn': '0/3000028', 'end_lsn': '0/3000100'})


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


@pytest.mark.parametrize('indexed', [False, True])
@pytest.mark.parametrize('old_first', [True, False])
def test_chain_follows_the_newest_timeline(tmp_path, monkeypatch, old_first, indexed):
    """Before, the first manifest listed for a segment number won: the old primary's segment 5, archived first,
    was chained before the new timeline's segment 6, and recovery lost everything after the fork point.
    ``indexed``: the same answer from the catalog index's rows (a large catalog), which hold no timeline."""
    base(tmp_path)
    wal(tmp_path, 1, 3, 1)
    wal(tmp_path, 1, 4, 2)
    if old_first:
        wal(tmp_path, 1, 5, 3)
    wal(tmp_path, 2, 5, 4)
    if not old_first:
        wal(tmp_path, 1, 5, 5)
    wal(tmp_path, 2, 6, 6)
    if indexed:
        monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
        monkeypatch.setattr(catalog_index, 'ROWS_MIN', 1)
        describe(str(tmp_path), now=BASE_AT + datetime.timedelta(days=1))
        assert (tmp_path / INDEX_NAME).exists()
        catalog_index.clear()
    catalog = Catalog(str(tmp_path), engine='postgresql', database='@cluster')
    if indexed:   # the view describe (backup_info) answers a large catalog's set from
        whole = Catalog(str(tmp_path), materialize=False)
        catalog = whole.set_view(whole.set_refs()[('postgresql', '@cluster')], rows=True)
        assert type(catalog).__name__ == 'RowView'
    chain = catalog.chain_for(None)
    assert [m.position['wal_file'] for m in chain[1:]] == [
        '000000010000000000000003', '000000010000000000000004', '000000020000000000000005',
        '000000020000000000000006']


def test_history_staged_for_the_chain_timelines(tmp_path):
    """Regression guard for the staging of history files (tests/integration/test_pitr_timeline.py failed first):
    those of the chain's timelines are staged, a later timeline's is not, and a missing one refuses the restore
    with its name before any recovery (which would stop at the end of the old timeline)."""
    base(tmp_path)
    wal(tmp_path, 1, 3, 1)
    wal(tmp_path, 2, 4, 2)
    extra = tmp_path / 'pg_wal_extra'
    extra.mkdir()
    (extra / '00000002.history').write_text('1\t0/4000100\tno recovery target specified\n')
    (extra / '00000003.history').write_text('1\t0/4000100\tx\n2\t0/5000000\ty\n')
    (extra / '000000010000000000000004.partial').write_bytes(b'x')
    logs = Catalog(str(tmp_path), engine='postgresql', database='@cluster').chain_for(None)
    full, logs = logs[0], logs[1:]
    waldir = tmp_path / 'staged'
    waldir.mkdir()
    assert pitr._stage_history(full, logs, str(waldir)) == ['00000002.history']  # pylint: disable=protected-access
    assert sorted(p.name for p in waldir.iterdir()) == ['00000002.history']
    (extra / '00000002.history').unlink()
    with pytest.raises(OpsReadyError, match='00000002.history'):
        pitr._stage_history(full, logs, str(tmp_path / 'staged'))  # pylint: disable=protected-access
    # a base backup taken on timeline 2 needs no history for it
    on_two = Manifest(dict(full.data, position=dict(full.position, timeline=2)), full.directory)
    assert pitr._stage_history(on_two, logs, str(waldir)) == []  # pylint: disable=protected-access


def test_check_mode_refuses_a_missing_history_as_the_run_does(tmp_path, monkeypatch):
    """Check mode plans what the run does: before, it passed a chain whose timeline 2 has no history file, which
    the run then refused (or, before that, recovered only up to the end of timeline 1)."""
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
    base(tmp_path)
    wal(tmp_path, 1, 3, 1)
    wal(tmp_path, 2, 4, 2)
    chain = Catalog(str(tmp_path), engine='postgresql', database='@cluster').chain_for(None)
    (tmp_path / 'target').mkdir()
    request = RestoreRequest(engine='postgresql', src=str(tmp_path), datadir=str(tmp_path / 'target' / 'data'),
                             check_mode=True)
    restorer = pitr.PitrRestore('postgresql', None)
    monkeypatch.setattr(pitr, '_owner', lambda: (None, os.getuid(), os.getgid()))   # pytest's tmp is 0700
    with pytest.raises(OpsReadyError, match='00000002.history'):
        restorer.check(request, chain)
    (tmp_path / 'pg_wal_extra').mkdir()
    (tmp_path / 'pg_wal_extra' / '00000002.history').write_text('1\t0/4000100\tno recovery target specified\n')
    assert restorer.check(request, chain)['timeline_history'] == ['00000002.history']
