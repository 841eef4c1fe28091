"""Fidelity, MariaDB, round 28: a session limit's failure is told by its error number whatever the language of the
server's messages (lc_messages=de_DE): a lock wait timeout (ER_LOCK_WAIT_TIMEOUT, 1205) of a client with limits is
reported as one, not as a bare client failure in German."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (  # noqa: E402
    OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams, SessionLimits)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import (  # noqa: E402
    MySQLClient)


def test_a_lock_wait_timeout_is_told_by_its_number_in_german(mariadb_factory):
    server = mariadb_factory(extra_conf={'lc_messages': 'de_DE'})
    db = server.create_database('t_lk28')
    server.sql('CREATE TABLE t (id int PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (1)', database=db)
    holder = subprocess.Popen([server.bin('mariadb'), '--defaults-file=%s' % server.option_file(superuser=True), db],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        holder.stdin.write(b'START TRANSACTION; SELECT * FROM t FOR UPDATE; SELECT SLEEP(60);\n')
        holder.stdin.flush()
        deadline = time.monotonic() + 10
        while server.sql("SELECT count(*) FROM information_schema.innodb_trx WHERE trx_rows_locked > 0",
                         superuser=True) != [('1',)]:
            assert time.monotonic() < deadline, 'the lock holder did not start'
            time.sleep(0.1)
        client = MySQLClient(ConnectionParams(host=server.host, port=server.port, user=server.user,
                                              password=server.password, connect_timeout=5),
                             limits=SessionLimits(lock_timeout=1, statement_timeout=0))
        with pytest.raises(OpsReadyError) as info:
            client.query('UPDATE t SET id = 2 WHERE id = 1', database=db)
        said = getattr(info.value, 'stderr', '') or info.value.message
        assert not isinstance(info.value, ToolError), said   # the premise is in the message: German, ERROR 1205
        assert info.value.message.startswith('Gave up waiting for a lock after lock_timeout=1s'), info.value.message
    finally:
        holder.kill()
        holder.wait(timeout=30)
