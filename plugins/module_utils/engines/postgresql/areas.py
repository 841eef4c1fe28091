# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: the class serving each area (community.mysql's ``implementations/``, as one file).

One function per area the engine offers (the registry's table: see ``engines/registry.py``).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import DrillChecks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import Engine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.insights.core import Collector
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
        Backend, MaintenanceOptions)
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import Restorer


def client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None, **session: Any) -> Any:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
    return PostgresClient(conn, runner, **session)


def backup(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import PostgresEngine
    return PostgresEngine(conn, runner)


def restore(name: str, conn: ConnectionParams) -> Restorer:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import PostgresRestore
    return PostgresRestore(name, conn)


def physical_restore(name: str, conn: ConnectionParams) -> Restorer:
    """Point-in-time recovery into a data directory (a base backup plus archived WAL)."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.pitr import PitrRestore
    return PitrRestore(name, conn)


def maintenance(name: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.maintenance import (
        PostgresMaintenance)
    return PostgresMaintenance(database, opts, conn)


def drill_checks(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> DrillChecks:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.checks import PostgresChecks
    return PostgresChecks(conn, runner)


def insights(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Collector:
    """Sessions show as ``opsready-insights`` and give up on a lock after 5 s: insights are read while
    something holds locks, and must never queue behind it."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import SessionLimits
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.insights import (
        PostgresInsights)
    return PostgresInsights(PostgresClient(conn, runner, app='opsready-insights',
                                           limits=SessionLimits(lock_timeout=5, statement_timeout=60)))


def replication(name: str) -> Any:
    """The replication status module: ``collect(engine, database)`` and ``assess(status, limits)``."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import replication as status
    return status
