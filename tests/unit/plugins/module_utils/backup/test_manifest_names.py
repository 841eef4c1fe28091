"""Names a manifest gives must stay in its backup directory. Whoever can write that directory can plant a
manifest; prune runs as root and deletes what manifests name, verify writes beside them, restore and offsite read
them. A planted manifest naming /etc/shadow, ../elsewhere or a member outside its artifact is ignored (listed as
broken) and nothing outside the directory is touched."""

from __future__ import annotations

import datetime
import hashlib
import json
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import prune
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest, read_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat, stamp

NOW = datetime.datetime(2026, 12, 1, tzinfo=UTC)


def manifest_data(name, when, **extra):
    data = {'format': 1, 'id': name, 'artifact': name, 'engine': 'postgresql', 'database': 'app', 'kind': 'full',
            'started': isoformat(when), 'finished': isoformat(when), 'consistent_at': isoformat(when), 'size': 1,
            'sha256': hashlib.sha256(b'x').hexdigest(), 'compression': 'none', 'verification': {'ok': True}}
    data.update(extra)
    return data


def write(directory, stem, data):
    with open(os.path.join(directory, stem + '.manifest.json'), 'w') as handle:
        json.dump(data, handle)


BAD_NAMES = ['/etc/shadow', '../victim', 'sub/dir', '.', '..', '', 'a\0b', None, 7]


@pytest.mark.parametrize('key', ['artifact', 'id'])
@pytest.mark.parametrize('bad', BAD_NAMES, ids=repr)
def test_a_name_that_leaves_the_directory_is_refused(tmp_path, key, bad):
    data = manifest_data('ok.bin', NOW)
    data[key] = bad
    with pytest.raises(OpsReadyError, match='not a file name in its backup directory'):
        Manifest(data, str(tmp_path))


@pytest.mark.parametrize('member', ['/etc/shadow', '../victim', 'ok.bin/', 'ok.bin//x', 'ok.bin/../../x',
                                    'ok.bin/./x', '', None, 3, {'nope': 1}], ids=repr)
def test_a_member_outside_its_artifact_is_refused(tmp_path, member):
    members = [{'path': 'ok.bin/toc.dat', 'size': 1, 'sha256': 'x'},
               member if isinstance(member, dict) else {'path': member, 'size': 1, 'sha256': 'x'}]
    with pytest.raises(OpsReadyError, match='not a relative path inside|members'):
        Manifest(manifest_data('ok.bin', NOW, members=members), str(tmp_path))


def test_names_of_our_own_kinds_pass(tmp_path):
    odd = 'postgresql-my db é-full-%s.dump.zst' % stamp(NOW)
    entry = Manifest(manifest_data(odd, NOW, members=[{'path': odd + '/toc.dat', 'size': 1, 'sha256': 'x'}]),
                     str(tmp_path))
    assert entry.path == os.path.join(str(tmp_path), odd)


def test_prune_as_root_never_deletes_what_a_planted_manifest_names(tmp_path):
    backups = tmp_path / 'backups'
    backups.mkdir()
    victim_file = tmp_path / 'victim'
    victim_file.write_text('precious')
    victim_dir = tmp_path / 'victimdir'
    victim_dir.mkdir()
    (victim_dir / 'f').write_text('precious')
    # two real, verified fulls (the newest is kept by any policy) ...
    for days in (1, 40):
        when = NOW - datetime.timedelta(days=days)
        name = 'postgresql-app-full-%s.bin' % stamp(when)
        (backups / name).write_bytes(b'x')
        write(str(backups), name, manifest_data(name, when))
    # ... and old planted ones naming things outside the directory
    old = NOW - datetime.timedelta(days=300)
    for i, target in enumerate([str(victim_file), '../victimdir', str(victim_dir)]):
        write(str(backups), 'planted%d' % i, manifest_data('planted%d' % i, old, artifact=target))
    write(str(backups), 'planted-member', manifest_data('m.bin', old, members=[
        {'path': '../victim', 'size': 1, 'sha256': 'x'}]))
    result = prune(str(backups), retention.Policy(keep_last=1), now=NOW)
    assert victim_file.read_text() == 'precious' and (victim_dir / 'f').read_text() == 'precious'
    assert len(result['deleted']) == 1, result
    assert not [d for d in result['deleted'] if 'planted' in d or 'victim' in d]
    assert sorted(p.name for p in backups.glob('planted*')) == [
        'planted-member.manifest.json', 'planted0.manifest.json', 'planted1.manifest.json', 'planted2.manifest.json']


def test_read_manifest_reports_the_planted_name(tmp_path):
    write(str(tmp_path), 'planted', manifest_data('planted', NOW, artifact='/etc/shadow'))
    with pytest.raises(OpsReadyError) as raised:
        read_manifest(str(tmp_path / 'planted.manifest.json'))
    assert "'/etc/shadow'" in raised.value.message and 'Remove the manifest' in raised.value.message


def test_a_member_below_a_planted_symlink_is_not_deleted_through_it(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'keep').write_text('precious')
    backups = tmp_path / 'backups'
    backups.mkdir()
    os.symlink(str(outside), str(backups / 'sub'))
    with pytest.raises(OSError):
        retention.unlink_inside(str(backups), 'sub/keep')
    assert (outside / 'keep').read_text() == 'precious'
    (backups / 'real').mkdir()
    (backups / 'real' / 'm').write_text('x')
    retention.unlink_inside(str(backups), 'real/m')
    assert not (backups / 'real' / 'm').exists()
