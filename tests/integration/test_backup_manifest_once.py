"""A full backup's manifest is written once, with what the source held (issue 22): the engine's commit carries the
``source`` summary measured before and after the dump, instead of a manifest committed without it and rewritten
(a second atomic write and fsync) after the dump. A failure between the dump and that commit leaves no manifest:
never one that claims no source summary, and the artifact it leaves is a leftover the catalog never trusts and
the next run removes."""

from __future__ import annotations

import os
import sys

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402


def params(server) -> ConnectionParams:
    return ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)


def manifest_writes(monkeypatch) -> list:
    """Every rename onto a manifest name during the run (atomic writes end in os.replace)."""
    seen: list = []
    real = os.replace

    def spy(src, dst, *args, **kwargs):
        if str(dst).endswith('.manifest.json'):
            seen.append(str(dst))
        return real(src, dst, *args, **kwargs)
    monkeypatch.setattr(os, 'replace', spy)
    return seen


@pytest.fixture(params=['postgresql', 'mariadb'])
def source(request):
    db = request.getfixturevalue('pg_db' if request.param == 'postgresql' else 'maria_db')
    db.sql('CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (1), (2), (3); CREATE TABLE empty (id int)')
    return request.param, db


def test_full_backup_writes_its_manifest_once(source, tmp_path, monkeypatch):
    engine_name, db = source
    writes = manifest_writes(monkeypatch)
    result = run_backup(get_engine(engine_name, params(db.server)),
                        BackupOptions(kind='full', dest=str(tmp_path / 'b'), database=db.name), verify=False)
    manifest = result['manifest']
    assert writes == [manifest['path'] + '.manifest.json'], writes
    # what it records is what it recorded before: the summary of before and after the dump
    held = manifest['source']
    assert held['tables'] == 2 and held['non_empty_tables'] == 1 and 'error' not in held, held
    assert held.get('measured_after'), held
    on_disk = Catalog(str(tmp_path / 'b')).entries
    assert [e.data['source'] for e in on_disk] == [held]


def test_failure_after_the_dump_leaves_no_manifest(source, tmp_path, monkeypatch):
    engine_name, db = source
    dest = tmp_path / 'b'
    engine = get_engine(engine_name, params(db.server))
    measure = engine.source_summary
    calls = []

    def crash_after_dump(opts, database):
        calls.append(database)
        if len(calls) > 1:   # the measurement after the dump: the run dies there
            raise RuntimeError('killed after the dump')
        return measure(opts, database)
    monkeypatch.setattr(engine, 'source_summary', crash_after_dump)
    with pytest.raises(RuntimeError):
        run_backup(engine, BackupOptions(kind='full', dest=str(dest), database=db.name), verify=False)
    names = sorted(os.listdir(dest))
    assert not [n for n in names if n.endswith('.manifest.json')], names
    assert Catalog(str(dest)).entries == []
    # what it left is a leftover, removed by the next run, which writes its own manifest once
    left = [n for n in names if n.startswith(engine_name) and not n.endswith('.lock')]
    assert left, names
    result = run_backup(get_engine(engine_name, params(db.server)),
                        BackupOptions(kind='full', dest=str(dest), database=db.name), verify=True)
    assert sorted(os.path.basename(p) for p in result['leftovers_removed']) == left, result['leftovers_removed']
    assert result['manifest']['verification']['ok'] is True
