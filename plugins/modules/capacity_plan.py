#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: capacity_plan
short_description: Trends and days-until-full from the health history, with recommendations
version_added: 0.1.0
description:
  - Reads the JSON-lines history that M(opsready.operations.health_check) appends with
    O(opsready.operations.health_check#module:history_path), fits a least-squares line per resource
    (CPU, memory, swap, and space and inodes per filesystem) over the last O(window_days), and
    returns for each the slope per day, the fit quality (r2) and the days until it crosses its threshold.
  - Resources expected to cross within O(horizon_days) get a recommendation (grow filesystem X within
    N days, to at least a computed size; add memory; add CPU).
  - Read-only.
author: opsready developers (@opsready)
options:
  history_path:
    description: The health history file.
    type: path
    required: true
  thresholds:
    description:
      - Levels the trends must not cross, as in M(opsready.operations.health_check) (the critical
        level is used; a bare number is the level). Defaults are the health check's critical levels
        (C(disk_percent) 90, C(inode_percent) 90, C(memory_percent) 85, C(cpu_percent) 80, C(swap_percent) none).
    type: dict
    default: {}
  horizon_days:
    description: Recommend action for resources crossing within this many days.
    type: float
    default: 90
  window_days:
    description: Fit the trend over this many most recent days of history.
    type: float
    default: 30
  min_samples:
    description: Fewer samples than this in the window gives C(trend=insufficient_data).
    type: int
    default: 3
  host:
    description: Only samples recorded with this host label.
    type: str
extends_documentation_fragment:
  - opsready.operations.check_mode
seealso:
  - module: opsready.operations.health_check
'''

EXAMPLES = r'''
- name: Capacity plan from this host's health history
  opsready.operations.capacity_plan:
    history_path: /var/lib/opsready/health-history.jsonl
    horizon_days: 60
  register: capacity

- name: Show it
  ansible.builtin.debug:
    msg: "{{ capacity.table + capacity.recommendations | map(attribute='message') | list }}"
'''

RETURN = r'''
resources:
  description: One entry per resource with current value, slope_per_day, r2, days_until_threshold, trend.
  returned: success
  type: list
  elements: dict
  sample:
    - resource: filesystem:/var
      kind: fs
      current: 71.2
      slope_per_day: 0.85
      r2: 0.97
      threshold: 90.0
      days_until_threshold: 22.1
      trend: growing
      growth_bytes_per_day: 912680550.4
recommendations:
  description: Resources crossing within O(horizon_days), soonest first.
  returned: success
  type: list
  elements: dict
  sample:
    - resource: filesystem:/var
      action: grow_disk
      days: 22.1
      recommended_size_bytes: 214748364800
      message: "Grow filesystem /var within 22 days: 71.2 % used, +0.85 points/day, crosses 90 %."
table:
  description: A short fixed-width table (resource, now, per day, days left).
  returned: success
  type: list
  elements: str
  sample: ["resource                              now      per day  days left"]
samples:
  description: Samples used (in the window).
  returned: success
  type: int
  sample: 2016
skipped_lines:
  description: Unparsable history lines that were ignored.
  returned: success
  type: int
  sample: 0
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import capacity, history, thresholds


def main():
    module = AnsibleModule(
        argument_spec=dict(
            history_path=dict(type='path', required=True),
            thresholds=dict(type='dict', default={}),
            horizon_days=dict(type='float', default=90),
            window_days=dict(type='float', default=30),
            min_samples=dict(type='int', default=3),
            host=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    try:
        if p['horizon_days'] <= 0 or p['window_days'] <= 0 or p['min_samples'] < 2:
            raise OpsReadyError('horizon_days and window_days must be more than 0 and min_samples at least 2.')
        levels = {name: t.critical for name, t in thresholds.parse(p['thresholds']).items()}
        samples, skipped = history.load(p['history_path'])
        result = capacity.analyze(samples, levels, horizon_days=p['horizon_days'], window_days=p['window_days'],
                                  min_samples=p['min_samples'], host=p['host'])
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Cannot read the history %s: %s.' % (p['history_path'], exc.strerror or exc))
    result['table'] = capacity.table(result)
    result['skipped_lines'] = skipped
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
