"""Fault matrix, hostile filesystems (hostnames13; harness: test_hostile_files / test_hostile_round3, an unprivileged
account made and removed by the test playing the account that owns a directory on the operator's path).

- dr_drill role, ``drill_step step=mark``: the drill's mark file (``<scratch>.opsready_drill_scratch`` beside a SQLite
  scratch copy, ``opsready_drill_scratch`` in a PITR scratch data directory) was written as root by path
  (common/atomic: a temp file in the directory named by path, renamed by path; the data directory resolved with
  realpath first). The account owning a directory on the scratch path (a ``scratch:`` the operator set under an
  application's directory) could put a link to a directory of root's there: root wrote its mark file into that
  directory. Now written as safe_write writes (safeio.write_nofollow: the directory opened one component at a time,
  a link followed only where only root could have made it, an exclusive staged file fsynced and renamed relative to
  the directory's descriptor): refused, naming the link, nothing written outside.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3
from tests.faults.helpers import play

racer_user = hostile.racer_user
arena = hostile.arena
as_user = round3.as_user
user_dir = round3.user_dir

MARKER = 'opsready_drill_scratch'


def _mark(arena, fault, **target):
    task = dict(target, step='mark', source='shop')
    task.setdefault('engine', 'sqlite' if 'database' in target else 'postgresql')
    return play(arena['base'], [{'name': 'mark', 'opsready.operations.drill_step': task}], fault=fault, timeout=120)


def _changed_outside(before, arena):
    after = hostile.snapshot(arena['outside'])
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


@pytest.mark.fast
@pytest.mark.parametrize('kind', ['sqlite', 'pitr'])
@pytest.mark.fault(fault='the account owning a directory on the drill\'s scratch path puts a link to a root directory '
                   'where the scratch target goes ({kind})',
                   component='drill_step (step=mark)',
                   expected='refused, naming the link; no mark file written into the root directory')
def test_mark_never_written_through_a_link_planted_on_the_scratch_path(racer_user, arena, fault, kind):
    """Fails on the old code: root wrote outside/etc/<name>.opsready_drill_scratch (SQLite) or
    outside/etc/opsready_drill_scratch (PITR: the data directory resolved with realpath) through the planted link."""
    owned = user_dir(arena['tree'] / 'app', racer_user)
    as_user(racer_user, 'ln -s %s %s/scratch' % (arena['outside'] / 'etc', owned))
    target = ({'database': str(owned / 'scratch' / 'shop-drill.sqlite')} if kind == 'sqlite'
              else {'datadir': str(owned / 'scratch')})
    before = hostile.snapshot(arena['outside'])
    result = _mark(arena, fault, **target)
    changed = _changed_outside(before, arena)
    fault.observed('play rc %d; changed under outside/: %s' % (result.rc, changed))
    fault.lost(files=len(changed))
    assert changed == [], 'root followed the planted link: %s' % changed
    mark = result.result('mark')
    assert result.rc != 0 and str(owned / 'scratch') in mark['msg'] and 'symlink' in mark['msg'], mark
    assert sorted(os.listdir(owned)) == ['scratch'] and os.path.islink(owned / 'scratch')


@pytest.mark.fast
@pytest.mark.parametrize('kind', ['sqlite', 'pitr'])
@pytest.mark.fault(fault='a link to a root file planted at the mark file\'s own name in the scratch target ({kind})',
                   component='drill_step (step=mark)',
                   expected='the link replaced by root\'s 0600 mark file; the root file untouched; no staged file left')
def test_a_link_at_the_mark_name_is_replaced_never_followed(racer_user, arena, fault, kind):
    """Guard (passed on the old code, whose rename replaced the link too): the mark goes where it belongs, as a
    regular file of root's with one name; what the link led to is untouched."""
    if kind == 'sqlite':
        directory = user_dir(arena['tree'] / 'app', racer_user)
        name = 'shop-drill.sqlite' + '.' + MARKER
        target = {'database': str(directory / 'shop-drill.sqlite')}
    else:
        directory = arena['base'] / 'pitr'
        directory.mkdir(mode=0o700)   # the data directory the restore made, the cluster's account's
        os.chown(directory, racer_user.pw_uid, racer_user.pw_gid)
        name = MARKER
        target = {'datadir': str(directory)}
    as_user(racer_user, 'ln -s %s %s/%s' % (arena['outside'] / 'victim', directory, name))
    before = hostile.snapshot(arena['outside'])
    result = _mark(arena, fault, **target)
    changed = _changed_outside(before, arena)
    fault.observed('play rc %d; changed under outside/: %s' % (result.rc, changed))
    fault.lost(files=len(changed))
    assert changed == [], 'root followed the planted link: %s' % changed
    assert result.rc == 0 and result.result('mark')['changed'], result.stdout[-3000:]
    st = os.lstat(directory / name)
    assert (stat.S_ISREG(st.st_mode), st.st_uid, st.st_nlink, stat.S_IMODE(st.st_mode)) == (True, 0, 1, 0o600)
    assert json.loads((directory / name).read_text())['source'] == 'shop'
    assert sorted(os.listdir(directory)) == [name], 'a staged file left behind'


@pytest.mark.fast
@pytest.mark.fault(fault='none: the scratch target below directories of root\'s, reached through a link root made',
                   component='drill_step (step=mark)',
                   expected='marked, as before')
def test_mark_in_root_directories_still_written(arena, fault):
    """Guard (passed on the old code): a scratch path below root's own directories, through a symlink root made in one
    of them, is marked as before."""
    real = arena['base'] / 'drill'
    real.mkdir(mode=0o711)
    os.symlink(real, arena['base'] / 'drill-link')
    result = _mark(arena, fault, database=str(arena['base'] / 'drill-link' / 'shop-drill.sqlite'))
    assert result.rc == 0, result.stdout[-3000:]
    mark = result.result('mark')
    assert mark['changed'] and mark['details']['marker'] == str(arena['base'] / 'drill-link'
                                                                / ('shop-drill.sqlite.' + MARKER)), mark
    assert sorted(os.listdir(real)) == ['shop-drill.sqlite.' + MARKER]
    pitr = arena['base'] / 'drill' / 'pitr'
    pitr.mkdir(mode=0o700)
    result = _mark(arena, fault, datadir=str(pitr))
    assert result.rc == 0 and os.listdir(pitr) == [MARKER], result.stdout[-3000:]
