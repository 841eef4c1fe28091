"""backup_info max_rpo_seconds on a real SQLite backup: within the RPO it reports, beyond it it fails
naming the database and its RPO, and still returns the report."""

from __future__ import annotations

import sqlite3
import time

from tests.harness.playbook import run_playbook, write_playbook


def test_max_rpo_seconds_fails_naming_late_databases(tmp_path):
    db = tmp_path / 'app.db'
    conn = sqlite3.connect(str(db))
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)')
    conn.execute("INSERT INTO orders (note) VALUES ('first')")
    conn.commit()
    conn.close()
    dest = tmp_path / 'backups'
    book = write_playbook(tmp_path, [
        {'name': 'backup', 'opsready.operations.db_backup': {'engine': 'sqlite', 'database': str(db),
                                                             'dest': str(dest)}},
        {'name': 'pause', 'ansible.builtin.pause': {'seconds': 2}},
        {'name': 'within', 'opsready.operations.backup_info': {'path': str(dest), 'max_rpo_seconds': 3600}},
        {'name': 'late', 'ignore_errors': True,
         'opsready.operations.backup_info': {'path': str(dest), 'max_rpo_seconds': 1}},
    ])
    started = time.time()
    run = run_playbook(book)
    assert run.rc == 0, run.stdout[-3000:]
    within = run.result('within')
    assert within['_event'] == 'runner_on_ok' and within['changed'] is False
    assert [s['database'] for s in within['sets']] == [str(db)]
    late = run.result('late')
    assert late['_event'] == 'runner_on_failed' and late['changed'] is False
    assert late['msg'].startswith('RPO above 1s: sqlite/%s ' % db), late['msg']
    rpo = float(late['msg'].split(' ')[4].rstrip('s.'))
    assert 2 <= rpo <= time.time() - started + 1, late['msg']
    assert late['msg'].endswith('Take a backup (or fix log shipping) now.')
    assert [s['database'] for s in late['sets']] == [str(db)]  # the report still comes with the failure
