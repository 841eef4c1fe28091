"""db_insights as Ansible runs it (its own process, arguments from a file): option validation and connect
failures, before and without any server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
MODULE = ROOT / 'plugins' / 'modules' / 'db_insights.py'
SECRET = 'pw-n0t-in-output'


def run_module(tmp_path, **params):
    args = tmp_path / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / 'build'))
    proc = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    return json.loads(proc.stdout)


@pytest.mark.parametrize('params,message', [
    ({'thresholds': {'deadlock': 1}}, "Unknown insights threshold 'deadlock'"),
    ({'thresholds': {'connections_percent': {'warning': 95, 'critical': 90}}}, 'must not be above critical'),
    ({'textfile_path': '/tmp/db.txt'}, 'must end in .prom'),
    ({'history_path': '/nonexistent-dir/h.jsonl'}, 'directory /nonexistent-dir does not exist'),
    ({'top': -1}, 'top must be between 0 and 1000'),
    ({'engine': 'sqlite'}, 'value of engine must be one of'),
])
def test_bad_options_fail_before_connecting(tmp_path, params, message):
    base = {'engine': 'postgresql', 'login_host': '127.0.0.1', 'login_port': 1, 'login_password': SECRET}
    result = run_module(tmp_path, **dict(base, **params))
    assert result['failed'] is True and message in result['msg'], result['msg']


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_unreachable_server_names_host_and_port_not_the_password(tmp_path, engine):
    result = run_module(tmp_path, engine=engine, login_host='127.0.0.1', login_port=1, login_user='monitor',
                        login_password=SECRET, connect_timeout=2, history_path=str(tmp_path / 'h.jsonl'),
                        _ansible_check_mode=True)
    assert result['failed'] is True and 'Cannot connect' in result['msg'] and 'port 1' in result['msg']
    assert SECRET not in json.dumps(result)
    assert not (tmp_path / 'h.jsonl').exists()
