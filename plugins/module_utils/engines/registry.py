# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine registry: which engines exist, and which code serves each area for each engine.

The one place that names the engines. Each engine family has one folder, ``engines/<family>/``: its client
(``client.py``: connection options to environment/option file, its programs and queries, its error classes),
the areas built on that client (``backup.py``, ``restore.py``, ``maintenance.py``, ``checks.py``,
``insights.py``, ``replication.py`` ...), and ``areas.py``, the table the registry reads: one function per
area the engine offers. Modules take their ``engine`` choices from here (``ENGINES``, and the capability lists
derived from the ``areas.py`` files); every area gets its per-engine object here (``get_client``, ``get_engine``,
``get_restore``, ``get_maintenance``, ``get_drill_client``, ``get_insights``, ``replication_status``). Adding an
engine is its folder plus one line in ``ENGINES``/``FAMILIES`` (``engines/names.py``) and ``IMPLEMENTATIONS``.

``areas.py`` files import their classes lazily, with plain ``from ... import`` statements: Ansible packs a
module's module_utils by reading its import statements (an ``importlib`` lookup by name would not be shipped to
the managed host), and lazy imports keep an engine's optional libraries (pyodbc) out of other engines' runs and
one area's imports out of another's (the monitoring modules run every few minutes).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple, Union

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import areas as mysql_areas
from ansible_collections.opsready.operations.plugins.module_utils.engines.names import (  # noqa: F401  # pylint: disable=unused-import
    CATALOG_ENGINES, ENGINES, FAMILIES, FILES, REDIS)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import areas as postgresql_areas
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite import areas as sqlite_areas
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver import areas as sqlserver_areas

if TYPE_CHECKING:  # pragma: no cover - typing only; importing them here would load every engine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import MySQLClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.client import SQLiteClient
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.client import SQLServerClient
    from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
    from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import DrillChecks
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import Engine
    from ansible_collections.opsready.operations.plugins.module_utils.insights.core import Collector
    from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
        Backend, MaintenanceOptions)
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
        Restorer)

# What get_client returns: one class per family (no common base: each engine's tools differ; the shared
# vocabulary is conn, runner, engine, and query() where the engine has a query tool).
EngineClient = Union['PostgresClient', 'MySQLClient', 'SQLiteClient', 'SQLServerClient']

# The names (ENGINES, FAMILIES, FILES, REDIS, CATALOG_ENGINES) live in engines/names.py, which a module that
# only needs the choices imports without shipping every engine; they are part of the registry's interface.
# The one dispatch on the engine: family -> its ``areas.py``.
IMPLEMENTATIONS: Dict[str, ModuleType] = {'postgresql': postgresql_areas, 'mysql': mysql_areas,
                                          'sqlite': sqlite_areas, 'sqlserver': sqlserver_areas}


def _offering(area: str) -> Tuple[str, ...]:
    return tuple(e for e in ENGINES if hasattr(IMPLEMENTATIONS[FAMILIES[e]], area))


# Engines with a physical (data directory) point-in-time recovery in db_restore.
PHYSICAL_RESTORE_ENGINES: Tuple[str, ...] = _offering('physical_restore')
# Engines with DR drill checks (integrity, smoke queries); SQL Server DBCC CHECKDB is not implemented yet.
DRILL_ENGINES: Tuple[str, ...] = _offering('drill_checks')
# Engines with replication status (replication_info, the replication health check; replication/status.py).
REPLICATION_ENGINES: Tuple[str, ...] = _offering('replication')
# Engines with database insights (db_insights, the health_check ``insights`` type): SQLite has no server to ask.
INSIGHTS_ENGINES: Tuple[str, ...] = _offering('insights')
# Engines the health check's db type probes with the native client (SELECT 1 through get_client).
PROBE_ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb', 'mysql')
# Engines db_failover serves, every action: PostgreSQL (engines/postgresql/promote.py), MariaDB GTID
# (engines/mysql/promote.py).
FAILOVER_ENGINES: Tuple[str, ...] = ('postgresql', 'mariadb')


def check_engine(name: str, supported: Sequence[str] = ENGINES, area: str = '') -> str:
    """``name`` if ``supported`` holds it; else a clear error naming the choices. Returns the family."""
    if name not in supported:
        raise OpsReadyError('Unknown engine %r%s: use one of %s.'
                            % (name, ' for %s' % area if area else '', ', '.join(supported)), engine=name)
    return FAMILIES.get(name, name)


def _area(name: str, area: str, what: str = '') -> Any:
    family = check_engine(name, area=what)
    implementation = getattr(IMPLEMENTATIONS[family], area, None)
    if implementation is None:
        raise OpsReadyError('%s is not available for engine %s.' % (what or area, name), engine=name)
    return implementation


def get_client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> EngineClient:
    """The engine's client for ``name``: connection options to environment/option file/connection string, its
    programs and queries, its error classes. Backup, restore, maintenance and drill checks compose it; new
    engine code (replication, insights ...) starts here, never from another area's class."""
    return _area(name, 'client')(name, conn, runner)


def get_engine(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Engine:
    """The backup engine (backup, verify, server facts) for ``name``."""
    if name == REDIS:  # the catalog's Redis artifacts (verify); not an ENGINES family
        from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.verify import RedisEngine
        return RedisEngine(conn, runner)
    return _area(name, 'backup')(name, conn, runner)


def get_restore(name: str, conn: ConnectionParams, physical: bool = False) -> Restorer:
    """The db_restore implementation for ``name``; ``physical``: point-in-time recovery into a data directory
    (PHYSICAL_RESTORE_ENGINES only)."""
    check_engine(name, area='db_restore')
    if physical and name not in PHYSICAL_RESTORE_ENGINES:
        raise OpsReadyError('datadir applies to physical recovery, which only %s offers, not engine %s.'
                            % (', '.join(PHYSICAL_RESTORE_ENGINES), name), engine=name)
    return _area(name, 'physical_restore' if physical else 'restore', 'db_restore')(name, conn)


def get_maintenance(name: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    """The db_maintenance backend for ``name``."""
    return _area(name, 'maintenance', 'db_maintenance')(name, database, opts, conn)


def get_drill_client(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> DrillChecks:
    """The DR drill checks (integrity check, smoke queries, summary) for ``name``."""
    if name not in DRILL_ENGINES:
        raise OpsReadyError('DR drill checks for engine %r are not available here; supported: %s. (SQL Server '
                            'DBCC CHECKDB is not implemented yet.)' % (name, ', '.join(DRILL_ENGINES)), engine=name)
    return _area(name, 'drill_checks')(name, conn, runner)


def get_insights(name: str, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> Collector:
    """The database insights collector (connections, locks, deadlocks, statements ...) for ``name``, querying
    through the engine's client."""
    check_engine(name, INSIGHTS_ENGINES, area='database insights')
    return _area(name, 'insights')(name, conn, runner)


def replication_status(name: str) -> Any:
    """The engine's replication status module (``collect``, ``assess``), for ``replication/status.py``."""
    check_engine(name, REPLICATION_ENGINES, area='replication status')
    return _area(name, 'replication')(name)
