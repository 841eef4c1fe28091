# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine names and families, and nothing else: the registry's vocabulary without its code.

``engines/registry.py`` re-exports every name here and is what engine code uses. This file exists for the
modules that only need the choices (``backup_info``: ``CATALOG_ENGINES``): Ansible ships every module_utils
file a module's imports reach, and importing the registry reaches every engine's folder (its ``areas.py``
files name all their classes) - 70 files that a catalog read never runs, parsed by the controller and sent to
the host on every run (issue 22, module start-up).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Dict, Tuple

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
