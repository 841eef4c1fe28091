"""The task worker's garbage collector during a module's payload build (issue 22, module start-up).

Ansible's module_utils finder parses every file a module's imports reach into an AST in the task worker, a fork of
the controller. backup_info reaches ~39,000 AST nodes of catalog code, and allocating them ran the cyclic collector
~180 times there, two of them full collections of the whole inherited controller heap: about 110 ms of the ~240 ms
build against ~40 of ping's ~120 ms. Every module's action plugin pauses the collector while the worker builds and
runs the module. These tests run the real ``ansible`` CLI (the controller instrumented to count collections during
``modify_module``) and the pause helper in a real forked process.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.plugin_utils.worker_gc import collector_paused

REPO = Path(__file__).resolve().parents[3]

# ``ansible`` in-process, with every collection that runs during a payload build counted (in the worker: the build
# happens after the fork), then the CLI's own exit.
_DRIVER = r'''
import gc, json, os, sys
from ansible.executor import module_common
import ansible.plugins.action as action
out = sys.argv.pop(1)
real = module_common.modify_module
def counted(*args, **kwargs):
    seen = []
    def callback(phase, info):
        if phase == 'start':
            seen.append(info['generation'])
    gc.callbacks.append(callback)
    try:
        return real(*args, **kwargs)
    finally:
        gc.callbacks.remove(callback)
        with open(out, 'a') as handle:
            handle.write(json.dumps({'module': kwargs.get('module_name'), 'collections': seen}) + '\n')
module_common.modify_module = action.modify_module = counted
from ansible.cli.adhoc import main
sys.argv = ['ansible'] + sys.argv[1:]
main()
'''


def _adhoc(tmp_path, *args):
    out = tmp_path / 'builds.jsonl'
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK='default',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local'))
    result = subprocess.run([sys.executable, '-c', _DRIVER, str(out), 'localhost', '-i',
                             str(REPO / 'inventories' / 'local')] + list(args),
                            cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.startswith('localhost | SUCCESS => '), result.stdout[-3000:]
    task = json.loads(result.stdout.split('=>', 1)[1])
    builds = [json.loads(line) for line in out.read_text().splitlines()]
    return task, builds


@pytest.mark.parametrize('check', [False, True])
def test_backup_info_payload_built_without_collections(tmp_path, check):
    empty = tmp_path / 'catalog'
    empty.mkdir()
    task, builds = _adhoc(tmp_path, *(['-C'] if check else []),
                          '-m', 'opsready.operations.backup_info', '-a', 'path=%s' % empty)
    assert task['changed'] is False and not task.get('failed'), task
    assert task['sets'] == [] and task['artifacts'] == [] and task['artifacts_total'] == 0, task
    assert [b['module'] for b in builds] == ['opsready.operations.backup_info'], builds
    assert builds[0]['collections'] == [], (
        'the worker ran the garbage collector %d times (%d of them full) while Ansible parsed backup_info\'s '
        'module_utils' % (len(builds[0]['collections']), builds[0]['collections'].count(2)))
    assert not os.listdir(empty), 'backup_info wrote into the catalog directory'


# ``ansible`` in-process; in the task worker, every collection from the end of the payload build to the end of the
# task, with the number of objects it had to walk (those of the generations it collects).
_AFTER_DRIVER = r"""
import gc, json, sys
from ansible.executor import module_common, task_executor
import ansible.plugins.action as action
out = sys.argv.pop(1)
walked = []
def callback(phase, info):
    if phase == 'start':
        walked.append(sum(len(gc.get_objects(g)) for g in range(info['generation'] + 1)))
real_build = module_common.modify_module
def build(*args, **kwargs):
    try:
        return real_build(*args, **kwargs)
    finally:
        gc.callbacks.append(callback)
module_common.modify_module = action.modify_module = build
real_run = task_executor.TaskExecutor.run
def run(self):
    try:
        return real_run(self)
    finally:
        if callback in gc.callbacks:
            gc.callbacks.remove(callback)
        with open(out, 'a') as handle:
            handle.write(json.dumps({'walked': walked}) + '\n')
task_executor.TaskExecutor.run = run
from ansible.cli.adhoc import main
sys.argv = ['ansible'] + sys.argv[1:]
main()
"""


def test_no_collection_walks_the_builds_leftovers_after_the_action(tmp_path):
    """The finder links each import node of the ASTs it parses to its parent, so the build leaves ~126,000 objects
    in reference cycles. When the paused collector came back on, its first collection walked them all (~45 ms of the
    worker's CPU, before the result went back): the worker's first action now freezes them instead."""
    empty = tmp_path / 'catalog'
    empty.mkdir()
    out = tmp_path / 'walked.jsonl'
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK='default',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local'))
    result = subprocess.run([sys.executable, '-c', _AFTER_DRIVER, str(out), 'localhost', '-i',
                             str(REPO / 'inventories' / 'local'), '-m', 'opsready.operations.backup_info', '-a',
                             'path=%s' % empty], cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    task = json.loads(result.stdout.split('=>', 1)[1])
    assert task['sets'] == [] and not task.get('failed'), task
    walked = [json.loads(line)['walked'] for line in out.read_text().splitlines()]
    assert len(walked) == 1, walked
    assert max(walked[0], default=0) < 20000, (
        'after backup_info\'s action, the worker\'s collector walked %s objects' % walked[0])


def _frozen_in_child(queue):
    garbage = []
    with collector_paused():
        for dummy in range(3):
            cycle: list = []
            cycle.append(cycle)
            garbage.append(cycle)
    first = (gc.get_count()[0], gc.get_freeze_count())
    with collector_paused():
        cycle = []
        cycle.append(cycle)
    queue.put([first, gc.get_freeze_count()])


def test_frozen_once_per_worker():
    """The first action of a worker freezes (the young objects start from zero); a later one in the same worker
    (a loop's next item) does not freeze again: what it leaves is collected as before."""
    context = multiprocessing.get_context('fork')
    queue = context.Queue()
    child = context.Process(target=_frozen_in_child, args=(queue,))
    child.start()
    (young, frozen), later = queue.get(timeout=30)
    child.join(30)
    assert young < 10 and frozen > 0
    assert later == frozen
    assert gc.get_freeze_count() == 0, 'the test process itself was frozen'


def test_the_count_sees_collections_where_none_is_paused(tmp_path):
    """Guard (passes on the old code too): ping's build, with Ansible's own collector, does count collections,
    so the empty count above is the pause's doing and not a blind instrument."""
    task, builds = _adhoc(tmp_path, '-m', 'ansible.builtin.ping')
    assert task['ping'] == 'pong'
    assert [b['module'] for b in builds] == ['ansible.builtin.ping'] and len(builds[0]['collections']) > 10, builds


def _in_child(queue, initially_enabled, fail):
    if not initially_enabled:
        gc.disable()
    states = []
    try:
        with collector_paused():
            states.append(gc.isenabled())
            if fail:
                raise RuntimeError('the task failed')
    except RuntimeError:
        pass
    states.append(gc.isenabled())
    queue.put(states)


@pytest.mark.parametrize('initially_enabled,fail', [(True, False), (True, True), (False, False)])
def test_paused_in_a_forked_worker_and_restored_as_it_was(initially_enabled, fail):
    context = multiprocessing.get_context('fork')   # as Ansible starts its task workers
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(queue, initially_enabled, fail))
    child.start()
    states = queue.get(timeout=30)
    child.join(30)
    assert states == [False, initially_enabled]


def test_never_paused_in_the_controller_process():
    """Guard: the controller (no multiprocessing parent) keeps its collector: it lives on after the task."""
    assert gc.isenabled()
    with collector_paused():
        assert gc.isenabled()
    assert gc.isenabled()


def test_action_keeps_module_defaults_groups_and_async(tmp_path):
    """Guard (passes on the old code too): through the action plugin, backup_info still takes its options from
    ``module_defaults`` of its action group and runs under ``async``."""
    empty = tmp_path / 'catalog'
    empty.mkdir()
    book = tmp_path / 'play.yml'
    book.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'module_defaults': {'group/opsready.operations.backup': {'path': str(empty)}},
        'tasks': [
            {'opsready.operations.backup_info': None, 'register': 'plain'},
            {'opsready.operations.backup_info': None, 'async': 60, 'poll': 1, 'register': 'later'},
            {'ansible.builtin.assert': {'that': ['plain.directory == %r' % str(empty), 'plain.sets == []',
                                                 'later.sets == []', 'later.finished == 1']}},
        ]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local'),
               ANSIBLE_ASYNC_DIR=str(tmp_path / 'async'))
    result = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i',
                             str(REPO / 'inventories' / 'local'), str(book)], cwd=str(REPO), env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and 'failed=0' in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


def test_every_module_runs_through_the_collector_paused_action():
    """Every module has its action plugin, a CollectorPausedAction (a module added without one would build its
    payload with the worker's collector walking the controller heap)."""
    import importlib

    from ansible_collections.opsready.operations.plugins.plugin_utils.worker_gc import CollectorPausedAction

    modules = sorted(p.stem for p in (REPO / 'plugins' / 'modules').glob('*.py') if not p.stem.startswith('_'))
    assert len(modules) > 30
    missing = [m for m in modules if not (REPO / 'plugins' / 'action' / (m + '.py')).is_file()]
    assert not missing, 'modules without an action plugin: %s' % missing
    for name in modules:
        plugin = importlib.import_module('ansible_collections.opsready.operations.plugins.action.' + name)
        assert issubclass(plugin.ActionModule, CollectorPausedAction), name
