"""Old vs new catalog code alternated in the same rounds on one generated directory (issue 22).

    git archive <old-rev> | tar -x -C /tmp/old && mkdir -p /tmp/old/build/ansible_collections/opsready \\
        && ln -s /tmp/old /tmp/old/build/ansible_collections/opsready/operations && ln -s $PWD/.venv /tmp/old/.venv
    .venv/bin/python bench/catalog_compare.py /tmp/old DIRECTORY [ROUNDS] [OPERATIONS] [TIMEOUT]

DIRECTORY is one that ``catalog_scale.generate`` wrote, or OLD_DIRECTORY:NEW_DIRECTORY, two generated alike
(the index file's format differs between versions: sharing one directory would rebuild it on every run);
each side runs ``catalog_scale.py run OP DIRECTORY`` of its own checkout in a child (bench/common.measure:
wall, peak RSS). Prints every run with the load, then per
operation the medians and new/old per round (the ratio is what stays meaningful on a loaded machine).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import PYTHON, TimedOut, load_average, measure  # noqa: E402


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    old_checkout, directory = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    ops = (sys.argv[4] if len(sys.argv) > 4 else 'backup_info,backup_prune_check,db_backup_catalog,'
           'drill_find_backup').split(',')
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
    old_dir, dummy, new_dir = directory.partition(':')
    sides = (('old', str(Path(old_checkout) / 'bench' / 'catalog_scale.py'), old_dir),
             ('new', str(BENCH / 'catalog_scale.py'), new_dir or old_dir))
    rows = {}
    for number in range(rounds):
        for op in ops:
            for side, script, where in sides:
                load = load_average()
                try:
                    wall, rss, _out = measure([PYTHON, script, 'run', op, where], timeout=timeout)
                    late = False
                except TimedOut as exc:
                    wall, rss, late = exc.wall, exc.rss, True
                rows.setdefault((op, side), []).append((wall, rss / 1e6, load))
                print('round %d %-20s %s %8.3f s %7.1f MB load %.1f%s' % (
                    number, op, side, wall, rss / 1e6, load, ' (killed at the timeout)' if late else ''), flush=True)
    print()
    for op in ops:
        old, new = rows[(op, 'old')], rows[(op, 'new')]
        print('%-20s old %8.3f s %7.1f MB | new %8.3f s %7.1f MB | new/old per round %s | load %.1f-%.1f' % (
            op, statistics.median(o[0] for o in old), max(o[1] for o in old), statistics.median(n[0] for n in new),
            max(n[1] for n in new), ', '.join('%.3f' % (n[0] / o[0]) for o, n in zip(old, new)),
            min(x[2] for x in old + new), max(x[2] for x in old + new)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
