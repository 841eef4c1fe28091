# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine registry: which engines exist, and which class serves each area for each engine.

The one place that names the engines. Modules take their ``engine`` choices from here; every area gets its
per-engine object here: ``get_client`` (the engine's client: connection, programs, queries, error classes),
``get_engine`` (backup), ``get_restore`` (db_restore), ``get_maintenance`` and ``get_drill_client``. Each of
those composes the engine's client; none subclasses another area's class. Adding an engine means one entry in
``ENGINES`` (and ``FAMILIES`` when it shares an implementation with another name, as MySQL shares MariaDB's),
one branch in each factory below, and the engine's own files.

The per-engine imports stay inside the factories, written out as ``from ... import``: Ansible packs a module's
module_utils by reading its import statements, so an ``importlib`` lookup by name would not be shipped to the
managed host; importing lazily keeps an engine's optional libraries (pyodbc) out of the other engines' runs.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple, Union

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams

if TYPE_CHECKING:  # pragma: no cover - typing only; importing them here would be circular
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql_client import MySQLClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql_client import PostgresClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite_client import SQLiteClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver_client import SQLServerClient
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import DrillChecks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import Engine
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
        Backend, MaintenanceOptions)

# What get_client returns: one class per family (no common base: each engine's tools differ; the shared
# vocabulary is conn, runner, engine, and query() where the engine has a query tool).
EngineClient = Union['PostgresClient', 'MySQLClient', 'SQLiteClient', 'SQLServerClient']

# Every database engine, in the order the documentation lists them.
ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb', 'mysql', 'sqlite', 'sqlserver')
# The implementation family of each engine: MySQL is served by the MariaDB code with flavor=mysql.
FAMILIES: Dict[str, str] = {'postgresql': 'postgresql', 'mariadb': 'mysql', 'mysql': 'mysql',
                            'sqlite': 'sqlite', 'sqlserver': 'sqlserver'}
# The catalog (backup_info, backup_prune, backup_verify) also holds file_backup sets.
FILES = 'files'
CATALOG_ENGINES: Tuple[str, ...] = ENGINES + (FILES,)
# Engines the health check's db type probes with the native client (SELECT 1 through get_client).
PROBE_ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb', 'mysql')
# Engines with DR drill checks (integrity, smoke queries); SQL Server DBCC CHECKDB is not implemented yet.
DRILL_ENGINES: Tuple[str, ...] = ('sqlite', 'postgresql', 'mariadb', 'mysql')


def check_engine(name: str, supported: Sequence[str] = ENGINES, area: str = '') -> str:
    """``name`` if ``supported`` holds it; else a clear error naming the choices. Returns the family."""
    if name not in supported:
        raise OpsReadyError('Unknown engine %r%s: use one of %s.'
                            % (name, ' for %s' % area if area else '', ', '.join(supported)), engine=name)
    return FAMILIES.get(name, name)


def get_client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> EngineClient:
    """The engine's client for ``name``: connection options to environment/option file/connection string, its
    programs and queries, its error classes. Backup, restore, maintenance and drill checks compose it; new
    engine code (replication, insights ...) starts here, never from another area's class."""
    family = check_engine(name)
    if family == 'postgresql':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql_client import (
            PostgresClient)
        return PostgresClient(conn, runner)
    if family == 'mysql':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql_client import MySQLClient
        return MySQLClient(conn, runner, flavor=name)
    if family == 'sqlite':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite_client import SQLiteClient
        return SQLiteClient(conn, runner)
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver_client import SQLServerClient
    return SQLServerClient(conn, runner)


def get_engine(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    """The backup engine (backup, verify, server facts) for ``name``."""
    family = check_engine(name)
    if family == 'postgresql':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import PostgresEngine
        return PostgresEngine(conn, runner)
    if family == 'mysql':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import MySQLEngine
        return MySQLEngine(conn, runner, flavor=name)
    if family == 'sqlite':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import SQLiteEngine
        return SQLiteEngine(conn, runner)
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver import SQLServerEngine
    return SQLServerEngine(conn, runner)


def get_maintenance(name: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    """The db_maintenance backend for ``name``."""
    family = check_engine(name, area='db_maintenance')
    if family == 'postgresql':
        from ansible_collections.opsready.operations.plugins.module_utils.maintenance.postgresql import (
            PostgresMaintenance)
        return PostgresMaintenance(database, opts, conn)
    if family == 'mysql':
        from ansible_collections.opsready.operations.plugins.module_utils.maintenance.mysql import MySQLMaintenance
        return MySQLMaintenance(database, opts, conn, flavor=name)
    if family == 'sqlite':
        from ansible_collections.opsready.operations.plugins.module_utils.maintenance.sqlite import SQLiteMaintenance
        return SQLiteMaintenance(database, opts)
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.sqlserver import (
        SQLServerMaintenance)
    return SQLServerMaintenance(database, opts, conn)


def get_drill_client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> DrillChecks:
    """The DR drill check client (integrity check, smoke queries) for ``name``."""
    if name not in DRILL_ENGINES:
        raise OpsReadyError('DR drill checks for engine %r are not available here; supported: %s. (SQL Server '
                            'DBCC CHECKDB is not implemented yet.)' % (name, ', '.join(DRILL_ENGINES)), engine=name)
    family = FAMILIES[name]
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import (
        MySQLChecks, PostgresChecks, SQLiteChecks)
    if family == 'sqlite':
        return SQLiteChecks(conn, runner)
    if family == 'postgresql':
        return PostgresChecks(conn, runner)
    return MySQLChecks(conn, runner, flavor=name)
