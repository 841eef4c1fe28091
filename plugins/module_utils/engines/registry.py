# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine registry: which engines exist, and which class serves each area for each engine.

The one place that names the engines. Modules take their ``engine`` choices from here; backup, maintenance
and DR drill checks get their per-engine object here (``get_engine``, ``get_maintenance``, ``get_drill_client``).
Adding an engine means one entry in ``ENGINES`` (and ``FAMILIES`` when it shares an implementation with another
name, as MySQL shares MariaDB's), one branch in each factory below, and the engine's own files.

The per-engine imports stay inside the factories, written out as ``from ... import``: Ansible packs a module's
module_utils by reading its import statements, so an ``importlib`` lookup by name would not be shipped to the
managed host; importing lazily keeps an engine's optional libraries (pyodbc) out of the other engines' runs.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams

if TYPE_CHECKING:  # pragma: no cover - typing only; importing them here would be circular
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import Client
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import Engine
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
        Backend, MaintenanceOptions)

# Every database engine, in the order the documentation lists them.
ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb', 'mysql', 'sqlite', 'sqlserver')
# The implementation family of each engine: MySQL is served by the MariaDB code with flavor=mysql.
FAMILIES: Dict[str, str] = {'postgresql': 'postgresql', 'mariadb': 'mysql', 'mysql': 'mysql',
                            'sqlite': 'sqlite', 'sqlserver': 'sqlserver'}
# The catalog (backup_info, backup_prune, backup_verify) also holds file_backup sets.
FILES = 'files'
# Redis (the cache): RDB snapshots in the catalog (redis_backup writes them; verify/info/prune/metrics read them).
# Not in ENGINES: db_backup, db_restore and db_maintenance do not serve it.
REDIS = 'redis'
CATALOG_ENGINES: Tuple[str, ...] = ENGINES + (REDIS, FILES)
# Engines with DR drill checks (integrity, smoke queries); SQL Server DBCC CHECKDB is not implemented yet.
DRILL_ENGINES: Tuple[str, ...] = ('sqlite', 'postgresql', 'mariadb', 'mysql')
# Engines with replication status (replication_info, the replication health check; replication/status.py).
REPLICATION_ENGINES: Tuple[str, ...] = tuple(e for e in ENGINES if FAMILIES[e] in ('postgresql', 'mysql'))


def check_engine(name: str, supported: Sequence[str] = ENGINES, area: str = '') -> str:
    """``name`` if ``supported`` holds it; else a clear error naming the choices. Returns the family."""
    if name not in supported:
        raise OpsReadyError('Unknown engine %r%s: use one of %s.'
                            % (name, ' for %s' % area if area else '', ', '.join(supported)), engine=name)
    return FAMILIES.get(name, name)


def get_engine(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    """The backup engine (backup, verify, server facts) for ``name``."""
    if name == REDIS:
        from ansible_collections.opsready.operations.plugins.module_utils.redis.backup import RedisEngine
        return RedisEngine(conn, runner)
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


def get_drill_client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Client:
    """The DR drill check client (integrity check, smoke queries) for ``name``."""
    if name not in DRILL_ENGINES:
        raise OpsReadyError('DR drill checks for engine %r are not available here; supported: %s. (SQL Server '
                            'DBCC CHECKDB is not implemented yet.)' % (name, ', '.join(DRILL_ENGINES)), engine=name)
    family = FAMILIES[name]
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import (
        MySQLClient, PostgresClient, SQLiteClient)
    if family == 'sqlite':
        return SQLiteClient(conn, runner)
    if family == 'postgresql':
        return PostgresClient(conn, runner)
    return MySQLClient(conn, runner, flavor=name)
