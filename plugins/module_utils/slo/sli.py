# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SLI events and their sums over time windows, from the health history or from counter samples.

An event is what happened at one moment ``t``: ``good`` of ``total`` events (a probe run, the requests
of a run, or a counter's increase since the previous sample), with the latencies (ms) measured then or
the latency histogram's bucket increases. A window ``(end - seconds, end]`` sums the events inside it;
each event belongs to exactly one of two adjacent windows, so windows add up.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import bisect
import math
from fractions import Fraction
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Protocol, Sequence, Tuple, Union

from ansible_collections.opsready.operations.plugins.module_utils.slo.definitions import Slo


# Counts are ints (probe runs, requests: int arithmetic is fast) or exact Fractions (counter increases,
# which Prometheus gives as floats); never floats, so that a ratio exactly at a limit stays exact.
Count = Union[int, Fraction]


class Event(NamedTuple):
    t: float
    good: Count
    total: Count
    latencies: Tuple[float, ...] = ()
    # Latency histogram increases by upper bound in seconds (cumulative, as Prometheus' le buckets).
    buckets: Optional[Dict[float, Fraction]] = None


class Totals:
    """The sums of one window; ``total == 0`` is a window without data."""

    def __init__(self) -> None:
        self.good: Count = 0
        self.total: Count = 0
        self.events = 0
        self.latencies: List[float] = []
        self.buckets: Dict[float, Fraction] = {}
        self.first: Optional[float] = None

    @property
    def bad(self) -> Count:
        return self.total - self.good

    def add(self, event: Event) -> None:
        self.good += event.good
        self.total += event.total
        self.events += 1
        self.latencies.extend(event.latencies)
        for bound, count in (event.buckets or {}).items():
            self.buckets[bound] = self.buckets.get(bound, Fraction(0)) + count
        if self.first is None or event.t < self.first:
            self.first = event.t

    def good_ratio(self) -> Optional[Fraction]:
        return Fraction(self.good) / self.total if self.total > 0 else None

    def bad_ratio(self) -> Optional[Fraction]:
        return Fraction(self.bad) / self.total if self.total > 0 else None


class Windowed(Protocol):
    def window(self, end: float, seconds: float, detail: bool = False) -> Totals:
        ...


class Series:
    """Events sorted by time; a window's sums come from prefix sums (two bisections, no scan), its
    latencies and histogram only when ``detail`` asks for them (the SLO window's percentile)."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = sorted(events, key=lambda e: e.t)
        self.times = [e.t for e in self.events]
        self.cum_good: List[Count] = [0]
        self.cum_total: List[Count] = [0]
        for event in self.events:
            self.cum_good.append(self.cum_good[-1] + event.good)
            self.cum_total.append(self.cum_total[-1] + event.total)

    def window(self, end: float, seconds: float, detail: bool = False) -> Totals:
        lo = bisect.bisect_right(self.times, end - seconds)
        hi = bisect.bisect_right(self.times, end)
        totals = Totals()
        if hi <= lo:
            return totals
        totals.good = self.cum_good[hi] - self.cum_good[lo]
        totals.total = self.cum_total[hi] - self.cum_total[lo]
        totals.events = hi - lo
        totals.first = self.times[lo]
        if detail:
            for event in self.events[lo:hi]:
                totals.latencies.extend(event.latencies)
                for bound, count in (event.buckets or {}).items():
                    totals.buckets[bound] = totals.buckets.get(bound, Fraction(0)) + count
        return totals


def nearest_rank(values: Sequence[float], pct: float) -> Optional[float]:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest), as health_check reports it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(math.ceil(pct / 100.0 * len(ordered))))
    return ordered[rank - 1]


def histogram_quantile(pct: float, buckets: Dict[float, Fraction]) -> Optional[float]:
    """Prometheus' histogram_quantile on summed bucket increases (upper bounds in seconds): linear
    interpolation inside the bucket holding the rank; the +Inf bucket answers its lower bound."""
    if not buckets or math.inf not in buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[math.inf]
    if total <= 0:
        return None
    rank = Fraction(repr(pct)) / 100 * total
    previous_bound, previous_count = 0.0, Fraction(0)
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return previous_bound
            if count == previous_count:
                return bound
            fraction = (rank - previous_count) / (count - previous_count)
            return previous_bound + (bound - previous_bound) * float(fraction)
        previous_bound, previous_count = bound, count
    return bounds[-2] if len(bounds) > 1 else None


def probe_event(slo: Slo, t: float, probe: Dict[str, Any]) -> Optional[Event]:
    """The event of one history probe for ``slo``; None when the probe says nothing about this SLI."""
    ok = 1 if probe.get('ok') else 0
    if slo.sli == 'availability':
        return Event(t, ok, 1)
    if slo.sli == 'error_rate':
        if probe.get('n'):
            total = int(probe['n'])
            errors = min(total, int(probe.get('err') or 0))
            return Event(t, total - errors, total)
        # A single-request probe: the run is the request.
        return Event(t, ok, 1)
    # latency: a probe that failed has no answer time; availability counts it, latency does not.
    latencies = probe.get('lat') or ([probe['ms']] if probe.get('ms') is not None else [])
    values = tuple(float(v) for v in latencies)
    if not values:
        return None
    threshold = float(slo.threshold_ms or 0)
    good = sum(1 for v in values if v <= threshold)
    return Event(t, good, len(values), latencies=values)


def history_series(slo: Slo, samples: Iterable[Dict[str, Any]], host: Optional[str] = None) -> Tuple[Series, int]:
    """(events of ``slo``'s check in the health history, runs that recorded that check)."""
    events = []
    runs = 0
    for sample in samples:
        if host and sample.get('host') != host:
            continue
        probes = sample.get('probes')
        if not isinstance(probes, dict) or not isinstance(probes.get(slo.check), dict):
            continue
        runs += 1
        try:
            event = probe_event(slo, float(sample['t']), probes[slo.check])
        except (TypeError, ValueError):
            continue   # a hand-edited or damaged line: skipped like an unparsable one
        if event is not None:
            events.append(event)
    return Series(events), runs
