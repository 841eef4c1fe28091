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


def test_atomic_write_replaces_the_file_and_sets_the_mode_whatever_the_umask(tmp_path):
    path = str(tmp_path / 'x.json')
    atomic_write_text(path, 'one\n', mode=0o600)
    reader = open(path)  # a reader of the old file keeps it whole: the new one is renamed over, not rewritten
    old = os.umask(0o077)
    try:
        atomic_write_text(path, 'two\n', mode=0o644)
    finally:
        os.umask(old)
    assert reader.read() == 'one\n'
    reader.close()
    assert open(path).read() == 'two\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # the asked mode, not mkstemp's 0600 or the umask's
    assert os.listdir(tmp_path) == ['x.json']


def test_append_line_durable(tmp_path):
    path = str(tmp_path / 'h.jsonl')
    append_line_durable(path, '{"a": 1}')
    append_line_durable(path, '{"a": 2}\n')
    assert open(path).read().splitlines() == ['{"a": 1}', '{"a": 2}']


def test_tools_run_in_the_c_locale_whatever_the_host_language(monkeypatch):
    monkeypatch.setenv('LANG', 'de_DE.UTF-8')
    monkeypatch.setenv('LC_ALL', 'de_DE.UTF-8')
    monkeypatch.setenv('LANGUAGE', 'de')
    runner = ToolRunner()
    dummy, out, dummy = runner.run(['sh', '-c', 'echo "$LC_ALL|$LANGUAGE"'])
    assert out.strip() == 'C.UTF-8|C'
    proc = runner.popen(['sh', '-c', 'echo "$LC_ALL|$LANGUAGE"'])
    assert proc.stdout.read().decode().strip() == 'C.UTF-8|C'
    runner.finish(proc, ['sh'])
    proc.stdout.close()
