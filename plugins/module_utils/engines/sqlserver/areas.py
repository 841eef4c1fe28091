# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL Server through pyodbc. No DR drill checks yet (DBCC CHECKDB is not implemented), no replication.

One function per area the engine offers (the registry's table: see ``engines/registry.py``).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import Engine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.insights.core import Collector
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
        Backend, MaintenanceOptions)
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import Restorer


def client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None, **session: Any) -> Any:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.client import SQLServerClient
    return SQLServerClient(conn, runner, **session)


def backup(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.backup import SQLServerEngine
    return SQLServerEngine(conn, runner)


def restore(name: str, conn: ConnectionParams) -> Restorer:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.restore import SQLServerRestore
    return SQLServerRestore(name, conn)


def maintenance(name: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.maintenance import (
        SQLServerMaintenance)
    return SQLServerMaintenance(database, opts, conn)


def insights(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Collector:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.client import SQLServerClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.insights import (
        SQLServerInsights)
    return SQLServerInsights(SQLServerClient(conn, runner, app='opsready-insights'))
