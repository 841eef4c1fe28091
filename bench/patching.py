"""Wall time of os_patch's logic (plan by simulation, dpkg snapshots before/after, upgrade, stale-process
scan) next to the raw `apt-get update && apt-get upgrade -y` on the same local repository of N test
packages (v1 installed, v2 available). Prints the ratio; asserts nothing. Needs root; the test packages
are purged at the end.

    .venv/bin/python bench/patching.py [--packages 20] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / 'build')]

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
    parser.add_argument('--runs', type=int, default=2)
    args = parser.parse_args()
    repo = AptTestRepo()
    names = ['bench%02d' % i for i in range(args.packages)]
    raw, ours = [], []
    try:
        for name in names:
            repo.package(name, '1.0')
            repo.package(name, '2.0')
        repo.publish()
        for dummy in range(args.runs):
            install_v1(repo, names)
            start = time.monotonic()
            for verb in (['update'], ['-y', 'upgrade']):
                subprocess.run(['apt-get', '-q'] + apt_options(repo.apt_config()) + verb, check=True,
                               capture_output=True, env=ENV)
            raw.append(time.monotonic() - start)
            install_v1(repo, names)
            start = time.monotonic()
            result = patch(Options(apt_config=repo.apt_config()), check_mode=False)
            ours.append(time.monotonic() - start)
            assert len(result['upgraded']) == args.packages, result['upgraded']
    finally:
        repo.cleanup()
    r, o = statistics.median(raw), statistics.median(ours)
    print('%d packages, median of %d runs' % (args.packages, args.runs))
    print('  apt-get update && apt-get upgrade -y : %6.2f s' % r)
    print('  os_patch logic (plan+snapshots+scan)  : %6.2f s   ratio %.2fx' % (o, o / r))


if __name__ == '__main__':
    main()
