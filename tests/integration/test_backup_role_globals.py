"""The backup role prunes what it writes: with include_globals a PostgreSQL item writes two sets (the
database's dump and @globals), and retention must apply to both or the globals pile up forever."""

from __future__ import annotations

import json

from tests.integration.test_role_secrets import SECRET_VAR, conn, run_role


def test_backup_role_prunes_the_globals_set_too(pg_db, tmp_path):
    pg_db.sql('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 50) g')
    backups = tmp_path / 'backups'
    role_vars = {
        'backup_dir': str(backups), 'backup_retention': {'keep_last': 1}, 'backup_min_interval': 0,
        'backup_databases': [dict(conn(pg_db.server), engine='postgresql', database=pg_db.name,
                                  include_globals=True, password_var=SECRET_VAR)],
    }
    for _run in range(3):
        result = run_role(tmp_path, 'backup', role_vars, pg_db.server.password)
        assert result.rc == 0, result.stdout[-4000:]
    manifests = [json.loads(p.read_text()) for p in (backups / 'postgresql').glob('*.manifest.json')]
    sets = sorted(m['database'] for m in manifests)
    assert sets == sorted(['@globals', pg_db.name]), sets
    dumps = sorted(p.name for p in (backups / 'postgresql').iterdir() if not p.name.startswith('.'))
    assert len(dumps) == 4, dumps  # two artifacts + two manifests: nothing of the first two runs is left
