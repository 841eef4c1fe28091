"""log_rotate under a live writer: real processes, real signals, 50 rotations through ansible-playbook.

A writer appends numbered lines as fast as it can and reopens its file on SIGHUP. After the run every
number must appear exactly once across the live log and all rotated (decompressed) copies, and no
process may hold a deleted log open. The copytruncate run counts the lines it lost and reports them.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import zstandard

from tests.harness.playbook import run_playbook, write_playbook

ROTATIONS = 50

WRITER = r'''
import os, signal, sys
path, count_file = sys.argv[1], sys.argv[2]
flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
state = {'reopen': False, 'stop': False}
signal.signal(signal.SIGHUP, lambda *a: state.__setitem__('reopen', True))
signal.signal(signal.SIGTERM, lambda *a: state.__setitem__('stop', True))
fd = os.open(path, flags, 0o644)
i = 0
while not state['stop']:
    if state['reopen']:
        state['reopen'] = False
        os.close(fd)
        fd = os.open(path, flags, 0o644)
    os.write(fd, b'%d\n' % i)
    i += 1
os.close(fd)
with open(count_file, 'w') as handle:
    handle.write(str(i))
'''


def start_writer(tmp_path: Path, log: Path):
    script = tmp_path / 'writer.py'
    script.write_text(WRITER)
    count_file = tmp_path / 'count'
    proc = subprocess.Popen([sys.executable, str(script), str(log), str(count_file)])
    deadline = time.monotonic() + 10
    while not (log.exists() and log.stat().st_size > 1000):
        assert time.monotonic() < deadline, 'writer did not start'
        time.sleep(0.01)
    pidfile = tmp_path / 'writer.pid'
    pidfile.write_text('%d\n' % proc.pid)
    return proc, pidfile, count_file


def stop_writer(proc, count_file: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    return int(count_file.read_text())


def read_all(directory: Path) -> bytes:
    chunks = []
    for path in sorted(directory.iterdir()):
        if path.name.endswith('.zst'):
            with open(path, 'rb') as handle:
                chunks.append(zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read())
        elif path.name.endswith('.gz'):
            chunks.append(gzip.decompress(path.read_bytes()))
        else:
            chunks.append(path.read_bytes())
    return b''.join(chunks)


def count_numbers(data: bytes, total: int):
    """(missing, duplicated, malformed) numbers among 0..total-1."""
    seen = bytearray(total)
    duplicated = malformed = 0
    for token in data.split(b'\n'):
        if not token:
            continue
        if not token.isdigit() or int(token) >= total:
            malformed += 1
            continue
        n = int(token)
        if seen[n]:
            duplicated += 1
        seen[n] = 1
    return total - sum(seen), duplicated, malformed


def deleted_files_held_open(directory: Path):
    """Every (pid, fd, target) whose target is a deleted file under ``directory`` (scan /proc/*/fd)."""
    prefix = str(directory) + '/'
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            fds = os.listdir('/proc/%s/fd' % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink('/proc/%s/fd/%s' % (pid, fd))
            except OSError:
                continue
            if target.startswith(prefix) and target.endswith(' (deleted)'):
                found.append((pid, fd, target))
    return found


def rotation_book(tmp_path: Path, logdir: Path, rotations: int = ROTATIONS, **args):
    options = {'paths': [str(logdir / '*.log')], 'force': True, 'rotate': rotations + 5,
               'state_file': str(tmp_path / 'state.json')}
    options.update(args)
    return write_playbook(tmp_path, [{
        'name': 'rotate', 'opsready.operations.log_rotate': options,
        'loop': '{{ range(%d) | list }}' % rotations,
    }])


# copytruncate loses lines by design (the copy/truncate window): what the test proves is that the loss is
# reported, small, and never a duplicated or torn line; 20 rotations show it (create mode keeps all 50).
COPYTRUNCATE_ROTATIONS = 20


def test_create_mode_loses_no_line_over_50_rotations(tmp_path):
    logdir = tmp_path / 'log'
    logdir.mkdir()
    log = logdir / 'app.log'
    proc, pidfile, count_file = start_writer(tmp_path, log)
    try:
        result = run_playbook(rotation_book(tmp_path, logdir, pidfile=str(pidfile), signal='HUP'))
        assert result.rc == 0
        items = result.task_results('rotate', events=('runner_item_on_ok',))
        assert len(items) == ROTATIONS
        assert all(item['changed'] and len(item['rotated']) == 1 and item['signalled'] == [proc.pid]
                   for item in items)
        # every rotated copy was compressed once the writer had let it go
        assert all(len(item['compressed']) == 1 and not item['held_open'] for item in items)
        # disk space is freed: no process (the writer included) holds a deleted log open
        assert deleted_files_held_open(logdir) == []
        # and the writer writes to the live log, not a rotated copy
        fds = ['/proc/%d/fd/%s' % (proc.pid, fd) for fd in os.listdir('/proc/%d/fd' % proc.pid)]
        assert str(log) in [os.readlink(fd) for fd in fds]
    finally:
        total = stop_writer(proc, count_file)
    names = sorted(p.name for p in logdir.iterdir())
    assert names == sorted(['app.log'] + ['app.log.%d.zst' % i for i in range(1, ROTATIONS + 1)])
    missing, duplicated, malformed = count_numbers(read_all(logdir), total)
    print('create mode: %d lines written, %d rotations, %d missing, %d duplicated' % (total, ROTATIONS, missing,
                                                                                      duplicated))
    assert total > ROTATIONS * 100, 'the writer hardly wrote: the test would prove nothing'
    assert (missing, duplicated, malformed) == (0, 0, 0)


def test_copytruncate_mode_reports_the_lines_it_loses(tmp_path, record_property):
    logdir = tmp_path / 'log'
    logdir.mkdir()
    log = logdir / 'app.log'
    proc, _pidfile, count_file = start_writer(tmp_path, log)
    try:
        result = run_playbook(rotation_book(tmp_path, logdir, COPYTRUNCATE_ROTATIONS, mode='copytruncate'))
        assert result.rc == 0
        items = result.task_results('rotate', events=('runner_item_on_ok',))
        assert len(items) == COPYTRUNCATE_ROTATIONS and all(len(item['rotated']) == 1 for item in items)
        assert deleted_files_held_open(logdir) == []
    finally:
        total = stop_writer(proc, count_file)
    missing, duplicated, malformed = count_numbers(read_all(logdir), total)
    record_property('copytruncate_lines_written', total)
    record_property('copytruncate_lines_lost', missing)
    message = ('copytruncate: %d of %d lines lost over %d rotations (%.6f%%) - the documented copy/truncate window'
               % (missing, total, COPYTRUNCATE_ROTATIONS, 100.0 * missing / total))
    print(message)
    warnings.warn(message, stacklevel=1)
    # Lost lines are whole lines between the last read and the truncate: never duplicated, never torn.
    assert duplicated == 0 and malformed == 0
    assert missing < total / 100
