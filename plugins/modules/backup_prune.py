#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_prune
short_description: Apply retention to a backup catalog without ever breaking a chain that is kept
version_added: 0.1.0
description:
  - Selects the full backups to keep per backup set (engine + database) with O(keep_last), O(keep_days),
    O(keep_daily), O(keep_weekly) and O(keep_monthly) (a full is kept when any rule selects it);
    differentials live and die with their full; log and WAL artifacts are kept from the first position any
    kept full or differential needs.
  - The newest verified full and the newest usable full always survive, whatever the rules. The plan is
    checked before anything is deleted; a plan that would break a kept chain is refused.
  - Deletes the manifest first (the artifact is then an untrusted leftover), then the data. Also removes
    leftovers of interrupted runs older than O(leftover_min_age) seconds.
  - "In a directory of 1,000 manifests or more the plan is made from the derived catalog index
    (C(.opsready-catalog-index.json), see M(opsready.operations.backup_info)); what is deleted is planned
    again from the manifests themselves of the sets that lose artifacts, never from the index alone.
    Check mode writes nothing, not even the index."
author: opsready developers (@opsready)
options:
  path:
    description: The backup directory.
    type: path
    required: true
  engine:
    description: Only prune this engine's sets.
    type: str
    choices: [postgresql, mariadb, mysql, sqlite, sqlserver, redis, files]
  database:
    description: Only prune this database's set.
    type: str
  leftover_min_age:
    description:
      - Remove files without a manifest only when older than this many seconds (a younger one may be a
        backup in progress).
    type: int
    default: 3600
extends_documentation_fragment:
  - opsready.operations.retention
  - opsready.operations.check_mode
notes:
  - With no keep rule at all nothing is deleted.
  - Check mode lists what would be deleted; with C(--diff) the diff shows the artifact list before and after.
seealso:
  - module: opsready.operations.db_backup
  - module: opsready.operations.backup_info
'''

EXAMPLES = r'''
- name: Two weeks of dailies, 8 weeklies, 12 monthlies
  opsready.operations.backup_prune:
    path: /var/backups/opsready/pg
    keep_daily: 14
    keep_weekly: 8
    keep_monthly: 12

- name: What would go?
  opsready.operations.backup_prune:
    path: /var/backups/opsready/pg
    keep_last: 3
  check_mode: true
  diff: true
'''

RETURN = r'''
deleted:
  description: Artifacts deleted (or that would be, in check mode).
  returned: success
  type: list
  elements: str
kept:
  description: Artifacts kept, with the rule that keeps each.
  returned: success
  type: dict
reasons:
  description: Why each deleted artifact goes.
  returned: success
  type: dict
leftovers_removed:
  description: Files without a manifest older than O(leftover_min_age) that were removed (or would be).
  returned: success
  type: list
  elements: str
leftovers_left:
  description: Files of interrupted runs that could not be removed (each with a warning saying why); the run itself
    succeeded. Remove them by hand.
  returned: when a removal failed
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.names import CATALOG_ENGINES


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            engine=dict(type='str', choices=list(CATALOG_ENGINES)),
            database=dict(type='str'),
            leftover_min_age=dict(type='int', default=3600),
            **retention.argument_spec()
        ),
        required_one_of=[list(retention.KEEP_OPTIONS)],
        supports_check_mode=True,
    )
    p = module.params
    try:
        policy = retention.Policy.from_params(p)
        result = prune(p['path'], policy, engine=p['engine'], database=p['database'], check_mode=module.check_mode,
                       leftover_min_age=p['leftover_min_age'])
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if result['changed'] and module._diff:
        gone = set(result['deleted']) | set(result['leftovers_removed'])
        before = sorted(set(result['kept']) | gone)
        result['diff'] = {'before': '\n'.join(os.path.basename(x) for x in before) + '\n',
                          'after': '\n'.join(os.path.basename(x) for x in sorted(result['kept'])) + '\n',
                          'before_header': p['path'], 'after_header': p['path']}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
