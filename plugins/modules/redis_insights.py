#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: redis_insights
short_description: Redis cache insights (hit ratio, memory, evictions, clients, replication, persistence) with verdicts
version_added: 0.1.0
description:
  - Reads one Redis server's C(INFO everything) with C(redis-cli) and reports the cache hit ratio, used memory
    against C(maxmemory) and the eviction policy, evicted keys, commands refused with OOM, connected and blocked
    clients against C(maxclients), rejected connections, the replication role and lag, the last RDB save status
    and the AOF status, then judges them against O(thresholds) and returns a verdict (V(ok), V(warning),
    V(critical)) with findings that say what to do.
  - "Counters (hits, misses, evictions, rejected connections, OOM refusals) are Redis' running counts since the
    server started; the textfile exports them as counters (C(_total)) so Prometheus' C(increase()) turns them
    into rates."
  - The password reaches C(redis-cli) only through the C(REDISCLI_AUTH) environment variable, never its command line.
  - Read-only towards Redis. With O(textfile_path) it writes a node_exporter textfile (C(opsready_redis_*),
    see docs/metrics.md); C(changed) is true when a metric value other than the run timestamp changed.
author: opsready developers (@opsready)
options:
  thresholds:
    description:
      - Overrides of the default thresholds; keys C(memory_warning) (0.85), C(memory_critical) (0.95, with
        C(noeviction)), C(hit_ratio_warning) (0.80), C(hit_ratio_min_lookups) (1000), C(evictions_warning) (1;
        0 disables), C(clients_warning) (0.80 of maxclients), C(clients_critical) (0.95),
        C(blocked_clients_warning) (10), C(rejected_connections_warning) (1), C(replication_lag_warning) (10 s),
        C(replication_lag_critical) (60 s).
    type: dict
    default: {}
  textfile_path:
    description:
      - Write the metrics as a node_exporter textfile here (atomically; the directory must exist).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
  server_label:
    description: The C(server) label of the metrics; default C(host:port) or the socket path.
    type: str
  fail_on:
    description: Fail the task when the verdict is at least this bad.
    type: str
    choices: [never, warning, critical]
    default: never
extends_documentation_fragment:
  - opsready.operations.redis_connection
  - opsready.operations.check_mode
'''

EXAMPLES = r'''
- name: Cache insights, metrics for node_exporter
  opsready.operations.redis_insights:
    host: 127.0.0.1
    port: 6379
    password: "{{ vault_redis_password }}"
    textfile_path: /var/lib/prometheus/node-exporter/opsready_redis.prom
    thresholds:
      evictions_warning: 0          # a pure LRU cache: evictions are expected
  register: redis

- name: Page when Redis is out of memory
  ansible.builtin.fail:
    msg: "{{ redis.findings | map(attribute='message') | join('; ') }}"
  when: redis.verdict == 'critical'
'''

RETURN = r'''
verdict:
  description: Worst finding's severity.
  returned: success
  type: str
  sample: warning
findings:
  description: What is wrong, worst first; each has C(name), C(severity), C(message) and C(value) when numeric.
  returned: success
  type: list
  elements: dict
  sample: [{name: evictions, severity: warning, message: "Redis evicted 1200 keys since it started ..."}]
facts:
  description: The numbers the verdict is made of (hit_ratio, used_memory_bytes, maxmemory_bytes, evicted_keys, ...).
  returned: success
  type: dict
thresholds:
  description: The thresholds applied (defaults merged with O(thresholds)).
  returned: success
  type: dict
textfile:
  description: The textfile written (or that would be written in check mode).
  returned: when O(textfile_path) is set
  type: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_text
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import insights
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    RedisClient, connection_argument_spec, connection_from_params)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

FAIL_ON = {'critical': 2, 'warning': 1, 'never': 99}


def _without_timestamp(text):
    return '\n'.join(line for line in text.splitlines() if not line.startswith('opsready_redis_last_run_timestamp'))


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        thresholds=dict(type='dict', default={}),
        textfile_path=dict(type='path'),
        server_label=dict(type='str'),
        fail_on=dict(type='str', choices=list(FAIL_ON), default='never'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    no_path_info(module)
    p = module.params
    thresholds = dict(insights.DEFAULT_THRESHOLDS)
    unknown = sorted(set(p['thresholds']) - set(thresholds))
    if unknown:
        module.fail_json(msg='Unknown thresholds key(s) %s: use %s.'
                         % (', '.join(unknown), ', '.join(sorted(thresholds))))
    for key, value in p['thresholds'].items():
        try:
            thresholds[key] = float(value)
        except (TypeError, ValueError):
            module.fail_json(msg='thresholds.%s must be a number, got %r.' % (key, value))
    if p['textfile_path']:
        # Check mode too, before Redis is asked (a Redis that is down is written as a metric): an account owning a
        # directory above could link the directory's name to a directory of root's, where root would write.
        try:
            safeio.check_parents(os.path.dirname(os.path.abspath(p['textfile_path'])),
                                 'write the metrics textfile into', 'The directory of textfile_path')
        except OpsReadyError as exc:
            module.fail_json(**exc.as_fail_kwargs())
    conn = connection_from_params(p)
    label = p['server_label'] or conn.label()
    try:
        facts = insights.collect(RedisClient(conn))
    except OpsReadyError as exc:
        if p['textfile_path'] and not module.check_mode:
            # Redis down is itself a metric (opsready_redis_up 0), written before failing.
            text = insights.render_metrics(label, None, 'critical', [{'name': 'up', 'severity': 'critical'}])
            atomic_write_text(p['textfile_path'], text)
        module.fail_json(**exc.as_fail_kwargs())
    verdict, findings = insights.evaluate(facts, thresholds)
    findings.sort(key=lambda f: -insights.SEVERITY[f['severity']])
    result = dict(changed=False, verdict=verdict, findings=findings, facts=facts, thresholds=thresholds,
                  server=label)
    if p['textfile_path']:
        text = insights.render_metrics(label, facts, verdict, findings)
        try:
            with open(p['textfile_path'], encoding='utf-8') as handle:
                before = handle.read()
        except FileNotFoundError:
            before = ''
        except OSError as exc:
            module.fail_json(msg='Cannot read %s: %s.' % (p['textfile_path'], exc))
        result['changed'] = _without_timestamp(before) != _without_timestamp(text)
        result['textfile'] = p['textfile_path']
        if module._diff and result['changed']:
            result['diff'] = dict(before=before, after=text, before_header=p['textfile_path'],
                                  after_header=p['textfile_path'])
        if not module.check_mode:
            if not os.path.isdir(os.path.dirname(os.path.abspath(p['textfile_path']))):
                module.fail_json(msg='The directory of textfile_path %s does not exist: create it (node_exporter\'s '
                                 '--collector.textfile.directory).' % p['textfile_path'], **result)
            atomic_write_text(p['textfile_path'], text)
    if insights.SEVERITY[verdict] >= FAIL_ON[p['fail_on']]:
        module.fail_json(msg='Redis verdict is %s (fail_on=%s): %s' % (verdict, p['fail_on'], findings[0]['message']),
                         **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
