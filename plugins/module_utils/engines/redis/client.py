# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talking to Redis: the ``redis-cli`` tool, with the password in ``REDISCLI_AUTH``.

Why redis-cli and not the redis-py package: the backup needs ``redis-cli --rdb`` anyway (the RDB over the
replication protocol, streamed to stdout), it ships with every redis-server package (Debian ``redis-tools``)
and it keeps the managed host free of one more Python library. The password reaches it only through the
environment (``REDISCLI_AUTH``; never argv, where ``/proc/PID/cmdline`` shows it to every user), and the
``ToolRunner`` refuses an argv holding it and redacts it from every message.

redis-cli prints error replies on stdout and exits 0 when stdout is not a terminal, so replies are checked
for Redis' error prefixes here; a failed AUTH shows on stderr ("AUTH failed").

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner

DEFAULT_PORT = 6379
# Error replies start with an upper-case code (RESP simple errors); these are the ones Redis 6/7 send.
_ERROR_REPLY = re.compile(r'^(ERR|NOAUTH|WRONGPASS|NOPERM|LOADING|OOM|MISCONF|BUSY|READONLY|MASTERDOWN|'
                          r'WRONGTYPE|NOSCRIPT|EXECABORT|CLUSTERDOWN|MOVED|ASK|TRYAGAIN)\b')


class RedisError(OpsReadyError):
    """Redis refused a command or could not be reached."""


@dataclass
class RedisConnection:
    host: str = '127.0.0.1'
    port: int = DEFAULT_PORT
    unix_socket: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    tls: bool = False
    cacert: Optional[str] = None
    connect_timeout: int = 10

    def label(self) -> str:
        return self.unix_socket or '%s:%s' % (self.host, self.port)


def connection_argument_spec() -> Dict[str, Dict[str, Any]]:
    return dict(
        host=dict(type='str', default='127.0.0.1'),
        port=dict(type='int', default=DEFAULT_PORT),
        unix_socket=dict(type='path'),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
        tls=dict(type='bool', default=False),
        cacert=dict(type='path'),
        connect_timeout=dict(type='int', default=10),
    )


def connection_from_params(params: Dict[str, Any]) -> RedisConnection:
    return RedisConnection(host=params.get('host') or '127.0.0.1', port=params.get('port') or DEFAULT_PORT,
                           unix_socket=params.get('unix_socket'), username=params.get('username'),
                           password=params.get('password'), tls=bool(params.get('tls')),
                           cacert=params.get('cacert'), connect_timeout=params.get('connect_timeout') or 10)


class RedisClient:
    """redis-cli with the connection's options; ``command`` returns the raw reply text."""

    def __init__(self, conn: RedisConnection, runner: Optional[ToolRunner] = None,
                 command_timeout: Optional[float] = None) -> None:
        self.conn = conn
        # A health check bounds every command by its own timeout; the modules leave Redis 20 s past the connect.
        self.command_timeout = command_timeout
        self.runner = runner or ToolRunner(secrets=[conn.password])
        self.runner.add_secret(conn.password)

    def env(self) -> Dict[str, str]:
        return {'REDISCLI_AUTH': self.conn.password} if self.conn.password else {}

    def argv(self, *args: str) -> List[str]:
        tool = self.runner.which('redis-cli', 'Install the redis-tools package (Debian) or redis (RPM).')
        argv = [tool]
        if self.conn.unix_socket:
            argv += ['-s', self.conn.unix_socket]
        else:
            argv += ['-h', self.conn.host, '-p', str(self.conn.port)]
        if self.conn.username:
            argv += ['--user', self.conn.username]
        if self.conn.tls:
            argv.append('--tls')
            if self.conn.cacert:
                argv += ['--cacert', self.conn.cacert]
        # --no-auth-warning: redis-cli warns only about -a, which is never used; keeps stderr for real errors.
        return argv + ['--no-auth-warning'] + list(args)

    def _raise(self, text: str, what: str) -> None:
        lowered = text.lower()
        if 'auth failed' in lowered or 'noauth' in lowered or 'wrongpass' in lowered:
            raise RedisError('Redis at %s refused the credentials (%s): check password/username (the password '
                             'reaches redis-cli through REDISCLI_AUTH).' % (self.conn.label(), text.strip()[:300]),
                             server=self.conn.label())
        if 'could not connect' in lowered or 'connection refused' in lowered:
            raise RedisError('Cannot connect to Redis at %s: %s. Check host/port and that redis-server runs.'
                             % (self.conn.label(), text.strip()[:300]), server=self.conn.label())
        raise RedisError('Redis at %s refused %s: %s' % (self.conn.label(), what, text.strip()[:300]),
                         server=self.conn.label())

    def command(self, *args: str, timeout: Optional[float] = None) -> str:
        argv = self.argv(*args)
        limit = timeout or self.command_timeout or self.conn.connect_timeout + 20
        try:
            rc, out, err = self.runner.run(argv, env=self.env(), timeout=limit, check=False,
                                           what='redis-cli %s' % args[0])
        except ToolError as exc:
            raise RedisError('redis-cli %s against %s: %s' % (args[0], self.conn.label(), exc.message),
                             server=self.conn.label())
        if rc != 0 or 'AUTH failed' in err:
            self._raise(err or out, args[0])
        first = out.lstrip().split('\n', 1)[0]
        if _ERROR_REPLY.match(first):
            self._raise(first, args[0])
        return out

    def info(self, section: str = 'everything') -> Dict[str, str]:
        return parse_info(self.command('INFO', section))

    def config_get(self, name: str) -> Optional[str]:
        """A CONFIG GET value, or None when the server refuses CONFIG (renamed command, ACL)."""
        try:
            lines = [line.strip() for line in self.command('CONFIG', 'GET', name).splitlines()]
        except RedisError:
            return None
        return lines[1] if len(lines) >= 2 and lines[0] == name else None


def parse_info(text: str) -> Dict[str, str]:
    """INFO's ``key:value`` lines (sections and comments dropped)."""
    info: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#') or ':' not in line:
            continue
        key, _sep, value = line.partition(':')
        info[key] = value
    return info


def keyspace_keys(info: Dict[str, str]) -> int:
    """The keys of every database from INFO keyspace (``db0:keys=12,expires=0,avg_ttl=0``)."""
    total = 0
    for key, value in info.items():
        if re.match(r'^db\d+$', key):
            fields = dict(part.split('=', 1) for part in value.split(',') if '=' in part)
            total += int(fields.get('keys', 0))
    return total
