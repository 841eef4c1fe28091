"""The backup role's second copies: to another directory and to the control node, each re-verified by
checksum there (no database tools needed), and a copy that does not match its manifest is caught."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.harness.playbook import play_role, run_playbook


def make_db(path: Path, rows: int = 300) -> None:
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(rows)])
    conn.commit()
    conn.close()


def test_copies_to_a_directory_and_the_control_node_are_checksummed_there(tmp_path):
    make_db(tmp_path / 'app.db')
    role_vars = {'backup_dir': str(tmp_path / 'backups'), 'backup_retention': {},
                 'backup_databases': [{'engine': 'sqlite', 'database': str(tmp_path / 'app.db')}],
                 'backup_copy_to': str(tmp_path / 'second'), 'backup_fetch_to_controller': str(tmp_path / 'ctl')}
    result = play_role(tmp_path, 'backup', role_vars)
    assert result.rc == 0, result.stdout[-4000:]
    source = sorted((tmp_path / 'backups' / 'sqlite').glob('*.manifest.json'))
    assert len(source) == 1
    artifact_name = source[0].name[:-len('.manifest.json')]
    original = source[0].parent / artifact_name
    assert json.loads(source[0].read_text())['verification']['ok'] is True
    for copy_root in (tmp_path / 'second' / 'sqlite', tmp_path / 'ctl' / 'localhost' / 'sqlite'):
        artifact = copy_root / artifact_name
        assert artifact.read_bytes() == original.read_bytes(), artifact
        assert (copy_root / source[0].name).exists()
    for task in ('Re-verify checksums in the second location', 'Re-verify checksums on the control node'):
        checked = result.result(task)['results']
        assert checked and all(r['checked'] == 1 and r['failures'] == [] for r in checked), checked
        assert all(r['results'][0]['checks']['engine_check'] == 'not run: checksum_only=true' for r in checked)
        assert all(r['results'][0]['checks']['checksum'] for r in checked)

    # A copy damaged on the control node (same size, one byte flipped) fails the re-verification there.
    fetched = tmp_path / 'ctl' / 'localhost' / 'sqlite' / artifact_name
    data = bytearray(fetched.read_bytes())
    data[len(data) // 2] ^= 0xFF
    fetched.write_bytes(bytes(data))
    book = tmp_path / 'verify-copy.yml'
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'verify copy', 'ignore_errors': True, 'opsready.operations.backup_verify': {
            'path': str(fetched.parent), 'checksum_only': True, 'record': False}}]}]))
    bad = run_playbook(str(book)).result('verify copy')
    assert bad['_event'] == 'runner_on_failed' and fetched.name in bad['msg']
    assert 'sha256' in bad['failures'][0]['error'].lower() or 'checksum' in bad['failures'][0]['error'].lower()


def test_deep_and_checksum_only_together_are_refused(tmp_path):
    book = tmp_path / 'both.yml'
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'both', 'ignore_errors': True, 'opsready.operations.backup_verify': {
            'path': str(tmp_path), 'checksum_only': True, 'deep': True}},
        {'name': 'checksum only, deep false', 'ignore_errors': True, 'opsready.operations.backup_verify': {
            'path': str(tmp_path), 'checksum_only': True, 'deep': False}}]}]))
    result = run_playbook(str(book))
    both = result.result('both')
    assert both['_event'] == 'runner_on_failed' and 'contradict' in both['msg']
    # deep=false is no contradiction: it fails only because the directory holds no backup
    alone = result.result('checksum only, deep false')
    assert alone['_event'] == 'runner_on_failed' and 'No backup manifest found' in alone['msg']
