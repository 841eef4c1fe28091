"""Fidelity of file_backup -> file_restore, round 8: part of a hard link group.

- ``only`` selecting a hard link without its first name, restored by another user than root: the real run clears
  the setuid/setgid bit of the file it puts at the link's name (it cannot give the archived owner), and reported it
  under the first name, which it did not restore; check mode said nothing of it, nor of the owner it could not give;
- ``only`` selecting part of a hard link group (its first name, or some links): the names not selected keep what
  they hold in the target - as tar does - and nobody was told; the result now names them, with a warning.

These call file_backup's and file_restore's module_utils directly, as rounds 6 and 7 do; another user's restore runs
in a child process under setpriv.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.fidelity.test_files_round6 import NS, ROOT, backup  # noqa: E402
from tests.unit.plugins.modules.test_conformance_round7 import run_module  # noqa: E402


def warnings(result: dict) -> list:
    """The warnings' texts (ansible-core 2.19 returns each as a structured summary)."""
    return [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]


def write(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, ns=(NS, NS))


def as_nobody(home: Path, steps: list) -> list:
    """Run ``steps`` (each ``[check_mode, dest, only]``) as uid 65534 in one child; each restore_archive outcome."""
    code = ('import json, sys\n'
            'from ansible_collections.opsready.operations.plugins.module_utils.files import extract\n'
            'm = extract.find_archive(sys.argv[1], "set")\n'
            'print(json.dumps([extract.restore_archive(m, d, only=o, check_mode=c)\n'
            '                  for c, d, o in json.loads(sys.argv[2])]))\n')
    run = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                          os.path.realpath(sys.executable), '-c', code, str(home / 'backups'), json.dumps(steps)],
                         env=dict(os.environ, PYTHONPATH=str(home / 'lib')), capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture
def linked_setuid(tmp_path):
    """root's setuid-root binary bin/tool, hard linked at 'sbin/tool' and 'sbin/old tool' (a space), backed up, the
    backup copied where uid 65534 reads it (with the runtime it needs)."""
    if not ROOT or not shutil.which('setpriv'):
        pytest.skip('files of several owners need root (and setpriv)')
    from tests.fidelity.test_files_round4 import readable_runtime
    src = tmp_path / 'src'
    (src / 'bin').mkdir(parents=True)
    (src / 'sbin').mkdir()
    tool = src / 'bin' / 'tool'
    write(tool, '#!/bin/sh\necho tool\n')
    os.chmod(tool, 0o4755)
    os.utime(tool, ns=(NS, NS))
    os.link(tool, src / 'sbin' / 'tool')
    os.link(tool, src / 'sbin' / 'old tool')
    home = Path(tempfile.mkdtemp(prefix='opsready-nobody-', dir='/tmp'))   # tmp_path's parents are 0700
    try:
        backup(src, tmp_path / 'backups')
        subprocess.run(['cp', '-a', str(tmp_path / 'backups'), str(home / 'backups')], check=True)
        readable_runtime(home / 'lib')
        subprocess.run(['chown', '-R', '65534:65534', str(home)], check=True)
        yield home, src
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_another_users_check_mode_foresees_the_setuid_bit_cleared_on_a_link_without_its_first_name(linked_setuid):
    """``only: [<src>/sbin]`` as uid 65534: the links are restored as a file holding bin/tool's bytes, its setuid
    bit cleared (that user cannot give it root's ownership). The real run named bin/tool - which it did not
    restore - in not_restored and in owners_not_restored; check mode named nothing. Both now name the names restored,
    the same way, and a check after the restore lists nothing (the cleared mode is no change)."""
    home, src = linked_setuid
    target = str(home / 'restored')
    only = [str(src / 'sbin')]
    check, real, after = as_nobody(home, [[True, target, only], [False, target, only], [True, target, only]])
    rel = str(src).lstrip('/')
    names = [rel + '/sbin/old tool', rel + '/sbin/tool']
    placed = Path(target) / rel / 'sbin'
    for name in ('tool', 'old tool'):
        assert stat.S_IMODE(os.lstat(placed / name).st_mode) == 0o755, name
    assert not (Path(target) / rel / 'bin' / 'tool').exists()
    told = sorted(p['path'] for p in real['not_restored'])
    assert told == names and all('setuid' in p['reason'] for p in real['not_restored']), real['not_restored']
    assert sorted(p['path'] for p in check['not_restored']) == told, check['not_restored']
    assert [p['reason'] for p in check['not_restored']] == [p['reason'] for p in real['not_restored']]
    owned = sorted(e['path'] for e in real['owners_not_restored']['entries']
                   if e['path'] in names + [rel + '/bin/tool'])
    assert owned == names, real['owners_not_restored']
    assert sorted(e['path'] for e in check['owners_not_restored']['entries']
                  if e['path'] in names + [rel + '/bin/tool']) == owned, check['owners_not_restored']
    assert after['restored'] == [] and sorted(p['path'] for p in after['not_restored']) == told, after


# -- part of a hard link group: the names left ---------------------------------------------------------------------

NAMES = ['app.key', 'with space', 'new\nline', '-leading-dash', 'unicod\u00e9-\u2603', 'x' * 255]


@pytest.mark.parametrize('name', NAMES, ids=['plain', 'space', 'newline', 'dash', 'unicode', '255-bytes'])
def test_restoring_part_of_a_hard_link_group_names_the_names_left(tmp_path, name):
    """A key with two names, etc/<name> (archived first) and keys/<name>, one file in the target too. The key is
    edited in place (both names see it); ``only`` restores its first name alone: the archived key comes back at that
    name as a new file, and keys/<name> keeps the edited key, no longer linked to it - as tar does, but nobody was
    told. The module's result (check mode and real run alike) names the names left in ``hardlinks_left``, with a
    warning naming them; the same with only the link selected. A restore that puts nothing in place says nothing,
    and a whole restore (every name) says nothing either."""
    src = tmp_path / 'src'
    (src / 'etc').mkdir(parents=True)
    (src / 'keys').mkdir()
    write(src / 'etc' / name, 'secret key\n')
    os.link(src / 'etc' / name, src / 'keys' / name)
    dest, target = tmp_path / 'backups', tmp_path / 'restored'
    backup(src, dest)
    params = {'src': str(dest), 'name': 'set', 'dest': str(target)}
    whole, printed = run_module(tmp_path, 'file_restore', params)
    assert whole.get('changed') is True and whole['hardlinks_left'] == [], printed[-3000:]
    placed = target / str(src).lstrip('/')
    first, link = '/%s/etc/%s' % (str(src).lstrip('/'), name), '/%s/keys/%s' % (str(src).lstrip('/'), name)
    for chosen, left, selected in ((first, link, str(src / 'etc' / name)), (link, first, str(src / 'keys'))):
        write(placed / 'etc' / name, 'edited key\n')   # through one name: both see it
        assert (placed / 'keys' / name).read_text() == 'edited key\n'
        outcomes = {}
        for check in (True, False):
            done, printed = run_module(tmp_path, 'file_restore', dict(params, only=[selected]), check=check)
            assert not done.get('failed'), printed[-3000:]
            outcomes[check] = done
            assert done['hardlinks_left'] == [{'restored': [chosen], 'left': [left]}], (check, done)
            said = [w for w in warnings(done) if 'hardlinks_left' in w]
            assert len(said) == 1 and left in said[0], (check, warnings(done))
        assert warnings(outcomes[True]) == warnings(outcomes[False])
        chosen_path, left_path = (placed / 'etc' / name, placed / 'keys' / name) if chosen == first else \
            (placed / 'keys' / name, placed / 'etc' / name)
        assert chosen_path.read_text() == 'secret key\n' and left_path.read_text() == 'edited key\n'
        # nothing more to put in place: nothing said
        again, printed = run_module(tmp_path, 'file_restore', dict(params, only=[selected]))
        assert again.get('changed') is False and again['hardlinks_left'] == [], printed[-3000:]
        # the whole group restored again: one file, nothing left
        whole, printed = run_module(tmp_path, 'file_restore', params)
        assert whole['hardlinks_left'] == [] and not [w for w in warnings(whole) if 'hardlinks' in w]
        assert os.lstat(placed / 'etc' / name).st_ino == os.lstat(placed / 'keys' / name).st_ino
