"""What a backup run has loaded when its dump tool starts (issue 22). In an AnsiballZ payload no module_utils file has
a .pyc: every file imported is compiled on every run, and what is imported before pg_dump, pg_basebackup or
mariadb-dump starts delays the backup. The catalog code (catalog, catalog_index), retention, the prune and describe
code and tarfile are not needed before the tool starts (no retention policy, no min_interval, no leftover in dest):
a real run, in a fresh interpreter that imports db_backup as Ansible runs it, names what was loaded at that instant."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.harness.playbook import REPO

CHILD = r'''
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
spec = json.loads(sys.argv[2])
import ansible_collections.opsready.operations.plugins.modules.db_backup  # noqa: F401  (the module's own imports)
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine

HEAVY = ('.backup.catalog', '.backup.catalog_index', '.backup.catalog_index_file', '.backup.retention',
         '.backup.catalog_prune', '.backup.catalog_jobs')
seen = {}


class Spy(subprocess.Popen):
    def __init__(self, args, *rest, **kwargs):
        if isinstance(args, (list, tuple)) and os.path.basename(str(args[0])) in spec['tools'] \
                and '--version' not in args and 'loaded' not in seen:
            seen['loaded'] = sorted(m for m in sys.modules if m.endswith(HEAVY) or m == 'tarfile')
        super().__init__(args, *rest, **kwargs)


subprocess.Popen = Spy
conn = ConnectionParams(host=spec['host'], port=spec['port'], user=spec['user'],
                        password=os.environ['OPSREADY_TEST_PASSWORD'])
opts = BackupOptions(kind=spec['kind'], dest=spec['dest'], database=spec.get('database'))
result = run_backup(get_engine(spec['engine'], conn), opts, verify=spec['verify'])
print(json.dumps({'seen': seen, 'path': result['manifest']['path']}))
'''


def launch(server, tmp_path, **spec):
    spec.update(host=server.host, port=server.port, user=server.user, dest=str(tmp_path / 'b'))
    env = dict(os.environ, OPSREADY_TEST_PASSWORD=server.password)
    done = subprocess.run([sys.executable, '-c', CHILD, str(REPO / 'build'), json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('kind,tools', [('full', ['pg_dump']), ('base', ['pg_basebackup'])])
def test_postgresql_tool_starts_before_the_catalog_code_is_loaded(pg_db, tmp_path, kind, tools):
    pg_db.sql('CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)')
    database = pg_db.name if kind == 'full' else None
    first = launch(pg_db.server, tmp_path, engine='postgresql', kind=kind, database=database, tools=tools,
                   verify=True)
    assert first['seen'].get('loaded') == [], first['seen']
    # a second run, its earlier backup (verified) beside it in dest: decided without the catalog too
    second = launch(pg_db.server, tmp_path, engine='postgresql', kind=kind, database=database, tools=tools,
                    verify=False)
    assert second['seen'].get('loaded') == [], second['seen']
    assert second['path'] != first['path'] and os.path.exists(first['path'] + '.manifest.json')


def test_mariadb_dump_starts_before_the_catalog_code_is_loaded(maria_db, tmp_path):
    maria_db.sql('CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)')
    found = launch(maria_db.server, tmp_path, engine='mariadb', kind='full', database=maria_db.name,
                   tools=['mariadb-dump', 'mysqldump'], verify=False)
    assert found['seen'].get('loaded') == [], found['seen']


def test_pg_basebackup_starts_before_the_catalog_reads_a_leftover(pg_db, tmp_path):
    """A killed run's staging in dest: the catalog decides what is a leftover (it imports the catalog code), and a base
    backup has it decide while pg_basebackup connects and checkpoints, not before starting it. The leftover is still
    removed and the new backup's own staging is not."""
    leftover = tmp_path / 'b' / 'postgresql-cluster-base-20260101T000000000000Z.tar.zst.partial'
    leftover.mkdir(parents=True)
    (leftover / 'base.tar.zst').write_bytes(b'half')
    found = launch(pg_db.server, tmp_path, engine='postgresql', kind='base', tools=['pg_basebackup'], verify=True)
    assert found['seen'].get('loaded') == [], found['seen']
    assert not leftover.exists()
    assert not [n for n in os.listdir(tmp_path / 'b') if n.endswith('.partial')]
    assert os.path.exists(found['path'] + '.manifest.json')
