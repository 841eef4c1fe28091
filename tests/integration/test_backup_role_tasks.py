"""The backup role's task groups: one db_backup task for items with and without kinds, the WAL helper
installed from the role's own files, the handler notified by a backup, and tags that run one group."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.harness.playbook import REPO, play_role


def make_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(50)])
    conn.commit()
    conn.close()


def test_items_with_and_without_kinds_helper_handler_and_tags(tmp_path):
    for name in ('plain.db', 'kinds.db'):
        make_db(tmp_path / name)
    helper = tmp_path / 'lib' / 'pg_wal_archive.py'
    role_vars = {'backup_dir': str(tmp_path / 'backups'), 'backup_retention': {},
                 'backup_pg_wal_helper': True, 'backup_pg_wal_helper_path': str(helper),
                 'backup_databases': [{'engine': 'sqlite', 'database': str(tmp_path / 'plain.db')},
                                      {'engine': 'sqlite', 'database': str(tmp_path / 'kinds.db'),
                                       'kinds': ['full']}]}
    result = play_role(tmp_path, 'backup', role_vars)
    assert result.rc == 0, result.stdout[-4000:]
    done = result.result('Back up each database')['results']
    assert sorted((r['item'][0]['database'].rsplit('/', 1)[1], r['item'][1]) for r in done) == \
        [('kinds.db', 'full'), ('plain.db', 'full')]
    manifests = sorted((tmp_path / 'backups' / 'sqlite').glob('*.manifest.json'))
    assert len(manifests) == 2
    # the helper comes from the role's files (a link to the module_utils source), byte for byte
    source = REPO / 'plugins' / 'module_utils' / 'engines' / 'postgresql' / 'wal_archive.py'
    assert helper.read_bytes() == source.read_bytes() and oct(helper.stat().st_mode & 0o777) == '0o755'
    assert 'Backups written under %s' % role_vars['backup_dir'] in result.stdout  # the handler ran

    # --tags verify: only the verification group runs, no new backup
    verify = play_role(tmp_path, 'backup', role_vars, tags='verify')
    assert verify.rc == 0, verify.stdout[-4000:]
    assert verify.task_results('Back up each database') == []
    checked = verify.result('Re-verify each catalog (checksums + engine checks)')['results']
    assert len(checked) == 2 and all(r['failures'] == [] for r in checked)
    assert sorted((tmp_path / 'backups' / 'sqlite').glob('*.manifest.json')) == manifests
