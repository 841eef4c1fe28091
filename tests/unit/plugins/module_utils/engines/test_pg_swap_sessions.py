"""The PostgreSQL restore's swap (``restore._swap``) against a scripted server: a swap that gives up after its retries
names what held the old target (a prepared transaction pg_terminate_backend cannot end, a session), not only that
sessions keep reconnecting. The fidelity side (a real PostgreSQL 15, roles that may not end a session) is
tests/fidelity/test_postgresql_swap_sessions.py."""

from __future__ import annotations

from typing import Any, List

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import restore

IN_USE = ('ERROR:  55006: database "shop" is being accessed by other users\n'
          'DETAIL:  There is 1 prepared transaction using the database.\n')


class _Conn:
    @staticmethod
    def where(port: int) -> str:
        return 'db1:%d' % port


class _Client:
    def __init__(self) -> None:
        self.renames = 0

    def query(self, sql: str, database: Any = None, verbose: bool = False) -> List[List[str]]:
        self.renames += 1
        raise ToolError('psql failed with exit code 1', rc=1, stderr=IN_USE)


class _Engine:
    def __init__(self) -> None:
        self.conn = _Conn()
        self.client = _Client()
        self.statements: List[str] = []

    def query(self, sql: str, database: Any = None) -> List[List[str]]:
        self.statements.append(sql)
        if 'pg_prepared_xacts' in sql:
            return [['billing_42', 'app']]
        if sql.startswith('WITH s AS'):
            return [['ended', '4711', '', '', '', '']]
        if 'pg_stat_activity' in sql:
            return [['4712', 'app', 'worker', 'client backend', 'app', 't']]
        return []


def test_a_swap_that_gives_up_names_the_prepared_transaction_and_the_sessions(monkeypatch):
    monkeypatch.setattr(restore.time, 'sleep', lambda _s: None)
    monkeypatch.setattr(restore, 'database_exists', lambda _e, _n: True)
    engine = _Engine()
    with pytest.raises(OpsReadyError) as info:
        restore._swap(engine, 'shop', 'shop__opsready_restore_1', True)   # type: ignore[arg-type]
    said = info.value.message
    assert "prepared transaction 'billing_42' (owner app" in said and 'ROLLBACK PREPARED' in said, said
    assert "pid 4712 (user app, application_name 'worker')" in said, said
    assert 'shop is as it was' in said, said
    assert engine.client.renames == 50
    assert engine.statements[-1] == 'ALTER DATABASE "shop" ALLOW_CONNECTIONS true'   # opened again


def test_sessions_it_may_not_end_stop_the_swap_before_the_target_is_closed():
    engine = _Engine()
    engine.query = lambda sql, database=None: (   # type: ignore[method-assign]
        engine.statements.append(sql) or [['4713', 'postgres', 'psql', 'client backend', 'app', 'f']])
    with pytest.raises(OpsReadyError) as info:
        restore._swap(engine, 'shop', 'shop__opsready_restore_1', True)   # type: ignore[arg-type]
    said = info.value.message
    assert "pid 4713 (user postgres, application_name 'psql')" in said and 'pg_signal_backend' in said, said
    assert 'No session was ended' in said, said
    assert info.value.details['sessions'] == [{'pid': 4713, 'user': 'postgres', 'application_name': 'psql',
                                               'backend_type': 'client backend'}]
    assert not any('ALLOW_CONNECTIONS' in s or 'terminate' in s for s in engine.statements), engine.statements
