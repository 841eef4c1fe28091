# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite (Python's sqlite3; ``database`` is a file path, there is no server connection).

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
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
        Backend, MaintenanceOptions)
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import Restorer


def client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None, **session: Any) -> Any:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.client import SQLiteClient
    return SQLiteClient(conn, runner, **session)


def backup(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.backup import SQLiteEngine
    return SQLiteEngine(conn, runner)


def restore(name: str, conn: ConnectionParams) -> Restorer:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.restore import SQLiteRestore
    return SQLiteRestore(name, conn)


def maintenance(name: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.maintenance import (
        SQLiteMaintenance)
    return SQLiteMaintenance(database, opts)


def drill_checks(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> DrillChecks:
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import SQLiteChecks
    return SQLiteChecks(conn, runner)
