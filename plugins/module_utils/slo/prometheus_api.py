# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SLI events from a Prometheus HTTP API (``/api/v1/query_range``) over raw counters.

The counters are fetched as they are (no ``rate()``/``increase()`` in the query) at two resolutions:
the last 6 hours every 30 s (the 5 m ... 6 h alert windows) and the SLO window (at least 3 days, for
the 3 d ticket window) in at most 10,000 steps. Each step's increase is the difference to the previous
sample, or, when the counter went down (a restart reset it), the new value itself: what was counted
since the reset. Series of one selector (instances, status codes) are summed per timestamp.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
from fractions import Fraction
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.urlsecrets import redact_url
from ansible_collections.opsready.operations.plugins.module_utils.slo.definitions import Slo, parse_duration
from ansible_collections.opsready.operations.plugins.module_utils.slo.sli import Event, Series, Totals

SHORT_SPAN = 6 * 3600
SHORT_STEP = 30
MAX_POINTS = 10000   # Prometheus refuses more than 11,000 points per series
MAX_RESPONSE = 64 * 1024 * 1024

Fetch = Callable[[str, float, float, int], List[Dict[str, Any]]]


class Client:
    """``query_range`` against ``url`` (the server root, e.g. http://prometheus:9090)."""

    def __init__(self, url: str, headers: Optional[Dict[str, str]] = None, timeout: float = 30.0,
                 validate_certs: bool = True, ca_path: Optional[str] = None) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise OpsReadyError('prometheus_url %r is not an http:// or https:// URL.' % redact_url(url))
        if timeout <= 0:
            raise OpsReadyError('prometheus_timeout must be more than 0 seconds.')
        self.url = url.rstrip('/')
        # what messages show: a user:password@ (which open_url sends as Basic auth) or a key in the query starred
        self.shown = redact_url(self.url)
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.queries = 0

    def query_range(self, query: str, start: float, end: float, step: int) -> List[Dict[str, Any]]:
        from ansible.module_utils.urls import ConnectionError as UrlConnectionError
        from ansible.module_utils.urls import open_url
        params = urllib.parse.urlencode({'query': query, 'start': '%.3f' % start, 'end': '%.3f' % end,
                                         'step': '%ds' % step})
        url = '%s/api/v1/query_range?%s' % (self.url, params)
        self.queries += 1
        try:
            with open_url(url, headers=self.headers, method='GET', timeout=self.timeout,
                          validate_certs=self.validate_certs, ca_path=self.ca_path, http_agent='opsready-slo',
                          use_netrc=False) as response:
                body = response.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as exc:
            # Prometheus answers 400/422/503 with a JSON error naming the problem in the query.
            detail = _error_text(exc.read(65536) if exc.fp else b'') or exc.reason
            raise OpsReadyError('Prometheus %s refused the query %s: HTTP %d, %s'
                                % (self.shown, query, exc.code, detail))
        except (urllib.error.URLError, OSError, UrlConnectionError) as exc:
            reason = getattr(exc, 'reason', exc)
            raise OpsReadyError('Prometheus %s cannot be reached: %s. Check prometheus_url and that the server '
                                'answers from this host.' % (self.shown, reason))
        if len(body) > MAX_RESPONSE:
            raise OpsReadyError('Prometheus answered more than %d MiB for %s: the selector matches too many '
                                'series; aggregate it with sum by (...) or narrow its labels.'
                                % (MAX_RESPONSE // 1048576, query))
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):   # RecursionError: nested deeper than json recurses
            raise OpsReadyError('Prometheus %s did not answer JSON for %s: is prometheus_url the server root?'
                                % (self.shown, query))
        if not isinstance(doc, dict) or doc.get('status') != 'success':
            raise OpsReadyError('Prometheus query %s failed: %s' % (query, _error_text(body) or 'no status'))
        data = doc.get('data') or {}
        if data.get('resultType') != 'matrix':
            raise OpsReadyError('Prometheus query %s returned a %s, not a range of series: give a counter selector.'
                                % (query, data.get('resultType')))
        return list(data.get('result') or [])


def _error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
        return '%s: %s' % (doc.get('errorType'), doc.get('error'))
    except (ValueError, AttributeError, RecursionError):
        return ''


def increments(values: List[Any]) -> List[Tuple[float, Fraction]]:
    """(t, increase since the previous sample) of one counter series; a drop is a reset."""
    out = []
    previous: Optional[float] = None
    for t, raw in values:
        value = float(raw)
        if math.isnan(value):
            continue   # a stale marker or a NaN sample: no information
        if previous is not None:
            out.append((float(t), Fraction(value - previous) if value >= previous else Fraction(value)))
        previous = value
    return out


def summed(result: List[Dict[str, Any]]) -> Dict[float, Fraction]:
    """Increments of every series of a selector, summed per timestamp."""
    by_time: Dict[float, Fraction] = {}
    for series in result:
        for t, inc in increments(series.get('values') or []):
            by_time[t] = by_time.get(t, Fraction(0)) + inc
    return by_time


def _le(text: str) -> float:
    try:
        return math.inf if text in ('+Inf', 'Inf', '+inf', 'inf') else float(text)
    except ValueError:
        raise OpsReadyError('A histogram bucket has le=%r, not a number.' % text)


def ratio_events(slo: Slo, fetch: Fetch, start: float, end: float, step: int) -> List[Event]:
    total = summed(fetch(slo.total_query or '', start, end, step))
    other = summed(fetch(slo.good_query or slo.bad_query or '', start, end, step))
    events = []
    for t in sorted(set(total) | set(other)):
        all_ = total.get(t, Fraction(0))
        part = other.get(t, Fraction(0))
        good = part if slo.good_query else all_ - part
        events.append(Event(t, max(Fraction(0), min(good, all_)), all_))
    return events


def latency_events(slo: Slo, fetch: Fetch, start: float, end: float, step: int) -> List[Event]:
    by_le: Dict[float, List[Dict[str, Any]]] = {}
    for series in fetch(slo.bucket_query or '', start, end, step):
        le = (series.get('metric') or {}).get('le')
        if le is None:
            raise OpsReadyError('bucket_query %s returned a series without an le label: give the *_bucket '
                                'counters of a histogram.' % slo.bucket_query)
        by_le.setdefault(_le(le), []).append(series)
    if not by_le:
        return []
    threshold = _le(slo.bucket_le) if slo.bucket_le else float(slo.threshold_ms or 0) / 1000.0
    if threshold not in by_le or math.inf not in by_le:
        raise OpsReadyError('bucket_query %s has no bucket le="%g" (threshold_ms %g) or no +Inf bucket; its '
                            'buckets are %s. Set threshold_ms to a bucket bound.'
                            % (slo.bucket_query, threshold, slo.threshold_ms or 0,
                               ', '.join('%g' % b for b in sorted(by_le))))
    buckets = {le: summed(items) for le, items in by_le.items()}
    events = []
    for t in sorted(buckets[math.inf]):
        counts = {le: inc.get(t, Fraction(0)) for le, inc in buckets.items()}
        events.append(Event(t, counts[threshold], counts[math.inf], buckets=counts))
    return events


class TwoResolutions:
    """Windows up to 6 h from the 30 s series, longer ones from the coarse series."""

    def __init__(self, fine: Series, coarse: Series) -> None:
        self.fine = fine
        self.coarse = coarse

    def window(self, end: float, seconds: float, detail: bool = False) -> Totals:
        return (self.fine if seconds <= SHORT_SPAN else self.coarse).window(end, seconds, detail)


def coarse_step(span: int, windows: Tuple[int, ...] = ()) -> int:
    """The whole-minute step that keeps ``span`` under MAX_POINTS samples; of those up to twice as coarse,
    the finest that divides every window, so that window edges fall on samples (3 d at 780 s steps would
    count 540 s too many)."""
    least = max(60, int(math.ceil(span / float(MAX_POINTS) / 60.0)) * 60)
    for step in range(least, 2 * least + 1, 60):
        if all(w % step == 0 for w in windows):
            return step
    return least


def prometheus_series(slo: Slo, fetch: Fetch, now: float) -> Tuple[TwoResolutions, float]:
    """(the SLO's events at both resolutions, the aligned evaluation time)."""
    end = math.floor(now / SHORT_STEP) * SHORT_STEP
    span = max(slo.window, parse_duration('3d'))
    step = coarse_step(span, (slo.window, parse_duration('3d')))
    span = int(math.ceil(span / float(step))) * step
    build = latency_events if slo.sli == 'latency' else ratio_events
    fine = Series(build(slo, fetch, end - SHORT_SPAN, end, SHORT_STEP))
    coarse = Series(build(slo, fetch, end - span, end, step))
    return TwoResolutions(fine, coarse), end
