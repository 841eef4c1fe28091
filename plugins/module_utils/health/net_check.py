# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tcp and http health checks: a TCP connect, and HTTP(S) requests (status, body, latency percentiles, TLS
certificate expiry) within the check's timeout.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import socket
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.urlsecrets import redact_url, url_secrets
from ansible_collections.opsready.operations.plugins.module_utils.health.registry import (
    MAX_BODY, CheckType, ms, register)
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import Threshold, measure

# http.client (with the email parser it imports) and ssl are imported by the HTTP check that uses them: ~30 ms of
# every health_check run's start-up that the host checks never need (issue 22, module start-up).
if TYPE_CHECKING:  # pragma: no cover
    import http.client
    import ssl


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
        return {'ok': True, 'latency_ms': ms(time.monotonic() - start),
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
        import ssl
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
        # The name is in results, history, metrics labels and messages: never with a credential of the URL.
        return 'http:%s' % redact_url(spec['url'])

    def secrets(self, spec: Dict[str, Any]) -> List[str]:
        return url_secrets(spec.get('url') or '')

    def validate(self, spec: Dict[str, Any]) -> None:
        parsed = urllib.parse.urlsplit(spec['url'])
        if parsed.username is not None or parsed.password is not None:
            # Never echoed: the URL is the check's name (results, history, metrics labels), and http.client would
            # not send these credentials anyway.
            raise OpsReadyError('An http check url holds a user or password (user:password@host): it is not sent '
                                'and would be shown in the check name, results, history and metrics. Put the '
                                'credentials in headers (Authorization: Basic ...), which are never logged, and '
                                'name the check with name.')
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise OpsReadyError('url %r is not an http:// or https:// URL with a host.' % redact_url(spec['url']))
        try:
            _port = parsed.port  # raises ValueError on a bad port
        except ValueError:
            raise OpsReadyError('url %r has an invalid port.' % redact_url(spec['url']))
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
        import ssl
        if not spec['validate_certs']:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=spec.get('ca_path'))

    def _one(self, spec: Dict[str, Any], parsed: urllib.parse.SplitResult) -> Dict[str, Any]:
        import http.client
        import ssl
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
            except (ValueError, RecursionError):   # RecursionError: the server nests deeper than json recurses
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
        shown = redact_url(spec['url'])
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
            'latency_ms': ms(percentile(latencies, 95) or 0.0) if latencies else None,
        }
        if total > 1 and latencies:
            result['latency_p50_ms'] = ms(percentile(latencies, 50) or 0.0)
        if not_after is not None:
            result['tls_not_after'] = not_after.strftime('%Y-%m-%dT%H:%M:%SZ')
            days = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400.0
            result['tls_days_remaining'] = round(days, 2)
        failed_all = len(errors) == total
        if failed_all:
            condition = 'api_timeout' if timed_out else ('service_down' if refused else 'api_error')
            result.update(ok=False, condition=condition, timed_out=bool(timed_out),
                          message='%s %s failed: %s.' % (spec['method'], shown, errors[-1]))
        elif total == 1 or not errors:
            result.update(ok=True, message='%s %s answered %s.' % (spec['method'], shown, result['status']))
        else:
            result.update(ok=True, message='%s %s: %d of %d requests failed (last: %s).'
                          % (spec['method'], shown, len(errors), total, errors[-1]))
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
