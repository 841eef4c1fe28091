# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The db health check: ``SELECT 1`` through the engine's client (``registry.get_client``: psql or the
mariadb/mysql client, the password in the environment or a 0600 option file, never argv), or through ODBC
with a connection string.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Dict, List, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import PROBE_ENGINES, get_client
from ansible_collections.opsready.operations.plugins.module_utils.health.registry import CheckType, ms, register


_PWD_RE = re.compile(r'(?i)(?:^|;)\s*(?:pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)')


def connection_secrets(spec: Dict[str, Any]) -> List[str]:
    secrets = [spec.get('password') or '']
    for match in _PWD_RE.finditer(spec.get('connection_string') or ''):
        value = match.group(1).strip()
        secrets.append(value)
        if value.startswith('{') and value.endswith('}'):
            secrets.append(value[1:-1].replace('}}', '}'))
    return [s for s in secrets if s]


def odbc_pairs(text: str) -> List[Tuple[str, str]]:
    """(key, value as written) of an ODBC connection string, as the driver manager reads it: a value in braces
    runs to the ``}`` that is not doubled, whatever ``;`` and ``=`` it holds (a password ``{x;Database=y}`` is one
    value, not a second key). An unclosed brace runs to the end."""
    pairs = []
    at, size = 0, len(text)
    while at < size:
        equal = text.find('=', at)
        if equal < 0:
            break
        key = text[at:equal].strip().lstrip(';').strip()
        start = equal + 1
        while start < size and text[start] == ' ':
            start += 1
        if start < size and text[start] == '{':
            end = start + 1
            while end < size:
                if text[end] == '}':
                    if text[end + 1:end + 2] == '}':
                        end += 2
                        continue
                    break
                end += 1
            value = text[start:end + 1]
            at = text.find(';', end + 1)
        else:
            at = text.find(';', start)
            value = text[start:at if at >= 0 else size]
        pairs.append((key, value.strip()))
        if at < 0:
            break
        at += 1
    return pairs


def describe_connection_string(text: str) -> str:
    """driver/server/port/database of an ODBC string, nothing else (never the password, nor a part of it)."""
    keep = ['%s=%s' % (key, value) for key, value in odbc_pairs(text)
            if key.lower() in ('driver', 'server', 'host', 'port', 'database', 'dsn')]
    return ';'.join(keep)


def _is_psqlodbc(text: str) -> bool:
    lower = text.lower()
    return 'postgres' in lower or 'psqlodbc' in lower


def odbc_string(spec: Dict[str, Any]) -> str:
    text = spec['connection_string'].strip()
    if text and not text.endswith(';'):
        text += ';'
    if spec.get('password'):
        text += 'PWD={%s};' % spec['password'].replace('}', '}}')
    lower = text.lower()
    if _is_psqlodbc(text):
        # Debian's odbcinst.ini sets CommLog=1 for psqlODBC: every connection would log its traffic to /tmp.
        if 'commlog=' not in lower:
            text += 'CommLog=0;Debug=0;'
        # psqlODBC refuses SQL_ATTR_LOGIN_TIMEOUT; libpq's connect_timeout does the same job. The driver runs
        # catalog queries of its own at connect (typname = 'lo' ...), unqualified: under a database search_path
        # that lists a schema before pg_catalog, that schema's = operator would run as the check's login. The
        # startup packet's search_path outranks the database's (engines/postgresql/client.py).
        if 'pqopt=' not in lower:
            text += 'pqopt={connect_timeout=%d options=-csearch_path=pg_catalog,pg_temp};' % max(
                2, int(math.ceil(spec['timeout'])))
    return text


# Our own messages name the limit ("within connect_timeout=5s") whatever the failure was: left out of the match.
_OWN_LIMIT = re.compile(r'\b(?:connect|lock|statement)_timeout=\S*', re.IGNORECASE)
# A client that gave up waiting: libpq "timeout expired", ODBC "Login timeout expired", errno 110 (ETIMEDOUT) as
# "Connection timed out", MariaDB's "system error: 110" or "(110)", our session limit "psql timed out after 5s".
_RAN_OUT = re.compile(r'timeout expired|timed out|system error: 110\b|\(110\)', re.IGNORECASE)


def ran_out_of_time(text: str) -> bool:
    """Whether a probe's failure ``text`` says the probe ran out of time (not merely that a limit was set)."""
    return _RAN_OUT.search(_OWN_LIMIT.sub('', text)) is not None


@register
class DbCheck(CheckType):
    type_name = 'db'
    options = {
        'connection_string': {'type': 'str', 'no_log': True},
        'password': {'type': 'str', 'no_log': True},
        'engine': {'type': 'str', 'choices': list(PROBE_ENGINES)},
        'host': {'type': 'str'},
        'port': {'type': 'int'},
        'user': {'type': 'str'},
        'database': {'type': 'str'},
    }
    one_of = (('connection_string', 'engine'),)
    exclusive = (('connection_string', 'engine'),)
    down_condition = 'database_connection'

    def default_name(self, spec: Dict[str, Any]) -> str:
        if spec.get('engine'):
            return 'db:%s@%s:%s/%s' % (spec['engine'], spec.get('host') or 'localhost', spec.get('port') or '',
                                       spec.get('database') or '')
        return 'db:' + (describe_connection_string(spec['connection_string']) or 'odbc')

    def validate(self, spec: Dict[str, Any]) -> None:
        if spec.get('connection_string'):
            for key in ('host', 'port', 'user', 'database'):
                if spec.get(key) is not None:
                    raise OpsReadyError('%s applies to engine= (native client) checks; put it in '
                                        'connection_string instead.' % key)
            try:
                import pyodbc  # noqa: F401
            except ImportError:
                raise OpsReadyError('connection_string needs the Python package pyodbc and an ODBC driver '
                                    'on the managed host (apt install python3-pyodbc odbc-postgresql), or '
                                    'use engine= with the native client.')
        else:
            self._client(spec, ToolRunner()).tool('psql' if spec['engine'] == 'postgresql' else 'client')

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        secrets = connection_secrets(spec)
        runner = ToolRunner(secrets=secrets)
        start = time.monotonic()
        try:
            if spec.get('connection_string'):
                value = self._odbc(spec)
            else:
                value = self._native(spec, runner)
        except Exception as exc:
            text = runner.redact(str(getattr(exc, 'message', None) or exc)).strip()
            timed_out = ran_out_of_time(text)
            return {'ok': False, 'latency_ms': None, 'condition': 'database_connection', 'timed_out': timed_out,
                    'message': 'Database %s: connect or SELECT 1 failed: %s' % (spec['name'], text[-500:])}
        if str(value).strip() != '1':
            return {'ok': False, 'latency_ms': None, 'condition': 'database_connection',
                    'message': 'Database %s: SELECT 1 returned %r.' % (spec['name'], value)}
        return {'ok': True, 'latency_ms': ms(time.monotonic() - start),
                'message': 'Database %s answers SELECT 1.' % spec['name']}

    def _odbc(self, spec: Dict[str, Any]) -> Any:
        import pyodbc
        timeout = max(1, int(math.ceil(spec['timeout'])))
        text = odbc_string(spec)
        if _is_psqlodbc(text):
            conn = pyodbc.connect(text, autocommit=True)
        else:
            conn = pyodbc.connect(text, timeout=timeout, autocommit=True)
        try:
            cursor = conn.cursor()
            row = cursor.execute('SELECT 1').fetchone()
            return row[0] if row else None
        finally:
            conn.close()

    def _client(self, spec: Dict[str, Any], runner: ToolRunner) -> Any:
        """The engine's client for this check's endpoint; connect_timeout is the check's timeout."""
        conn = ConnectionParams(host=spec.get('host'), port=spec.get('port'), user=spec.get('user'),
                                password=spec.get('password'), connect_timeout=max(1, int(math.ceil(spec['timeout']))))
        client: Any = get_client(spec['engine'], conn, runner)
        client.app = 'opsready-health'  # what pg_stat_activity shows (the MariaDB client has no such name)
        if spec['engine'] == 'postgresql':
            # SELECT 1 calls no function or operator a schema could shadow, and the endpoint may be PgBouncer,
            # which refuses the options startup parameter that pins search_path: not pinned (client.py).
            client.catalog_only = False
        return client

    def _native(self, spec: Dict[str, Any], runner: ToolRunner) -> Any:
        # The client passes the database as a name only (PGDATABASE; --database=): a name with "=" is not a
        # connection string, one starting with "-" not an option (--init-command=...), one over 63 bytes refused.
        rows = self._client(spec, runner).query('SELECT 1', spec.get('database'), timeout=spec['timeout'])
        return rows[0][0] if rows and rows[0] else None
