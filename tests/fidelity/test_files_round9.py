"""Fidelity of log rotation and file backups, round 9: what check mode plans is what the real run does, on a log
directory holding things a rotation never made.

- A directory under a rotated copy's name (``app.log.3/``, ``app.log-20261206/``: an operator's unpacked archive, a
  tool that keeps per-day directories): check mode planned to shift or delete it like a copy; the real run then failed
  midway with "Operation not permitted (app.log.3)" (a directory cannot be hard-linked) and undid itself, every run,
  so the log was never rotated and its disk filled. The log is now not rotated, in check mode too, with a warning
  naming the directory and what to do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation  # noqa: E402


def _tree(root: Path) -> dict:
    """Every name under ``root`` with its content (files) or None (directories)."""
    out = {}
    for here, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(here, name), root)] = None
        for name in files:
            out[os.path.relpath(os.path.join(here, name), root)] = Path(here, name).read_bytes()
    return out


@pytest.mark.parametrize('mode', ['create', 'copytruncate'])
@pytest.mark.parametrize('case', ['numbered-deleted', 'numbered-shifted', 'dated-deleted'])
def test_a_directory_under_a_rotated_name_is_refused_alike_in_check_mode(tmp_path, mode, case):
    """A directory named like a rotated copy, which the plan would delete (beyond ``rotate``) or shift: check mode
    and the real run both leave the log and the directory (and what it holds) as they were, report the log as not
    rotated, and warn naming the directory. It planned a rotation the real run then failed and undid."""
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    log.write_text('line 1\nline 2\n')
    dated = case.startswith('dated')
    if dated:
        for day in ('-20261201', '-20261202'):
            Path(str(log) + day).write_text('old %s\n' % day)
        odd = Path(str(log) + '-20261130')
    else:
        for index in (1, 2):
            Path('%s.%d' % (log, index)).write_text('old %d\n' % index)
        odd = Path(str(log) + '.3')
    odd.mkdir()
    (odd / 'kept').write_text('not a log\n')
    keep = 2 if case.endswith('deleted') else 5
    policy = dict(size=1, compress=False, rotate=keep, mode=mode, dateext=dated)
    before = _tree(logs)
    results = {}
    for check in (True, False):
        rotation = Rotation([str(log)], Policy(**policy), str(tmp_path / ('state-%s.json' % check)), check_dirs=False)
        results[check] = rotation.run(check_mode=check)
        assert _tree(logs) == before
    for check, result in results.items():
        assert result['rotated'] == [] and result['deleted'] == [] and result['plan'] == [], (check, result)
        assert [entry['log'] for entry in result['not_rotated']] == [str(log)], (check, result)
        assert any(str(odd) in warning and 'directory' in warning for warning in result['warnings']), result


def _deep_log(root: Path) -> str:
    """``root``/d..d (20 directories of 250 bytes)/app.log, over 5000 bytes: beyond PATH_MAX (4096), made through
    directory descriptors (no path call takes it)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for dummy in range(20):
            os.mkdir('d' * 250, dir_fd=fd)
            child = os.open('d' * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        log = os.open('app.log', os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(log, b'line 1\nline 2\n')
        os.close(log)
    finally:
        os.close(fd)
    return os.path.join(str(root), *(['d' * 250] * 20), 'app.log')


@pytest.mark.parametrize('missingok', [False, True])
@pytest.mark.parametrize('pattern', ['literal', 'glob'])
def test_a_log_path_beyond_path_max_is_refused_naming_the_limit(tmp_path, pattern, missingok):
    """A log whose path is longer than PATH_MAX (deep trees of generated directories): the literal path failed with a
    bare ``OSError`` "File name too long" (the module: "Log rotation failed: File name too long (...)" about a
    7-byte name); a glob reported "No log file matches" for a log that is there, and with ``missingok`` the log was
    skipped in silence, never rotated while it grew. Both now refuse, check mode alike, saying the path is longer
    than the system takes and what to do; the log is untouched."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
    log = _deep_log(tmp_path)
    given = log if pattern == 'literal' else log[:-len('app.log')] + '*.log'
    for check in (True, False):
        rotation = Rotation([given], Policy(size=1, compress=False, rotate=2, missingok=missingok),
                            str(tmp_path / 'state.json'), check_dirs=False)
        with pytest.raises(OpsReadyError) as caught:
            rotation.run(check_mode=check)
        message = caught.value.message
        assert 'PATH_MAX' in message and '4096' in message and given in message, message
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    for dummy in range(20):
        child = os.open('d' * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    try:
        assert os.listdir(fd) == ['app.log']
        with open(os.open('app.log', os.O_RDONLY, dir_fd=fd), 'rb') as handle:
            assert handle.read() == b'line 1\nline 2\n'
    finally:
        os.close(fd)


def test_a_copy_that_cannot_be_deleted_after_rotate_0_is_named_and_the_rotation_reported(tmp_path):
    """``rotate: 0`` (rotate, then delete the copy at once): another program puts a directory (its own spool, with a
    file in it) under the rotated copy's name once the log was rotated. The deletion failed with a bare
    ``IsADirectoryError`` naming ``app.log.1`` relative to nothing (the module: "Log rotation failed: Is a directory
    (app.log.1).") and the run's result was lost: nobody was told that the log had been rotated and its state
    recorded. The error now names the path and what to do, and carries what was done; the directory is untouched."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    log.write_text('line 1\n')
    copy = logs / 'app.log.1'

    class Spooled(Rotation):
        def _notify(self, pid):   # between the rotation and the deletion of its copy
            copy.unlink()
            copy.mkdir()
            (copy / 'spooled').write_text('theirs\n')
            return super()._notify(pid)

    rotation = Spooled([str(log)], Policy(size=1, compress=False, rotate=0), str(tmp_path / 'state.json'),
                       check_dirs=False)
    with pytest.raises(OpsReadyError) as caught:
        rotation.run()
    message, details = caught.value.message, caught.value.details
    assert str(copy) in message and 'Is a directory' in message, message
    assert [entry['log'] for entry in details['rotated']] == [str(log)] and details['state_written'], details
    assert str(copy) not in details['deleted']
    assert log.read_text() == '' and (copy / 'spooled').read_text() == 'theirs\n'


def _lines_everywhere(logs: Path) -> list:
    """Every line of the log and of its copies (plain ones: compress is off in these tests)."""
    return [line for path in sorted(logs.iterdir()) if path.is_file() for line in path.read_text().splitlines()]


def test_two_rotations_of_one_log_at_once_duplicate_no_line(tmp_path, monkeypatch):
    """Two log_rotate runs on the same log at the same time (a timer's run and an operator's playbook, two AWX jobs):
    the second one ran its whole rotation while the first had copied the log but not yet truncated it. Both copies
    held every line (each line twice among the copies), with nothing said. The runs now take the state file's lock
    (logrotate locks its state file the same way): the second waits for the first, then plans on what it finds
    (here an empty log: nothing to rotate). Every line is in exactly one place afterwards."""
    import threading

    from ansible_collections.opsready.operations.plugins.module_utils.logrotate import rotate as rotate_mod
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    lines = ['line %d' % i for i in range(1000)]
    log.write_text(''.join(line + '\n' for line in lines))
    state = str(tmp_path / 'state.json')
    mode = 'copytruncate'
    original = rotate_mod._catch_up_to_line_end
    second = {}

    def run_second():
        try:
            second['result'] = Rotation([str(log)], Policy(size=1, compress=False, rotate=5, mode=mode), state,
                                        check_dirs=False).run()
        except Exception as exc:  # noqa: BLE001  (reported by the assertions below)
            second['error'] = exc

    started = []

    def interleaved(src, dst, limit):
        if not started:   # the first run, between its copy and its truncation: the second run starts
            thread = threading.Thread(target=run_second)
            started.append(thread)
            thread.start()
            thread.join(2.0)
        return original(src, dst, limit)

    monkeypatch.setattr(rotate_mod, '_catch_up_to_line_end', interleaved)
    first = Rotation([str(log)], Policy(size=1, compress=False, rotate=5, mode=mode), state, check_dirs=False).run()
    started[0].join(30)
    assert not started[0].is_alive()
    assert [entry['log'] for entry in first['rotated']] == [str(log)]
    seen = _lines_everywhere(logs)
    assert sorted(seen) == sorted(lines), (len(seen), second)
    assert 'error' not in second and second['result']['rotated'] == [], second


def test_a_log_rotated_by_another_tool_meanwhile_loses_no_line(tmp_path, monkeypatch):
    """mode=create, and another logrotate (a leftover /etc/logrotate.d entry for the same log) rotates it while this
    run is midway: it renames app.log away and creates a new app.log, where the writer, told to reopen, writes on.
    This run then renamed its own empty file over that new app.log: the lines written there were in a file with no
    name left (lost once the writer reopened again), and nothing was said. The run now sees the log is no longer the
    file it rotated, undoes its renames and refuses; every line is still on disk."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
    from ansible_collections.opsready.operations.plugins.module_utils.logrotate import safefs
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    log.write_text('ours 1\nours 2\n')
    (logs / 'app.log.1').write_text('older\n')
    original = safefs.LogDir.link_fd
    done = []

    def foreign_rotation(self, fd, name):
        original(self, fd, name)
        if not done:   # after this run linked its copy, before it puts its new log in place
            done.append(name)
            os.rename(log, str(log) + '-foreign')
            log.write_text('theirs, written after the other rotation\n')

    monkeypatch.setattr(safefs.LogDir, 'link_fd', foreign_rotation)
    rotation = Rotation([str(log)], Policy(size=1, compress=False, rotate=5), str(tmp_path / 'state.json'),
                        check_dirs=False)
    with pytest.raises(OpsReadyError) as caught:
        rotation.run()
    assert str(log) in caught.value.message and 'nothing of it was changed' in caught.value.message, caught.value
    assert sorted(_lines_everywhere(logs)) == sorted(['ours 1', 'ours 2', 'older',
                                                      'theirs, written after the other rotation'])
    assert log.read_text() == 'theirs, written after the other rotation\n'
    assert (logs / 'app.log.1').read_text() == 'older\n' and not (logs / 'app.log.2').exists()
