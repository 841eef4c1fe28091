"""Fidelity, PostgreSQL: a serial restore of a compressed custom dump whose head could not be listed.

The -L list that moves the dump's event triggers after everything else (``serial_list``) is made from
``pg_restore --list`` of the artifact's head (``_head_listing``). When that listing failed, the load silently kept
pg_restore's order: an audit trigger set ENABLE REPLICA fired on the grants and the REFRESH MATERIALIZED VIEW that
follow it (before PostgreSQL 17). The run now warns, naming the backup and what to do. The failure is made by a
``pg_restore`` on PATH that refuses ``--list`` of a stream (the head listing) and runs the real one otherwise.
"""

from __future__ import annotations

import json
import os
import uuid

from tests.fidelity.test_postgresql import backup, conn, qi
from tests.fidelity.test_postgresql_round11 import EVENT_BASE, drop
from tests.fidelity.test_postgresql_round12 import GUARD
from tests.harness.playbook import VENV_PYTHON, run_playbook

REFUSING = '''#!/bin/sh
# the head listing of _head_listing (pg_restore --list, the artifact on stdin) fails; anything else is the real one
if [ "$#" -eq 1 ] && [ "$1" = "--list" ]; then
    echo "pg_restore: error: could not read the archive (test)" >&2
    exit 1
fi
exec %s "$@"
'''


def test_a_head_that_cannot_be_listed_is_a_warning(pg, tmp_path):
    name = 'fid_evu_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        audit_only = GUARD.split('CREATE EVENT TRIGGER no_ddl', maxsplit=1)[0] + 'CREATE EVENT TRIGGER log_ddl' + \
            GUARD.split('CREATE EVENT TRIGGER log_ddl', maxsplit=1)[1]
        pg.sql(EVENT_BASE + audit_only.format(mode='REPLICA'), database=name)
        dest = backup(tmp_path, pg, name, format='custom')
        real = os.path.join(os.path.dirname(pg._bins['psql']), 'pg_restore')
        assert os.access(real, os.X_OK), real
        tools = tmp_path / 'tools'
        tools.mkdir()
        (tools / 'pg_restore').write_text(REFUSING % real)
        (tools / 'pg_restore').chmod(0o755)
        book = tmp_path / 'restore.yml'
        book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
            {'name': 'restore', 'opsready.operations.db_restore': dict(
                conn(pg), engine='postgresql', src=str(dest), source_database=name, database=copy, jobs=1)}]}]))
        path = os.pathsep.join((str(tools), os.path.dirname(VENV_PYTHON), os.environ.get('PATH', '')))
        result = run_playbook(str(book), extravars={'pg_password': pg.password}, envvars={'PATH': path})
        assert result.rc == 0, result.stdout[-4000:]
        done = result.result('restore')
        assert done['method_detail'] == 'pg_restore (stdin stream)', done
        warned = [w for w in done.get('warnings') or [] if 'could not read the table of contents' in w]
        logged = pg.sql('SELECT tag FROM app.ddl_log ORDER BY id', database=copy)
        if int(pg.sql('SHOW server_version_num')[0][0]) < 170000:
            assert len(warned) == 1 and 'not moved after everything else' in warned[0], done.get('warnings')
            assert logged, 'the kept order let the audit trigger fire on the load (what the warning says)'
        else:   # event_triggers=off in every session of the copy: the order cannot matter
            assert warned == [] and logged == [], (warned, logged)
    finally:
        drop(pg, name, copy)
