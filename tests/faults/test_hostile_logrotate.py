"""Fault matrix, hostile filesystem: log rotation as root in directories a user controls.

An unprivileged user (created by the fixture with useradd, removed with userdel) owns the log
directory and races the rotation: it keeps replacing every name there (the log, its rotated copies,
the rotation's own temporary names) with symlinks to a root-owned file outside the tree, with a FIFO,
with hard links and fresh files, while log_rotate rotates many times. Then:

- the root-owned files outside the tree are byte-identical (content, inode, mode, owner, mtime) and no
  file appeared outside the tree: "files outside the tree touched" must be 0;
- no file in the user's directory holds the secret (nothing was copied or compressed out of it).

Two ways in: as root with the directory check off (``check_dirs=False``: proves the
descriptor-relative operations hold on their own, the issue's exact scenario) and with ``su`` (the
supported way: the file operations run as the user). Insecure directories without ``su`` are refused
by the real module; special files and huge sparse inputs are refused or left alone, never hang.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest
import zstandard

from tests.faults.helpers import play, unprivileged_python

REPO = Path(__file__).resolve().parents[2]
SECRET = b'TOP-SECRET-' + secrets.token_hex(16).encode() + b'\n'
RACE_SECONDS = float(os.environ.get('OPSREADY_RACE_SECONDS', '3'))

# Runs as the unprivileged user, in the directory it owns, until the deadline; prints how many swaps it made.
RACER = r'''
import os, random, sys, time
logdir, outside, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
targets = [os.path.join(outside, 'secret.log'), os.path.join(outside, 'dir', 'made-through-a-link'),
           os.path.join(outside, 'dir'), os.path.join(outside, 'fifo')]
os.chdir(logdir)
rnd = random.Random(os.getpid())
fixed = ['app.log', 'app.log.1', 'app.log.2', 'app.log.3', 'app.log.1.zst', 'app.log.2.zst', 'app.log.1.gz']
swaps = 0
deadline = time.monotonic() + duration
n = 0
def tmpname():
    global n
    n += 1
    return '.racer.%d.%d' % (os.getpid(), n)
def replace_with_link(name):
    tmp = tmpname()
    os.symlink(rnd.choice(targets), tmp)
    os.rename(tmp, name)          # atomic: the name is never absent
def fresh_log():
    tmp = tmpname()
    with open(tmp, 'w') as f:
        f.write(('user line %d\n' % swaps) * 20)
    os.rename(tmp, 'app.log')
while time.monotonic() < deadline:
    # A real log most of the time, so the rotation gets past discovery; the swap lands while it works.
    try:
        fresh_log()
    except OSError:
        pass
    time.sleep(rnd.uniform(0, 0.003))
    action = rnd.random()
    try:
        if action < 0.25:
            replace_with_link('app.log')
        elif action < 0.55:       # whatever the rotation is working on right now, temporary names included
            names = [x for x in os.listdir('.') if x.startswith(('app.log', '.app.log'))] or fixed
            replace_with_link(rnd.choice(names))
        elif action < 0.70:
            replace_with_link(rnd.choice(fixed))
        elif action < 0.80:
            tmp = tmpname()
            os.mkfifo(tmp)
            os.rename(tmp, rnd.choice(fixed[:2]))
        elif action < 0.90:       # a second name for the log for a moment: a truncate would reach it
            second = tmpname()
            os.link('app.log', second)
            time.sleep(0.0005)
            os.unlink(second)
        else:                     # the log moved away and back
            os.rename('app.log', 'app.log.moved')
            time.sleep(0.0002)
            os.rename('app.log.moved', 'app.log')
        swaps += 1
    except OSError:
        pass
    time.sleep(rnd.uniform(0, 0.001))
    if rnd.random() < 0.02:       # do not fill the directory with leftovers of its own
        for x in os.listdir('.'):
            if x.startswith('.racer.'):
                try:
                    os.unlink(x)
                except OSError:
                    pass
print(swaps)
'''

# Runs as root: rotates in a loop until the deadline (a fresh Rotation each time, as separate module runs).
ROTATOR = r'''
import datetime, inspect, json, os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation
cfg = json.loads(sys.argv[2])
stats = {'runs': 0, 'rotated': 0, 'compressed': 0, 'refused': 0, 'errors': [], 'kinds': {}}
deadline = time.monotonic() + cfg['seconds']
start = datetime.datetime.now(datetime.timezone.utc)
while time.monotonic() < deadline:
    policy = Policy(force=True, missingok=True, notifempty=False, reopen_timeout=0, **cfg['policy'])
    extra = {key: cfg[key] for key in ('su_uid', 'su_gid') if cfg.get(key) is not None}
    if 'check_dirs' in inspect.signature(Rotation).parameters:   # absent before the fix: run it against that too
        extra['check_dirs'] = cfg['check_dirs']
    # A clock one second further each run: dated names (dateext) differ from run to run as well.
    now = start + datetime.timedelta(seconds=stats['runs'])
    rotation = Rotation([cfg['log']], policy, cfg['state'], threads=1, now=now, **extra)
    stats['runs'] += 1
    try:
        result = rotation.run()
    except OpsReadyError as exc:
        stats['refused'] += 1
        result = exc.details
        for kind in ('is a symlink', 'is now a symlink', 'not a regular file', 'hard links', 'replaced by another',
                     'No log file', 'Compressing', 'undoing'):
            if kind in exc.message:
                stats['kinds'][kind] = stats['kinds'].get(kind, 0) + 1
                break
        else:
            stats['kinds']['other'] = stats['kinds'].get('other', 0) + 1
            stats['errors'].append(exc.message[:300])
    stats['rotated'] += len(result.get('rotated', []))
    stats['compressed'] += len(result.get('compressed', []))
print(json.dumps(stats))
'''

MODES = {
    'create': {'mode': 'create', 'rotate': 3},
    'copytruncate': {'mode': 'copytruncate', 'rotate': 3},
    'copy': {'mode': 'copy', 'rotate': 3},
    'dateext': {'mode': 'create', 'rotate': 3, 'dateext': True, 'dateformat': '-%Y%m%d%H%M%S'},
    'gzip-delaycompress': {'mode': 'create', 'rotate': 3, 'compression': 'gzip', 'delaycompress': True},
    'copytruncate-rotate0': {'mode': 'copytruncate', 'rotate': 0},
    'nocompress': {'mode': 'create', 'rotate': 3, 'compress': False},
}


@pytest.fixture(scope='module')
def racer_user() -> Iterator[Tuple[str, int, int]]:
    if os.geteuid() != 0:
        pytest.skip('needs root: creates a user and rotates as root')
    name = 'opsrace%s' % secrets.token_hex(3)
    subprocess.run(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', name],
                   check=True)
    entry = pwd.getpwnam(name)
    try:
        yield name, entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(['userdel', name], check=False)


@pytest.fixture
def tree(racer_user) -> Iterator[Dict[str, Path]]:
    """/var/tmp/<base> (root 0755): logs/ (the user's), outside/ (root's: secret.log 0600, dir/, fifo), state/."""
    _name, uid, gid = racer_user
    base = Path(tempfile.mkdtemp(prefix='opsready-hostile-', dir='/var/tmp'))
    base.chmod(0o755)
    logs = base / 'logs'
    logs.mkdir()
    os.chown(logs, uid, gid)
    outside = base / 'outside'
    outside.mkdir(mode=0o755)
    (outside / 'secret.log').write_bytes(SECRET * 1000)
    (outside / 'secret.log').chmod(0o600)
    (outside / 'dir').mkdir(mode=0o755)
    (outside / 'dir' / 'keep').write_bytes(SECRET)
    os.mkfifo(outside / 'fifo', 0o600)
    state = base / 'state'
    state.mkdir(mode=0o700)
    app = logs / 'app.log'
    app.write_bytes(b'first line\n' * 100)
    os.chown(app, uid, gid)
    yield {'base': base, 'logs': logs, 'outside': outside, 'state': state}
    shutil.rmtree(base, ignore_errors=True)


def snapshot(base: Path) -> Dict[str, tuple]:
    """Everything under ``base`` except the user's logs/ and the state: what must not change."""
    found: Dict[str, tuple] = {}
    for root, dirs, files in os.walk(base):
        if Path(root) == base:
            dirs[:] = [d for d in dirs if d not in ('logs', 'state')]
        for name in dirs + files:
            path = Path(root) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ''
            found[str(path.relative_to(base))] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                                  st.st_mtime_ns, digest)
    found['.'] = tuple(sorted(os.listdir(base)))
    return found


def touched(before: Dict[str, tuple], after: Dict[str, tuple]) -> list:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def leaked(logs: Path) -> list:
    """Files in the user's directory that hold the secret (plain, zstd or gzip)."""
    hits = []
    for path in logs.rglob('*'):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        try:
            if path.name.endswith('.zst'):
                data = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
            elif path.name.endswith('.gz'):
                data = gzip.decompress(data)
        except Exception:
            pass
        if SECRET.strip() in data:
            hits.append(path.name)
    return hits


def race(tree: Dict[str, Path], user: Tuple[str, int, int], policy: dict, su: bool) -> dict:
    _name, uid, gid = user
    racer = subprocess.Popen([unprivileged_python(), '-c', RACER, str(tree['logs']), str(tree['outside']),
                              str(RACE_SECONDS + 0.5)], user=uid, group=gid, extra_groups=[], cwd='/',
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cfg = {'log': str(tree['logs'] / 'app.log'), 'state': str(tree['state'] / 'state.json'), 'policy': policy,
           'seconds': RACE_SECONDS, 'check_dirs': su, 'su_uid': uid if su else None, 'su_gid': gid if su else None}
    try:
        build = os.environ.get('OPSREADY_RACE_BUILD', str(REPO / 'build'))   # another tree: the code before a fix
        done = subprocess.run([sys.executable, '-c', ROTATOR, build, json.dumps(cfg)],
                              capture_output=True, text=True, timeout=RACE_SECONDS + 120, check=False)
    finally:
        out, err = racer.communicate(timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert racer.returncode == 0, err[-2000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    stats['swaps'] = int(out.strip())
    stats['errors'] = stats['errors'][:5]
    print(json.dumps(stats))
    return stats


@pytest.mark.parametrize('as_user', ['root', 'su'])
@pytest.mark.parametrize('mode', [pytest.param(m, marks=pytest.mark.fast) if m in ('create', 'copytruncate')
                                  else m for m in MODES])
@pytest.mark.fault(fault='user races symlinks/renames during rotations ({mode}, as {as_user})',
                   component='log_rotate',
                   expected='0 files outside the tree touched, the secret never copied into the user\'s directory; '
                            'swapped names refused, never followed')
def test_race_symlinks_and_renames(mode, as_user, tree, racer_user, fault):
    before = snapshot(tree['base'])
    stats = race(tree, racer_user, MODES[mode], su=(as_user == 'su'))
    changed = touched(before, snapshot(tree['base']))
    hits = leaked(tree['logs'])
    fault.lost(outside_files_touched=len(changed))
    fault.observed('%d races tried (user swaps), %d rotation runs: %d rotated, %d compressed, %d refused; '
                   '%d files outside the tree touched, secret copied into %d files'
                   % (stats['swaps'], stats['runs'], stats['rotated'], stats['compressed'], stats['refused'],
                      len(changed), len(hits)))
    assert changed == [] and hits == []
    assert (tree['outside'] / 'secret.log').read_bytes() == SECRET * 1000
    assert stats['swaps'] > 100 and stats['runs'] > 5, stats
    assert stats['rotated'] > 0, stats   # the race is only a test if the rotation really ran meanwhile


def _rotate_task(tree, **extra):
    options = {'paths': [str(tree['logs'] / 'app.log')], 'force': True,
               'state_file': str(tree['state'] / 'state.json')}
    options.update(extra)
    return {'name': 'rotate', 'opsready.operations.log_rotate': options, 'ignore_errors': True}


INSECURE = {
    'world-writable 0777 root dir': 'world',
    'sticky 1777 root dir': 'sticky',
    'dir owned by another user': 'owned',
    'group-writable, non-root group': 'group',
    'root 0755 dir below a user-owned dir': 'parent',
}


@pytest.mark.fast
@pytest.mark.parametrize('case', list(INSECURE))
@pytest.mark.fault(fault='insecure log directory: {case}', component='log_rotate',
                   expected='refused as root ("insecure permissions", names su); nothing rotated; with su it rotates '
                            'as that user')
def test_insecure_directory_refused_unless_su(case, tree, racer_user, fault, tmp_path):
    name, uid, gid = racer_user
    logs = tree['logs']
    kind = INSECURE[case]
    if kind == 'world':
        os.chown(logs, 0, 0)
        logs.chmod(0o777)
    elif kind == 'sticky':
        os.chown(logs, 0, 0)
        logs.chmod(0o1777)
    elif kind == 'group':
        os.chown(logs, 0, gid)
        logs.chmod(0o775)
    elif kind == 'parent':
        os.chown(tree['base'], uid, gid)   # the user could rename logs/ and put another directory there
        os.chown(logs, 0, 0)
        logs.chmod(0o755)
    before = sorted(os.listdir(logs))
    # 'parent': the state file goes elsewhere, as its directory below the user's is refused on its own (round 5)
    extra = {'state_file': str(tmp_path / 'state.json')} if kind == 'parent' else {}
    result = play(tmp_path, [_rotate_task(tree, **extra)], fault=fault)
    refused = result.result('rotate')
    assert refused['_event'] == 'runner_on_failed', refused
    assert 'Refusing to rotate as root' in refused['msg'] and 'su' in refused['msg'], refused['msg']
    assert ('insecure permissions' in refused['msg'] or 'owned by uid' in refused['msg']
            or 'above' in refused['msg']), refused['msg']
    assert sorted(os.listdir(logs)) == before
    if kind == 'parent':
        os.chown(tree['base'], 0, 0)
        fault.observed('refused: %s' % refused['msg'][:160])
        return
    # The same task with su: rotated, with the user's rights (the new log and the copy are the user's)
    os.chown(logs / 'app.log', uid, gid)
    result = play(tmp_path, [_rotate_task(tree, su={'user': name})], fault=fault)
    done = result.result('rotate')
    assert done['_event'] == 'runner_on_ok', done.get('msg')
    assert [r['log'] for r in done['rotated']] == [str(logs / 'app.log')]
    assert (logs / 'app.log').stat().st_uid == uid and (logs / 'app.log.1.zst').stat().st_uid == uid
    fault.observed('refused without su ("%s..."); with su rotated as uid %d' % (refused['msg'][:90], uid))


@pytest.mark.fast
@pytest.mark.fault(fault='special files and links among the rotated copies', component='log_rotate',
                   expected='FIFO, device, symlink and hard-linked copies never opened or followed (no hang); the '
                            'log rotates; each refused file named in a warning')
def test_special_files_never_opened(tree, racer_user, fault, tmp_path):
    _name, uid, gid = racer_user
    logs = tree['logs']
    os.chown(logs, 0, 0)
    logs.chmod(0o755)
    os.mkfifo(logs / 'app.log.1')
    os.mknod(logs / 'app.log.2', 0o600 | stat.S_IFCHR, os.makedev(1, 3))   # /dev/null's numbers
    (logs / 'app.log.3').symlink_to(tree['outside'] / 'secret.log')
    before = snapshot(tree['base'])
    started = time.monotonic()
    result = play(tmp_path, [_rotate_task(tree, rotate=5)], fault=fault, timeout=120)
    elapsed = time.monotonic() - started
    done = result.result('rotate')
    assert done['_event'] == 'runner_on_ok', done.get('msg')
    assert [r['log'] for r in done['rotated']] == [str(logs / 'app.log')]
    warnings = ' '.join(done.get('warnings', []))
    for name in ('app.log.2 ', 'app.log.3 ', 'app.log.4 '):
        assert name.strip() in warnings, warnings
    assert stat.S_ISFIFO((logs / 'app.log.2').lstat().st_mode) and (logs / 'app.log.4').is_symlink()
    changed = touched(before, snapshot(tree['base']))
    assert changed == [] and leaked(logs) == []
    fault.lost(outside_files_touched=len(changed))
    fault.observed('rotated in %.1fs; FIFO, char device, symlink shifted as names, never opened (%d warnings)'
                   % (elapsed, len(done.get('warnings', []))))


@pytest.mark.fast
@pytest.mark.parametrize('mode', ['create', 'copytruncate'])
@pytest.mark.fault(fault='huge sparse log (1 TiB apparent) ({mode})', component='log_rotate',
                   expected='copy modes refuse before copying (no space); create rotates by link and leaves the '
                            'sparse copy uncompressed with a warning; quick, nothing filled')
def test_huge_sparse_input(mode, tree, fault, tmp_path):
    logs = tree['logs']
    os.chown(logs, 0, 0)
    logs.chmod(0o755)
    with open(logs / 'app.log', 'ab') as handle:
        handle.truncate(1 << 40)
    free_before = shutil.disk_usage(logs).free
    started = time.monotonic()
    result = play(tmp_path, [_rotate_task(tree, mode=mode)], fault=fault, timeout=300)
    elapsed = time.monotonic() - started
    done = result.result('rotate')
    assert shutil.disk_usage(logs).free > free_before - (64 << 20)
    if mode == 'copytruncate':
        assert done['_event'] == 'runner_on_failed' and 'a copy does not fit' in done['msg'], done
        assert sorted(os.listdir(logs)) == ['app.log'] and (logs / 'app.log').stat().st_size == 1 << 40
        fault.observed('refused in %.1fs: %s' % (elapsed, done['msg'][:120]))
    else:
        assert done['_event'] == 'runner_on_ok', done.get('msg')
        assert sorted(os.listdir(logs)) == ['app.log', 'app.log.1']
        assert any('is sparse' in w for w in done.get('warnings', [])), done
        fault.observed('rotated by link in %.1fs; copy left uncompressed (sparse warning)' % elapsed)
    fault.lost(files=0)
