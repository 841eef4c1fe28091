#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: prometheus_rules
short_description: Write Prometheus recording and alerting rules for SLOs, hosts, backups and insights
version_added: 0.1.0
description:
  - Generates a Prometheus rules file (YAML) and writes it atomically to O(dest), validated with
    C(promtool check rules) before it replaces the old file.
  - For every SLO of O(slos) a group with one recording rule per window of its error ratio
    (C(opsready_slo:sli_error:ratio_rate5m) ... C(ratio_rate30d), label C(slo)) and the SRE workbook's
    multi-window, multi-burn-rate alerts C(OpsreadySloBurnRate) (page at 14.4x over 1 h and 5 min, ticket at 6x over
    6 h and 30 min and at 1x over 3 d and 6 h), plus C(OpsreadySloErrorBudgetSpent) at O(budget_alert_percent).
  - V(history) SLOs use the metrics M(opsready.operations.health_check) writes for node_exporter
    (C(opsready_health_check_up), C(opsready_health_check_error_ratio), C(opsready_health_check_latency_seconds)),
    V(prometheus) SLOs their counters.
  - Host rules (verdict, stale health job, failing checks, filesystem full, filling or hung, certificate
    expiry), backup rules (full backup age, verification, recovery point) and insight rules from the
    metrics the collection exports (docs/metrics.md).
author: opsready developers (@opsready)
options:
  dest:
    description:
      - The rules file to write (list it under C(rule_files) in prometheus.yml).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
    required: true
  host_rules:
    description: Include the host rules (group C(opsready-host)).
    type: bool
    default: true
  backup_rules:
    description: Include the backup freshness rules (group C(opsready-backup)).
    type: bool
    default: true
  insight_rules:
    description: Include the database and cache insight rules (group C(opsready-insights)) when there are any.
    type: bool
    default: true
  thresholds:
    description:
      - Levels of the host and backup rules. Keys and defaults C(health_stale_minutes) 15, C(health_critical_minutes)
        10, C(check_down_minutes) 10, C(filesystem_used_ratio) 0.9, C(filesystem_fill_hours) 4, C(tls_expiry_days) 14,
        C(full_backup_max_age_hours) 26, C(rpo_minutes) unset (no recovery point alert).
    type: dict
    default: {}
  extra_rules:
    description:
      - More rules (group C(opsready-extra)), each with C(expr) and C(alert) or C(record), and optionally C(for),
        C(keep_firing_for), C(labels) and C(annotations).
    type: list
    elements: dict
    default: []
  budget_alert_percent:
    description: C(OpsreadySloErrorBudgetSpent) fires when at least this percentage of an SLO's budget is spent.
    type: float
    default: 50
  validate:
    description:
      - V(auto) runs C(promtool check rules) when promtool is found, V(always) requires it, V(never) skips it.
      - A file promtool refuses is never written.
    type: str
    choices: [auto, always, never]
    default: auto
  promtool:
    description: Path of promtool. Default the one on PATH.
    type: path
  mode:
    description: Permissions of O(dest), octal.
    type: str
    default: '0644'
extends_documentation_fragment:
  - opsready.operations.check_mode
  - opsready.operations.slo
notes:
  - O(slos[].percentile) is used by M(opsready.operations.slo_report) only; rules alert on the error ratio.
  - The burn-rate alerts compare with C(>) (strictly above the factor), the budget alert with C(>=), exactly as
    M(opsready.operations.slo_report) decides.
seealso:
  - module: opsready.operations.slo_report
  - module: opsready.operations.health_check
'''

EXAMPLES = r'''
- name: Rules for the seeds' SLOs, hosts and backups on the Prometheus server
  opsready.operations.prometheus_rules:
    dest: /etc/prometheus/rules/opsready.yml
    slos:
      - {name: api-availability, service: api, sli: availability, objective: 99.95, check: api}
      - {name: api-latency, service: api, sli: latency, threshold_ms: 200, objective: 95, check: api}
      - name: api-errors
        service: api
        sli: error_rate
        objective: 99.9
        source: prometheus
        total_query: http_requests_total{job="api"}
        bad_query: http_requests_total{job="api",code=~"5.."}
    thresholds:
      rpo_minutes: 15
    validate: always
  notify: Reload prometheus
'''

RETURN = r'''
dest:
  description: The rules file.
  returned: success
  type: str
  sample: /etc/prometheus/rules/opsready.yml
rules:
  description: Numbers of groups, recording and alerting rules written.
  returned: success
  type: dict
  sample: {groups: 3, recording: 10, alerting: 16}
groups:
  description: Names of the rule groups.
  returned: success
  type: list
  elements: str
  sample: [opsready-slo-api-availability, opsready-host, opsready-backup]
validated:
  description: Whether promtool checked the file.
  returned: success
  type: bool
  sample: true
promtool_output:
  description: What C(promtool check rules) said.
  returned: when validated
  type: str
  sample: "Checking <rules>\n  SUCCESS: 26 rules found"
'''

import os
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_text
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.slo import definitions, rules


def _mode(text):
    try:
        mode = int(str(text), 8)
    except ValueError:
        raise OpsReadyError('mode %r is not an octal permission like 0644.' % text)
    if not 0 <= mode <= 0o7777:
        raise OpsReadyError('mode %r is not an octal permission like 0644.' % text)
    return mode


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            slos=dict(type='list', elements='dict', default=[], options=definitions.OPTIONS),
            host_rules=dict(type='bool', default=True),
            backup_rules=dict(type='bool', default=True),
            insight_rules=dict(type='bool', default=True),
            thresholds=dict(type='dict', default={}),
            extra_rules=dict(type='list', elements='dict', default=[]),
            budget_alert_percent=dict(type='float', default=50),
            validate=dict(type='str', choices=['auto', 'always', 'never'], default='auto'),
            promtool=dict(type='path'),
            mode=dict(type='str', default='0644'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    dest = p['dest']
    result = {'changed': False, 'dest': dest, 'validated': False}
    try:
        mode = _mode(p['mode'])
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise OpsReadyError('dest directory %s does not exist: create it (Prometheus reads the rule_files '
                                'you list in prometheus.yml).' % directory)
        # Check mode too: an account owning a directory above could link the directory's name to a directory of
        # root's, where root would replace a file of the same name.
        safeio.check_parents(directory, 'write the rules file into', 'The directory of dest')
        doc = rules.build(definitions.parse(p['slos']), host=p['host_rules'], backup=p['backup_rules'],
                          insights=p['insight_rules'], levels=rules.thresholds(p['thresholds']),
                          extra=p['extra_rules'], budget_alert_percent=p['budget_alert_percent'])
        if not doc['groups']:
            raise OpsReadyError('No rules to write: give slos, extra_rules or enable host_rules/backup_rules.')
        text = rules.render(doc)
        result['rules'] = rules.count(doc)
        result['groups'] = [g['name'] for g in doc['groups']]
        promtool = p['promtool'] or shutil.which('promtool')
        if p['validate'] == 'always' and not (promtool and os.access(promtool, os.X_OK)):
            raise OpsReadyError('validate=always needs promtool on the managed host (Debian: apt install prometheus; '
                                'or set promtool to its path).')
        if p['validate'] != 'never' and promtool:
            result['promtool_output'] = rules.promtool_check(text, promtool)
            result['validated'] = True
        old = safeio.read_regular_or_none(dest, 64 * 1024 * 1024, what='dest')
        old_text = None if old is None else old.decode('utf-8', 'replace')
        if old_text != text:
            result['changed'] = True
            if module._diff:
                result['diff'] = {'before': old_text or '', 'after': text, 'before_header': dest, 'after_header': dest}
            if not module.check_mode:
                atomic_write_text(dest, text, mode=mode)
        elif (os.lstat(dest).st_mode & 0o7777) != mode:
            result['changed'] = True
            if module._diff:
                result['diff'] = {'before': {'mode': '%04o' % (os.lstat(dest).st_mode & 0o7777)},
                                  'after': {'mode': '%04o' % mode}}
            if not module.check_mode:
                _chmod_regular(dest, mode)
    except OpsReadyError as exc:
        module.fail_json(**dict(result, **exc.as_fail_kwargs()))
    except OSError as exc:
        module.fail_json(msg='Cannot write the rules file %s: %s.' % (dest, exc.strerror or exc), **result)
    module.exit_json(**result)


def _chmod_regular(path: str, mode: int) -> None:
    # through an O_NOFOLLOW descriptor: a link swapped in after the read must not hand its target the mode
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OpsReadyError('The rules file %s is no longer a regular file: refusing to change its mode.' % path)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


if __name__ == '__main__':
    main()
