#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: patch_report
short_description: Keep the report of a rolling patching run - one JSON file (and Markdown) updated host by host
version_added: 0.1.0
description:
  - V(state=started) creates the report of run O(run_id) listing every host of O(hosts) as
    C(not_reached); calling it again for the same run changes nothing.
  - V(state=recorded) merges one host's outcome (O(entry)) into it. Writes are serialised with a lock
    and atomic, so the report is complete at every moment, including after a rollout stopped by a
    failing host; hosts the rollout never reached stay C(not_reached).
  - A Markdown table (host, status, reason, packages old -> new, held, reboot) is written beside the
    JSON file with the C(.md) suffix.
  - Usually run with C(delegate_to) the controller.
author: opsready developers (@opsready)
options:
  path:
    description:
      - The report JSON file (a Markdown rendering and a lock file are written beside it).
      - Refused, before anything is written, when an account other than root owns or can write a directory above
        its directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
    required: true
  run_id:
    description: Identifier of the rollout (one report per run).
    type: str
    required: true
  state:
    description: Start the run's report, or record one host's outcome.
    type: str
    choices: [started, recorded]
    required: true
  hosts:
    description: Hosts of the rollout (V(state=started)).
    type: list
    elements: str
  settings:
    description: Settings of the run to keep in the report (V(state=started)).
    type: dict
  host:
    description: The host whose outcome is recorded (V(state=recorded)).
    type: str
  entry:
    description:
      - The outcome (V(state=recorded)). C(status) is one of V(patched), V(unchanged), V(skipped),
        V(failed), V(planned) (check mode); C(reason), C(upgraded), C(installed), C(removed), C(held),
        C(reboot) (C(required), C(performed), C(skipped_reason)), C(services_restarted) and
        C(post_checks) are kept as given.
    type: dict
extends_documentation_fragment:
  - opsready.operations.check_mode
seealso:
  - module: opsready.operations.os_patch
'''

EXAMPLES = r'''
- name: Record this host
  opsready.operations.patch_report:
    path: /var/lib/opsready/reports/patching-20261129T0200Z.json
    run_id: 20261129T0200Z
    state: recorded
    host: "{{ inventory_hostname }}"
    entry:
      status: patched
      upgraded: "{{ patch.upgraded }}"
  delegate_to: localhost
'''

RETURN = r'''
report:
  description: The whole report after the change.
  returned: success
  type: dict
markdown_path:
  description: Path of the Markdown rendering.
  returned: success
  type: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.patching import report


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            run_id=dict(type='str', required=True),
            state=dict(type='str', choices=['started', 'recorded'], required=True),
            hosts=dict(type='list', elements='str'),
            settings=dict(type='dict'),
            host=dict(type='str'),
            entry=dict(type='dict'),
        ),
        required_if=[('state', 'started', ['hosts']), ('state', 'recorded', ['host', 'entry'])],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    try:
        if p['state'] == 'started':
            result = report.start(p['path'], p['run_id'], p['hosts'], p['settings'], module.check_mode)
        else:
            result = report.record(p['path'], p['run_id'], p['host'], p['entry'], module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Cannot write the patching report %s: %s. Set patching_report_dir to a writable '
                             'directory on the controller.' % (p['path'], exc))
    module.exit_json(markdown_path=os.path.splitext(p['path'])[0] + '.md', **result)


if __name__ == '__main__':
    main()
