"""A loopback stand-in for a Prometheus server's ``/api/v1/query_range`` (Python's http.server).

It holds raw scraped samples per series selector and answers a range query the way Prometheus does for
a plain selector: at each step, each series' newest sample at or before that instant, if it is at most
5 minutes old (the lookback delta); the JSON has Prometheus' shape (``{"status": "success", "data":
{"resultType": "matrix", "result": [{"metric": {...}, "values": [[t, "v"], ...]}]}}``). An unknown
query gets Prometheus' recorded error answer (HTTP 400, ``errorType: bad_data``). Requests are logged
so a test can assert what was asked (and with which headers).
"""

from __future__ import annotations

import bisect
import http.server
import json
import threading
import urllib.parse
from typing import Any, Dict, List, Tuple

LOOKBACK = 300.0
# Recorded from Prometheus 2.42 (`curl '.../api/v1/query_range?query=rate(x[5m]&...'`).
BAD_DATA = {'status': 'error', 'errorType': 'bad_data',
            'error': 'invalid parameter "query": 1:11: parse error: unclosed left parenthesis'}


class FakePrometheus:
    def __init__(self) -> None:
        # selector -> [(labels, times, values)]
        self.series: Dict[str, List[Tuple[Dict[str, str], List[float], List[float]]]] = {}
        self.requests: List[Dict[str, Any]] = []
        self._server: Any = None

    def add(self, selector: str, labels: Dict[str, str], samples: List[Tuple[float, float]]) -> None:
        samples = sorted(samples)
        self.series.setdefault(selector, []).append((labels, [s[0] for s in samples], [s[1] for s in samples]))

    def answer(self, query: str, start: float, end: float, step: float) -> Tuple[int, Dict[str, Any]]:
        if query not in self.series:
            return 400, BAD_DATA
        result = []
        for labels, times, values in self.series[query]:
            points = []
            t = start
            while t <= end + 1e-9:
                i = bisect.bisect_right(times, t) - 1
                if i >= 0 and t - times[i] <= LOOKBACK:
                    points.append([round(t, 3), repr(float(values[i]))])
                t += step
            if points:
                result.append({'metric': labels, 'values': points})
        return 200, {'status': 'success', 'data': {'resultType': 'matrix', 'result': result}}

    def start(self) -> str:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                parsed = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(parsed.query))
                fake.requests.append({'path': parsed.path, 'query': q, 'headers': dict(self.headers)})
                if parsed.path != '/api/v1/query_range':
                    status, doc = 404, {'status': 'error', 'errorType': 'not_found', 'error': 'not found'}
                else:
                    status, doc = fake.answer(q['query'], float(q['start']), float(q['end']),
                                              float(q['step'].rstrip('s')))
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return 'http://127.0.0.1:%d' % self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


NOW = 1_700_001_000.0          # a multiple of 30 and 60: scrapes and query steps share one grid
SCRAPE = 30.0
TOTAL = 'http_requests_total{job="api"}'
BAD = 'http_requests_total{job="api",code=~"5.."}'
GOOD = 'http_requests_total{job="api",code!~"5.."}'
BUCKETS = 'http_request_duration_seconds_bucket{job="api"}'


def api_scenario() -> FakePrometheus:
    """Four days of an API scraped every 30 s (hand-computable; docs in test_slo_prometheus.py):

    instance a serves 300 requests per scrape, b 150; b restarted 2 h ago (its counter reset to the
    150 it counted since); a answered 30 per scrape with a 5xx during the last 20 minutes.
    a's latency histogram per scrape: 200 within 0.1 s, 290 within 0.2 s, 297 within 0.5 s, 300 in all.
    """
    fake = FakePrometheus()
    times = [NOW - 4 * 86400 + SCRAPE * i for i in range(int(4 * 86400 / SCRAPE) + 1)]
    reset = NOW - 7200 + 30
    a_total, b_total, a_err, b_after = [], [], [], []
    errors = 0
    for n, t in enumerate(times):
        a_total.append((t, 1000.0 + 300.0 * n))
        if t > NOW - 1200:
            errors += 30
        a_err.append((t, float(errors)))
        if t < reset:
            b_total.append((t, 5000.0 + 150.0 * n))
        else:
            b_after.append((t, 150.0 * (1 + (t - reset) / SCRAPE)))
    fake.add(TOTAL, {'__name__': 'http_requests_total', 'job': 'api', 'instance': 'a'}, a_total)
    fake.add(TOTAL, {'__name__': 'http_requests_total', 'job': 'api', 'instance': 'b'}, b_total + b_after)
    fake.add(BAD, {'__name__': 'http_requests_total', 'job': 'api', 'instance': 'a', 'code': '500'}, a_err)
    fake.add(GOOD, {'__name__': 'http_requests_total', 'job': 'api', 'instance': 'a', 'code': '200'},
             [(t, v - err[1]) for (t, v), err in zip(a_total, a_err)])
    fake.add(GOOD, {'__name__': 'http_requests_total', 'job': 'api', 'instance': 'b', 'code': '200'},
             b_total + b_after)
    for le, per_scrape in (('0.1', 200), ('0.2', 290), ('0.5', 297), ('+Inf', 300)):
        fake.add(BUCKETS, {'__name__': 'http_request_duration_seconds_bucket', 'job': 'api', 'le': le},
                 [(t, float(per_scrape * n)) for n, t in enumerate(times)])
    return fake
