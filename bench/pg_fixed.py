"""Benchmark: the fixed cost of PostgreSQL db_backup kind=base and db_restore over the raw tools.

    .venv/bin/python bench/pg_fixed.py [--rounds 7] [--rows 20000] [--only base,restore] [--trace]
                                       [--baseline /tmp/old-checkout] [--mb 700]

On a tiny database (a fresh PostgreSQL 15 cluster from tests/harness/servers.py, one table of --rows short
rows) the data-dependent work is small, so what ours takes over the raw command is its fixed part: Python
start-up and imports, server round trips, catalog and manifest work. The load of a shared machine moves this
difference less than it moves the ratio of two multi-second runs.

Each round runs both sides of each row, alternately and in rotated order: ours is bench/ours.py as a child
process (what run_all.py runs), the raw side the command run_all.py runs:

* base: ``pg_basebackup -D DIR -Ft -X fetch --checkpoint=fast --compress=server-zstd:workers=2``;
* dump: ``pg_dump -Fc -Z0 | zstd -T2`` into a file; ours db_backup kind=full (custom format, zstd T2);
* restore: ``zstd -d`` of the same catalog artifact to a file, ``pg_restore --exit-on-error -j 2`` into a
  database created beforehand (not timed), ``psql -c ANALYZE``; ours restores into a new database.

Prints every run (wall seconds, ours - raw, load average) and the medians. Asserts nothing.

--mb N: instead of the tiny table, run_all.py's PostgreSQL data (``make_md5_table``, N MB of md5 text): the base
backup and restore rows of run_all.py at full size, with the baseline alternated in the same rounds.

--baseline DIR: a third side, DIR/bench/ours.py (another checkout, e.g. ``git archive <rev> | tar -x -C DIR``,
with its ``build/ansible_collections/opsready/operations`` link to DIR), run in the same rounds: before and after
a change, side by side under the same load.

--trace [N]: N more runs of each ours side with OPSREADY_BENCH_TRACE=1 (see bench/ours.py), the first under
``python -X importtime`` (which slows the imports down): the timeline of imports, child programs and session
queries, in seconds since this script started the process, and the ten slowest imports (cumulative). For the base
backup, the critical path of ours (and of the baseline, traced in the same minutes): the median seconds before
``pg_basebackup -D`` started and after it exited (the runs after the first).

CPU: every timed run's user + system seconds of its process tree (wait4; the server's work is not in it), medians
printed with the wall times: the shared machine's load moves wall time more than CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, clear  # noqa: E402

from tests.harness.servers import PostgresServer  # noqa: E402

OURS = str(REPO / 'bench' / 'ours.py')


def timed(argv, env, shell: bool = False) -> float:
    """Wall seconds of one run; its CPU seconds (user + system of the process and every descendant it waited
    for, from wait4: the server's own work is not in it) are left in ``timed.cpu``."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, shell=shell, stdout=subprocess.DEVNULL)  # nosec B602 # bench only
    dummy, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    timed.cpu = usage.ru_utime + usage.ru_stime   # type: ignore[attr-defined]
    return seconds


def trace(operation: str, opts: dict, env: dict, importtime: bool, script: str = OURS, quiet: bool = False) -> dict:
    """One traced run of ``script``; returns {event: seconds} (the first of each event's text)."""
    run_env = dict(env, OPSREADY_BENCH_TRACE='1', OPSREADY_BENCH_T0=repr(time.time()))
    argv = [PYTHON] + (['-X', 'importtime'] if importtime else []) + [script, operation, json.dumps(opts)]
    proc = subprocess.run(argv, env=run_env, capture_output=True, text=True, check=True)
    lines = proc.stderr.splitlines()
    events: dict = {}
    for line in lines:
        if not line.startswith('import time:') and line.strip():
            when, dummy, what = line.strip().partition('  ')
            events.setdefault(' '.join(what.split()[:3]), float(when))
    if not quiet:
        print('\n'.join(line for line in lines if not line.startswith('import time:')))
    imports = []
    for line in lines:
        if line.startswith('import time:') and 'cumulative' not in line:
            dummy, dummy, cumulative, name = [part.strip() for part in line.replace(':', '|', 1).split('|')]
            imports.append((int(cumulative), name))
    if imports and not quiet:
        print('slowest imports (cumulative ms):', ', '.join('%s %.0f' % (name, us / 1000.0)
                                                            for us, name in sorted(imports, reverse=True)[:10]))
    return events


def critical_path(events: dict, tool: str) -> tuple:
    """(seconds before ``tool`` (its first two words) started, seconds it ran, seconds after it exited) of one
    traced run."""
    start = events.get('start ' + tool)
    end = events.get('exit ' + tool)
    done = events.get('operation done')
    if start is None or end is None or done is None:
        return (float('nan'), float('nan'), float('nan'))
    return (start, end - start, done - end)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--rows', type=int, default=20000)
    parser.add_argument('--mb', type=int, default=0, help="run_all.py's md5 table of this size instead")
    parser.add_argument('--only', default='base,restore')
    parser.add_argument('--trace', type=int, nargs='?', const=1, default=0,
                        help='traced runs of each ours side (the first under -X importtime)')
    parser.add_argument('--tmp-root', default=None)
    parser.add_argument('--baseline', default=None, help='another checkout whose bench/ours.py is a third side')
    args = parser.parse_args()
    only = set(args.only.split(','))
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-fixed-', dir=args.tmp_root))
    try:
        with PostgresServer(tmp_root=args.tmp_root) as server:
            server.create_database('tiny')
            if args.mb:
                from db_backup import make_md5_table
                started = time.monotonic()
                size = make_md5_table(server, 'tiny', args.mb)
                print('data: %.0f MB table of md5 text in %.0f s' % (size / 1e6, time.monotonic() - started))
            else:
                server.sql('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) '
                           'FROM generate_series(1, %d) g; VACUUM ANALYZE t' % args.rows, database='tiny')
            conn = {'host': server.host, 'port': server.port, 'user': server.user}
            env = dict(os.environ, OPSREADY_BENCH_PASSWORD=server.password)
            catalog = work / 'catalog'
            subprocess.run([PYTHON, OURS, 'db_backup', json.dumps(dict(conn, engine='postgresql', database='tiny',
                                                                       dest=str(catalog)))],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            artifact = next(p for p in catalog.iterdir() if p.name.endswith('.zst'))
            scratch = work / 'scratch.dump'
            base_ours, base_raw = work / 'base-ours', work / 'base-raw'
            base_opts = dict(conn, engine='postgresql', kind='base', dest=str(base_ours))
            counter = [0]

            def name(prefix: str) -> str:
                counter[0] += 1
                return '%s_%d' % (prefix, counter[0])

            def ours_base(script: str = OURS) -> float:
                seconds = timed([PYTHON, script, 'db_backup', json.dumps(base_opts)], env)
                clear(base_ours)
                return seconds

            def raw_base() -> float:
                seconds = timed([server.bin('pg_basebackup'), '-D', str(base_raw), '-Ft', '-X', 'fetch',
                                 '--checkpoint=fast', '--compress=server-zstd:workers=2'], server.dsn_env())
                clear(base_raw)
                return seconds

            def restore_opts(target: str) -> dict:
                return dict(conn, engine='postgresql', src=str(catalog), database=target, source_database='tiny',
                            jobs=2, tmpdir=str(work))

            def ours_restore(script: str = OURS) -> float:
                target = name('ours')
                seconds = timed([PYTHON, script, 'db_restore', json.dumps(restore_opts(target))], env)
                server.drop_database(target)
                return seconds

            old = os.path.join(args.baseline, 'bench', 'ours.py') if args.baseline else None

            def raw_restore() -> float:
                target = name('raw')
                server.create_database(target)
                command = ('zstd -q -d -f -o {s} {a} && {r} --exit-on-error -j 2 -d {db} {s} && '
                           '{psql} -X -q -d {db} -c ANALYZE').format(s=scratch, a=artifact, r=server.bin('pg_restore'),
                                                                     db=target, psql=server.bin('psql'))
                seconds = timed(command, server.dsn_env(), shell=True)
                server.drop_database(target)
                clear(scratch)
                return seconds

            dump_ours, dump_raw = work / 'dump-ours', work / 'dump-raw.dump.zst'
            dump_opts = dict(conn, engine='postgresql', kind='full', database='tiny', dest=str(dump_ours))

            def ours_dump(script: str = OURS) -> float:
                seconds = timed([PYTHON, script, 'db_backup', json.dumps(dump_opts)], env)
                clear(dump_ours)
                return seconds

            def raw_dump() -> float:
                seconds = timed('%s -Fc -Z0 -d tiny | zstd -q -T2 -o %s' % (server.bin('pg_dump'), dump_raw),
                                server.dsn_env(), shell=True)
                clear(dump_raw)
                return seconds

            every = (('base', ours_base, raw_base), ('restore', ours_restore, raw_restore),
                     ('dump', ours_dump, raw_dump))
            rows = [(row, ours, raw) for row, ours, raw in every if row in only]
            results = {row: {'ours': [], 'raw': [], 'baseline': []} for row, dummy, dummy in rows}
            cpu = {row: {'ours': [], 'raw': [], 'baseline': []} for row, dummy, dummy in rows}
            for n in range(args.rounds):
                for row, ours, raw in rows:
                    sides = [('ours', ours), ('raw', raw)]
                    if old:
                        sides.append(('baseline', lambda run=ours: run(old)))
                    sides = sides[n % len(sides):] + sides[:n % len(sides)]   # rotated: caches favour no side
                    got = {}
                    for side, run in sides:
                        got[side] = run()
                        cpu[row][side].append(timed.cpu)   # type: ignore[attr-defined]
                    for side in got:
                        results[row][side].append(got[side])
                    extra = ('  baseline %.3f s (- raw %+.3f s)' % (got['baseline'], got['baseline'] - got['raw'])
                             if old else '')
                    print('round %d %-8s ours %.3f s  raw %.3f s  ours - raw %+.3f s%s  load %.2f'
                          % (n + 1, row, got['ours'], got['raw'], got['ours'] - got['raw'], extra,
                             os.getloadavg()[0]), flush=True)
            print()
            for row, dummy, dummy in rows:
                for side in ('ours', 'baseline') if old else ('ours',):
                    ours_s, raw_s = results[row][side], results[row]['raw']
                    diffs = [a - b for a, b in zip(ours_s, raw_s)]
                    ratios = [a / b for a, b in zip(ours_s, raw_s)]
                    print('%-8s %-8s median %.3f s, raw %.3f s; %s - raw: median %+.3f s (min %+.3f, max %+.3f); '
                          'paired ratio median %.3fx (min %.3f, max %.3f) over %d rounds; load now %.2f'
                          % (row, side, statistics.median(ours_s), statistics.median(raw_s), side,
                             statistics.median(diffs), min(diffs), max(diffs), statistics.median(ratios),
                             min(ratios), max(ratios), len(diffs), os.getloadavg()[0]))
                print('%-8s CPU seconds (the process tree, not the server), median: %s'
                      % (row, ', '.join('%s %.3f' % (side, statistics.median(cpu[row][side]))
                                        for side in ('ours', 'baseline', 'raw') if cpu[row][side])))
            paths: dict = {'ours': [], 'baseline': [], 'dump ours': [], 'dump baseline': []}
            for n in range(args.trace):
                if 'base' in only:
                    print('\ntrace %d: db_backup kind=base (load %.2f)' % (n + 1, os.getloadavg()[0]))
                    paths['ours'].append(critical_path(trace('db_backup', base_opts, env, n == 0), 'pg_basebackup -D'))
                    clear(base_ours)
                    if old:   # the baseline traced in the same minutes, its timeline not printed
                        paths['baseline'].append(critical_path(trace('db_backup', base_opts, env, False, old, True),
                                                               'pg_basebackup -D'))
                        clear(base_ours)
                if 'dump' in only:
                    print('\ntrace %d: db_backup kind=full (load %.2f)' % (n + 1, os.getloadavg()[0]))
                    paths['dump ours'].append(critical_path(trace('db_backup', dump_opts, env, n == 0), 'pg_dump -F'))
                    clear(dump_ours)
                    if old:
                        paths['dump baseline'].append(critical_path(
                            trace('db_backup', dump_opts, env, False, old, True), 'pg_dump -F'))
                        clear(dump_ours)
                if 'restore' in only:
                    print('\ntrace %d: db_restore (load %.2f)' % (n + 1, os.getloadavg()[0]))
                    target = name('trace')
                    trace('db_restore', restore_opts(target), env, n == 0)
                    server.drop_database(target)
            for side, found in paths.items():
                if found:   # the untraced run 1 (-X importtime) is left out: it slows the imports down
                    kept = found[1:] or found
                    print('%-14s critical path over %d traced runs, median: %.3f s before the tool started, it ran '
                          '%.3f s, %.3f s after it exited' % (side if ' ' in side else 'base ' + side, len(kept),
                                                              statistics.median(p[0] for p in kept),
                                                              statistics.median(p[1] for p in kept),
                                                              statistics.median(p[2] for p in kept)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
