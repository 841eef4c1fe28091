"""Restore planning on a real catalog directory (real files, real manifests)."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    CatalogError, IntegrityError, OpsReadyError)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
    select_chain, temporary_name, verify_chain)

T0 = datetime.datetime(2026, 11, 1, 0, 0, tzinfo=datetime.timezone.utc)


def artifact(directory, name, kind, minutes, position=None, parent=None, engine='mariadb', database='shop'):
    path = directory / name
    payload = ('%s %s' % (name, kind)).encode()
    path.write_bytes(payload)
    when = T0 + datetime.timedelta(minutes=minutes)
    write_manifest(str(path), {
        'engine': engine, 'kind': kind, 'database': database, 'started': isoformat(when),
        'finished': isoformat(when), 'consistent_at': isoformat(when), 'size': len(payload),
        'sha256': hashlib.sha256(payload).hexdigest(), 'compression': 'none', 'position': position or {},
        'parent': parent})
    return path


@pytest.fixture
def catalog(tmp_path):
    artifact(tmp_path, 'full-1', 'full', 0, {'log_start': 1})
    artifact(tmp_path, 'log-1', 'log', 10, {'start': 1, 'end': 2})
    artifact(tmp_path, 'log-2', 'log', 20, {'start': 2, 'end': 3})
    artifact(tmp_path, 'full-2', 'full', 30, {'log_start': 3})
    artifact(tmp_path, 'log-3', 'log', 40, {'start': 3, 'end': 4})
    artifact(tmp_path, 'log-5', 'log', 60, {'start': 5, 'end': 6})
    return Catalog(str(tmp_path), engine='mariadb', database='shop')


def ids(chain):
    return [m.id for m in chain]


def test_point_in_time_chains(catalog):
    assert ids(select_chain(catalog, stop_at=T0 + datetime.timedelta(minutes=15))) == ['full-1', 'log-1', 'log-2']
    assert ids(select_chain(catalog, stop_at=T0 + datetime.timedelta(minutes=35))) == ['full-2', 'log-3']
    assert ids(select_chain(catalog)) == ['full-2', 'log-3']
    assert ids(select_chain(catalog, artifact='full-1')) == ['full-1']


def test_outside_window_and_gap_name_the_window_and_missing_piece(catalog):
    with pytest.raises(CatalogError) as exc:
        select_chain(catalog, stop_at=T0 - datetime.timedelta(minutes=1))
    assert '2026-11-01T00:00:00.000000Z .. 2026-11-01T00:40:00.000000Z' in exc.value.message
    with pytest.raises(CatalogError) as exc:
        select_chain(catalog, stop_at=T0 + datetime.timedelta(minutes=55))
    assert 'log-3' in exc.value.message and 'position 4 is missing' in exc.value.message


def test_logs_and_conflicting_options_are_refused(catalog):
    with pytest.raises(OpsReadyError, match='cannot be restored on its own'):
        select_chain(catalog, artifact='log-1')
    with pytest.raises(OpsReadyError, match='exclude each other'):
        select_chain(catalog, artifact='full-1', stop_at=T0)
    with pytest.raises(CatalogError, match='No artifact'):
        select_chain(catalog, artifact='nope')


def test_verify_chain_names_the_corrupt_piece(catalog, tmp_path):
    chain = select_chain(catalog, stop_at=T0 + datetime.timedelta(minutes=15))
    assert [r['checksum'] for r in verify_chain(chain)] == ['ok', 'ok', 'ok']
    (tmp_path / 'log-2').write_bytes(b'log-2 lox')
    with pytest.raises(IntegrityError) as exc:
        verify_chain(chain)
    assert 'log-2' in exc.value.message and 'before touching the target' in exc.value.message
    (tmp_path / 'log-1').unlink()
    with pytest.raises(IntegrityError, match='log-1.*missing'):
        verify_chain(chain)


def test_temporary_names_fit_postgresql():
    # Quoting lives in engines/postgresql/quote.py (tests/unit/.../engines/test_pg_quote_props.py).
    name = temporary_name('x' * 80)
    assert len(name.encode()) <= 63 and '__opsready_restore_' in name
    assert temporary_name('ünïcode' * 10).encode('utf-8').decode('utf-8')
