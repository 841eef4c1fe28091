# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pick the maintenance backend for an engine name.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import Backend, MaintenanceOptions


def get_backend(engine: str, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> Backend:
    if engine == 'postgresql':
        from ansible_collections.opsready.operations.plugins.module_utils.maintenance.postgresql import (
            PostgresMaintenance)
        return PostgresMaintenance(database, opts, conn)
    if engine in ('mariadb', 'mysql'):
        from ansible_collections.opsready.operations.plugins.module_utils.maintenance.mysql import MySQLMaintenance
        return MySQLMaintenance(database, opts, conn, flavor=engine)
    if engine == 'sqlite':
        from ansible_collections.opsready.operations.plugins.module_utils.maintenance.sqlite import SQLiteMaintenance
        return SQLiteMaintenance(database, opts)
    if engine == 'sqlserver':
        from ansible_collections.opsready.operations.plugins.module_utils.maintenance.sqlserver import (
            SQLServerMaintenance)
        return SQLServerMaintenance(database, opts, conn)
    raise OpsReadyError('Unknown engine %r: use postgresql, mariadb, mysql, sqlite or sqlserver.' % engine)
