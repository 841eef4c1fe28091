"""backup/rekey.py refusing what it must not do silently, each refusal saying what to do: a backup directory another
account controls (root writes ``.partial`` files, renames and lock files there: the rule of db_backup and file_backup,
with the same ``owner`` trust), an age file whose manifest records no encryption (a retired key would still open it
while the rotation reports done), a multi-file artifact recorded as encrypted; and the diff naming the recipients an
artifact was encrypted to."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest, write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.files.safe_read import UnsafeFileError
from tests.unit.plugins.module_utils.backup.test_rekey import encrypted_artifact, key, snapshot
from tests.unit.plugins.modules.test_conformance_round7 import run_module

NOBODY = 65534   # "another account" (the tests run as root)


def stamp():
    return utcnow().strftime('%Y%m%dT%H%M%S%fZ')


def plain_artifact(directory, payload=b'plain\n' * 1000, name=None):
    """An unencrypted artifact and its manifest (no ``encryption`` record)."""
    path = os.path.join(str(directory), name or 'etc-files-%s.tar' % stamp())
    with open(path, 'wb') as handle:
        handle.write(payload)
    now = isoformat(utcnow())
    write_manifest(path, {'engine': 'files', 'kind': 'files', 'database': 'etc', 'started': now, 'finished': now,
                          'size': len(payload), 'sha256': hashlib.sha256(payload).hexdigest(), 'compression': 'none'})
    return path


def catalog_below(tmp_path):
    """tmp_path/above/catalog, both root's and closed to others, with one artifact encrypted to a fresh key."""
    above = tmp_path / 'above'
    above.mkdir()
    os.chmod(str(above), 0o755)
    directory = above / 'catalog'
    directory.mkdir()
    os.chmod(str(directory), 0o700)
    old = key()
    path = encrypted_artifact(directory, [old.recipient])
    return above, directory, old, path


HOW = {
    'owned_by_another': lambda above, directory: os.chown(str(directory), NOBODY, NOBODY),
    'writable_by_others': lambda above, directory: os.chmod(str(directory), 0o777),
    'writable_by_its_group': lambda above, directory: os.chmod(str(directory), 0o770),
    'below_a_directory_of_another': lambda above, directory: os.chown(str(above), NOBODY, NOBODY),
}


@pytest.mark.parametrize('check_mode', [True, False], ids=['check_mode', 'real_run'])
@pytest.mark.parametrize('how', sorted(HOW))
def test_a_directory_another_account_controls_is_refused_before_anything(tmp_path, how, check_mode):
    """Root writes ``<artifact>.partial``, renames it over the artifact, rewrites manifests and makes lock files in
    ``src``: an account that owns or can write it (or a directory above) could swap those names for symlinks. Refused
    as db_backup refuses such a ``dest``, in check mode too, before any lock or file is made."""
    above, directory, old, path = catalog_below(tmp_path)
    HOW[how](above, directory)
    before = snapshot(directory)
    with pytest.raises(UnsafeFileError) as caught:
        rekey.rekey(str(directory), [key().recipient], [old], check_mode=check_mode)
    message = caught.value.message
    assert 'Backup directory %s is not safe to write' % directory in message, message
    assert 'become_user' in message and 'name it in owner' in message, message
    if how in ('owned_by_another', 'below_a_directory_of_another'):
        assert 'nobody' in message, message
    assert snapshot(directory) == before, 'something was written in a directory refused'


@pytest.mark.parametrize('how', ['owned_by_it', 'written_by_its_group'])
def test_the_account_named_in_owner_is_trusted_as_db_backup_trusts_it(tmp_path, how):
    """A WAL catalog that postgres owns (or writes through its group): named in ``owner``, as db_backup's ``owner``."""
    above, directory, old, path = catalog_below(tmp_path)
    if how == 'owned_by_it':
        os.chown(str(directory), NOBODY, NOBODY)
    else:
        os.chown(str(directory), 0, NOBODY)
        os.chmod(str(directory), 0o770)
    trusted = safeio.resolve_user('nobody')
    safeio.check_backup_dir(str(directory), owner=trusted)   # db_backup's rule accepts it: so does the rotation
    new = key()
    planned = rekey.rekey(str(directory), [new.recipient], [old], check_mode=True, owner=trusted)
    done = rekey.rekey(str(directory), [new.recipient], [old, new], owner=trusted)
    assert planned['rekeyed'] == done['rekeyed'] == [os.path.basename(path)] and done['failed'] == []
    assert read_manifest(path + '.manifest.json').data['encryption']['recipients'] == [new.recipient]


def test_a_directory_others_can_write_is_refused_even_with_owner(tmp_path):
    above, directory, old, path = catalog_below(tmp_path)
    os.chown(str(directory), NOBODY, NOBODY)
    os.chmod(str(directory), 0o777)
    for check_mode in (True, False):
        with pytest.raises(UnsafeFileError, match='writable by others'):
            rekey.rekey(str(directory), [key().recipient], [old], check_mode=check_mode,
                        owner=safeio.resolve_user('nobody'))


@pytest.mark.parametrize('check_mode', [True, False], ids=['check_mode', 'real_run'])
def test_an_age_file_whose_manifest_records_no_encryption_fails_and_says_what_to_do(tmp_path, check_mode):
    """Listed as not encrypted and left alone, a file that is an age file still opens with the key the rotation
    retires, while the run reports done: a failure, naming the file and what to do."""
    old, new = key(), key()
    hidden = encrypted_artifact(tmp_path, [old.recipient])
    data = dict(read_manifest(hidden + '.manifest.json').data)
    del data['encryption']
    write_manifest(hidden, data)
    plain = plain_artifact(tmp_path)
    before = snapshot(tmp_path)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=check_mode)
    assert result['not_encrypted'] == [os.path.basename(plain)], result
    assert result['rekeyed'] == [] and [f['id'] for f in result['failed']] == [os.path.basename(hidden)], result
    message = result['failed'][0]['msg']
    assert hidden in message and 'age' in message and 'records no encryption' in message, message
    assert 'was not re-encrypted' in message and 'run backup_rekey again' in message, message
    assert snapshot(tmp_path) == before


def test_a_plain_artifact_that_is_no_regular_file_stays_not_encrypted(tmp_path):
    """The header is looked at without following a link or waiting on a FIFO; nothing to say about either here."""
    old, new = key(), key()
    plain = plain_artifact(tmp_path)
    os.unlink(plain)
    os.mkfifo(plain)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=True)
    assert result['not_encrypted'] == [os.path.basename(plain)] and result['failed'] == [], result


@pytest.mark.parametrize('check_mode', [True, False], ids=['check_mode', 'real_run'])
def test_a_multi_file_artifact_recorded_as_encrypted_fails_saying_what_to_do(tmp_path, check_mode):
    old, new = key(), key()
    name = 'shop-full-%s.dir' % stamp()
    artifact = tmp_path / name
    artifact.mkdir()
    (artifact / 'toc.dat').write_bytes(b'toc')
    now = isoformat(utcnow())
    write_manifest(str(artifact), {
        'engine': 'postgresql', 'kind': 'full', 'database': 'shop', 'started': now, 'finished': now, 'size': 3,
        'sha256': hashlib.sha256(b'toc').hexdigest(), 'compression': 'none',
        'encryption': {'format': 'age', 'recipients': [old.recipient]},
        'members': [{'path': '%s/toc.dat' % name, 'size': 3, 'sha256': hashlib.sha256(b'toc').hexdigest()}]})
    result = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=check_mode)
    assert [f['id'] for f in result['failed']] == [name], result
    message = result['failed'][0]['msg']
    assert 'multi-file' in message and 'was not re-encrypted' in message, message
    assert 'single-file' in message and 'run backup_rekey again' in message, message


def test_the_diff_names_the_recipients_each_artifact_was_encrypted_to(tmp_path):
    """The diff said "encrypted to the old recipients": the public keys are named (they are no secret)."""
    directory = tmp_path / 'catalog'
    directory.mkdir()
    os.chmod(str(directory), 0o700)
    old_secret, escrow, new = encryption.generate_identity(), key(), key()
    old = encryption.parse_identities(old_secret)[0]
    one = os.path.basename(encrypted_artifact(directory, [old.recipient, escrow.recipient]))
    two = os.path.basename(encrypted_artifact(directory, [old.recipient]))
    params = {'src': str(directory), 'recipients': [new.recipient, escrow.recipient], 'identity': old_secret}
    for check in (True, False):
        result, printed = run_module(tmp_path, 'backup_rekey', params, check=check, diff=True)
        assert result.get('changed') is True and not result.get('failed'), printed[-3000:]
        before = result['diff']['before'].splitlines()
        both = ', '.join(sorted([old.recipient, escrow.recipient]))
        assert sorted(before) == sorted(['%s: encrypted to %s' % (one, both),
                                         '%s: encrypted to %s' % (two, old.recipient)]), before
        assert result['previous_recipients'] == {one: sorted([old.recipient, escrow.recipient]),
                                                 two: [old.recipient]}
        assert old_secret not in printed


def test_the_module_refuses_another_accounts_directory_unless_owner_names_it(tmp_path):
    """The module's ``owner`` option (db_backup's): without it the run fails with db_backup's message; with it the
    rotation runs."""
    directory = tmp_path / 'catalog'
    directory.mkdir()
    old_secret, new = encryption.generate_identity(), key()
    old = encryption.parse_identities(old_secret)[0]
    one = os.path.basename(encrypted_artifact(directory, [old.recipient]))
    os.chown(str(directory), NOBODY, NOBODY)
    os.chmod(str(directory), 0o700)
    params = {'src': str(directory), 'recipients': [new.recipient], 'identity': old_secret}
    for check in (True, False):
        result, printed = run_module(tmp_path, 'backup_rekey', params, check=check)
        assert result.get('failed') is True and 'is not safe to write' in result['msg'], printed[-3000:]
        assert 'name it in owner' in result['msg']
    result, printed = run_module(tmp_path, 'backup_rekey', dict(params, owner='nobody'))
    assert result.get('changed') is True and result['rekeyed'] == [one], printed[-3000:]
