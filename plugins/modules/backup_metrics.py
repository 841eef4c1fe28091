#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_metrics
short_description: Write backup freshness metrics per database as a Prometheus textfile
version_added: 0.1.0
description:
  - Reads the backup catalog in O(backup_dir) and writes, per engine and database, the finish time of
    the newest artifact and of the newest full backup, its duration, size, verification result and
    encryption, the artifact count, the stored bytes and the latest recoverable point, in the
    node_exporter textfile collector format.
  - The file is replaced atomically (temporary file, fsync, rename), so node_exporter never reads half
    of it; it is rewritten only when its content changes, and the module then reports C(changed).
  - Run it after every backup (the metrics come from the manifests, so running it again is harmless)
    and alert on C(time() - opsready_backup_last_full_success_timestamp_seconds) and
    C(time() - opsready_backup_recoverable_until_timestamp_seconds).
author: opsready developers (@opsready)
options:
  backup_dir:
    description: The backup directory (catalog) written by the backup modules.
    type: path
    required: true
  textfile:
    description:
      - The C(.prom) file to write, inside node_exporter's C(--collector.textfile.directory). Use one
        file per backup directory.
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
    required: true
  engine:
    description: Only artifacts of this engine.
    type: str
  database:
    description: Only this database (or file backup set).
    type: str
  rpo_seconds:
    description:
      - The RPO objective in seconds. Adds C(opsready_backup_rpo_objective_seconds) and
        C(opsready_backup_rpo_breached) (1 when the continuous RPO, now minus the latest recoverable point,
        exceeded it at this run), and RV(breached) lists the databases over it.
      - The live alert is C(time() - opsready_backup_recoverable_until_timestamp_seconds > objective), or
        C(time() - opsready_backup_last_log_timestamp_seconds) for the age of the newest archived WAL
        segment or binlog (a stopped archiver freezes it).
    type: int
  origin_succession:
    description:
      - One server whose identity changed (a PostgreSQL cluster upgraded with pg_upgrade or re-created with initdb,
        a renamed host) leaves a set with two origins. Without this each origin has its own series, and the old one
        ages past the RPO until retention deletes its backups. With it, a set whose origins succeeded each other
        (no overlap in time) has one series, the newest origin's, naming its predecessors. Origins whose backups
        overlap in time (two live servers) keep one each.
      - The same declaration as M(opsready.operations.backup_prune)
        O(opsready.operations.backup_prune#module:origin_succession).
    type: bool
    default: false
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - Supports C(check_mode) and C(diff_mode).
seealso:
  - module: opsready.operations.health_check
  - module: opsready.operations.backup_copy
'''

EXAMPLES = r'''
- name: Publish backup freshness for node_exporter
  opsready.operations.backup_metrics:
    backup_dir: /var/backups/opsready/postgresql
    textfile: /var/lib/prometheus/node-exporter/opsready_backup_postgresql.prom

# Alerting rule (Prometheus):
#   - alert: BackupStale
#     expr: time() - opsready_backup_last_full_success_timestamp_seconds > 26 * 3600
#   - alert: RpoBreached
#     expr: time() - opsready_backup_recoverable_until_timestamp_seconds > 5 * 60
'''

RETURN = r'''
textfile:
  description: The file written.
  returned: success
  type: str
  sample: /var/lib/prometheus/node-exporter/opsready_backup_postgresql.prom
databases:
  description: What was measured per engine and database (ages in seconds at the time of the run).
  returned: success
  type: list
  elements: dict
  sample: [{"engine": "postgresql", "database": "shop", "artifacts": 14, "rpo_seconds": 120.5,
            "full_age_seconds": 3600.0, "last_verified": true}]
breached:
  description: With O(rpo_seconds), the databases whose continuous RPO exceeds it (C(engine/database)).
  returned: success
  type: list
  elements: str
  sample: ["postgresql/@cluster"]
'''

from ansible.module_utils.basic import AnsibleModule
# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.health import backup_freshness


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backup_dir=dict(type='path', required=True),
            textfile=dict(type='path', required=True),
            engine=dict(type='str'),
            database=dict(type='str'),
            rpo_seconds=dict(type='int'),
            origin_succession=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    if not p['textfile'].endswith('.prom'):
        module.fail_json(msg='textfile %s must end in .prom: node_exporter reads only *.prom files.' % p['textfile'])
    if p['rpo_seconds'] is not None and p['rpo_seconds'] <= 0:
        module.fail_json(msg='rpo_seconds must be more than 0 (the objective, e.g. 300 for 5 minutes).')
    try:
        records = backup_freshness.assess(p['backup_dir'], p['engine'], p['database'], verified_only=False,
                                          rpo_objective=p['rpo_seconds'], origin_succession=p['origin_succession'])
        text = backup_freshness.prometheus_text(records, p['backup_dir'])
        before = (safeio.read_regular_or_none(p['textfile'], 16 * 1024 * 1024, what='Textfile')
                  or b'').decode('utf-8', 'replace')
        changed = backup_freshness.write_textfile(p['textfile'], text, check_mode=module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Writing %s failed: %s.' % (p['textfile'], exc.strerror or exc))
    breached = ['%s/%s' % (r['engine'], r['database']) for r in records if r.get('rpo_breached')]
    module.exit_json(changed=changed, textfile=p['textfile'], databases=records, breached=breached,
                     diff={'before': before, 'after': text})


if __name__ == '__main__':
    main()
