"""pytest fixtures for replication clusters (``tests/harness/replication.py``).

Not a conftest.py (pytest does not load this file by itself, and tests/conftest.py stays as it is): a test
module loads it as a plugin::

    pytest_plugins = ['tests.integration.conftest_replication']

* ``pg_cluster`` (module): PostgreSQL 15 primary + 2 streaming standbys, physical slots on
  (``standby1``, ``standby2``), async.  Tests that break a standby must put it back (``restore_*``)
  or use ``pg_cluster_factory``.
* ``maria_cluster`` (module): MariaDB primary + 1 GTID replica (``replica1``, read_only).
* ``pg_cluster_factory`` / ``maria_cluster_factory`` (function): ``factory(**kwargs)`` -> a new started
  cluster, cleaned up after the test.

A cluster that cannot start fails the requesting test with the harness message (log tail included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.replication import MariaDBCluster, PgCluster
from tests.harness.servers import HarnessError


def _started(cls: Any, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs).start()
    except HarnessError as exc:  # HarnessUnavailable too: a missing binary fails, with the setup hint
        message = f"{cls.__name__} failed to start: {exc}"
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = _started(PgCluster, standbys=2, slots=True)
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="module")
def maria_cluster() -> Iterator[MariaDBCluster]:
    cluster = _started(MariaDBCluster, replicas=1)
    try:
        yield cluster
    finally:
        cluster.cleanup()


def _factory(cls: Any) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        cluster = _started(cls, **kwargs)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in reversed(made):
            cluster.cleanup()


@pytest.fixture
def pg_cluster_factory() -> Iterator[Callable[..., PgCluster]]:
    yield from _factory(PgCluster)


@pytest.fixture
def maria_cluster_factory() -> Iterator[Callable[..., MariaDBCluster]]:
    yield from _factory(MariaDBCluster)
