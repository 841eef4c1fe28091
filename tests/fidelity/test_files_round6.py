"""Fidelity of file_backup -> file_restore, round 6: what a restore cannot give back is said, and check mode says
what the real run will do.

- a hard link to a file outside the backed-up set came back as a separate file, with nothing said;
- a restore by another user than root gave every entry its own owner in silence;
- check mode by such a user listed every setuid file as "would change" on every run (the real restore clears the
  bit and then leaves the file alone) and did not say which bits the real run clears;
- check mode read every byte of a sparse member's holes from the archive to compare it;
- check mode was untested on encrypted archives and hard links.

These call file_backup's and file_restore's module_utils directly (their module wrappers only turn the returned
lists into warnings); another user's restore runs in a child process under setpriv.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.files import archive, extract  # noqa: E402

ROOT = os.geteuid() == 0
NS = 1_600_000_000_123_456_789


def backup(src, dest: Path, **extra) -> dict:
    archive.prepare_dest(str(dest), False)
    return archive.create_archive([str(s) for s in (src if isinstance(src, list) else [src])], str(dest), 'set',
                                  compression='none', **extra)


def restore(dest: Path, target: Path, **extra) -> dict:
    return extract.restore_archive(extract.find_archive(str(dest), 'set'), str(target), **extra)


# -- hard links to files outside the set -------------------------------------------------------------------------

def test_hard_links_to_files_outside_the_set_are_reported_at_backup_time(tmp_path):
    """A file of the set with another name outside it (``/etc/app/tls.key`` linked from ``/srv/keys``) is archived as
    a plain file: a restore cannot make the link to a name it does not have, so the pair comes back as two files and
    an edit of one no longer shows in the other. Said at backup time (the operator can then add the other name to
    paths while the source still exists), in the result and in the manifest. Links whose names are all in the set
    are not listed."""
    src = tmp_path / 'src'
    src.mkdir()
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    (outside / 'shared.key').write_text('k\n')
    os.link(outside / 'shared.key', src / 'tls.key')
    (src / 'a').write_text('a\n')
    os.link(src / 'a', src / 'b')                      # both names in the set
    (src / 'three').write_text('3\n')
    os.link(src / 'three', src / 'three-again')        # two of three names in the set
    os.link(src / 'three', outside / 'three-outside')
    manifest = backup(src, tmp_path / 'backups')
    found = {e['path']: e for e in manifest['hardlinks_outside']}
    assert sorted(found) == [str(src / 'three'), str(src / 'tls.key')], manifest['hardlinks_outside']
    assert found[str(src / 'tls.key')]['links'] == 2 and found[str(src / 'tls.key')]['archived'] == 1
    assert found[str(src / 'three')]['links'] == 3 and found[str(src / 'three')]['archived'] == 2
    stored = json.loads(Path(manifest['path'] + '.manifest.json').read_text()) \
        if os.path.exists(manifest['path'] + '.manifest.json') else None
    if stored is not None:
        assert stored['hardlinks_outside'] == manifest['hardlinks_outside']


# -- another user's restore: owners, setuid bits, check mode ------------------------------------------------------

def _as_nobody(home: Path, steps: list) -> list:
    """Run ``steps`` (each ``[check_mode, dest]``) as uid 65534 in one child; returns each restore_archive outcome."""
    code = ('import json, sys\n'
            'from ansible_collections.opsready.operations.plugins.module_utils.files import extract\n'
            'm = extract.find_archive(sys.argv[1], "set")\n'
            'print(json.dumps([extract.restore_archive(m, d, check_mode=c) for c, d in json.loads(sys.argv[2])]))\n')
    run = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                          os.path.realpath(sys.executable), '-c', code, str(home / 'backups'), json.dumps(steps)],
                         env=dict(os.environ, PYTHONPATH=str(home / 'lib')), capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture(scope='module')
def nobody_home(tmp_path_factory):
    """A backup of root's files (setuid, setgid, other owners) copied where uid 65534 can read it, with the runtime
    that user needs to import extract."""
    if not ROOT:
        pytest.skip('files of several owners need root')
    from tests.fidelity.test_files_round4 import readable_runtime
    base = tmp_path_factory.mktemp('nobody')
    src = base / 'src' / 'bin'
    src.mkdir(parents=True)
    files = {'suid-root': (0o4755, 0, 0), 'sgid-shadow': (0o2755, 0, 42), 'plain-root': (0o644, 0, 0),
             'theirs': (0o644, 65534, 65534), 'theirs-sgid': (0o2755, 65534, 65534)}
    for name, (mode, uid, gid) in files.items():
        (src / name).write_text(name)
        os.chown(src / name, uid, gid)
        os.chmod(src / name, mode)
        os.utime(src / name, ns=(NS, NS))
    home = Path(tempfile.mkdtemp(prefix='opsready-nobody-', dir='/tmp'))   # tmp_path's parents are 0700
    try:
        backup(src, base / 'backups')
        subprocess.run(['cp', '-a', str(base / 'backups'), str(home / 'backups')], check=True)
        readable_runtime(home / 'lib')
        subprocess.run(['chown', '-R', '65534:65534', str(home)], check=True)
        yield home, src
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def test_another_users_restore_reports_the_owners_it_could_not_give(nobody_home):
    """Only root gives a file its archived owner: another user's restore made every entry that user's and said
    nothing of it (only the setuid/setgid bits it cleared were listed). Now the entries whose archived owner or group
    differs from what they got are counted, the first ones listed with what they should have been, in check mode as
    in the real run, and again on a re-restore (the tree still differs from the archive)."""
    home, src = nobody_home
    target = str(home / 'owners')
    check, real, again = _as_nobody(home, [[True, target], [False, target], [False, target]])
    rel = str(src).lstrip('/')
    for outcome in (check, real, again):
        owners = outcome['owners_not_restored']
        # the directories src's parents and src itself are root's too
        names = {e['path'] for e in owners['entries']}
        assert {rel + '/suid-root', rel + '/sgid-shadow', rel + '/plain-root'} <= names, owners
        assert rel + '/theirs' not in names and rel + '/theirs-sgid' not in names, owners
        assert owners['count'] == len(owners['entries']), owners
        shadow = [e for e in owners['entries'] if e['path'] == rel + '/sgid-shadow'][0]
        assert (shadow['uid'], shadow['gid']) == (0, 42), shadow
    assert again['restored'] == [], again


def test_another_users_check_mode_foresees_the_setid_bits_the_restore_clears(nobody_home):
    """Check mode by another user than root compared the archived mode (04755) with the file in place, which the
    real restore had given 0755 (its setuid bit cleared, the owner being that user): every check run listed the
    setuid and setgid files as "would change" though a restore left them alone, and no check run said which bits a
    restore clears. Now check mode reports the clearing in not_restored, as the real run does, and an unchanged
    tree lists nothing."""
    home, src = nobody_home
    target = str(home / 'setid')
    first_check, real, check_after = _as_nobody(home, [[True, target], [False, target], [True, target]])
    told = sorted(p['path'].rsplit('/', 1)[-1] for p in real['not_restored'])
    assert told == ['sgid-shadow', 'suid-root'], real
    assert sorted(p['path'].rsplit('/', 1)[-1] for p in first_check['not_restored']) == told, first_check
    assert check_after['restored'] == [], check_after
    assert sorted(p['path'].rsplit('/', 1)[-1] for p in check_after['not_restored']) == told, check_after
    restored = home / 'setid' / str(src).lstrip('/')
    assert stat.S_IMODE(os.lstat(restored / 'theirs-sgid').st_mode) == 0o2755


# -- check mode: sparse members, encrypted archives, hard links -----------------------------------------------------

def test_check_mode_reads_only_the_data_of_a_sparse_member(tmp_path):
    """Check mode's second pass over the archive digested a sparse member through tarfile, which hands out every
    byte of the holes as zeros: 64 GiB of zeros read and compared for a disk image holding 2 MiB of data (~40 s
    here). Now only the member's data extents are read (its sparse map), and a change in them is still seen."""
    src = tmp_path / 'src'
    src.mkdir()
    image = src / 'disk.img'
    with open(image, 'wb') as handle:
        handle.truncate(64 << 30)
        handle.seek(1 << 20)
        handle.write(b'boot' * (256 << 10))
        handle.seek(40 << 30)
        handle.write(b'data' * (256 << 10))
    os.utime(image, ns=(NS, NS))
    dest = tmp_path / 'backups'
    backup(src, dest)
    target = tmp_path / 'restored'
    restore(dest, target)
    started = time.monotonic()
    check = restore(dest, target, check_mode=True)
    took = time.monotonic() - started
    assert check['restored'] == [] and check['unchanged'] == 1, check
    assert took < 5, 'check mode took %.1f s over an identical 64 GiB sparse file' % took
    placed = target / str(image).lstrip('/')
    with open(placed, 'r+b') as handle:
        handle.seek((40 << 30) + 10)
        handle.write(b'DATA')
    os.utime(placed, ns=(NS, NS))
    assert restore(dest, target, check_mode=True)['restored'] == [str(image).lstrip('/')]


@pytest.fixture
def linked_tree(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'first').write_text('shared content\n')
    os.link(src / 'first', src / 'second')
    (src / 'other.conf').write_text('other\n')
    for path in (src / 'first', src / 'other.conf'):
        os.utime(path, ns=(NS, NS))
    return src


@pytest.mark.parametrize('encrypted', [False, True], ids=['plain', 'age'])
def test_check_mode_agrees_with_the_restore_on_hard_links_and_encrypted_archives(tmp_path, linked_tree, encrypted):
    """Regression guard (passed before): check mode over an encrypted archive, and over hard links - an identical
    tree lists nothing; a link split into two files of the same content, mode and mtime lists the name the restore
    links again; a same-size edit with its mtime put back is seen through the decryption."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    src = linked_tree
    extra: dict = {}
    identities = None
    if encrypted:
        secret = encryption.generate_identity()
        identities = encryption.parse_identities(secret)
        extra['recipients'] = [identities[0].recipient]
    dest = tmp_path / 'backups'
    backup(src, dest, **extra)
    target = tmp_path / 'restored'
    restore(dest, target, identities=identities)
    rel = str(src).lstrip('/')
    placed = target / rel
    assert os.lstat(placed / 'first').st_ino == os.lstat(placed / 'second').st_ino
    assert restore(dest, target, check_mode=True, identities=identities)['restored'] == []
    # split the pair: 'second' becomes a copy with the same bytes, mode and mtime
    os.unlink(placed / 'second')
    shutil.copy2(placed / 'first', placed / 'second')
    os.utime(placed / 'second', ns=(NS, NS))
    edited = placed / 'other.conf'
    edited.write_text('OTHER\n')
    os.utime(edited, ns=(NS, NS))
    check = restore(dest, target, check_mode=True, identities=identities)
    assert sorted(check['restored']) == [rel + '/other.conf', rel + '/second'], check
    real = restore(dest, target, identities=identities)
    assert sorted(real['restored']) == [str(placed / 'other.conf'), str(placed / 'second')], real
    assert os.lstat(placed / 'first').st_ino == os.lstat(placed / 'second').st_ino
    assert restore(dest, target, check_mode=True, identities=identities)['restored'] == []
