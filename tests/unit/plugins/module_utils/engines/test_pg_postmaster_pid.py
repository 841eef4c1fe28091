"""postmaster.pid as root reads it in a postgres-owned data directory: a planted FIFO must not hang the run (it
did: PITR's running-server check, the failover's is_running and the failover drill's kill all used open()),
and a planted link must not make root read or act on the file it names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.postmaster import postmaster_pid


def test_the_pid_of_a_running_server_file(tmp_path):
    (tmp_path / 'postmaster.pid').write_text('%d\n/var/lib/postgresql/15/main\n1733380000\n5432\n' % os.getpid())
    assert postmaster_pid(str(tmp_path)) == os.getpid()


@pytest.mark.parametrize('planted', ['missing', 'garbage', 'symlink', 'directory'])
def test_no_pid_from_what_is_not_a_regular_pid_file(tmp_path, planted):
    path = tmp_path / 'postmaster.pid'
    if planted == 'garbage':
        path.write_text('not a pid\n')
    elif planted == 'symlink':
        target = tmp_path / 'elsewhere'
        target.write_text('1\n')                 # pid 1: acting on it would be the worst case
        os.symlink(str(target), str(path))
    elif planted == 'directory':
        path.mkdir()
    assert postmaster_pid(str(tmp_path)) is None


CALLERS = {
    'pitr': 'from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr\n'
            'print(pitr._server_running(sys.argv[1]))\n',
    'drill': 'from ansible_collections.opsready.operations.plugins.module_utils.replication import drill\n'
             'from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError\n'
             'try:\n    drill.kill_postmaster(sys.argv[1])\nexcept OpsReadyError as exc:\n    print(exc.message)\n',
}


@pytest.mark.parametrize('caller', sorted(CALLERS))
def test_a_fifo_at_postmaster_pid_does_not_hang_the_callers(tmp_path, caller):
    os.mkfifo(str(tmp_path / 'postmaster.pid'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        done = subprocess.run([sys.executable, '-c', 'import sys\n' + CALLERS[caller], str(tmp_path)],
                              capture_output=True, text=True, timeout=20, check=False, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail('%s hung on a FIFO planted at postmaster.pid' % caller)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'None' if caller == 'pitr' else 'no readable postmaster.pid' in done.stdout
