# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named checks (process, service, tcp, http, db, command, backup) as a registry.

A check type is one ``CheckType`` subclass decorated with ``@register``: it declares the options it
accepts (merged into the module's ``checks`` suboptions), validates a spec before anything is
measured, runs one probe within its timeout, and turns the result into findings. Adding a type (for
example ``backup``: age of the newest verified backup against the RPO) is one class in this file or
in a sibling file imported at the end of this one.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import http.client
import json
import math
import os
import re
import shlex
import shutil
import socket
import ssl
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import (
    REDACTED, ToolRunner, secret_file)
from ansible_collections.opsready.operations.plugins.module_utils.engines.pg_quote import dbname_arg
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import (
    CRITICAL, Threshold, finding, measure, parse_one)

REGISTRY: Dict[str, 'CheckType'] = {}
MAX_BODY = 1024 * 1024

# Options every check accepts (Ansible suboption specs).
COMMON_OPTIONS: Dict[str, Dict[str, Any]] = {
    'type': {'type': 'str', 'required': True},
    'name': {'type': 'str'},
    'timeout': {'type': 'float', 'default': 5.0},
    'severity': {'type': 'str', 'choices': ['warning', 'critical'], 'default': 'critical'},
    'unit': {'type': 'str'},
    'thresholds': {'type': 'dict'},
}


def register(cls: Type['CheckType']) -> Type['CheckType']:
    REGISTRY[cls.type_name] = cls()
    return cls


def suboptions() -> Dict[str, Dict[str, Any]]:
    """The union of every registered type's options, for the module's argument_spec."""
    merged: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in COMMON_OPTIONS.items()}
    merged['type']['choices'] = sorted(REGISTRY)
    for check in REGISTRY.values():
        for key, spec in check.options.items():
            bare = {k: v for k, v in spec.items() if k != 'default'}
            if key in merged and 'choices' in bare and 'choices' in merged[key]:
                # Two types may offer different choices for one option (engine): the module accepts their union
                # and normalise() holds each type to its own.
                union = list(merged[key]['choices']) + [c for c in bare['choices'] if c not in merged[key]['choices']]
                bare['choices'] = union
                rest = {k: v for k, v in bare.items() if k != 'choices'}
                if {k: v for k, v in merged[key].items() if k != 'choices'} == rest:
                    merged[key] = bare
                    continue
            if key in merged and merged[key] != bare:
                raise OpsReadyError('Internal error: option %s of %s checks conflicts with another type.'
                                    % (key, check.type_name))
            # Type-specific defaults are applied by normalise(): were Ansible to fill them in, an option
            # of another type could not be told apart from one the user set.
            merged[key] = bare
    return merged


class CheckType:
    type_name = ''
    options: Dict[str, Dict[str, Any]] = {}
    one_of: Sequence[Sequence[str]] = ()       # at least one option of each group
    exclusive: Sequence[Sequence[str]] = ()    # at most one option of each group
    down_condition = 'check_failed'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return self.type_name

    def validate(self, spec: Dict[str, Any]) -> None:
        """Raise OpsReadyError on a spec that cannot be run."""

    def overall_timeout(self, spec: Dict[str, Any]) -> float:
        return float(spec['timeout']) + 1.0

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        raise NotImplementedError

    def timeout_result(self, spec: Dict[str, Any], elapsed: float) -> Dict[str, Any]:
        return {'ok': False, 'timed_out': True, 'latency_ms': None, 'condition': self.timeout_condition(),
                'message': '%s did not answer within %.1fs.' % (spec['name'], elapsed)}

    def timeout_condition(self) -> str:
        return self.down_condition

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        name = spec['name']
        extra = {'type': self.type_name}
        if spec.get('unit'):
            extra['unit'] = spec['unit']
        if not result.get('ok'):
            return [finding(name, result.get('condition') or self.down_condition, result.get('value'), None,
                            spec['severity'], result.get('message') or '%s failed.' % name, **extra)]
        if result.get('latency_ms') is not None and 'latency_ms' in th:
            return measure(name, 'slow_response', result['latency_ms'], th['latency_ms'],
                           '%s latency' % name, **extra)
        return []


def check_thresholds(spec: Dict[str, Any], base: Dict[str, Threshold]) -> Dict[str, Threshold]:
    result = dict(base)
    for key, value in (spec.get('thresholds') or {}).items():
        result[key] = parse_one(key, value, base.get(key))
    return result


def normalise(specs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Validate every check (unknown type, options of another type, missing target, duplicates)
    before anything is measured; returns the specs with names filled in and irrelevant keys dropped."""
    result = []
    names = set()
    for index, raw in enumerate(specs or []):
        ctype = raw.get('type')
        if ctype not in REGISTRY:
            raise OpsReadyError('checks[%d]: unknown check type %r; use one of %s.'
                                % (index, ctype, ', '.join(sorted(REGISTRY))))
        check = REGISTRY[ctype]
        allowed = set(COMMON_OPTIONS) | set(check.options)
        spec = {}
        for key, value in raw.items():
            if value is None:
                continue
            if key not in allowed:
                raise OpsReadyError('checks[%d]: option %s does not apply to %s checks (they take %s).'
                                    % (index, key, ctype, ', '.join(sorted(check.options))))
            choices = check.options.get(key, {}).get('choices')
            if choices and value not in choices:
                raise OpsReadyError('checks[%d]: %s=%s is not available for %s checks; use one of %s.'
                                    % (index, key, value, ctype, ', '.join(str(c) for c in choices)))
            spec[key] = value
        for key in COMMON_OPTIONS:
            spec.setdefault(key, COMMON_OPTIONS[key].get('default'))
        for key, opt in check.options.items():
            if key not in spec and 'default' in opt:
                spec[key] = opt['default']
        for group in check.one_of:
            if not any(spec.get(k) not in (None, '', []) for k in group):
                raise OpsReadyError('checks[%d]: a %s check needs %s.' % (index, ctype, ' or '.join(group)))
        for group in check.exclusive:
            given = [k for k in group if spec.get(k) not in (None, '', [])]
            if len(given) > 1:
                raise OpsReadyError('checks[%d]: %s are mutually exclusive in a %s check.'
                                    % (index, ' and '.join(given), ctype))
        if spec['timeout'] is None or spec['timeout'] <= 0:
            raise OpsReadyError('checks[%d]: timeout must be more than 0 seconds.' % index)
        for key, value in (spec.get('thresholds') or {}).items():
            parse_one(key, value)
        spec['name'] = spec.get('name') or check.default_name(spec)
        try:
            check.validate(spec)
        except OpsReadyError as exc:
            raise OpsReadyError('checks[%d] (%s): %s' % (index, spec['name'], exc.message))
        if spec['name'] in names:
            raise OpsReadyError('checks[%d]: two checks are named %r; give each a distinct name.'
                                % (index, spec['name']))
        names.add(spec['name'])
        result.append(spec)
    return result


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


# --------------------------------------------------------------------------------------------
# tcp
# --------------------------------------------------------------------------------------------
@register
class TcpCheck(CheckType):
    type_name = 'tcp'
    options = {'host': {'type': 'str'}, 'port': {'type': 'int'}}
    one_of = (('host',), ('port',))
    down_condition = 'service_down'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'tcp:%s:%s' % (spec['host'], spec['port'])

    def validate(self, spec: Dict[str, Any]) -> None:
        if not 0 < spec['port'] < 65536:
            raise OpsReadyError('port must be between 1 and 65535, not %d.' % spec['port'])

    def timeout_condition(self) -> str:
        return 'api_timeout'

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        start = time.monotonic()
        try:
            with socket.create_connection((spec['host'], spec['port']), timeout=spec['timeout']):
                pass
        except socket.timeout:
            return {'ok': False, 'timed_out': True, 'latency_ms': None, 'condition': 'api_timeout',
                    'message': 'TCP connect to %s:%s timed out after %ss.' % (spec['host'], spec['port'],
                                                                              spec['timeout'])}
        except OSError as exc:
            return {'ok': False, 'latency_ms': None, 'condition': 'service_down',
                    'message': 'TCP connect to %s:%s failed: %s.' % (spec['host'], spec['port'],
                                                                     exc.strerror or exc)}
        return {'ok': True, 'latency_ms': _ms(time.monotonic() - start),
                'message': 'TCP %s:%s accepts connections.' % (spec['host'], spec['port'])}


# --------------------------------------------------------------------------------------------
# http
# --------------------------------------------------------------------------------------------
def percentile(values: List[float], pct: float) -> Optional[float]:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(math.ceil(pct / 100.0 * len(ordered))))
    return ordered[rank - 1]


def _cert_not_after(sock: Any) -> Optional[datetime.datetime]:
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        from cryptography import x509
        cert = x509.load_der_x509_certificate(der)
        moment = getattr(cert, 'not_valid_after_utc', None)
        if moment is None:
            moment = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
        return moment
    except ImportError:
        info = sock.getpeercert()
        if info and info.get('notAfter'):
            return datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(info['notAfter']),
                                                   datetime.timezone.utc)
    return None


@register
class HttpCheck(CheckType):
    type_name = 'http'
    options = {
        'url': {'type': 'str'},
        'method': {'type': 'str', 'choices': ['GET', 'HEAD'], 'default': 'GET'},
        'expect_status': {'type': 'list', 'elements': 'int'},
        'body_contains': {'type': 'str'},
        'body_regex': {'type': 'str'},
        'json_query': {'type': 'str'},
        'json_expect': {'type': 'raw'},
        'validate_certs': {'type': 'bool', 'default': True},
        'ca_path': {'type': 'path'},
        'headers': {'type': 'dict', 'no_log': True},
        'requests': {'type': 'int', 'default': 1},
    }
    one_of = (('url',),)
    down_condition = 'api_error'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'http:%s' % spec['url']

    def validate(self, spec: Dict[str, Any]) -> None:
        parsed = urllib.parse.urlsplit(spec['url'])
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise OpsReadyError('url %r is not an http:// or https:// URL with a host.' % spec['url'])
        try:
            _port = parsed.port  # raises ValueError on a bad port
        except ValueError:
            raise OpsReadyError('url %r has an invalid port.' % spec['url'])
        if spec['requests'] < 1 or spec['requests'] > 1000:
            raise OpsReadyError('requests must be between 1 and 1000.')
        if spec.get('body_regex'):
            try:
                re.compile(spec['body_regex'])
            except re.error as exc:
                raise OpsReadyError('body_regex is not a valid regular expression: %s.' % exc)
        if spec.get('json_expect') is not None and not spec.get('json_query'):
            raise OpsReadyError('json_expect needs json_query (the JMESPath expression whose value it matches).')
        if spec.get('json_query'):
            try:
                import jmespath
            except ImportError:
                raise OpsReadyError('json_query needs the Python package jmespath on the managed host '
                                    '(apt install python3-jmespath, or pip install jmespath).')
            try:
                jmespath.compile(spec['json_query'])
            except Exception as exc:
                raise OpsReadyError('json_query %r is not a valid JMESPath expression: %s.'
                                    % (spec['json_query'], exc))
        if spec.get('ca_path') and not os.path.isfile(spec['ca_path']):
            raise OpsReadyError('ca_path %s does not exist.' % spec['ca_path'])
        for status in spec.get('expect_status') or []:
            if not 100 <= status <= 599:
                raise OpsReadyError('expect_status %d is not an HTTP status code.' % status)

    def overall_timeout(self, spec: Dict[str, Any]) -> float:
        return float(spec['timeout']) * spec['requests'] + 1.0

    def timeout_condition(self) -> str:
        return 'api_timeout'

    def _context(self, spec: Dict[str, Any]) -> ssl.SSLContext:
        if not spec['validate_certs']:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=spec.get('ca_path'))

    def _one(self, spec: Dict[str, Any], parsed: urllib.parse.SplitResult) -> Dict[str, Any]:
        path = parsed.path or '/'
        if parsed.query:
            path += '?' + parsed.query
        conn: http.client.HTTPConnection
        if parsed.scheme == 'https':
            conn = http.client.HTTPSConnection(parsed.hostname or '', parsed.port, timeout=spec['timeout'],
                                               context=self._context(spec))
        else:
            conn = http.client.HTTPConnection(parsed.hostname or '', parsed.port, timeout=spec['timeout'])
        start = time.monotonic()
        out: Dict[str, Any] = {}
        try:
            headers = {'User-Agent': 'opsready-health-check', 'Connection': 'close'}
            headers.update({str(k): str(v) for k, v in (spec.get('headers') or {}).items()})
            conn.request(spec['method'], path, headers=headers)
            # Read the certificate now: getresponse() closes the socket of a Connection: close reply.
            if parsed.scheme == 'https' and conn.sock is not None:
                out['not_after'] = _cert_not_after(conn.sock)
            response = conn.getresponse()
            body = response.read(MAX_BODY) if spec['method'] != 'HEAD' else b''
            out['latency'] = time.monotonic() - start
            out['status'] = response.status
            out['body'] = body
        except socket.timeout:
            out['error'] = 'timed out after %ss' % spec['timeout']
            out['timed_out'] = True
        except ssl.SSLError as exc:
            out['error'] = 'TLS error: %s' % (exc.reason or exc)
        except (OSError, http.client.HTTPException) as exc:
            out['error'] = getattr(exc, 'strerror', None) or str(exc) or exc.__class__.__name__
            out['refused'] = isinstance(exc, ConnectionRefusedError)
        finally:
            conn.close()
        return out

    def _content_problem(self, spec: Dict[str, Any], status: int, body: bytes) -> Optional[str]:
        expected = spec.get('expect_status')
        if expected and status not in expected:
            return 'status %d, expected %s' % (status, ', '.join(str(s) for s in expected))
        if not expected and not 200 <= status < 300:
            return 'status %d, expected 2xx' % status
        text = body.decode('utf-8', 'replace')
        if spec.get('body_contains') and spec['body_contains'] not in text:
            return 'body does not contain %r' % spec['body_contains']
        if spec.get('body_regex') and not re.search(spec['body_regex'], text):
            return 'body does not match %r' % spec['body_regex']
        if spec.get('json_query'):
            import jmespath
            try:
                doc = json.loads(text)
            except ValueError:
                return 'body is not JSON'
            value = jmespath.search(spec['json_query'], doc)
            if spec.get('json_expect') is not None:
                if value != spec['json_expect'] and str(value) != str(spec['json_expect']):
                    return 'JSON %s is %s, expected %s' % (spec['json_query'], json.dumps(value),
                                                           json.dumps(spec['json_expect']))
            elif not value:
                return 'JSON %s is %s' % (spec['json_query'], json.dumps(value))
        return None

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        parsed = urllib.parse.urlsplit(spec['url'])
        latencies: List[float] = []
        errors: List[str] = []
        statuses: List[int] = []
        not_after = None
        timed_out = refused = 0
        for _request in range(spec['requests']):
            one = self._one(spec, parsed)
            if 'error' in one:
                errors.append(one['error'])
                timed_out += bool(one.get('timed_out'))
                refused += bool(one.get('refused'))
                continue
            latencies.append(one['latency'])
            statuses.append(one['status'])
            not_after = one.get('not_after') or not_after
            problem = self._content_problem(spec, one['status'], one['body'])
            if problem:
                errors.append(problem)
        total = spec['requests']
        result: Dict[str, Any] = {
            'requests': total,
            'errors': len(errors),
            'error_rate_percent': round(100.0 * len(errors) / total, 2),
            'status': statuses[-1] if statuses else None,
            'latency_ms': _ms(percentile(latencies, 95) or 0.0) if latencies else None,
        }
        if total > 1 and latencies:
            result['latency_p50_ms'] = _ms(percentile(latencies, 50) or 0.0)
        if not_after is not None:
            result['tls_not_after'] = not_after.strftime('%Y-%m-%dT%H:%M:%SZ')
            days = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400.0
            result['tls_days_remaining'] = round(days, 2)
        failed_all = len(errors) == total
        if failed_all:
            condition = 'api_timeout' if timed_out else ('service_down' if refused else 'api_error')
            result.update(ok=False, condition=condition, timed_out=bool(timed_out),
                          message='%s %s failed: %s.' % (spec['method'], spec['url'], errors[-1]))
        elif total == 1 or not errors:
            result.update(ok=True, message='%s %s answered %s.' % (spec['method'], spec['url'], result['status']))
        else:
            result.update(ok=True, message='%s %s: %d of %d requests failed (last: %s).'
                          % (spec['method'], spec['url'], len(errors), total, errors[-1]))
        return result

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        found = super().evaluate(spec, result, th)
        extra = {'type': self.type_name}
        if spec.get('unit'):
            extra['unit'] = spec['unit']
        if result.get('ok') and spec['requests'] > 1:
            found += measure(spec['name'], 'api_error', result['error_rate_percent'], th['error_rate_percent'],
                             '%s error rate' % spec['name'], **extra)
        if result.get('tls_days_remaining') is not None:
            found += measure(spec['name'], 'certificate_expiry', result['tls_days_remaining'], th['tls_days'],
                             '%s TLS certificate days remaining' % spec['name'], **extra)
        return found


# --------------------------------------------------------------------------------------------
# db
# --------------------------------------------------------------------------------------------
_PWD_RE = re.compile(r'(?i)(?:^|;)\s*(?:pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)')


def connection_secrets(spec: Dict[str, Any]) -> List[str]:
    secrets = [spec.get('password') or '']
    for match in _PWD_RE.finditer(spec.get('connection_string') or ''):
        value = match.group(1).strip()
        secrets.append(value)
        if value.startswith('{') and value.endswith('}'):
            secrets.append(value[1:-1].replace('}}', '}'))
    return [s for s in secrets if s]


def describe_connection_string(text: str) -> str:
    """driver/server/port/database of an ODBC string, nothing else (never the password)."""
    keep = []
    for part in text.split(';'):
        if '=' not in part:
            continue
        key, value = part.split('=', 1)
        if key.strip().lower() in ('driver', 'server', 'host', 'port', 'database', 'dsn'):
            keep.append('%s=%s' % (key.strip(), value.strip()))
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
        # psqlODBC refuses SQL_ATTR_LOGIN_TIMEOUT; libpq's connect_timeout does the same job.
        if 'pqopt=' not in lower:
            text += 'pqopt={connect_timeout=%d};' % max(2, int(math.ceil(spec['timeout'])))
    return text


@register
class DbCheck(CheckType):
    type_name = 'db'
    options = {
        'connection_string': {'type': 'str', 'no_log': True},
        'password': {'type': 'str', 'no_log': True},
        'engine': {'type': 'str', 'choices': ['postgresql', 'mysql']},
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
            tool = 'psql' if spec['engine'] == 'postgresql' else None
            if tool is None:
                tool = shutil.which('mariadb') and 'mariadb' or 'mysql'
            if not shutil.which(tool):
                raise OpsReadyError('engine=%s needs the %s client on the managed host.' % (spec['engine'], tool))

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
            timed_out = 'timeout' in text.lower() or 'timed out' in text.lower()
            return {'ok': False, 'latency_ms': None, 'condition': 'database_connection', 'timed_out': timed_out,
                    'message': 'Database %s: connect or SELECT 1 failed: %s' % (spec['name'], text[-500:])}
        if str(value).strip() != '1':
            return {'ok': False, 'latency_ms': None, 'condition': 'database_connection',
                    'message': 'Database %s: SELECT 1 returned %r.' % (spec['name'], value)}
        return {'ok': True, 'latency_ms': _ms(time.monotonic() - start),
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

    def _native(self, spec: Dict[str, Any], runner: ToolRunner) -> Any:
        timeout = max(1, int(math.ceil(spec['timeout'])))
        if spec['engine'] == 'postgresql':
            argv = [runner.which('psql'), '-X', '-A', '-t', '-w', '-c', 'SELECT 1']
            for flag, key in (('--host=', 'host'), ('--port=', 'port'), ('--username=', 'user')):
                if spec.get(key) is not None:
                    argv.append(flag + str(spec[key]))
            if spec.get('database') is not None:
                # --dbname=dbname='...': a name with "=" is not a connection string, one with "-" not an option,
                # and one over 63 bytes is refused (the server would cut it and answer for another database).
                argv.append(dbname_arg(str(spec['database'])))
            env = {'PGCONNECT_TIMEOUT': str(timeout)}
            if spec.get('password'):
                env['PGPASSWORD'] = spec['password']
            out = runner.run(argv, env=env, timeout=spec['timeout'], what='psql')[1]
            return out.strip()
        client = shutil.which('mariadb') or runner.which('mysql')
        lines = ['[client]']
        for key, opt in (('host', 'host'), ('port', 'port'), ('user', 'user'), ('password', 'password')):
            if spec.get(key) is not None:
                lines.append('%s="%s"' % (opt, str(spec[key]).replace('\\', '\\\\').replace('"', '\\"')))
        with secret_file('\n'.join(lines) + '\n') as option_file:
            argv = [client, '--defaults-extra-file=' + option_file, '--connect-timeout=%d' % timeout,
                    '-N', '-B', '-e', 'SELECT 1']
            if spec.get('database'):
                # --database=: a name starting with "-" would be read as an option (--init-command=...)
                argv.append('--database=%s' % spec['database'])
            out = runner.run(argv, timeout=spec['timeout'], what=os.path.basename(client))[1]
        return out.strip()


# --------------------------------------------------------------------------------------------
# process
# --------------------------------------------------------------------------------------------
@register
class ProcessCheck(CheckType):
    type_name = 'process'
    options = {'process': {'type': 'str'}, 'pidfile': {'type': 'path'}, 'min_count': {'type': 'int', 'default': 1}}
    one_of = (('process', 'pidfile'),)
    down_condition = 'service_down'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'process:%s' % (spec.get('process') or spec['pidfile'])

    def validate(self, spec: Dict[str, Any]) -> None:
        if spec['min_count'] < 1:
            raise OpsReadyError('min_count must be 1 or more.')
        try:
            import psutil  # noqa: F401
        except ImportError:
            raise OpsReadyError('process checks need the Python package psutil on the managed host.')

    @staticmethod
    def _matches(proc: Any, name: str) -> bool:
        try:
            if proc.name() == name:
                return True
            cmdline = proc.cmdline()
            return bool(cmdline) and os.path.basename(cmdline[0]) == name
        except Exception:
            return False

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        import psutil
        if spec.get('pidfile'):
            try:
                with open(spec['pidfile']) as handle:
                    pid = int(handle.read().split()[0])
            except (OSError, ValueError, IndexError) as exc:
                return {'ok': False, 'condition': 'service_down', 'latency_ms': None,
                        'message': 'pid file %s is missing or unreadable (%s): the process is not running.'
                                   % (spec['pidfile'], getattr(exc, 'strerror', None) or exc)}
            try:
                proc = psutil.Process(pid)
                alive = proc.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                alive = False
            if not alive:
                return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'value': pid,
                        'message': 'pid file %s names pid %d, which is not running (stale pid file).'
                                   % (spec['pidfile'], pid)}
            if spec.get('process') and not self._matches(proc, spec['process']):
                return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'value': pid,
                        'message': 'pid %d from %s is %s, not %s (stale pid file reused by another process).'
                                   % (pid, spec['pidfile'], proc.name(), spec['process'])}
            return {'ok': True, 'latency_ms': None, 'value': 1, 'pid': pid,
                    'message': 'pid %d from %s is running.' % (pid, spec['pidfile'])}
        pids = [p.pid for p in psutil.process_iter() if self._matches(p, spec['process'])]
        if len(pids) < spec['min_count']:
            return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'value': len(pids),
                    'message': '%d process(es) named %s running, at least %d expected.'
                               % (len(pids), spec['process'], spec['min_count'])}
        return {'ok': True, 'latency_ms': None, 'value': len(pids), 'pids': sorted(pids)[:20],
                'message': '%d process(es) named %s running.' % (len(pids), spec['process'])}


# --------------------------------------------------------------------------------------------
# service (systemd)
# --------------------------------------------------------------------------------------------
def systemd_running() -> bool:
    return os.path.isdir('/run/systemd/system') and shutil.which('systemctl') is not None


@register
class ServiceCheck(CheckType):
    type_name = 'service'
    options: Dict[str, Dict[str, Any]] = {}
    one_of = (('unit',),)
    down_condition = 'service_down'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'service:%s' % spec['unit']

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        if not systemd_running():
            return {'ok': False, 'condition': 'check_error', 'latency_ms': None,
                    'message': 'Cannot check unit %s: systemd is not running on this host; use a process check '
                               '(process or pidfile) instead.' % spec['unit']}
        rc, out, _err = ToolRunner().run(['systemctl', 'is-active', spec['unit']], check=False,
                                         timeout=spec['timeout'])
        state = out.strip() or 'unknown'
        if rc == 0:
            return {'ok': True, 'latency_ms': None, 'state': state, 'message': 'Unit %s is %s.' % (spec['unit'], state)}
        return {'ok': False, 'condition': 'service_down', 'latency_ms': None, 'state': state,
                'message': 'Unit %s is %s, not active.' % (spec['unit'], state)}


# --------------------------------------------------------------------------------------------
# command
# --------------------------------------------------------------------------------------------
@register
class CommandCheck(CheckType):
    type_name = 'command'
    options = {'argv': {'type': 'list', 'elements': 'str'}, 'cmd': {'type': 'str'},
               'expect_rc': {'type': 'list', 'elements': 'int', 'default': [0]}}
    one_of = (('argv', 'cmd'),)
    exclusive = (('argv', 'cmd'),)
    down_condition = 'command_failed'

    def _argv(self, spec: Dict[str, Any]) -> List[str]:
        return list(spec['argv']) if spec.get('argv') else shlex.split(spec['cmd'])

    def default_name(self, spec: Dict[str, Any]) -> str:
        argv = self._argv(spec)
        return 'command:%s' % (os.path.basename(argv[0]) if argv else '')

    def validate(self, spec: Dict[str, Any]) -> None:
        argv = self._argv(spec)
        if not argv:
            raise OpsReadyError('the command is empty.')
        if not (os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK)) and not shutil.which(argv[0]):
            raise OpsReadyError('%s is not an executable on PATH of the managed host.' % argv[0])

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        argv = self._argv(spec)
        start = time.monotonic()
        try:
            rc, out, err = ToolRunner().run(argv, check=False, timeout=spec['timeout'])
        except OpsReadyError as exc:
            return {'ok': False, 'condition': 'command_failed', 'latency_ms': None, 'timed_out': True,
                    'message': exc.message}
        tail = (out.strip() or err.strip()).splitlines()[-1:] or ['']
        result = {'latency_ms': _ms(time.monotonic() - start), 'value': rc, 'rc': rc, 'output': tail[0][:300]}
        if rc in spec['expect_rc']:
            result.update(ok=True, message='%s exited %d.' % (spec['name'], rc))
        else:
            result.update(ok=False, condition='command_failed',
                          message='%s exited %d (expected %s): %s' % (spec['name'], rc,
                                                                      ', '.join(str(c) for c in spec['expect_rc']),
                                                                      tail[0][:300]))
        return result

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        if not result.get('ok'):
            return super().evaluate(spec, result, th)
        return []


# --------------------------------------------------------------------------------------------
# backup: age of the newest verified backup and of the recoverable point against the RPO
# --------------------------------------------------------------------------------------------
@register
class BackupCheck(CheckType):
    """Per database in ``backup_dir``: the newest verified full must be younger than ``full_max_age_hours``
    and the newest recoverable point (full plus contiguous logs/WAL) younger than ``rpo_minutes``;
    ``warning_percent`` of either level is the warning level."""

    type_name = 'backup'
    options = {'backup_dir': {'type': 'path'}, 'backup_engine': {'type': 'str'},
               'rpo_minutes': {'type': 'float'}, 'full_max_age_hours': {'type': 'float', 'default': 26.0},
               'warning_percent': {'type': 'float', 'default': 80.0},
               'verified_only': {'type': 'bool', 'default': True}}
    one_of = (('backup_dir',),)
    down_condition = 'backup_missing'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'backup:%s' % (spec.get('database') or os.path.basename(str(spec.get('backup_dir', '')).rstrip('/')))

    def validate(self, spec: Dict[str, Any]) -> None:
        for key in ('rpo_minutes', 'full_max_age_hours'):
            if spec.get(key) is not None and spec[key] <= 0:
                raise OpsReadyError('%s must be more than 0.' % key)
        if not 0 < spec['warning_percent'] <= 100:
            raise OpsReadyError('warning_percent must be in (0, 100].')

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        from ansible_collections.opsready.operations.plugins.module_utils.health import backup_freshness
        try:
            records = backup_freshness.assess(spec['backup_dir'], spec.get('backup_engine'), spec.get('database'),
                                              verified_only=spec['verified_only'])
        except OpsReadyError as exc:
            return {'ok': False, 'condition': 'backup_missing', 'message': exc.message, 'latency_ms': None}
        if not records:
            return {'ok': False, 'condition': 'backup_missing', 'latency_ms': None,
                    'message': 'No backup with a manifest in %s%s: take one.'
                    % (spec['backup_dir'], ' for %s' % spec['database'] if spec.get('database') else '')}
        ages = [r['rpo_seconds'] for r in records if r['rpo_seconds'] is not None]
        return {'ok': True, 'latency_ms': None, 'databases': records,
                'value': round(max(ages), 1) if ages else None,
                'message': '%d database(s) in %s.' % (len(records), spec['backup_dir'])}

    def _level(self, name: str, what: str, age: Optional[float], limit_seconds: float, spec: Dict[str, Any],
               unit: str, **extra: Any) -> List[Dict[str, Any]]:
        scale = 3600.0 if unit == 'h' else 60.0
        warning = limit_seconds * spec['warning_percent'] / 100.0
        if age is None:
            return [finding(name, 'backup_missing', None, None, 'critical',
                            '%s: no %s backup in the catalog.' % (extra.get('database') or name, what),
                            type=self.type_name, **extra)]
        if age >= limit_seconds:
            severity, level = 'critical', limit_seconds
        elif age >= warning:
            severity, level = 'warning', warning
        else:
            return []
        message = '%s: the newest %s is %.1f %s old (%s at %.1f %s).' % (
            extra.get('database') or name, what, age / scale, unit, severity, level / scale, unit)
        item = finding(name, 'backup_stale', round(age, 1), None, severity, message, type=self.type_name, **extra)
        item['threshold'] = round(level, 1)
        return [item]

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        if not result.get('ok'):
            return super().evaluate(spec, result, th)
        found: List[Dict[str, Any]] = []
        for record in result['databases']:
            extra = {'engine': record['engine'], 'database': record['database']}
            what = 'verified full' if spec['verified_only'] else 'full'
            found += self._level(spec['name'], what, record['full_age_seconds'], spec['full_max_age_hours'] * 3600,
                                 spec, 'h', **extra)
            if spec.get('rpo_minutes') and record['full_age_seconds'] is not None:
                found += self._level(spec['name'], 'recoverable point (full + logs)', record['rpo_seconds'],
                                     spec['rpo_minutes'] * 60, spec, 'min', **extra)
        return found


def redact_result(result: Dict[str, Any], secrets: Sequence[str]) -> Dict[str, Any]:
    if not secrets:
        return result
    text = json.dumps(result, default=str)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(json.dumps(secret)[1:-1], REDACTED)
    return json.loads(text)


def run_spec(spec: Dict[str, Any]) -> Tuple[str, Any, float]:
    """(key, callable, overall timeout) for deadline.run_all."""
    check = REGISTRY[spec['type']]
    return ('check:' + spec['name'], lambda: check.run(spec), check.overall_timeout(spec))


__all__ = ['REGISTRY', 'register', 'CheckType', 'normalise', 'suboptions', 'run_spec', 'check_thresholds',
           'connection_secrets', 'redact_result', 'CRITICAL']
