"""Rotation logic without Ansible: sizes, triggers, naming/plan, discovery, compression, /proc scan."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time

import pytest
import zstandard

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.logrotate import compress, signalling
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy, dated_pattern, plan_log
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import rotate_create
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.targets import discover
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.triggers import (
    StateFile, decide, interval_due, parse_size)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize('text,expected', [('512', 512), ('10k', 10240), ('100M', 100 * 1024 ** 2),
                                           ('1.5G', int(1.5 * 1024 ** 3)), ('2MiB', 2 * 1024 ** 2), (7, 7)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_refuses_garbage():
    with pytest.raises(OpsReadyError, match='not a size'):
        parse_size('ten megs')


def test_intervals_are_calendar_periods():
    local = NOW.astimezone()
    assert interval_due('daily', local - datetime.timedelta(days=1), local)
    assert not interval_due('daily', local.replace(hour=0, minute=1), local.replace(hour=23))
    assert interval_due('monthly', local - datetime.timedelta(days=40), local)
    assert not interval_due('yearly', local - datetime.timedelta(days=1), local)
    assert not interval_due('daily', local + datetime.timedelta(days=1), local)  # clock went back


def test_decide_rules():
    def decide_with(size, last, **changes):
        options = dict(size_limit=None, minsize=None, interval='daily', force=False, notifempty=True)
        options.update(changes)
        return decide(size, last, NOW, **options)

    assert decide_with(0, None, force=True)[0] is False              # notifempty wins
    assert decide_with(5, None) == (False, 'first seen: daily rotation counts from now', True)
    yesterday = NOW - datetime.timedelta(days=1)
    assert decide_with(5, yesterday)[0] is True
    assert decide_with(5, yesterday, minsize=10)[0] is False
    assert decide_with(2048, None, interval=None, size_limit=1024)[0] is True
    assert decide_with(100, None, interval=None, size_limit=1024)[0] is False


def test_state_file_roundtrip_only_writes_on_change(tmp_path):
    path = str(tmp_path / 'sub' / 'state.json')
    state = StateFile(path)
    assert state.save() is False
    state.record('/var/log/a.log', NOW)
    assert state.save() is True and StateFile(path).last_rotated('/var/log/a.log') == NOW
    assert StateFile(path).save() is False


def test_numbered_plan_shifts_deletes_and_compresses(tmp_path):
    log = str(tmp_path / 'app.log')
    names = ['app.log', 'app.log.1', 'app.log.2.zst', 'app.log.3.zst', 'other.log.1']
    for name in names:
        (tmp_path / name).write_text('x')
    plan, why = plan_log(log, 1, 'force', Policy(force=True, rotate=3), NOW)
    assert why is None
    assert plan.delete == [log + '.3.zst']
    assert plan.shifts == [(log + '.2.zst', log + '.3.zst'), (log + '.1', log + '.2')]
    assert plan.compress == [log + '.2', log + '.1']
    delayed, _why = plan_log(log, 1, 'force', Policy(force=True, rotate=3, delaycompress=True), NOW)
    assert delayed.compress == [log + '.2']
    zero, _why = plan_log(log, 1, 'force', Policy(force=True, rotate=0), NOW)
    assert zero.delete_after == [log + '.1'] and len(zero.delete) == 3


def test_dated_plan_keeps_newest_by_date_not_by_name(tmp_path):
    log = str(tmp_path / 'app.log')
    for name in ('app.log-01122025.zst', 'app.log-31012026.zst', 'app.log-15062026'):
        (tmp_path / name).write_text('x')
    policy = Policy(force=True, rotate=2, dateext=True, dateformat='-%d%m%Y')
    plan, _why = plan_log(log, 1, 'force', policy, NOW)
    assert plan.rotated_to == log + NOW.astimezone().strftime('-%d%m%Y')
    assert sorted(plan.delete) == [log + '-01122025.zst', log + '-31012026.zst']
    assert plan.compress == [log + '-15062026', plan.rotated_to]


def test_dateformat_directives_are_checked():
    assert dated_pattern('-%Y%m%d').fullmatch('-20261129')
    with pytest.raises(OpsReadyError, match='%b'):
        dated_pattern('-%b')


def test_glob_skips_rotated_copies_and_missing_is_an_error(tmp_path):
    for name in ('a.log', 'a.log.1', 'a.log.2.zst', 'b.log', 'b.log.gz', 'c.log.partial'):
        (tmp_path / name).write_text('x')
    logs, missing = discover([str(tmp_path / '*')])
    assert logs == [str(tmp_path / 'a.log'), str(tmp_path / 'b.log')] and missing == []
    with pytest.raises(OpsReadyError, match='missingok'):
        discover([str(tmp_path / 'z*.log')])
    assert discover([str(tmp_path / 'z*.log')], missingok=True) == ([], [str(tmp_path / 'z*.log')])
    os.symlink(str(tmp_path / 'a.log'), str(tmp_path / 'link.log'))
    with pytest.raises(OpsReadyError, match='symlink'):
        discover([str(tmp_path / 'link.log')])


def test_compress_is_atomic_and_keeps_metadata(tmp_path):
    path = tmp_path / 'app.log.1'
    data = os.urandom(100_000) + b'tail\n'
    path.write_bytes(data)
    path.chmod(0o640)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    info = compress.compress_file(str(path))
    target = tmp_path / 'app.log.1.zst'
    assert not path.exists() and info['compressed'] == str(target)
    assert zstandard.ZstdDecompressor().stream_reader(open(target, 'rb')).read() == data
    assert target.stat().st_mode & 0o777 == 0o640 and int(target.stat().st_mtime) == 1_000_000_000
    assert sorted(os.listdir(tmp_path)) == ['app.log.1.zst']


def test_rotate_create_keeps_the_log_path_and_refuses_to_overwrite(tmp_path):
    log = tmp_path / 'app.log'
    log.write_text('one\n')
    rotate_create(str(log), str(tmp_path / 'app.log.1'), Policy(force=True))
    assert log.read_text() == '' and (tmp_path / 'app.log.1').read_text() == 'one\n'
    log.write_text('two\n')
    with pytest.raises(FileExistsError):
        rotate_create(str(log), str(tmp_path / 'app.log.1'), Policy(force=True))
    assert log.read_text() == 'two\n' and sorted(os.listdir(tmp_path)) == ['app.log', 'app.log.1']


def test_writers_holding_sees_writers_not_readers(tmp_path):
    written = tmp_path / 'w.log'
    read = tmp_path / 'r.log'
    written.write_text('')
    read.write_text('')
    code = ('import sys, time\nw = open(sys.argv[1], "a")\nr = open(sys.argv[2])\nprint("ready", flush=True)\n'
            'time.sleep(30)')
    proc = subprocess.Popen([sys.executable, '-c', code, str(written), str(read)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b'ready'
        held = signalling.writers_holding([str(written), str(read)])
        assert held == {str(written): [proc.pid]}
    finally:
        proc.kill()
        proc.wait()
    start = time.monotonic()
    assert signalling.wait_released([str(written)], timeout=5) == {}
    assert time.monotonic() - start < 5


def test_stale_pidfile_is_refused(tmp_path):
    proc = subprocess.Popen(['true'])
    proc.wait()
    pidfile = tmp_path / 'x.pid'
    pidfile.write_text(str(proc.pid))
    with pytest.raises(OpsReadyError, match='no such process'):
        signalling.read_pidfile(str(pidfile))
    pidfile.write_text('garbage')
    with pytest.raises(OpsReadyError, match='does not hold a process id'):
        signalling.read_pidfile(str(pidfile))
