"""Shared pytest fixtures: throw-away PostgreSQL / MariaDB servers.

Fixtures (servers only start when a test requests them):

* ``postgres_server`` / ``mariadb_server`` (session): one server per session
  (per xdist worker), stopped and its temp dir removed at the end.
* ``pg_db`` / ``maria_db`` (function): a fresh, uniquely named database on the
  session server (restarted first if an earlier test stopped it), dropped
  afterwards.  Yields :class:`tests.harness.servers.Database`
  (``.name``, ``.server``, ``.sql()``, ``.odbc_connection_string()``,
  ``.dsn_env()``).
* ``postgres_factory`` / ``mariadb_factory`` (function): ``factory(**kwargs)``
  returns a *new started* private server (for tests that stop, kill or
  reconfigure it); all are cleaned up after the test.

A missing server binary makes the requesting test fail (not skip) with a hint
to run ``make setup-test``.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.harness.servers import (  # noqa: E402
    Database,
    DatabaseServer,
    HarnessError,
    HarnessUnavailable,
    MariaDBServer,
    PostgresServer,
)


def _new_server(cls: type[DatabaseServer], **kwargs: Any) -> DatabaseServer:
    try:
        return cls(**kwargs)
    except HarnessUnavailable as exc:
        message = f"{cls.__name__} unavailable: {exc}"
    pytest.fail(message, pytrace=False)


def _start(server: DatabaseServer) -> DatabaseServer:
    try:
        return server.start()
    except HarnessError as exc:  # ServerStartError (with log tail) or bootstrap failure
        message = f"{type(server).__name__} failed to start: {exc}"
    server.cleanup()
    pytest.fail(message, pytrace=False)


def _session_server(cls: type[DatabaseServer]) -> Iterator[DatabaseServer]:
    server = _new_server(cls)
    try:
        yield _start(server)
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Session-wide PostgreSQL 15 server (see ``tests/harness/servers.py``)."""
    yield from _session_server(PostgresServer)  # type: ignore[misc]


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """Session-wide MariaDB server with binary logging (ROW)."""
    yield from _session_server(MariaDBServer)  # type: ignore[misc]


def _unique_db_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")[:32]
    return f"t_{stem}_{uuid.uuid4().hex[:8]}"


def _fresh_db(server: DatabaseServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    if not server.is_running():  # an earlier test stopped/killed the session server
        _start(server)
    name = server.create_database(_unique_db_name(request))
    try:
        yield Database(server, name)
    finally:
        if server.is_running():
            server.drop_database(name)


@pytest.fixture
def pg_db(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    """Fresh PostgreSQL database owned by the test role; dropped afterwards."""
    yield from _fresh_db(postgres_server, request)


@pytest.fixture
def maria_db(mariadb_server: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    """Fresh MariaDB database (utf8mb4); dropped afterwards."""
    yield from _fresh_db(mariadb_server, request)


def _factory(cls: type[DatabaseServer]) -> Iterator[Callable[..., Any]]:
    created: list[DatabaseServer] = []

    def make(**kwargs: Any) -> Any:
        server = _new_server(cls, **kwargs)
        created.append(server)
        return _start(server)

    try:
        yield make
    finally:
        for server in reversed(created):
            server.cleanup()


@pytest.fixture
def postgres_factory() -> Iterator[Callable[..., PostgresServer]]:
    """``postgres_factory(**PostgresServer kwargs)`` -> new started private server."""
    yield from _factory(PostgresServer)


@pytest.fixture
def mariadb_factory() -> Iterator[Callable[..., MariaDBServer]]:
    """``mariadb_factory(**MariaDBServer kwargs)`` -> new started private server."""
    yield from _factory(MariaDBServer)
