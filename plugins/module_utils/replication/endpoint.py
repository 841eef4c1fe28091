# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repointing clients after a switchover or failover: PgBouncer ``[databases]`` entries and HAProxy backend
``server`` lines rewritten atomically, then the daemon reloaded.

Only the host and port of the named entries change; every other byte of the file (comments, order, other
entries, options) stays as it was, so the diff an operator reviews is the repointing and nothing else. The new
file replaces the old one by rename (readers never see half a file) with the old file's mode and owner.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_text
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

KINDS = ('pgbouncer', 'haproxy')
# A host is a name, an IPv4/IPv6 address or a socket directory: nothing that could end a value or add an option.
HOST_RE = re.compile(r'^(/[A-Za-z0-9._/-]+|[A-Za-z0-9._:-]+)\Z')
SECTION_RE = re.compile(r'^\s*\[([^\]]+)\]\s*(?:[;#].*)?$')
MAX_CONFIG = 4 * 1024 * 1024


def check_target(host: str, port: int) -> None:
    if not HOST_RE.match(host or ''):
        raise OpsReadyError('host %r is not a host name, an IP address or a socket directory.' % host)
    if not 0 < port < 65536:
        raise OpsReadyError('port %d is not a TCP port (1-65535).' % port)


def read_config(path: str) -> Tuple[str, os.stat_result]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OpsReadyError('Cannot open %s: %s. Give the path of the configuration file (not a symlink).'
                            % (path, exc.strerror), path=path)
    with os.fdopen(fd, 'rb') as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CONFIG:
            raise OpsReadyError('%s is not a regular file of at most %d bytes.' % (path, MAX_CONFIG), path=path)
        return handle.read().decode('utf-8'), st


def _set_kv(connstr: str, key: str, value: str) -> str:
    pattern = re.compile(r"(^|\s)%s\s*=\s*('(?:[^']|'')*'|\S*)" % key)
    if pattern.search(connstr):
        return pattern.sub(lambda m: '%s%s=%s' % (m.group(1), key, value), connstr, count=1)
    return ('%s %s=%s' % (connstr.rstrip(), key, value)).strip()


def rewrite_pgbouncer(text: str, databases: Sequence[str], host: str, port: int) -> Tuple[str, List[Dict[str, str]]]:
    """``text`` with host= and port= of the ``[databases]`` entries named in ``databases`` set (``*`` is also an
    entry name: PgBouncer's fallback). Every named entry must exist."""
    out: List[str] = []
    section = ''
    changes: List[Dict[str, str]] = []
    found = set()
    for line in text.splitlines(keepends=True):
        match = SECTION_RE.match(line)
        if match:
            section = match.group(1).strip().lower()
            out.append(line)
            continue
        stripped = line.strip()
        if section == 'databases' and stripped and stripped[0] not in ';#' and '=' in stripped:
            name, _sep, connstr = line.partition('=')
            key = name.strip().strip('"')
            if key in databases:
                found.add(key)
                ending = line[len(line.rstrip('\r\n')):]
                body = connstr.rstrip('\r\n')
                new_body = _set_kv(_set_kv(body, 'host', host), 'port', str(port))
                if not new_body.startswith(' '):
                    new_body = ' ' + new_body
                new_line = name + '=' + new_body + ending
                if new_line != line:
                    changes.append({'entry': key, 'before': line.strip(), 'after': new_line.strip()})
                out.append(new_line)
                continue
        out.append(line)
    missing = [d for d in databases if d not in found]
    if missing:
        raise OpsReadyError('The [databases] section has no entry %s: add it to the file first (this module only '
                            'repoints existing entries).' % ', '.join(repr(m) for m in missing))
    return ''.join(out), changes


def rewrite_haproxy(text: str, backend: str, servers: Sequence[str], host: str,
                    port: int) -> Tuple[str, List[Dict[str, str]]]:
    """``text`` with the address of ``server NAME ADDRESS ...`` lines of ``backend`` set to host:port."""
    out: List[str] = []
    current = None
    changes: List[Dict[str, str]] = []
    found = set()
    address = '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)
    for line in text.splitlines(keepends=True):
        words = line.split()
        if words and words[0] in ('backend', 'listen', 'frontend', 'defaults', 'global', 'resolvers', 'peers'):
            current = words[1] if len(words) > 1 and words[0] in ('backend', 'listen') else None
        elif current == backend and len(words) >= 3 and words[0] == 'server' and words[1] in servers:
            found.add(words[1])
            start = line.index(words[2], line.index(words[1]) + len(words[1]))
            new_line = line[:start] + address + line[start + len(words[2]):]
            if new_line != line:
                changes.append({'entry': words[1], 'before': line.strip(), 'after': new_line.strip()})
            out.append(new_line)
            continue
        out.append(line)
    missing = [s for s in servers if s not in found]
    if missing:
        raise OpsReadyError('backend %s has no server %s in the HAProxy configuration.'
                            % (backend, ', '.join(missing)))
    return ''.join(out), changes


def pgbouncer_pidfile(text: str) -> Optional[str]:
    section = ''
    for line in text.splitlines():
        match = SECTION_RE.match(line)
        if match:
            section = match.group(1).strip().lower()
            continue
        if section == 'pgbouncer' and '=' in line and not line.strip().startswith((';', '#')):
            key, _sep, value = line.partition('=')
            if key.strip() == 'pidfile' and value.strip():
                return value.strip()
    return None


def signal_reload(pid_file: str, what: str, sig: int = signal.SIGHUP) -> int:
    try:
        with open(pid_file, encoding='ascii') as handle:
            pid = int(handle.readline().strip())
        os.kill(pid, sig)
    except (OSError, ValueError) as exc:
        raise OpsReadyError('Cannot reload %s through its pid file %s (%s): is it running? Set reload=command with '
                            'reload_command (e.g. systemctl reload %s) if it is run by a service manager.'
                            % (what, pid_file, exc, what), pid_file=pid_file)
    return pid


def check_parents(path: str, option: str = 'path') -> None:
    """Refuse a configuration whose directory an account other than root could link to a directory of root's (it
    would replace a file of the same name there); callers that repoint late (failover_drill) check first."""
    safeio.check_parents(os.path.dirname(os.path.abspath(path)), 'rewrite the endpoint configuration in',
                         'The directory of %s' % option)


def apply(path: str, new_text: str, st: os.stat_result) -> None:
    atomic_write_text(path, new_text, mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)


def repoint(kind: str, path: str, entries: Sequence[str], host: str, port: int, reload: str,
            pid_file: Optional[str], reload_command: Sequence[str], backend: Optional[str],
            validate_command: Sequence[str], check_mode: bool, runner: ToolRunner,
            option: str = 'path') -> Dict[str, Any]:
    check_parents(path, option)
    check_target(host, port)
    text, st = read_config(path)
    if kind == 'pgbouncer':
        new_text, changes = rewrite_pgbouncer(text, entries, host, port)
    else:
        if not backend:
            raise OpsReadyError('kind=haproxy needs backend (the backend or listen section to repoint).')
        new_text, changes = rewrite_haproxy(text, backend, entries, host, port)
    result: Dict[str, Any] = {'changed': bool(changes), 'changes': changes, 'path': path,
                              'diff': {'before': text, 'after': new_text, 'before_header': path,
                                       'after_header': path}}
    if not changes or check_mode:
        return result
    if validate_command:
        # The candidate file is checked before it replaces the live one (haproxy -c -f %s).
        tmp = path + '.opsready-check'
        atomic_write_text(tmp, new_text, mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)
        try:
            rc, out, err = runner.run([a.replace('%s', tmp) for a in validate_command], check=False, what='validate')
        finally:
            os.unlink(tmp)
        if rc != 0:
            raise OpsReadyError('The repointed configuration does not validate (%s); %s was left unchanged.'
                                % ((err or out).strip()[-500:], path))
    apply(path, new_text, st)
    started = time.monotonic()
    if reload == 'signal':
        pid_path = pid_file or (pgbouncer_pidfile(new_text) if kind == 'pgbouncer' else None)
        if not pid_path:
            raise OpsReadyError('%s was rewritten, but no pid file is known to reload %s: set pid_file, or pidfile in '
                                'the [pgbouncer] section.' % (path, kind))
        result['reloaded_pid'] = signal_reload(pid_path, kind, signal.SIGHUP if kind == 'pgbouncer'
                                               else signal.SIGUSR2)
    elif reload == 'command':
        if not reload_command:
            raise OpsReadyError('reload=command needs reload_command.')
        runner.run(list(reload_command), what='reload_command', timeout=120)
    result['reload'] = reload
    result['reload_seconds'] = round(time.monotonic() - started, 3)
    return result
