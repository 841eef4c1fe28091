"""log_rotate options checked on disk through real ansible-playbook runs: compression, rotate count,
maxage, dateext, delaycompress, triggers and the state file, idempotence, check/diff, bad input."""

from __future__ import annotations

import datetime
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from tests.harness.playbook import run_playbook, write_playbook


def rotate_task(name, logdir, tmp_path, **args):
    options = {'paths': [str(logdir / '*.log')], 'state_file': str(tmp_path / 'state.json')}
    options.update(args)
    return {'name': name, 'opsready.operations.log_rotate': options}


def unzstd(path: Path) -> bytes:
    with open(path, 'rb') as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()


def names(directory: Path):
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def logdir(tmp_path):
    directory = tmp_path / 'log'
    directory.mkdir()
    return directory


def test_count_gzip_delaycompress_and_content(tmp_path, logdir):
    log = logdir / 'app.log'
    tasks = []
    for i in range(5):
        tasks.append({'name': 'write %d' % i, 'ansible.builtin.shell': 'echo generation-%d >> %s' % (i, log)})
        tasks.append(rotate_task('rotate %d' % i, logdir, tmp_path, force=True, rotate=3, compression='gzip'))
    tasks.append({'name': 'write last', 'ansible.builtin.shell': 'echo generation-5 >> %s' % log})
    tasks.append(rotate_task('delayed', logdir, tmp_path, force=True, rotate=3, delaycompress=True))
    tasks.append({'name': 'write after', 'ansible.builtin.shell': 'echo generation-6 >> %s' % log})
    tasks.append(rotate_task('delayed again', logdir, tmp_path, force=True, rotate=3, delaycompress=True))
    result = run_playbook(write_playbook(tmp_path, tasks))
    assert result.rc == 0
    # rotate=3 keeps exactly three copies; the oldest generations were deleted
    assert result.result('rotate 4')['deleted'] == [str(logdir / 'app.log.3.gz')]
    # delaycompress: the newest copy stays plain, the one before it is compressed (zstd by default)
    assert names(logdir) == ['app.log', 'app.log.1', 'app.log.2.zst', 'app.log.3.gz']
    assert (logdir / 'app.log').read_bytes() == b''
    assert (logdir / 'app.log.1').read_bytes() == b'generation-6\n'
    assert unzstd(logdir / 'app.log.2.zst') == b'generation-5\n'
    assert gzip.decompress((logdir / 'app.log.3.gz').read_bytes()) == b'generation-4\n'


def test_size_trigger_state_file_and_second_run_unchanged(tmp_path, logdir):
    log = logdir / 'app.log'
    log.write_bytes(b'x' * 2000)
    small = logdir / 'small.log'
    small.write_bytes(b'y' * 10)
    empty = logdir / 'empty.log'
    empty.write_bytes(b'')
    book = write_playbook(tmp_path, [rotate_task('first', logdir, tmp_path, size='1k'),
                                     rotate_task('second', logdir, tmp_path, size='1k')])
    result = run_playbook(book)
    assert result.rc == 0
    first, second = result.result('first'), result.result('second')
    assert [r['log'] for r in first['rotated']] == [str(log)]
    assert first['changed'] is True
    assert second['changed'] is False and second['rotated'] == [] and second['compressed'] == []
    assert names(logdir) == ['app.log', 'app.log.1.zst', 'empty.log', 'small.log']
    assert unzstd(logdir / 'app.log.1.zst') == b'x' * 2000
    state = json.loads((tmp_path / 'state.json').read_text())
    assert list(state['logs']) == [str(log)]


def test_interval_daily_counts_from_first_sight_then_rotates_next_day(tmp_path, logdir):
    log = logdir / 'app.log'
    log.write_text('line\n')
    book = write_playbook(tmp_path, [rotate_task('daily', logdir, tmp_path, interval='daily')])
    first = run_playbook(book).result('daily')
    assert first['rotated'] == [] and first['state_written'] is True
    again = run_playbook(book).result('daily')
    assert again['changed'] is False
    # pretend the last rotation was yesterday (what the state file would say after a day)
    state_path = tmp_path / 'state.json'
    state = json.loads(state_path.read_text())
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1, minutes=1)
    state['logs'][str(log)]['last_rotated'] = yesterday.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    state_path.write_text(json.dumps(state))
    due = run_playbook(book).result('daily')
    assert [r['rotated_to'] for r in due['rotated']] == [str(logdir / 'app.log.1')]
    assert names(logdir) == ['app.log', 'app.log.1.zst']
    assert run_playbook(book).result('daily')['changed'] is False


def test_maxage_deletes_old_copies_only(tmp_path, logdir):
    (logdir / 'app.log').write_text('current\n')
    old = time.time() - 40 * 86400
    for index in (1, 2):
        path = logdir / ('app.log.%d.zst' % index)
        path.write_bytes(zstandard.ZstdCompressor().compress(b'copy %d\n' % index))
        if index == 2:
            os.utime(path, (old, old))
    book = write_playbook(tmp_path, [rotate_task('rotate', logdir, tmp_path, force=True, rotate=10, maxage=30)])
    out = run_playbook(book).result('rotate')
    assert out['deleted'] == [str(logdir / 'app.log.2.zst')]
    assert names(logdir) == ['app.log', 'app.log.1.zst', 'app.log.2.zst']
    assert unzstd(logdir / 'app.log.2.zst') == b'copy 1\n'
    assert unzstd(logdir / 'app.log.1.zst') == b'current\n'


def test_dateext_names_and_same_period_is_not_overwritten(tmp_path, logdir):
    log = logdir / 'app.log'
    log.write_text('today\n')
    task = rotate_task('dated', logdir, tmp_path, force=True, dateext=True, dateformat='-%Y%m%d', rotate=2)
    result = run_playbook(write_playbook(tmp_path, [task, dict(task, name='again')]))
    assert result.rc == 0
    stamp = datetime.datetime.now().strftime('%Y%m%d')
    assert names(logdir) == ['app.log', 'app.log-%s.zst' % stamp]
    # the second run in the same day cannot name a new copy; it says so and rotates nothing
    log.write_text('more\n')
    again = run_playbook(write_playbook(tmp_path, [dict(task, name='again')]))
    out = again.result('again')
    assert out['changed'] is False and out['rotated'] == []
    assert 'already exists' in out['not_rotated'][0]['reason']
    assert log.read_text() == 'more\n'
    # older copies beyond rotate are deleted, newest kept (sorted by the date in the name, in this format)
    for moment in ('20200101000000', '20200102000000'):
        (logdir / ('app.log-%s.zst' % moment)).write_bytes(zstandard.ZstdCompressor().compress(b'old'))
    hourly = rotate_task('hourly', logdir, tmp_path, force=True, dateext=True, dateformat='-%Y%m%d%H%M%S', rotate=2)
    out = run_playbook(write_playbook(tmp_path, [hourly])).result('hourly')
    assert len(out['rotated']) == 1
    assert out['deleted'] == [str(logdir / 'app.log-20200101000000.zst')]
    new = Path(out['rotated'][0]['rotated_to']).name + '.zst'
    # the copy named in the other format is not this policy's: left alone
    assert names(logdir) == sorted(['app.log', 'app.log-20200102000000.zst', 'app.log-%s.zst' % stamp, new])
    assert unzstd(logdir / new) == b'more\n'


def test_create_mode_owner_and_mode_of_new_file(tmp_path, logdir):
    log = logdir / 'app.log'
    log.write_text('x\n')
    log.chmod(0o600)
    task = rotate_task('rotate', logdir, tmp_path, force=True, create_mode='0640', create_owner='nobody',
                       create_group='nogroup')
    assert run_playbook(write_playbook(tmp_path, [task])).rc == 0
    st = log.stat()
    assert oct(st.st_mode & 0o7777) == oct(0o640)
    assert (st.st_uid, st.st_gid) == (int(subprocess.check_output(['id', '-u', 'nobody'])),
                                      int(subprocess.check_output(['getent', 'group', 'nogroup']).split(b':')[2]))
    assert (logdir / 'app.log.1.zst').stat().st_mode & 0o7777 == 0o600


def test_check_mode_and_diff_list_the_plan_and_touch_nothing(tmp_path, logdir):
    log = logdir / 'app.log'
    log.write_text('x\n')
    (logdir / 'app.log.1.zst').write_bytes(zstandard.ZstdCompressor().compress(b'old'))
    before = names(logdir)
    book = write_playbook(tmp_path, [rotate_task('rotate', logdir, tmp_path, force=True)])
    result = run_playbook(book, check=True, diff=True)
    assert result.rc == 0
    out = result.result('rotate')
    # check mode lists the rotation the real run makes (the real run's return shape), and compresses nothing
    assert out['changed'] is True and out['compressed'] == []
    assert [(r['log'], r['rotated_to']) for r in out['rotated']] == [(str(log), str(logdir / 'app.log.1'))]
    assert out['plan'][0]['shifts'] == [[str(logdir / 'app.log.1.zst'), str(logdir / 'app.log.2.zst')]]
    assert out['plan'][0]['compress'] == [str(logdir / 'app.log.1')]
    assert '+%s' % (logdir / 'app.log.2.zst') in result.stdout
    assert names(logdir) == before and log.read_text() == 'x\n'
    assert not (tmp_path / 'state.json').exists()


def test_writer_that_is_never_told_to_reopen_keeps_its_copy_uncompressed(tmp_path, logdir):
    log = logdir / 'app.log'
    writer = subprocess.Popen([sys.executable, '-c', 'import sys, time\nf = open(sys.argv[1], "a")\n'
                               'f.write("held\\n"); f.flush()\ntime.sleep(60)', str(log)])
    try:
        deadline = time.monotonic() + 10
        while not (log.exists() and log.stat().st_size):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        result = run_playbook(write_playbook(tmp_path, [rotate_task('rotate', logdir, tmp_path, force=True)]))
        out = result.result('rotate')
        assert out['held_open'] == [{'path': str(logdir / 'app.log.1'), 'pids': [writer.pid]}]
        assert out['compressed'] == []
        assert 'still open for writing' in result.stdout
        # nothing lost: the copy the writer still holds is intact and plain
        assert names(logdir) == ['app.log', 'app.log.1']
        assert (logdir / 'app.log.1').read_text() == 'held\n'
    finally:
        writer.kill()
        writer.wait()


def test_bad_input_fails_clearly_and_renames_nothing(tmp_path, logdir):
    log = logdir / 'app.log'
    log.write_text('keep me\n')
    # a glob matching nothing
    result = run_playbook(write_playbook(tmp_path, [
        {'name': 'nothing', 'opsready.operations.log_rotate': {
            'paths': [str(logdir / 'nope*.log')], 'force': True, 'state_file': str(tmp_path / 's.json')}}]))
    assert result.rc != 0
    assert 'No log file matches' in result.result('nothing')['msg']
    ok = run_playbook(write_playbook(tmp_path, [
        {'name': 'missingok', 'opsready.operations.log_rotate': {
            'paths': [str(logdir / 'nope*.log')], 'force': True, 'missingok': True,
            'state_file': str(tmp_path / 's.json')}}])).result('missingok')
    assert ok['changed'] is False and ok['missing'] == [str(logdir / 'nope*.log')]
    # a pid file naming no live process: refused before anything is renamed
    dead = subprocess.Popen(['true'])
    dead.wait()
    pidfile = tmp_path / 'dead.pid'
    pidfile.write_text('%d\n' % dead.pid)
    result = run_playbook(write_playbook(tmp_path, [rotate_task('stale', logdir, tmp_path, force=True,
                                                                pidfile=str(pidfile))]))
    assert result.rc != 0
    assert 'no such process runs' in result.result('stale')['msg']
    assert names(logdir) == ['app.log']
    # an unwritable directory (immutable, so even root cannot create the new file): the log stays
    subprocess.run(['chattr', '+i', str(logdir)], check=True)
    try:
        result = run_playbook(write_playbook(tmp_path, [rotate_task('locked', logdir, tmp_path, force=True)]))
    finally:
        subprocess.run(['chattr', '-i', str(logdir)], check=True)
    assert result.rc != 0
    assert 'Nothing was rotated' in result.result('locked')['msg']
    assert names(logdir) == ['app.log'] and log.read_text() == 'keep me\n'
