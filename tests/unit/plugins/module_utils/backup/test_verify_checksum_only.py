"""backup_verify checksum_only (the role's copies): size and SHA-256 only, no engine check; a mismatch is
recorded against the artifact, a match never is (the engine check did not run, so it proves less)."""

from __future__ import annotations

import json
import sqlite3

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup, verify_path
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams


def backed_up(tmp_path):
    db = tmp_path / 'app.db'
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(500)])
    conn.commit()
    conn.close()
    dest = tmp_path / 'b'
    options = BackupOptions(kind='full', dest=str(dest), database=str(db))
    result = run_backup(get_engine('sqlite', ConnectionParams()), options, verify=False)
    return dest, result['manifest']['path']


def recorded(path: str):
    return json.loads(open(path + '.manifest.json').read()).get('verification')


def test_a_match_is_reported_but_never_recorded(tmp_path):
    dest, artifact = backed_up(tmp_path)
    outcome = verify_path(str(dest), checksum_only=True, record=True)
    assert outcome['failed'] == [] and outcome['checked'] == 1 and outcome['changed'] is False
    checks = outcome['results'][0]['checks']
    assert checks['checksum'] == 'ok' and checks['engine_check'] == 'not run: checksum_only=true'
    assert recorded(artifact) is None  # still "never verified": only the full check may say verified


def test_a_mismatch_is_recorded_as_failed(tmp_path):
    dest, artifact = backed_up(tmp_path)
    data = bytearray(open(artifact, 'rb').read())
    data[len(data) // 2] ^= 0x01
    open(artifact, 'wb').write(bytes(data))
    outcome = verify_path(str(dest), checksum_only=True, record=True)
    assert len(outcome['failed']) == 1 and 'checksum' in outcome['failed'][0]['error']
    assert outcome['changed'] is True and recorded(artifact)['ok'] is False
