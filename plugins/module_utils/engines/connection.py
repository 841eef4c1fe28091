# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every database module (the argument-spec helper and its value type).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner


def db_connection_argument_spec() -> Dict[str, Any]:
    """The options documented by the ``opsready.operations.db_connection`` doc fragment."""
    return dict(
        login_host=dict(type='str'),
        login_port=dict(type='int'),
        login_unix_socket=dict(type='path'),
        login_user=dict(type='str'),
        login_password=dict(type='str', no_log=True),
        login_option_file=dict(type='path'),
        connect_timeout=dict(type='int', default=10),
        odbc_driver=dict(type='str', default='ODBC Driver 18 for SQL Server'),
        trust_server_certificate=dict(type='bool', default=False),
    )


def db_connection_mutually_exclusive() -> List[List[str]]:
    return [['login_password', 'login_option_file'], ['login_host', 'login_unix_socket']]


@dataclass
class ConnectionParams:
    """Where and how to reach a server. ``password`` is a secret: never in argv, results or messages."""

    host: Optional[str] = None
    port: Optional[int] = None
    unix_socket: Optional[str] = None
    user: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    option_file: Optional[str] = None
    connect_timeout: int = 10
    odbc_driver: str = 'ODBC Driver 18 for SQL Server'
    trust_server_certificate: bool = False

    def where(self, default_port: Optional[int] = None) -> str:
        """Human text naming the endpoint, for messages ("host 10.0.0.5 port 5432")."""
        if self.unix_socket:
            return 'socket %s' % self.unix_socket
        port = self.port or default_port
        return 'host %s port %s' % (self.host or 'localhost', port if port else '(default)')


def connect_failure_reason(stderr: str, fallback: str) -> str:
    """The client's whole complaint on one line: libpq puts the reason ("Connection refused") on the first
    line and a hint on the last, so neither alone says what happened."""
    text = ' '.join(line.strip() for line in stderr.strip().splitlines() if line.strip())
    text = (text or fallback).rstrip('.')
    return text if len(text) <= 500 else text[:497] + '...'


def check_option_file(path: str) -> None:
    """libpq silently skips a missing PGPASSFILE and MariaDB a missing ``!include``: the login would then
    fall back to other credentials (as root on a database host, possibly someone else's)."""
    if not os.path.isfile(path):
        raise OpsReadyError('login_option_file %s does not exist (or is not a file) on the managed host: create it '
                            '(mode 0600) or fix the path.' % path, path=path)
    if not os.access(path, os.R_OK):
        raise OpsReadyError('login_option_file %s is not readable by the user the module runs as: fix its owner '
                            'or mode (0600, owned by that user).' % path, path=path)


def connection_from_params(params: Dict[str, Any]) -> ConnectionParams:
    """The connection options as ConnectionParams; a login_option_file must exist and be readable."""
    timeout = params.get('connect_timeout')
    if params.get('login_option_file'):
        check_option_file(params['login_option_file'])
    return ConnectionParams(
        host=params.get('login_host'),
        port=params.get('login_port'),
        unix_socket=params.get('login_unix_socket'),
        user=params.get('login_user'),
        password=params.get('login_password'),
        option_file=params.get('login_option_file'),
        connect_timeout=10 if timeout is None else int(timeout),
        odbc_driver=params.get('odbc_driver') or 'ODBC Driver 18 for SQL Server',
        trust_server_certificate=bool(params.get('trust_server_certificate')),
    )


@dataclass
class SessionLimits:
    """Session settings every statement of a client runs under (db_maintenance): how long to wait for a lock,
    and how long one statement may run (0: no limit). The engine's client sets them and names them in its
    error when the server gives up."""

    lock_timeout: int = 30
    statement_timeout: int = 0


class _DefaultTimeout:
    """The marker for "the client's own timeout" (None already means "no timeout")."""

    def __repr__(self) -> str:
        return 'DEFAULT_TIMEOUT'


DEFAULT_TIMEOUT = _DefaultTimeout()
Timeout = Union[None, float, _DefaultTimeout]


def query_timeout(conn: ConnectionParams, limits: Optional[SessionLimits] = None,
                  timeout: Timeout = DEFAULT_TIMEOUT) -> Optional[float]:
    """How long one client call may run before it is killed: ``timeout`` when given (None: no limit); with
    session limits, the statement limit plus the connect time and a margin (no cap without a statement limit:
    maintenance work is as long as the table, and the lock limit bounds the waits); otherwise a short query's
    connect time plus a minute."""
    if not isinstance(timeout, _DefaultTimeout):
        return timeout
    if limits is not None:
        return float(limits.statement_timeout + conn.connect_timeout + 30) if limits.statement_timeout else None
    return float(conn.connect_timeout + 60)


def pick_timeout(timeout: Timeout, default: Optional[float]) -> Optional[float]:
    """``timeout`` as given for one call, or the client's ``default`` for DEFAULT_TIMEOUT."""
    return default if isinstance(timeout, _DefaultTimeout) else timeout


def runner_for(conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> ToolRunner:
    """The runner a client (or an area holding one) runs its tools with: ``runner`` or a new one, either way
    knowing the password as a secret (refused in argv, redacted in every message)."""
    runner = runner or ToolRunner(secrets=[conn.password])
    runner.add_secret(conn.password)
    return runner


class ToolClient:
    """What the clients that run an engine's programs share: the connection, a runner that knows the password,
    and running one program with its failure classified by the client (``classify``)."""

    default_port: Optional[int] = None

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None,
                 limits: Optional[SessionLimits] = None, timeout: Timeout = DEFAULT_TIMEOUT) -> None:
        self.conn = conn
        self.runner = runner_for(conn, runner)
        self.limits = limits
        self.timeout = query_timeout(conn, limits, timeout)

    def classify(self, exc: ToolError) -> OpsReadyError:
        """The operator's version of a failure (the engine's client knows its messages); ``exc`` if unknown."""
        return exc

    def run_tool(self, argv: List[str], env: Optional[Dict[str, str]] = None, timeout: Optional[float] = None,
                 what: str = '', data: Optional[bytes] = None) -> str:
        """Run one program (``data``: its stdin); its stdout, or its failure classified."""
        try:
            _rc, out, _err = self.runner.run(argv, env=env, timeout=timeout, what=what, data=data)
        except ToolError as exc:
            raise self.classify(exc)
        return out
