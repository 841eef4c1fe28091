"""Fixtures and helpers the PostgreSQL fidelity files share.

* ``pg`` (module scope): a private PostgreSQL server per test file (files run side by side under
  ``--dist loadfile`` and share no server), with the fidelity roles created. A file may set
  ``PG_EXTRA_CONF`` (postgresql.conf settings, e.g. ``wal_level = logical``) and ``pg_setup(server)`` (what
  to create instead of the shared roles) at module level.
* ``check_restore(tmp_path, server, dest, **options)``: ``db_restore`` of the backup in ``dest`` in check mode.

The helpers of tests/fidelity/test_postgresql.py are imported when first used, so that a run of other engines'
fidelity files does not load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.harness.servers import PostgresServer


@pytest.fixture(scope='module')
def pg(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    from tests.fidelity.test_postgresql import create_roles

    server = PostgresServer(**({'extra_conf': request.module.PG_EXTRA_CONF}
                               if hasattr(request.module, 'PG_EXTRA_CONF') else {}))
    try:
        server.start()
        getattr(request.module, 'pg_setup', create_roles)(server)
        yield server
    finally:
        server.cleanup()


def check_restore(tmp_path: Path, server: PostgresServer, dest: Path, **options: Any) -> Any:
    from tests.fidelity.test_postgresql import conn, play

    return play(tmp_path, [{'name': 'restore', 'check_mode': True, 'opsready.operations.db_restore': dict(
        conn(server), engine='postgresql', src=str(dest), **options)}], server)
