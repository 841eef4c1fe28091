"""Round 10 of the retention audit (real ansible-playbook runs of db_backup and file_backup).

db_backup, redis_backup and file_backup run retention after their backup, but kept only its ``deleted``: the
prune's ``broken_manifests`` (a backup whose manifest cannot be read is never counted nor deleted, kept for ever)
and its warnings were dropped, so an operator whose retention ran in the backup job was never told."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.harness.playbook import run_playbook, write_playbook


def _sqlite(tmp_path, name='app.db'):
    db = tmp_path / 'data' / name
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.executescript('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES (1);')
    conn.commit()
    conn.close()
    return db


def _db_backup(tmp_path, db, dest, check=False):
    book = write_playbook(tmp_path, [{'name': 'backup', 'check_mode': check, 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(dest), 'retention': {'keep_last': 1}}}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    return result, result.result('backup')


def test_db_backup_retention_reports_the_broken_manifests_it_keeps(tmp_path):
    """A backup of the set whose manifest was torn: retention (keep_last 1) can neither count nor delete it. The
    db_backup result said nothing of it (backup_prune said it, the backup job's own retention did not)."""
    db = _sqlite(tmp_path)
    dest = tmp_path / 'backups'
    dummy, first = _db_backup(tmp_path, db, dest)
    torn = Path(first['manifest']['path'] + '.manifest.json')
    torn.write_text(torn.read_text()[:40])
    time.sleep(1.1)
    for check in (True, False):
        result, out = _db_backup(tmp_path, db, dest, check=check)
        assert [b['manifest'] for b in out['broken_manifests']] == [str(torn)], out
        assert any(str(torn) in w and 'cannot be read' in w for w in out.get('warnings', [])), out.get('warnings')
        assert str(torn) in result.stdout   # shown as a warning of the task


def test_file_backup_retention_reports_the_broken_manifests_it_keeps(tmp_path):
    """file_backup kept only ``deleted`` from its prune as well."""
    tree = tmp_path / 'etc'
    tree.mkdir()
    (tree / 'a.conf').write_text('a\n')
    dest = tmp_path / 'backups'
    book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.file_backup': {
        'paths': [str(tree)], 'dest': str(dest), 'name': 'conf', 'keep_count': 1}}])
    first = run_playbook(book).result('backup')
    torn = Path(first['manifest']['path'] + '.manifest.json') if 'manifest' in first else \
        next(dest.glob('conf-*.manifest.json'))
    torn.write_text(torn.read_text()[:40])
    time.sleep(1.1)
    (tree / 'a.conf').write_text('b\n')
    result = run_playbook(book)
    out = result.result('backup')
    assert result.rc == 0, result.stdout[-3000:]
    assert [b['manifest'] for b in out['broken_manifests']] == [str(torn)], out
    assert any(str(torn) in w for w in out.get('warnings', [])), out.get('warnings')
    assert json.loads(json.dumps(out['deleted'])) == []
