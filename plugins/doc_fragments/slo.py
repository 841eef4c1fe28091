# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The SLO definitions shared by slo_report and prometheus_rules (module_utils/slo/definitions.py).
    DOCUMENTATION = r'''
options:
  slos:
    description:
      - Service level objectives. Every SLI is a ratio of good events to all events; O(slos[].objective) is the
        percentage of good events the service promises over O(slos[].window).
      - 'The seeds'' table: availability 99.95 % (V(availability), objective V(99.95)); API p95 < 200 ms
        (V(latency), O(slos[].threshold_ms) V(200), objective V(95)); error rate < 0.1 % (V(error_rate),
        objective V(99.9)); database query p95 < 50 ms (V(latency) of a C(db) check, threshold_ms V(50),
        objective V(95)).'
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the SLO (letters, digits and C(_.:-)), a label value in metrics and rules.
        type: str
        required: true
      service:
        description: Service the SLO belongs to (the fleet report groups by it). Defaults to O(slos[].name).
        type: str
      sli:
        description:
          - V(availability) counts probe runs (history) or requests (Prometheus) that succeeded.
          - V(error_rate) counts failed requests (an C(http) check's
            O(opsready.operations.health_check#module:checks[].requests)).
          - V(latency) counts requests answered within O(slos[].threshold_ms).
        type: str
        required: true
        choices: [availability, error_rate, latency]
      objective:
        description: Percentage of good events promised, more than 0 and less than 100; the error budget is the rest.
        type: float
        required: true
      window:
        description: The SLO window (V(30d), V(4w), V(7d), or seconds); the budget is spent over it.
        type: str
        default: 30d
      source:
        description:
          - V(history) computes the SLI from the probes M(opsready.operations.health_check) recorded in its history
            (check O(slos[].check)).
          - V(prometheus) from counters in a Prometheus server (O(slos[].total_query) with O(slos[].good_query) or
            O(slos[].bad_query); O(slos[].bucket_query) for latency).
        type: str
        choices: [history, prometheus]
        default: history
      check:
        description: V(history) the name of the health_check check whose probes are the events.
        type: str
      threshold_ms:
        description: V(latency) a request is good when answered within this many milliseconds.
        type: float
      percentile:
        description: V(latency) the percentile reported beside the SLI (nearest rank; histogram_quantile for buckets).
        type: float
        default: 95
      total_query:
        description: V(prometheus) counter selector of all events, e.g. C(http_requests_total{job="api"}).
        type: str
      good_query:
        description: V(prometheus) counter selector of good events (or give O(slos[].bad_query)).
        type: str
      bad_query:
        description: V(prometheus) counter selector of bad events, e.g. C(http_requests_total{job="api",code=~"5.."}).
        type: str
      bucket_query:
        description:
          - V(prometheus) V(latency) histogram bucket counters, e.g. C(http_request_duration_seconds_bucket{job="api"});
            one bucket's C(le) must equal O(slos[].threshold_ms) in seconds.
        type: str
      bucket_le:
        description: V(prometheus) V(latency) the C(le) label value of the threshold bucket when it is not spelled as
          the threshold in seconds (for example V(0.20)).
        type: str
'''
