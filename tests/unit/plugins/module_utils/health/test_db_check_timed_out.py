"""A db check's ``timed_out`` (kept in the health history as ``timeout``, which SLO reports count apart from plain
failures) says whether the probe ran out of time, not whether our own message mentions ``connect_timeout``: every
"Cannot connect ... within connect_timeout=Ns" message did, so a refused connection was booked as a timeout."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.health.db_check import DbCheck, ran_out_of_time


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]   # closed again when the block ends: connecting is refused at once


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_a_refused_connection_is_a_failure_not_a_timeout(engine):
    spec = {'name': 'db', 'engine': engine, 'host': '127.0.0.1', 'port': _closed_port(), 'user': 'nobody',
            'password': None, 'database': 'postgres', 'timeout': 5}
    result = DbCheck().run(spec)
    assert result['ok'] is False and result['condition'] == 'database_connection', result
    assert 'cannot connect' in result['message'].lower(), result
    assert result['timed_out'] is False, result


@pytest.mark.parametrize('text', [
    'Cannot connect to PostgreSQL at 10.0.0.9:5432 within connect_timeout=5s: connection to server at "10.0.0.9", '
    'port 5432 failed: timeout expired',
    "Cannot connect to MariaDB at db:3306 within connect_timeout=5s: ERROR 2002 (HY000): Can't connect to server on "
    "'db' (110 \"Connection timed out\")",
    "Cannot connect to mariadb at host db port 3306 within connect_timeout=5s: ERROR 2013 (HY000): Lost connection "
    "to server at 'handshake: reading initial communication packet', system error: 110",
    "Cannot connect to mariadb at host db port 3306 within connect_timeout=5s: ERROR 2002 (HY000): Can't connect to "
    "server on 'db' (110)",
    'psql timed out after 5s (session killed).',
    "('HYT00', '[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0) (SQLDriverConnect)')",
])
def test_a_probe_that_ran_out_of_time_is_a_timeout(text):
    assert ran_out_of_time(text)


@pytest.mark.parametrize('text', [
    'Cannot connect to PostgreSQL at 127.0.0.1:1 within connect_timeout=5s: connection to server at "127.0.0.1", '
    'port 1 failed: Connection refused Is the server running on that host and accepting TCP/IP connections?',
    'PostgreSQL at db:5432 refused the login of app: FATAL: password authentication failed for user "app"',
    "Cannot connect to MariaDB at db:3306 within connect_timeout=3s: ERROR 2005 (HY000): Unknown server host 'db'",
])
def test_other_failures_are_not_timeouts(text):
    assert not ran_out_of_time(text)
