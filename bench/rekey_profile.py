"""Where key rotation's time goes, next to ``age -d | age -r`` piped (issue 21, docs/bench.md "key rotation").

    .venv/bin/python bench/rekey_profile.py [--mb 200] [--rounds 6] [--code DIR ...] [--hashed] [--threads]

Alternates, in every round, ours (``bench/ours.py rekey``, one side per ``--code`` checkout, e.g. a ``git archive``
of an older commit with build/ansible_collections/opsready/operations linked to it) and the raw pipe (``age -d -i
old | age -r new > out && sync out``; ``--hashed`` adds the pipe with the two ``sha256sum`` rekey's checks need), on
the same incompressible artifact of ``--mb`` MB restored from a pristine copy before each run (then ``sync``, so
no side pays for the copy's write-back). Prints per round the load average, wall and CPU seconds (user + system of
the process tree: rekey's decrypting child is reaped by ours, so it counts) and the paired ratios; medians at the
end. On this shared 2-core VM the CPU seconds are the figure to read; the wall ratio measures the scheduler as much
as the code. ``--threads`` samples every thread of one run of each side (see bench/file_encrypt_profile.py).
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from file_encrypt_profile import run, sample_threads  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow  # noqa: E402


def keypair(work: Path, name: str) -> tuple:
    key_file = work / ('%s.txt' % name)
    subprocess.run(['age-keygen', '-o', str(key_file)], check=True, capture_output=True)
    public = subprocess.run(['age-keygen', '-y', str(key_file)], check=True, capture_output=True,
                            text=True).stdout.strip()
    return key_file, public


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--mb', type=int, default=200)
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--code', action='append', help='checkout(s) to run ours from (default: this one)')
    parser.add_argument('--hashed', action='store_true', help='also the pipe with 2x sha256sum (tee)')
    parser.add_argument('--threads', action='store_true')
    parser.add_argument('--tmp-root', default='/var/tmp')
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-rekey-', dir=args.tmp_root))
    try:
        old, new = keypair(work, 'old'), keypair(work, 'new')
        catalog = work / 'catalog'
        catalog.mkdir()
        artifact = catalog / ('bench-files-%s.bin.age' % utcnow().strftime('%Y%m%dT%H%M%S%fZ'))
        with ArtifactWriter(str(artifact), compression='none', recipients=[old[1]]) as writer:
            for dummy in range(args.mb):
                writer.write(os.urandom(1 << 20))
            stored = writer.commit()
        now = isoformat(utcnow())
        write_manifest(str(artifact), {'engine': 'files', 'kind': 'files', 'database': 'bench', 'started': now,
                                       'finished': now, 'size': stored['size'], 'sha256': stored['sha256'],
                                       'compression': 'none', 'encryption': stored['encryption']})
        pristine = work / 'pristine'
        shutil.copyfile(artifact, pristine)
        shutil.copyfile(str(artifact) + '.manifest.json', str(pristine) + '.manifest.json')
        out = work / 'piped.age'
        sides = {}
        for code in args.code or [str(REPO)]:
            checkout = Path(code)
            sides[checkout.name] = [str(checkout / '.venv' / 'bin' / 'python'), str(checkout / 'bench' / 'ours.py'),
                                    'rekey', json.dumps({'src': str(catalog), 'recipients': [new[1]],
                                                         'identity_file': str(old[0])})]
        sides['raw'] = ['sh', '-c', 'age -d -i %s %s | age -r %s > %s && sync %s' % (old[0], pristine, new[1], out,
                                                                                     out)]
        if args.hashed:
            sides['raw+2sha'] = ['bash', '-c', 'age -d -i %s %s | tee >(sha256sum >/dev/null) | age -r %s | tee '
                                 '>(sha256sum >/dev/null) > %s && sync %s' % (old[0], pristine, new[1], out, out)]

        def fresh() -> None:
            shutil.copyfile(pristine, artifact)
            shutil.copyfile(str(pristine) + '.manifest.json', str(artifact) + '.manifest.json')
            out.unlink(missing_ok=True)
            os.sync()

        results = {name: [] for name in sides}
        for index in range(args.rounds):
            order = list(sides) if index % 2 == 0 else list(reversed(sides))
            parts = []
            for name in order:
                fresh()
                results[name].append(run(sides[name], False))
                parts.append('%s %.2f s / %.2f CPU s' % ((name,) + results[name][-1]))
            raw_wall, raw_cpu = results['raw'][-1]
            print('round %d, load %s: %s; ratios %s' % (
                index, ' '.join('%.1f' % v for v in os.getloadavg()), ', '.join(parts),
                ', '.join('%s wall %.2fx CPU %.2fx' % (n, results[n][-1][0] / raw_wall, results[n][-1][1] / raw_cpu)
                          for n in sides if n != 'raw')), flush=True)
        for name, values in results.items():
            line = '%-12s median wall %.2f s, CPU %.2f s (%.3f CPU s per 200 MB)' % (
                name, statistics.median(v[0] for v in values), statistics.median(v[1] for v in values),
                statistics.median(v[1] for v in values) * 200 / args.mb)
            if name != 'raw':
                walls = [a[0] / b[0] for a, b in zip(values, results['raw'])]
                cpus = [a[1] / b[1] for a, b in zip(values, results['raw'])]
                line += '; paired ratio to raw: wall %.2fx (%.2f-%.2f), CPU %.2fx (%.2f-%.2f)' % (
                    statistics.median(walls), min(walls), max(walls), statistics.median(cpus), min(cpus), max(cpus))
            print(line)
        if args.threads:
            for name, argv in sides.items():
                fresh()
                print('threads of %s:' % name)
                sample_threads(argv, False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
