"""Run real ansible-playbook jobs from tests, the way AWX does (ansible-runner), and read results.

Every integration test drives playbooks through ``run_playbook`` so that it exercises the real
collection as installed under build/ (ansible.cfg at the repository root).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import ansible_runner

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = str(REPO / '.venv' / 'bin' / 'python')
LOCAL_INVENTORY = str(REPO / 'inventories' / 'local')


class PlaybookResult:
    """What a run produced: rc, status, stdout, and every task result (job events)."""

    def __init__(self, runner: Any, stdout: str) -> None:
        self.rc: int = runner.rc
        self.status: str = runner.status
        self.stdout = stdout
        self.events: List[Dict[str, Any]] = list(runner.events)

    def task_results(self, task: Optional[str] = None, host: Optional[str] = None,
                     events: Iterable[str] = ('runner_on_ok', 'runner_on_failed', 'runner_on_skipped',
                                              'runner_item_on_ok', 'runner_item_on_failed')) -> List[Dict[str, Any]]:
        """Results of the tasks named ``task`` (exact name), each with ``_event`` and ``_host`` added."""
        found = []
        for event in self.events:
            if event.get('event') not in events:
                continue
            data = event.get('event_data', {})
            if task is not None and data.get('task') != task:
                continue
            if host is not None and data.get('host') != host:
                continue
            res = dict(data.get('res') or {})
            res['_event'] = event['event']
            res['_host'] = data.get('host')
            res['_task'] = data.get('task')
            found.append(res)
        return found

    def result(self, task: str, host: Optional[str] = None) -> Dict[str, Any]:
        """The single result of task ``task``; fails the test with the output when absent."""
        found = self.task_results(task, host)
        assert found, 'task %r produced no result; output:\n%s' % (task, self.stdout[-6000:])
        return found[-1]

    @property
    def failed(self) -> bool:
        return self.rc != 0

    def __repr__(self) -> str:
        return '<PlaybookResult rc=%s status=%s>' % (self.rc, self.status)


def run_playbook(playbook: str, extravars: Optional[Dict[str, Any]] = None, inventory: Optional[str] = None,
                 check: bool = False, diff: bool = False, limit: Optional[str] = None,
                 envvars: Optional[Dict[str, str]] = None, tags: Optional[str] = None,
                 timeout: int = 900, verbosity: int = 0) -> PlaybookResult:
    """Run ``playbook`` (a path, absolute or relative to the repository root).

    ``inventory`` defaults to inventories/local. Output is kept in the result and echoed to stdout
    so pytest shows it when a test fails.
    """
    path = Path(playbook)
    if not path.is_absolute():
        path = REPO / path
    private = tempfile.mkdtemp(prefix='opsready-runner-')
    cmdline = []
    if check:
        cmdline.append('--check')
    if diff:
        cmdline.append('--diff')
    env = {
        'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': str(REPO / 'build'),
        'ANSIBLE_ROLES_PATH': str(REPO / 'roles'),
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_NOCOLOR': '1',
        'PATH': os.path.dirname(VENV_PYTHON) + os.pathsep + os.environ.get('PATH', ''),
    }
    env.update(envvars or {})
    try:
        runner = ansible_runner.run(
            private_data_dir=private,
            playbook=str(path),
            inventory=inventory or LOCAL_INVENTORY,
            extravars=extravars or {},
            cmdline=' '.join(cmdline) or None,
            limit=limit,
            tags=tags,
            envvars=env,
            quiet=True,
            timeout=timeout,
            verbosity=verbosity,
            project_dir=str(REPO),
        )
        stdout = runner.stdout.read() if runner.stdout else ''
        result = PlaybookResult(runner, stdout)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    sys.stdout.write(stdout)
    return result


def write_playbook(directory: Path, tasks: List[Dict[str, Any]], hosts: str = 'localhost',
                   gather_facts: bool = False, name: str = 'test play') -> str:
    """Write a one-play playbook (JSON is valid YAML) running ``tasks``; returns its path."""
    play = [{'name': name, 'hosts': hosts, 'gather_facts': gather_facts, 'tasks': tasks}]
    path = directory / 'playbook.yml'
    path.write_text(json.dumps(play, indent=2))
    return str(path)


def play(directory: Path, tasks: List[Dict[str, Any]], extravars: Optional[Dict[str, Any]] = None,
         **kw: Any) -> PlaybookResult:
    """Run one play of ``tasks`` on localhost (``run_playbook``'s options in ``kw``: check, diff, envvars, ...) from
    a playbook of its own in ``directory`` (play-0.yml, play-1.yml, ...: a test's earlier plays stay to be read when
    it fails). Secrets go in ``extravars``, never in the playbook file (``conn``)."""
    book = directory / ('play-%d.yml' % len(list(directory.glob('play-*.yml'))))
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    return run_playbook(str(book), extravars=extravars, **kw)


def play_role(directory: Path, role: str, role_vars: Dict[str, Any], **kw: Any) -> PlaybookResult:
    """Run the collection's role ``role`` (its short name: ``backup``) on localhost with ``role_vars`` as the play's
    vars, from a playbook of its own in ``directory`` numbered as ``play`` numbers its own (``run_playbook``'s
    options in ``kw``: tags, envvars, ...)."""
    book = directory / ('play-%d.yml' % len(list(directory.glob('play-*.yml'))))
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'vars': role_vars,
                                 'roles': [{'role': 'opsready.operations.%s' % role}]}]))
    return run_playbook(str(book), **kw)


def conn(server: Any, password_var: str = 'pg_password') -> Dict[str, Any]:
    """A test server's (tests/harness/servers.py) login options for a db_* task; the password is the playbook
    variable ``password_var``, which the play's ``extravars`` give (``{password_var: server.password}``)."""
    return {'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
            'login_password': '{{ %s }}' % password_var}
