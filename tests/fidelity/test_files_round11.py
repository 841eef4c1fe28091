"""Fidelity of file_restore, round 11: check mode tells what the real run does, on crafted archives and on a target
reached through a link.

- A member below a member that is not a directory (``e`` archived as a file, a symlink or a FIFO, then ``e/x``; or
  ``e/x`` first, then ``e`` as a file): the real run refused it in staging ("a directory on its path is a symlink or
  not a directory", "would replace a directory extracted before it"), check mode listed both as to restore. Refused
  alike in both now, with the real run's message, before anything is written.
- Check mode opened ``dest`` a second time by its path (``os.open(dest)``, links on the way followed; one at its
  last name refused), where the real run works on the one descriptor ``_open_dest`` walked to: a dest that is a
  link root made (followed by both walks) was "everything would be restored" in check mode, unchanged in the run,
  and a dest renamed away and linked elsewhere between the two opens was compared with the other directory. Check
  mode now works on the descriptor ``_open_dest`` returns.

Archives are crafted by hand beside a consistent manifest (whoever can write the backup directory can write both):
``tests/harness/hostile_archives.py`` (the cases, shared with the unit and integration layers).
"""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import extract  # noqa: E402
from tests.fidelity.test_files_round10 import listing, restore  # noqa: E402
from tests.harness.hostile_archives import (  # noqa: E402
    ESCAPING, HARDLINK_TO_A_SYMLINK, NAME, UNDER, crafted, info, refused_entries, tar_bytes)


def _real_message(backups: Path, tmp: Path) -> str:
    target = tmp / 'first-run'
    target.mkdir()
    with pytest.raises(IntegrityError) as failed:
        restore(backups, target)
    assert listing(target) == []
    return str(failed.value)


@pytest.mark.parametrize('case', sorted(UNDER))
def test_a_member_under_a_member_that_is_not_a_directory_is_refused_alike_in_check_mode(tmp_path, case):
    crafted(tmp_path / 'b', tar_bytes(UNDER[case]))
    said = _real_message(tmp_path / 'b', tmp_path)
    assert 'set-20261129T000000000000Z.tar' in said and said.endswith('Nothing was written.'), said
    target = tmp_path / 't'
    target.mkdir()
    with pytest.raises(IntegrityError) as checked:
        restore(tmp_path / 'b', target, check_mode=True)
    assert str(checked.value) == said
    assert listing(target) == []


@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case', sorted(ESCAPING) + sorted(HARDLINK_TO_A_SYMLINK))
def test_a_member_escaping_the_root_or_a_hard_link_to_a_symlink_is_refused_alike_in_check_mode(tmp_path, case,
                                                                                               check_mode):
    """The hostile archives only the unit layer ran (on backup_verify, against file_restore's check mode): the real
    run refuses each too, before anything is written."""
    crafted(tmp_path / 'b', tar_bytes(refused_entries(case)))
    target = tmp_path / 't'
    target.mkdir()
    with pytest.raises(IntegrityError) as failed:
        restore(tmp_path / 'b', target, check_mode=check_mode)
    said = str(failed.value)
    assert NAME in said and said.endswith('Nothing was written.'), said
    assert listing(target) == [] and not (tmp_path / 'x').exists()


def test_a_member_under_a_directory_still_restores_in_any_order(tmp_path):
    """What file_backup writes (a directory before its content), a directory archived after its content (tar
    --no-recursion lists), and a path whose directory is not archived at all: all restore as before."""
    crafted(tmp_path / 'b', tar_bytes([
        (info('d', tarfile.DIRTYPE, mode=0o755), None), (info('d/x', size=2), b'xx'),
        (info('late/y', size=2), b'yy'), (info('late', tarfile.DIRTYPE, mode=0o750), None),
        (info('loose/deep/z', size=2), b'zz'), (info('ed', size=2), b'ed'), (info('e/d', size=2), b'ee')]))
    target = tmp_path / 't'
    foreseen = restore(tmp_path / 'b', target, check_mode=True)
    done = restore(tmp_path / 'b', target)
    assert sorted(foreseen['restored']) == sorted(os.path.relpath(p, target) if p.startswith('/') else p
                                                  for p in done['restored']) or len(foreseen['restored']) == 6
    assert (target / 'late' / 'y').read_bytes() == b'yy' and (target / 'late').stat().st_mode & 0o777 == 0o750
    assert (target / 'e' / 'd').read_bytes() == b'ee' and (target / 'ed').read_bytes() == b'ed'


# -- check mode works on the descriptor of dest it opened --------------------------------------------------------

def _archive(tmp_path: Path) -> Path:
    crafted(tmp_path / 'b', tar_bytes([(info('d', tarfile.DIRTYPE, mode=0o755), None),
                                       (info('d/x', size=2), b'xx'), (info('y', size=3), b'yyy')]))
    return tmp_path / 'b'


@pytest.mark.skipif(os.geteuid() != 0, reason='a link only root could have made: root follows it')
def test_check_mode_through_a_dest_link_root_made_agrees_with_the_run(tmp_path):
    """dest is a symlink root made in a directory of root's (the real run and _open_dest follow it): check mode
    opened dest again with O_NOFOLLOW, failed, and said everything would be restored."""
    backups = _archive(tmp_path)
    real = tmp_path / 'srv' / 'restore'
    real.mkdir(parents=True)
    os.chmod(tmp_path, 0o700)
    link = tmp_path / 'restore-link'
    link.symlink_to(real)
    restore(backups, link)
    assert (real / 'd' / 'x').read_bytes() == b'xx'
    assert restore(backups, link)['restored'] == []
    foreseen = restore(backups, link, check_mode=True)
    assert foreseen['restored'] == [] and foreseen['directories'] == [], foreseen


def test_check_mode_compares_the_directory_it_opened_not_what_its_name_leads_to_later(tmp_path, monkeypatch):
    """dest renamed away and its name linked to another directory right after _open_dest walked to it: check mode
    opened the name again and compared the archive with that other directory."""
    backups = _archive(tmp_path)
    target = tmp_path / 't'
    restore(backups, target)
    decoy = tmp_path / 'decoy'
    decoy.mkdir()
    opened = extract._open_dest

    def swapped_after_open(dest, create):
        fd = opened(dest, create)
        os.rename(target, str(target) + '.away')
        os.symlink(decoy, target)
        return fd

    monkeypatch.setattr(extract, '_open_dest', swapped_after_open)
    foreseen = restore(backups, target, check_mode=True)
    monkeypatch.undo()
    assert foreseen['restored'] == [] and foreseen['directories'] == [], foreseen
    assert listing(decoy) == []


# -- the module, through ansible-playbook -------------------------------------------------------------------------

def test_the_module_refuses_a_member_under_a_file_alike_in_check_mode(tmp_path):
    from tests.harness.playbook import run_playbook, write_playbook
    crafted(tmp_path / 'b', tar_bytes(UNDER['a file then a member below it']))
    target = tmp_path / 't'
    target.mkdir()
    tasks = [{'name': 'file_restore', 'opsready.operations.file_restore': {
        'src': str(tmp_path / 'b'), 'dest': str(target), 'name': 'set'}}]
    check = run_playbook(write_playbook(tmp_path, tasks), check=True)
    real = run_playbook(write_playbook(tmp_path, tasks))
    assert check.rc != 0 and real.rc != 0, (check.stdout[-3000:], real.stdout[-3000:])
    said = check.result('file_restore')['msg']
    assert 'e/x' in said and 'not a directory' in said, said
    assert said == real.result('file_restore')['msg']
    assert listing(target) == []
