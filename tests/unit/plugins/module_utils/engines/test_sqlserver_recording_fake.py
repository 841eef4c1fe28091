"""SQL Server engine against the RECORDING FAKE of pyodbc (tests/unit/fakes/pyodbc_recording.py).

These prove the T-SQL text, the call sequence (autocommit, every result set drained, connections
closed), LSN bookkeeping and error surfacing - not SQL Server itself (none can run here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import (  # noqa: E402
    run_backup, verify_path)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver import (  # noqa: E402
    backup as sqlserver)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from tests.unit.fakes import pyodbc_recording as fake  # noqa: E402

PASSWORD = 'S3cret;pa}ss'


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(sqlserver, 'pyodbc', fake)
    monkeypatch.setattr(sqlserver, 'HAS_PYODBC', True)
    return fake.reset()


def engine():
    return sqlserver.SQLServerEngine(ConnectionParams(host='sql1', port=1433, user='backup', password=PASSWORD,
                                                      connect_timeout=7, trust_server_certificate=True))


def executed(server):
    return [c[1] for c in server.calls if c[0] == 'execute']


def test_statements_quote_identifiers_and_paths():
    sql = sqlserver.backup_statement('diff', "sh]op", "/b/it's.dif", copy_only=True, compression=True)
    assert sql.startswith("BACKUP DATABASE [sh]]op] TO DISK = N'/b/it''s.dif' WITH DIFFERENTIAL, CHECKSUM, INIT, "
                          "FORMAT, COMPRESSION, COPY_ONLY, NAME = N'opsready it''s.dif'")
    assert sqlserver.backup_statement('log', 'app', '/b/x.trn').startswith("BACKUP LOG [app] TO DISK = N'/b/x.trn' "
                                                                           "WITH CHECKSUM")
    assert sqlserver.verify_statement('/b/x.bak') == "RESTORE VERIFYONLY FROM DISK = N'/b/x.bak' WITH CHECKSUM"


def test_full_diff_logs_chain_and_call_sequence(server, tmp_path):
    results = {}
    for kind in ('full', 'diff', 'log', 'log'):
        out = run_backup(engine(), BackupOptions(kind=kind, dest=str(tmp_path), database='app', compression='none'))
        results.setdefault(kind, []).append(out['manifest'])
        assert out['manifest']['verification']['ok'] is True
    connects = [c for c in server.calls if c[0] == 'connect']
    assert all(c[2] is True and c[3] == 7 for c in connects), 'autocommit on, connect timeout passed'
    assert 'PWD={S3cret;pa}}ss}' in connects[0][1] and 'TrustServerCertificate=yes' in connects[0][1]
    assert server.open_connections == 0, 'every connection closed'
    assert all(c[1] == 0 for c in server.calls if c[0] == 'cursor.close'), 'every result set drained'
    statements = executed(server)
    backups = [s for s in statements if s.startswith('BACKUP')]
    assert backups[0].startswith('BACKUP DATABASE [app] TO DISK') and 'DIFFERENTIAL' not in backups[0]
    assert 'WITH DIFFERENTIAL, CHECKSUM' in backups[1]
    assert backups[2].startswith('BACKUP LOG [app]') and backups[3].startswith('BACKUP LOG [app]')
    assert sum(s.startswith('RESTORE VERIFYONLY') for s in statements) == 4
    full, diff, logs = results['full'][0], results['diff'][0], results['log']
    assert diff['parent'] == full['id']
    assert logs[1]['position']['start'] == logs[0]['position']['end']
    catalog = Catalog(str(tmp_path), 'sqlserver', 'app')
    assert [m.id for m in catalog.chain_for()] == [full['id'], diff['id'], logs[0]['id'], logs[1]['id']]
    for m in (full, diff, *logs):
        assert PASSWORD not in repr(m)


def test_options_reach_the_statement(server, tmp_path):
    run_backup(engine(), BackupOptions(kind='full', dest=str(tmp_path), database='app', compression='none',
                                       copy_only=True, native_compression=True), verify=False)
    backup = [s for s in executed(server) if s.startswith('BACKUP')][0]
    assert 'COMPRESSION' in backup and 'COPY_ONLY' in backup


def test_error_in_a_later_result_set_is_surfaced_with_the_server_message(server, tmp_path):
    server.fail['BACKUP DATABASE'] = ('42000', '[42000] [SQL Server]Cannot open backup device (3201). '
                                      'BACKUP DATABASE is terminating abnormally. (3013)', True)
    with pytest.raises(OpsReadyError, match='Cannot open backup device'):
        run_backup(engine(), BackupOptions(kind='full', dest=str(tmp_path), database='app', compression='none'))
    assert Catalog(str(tmp_path)).entries == []
    assert server.open_connections == 0


def test_verifyonly_failure_names_the_artifact(server, tmp_path):
    out = run_backup(engine(), BackupOptions(kind='full', dest=str(tmp_path), database='app', compression='none'))
    path = out['manifest']['path']
    with open(path, 'r+b') as handle:  # damage the media header; fix the manifest checksum so only VERIFYONLY sees it
        handle.write(b'X')
    import hashlib
    import json
    manifest_path = path + '.manifest.json'
    data = json.load(open(manifest_path))
    data['sha256'] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    json.dump(data, open(manifest_path, 'w'))
    outcome = verify_path(str(tmp_path), conn=engine().conn)
    assert outcome['failed'] and 'RESTORE VERIFYONLY rejects' in outcome['failed'][0]['error']
    assert 'incorrectly formed' in outcome['failed'][0]['error']


def test_connect_failure_names_host_and_port_and_hides_password(server, tmp_path):
    server.connect_error = ('08001', '[08001] TCP Provider: Error code 0x2749 (10057) login timeout expired')
    with pytest.raises(OpsReadyError) as info:
        run_backup(engine(), BackupOptions(kind='full', dest=str(tmp_path), database='app', compression='none'))
    assert 'host sql1 port 1433' in info.value.message and 'login timeout' in info.value.message
    assert PASSWORD not in info.value.message


def test_unsupported_kind_and_all_databases(server, tmp_path):
    with pytest.raises(OpsReadyError, match='kind=base is not supported by engine sqlserver'):
        run_backup(engine(), BackupOptions(kind='base', dest=str(tmp_path), database='app'))
    with pytest.raises(OpsReadyError, match='all_databases is not offered'):
        run_backup(engine(), BackupOptions(kind='full', dest=str(tmp_path), all_databases=True))
