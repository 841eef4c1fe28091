"""Every shared store's writer lock: a FIFO planted at ``<store>.lock`` fails at once (it hung the root run), and a
holder that never lets go ends in a clear error after the bounded wait instead of stalling the job for ever."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import history, incidents
from ansible_collections.opsready.operations.plugins.module_utils.notify.ledger import Ledger
from ansible_collections.opsready.operations.plugins.module_utils.patching import report


def _history(path):
    history.append(path, {'t': '2026-12-05T00:00:00Z'}, 10)


def _incidents(path):
    with incidents.IncidentStore(path).locked():
        pass


def _ledger(path):
    with Ledger(path).locked():
        pass


def _patching(path):
    report.start(path, 'run-1', ['h1'])


WRITERS = {'history': _history, 'incidents': _incidents, 'ledger': _ledger, 'patching': _patching}


def _run_bounded(store, path):
    """Run the writer in a child so a hang on today's code fails the test instead of freezing it."""
    code = ('import importlib.util, sys\n'
            'spec = importlib.util.spec_from_file_location("store_locks", %r)\n'
            'mod = importlib.util.module_from_spec(spec)\n'
            'spec.loader.exec_module(mod)\n'
            'try:\n'
            '    mod.WRITERS[sys.argv[1]](sys.argv[2])\n'
            'except Exception as exc:\n'
            '    print(type(exc).__name__, getattr(exc, "message", exc))\n'
            '    sys.exit(3)\n' % __file__)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, '-c', code, store, path], capture_output=True, text=True, timeout=20,
                          check=False, env=env)


@pytest.mark.parametrize('store', sorted(WRITERS))
def test_a_fifo_at_the_lock_name_fails_at_once(tmp_path, store):
    path = str(tmp_path / 'store.json')
    os.mkfifo(path + '.lock')
    try:
        done = _run_bounded(store, path)
    except subprocess.TimeoutExpired:
        pytest.fail('the %s writer hung on a FIFO planted at its lock name' % store)
    assert done.returncode == 3, done.stdout + done.stderr
    assert 'not a regular file' in done.stdout


@pytest.mark.parametrize('store', sorted(WRITERS))
def test_a_holder_that_never_lets_go_ends_in_a_clear_error(tmp_path, store, monkeypatch):
    path = str(tmp_path / 'store.json')
    open(path + '.lock', 'w').close()
    holder = subprocess.Popen([sys.executable, '-c', 'import fcntl, os, sys, time\n'
                               'fd = os.open(sys.argv[1], os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\n'
                               'print("held", flush=True)\ntime.sleep(60)\n', path + '.lock'],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == 'held'
    real = locks.waiting

    def quick(lock, what, timeout=120.0, mode=0o600, create=True):
        return real(lock, what, timeout=0.3, mode=mode, create=create)
    monkeypatch.setattr(locks, 'waiting', quick)
    try:
        with pytest.raises(OpsReadyError, match='held the lock'):
            WRITERS[store](path)
    finally:
        holder.kill()
        holder.wait()
