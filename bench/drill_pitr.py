"""Benchmark: a PostgreSQL point-in-time DR drill next to the raw steps an operator would type.

    .venv/bin/python bench/drill_pitr.py            # OPSREADY_BENCH_PITR_MB=16 by default
    OPSREADY_BENCH_PITR_MB=1024 .venv/bin/python bench/drill_pitr.py --rounds 3

A throw-away PostgreSQL 15 (tests/harness) archives its WAL with the collection's archive_command helper
(gzip) into a catalog. ~MB megabytes of rows go into a table before a base backup (db_backup's code), then
~MB megabytes more (WAL) after it, and the last segment is switched and archived. Then, alternately:

* drill: ``playbooks/dr_drill.yml`` with ``pitr: true`` (the RTO its report measures: db_restore's checksums,
  base backup extracted, WAL staged and replayed in a scratch cluster on a free port, pg_amcheck
  --heapallindexed, one smoke query; Ansible's per-task overhead included; clean-up is outside the RTO);
* drill code: the same modules' code without Ansible (run_restore with datadir, drill steps integrity + smoke);
* raw: ``zstd|gzip -dc base | tar -x``, ``gzip -dc`` of every WAL segment into a directory, recovery.signal and
  restore_command by hand, ``pg_ctl start``, poll ``pg_is_in_recovery()`` until promoted, ``pg_amcheck
  --heapallindexed``, the smoke query with ``psql`` (the same stop line as the drill's RTO).

The three sides alternate in bench/common.compare (at least --rounds rounds, more until the paired ratios'
spread is under 10 % or --max-rounds; the load average printed with every run). Each side's figure is the
time it measures itself (bench/reported.py): the report's RTO for the playbook, start to smoke query for the
others; clean-up is outside. Prints the medians and the ratios drill / raw. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Side, Target, compare, format_table, paired_ratios, relative_spread  # noqa: E402
from reported import reported  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.drill import steps  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (  # noqa: E402
    get_drill_client, get_engine)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402
from tests.harness.servers import PostgresServer  # noqa: E402

HELPER = REPO / 'plugins' / 'module_utils' / 'engines' / 'postgresql' / 'wal_archive.py'
SMOKE = 'SELECT count(*) AS n FROM payload'
FILL = "INSERT INTO payload (note) SELECT repeat(md5(random()::text), 8) FROM generate_series(1, %d)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def fill(server: PostgresServer, megabytes: int) -> None:
    rows = megabytes * 1024 * 1024 // 300
    for start in range(0, rows, 50000):
        server.sql(FILL % min(50000, rows - start), database='app')


def as_postgres(argv: list) -> list:
    return ['runuser', '-u', 'postgres', '--'] + argv if os.geteuid() == 0 else argv


def drill_playbook(work: Path, server: PostgresServer, dest: Path) -> float:
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(work / 'reports'), 'dr_drill_scratch_dir': str(work / 'scratch'),
        'bench_password': server.password,
        'dr_drill_databases': [{'name': 'bench', 'engine': 'postgresql', 'pitr': True, 'database': 'app',
                                'backup_dir': str(dest), 'login_host': server.host, 'login_port': server.port,
                                'login_user': server.user, 'password_var': 'bench_password',
                                'rpo_seconds': 86400, 'smoke_queries': [{'sql': SMOKE,
                                                                         'expect': {'value_at_least': 1}}]}]})
    report = result.result('Write the drill report')
    entry = json.loads(Path(report['paths']['json']).read_text())['databases'][0]
    if not entry['passed']:
        raise SystemExit('drill failed: %s' % entry['reasons'])
    return float(entry['rto_seconds'])


def drill_code(work: Path, server: PostgresServer, dest: Path) -> float:
    datadir = work / 'scratch' / 'code'
    conn = ConnectionParams(host='127.0.0.1', user=server.user, password=server.password)
    started = time.monotonic()
    result = run_restore(RestoreRequest(engine='postgresql', src=str(dest), datadir=str(datadir)), conn)
    scratch = ConnectionParams(host='127.0.0.1', port=result['target']['port'], user=server.user,
                               password=server.password)
    client = get_drill_client('postgresql', scratch)
    check = steps.integrity(client, 'app')
    smoke = steps.smoke(client, 'app', [{'sql': SMOKE, 'expect': {'value_at_least': 1}}])
    elapsed = time.monotonic() - started
    run_restore(RestoreRequest(engine='postgresql', src=str(dest), datadir=str(datadir), state='absent'), conn)
    if not (check['ok'] and smoke['ok']):
        raise SystemExit('drill code failed: %s %s' % (check, smoke))
    return elapsed


def raw(work: Path, server: PostgresServer, dest: Path) -> float:
    manifests = [json.loads(p.read_text()) for p in dest.glob('*.manifest.json')]
    base = max((m for m in manifests if m['kind'] == 'base'), key=lambda m: m['finished'])
    wal = [m for m in manifests if m['kind'] == 'wal' and m['position']['start'] >= base['position']['log_start']]
    top = work / 'scratch' / 'raw'
    datadir, waldir, rundir = top / 'data', top / 'wal', top / 'run'
    port = free_port()
    started = time.monotonic()
    for path in (top, datadir, waldir, rundir):
        path.mkdir(mode=0o700)
    unpack = {'zstd': ['zstd', '-q', '-dc'], 'gzip': ['gzip', '-dc'], 'none': ['cat']}[base['compression']]
    source = subprocess.Popen(unpack + [str(dest / base['artifact'])], stdout=subprocess.PIPE)
    subprocess.run(['tar', '-x', '-C', str(datadir)], stdin=source.stdout, check=True)
    source.stdout.close()
    if source.wait() != 0:
        raise SystemExit('%s failed on the base backup' % unpack[0])
    for m in wal:
        with open(waldir / m['position']['wal_file'], 'wb') as out:
            subprocess.run(['gzip', '-dc', str(dest / m['artifact'])], check=True, stdout=out)
    with open(datadir / 'postgresql.auto.conf', 'a') as conf:
        conf.write("restore_command = 'cp %s/%%f \"%%p\"'\nrecovery_target_action = 'promote'\narchive_mode = 'off'\n"
                   % waldir)
    (datadir / 'recovery.signal').touch()
    (datadir / 'postmaster.pid').unlink(missing_ok=True)
    if os.geteuid() == 0:
        subprocess.run(['chown', '-R', 'postgres:', str(top)], check=True)
    options = '-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s' % (port, rundir)
    subprocess.run(as_postgres([server.bin('pg_ctl'), '-D', str(datadir), '-w', '-l', str(rundir / 'log'), '-o',
                                options, 'start']), check=True, capture_output=True)
    env = dict(os.environ, PGHOST='127.0.0.1', PGPORT=str(port), PGUSER=server.user, PGPASSWORD=server.password,
               PGDATABASE='app')
    while True:
        out = subprocess.run([server.bin('psql'), '-X', '-A', '-t', '-c', 'SELECT pg_is_in_recovery()'], env=env,
                             capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip() == 'f':
            break
        time.sleep(0.2)
    subprocess.run([server.bin('pg_amcheck'), '--install-missing', '--heapallindexed', 'app'], env=env, check=True,
                   capture_output=True)
    subprocess.run([server.bin('psql'), '-X', '-A', '-t', '-c', SMOKE], env=env, check=True, capture_output=True)
    elapsed = time.monotonic() - started
    subprocess.run(as_postgres([server.bin('pg_ctl'), '-D', str(datadir), '-w', '-m', 'fast', 'stop']), check=True,
                   capture_output=True)
    shutil.rmtree(top)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=1, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=3)
    args = parser.parse_args()
    megabytes = int(os.environ.get('OPSREADY_BENCH_PITR_MB', '16'))
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-pitr-'))
    os.chmod(work, 0o711)
    dest = work / 'catalog'
    dest.mkdir()
    os.chmod(dest, 0o770)
    helper = work / 'pg_wal_archive.py'
    shutil.copy(HELPER, helper)
    os.chmod(helper, 0o644)
    (work / 'scratch').mkdir(mode=0o711)
    os.chmod(work / 'scratch', 0o711)
    if os.geteuid() == 0:
        os.chown(dest, -1, int(subprocess.check_output(['id', '-g', 'postgres']).strip()))
    server = PostgresServer(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip' % (helper, dest))
    try:
        server.start()
        server.create_database('app')
        server.sql('CREATE TABLE payload (id bigserial PRIMARY KEY, note text NOT NULL)', database='app')
        fill(server, megabytes)
        conn = ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)
        run_backup(get_engine('postgresql', conn), BackupOptions(kind='base', dest=str(dest)), verify=False)
        fill(server, megabytes)
        run_backup(get_engine('postgresql', conn), BackupOptions(kind='wal', dest=str(dest)), verify=False)
        segments = len(list(dest.glob('*-wal-*.manifest.json')))
        print('data %d MB before the base backup + %d MB after it (%d WAL segments archived)'
              % (megabytes, megabytes, segments))
        playbook = Side(label='drill RTO (playbook, report)', command=lambda: None)
        code = Side(label='drill code (db_restore datadir + checks)', command=lambda: None)
        by_hand = Side(label='raw (tar + gunzip WAL + pg_ctl + checks)', command=lambda: None)
        for side, run in ((playbook, drill_playbook), (code, drill_code), (by_hand, raw)):
            times = reported(side)
            side.command = (lambda run=run, times=times: times.append(run(work, server, dest)))
        rows = compare('PostgreSQL PITR drill (%d MB + %d MB)' % (megabytes, megabytes), playbook, [by_hand, code],
                       [Target(1.20), Target(1.50)], runs=args.rounds, max_rounds=args.max_rounds,
                       notes=['report RTO vs the raw steps', 'Ansible overhead: playbook vs drill code'])
        print(format_table(rows))
        a, b, c = rows[0].ours['wall_s'], rows[1].raw['wall_s'], rows[0].raw['wall_s']
        # code vs raw from the same rounds (each round ran all three back to back)
        spread = relative_spread(paired_ratios(rows[1].raw_walls, rows[0].raw_walls))
        print('drill code / raw: %.2fx, paired spread %s over %d rounds'
              % (b / c, '-' if spread is None else '%.0f %%' % (spread * 100), rows[0].runs))
        print('%-58s %8s' % ('', 'median s'))
        print('%-58s %8.2f' % ('drill RTO (playbook, report; Ansible overhead included)', a))
        print('%-58s %8.2f' % ('drill code (db_restore datadir + pg_amcheck + smoke)', b))
        print('%-58s %8.2f' % ('raw (tar + gunzip WAL + pg_ctl replay + pg_amcheck + psql)', c))
        print('ratio playbook / raw: %.2fx; drill code / raw: %.2fx' % (a / c, b / c))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
