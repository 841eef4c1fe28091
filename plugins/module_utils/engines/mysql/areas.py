# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB and MySQL: the class serving each area; ``name`` is the flavor (which programs, which session
variables).

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
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import MySQLClient
    return MySQLClient(conn, runner, flavor=name, **session)


def backup(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import MySQLEngine
    return MySQLEngine(conn, runner, flavor=name)


def restore(name: str, conn: ConnectionParams) -> Restorer:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import MySQLRestore
    return MySQLRestore(name, conn)


def maintenance(name: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.maintenance import MySQLMaintenance
    return MySQLMaintenance(database, opts, conn, flavor=name)


def drill_checks(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> DrillChecks:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.checks import MySQLChecks
    return MySQLChecks(conn, runner, flavor=name)


def insights(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Collector:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import MySQLClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.insights import MySQLInsights
    return MySQLInsights(MySQLClient(conn, runner, flavor=name))


def replication(name: str) -> Any:
    """The replication status module: ``collect(engine)`` and ``assess(status, limits)``."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import replication as status
    return status
