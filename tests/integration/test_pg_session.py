"""PostgresClient.session(): one psql kept open for many queries (the failover's observe-then-promote path), on the
shared PostgreSQL 15 server. What ends a session, and how each end is reported: a SQL error (not ``lost``), the
backend terminated or psql killed (``lost``: the caller may ask again on a new session), our timeout (not
``lost``), an unreachable server (no answer ever: not ``lost``). No secret in psql's argv."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import promote as pg_promote  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import quote_literal  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_client  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import NodeSpec  # noqa: E402


def conn(server, **kw):
    return ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password,
                            connect_timeout=2, **kw)


def client(server, **kw):
    return get_client('postgresql', conn(server, **kw), ToolRunner())


def terminate(server, pid):
    server.sql('SELECT pg_terminate_backend(%d)' % pid, superuser=True)


def test_one_connection_many_queries_rows_as_the_client_reads_them(postgres_server):
    with client(postgres_server).session() as session:
        first = session.query('SELECT pg_backend_pid()')[0][0]
        # CSV keeps a comma, a quote and a newline inside one value; a trailing comment cannot swallow the end
        rows = session.query("SELECT 'a,b', 'say \"x\"', E'two\\nlines', NULL -- comment")
        assert rows == [['a,b', 'say "x"', 'two\nlines', '']]
        assert session.query('SELECT 1 WHERE false;') == []
        assert session.query('SELECT g FROM generate_series(1, 3) g') == [['1'], ['2'], ['3']]
        assert session.query('SELECT pg_backend_pid()')[0][0] == first      # the same backend all along
        assert session.answered == 5 and session.alive
        # the password reaches libpq through the environment: never in psql's command line
        with open('/proc/%d/cmdline' % session.pid, 'rb') as handle:
            assert postgres_server.password.encode() not in handle.read()
    assert not session.alive


def test_sql_error_ends_the_session_but_is_not_a_lost_connection(postgres_server):
    session = client(postgres_server).session()
    session.query('SELECT 1')
    with pytest.raises(OpsReadyError) as raised:
        session.query('SELECT * FROM no_such_table_here')
    assert 'no_such_table_here' in raised.value.message
    assert not session.alive and not session.lost
    with pytest.raises(OpsReadyError):
        session.query('SELECT 1')                     # an ended session says so; it does not reconnect by itself
    session.close()


def test_terminated_backend_and_killed_psql_are_lost(postgres_server):
    session = client(postgres_server).session()
    pid = int(session.query('SELECT pg_backend_pid()')[0][0])
    terminate(postgres_server, pid)
    with pytest.raises(OpsReadyError):
        session.query('SELECT 1')
    assert session.lost
    session.close()

    session = client(postgres_server).session()
    session.query('SELECT 1')
    os.kill(session.pid, 9)
    with pytest.raises(OpsReadyError):
        session.query('SELECT 1')
    assert session.lost
    session.close()


def test_timeout_kills_the_session_and_is_not_lost(postgres_server):
    session = client(postgres_server).session()
    session.query('SELECT 1')
    started = time.monotonic()
    with pytest.raises(OpsReadyError) as raised:
        session.query('SELECT pg_sleep(30)', timeout=0.5)
    assert time.monotonic() - started < 10 and 'timed out' in raised.value.message
    assert not session.alive and session.timed_out and not session.lost
    session.close()


def test_unreachable_server_fails_classified_and_never_answered(postgres_server):
    closed = ConnectionParams(host='127.0.0.1', port=1, user='x', password='secret-never-shown', connect_timeout=2)
    session = get_client('postgresql', closed, ToolRunner()).session()
    with pytest.raises(OpsReadyError) as raised:
        session.query('SELECT 1')
    assert 'Cannot connect' in raised.value.message and 'secret-never-shown' not in str(raised.value.as_fail_kwargs())
    assert session.answered == 0 and not session.lost
    session.close()


def test_node_query_asks_again_once_on_a_new_session_after_a_lost_one(postgres_server):
    node = pg_promote.PgNode(NodeSpec(name='n', conn=conn(postgres_server)), ToolRunner())
    try:
        before = int(node.query('SELECT pg_backend_pid()')[0][0])
        terminate(postgres_server, before)
        after = int(node.query('SELECT pg_backend_pid()')[0][0])      # the lost session replaced, the read repeated
        assert after != before
        assert node.observe().reachable
        with pytest.raises(OpsReadyError):
            node.query('SELECT * FROM no_such_table_here')             # a SQL error is not repeated
    finally:
        node.close()


@pytest.mark.parametrize('value', ["it's", 'back\\slash', ':VERSION :"x" :\'y\'', 'semi; \\echo x\n\\q',
                                   'two\nlines', 'opsready-end-0', 'naïve ✓', 'x' * 5000])
def test_quoted_values_read_as_data_not_as_psql_script(postgres_server, value):
    # node names reach verify_follows' SQL through quote_literal: psql's script reader must see only a literal
    with client(postgres_server).session() as session:
        assert session.query('SELECT %s' % quote_literal(value)) == [[value]]
        assert session.query('SELECT 1') == [['1']]


def test_advisory_lock_outlives_a_server_idle_session_timeout(postgres_server):
    """A restore holds its target lock in an idle session for as long as it loads; a server (or role) with
    idle_session_timeout would end that session mid-restore and free the lock for a second restore. The lock's
    session turns the timeout off for itself. A role of its own: the setting must not touch other tests' sessions."""
    role = 'lock_idle_%d' % os.getpid()
    password = 'Pw-%d-idle' % os.getpid()
    postgres_server.sql('CREATE ROLE %s LOGIN PASSWORD %s' % (role, quote_literal(password)), superuser=True)
    try:
        postgres_server.sql("ALTER ROLE %s SET idle_session_timeout = '200ms'" % role, superuser=True)
        locker = get_client('postgresql', ConnectionParams(host=postgres_server.host, port=postgres_server.port,
                                                           user=role, password=password, connect_timeout=2),
                            ToolRunner())
        key = locker.lock_key('test', role)
        unsigned = key & 0xffffffffffffffff
        held = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %d AND "
                "objid = %d AND objsubid = 1" % (unsigned >> 32, unsigned & 0xffffffff))
        with locker.advisory_lock(key, 'busy'):
            time.sleep(1.0)                          # five idle timeouts
            assert postgres_server.sql(held, superuser=True) == [('1',)], 'the lock session was ended while idle'
            with pytest.raises(OpsReadyError) as raised:
                with locker.advisory_lock(key, 'a second holder'):
                    pass
            assert 'a second holder' in raised.value.message
        assert postgres_server.sql(held, superuser=True) == [('0',)]
    finally:
        postgres_server.sql('DROP ROLE %s' % role, superuser=True)
