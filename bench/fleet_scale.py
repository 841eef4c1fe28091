"""Fleet at scale (issue 22): ``playbooks/health.yml`` over N local-connection inventory hosts next to
``ansible all -m setup`` on the same inventory, both at the same forks, alternated.

    .venv/bin/python bench/fleet_scale.py --hosts 50            # quick run (iterations)
    .venv/bin/python bench/fleet_scale.py --hosts 500 --forks 50  # the issue's figure (~15 min here)
    .venv/bin/python bench/fleet_scale.py --hosts 50 --only-ours --profile /tmp/fleet.prof

The inventory (``h000`` .. ``hNNN``, ``ansible_connection=local``, the venv's Python, a per-host
``health_history_path`` under the temp dir when ``--history`` is given so hosts never share a file) is
generated in a temporary directory; every run of ours starts from an empty report/incident directory.

Printed per run: wall, peak RSS of the process tree (psutil, sampled every 20 ms: the controller and its
forks; with a local connection the modules run on the control node too, on both sides) and the load
average. Then: the paired ratio (bench/common.compare adds rounds until its spread is under 10 % or
``--max-rounds``), the time the fleet view took to render (from the json_log callback: the last host
entering the fleet view to the fleet report written), and where the time of ours went: the span of
each task over all hosts (first start to last result) and how many host results it produced.

Targets: ours no slower than setup; the fleet report rendered in under 5 s at 500 hosts.
``--profile FILE`` runs ours once under cProfile (the controller process; the forked workers are not
profiled) and prints the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Side, Target, compare, format_table, load_average, measure  # noqa: E402
from health_check import fleet_render_seconds  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / '.venv' / 'bin'


def write_inventory(path: Path, hosts: int, history_dir: Optional[Path] = None) -> Path:
    """A YAML inventory of ``hosts`` local-connection hosts; with ``history_dir`` each host gets its own
    history file (what a real fleet has: one per machine)."""
    width = max(3, len(str(hosts - 1)))
    lines = ['all:', '  hosts:']
    for i in range(hosts):
        name = 'h%0*d' % (width, i)
        lines += ['    %s:' % name, '      ansible_connection: local',
                  '      ansible_python_interpreter: %s' % (VENV / 'python')]
        if history_dir is not None:
            lines.append('      health_history_path: %s' % (history_dir / (name + '.jsonl')))
    path.write_text('\n'.join(lines) + '\n')
    return path


def _when(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp()


def task_spans(log_path: Path) -> List[Tuple[str, float, int, Dict[str, int]]]:
    """[(task, seconds, results, {status: count})] in playbook order: seconds from the task's first
    result minus its first duration to its last result (the span the controller spent on it)."""
    first: Dict[str, float] = {}
    last: Dict[str, float] = {}
    counts: Dict[str, collections.Counter] = collections.OrderedDict()
    with open(log_path) as handle:
        for line in handle:
            record = json.loads(line)
            context = record.get('context') or {}
            task = context.get('task') or '?'
            end = _when(record['timestamp'])
            start = end - (context.get('duration_ms') or 0) / 1000.0
            first[task] = min(first.get(task, start), start)
            last[task] = max(last.get(task, end), end)
            counts.setdefault(task, collections.Counter())[context.get('status') or '?'] += 1
    return [(task, last[task] - first[task], sum(c.values()), dict(c)) for task, c in counts.items()]


def children_cpu() -> float:
    """CPU seconds (user + system) of every reaped descendant of this process so far: a side's CPU is the
    difference around its run (ansible reaps its forks, the benchmark reaps ansible). Less sensitive to
    the other jobs on this VM than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_hooks(side: Side, store: List[float]) -> None:
    """Record the CPU seconds of every run of ``side`` in ``store`` (wrapping its before/after hooks)."""
    inner_before, inner_after = side.before, side.after
    mark = [0.0]

    def before() -> None:
        if inner_before:
            inner_before()
        mark[0] = children_cpu()

    def after() -> None:
        store.append(children_cpu() - mark[0])
        if inner_after:
            inner_after()

    side.before, side.after = before, after


def sides(work: Path, hosts: int, forks: int, history: bool) -> Tuple[Side, Side, List[float], List[list]]:
    inv = write_inventory(work / ('fleet-%d.yml' % hosts), hosts, work / 'history' if history else None)
    state = work / 'health-state'
    log_path = work / 'tasks.jsonl'
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), PATH='%s:%s' % (VENV, os.environ['PATH']),
               ANSIBLE_CALLBACKS_ENABLED='opsready.operations.json_log', OPSREADY_JSON_LOG_PATH=str(log_path))
    renders: List[float] = []
    spans: List[list] = []

    def before() -> None:
        shutil.rmtree(state, ignore_errors=True)
        if history:
            (work / 'history').mkdir(exist_ok=True)
        if log_path.exists():
            log_path.unlink()

    def after() -> None:
        renders.append(fleet_render_seconds(log_path))
        spans.append(task_spans(log_path))

    ours = Side(label='health.yml, %d hosts, forks %d' % (hosts, forks), cwd=str(REPO), env=env,
                command=[str(VENV / 'ansible-playbook'), '-i', str(inv), '-f', str(forks),
                         str(REPO / 'playbooks' / 'health.yml'), '-e', 'health_state_dir=%s' % state,
                         '-e', 'health_fail_on=never'],
                before=before, after=after)
    # the json_log callback on both sides: the same per-result cost (one line appended per host result)
    raw = Side(label='ansible -m setup, %d hosts, forks %d' % (hosts, forks), cwd=str(REPO), env=env,
               command=[str(VENV / 'ansible'), 'all', '-i', str(inv), '-f', str(forks), '-m', 'ansible.builtin.setup'])
    return ours, raw, renders, spans


def print_spans(spans: list) -> None:
    print('where the time of ours went (last run; span of each task over all hosts):')
    for task, seconds, results, statuses in spans:
        shown = ' '.join('%s=%d' % kv for kv in sorted(statuses.items()))
        print('  %7.2f s  %4d results  %-60s %s' % (seconds, results, task[-60:], shown))


def profile(ours: Side, out: str, top: int) -> None:
    command = [str(VENV / 'python'), '-m', 'cProfile', '-o', out] + list(ours.command)
    if ours.before:
        ours.before()
    wall, rss, own = measure(command, env=ours.env, cwd=ours.cwd)
    if ours.after:
        ours.after()
    print('profiled run: %.2f s, %.0f MB tree RSS (load %.2f)' % (wall, rss / 1e6, load_average()))
    stats = pstats.Stats(out)
    stats.sort_stats('cumulative').print_stats(top)
    stats.sort_stats('tottime').print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--hosts', type=int, default=50)
    parser.add_argument('--forks', type=int, default=50)
    parser.add_argument('--runs', type=int, default=1, help='rounds at least (each: ours and setup once)')
    parser.add_argument('--max-rounds', type=int, default=3)
    parser.add_argument('--history', action='store_true', help='per-host history files (capacity plan runs)')
    parser.add_argument('--only-ours', action='store_true', help='run ours only (no setup side)')
    parser.add_argument('--profile', metavar='FILE', help='cProfile the controller of one run of ours')
    parser.add_argument('--top', type=int, default=30)
    parser.add_argument('--tmp-root', default='/var/tmp')
    args = parser.parse_args()
    print('load average %s, %d CPUs' % (', '.join('%.2f' % x for x in os.getloadavg()), os.cpu_count()))
    with tempfile.TemporaryDirectory(prefix='opsready-fleet-', dir=args.tmp_root) as tmp:
        ours, raw, renders, spans = sides(Path(tmp), args.hosts, args.forks, args.history)
        if args.profile:
            profile(ours, args.profile, args.top)
            print_spans(spans[-1])
            return
        if args.only_ours:
            for index in range(args.runs):
                ours.before()
                cpu = children_cpu()
                wall, rss, own = measure(ours.command, env=ours.env, cwd=ours.cwd)
                cpu = children_cpu() - cpu
                ours.after()
                print('  ours run %d: %.2f s, %.1f CPU s, %.0f MB tree RSS (%.0f MB ansible-playbook), '
                      'fleet view %.2f s, load %.2f'
                      % (index + 1, wall, cpu, rss / 1e6, own / 1e6, renders[-1], load_average()))
            print_spans(spans[-1])
            return
        cpu_ours: List[float] = []
        cpu_raw: List[float] = []
        cpu_hooks(ours, cpu_ours)
        cpu_hooks(raw, cpu_raw)
        rows = compare('health.yml fleet (%d local hosts)' % args.hosts, ours, [raw], [Target(1.0)],
                       runs=args.runs, max_rounds=args.max_rounds)
    row = rows[0]
    print(format_table(rows))
    print('control node peak RSS (process tree, MB): ours %.0f (ansible-playbook itself %.0f), setup %.0f (%.0f)' % (
        row.ours['peak_rss_mb'], row.ours['own_peak_rss_mb'], row.raw['peak_rss_mb'], row.raw['own_peak_rss_mb']))
    print('CPU seconds (user + system, whole process tree) per run: ours %s, setup %s; ratio of medians %.2fx' % (
        ', '.join('%.1f' % c for c in cpu_ours), ', '.join('%.1f' % c for c in cpu_raw),
        statistics.median(cpu_ours) / max(statistics.median(cpu_raw), 1e-9)))
    print('fleet report rendered in %s s (median %.2f s; target < 5 s at 500 hosts)' % (
        ', '.join('%.2f' % r for r in renders), statistics.median(renders)))
    print_spans(spans[-1])
    print('load average at the end %s' % ', '.join('%.2f' % x for x in os.getloadavg()))


if __name__ == '__main__':
    main()
