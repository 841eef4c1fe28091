"""Key rotation end to end: real age identities (age-keygen), a catalog of encrypted SQLite backups and an
encrypted file backup, re-encrypted by backup_rekey through ansible-playbook; restores with the new key,
the old key refused with a message naming what it still opens; interrupted rotations at every step."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import check_decryptable  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.integration.test_backup_copy import make_db, rows  # noqa: E402


def keygen(path: Path):
    subprocess.run(['age-keygen', '-o', str(path)], check=True, capture_output=True)
    secret = [line for line in path.read_text().splitlines() if line.startswith('AGE-SECRET-KEY-')][0]
    public = subprocess.run(['age-keygen', '-y', str(path)], check=True, capture_output=True, text=True).stdout.strip()
    return secret, public, path


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """Keys, a database and a catalog of 2 encrypted SQLite backups + 1 encrypted file backup (old key + escrow)."""
    root = tmp_path_factory.mktemp('rekey')
    old, new, escrow = (keygen(root / ('%s.txt' % n)) for n in ('old', 'new', 'escrow'))
    db = root / 'shop.db'
    make_db(db)
    tree = root / 'etc'
    tree.mkdir()
    (tree / 'app.conf').write_text('secret=1\n' * 1000)
    catalog = root / 'catalog'
    enc = {'encrypt': True, 'recipients': [old[1], escrow[1]]}
    tasks = [{'name': 'db%d' % i, 'opsready.operations.db_backup': dict(
        enc, engine='sqlite', database=str(db), dest=str(catalog))} for i in range(2)]
    tasks.append({'name': 'files', 'opsready.operations.file_backup': dict(
        enc, paths=[str(tree)], dest=str(catalog), name='etc')})
    result = run_playbook(write_playbook(root, tasks))
    assert result.rc == 0, result.stdout[-3000:]
    return {'root': root, 'old': old, 'new': new, 'escrow': escrow, 'db': db, 'catalog': catalog,
            'expected': rows(db), 'tree': tree}


def artifacts(directory: Path):
    return sorted(p for p in directory.iterdir() if p.name.endswith('.age'))


def state(directory: Path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def opens_with(path: Path, key: Path) -> bool:
    return subprocess.run(['age', '-d', '-i', str(key), '-o', '/dev/null', str(path)],
                          capture_output=True, check=False).returncode == 0


def assert_consistent(directory: Path, keys):
    """Every manifest matches its artifact, and the artifact opens with the keys its manifest names."""
    catalog = Catalog(str(directory))
    assert catalog.broken == []
    by_public = {k[1]: k for k in keys}
    for entry in catalog.entries:
        data = Path(entry.path).read_bytes()
        assert entry.data['sha256'] == hashlib.sha256(data).hexdigest(), entry.id
        assert entry.data['size'] == len(data), entry.id
        for public in entry.data['encryption']['recipients']:
            assert opens_with(Path(entry.path), by_public[public][2]), (entry.id, public)
        identities = encryption.parse_identities(by_public[entry.data['encryption']['recipients'][0]][0])
        info = entry.data['encryption']
        sealed = encryption.open_sealed(info['plaintext_sha256_sealed'], identities, entry.id) \
            if 'plaintext_sha256_sealed' in info else None  # not re-keyed yet: zstd's content checksum instead
        with open(entry.path, 'rb') as raw:
            reader = encryption.DecryptingReader(raw, identities, entry.id, expected_sha256=sealed,
                                                 expected_size=info['plaintext_size'])
            reader.drain()


def test_rekey_through_ansible_check_mode_idempotence_restore_and_retired_key(world, tmp_path):
    catalog = tmp_path / 'catalog'
    shutil.copytree(world['catalog'], catalog)
    old, new, escrow = world['old'], world['new'], world['escrow']
    before = state(catalog)
    assert len(artifacts(catalog)) == 3
    task = {'name': 'rekey', 'opsready.operations.backup_rekey': {
        'src': str(catalog), 'recipients': [new[1], escrow[1]], 'identity_file': str(old[2])}}
    checked = run_playbook(write_playbook(tmp_path, [task]), check=True, diff=True)
    assert checked.rc == 0, checked.stdout[-3000:]
    out = checked.result('rekey')
    assert out['changed'] is True and len(out['rekeyed']) == 3
    assert sorted(out['readable_by']) == sorted([new[1], escrow[1]])
    assert state(catalog) == before, 'check mode changed something'

    restored = tmp_path / 'restored.db'
    book = write_playbook(tmp_path, [
        task,
        dict(task, name='again'),
        {'name': 'restore', 'opsready.operations.db_restore': {
            'engine': 'sqlite', 'src': str(catalog), 'database': str(restored),
            'source_database': str(world['db']), 'identity': '{{ new_key }}'}},
        {'name': 'files_new', 'opsready.operations.file_restore': {
            'src': str(catalog), 'name': 'etc', 'dest': str(tmp_path / 'etc'), 'identity': '{{ new_key }}'}},
        {'name': 'files_old', 'opsready.operations.file_restore': {
            'src': str(catalog), 'name': 'etc', 'dest': str(tmp_path / 'etc-old'), 'identity': '{{ old_key }}'},
         'ignore_errors': True}])
    result = run_playbook(book, extravars={'new_key': new[0], 'old_key': old[0]})
    assert result.rc == 0, result.stdout[-3000:]
    assert new[0] not in result.stdout and old[0] not in result.stdout
    first, again = result.result('rekey'), result.result('again')
    assert first['changed'] is True and sorted(first['rekeyed']) == sorted(a.name for a in artifacts(catalog))
    assert again['changed'] is False and again['rekeyed'] == [] and len(again['already']) == 3
    everything = sorted(first['rekeyed'])
    assert {k: sorted(v) for k, v in first['readable_by'].items()} == {new[1]: everything, escrow[1]: everything}
    assert rows(restored) == world['expected']
    assert [p.read_text() for p in (tmp_path / 'etc').rglob('app.conf')] == ['secret=1\n' * 1000]
    failed = result.result('files_old')
    assert 'retired from this artifact by backup_rekey' in failed['msg'] and not (tmp_path / 'etc-old').exists()
    for artifact in artifacts(catalog):
        assert opens_with(artifact, new[2]) and opens_with(artifact, escrow[2])
        assert not opens_with(artifact, old[2]), 'the retired key still opens %s' % artifact.name
        manifest = json.loads(Path(str(artifact) + '.manifest.json').read_text())
        assert manifest['encryption']['retired'] == [old[1]] and 'rekey_pending' not in manifest
    assert_consistent(catalog, [old, new, escrow])


@pytest.mark.parametrize('point', rekey.POINTS)
def test_an_interrupted_rekey_leaves_every_artifact_readable_and_consistent(world, tmp_path, point):
    catalog = tmp_path / 'catalog'
    shutil.copytree(world['catalog'], catalog)
    old, new, escrow = world['old'], world['new'], world['escrow']
    identities = encryption.parse_identities(old[0])
    calls = []

    def crash(where, artifact_id):
        if where == point:
            calls.append(artifact_id)
            if len(calls) == 2:
                raise RuntimeError('power loss at %s' % where)

    with pytest.raises(RuntimeError, match='power loss'):
        rekey.rekey(str(catalog), [new[1]], identities, fault=crash)
    # mid-way: each artifact opens with the old key or the new one, and its manifest says which
    assert_consistent(catalog, [old, new, escrow])
    recipients = sorted(tuple(e.data['encryption']['recipients']) for e in Catalog(str(catalog)).entries)
    assert (new[1],) in recipients and any(old[1] in r for r in recipients)
    # the retired key on an artifact already re-encrypted: the message says what it still opens
    done = [e for e in Catalog(str(catalog)).entries if e.data['encryption']['recipients'] == [new[1]]][0]
    with pytest.raises(OpsReadyError, match='still opens [12] artifact') as caught:
        check_decryptable(done, identities)
    assert 'retired from this artifact' in caught.value.message
    # the next run completes the rotation
    finished = rekey.rekey(str(catalog), [new[1]], identities + encryption.parse_identities(new[0]))
    assert finished['failed'] == []
    if point in ('after_partial', 'after_pending', 'after_swap'):
        assert finished['settled'], 'the interrupted artifact was not settled'
    assert not [p for p in catalog.iterdir() if p.name.endswith('.partial')]
    for entry in Catalog(str(catalog)).entries:
        assert entry.data['encryption']['recipients'] == [new[1]] and 'rekey_pending' not in entry.data
    assert_consistent(catalog, [old, new, escrow])


def test_a_torn_manifest_fails_the_rotation_in_check_mode_and_for_real_until_repaired(world, tmp_path):
    """Through ansible-playbook: an identity_file holding several keys (a stranger's first), one manifest torn. Check
    mode and the real run both fail naming that manifest (its artifact is left to the old key, never reported
    rotated), the other artifacts rotate; once the manifest is repaired the next run completes, the one after it
    changes nothing. No secret in any output."""
    catalog = tmp_path / 'catalog'
    shutil.copytree(world['catalog'], catalog)
    old, new, escrow = world['old'], world['new'], world['escrow']
    stranger = keygen(tmp_path / 'stranger.txt')
    keys = tmp_path / 'keys.txt'
    keys.write_text('# a stranger first, then the key in use\n%s\n%s\n' % (stranger[0], old[0]))
    torn = sorted(catalog.glob('etc-*.manifest.json'))[0]
    text = torn.read_text()
    torn.write_text(text[:len(text) // 2])
    task = {'name': 'rekey', 'opsready.operations.backup_rekey': {
        'src': str(catalog), 'recipients': [new[1], escrow[1]], 'identity_file': str(keys)}, 'ignore_errors': True}
    before = state(catalog)
    checked = run_playbook(write_playbook(tmp_path, [task]), check=True)
    out = checked.result('rekey')
    assert state(catalog) == before
    assert [f['id'] for f in out['failed_artifacts']] == [torn.name] and torn.name in out['msg']
    assert len(out['rekeyed']) == 2
    book = write_playbook(tmp_path, [task])
    real = run_playbook(book)
    out = real.result('rekey')
    assert out['failed_artifacts'] and 'run backup_rekey again' in out['msg'] and len(out['rekeyed']) == 2
    artifact = catalog / torn.name[:-len('.manifest.json')]
    assert opens_with(artifact, old[2]) and not opens_with(artifact, new[2])
    torn.write_text(text)
    done = run_playbook(book).result('rekey')
    assert 'failed_artifacts' not in done and done['rekeyed'] == [artifact.name] and done['changed'] is True
    again = run_playbook(book).result('rekey')
    assert again['changed'] is False and len(again['already']) == 3
    for result in (checked, real):
        for secret in (old[0], stranger[0], new[0]):
            assert secret not in result.stdout
    assert_consistent(catalog, [old, new, escrow])
    assert not [p for p in catalog.iterdir() if p.name.endswith(('.partial', '.backup_rekey.lock'))]


def test_a_catalog_another_account_owns_is_refused_unless_owner_names_it(world, tmp_path):
    """Through ansible-playbook, as root: a catalog owned by another account (nobody) is refused in check mode and for
    real with db_backup's message and remedy, before anything is written there (no lock, no .partial, no manifest
    rewritten); named in ``owner`` (db_backup's option), the same catalog rotates."""
    catalog = tmp_path / 'catalog'
    shutil.copytree(world['catalog'], catalog)
    os.chown(str(catalog), 65534, 65534)
    os.chmod(str(catalog), 0o700)
    old, new, escrow = world['old'], world['new'], world['escrow']
    args = {'src': str(catalog), 'recipients': [new[1], escrow[1]], 'identity_file': str(old[2])}
    before = state(catalog)
    result = run_playbook(write_playbook(tmp_path, [
        {'name': 'checked', 'opsready.operations.backup_rekey': args, 'check_mode': True, 'ignore_errors': True},
        {'name': 'real', 'opsready.operations.backup_rekey': args, 'ignore_errors': True},
        {'name': 'unchanged', 'ansible.builtin.command': {'argv': [
            'find', str(catalog), '-mindepth', '1', '-maxdepth', '1', '-exec', 'sha256sum', '{}', '+']},
         'changed_when': False},
        {'name': 'trusted', 'opsready.operations.backup_rekey': dict(args, owner='nobody')}]))
    assert result.rc == 0, result.stdout[-3000:]
    for name in ('checked', 'real'):
        out = result.result(name)
        assert out['_event'] == 'runner_on_failed' and out.get('changed') is not True, out
        assert 'Backup directory %s is not safe to write' % catalog in out['msg'], out['msg']
        assert 'it belongs to nobody' in out['msg'] and 'name it in owner' in out['msg'], out['msg']
    listed = dict(reversed(line.split('  ', 1)) for line in result.result('unchanged')['stdout_lines'])
    assert {Path(k).name: v for k, v in listed.items()} == before, 'the refused runs wrote there'
    done = result.result('trusted')
    assert done['changed'] is True and sorted(done['rekeyed']) == sorted(a.name for a in artifacts(catalog))
    for artifact in artifacts(catalog):
        assert opens_with(artifact, new[2]) and not opens_with(artifact, old[2])
    assert_consistent(catalog, [old, new, escrow])
