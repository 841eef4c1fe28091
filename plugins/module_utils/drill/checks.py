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
Every step refuses a scratch name equal to the source database (for SQLite: the same file under any path, link
included): a drill works on a copy. The role runs ``drill_step step=guard`` before it restores anything, and drops
the scratch target afterwards (``db_restore state=absent``) only when the guard let it through; on a server (and for
a PITR data directory) the guard also refuses a scratch target the drill did not create (``drill/scratch.py``).

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


def guard_scratch(scratch: str, source: Optional[str], engine: Optional[str] = None) -> None:
    """Refuse a scratch target that is the source database. For SQLite (``engine='sqlite'``) the names are paths:
    ``app/./shop.sqlite``, ``../app/shop.sqlite``, a symbolic or hard link to the source are the source too (a
    restore with replace then overwrites the live file and the clean-up deletes it), so the resolved paths and, when
    both exist, the files themselves are compared."""
    if not scratch:
        raise OpsReadyError('The scratch target is empty: name a scratch database (or file) for the drill.')
    if not source:
        return
    same = os.path.normpath(scratch) == os.path.normpath(source)
    if engine == 'sqlite' and not same:
        same = os.path.realpath(scratch) == os.path.realpath(source)
        if not same and os.path.exists(scratch) and os.path.exists(source):
            same = os.path.samefile(scratch, source)
    if same:
        raise OpsReadyError('The scratch target %r is the source database itself (%r): a drill restores into a '
                            'separate scratch target and drops it afterwards. Choose another scratch name.'
                            % (scratch, source), scratch=scratch)


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

    def freshness_rows(self, database: str, sql: str) -> List[Dict[str, Any]]:
        """The freshness query's rows: ``query``, in a session whose times print in UTC where the engine prints a
        zoned column's time in the session's zone without saying which (MariaDB/MySQL TIMESTAMP)."""
        return self.query(database, sql)

    def versions(self) -> Dict[str, str]:
        return {}

    def summary(self, database: str) -> Optional[Dict[str, Any]]:
        """What the restored target holds, in the shape of a manifest's ``source`` summary."""
        return None
