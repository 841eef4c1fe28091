"""The drill's PostgreSQL tools never prompt: a missing password must fail at once, not wait on the terminal
the play was started from (psql and pg_amcheck read /dev/tty without --no-password)."""

from __future__ import annotations

from typing import Any, List

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.checks import PostgresChecks
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams


class RecordingRunner(ToolRunner):
    """Answers every tool with success and a one-row CSV; records each argv."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[List[str]] = []

    def run(self, argv: Any, env: Any = None, **kwargs: Any) -> Any:
        self._check_argv(argv)
        self.calls.append(list(argv))
        return 0, 'x\n1\n', ''


def test_every_libpq_tool_of_the_drill_gets_no_password():
    runner = RecordingRunner()
    client = PostgresChecks(ConnectionParams(host='127.0.0.1', port=5432, user='drill'), runner)
    client.query('scratch', 'SELECT 1 AS x')
    client.integrity('scratch')
    tools = sorted({argv[0].rsplit('/', 1)[-1] for argv in runner.calls})
    assert 'psql' in tools
    # -w is psql's short spelling of --no-password (the engine client's psql_argv uses it).
    assert all('--no-password' in argv or '-w' in argv for argv in runner.calls), runner.calls
