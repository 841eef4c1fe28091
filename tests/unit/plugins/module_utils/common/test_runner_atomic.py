"""ToolRunner keeps secrets out of argv and messages; atomic writes never leave a half file."""

import os
import stat

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import (
    append_line_durable, atomic_write_text)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner, secret_file

SECRET = 's3cr3t-Pa55'


def test_secret_in_argv_is_refused():
    runner = ToolRunner(secrets=[SECRET])
    with pytest.raises(OpsReadyError, match='refusing to pass a secret'):
        runner.run(['echo', '--password=' + SECRET])


def test_secret_reaches_tool_by_environment_and_is_redacted():
    runner = ToolRunner(secrets=[SECRET])
    rc, out, dummy = runner.run(['sh', '-c', 'echo "pw is $PGPASSWORD"'], env={'PGPASSWORD': SECRET})
    assert rc == 0 and SECRET not in out and 'pw is ********' in out


def test_failure_message_carries_redacted_stderr():
    runner = ToolRunner(secrets=[SECRET])
    with pytest.raises(ToolError) as info:
        runner.run(['sh', '-c', 'echo "auth failed for $P" >&2; exit 3'], env={'P': SECRET}, what='pg_dump')
    assert 'pg_dump failed with exit code 3' in info.value.message
    assert SECRET not in info.value.message and SECRET not in info.value.stderr


def test_popen_finish_reports_kill_signal():
    runner = ToolRunner()
    proc = runner.popen(['sleep', '30'])
    proc.kill()
    with pytest.raises(ToolError, match='killed by signal 9'):
        runner.finish(proc, ['sleep', '30'])


def test_secret_file_is_0600_and_removed(tmp_path):
    with secret_file('[client]\npassword=%s\n' % SECRET, directory=str(tmp_path)) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert SECRET in open(path).read()
    assert not os.path.exists(path)


def test_atomic_write_replaces_whole_file_and_keeps_mode(tmp_path):
    path = str(tmp_path / 'x.json')
    atomic_write_text(path, 'one\n', mode=0o640)
    atomic_write_text(path, 'two\n', mode=0o640)
    assert open(path).read() == 'two\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ['x.json']


def test_append_line_durable(tmp_path):
    path = str(tmp_path / 'h.jsonl')
    append_line_durable(path, '{"a": 1}')
    append_line_durable(path, '{"a": 2}\n')
    assert open(path).read().splitlines() == ['{"a": 1}', '{"a": 2}']
