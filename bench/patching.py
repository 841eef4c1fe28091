"""Wall time of os_patch's logic (plan by simulation, dpkg snapshots before/after, upgrade, stale-process
scan) next to the raw `apt-get update && apt-get upgrade -y` on the same local repository of N test
packages (v1 installed, v2 available, v1 reinstalled before every run, not timed). The sides alternate in
bench/common.compare: at least --runs rounds, more until the paired ratio's spread is under 10 % or
--max-rounds, the load average printed with every run. Prints the ratio; asserts nothing. Needs root; the
test packages are purged at the end.

    .venv/bin/python bench/patching.py [--packages 20] [--runs 2] [--max-rounds 6]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / 'build'), str(Path(__file__).resolve().parent)]

from common import Side, Target, compare, format_table  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.patching.run import Options, patch  # noqa: E402
from tests.integration.patching_repo import AptTestRepo, apt_options  # noqa: E402

ENV = dict(os.environ, DEBIAN_FRONTEND='noninteractive')


def install_v1(repo: AptTestRepo, names):
    debs = [str(repo.debs['opsready-testpkg-%s=1.0' % n]) for n in names]
    subprocess.run(['apt-get', '-q', '-y', '-o', 'DPkg::Lock::Timeout=300'] + apt_options(repo.apt_config())
                   + ['install', '--allow-downgrades'] + debs, check=True, capture_output=True, env=ENV)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--packages', type=int, default=20)
    parser.add_argument('--runs', type=int, default=2, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=6)
    args = parser.parse_args()
    repo = AptTestRepo()
    names = ['bench%02d' % i for i in range(args.packages)]
    try:
        for name in names:
            repo.package(name, '1.0')
            repo.package(name, '2.0')
        repo.publish()
        apt = ' '.join(shlex.quote(a) for a in ['apt-get', '-q'] + apt_options(repo.apt_config()))
        raw = Side(label='apt-get update && apt-get upgrade -y', env=ENV,
                   command='%s update >/dev/null && %s -y upgrade >/dev/null' % (apt, apt),
                   before=lambda: install_v1(repo, names))

        def ours_run():
            result = patch(Options(apt_config=repo.apt_config()), check_mode=False)
            assert len(result['upgraded']) == args.packages, result['upgraded']

        ours = Side(label='os_patch logic (plan+snapshots+scan)', command=ours_run,
                    before=lambda: install_v1(repo, names))
        rows = compare('patching %d packages' % args.packages, ours, [raw], [Target(1.5)], runs=args.runs,
                       max_rounds=args.max_rounds)
    finally:
        repo.cleanup()
    print(format_table(rows))
    row = rows[0]
    print('%d packages, median of %d rounds' % (args.packages, row.runs))
    print('  apt-get update && apt-get upgrade -y : %6.2f s' % row.raw['wall_s'])
    print('  os_patch logic (plan+snapshots+scan)  : %6.2f s   ratio %.2fx' % (row.ours['wall_s'], row.ratio_wall))


if __name__ == '__main__':
    main()
