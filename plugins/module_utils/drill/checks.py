# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a drill does to a restored scratch target: integrity check and smoke queries.

The interface (``DrillChecks``) and what the engines share; one subclass per engine family in
``engines/<family>/checks.py``, each composing that engine's client (``engines/<family>/client.py``: programs,
connection environment or option file, timeouts, error classes), each with the engine's own tools:

* SQLite: ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check`` (Python's sqlite3);
* PostgreSQL: ``pg_amcheck --heapallindexed`` (installs the amcheck extension in the scratch database),
  else, where pg_amcheck or amcheck is unavailable, a full read of every table (``COPY ... TO STDOUT``);
* MariaDB/MySQL: ``mariadb-check``/``mysqlcheck`` (``CHECK TABLE`` on every table, optionally EXTENDED).

Passwords reach the tools through the client's PGPASSWORD or 0600 option file, never argv.
Every step refuses a scratch name equal to the source database: a drill works on a copy. (Dropping the
scratch target is ``db_restore state=absent``.)

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    ConnectionParams, runner_for)

# A smoke query or a table listing on a restored copy: longer than a monitoring query, but a hung one must not
# hold the drill (and the play) forever. A whole-database check reads every page: hours on a big copy.
QUERY_TIMEOUT = 600.0
INTEGRITY_TIMEOUT = 4 * 3600.0


def guard_scratch(scratch: str, source: Optional[str]) -> None:
    if not scratch:
        raise OpsReadyError('The scratch target is empty: name a scratch database (or file) for the drill.')
    if source and os.path.normpath(scratch) == os.path.normpath(source):
        raise OpsReadyError('The scratch target %r is the source database itself: a drill restores into a '
                            'separate scratch target and drops it afterwards. Choose another scratch name.'
                            % scratch, scratch=scratch)


class DrillChecks:
    """What a drill asks of a restored target; one subclass per engine family, composing the engine's client."""

    engine = 'base'
    # Whether summary() counts exactly what the backup's source summary counted (compared for equality then).
    exact_summary = False

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        self.conn = conn
        self.runner = runner_for(conn, runner)

    def integrity(self, database: str, level: str = 'standard') -> Dict[str, Any]:
        raise NotImplementedError

    def query(self, database: str, sql: str) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def versions(self) -> Dict[str, str]:
        return {}

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        """What the restored target holds, in the shape of a manifest's ``source`` summary."""
        return None
