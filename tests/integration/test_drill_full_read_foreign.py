"""The DR drill's full read of a restored PostgreSQL copy never reaches through it to another server.

A production database with postgres_fdw foreign tables restores with its foreign servers and user mappings
(pg_dump keeps them): the scratch copy points at the same remote servers, with the same credentials. The drill's
fallback integrity check (every row of every table, when pg_amcheck cannot run) read a partitioned parent or an
inheritance parent with ``SELECT *``, which scans a foreign partition or child too: the drill connected to the
production remote from the scratch copy. Each heap is read on its own (``ONLY``); foreign tables hold no local
pages to check.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import Iterator, List

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.checks import (  # noqa: E402
    PostgresChecks)


class Remote:
    """A TCP listener standing in for the production remote: it counts connections and closes them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: List[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            self.accepted.append('%s:%s' % peer)
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def remote() -> Iterator[Remote]:
    listener = Remote()
    yield listener
    listener.close()


def test_full_read_reads_every_local_heap_once_and_no_foreign_table(pg_db, remote):
    pg_db.sql("CREATE EXTENSION postgres_fdw;"
              "CREATE SERVER prod FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '%d', "
              "dbname 'prod', connect_timeout '2');"
              "CREATE USER MAPPING FOR CURRENT_USER SERVER prod OPTIONS (user 'app', password 'prod-secret');"
              "CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);"
              "CREATE TABLE parted_local PARTITION OF parted FOR VALUES FROM (0) TO (100);"
              "CREATE FOREIGN TABLE parted_remote PARTITION OF parted FOR VALUES FROM (100) TO (200) SERVER prod;"
              "CREATE TABLE base (id int);"
              "CREATE FOREIGN TABLE base_remote () INHERITS (base) SERVER prod;"
              "CREATE TABLE base_local () INHERITS (base);"
              "INSERT INTO parted_local SELECT g, 'x' FROM generate_series(0, 99) g;"
              "INSERT INTO base_local SELECT generate_series(1, 10)" % remote.port)
    server = pg_db.server
    checks = PostgresChecks(ConnectionParams(host=server.host, port=server.port, user=server.user,
                                             password=server.password, connect_timeout=5), ToolRunner())
    read = checks.full_read(pg_db.name)
    assert remote.accepted == [], 'the full read connected to the remote server %s' % remote.accepted
    assert read['result'] == 'ok'
    # the heaps: parted_local, base, base_local (the partitioned parent holds no rows of its own)
    assert read['tables'] == 3, read
    summary = checks.summary(pg_db.name)
    assert summary['non_empty_tables'] == 2, summary
    assert remote.accepted == [], 'the summary connected to the remote server %s' % remote.accepted
