"""Wall time of health_check (default options) next to ansible.builtin.setup on the same host, and a
50-host local-connection fleet at forks 10. Prints ratios; asserts nothing.

    .venv/bin/python bench/health_check.py [--runs 3] [--fleet 50] [--forks 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--fleet', type=int, default=50)
    parser.add_argument('--forks', type=int, default=10)
    args = parser.parse_args()
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
