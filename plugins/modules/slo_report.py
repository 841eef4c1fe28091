#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: slo_report
short_description: SLIs, error budgets and multi-window burn-rate alerts of service level objectives
version_added: 0.1.0
description:
  - Computes each SLO's SLI (availability, error rate or latency) over its window from the probes that
    M(opsready.operations.health_check) records in its history (O(history_path)), or from counters in a
    Prometheus server (O(prometheus_url), C(/api/v1/query_range) on the raw counters; resets are handled).
  - Returns the error budget (allowed, spent, remaining; for availability also in seconds, as 99.95 % over 30 days
    allows 21.6 minutes), the burn rate of every alert window and the multi-window, multi-burn-rate alerts of the
    SRE workbook, page when both 1 h and 5 min burn faster than 14.4x, ticket when 6 h and 30 min burn faster
    than 6x or 3 d and 6 h faster than 1x, plus a budget alert when O(budget_alert_percent) of the budget is spent.
  - 'Status per SLO: V(critical) (page alert, or budget spent), V(warning) (ticket or budget alert), V(ok),
    V(no_data) (no event in the window).'
  - Read-only.
author: opsready developers (@opsready)
options:
  history_path:
    description: The health history (O(opsready.operations.health_check#module:history_path)) for V(history) SLOs.
    type: path
  host:
    description: Only history samples recorded with this host label.
    type: str
  prometheus_url:
    description:
      - Root URL of the Prometheus server for V(prometheus) SLOs (for example V(http://prometheus:9090)).
      - A V(user:password@) in it is sent as Basic authentication, but give credentials in O(prometheus_headers)
        (never logged); a password or a secret-named query parameter here is shown as C(********) in messages and
        Ansible's C(invocation).
    type: str
  prometheus_headers:
    description: Request headers for Prometheus (for example C(Authorization)); values are secrets.
    type: dict
    default: {}
  prometheus_timeout:
    description: Seconds per Prometheus request.
    type: float
    default: 30
  validate_certs:
    description: Verify the Prometheus server's certificate.
    type: bool
    default: true
  ca_path:
    description: CA bundle to verify the Prometheus server with.
    type: path
  budget_alert_percent:
    description: Raise the budget alert when at least this percentage of the error budget is spent (the seeds' 50 %).
    type: float
    default: 50
  evaluation_time:
    description: Evaluate at this instant (ISO 8601 with a zone, or Unix seconds) instead of now.
    type: str
  textfile_path:
    description:
      - Also write the report as Prometheus metrics (C(opsready_slo_*), see docs/metrics.md) to this C(.prom) file,
        atomically, for node_exporter's textfile collector. Monitoring output, like health_check's textfile,
        it is not written in check mode and does not make the task changed.
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
  fail_on:
    description: Fail the task when the worst SLO status is at least this severe; V(never) only reports.
    type: str
    choices: [critical, warning, never]
    default: never
extends_documentation_fragment:
  - opsready.operations.check_mode
  - opsready.operations.slo
notes:
  - Burn-rate alerts fire when the bad fraction is strictly above factor x budget (as the workbook's rules, and the
    rules M(opsready.operations.prometheus_rules) writes); a window without events never fires.
  - V(history) SLIs are as fine as the probes; an C(http) check with several
    O(opsready.operations.health_check#module:checks[].requests) gives error rates, a single request one event per run.
seealso:
  - module: opsready.operations.health_check
  - module: opsready.operations.prometheus_rules
'''

EXAMPLES = r'''
- name: The seeds' SLOs from the health history
  opsready.operations.slo_report:
    history_path: /var/lib/opsready/health-history.jsonl
    slos:
      - {name: api-availability, service: api, sli: availability, objective: 99.95, check: api}
      - {name: api-latency, service: api, sli: latency, threshold_ms: 200, objective: 95, check: api}
      - {name: api-errors, service: api, sli: error_rate, objective: 99.9, check: api}
      - {name: db-latency, service: database, sli: latency, threshold_ms: 50, objective: 95, check: app-db}
  register: slo

- name: From Prometheus counters
  opsready.operations.slo_report:
    prometheus_url: http://prometheus:9090
    prometheus_headers:
      Authorization: "Bearer {{ vault_prometheus_token }}"
    slos:
      - name: api-errors
        sli: error_rate
        objective: 99.9
        source: prometheus
        total_query: http_requests_total{job="api"}
        bad_query: http_requests_total{job="api",code=~"5.."}
      - name: api-latency
        sli: latency
        threshold_ms: 200
        objective: 95
        source: prometheus
        bucket_query: http_request_duration_seconds_bucket{job="api"}
    fail_on: critical
'''

RETURN = r'''
slos:
  description: One entry per SLO, in the order given.
  returned: success
  type: list
  elements: dict
  sample:
    - name: api-availability
      service: api
      sli: availability
      objective: 99.95
      window: 30d
      source: history
      status: warning
      sli_percent: 99.972
      events: {good: 8637, bad: 3, total: 8640, samples: 8640}
      budget: {allowed_percent: 0.05, consumed_percent: 55.56, remaining_percent: 44.44, allowed_seconds: 1296.0,
               remaining_seconds: 576.0, alert_percent: 50, alert: true}
      burn_rates: {5m: 0.0, 30m: 0.0, 1h: 0.0, 6h: 0.0, 3d: 1.39, 30d: 0.56}
      alerts:
        - {severity: page, long_window: 1h, short_window: 5m, factor: 14.4, long_burn_rate: 0.0,
           short_burn_rate: 0.0, firing: false}
      met: true
      coverage_percent: 100.0
      message: "api-availability (availability, objective 99.95 % over 30d): 99.97 % good of 8640 events; ..."
status:
  description: Worst status of all SLOs (V(critical), V(warning), V(ok), V(no_data) when none has data).
  returned: success
  type: str
  sample: warning
services:
  description: Worst status per service.
  returned: success
  type: dict
  sample: {api: warning, database: ok}
summary:
  description: Number of SLOs per status.
  returned: success
  type: dict
  sample: {critical: 0, warning: 1, no_data: 0, ok: 3}
firing:
  description: Firing alerts (burn-rate alerts with their windows and burn rates, and budget alerts).
  returned: success
  type: list
  elements: dict
  sample: [{slo: api-availability, service: api, severity: budget, consumed_percent: 55.56}]
table:
  description: A fixed-width table (service, SLO, status, SLI, objective, budget left, 1 h burn, alerts).
  returned: success
  type: list
  elements: str
evaluated_at:
  description: The instant evaluated (UTC, ISO 8601).
  returned: success
  type: str
  sample: "2026-12-04T17:00:00Z"
written:
  description: The textfile written (V(textfile)); empty without O(textfile_path) and in check mode.
  returned: success
  type: dict
  sample: {textfile: /var/lib/node_exporter/textfile/opsready_slo.prom}
skipped_lines:
  description: Unparsable history lines ignored.
  returned: success
  type: int
  sample: 0
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.urlsecrets import redact_url, url_secrets
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.health import prometheus
from ansible_collections.opsready.operations.plugins.module_utils.slo import (
    definitions, exposition, prometheus_api, report)

RANK = {'no_data': 0, 'ok': 0, 'warning': 1, 'critical': 2}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            slos=dict(type='list', elements='dict', default=[], options=definitions.OPTIONS),
            history_path=dict(type='path'),
            host=dict(type='str'),
            prometheus_url=dict(type='str'),
            prometheus_headers=dict(type='dict', default={}, no_log=True),
            prometheus_timeout=dict(type='float', default=30),
            validate_certs=dict(type='bool', default=True),
            ca_path=dict(type='path'),
            budget_alert_percent=dict(type='float', default=50),
            evaluation_time=dict(type='str'),
            textfile_path=dict(type='path'),
            fail_on=dict(type='str', choices=['critical', 'warning', 'never'], default='never'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    prometheus_url = p['prometheus_url']
    if prometheus_url:
        # Ansible echoes the arguments as the result's invocation: the URL is shown there with a user:password@
        # (sent as Basic auth) or a key in its query starred, and those values are masked wherever they occur.
        module.no_log_values.update(s for s in url_secrets(prometheus_url) if len(s) >= 4)
        p['prometheus_url'] = redact_url(prometheus_url)
    try:
        slos = definitions.parse(p['slos'])
        if not slos:
            raise OpsReadyError('slos is empty: define at least one SLO (name, sli, objective, check or queries).')
        client = None
        if prometheus_url:
            client = prometheus_api.Client(prometheus_url, headers=p['prometheus_headers'],
                                           timeout=p['prometheus_timeout'], validate_certs=p['validate_certs'],
                                           ca_path=p['ca_path'])
        if p['textfile_path'] and not p['textfile_path'].endswith('.prom'):
            raise OpsReadyError('textfile_path %s must end in .prom: node_exporter\'s textfile collector reads only '
                                '*.prom files.' % p['textfile_path'])
        if p['textfile_path']:
            # Check mode too: an account owning a directory above could link the directory's name to a directory
            # of root's, where root would create and replace the textfile.
            safeio.check_parents(os.path.dirname(os.path.abspath(p['textfile_path'])),
                                 'write the metrics textfile into', 'The directory of textfile_path')
        now = report.evaluation_time(p['evaluation_time'])
        result = report.run(slos, now, history_path=p['history_path'], host=p['host'], client=client,
                            budget_alert_percent=p['budget_alert_percent'])
        result['written'] = {}
        if p['textfile_path'] and module.check_mode:
            prometheus.check_target(p['textfile_path'])   # the refusal the real run meets
        elif p['textfile_path']:
            prometheus.write(p['textfile_path'], exposition.build(result, now))
            result['written']['textfile'] = p['textfile_path']
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Cannot read the history %s or write the textfile %s: %s.'
                         % (p['history_path'], p['textfile_path'], exc.strerror or exc))
    if p['fail_on'] != 'never' and RANK[result['status']] >= RANK[p['fail_on']]:
        worst = [r['message'] for r in result['slos'] if r['status'] == result['status']]
        module.fail_json(msg='SLO status is %s (fail_on=%s): %s' % (result['status'], p['fail_on'], ' '.join(worst)),
                         **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
