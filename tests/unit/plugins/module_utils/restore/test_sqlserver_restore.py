"""db_restore for SQL Server against the RECORDING FAKE of pyodbc (tests/unit/fakes/pyodbc_recording.py).

Backups are taken with the real engine code (run_backup) against the fake, then restored with run_restore.
The tests pin the exact T-SQL sequence and parameters, the fake's model of the server state afterwards
(database names, states, file placement), and error surfacing. They prove statements and call sequence,
not SQL Server semantics: nothing here has run against a live SQL Server (see docs/sqlserver.md).
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (  # noqa: E402
    IntegrityError, OpsReadyError)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver import (  # noqa: E402
    backup as sqlserver)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.restore import plan as restore_plan  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402
from tests.unit.fakes import pyodbc_recording as fake  # noqa: E402

PASSWORD = "R3store;p'w}d"
TAG = 'c0ffee00'
DATA = '/var/opt/mssql/data/'
LOG = '/var/opt/mssql/log/'
TARGET_QUERY = 'SELECT name, state_desc FROM sys.databases WHERE name = ?'
PATHS_QUERY = ("SELECT CAST(SERVERPROPERTY('InstanceDefaultDataPath') AS nvarchar(4000)), "
               "CAST(SERVERPROPERTY('InstanceDefaultLogPath') AS nvarchar(4000))")
OFFSET_QUERY = 'SELECT DATEDIFF(minute, SYSUTCDATETIME(), SYSDATETIME())'


class FixedUUID:
    hex = TAG + '0' * 24


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(sqlserver, 'pyodbc', fake)
    monkeypatch.setattr(sqlserver, 'HAS_PYODBC', True)
    monkeypatch.setattr(restore_plan.uuid, 'uuid4', FixedUUID)
    return fake.reset()


def conn():
    return ConnectionParams(host='sql1', port=1433, user='restorer', password=PASSWORD, connect_timeout=5,
                            trust_server_certificate=True)


def backup(dest, kinds, database='app'):
    engine = sqlserver.SQLServerEngine(conn())
    return [run_backup(engine, BackupOptions(kind=kind, dest=str(dest), database=database,
                                             compression='none'))['manifest'] for kind in kinds]


def executed_since(server, mark):
    return [(c[1], c[2]) for c in server.calls[mark:] if c[0] == 'execute']


def lit(path):
    return "N'%s'" % str(path).replace("'", "''")


def assert_clean_connections(server):
    assert server.open_connections == 0, 'every connection closed'
    assert all(c[1] == 0 for c in server.calls if c[0] == 'cursor.close'), 'every result set drained'
    connects = [c for c in server.calls if c[0] == 'connect']
    assert connects and all(c[2] is True for c in connects), 'autocommit on (RESTORE cannot run in a transaction)'


def test_newest_full_to_a_new_name_with_move(server, tmp_path):
    src = tmp_path / "it's backups"        # a quote in the path: N'' literal with the quote doubled
    src.mkdir()
    first, newest = backup(src, ['full', 'full'])
    mark = len(server.calls)
    result = run_restore(RestoreRequest(engine='sqlserver', src=str(src), source_database='app',
                                        database="app]copy"), conn())
    temp = 'app]copy__opsready_restore_' + TAG
    qtemp = '[app]]copy__opsready_restore_%s]' % TAG
    path = lit(newest['path'])
    mdf = DATA + 'app_copy_app_%s.mdf' % TAG
    ldf = LOG + 'app_copy_app_log_%s.ldf' % TAG
    assert executed_since(server, mark) == [
        (TARGET_QUERY, ('app]copy',)),
        ('RESTORE VERIFYONLY FROM DISK = %s WITH CHECKSUM' % path, ()),
        ('RESTORE FILELISTONLY FROM DISK = %s' % path, ()),
        (PATHS_QUERY, ()),
        ("RESTORE DATABASE %s FROM DISK = %s WITH NORECOVERY, CHECKSUM, MOVE N'app' TO N'%s', "
         "MOVE N'app_log' TO N'%s'" % (qtemp, path, mdf, ldf), ()),
        ('RESTORE DATABASE %s WITH RECOVERY' % qtemp, ()),
        ('ALTER DATABASE %s MODIFY NAME = [app]]copy]' % qtemp, ()),
        (TARGET_QUERY, ('app]copy',)),
    ]
    assert result['changed'] is True and result['replaced'] is False
    assert result['chain_ids'] == [newest['id']] and first['id'] not in result['chain_ids']
    assert result['target']['database'] == 'app]copy' and result['target']['state'] == 'ONLINE'
    assert result['target']['files'] == [{'logical': 'app', 'physical': mdf}, {'logical': 'app_log', 'physical': ldf}]
    # the fake server: the copy is online with its own files, the source untouched, no temporary left
    assert set(server.databases) == {'app', 'app]copy'} and temp not in server.databases
    assert server.databases['app]copy']['files'] == {'app': mdf, 'app_log': ldf}
    assert server.databases['app']['files'] == {'app': DATA + 'app.mdf', 'app_log': DATA + 'app_log.ldf'}
    assert server.databases['app]copy']['state'] == 'ONLINE' and server.databases['app']['state'] == 'ONLINE'
    assert_clean_connections(server)
    assert PASSWORD not in repr(result)


def test_the_fake_refuses_a_restore_under_another_name_without_move(server, tmp_path):
    """The fake models why MOVE is needed: the source's files are in use on the same server."""
    full = backup(tmp_path, ['full'])[0]
    connection = fake.connect('x', autocommit=True)
    with pytest.raises(fake.Error, match=r'cannot be overwritten. It is being used by database .app.. \(1834\)'):
        connection.cursor().execute('RESTORE DATABASE [other] FROM DISK = %s WITH NORECOVERY' % lit(full['path']))
    connection.close()


def test_full_diff_logs_to_stop_at_over_the_existing_database(server, tmp_path):
    times = iter(datetime.datetime(2025, 3, 1, 10, m) for m in (0, 10, 20, 30, 40))
    server.clock = lambda: next(times)
    server.utc_offset_minutes = 60          # the server runs on UTC+1: STOPAT is given in its local time
    full, diff, log1, log2, log3 = backup(tmp_path, ['full', 'diff', 'log', 'log', 'log'])
    mark = len(server.calls)
    result = run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), database='app', replace=True,
                                        stop_at=parse_time('2025-03-01T10:35:00Z', 'stop_at')), conn())
    qtemp = '[app__opsready_restore_%s]' % TAG
    aside = 'app__opsready_old_%s' % TAG
    pieces = [full, diff, log1, log2, log3]
    assert result['chain_ids'] == [m['id'] for m in pieces]
    assert executed_since(server, mark) == [
        (TARGET_QUERY, ('app',)),
        ('SELECT COUNT(*) FROM [app].sys.objects WHERE is_ms_shipped = 0', ()),
    ] + [('RESTORE VERIFYONLY FROM DISK = %s WITH CHECKSUM' % lit(m['path']), ()) for m in pieces] + [
        ('RESTORE FILELISTONLY FROM DISK = %s' % lit(full['path']), ()),
        (PATHS_QUERY, ()),
        (OFFSET_QUERY, ()),
        ("RESTORE DATABASE %s FROM DISK = %s WITH NORECOVERY, CHECKSUM, MOVE N'app' TO N'%sapp_app_%s.mdf', "
         "MOVE N'app_log' TO N'%sapp_app_log_%s.ldf'" % (qtemp, lit(full['path']), DATA, TAG, LOG, TAG), ()),
        ('RESTORE DATABASE %s FROM DISK = %s WITH NORECOVERY, CHECKSUM' % (qtemp, lit(diff['path'])), ()),
        ('RESTORE LOG %s FROM DISK = %s WITH NORECOVERY, CHECKSUM' % (qtemp, lit(log1['path'])), ()),
        ('RESTORE LOG %s FROM DISK = %s WITH NORECOVERY, CHECKSUM' % (qtemp, lit(log2['path'])), ()),
        ("RESTORE LOG %s FROM DISK = %s WITH NORECOVERY, CHECKSUM, STOPAT = N'2025-03-01T11:35:00.000'"
         % (qtemp, lit(log3['path'])), ()),
        ('RESTORE DATABASE %s WITH RECOVERY' % qtemp, ()),
        ('ALTER DATABASE [app] SET SINGLE_USER WITH ROLLBACK IMMEDIATE', ()),
        ('ALTER DATABASE [app] MODIFY NAME = [%s]' % aside, ()),
        ('ALTER DATABASE %s MODIFY NAME = [app]' % qtemp, ()),
        ('DROP DATABASE [%s]' % aside, ()),
        (TARGET_QUERY, ('app',)),
    ]
    assert result['point_reached'].startswith('2025-03-01T10:35:00')
    assert result['replaced'] is True and result['stopat'] == '2025-03-01T11:35:00.000'
    assert set(server.databases) == {'app'}, 'old database dropped, no temporary left'
    assert server.databases['app']['state'] == 'ONLINE'
    assert server.databases['app']['files']['app'] == '%sapp_app_%s.mdf' % (DATA, TAG)
    restores = [s for s, dummy in executed_since(server, mark) if s.startswith('RESTORE')]
    assert server.restores[-len(restores):] == restores and len(restores) == 12
    assert_clean_connections(server)


def test_stop_at_at_the_end_of_the_last_log_needs_no_stopat(server, tmp_path):
    times = iter(datetime.datetime(2025, 3, 1, 10, m) for m in (0, 20))
    server.clock = lambda: next(times)
    full, log1 = backup(tmp_path, ['full', 'log'])
    mark = len(server.calls)
    run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), source_database='app', database='copy',
                               stop_at=parse_time('2025-03-01T10:20:00Z', 'stop_at')), conn())
    statements = [s for s, dummy in executed_since(server, mark)]
    assert OFFSET_QUERY not in statements
    assert 'RESTORE LOG [copy__opsready_restore_%s] FROM DISK = %s WITH NORECOVERY, CHECKSUM' % (
        TAG, lit(log1['path'])) in statements
    assert server.databases['copy']['state'] == 'ONLINE'


def test_refusal_without_replace_touches_nothing(server, tmp_path):
    backup(tmp_path, ['full'])
    for check_mode in (True, False):
        mark = len(server.calls)
        with pytest.raises(OpsReadyError, match=r'Target database app on sql1:1433 exists and is not empty '
                                                r'\(3 user objects\): set replace=true'):
            run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), database='app',
                                       check_mode=check_mode), conn())
        assert [s for s, dummy in executed_since(server, mark)] == [
            TARGET_QUERY, 'SELECT COUNT(*) FROM [app].sys.objects WHERE is_ms_shipped = 0']
    # a database left RESTORING (an earlier manual NORECOVERY restore) cannot be inspected: refused too
    server.databases['stuck'] = {'state': 'RESTORING', 'objects': 0, 'files': {}, 'user_access': 'MULTI_USER'}
    with pytest.raises(OpsReadyError, match='exists in state RESTORING .not ONLINE.*set replace=true'):
        run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), source_database='app',
                                   database='stuck'), conn())
    # an existing empty database is not refused
    server.databases['empty'] = {'state': 'ONLINE', 'objects': 0, 'files': {}, 'user_access': 'MULTI_USER'}
    out = run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), source_database='app',
                                     database='empty'), conn())
    assert out['replaced'] is True and server.databases['empty']['objects'] == 3
    assert server.restores and not [s for s in server.restores if '[app' in s.split(' FROM ')[0]]
    assert_clean_connections(server)


def test_check_mode_verifies_and_writes_nothing(server, tmp_path):
    backup(tmp_path, ['full', 'log'])
    mark = len(server.calls)
    out = run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), source_database='app',
                                     database='copy', check_mode=True), conn())
    assert out['changed'] is True and out['target']['exists'] is False and len(out['target']['verifyonly']) == 2
    statements = [s for s, dummy in executed_since(server, mark)]
    assert statements[0] == TARGET_QUERY and all(s.startswith('RESTORE VERIFYONLY') for s in statements[1:])
    assert 'copy' not in server.databases


def test_server_error_is_surfaced_and_the_temporary_database_dropped(server, tmp_path):
    full, log1 = backup(tmp_path, ['full', 'log'])
    message = ('[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]The log in this backup set begins at '
               'LSN 42000000001502001, which is too recent to apply to the database. (4305)')
    server.fail['RESTORE LOG'] = ('42000', message, True)   # raised when the second result set is reached
    before = dict(server.databases['app'])
    mark = len(server.calls)
    with pytest.raises(OpsReadyError) as caught:
        run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), database='app', replace=True), conn())
    text = caught.value.message
    assert 'too recent to apply to the database. (4305)' in text
    assert 'failed at %s (log)' % log1['id'] in text
    assert 'temporary database app__opsready_restore_%s was dropped, and app was not touched' % TAG in text
    assert PASSWORD not in text
    statements = [s for s, dummy in executed_since(server, mark)]
    assert statements[-2:] == [TARGET_QUERY, 'DROP DATABASE [app__opsready_restore_%s]' % TAG]
    assert not [s for s in statements if s.startswith('ALTER DATABASE')], 'the target was never renamed'
    assert server.databases == {'app': before}
    assert_clean_connections(server)


def test_verifyonly_failure_refuses_before_any_restore(server, tmp_path):
    full, log1 = backup(tmp_path, ['full', 'log'])
    accepted = len(server.restores)
    server.fail['RESTORE VERIFYONLY FROM DISK = %s' % lit(log1['path'])] = (
        '42000', '[42000] [SQL Server]Damage to the backup set was detected. (3189)', False)
    with pytest.raises(IntegrityError, match=r'RESTORE VERIFYONLY rejects chain piece %s \(log\).*\(3189\)'
                       % log1['id']):
        run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), source_database='app',
                                   database='copy'), conn())
    assert server.restores[accepted:] == ['RESTORE VERIFYONLY FROM DISK = %s WITH CHECKSUM' % lit(full['path'])]
    assert set(server.databases) == {'app'}


def test_state_absent_drops_the_scratch_database(server, tmp_path):
    backup(tmp_path, ['full'])
    run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), source_database='app', database='scratch'),
                conn())
    planned = run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), database='scratch', state='absent',
                                         check_mode=True), conn())
    assert planned['changed'] is True and 'scratch' in server.databases
    mark = len(server.calls)
    gone = run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), database='scratch', state='absent'),
                       conn())
    assert gone['changed'] is True and 'scratch' not in server.databases
    assert [s for s, dummy in executed_since(server, mark)] == [
        TARGET_QUERY, 'ALTER DATABASE [scratch] SET SINGLE_USER WITH ROLLBACK IMMEDIATE', 'DROP DATABASE [scratch]']
    again = run_restore(RestoreRequest(engine='sqlserver', src=str(tmp_path), database='scratch', state='absent'),
                        conn())
    assert again['changed'] is False
    assert_clean_connections(server)
