"""Fidelity, PostgreSQL, round 28: errors are told apart whatever the language of the server's messages.

With the server's lc_messages German (``german_server``, round 20's set-up), on a real PostgreSQL 15:
- a restore's swap retries while the old target is still in use (it reads "Datenbank »x« wird von anderen
  Benutzern verwendet", SQLSTATE 55006), as it does in English, instead of failing at once;
- a refused login (the server's German "Passwort-Authentifizierung ... fehlgeschlagen") and a missing database are
  classified as refusals, not reported as a bare psql failure;
- a lock timeout of a client with session limits is told by its SQLSTATE (55P03).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (  # noqa: E402
    OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams, SessionLimits)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (  # noqa: E402
    PostgresClient)
from tests.fidelity.pg_lc_messages import GERMAN, german_role, german_server  # noqa: E402
from tests.fidelity.test_postgresql import backup, leftovers, qi, restore  # noqa: E402
from tests.fidelity.test_postgresql_round11 import drop  # noqa: E402
from tests.fidelity.test_postgresql_round18_nonsuper import APP  # noqa: E402
from tests.fidelity import test_postgresql_round19_owner as round19  # noqa: E402

PG_EXTRA_CONF = {'max_prepared_transactions': 5}   # the swap test's transaction (the shared pg fixture reads it)


def client(pg, password=None, limits=None):
    return PostgresClient(ConnectionParams(host=pg.host, port=pg.port, user=pg.user,
                                           password=pg.password if password is None else password,
                                           connect_timeout=5), limits=limits)


def test_the_swap_retries_while_the_old_target_is_in_use_in_german(pg, tmp_path):
    """The old target holds a prepared transaction (pg_terminate_backend cannot end it) until 6.5 s after the swap
    closed it: the first RENAME waits its 5 s and fails with 55006, in German; the swap must try again (as it does in
    English) and succeed once the transaction is gone, not fail at once."""
    name = 'fid_sw28_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    pg.sql('CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)', database=name)
    dest = backup(tmp_path, pg, name, format='custom')
    gid = 'sw28_%s' % uuid.uuid4().hex[:6]
    pg.sql("BEGIN; INSERT INTO t VALUES (3); PREPARE TRANSACTION '%s'" % gid, database=name)
    stop = threading.Event()
    done = []

    def release_late():
        # once the swap closed the target (ALLOW_CONNECTIONS false), the transaction stays 6.5 s more
        while not stop.is_set():
            if pg.sql("SELECT datallowconn::text FROM pg_database WHERE datname = '%s'" % name) == [('false',)]:
                stop.wait(6.5)
                break
            stop.wait(0.1)
        for db in pg.sql("SELECT d.datname FROM pg_prepared_xacts x JOIN pg_database d ON d.datname = x.database "
                         "WHERE x.gid = '%s'" % gid):
            pg.sql('ALTER DATABASE %s ALLOW_CONNECTIONS true' % qi(db[0]))
            pg.sql("ROLLBACK PREPARED '%s'" % gid, database=db[0])
            done.append(db[0])

    watcher = threading.Thread(target=release_late, daemon=True)
    try:
        with german_server(pg):
            watcher.start()
            started = time.monotonic()
            result = restore(tmp_path, pg, dest, database=name, replace=True)
            took = time.monotonic() - started
        assert result.rc == 0, result.stdout[-4000:]
        assert pg.sql('SELECT count(*) FROM t', database=name) == [('2',)]
        assert done == [name] and took > 6, (done, took)   # the premise: the first RENAME met the transaction
    finally:
        stop.set()
        watcher.join(timeout=60)
        for db in pg.sql("SELECT database FROM pg_prepared_xacts WHERE gid = '%s'" % gid):
            pg.sql('ALTER DATABASE %s ALLOW_CONNECTIONS true' % qi(db[0]))
            pg.sql("ROLLBACK PREPARED '%s'" % gid, database=db[0])
        drop(pg, name)
    assert leftovers(pg) == []


def test_a_refused_login_and_a_missing_database_are_classified_in_german(pg):
    with german_server(pg):
        with pytest.raises(OpsReadyError) as info:
            client(pg, password='wrong-' + uuid.uuid4().hex).query('SELECT 1')
        # the premise: the server said it in German (its postgresql.conf language: before the role's settings)
        assert 'Passwort-Authentifizierung' in info.value.message, info.value.message
        assert not isinstance(info.value, ToolError) and 'refused the' in info.value.message, info.value.message
        with pytest.raises(OpsReadyError) as info:
            client(pg).query('SELECT 1', database='no_such_db_%s' % uuid.uuid4().hex[:6])
        assert 'existiert nicht' in info.value.message, info.value.message
        assert not isinstance(info.value, ToolError) and 'refused the' in info.value.message, info.value.message


def test_a_roles_german_messages_do_not_reach_its_refused_login(pg):
    """Verified, not assumed: a role's own lc_messages (ALTER ROLE ... SET) applies after authentication, so its
    refused login comes in the server's language (English here) and keeps its precise classification."""
    role = 'fid_lcm28_%s' % uuid.uuid4().hex[:6]
    pg.sql("CREATE ROLE %s LOGIN PASSWORD 'right'" % role)
    try:
        with german_role(pg, role):
            assert pg.sql("SELECT setconfig::text FROM pg_db_role_setting WHERE setrole = '%s'::regrole" % role) \
                == [('{lc_messages=%s}' % GERMAN,)]
            bad = PostgresClient(ConnectionParams(host=pg.host, port=pg.port, user=role, password='wrong',
                                                  connect_timeout=5))
            with pytest.raises(OpsReadyError) as info:
                bad.query('SELECT 1')
        assert 'refused the login of %s' % role in info.value.message, info.value.message
        assert 'password authentication failed' in info.value.message, info.value.message
    finally:
        pg.sql('DROP ROLE %s' % role)


def test_libpqs_own_messages_are_english_whatever_the_hosts_language(pg, monkeypatch):
    """A connection that never reaches a server: libpq's own message, in the client's language; the runner's
    LC_ALL=C.UTF-8 and LANGUAGE=C make it English (CONNECT_HINTS) on a host set up in German (libpq's German
    catalog is installed here)."""
    for name, value in (('LANG', GERMAN), ('LC_ALL', GERMAN), ('LC_MESSAGES', GERMAN), ('LANGUAGE', 'de')):
        monkeypatch.setenv(name, value)
    closed = PostgresClient(ConnectionParams(host='127.0.0.1', port=1, user=pg.user, password='x', connect_timeout=2))
    with pytest.raises(OpsReadyError) as info:
        closed.query('SELECT 1')
    assert info.value.message.startswith('Cannot connect to PostgreSQL at host 127.0.0.1 port 1'), info.value.message
    # the premise: the same psql in the host's environment says it in German
    said = subprocess.run([closed.tool('psql'), '-X', '-w', '-h', '127.0.0.1', '-p', '1', '-c', 'SELECT 1'],
                          capture_output=True, text=True, check=False).stderr
    assert 'Verbindung' in said, said


def test_a_lock_timeout_is_told_by_its_sqlstate_in_german(pg):
    name = 'fid_lk28_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    holder = None
    try:
        pg.sql('CREATE TABLE t (id int)', database=name)
        with german_server(pg):
            holder = subprocess.Popen([pg.bin('psql'), '-X', '-q', '-c', 'BEGIN; LOCK t; SELECT pg_sleep(30)'],
                                      env=pg.dsn_env(superuser=True, database=name), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while pg.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                         "WHERE c.relname = 't' AND l.mode = 'AccessExclusiveLock' AND l.granted", database=name) \
                    != [('1',)]:
                assert time.monotonic() < deadline, 'the lock holder did not start'
                time.sleep(0.1)
            with pytest.raises(OpsReadyError) as info:
                client(pg, limits=SessionLimits(lock_timeout=1, statement_timeout=0)).query(
                    'SELECT * FROM public.t', name)
        assert not isinstance(info.value, ToolError), info.value.message
        assert info.value.message.startswith('Gave up waiting for a lock after lock_timeout=1s'), info.value.message
        assert 'Sperre' in info.value.message, info.value.message   # the server's own words, in German
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(timeout=30)
        drop(pg, name)


def test_the_owner_hint_is_given_when_the_restoring_roles_messages_are_german(pg, tmp_path):
    """Round 19's restore by a role that cannot give objects to their owner, its messages German (and it may not set
    them back): the hint names the owner all the same (pg_restore's "Command was: ALTER ... OWNER TO ...")."""
    pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
           "CREATE ROLE %s LOGIN CREATEDB NOSUPERUSER PASSWORD '%s'; END IF; END $$"
           % (APP, APP, pg.password.replace("'", "''")))
    with german_role(pg, APP):
        round19.test_a_restore_that_cannot_give_objects_to_their_owner_says_what_to_do(pg, tmp_path)
