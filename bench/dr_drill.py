"""Benchmark: a DR drill of a SQLite database next to the raw tools doing the same work by hand.

    .venv/bin/python bench/dr_drill.py [--mb 200] [--rounds 3] [--playbook]

A SQLite database of ~MB megabytes (orders with text payloads, two indexes) is backed up once with
db_backup's code (online backup API, zstd). Then, alternately, the same backup is drilled:

* drill code: what the dr_drill role's modules execute, without Ansible's start-up: db_restore into a scratch
  file (checksums, decompress, PRAGMA integrity_check, rename), drill_step integrity (PRAGMA integrity_check +
  foreign_key_check) and one smoke query, then db_restore state=absent;
* drill code as before issue 18: the same after a backup_verify pass (SHA-256 + restore-to-temp + PRAGMA
  integrity_check) that verified every artifact again before the restore verified it (the RTO before/after);
* raw: what an operator would type: ``sha256sum`` of the artifact, ``zstd -dc`` into a file,
  ``sqlite3 file 'PRAGMA integrity_check'``, the smoke query with ``sqlite3``, ``rm``.

With --playbook it also runs playbooks/dr_drill.yml once and prints the RTO the report measured (Ansible's
per-task overhead included). The three sides alternate in bench/common.compare (at least --rounds rounds, more
until the paired ratios' spread is under 10 % or --max-rounds; the load average printed with every run; the
clean-up after each run is not timed). Prints wall times and the ratio drill / raw. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Side, Target, compare, format_table  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup, verify_one  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (  # noqa: E402
    manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.drill import steps  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import (  # noqa: E402
    SQLiteChecks as SQLiteClient)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402

SMOKE = 'SELECT count(*) FROM orders WHERE status = \'paid\''


def make_db(path: Path, megabytes: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL, note TEXT NOT NULL)')
    rows = megabytes * 1024 * 1024 // 300
    batch = [(('paid', 'open', 'shipped')[i % 3], os.urandom(100).hex()) for i in range(50000)]
    for dummy in range(0, rows, len(batch)):
        conn.executemany('INSERT INTO orders (status, note) VALUES (?, ?)', batch)
    conn.execute('CREATE INDEX orders_status ON orders(status)')
    conn.execute('CREATE INDEX orders_note ON orders(note)')
    conn.commit()
    conn.close()
    print('database %s: %.0f MB, %d rows' % (path, path.stat().st_size / 1e6, rows))


def drill_code(src: Path, artifact_id: str, source: Path, scratch: Path, verify_pass: bool = False) -> None:
    """The drill's timed part: restore into ``scratch``, integrity, smoke (``drop_scratch`` cleans up)."""
    if verify_pass:  # the role before issue 18: backup_verify first, then the restore verified the checksums again
        entry = read_manifest(manifest_path_for(str(src / artifact_id)))
        outcome = verify_one(entry, record=False)
        assert outcome['ok'], outcome
    request = RestoreRequest(engine='sqlite', src=str(src), database=str(scratch), source_database=str(source),
                             artifact=artifact_id, replace=True)
    run_restore(request, ConnectionParams())
    client = SQLiteClient(ConnectionParams())
    assert steps.integrity(client, str(scratch))['ok']
    assert steps.smoke(client, str(scratch), [{'sql': SMOKE, 'expect': {'value_at_least': 1}}])['ok']


def drop_scratch(src: Path, scratch: Path) -> None:
    run_restore(RestoreRequest(engine='sqlite', src=str(src), database=str(scratch), state='absent'),
                ConnectionParams())


def raw(artifact: Path, scratch: Path) -> None:
    subprocess.run(['sha256sum', str(artifact)], check=True, capture_output=True)
    with open(scratch, 'wb') as out:
        subprocess.run(['zstd', '-dc', str(artifact)], check=True, stdout=out)
    check = subprocess.run(['sqlite3', str(scratch), 'PRAGMA integrity_check'], check=True, capture_output=True,
                           text=True)
    assert check.stdout.strip() == 'ok'
    subprocess.run(['sqlite3', str(scratch), SMOKE], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=200)
    parser.add_argument('--rounds', type=int, default=3, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=8)
    parser.add_argument('--playbook', action='store_true')
    args = parser.parse_args()
    for tool in ('zstd', 'sqlite3', 'sha256sum'):
        if not shutil.which(tool):
            sys.exit('%s is needed for the raw side' % tool)
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-drill-'))
    try:
        source, src, scratch = work / 'app.sqlite', work / 'backups', work / 'scratch.sqlite'
        make_db(source, args.mb)
        engine = get_engine('sqlite', ConnectionParams())
        manifest = run_backup(engine, BackupOptions(kind='full', dest=str(src), database=str(source)),
                              verify=False)['manifest']
        artifact = Path(manifest['path'])
        print('backup %s: %.0f MB' % (artifact.name, artifact.stat().st_size / 1e6))
        ours = Side(label='drill code (restore+check, one verification)',
                    command=lambda: drill_code(src, artifact.name, source, scratch),
                    after=lambda: drop_scratch(src, scratch))
        before = Side(label='drill code before (backup_verify pass first)',
                      command=lambda: drill_code(src, artifact.name, source, scratch, verify_pass=True),
                      after=lambda: drop_scratch(src, scratch))
        by_hand = Side(label='raw (sha256sum+zstd+sqlite3)', command=lambda: raw(artifact, scratch),
                       after=scratch.unlink)
        rows = compare('SQLite DR drill (%d MB)' % args.mb, ours, [by_hand, before], [Target(1.15), Target(1.0)],
                       runs=args.rounds, max_rounds=args.max_rounds,
                       notes=['the drill also checks foreign keys', 'RTO now / before issue 18'])
        print(format_table(rows))
        a, b, old = rows[0].ours['wall_s'], rows[0].raw['wall_s'], rows[1].raw['wall_s']
        print('%-44s %8s' % ('', 'median s'))
        print('%-44s %8.2f' % ('drill code (restore+check, one verification)', a))
        print('%-44s %8.2f' % ('drill code before (backup_verify pass first)', old))
        print('%-44s %8.2f' % ('raw (sha256sum+zstd+sqlite3)', b))
        print('RTO now / before: %.2fx; ratio drill / raw: %.2fx (the drill also checks foreign keys)'
              % (rows[1].ratio_wall, rows[0].ratio_wall))
        if args.playbook:
            from tests.harness.playbook import run_playbook
            result = run_playbook('playbooks/dr_drill.yml', extravars={
                'dr_drill_report_dir': str(work / 'reports'), 'dr_drill_scratch_dir': str(work / 'scratch'),
                'dr_drill_databases': [{'name': 'bench', 'engine': 'sqlite', 'database': str(source),
                                        'backup_dir': str(src), 'rpo_seconds': 86400,
                                        'smoke_queries': [{'sql': SMOKE, 'expect': {'value_at_least': 1}}]}]})
            rto = result.result('Write the drill report')['databases'][0]['rto_seconds']
            print('playbook RTO (Ansible per-task overhead included): %.2f s = %.2fx raw' % (rto, rto / b))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
