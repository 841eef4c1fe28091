# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL Server client: the one place that turns connection options into an ODBC connection string,
connects through pyodbc (within connect_timeout), runs statements (draining every result set, so errors
raised after the first one are not lost) and turns driver errors into messages without the password.
Backup (``engines/sqlserver/backup.py``), restore and maintenance compose it.

The password travels only in the connection string handed to the driver (never argv, never results).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams, runner_for

try:
    import pyodbc
    HAS_PYODBC = True
except ImportError:  # pragma: no cover - depends on the managed host
    pyodbc = None
    HAS_PYODBC = False

DEFAULT_PORT = 1433


def odbc_value(value: str) -> str:
    """An ODBC connection-string value in braces (closing braces doubled): ``;``, ``=`` and spaces stay inside."""
    return '{' + value.replace('}', '}}') + '}'


class SQLServerClient:
    """One SQL Server endpoint (``ConnectionParams``) as pyodbc reaches it.

    ``app``: the program name the server shows (``sys.dm_exec_sessions``). ``connect``: pyodbc's connect, or a
    stand-in (tests use a recording fake of pyodbc)."""

    engine = 'sqlserver'
    default_port = DEFAULT_PORT

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None, app: str = 'opsready',
                 connect: Optional[Callable[..., Any]] = None) -> None:
        self.conn = conn
        self.runner = runner_for(conn, runner)
        self.app = app
        self._connect = connect

    def connection_string(self, database: str = 'master') -> str:
        c = self.conn
        server = c.host or 'localhost'
        if c.port:
            server = '%s,%d' % (server, c.port)
        parts = ['DRIVER=%s' % odbc_value(c.odbc_driver), 'SERVER=%s' % odbc_value(server),
                 'DATABASE=%s' % odbc_value(database), 'Encrypt=yes',
                 'TrustServerCertificate=%s' % ('yes' if c.trust_server_certificate else 'no'),
                 'APP=%s' % odbc_value(self.app)]
        if c.user:
            parts += ['UID=%s' % odbc_value(c.user), 'PWD=%s' % odbc_value(c.password or '')]
        else:
            parts.append('Trusted_Connection=yes')
        return ';'.join(parts) + ';'

    def message(self, exc: Exception) -> str:
        """The driver's text of ``exc`` (its second argument when it has one), the password redacted."""
        args: Tuple[Any, ...] = tuple(getattr(exc, 'args', ()))
        text = str(args[1]) if len(args) > 1 else str(exc)
        return self.runner.redact(text)

    def connect(self, database: str = 'master') -> Any:
        """An autocommit connection to ``database`` within connect_timeout; a clear error when it fails."""
        connect = self._connect or (pyodbc.connect if HAS_PYODBC and pyodbc is not None else None)
        if connect is None:
            raise OpsReadyError('engine=sqlserver needs the Python package pyodbc and an ODBC driver for SQL Server '
                                'on the managed host (pip install pyodbc; msodbcsql18).')
        try:
            return connect(self.connection_string(database), autocommit=True, timeout=self.conn.connect_timeout)
        except OpsReadyError:
            raise
        except Exception as exc:  # pyodbc.Error and its subclasses; the message never holds the password
            raise OpsReadyError('Cannot connect to SQL Server at %s (database %s) within connect_timeout=%ss: %s. '
                                'Check that the server is running, login_host/login_port, credentials and '
                                'odbc_driver.' % (self.conn.where(self.default_port), database,
                                                  self.conn.connect_timeout, self.message(exc)),
                                host=self.conn.host, port=self.conn.port or self.default_port)

    def execute(self, connection: Any, sql: str, params: Tuple[Any, ...] = ()) -> List[List[Any]]:
        """Run one statement, drain every result set (errors after the first surface here), return rows
        of the first result set that has any."""
        cursor = connection.cursor()
        rows: List[List[Any]] = []
        try:
            cursor.execute(sql, *params) if params else cursor.execute(sql)
            while True:
                if cursor.description is not None and not rows:
                    rows = [list(r) for r in cursor.fetchall()]
                if not cursor.nextset():
                    break
        except Exception as exc:  # pyodbc.Error (or the stand-in's error)
            raise OpsReadyError('SQL Server rejected "%s": %s' % (sql.split(' WITH ')[0], self.message(exc)))
        finally:
            cursor.close()
        return rows
