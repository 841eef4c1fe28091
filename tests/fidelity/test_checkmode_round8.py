"""Fidelity, check mode against the real run (checkmode red team, round 8): db_restore in check mode must foresee
what the real run reports and refuses, on real servers, changing nothing.

* PostgreSQL ``@globals`` onto a server whose roles exist: the real run names the privileges on parameters it left
  out (``parameter_warnings``); check mode said nothing of them.
* MariaDB point in time whose replay needs privileges lent to the temporary copy: the real run refuses a login
  without GRANT OPTION before loading anything (``probe_lending``); check mode said the restore would succeed.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402

LOGIN_PASSWORD = 'r8-pw!xyz'   # a test account's password on a private test server


def conn(server, user=None, password=None):
    return ConnectionParams(host=server.host, port=server.port, user=user or server.user,
                            password=password or server.password)


def roles(server):
    return sorted(r[0] for r in server.sql('SELECT rolname FROM pg_roles'))


def test_globals_check_mode_names_the_parameter_privileges_the_run_names(postgres_server, tmp_path):
    pg = postgres_server
    role = 'cm8_param_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE ROLE %s; GRANT SET ON PARAMETER log_statement TO %s' % (role, role))
    try:
        engine = get_engine('postgresql', conn(pg))
        run_backup(engine, BackupOptions(kind='full', dest=str(tmp_path / 'b'), database='postgres',
                                         include_globals=True))
        pg.sql('REVOKE SET ON PARAMETER log_statement FROM %s' % role)
        before = roles(pg)

        def restore(check_mode):
            return run_restore(RestoreRequest(engine='postgresql', src=str(tmp_path / 'b'), source_database='@globals',
                                              database='postgres', check_mode=check_mode), conn(pg))

        checked = restore(True)
        assert roles(pg) == before
        real = restore(False)
        said = [w for w in real.get('warnings') or [] if 'PARAMETER' in w]
        assert len(said) == 1 and role in said[0], real.get('warnings')
        assert [w for w in checked.get('warnings') or [] if 'PARAMETER' in w] == said, checked
        assert checked['changed'] == real['changed']
        for key in ('roles_created', 'roles_existing', 'memberships_granted', 'tablespaces_created'):
            assert checked['target'][key] == real['target'][key], key
    finally:
        pg.sql('REVOKE ALL ON PARAMETER log_statement FROM %s; DROP ROLE IF EXISTS %s' % (role, role))
