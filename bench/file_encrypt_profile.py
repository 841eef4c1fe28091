"""Where the encrypted file backup's time goes, next to ``tar -c | zstd -T2 | age -r`` (issue 22, docs/bench.md
"Module start-up and the encrypted file backup").

    .venv/bin/python bench/file_encrypt_profile.py [--mb 500] [--rounds 6] [--tree DIR] [--code DIR ...]
        [--priority] [--threads]

Alternates, in every round, ours (bench/ours.py file_backup with a recipient, one side per ``--code`` checkout,
e.g. a ``git archive`` of an older commit with build/ansible_collections/opsready/operations linked to it) and the
raw pipeline, and prints per round the load average, wall and CPU seconds (user + system of the process tree) and
the paired ratios; medians at the end. On this shared 2-core VM the CPU ratio is the figure to read: under load
the scheduler gives the raw pipeline's processes, which sleep and wake on their pipes all the time, a larger share
than ours' CPU-bound threads, so the wall ratio measures the scheduler. ``--priority`` runs every side in a
session of its own whose autogroup has nice -20 (needs root; gives the sides most of both cores for a few seconds
each, which disturbs other jobs' timings as much). ``--threads`` samples every thread of one run of each side
every 10 ms from /proc: CPU (run) and run-queue wait seconds, and a timeline of CPU use per 100 ms.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from file_backup import make_tree  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402

PRIORITY = ['setsid', 'sh', '-c', 'echo -20 > /proc/self/autogroup && exec "$@"', 'sh']


def run(argv, priority: bool):
    """(wall s, CPU s of the child's whole tree)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run((PRIORITY if priority else []) + argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _tree(root: int):
    kids = collections.defaultdict(list)
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as handle:
                    kids[int(handle.read().rsplit(')', 1)[1].split()[1])].append(int(entry))
            except OSError:
                continue
    out, index = [root], 0
    while index < len(out):
        out += kids.get(out[index], [])
        index += 1
    return out


def sample_threads(argv, priority: bool) -> None:
    """Run once, sampling each thread's schedstat (run ns, run-queue wait ns) every 10 ms."""
    start = time.perf_counter()
    proc = subprocess.Popen((PRIORITY if priority else []) + argv, stdout=subprocess.DEVNULL)
    seen = {}
    pids, count = [proc.pid], 0
    while proc.poll() is None:
        now = time.perf_counter() - start
        if count % 10 == 0:
            pids = _tree(proc.pid)
        count += 1
        for pid in pids:
            try:
                tids = os.listdir('/proc/%d/task' % pid)
            except OSError:
                continue
            for tid in tids:
                try:
                    with open('/proc/%d/task/%s/comm' % (pid, tid)) as handle:
                        comm = handle.read().strip()
                    with open('/proc/%d/task/%s/schedstat' % (pid, tid)) as handle:
                        ran, waited = (int(v) for v in handle.read().split()[:2])
                except OSError:
                    continue
                record = seen.setdefault(tid, {'comm': comm, 'first': now, 'series': []})
                record.update(comm=comm, last=now, ran=ran, waited=waited)
                record['series'].append((now, ran))
        time.sleep(0.01)
    wall = time.perf_counter() - start
    print('  wall %.2f s, load %.1f' % (wall, os.getloadavg()[0]))
    for tid, record in sorted(seen.items(), key=lambda kv: kv[1]['first']):
        if record['ran'] < 5e6:
            continue
        buckets, previous = collections.Counter(), 0
        for at, ran in record['series']:
            buckets[int(at / 0.1)] += ran - previous
            previous = ran
        line = ''.join(' .:-=+*#%@'[min(9, int(buckets[i] / 1e8 * 10 + 0.999))] if buckets[i] > 0 else ' '
                       for i in range(int(wall / 0.1) + 1))
        print('  %7s %-16s run %5.2f s  run-queue wait %5.2f s |%s|'
              % (tid, record['comm'][:16], record['ran'] / 1e9, record['waited'] / 1e9, line))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=500)
    parser.add_argument('--tree', help='an existing tree (else one of --mb MB is generated)')
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--code', action='append', help='checkout(s) to run ours from (default: this one)')
    parser.add_argument('--priority', action='store_true')
    parser.add_argument('--threads', action='store_true')
    parser.add_argument('--tmp-root', default='/var/tmp')
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-fileenc-', dir=args.tmp_root))
    try:
        tree = Path(args.tree) if args.tree else work / 'tree'
        if not args.tree:
            make_tree(tree, args.mb)
        subprocess.run(['tar', '-cf', '/dev/null', '-C', str(tree.parent), tree.name], check=True)  # page cache
        recipient = encryption.parse_identities(encryption.generate_identity())[0].recipient
        out = work / 'out'
        sides = {}
        for code in args.code or [str(REPO)]:
            opts = json.dumps({'paths': [str(tree)], 'dest': str(out / 'd'), 'threads': 2, 'recipients': [recipient]})
            checkout = Path(code).resolve()   # '.' has no name of its own
            sides[checkout.name] = [str(checkout / '.venv' / 'bin' / 'python'), str(checkout / 'bench' / 'ours.py'),
                                    'file_backup', opts]
        sides['raw'] = ['sh', '-c', 'tar -c -C %s %s | zstd -q -T2 -3 | age -r %s > %s' % (
            tree.parent, tree.name, recipient, out / 'raw.age')]
        results = {name: [] for name in sides}
        for index in range(args.rounds):
            # every side in every position in turn (with two checkouts and raw, a plain forward/backward alternation
            # ran the second checkout always in the middle)
            names = list(sides)
            shift = index % len(names)
            order = names[shift:] + names[:shift]
            if (index // len(names)) % 2:
                order.reverse()
            parts = []
            for name in order:
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                results[name].append(run(sides[name], args.priority))
                parts.append('%s %.2f s / %.2f CPU s' % ((name,) + results[name][-1]))
            raw_wall, raw_cpu = results['raw'][-1]
            print('round %d, load %s: %s; ratios %s' % (
                index, ' '.join('%.1f' % v for v in os.getloadavg()), ', '.join(parts),
                ', '.join('%s wall %.2fx CPU %.2fx' % (n, results[n][-1][0] / raw_wall, results[n][-1][1] / raw_cpu)
                          for n in sides if n != 'raw')), flush=True)
        for name, values in results.items():
            line = '%-12s median wall %.2f s, CPU %.2f s' % (name, statistics.median(v[0] for v in values),
                                                             statistics.median(v[1] for v in values))
            if name != 'raw':
                walls = [a[0] / b[0] for a, b in zip(values, results['raw'])]
                cpus = [a[1] / b[1] for a, b in zip(values, results['raw'])]
                line += '; paired ratio to raw: wall %.2fx (%.2f-%.2f), CPU %.2fx' % (
                    statistics.median(walls), min(walls), max(walls), statistics.median(cpus))
            print(line)
        ours = [name for name in sides if name != 'raw']
        for name in ours[1:]:   # each later checkout against the first, paired per round
            walls = [a[0] / b[0] for a, b in zip(results[name], results[ours[0]])]
            cpus = [a[1] / b[1] for a, b in zip(results[name], results[ours[0]])]
            print('%s / %s paired: wall %.3fx (%.2f-%.2f), CPU %.3fx (%.2f-%.2f)' % (
                name, ours[0], statistics.median(walls), min(walls), max(walls), statistics.median(cpus),
                min(cpus), max(cpus)))
        if args.threads:
            for name, argv in sides.items():
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                print('threads of %s:' % name)
                sample_threads(argv, args.priority)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
