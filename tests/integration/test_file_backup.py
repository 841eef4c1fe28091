"""File backups end to end: real ansible-playbook runs of file_backup / file_restore on real files."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.harness.archives import write_escaping_file_backup
from tests.harness.playbook import run_playbook, write_playbook


def make_tree(root: Path) -> Path:
    src = root / 'etc' / 'myapp'
    (src / 'ssl').mkdir(parents=True)
    (src / 'app.conf').write_text('listen = 8080\n')
    (src / 'big.bin').write_bytes(os.urandom(300_000))
    key = src / 'ssl' / 'app.key'
    key.write_text('-----BEGIN PRIVATE KEY-----\nxyz\n-----END PRIVATE KEY-----\n')
    key.chmod(0o600)
    (src / 'run.sh').write_text('#!/bin/sh\necho hi\n')
    (src / 'run.sh').chmod(0o750)
    os.symlink('app.conf', src / 'current.conf')
    return src


def backup_task(src, dest, **extra):
    args = {'paths': [str(src)], 'dest': str(dest), 'name': 'cfg'}
    args.update(extra)
    return {'name': 'backup', 'opsready.operations.file_backup': args, 'register': 'out'}


def restore_task(src, dest, **extra):
    args = {'src': str(src), 'dest': str(dest)}
    args.update(extra)
    return {'name': 'restore', 'opsready.operations.file_restore': args}


def manifests(dest: Path):
    return sorted(dest.glob('*.manifest.json'))


def test_backup_then_restore_reproduces_tree_with_modes(tmp_path):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    target = tmp_path / 'restored'
    book = write_playbook(tmp_path, [backup_task(src, dest), restore_task(dest, target, name='cfg')])
    result = run_playbook(book)
    assert result.rc == 0
    out = result.result('backup')
    assert out['changed'] is True
    archive = Path(out['archive'])
    manifest = json.loads(Path(str(archive) + '.manifest.json').read_text())
    # the manifest vouches for exactly the bytes on disk
    assert manifest['size'] == archive.stat().st_size
    assert manifest['sha256'] == subprocess.run(['sha256sum', str(archive)], capture_output=True,
                                                text=True, check=True).stdout.split()[0]
    assert manifest['file_count'] == 4
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700  # the tree holds a private key
    # the archive is a plain tar.zst that standard tools read
    listing = subprocess.run('zstd -dc %s | tar -tf -' % archive, shell=True, capture_output=True, text=True,
                             check=False)
    assert listing.returncode == 0 and 'etc/myapp/ssl/app.key' in listing.stdout
    restored = target / str(src).lstrip('/')
    assert (restored / 'app.conf').read_text() == 'listen = 8080\n'
    assert (restored / 'big.bin').read_bytes() == (src / 'big.bin').read_bytes()
    assert stat.S_IMODE((restored / 'ssl' / 'app.key').stat().st_mode) == 0o600
    assert stat.S_IMODE((restored / 'run.sh').stat().st_mode) == 0o750
    assert os.readlink(restored / 'current.conf') == 'app.conf'
    assert not list(target.glob('.opsready-restore-*')), 'staging directory left behind'
    # restoring again changes nothing
    again = run_playbook(write_playbook(tmp_path, [restore_task(dest, target, name='cfg')]))
    assert again.rc == 0 and again.result('restore')['changed'] is False


def test_restore_puts_a_broken_file_back_in_place(tmp_path):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    assert run_playbook(write_playbook(tmp_path, [backup_task(src, dest)])).rc == 0
    (src / 'app.conf').write_text('broken!!\n')
    (src / 'ssl' / 'app.key').unlink()
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, '/', name='cfg')]))
    assert result.rc == 0
    assert (src / 'app.conf').read_text() == 'listen = 8080\n'
    assert (src / 'ssl' / 'app.key').exists()
    assert sorted(result.result('restore')['restored']) == sorted([str(src / 'app.conf'), str(src / 'ssl' / 'app.key')])


def test_skip_unchanged_and_check_mode(tmp_path):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    book = write_playbook(tmp_path, [backup_task(src, dest, skip_unchanged=True)])
    check = run_playbook(book, check=True)
    assert check.rc == 0 and check.result('backup')['changed'] is True
    assert not dest.exists(), 'check mode wrote something'
    assert run_playbook(book).result('backup')['changed'] is True
    second = run_playbook(book).result('backup')
    assert second['changed'] is False and second['skipped_unchanged'] is True
    assert len(manifests(dest)) == 1
    (src / 'app.conf').write_text('listen = 9090\n')
    assert run_playbook(book).result('backup')['changed'] is True
    assert len(manifests(dest)) == 2


def test_retention_keeps_newest_and_count(tmp_path):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    book = write_playbook(tmp_path, [backup_task(src, dest, keep_count=2, keep_days=0)])
    for dummy in range(3):
        assert run_playbook(book).rc == 0
    kept = manifests(dest)
    assert len(kept) == 2
    archives = sorted(p for p in dest.iterdir() if p.name.endswith('.tar.zst'))
    assert len(archives) == 2
    # a leftover of an interrupted run (no manifest) is removed by the next run, never trusted
    leftover = dest / 'cfg-20200101T000000000000Z.tar.zst.partial'
    leftover.write_bytes(b'half')
    out = run_playbook(book).result('backup')
    assert str(leftover) in out['leftovers_removed'] and not leftover.exists()


def test_retention_lists_at_most_max_listed_and_counts_every_archive(tmp_path):
    """The first clean-up of a large set listed every archive it deleted (backup_prune's max_listed, issue 22): the
    list is cut to max_listed (oldest first), deleted_count counts every one, check mode lists what the run lists."""
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    book = write_playbook(tmp_path, [backup_task(src, dest, keep_days=0)])
    for dummy in range(4):
        assert run_playbook(book).rc == 0
    archives = sorted(str(p)[:-len('.manifest.json')] for p in manifests(dest))
    book = write_playbook(tmp_path, [backup_task(src, dest, keep_days=0, keep_count=1, max_listed=2)])
    checked = run_playbook(book, check=True).result('backup')
    real = run_playbook(book).result('backup')
    for result in (checked, real):
        assert result['deleted'] == archives[:2] and result['deleted_count'] == 4, result
        assert result['lists_truncated'] is True and 'max_listed: -1' in result['lists_note']
    assert len(manifests(dest)) == 1 and not any(os.path.exists(p) for p in archives)


def test_a_run_touches_only_its_own_sets_leftovers_and_runs_alone(tmp_path):
    """Another set's .partial in the same dest may be a run in progress: never ours to delete."""
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    dest.mkdir(mode=0o700)
    stamp = '20200101T000000000000Z'
    own = dest / ('cfg-%s.tar.zst.partial' % stamp)
    others = [dest / ('other-%s.tar.zst.partial' % stamp),   # set "other"
              dest / ('cfg-2-%s.tar.zst.partial' % stamp),   # set "cfg-2": starts with "cfg-" too
              dest / ('postgresql-app-full-%s.dump.zst.partial' % stamp)]
    for path in [own] + others:
        path.write_bytes(b'half')
    book = write_playbook(tmp_path, [backup_task(src, dest, keep_count=1, keep_days=0)])
    out = run_playbook(book).result('backup')
    assert out['leftovers_removed'] == [str(own)] and not own.exists()
    assert all(path.read_bytes() == b'half' for path in others)

    # a second run of the same set while one holds the set's lock fails at once, touching nothing
    fd = os.open(str(dest / '.cfg.lock'), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = sorted(p.name for p in dest.iterdir())
        run = run_playbook(book)
        assert run.rc != 0
        assert 'Another backup of cfg is running' in run.result('backup')['msg']
        assert sorted(p.name for p in dest.iterdir()) == before
    finally:
        os.close(fd)


def test_corrupt_archive_is_refused_and_target_untouched(tmp_path):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    assert run_playbook(write_playbook(tmp_path, [backup_task(src, dest)])).rc == 0
    archive = next(p for p in dest.iterdir() if p.name.endswith('.tar.zst'))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    target = tmp_path / 'restored'
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, target, name='cfg')]))
    assert result.rc != 0
    assert 'fails its checksum' in result.result('restore')['msg']
    assert not target.exists()


def test_member_escaping_root_is_refused(tmp_path):
    dest = tmp_path / 'backups'
    write_escaping_file_backup(dest)
    target = tmp_path / 'deep' / 'restored'
    result = run_playbook(write_playbook(tmp_path, [restore_task(dest, target, name='cfg')]))
    assert result.rc != 0
    assert 'escape the target root' in result.result('restore')['msg']
    assert not (tmp_path / 'evil.conf').exists() and not target.exists()


@pytest.mark.parametrize('case', ['missing_source', 'bad_compression', 'dest_is_file'])
def test_bad_input_fails_clearly_without_manifest(tmp_path, case):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    extra = {}
    paths = [str(src)]
    expected = ''
    if case == 'missing_source':
        paths.append(str(tmp_path / 'nope'))
        expected = 'does not exist'
    elif case == 'bad_compression':
        extra['compression'] = 'lz5'
        expected = 'compression'
    else:
        dest.write_text('a file, not a directory')
        dest = dest / 'sub'
        expected = 'Cannot create backup directory'
    task = backup_task(src, dest, **extra)
    task['opsready.operations.file_backup']['paths'] = paths
    result = run_playbook(write_playbook(tmp_path, [task]))
    assert result.rc != 0
    assert expected in result.result('backup')['msg']
    assert not list(tmp_path.rglob('*.manifest.json'))


@pytest.mark.skipif(os.geteuid() != 0, reason='mounting a small tmpfs needs root')
def test_full_disk_leaves_no_partial_and_no_manifest(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'random.bin').write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible
    mnt = tmp_path / 'small'
    mnt.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mnt)], check=True)
    try:
        result = run_playbook(write_playbook(tmp_path, [backup_task(src, mnt / 'b')]))
        assert result.rc != 0
        assert 'No space left on device' in result.result('backup')['msg']
        # nothing but the set's lock file (kept, empty, like db_backup's)
        assert [p.name for p in (mnt / 'b').iterdir()] == ['.cfg.lock']
    finally:
        subprocess.run(['umount', str(mnt)], check=True)


def test_json_log_callback_on_a_real_run(tmp_path):
    log = tmp_path / 'tasks.jsonl'
    src = make_tree(tmp_path / 'src')
    tasks = [
        backup_task(src, tmp_path / 'backups'),
        {'name': 'secret step', 'ansible.builtin.command': 'false', 'no_log': True, 'ignore_errors': True},
        {'name': 'skipped step', 'ansible.builtin.debug': {'msg': 'x'}, 'when': False},
    ]
    result = run_playbook(write_playbook(tmp_path, tasks), envvars={
        'ANSIBLE_CALLBACKS_ENABLED': 'opsready.operations.json_log', 'OPSREADY_JSON_LOG_PATH': str(log)})
    assert result.rc == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    by_task = {line['context']['task']: line for line in lines}
    assert set(by_task) == {'backup', 'secret step', 'skipped step'}
    assert by_task['backup']['level'] == 'INFO' and by_task['backup']['context']['status'] == 'changed'
    assert by_task['backup']['context']['action'] == 'opsready.operations.file_backup'
    assert by_task['backup']['context']['duration_ms'] >= 0
    assert by_task['secret step']['level'] == 'ERROR'
    assert 'no_log' in by_task['secret step']['message']
    assert by_task['skipped step']['level'] == 'DEBUG'
    assert len({line['traceId'] for line in lines}) == 1
    for line in lines:
        assert set(line) == {'timestamp', 'level', 'service', 'traceId', 'message', 'context'}


def test_archive_is_consistent_only_as_of_its_start(tmp_path):
    """A file written while the archive is being made may or may not be in it: only changes made before the
    backup started are certainly captured. consistent_at at the end overstated what a restore brings back (the
    drill's RPO and the freshness check measure from it)."""
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    result = run_playbook(write_playbook(tmp_path, [backup_task(src, dest)]))
    assert result.rc == 0
    manifest = json.loads(manifests(dest)[0].read_text())
    assert manifest['started'] < manifest['finished']
    assert manifest['consistent_at'] == manifest['started']


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('chattr'), reason='needs root and chattr (+i)')
def test_a_leftover_that_cannot_be_removed_is_a_warning_not_a_removal(tmp_path):
    """A leftover the run cannot remove (immutable, on a read-only or append-only spot) was either reported as
    removed while it stayed (a directory) or failed the backup that had just succeeded (a file)."""
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'backups'
    dest.mkdir()
    stuck_file = dest / 'cfg-20200101T000000000000Z.tar.zst.partial'
    stuck_file.write_bytes(b'half')
    stuck_dir = dest / 'cfg-20200102T000000000000Z.tar.zst.partial'
    stuck_dir.mkdir()
    (stuck_dir / 'piece').write_bytes(b'half')
    gone = dest / 'cfg-20200103T000000000000Z.tar.zst.partial'
    gone.write_bytes(b'half')
    subprocess.run(['chattr', '+i', str(stuck_file), str(stuck_dir / 'piece')], check=True)
    try:
        result = run_playbook(write_playbook(tmp_path, [backup_task(src, dest)]))
        assert result.rc == 0, result.stdout[-2000:]
        out = result.result('backup')
        assert out['changed'] is True and len(manifests(dest)) == 1
        assert out['leftovers_removed'] == [str(gone)] and not gone.exists()
        assert sorted(out['leftovers_left']) == sorted([str(stuck_file), str(stuck_dir)])
        assert stuck_file.exists() and stuck_dir.exists()
        assert str(stuck_dir) in result.stdout and 'could not be removed' in result.stdout
    finally:
        subprocess.run(['chattr', '-i', str(stuck_file), str(stuck_dir / 'piece')], check=False)
