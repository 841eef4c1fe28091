# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine registry: which engines exist, and which class serves each area for each engine.

The one place that names the engines. Modules take their ``engine`` choices from here; every area gets its
per-engine object here: ``get_client`` (the engine's client: connection, programs, queries, error classes),
``get_engine`` (backup), ``get_restore`` (db_restore), ``get_maintenance`` and ``get_drill_client``. Each of
those composes the engine's client; none subclasses another area's class. Adding an engine means one entry in
``ENGINES`` (and ``FAMILIES`` when it shares an implementation with another name, as MySQL shares MariaDB's),
one table function below (``IMPLEMENTATIONS``: which class serves each area), and the engine's own files.

The per-engine imports stay inside the factories, written out as ``from ... import``: Ansible packs a module's
module_utils by reading its import statements, so an ``importlib`` lookup by name would not be shipped to the
managed host; importing lazily keeps an engine's optional libraries (pyodbc) out of the other engines' runs.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple, Union

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    ConnectionParams, SessionLimits)

if TYPE_CHECKING:  # pragma: no cover - typing only; importing them here would be circular
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql_client import MySQLClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql_client import PostgresClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite_client import SQLiteClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver_client import SQLServerClient
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import DrillChecks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import Engine
    from ansible_collections.opsready.operations.plugins.module_utils.insights.core import Collector
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
        Backend, MaintenanceOptions)
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import Restorer

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
# Redis (the cache): RDB snapshots in the catalog (redis_backup writes them; verify/info/prune/metrics read them).
# Not in ENGINES: db_backup, db_restore and db_maintenance do not serve it.
REDIS = 'redis'
CATALOG_ENGINES: Tuple[str, ...] = ENGINES + (REDIS, FILES)
# Engines with a physical (data directory) point-in-time recovery in db_restore.
PHYSICAL_RESTORE_ENGINES: Tuple[str, ...] = ('postgresql',)
# Engines the health check's db type probes with the native client (SELECT 1 through get_client).
PROBE_ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb', 'mysql')
# Engines with DR drill checks (integrity, smoke queries); SQL Server DBCC CHECKDB is not implemented yet.
DRILL_ENGINES: Tuple[str, ...] = ('sqlite', 'postgresql', 'mariadb', 'mysql')
# Engines db_failover serves: PostgreSQL every action (replication/pg_promote.py), MariaDB GTID the switchover
# (replication/mysql_promote.py).
FAILOVER_ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb')
# Engines with replication status (replication_info, the replication health check; replication/status.py).
REPLICATION_ENGINES: Tuple[str, ...] = tuple(e for e in ENGINES if FAMILIES[e] in ('postgresql', 'mysql'))
# Engines with database insights (db_insights, the health_check ``insights`` type): SQLite has no server to ask.
INSIGHTS_ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb', 'mysql', 'sqlserver')


def check_engine(name: str, supported: Sequence[str] = ENGINES, area: str = '') -> str:
    """``name`` if ``supported`` holds it; else a clear error naming the choices. Returns the family."""
    if name not in supported:
        raise OpsReadyError('Unknown engine %r%s: use one of %s.'
                            % (name, ' for %s' % area if area else '', ', '.join(supported)), engine=name)
    return FAMILIES.get(name, name)


def _postgresql(name: str) -> Dict[str, Callable[..., Any]]:
    """PostgreSQL: the class serving each area (community.mysql's implementations/, as one table)."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import PostgresChecks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import PostgresEngine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql_client import PostgresClient
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.postgresql import PostgresMaintenance
    from ansible_collections.opsready.operations.plugins.module_utils.restore.postgresql import PostgresRestore
    from ansible_collections.opsready.operations.plugins.module_utils.restore.postgresql_pitr import PitrRestore
    return {'client': PostgresClient, 'engine': PostgresEngine, 'maintenance': PostgresMaintenance,
            'drill': PostgresChecks, 'restore': partial(PostgresRestore, name), 'physical': partial(PitrRestore, name)}


def _mysql(name: str) -> Dict[str, Callable[..., Any]]:
    """MariaDB and MySQL (``name`` is the flavor: which programs, which session variables)."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import MySQLChecks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import MySQLEngine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql_client import MySQLClient
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.mysql import MySQLMaintenance
    from ansible_collections.opsready.operations.plugins.module_utils.restore.mysql import MySQLRestore
    return {'client': partial(MySQLClient, flavor=name), 'engine': partial(MySQLEngine, flavor=name),
            'maintenance': partial(MySQLMaintenance, flavor=name), 'drill': partial(MySQLChecks, flavor=name),
            'restore': partial(MySQLRestore, name)}


def _sqlite(name: str) -> Dict[str, Callable[..., Any]]:
    """SQLite (Python's sqlite3; ``database`` is a file path, there is no server connection)."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import SQLiteChecks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import SQLiteEngine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite_client import SQLiteClient
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.sqlite import SQLiteMaintenance
    from ansible_collections.opsready.operations.plugins.module_utils.restore.sqlite import SQLiteRestore

    def maintenance(database: str, opts: MaintenanceOptions, _conn: ConnectionParams) -> Backend:
        return SQLiteMaintenance(database, opts)
    return {'client': SQLiteClient, 'engine': SQLiteEngine, 'maintenance': maintenance, 'drill': SQLiteChecks,
            'restore': partial(SQLiteRestore, name)}


def _sqlserver(name: str) -> Dict[str, Callable[..., Any]]:
    """SQL Server through pyodbc (no DR drill checks yet: DBCC CHECKDB is not implemented)."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver import SQLServerEngine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver_client import SQLServerClient
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.sqlserver import SQLServerMaintenance
    from ansible_collections.opsready.operations.plugins.module_utils.restore.sqlserver import SQLServerRestore
    return {'client': SQLServerClient, 'engine': SQLServerEngine, 'maintenance': SQLServerMaintenance,
            'restore': partial(SQLServerRestore, name)}


# The one dispatch on the engine: family -> its table. The tables import lazily, with plain ``from ... import``
# statements (see the module docstring).
IMPLEMENTATIONS: Dict[str, Callable[[str], Dict[str, Callable[..., Any]]]] = {
    'postgresql': _postgresql, 'mysql': _mysql, 'sqlite': _sqlite, 'sqlserver': _sqlserver}


def _implementation(name: str, area: str, what: str = '') -> Callable[..., Any]:
    return IMPLEMENTATIONS[check_engine(name, area=what)](name)[area]


def get_client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> EngineClient:
    """The engine's client for ``name``: connection options to environment/option file/connection string, its
    programs and queries, its error classes. Backup, restore, maintenance and drill checks compose it; new
    engine code (replication, insights ...) starts here, never from another area's class."""
    return _implementation(name, 'client')(conn, runner)


def get_engine(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    """The backup engine (backup, verify, server facts) for ``name``."""
    if name == REDIS:  # the catalog's Redis artifacts (verify); not an ENGINES family
        from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import RedisEngine
        return RedisEngine(conn, runner)
    return _implementation(name, 'engine')(conn, runner)


def get_restore(name: str, conn: ConnectionParams, physical: bool = False) -> Restorer:
    """The db_restore implementation for ``name``; ``physical``: point-in-time recovery into a data directory
    (PHYSICAL_RESTORE_ENGINES only)."""
    check_engine(name, area='db_restore')
    if physical and name not in PHYSICAL_RESTORE_ENGINES:
        raise OpsReadyError('datadir applies to physical recovery, which only %s offers, not engine %s.'
                            % (', '.join(PHYSICAL_RESTORE_ENGINES), name), engine=name)
    return _implementation(name, 'physical' if physical else 'restore', 'db_restore')(conn)


def get_maintenance(name: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    """The db_maintenance backend for ``name``."""
    return _implementation(name, 'maintenance', 'db_maintenance')(database, opts, conn)


def get_drill_client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> DrillChecks:
    """The DR drill checks (integrity check, smoke queries, summary) for ``name``."""
    if name not in DRILL_ENGINES:
        raise OpsReadyError('DR drill checks for engine %r are not available here; supported: %s. (SQL Server '
                            'DBCC CHECKDB is not implemented yet.)' % (name, ', '.join(DRILL_ENGINES)), engine=name)
    return _implementation(name, 'drill')(conn, runner)


def get_insights(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Collector:
    """The database insights collector (connections, locks, deadlocks, statements ...) for ``name``, querying
    through the engine's client. The client class is imported alone, not through the family's table: that
    table imports every area (restore, PITR, maintenance, drill), which tripled the start of a monitoring
    module run every few minutes. PostgreSQL sessions show as ``opsready-insights`` and give up on a lock
    after 5 s (insights are read while something holds locks; they must never queue behind it)."""
    family = check_engine(name, INSIGHTS_ENGINES, area='database insights')
    if family == 'postgresql':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql_client import (
            PostgresClient)
        from ansible_collections.opsready.operations.plugins.module_utils.insights.postgresql import PostgresInsights
        return PostgresInsights(PostgresClient(conn, runner, app='opsready-insights',
                                               limits=SessionLimits(lock_timeout=5, statement_timeout=60)))
    if family == 'mysql':
        from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql_client import MySQLClient
        from ansible_collections.opsready.operations.plugins.module_utils.insights.mysql import MySQLInsights
        return MySQLInsights(MySQLClient(conn, runner, flavor=name))
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver_client import SQLServerClient
    from ansible_collections.opsready.operations.plugins.module_utils.insights.sqlserver import SQLServerInsights
    return SQLServerInsights(SQLServerClient(conn, runner, app='opsready-insights'))
