"""Fault matrix, hostile filesystems round 6: the writers round 5 did not give ``safeio.check_parents`` (harness:
test_hostile_round3/4/5, an unprivileged account made and removed by test_hostile_files, its moves run as that
account with setpriv).

Every module that creates or replaces a file by name as root, in a directory a module option names: the health
history and textfile (health_check, db_insights, slo_report), redis_insights' textfile, the incident store, the
notify ledger, prometheus_rules' rules file and db_endpoint's pooler configuration. The option points into a
directory that an account other than root linked to a directory of root's (/etc): each is refused before anything
is read for writing, written or created there, naming the option and the account, in check mode too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_inputs_sweep as sweep
from tests.faults import test_hostile_round3 as round3

racer_user = hostile.racer_user
arena = hostile.arena
snapshot = hostile.snapshot
touched = hostile.touched
as_user = round3.as_user
user_dir = round3.user_dir

PGBOUNCER_INI = b'[databases]\napp = host=10.0.0.1 port=5432 dbname=app\n\n[pgbouncer]\nlisten_port = 6432\n'

# (module, option named in the refusal, arguments); {dir} is the linked directory, {work} a directory of root's.
WRITERS = [
    ('health_check', 'history_path', {'metrics': [], 'history_path': '{dir}/health-history.jsonl'}),
    ('health_check', 'textfile_path', {'metrics': [], 'textfile_path': '{dir}/opsready_health.prom'}),
    ('db_insights', 'history_path', {'engine': 'postgresql', 'login_host': '127.0.0.1', 'login_port': 1,
                                     'history_path': '{dir}/health-history.jsonl'}),
    ('db_insights', 'textfile_path', {'engine': 'postgresql', 'login_host': '127.0.0.1', 'login_port': 1,
                                      'textfile_path': '{dir}/opsready_db.prom'}),
    ('redis_insights', 'textfile_path', {'host': '127.0.0.1', 'port': 1, 'textfile_path': '{dir}/redis.prom'}),
    ('slo_report', 'textfile_path', {'history_path': '{work}/history.jsonl', 'textfile_path': '{dir}/slo.prom',
                                     'slos': [{'name': 'api', 'service': 'api', 'sli': 'availability',
                                               'objective': 99.9, 'check': 'api'}]}),
    ('incident', 'store', {'store': '{dir}/incidents.jsonl', 'key': 'health:db1', 'title': 'db1 is critical',
                           'severity': 2}),
    ('notify', 'state_file', {'job': 'backup', 'name': 'app', 'outcome': 'failure', 'channels': [],
                              'state_file': '{dir}/notify.json'}),
    ('prometheus_rules', 'dest', {'dest': '{dir}/opsready.yml', 'host_rules': True, 'validate': 'never'}),
    ('db_endpoint', 'path', {'path': '{dir}/pgbouncer.ini', 'entries': ['app'], 'host': '127.0.0.1',
                             'port': 5432, 'reload': 'none'}),
    ('failover_drill', 'endpoint.path', {
        'mode': 'switchover', 'primary': 'a', 'candidate': 'b',
        'nodes': [{'name': 'a', 'login_host': '127.0.0.1', 'login_port': 1},
                  {'name': 'b', 'login_host': '127.0.0.1', 'login_port': 1}],
        'writer': {'host': '127.0.0.1', 'port': 1, 'database': 'app', 'user': 'drill'},
        'endpoint': {'path': '{dir}/pgbouncer.ini', 'entries': ['app']}}),
]


def _fill(value, **names):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill(v, **names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, **names) for k, v in value.items()}
    return value


def _run(module: str, args: dict, workdir: Path, check_mode: bool) -> tuple:
    """(result, seconds, stderr) of one module run in a child process, check mode as asked."""
    argfile = workdir / ('args-%s-%d.json' % (module, time.monotonic_ns()))
    argfile.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check_mode)}))
    env = dict(os.environ, PYTHONPATH=str(sweep.REPO / 'build'), LC_ALL='C.UTF-8')
    start = time.monotonic()
    proc = subprocess.run([sweep.PYTHON, '-m', 'ansible_collections.opsready.operations.plugins.modules.%s' % module,
                           str(argfile)], capture_output=True, stdin=subprocess.DEVNULL, cwd=str(workdir), env=env,
                          timeout=60, check=False)
    text = proc.stdout.decode(errors='replace').strip()
    try:
        result = json.loads(text[text.index('{'):]) if '{' in text else {'unparsed': text}
    except ValueError:
        result = {'unparsed': text}
    return result, time.monotonic() - start, proc.stderr.decode(errors='replace')


@pytest.mark.fast
@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('module,option,extra', WRITERS, ids=['%s-%s' % (m, o) for m, o, _e in WRITERS])
@pytest.mark.fault(fault='{option} of {module} is in a directory another account linked to a directory of root\'s',
                   component='{module} (safeio.check_parents)',
                   expected='refused before anything is written, naming the option and the account, check mode '
                            'too; nothing created or replaced in root\'s directory')
def test_written_file_below_another_accounts_link(racer_user, arena, tmp_path, module, option, extra, check_mode,
                                                  fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    victim = outside / 'etc'
    (victim / 'pgbouncer.ini').write_bytes(PGBOUNCER_INI)   # another pooler's configuration, for db_endpoint
    app = user_dir(base / 'app', user)
    as_user(user, 'ln -s %s %s/state' % (victim, app))
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'history.jsonl').write_bytes(b'')
    args = _fill(extra, dir=app / 'state', work=work)
    before = snapshot(outside)
    result, seconds, stderr = _run(module, args, work, check_mode)
    after = snapshot(outside)
    fault.observed('%s in %.1f s: %s; files in root\'s directory touched: %d' % (
        'failed' if result.get('failed') else 'done', seconds, str(result.get('msg'))[:160], touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    msg = str(result.get('msg'))
    assert result.get('failed') and 'Traceback' not in stderr, (result, stderr[-1500:])
    assert option in msg and str(app) in msg and user.pw_name in msg, (result, stderr[-1500:])
