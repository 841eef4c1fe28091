"""Fault matrix, hostile filesystems round 5: what round 4 left open, and writers it did not attack (harness:
test_hostile_round3/4, an unprivileged account made and removed by test_hostile_files, its moves run as that account
with setpriv, or by a racing thread running as that account).

- An account named in ``owner`` is trusted with its own files, not with where root writes: a link it makes in its
  own directory (its certificate directory linked to /etc/ssl/private) must not carry root's writes, chmods or
  chowns into a directory of root's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.certs import renewal  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio  # noqa: E402

racer_user = hostile.racer_user
arena = hostile.arena
snapshot = hostile.snapshot
touched = hostile.touched
as_user = round3.as_user
user_dir = round3.user_dir


def _changed(before: dict, after: dict) -> list:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


# --- owner: trusted with its files, not with where root writes ---------------------------------------------------
@pytest.mark.fast
@pytest.mark.parametrize('where', ['cert-dir', 'dir-above', 'backup_dir'])
@pytest.mark.fault(fault='the account named in owner links its own {where} to a directory of root\'s',
                   component='cert_renew (files/safeio.path_risk, SafeDir)',
                   expected='refused naming the link and the account; nothing in root\'s directory written, '
                            'chmodded or chowned')
def test_owner_links_its_directory_to_roots(racer_user, arena, where, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)
    private = outside / 'private'    # /etc/ssl/private: root's, with another service's key of the same name
    private.mkdir(mode=0o700)
    (private / 'svc.key').write_bytes(b'-----BEGIN PRIVATE KEY-----\nanother service\n')
    os.chmod(private / 'svc.key', 0o600)
    if where == 'cert-dir':
        as_user(user, 'ln -s %s %s/tls' % (private, app))
        opts = hostile.cert_opts(app / 'tls', user)
    elif where == 'dir-above':
        as_user(user, 'ln -s %s %s/ssl' % (outside, app))
        opts = hostile.cert_opts(app / 'ssl' / 'private', user)
    else:
        as_user(user, 'mkdir %s/tls && ln -s %s %s/kept' % (app, private, app))
        renewal.renew(hostile.cert_opts(app / 'tls', user), check_mode=False)
        opts = hostile.cert_opts(app / 'tls', user, backup_dir=str(app / 'kept'))
    before = snapshot(outside)
    error = None
    try:
        renewal.renew(opts, check_mode=False)
    except OpsReadyError as exc:
        error = exc
    after = snapshot(outside)
    fault.observed('files in root\'s directory touched: %d; renew: %s' % (touched(before, after), error or 'completed'))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert isinstance(error, safeio.UnsafeFileError) and 'symlink' in str(error) and user.pw_name in str(error), error


SWAPPER = r'''
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
deadline, swaps = time.time() + float(sys.argv[2]), 0
while time.time() < deadline:   # the directory and a link to root's, exchanged atomically (never missing)
    if libc.renameat2(-100, b'tls', -100, b'tls.lnk', 2) == 0:
        swaps += 1
print(swaps)
'''


@pytest.mark.fast
@pytest.mark.parametrize('how', ['after-check', 'racing'])
@pytest.mark.fault(fault='the account named in owner swaps its real certificate directory for a link to root\'s '
                   '({how})', component='cert_renew (files/safeio.SafeDir, open_directory)',
                   expected='each run renews in the account\'s directory or is refused naming the link; nothing '
                            'in root\'s directory written')
def test_owner_swaps_its_directory_after_the_check(racer_user, arena, monkeypatch, how, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)
    private = outside / 'private'
    private.mkdir(mode=0o700)
    (private / 'svc.key').write_bytes(b'-----BEGIN PRIVATE KEY-----\nanother service\n')
    os.chmod(private / 'svc.key', 0o600)
    as_user(user, 'mkdir %s/tls && ln -s %s %s/tls.lnk' % (app, private, app))
    before = snapshot(outside)
    outcomes = {'renewed': 0, 'refused': 0}
    if how == 'after-check':
        real = safeio.path_risk

        def check_then_swap(path, owner_uid=None):
            risk = real(path, owner_uid)
            as_user(user, 'cd %s && mv tls tls.real && mv tls.lnk tls' % app)
            monkeypatch.setattr(safeio, 'path_risk', real)
            return risk
        monkeypatch.setattr(safeio, 'path_risk', check_then_swap)
        runs = 1
    else:
        import subprocess
        swapper = subprocess.Popen([hostile.unprivileged_python(), '-c', SWAPPER, str(app), '1.5'],
                                   user=user.pw_uid, group=user.pw_gid, extra_groups=[], stdout=subprocess.PIPE)
        runs = 0
    error = None
    while True:
        try:
            renewal.renew(hostile.cert_opts(app / 'tls', user), check_mode=False)
            outcomes['renewed'] += 1
        except OpsReadyError as exc:
            outcomes['refused'] += 1
            error = exc
        except OSError:
            outcomes['refused'] += 1   # the directory exchanged mid-run: a file root opened is gone
        runs += -1 if how == 'after-check' else 1
        if how == 'after-check' or swapper.poll() is not None:
            break
    swaps = int(swapper.communicate()[0]) if how == 'racing' else 1
    after = snapshot(outside)
    fault.observed('%d swaps; %s; files in root\'s directory touched: %d' % (swaps, outcomes, touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    if how == 'after-check':
        assert isinstance(error, safeio.UnsafeFileError) and 'symlink' in str(error), error
    else:
        assert swaps > 100 and outcomes['renewed'] + outcomes['refused'] > 5
