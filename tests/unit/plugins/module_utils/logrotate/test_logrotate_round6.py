"""Operations red team, round 6: the rotation state file.

- A state file that is JSON but not the shape written (``{"logs": 5}``, an entry that is a string, a
  ``last_rotated`` that is a number) crashed the module with a Python traceback (TypeError/AttributeError)
  instead of saying which file and entry to fix.
- A ``last_rotated`` in the future (a clock that was set ahead when it was written, a state file copied from
  another host) stopped interval rotation for good: ``now <= last`` is "not due" until the clock reaches it, so
  the log grew without bound and nothing said why. logrotate forces the rotation when the last one is more than
  25 hours ahead ("last rotated in the future -- rotation forced"); so does this now, with the reason said.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy, plan_log
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.triggers import StateFile, decide

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LOG = '/var/log/app/a.log'


@pytest.mark.parametrize('content', [
    {'logs': 5},
    {'logs': 'abc'},
    {'logs': [[LOG, 1]]},
    {'logs': {LOG: 'yesterday'}},
    {'logs': {LOG: {'last_rotated': 5}}},
    {'logs': {LOG: {'last_rotated': None, 'x': 1}, 7: {}}},
    {'version': 1, 'logs': {LOG: ['2026-11-28T00:00:00Z']}},
], ids=['logs-int', 'logs-str', 'logs-list', 'entry-str', 'time-int', 'entry-no-time', 'entry-list'])
def test_a_state_file_of_the_wrong_shape_is_a_clear_error(tmp_path, content):
    path = tmp_path / 'state.json'
    path.write_text(json.dumps(content))
    try:
        state = StateFile(str(path))
        state.last_rotated(LOG)
    except OpsReadyError as exc:
        assert str(path) in exc.message and 'fix or remove it' in exc.message, exc.message
    else:
        # the only acceptable silent outcome: an entry without a time reads as "never rotated"
        assert content['logs'][LOG].get('last_rotated') is None


def test_a_rotation_over_a_wrong_shape_state_file_fails_clearly_and_renames_nothing(tmp_path):
    log = tmp_path / 'a.log'
    log.write_text('line\n')
    state = tmp_path / 'state.json'
    state.write_text(json.dumps({'logs': {str(log): 'garbage'}}))
    rotation = Rotation([str(log)], Policy(interval='daily', compress=False), str(state), check_dirs=False,
                        now=NOW)
    with pytest.raises(OpsReadyError, match='fix or remove it'):
        rotation.run()
    # (state.json.lock: the lock every real run of this state file takes, kept for the next run to queue on)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.log', 'state.json', 'state.json.lock']


@pytest.mark.parametrize('interval', ['daily', 'weekly', 'monthly', 'yearly'])
def test_last_rotated_far_in_the_future_forces_the_rotation(interval):
    future = NOW + datetime.timedelta(days=400)
    due, reason, _first = decide(10, future, NOW, size_limit=None, minsize=None, interval=interval, force=False,
                                 notifempty=True)
    assert due and 'future' in reason, reason


def test_last_rotated_slightly_ahead_is_clock_skew_not_a_reason():
    """Regression guard (passed before): less than 25 hours ahead (DST, a host moved zones) is not due."""
    ahead = NOW + datetime.timedelta(hours=3)
    due, _reason, _first = decide(10, ahead, NOW, size_limit=None, minsize=None, interval='daily', force=False,
                                  notifempty=True)
    assert not due


def test_future_state_rotates_then_records_now(tmp_path):
    log = tmp_path / 'a.log'
    log.write_text('line\n')
    state = tmp_path / 'state.json'
    state.write_text(json.dumps({'version': 1, 'logs': {str(log): {'last_rotated': '2099-01-01T00:00:00Z'}}}))
    plan = Rotation([str(log)], Policy(interval='daily', compress=False), str(state), check_dirs=False,
                    now=NOW).run(check_mode=True)
    assert plan['changed'] and [p['log'] for p in plan['plan']] == [str(log)]
    result = Rotation([str(log)], Policy(interval='daily', compress=False), str(state), check_dirs=False,
                      now=NOW).run()
    assert [r['log'] for r in result['rotated']] == [str(log)]
    assert (tmp_path / 'a.log.1').read_text() == 'line\n'
    assert StateFile(str(state)).last_rotated(str(log)) == NOW


def test_check_mode_plans_what_the_real_run_does_when_an_old_copy_is_held_open(tmp_path):
    """Check mode skipped the pre-flight the real run makes: with an old copy due for deletion still open for
    writing by a process (a writer that never reopened), check mode said "changed" and listed the rotation while
    the real run refuses it and changes nothing. Both now say the same."""
    log = tmp_path / 'a.log'
    log.write_text('new\n')
    for index in (1, 2):
        (tmp_path / ('a.log.%d' % index)).write_text('old %d\n' % index)
    state = str(tmp_path / 'state.json')
    policy = Policy(size=1, rotate=2, compress=False)
    with open(tmp_path / 'a.log.2', 'a') as handle:
        writer = subprocess.Popen(['sleep', '30'], stdout=handle)
    try:
        checked = Rotation([str(log)], policy, state, check_dirs=False, now=NOW).run(check_mode=True)
        real = Rotation([str(log)], policy, state, check_dirs=False, now=NOW).run()
    finally:
        writer.kill()
        writer.wait()
    assert real['rotated'] == [] and not real['changed']
    assert [p['log'] for p in checked['plan']] == [p['log'] for p in real['plan']] == []
    assert checked['changed'] == real['changed']
    assert checked['held_open'] == real['held_open'] == [{'path': str(tmp_path / 'a.log.2'), 'pids': [writer.pid]}]
    assert checked['diff'] == real['diff'] == {'before': '', 'after': ''}


@pytest.mark.parametrize('stray', ['a.log.01', 'a.log.0', 'a.log.002.zst', 'a.log.00'])
def test_a_number_not_written_by_a_rotation_does_not_block_every_rotation(tmp_path, stray):
    """``a.log.01`` (a copy made by hand or another tool) read as index 1 and ``a.log.0`` as index 0: both were
    renamed onto a name the rotation itself needs (``a.log.2``, ``a.log.1``), the rename refused and every run
    failed from then on while the log grew. Only the names a rotation writes (1, 2, ... 10, no leading zero) are
    copies of the log; anything else is left alone."""
    log = tmp_path / 'a.log'
    log.write_text('now\n')
    (tmp_path / 'a.log.1').write_text('one\n')
    (tmp_path / 'a.log.2').write_text('two\n')
    (tmp_path / stray).write_text('stray\n')
    result = Rotation([str(log)], Policy(size=1, rotate=5, compress=False), str(tmp_path / 'state.json'),
                      check_dirs=False, now=NOW).run()
    assert [r['log'] for r in result['rotated']] == [str(log)]
    assert (tmp_path / 'a.log.1').read_text() == 'now\n'
    assert (tmp_path / 'a.log.2').read_text() == 'one\n'
    assert (tmp_path / 'a.log.3').read_text() == 'two\n'
    assert (tmp_path / stray).read_text() == 'stray\n'


def test_index_ten_sorts_after_nine():
    """Regression guard (passed before): .10 is older than .9 (numeric, not text order), and is deleted first."""
    names = ['a.log.%d' % i for i in range(1, 11)]
    plan, _why = plan_log('/l/a.log', 5, 'size', Policy(size=1, rotate=10, compress=False), NOW, names=names,
                          lstat=lambda name: os.stat_result((0o100644, 1, 1, 1, 0, 0, 1, 0, 0, 0)))
    assert plan.delete == ['/l/a.log.10']
    assert plan.shifts[0] == ('/l/a.log.9', '/l/a.log.10') and plan.shifts[-1] == ('/l/a.log.1', '/l/a.log.2')
