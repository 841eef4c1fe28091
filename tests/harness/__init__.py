"""Throw-away database servers for integration tests and benchmarks.

Plain Python (no pytest dependency) so bench scripts can reuse it::

    from tests.harness import PostgresServer, MariaDBServer

    with PostgresServer() as pg:
        pg.create_database("bench")
        rows = pg.sql("SELECT 1", database="bench")   # [("1",)]

See :mod:`tests.harness.servers` for the full API.
"""

from tests.harness.servers import (
    Database,
    DatabaseServer,
    HarnessError,
    HarnessUnavailable,
    MariaDBServer,
    PostgresServer,
    ServerStartError,
)

__all__ = [
    "Database",
    "DatabaseServer",
    "HarnessError",
    "HarnessUnavailable",
    "MariaDBServer",
    "PostgresServer",
    "ServerStartError",
]
