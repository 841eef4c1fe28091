"""backup/rekey.py and the locks it takes: the catalog read under the run lock, each manifest read again right
before it is settled, the set lock's name (the backup modules' own), its owner when a killed run leaves it, and
what a lock failure says."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog as catalog_mod
from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.leftovers import set_lock, set_lock_path
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
from tests.unit.plugins.module_utils.backup.test_rekey import encrypted_artifact, key


def renamed(directory, path, name):
    """The artifact at ``path`` (and its manifest) under ``name``."""
    target = os.path.join(str(directory), name)
    for suffix in ('', '.manifest.json'):
        os.rename(path + suffix, target + suffix)
    data = json.loads(open(target + '.manifest.json').read())
    data.update(id=name, artifact=name)
    with open(target + '.manifest.json', 'w') as handle:
        json.dump(data, handle)
    return target


def stamp_of(path):
    return os.path.basename(path).split('-', 2)[2]


def test_a_manifest_rewritten_after_the_catalog_was_read_is_read_again_before_it_is_settled(tmp_path, monkeypatch):
    """Run A wrote rekey_pending on a WAL segment (no set lock: its name has no time stamp); a catalog read then holds
    the old fields and the marker; A swapped and wrote the final manifest. Settling what that catalog holds would
    write the old sha256 back over the new manifest: the segment would fail its checksum for good."""
    old, new = key(), key()
    segment = renamed(tmp_path, encrypted_artifact(tmp_path, [old.recipient]), '000000010000000000000001.age')
    stale = []

    def read_midway(point, artifact_id):
        if point == 'after_pending':
            stale.append(catalog_mod.Catalog(str(tmp_path)))

    assert rekey.rekey(str(tmp_path), [new.recipient], [old], fault=read_midway)['rekeyed'] == [
        os.path.basename(segment)]
    assert rekey.PENDING in stale[0].entries[0].data
    monkeypatch.setattr(rekey, 'Catalog', lambda *args, **kwargs: stale.pop() if stale else
                        catalog_mod.Catalog(*args, **kwargs))
    result = rekey.rekey(str(tmp_path), [new.recipient], [new])
    final = read_manifest(segment + '.manifest.json').data
    assert rekey.PENDING not in final and final['encryption']['recipients'] == [new.recipient]
    assert final['sha256'] == hashlib.sha256(open(segment, 'rb').read()).hexdigest()
    # nothing left to do: what the catalog held (old fields + marker) is not written back
    assert result['settled'] == [] and result['rekeyed'] == [] and result['already'] == [os.path.basename(segment)]


def test_the_catalog_is_read_under_the_run_lock(tmp_path, monkeypatch):
    old, new = key(), key()
    encrypted_artifact(tmp_path, [old.recipient])
    real, seen = catalog_mod.Catalog, []

    def noting(*args, **kwargs):
        seen.append(os.path.lexists(os.path.join(str(tmp_path), rekey.RUN_LOCK)))
        return real(*args, **kwargs)

    monkeypatch.setattr(rekey, 'Catalog', noting)
    rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert seen and all(seen), seen


def test_the_set_lock_is_the_one_the_backup_of_the_set_takes(tmp_path):
    """file_backup name=etc- writes etc--<stamp> under .etc-.lock: one dash dropped, not every trailing one."""
    old, new = key(), key()
    path = renamed(tmp_path, encrypted_artifact(tmp_path, [old.recipient]),
                   'etc--' + stamp_of(encrypted_artifact(tmp_path, [old.recipient])))
    entry = [e for e in catalog_mod.Catalog(str(tmp_path)).entries if e.path == path][0]
    assert rekey._set_lock(entry) == set_lock_path(str(tmp_path), 'etc-')
    with set_lock(str(tmp_path), 'etc-'):
        result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert os.path.basename(path) in [f['id'] for f in result['failed']]


def test_check_mode_fails_a_partial_that_is_a_directory_as_the_run_does(tmp_path):
    old, new = key(), key()
    odd = encrypted_artifact(tmp_path, [old.recipient])
    os.mkdir(odd + '.partial')
    planned = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=True)
    done = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert planned['failed'] == done['failed'] and [f['id'] for f in done['failed']] == [os.path.basename(odd)]
    assert planned['rekeyed'] == done['rekeyed'] == [] and planned['settled'] == done['settled'] == []
    assert os.path.isdir(odd + '.partial')


@pytest.mark.skipif(os.geteuid() != 0, reason='makes a directory another account owns')
def test_a_set_lock_a_killed_run_leaves_is_the_backup_owners_own(tmp_path):
    """A SIGKILLed rotation leaves the set lock it made; the set's backups (become_user postgres, the directory's
    owner) open it as theirs: owned by the directory's owner, 0600, as a backup run as that owner makes it."""
    old, new = key(), key()
    dest = tmp_path / 'dest'
    dest.mkdir(mode=0o700)
    path = encrypted_artifact(dest, [old.recipient])
    for name in os.listdir(str(dest)) + ['']:
        os.chown(os.path.join(str(dest), name), 65534, 65534)
    lock = set_lock_path(str(dest), 'etc-files')
    seen = []

    def killed_here(point, artifact_id):
        if point == 'after_partial':
            info = os.lstat(lock)   # what a SIGKILL now would leave
            seen.append((info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), stat.S_ISREG(info.st_mode)))

    result = rekey.rekey(str(dest), [new.recipient], [old], fault=killed_here, owner=(65534, 65534))
    assert result['rekeyed'] == [os.path.basename(path)], result['failed']
    assert seen == [(65534, 65534, 0o600, True)]
    assert not os.path.lexists(lock)   # made by this run: removed again


def test_a_lock_that_is_no_lock_says_what_it_is_not_that_a_backup_runs(tmp_path):
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient])
    os.symlink(str(tmp_path / 'elsewhere'), set_lock_path(str(tmp_path), 'etc-files'))
    result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert [f['id'] for f in result['failed']] == [os.path.basename(path)]
    message = result['failed'][0]['msg']
    assert 'symbolic link' in message and 'not re-encrypted' in message, message
    assert 'backup of this set is running' not in message and 'once that backup has finished' not in message, message
    assert not os.path.lexists(str(tmp_path / 'elsewhere'))


def test_a_busy_set_lock_still_says_a_backup_of_the_set_is_running(tmp_path):
    old, new = key(), key()
    encrypted_artifact(tmp_path, [old.recipient])
    with set_lock(str(tmp_path), 'etc-files'):
        result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert 'A backup of this set is running' in result['failed'][0]['msg']
    assert 'once that backup has finished' in result['failed'][0]['msg']


def test_what_the_module_returns_is_what_return_documents(tmp_path):
    """Ansible takes a module's ``failed`` key for its verdict: a list there was never what a task saw. The failed
    artifacts are ``failed_artifacts`` (on failure); every key documented ``returned: always`` is there."""
    import yaml
    from ansible_collections.opsready.operations.plugins.modules import backup_rekey
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    from tests.unit.plugins.modules.test_conformance_round7 import run_module
    documented = yaml.safe_load(backup_rekey.RETURN)
    assert 'failed' not in documented
    old_secret, new = encryption.generate_identity(), key()
    old = encryption.parse_identities(old_secret)[0]
    (tmp_path / 'catalog').mkdir()
    encrypted_artifact(tmp_path / 'catalog', [old.recipient])
    params = {'src': str(tmp_path / 'catalog'), 'recipients': [new.recipient], 'identity': old_secret}
    result, printed = run_module(tmp_path, 'backup_rekey', params)
    assert result.get('changed') is True, printed[-3000:]
    assert 'failed' not in result or result['failed'] is False, result
    always = [k for k, v in documented.items() if v.get('returned') == 'always']
    assert [k for k in always if k not in result] == [], result
