#!/usr/bin/env python
"""Where `make test` spends its time: per test file, from the JUnit XML each pytest layer writes
(build/test-results/<layer>.xml, see scripts/test.sh). Usage: scripts/test_times.py [--top N] [xml ...]"""

from __future__ import annotations

import argparse
import collections
import glob
import xml.etree.ElementTree as ET  # nosec B405 # our own pytest's output, not untrusted input


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('files', nargs='*')
    args = parser.parse_args()
    files = args.files or sorted(glob.glob('build/test-results/*.xml'))
    for path in files:
        per_file: collections.Counter = collections.Counter()
        count: collections.Counter = collections.Counter()
        for case in ET.parse(path).iter('testcase'):  # nosec B314 # as above
            name = (case.get('classname') or '').replace('.', '/') + '.py'
            per_file[name] += float(case.get('time') or 0)
            count[name] += 1
        total = sum(per_file.values())
        print('%s: %d tests, %.0f s of test time in %d files' % (path, sum(count.values()), total, len(per_file)))
        for name, seconds in per_file.most_common(args.top):
            print('  %7.1f s  %4d  %s' % (seconds, count[name], name))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
