#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: patch_gate
short_description: Decide whether a host may be patched now - blackout windows, health, backup age, free disk
version_added: 0.1.0
description:
  - Evaluates the pre-checks of a patching run and returns RV(proceed) with one reason per failed
    check, worded so an operator knows what to do.
  - C(blackout) - the current time must be outside every window of O(blackout_windows).
  - C(health) - the verdict of M(opsready.operations.health_check) must be no worse than O(health_allowed).
  - C(backup) - the newest verified full backup of every set reported by
    M(opsready.operations.backup_info) must be younger than O(max_backup_age_seconds) (the RPO objective).
  - C(disk) - every path of O(disk) must have the free space asked for.
  - Read-only. Fails only when O(fail) is true and a check failed; otherwise the caller decides
    (the C(opsready.operations.patching) role skips the host and reports why).
author: opsready developers (@opsready)
options:
  blackout_windows:
    description:
      - Windows during which patching must not start. A weekly window has C(start) and C(end)
        (C(HH:MM), may cross midnight; the window belongs to the day it starts), optional C(days)
        (V(mon) .. V(sun), default every day) and C(timezone) (IANA name, default UTC). A one-off
        window has C(from) and C(until) (ISO 8601 with a zone). Both take an optional C(name).
    type: list
    elements: dict
    default: []
  now:
    description: Evaluate at this time (ISO 8601 with a zone) instead of the current time.
    type: str
  health_verdict:
    description: The RV(opsready.operations.health_check#module:verdict) of the host; omit to skip the check.
    type: str
    choices: [ok, warning, critical]
  health_summary:
    description: Text added to the health reason (for example the worst finding).
    type: str
  health_allowed:
    description: Worst verdict that still allows patching.
    type: str
    choices: [ok, warning]
    default: warning
  backup_sets:
    description: The RV(opsready.operations.backup_info#module:sets) list; omit to skip the backup check.
    type: list
    elements: dict
  max_backup_age_seconds:
    description: RPO objective - the newest verified full backup of each set must be younger than this.
    type: int
  backup_required:
    description: Treat an empty catalog as a failed check.
    type: bool
    default: true
  disk:
    description: Free space needed before patching, each C(path) with C(min_free_mb) and/or C(min_free_percent).
    type: list
    elements: dict
    default: []
  fail:
    description: Fail the task (with the reasons) instead of returning RV(proceed=false).
    type: bool
    default: false
extends_documentation_fragment:
  - opsready.operations.check_mode
seealso:
  - module: opsready.operations.health_check
  - module: opsready.operations.backup_info
  - module: opsready.operations.os_patch
'''

EXAMPLES = r'''
- name: Gate this host
  opsready.operations.patch_gate:
    health_verdict: "{{ health.verdict }}"
    backup_sets: "{{ catalog.sets }}"
    max_backup_age_seconds: 86400
    disk:
      - {path: /, min_free_mb: 1024}
      - {path: /var/cache/apt, min_free_percent: 10}
    blackout_windows:
      - {name: business hours, days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00", timezone: Europe/Paris}
      - {name: year-end freeze, from: "2026-12-20T00:00:00Z", until: "2027-01-04T00:00:00Z"}
  register: gate
'''

RETURN = r'''
proceed:
  description: True when every check passed.
  returned: success
  type: bool
reasons:
  description: One sentence per failed check.
  returned: success
  type: list
  elements: str
  sample: ["inside blackout window business hours; patch after it ends"]
checks:
  description: Every check with C(name), C(ok), C(reason) and its measurements.
  returned: success
  type: list
  elements: dict
now:
  description: Time the checks were evaluated at (UTC).
  returned: success
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.patching.gate import evaluate, validate_window


def main():
    module = AnsibleModule(
        argument_spec=dict(
            blackout_windows=dict(type='list', elements='dict', default=[]),
            now=dict(type='str'),
            health_verdict=dict(type='str', choices=['ok', 'warning', 'critical']),
            health_summary=dict(type='str'),
            health_allowed=dict(type='str', choices=['ok', 'warning'], default='warning'),
            backup_sets=dict(type='list', elements='dict'),
            max_backup_age_seconds=dict(type='int'),
            backup_required=dict(type='bool', default=True),
            disk=dict(type='list', elements='dict', default=[]),
            fail=dict(type='bool', default=False),
        ),
        required_by={'backup_sets': 'max_backup_age_seconds'},
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    try:
        for window in p['blackout_windows']:
            validate_window(window)
        for req in p['disk']:
            if 'path' not in req or not ({'min_free_mb', 'min_free_percent'} & set(req)):
                raise OpsReadyError('Each disk entry needs a path and min_free_mb and/or min_free_percent: %r' % req)
        now = parse_time(p['now'], 'now') if p['now'] else utcnow()
        result = evaluate(now=now, windows=p['blackout_windows'], disk=p['disk'], health_verdict=p['health_verdict'],
                          health_allowed=p['health_allowed'], health_summary=p['health_summary'],
                          backup_sets=p['backup_sets'], max_backup_age=p['max_backup_age_seconds'],
                          backup_required=p['backup_required'])
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if p['fail'] and not result['proceed']:
        module.fail_json(msg='Patching pre-checks failed: ' + '; '.join(result['reasons']), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
