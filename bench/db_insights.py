"""db_insights on a busy PostgreSQL: 200 client connections open and 10,000 distinct statements in
pg_stat_statements. Runs the module the way Ansible does (its own Python process, arguments from a file)
and prints the wall time and the peak RSS of the module's process tree (Python plus the psql it starts), next to
the floor, alternated (bench/common.compare: load per run, rounds until the ratio's spread is under 10 %).
Targets (issue 19): under 1 s and under 60 MB. Prints; asserts nothing.

Next to it, alternated run by run, the floor every module pays on this host: a Python that imports
AnsibleModule and exits; and the time of the insights work itself inside one process (``core.run``). On a
shared, loaded machine the wall times scale with the load; the load average is printed with them.

    .venv/bin/python bench/db_insights.py [--runs 5] [--connections 200] [--statements 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from common import Side, Target, compare, format_table  # noqa: E402

from tests.harness.servers import PostgresServer  # noqa: E402

MODULE = REPO / 'plugins' / 'modules' / 'db_insights.py'
COLUMNS = 100


def fill_statements(pg: PostgresServer, statements: int) -> None:
    """``statements`` distinct statements: SELECT of each column of tables of 100 columns (constants would be
    normalised into one statement, names are not)."""
    tables = (statements + COLUMNS - 1) // COLUMNS
    ddl = []
    for t in range(tables):
        ddl.append('CREATE TABLE b%d (%s);' % (t, ', '.join('c%d int' % c for c in range(COLUMNS))))
    pg.sql('\n'.join(ddl))
    pg.sql('SELECT pg_stat_statements_reset()')
    selects = ['SELECT c%d FROM b%d;' % (n % COLUMNS, n // COLUMNS) for n in range(statements)]
    pg.sql('\n'.join(selects), timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--connections', type=int, default=200)
    parser.add_argument('--statements', type=int, default=10000)
    args = parser.parse_args()
    conf = {'shared_preload_libraries': 'pg_stat_statements', 'max_connections': args.connections + 30,
            'pg_stat_statements.max': args.statements + 2000, 'autovacuum': False}
    with PostgresServer(extra_conf=conf) as pg:
        pg.sql('CREATE EXTENSION pg_stat_statements')
        started = time.monotonic()
        fill_statements(pg, args.statements)
        fill = time.monotonic() - started
        import pyodbc
        sessions = [pyodbc.connect(pg.odbc_connection_string(), autocommit=True) for _i in range(args.connections)]
        work = Path(tempfile.mkdtemp(prefix='opsready-bench-insights-'))
        params = {'engine': 'postgresql', 'login_host': pg.host, 'login_port': pg.port, 'login_user': pg.user,
                  'login_password': pg.password, 'top': 10, 'history_path': str(work / 'history.jsonl'),
                  'textfile_path': str(work / 'db.prom'), '_ansible_check_mode': False}
        argsfile = work / 'args.json'
        argsfile.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
        env = dict(os.environ, PYTHONPATH=str(REPO / 'build'), ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
        python = str(REPO / '.venv' / 'bin' / 'python')
        out = work / 'out.json'
        # the module next to the floor every module pays (Python importing AnsibleModule), alternated, rounds added
        # until the paired ratio's spread is under 10 % (bench/common.compare: load printed per run)
        module = Side('db_insights module', '%s %s %s > %s' % (python, MODULE, argsfile, out), env=env)
        floor = Side('python -c "import AnsibleModule"',
                     [python, '-c', 'from ansible.module_utils.basic import AnsibleModule'], env=env)
        rows = compare('db_insights (%d connections, %d statements)' % (args.connections, args.statements), module,
                       [floor], [Target(10.0)], runs=args.runs)
        walls, trees = [x.wall for x in module.samples], [x.rss_mb or 0.0 for x in module.samples]
        floors = [x.wall for x in floor.samples]
        load = rows[0].load or [0.0]
        sys.path.insert(0, str(REPO / 'build'))
        from ansible_collections.opsready.operations.plugins.module_utils.engines import registry
        from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
        from ansible_collections.opsready.operations.plugins.module_utils.insights import core, verdicts
        collector = registry.get_insights('postgresql', ConnectionParams(host=pg.host, port=pg.port, user=pg.user,
                                                                         password=pg.password))
        inside = []
        for _run in range(args.runs):
            begin = time.monotonic()
            core.run(collector, core.Options(), verdicts.parse({}), 'bench')
            inside.append(time.monotonic() - begin)
        result = json.loads(out.read_text())
        if result.get('failed'):
            sys.exit('db_insights failed: %s' % result.get('msg'))
        snap = result['insights']
        for session in sessions:
            session.close()
    print(format_table(rows))
    wall, tree = statistics.median(walls), max(trees)
    print('db_insights, PostgreSQL 15: %d client connections, %d statements tracked (filled in %.1f s)'
          % (snap['connections']['used'], snap['statements']['tracked'], fill))
    print('  wall  median %.3f s  (runs: %s)   target < 1 s: %s'
          % (wall, ', '.join('%.3f' % w for w in walls), 'met' if wall < 1.0 else 'MISSED'))
    print('  peak RSS of the module tree %.1f MB   target < 60 MB: %s' % (tree, 'met' if tree < 60 else 'MISSED'))
    print('  floor (Python importing AnsibleModule) median %.3f s; insights work in-process (two psql round trips '
          'and the snapshot) median %.3f s' % (statistics.median(floors), statistics.median(inside)))
    print('  load average during the runs: %.1f .. %.1f on %d CPUs' % (min(load), max(load), os.cpu_count() or 0))
    print('  top statement by total time: %s' % snap['statements']['by_total_time'][0]['query'][:80])


if __name__ == '__main__':
    main()
