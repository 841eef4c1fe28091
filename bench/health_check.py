"""Wall time of health_check (default options) next to ansible.builtin.setup on the same host, and a
50-host local-connection fleet at forks 10. Prints ratios; asserts nothing.

    .venv/bin/python bench/health_check.py [--runs 3] [--fleet 50] [--forks 10]
    .venv/bin/python bench/health_check.py --playbook --fleet 500 --forks 50 [--runs 3] [--max-rounds 8]

``--playbook`` (issue 22, fleet at scale): the whole ``playbooks/health.yml`` (health_check, incidents,
capacity plan, fleet table and JSON report) over ``--fleet`` local-connection hosts next to
``ansible all -m setup`` on the same inventory, both at ``--forks``, alternated by bench/common.compare
(rounds added until the paired ratio's spread is under 10 %), with the control node's peak RSS (the
ansible process tree: with a local connection the modules run on the control node too, on both sides)
and the time the fleet view took to render (the three fleet.yml tasks, from the opsready json_log
callback's duration_ms). Targets: ours no slower than setup; the fleet report under 5 s at 500 hosts.
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
from typing import List, Tuple

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / '.venv' / 'bin'


def timed(argv, env):
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode not in (0, 2):
        sys.exit('failed: %s\n%s' % (' '.join(argv), proc.stdout[-2000:] + proc.stderr[-2000:]))
    return elapsed


def inventory(path: Path, hosts: int) -> str:
    lines = ['all:', '  hosts:']
    for i in range(hosts):
        lines += ['    h%02d:' % i, '      ansible_connection: local',
                  '      ansible_python_interpreter: %s' % (VENV / 'python')]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


FLEET_TASKS = ('Collect the fleet view', 'Print the fleet table', 'Write the fleet report')


def _when(stamp: str) -> float:
    import datetime
    return datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S.%fZ').timestamp()


def fleet_render_seconds(log_path: Path) -> float:
    """Seconds the fleet view took to render, from a json_log file: from the last result logged before the
    fleet view's first task (the hosts' last per-host task, or the include that entered the fleet view) to
    the fleet report's result, so the controller's scheduling of the fleet.yml tasks counts too."""
    entered = None
    done = None
    started = False
    with open(log_path) as handle:
        for line in handle:
            record = json.loads(line)
            task = (record.get('context') or {}).get('task') or ''
            when = _when(record['timestamp'])
            if task.endswith(FLEET_TASKS[0]):
                started = True
            elif not started:
                entered = max(entered or 0.0, when)
            elif task.endswith(FLEET_TASKS[-1]):
                done = when
    if entered is None or done is None:
        raise RuntimeError('no fleet view in %s: did health.yml run the fleet tasks?' % log_path)
    return done - entered


def playbook_sides(work: Path, hosts: int, forks: int) -> Tuple[object, object, List[float]]:
    """(ours, raw, render_times): health.yml vs ``ansible -m setup`` over ``hosts`` local hosts.

    Every run of ours starts from an empty report/incident directory (the same work each round) and
    appends the fleet view's render time to ``render_times``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import Side
    inv = inventory(work / ('fleet-%d.yml' % hosts), hosts)
    state = work / 'health-state'
    log_path = work / 'tasks.jsonl'
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), PATH='%s:%s' % (VENV, os.environ['PATH']),
               ANSIBLE_CALLBACKS_ENABLED='opsready.operations.json_log', OPSREADY_JSON_LOG_PATH=str(log_path))
    render_times: List[float] = []

    def before() -> None:
        shutil.rmtree(state, ignore_errors=True)
        if log_path.exists():
            log_path.unlink()

    def after() -> None:
        render_times.append(fleet_render_seconds(log_path))

    ours = Side(label='health.yml on %d hosts, forks %d' % (hosts, forks), cwd=str(REPO), env=env,
                command=[str(VENV / 'ansible-playbook'), '-i', inv, '-f', str(forks), str(REPO / 'playbooks' /
                         'health.yml'), '-e', 'health_state_dir=%s' % state, '-e', 'health_fail_on=never'],
                before=before, after=after)
    raw = Side(label='ansible -m setup on %d hosts, forks %d' % (hosts, forks), cwd=str(REPO), env=env,
               command=[str(VENV / 'ansible'), 'all', '-i', inv, '-f', str(forks), '-m', 'ansible.builtin.setup'])
    return ours, raw, render_times


def playbook_main(args) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import Target, compare, format_table
    with tempfile.TemporaryDirectory(prefix='opsready-bench-fleet-', dir=args.tmp_root) as tmp:
        ours, raw, renders = playbook_sides(Path(tmp), args.fleet, args.forks)
        rows = compare('health.yml fleet (%d local hosts)' % args.fleet, ours, [raw], [Target(1.0)],
                       runs=args.runs, max_rounds=args.max_rounds)
    print(format_table(rows))
    print('fleet report rendered in %s s (median %.2f s; target < 5 s at 500 hosts)'
          % (', '.join('%.2f' % r for r in renders), statistics.median(renders) if renders else float('nan')))
    print('control node peak RSS (process tree, MB): ours %.0f (ansible-playbook itself %.0f), setup %.0f (%.0f)' % (
        rows[0].ours['peak_rss_mb'], rows[0].ours['own_peak_rss_mb'], rows[0].raw['peak_rss_mb'],
        rows[0].raw['own_peak_rss_mb']))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--fleet', type=int, default=50)
    parser.add_argument('--forks', type=int, default=10)
    parser.add_argument('--playbook', action='store_true', help='health.yml vs setup (issue 22 fleet at scale)')
    parser.add_argument('--max-rounds', type=int, default=8)
    parser.add_argument('--tmp-root', default='/var/tmp')
    args = parser.parse_args()
    if args.playbook:
        playbook_main(args)
        return
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), PATH='%s:%s' % (VENV, os.environ['PATH']))
    local = str(REPO / 'inventories' / 'local')
    adhoc = [str(VENV / 'ansible'), 'localhost', '-i', local, '-m']
    cases = {
        'ansible.builtin.setup': adhoc + ['ansible.builtin.setup'],
        'health_check (defaults)': adhoc + ['opsready.operations.health_check', '-a', 'fail_on=never'],
        'ansible.builtin.ping (floor)': adhoc + ['ansible.builtin.ping'],
    }
    print('single host, median of %d runs (each a full ansible process):' % args.runs)
    medians = {}
    for name, argv in cases.items():
        medians[name] = statistics.median(timed(argv, env) for dummy in range(args.runs))
        print('  %-30s %6.2fs' % (name, medians[name]))
    floor = medians['ansible.builtin.ping (floor)']
    hc, setup = medians['health_check (defaults)'], medians['ansible.builtin.setup']
    print('  ratio health_check / setup: %.2f   (module time only, minus ping floor: %.2f)'
          % (hc / setup, max(hc - floor, 0.01) / max(setup - floor, 0.01)))
    with tempfile.TemporaryDirectory() as tmp:
        inv = inventory(Path(tmp) / 'fleet.yml', args.fleet)
        fleet = {
            'setup': [str(VENV / 'ansible'), 'all', '-i', inv, '-f', str(args.forks), '-m', 'ansible.builtin.setup'],
            'health_check': [str(VENV / 'ansible'), 'all', '-i', inv, '-f', str(args.forks), '-m',
                             'opsready.operations.health_check', '-a', 'fail_on=never'],
        }
        print('fleet of %d local hosts, forks %d:' % (args.fleet, args.forks))
        times = {name: timed(argv, env) for name, argv in fleet.items()}
        for name, value in times.items():
            print('  %-30s %6.2fs' % (name, value))
        print('  ratio health_check / setup: %.2f' % (times['health_check'] / times['setup']))


if __name__ == '__main__':
    main()
