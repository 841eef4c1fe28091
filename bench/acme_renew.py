"""Renewing N certificates on one host against a real ACME CA (pebble on loopback, named for the
test zone): cert_renew's ACME issuer (one ansible-playbook, a loop of N cert_renew tasks) next to
``certbot renew`` (PyPI certbot, same pebble, same names, same key type, standalone HTTP-01 on the
same port). Both renew every certificate (``force: true`` / ``--force-renewal``); both validate for
real (pebble connects back to the HTTP-01 responder). The first issuance of both is not timed.

    .venv/bin/python bench/acme_renew.py [--count 50] [--certbot /path/to/certbot] [--runs 1] [--max-rounds 3]

The two renewals alternate in bench/common.compare (at least --runs rounds, more until the paired ratio's
spread is under 10 % or --max-rounds; the load average printed with every run).

certbot is looked up as ``--certbot``, then ``$CERTBOT``, then ``bench/.certbot-venv/bin/certbot``;
when it is missing, the script creates that venv and installs the pinned certbot from PyPI (the same
version line as the ``acme`` library in requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Side, Target, compare, format_table, load_average  # noqa: E402

from tests.harness.acme import DNSServer, Pebble  # noqa: E402

CERTBOT_VERSION = '5.8.0'
CERTBOT_VENV = REPO / 'bench' / '.certbot-venv'


def find_certbot(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get('CERTBOT'), str(CERTBOT_VENV / 'bin' / 'certbot')):
        if candidate and os.path.exists(candidate):
            return candidate
    try:
        subprocess.run([sys.executable, '-m', 'venv', str(CERTBOT_VENV)], check=True)
        subprocess.run([str(CERTBOT_VENV / 'bin' / 'pip'), 'install', '-q', 'certbot==%s' % CERTBOT_VERSION],
                       check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print('certbot could not be installed (%s): only our side is measured' % exc)
        return None
    return str(CERTBOT_VENV / 'bin' / 'certbot')


def ours(work: Path, ca: Pebble, names: list, force: bool) -> float:
    live = work / 'ours'
    live.mkdir(exist_ok=True)
    items = [{'path': str(live / ('%s.crt' % n)), 'privatekey_path': str(live / ('%s.key' % n)), 'name': n}
             for n in names]
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'name': 'renew', 'loop': items, 'loop_control': {'label': '{{ item.name }}'},
        'opsready.operations.cert_renew': {
            'path': '{{ item.path }}', 'privatekey_path': '{{ item.privatekey_path }}', 'key_type': 'ec',
            'subject_alt_names': ['DNS:{{ item.name }}'], 'force': force,
            'acme': {'directory_url': ca.directory_url, 'tls_ca_bundle': ca.tls_ca_path, 'agree_tos': True,
                     'contact': ['bench@acme.test'], 'listen_address': '127.0.0.1', 'listen_port': ca.http_port}}}]}]
    playbook = work / 'ours.yml'
    playbook.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=str(REPO / 'build'),
               PATH=str(REPO / '.venv' / 'bin') + os.pathsep + os.environ.get('PATH', ''))
    started = time.monotonic()
    proc = subprocess.run([str(REPO / '.venv' / 'bin' / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                           '-e', 'ansible_python_interpreter=%s' % (REPO / '.venv' / 'bin' / 'python'),
                           str(playbook)], env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit('ours failed:\n%s' % proc.stdout[-4000:])
    return wall


def certbot_args(certbot: str, work: Path, ca: Pebble) -> list:
    base = work / 'certbot'
    return [certbot, '--non-interactive', '--config-dir', str(base / 'config'), '--work-dir', str(base / 'work'),
            '--logs-dir', str(base / 'logs'), '--server', ca.directory_url, '--agree-tos', '-m', 'bench@acme.test',
            '--standalone', '--http-01-port', str(ca.http_port), '--http-01-address', '127.0.0.1',
            '--key-type', 'ecdsa', '--elliptic-curve', 'secp256r1', '--no-random-sleep-on-renew']


def certbot_issue(certbot: str, work: Path, ca: Pebble, names: list) -> None:
    env = dict(os.environ, REQUESTS_CA_BUNDLE=ca.tls_ca_path)
    for name in names:
        args = certbot_args(certbot, work, ca)
        args[1:1] = ['certonly']
        subprocess.run(args + ['-d', name], env=env, check=True, capture_output=True, text=True)


def certbot_renew(certbot: str, work: Path, ca: Pebble) -> float:
    env = dict(os.environ, REQUESTS_CA_BUNDLE=ca.tls_ca_path)
    args = certbot_args(certbot, work, ca)
    args[1:1] = ['renew', '--force-renewal']
    started = time.monotonic()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit('certbot renew failed:\n%s' % (proc.stdout + proc.stderr)[-4000:])
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=50)
    parser.add_argument('--certbot')
    parser.add_argument('--runs', type=int, default=1, help='rounds at least (more until the spread is < 10 %%)')
    parser.add_argument('--max-rounds', type=int, default=3)
    args = parser.parse_args()
    certbot = find_certbot(args.certbot)
    work = Path(tempfile.mkdtemp(prefix='acme-bench-'))
    names = ['c%03d.acme.test' % i for i in range(args.count)]
    try:
        with DNSServer(work / 'dns') as dns, Pebble(work / 'pebble', dns=dns) as ca:
            ours(work, ca, names, force=False)  # first issuance, not timed
            mine = Side(label='ours: ansible-playbook, %d x cert_renew acme' % args.count,
                        command=lambda: ours(work, ca, names, force=True))
            if certbot:
                version = subprocess.run([certbot, '--version'], capture_output=True, text=True,
                                         check=False).stdout.strip()
                certbot_issue(certbot, work, ca, names)  # first issuance, not timed
                theirs = Side(label='%s renew --force-renewal' % version,
                              command=lambda: certbot_renew(certbot, work, ca))
                rows = compare('ACME renewal of %d certificates' % args.count, mine, [theirs], [Target(1.0)],
                               runs=args.runs, max_rounds=args.max_rounds)
                print(format_table(rows))
                row = rows[0]
                print('ours (ansible-playbook, %d x cert_renew acme, HTTP-01 listener): %.1f s, %.2f s per certificate'
                      % (args.count, row.ours['wall_s'], row.ours['wall_s'] / args.count))
                print('%s renew --force-renewal (standalone HTTP-01): %.1f s, %.2f s per certificate'
                      % (version, row.raw['wall_s'], row.raw['wall_s'] / args.count))
                print('ratio ours / certbot: %.2f' % row.ratio_wall)
            else:
                our_wall = ours(work, ca, names, force=True)
                print('ours (ansible-playbook, %d x cert_renew acme, HTTP-01 listener): %.1f s, %.2f s per certificate '
                      '(load %.2f)' % (args.count, our_wall, our_wall / args.count, load_average()))
            idle = ours(work, ca, names, force=False)
            print('ours, nothing due (no CA contact): %.1f s (load %.2f)' % (idle, load_average()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
